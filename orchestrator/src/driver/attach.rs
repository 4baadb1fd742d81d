//! Joining an invocation that exists: waiting for it, or taking it over when its driver is
//! gone; and the arrival of an exclusive invocation in its object's inbox.

use crate::driver::{Driven, LambdaCall, Push, Wait, ANSWER_MARGIN, LEASE_MARGIN};
use crate::error::OrchestratorError;
use crate::services::Services;
use durable_protocol::clock::now_millis;
use durable_protocol::crash_point;
use durable_protocol::keyed::ObjectRef;
use durable_store::invocations::{Created, Invocation, NewInvocation, Status};
use durable_store::objects::Arrival;
use std::time::Duration;

impl Services {
    /// An existing invocation: its outcome if finished; else drive it if its driver is gone,
    /// and (for an HTTP caller, [`Wait::ForOutcome`]) wait for it while this call has time.
    pub(crate) async fn attach(
        &self,
        mut inv: Invocation,
        call: &LambdaCall,
        wait: Wait,
    ) -> Result<Driven, OrchestratorError> {
        let mut pause = Duration::from_millis(50);
        loop {
            if let Some(outcome) = inv.outcome.clone() {
                return Ok(Driven::Finished(outcome));
            }
            if inv.status == Status::Running && (inv.released || inv.lease_until < now_millis()) {
                let lease = call.deadline_ms + LEASE_MARGIN.as_millis() as u64;
                if self.invocations.take_over(&mut inv, lease).await? {
                    crash_point!("attach.taken_over");
                    tracing::info!(id = %inv.id, epoch = inv.epoch, "took over an invocation whose driver is gone");
                    let driven = self.drive(inv.clone(), call, Push::Next).await?;
                    if wait == Wait::No || matches!(driven, Driven::Finished(_)) {
                        return Ok(driven);
                    }
                    // Suspended or handed off: wait for whoever continues it.
                }
            }
            // A paused invocation moves only when an operator resumes it: no use waiting.
            if wait == Wait::No
                || inv.status == Status::Paused
                || now_millis() + (pause + ANSWER_MARGIN).as_millis() as u64 > call.deadline_ms
            {
                return Ok(match inv.status {
                    Status::Suspended => Driven::Suspended,
                    Status::Paused => Driven::Paused,
                    _ => Driven::Running,
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
            inv = self.invocations.get(&inv.id).await?.ok_or_else(|| {
                OrchestratorError::Protocol(format!("invocation {} disappeared", inv.id))
            })?;
        }
    }

    /// An exclusive invocation arrives in its object's inbox; then the object is pumped and
    /// whoever is granted the lock is started by a fresh call, except this arrival itself when
    /// `waiting` (an HTTP call that waits for it): then it is taken over here and returned owned.
    pub(crate) async fn arrive(
        &self,
        new: &NewInvocation,
        due_ms: u64,
        waiting: Option<&LambdaCall>,
    ) -> Result<(Created, bool), OrchestratorError> {
        let object = ObjectRef {
            service: new.service.clone(),
            key: new.key.clone().ok_or_else(|| {
                OrchestratorError::Protocol("an exclusive invocation without a key".into())
            })?,
        };
        let mut inv = match self
            .objects
            .arrive(&self.invocations, new, &object, due_ms)
            .await?
        {
            Arrival::Existing(inv) => return Ok((Created::Existing(*inv), false)),
            Arrival::Queued(inv) => *inv,
        };
        self.started(&inv);
        crash_point!("arrive.queued");
        let Some(granted) = self.objects.pump(&object).await? else {
            return Ok((Created::New(inv), false));
        };
        crash_point!("arrive.granted");
        if granted == new.id {
            // As the grant left it: running and released.
            inv.status = Status::Running;
            inv.released = true;
            if let Some(call) = waiting {
                let lease = call.deadline_ms + LEASE_MARGIN.as_millis() as u64;
                let owned = self.invocations.take_over(&mut inv, lease).await?;
                return Ok((Created::New(inv), owned));
            }
        }
        self.send_event(&self.signing.drive(granted)).await?;
        Ok((Created::New(inv), false))
    }
}
