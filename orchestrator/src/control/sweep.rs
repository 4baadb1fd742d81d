//! The sweep: re-drives running invocations whose driver is gone, found through the minutes'
//! partitions of dated invocations and the `leases` index.

use crate::control::reports as replies;
use crate::driver::LambdaCall;
use crate::error::OrchestratorError;
use crate::services::Services;
use durable_protocol::clock::now_millis;
use durable_protocol::{ControlEvent, InvocationId, MinuteRange};
use durable_store::invocations::{Invocation, Status};
use std::time::Duration;

/// How long before its own deadline a sweep stops walking the `leases` index.
const SWEEP_MARGIN: Duration = Duration::from_secs(10);
/// How many minutes back the first sweep of dated invocations looks (there is no cursor yet).
const FIRST_SWEEP_MINUTES: u32 = 15;

impl Services {
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
        let (more, leases) = self.sweep_leases(call, cursors.swept_until).await?;
        redriven.extend(more);
        if !redriven.is_empty() {
            tracing::info!(
                count = redriven.len(),
                "sweep re-drives invocations with expired leases"
            );
        }
        replies::report(&replies::SweepReport {
            redriven,
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
        'minutes: for minute in from..=to {
            for shard in 0..InvocationId::SHARDS {
                let mut page = None;
                loop {
                    let (found, next) = self.invocations.minute_page(minute, shard, page).await?;
                    seen += found.len();
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
        self.send_event(&ControlEvent::Drive {
            invocation_id: inv.id.clone(),
        })
        .await?;
        Ok(true)
    }

    /// The second part of a sweep: the `leases` index, from its cursor up to the grace before
    /// now.
    pub(crate) async fn sweep_leases(
        &self,
        call: &LambdaCall,
        cursor: u64,
    ) -> Result<(Vec<InvocationId>, replies::LeasesReport), OrchestratorError> {
        let upto = now_millis().saturating_sub(self.config.sweep_grace.as_millis() as u64);
        let mut redriven = Vec::new();
        let mut seen = 0usize;
        let mut reached = cursor;
        let mut page = None;
        let mut done = upto <= cursor;
        while !done {
            let (leases, next) = self.invocations.leases_page(cursor, upto, page).await?;
            seen += leases.len();
            let ids: Vec<InvocationId> = leases.iter().map(|(id, _)| id.clone()).collect();
            for inv in self.invocations.get_many(&ids).await? {
                if self.redrive_if_stranded(&inv, upto).await? {
                    redriven.push(inv.id);
                }
            }
            // Pages come in lease order.
            if let Some((_, lease)) = leases.last() {
                reached = *lease;
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
            redriven,
            replies::LeasesReport {
                looked_at: seen,
                swept_until: advanced,
            },
        ))
    }
}
