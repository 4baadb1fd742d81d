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
