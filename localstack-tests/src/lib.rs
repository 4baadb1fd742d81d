//! Local AWS tooling shared by the `durable-local` CLI and the end-to-end tests: AWS clients for
//! the local environment, packaging of Lambda binaries, an idempotent deploy into LocalStack,
//! an HTTP client for the orchestrator's Function URL and journal inspection.

pub mod aws;
pub mod client;
pub mod deploy;
pub mod harness;
pub mod inspect;
pub mod package;

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
