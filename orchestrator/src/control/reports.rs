//! What control events answer: a typed report of what each did.

use crate::error::OrchestratorError;
use durable_protocol::{HandlerName, InvocationId, ServiceName};
use serde::Serialize;

/// What a control event did to one invocation.
#[derive(Debug, Serialize)]
pub struct InvocationReport<'a> {
    pub invocation_id: &'a InvocationId,
    pub status: &'a str,
}

/// What a `dispatch` did: the child's state, or why there is none.
#[derive(Debug, Serialize)]
pub struct DispatchReport<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invocation_id: Option<&'a InvocationId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub child: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'a str>,
}

/// What a sweep did: the invocations it re-drove, and what each part looked at.
#[derive(Debug, Serialize)]
pub struct SweepReport {
    pub redriven: Vec<InvocationId>,
    /// Suspended invocations resumed for a completion whose completer died before telling them.
    pub resumed: Vec<InvocationId>,
    /// Queued exclusive invocations whose object's free lock was granted (to the first due).
    pub pumped: Vec<InvocationId>,
    /// Invocations whose lost `dispatch` of a call or send was sent again.
    pub dispatched: Vec<InvocationId>,
    /// Finished invocations cleaned up here (their driver died before it did).
    pub cleaned: Vec<InvocationId>,
    /// Callers told the result of a child whose driver died before telling them.
    pub callers_notified: Vec<InvocationId>,
    pub minutes: MinutesReport,
    pub leases: LeasesReport,
}

/// The minutes part of a sweep.
#[derive(Debug, Serialize)]
pub struct MinutesReport {
    pub from: u32,
    pub to: u32,
    /// The last minute it finished looking at (`None`: out of time before the first).
    pub swept_until: Option<u32>,
    pub looked_at: usize,
    pub promoted: usize,
}

/// The `leases` index part of a sweep.
#[derive(Debug, Serialize)]
pub struct LeasesReport {
    pub looked_at: usize,
    pub swept_until: u64,
}

/// What a `complete_awakeable` event did: `resolved`, `rejected`, `already_completed`,
/// `unknown_awakeable`.
#[derive(Debug, Serialize)]
pub struct AwakeableReport {
    pub awakeable_id: String,
    pub status: &'static str,
}

/// What a `complete_promise` event did: `resolved`, `rejected`, or why nothing was
/// (`already_completed`, `unknown_workflow`, ...).
#[derive(Debug, Serialize)]
pub struct PromiseReport<'a> {
    pub workflow: String,
    pub promise: &'a str,
    pub status: &'static str,
}

/// What a `cancel_child` event did: the child's status afterwards (`running` while its
/// cancellation is on the way, `cancelled`, or the status of a child that had finished), or
/// why there is no child (`unknown_entry`, `not_a_call_or_send`).
#[derive(Debug, Serialize)]
pub struct CancelChildReport<'a> {
    pub invocation_id: &'a InvocationId,
    pub entry: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub child: Option<&'a InvocationId>,
    pub status: &'a str,
}

/// What `register` recorded.
#[derive(Debug, Serialize)]
pub struct Registered {
    pub registered: Vec<RegisteredService>,
}

/// One service pinned to a handler version.
#[derive(Debug, Serialize)]
pub struct RegisteredService {
    pub service: ServiceName,
    pub function_arn: String,
    pub handlers: Vec<HandlerName>,
    /// How long its finished invocations are kept (seconds).
    pub retention_secs: u64,
}

/// A control event's report as JSON.
pub fn report(report: &impl Serialize) -> Result<serde_json::Value, OrchestratorError> {
    serde_json::to_value(report).map_err(|e| OrchestratorError::Protocol(e.to_string()))
}
