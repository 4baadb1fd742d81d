//! Failures inside the orchestrator (not the caller's fault).

use durable_store::StoreError;

/// Failures inside the orchestrator (not the caller's fault).
#[derive(Debug, thiserror::Error)]
pub enum OrchestratorError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("Lambda {operation} failed: {message}")]
    Lambda {
        operation: &'static str,
        message: String,
    },
    #[error("{0}")]
    Protocol(String),
    /// An event that came through the wrong door, or whose proof does not hold: logged and
    /// answered with this error, with nothing written.
    #[error("refused: {0}")]
    Refused(String),
}
