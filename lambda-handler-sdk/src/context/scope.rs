//! Scopes: blocks that number their durable operations on their own (`ctx.scope`), so that
//! operations of concurrently running blocks never depend on timing; and `ctx.map` and
//! `ctx.parallel`, which run each item or branch in its own scope with a concurrency limit and
//! a completion policy. A scope's result is recorded once (large ones in S3, like step
//! results): a replay of a finished scope returns it without running the block again.

use crate::context::run::{decode, record_outcome};
use crate::context::Sealed;
use crate::error::{ErrorKind, HandlerError, TerminalError};
use crate::runtime::attempt::{Abort, BoxFuture};
use crate::runtime::divergence::mismatch;
use crate::runtime::scope::Scope;
use durable_protocol::{EntryKind, StepResult, TerminalFailure};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

/// Runs `body` as the scope at `index` of `parent`'s scope: its recorded result on replay, else
/// the block with a context numbering its operations under the scope's path.
pub(crate) async fn run_scope<C, T, Fut>(
    parent: C,
    index: u32,
    name: String,
    body: impl FnOnce(C) -> Fut,
) -> Result<T, TerminalError>
where
    C: Sealed,
    T: Serialize + DeserializeOwned,
    Fut: Future<Output = Result<T, HandlerError>>,
{
    let ctx = parent.context().clone();
    let inv = &ctx.inner;
    if let Some(entry) = inv.recorded(index) {
        return match &entry.kind {
            EntryKind::Scope {
                name: recorded,
                result,
            } if *recorded == name => decode(inv, index, &name, result.clone()).await,
            other => {
                let asked = EntryKind::Scope {
                    name,
                    result: StepResult::Value(serde_json::Value::Null),
                };
                inv.abort(Abort::Fatal(mismatch(index, other, &asked)))
                    .await
            }
        };
    }
    let started_at = durable_protocol::clock::now_millis();
    let scope = Arc::new(Scope::at(inv.path_of(index)));
    let inner = parent.rescoped(ctx.in_scope(scope));
    let result = match body(inner).await {
        Ok(value) => match serde_json::to_value(&value) {
            Ok(json) => StepResult::Value(json),
            Err(e) => StepResult::Failure(TerminalFailure::new(
                TerminalFailure::INTERNAL,
                format!("the result of scope {name:?} does not serialize to JSON: {e}"),
            )),
        },
        Err(HandlerError(ErrorKind::Terminal(t))) => StepResult::Failure(t.into()),
        Err(HandlerError(ErrorKind::Retryable(message))) => {
            let message = format!("scope {name:?} failed: {message}");
            return inv.abort(Abort::retry(message)).await;
        }
    };
    inv.stop_if_failed().await;
    record_outcome(inv, index, &name, result, started_at, |name, result| {
        EntryKind::Scope { name, result }
    })
    .await
}

/// When a map or parallel stops: by default once every item finished (successfully or
/// not); earlier when enough succeeded or too many failed. Items not started by then are
/// reported as not started, running ones as cancelled (their futures are dropped; children
/// they called keep running).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CompletionPolicy {
    min_successful: Option<usize>,
    tolerated_failures: Option<usize>,
    tolerated_failure_percentage: Option<f64>,
}

impl CompletionPolicy {
    /// Run every item, whatever fails (the default).
    pub fn all_completed() -> Self {
        Self::default()
    }

    /// Stop at the first failure.
    pub fn fail_fast() -> Self {
        Self::default().tolerated_failures(0)
    }

    /// Stop as soon as `n` items succeeded (or once `n` can no longer be reached).
    pub fn min_successful(mut self, n: usize) -> Self {
        self.min_successful = Some(n);
        self
    }

    /// Stop once more than `n` items failed.
    pub fn tolerated_failures(mut self, n: usize) -> Self {
        self.tolerated_failures = Some(n);
        self
    }

    /// Stop once more than `percent` of all items failed (0 to 100).
    pub fn tolerated_failure_percentage(mut self, percent: f64) -> Self {
        self.tolerated_failure_percentage = Some(percent);
        self
    }

    fn validate(&self, total: usize) -> Result<(), TerminalError> {
        let invalid = |m: String| Err(TerminalError::new(m).with_code(400));
        if let Some(min) = self.min_successful {
            if min > total {
                return invalid(format!(
                    "min_successful is {min}, but there are only {total} items"
                ));
            }
        }
        if let Some(p) = self.tolerated_failure_percentage {
            if !(0.0..=100.0).contains(&p) {
                return invalid(format!(
                    "tolerated_failure_percentage must be within 0..=100, not {p}"
                ));
            }
        }
        Ok(())
    }

    /// Whether the batch is decided after `succeeded` and `failed` of `total` items finished.
    fn decide(&self, total: usize, succeeded: usize, failed: usize) -> Option<CompletionReason> {
        let finished = succeeded + failed;
        if let Some(min) = self.min_successful {
            if succeeded >= min {
                return Some(CompletionReason::MinSuccessfulReached);
            }
            if succeeded + (total - finished) < min {
                return Some(CompletionReason::FailureToleranceExceeded);
            }
        }
        if self.tolerated_failures.is_some_and(|t| failed > t) {
            return Some(CompletionReason::FailureToleranceExceeded);
        }
        if self
            .tolerated_failure_percentage
            .is_some_and(|p| total > 0 && (failed as f64) * 100.0 / (total as f64) > p)
        {
            return Some(CompletionReason::FailureToleranceExceeded);
        }
        (finished == total).then_some(CompletionReason::AllCompleted)
    }
}

/// Why a batch stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompletionReason {
    /// Every item finished.
    AllCompleted,
    /// Enough items succeeded (`min_successful`).
    MinSuccessfulReached,
    /// Too many items failed, or `min_successful` could no longer be reached.
    FailureToleranceExceeded,
}

/// What became of one item of a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ItemOutcome<T> {
    /// It returned a value.
    Succeeded { value: T },
    /// It failed with a terminal error.
    Failed { code: u16, message: String },
    /// The batch was decided before it started.
    NotStarted,
    /// The batch was decided while it ran.
    Cancelled,
}

impl<T> ItemOutcome<T> {
    /// Its value, if it succeeded.
    pub fn value(&self) -> Option<&T> {
        match self {
            ItemOutcome::Succeeded { value } => Some(value),
            _ => None,
        }
    }

    /// Its error, if it failed.
    pub fn error(&self) -> Option<TerminalError> {
        match self {
            ItemOutcome::Failed { code, message } => {
                Some(TerminalError::new(message.clone()).with_code(*code))
            }
            _ => None,
        }
    }
}

/// The result of a map or parallel: one outcome per item, in item order, and why it stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchResult<T> {
    /// The outcome of each item, in the order the items were given.
    pub items: Vec<ItemOutcome<T>>,
    /// Why the batch stopped.
    pub reason: CompletionReason,
}

impl<T> BatchResult<T> {
    /// The items that succeeded, with their positions.
    pub fn succeeded(&self) -> impl Iterator<Item = (usize, &T)> {
        self.items
            .iter()
            .enumerate()
            .filter_map(|(i, o)| o.value().map(|v| (i, v)))
    }

    /// The items that failed, with their positions.
    pub fn failed(&self) -> impl Iterator<Item = (usize, TerminalError)> + '_ {
        self.items
            .iter()
            .enumerate()
            .filter_map(|(i, o)| o.error().map(|e| (i, e)))
    }

    /// The errors of the items that failed, in item order.
    pub fn errors(&self) -> Vec<TerminalError> {
        self.failed().map(|(_, e)| e).collect()
    }

    /// How many items succeeded.
    pub fn success_count(&self) -> usize {
        self.succeeded().count()
    }

    /// How many items failed.
    pub fn failure_count(&self) -> usize {
        self.failed().count()
    }

    /// Whether any item failed.
    pub fn has_failure(&self) -> bool {
        self.failed().next().is_some()
    }

    /// The first item's error, if any failed (then `?` stops the handler like a failed step).
    pub fn throw_if_error(&self) -> Result<(), TerminalError> {
        match self.failed().next() {
            Some((i, e)) => Err(
                TerminalError::new(format!("item {i} failed: {}", e.message())).with_code(e.code()),
            ),
            None => Ok(()),
        }
    }

    /// Every item's value in item order, or the first failure; items that did not run (the
    /// policy stopped the batch early) are an error too (409).
    pub fn into_values(self) -> Result<Vec<T>, TerminalError> {
        self.throw_if_error()?;
        self.items
            .into_iter()
            .enumerate()
            .map(|(i, o)| match o {
                ItemOutcome::Succeeded { value } => Ok(value),
                other => Err(TerminalError::new(format!(
                    "item {i} did not run to the end ({})",
                    match other {
                        ItemOutcome::NotStarted => "not started",
                        _ => "cancelled",
                    }
                ))
                .with_code(409)),
            })
            .collect()
    }
}

/// One item or branch: a block run in its own scope.
type Task<'a, C, T> = Box<dyn FnOnce(C) -> BoxFuture<'a, Result<T, HandlerError>> + Send + 'a>;

/// Settings shared by map and parallel.
#[derive(Debug, Clone, Copy, Default)]
struct Limits {
    max_concurrency: Option<usize>,
    policy: CompletionPolicy,
}

/// Runs `tasks` in the scope `ctx` (the batch's own), at most `max_concurrency` at a time, each
/// in the scope reserved for its position, until the policy decides.
async fn drive<'a, C, T>(
    ctx: C,
    name: &str,
    tasks: Vec<Task<'a, C, T>>,
    limits: Limits,
) -> Result<BatchResult<T>, HandlerError>
where
    C: Sealed + Clone + 'a,
    T: Serialize + DeserializeOwned + Send + 'a,
{
    let total = tasks.len();
    let max = limits.max_concurrency.unwrap_or(total.max(1));
    let plain = ctx.context().clone();
    let first = plain.scope.reserve(total as u32);
    let mut outcomes: Vec<Option<ItemOutcome<T>>> = (0..total).map(|_| None).collect();
    let mut waiting = tasks.into_iter().enumerate();
    let mut running: Vec<(usize, BoxFuture<'a, Result<T, TerminalError>>)> = Vec::new();
    let (mut succeeded, mut failed) = (0, 0);
    let mut reason = limits.policy.decide(total, 0, 0);
    while reason.is_none() {
        while running.len() < max {
            let Some((i, task)) = waiting.next() else {
                break;
            };
            let index = plain
                .inner
                .allocate_reserved(&plain.scope, first + i as u32);
            let item = run_scope(ctx.clone(), index, format!("{name}/{i}"), task);
            running.push((i, plain.receiving(index, item)));
        }
        let finished = std::future::poll_fn(|cx| {
            let mut done = Vec::new();
            running.retain_mut(|(i, fut)| match Pin::new(fut).poll(cx) {
                Poll::Ready(r) => {
                    done.push((*i, r));
                    false
                }
                Poll::Pending => true,
            });
            if done.is_empty() {
                Poll::Pending
            } else {
                Poll::Ready(done)
            }
        })
        .await;
        for (i, result) in finished {
            outcomes[i] = Some(match result {
                Ok(value) => {
                    succeeded += 1;
                    ItemOutcome::Succeeded { value }
                }
                Err(e) => {
                    failed += 1;
                    ItemOutcome::Failed {
                        code: e.code(),
                        message: e.message().to_owned(),
                    }
                }
            });
        }
        reason = limits.policy.decide(total, succeeded, failed);
    }
    for (i, _) in running {
        outcomes[i] = Some(ItemOutcome::Cancelled);
    }
    let items = outcomes
        .into_iter()
        .map(|o| o.unwrap_or(ItemOutcome::NotStarted))
        .collect();
    Ok(BatchResult {
        items,
        reason: reason.expect("the loop ends decided"),
    })
}

/// Takes the batch's journal index in `ctx`'s scope now (program order) and returns the
/// batch's future.
fn start_batch<'a, C, T>(
    ctx: &'a C,
    name: &'a str,
    tasks: Vec<Task<'a, C, T>>,
    limits: Limits,
) -> BoxFuture<'a, Result<BatchResult<T>, TerminalError>>
where
    C: Sealed + Clone + 'a,
    T: Serialize + DeserializeOwned + Send + 'a,
{
    let plain = ctx.context();
    let index = plain.allocate();
    plain.receiving(index, run_batch(ctx.clone(), index, name, tasks, limits))
}

/// Checks the settings, then runs the batch as one scope whose result is recorded.
async fn run_batch<'a, C, T>(
    ctx: C,
    index: u32,
    name: &'a str,
    tasks: Vec<Task<'a, C, T>>,
    limits: Limits,
) -> Result<BatchResult<T>, TerminalError>
where
    C: Sealed + Clone + 'a,
    T: Serialize + DeserializeOwned + Send + 'a,
{
    if limits.max_concurrency == Some(0) {
        return Err(TerminalError::new("max_concurrency must be at least 1").with_code(400));
    }
    limits.policy.validate(tasks.len())?;
    run_scope(ctx, index, name.to_owned(), move |ctx| {
        drive(ctx, name, tasks, limits)
    })
    .await
}

/// A map being built by [`DurableContext::map`](crate::DurableContext::map); `.await` it.
#[must_use = "a map does nothing until it is awaited"]
pub struct Map<'a, C, I, F> {
    ctx: &'a C,
    name: &'a str,
    items: Vec<I>,
    f: F,
    limits: Limits,
}

impl<'a, C, I, F> Map<'a, C, I, F> {
    pub(crate) fn new(ctx: &'a C, name: &'a str, items: Vec<I>, f: F) -> Self {
        Self {
            ctx,
            name,
            items,
            f,
            limits: Limits::default(),
        }
    }

    /// At most `n` items run at once (at least 1; unlimited by default).
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.limits.max_concurrency = Some(n);
        self
    }

    /// When the map stops (every item by default).
    pub fn completion(mut self, policy: CompletionPolicy) -> Self {
        self.limits.policy = policy;
        self
    }
}

impl<C, I, F> std::fmt::Debug for Map<'_, C, I, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Map")
            .field("name", &self.name)
            .field("items", &self.items.len())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl<'a, C, I, T, F, Fut> IntoFuture for Map<'a, C, I, F>
where
    C: Sealed + Clone + 'a,
    I: Send + 'a,
    T: Serialize + DeserializeOwned + Send + 'a,
    F: Fn(C, I) -> Fut + Send + Sync + 'a,
    Fut: Future<Output = Result<T, HandlerError>> + Send + 'a,
{
    type Output = Result<BatchResult<T>, TerminalError>;
    type IntoFuture = BoxFuture<'a, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        let f = Arc::new(self.f);
        let tasks: Vec<Task<'a, C, T>> = self
            .items
            .into_iter()
            .map(|item| {
                let f = f.clone();
                Box::new(move |ctx: C| {
                    Box::pin(async move { f(ctx, item).await }) as BoxFuture<'a, _>
                }) as Task<'a, C, T>
            })
            .collect();
        start_batch(self.ctx, self.name, tasks, self.limits)
    }
}

/// A parallel being built by [`DurableContext::parallel`](crate::DurableContext::parallel):
/// add branches, then `.await` it.
#[must_use = "a parallel does nothing until it is awaited"]
pub struct Parallel<'a, C, T> {
    ctx: &'a C,
    name: &'a str,
    branches: Vec<Task<'a, C, T>>,
    limits: Limits,
}

impl<'a, C, T> Parallel<'a, C, T> {
    pub(crate) fn new(ctx: &'a C, name: &'a str) -> Self {
        Self {
            ctx,
            name,
            branches: Vec::new(),
            limits: Limits::default(),
        }
    }

    /// Adds a branch: a block run in its own scope, given its own context.
    pub fn branch<F, Fut>(mut self, f: F) -> Self
    where
        F: FnOnce(C) -> Fut + Send + 'a,
        Fut: Future<Output = Result<T, HandlerError>> + Send + 'a,
    {
        self.branches
            .push(Box::new(move |ctx| Box::pin(f(ctx)) as BoxFuture<'a, _>));
        self
    }

    /// At most `n` branches run at once (at least 1; unlimited by default).
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.limits.max_concurrency = Some(n);
        self
    }

    /// When the parallel stops (every branch by default).
    pub fn completion(mut self, policy: CompletionPolicy) -> Self {
        self.limits.policy = policy;
        self
    }
}

impl<C, T> std::fmt::Debug for Parallel<'_, C, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parallel")
            .field("name", &self.name)
            .field("branches", &self.branches.len())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl<'a, C, T> IntoFuture for Parallel<'a, C, T>
where
    C: Sealed + Clone + 'a,
    T: Serialize + DeserializeOwned + Send + 'a,
{
    type Output = Result<BatchResult<T>, TerminalError>;
    type IntoFuture = BoxFuture<'a, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        start_batch(self.ctx, self.name, self.branches, self.limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_decide_as_documented() {
        let all = CompletionPolicy::all_completed();
        assert_eq!(all.decide(3, 1, 1), None);
        assert_eq!(all.decide(3, 1, 2), Some(CompletionReason::AllCompleted));
        assert_eq!(all.decide(0, 0, 0), Some(CompletionReason::AllCompleted));
        let fast = CompletionPolicy::fail_fast();
        assert_eq!(
            fast.decide(5, 0, 1),
            Some(CompletionReason::FailureToleranceExceeded)
        );
        let min = CompletionPolicy::default().min_successful(2);
        assert_eq!(min.decide(4, 1, 1), None);
        assert_eq!(
            min.decide(4, 2, 0),
            Some(CompletionReason::MinSuccessfulReached)
        );
        assert_eq!(
            min.decide(4, 1, 3),
            Some(CompletionReason::FailureToleranceExceeded),
            "2 successes can no longer be reached"
        );
        let pct = CompletionPolicy::default().tolerated_failure_percentage(25.0);
        assert_eq!(pct.decide(8, 0, 2), None);
        assert_eq!(
            pct.decide(8, 0, 3),
            Some(CompletionReason::FailureToleranceExceeded)
        );
        assert!(CompletionPolicy::default()
            .min_successful(4)
            .validate(3)
            .is_err());
        assert!(CompletionPolicy::default()
            .tolerated_failure_percentage(101.0)
            .validate(3)
            .is_err());
    }

    #[test]
    fn batch_results_report_items_in_order() {
        let batch = BatchResult {
            items: vec![
                ItemOutcome::Succeeded { value: 1 },
                ItemOutcome::Failed {
                    code: 402,
                    message: "declined".into(),
                },
                ItemOutcome::NotStarted,
                ItemOutcome::Cancelled,
            ],
            reason: CompletionReason::FailureToleranceExceeded,
        };
        assert_eq!(batch.succeeded().collect::<Vec<_>>(), vec![(0, &1)]);
        assert_eq!(batch.failure_count(), 1);
        assert!(batch.has_failure());
        assert_eq!(batch.errors()[0].code(), 402);
        assert_eq!(batch.throw_if_error().unwrap_err().code(), 402);
        let json = serde_json::to_value(&batch).unwrap();
        assert_eq!(json["items"][1]["status"], "failed");
        assert_eq!(
            serde_json::from_value::<BatchResult<i32>>(json).unwrap(),
            batch
        );
        let unfinished = BatchResult {
            items: vec![ItemOutcome::Succeeded { value: 1 }, ItemOutcome::NotStarted],
            reason: CompletionReason::MinSuccessfulReached,
        };
        assert_eq!(unfinished.into_values().unwrap_err().code(), 409);
    }
}
