//! Drives an invocation: pushes it (with its journal) to its pinned handler version, applies the
//! answer, and retries with backoff until it finishes, runs out of attempts or out of time.

use crate::config::Config;
use crate::error::OrchestratorError;
use crate::timers::Timers;
use aws_sdk_lambda::operation::invoke::InvokeError;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use durable_protocol::clock::now_millis;
use durable_protocol::ControlEvent;
use durable_protocol::{
    HandlerRequest, HandlerResponse, InvocationId, InvokeRequest, JournalEntry, StepFailures,
    StepResult, TerminalFailure, Timer,
};
use durable_store::invocations::Suspension;
use durable_store::invocations::{Invocation, InvocationStore, Outcome, Status};
use durable_store::JournalStore;
use durable_store::PayloadError;
use durable_store::PayloadStore;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// How long past this call's own deadline a lease lasts: after that, another call may take over.
pub const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// What one push came back with, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// It finished; `tail` is its last step's entry when the handler recorded it with the
    /// outcome (nothing durable came after that step).
    Finished {
        outcome: Outcome,
        tail: Option<JournalEntry>,
    },
    Retry {
        message: String,
        step: Option<u32>,
        retry_after: Option<Duration>,
    },
    Suspend {
        waiting_on: Vec<u32>,
        timers: Vec<Timer>,
    },
}

/// Where driving left the invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Driven {
    /// It finished with this outcome.
    Finished(Outcome),
    /// It is still running: driven by another call now, or handed to a fresh one.
    Running,
    /// It waits for a completion (a timer, an awakeable); nothing runs until one arrives.
    Suspended,
}

/// Pushes invocations to handler Lambdas.
pub struct Driver {
    pub(crate) config: Arc<Config>,
    pub(crate) lambda: aws_sdk_lambda::Client,
    pub(crate) invocations: InvocationStore,
    pub(crate) journal: JournalStore,
    pub(crate) timers: Timers,
    pub(crate) payloads: PayloadStore,
    pub(crate) objects: durable_store::objects::Objects,
}

/// A push larger than this carries no journal: the SDK reads it from the table (Lambda accepts
/// 6 MB per synchronous request).
const MAX_PUSH_BYTES: usize = 5_500_000;

/// What a driver needs to know about the orchestrator call it runs in.
#[derive(Debug, Clone)]
pub struct Call {
    /// This call's deadline (ms since the Unix epoch).
    pub deadline_ms: u64,
    /// The ARN this function was invoked by: the target of its timers.
    pub function_arn: String,
}

/// The step-failure count to carry into the next attempt.
pub fn next_step_failures(
    previous: Option<StepFailures>,
    failed_step: Option<u32>,
) -> Option<StepFailures> {
    match (previous, failed_step) {
        (_, None) => None,
        (Some(p), Some(index)) if p.index == index => Some(StepFailures {
            index,
            count: p.count + 1,
        }),
        (_, Some(index)) => Some(StepFailures { index, count: 1 }),
    }
}

/// The delay before the next attempt: the handler's wish if it has one, else exponential
/// backoff from the configured initial delay; never more than the configured maximum.
pub fn retry_delay(config: &Config, attempt: u32, requested: Option<Duration>) -> Duration {
    let backoff = || {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
        config.retry_initial.saturating_mul(factor)
    };
    requested.unwrap_or_else(backoff).min(config.retry_max)
}

fn classify_lambda_error(function_error: &str, payload: &[u8]) -> Reply {
    #[derive(Deserialize)]
    struct LambdaErrorBody {
        #[serde(rename = "errorType", default)]
        error_type: String,
        #[serde(rename = "errorMessage", default)]
        error_message: String,
    }
    let detail = serde_json::from_slice::<LambdaErrorBody>(payload)
        .map(|b| format!("{}: {}", b.error_type, b.error_message))
        .unwrap_or_else(|_| String::from_utf8_lossy(payload).chars().take(500).collect());
    Reply::Retry {
        message: format!("the handler Lambda failed ({function_error}): {detail}"),
        step: None,
        retry_after: None,
    }
}

/// Maps a handler's answer to a decision.
pub fn classify(function_error: Option<&str>, payload: &[u8]) -> Reply {
    if let Some(fe) = function_error {
        return classify_lambda_error(fe, payload);
    }
    match serde_json::from_slice::<HandlerResponse>(payload) {
        Ok(HandlerResponse::Completed { output, tail }) => Reply::Finished {
            outcome: Outcome::Completed(output),
            tail,
        },
        Ok(HandlerResponse::Failed { failure, tail }) => Reply::Finished {
            outcome: Outcome::Failed(failure),
            tail,
        },
        Ok(HandlerResponse::Retryable {
            message,
            step,
            retry_after_ms,
        }) => Reply::Retry {
            message,
            step,
            retry_after: retry_after_ms.map(Duration::from_millis),
        },
        Ok(HandlerResponse::Suspended { waiting_on, timers }) => {
            Reply::Suspend { waiting_on, timers }
        }
        Err(e) => {
            Reply::Retry {
                message: format!(
                "the handler answered something that is not a durable handler response ({e}): {}",
                String::from_utf8_lossy(payload).chars().take(300).collect::<String>()
            ),
                step: None,
                retry_after: None,
            }
        }
    }
}

impl Driver {
    /// Drives `inv` (owned by this call at its current epoch) until it finishes, suspends, or
    /// this call must stop before its deadline. `fresh` means it was just created: its journal
    /// is empty.
    pub async fn drive(
        &self,
        mut inv: Invocation,
        call: &Call,
        mut fresh: bool,
    ) -> Result<Driven, OrchestratorError> {
        let deadline_ms = call.deadline_ms;
        loop {
            if now_millis() + self.config.min_push_time.as_millis() as u64 > deadline_ms {
                self.hand_off(&inv).await?;
                return Ok(Driven::Running);
            }
            let journal = if fresh {
                Vec::new()
            } else if inv.journal_kept {
                // Entries the first attempt wrote with a TTL lose it now.
                self.journal.load_kept(&inv.id).await?
            } else {
                self.journal.load(&inv.id).await?
            };
            fresh = false;
            let reply = self.push(&inv, journal, call).await?;
            let (outcome, tail) = match reply {
                Reply::Finished { outcome, tail } => (outcome, tail),
                Reply::Suspend { waiting_on, timers } => {
                    if self.fire_due_timers(&inv.id, &timers).await? {
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
                    for timer in &timers {
                        self.timers
                            .schedule(&inv.id, *timer, &call.function_arn)
                            .await?;
                    }
                    match self.invocations.suspend(&inv, &waiting_on).await? {
                        Suspension::Suspended => {
                            tracing::info!(id = %inv.id, ?waiting_on, timers = timers.len(), "suspended");
                            return Ok(Driven::Suspended);
                        }
                        Suspension::CompletionArrived => continue,
                        Suspension::LostOwnership => return Ok(Driven::Running),
                    }
                }
                Reply::Retry {
                    message,
                    step,
                    retry_after,
                } => {
                    tracing::warn!(id = %inv.id, attempt = inv.attempt, error = %message, "attempt failed");
                    if inv.attempt >= self.config.max_attempts {
                        let failure = TerminalFailure::new(
                            500,
                            format!(
                                "gave up after {} attempts; the last one failed with: {message}",
                                inv.attempt
                            ),
                        );
                        (Outcome::Failed(failure), None)
                    } else {
                        let failures = next_step_failures(inv.step_failures, step);
                        let delay = retry_delay(&self.config, inv.attempt, retry_after);
                        let lease = deadline_ms + LEASE_MARGIN.as_millis() as u64;
                        let out_of_time = now_millis()
                            + (delay + self.config.min_push_time).as_millis() as u64
                            > deadline_ms;
                        if !out_of_time {
                            tokio::time::sleep(delay).await;
                        }
                        if !self
                            .invocations
                            .next_attempt(&mut inv, lease, failures, &message)
                            .await?
                        {
                            return Ok(Driven::Running); // another driver owns it now
                        }
                        continue;
                    }
                }
            };
            let outcome = self.store_output(&inv.id, outcome).await?;
            if let Some(has_payloads) = self.finish(&inv, &outcome, tail.as_ref()).await? {
                self.notify_caller(&inv, &outcome).await?;
                self.clean_up(&inv, has_payloads).await;
                return Ok(Driven::Finished(outcome));
            }
            // Lost ownership while pushing: whoever owns it decides; report what is stored.
            return Ok(match self.invocations.get(&inv.id).await? {
                Some(Invocation {
                    status: Status::Completed | Status::Failed,
                    outcome: Some(o),
                    ..
                }) => Driven::Finished(o),
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
        if !inv.handler_kind.is_some_and(|k| k.writes_state()) {
            return Ok(self
                .invocations
                .finish(inv, outcome, tail, self.config.retention)
                .await?);
        }
        let journal = self.journal.load(&inv.id).await?;
        let delta = durable_protocol::StateDelta::from_journal(&journal);
        let Some(finished) = self
            .objects
            .finish(inv, outcome, tail, self.config.retention, &delta)
            .await?
        else {
            return Ok(None);
        };
        if let Some(next) = finished.next {
            self.send_event(&ControlEvent::Drive {
                invocation_id: next,
            })
            .await?;
        }
        Ok(Some(finished.has_payloads))
    }

    /// Completes timers that are already due (their wait fell short of the Lambda's time);
    /// `true` if any was, so the invocation is pushed again at once.
    async fn fire_due_timers(
        &self,
        id: &InvocationId,
        timers: &[Timer],
    ) -> Result<bool, OrchestratorError> {
        let now = now_millis();
        let mut fired = false;
        for timer in timers.iter().filter(|t| t.wake_at_ms <= now) {
            self.journal
                .complete(
                    id,
                    timer.index,
                    durable_protocol::EntryTag::Sleep,
                    &StepResult::Value(serde_json::Value::Null),
                )
                .await?;
            fired = true;
        }
        Ok(fired)
    }

    /// One push of `inv` to its pinned handler version.
    async fn push(
        &self,
        inv: &Invocation,
        journal: Vec<durable_protocol::JournalEntry>,
        call: &Call,
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
                inv.service.clone(),
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
        let result = self
            .lambda
            .invoke()
            .function_name(&inv.function_arn)
            .payload(Blob::new(payload))
            .send()
            .await;
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
        if self.config.self_function.is_none() {
            tracing::warn!(id = %inv.id, "out of time and no AWS_LAMBDA_FUNCTION_NAME to hand off to; the lease sweep will resume it");
            return Ok(());
        }
        self.send_event(&ControlEvent::Drive {
            invocation_id: inv.id.clone(),
        })
        .await?;
        tracing::info!(id = %inv.id, "handed off to a fresh orchestrator call");
        Ok(())
    }

    /// Sends this function an event asynchronously (a fresh call handles it).
    pub async fn send_event(&self, event: &ControlEvent) -> Result<(), OrchestratorError> {
        let function = self.config.self_function.as_deref().ok_or_else(|| {
            OrchestratorError::Protocol(
                "AWS_LAMBDA_FUNCTION_NAME is not set: cannot dispatch work".into(),
            )
        })?;
        let payload =
            serde_json::to_vec(event).map_err(|e| OrchestratorError::Protocol(e.to_string()))?;
        self.lambda
            .invoke()
            .function_name(function)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(|e| OrchestratorError::Lambda {
                operation: "Invoke",
                message: aws_sdk_lambda::error::DisplayErrorContext(&e).to_string(),
            })?;
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
            now_millis() / 1000 + (self.config.retention + self.config.journal_grace).as_secs()
        })
    }

    /// After an invocation finished: a kept journal gets its TTL (the retention period, like
    /// the metadata item; a journal written in one attempt has it already) and its payloads in
    /// S3 are deleted (not its output). Failures are logged: the outcome is recorded already.
    async fn clean_up(&self, inv: &Invocation, has_payloads: bool) {
        let id = &inv.id;
        if inv.journal_kept {
            let expires_at = now_millis() / 1000 + self.config.retention.as_secs();
            if let Err(e) = self.journal.expire_all(id, expires_at).await {
                tracing::warn!(%id, error = %e, "could not set the TTL of a finished invocation's journal");
            }
        }
        if has_payloads {
            if let Err(e) = self.payloads.delete_all(id).await {
                tracing::warn!(%id, error = %e, "could not remove the payloads of a finished invocation");
            }
        }
    }

    /// A finished child of `ctx.call`: its result completes the caller's entry (once), and the
    /// caller is resumed in a fresh call.
    pub async fn notify_caller(
        &self,
        inv: &Invocation,
        outcome: &Outcome,
    ) -> Result<(), OrchestratorError> {
        let Some(caller) = &inv.caller else {
            return Ok(());
        };
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
        self.journal
            .complete(
                &caller.invocation,
                caller.entry,
                durable_protocol::EntryTag::Call,
                &result,
            )
            .await?;
        self.send_event(&ControlEvent::Resume {
            invocation_id: caller.invocation.clone(),
            entry: caller.entry,
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable_protocol::MinuteRange;

    fn config() -> Config {
        Config {
            table: "t".into(),
            max_attempts: 5,
            retry_initial: Duration::from_millis(200),
            retry_max: Duration::from_secs(2),
            retention: Duration::from_secs(60),
            journal_grace: Duration::from_secs(3600),
            registry_cache: Duration::ZERO,
            min_push_time: Duration::from_secs(1),
            sweep_grace: Duration::from_secs(30),
            self_function: None,
            scheduler_role_arn: None,
            schedule_group: "default".into(),
            timer_lead: Duration::ZERO,
            bucket: None,
            limits: Default::default(),
        }
    }

    #[test]
    fn step_failures_count_consecutive_failures_of_one_step() {
        assert_eq!(
            next_step_failures(None, Some(2)),
            Some(StepFailures { index: 2, count: 1 })
        );
        let one = Some(StepFailures { index: 2, count: 1 });
        assert_eq!(
            next_step_failures(one, Some(2)),
            Some(StepFailures { index: 2, count: 2 })
        );
        assert_eq!(
            next_step_failures(one, Some(3)),
            Some(StepFailures { index: 3, count: 1 })
        );
        assert_eq!(next_step_failures(one, None), None);
    }

    #[test]
    fn retry_delays_back_off_and_are_capped() {
        let c = config();
        assert_eq!(retry_delay(&c, 1, None), Duration::from_millis(200));
        assert_eq!(retry_delay(&c, 3, None), Duration::from_millis(800));
        assert_eq!(retry_delay(&c, 30, None), Duration::from_secs(2));
        assert_eq!(
            retry_delay(&c, 1, Some(Duration::from_millis(50))),
            Duration::from_millis(50)
        );
        assert_eq!(
            retry_delay(&c, 1, Some(Duration::from_secs(60))),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn sweep_events_parse_with_and_without_minutes() {
        assert_eq!(
            serde_json::from_str::<ControlEvent>(r#"{"type":"sweep"}"#).unwrap(),
            ControlEvent::Sweep { minutes: None },
            "what the schedule sends"
        );
        assert_eq!(
            serde_json::from_str::<ControlEvent>(
                r#"{"type":"sweep","minutes":{"from":29400000,"to":29400002}}"#
            )
            .unwrap(),
            ControlEvent::Sweep {
                minutes: Some(MinuteRange {
                    from: 29_400_000,
                    to: 29_400_002
                })
            }
        );
    }

    #[test]
    fn replies_are_classified() {
        let crash = br#"{"errorType":"Runtime.ExitError","errorMessage":"RequestId: x Error: Runtime exited with error: exit status 1"}"#;
        match classify(Some("Unhandled"), crash) {
            Reply::Retry {
                message,
                step: None,
                ..
            } => assert!(message.contains("Runtime.ExitError"), "{message}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            classify(None, br#"{"status":"completed","output":{"ok":true}}"#),
            Reply::Finished {
                outcome: Outcome::Completed(serde_json::json!({"ok": true})),
                tail: None
            }
        );
        let with_tail = br#"{"status":"completed","output":7,"tail":{"index":2,"kind":"run","name":"last","result":{"value":7}}}"#;
        match classify(None, with_tail) {
            Reply::Finished {
                outcome: Outcome::Completed(output),
                tail: Some(tail),
            } => {
                assert_eq!(output, serde_json::json!(7));
                assert_eq!(tail.index, 2);
                assert_eq!(tail.kind.name(), "last");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            classify(
                None,
                br#"{"status":"failed","failure":{"code":409,"message":"no"}}"#
            ),
            Reply::Finished {
                outcome: Outcome::Failed(TerminalFailure::new(409, "no")),
                tail: None
            }
        );
        assert_eq!(
            classify(
                None,
                br#"{"status":"retryable","message":"m","step":1,"retry_after_ms":30}"#
            ),
            Reply::Retry {
                message: "m".into(),
                step: Some(1),
                retry_after: Some(Duration::from_millis(30))
            }
        );
        assert!(
            matches!(classify(None, b"\"hello\""), Reply::Retry { message, .. } if message.contains("not a durable handler response"))
        );
    }

    #[test]
    fn control_events_parse() {
        let e: ControlEvent =
            serde_json::from_str(r#"{"type":"register","function_arn":"arn:x"}"#).unwrap();
        assert_eq!(
            e,
            ControlEvent::Register {
                function_arn: "arn:x".into()
            }
        );
    }
}
