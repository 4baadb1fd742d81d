//! The local environment's tooling, three jobs in one crate:
//!
//! * the `durable-local` CLI (`src/bin/durable-local.rs`): deploy, invoke, inspect, demo;
//! * [`deploy`]: AWS clients for the local environment, packaging of Lambda binaries and an
//!   idempotent deploy into LocalStack (used by the CLI, the tests and the benchmark);
//! * [`harness`]: the end-to-end test environment (`Env`) the tests in `tests/` run on;
//! * [`crash`]: the crash deployment (armed crash points, short timeouts, a sweep every
//!   second) that the crash-point and random-kill tests run on.
//!
//! * [`timers`]: firing a deployment's pending timers now (the test kit's time skip).
//!
//! Both the CLI and the harness reach the orchestrator through [`client`] (its Function URL)
//! and read what it stored through [`inspect`].

pub mod client;
pub mod crash;
pub mod deploy;
pub mod harness;
pub mod inspect;
pub mod timers;

/// Errors of the local tooling, with what to do about them where that is known.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("{0}")]
    Message(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("AWS {operation} failed: {message}")]
    Aws {
        operation: &'static str,
        message: String,
    },
}

impl ToolError {
    /// An AWS SDK error with its full context (service code and message).
    pub fn aws<E: std::error::Error + 'static, R: std::fmt::Debug>(
        operation: &'static str,
        err: aws_sdk_dynamodb::error::SdkError<E, R>,
    ) -> Self {
        ToolError::Aws {
            operation,
            message: aws_sdk_dynamodb::error::DisplayErrorContext(err).to_string(),
        }
    }
}

/// Result of the local tooling.
pub type Result<T, E = ToolError> = std::result::Result<T, E>;
