//! The durable-execution orchestrator, run as a Lambda function.
//!
//! * [`ingress`]: HTTP routes and validation (Function URL events).
//! * [`registry`]: which handler Lambda version serves which service.
//! * [`invocations`]: invocation metadata and its conditional state changes.
//! * [`objects`]: virtual objects' lock and inbox, and the transaction that ends a keyed
//!   invocation (outcome, state, lock hand-over).
//! * [`driver`]: pushing invocations with their journal to handler Lambdas, retries, hand-offs,
//!   suspension.
//! * [`timers`]: durable timers as EventBridge Scheduler one-time schedules.
//! * [`app`]: dispatch of every event the function receives.

pub mod app;
pub mod config;
pub mod driver;
pub mod error;
pub mod http;
pub mod ingress;
pub mod timers;
