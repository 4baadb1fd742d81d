//! The cost model: published AWS list prices (us-east-1) applied to counted requests.

/// When the prices below were taken from the AWS pricing pages; check them before relying on
/// the totals.
pub const PRICES_AS_OF: &str = "AWS list prices, us-east-1, as published in 2025 (Lambda on arm64, the architecture the CDK constructs deploy; DynamoDB on-demand after the 2024-11 cut; S3 Standard; EventBridge Scheduler; Step Functions Standard)";

/// Lambda: per request.
pub const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
/// Lambda: per GB-second on arm64 (Graviton; x86 is $0.0000166667). The CDK constructs deploy
/// every function, the orchestrator's and the handlers', on arm64.
pub const LAMBDA_GB_SECOND: f64 = 0.000_013_333_4;
/// DynamoDB on-demand: per write request unit.
pub const DYNAMO_WRU: f64 = 0.625 / 1e6;
/// DynamoDB on-demand: per read request unit.
pub const DYNAMO_RRU: f64 = 0.125 / 1e6;
/// S3 Standard: PUT, COPY, POST, LIST per request.
pub const S3_WRITE: f64 = 0.005 / 1e3;
/// S3 Standard: GET and other reads per request.
pub const S3_READ: f64 = 0.0004 / 1e3;
/// EventBridge Scheduler: per invocation (a one-time schedule fires once).
pub const SCHEDULER_INVOCATION: f64 = 1.00 / 1e6;
/// Step Functions Standard: per state transition.
pub const STEP_FUNCTIONS_TRANSITION: f64 = 25.0 / 1e6;

/// Where and when the peers' prices below were read.
pub const PEER_PRICES_AS_OF: &str = "AWS Lambda durable functions: $8.00 per million durable operations, $0.25 per GB of data written, $0.15 per GB-month retained, plus Lambda requests and duration (aws.amazon.com/lambda/pricing, durable functions section, as transcribed on 2026-01-12 by thecandidstartup.org and on 2026-09-20 by api-evangelist/aws-lambda; not re-read from AWS here). Step Functions Express: $1.00 per million requests, $0.06 per GB-hour for the first 1,000 GB-hours, billed per 100 ms in 64 MB chunks (aws.amazon.com/step-functions/pricing, read 2025)";

/// AWS Lambda durable functions: per durable operation (a step, a wait, a callback, an
/// invoke, a child context; each retry counts again).
pub const AWS_DURABLE_OPERATION: f64 = 8.00 / 1e6;
/// AWS Lambda durable functions: per GB of checkpoint data written.
pub const AWS_DURABLE_WRITTEN_GB: f64 = 0.25;
/// AWS Lambda durable functions: per GB-month of data retained.
pub const AWS_DURABLE_RETAINED_GB_MONTH: f64 = 0.15;
/// Step Functions Express: per workflow request.
pub const EXPRESS_REQUEST: f64 = 1.00 / 1e6;
/// Step Functions Express: per GB-second of duration (the first tier, $0.06 per GB-hour).
pub const EXPRESS_GB_SECOND: f64 = 0.06 / 3600.0;

/// The equivalent AWS Lambda durable function of a scenario: what it would be billed for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AwsDurable {
    /// Durable operations per run.
    pub operations: f64,
    /// Lambda invocations per run (the start, and one per resumption).
    pub invocations: f64,
    /// Checkpoint data written per run, in KB.
    pub written_kb: f64,
}

/// The modeled cost of one run of `d`, each invocation taking a plain call's duration and
/// CPU time, its checkpoints kept for `retention_days` (a lower bound: the time the SDK's
/// checkpoint calls take is not in the plain call's duration).
pub fn aws_durable(d: &AwsDurable, task_ms: f64, task_cpu_ms: f64, retention_days: f64) -> f64 {
    let gb = d.written_kb / (1024.0 * 1024.0);
    d.operations * AWS_DURABLE_OPERATION
        + gb * AWS_DURABLE_WRITTEN_GB
        + gb * retention_days / 30.0 * AWS_DURABLE_RETAINED_GB_MONTH
        + d.invocations * plain_call(task_ms, task_cpu_ms, HANDLER_MB)
}

/// The equivalent Step Functions Express workflow: one request, its duration (its tasks one
/// after another, rounded up to 100 ms) at the 64 MB minimum, and one Lambda task invocation
/// per task state.
pub fn step_functions_express(tasks: f64, task_ms: f64, task_cpu_ms: f64, waits_ms: f64) -> f64 {
    let task_on_lambda = on_lambda_ms(task_ms, task_cpu_ms, HANDLER_MB);
    let duration_s = ((tasks * task_on_lambda + waits_ms) / 100.0)
        .ceil()
        .max(1.0)
        / 10.0;
    EXPRESS_REQUEST
        + duration_s * (64.0 / 1024.0) * EXPRESS_GB_SECOND
        + tasks * plain_call(task_ms, task_cpu_ms, HANDLER_MB)
}

/// Memory of the orchestrator and of handler Lambdas (the CDK constructs' defaults), in MB.
pub const ORCHESTRATOR_MB: f64 = 128.0;
pub const HANDLER_MB: f64 = 256.0;
/// The memory size at which a Lambda function gets one full vCPU; below it, it gets a share
/// in proportion (AWS Lambda documentation).
pub const FULL_VCPU_MB: f64 = 1769.0;

/// What one invocation of a scenario used, per invocation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub orchestrator_calls: f64,
    pub orchestrator_ms: f64,
    /// CPU time of the orchestrator's processes (here, on a full core).
    pub orchestrator_cpu_ms: f64,
    pub handler_calls: f64,
    pub handler_ms: f64,
    /// CPU time of the handler's processes (here, on a full core).
    pub handler_cpu_ms: f64,
    pub wru: f64,
    pub rru: f64,
    pub s3_writes: f64,
    pub s3_reads: f64,
    pub schedules: f64,
}

/// Dollars per invocation, split by service.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cost {
    pub lambda: f64,
    pub dynamo: f64,
    pub s3: f64,
    pub scheduler: f64,
}

impl Cost {
    /// The total per invocation.
    pub fn total(&self) -> f64 {
        self.lambda + self.dynamo + self.s3 + self.scheduler
    }
}

/// Billed Lambda milliseconds: rounded up to the next millisecond per call.
fn gb_seconds(ms: f64, mb: f64) -> f64 {
    ms.ceil() / 1000.0 * mb / 1024.0
}

/// The duration a call measured here (`wall_ms`, of which `cpu_ms` on a full core) would
/// have on a Lambda of `mb`: below one vCPU the CPU work is stretched by the CPU share, the
/// waiting is not.
pub fn on_lambda_ms(wall_ms: f64, cpu_ms: f64, mb: f64) -> f64 {
    let stretch = (FULL_VCPU_MB / mb - 1.0).max(0.0);
    wall_ms + cpu_ms * stretch
}

/// The modeled cost of one call of a plain Lambda of `mb` (the baseline, a Step Functions task).
pub fn plain_call(wall_ms: f64, cpu_ms: f64, mb: f64) -> f64 {
    LAMBDA_REQUEST + gb_seconds(on_lambda_ms(wall_ms, cpu_ms, mb), mb) * LAMBDA_GB_SECOND
}

/// The modeled cost of one invocation.
pub fn cost(u: &Usage) -> Cost {
    Cost {
        lambda: (u.orchestrator_calls + u.handler_calls) * LAMBDA_REQUEST
            + gb_seconds(
                on_lambda_ms(u.orchestrator_ms, u.orchestrator_cpu_ms, ORCHESTRATOR_MB),
                ORCHESTRATOR_MB,
            ) * LAMBDA_GB_SECOND
            + gb_seconds(
                on_lambda_ms(u.handler_ms, u.handler_cpu_ms, HANDLER_MB),
                HANDLER_MB,
            ) * LAMBDA_GB_SECOND,
        dynamo: u.wru * DYNAMO_WRU + u.rru * DYNAMO_RRU,
        s3: u.s3_writes * S3_WRITE + u.s3_reads * S3_READ,
        scheduler: u.schedules * SCHEDULER_INVOCATION,
    }
}

/// The equivalent Step Functions Standard workflow: its transitions, plus one Lambda task
/// invocation (at the plain baseline's duration and CPU time) per task state.
pub fn step_functions(transitions: f64, tasks: f64, task_ms: f64, task_cpu_ms: f64) -> f64 {
    transitions * STEP_FUNCTIONS_TRANSITION + tasks * plain_call(task_ms, task_cpu_ms, HANDLER_MB)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_functions_transition_costs_25_per_million() {
        assert!((step_functions(1e6, 0.0, 0.0, 0.0) - 25.0).abs() < 1e-9);
    }

    #[test]
    fn peers_are_billed_by_their_published_units() {
        // A million 3-step AWS durable runs: 3 M operations and 3 GB written, no Lambda time.
        let d = AwsDurable {
            operations: 3.0,
            invocations: 0.0,
            written_kb: 3.0,
        };
        let per_million = aws_durable(&d, 0.0, 0.0, 0.0) * 1e6;
        let written = 3.0 / (1024.0 * 1024.0) * 0.25 * 1e6;
        assert!((per_million - (24.0 + written)).abs() < 1e-9);
        // A million Express runs of no tasks: $1 of requests and 100 ms at 64 MB each.
        let express = step_functions_express(0.0, 0.0, 0.0, 0.0) * 1e6;
        let duration = 0.1 * 0.0625 * (0.06 / 3600.0) * 1e6;
        assert!((express - (1.0 + duration)).abs() < 1e-9);
    }

    #[test]
    fn cpu_work_is_stretched_below_one_vcpu_and_waiting_is_not() {
        assert_eq!(on_lambda_ms(100.0, 0.0, 128.0), 100.0);
        assert_eq!(on_lambda_ms(100.0, 10.0, FULL_VCPU_MB), 100.0);
        let at_128 = on_lambda_ms(100.0, 10.0, 128.0);
        assert!((at_128 - (100.0 + 10.0 * (FULL_VCPU_MB / 128.0 - 1.0))).abs() < 1e-9);
        assert!(on_lambda_ms(100.0, 10.0, 256.0) < at_128);
    }

    #[test]
    fn lambda_time_is_billed_per_started_millisecond() {
        let u = Usage {
            handler_calls: 1.0,
            handler_ms: 0.2,
            ..Default::default()
        };
        let c = cost(&u);
        let expected = LAMBDA_REQUEST + 0.001 * 0.25 * LAMBDA_GB_SECOND;
        assert!((c.lambda - expected).abs() < 1e-15);
    }
}
