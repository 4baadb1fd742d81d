//! Drives an invocation: pushes it (with its journal) to its pinned handler version, applies the
//! answer, and retries with backoff until it finishes, runs out of attempts or out of time.
//!
//! * [`reply`]: what a push came back with, classified, and the retry arithmetic.
//! * [`attach`]: joining an existing invocation, and an exclusive invocation's arrival.

pub mod attach;
pub mod cancel;
pub mod reply;

pub use cancel::Transition;
pub use reply::{classify, next_step_failures, retry_delay, Reply};

use crate::config::OnMaxAttempts;
use crate::error::OrchestratorError;
use crate::metrics::Event;
use crate::services::Services;
use aws_sdk_lambda::operation::invoke::InvokeError;
use aws_sdk_lambda::primitives::Blob;
use durable_protocol::clock::now_millis;
use durable_protocol::crash_point;
use durable_protocol::{
    HandlerRequest, InvocationId, InvokeRequest, JournalEntry, StepResult, TerminalFailure, Timer,
};
use durable_store::invocations::Suspension;
use durable_store::invocations::{Invocation, Outcome, Status};
use durable_store::{Completed, Completer, PayloadError};
use std::time::Duration;

/// How long past this call's own deadline a lease lasts: after that, another call may take over.
pub const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// Where driving left the invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Driven {
    /// It finished with this outcome.
    Finished(Outcome),
    /// It is still running: driven by another call now, or handed to a fresh one.
    Running,
    /// It waits for a completion (a timer, an awakeable); nothing runs until one arrives.
    Suspended,
    /// It stopped retrying (its last attempt failed, or an operator paused it) until resumed.
    Paused,
}

impl Driven {
    /// How it is reported: `finished`, `running` or `suspended`.
    pub fn name(&self) -> &'static str {
        match self {
            Driven::Finished(_) => "finished",
            Driven::Running => "running",
            Driven::Suspended => "suspended",
            Driven::Paused => "paused",
        }
    }
}

/// Where a push finds the journal it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// The invocation was created just now: its journal is empty, nothing to query.
    First,
    /// Load the journal from the table.
    Next,
}

/// Whether joining an existing invocation waits for its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// An HTTP caller waits while its call has time.
    ForOutcome,
    /// A control event never waits: it would hold a Lambda, and the async-invoke capacity,
    /// for nothing.
    No,
}

/// How long before its own deadline a call stops waiting for an invocation and answers.
pub const ANSWER_MARGIN: std::time::Duration = std::time::Duration::from_secs(2);

/// A push larger than this carries no journal: the SDK reads it from the table (Lambda accepts
/// 6 MB per synchronous request).
const MAX_PUSH_BYTES: usize = 5_500_000;

/// The orchestrator Lambda call an entry point runs in: its deadline and how it was invoked.
#[derive(Debug, Clone)]
pub struct LambdaCall {
    /// This call's deadline (ms since the Unix epoch).
    pub deadline_ms: u64,
    /// This function's ARN without a qualifier (its control door): the target of its timers
    /// and of the handlers' events.
    pub function_arn: String,
    /// The door this call's event came through.
    pub door: crate::doors::Door,
}

impl LambdaCall {
    /// The call of an event invoked through `invoked_arn`, due by `deadline_ms`.
    pub fn new(deadline_ms: u64, invoked_arn: &str) -> Self {
        Self {
            deadline_ms,
            function_arn: crate::doors::unqualified(invoked_arn),
            door: crate::doors::Door::of(invoked_arn),
        }
    }
}

impl Services {
    /// Drives `inv` (owned by this call at its current epoch) until it finishes, suspends, or
    /// this call must stop before its deadline. `Push::First` means it was just created: its journal
    /// is empty.
    pub async fn drive(
        &self,
        inv: Invocation,
        call: &LambdaCall,
        push: Push,
    ) -> Result<Driven, OrchestratorError> {
        use tracing::Instrument;
        // Every log line while it is driven names the invocation and its trace.
        let span = tracing::info_span!(
            "invocation",
            invocation_id = %inv.id,
            service = %inv.service,
            handler = %inv.handler,
            attempt = inv.attempt,
            trace_id = %inv.trace.trace_id,
        );
        self.drive_pushes(inv, call, push).instrument(span).await
    }

    /// The push loop of [`Services::drive`].
    async fn drive_pushes(
        &self,
        mut inv: Invocation,
        call: &LambdaCall,
        mut push: Push,
    ) -> Result<Driven, OrchestratorError> {
        let deadline_ms = call.deadline_ms;
        loop {
            if now_millis() + self.config.min_push_time.as_millis() as u64 > deadline_ms {
                self.hand_off(&inv).await?;
                return Ok(Driven::Running);
            }
            let journal = if push == Push::First {
                Vec::new()
            } else if inv.journal_kept {
                // Entries the first attempt wrote with a TTL lose it now.
                self.journal.load_kept(&inv.id).await?
            } else {
                self.journal.load(&inv.id).await?
            };
            push = Push::Next;
            crash_point!("driver.push.before");
            let reply = self.push(&inv, journal, call).await?;
            crash_point!("driver.push.after");
            let (outcome, tail) = match reply {
                Reply::Finished { outcome, tail } => (outcome, tail.map(|t| *t)),
                Reply::Overran => {
                    tracing::warn!(id = %inv.id, "the attempt did not answer in the time this call has; handing it on");
                    self.hand_off(&inv).await?;
                    return Ok(Driven::Running);
                }
                Reply::Suspend {
                    waiting_on,
                    mut timers,
                } => {
                    let (fired, moved) = self.fire_due_timers(&inv.id, &mut timers).await?;
                    if fired {
                        continue;
                    }
                    if !inv.journal_kept {
                        // It may wait longer than its entries' TTL: keep them (before the
                        // suspension, which marks the invocation as keeping its journal).
                        self.journal.load_kept(&inv.id).await?;
                        inv.journal_kept = true;
                    }
                    // Schedules first: if this call dies before suspending, the lease expires,
                    // the next driver re-pushes and re-creating a schedule is a no-op.
                    crash_point!("driver.suspend.schedules.before");
                    for timer in &timers {
                        if moved.contains(&timer.index) {
                            self.timers
                                .schedule_deadline(
                                    &inv.id,
                                    timer.index,
                                    timer.wake_at_ms,
                                    &call.function_arn,
                                )
                                .await?;
                        } else {
                            self.timers
                                .schedule(&inv.id, *timer, &call.function_arn)
                                .await?;
                        }
                    }
                    crash_point!("driver.suspend.before");
                    let suspension = self.invocations.suspend(&inv, &waiting_on).await?;
                    crash_point!("driver.suspend.after");
                    match suspension {
                        Suspension::Suspended => {
                            tracing::info!(id = %inv.id, ?waiting_on, timers = timers.len(), "suspended");
                            self.metrics.emit(Event::Suspended(&inv));
                            return Ok(Driven::Suspended);
                        }
                        Suspension::CompletionArrived => continue,
                        Suspension::CancelPending => {
                            self.deliver_cancel(&mut inv, &waiting_on, call).await?;
                            continue;
                        }
                        Suspension::LostOwnership => {
                            // Another driver finished it meanwhile (this attempt overran or
                            // lost its lease): the schedules made here would fire for nothing.
                            if let Some(now) = self.invocations.get(&inv.id).await? {
                                if now.outcome.is_some() {
                                    self.timers.delete_timers(&inv.id, &timers).await;
                                }
                            }
                            return Ok(Driven::Running);
                        }
                    }
                }
                Reply::Retry {
                    message,
                    step,
                    retry_after,
                } => {
                    tracing::warn!(id = %inv.id, attempt = inv.attempt, error = %message, "attempt failed");
                    if inv.attempt >= self.config.max_attempts {
                        let why = format!(
                            "gave up after {} attempts; the last one failed with: {message}",
                            inv.attempt
                        );
                        if self.config.on_max_attempts == OnMaxAttempts::Pause {
                            // Paused costs nothing and can be fixed and resumed.
                            crash_point!("driver.pause.before");
                            if self.invocations.pause(&mut inv, &why).await? {
                                self.timers.delete_retry(&inv.id, inv.attempt).await;
                                tracing::warn!(id = %inv.id, attempt = inv.attempt, "paused after its last attempt");
                                self.metrics.emit(Event::Paused(&inv));
                                return Ok(Driven::Paused);
                            }
                            return Ok(Driven::Running);
                        }
                        (Outcome::Failed(TerminalFailure::new(500, why)), None)
                    } else {
                        let failures = next_step_failures(inv.step_failures, step);
                        let delay = retry_delay(&self.config, inv.attempt, retry_after);
                        let out_of_time = now_millis()
                            + (delay + self.config.min_push_time).as_millis() as u64
                            > deadline_ms;
                        // A backoff longer than this call has left waits on a schedule,
                        // not in a Lambda: the lease runs until the retry is due.
                        let deferred = out_of_time && self.config.scheduler_role_arn.is_some();
                        let due = now_millis() + delay.as_millis() as u64;
                        let lease = if deferred {
                            due
                        } else {
                            deadline_ms + LEASE_MARGIN.as_millis() as u64
                        };
                        // Recorded before the backoff, so that it shows (and an operator may
                        // end it early: `retry`, which moves the epoch on).
                        crash_point!("driver.retry.before");
                        if !self
                            .invocations
                            .next_attempt(&mut inv, lease, failures, &message, due)
                            .await?
                        {
                            return Ok(Driven::Running); // another driver owns it now
                        }
                        crash_point!("driver.retry.after");
                        tracing::Span::current().record("attempt", inv.attempt);
                        self.metrics.emit(Event::Retried(&inv));
                        if !out_of_time && !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                            // An operator may have retried it, paused or killed it meanwhile.
                            match self.invocations.get(&inv.id).await? {
                                Some(now)
                                    if now.epoch == inv.epoch && now.status == Status::Running =>
                                {
                                    inv = now;
                                }
                                _ => return Ok(Driven::Running),
                            }
                        }
                        if deferred {
                            // Fires once the lease written has ended, so the drive takes over.
                            self.timers
                                .schedule_retry(
                                    &inv.id,
                                    inv.attempt,
                                    inv.lease_until + 1000,
                                    &call.function_arn,
                                )
                                .await?;
                            tracing::info!(id = %inv.id, attempt = inv.attempt, delay_ms = delay.as_millis() as u64, "retry scheduled");
                            return Ok(Driven::Running);
                        }
                        continue;
                    }
                }
            };
            let outcome = self.store_output(&inv.id, outcome).await?;
            crash_point!("driver.finish.before");
            if let Some(has_payloads) = self.finish(&inv, &outcome, tail.as_ref()).await? {
                crash_point!("driver.finish.after");
                self.finished(&inv, &outcome);
                self.notify_caller(&inv, &outcome).await?;
                self.clean_up(&inv, has_payloads).await;
                return Ok(Driven::Finished(outcome));
            }
            // Lost ownership while pushing: whoever owns it decides; report what is stored.
            return Ok(match self.invocations.get(&inv.id).await? {
                Some(Invocation {
                    outcome: Some(o), ..
                }) => Driven::Finished(o),
                Some(Invocation {
                    status: Status::Paused,
                    ..
                }) => Driven::Paused,
                _ => Driven::Running,
            });
        }
    }

    /// Records the outcome (`None` if another driver owns the invocation now). A handler that
    /// writes state (exclusive, workflow `run`) also applies its journaled state changes and
    /// hands its object's lock on, in the same transaction; the next holder is driven at once.
    async fn finish(
        &self,
        inv: &Invocation,
        outcome: &Outcome,
        tail: Option<&JournalEntry>,
    ) -> Result<Option<bool>, OrchestratorError> {
        if !inv
            .handler_kind
            .is_some_and(durable_protocol::HandlerKind::writes_state)
        {
            return Ok(self
                .invocations
                .finish(inv, outcome, tail, self.retention(inv))
                .await?);
        }
        let journal = self.journal.load(&inv.id).await?;
        let delta = durable_protocol::StateDelta::from_journal(&journal);
        let Some(finished) = self
            .objects
            .finish(
                inv,
                outcome,
                tail,
                self.retention(inv),
                &delta,
                durable_store::invocations::Ending::Owned,
            )
            .await?
        else {
            return Ok(None);
        };
        if inv.handler_kind == Some(durable_protocol::HandlerKind::Workflow) {
            if let Some(object) = inv.object() {
                // Its promises expire with the run (best effort: the outcome is recorded).
                let expires_at = now_millis() / 1000 + self.retention(inv).as_secs();
                if let Err(e) = self
                    .objects
                    .keyed
                    .expire_promises(&object, expires_at)
                    .await
                {
                    tracing::warn!(id = %inv.id, error = %e, "could not set the TTL of a finished workflow's promises");
                }
            }
        }
        if let Some(next) = finished.next {
            crash_point!("driver.finish.handover.before");
            self.send_event(&self.signing.drive(next)).await?;
        }
        Ok(Some(finished.has_payloads))
    }

    /// Completes timers that are already due (their wait fell short of the Lambda's time);
    /// `true` if any was, so the invocation is pushed again at once. An awakeable's deadline
    /// times it out, unless a heartbeat moved it: then its timer moves to the new deadline
    /// (the entries of the timers moved are returned too).
    async fn fire_due_timers(
        &self,
        id: &InvocationId,
        timers: &mut [Timer],
    ) -> Result<(bool, Vec<u32>), OrchestratorError> {
        let now = now_millis();
        let (mut fired, mut moved) = (false, Vec::new());
        for timer in timers.iter_mut().filter(|t| t.wake_at_ms <= now) {
            let completed = self
                .journal
                .complete(
                    id,
                    timer.index,
                    durable_protocol::EntryTag::Sleep,
                    &StepResult::Value(serde_json::Value::Null),
                    Completer::Own,
                )
                .await?;
            if completed == Completed::WrongKind(durable_protocol::EntryTag::Awakeable) {
                if let Completed::NotDue(deadline) =
                    self.time_out_awakeable(id, timer.index).await?
                {
                    timer.wake_at_ms = deadline;
                    moved.push(timer.index);
                    continue;
                }
            }
            fired = true;
        }
        Ok((fired, moved))
    }

    /// One push of `inv` to its pinned handler version.
    async fn push(
        &self,
        inv: &Invocation,
        journal: Vec<durable_protocol::JournalEntry>,
        call: &LambdaCall,
    ) -> Result<Reply, OrchestratorError> {
        let request = HandlerRequest::Invoke(InvokeRequest {
            step_failures: inv.step_failures,
            orchestrator: Some(call.function_arn.clone()),
            bucket: self.config.bucket.clone(),
            limits: self.config.limits,
            journal_in_store: false,
            key: inv.key.clone(),
            handler_kind: inv.handler_kind,
            journal_expires_at: self.journal_expiry(inv),
            cancel: inv.cancel_pending(),
            traceparent: Some(inv.trace.to_string()),
            headers: inv.headers.clone(),
            state: match inv.object() {
                // Small state travels with the push; larger state is read key by key.
                Some(object) => Some(
                    self.objects
                        .keyed
                        .load(&object, Some(durable_protocol::keyed::EAGER_STATE_BYTES))
                        .await?
                        .unwrap_or_default(),
                ),
                None => None,
            },
            ..InvokeRequest::new(
                inv.id.clone(),
                self.signing.service_key(&inv.service),
                inv.handler.clone(),
                inv.input.clone(),
                self.journal.table(),
            )
            .with_journal(journal)
            .at(inv.epoch, inv.attempt)
        });
        let mut request = request;
        let mut payload =
            serde_json::to_vec(&request).map_err(|e| OrchestratorError::Protocol(e.to_string()))?;
        if payload.len() > MAX_PUSH_BYTES {
            if let HandlerRequest::Invoke(invoke) = &mut request {
                invoke.journal.clear();
                invoke.journal_in_store = true;
            }
            payload = serde_json::to_vec(&request)
                .map_err(|e| OrchestratorError::Protocol(e.to_string()))?;
        }
        // The answer must come while this call still has time to record it and hand on.
        let budget = Duration::from_millis(
            call.deadline_ms
                .saturating_sub(now_millis())
                .saturating_sub(self.config.finish_reserve.as_millis() as u64),
        );
        let invoke = self
            .lambda
            .invoke()
            .function_name(&inv.function_arn)
            .payload(Blob::new(payload))
            .send();
        let Ok(result) = tokio::time::timeout(budget, invoke).await else {
            return Ok(Reply::Overran);
        };
        match result {
            Ok(out) => {
                let body = out.payload.map(Blob::into_inner).unwrap_or_default();
                Ok(classify(out.function_error.as_deref(), &body))
            }
            Err(err) => {
                let message = aws_sdk_lambda::error::DisplayErrorContext(&err).to_string();
                if let Some(InvokeError::RequestTooLargeException(_)) = err.as_service_error() {
                    let failure = TerminalFailure::new(
                        413,
                        format!("the invocation's input and journal exceed Lambda's request limit: {message}"),
                    );
                    return Ok(Reply::Finished {
                        outcome: Outcome::Failed(failure),
                        tail: None,
                    });
                }
                Ok(Reply::Retry {
                    message: format!("could not invoke the handler Lambda: {message}"),
                    step: None,
                    retry_after: None,
                })
            }
        }
    }

    /// Gives the invocation up so that a fresh orchestrator call (started here) drives it on.
    pub async fn hand_off(&self, inv: &Invocation) -> Result<(), OrchestratorError> {
        if !self.invocations.release(inv).await? {
            return Ok(());
        }
        crash_point!("driver.handoff.released");
        if self.config.self_function.is_none() {
            tracing::warn!(id = %inv.id, "out of time and no AWS_LAMBDA_FUNCTION_NAME to hand off to; the lease sweep will resume it");
            return Ok(());
        }
        self.send_event(&self.signing.drive(inv.id.clone())).await?;
        tracing::info!(id = %inv.id, "handed off to a fresh orchestrator call");
        Ok(())
    }

    /// A large output goes to S3 (under `outputs/`, kept for the retention period).
    async fn store_output(
        &self,
        id: &InvocationId,
        outcome: Outcome,
    ) -> Result<Outcome, OrchestratorError> {
        let Outcome::Completed(output) = outcome else {
            return Ok(outcome);
        };
        match self.payloads.offload_output(id, output).await {
            Ok(output) => Ok(Outcome::Completed(output)),
            Err(PayloadError::TooLarge { size, max }) => Ok(Outcome::Failed(TerminalFailure::new(
                413,
                format!("the output is {size} bytes, over the limit of {max}"),
            ))),
            Err(e) => Err(OrchestratorError::Protocol(e.to_string())),
        }
    }

    /// The TTL (epoch seconds) of the entries an attempt of `inv` appends: while it is in its
    /// first attempt, the retention plus a grace from now (its journal then expires with no
    /// further write); none once its journal is kept.
    fn journal_expiry(&self, inv: &Invocation) -> Option<u64> {
        (!inv.journal_kept).then(|| {
            now_millis() / 1000 + (self.retention(inv) + self.config.journal_grace).as_secs()
        })
    }

    /// After an invocation finished: a kept journal gets its TTL (the retention period, like
    /// the metadata item; a journal written in one attempt has it already) and its payloads in
    /// S3 are deleted (not its output). Failures are logged: the outcome is recorded already.
    pub(crate) async fn clean_up(&self, inv: &Invocation, has_payloads: bool) {
        let id = &inv.id;
        if inv.journal_kept {
            let expires_at = now_millis() / 1000 + self.retention(inv).as_secs();
            match self.journal.expire_all(id, expires_at).await {
                // Only an invocation that suspended has schedules: those of timers that never
                // fired (they lost a select) would fire later for nothing.
                Ok(journal) => {
                    self.timers.delete_unfired(id, &journal).await;
                    crash_point!("driver.cleanup.before_done");
                    if let Err(e) = self.invocations.cleaned(id).await {
                        tracing::warn!(%id, error = %e, "could not record a finished invocation's clean-up");
                    }
                }
                Err(e) => {
                    tracing::warn!(%id, error = %e, "could not set the TTL of a finished invocation's journal");
                }
            }
        }
        if has_payloads {
            if let Err(e) = self.payloads.delete_all(id).await {
                tracing::warn!(%id, error = %e, "could not remove the payloads of a finished invocation");
            }
        }
    }

    /// A finished child of `ctx.call`: its result completes its callers' entries (once each),
    /// and each caller is resumed in a fresh call. A child others may wait for (idempotent,
    /// a workflow's run) is read again after its finish, which every waiter added before it
    /// is in; one added after finds the outcome itself.
    pub async fn notify_caller(
        &self,
        inv: &Invocation,
        outcome: &Outcome,
    ) -> Result<(), OrchestratorError> {
        if let Some(caller) = &inv.caller {
            self.tell_caller(caller, outcome).await?;
        }
        if !inv.may_have_waiters() {
            return Ok(());
        }
        let waiters = match self.invocations.get(&inv.id).await? {
            Some(now) => now.waiters,
            None => inv.waiters.clone(),
        };
        for waiter in &waiters {
            crash_point!("driver.notify.waiter.before");
            self.tell_caller(waiter, outcome).await?;
        }
        Ok(())
    }

    /// Completes call entry `caller` with `outcome` (once) and resumes its invocation.
    pub(crate) async fn tell_caller(
        &self,
        caller: &durable_store::invocations::Caller,
        outcome: &Outcome,
    ) -> Result<(), OrchestratorError> {
        let result = match outcome {
            // The child's output expires with the child: the caller keeps its own copy.
            Outcome::Completed(v) => {
                let value = self
                    .payloads
                    .resolve(v.clone())
                    .await
                    .map_err(|e| OrchestratorError::Protocol(e.to_string()))?;
                let stored = self
                    .payloads
                    .offload(&caller.invocation, &format!("c{}", caller.entry), value)
                    .await
                    .map_err(|e| OrchestratorError::Protocol(e.to_string()))?;
                if durable_protocol::payload::as_ref(&stored).is_some() {
                    self.journal.flag_payloads(&caller.invocation).await?;
                }
                StepResult::Value(stored)
            }
            Outcome::Failed(f) => StepResult::Failure(f.clone()),
        };
        crash_point!("driver.notify.complete.before");
        self.journal
            .complete(
                &caller.invocation,
                caller.entry,
                durable_protocol::EntryTag::Call,
                &result,
                Completer::Other,
            )
            .await?;
        crash_point!("driver.notify.resume.before");
        self.send_event(&self.signing.resume(caller.invocation.clone(), caller.entry))
            .await
    }
}
