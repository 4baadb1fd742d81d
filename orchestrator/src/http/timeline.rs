//! `GET /invocations/{id}`: an invocation's metadata, its journal as a timeline (each entry
//! with its times, attempt, result or error), its caller and its children.

use crate::error::OrchestratorError;
use crate::http::listing::summary;
use crate::http::{ApiError, FunctionUrlResponse};
use crate::services::Services;
use durable_protocol::auth::Purpose;
use durable_protocol::clock::now_millis;
use durable_protocol::views::{
    AttemptErrorView, ChildView, InvocationDetail, TimelineRow, ValueView,
};
use durable_protocol::{AwakeableId, EntryKind, InvocationId, StepResult};
use durable_store::invocations::{Invocation, Outcome};
use durable_store::journal::Recorded;
use std::collections::HashMap;
use std::time::Duration;

/// How long the download URL of a large journal value works.
const VALUE_URL_LIFETIME: Duration = Duration::from_secs(15 * 60);

impl Services {
    /// Answers everything about invocation `id`.
    pub(crate) async fn describe(
        &self,
        id: &InvocationId,
    ) -> Result<FunctionUrlResponse, ApiError> {
        let inv = self.existing(id).await?;
        let mut journal = self
            .journal
            .load_recorded(id)
            .await
            .map_err(OrchestratorError::from)?;
        // The last step of a finished invocation is kept on its metadata item.
        if let Some(tail) = &inv.tail {
            if journal.iter().all(|r| r.entry.index != tail.index) {
                journal.push(Recorded {
                    entry: tail.clone(),
                    written_at: inv.times.completed_at,
                    epoch: Some(inv.epoch),
                });
                journal.sort_by_key(|r| r.entry.index);
            }
        }
        let children = self.children(&journal).await?;
        let mut timeline = Vec::with_capacity(journal.len());
        for r in &journal {
            timeline.push(self.row(&inv, r, &children).await);
        }
        let (output, failure) = match &inv.outcome {
            Some(Outcome::Completed(v)) => (Some(self.value_view(v).await), None),
            Some(Outcome::Failed(f)) => (None, Some(f.clone())),
            None => (None, None),
        };
        let detail = InvocationDetail {
            summary: summary(&inv, now_millis()),
            function_arn: inv.function_arn.clone(),
            trace_id: inv.trace.trace_id.clone(),
            handler_kind: inv.handler_kind.map(|k| k.as_str().to_owned()),
            input: self.value_view(&inv.input).await,
            output,
            failure,
            expires_at: inv.times.expires_at.map(|s| s * 1000),
            retention_secs: self.retention(&inv).as_secs(),
            next_attempt_at: inv.backoff_until.filter(|_| inv.outcome.is_none()),
            last_error: inv.last_error.clone(),
            attempt_errors: inv
                .attempt_errors
                .iter()
                .map(|e| AttemptErrorView {
                    attempt: e.attempt,
                    at: e.at,
                    entry: e.entry,
                    message: e.message.clone(),
                })
                .collect(),
            waiting_on: inv.waiting_on.clone(),
            cancel_requested_at: inv.cancel_requested,
            caller_entry: inv.caller.as_ref().map(|c| c.entry),
            waiters: inv
                .waiters
                .iter()
                .map(durable_store::invocations::Caller::encode)
                .collect(),
            children: {
                let mut kids: Vec<ChildView> = children.values().cloned().collect();
                kids.sort_by_key(|c| c.entry);
                kids
            },
            timeline,
        };
        Ok(FunctionUrlResponse::json(200, &detail))
    }

    /// The children of the journal's calls and sends, by entry, with their status.
    async fn children(&self, journal: &[Recorded]) -> Result<HashMap<u32, ChildView>, ApiError> {
        let made: Vec<(u32, &'static str, String, InvocationId)> = journal
            .iter()
            .filter_map(|r| match &r.entry.kind {
                EntryKind::Call { target, child, .. } => {
                    Some((r.entry.index, "call", target.display(), child.clone()))
                }
                EntryKind::Send { target, child, .. } => {
                    Some((r.entry.index, "send", target.display(), child.clone()))
                }
                _ => None,
            })
            .collect();
        if made.is_empty() {
            return Ok(HashMap::new());
        }
        let ids: Vec<InvocationId> = made.iter().map(|m| m.3.clone()).collect();
        let found: HashMap<InvocationId, Invocation> = self
            .invocations
            .get_many(&ids)
            .await
            .map_err(OrchestratorError::from)?
            .into_iter()
            .map(|i| (i.id.clone(), i))
            .collect();
        Ok(made
            .into_iter()
            .map(|(entry, kind, target, id)| {
                let status = found
                    .get(&id)
                    .map_or("not_created", |i| i.status.as_str())
                    .to_owned();
                (
                    entry,
                    ChildView {
                        invocation_id: id,
                        entry,
                        kind: kind.to_owned(),
                        target,
                        status,
                    },
                )
            })
            .collect())
    }

    /// A value as the read API shows it: inline, or the size and a download URL of one in S3.
    pub(crate) async fn value_view(&self, value: &serde_json::Value) -> ValueView {
        match durable_protocol::payload::as_ref(value) {
            None => ValueView::Inline {
                value: value.clone(),
            },
            Some(r) => ValueView::Stored {
                size: r.size,
                url: self
                    .payloads
                    .presigned_url(&r, VALUE_URL_LIFETIME)
                    .await
                    .ok(),
            },
        }
    }

    /// One timeline row.
    async fn row(
        &self,
        inv: &Invocation,
        r: &Recorded,
        children: &HashMap<u32, ChildView>,
    ) -> TimelineRow {
        let e = &r.entry;
        let mut row = TimelineRow {
            index: e.index,
            op: e.op_path().to_string(),
            kind: e.kind.tag().as_str().to_owned(),
            name: e.kind.name().into_owned(),
            started_at: None,
            ended_at: None,
            duration_ms: None,
            epoch: r.epoch,
            retries: inv
                .attempt_errors
                .iter()
                .filter(|a| a.entry == Some(e.index))
                .count() as u32,
            result: None,
            error: None,
            wake_at: None,
            child: children.get(&e.index).cloned(),
            awakeable_id: None,
            pending: false,
        };
        let outcome = match &e.kind {
            EntryKind::Run { result, .. } | EntryKind::Scope { result, .. } => {
                row.started_at = e.started_at_ms;
                row.ended_at = r.written_at;
                Some(result.clone())
            }
            EntryKind::Started { attempt, .. } => {
                // A try that started and has no result shows as pending: interrupted, or
                // running now.
                row.started_at = e.started_at_ms;
                row.ended_at = e.completed_at_ms;
                row.pending = e.completion.is_none();
                row.retries = row.retries.max(attempt.saturating_sub(1));
                e.completion.clone()
            }
            EntryKind::Sleep { wake_at_ms, .. } => {
                row.wake_at = Some(*wake_at_ms);
                self.waited(&mut row, r)
            }
            EntryKind::Awakeable { .. } => {
                let key = self.signing.invocation_key(&inv.id);
                row.awakeable_id = Some(
                    AwakeableId {
                        invocation: inv.id.clone(),
                        index: e.index,
                        tag: key.tag(Purpose::Awakeable, e.index),
                    }
                    .to_string(),
                );
                self.waited(&mut row, r)
            }
            EntryKind::Call { .. } | EntryKind::Promise { .. } => self.waited(&mut row, r),
            EntryKind::Send { due_at_ms, .. } => {
                row.started_at = r.written_at;
                row.ended_at = r.written_at;
                row.wake_at = *due_at_ms;
                None
            }
            EntryKind::Select { of, winner } => {
                row.ended_at = r.written_at;
                Some(StepResult::Value(
                    serde_json::json!({"of": of, "winner": winner}),
                ))
            }
            EntryKind::SetState { value, .. } => {
                row.ended_at = r.written_at;
                Some(StepResult::Value(value.clone()))
            }
            EntryKind::GetState { value, .. } => {
                row.ended_at = r.written_at;
                value.clone().map(StepResult::Value)
            }
            EntryKind::GetStateKeys { keys } => {
                row.ended_at = r.written_at;
                Some(StepResult::Value(serde_json::json!(keys)))
            }
            EntryKind::PeekPromise { result, .. } => {
                row.ended_at = r.written_at;
                result.clone()
            }
            EntryKind::CompletePromise { result, .. } => {
                row.ended_at = r.written_at;
                Some(result.clone())
            }
            EntryKind::ClearState { .. } | EntryKind::ClearAllState => {
                row.ended_at = r.written_at;
                None
            }
        };
        match outcome {
            Some(StepResult::Value(v)) => row.result = Some(self.value_view(&v).await),
            Some(StepResult::Failure(f)) => row.error = Some(f),
            None => {}
        }
        if let (Some(start), Some(end)) = (row.started_at, row.ended_at) {
            row.duration_ms = Some(end.saturating_sub(start));
        }
        row
    }

    /// The times of an entry that waits for a completion (a sleep, an awakeable, a call, a
    /// promise): from its recording to its completion; its completion is its outcome.
    fn waited(&self, row: &mut TimelineRow, r: &Recorded) -> Option<StepResult> {
        row.started_at = r.written_at;
        row.ended_at = r.entry.completed_at_ms;
        row.pending = r.entry.completion.is_none();
        r.entry.completion.clone()
    }
}
