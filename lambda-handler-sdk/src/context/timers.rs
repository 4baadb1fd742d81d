//! Futures whose completion is recorded in the journal: timers and awakeables, and the
//! combinators over them (first of, all of, timeout). Awaiting one that is not complete ends
//! the Lambda call (suspension) once nothing else can make progress; the orchestrator pushes
//! the invocation again when it completes, and replay finds the completion in the journal.

use crate::context::run::Run;
use crate::context::{Context, Sealed};
use crate::error::HandlerError;
use crate::error::TerminalError;
use crate::runtime::attempt::{Abort, Attempt, BoxFuture, DEADLINE_MARGIN};
use crate::runtime::journal::{await_entry, record};
use durable_protocol::auth::Purpose;
use durable_protocol::clock::now_millis;
use durable_protocol::InvocationId;
use durable_protocol::{AwakeableId, EntryKind, StepResult, TerminalFailure};
use durable_store::Completed;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

/// A future backed by a journal entry (a timer or an awakeable). Its journal index was taken
/// when it was created, so creating durable futures in the same order on every replay is what
/// keeps the journal consistent.
#[must_use = "a durable future does nothing unless awaited"]
pub struct DurableFuture<T> {
    index: u32,
    inner: BoxFuture<'static, Result<T, TerminalError>>,
}

impl<T> DurableFuture<T> {
    pub(crate) fn new(index: u32, inner: BoxFuture<'static, Result<T, TerminalError>>) -> Self {
        Self { index, inner }
    }

    /// The journal index of the entry behind this future.
    pub fn index(&self) -> u32 {
        self.index
    }
}

impl<T> std::fmt::Debug for DurableFuture<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableFuture")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl<T> Future for DurableFuture<T> {
    type Output = Result<T, TerminalError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

/// One of two results, as returned by [`DurableContext::select2`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Either<A, B> {
    Left(A),
    Right(B),
}

async fn sleep_until(
    inv: Arc<Attempt>,
    index: u32,
    requested_wake_at: u64,
) -> Result<(), TerminalError> {
    let entry = record(
        &inv,
        index,
        EntryKind::Sleep {
            name: "sleep".into(),
            wake_at_ms: requested_wake_at,
        },
    )
    .await;
    let EntryKind::Sleep { wake_at_ms, .. } = entry.kind else {
        unreachable!("recorded a sleep")
    };
    if inv.completion(index).is_some() {
        return Ok(());
    }
    let now = now_millis();
    let remaining = Duration::from_millis(wake_at_ms.saturating_sub(now));
    let fits = now + (remaining + DEADLINE_MARGIN).as_millis() as u64 <= inv.limits.deadline_ms;
    if remaining <= inv.limits.in_process_wait && fits {
        // In-process work until the firing is recorded: the handler is not blocked on the outside.
        let _busy = inv.busy();
        tokio::time::sleep(remaining).await;
        let fired = StepResult::Value(serde_json::Value::Null);
        match inv
            .sink
            .complete(
                &inv.id,
                index,
                durable_protocol::EntryTag::Sleep,
                &fired,
                durable_store::Completer::Own,
            )
            .await
        {
            Ok(Completed::Written | Completed::AlreadyCompleted(_)) => {}
            Ok(other) => {
                let failure = TerminalFailure::new(
                    TerminalFailure::INTERNAL,
                    format!("completing timer {index} found {other:?}"),
                );
                return inv.abort(Abort::Fatal(failure)).await;
            }
            Err(e) => {
                let message = format!("could not record that timer {index} fired: {e}");
                return inv.abort(Abort::retry(message)).await;
            }
        }
        inv.learn_completion(index, fired);
        return Ok(());
    }
    inv.await_completion(index, Some(wake_at_ms)).await;
    Ok(())
}

/// Where a select is.
enum SelectState<R> {
    /// Not polled yet: a recorded winner (replay) decides, else the candidates race.
    Start,
    /// Racing the candidates.
    Racing,
    /// A candidate finished first here; its win is being recorded (another attempt may have
    /// recorded a different winner first, which is then adopted).
    Recording {
        pos: usize,
        result: Option<R>,
        write: BoxFuture<'static, u32>,
    },
    /// The winner is decided: wait for it.
    Decided(usize),
}

/// Races candidates; the winner is recorded in a select entry so that replay picks the same
/// one even when several have completed by then.
struct SelectFuture<R> {
    inv: Arc<Attempt>,
    index: u32,
    candidates: Vec<(u32, BoxFuture<'static, R>)>,
    state: SelectState<R>,
}

impl<R> Unpin for SelectFuture<R> {}

impl<R: Send + 'static> SelectFuture<R> {
    fn record_winner(&self, winner: u32) -> BoxFuture<'static, u32> {
        let (inv, index) = (self.inv.clone(), self.index);
        let of = self.candidates.iter().map(|c| c.0).collect();
        Box::pin(async move {
            match record(&inv, index, EntryKind::Select { of, winner })
                .await
                .kind
            {
                EntryKind::Select { winner, .. } => winner,
                _ => unreachable!("record checks the kind"),
            }
        })
    }
}

impl<R: Send + 'static> Future for SelectFuture<R> {
    type Output = (usize, R);

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<(usize, R)> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                SelectState::Start => {
                    this.state = match this.inv.recorded(this.index) {
                        // Replay: `record` validates the entry and returns the recorded winner.
                        Some(_) => SelectState::Recording {
                            pos: usize::MAX,
                            result: None,
                            write: this.record_winner(0),
                        },
                        None => SelectState::Racing,
                    };
                }
                SelectState::Racing => {
                    let ready = this.candidates.iter_mut().enumerate().find_map(
                        |(pos, (_, fut))| match fut.as_mut().poll(cx) {
                            Poll::Ready(r) => Some((pos, r)),
                            Poll::Pending => None,
                        },
                    );
                    let Some((pos, result)) = ready else {
                        return Poll::Pending;
                    };
                    let write = this.record_winner(this.candidates[pos].0);
                    this.state = SelectState::Recording {
                        pos,
                        result: Some(result),
                        write,
                    };
                }
                SelectState::Recording { pos, result, write } => {
                    let Poll::Ready(winner) = write.as_mut().poll(cx) else {
                        return Poll::Pending;
                    };
                    let winner_pos = this
                        .candidates
                        .iter()
                        .position(|c| c.0 == winner)
                        .expect("the winner is a candidate");
                    if winner_pos == *pos {
                        if let Some(r) = result.take() {
                            return Poll::Ready((winner_pos, r));
                        }
                    }
                    this.state = SelectState::Decided(winner_pos);
                }
                SelectState::Decided(pos) => {
                    let pos = *pos;
                    return this.candidates[pos].1.as_mut().poll(cx).map(|r| (pos, r));
                }
            }
        }
    }
}

/// Durable operations every handler has: steps, timers, awakeables and the combinators over
/// durable futures. Implemented by every context; bring it into scope with the prelude.
pub trait DurableContext: Sealed {
    /// The id of the running invocation (stable across retries).
    fn invocation_id(&self) -> &InvocationId {
        &self.context().inner.id
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
    /// [`RetryPolicy`](crate::RetryPolicy)). Side effects inside run at least once; their
    /// results exactly once.
    ///
    /// ```no_run
    /// # use lambda_handler_sdk::prelude::*;
    /// # async fn f(ctx: Context) -> Result<(), HandlerError> {
    /// let n: u32 = ctx.run("pick a number", || async { Ok(4) }).await?;
    /// # Ok(()) }
    /// ```
    fn run<'a, T, F, Fut>(&'a self, name: &'a str, closure: F) -> Run<'a, T, F>
    where
        T: Serialize + DeserializeOwned + Send + 'a,
        F: FnOnce() -> Fut + Send + 'a,
        Fut: Future<Output = Result<T, HandlerError>> + Send + 'a,
    {
        Run::new(self.context(), name, closure)
    }

    /// A durable timer: completes `duration` from now (measured at this call, recorded in the
    /// journal, so a retry or a resume does not restart it). Short waits happen in-process;
    /// longer ones suspend the invocation and an EventBridge Scheduler schedule wakes it.
    fn sleep(&self, duration: Duration) -> DurableFuture<()> {
        let index = self.context().inner.allocate_index();
        let wake_at = now_millis() + duration.as_millis() as u64;
        DurableFuture {
            index,
            inner: Box::pin(sleep_until(self.context().inner.clone(), index, wake_at)),
        }
    }

    /// A promise completed from outside: returns its id (hand it to whoever will resolve it,
    /// e.g. in a step that sends an e-mail) and the future of its value. The entry is recorded
    /// before this returns, so the id can be resolved at once, even before it is awaited.
    ///
    /// Resolve with `POST /awakeables/{id}/resolve` (a JSON body) or reject with
    /// `POST /awakeables/{id}/reject` (`{"message": "..."}`): the future then fails with a
    /// terminal error.
    fn awakeable<T: DeserializeOwned + Send + 'static>(
        &self,
    ) -> impl Future<Output = Result<(String, DurableFuture<T>), TerminalError>> + Send + '_ {
        let ctx = self.context();
        async move {
            let index = ctx.inner.allocate_index();
            record(
                &ctx.inner,
                index,
                EntryKind::Awakeable {
                    name: "awakeable".into(),
                },
            )
            .await;
            let id = AwakeableId {
                invocation: ctx.inner.id.clone(),
                index,
                tag: ctx.inner.key.tag(Purpose::Awakeable, index),
            };
            Ok((
                id.to_string(),
                DurableFuture {
                    index,
                    inner: Box::pin(await_entry(ctx.inner.clone(), index)),
                },
            ))
        }
    }

    /// The first of several durable futures to complete, with its position in `futures`.
    /// The winner is recorded, so a replay returns the same one.
    fn select<T: Send + 'static>(
        &self,
        futures: Vec<DurableFuture<T>>,
    ) -> impl Future<Output = (usize, Result<T, TerminalError>)> + Send + 'static {
        let candidates = futures.into_iter().map(|f| (f.index, f.inner)).collect();
        select_boxed(self.context(), candidates)
    }

    /// The first of two durable futures of different types to complete.
    fn select2<A: Send + 'static, B: Send + 'static>(
        &self,
        a: DurableFuture<A>,
        b: DurableFuture<B>,
    ) -> impl Future<Output = Either<Result<A, TerminalError>, Result<B, TerminalError>>> + Send + 'static
    {
        let left: BoxFuture<'static, Either<_, _>> =
            Box::pin(async move { Either::Left(a.inner.await) });
        let right: BoxFuture<'static, Either<_, _>> =
            Box::pin(async move { Either::Right(b.inner.await) });
        let select = select_boxed(self.context(), vec![(a.index, left), (b.index, right)]);
        async move { select.await.1 }
    }

    /// `future`, or a terminal error with status 408 if `timeout` passes first (the common
    /// "approval or timeout" pattern). The outcome is recorded like any select.
    fn timeout<T: Send + 'static>(
        &self,
        future: DurableFuture<T>,
        timeout: Duration,
    ) -> impl Future<Output = Result<T, TerminalError>> + Send + 'static {
        let timer = self.sleep(timeout);
        let select = self.select2(future, timer);
        async move {
            match select.await {
                Either::Left(result) => result,
                Either::Right(_) => Err(TerminalError::new(format!(
                    "timed out after {} ms",
                    timeout.as_millis()
                ))
                .with_code(408)),
            }
        }
    }

    /// All of several durable futures, waited for together (their timers run concurrently).
    fn all<T: Send + 'static>(
        &self,
        futures: Vec<DurableFuture<T>>,
    ) -> impl Future<Output = Vec<Result<T, TerminalError>>> + Send + 'static {
        JoinAll {
            futures: futures.into_iter().map(|f| Some(f.inner)).collect(),
            results: Vec::new(),
            _t: PhantomData,
        }
    }
}

fn select_boxed<R: Send + 'static>(
    ctx: &Context,
    candidates: Vec<(u32, BoxFuture<'static, R>)>,
) -> BoxFuture<'static, (usize, R)> {
    let index = ctx.inner.allocate_index();
    Box::pin(SelectFuture {
        inv: ctx.inner.clone(),
        index,
        candidates,
        state: SelectState::Start,
    })
}

struct JoinAll<T> {
    futures: Vec<Option<BoxFuture<'static, Result<T, TerminalError>>>>,
    results: Vec<Option<Result<T, TerminalError>>>,
    _t: PhantomData<T>,
}

impl<T> Future for JoinAll<T> {
    type Output = Vec<Result<T, TerminalError>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if this.results.is_empty() {
            this.results = this.futures.iter().map(|_| None).collect();
        }
        for (slot, fut) in this.results.iter_mut().zip(this.futures.iter_mut()) {
            if let Some(f) = fut {
                if let Poll::Ready(r) = f.as_mut().poll(cx) {
                    *slot = Some(r);
                    *fut = None;
                }
            }
        }
        if this.futures.iter().all(Option::is_none) {
            Poll::Ready(
                this.results
                    .iter_mut()
                    .map(|r| r.take().expect("every future finished"))
                    .collect(),
            )
        } else {
            Poll::Pending
        }
    }
}

impl<T> Unpin for JoinAll<T> {}
