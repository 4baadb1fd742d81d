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
}
