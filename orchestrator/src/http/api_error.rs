//! Errors answered to HTTP callers: a status and a JSON body `{"code","message"}`.

use crate::error::OrchestratorError;
use crate::http::FunctionUrlResponse;

/// An error answered to an HTTP caller: a status and a JSON body `{"code","message"}`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// The invocation's status, when the error is about a transition that does not apply.
    pub invocation_status: Option<durable_protocol::Status>,
}

impl ApiError {
    /// An error with a status, a machine-readable code and a message for people.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            invocation_status: None,
        }
    }

    /// 409 `invalid_transition`: what was asked does not apply to an invocation in `status`.
    pub fn invalid_transition(
        status: durable_protocol::Status,
        message: impl Into<String>,
    ) -> Self {
        Self {
            invocation_status: Some(status),
            ..Self::new(409, "invalid_transition", message)
        }
    }

    /// 400 with code `bad_request`-like specifics.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    /// 404.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(404, code, message)
    }

    /// The HTTP response.
    pub fn response(&self) -> FunctionUrlResponse {
        FunctionUrlResponse::json(
            self.status,
            &ErrorBody {
                code: self.code,
                message: &self.message,
                status: self.invocation_status.map(durable_protocol::Status::as_str),
            },
        )
    }
}

/// The body of every error answer: a code to match on and a message for people.
#[derive(Debug, serde::Serialize)]
pub struct ErrorBody<'a> {
    pub code: &'a str,
    pub message: &'a str,
    /// The invocation's current status (a `409` for a transition that does not apply).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'a str>,
}

impl From<OrchestratorError> for ApiError {
    fn from(e: OrchestratorError) -> Self {
        tracing::error!(error = %e, "internal error");
        ApiError::new(500, "internal", e.to_string())
    }
}
