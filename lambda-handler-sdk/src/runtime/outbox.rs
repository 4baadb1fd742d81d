//! The outbox worker of an attempt: it records calls, sends and state changes in program order
//! and then tells the orchestrator to start each child (an async `dispatch`).

use crate::runtime::attempt::{Abort, Attempt};
use crate::runtime::divergence::mismatch;
use crate::runtime::ops::{Dispatcher, Op};
use durable_protocol::{EntryKind, TerminalFailure};
use durable_store::Appended;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Records and dispatches ops one after the other, in the order they were created.
pub(crate) async fn outbox_worker(
    inv: Arc<Attempt>,
    dispatcher: Arc<dyn Dispatcher>,
    mut ops: mpsc::UnboundedReceiver<Op>,
) {
    while let Some(op) = ops.recv().await {
        let (index, kind, done) = match op {
            Op::Flush(done) => {
                let _ = done.send(());
                continue;
            }
            Op::Record { index, kind, done } => (index, kind, done),
        };
        let kind = match offload_input(&inv, index, kind).await {
            Ok(kind) => kind,
            Err(abort) => return inv.abort(abort).await,
        };
        let dispatched = match inv.recorded(index) {
            Some(recorded) if !recorded.kind.same_command(&kind) => {
                return inv
                    .abort(Abort::Fatal(mismatch(index, &recorded.kind, &kind)))
                    .await;
            }
            Some(recorded) => recorded.dispatched,
            None => match inv.append(&inv.entry(index, kind.clone())).await {
                Ok(Appended::Written) => false,
                Ok(Appended::AlreadyRecorded(recorded)) if !inv.same_operation(&recorded) => {
                    return inv.abort(inv.taken(&recorded)).await;
                }
                Ok(Appended::AlreadyRecorded(recorded)) if recorded.kind.same_command(&kind) => {
                    if let Some(c) = recorded.completion.clone() {
                        inv.learn_completion(index, c);
                    }
                    recorded.dispatched
                }
                Ok(Appended::AlreadyRecorded(recorded)) => {
                    return inv
                        .abort(Abort::Fatal(mismatch(index, &recorded.kind, &kind)))
                        .await;
                }
                Err(e) => {
                    let message = format!(
                        "could not record {} at journal entry {index}: {e}",
                        kind.label()
                    );
                    return inv.abort(Abort::retry(message)).await;
                }
            },
        };
        write_through(&inv, index, &kind).await;
        // Not yet dispatched (or not known to be): dispatching again is harmless, the child is
        // created with a conditional put. State changes are recorded (and a workflow's run
        // writes them through).
        if !dispatched && kind.child().is_some() {
            inv.stop_if_aborted().await;
            durable_protocol::crash_point!("sdk.outbox.recorded");
            if let Err(e) = dispatcher.dispatch(&inv.id, index).await {
                let message = format!("could not dispatch {} {}: {e}", kind.label(), kind.name());
                return inv.abort(Abort::retry(message)).await;
            }
        }
        let _ = done.send(());
        inv.op_done();
    }
}

/// A workflow's `run` writes each state change through as it is recorded (see
/// `Keyed::writes_through`); a replayed change was written by the attempt that recorded it.
/// A failed write is only logged: the finish writes the final state anyway.
async fn write_through(inv: &Attempt, index: u32, kind: &EntryKind) {
    let Some(keyed) = inv.keyed.get().filter(|k| k.writes_through) else {
        return;
    };
    if inv.recorded(index).is_some() {
        return;
    }
    let changes: Vec<(String, Option<&serde_json::Value>)> = match kind {
        EntryKind::SetState { name, value } => vec![(name.clone(), Some(value))],
        EntryKind::ClearState { name } => vec![(name.clone(), None)],
        EntryKind::ClearAllState => match inv.sink.state_names(&keyed.object).await {
            Ok(names) => names.into_iter().map(|n| (n, None)).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "could not list the state to clear it through");
                return;
            }
        },
        _ => return,
    };
    for (name, value) in changes {
        if let Err(e) = inv
            .sink
            .write_through(
                &keyed.object,
                &name,
                value,
                index,
                (&inv.id, inv.writer.epoch),
            )
            .await
        {
            tracing::warn!(error = %e, state = %name, "could not write a workflow's state change through; it appears when the run finishes");
        }
    }
}

/// Moves a large call or send input to S3 (the entry keeps a reference). On replay the entry is
/// recorded already (and compared by target only), so nothing is stored again. A too-large input
/// ends the invocation: it is a bug in the handler, not something a retry fixes.
async fn offload_input(inv: &Attempt, index: u32, mut kind: EntryKind) -> Result<EntryKind, Abort> {
    let (EntryKind::Call { target, input, .. } | EntryKind::Send { target, input, .. }) = &mut kind
    else {
        return Ok(kind);
    };
    if inv.recorded(index).is_some() {
        return Ok(kind);
    }
    *input = match inv
        .offload(&format!("j{index}"), std::mem::take(input))
        .await
    {
        Ok(v) => v,
        Err(durable_store::PayloadError::TooLarge { size, max }) => {
            return Err(Abort::Fatal(TerminalFailure::new(
                413,
                format!(
                    "the input of {} is {size} bytes, over the limit of {max}",
                    target.display()
                ),
            )))
        }
        Err(e) => return Err(Abort::retry(format!("could not store a call input: {e}"))),
    };
    Ok(kind)
}
