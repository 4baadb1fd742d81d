//! Durable steps: `ctx.run(name, closure)`, its builder and the step's record-or-replay.

use crate::context::Context;
use crate::error::{ErrorKind, HandlerError, TerminalError};
use crate::retry::RetryPolicy;
use crate::runtime::attempt::{Abort, Attempt, BoxFuture};
use crate::runtime::divergence::mismatch;
use durable_protocol::{EntryKind, StepResult, TerminalFailure};
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

/// A step being built by [`DurableContext::run`](crate::DurableContext::run); `.await` it to run it.
#[must_use = "a step does nothing until it is awaited"]
pub struct Run<'a, T, F> {
    ctx: &'a Context,
    name: &'a str,
    closure: F,
    policy: RetryPolicy,
    _t: PhantomData<fn() -> T>,
}

impl<T, F> std::fmt::Debug for Run<'_, T, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("name", &self.name)
            .field("policy", &self.policy)
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
            _t: PhantomData,
        }
    }

    /// Sets the retry policy of this step.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
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
        self.ctx.receiving(
            index,
            run_step(
                self.ctx.inner.clone(),
                index,
                self.name,
                self.closure,
                self.policy,
            ),
        )
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
    policy: RetryPolicy,
) -> Result<T, TerminalError>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, HandlerError>>,
{
    if let Some(entry) = inv.recorded(index) {
        return match &entry.kind {
            EntryKind::Run {
                name: recorded,
                result,
            } if recorded == name => decode(&inv, index, name, result.clone()).await,
            other => {
                inv.abort(Abort::Fatal(mismatch(index, other, &asked_run(name))))
                    .await
            }
        };
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
    let injected = inv
        .faults
        .get()
        .and_then(|f| f.step_fault(&inv.id, name, attempt));
    let outcome = if inv.take_cancellation() {
        // The invocation was cancelled: this step records it instead of running.
        Err(HandlerError(ErrorKind::Terminal(
            TerminalFailure::cancelled().into(),
        )))
    } else if let Some(fault) = injected {
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

    record_outcome(&inv, index, name, result, started_at, |name, result| {
        EntryKind::Run { name, result }
    })
    .await
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
    let (result, recorded) = match result {
        StepResult::Value(v) => match inv.offload(&format!("j{index}"), v.clone()).await {
            Ok(stored) => (StepResult::Value(v), StepResult::Value(stored)),
            Err(durable_store::PayloadError::TooLarge { size, max }) => {
                let failure = StepResult::Failure(TerminalFailure::new(
                    413,
                    format!("the result of {name:?} is {size} bytes, over the limit of {max}"),
                ));
                (failure.clone(), failure)
            }
            Err(e) => {
                let message = format!("could not store the result of {name:?}: {e}");
                return inv.abort(Abort::retry(message)).await;
            }
        },
        failure => (failure.clone(), failure),
    };
    let mut entry = inv.entry(index, kind(name.to_owned(), recorded));
    entry.started_at_ms = Some(started_at);
    match inv.defer(entry).await {
        Ok(()) => decode(inv, index, name, result).await,
        Err(reason) => inv.abort(reason).await,
    }
}
