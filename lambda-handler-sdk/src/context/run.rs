//! Durable steps: `ctx.run(name, closure)`, its builder and the step's record-or-replay.

use crate::context::Context;
use crate::error::{ErrorKind, HandlerError, TerminalError};
use crate::retry::RetryPolicy;
use crate::runtime::attempt::{Abort, Attempt, BoxFuture};
use crate::runtime::divergence::mismatch;
use durable_protocol::{EntryKind, JournalEntry, StepResult, TerminalFailure};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::sync::Arc;

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
        let index = self.ctx.inner.allocate_index();
        Box::pin(run_step(
            self.ctx.inner.clone(),
            index,
            self.name,
            self.closure,
            self.policy,
        ))
    }
}

fn asked_run(name: &str) -> EntryKind {
    EntryKind::Run {
        name: name.to_owned(),
        result: StepResult::Value(serde_json::Value::Null),
    }
}

async fn decode<T: DeserializeOwned>(
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
                        "the recorded result of step {name:?} (journal entry {index}) does not \
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
    let attempt = inv.previous_failures(index) + 1;
    let result = match closure().await {
        Ok(value) => match serde_json::to_value(&value) {
            Ok(json) => StepResult::Value(json),
            Err(e) => StepResult::Failure(TerminalFailure::new(
                500,
                format!("the result of step {name:?} does not serialize to JSON: {e}"),
            )),
        },
        Err(HandlerError(ErrorKind::Terminal(t))) => StepResult::Failure(t.into()),
        Err(HandlerError(ErrorKind::Retryable(message))) => {
            if policy.exhausted_after(attempt) {
                StepResult::Failure(TerminalFailure::new(
                    500,
                    format!("step {name:?} failed {attempt} times, the last time with: {message}"),
                ))
            } else {
                tracing::warn!(step = name, attempt, error = %message, "step failed; the invocation will be retried");
                let retry_after = Some(policy.delay_after(attempt));
                return inv
                    .abort(Abort::Retry {
                        message: format!("step {name:?} failed: {message}"),
                        step: Some(index),
                        retry_after,
                    })
                    .await;
            }
        }
    };

    // Large results go to S3; the entry keeps a reference.
    let (result, recorded) = match result {
        StepResult::Value(v) => match inv.offload(&format!("j{index}"), v.clone()).await {
            Ok(stored) => (StepResult::Value(v), StepResult::Value(stored)),
            Err(durable_store::PayloadError::TooLarge { size, max }) => {
                let failure = StepResult::Failure(TerminalFailure::new(
                    413,
                    format!("the result of step {name:?} is {size} bytes, over the limit of {max}"),
                ));
                (failure.clone(), failure)
            }
            Err(e) => {
                let message = format!("could not store the result of step {name:?}: {e}");
                return inv.abort(Abort::retry(message)).await;
            }
        },
        failure => (failure.clone(), failure),
    };
    let entry = JournalEntry::new(
        index,
        EntryKind::Run {
            name: name.to_owned(),
            result: recorded,
        },
    );
    // Recorded before the next durable operation, or with the outcome if the handler
    // returns first (one write fewer for a run that ends with a step).
    match inv.defer(entry).await {
        Ok(()) => decode(&inv, index, name, result).await,
        Err(reason) => inv.abort(reason).await,
    }
}
