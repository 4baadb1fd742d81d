//! `drive`, `wake` and `resume`: continuing an invocation that was handed off, whose timer is
//! due, or whose awaited entry completed.

use crate::control::reports as replies;
use crate::driver::{LambdaCall, Push, Wait, ANSWER_MARGIN, LEASE_MARGIN};
use crate::error::OrchestratorError;
use crate::services::Services;
use durable_protocol::clock::now_millis;
use durable_protocol::crash_point;
use durable_protocol::{EntryKind, InvocationId, StepResult};
use durable_store::invocations::Status;
use std::time::Duration;

/// How far ahead a moved awakeable deadline must be to get a schedule of its own rather than
/// a wait in the call that found it (schedules have whole seconds).
const RESCHEDULE_AFTER: Duration = Duration::from_secs(1);

impl Services {
    /// Drives an invocation whose driver handed it off or died.
    pub(crate) async fn redrive(
        &self,
        id: &InvocationId,
        call: &LambdaCall,
    ) -> Result<serde_json::Value, OrchestratorError> {
        let Some(inv) = self.invocations.get(id).await? else {
            return replies::report(&replies::InvocationReport {
                invocation_id: id,
                status: "unknown",
            });
        };
        if inv.status == Status::Queued {
            // Queued for its object's lock (e.g. a delayed send that is due now): pump.
            let Some(object) = inv.object() else {
                return replies::report(&replies::InvocationReport {
                    invocation_id: id,
                    status: "queued",
                });
            };
            return match self.objects.pump(&object).await? {
                Some(granted) if &granted == id => {
                    let inv = self.invocations.get(id).await?.ok_or_else(|| {
                        OrchestratorError::Protocol(format!("invocation {id} disappeared"))
                    })?;
                    let driven = self.attach(inv, call, Wait::No).await?;
                    Ok(replies::report(&replies::InvocationReport {
                        invocation_id: id,
                        status: driven.name(),
                    })?)
                }
                Some(granted) => {
                    self.send_event(&self.signing.drive(granted)).await?;
                    Ok(replies::report(&replies::InvocationReport {
                        invocation_id: id,
                        status: "queued",
                    })?)
                }
                None => Ok(replies::report(&replies::InvocationReport {
                    invocation_id: id,
                    status: "queued",
                })?),
            };
        }
        if inv.outcome.is_some() {
            // A re-delivered event for a child whose driver died before telling its caller.
            self.notify_caller_if_untold(&inv).await?;
        }
        let driven = self.attach(inv, call, Wait::No).await?;
        replies::report(&replies::InvocationReport {
            invocation_id: id,
            status: driven.name(),
        })
    }

    /// A timer is due: record that it fired and resume the invocation if it waits on it.
    pub(crate) async fn wake(
        &self,
        id: &InvocationId,
        index: u32,
        call: &LambdaCall,
    ) -> Result<serde_json::Value, OrchestratorError> {
        let Some(entry) = self.journal.entry(id, index).await? else {
            tracing::warn!(%id, index, "wake for an unknown timer");
            return replies::report(&replies::InvocationReport {
                invocation_id: id,
                status: "unknown timer",
            });
        };
        let wake_at_ms = match entry.kind {
            EntryKind::Sleep { wake_at_ms, .. } => wake_at_ms,
            EntryKind::Awakeable {
                timeout: Some(_), ..
            } => return self.awakeable_deadline(id, index, call).await,
            _ => {
                return Err(OrchestratorError::Protocol(format!(
                    "entry {index} of {id} is not a timer"
                )))
            }
        };
        // Precise mode (or an early firing): wait the rest here.
        let early = Duration::from_millis(wake_at_ms.saturating_sub(now_millis()));
        if !early.is_zero() {
            if now_millis() + (early + ANSWER_MARGIN).as_millis() as u64 > call.deadline_ms {
                return Err(OrchestratorError::Protocol(format!(
                    "timer {index} of {id} fired {} ms early, more than this call can wait; \
                     give the orchestrator a timeout above DURABLE_TIMER_LEAD_MS",
                    early.as_millis()
                )));
            }
            tokio::time::sleep(early).await;
        }
        self.journal
            .complete(
                id,
                index,
                durable_protocol::EntryTag::Sleep,
                &StepResult::Value(serde_json::Value::Null),
                durable_store::Completer::Other,
            )
            .await?;
        crash_point!("wake.completed");
        self.metrics.emit(crate::metrics::Event::TimerFired {
            id,
            entry: index,
            lag_ms: now_millis().saturating_sub(wake_at_ms),
        });
        self.resume(id, index, call).await
    }

    /// The deadline of awakeable entry `index` came: it times out (`408`) and its waiter
    /// resumes, unless it was completed meanwhile or a heartbeat moved its deadline on (then
    /// a schedule for the new deadline takes over; named after it, since the one that fired
    /// may not be deleted yet).
    async fn awakeable_deadline(
        &self,
        id: &InvocationId,
        index: u32,
        call: &LambdaCall,
    ) -> Result<serde_json::Value, OrchestratorError> {
        let mut status = "completed before";
        loop {
            match self.time_out_awakeable(id, index).await? {
                durable_store::Completed::Written => {
                    status = "timed out";
                    break;
                }
                durable_store::Completed::NotDue(deadline) => {
                    let early = deadline.saturating_sub(now_millis());
                    if now_millis() + early + ANSWER_MARGIN.as_millis() as u64 > call.deadline_ms
                        || early > (self.config.timer_lead + RESCHEDULE_AFTER).as_millis() as u64
                    {
                        self.timers
                            .schedule_deadline(id, index, deadline, &call.function_arn)
                            .await?;
                        status = "extended";
                        break;
                    }
                    // Due soon (schedules have whole seconds): wait the rest here, then again.
                    tokio::time::sleep(Duration::from_millis(early)).await;
                }
                _ => break,
            }
        }
        replies::report(&replies::InvocationReport {
            invocation_id: id,
            status,
        })
    }

    /// Entry `index` completed: if the invocation is suspended on it, run it again here.
    pub(crate) async fn resume(
        &self,
        id: &InvocationId,
        index: u32,
        call: &LambdaCall,
    ) -> Result<serde_json::Value, OrchestratorError> {
        let Some(mut inv) = self.invocations.get(id).await? else {
            return replies::report(&replies::InvocationReport {
                invocation_id: id,
                status: "unknown",
            });
        };
        let lease = call.deadline_ms + LEASE_MARGIN.as_millis() as u64;
        if !self.invocations.resume(&mut inv, index, lease).await? {
            // Not suspended on it: its driver will see the completion (or it is finished).
            return replies::report(&replies::InvocationReport {
                invocation_id: id,
                status: inv.status.as_str(),
            });
        }
        crash_point!("resume.resumed");
        let driven = self.drive(inv, call, Push::Next).await?;
        replies::report(&replies::InvocationReport {
            invocation_id: id,
            status: driven.name(),
        })
    }
}
