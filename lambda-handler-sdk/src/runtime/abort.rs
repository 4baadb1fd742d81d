//! Ending an attempt early: why (retry, fatal failure, suspension), and the signal every
//! operation and the endpoint share (the first reason wins).

use durable_protocol::{TerminalFailure, Timer};
use std::time::Duration;
use tokio::sync::watch;

/// Why an attempt stopped before the handler returned.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Abort {
    /// Retry the invocation later; the journal is kept.
    Retry {
        message: String,
        step: Option<u32>,
        retry_after: Option<Duration>,
    },
    /// The attempt cannot go on (e.g. replay diverged from the journal): fail the invocation.
    Fatal(TerminalFailure),
    /// Everything the handler waits for is incomplete: end the attempt until one completes.
    Suspend {
        waiting_on: Vec<u32>,
        timers: Vec<Timer>,
    },
}

impl Abort {
    /// Retry the invocation after the policy's backoff, blaming no step.
    pub(crate) fn retry(message: impl Into<String>) -> Self {
        Abort::Retry {
            message: message.into(),
            step: None,
            retry_after: None,
        }
    }
}

/// The attempt's abort signal: set once, awaited by the endpoint.
pub(crate) struct AbortSignal(watch::Sender<Option<Abort>>);

impl AbortSignal {
    pub(crate) fn new() -> Self {
        Self(watch::channel(None).0)
    }

    /// Sets the reason unless one is set already.
    pub(crate) fn raise(&self, reason: Abort) {
        self.0.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        });
    }

    /// Resolves once a reason is set.
    pub(crate) async fn raised(&self) -> Abort {
        let mut rx = self.0.subscribe();
        let reason = rx
            .wait_for(Option::is_some)
            .await
            .map(|r| r.clone())
            .ok()
            .flatten();
        reason.unwrap_or_else(|| {
            Abort::Fatal(TerminalFailure::new(
                TerminalFailure::INTERNAL,
                "abort channel closed",
            ))
        })
    }

    /// The reason, if one is set.
    pub(crate) fn reason(&self) -> Option<Abort> {
        self.0.borrow().clone()
    }
}
