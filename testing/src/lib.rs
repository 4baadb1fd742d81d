//! A test kit for durable handlers.
//!
//! * [`TestRunner`] runs handlers in this process, for fast unit tests of their logic: the
//!   SDK's real replay code against an in-memory journal, with an orchestrator loop (suspend,
//!   wake, retry, calls and sends between registered endpoints, object state), virtual time
//!   (a 3-day timeout takes no time), injected awakeable completions, step failures and
//!   crashes, and the recorded journal to assert on.
//! * [`TestEnv`] (feature `env`, on by default) drives handlers deployed into the local AWS
//!   environment (LocalStack with DynamoDB Local and real Lambda processes): deploy your
//!   crate, invoke, send, attach, resolve awakeables and promises, cancel/kill/pause/resume,
//!   describe, and fire pending timers now through the orchestrator's real wake path.
//!
//! What it does not model: Lambda deadlines, large values in S3 (they stay inline), the
//! orchestrator's retry backoff jitter, and concurrency between invocations (they run one at
//! a time, so an object's exclusive handlers are trivially serial). The end-to-end behaviour
//! is what the local environment (LocalStack) is for.

#[cfg(feature = "env")]
mod env;
mod runner;
mod store;

#[cfg(feature = "env")]
pub use env::{EnvError, TestEnv};

pub use durable_protocol::{EntryKind, InvocationId, JournalEntry, StepResult, TerminalFailure};
pub use runner::{RunError, Status, TestRunner};
