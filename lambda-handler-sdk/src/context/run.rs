//! Durable steps: `ctx.run(name, closure)`, its builder and the step's record-or-replay.

use crate::context::Context;
use crate::error::{ErrorKind, HandlerError, TerminalError};
use crate::retry::RetryPolicy;
use crate::runtime::attempt::{Abort, Attempt, BoxFuture};
use crate::runtime::divergence::mismatch;
use durable_protocol::{EntryKind, EntryTag, StepResult, TerminalFailure};
use durable_store::{Appended, Completed, Completer};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::sync::Arc;

tokio::task_local! {
    /// The attempt number of the step whose closure is running.
    static STEP_ATTEMPT: u32;
}

/// Inside a `ctx.run` closure: which attempt of the step this is (1 the first time, 2 after one
/// retryable failure, ...). `None` outside a step's closure.
pub fn step_attempt() -> Option<u32> {
    STEP_ATTEMPT.try_with(|a| *a).ok()
}

/// A number in `[0, 1)` for retry jitter: random per process and call, never replayed.
fn jitter_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// How often a step's closure may run per try (a try ends with a result or a retryable error;
/// the step's [`RetryPolicy`] decides how many tries there are).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StepSemantics {
    /// The closure may run again in the same try if the attempt dies before its result is
    /// recorded (no write before it runs). The default: idempotent work, one write per step.
    #[default]
    AtLeastOncePerRetry,
    /// A marker is recorded before the closure runs; an attempt that finds a try started and
    /// unfinished (the attempt died, or timed out, mid-closure) does not run it again but
    /// fails that try as interrupted: retried per the step's policy (a fresh try, with a
    /// marker of its own) or, with no tries left, a terminal `500`. For work that must not be
    /// repeated blindly (a payment without an idempotency key). Costs a second write.
    AtMostOncePerRetry,
}

/// A step being built by [`DurableContext::run`](crate::DurableContext::run); `.await` it to run it.
#[must_use = "a step does nothing until it is awaited"]
pub struct Run<'a, T, F> {
    ctx: &'a Context,
    name: &'a str,
    closure: F,
    policy: RetryPolicy,
    semantics: StepSemantics,
    _t: PhantomData<fn() -> T>,
}

impl<T, F> std::fmt::Debug for Run<'_, T, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("name", &self.name)
            .field("policy", &self.policy)
            .field("semantics", &self.semantics)
            .finish_non_exhaustive()
    }
}

impl<'a, T, F> Run<'a, T, F> {
    pub(crate) fn new(ctx: &'a Context, name: &'a str, closure: F) -> Self {
        Self {
            ctx,
            name,
            closure,
            policy: RetryPolicy::default(),
            semantics: StepSemantics::default(),
            _t: PhantomData,
        }
    }

    /// Sets the retry policy of this step.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets how often the closure may run per try (see [`StepSemantics`]).
    pub fn semantics(mut self, semantics: StepSemantics) -> Self {
        self.semantics = semantics;
        self
    }
}

impl<'a, T, F, Fut> IntoFuture for Run<'a, T, F>
where
    T: Serialize + DeserializeOwned + Send + 'a,
    F: FnOnce() -> Fut + Send + 'a,
    Fut: Future<Output = Result<T, HandlerError>> + Send + 'a,
{
    type Output = Result<T, TerminalError>;
    type IntoFuture = BoxFuture<'a, Result<T, TerminalError>>;

    fn into_future(self) -> Self::IntoFuture {
        // The index is taken here, when the step is awaited or joined, in program order.
        let index = self.ctx.allocate();
        // A replayed step with its result needs none of the step's machinery: a small future
        // decodes it (a long replay then allocates per entry what the result needs, not the
        // whole step's state machine).
        if let Some(result) = replayed_result(&self.ctx.inner, index, self.name) {
            let (inv, name) = (self.ctx.inner.clone(), self.name);
            return self.ctx.receiving(
                index,
                async move { decode(&inv, index, name, result).await },
            );
        }
        self.ctx.receiving(
            index,
            run_step(
                self.ctx.inner.clone(),
                index,
                self.name,
                self.closure,
                (self.policy, self.semantics),
            ),
        )
    }
}

/// The recorded result of step `name` at `index`, if it finished (in any of its semantics).
fn replayed_result(inv: &Attempt, index: u32, name: &str) -> Option<StepResult> {
    let entry = inv.recorded(index)?;
    match (&entry.kind, &entry.completion) {
        (
            EntryKind::Run {
                name: recorded,
                result,
            },
            _,
        ) if recorded == name => Some(result.clone()),
        (EntryKind::Started { name: recorded, .. }, Some(result)) if recorded == name => {
            Some(result.clone())
        }
        _ => None,
    }
}

fn asked_run(name: &str) -> EntryKind {
    EntryKind::Run {
        name: name.to_owned(),
        result: StepResult::Value(serde_json::Value::Null),
    }
}

/// A recorded result as `T`; one that does not decode is a divergence (fatal).
pub(crate) async fn decode<T: DeserializeOwned>(
    inv: &Attempt,
    index: u32,
    name: &str,
    result: StepResult,
) -> Result<T, TerminalError> {
    match result {
        StepResult::Failure(f) => Err(f.into()),
        StepResult::Value(v) => match serde_json::from_value(inv.resolve(v).await) {
            Ok(t) => Ok(t),
            Err(e) => {
                let failure = TerminalFailure::new(
                    TerminalFailure::NON_DETERMINISM,
                    format!(
                        "the recorded result of {name:?} (journal entry {index}) does not \
                         decode as {}: {e}",
                        std::any::type_name::<T>()
                    ),
                );
                inv.abort(Abort::Fatal(failure)).await
            }
        },
    }
}

async fn run_step<T, F, Fut>(
    inv: Arc<Attempt>,
    index: u32,
    name: &str,
    closure: F,
    (policy, semantics): (RetryPolicy, StepSemantics),
) -> Result<T, TerminalError>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, HandlerError>>,
{
    // An at-most-once try that started earlier and has no result: `Some(its try)`.
    let mut unfinished = None;
    if let Some(entry) = inv.recorded(index) {
        match (&entry.kind, &entry.completion) {
            (
                EntryKind::Run {
                    name: recorded,
                    result,
                },
                _,
            ) if recorded == name => return decode(&inv, index, name, result.clone()).await,
            (
                EntryKind::Started {
                    name: recorded,
                    attempt,
                },
                completion,
            ) if recorded == name => match completion {
                Some(result) => return decode(&inv, index, name, result.clone()).await,
                None => unfinished = Some(*attempt),
            },
            (other, _) => {
                return inv
                    .abort(Abort::Fatal(mismatch(index, other, &asked_run(name))))
                    .await
            }
        }
    }

    let _busy = inv.busy();
    // The step before this one is recorded before this one's side effects start.
    if let Err(reason) = inv.flush_deferred().await {
        return inv.abort(reason).await;
    }
    inv.stop_if_aborted().await;
    inv.look_for_cancellation().await;
    let attempt = inv.previous_failures(index) + 1;
    let started_at = durable_protocol::clock::now_millis();
    if inv.take_cancellation() {
        // The invocation was cancelled: this step records it instead of running.
        let cancelled = StepResult::Failure(TerminalFailure::cancelled());
        return match unfinished {
            Some(_) => complete_started(&inv, index, name, cancelled).await,
            None => record_outcome(&inv, index, name, cancelled, started_at, run_kind).await,
        };
    }
    let at_most_once = match unfinished {
        Some(started) => {
            if let Some(failure) =
                start_another_try(&inv, index, name, &policy, started, attempt).await
            {
                return complete_started(&inv, index, name, StepResult::Failure(failure)).await;
            }
            true
        }
        None if semantics == StepSemantics::AtMostOncePerRetry => {
            if let Some(recorded) = mark_started(&inv, index, name, attempt, started_at).await {
                return decode(&inv, index, name, recorded).await;
            }
            true
        }
        None => false,
    };

    let injected = inv
        .faults
        .get()
        .and_then(|f| f.step_fault(&inv.id, name, attempt));
    let outcome = if let Some(fault) = injected {
        Err(fault)
    } else {
        use tracing::Instrument;
        let span = tracing::info_span!("step", step = name, entry = index, step_attempt = attempt);
        STEP_ATTEMPT
            .scope(attempt, closure())
            .instrument(span)
            .await
    };
    let result = match outcome {
        Ok(value) => match serde_json::to_value(&value) {
            Ok(json) => StepResult::Value(json),
            Err(e) => StepResult::Failure(TerminalFailure::new(
                500,
                format!("the result of step {name:?} does not serialize to JSON: {e}"),
            )),
        },
        Err(HandlerError(ErrorKind::Terminal(t))) => StepResult::Failure(t.into()),
        Err(HandlerError(ErrorKind::Retryable(message))) if !policy.retries(&message) => {
            StepResult::Failure(TerminalFailure::new(
                TerminalFailure::INTERNAL,
                format!(
                    "step {name:?} failed with an error its retry policy does not retry: {message}"
                ),
            ))
        }
        Err(HandlerError(ErrorKind::Retryable(message))) => {
            if policy.exhausted_after(attempt) {
                StepResult::Failure(TerminalFailure::new(
                    500,
                    format!("step {name:?} failed {attempt} times, the last time with: {message}"),
                ))
            } else {
                tracing::warn!(step = name, attempt, error = %message, "step failed; the invocation will be retried");
                let retry_after = Some(policy.jittered_delay_after(attempt, jitter_unit()));
                return inv
                    .abort(Abort::Retry {
                        message: format!("step {name:?} failed: {message}"),
                        step: Some(inv.step_key(index)),
                        retry_after,
                    })
                    .await;
            }
        }
    };

    if at_most_once {
        complete_started(&inv, index, name, result).await
    } else {
        record_outcome(&inv, index, name, result, started_at, run_kind).await
    }
}

fn run_kind(name: String, result: StepResult) -> EntryKind {
    EntryKind::Run { name, result }
}

/// Records that try `attempt` of the at-most-once step at `index` starts, before its closure
/// runs. `Some(result)` if another attempt recorded the step's result first; an attempt that
/// finds another's unfinished try ends (the next one judges it).
async fn mark_started(
    inv: &Attempt,
    index: u32,
    name: &str,
    attempt: u32,
    started_at: u64,
) -> Option<StepResult> {
    let mut marker = inv.entry(
        index,
        EntryKind::Started {
            name: name.to_owned(),
            attempt,
        },
    );
    marker.started_at_ms = Some(started_at);
    match inv.append(&marker).await {
        Ok(Appended::Written) => None,
        Ok(Appended::AlreadyRecorded(recorded)) if !inv.same_operation(&recorded) => {
            inv.abort(inv.taken(&recorded)).await
        }
        Ok(Appended::AlreadyRecorded(recorded)) => match (&recorded.kind, &recorded.completion) {
            (EntryKind::Run { result, .. }, _) if recorded.kind.same_command(&asked_run(name)) => {
                Some(result.clone())
            }
            (EntryKind::Started { .. }, Some(result)) if recorded.kind.name() == name => {
                Some(result.clone())
            }
            (EntryKind::Started { .. }, None) if recorded.kind.name() == name => {
                inv.abort(Abort::retry(format!(
                    "another attempt started step {name:?} (journal entry {index}) first"
                )))
                .await
            }
            (other, _) => {
                inv.abort(Abort::Fatal(mismatch(index, other, &asked_run(name))))
                    .await
            }
        },
        Err(e) => {
            inv.abort(Abort::retry(format!(
                "could not record that step {name:?} starts (journal entry {index}): {e}"
            )))
            .await
        }
    }
}

/// The at-most-once step at `index` has try `started` recorded and unfinished. If the
/// orchestrator counted it as failed (the closure returned a retryable error), try `attempt`
/// starts in its place; otherwise the try was interrupted (its attempt died mid-closure): it
/// is failed, and retried per `policy` by a later attempt, or, with no tries left, answered
/// as the step's terminal failure (`Some`).
async fn start_another_try(
    inv: &Attempt,
    index: u32,
    name: &str,
    policy: &RetryPolicy,
    started: u32,
    attempt: u32,
) -> Option<TerminalFailure> {
    if attempt > started {
        return match inv
            .sink
            .retry_started(&inv.id, index, (started, attempt), inv.writer)
            .await
        {
            Ok(true) => None,
            Ok(false) => {
                inv.abort(Abort::retry(format!(
                    "another attempt moved step {name:?} (journal entry {index}) on first"
                )))
                .await
            }
            Err(e) => {
                inv.abort(Abort::retry(format!(
                    "could not start try {attempt} of step {name:?}: {e}"
                )))
                .await
            }
        };
    }
    let message = format!(
        "step {name:?} was interrupted: its try {started} started and did not finish \
         (its attempt died or timed out), and an at-most-once step does not run it again"
    );
    if !policy.retries(&message) || policy.exhausted_after(started) {
        return Some(TerminalFailure::new(TerminalFailure::INTERNAL, message));
    }
    tracing::warn!(
        step = name,
        attempt = started,
        "{message}; the invocation will be retried"
    );
    inv.abort(Abort::Retry {
        message,
        step: Some(inv.step_key(index)),
        retry_after: Some(policy.jittered_delay_after(started, jitter_unit())),
    })
    .await
}

/// Writes `result` onto the at-most-once step's marker at `index` (a large value goes to S3)
/// and returns it decoded; a result another writer recorded first wins.
async fn complete_started<T: DeserializeOwned>(
    inv: &Attempt,
    index: u32,
    name: &str,
    result: StepResult,
) -> Result<T, TerminalError> {
    let (result, recorded) = match stored(inv, index, name, result).await {
        Ok(pair) => pair,
        Err(reason) => return inv.abort(reason).await,
    };
    inv.stop_if_failed().await;
    let completed = inv
        .sink
        .complete(&inv.id, index, EntryTag::Started, &recorded, Completer::Own)
        .await;
    match completed {
        Ok(Completed::Written) => decode(inv, index, name, result).await,
        Ok(Completed::AlreadyCompleted(first)) => decode(inv, index, name, first).await,
        other => {
            let why = match other {
                Ok(unexpected) => format!("{unexpected:?}"),
                Err(e) => e.to_string(),
            };
            inv.abort(Abort::retry(format!(
                "could not record the result of step {name:?} (journal entry {index}): {why}"
            )))
            .await
        }
    }
}

/// `result` as the handler gets it and as it is recorded: a large value goes to S3 and is
/// recorded as a reference; one over the limit becomes a `413` failure.
async fn stored(
    inv: &Attempt,
    index: u32,
    name: &str,
    result: StepResult,
) -> Result<(StepResult, StepResult), Abort> {
    match result {
        StepResult::Value(v) => match inv.offload(&format!("j{index}"), v.clone()).await {
            Ok(stored) => Ok((StepResult::Value(v), StepResult::Value(stored))),
            Err(durable_store::PayloadError::TooLarge { size, max }) => {
                let failure = StepResult::Failure(TerminalFailure::new(
                    413,
                    format!("the result of {name:?} is {size} bytes, over the limit of {max}"),
                ));
                Ok((failure.clone(), failure))
            }
            Err(e) => Err(Abort::retry(format!(
                "could not store the result of {name:?}: {e}"
            ))),
        },
        failure => Ok((failure.clone(), failure)),
    }
}

/// Records the outcome of the step or scope at `index` as `kind` (a large value goes to S3,
/// the entry keeps a reference) and returns it decoded. The write is deferred: it is made
/// before the next durable operation, or with the outcome if the handler returns first (one
/// write fewer for a run that ends with a step).
pub(crate) async fn record_outcome<T: DeserializeOwned>(
    inv: &Attempt,
    index: u32,
    name: &str,
    result: StepResult,
    started_at: u64,
    kind: fn(String, StepResult) -> EntryKind,
) -> Result<T, TerminalError> {
    let (result, recorded) = match stored(inv, index, name, result).await {
        Ok(pair) => pair,
        Err(reason) => return inv.abort(reason).await,
    };
    let mut entry = inv.entry(index, kind(name.to_owned(), recorded));
    entry.started_at_ms = Some(started_at);
    match inv.defer(entry).await {
        Ok(()) => decode(inv, index, name, result).await,
        Err(reason) => inv.abort(reason).await,
    }
}
