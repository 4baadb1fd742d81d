//! The sweep: re-drives running invocations whose driver is gone, found through the minutes'
//! partitions of dated invocations and the `leases` index.

use crate::control::reports as replies;
use crate::driver::LambdaCall;
use crate::error::OrchestratorError;
use crate::services::Services;
use durable_protocol::clock::now_millis;
use durable_protocol::crash_point;
use durable_protocol::{InvocationId, MinuteRange, ServiceName};
use durable_store::invocations::{Invocation, Status};
use durable_store::listing::Busy;
use durable_store::sweep::Leased;
use std::time::Duration;

/// How long before its own deadline a sweep stops walking the `leases` index.
const SWEEP_MARGIN: Duration = Duration::from_secs(10);
/// How many minutes back the first sweep of dated invocations looks (there is no cursor yet).
const FIRST_SWEEP_MINUTES: u32 = 15;

impl Services {
    /// What a finishing call that died left undone; for a killed invocation that includes
    /// killing the children it awaited.
    async fn sweep_clean_up(
        &self,
        inv: &durable_store::invocations::Invocation,
        call: &LambdaCall,
    ) -> Result<(), OrchestratorError> {
        if inv.status == Status::Killed {
            return self.after_kill(inv, inv.has_payloads, call).await;
        }
        // A pending clean-up means the finish saw a kept journal (schedules may exist), even
        // if an older item does not say so.
        let kept = Invocation {
            journal_kept: true,
            ..inv.clone()
        };
        self.clean_up(&kept, inv.has_payloads).await;
        Ok(())
    }

    /// Finds running invocations whose lease expired and hands each to a fresh call (`drive`
    /// takes it over conditionally, so a sweep racing a live driver changes nothing).
    ///
    /// The sweep walks the `leases` index from where the last sweep stopped (a cursor item) up
    /// to the grace period before now, and reads the items it meets once: finished
    /// invocations stay in the index (their finish does not pay a second write to leave it)
    /// and are skipped. A stranded invocation gets a fresh lease ahead of the cursor before its
    /// `drive` event is sent, so that a later sweep finds it again if that event is lost too.
    pub(crate) async fn sweep(
        &self,
        call: &LambdaCall,
        minutes: Option<MinuteRange>,
    ) -> Result<serde_json::Value, OrchestratorError> {
        let cursors = self.invocations.sweep_cursors().await?;
        let (mut redriven, minutes) = self
            .sweep_minutes(call, minutes, cursors.minutes_until)
            .await?;
        let (followed, leases) = self.sweep_leases(call, cursors.swept_until).await?;
        redriven.extend(followed.redriven);
        if !redriven.is_empty() {
            self.metrics.emit(crate::metrics::Event::SweepRedriven {
                count: redriven.len(),
            });
            tracing::info!(
                count = redriven.len(),
                "sweep re-drives invocations with expired leases"
            );
        }
        replies::report(&replies::SweepReport {
            redriven,
            resumed: followed.resumed,
            pumped: followed.pumped,
            dispatched: followed.dispatched,
            cleaned: followed.cleaned,
            callers_notified: followed.callers_notified,
            minutes,
            leases,
        })
    }

    /// The first part of a sweep: the partitions of the dated invocations made in the minutes
    /// after the minutes cursor, up to the last one that ended more than the grace ago (or
    /// the minutes asked for). Every invocation there that still runs goes into the `leases`
    /// index (`promote`), so the second part finds it from now on; one whose lease ended, or
    /// that nobody drives, is marked stranded (its lease moved to now, ahead of the index's
    /// cursor) and re-driven. So a new invocation costs no index write while it finishes
    /// within its minute, and none is lost if its driver dies.
    pub(crate) async fn sweep_minutes(
        &self,
        call: &LambdaCall,
        asked: Option<MinuteRange>,
        cursor: Option<u32>,
    ) -> Result<(Vec<InvocationId>, replies::MinutesReport), OrchestratorError> {
        let grace = self.config.sweep_grace.as_millis() as u64;
        let upto = now_millis().saturating_sub(grace);
        // The last minute no new dated invocation can land in any more.
        let last_done = (upto / 60_000) as u32 - 1;
        // An explicit range looks again, whatever the cursor says.
        let (from, to) = match (asked, cursor) {
            (Some(range), _) => (range.from, range.to),
            (None, Some(swept)) => (swept + 1, last_done),
            // The first sweep looks back a while: dated invocations exist only since this
            // version of the orchestrator runs, and the sweep runs every minute.
            (None, None) => (last_done.saturating_sub(FIRST_SWEEP_MINUTES), last_done),
        };
        let mut redriven = Vec::new();
        let (mut seen, mut promoted) = (0usize, 0usize);
        let mut reached = None;
        let services = self.registry.services().await?;
        'minutes: for minute in from..=to {
            let mut busy: std::collections::HashMap<&ServiceName, Busy> = Default::default();
            for (service, shard) in services
                .iter()
                .flat_map(|svc| (0..InvocationId::SHARDS).map(move |shard| (svc, shard)))
            {
                // Invocations with ids that are not dated are in the `runs` index: only
                // counted, so that a listing knows the minute has some. Listing never holds
                // the sweep up: an index that cannot be read (still being built after an
                // upgrade) marks the minute as having some, so listings read it.
                match self
                    .invocations
                    .indexed_in_minute(service, minute, shard)
                    .await
                {
                    Ok(ids) if ids.is_empty() => {}
                    Ok(_) => busy.entry(service).or_default().indexed = true,
                    Err(e) => {
                        tracing::warn!(%service, minute, error = %e, "could not read the runs index");
                        busy.entry(service).or_default().indexed = true;
                    }
                }
                let mut page = None;
                loop {
                    let (found, next) = self
                        .invocations
                        .minute_page(service, minute, shard, page)
                        .await?;
                    seen += found.len();
                    if !found.is_empty() {
                        busy.entry(service).or_default().dated = true;
                    }
                    for inv in found
                        .iter()
                        .filter(|i| i.cleanup_pending && i.outcome.is_some())
                    {
                        self.sweep_clean_up(inv, call).await?;
                    }
                    for inv in found.iter().filter(|i| i.status == Status::Running) {
                        let Some(now) = self.invocations.promote(&inv.id).await? else {
                            continue;
                        };
                        promoted += 1;
                        if self.redrive_if_stranded(&now, upto).await? {
                            redriven.push(now.id);
                        }
                    }
                    match next {
                        Some(n) => page = Some(n),
                        None => break,
                    }
                }
            }
            // Recorded before the cursor moves past the minute: a listing trusts these
            // marks for every minute up to the cursor.
            for (service, busy) in busy {
                // Kept as long as the service's invocations may be (best effort: the
                // default if its registration cannot be read).
                let retention = match self.registry.lookup(service).await {
                    Ok(Some(reg)) => reg.retention.unwrap_or(self.config.retention),
                    _ => self.config.retention,
                }
                .max(self.config.retention);
                if let Err(e) = self
                    .invocations
                    .mark_busy(service, minute, busy, retention)
                    .await
                {
                    // Liveness first: the minute is then missing from listings, not re-driving.
                    tracing::warn!(%service, minute, error = %e, "could not mark a busy minute");
                }
            }
            reached = Some(minute);
            if now_millis() + SWEEP_MARGIN.as_millis() as u64 > call.deadline_ms {
                break 'minutes;
            }
        }
        if let (None, Some(minute)) = (asked, reached) {
            self.invocations.advance_minutes_cursor(minute).await?;
        }
        Ok((
            redriven,
            replies::MinutesReport {
                from,
                to,
                swept_until: reached,
                looked_at: seen,
                promoted,
            },
        ))
    }

    /// Re-drives `inv` if it runs and nobody drives it (released, or its lease ended by
    /// `upto`): its lease moves to now first (conditional on the lease it had), so that a later
    /// sweep finds it again if the `drive` event is lost too. `true` if it was re-driven.
    pub(crate) async fn redrive_if_stranded(
        &self,
        inv: &Invocation,
        upto: u64,
    ) -> Result<bool, OrchestratorError> {
        if inv.status != Status::Running
            || !(inv.released || inv.lease_until <= upto)
            || !self.invocations.mark_stranded(inv).await?
        {
            return Ok(false);
        }
        crash_point!("sweep.stranded.marked");
        self.send_event(&self.signing.drive(inv.id.clone())).await?;
        Ok(true)
    }

    /// The second part of a sweep: the `leases` index, from its cursor up to the grace before
    /// now. Besides leases it holds recorded calls and sends, completions made by others (an
    /// awakeable resolution, a timer, a child's result), queued exclusive invocations and
    /// finished children of calls: an undispatched call or send is dispatched, a waiter still
    /// suspended on a completed entry is resumed, an idle object with a queue is pumped, and a
    /// caller whose entry a finished child never completed is told, so that nothing waits for
    /// a message its sender died before sending.
    pub(crate) async fn sweep_leases(
        &self,
        call: &LambdaCall,
        cursor: u64,
    ) -> Result<(Followed, replies::LeasesReport), OrchestratorError> {
        let upto = now_millis().saturating_sub(self.config.sweep_grace.as_millis() as u64);
        let mut followed = Followed::default();
        let mut seen = 0usize;
        let mut reached = cursor;
        let mut page = None;
        let mut done = upto <= cursor;
        while !done {
            let (leases, next) = self.invocations.leases_page(cursor, upto, page).await?;
            seen += leases.len();
            let mut ids: Vec<InvocationId> = leases
                .iter()
                .map(|l| match l {
                    Leased::Invocation { id, .. } | Leased::Entry { id, .. } => id.clone(),
                })
                .collect();
            ids.sort();
            ids.dedup();
            let found = self.invocations.get_many(&ids).await?;
            let wanted: Vec<(InvocationId, u32)> = leases
                .iter()
                .filter_map(|l| match l {
                    Leased::Entry { id, index, .. } => Some((id.clone(), *index)),
                    Leased::Invocation { .. } => None,
                })
                .collect();
            let entries = self.journal.entries_many(&wanted).await?;
            for leased in &leases {
                match leased {
                    Leased::Invocation { id, .. } => {
                        let Some(inv) = found.iter().find(|i| &i.id == id) else {
                            continue;
                        };
                        if self.redrive_if_stranded(inv, upto).await? {
                            followed.redriven.push(inv.id.clone());
                        } else if self.pump_if_idle(inv, upto).await? {
                            followed.pumped.push(inv.id.clone());
                        } else if self.notify_caller_if_untold(inv).await? {
                            followed.callers_notified.push(inv.id.clone());
                        } else if inv.cleanup_pending && inv.outcome.is_some() {
                            // Its driver died between the finish and the clean-up.
                            self.sweep_clean_up(inv, call).await?;
                            followed.cleaned.push(inv.id.clone());
                        }
                    }
                    Leased::Entry { id, index, .. } => {
                        let Some((_, entry)) =
                            entries.iter().find(|(i, e)| i == id && e.index == *index)
                        else {
                            continue;
                        };
                        let waits = entry.completion.is_some()
                            && found.iter().any(|i| {
                                &i.id == id
                                    && i.status == Status::Suspended
                                    && i.waiting_on.contains(index)
                            });
                        if waits {
                            // Stamped again first: a later sweep meets it once more if this
                            // event is lost too.
                            self.journal.restamp(id, *index).await?;
                            crash_point!("sweep.resume.before");
                            self.send_event(&self.signing.resume(id.clone(), *index))
                                .await?;
                            followed.resumed.push(id.clone());
                        } else if entry.kind.child().is_some() && !entry.dispatched {
                            self.journal.restamp(id, *index).await?;
                            crash_point!("sweep.dispatch.before");
                            self.send_event(&self.signing.dispatch(id.clone(), *index))
                                .await?;
                            followed.dispatched.push(id.clone());
                        }
                    }
                }
            }
            // Pages come in lease order.
            if let Some(last) = leases.last() {
                reached = last.at();
            }
            done = next.is_none();
            page = next;
            // Out of time: the next sweep goes on from the last lease looked at (again from
            // that lease: another invocation may share it; looking twice is harmless).
            if !done && now_millis() + SWEEP_MARGIN.as_millis() as u64 > call.deadline_ms {
                break;
            }
        }
        let advanced = if done {
            upto
        } else {
            reached.saturating_sub(1)
        };
        if advanced > cursor {
            self.invocations.advance_sweep_cursor(advanced).await?;
        }
        Ok((
            followed,
            replies::LeasesReport {
                looked_at: seen,
                swept_until: advanced,
            },
        ))
    }

    /// A queued exclusive invocation whose arrival lease passed: its object is pumped in case
    /// the arriving call died before it did (a free lock and a full inbox would wait for the
    /// next arrival otherwise). Whoever is granted the lock is started. `true` if one was.
    async fn pump_if_idle(&self, inv: &Invocation, upto: u64) -> Result<bool, OrchestratorError> {
        if inv.status != Status::Queued || inv.lease_until > upto {
            return Ok(false);
        }
        let Some(object) = inv.object() else {
            return Ok(false);
        };
        let Some(granted) = self.objects.pump(&object).await? else {
            return Ok(false);
        };
        crash_point!("sweep.pumped");
        self.send_event(&self.signing.drive(granted)).await?;
        Ok(true)
    }

    /// A finished child of a call whose callers' entries (its caller's, and those of the
    /// waiters of a shared child) have no completion yet (its driver died between finishing
    /// it and telling them): tells them now. `true` if it told any.
    pub(crate) async fn notify_caller_if_untold(
        &self,
        inv: &Invocation,
    ) -> Result<bool, OrchestratorError> {
        let Some(outcome) = &inv.outcome else {
            return Ok(false);
        };
        let mut told_any = false;
        for caller in inv.callers() {
            let told = self
                .journal
                .entry(&caller.invocation, caller.entry)
                .await?
                .is_none_or(|e| e.completion.is_some());
            if !told {
                self.tell_caller(caller, outcome).await?;
                told_any = true;
            }
        }
        Ok(told_any)
    }
}

/// What the `leases` part of a sweep followed up.
#[derive(Debug, Default)]
pub(crate) struct Followed {
    pub redriven: Vec<InvocationId>,
    /// Queued invocations whose object was pumped (someone was granted its lock).
    pub pumped: Vec<InvocationId>,
    /// Invocations with a call or send whose `dispatch` was lost, dispatched again.
    pub dispatched: Vec<InvocationId>,
    /// Finished invocations whose clean-up (journal TTL, unfired schedules) was done here.
    pub cleaned: Vec<InvocationId>,
    pub resumed: Vec<InvocationId>,
    pub callers_notified: Vec<InvocationId>,
}
