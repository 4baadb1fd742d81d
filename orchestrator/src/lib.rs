//! The durable-execution orchestrator, run as a Lambda function.
//!
//! * [`app`]: the entry point: HTTP requests to [`http`], control events to [`control`].
//! * [`http`]: the Function URL's routes (invocations, results, completions).
//! * [`control`]: control events (register, drive, wake, resume, dispatch, sweep).
//! * [`driver`]: pushing invocations with their journal to handler Lambdas, retries, hand-offs,
//!   suspension, and joining existing invocations.
//! * [`lifecycle`]: an operator's kill, pause, resume, retry and restart of an invocation.
//! * [`services`]: the clients and stores, built once per process.
//! * [`doors`]: which door (qualifier) an event came through, and what each door accepts.
//! * [`signer`]: proofs on the events the orchestrator sends, checks of those it receives.
//! * [`timers`]: durable timers as EventBridge Scheduler one-time schedules.
//! * [`metrics`]: CloudWatch metrics as Embedded Metric Format log lines.
//! * [`config`], [`error`]: settings and errors.

pub mod app;
pub mod config;
pub mod control;
pub mod doors;
pub mod driver;
pub mod error;
pub mod http;
pub mod lifecycle;
pub mod metrics;
pub mod services;
pub mod signer;
pub mod timers;
