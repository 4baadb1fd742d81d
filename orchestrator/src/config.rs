//! The orchestrator's settings, read from its environment.

use std::time::Duration;

/// Settings with their defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// The DynamoDB table (`DURABLE_TABLE`, required).
    pub table: String,
    /// Attempts per invocation before it stops retrying (`DURABLE_MAX_ATTEMPTS`, default 10).
    pub max_attempts: u32,
    /// What an invocation whose last attempt failed on a retryable error becomes
    /// (`DURABLE_ON_MAX_ATTEMPTS`, `pause` (default) or `fail`): paused costs nothing and can be
    /// fixed and resumed.
    pub on_max_attempts: OnMaxAttempts,
    /// First retry delay when the handler gives none (`DURABLE_RETRY_INITIAL_MS`, default 200).
    pub retry_initial: Duration,
    /// Largest retry delay (`DURABLE_RETRY_MAX_MS`, default 30 000).
    pub retry_max: Duration,
    /// How long finished invocations keep their output (`DURABLE_RETENTION_SECS`, default 86 400).
    pub retention: Duration,
    /// How much longer than the retention the journal of an invocation that finishes in its
    /// first attempt may live (`DURABLE_JOURNAL_GRACE_SECS`, default 86 400). Its entries get
    /// their TTL (retention + grace from the push) when they are written, so finishing costs no
    /// write per entry; the grace covers a driver that dies and is replaced by the sweep.
    pub journal_grace: Duration,
    /// How long a warm orchestrator reuses a service's registration before reading it again
    /// (`DURABLE_REGISTRY_CACHE_MS`, default 5 000; 0 reads it on every request).
    pub registry_cache: Duration,
    /// How long after a lease ended the sweep looks at it (`DURABLE_SWEEP_GRACE_MS`, default
    /// 30 000): a lease write must show in the `leases` index within this (plus `LEASE_AHEAD`)
    /// for the sweep's cursor not to pass it.
    pub sweep_grace: Duration,
    /// Time an attempt needs at least; with less left the orchestrator hands the invocation to
    /// a fresh orchestrator call instead (`DURABLE_MIN_PUSH_MS`, default 5 000).
    pub min_push_time: Duration,
    /// Time an orchestrator call keeps after a push for recording the outcome and handing the
    /// invocation (or its object's lock) on (`DURABLE_FINISH_RESERVE_MS`, default 3 000): a
    /// push that has not answered by the call's deadline minus this is left running and the
    /// invocation is handed to a fresh call, so the call never dies mid-decision.
    pub finish_reserve: Duration,
    /// This function's name, for handing work to a fresh call of itself (`AWS_LAMBDA_FUNCTION_NAME`).
    pub self_function: Option<String>,
    /// The role EventBridge Scheduler assumes to invoke the orchestrator when a timer is due
    /// (`DURABLE_SCHEDULER_ROLE_ARN`; without it, timers that need the Scheduler fail the invocation).
    pub scheduler_role_arn: Option<String>,
    /// The schedule group timers are created in (`DURABLE_SCHEDULE_GROUP`, default `default`).
    pub schedule_group: String,
    /// Precise mode: schedules fire this much before the wake time and the orchestrator waits
    /// the rest in-process (`DURABLE_TIMER_LEAD_MS`, default 0; EventBridge Scheduler fires
    /// one-time schedules within a minute, so 60 000 gives timers second precision).
    pub timer_lead: Duration,
    /// The S3 bucket for large values (`DURABLE_BUCKET`; without it, values over the offload
    /// threshold are refused).
    pub bucket: Option<String>,
    /// Offload threshold and maximum value size (`DURABLE_OFFLOAD_BYTES`, default 65 536;
    /// `DURABLE_MAX_VALUE_BYTES`, default 33 554 432).
    pub limits: durable_protocol::payload::Limits,
}

impl Config {
    /// Reads the environment; a missing table or a malformed number is an error.
    pub fn from_env() -> Result<Self, String> {
        let table =
            std::env::var("DURABLE_TABLE").map_err(|_| "DURABLE_TABLE is not set".to_string())?;
        Ok(Self {
            table,
            max_attempts: number("DURABLE_MAX_ATTEMPTS", 10)?.max(1) as u32,
            on_max_attempts: match std::env::var("DURABLE_ON_MAX_ATTEMPTS").as_deref() {
                Err(_) | Ok("pause") => OnMaxAttempts::Pause,
                Ok("fail") => OnMaxAttempts::Fail,
                Ok(other) => {
                    return Err(format!(
                        "DURABLE_ON_MAX_ATTEMPTS={other:?} is neither pause nor fail"
                    ))
                }
            },
            retry_initial: Duration::from_millis(number("DURABLE_RETRY_INITIAL_MS", 200)?),
            retry_max: Duration::from_millis(number("DURABLE_RETRY_MAX_MS", 30_000)?),
            retention: Duration::from_secs(number("DURABLE_RETENTION_SECS", 86_400)?),
            journal_grace: Duration::from_secs(number("DURABLE_JOURNAL_GRACE_SECS", 86_400)?),
            registry_cache: Duration::from_millis(number("DURABLE_REGISTRY_CACHE_MS", 5_000)?),
            min_push_time: Duration::from_millis(number("DURABLE_MIN_PUSH_MS", 5_000)?),
            finish_reserve: Duration::from_millis(number("DURABLE_FINISH_RESERVE_MS", 3_000)?),
            sweep_grace: Duration::from_millis(number("DURABLE_SWEEP_GRACE_MS", 30_000)?),
            self_function: std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok(),
            scheduler_role_arn: std::env::var("DURABLE_SCHEDULER_ROLE_ARN")
                .ok()
                .filter(|v| !v.is_empty()),
            schedule_group: std::env::var("DURABLE_SCHEDULE_GROUP")
                .unwrap_or_else(|_| "default".into()),
            timer_lead: Duration::from_millis(number("DURABLE_TIMER_LEAD_MS", 0)?),
            bucket: std::env::var("DURABLE_BUCKET")
                .ok()
                .filter(|v| !v.is_empty()),
            limits: durable_protocol::payload::Limits {
                offload_bytes: number(
                    "DURABLE_OFFLOAD_BYTES",
                    durable_protocol::payload::DEFAULT_OFFLOAD_BYTES as u64,
                )? as usize,
                max_value_bytes: number(
                    "DURABLE_MAX_VALUE_BYTES",
                    durable_protocol::payload::DEFAULT_MAX_VALUE_BYTES as u64,
                )? as usize,
            },
        })
    }
}

/// What an invocation becomes when its last attempt failed on a retryable error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnMaxAttempts {
    /// Paused: it keeps its journal (and an exclusive one its object's lock) until resumed,
    /// restarted or killed.
    Pause,
    /// Failed with `500 gave up after N attempts`.
    Fail,
}

fn number(name: &str, default: u64) -> Result<u64, String> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|_| format!("{name}={v:?} is not a whole number")),
        Err(_) => Ok(default),
    }
}
