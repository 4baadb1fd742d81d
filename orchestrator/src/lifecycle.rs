//! What an operator may do to an invocation besides cancelling it (see
//! [`crate::driver::cancel`]): kill it, pause and resume it, retry it now, restart it from a
//! journal entry. Each decision is one conditional write on the metadata item's status and
//! epoch; a write that races with the invocation's driver is tried again on a fresh read.

use crate::driver::cancel::TRANSITION_ROUNDS;
use crate::driver::{LambdaCall, Transition};
use crate::error::OrchestratorError;
use crate::services::Services;
use durable_protocol::crash_point;
use durable_protocol::{HandlerKind, InvocationId, Status, TerminalFailure};
use durable_store::invocations::{Ending, Invocation, Outcome};
use durable_store::JournalStore;

/// Which version a resumed invocation runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    /// The version its service is registered with now.
    Current,
    /// This version of the handler Lambda it ran on (`7`).
    Number(String),
}

/// Why a restart is refused although the invocation is in a status that allows one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restart {
    /// Restarted from this entry (entries before it are kept and replayed).
    From { entry: u32, deleted: usize },
    /// There is no such invocation.
    Unknown,
    /// Not in a status a restart applies to.
    Refused(Status, String),
    /// The entry asked for is past the end of its journal.
    BadEntry { asked: u32, entries: u32 },
}

impl Services {
    /// Kills invocation `id`: no more handler code runs; it fails with `409 killed`, its
    /// object's lock is handed on, its caller gets the failure, the children it awaits are
    /// killed, and its schedules are deleted. A finished invocation is refused.
    pub async fn kill(
        &self,
        id: &InvocationId,
        call: &LambdaCall,
    ) -> Result<Transition, OrchestratorError> {
        let outcome = Outcome::Failed(TerminalFailure::killed());
        for _ in 0..TRANSITION_ROUNDS {
            let Some(inv) = self.invocations.get(id).await? else {
                return Ok(Transition::Unknown);
            };
            let has_payloads = match inv.status {
                s if s.is_finished() => return Ok(Transition::Refused(s)),
                Status::Queued => {
                    if !self
                        .objects
                        .leave_inbox(&inv, &TerminalFailure::killed(), self.retention(&inv))
                        .await?
                    {
                        continue;
                    }
                    false
                }
                _ if inv.handler_kind.is_some_and(HandlerKind::writes_state) => {
                    // State changes of a killed handler are dropped; the lock moves on.
                    let finished = self
                        .objects
                        .finish(
                            &inv,
                            &outcome,
                            None,
                            self.retention(&inv),
                            &durable_protocol::StateDelta::default(),
                            Ending::Stopped,
                        )
                        .await?;
                    let Some(finished) = finished else { continue };
                    if let Some(next) = finished.next {
                        crash_point!("kill.handover.before");
                        self.send_event(&self.signing.drive(next)).await?;
                    }
                    finished.has_payloads
                }
                _ => match self
                    .invocations
                    .stop(&inv, &outcome, self.retention(&inv))
                    .await?
                {
                    Some(has_payloads) => has_payloads,
                    None => continue,
                },
            };
            crash_point!("kill.stopped");
            tracing::warn!(%id, "killed");
            self.finished(&inv, &outcome);
            self.notify_caller(&inv, &outcome).await?;
            self.after_kill(&inv, has_payloads, call).await?;
            return Ok(Transition::Applied(Status::Killed));
        }
        Err(OrchestratorError::Protocol(format!(
            "could not kill {id}: its status kept changing"
        )))
    }

    /// What follows a kill (also done by the sweep when the killing call died first): the
    /// children it awaited are killed, its retry schedule and its timers' schedules deleted,
    /// its journal given its TTL and its payloads removed.
    pub(crate) async fn after_kill(
        &self,
        inv: &Invocation,
        has_payloads: bool,
        call: &LambdaCall,
    ) -> Result<(), OrchestratorError> {
        let journal = self.journal.load(&inv.id).await?;
        // A shared child (an idempotent call's, a workflow's run) runs on for its others.
        for entry in &journal {
            if let Some(child) = entry.kind.owned_call_child(&inv.id, entry.index) {
                if entry.completion.is_none() {
                    Box::pin(self.kill(child, call)).await?;
                }
            }
        }
        self.timers.delete_retry(&inv.id, inv.attempt).await;
        let kept = Invocation {
            journal_kept: true,
            ..inv.clone()
        };
        self.clean_up(&kept, has_payloads).await;
        Ok(())
    }

    /// Pauses a running or suspended invocation: it stops retrying and holds no lease until it
    /// is resumed (completions that arrive meanwhile are kept). Pausing a paused one is a no-op.
    pub async fn pause(&self, id: &InvocationId) -> Result<Transition, OrchestratorError> {
        for _ in 0..TRANSITION_ROUNDS {
            let Some(mut inv) = self.invocations.get(id).await? else {
                return Ok(Transition::Unknown);
            };
            match inv.status {
                Status::Paused => return Ok(Transition::Applied(Status::Paused)),
                Status::Running | Status::Suspended => {
                    if self
                        .invocations
                        .pause(&mut inv, "paused by an operator")
                        .await?
                    {
                        crash_point!("pause.paused");
                        // It may stay paused longer than its first attempt's entries' TTL.
                        self.journal.load_kept(id).await?;
                        self.timers.delete_retry(id, inv.attempt).await;
                        tracing::info!(%id, "paused");
                        return Ok(Transition::Applied(Status::Paused));
                    }
                }
                s => return Ok(Transition::Refused(s)),
            }
        }
        Err(OrchestratorError::Protocol(format!(
            "could not pause {id}: its status kept changing"
        )))
    }

    /// Resumes a paused invocation, optionally on another version of its handler (checked by
    /// asking it what it serves first); it is driven by a fresh call.
    pub async fn resume_paused(
        &self,
        id: &InvocationId,
        version: Option<&Version>,
    ) -> Result<Result<Transition, String>, OrchestratorError> {
        let Some(mut inv) = self.invocations.get(id).await? else {
            return Ok(Ok(Transition::Unknown));
        };
        if inv.status != Status::Paused {
            return Ok(Ok(Transition::Refused(inv.status)));
        }
        let function_arn = match version {
            None => None,
            Some(version) => match self.version_arn(&inv, version).await? {
                Ok(arn) => Some(arn),
                Err(why) => return Ok(Err(why)),
            },
        };
        if !self
            .invocations
            .unpause(&mut inv, function_arn.as_deref(), false)
            .await?
        {
            let now = self
                .invocations
                .get(id)
                .await?
                .map_or(Status::Paused, |i| i.status);
            return Ok(Ok(Transition::Refused(now)));
        }
        crash_point!("resume.unpaused");
        self.send_event(&self.signing.drive(id.clone())).await?;
        tracing::info!(%id, arn = %inv.function_arn, "resumed");
        Ok(Ok(Transition::Applied(Status::Running)))
    }

    /// The pinned ARN of `version` for `inv`, once that version said it serves its handler.
    async fn version_arn(
        &self,
        inv: &Invocation,
        version: &Version,
    ) -> Result<Result<String, String>, OrchestratorError> {
        let arn = match version {
            Version::Current => match self.registry.lookup(&inv.service).await? {
                Some(reg) => reg.function_arn,
                None => return Ok(Err(format!("{} is not registered", inv.service))),
            },
            Version::Number(v) => {
                durable_store::registry::pin_version(&inv.function_arn, Some(v.as_str()))
            }
        };
        let (discovery, executed) = match self.discover(&arn).await {
            Ok(found) => found,
            Err(e) => return Ok(Err(format!("version {arn} cannot be used: {e}"))),
        };
        let serves = discovery
            .services
            .iter()
            .any(|s| s.name == inv.service && s.handlers.iter().any(|h| h.name == inv.handler));
        if !serves {
            return Ok(Err(format!(
                "{arn} does not serve {}/{}",
                inv.service, inv.handler
            )));
        }
        Ok(Ok(durable_store::registry::pin_version(
            &arn,
            executed.as_deref(),
        )))
    }

    /// Retries a running invocation that waits out a backoff now (a paused one is resumed).
    pub async fn retry_now(&self, id: &InvocationId) -> Result<Transition, OrchestratorError> {
        let Some(mut inv) = self.invocations.get(id).await? else {
            return Ok(Transition::Unknown);
        };
        match inv.status {
            Status::Paused => {
                return Ok(self
                    .resume_paused(id, None)
                    .await?
                    .unwrap_or(Transition::Refused(Status::Paused)))
            }
            Status::Running
                if inv
                    .backoff_until
                    .is_some_and(|due| due > durable_protocol::clock::now_millis()) => {}
            s => return Ok(Transition::Refused(s)),
        }
        if !self.invocations.retry_now(&mut inv).await? {
            let now = self
                .invocations
                .get(id)
                .await?
                .map_or(inv.status, |i| i.status);
            return Ok(Transition::Refused(now));
        }
        crash_point!("retry.released");
        self.timers.delete_retry(id, inv.attempt).await;
        self.send_event(&self.signing.drive(id.clone())).await?;
        tracing::info!(%id, "retrying now");
        Ok(Transition::Applied(Status::Running))
    }

    /// Restarts a failed, cancelled, killed or paused invocation from journal entry `from`
    /// (default: the entry that failed, else the end of its journal): the entries before it are
    /// kept and replayed, the rest deleted; it runs again as the next attempt of the same id.
    pub async fn restart(
        &self,
        id: &InvocationId,
        from: Option<u32>,
    ) -> Result<Restart, OrchestratorError> {
        let Some(mut inv) = self.invocations.get(id).await? else {
            return Ok(Restart::Unknown);
        };
        let restartable = matches!(
            inv.status,
            Status::Failed | Status::Cancelled | Status::Killed | Status::Paused
        );
        if !restartable {
            return Ok(Restart::Refused(
                inv.status,
                format!(
                    "{id} is {}; only failed, cancelled, killed or paused invocations restart",
                    inv.status
                ),
            ));
        }
        if inv.status.is_finished() {
            if inv.handler_kind.is_some_and(HandlerKind::writes_state) {
                return Ok(Restart::Refused(
                    inv.status,
                    format!(
                        "{id} ran on an object or workflow whose lock and state moved on when it \
                         finished; restart it while it is paused, or invoke it again"
                    ),
                ));
            }
            if inv.has_payloads {
                return Ok(Restart::Refused(
                    inv.status,
                    format!("{id}'s values kept in S3 were deleted when it finished"),
                ));
            }
        }
        let journal = JournalStore::with_tail(self.journal.load(id).await?, inv.tail.as_ref());
        let entries = journal.last().map_or(0, |e| e.index + 1);
        let from = match from {
            Some(asked) if asked > entries => {
                return Ok(Restart::BadEntry { asked, entries });
            }
            Some(asked) => asked,
            None => journal
                .iter()
                .rev()
                .find(|e| e.failure().is_some())
                .map_or(entries, |e| e.index),
        };
        let deleted = self.journal.truncate(&inv, from).await?;
        crash_point!("restart.truncated");
        if !self.invocations.restart(&mut inv).await? {
            let now = self
                .invocations
                .get(id)
                .await?
                .map_or(inv.status, |i| i.status);
            return Ok(Restart::Refused(
                now,
                format!("{id} changed while restarting"),
            ));
        }
        crash_point!("restart.released");
        self.send_event(&self.signing.drive(id.clone())).await?;
        tracing::info!(%id, from, deleted, "restarted");
        Ok(Restart::From {
            entry: from,
            deleted,
        })
    }
}
