//! The messages between the orchestrator and a handler Lambda.

use crate::ids::{HandlerName, InvocationId, ObjectKey, ServiceName};
use crate::journal::{JournalEntry, TerminalFailure};
use serde::{Deserialize, Serialize};

/// Version of this contract; a handler answering discovery with another version is refused.
pub const PROTOCOL_VERSION: u32 = 1;

/// What the orchestrator sends to a handler Lambda.
// One value per Lambda call, serialized at once: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HandlerRequest {
    /// Run (or replay) one invocation.
    Invoke(InvokeRequest),
    /// Describe the services this Lambda serves.
    Discover,
}

/// One push of an invocation, with the journal so far so the handler can replay to where it was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvokeRequest {
    /// Listed first so that it leads the serialized payload (handy in logs).
    pub invocation_id: InvocationId,
    /// Bumped by every new attempt; entries written by an attempt carry it.
    pub epoch: u64,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub service: ServiceName,
    pub handler: HandlerName,
    pub input: serde_json::Value,
    /// The key of the invocation's service: tags the awakeable ids it hands out and proves the
    /// control events it sends (see [`crate::auth`]).
    pub service_key: crate::auth::ServiceKey,
    /// Every recorded entry, in index order (steps run concurrently may leave gaps).
    pub journal: Vec<JournalEntry>,
    /// Consecutive failed attempts of the step the previous attempts stopped at, if any:
    /// lets a step's retry policy count attempts across Lambda calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_failures: Option<StepFailures>,
    /// The DynamoDB table that holds the journal; the SDK appends new entries to it directly.
    pub table: String,
    /// The orchestrator function to send `dispatch` events to (calls and sends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orchestrator: Option<String>,
    /// The S3 bucket of large values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// When values go to S3, and the largest value allowed.
    #[serde(default)]
    pub limits: crate::payload::Limits,
    /// The journal was too large to push: read it from the table.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub journal_in_store: bool,
    /// The object or workflow key, for keyed handlers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<ObjectKey>,
    /// The kind of a keyed handler (what its context may do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler_kind: Option<HandlerKind>,
    /// The object's state, when it is small enough to send along.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<EagerState>,
    /// The TTL (epoch seconds) of the entries this attempt appends: set while the invocation is
    /// in its first attempt, so that a run that finishes at once needs no second write per
    /// entry to expire. `None`: entries are kept until the orchestrator expires them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal_expires_at: Option<u64>,
    /// An operator cancelled the invocation and the handler has not seen it yet: the next new
    /// step records `409 cancelled` instead of running (see `TerminalFailure::cancelled`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancel: bool,
    /// The W3C `traceparent` this invocation runs in (its caller's trace): the handler's spans
    /// carry its trace id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The request headers the handler sees (`ctx.headers()`): its HTTP caller's, or its
    /// caller's for a child.
    #[serde(default, skip_serializing_if = "crate::Headers::is_empty")]
    pub headers: crate::Headers,
}

impl InvokeRequest {
    /// The first push of a new invocation: epoch and attempt 1, an empty journal, no object,
    /// default limits, no orchestrator to send events to. Set the rest with struct update
    /// syntax (`InvokeRequest { epoch: 4, ..InvokeRequest::new(..) }`) or the `with_` methods.
    pub fn new(
        invocation_id: InvocationId,
        service_key: crate::auth::ServiceKey,
        handler: HandlerName,
        input: serde_json::Value,
        table: impl Into<String>,
    ) -> Self {
        Self {
            service: invocation_id.service(),
            invocation_id,
            epoch: 1,
            attempt: 1,
            handler,
            input,
            service_key,
            journal: Vec::new(),
            step_failures: None,
            table: table.into(),
            orchestrator: None,
            bucket: None,
            limits: crate::payload::Limits::default(),
            journal_in_store: false,
            key: None,
            handler_kind: None,
            state: None,
            journal_expires_at: None,
            cancel: false,
            traceparent: None,
            headers: crate::Headers::default(),
        }
    }

    /// The same push with `journal` to replay.
    #[must_use]
    pub fn with_journal(mut self, journal: Vec<JournalEntry>) -> Self {
        self.journal = journal;
        self
    }

    /// The same push as attempt `attempt` at `epoch`.
    #[must_use]
    pub fn at(mut self, epoch: u64, attempt: u32) -> Self {
        self.epoch = epoch;
        self.attempt = attempt;
        self
    }
}

/// An object's state as pushed with an invocation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EagerState {
    /// Values by state key.
    pub values: std::collections::BTreeMap<String, serde_json::Value>,
    /// `values` holds every key: a key not in it has no value. Otherwise the SDK reads keys
    /// that are not in it from the table.
    pub complete: bool,
}

/// How one push ended, as answered by the SDK.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum HandlerResponse {
    /// The handler returned this output.
    Completed {
        output: serde_json::Value,
        /// The journal entry of the handler's last step when nothing durable came after it:
        /// recorded with the outcome instead of in a write of its own.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tail: Option<JournalEntry>,
    },
    /// The handler failed terminally: no retry.
    Failed {
        failure: TerminalFailure,
        /// As for `Completed`: the last step's entry, recorded with the outcome.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tail: Option<JournalEntry>,
    },
    /// The attempt failed and should be retried by the orchestrator (journal kept).
    Retryable {
        message: String,
        /// The journal index of the step that failed, when a step failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<u32>,
        /// The delay the step's retry policy asks for before the next attempt.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    /// The handler waits for entries that are not complete: push it again when one completes.
    Suspended {
        /// The journal indexes it waits on (any one completing resumes it).
        waiting_on: Vec<u32>,
        /// The timers among them, with their wake times, for the orchestrator to schedule.
        #[serde(default)]
        timers: Vec<Timer>,
    },
}

/// A durable timer the orchestrator must fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timer {
    /// The sleep entry's index.
    pub index: u32,
    /// When it fires (ms since the Unix epoch).
    pub wake_at_ms: u64,
}

/// How many attempts in a row failed at the same step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepFailures {
    /// The journal index of the step.
    pub index: u32,
    /// Failed attempts so far (1 after the first failure).
    pub count: u32,
}

/// The kinds of services (virtual objects and workflows come with keyed state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKind {
    /// Stateless handlers, any number running at once.
    Service,
    /// Addressed by key, with state per key; exclusive handlers of one key run one at a time.
    Object,
    /// Addressed by key; `run` executes once per key, shared handlers interact with it.
    Workflow,
}

/// What a handler of an object or workflow may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandlerKind {
    /// One at a time per key, in arrival order; reads and writes state.
    Exclusive,
    /// Runs concurrently with anything; reads state only.
    Shared,
    /// A workflow's `run`: once per key; reads and writes state, awaits promises.
    Workflow,
}

impl HandlerKind {
    /// Whether the handler may change state (and so its changes are applied when it finishes).
    pub fn writes_state(self) -> bool {
        matches!(self, HandlerKind::Exclusive | HandlerKind::Workflow)
    }
}

/// `as_str`, `Display` and `FromStr` for a kind enum, with the names its serde form uses.
macro_rules! named_kind {
    ($kind:ident { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $kind {
            /// The name stored and shown for it (its serde name).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($kind::$variant => $name,)*
                }
            }
        }

        impl std::fmt::Display for $kind {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $kind {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok($kind::$variant),)*
                    other => Err(format!(concat!("unknown ", stringify!($kind), " {:?}"), other)),
                }
            }
        }
    };
}

named_kind!(ServiceKind {
    Service => "service",
    Object => "object",
    Workflow => "workflow",
});

named_kind!(HandlerKind {
    Exclusive => "exclusive",
    Shared => "shared",
    Workflow => "workflow",
});

/// One handler of a service, as discovered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandlerDescriptor {
    pub name: HandlerName,
    /// Set for handlers of objects and workflows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<HandlerKind>,
}

/// One service served by a handler Lambda.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceDescriptor {
    pub name: ServiceName,
    pub kind: ServiceKind,
    pub handlers: Vec<HandlerDescriptor>,
}

/// The answer to [`HandlerRequest::Discover`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveryResponse {
    pub protocol_version: u32,
    pub services: Vec<ServiceDescriptor>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invoke_request_leads_with_the_invocation_id() {
        let id = InvocationId::random(&ServiceName::new("s").unwrap());
        let key = crate::auth::SigningKey::random().service_key(&id.service());
        let req = HandlerRequest::Invoke(InvokeRequest::new(
            id,
            key,
            HandlerName::new("h").unwrap(),
            serde_json::json!({}),
            "t",
        ));
        let text = serde_json::to_string(&req).unwrap();
        assert!(
            text.starts_with(r#"{"type":"invoke","invocation_id":"inv_"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<HandlerRequest>(&text).unwrap(), req);
    }

    #[test]
    fn kinds_are_named_as_serde_names_them() {
        for kind in [
            ServiceKind::Service,
            ServiceKind::Object,
            ServiceKind::Workflow,
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
            assert_eq!(kind.as_str().parse::<ServiceKind>(), Ok(kind));
        }
        for kind in [
            HandlerKind::Exclusive,
            HandlerKind::Shared,
            HandlerKind::Workflow,
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
            assert_eq!(kind.as_str().parse::<HandlerKind>(), Ok(kind));
        }
        assert!("actor".parse::<ServiceKind>().is_err());
    }

    #[test]
    fn responses_are_tagged_by_status() {
        let r = HandlerResponse::Failed {
            failure: TerminalFailure::new(409, "no"),
            tail: None,
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"status":"failed","failure":{"code":409,"message":"no"}})
        );
    }
}
