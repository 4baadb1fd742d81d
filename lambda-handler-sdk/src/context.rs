//! The context handlers get: durable steps now; sleeps, calls and state come with their kinds.

use crate::error::{ErrorKind, HandlerError, TerminalError};
use crate::invocation::{Abort, BoxFuture, Invocation};
use crate::retry::RetryPolicy;
use durable_protocol::{EntryKind, InvocationId, JournalEntry, StepResult, TerminalFailure};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::sync::Arc;

/// The context of a handler of a plain service. Cheap to clone.
#[derive(Clone)]
pub struct Context {
    pub(crate) inner: Arc<Invocation>,
}

impl Context {
    pub(crate) fn new(inner: Arc<Invocation>) -> Self {
        Self { inner }
    }

    /// The id of the running invocation (stable across retries).
    pub fn invocation_id(&self) -> &InvocationId {
        &self.inner.id
    }

    /// A durable step: runs `closure` once, records its result in the journal with one
    /// conditional write, and on replay returns the recorded result without running the
    /// closure again. The write is made as soon as the handler awaits anything after the step
    /// (another step, a sleep, a call, or any other future), before the handler goes on; a
    /// handler that returns without awaiting anything after its last step has that step
    /// recorded together with its outcome, in the same write.
    ///
    /// The closure may fail with a [`TerminalError`] (recorded, returned on every replay) or
    /// any other error (the attempt ends and the invocation is retried per the step's
    /// [`RetryPolicy`]). Side effects inside run at least once; their results exactly once.
    ///
    /// ```no_run
    /// # use lambda_handler_sdk::{Context, HandlerError};
    /// # async fn f(ctx: Context) -> Result<(), HandlerError> {
    /// let n: u32 = ctx.run("pick a number", || async { Ok(4) }).await?;
    /// # Ok(()) }
    /// ```
    pub fn run<'a, T, F, Fut>(&'a self, name: &'a str, closure: F) -> Run<'a, T, F>
    where
        T: Serialize + DeserializeOwned + Send + 'a,
        F: FnOnce() -> Fut + Send + 'a,
        Fut: Future<Output = Result<T, HandlerError>> + Send + 'a,
    {
        Run {
            ctx: self,
            name,
            closure,
            policy: RetryPolicy::default(),
            _t: PhantomData,
        }
    }
}

/// A step being built by [`Context::run`]; `.await` it to run it.
#[must_use = "a step does nothing until it is awaited"]
pub struct Run<'a, T, F> {
    ctx: &'a Context,
    name: &'a str,
    closure: F,
    policy: RetryPolicy,
    _t: PhantomData<fn() -> T>,
}

impl<T, F> Run<'_, T, F> {
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

/// The failure for replayed code that asks for `asked` where the journal recorded `recorded`.
pub(crate) fn mismatch(index: u32, recorded: &EntryKind, asked: &EntryKind) -> TerminalFailure {
    TerminalFailure::new(
        TerminalFailure::NON_DETERMINISM,
        format!(
            "non-deterministic replay at journal entry {index}: the journal recorded {} {:?}, \
             the code now asks for {} {:?}; handler code must take the same steps in the \
             same order on every replay",
            recorded.label(),
            recorded.name(),
            asked.label(),
            asked.name()
        ),
    )
}

fn asked_run(name: &str) -> EntryKind {
    EntryKind::Run {
        name: name.to_owned(),
        result: StepResult::Value(serde_json::Value::Null),
    }
}

async fn decode<T: DeserializeOwned>(
    inv: &Invocation,
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
    inv: Arc<Invocation>,
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
                return inv
                    .abort(Abort::Retry {
                        message,
                        step: None,
                        retry_after: None,
                    })
                    .await;
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
