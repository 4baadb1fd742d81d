//! The journal primitives every operation is built on: recording an entry (or adopting the one
//! a replay or a racing attempt recorded), waiting for an entry's completion, and the failure a
//! divergent replay gets.

use crate::error::TerminalError;
use crate::runtime::attempt::{Abort, Attempt};
use crate::runtime::divergence::mismatch;
use durable_protocol::{EntryKind, JournalEntry, StepResult, TerminalFailure};
use durable_store::Appended;
use serde::de::DeserializeOwned;
use std::sync::Arc;

fn decode<T: DeserializeOwned>(
    index: u32,
    result: StepResult,
) -> Result<Result<T, TerminalError>, TerminalFailure> {
    match result {
        StepResult::Failure(f) => Ok(Err(f.into())),
        StepResult::Value(v) => serde_json::from_value(v).map(Ok).map_err(|e| {
            TerminalFailure::new(
                TerminalFailure::NON_DETERMINISM,
                format!(
                    "the completion of journal entry {index} does not decode as {}: {e}",
                    std::any::type_name::<T>()
                ),
            )
        }),
    }
}

/// Writes `kind` at `index` unless replay recorded it already; returns the entry that holds.
pub(crate) async fn record(inv: &Attempt, index: u32, kind: EntryKind) -> JournalEntry {
    if let Some(recorded) = inv.recorded(index) {
        if !recorded.kind.same_command(&kind) {
            return inv
                .abort(Abort::Fatal(mismatch(index, &recorded.kind, &kind)))
                .await;
        }
        return recorded.clone();
    }
    let entry = inv.entry(index, kind);
    let _busy = inv.busy();
    match inv.append(&entry).await {
        Ok(Appended::Written) => entry,
        Ok(Appended::AlreadyRecorded(recorded)) if !inv.same_operation(&recorded) => {
            inv.abort(inv.taken(&recorded)).await
        }
        Ok(Appended::AlreadyRecorded(recorded)) => {
            if !recorded.kind.same_command(&entry.kind) {
                return inv
                    .abort(Abort::Fatal(mismatch(index, &recorded.kind, &entry.kind)))
                    .await;
            }
            if let Some(c) = recorded.completion.clone() {
                inv.learn_completion(index, c);
            }
            *recorded
        }
        Err(e) => {
            inv.abort(Abort::Retry {
                message: format!(
                    "could not record {} at journal entry {index}: {e}",
                    entry.kind.label()
                ),
                step: None,
                retry_after: None,
            })
            .await
        }
    }
}

/// The result of an entry completed from outside (awakeable, call): known already or waited
/// for, fetched from S3 if large, decoded (a result that does not decode is a divergence).
pub(crate) async fn await_entry<T: DeserializeOwned>(
    inv: Arc<Attempt>,
    index: u32,
) -> Result<T, TerminalError> {
    await_entry_until(inv, index, None).await
}

/// [`await_entry`] for an entry the orchestrator completes at `deadline` (ms) if nobody does
/// before: a suspension schedules a wake then.
pub(crate) async fn await_entry_until<T: DeserializeOwned>(
    inv: Arc<Attempt>,
    index: u32,
    deadline: Option<u64>,
) -> Result<T, TerminalError> {
    let result = match inv.completion(index) {
        Some(r) => r,
        None => inv.await_completion(index, deadline).await,
    };
    let result = match result {
        StepResult::Value(v) => StepResult::Value(inv.resolve(v).await),
        failure => failure,
    };
    match decode(index, result) {
        Ok(r) => r,
        Err(failure) => inv.abort(Abort::Fatal(failure)).await,
    }
}
