//! Errors handler authors return: terminal (recorded, never retried) or retryable.

use durable_protocol::TerminalFailure;
use std::fmt;

/// A failure that must not be retried: it is recorded in the journal and reaches the caller
/// (the ingress answers with its status code, 500 unless set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalError {
    code: u16,
    message: String,
}

impl TerminalError {
    /// A terminal error with status 500.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            code: TerminalFailure::INTERNAL,
            message: message.into(),
        }
    }

    /// The same error with another status code (kept within 400..=599).
    pub fn with_code(mut self, code: u16) -> Self {
        self.code = if (400..=599).contains(&code) {
            code
        } else {
            500
        };
        self
    }

    /// The status code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the invocation was cancelled (`409 cancelled`): what a handler sees at its next
    /// durable await after `POST /invocations/{id}/cancel`, and what a call returns when the
    /// callee was cancelled. Catch it to compensate; return it to end as `cancelled`.
    pub fn is_cancelled(&self) -> bool {
        TerminalFailure::from(self.clone()).is_cancelled()
    }

    /// Whether a call failed because its callee was killed (`409 killed`).
    pub fn is_killed(&self) -> bool {
        TerminalFailure::from(self.clone()).is_killed()
    }

    /// The error a cancelled handler returns to end as cancelled (`409 cancelled`).
    pub fn cancelled() -> Self {
        TerminalFailure::cancelled().into()
    }
}

impl fmt::Display for TerminalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "terminal error {}: {}", self.code, self.message)
    }
}

impl std::error::Error for TerminalError {}

impl From<TerminalFailure> for TerminalError {
    fn from(f: TerminalFailure) -> Self {
        Self {
            code: f.code,
            message: f.message,
        }
    }
}

impl From<TerminalError> for TerminalFailure {
    fn from(e: TerminalError) -> Self {
        TerminalFailure {
            code: e.code,
            message: e.message,
        }
    }
}

/// What a handler or a step closure may fail with. Any `std::error::Error` converts into a
/// retryable error (so `?` works); wrap a [`TerminalError`] to stop retries.
#[derive(Debug)]
pub struct HandlerError(pub(crate) ErrorKind);

#[derive(Debug)]
pub(crate) enum ErrorKind {
    Terminal(TerminalError),
    Retryable(String),
}

impl HandlerError {
    /// A retryable error with a message.
    pub fn retryable(message: impl Into<String>) -> Self {
        HandlerError(ErrorKind::Retryable(message.into()))
    }

    /// Whether this error stops retries.
    pub fn is_terminal(&self) -> bool {
        matches!(self.0, ErrorKind::Terminal(_))
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            ErrorKind::Terminal(t) => t.fmt(f),
            ErrorKind::Retryable(m) => write!(f, "retryable error: {m}"),
        }
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for HandlerError {
    fn from(err: E) -> Self {
        // A TerminalError passed through `?` keeps being terminal.
        let any: &dyn std::any::Any = &err;
        if let Some(t) = any.downcast_ref::<TerminalError>() {
            return HandlerError(ErrorKind::Terminal(t.clone()));
        }
        let mut message = err.to_string();
        let mut source = err.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        HandlerError(ErrorKind::Retryable(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_errors_stay_terminal_through_question_mark() {
        fn inner() -> Result<(), TerminalError> {
            Err(TerminalError::new("out of stock").with_code(409))
        }
        fn outer() -> Result<(), HandlerError> {
            inner()?;
            Ok(())
        }
        let err = outer().unwrap_err();
        assert!(err.is_terminal());
        assert_eq!(err.to_string(), "terminal error 409: out of stock");
    }

    #[test]
    fn other_errors_are_retryable_with_their_sources() {
        let io = std::io::Error::other("disk on fire");
        let err: HandlerError = io.into();
        assert!(!err.is_terminal());
        assert!(err.to_string().contains("disk on fire"));
    }

    #[test]
    fn codes_outside_error_range_become_500() {
        assert_eq!(TerminalError::new("x").with_code(200).code(), 500);
        assert_eq!(TerminalError::new("x").with_code(404).code(), 404);
    }
}
