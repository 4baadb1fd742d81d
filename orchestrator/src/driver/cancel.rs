//! Cooperative cancellation: the handler sees `409 cancelled` at its next durable await and may
//! compensate. A suspended invocation is woken with what it waits on completed by the
//! cancellation; a running one is told when it next suspends (or by its next push); a queued one
//! never ran and leaves its object's inbox. Cancelling also cancels the children it awaits and
//! the exclusive invocations it sent that still wait in an inbox.

use crate::driver::{LambdaCall, LEASE_MARGIN};
use crate::error::OrchestratorError;
use crate::services::Services;
use durable_protocol::crash_point;
use durable_protocol::{EntryKind, InvocationId, Status, StepResult, TerminalFailure};
use durable_store::invocations::{Invocation, Outcome};
use durable_store::Completer;

/// How often a transition is tried again when it raced with the invocation's driver.
pub(crate) const TRANSITION_ROUNDS: usize = 8;

/// What asking for a transition found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// There is no such invocation.
    Unknown,
    /// Done (or asked before): the invocation's status now.
    Applied(Status),
    /// It does not apply to an invocation in this status.
    Refused(Status),
}

impl Services {
    /// Cancels invocation `id` cooperatively (see the module's doc). Asking again before it
    /// finished changes nothing; a finished invocation is refused.
    pub async fn cancel(
        &self,
        id: &InvocationId,
        call: &LambdaCall,
    ) -> Result<Transition, OrchestratorError> {
        for _ in 0..TRANSITION_ROUNDS {
            let Some(mut inv) = self.invocations.get(id).await? else {
                return Ok(Transition::Unknown);
            };
            let applied = match inv.status {
                s if s.is_finished() => return Ok(Transition::Refused(s)),
                Status::Queued => {
                    let failure = TerminalFailure::cancelled();
                    if self
                        .objects
                        .leave_inbox(&inv, &failure, self.retention(&inv))
                        .await?
                    {
                        crash_point!("cancel.queued.left");
                        self.notify_caller(&inv, &Outcome::Failed(failure)).await?;
                        return Ok(Transition::Applied(Status::Cancelled));
                    }
                    false
                }
                Status::Running if inv.cancel_requested.is_some() => true,
                Status::Running => self.invocations.request_cancel(&mut inv).await?,
                Status::Suspended => {
                    let waiting_on = inv.waiting_on.clone();
                    let lease = call.deadline_ms + LEASE_MARGIN.as_millis() as u64;
                    if self.invocations.wake_to_cancel(&mut inv, lease).await? {
                        crash_point!("cancel.woken");
                        self.deliver_cancel(&mut inv, &waiting_on, call).await?;
                        self.hand_off(&inv).await?;
                        true
                    } else {
                        false
                    }
                }
                Status::Paused => {
                    if self.invocations.unpause(&mut inv, None, true).await? {
                        self.send_event(&self.signing.drive(inv.id.clone())).await?;
                        true
                    } else {
                        false
                    }
                }
                _ => unreachable!("every live status is handled"),
            };
            if applied {
                tracing::info!(%id, "cancellation requested");
                return Ok(Transition::Applied(Status::Running));
            }
        }
        Err(OrchestratorError::Protocol(format!(
            "could not cancel {id}: its status kept changing"
        )))
    }

    /// Delivers a pending cancellation to an owned (running) invocation whose handler waits on
    /// `waiting_on`: children it awaits are cancelled, then every entry it awaits is completed
    /// with `409 cancelled` and the delivery is recorded. A journal that carries the
    /// cancellation already (a step recorded it) is only marked delivered.
    pub(crate) async fn deliver_cancel(
        &self,
        inv: &mut Invocation,
        waiting_on: &[u32],
        call: &LambdaCall,
    ) -> Result<(), OrchestratorError> {
        let journal = self.journal.load(&inv.id).await?;
        if !journal
            .iter()
            .any(durable_protocol::JournalEntry::carries_cancellation)
        {
            self.cancel_children(&inv.id, &journal, waiting_on, call)
                .await?;
            let cancelled = StepResult::Failure(TerminalFailure::cancelled());
            for entry in journal
                .iter()
                .filter(|e| waiting_on.contains(&e.index) && e.completion.is_none())
            {
                self.journal
                    .complete(
                        &inv.id,
                        entry.index,
                        entry.kind.tag(),
                        &cancelled,
                        Completer::Own,
                    )
                    .await?;
            }
        }
        crash_point!("cancel.delivered.before");
        self.invocations.cancel_delivered(inv).await?;
        tracing::info!(id = %inv.id, ?waiting_on, "cancellation delivered");
        Ok(())
    }

    /// Cancels the children of the calls among `waiting_on`, and the children of sends that
    /// still wait in an object's inbox.
    async fn cancel_children(
        &self,
        parent: &durable_protocol::InvocationId,
        journal: &[durable_protocol::JournalEntry],
        waiting_on: &[u32],
        call: &LambdaCall,
    ) -> Result<(), OrchestratorError> {
        for entry in journal {
            let (child, queued_only) = match &entry.kind {
                // A shared child (an idempotent call's, a workflow's run) is not this one's.
                EntryKind::Call { .. }
                    if waiting_on.contains(&entry.index) && entry.completion.is_none() =>
                {
                    match entry.kind.owned_call_child(parent, entry.index) {
                        Some(child) => (child, false),
                        None => continue,
                    }
                }
                EntryKind::Send { child, target, .. } if target.key.is_some() => (child, true),
                _ => continue,
            };
            if queued_only {
                match self.invocations.get(child).await? {
                    Some(c) if c.status == Status::Queued => {}
                    _ => continue,
                }
            }
            Box::pin(self.cancel(child, call)).await?;
        }
        Ok(())
    }
}
