//! The read API's bodies (`GET /invocations`, `GET /invocations/{id}`, `GET
//! /objects/{service}/{key}`): serialized by the orchestrator, read by the CLI, the console and
//! the tests. Times are ms since the Unix epoch.

use crate::{InvocationId, TerminalFailure};
use serde::{Deserialize, Serialize};

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One invocation in a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvocationSummary {
    pub invocation_id: InvocationId,
    pub service: String,
    pub handler: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub status: String,
    pub created_at: u64,
    pub updated_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<u64>,
    /// From creation to completion, or to now for one that is not finished.
    pub duration_ms: u64,
    pub attempt: u32,
    /// The invocation that called it (children of `ctx.call`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<InvocationId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// A page of `GET /invocations`, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvocationPage {
    pub invocations: Vec<InvocationSummary>,
    /// Pass as `cursor` for the next page; absent on the last one. A page may hold fewer than
    /// `limit` invocations (even none) and still have a cursor, when its time ran out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// The window the listing covers (`since`, `until`).
    pub since: u64,
    pub until: u64,
}

/// A value of the journal or the metadata: inline, or a reference to a large one in S3.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum ValueView {
    Inline {
        value: serde_json::Value,
    },
    /// Kept in S3; `url` downloads it for a while.
    Stored {
        size: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
    },
}

/// An invocation's call or send to another handler, and how that child is doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildView {
    pub invocation_id: InvocationId,
    /// The journal entry that made it.
    pub entry: u32,
    /// `call` or `send`.
    pub kind: String,
    /// `service/handler` or `service/key/handler`.
    pub target: String,
    /// `not_created` until the orchestrator made it.
    pub status: String,
}

/// One journal entry, as a row of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineRow {
    pub index: u32,
    /// The operation's place (`3`, `2.0.1` inside scopes).
    pub op: String,
    /// `run`, `sleep`, `awakeable`, `call`, `send`, `scope`, `select`, `set_state`, ...
    pub kind: String,
    pub name: String,
    /// When it started (a step's closure, a wait's creation), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<u64>,
    /// When it ended (recorded, fired, completed), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// The epoch of the attempt that wrote it (epochs move on with every attempt and with
    /// every hand-over between orchestrator calls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// How many attempts failed at this entry before it was recorded (from the invocation's
    /// kept attempt errors).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ValueView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<TerminalFailure>,
    /// A sleep's wake time, a delayed send's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child: Option<ChildView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awakeable_id: Option<String>,
    /// It waits for a completion that has not arrived.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
}

/// Why an attempt ended in a retry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptErrorView {
    pub attempt: u32,
    pub at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<u32>,
    pub message: String,
}

/// `GET /invocations/{id}`: everything about one invocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvocationDetail {
    #[serde(flatten)]
    pub summary: InvocationSummary,
    /// The handler version it is pinned to.
    pub function_arn: String,
    /// The W3C trace it runs in (its caller's, else one derived from its id).
    pub trace_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler_kind: Option<String>,
    pub input: ValueView,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<ValueView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<TerminalFailure>,
    /// When its items expire (retention), once it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// How long it is kept once finished (seconds): its service's retention when it started.
    #[serde(default)]
    pub retention_secs: u64,
    /// While it waits for a retry: when the next attempt is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempt_errors: Vec<AttemptErrorView>,
    /// While suspended: the entries whose completion resumes it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting_on: Vec<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_requested_at: Option<u64>,
    /// The calling invocation's entry this one's result completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_entry: Option<u32>,
    /// Other callers that wait for its result (a shared child: an idempotent call's, a
    /// workflow's run), as `<invocation>:<entry>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiters: Vec<String>,
    pub children: Vec<ChildView>,
    pub timeline: Vec<TimelineRow>,
}

/// One state key of an object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateView {
    pub name: String,
    pub value: ValueView,
}

/// An exclusive invocation waiting for an object's lock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedView {
    pub invocation_id: InvocationId,
    /// When it may start (its arrival, or a delayed send's due time).
    pub due_at: u64,
}

/// `GET /objects/{service}/{key}`: an object's (or workflow's) state, lock and queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectView {
    pub service: String,
    pub key: String,
    pub state: Vec<StateView>,
    /// The exclusive invocation holding the lock, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_holder: Option<InvocationId>,
    pub queue: Vec<QueuedView>,
}
