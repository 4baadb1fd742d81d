//! Futures whose completion is recorded in the journal: timers and awakeables, and the
//! combinators over them (first of, all of, timeout). Awaiting one that is not complete ends
//! the Lambda call (suspension) once nothing else can make progress; the orchestrator pushes
//! the invocation again when it completes, and replay finds the completion in the journal.

use crate::context::poll::{Check, Poll as PollBuilder, MAX_POLL_CHECKS};
use crate::context::run::Run;
use crate::context::{Context, Sealed};
use crate::error::HandlerError;
use crate::error::TerminalError;
use crate::runtime::attempt::{Abort, Attempt, BoxFuture, DEADLINE_MARGIN};
use crate::runtime::journal::{await_entry_until, record};
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

/// Completes awakeable `id` with `result` from a handler, in a step named `step`.
async fn complete_awakeable(
    ctx: &Context,
    step: &str,
    id: &str,
    result: Result<StepResult, TerminalError>,
) -> Result<(), TerminalError> {
    let parsed = AwakeableId::parse(id)
        .map_err(|e| TerminalError::new(e.to_string()).with_code(TerminalFailure::BAD_REQUEST));
    let inv = ctx.inner.clone();
    ctx.run(step, move || async move {
        let (id, result) = (parsed?, result?);
        let dispatcher = inv.orchestrator("complete the awakeable")?;
        dispatcher
            .complete_awakeable(&id, result)
            .await
            .map_err(|e| HandlerError::retryable(format!("could not complete awakeable {id}: {e}")))
    })
    .await
}

/// How an awakeable is made: its name (shown in the journal), and optionally a timeout and a
/// heartbeat timeout (see [`DurableContext::awakeable_with`]).
#[derive(Debug, Clone, Copy)]
pub struct AwakeableOptions<'a> {
    name: &'a str,
    timeout: Option<Duration>,
    heartbeat: Option<Duration>,
}

impl<'a> AwakeableOptions<'a> {
    /// An awakeable named `name`, with no deadline.
    pub fn named(name: &'a str) -> Self {
        Self {
            name,
            timeout: None,
            heartbeat: None,
        }
    }

    /// It must be completed within `timeout` of its creation.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// It must be completed, or kept alive with a heartbeat, within `timeout` of its creation
    /// and of each heartbeat.
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.heartbeat = Some(timeout);
        self
    }

    /// The timeout it gets when created at `now_ms`; a zero duration is a terminal `400`.
    fn at(&self, now_ms: u64) -> Result<Option<durable_protocol::AwakeableTimeout>, TerminalError> {
        if self.timeout.is_none() && self.heartbeat.is_none() {
            return Ok(None);
        }
        if self.timeout.is_some_and(|d| d.is_zero()) || self.heartbeat.is_some_and(|d| d.is_zero())
        {
            return Err(TerminalError::new(format!(
                "awakeable {:?}: a timeout must be longer than zero",
                self.name
            ))
            .with_code(TerminalFailure::BAD_REQUEST));
        }
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Ok(Some(durable_protocol::AwakeableTimeout {
            created_at_ms: now_ms,
            until_ms: self.timeout.map(|d| now_ms.saturating_add(ms(d))),
            heartbeat_ms: self.heartbeat.map(ms),
        }))
    }
}

/// A future backed by a journal entry (a timer or an awakeable). Its journal index was taken
/// when it was created, so creating durable futures in the same order on every replay is what
/// keeps the journal consistent.
#[must_use = "a durable future does nothing unless awaited"]
pub struct DurableFuture<T> {
    index: u32,
    /// The child invocation of a call.
    child: Option<InvocationId>,
    inner: BoxFuture<'static, Result<T, TerminalError>>,
}

impl<T: Send + 'static> DurableFuture<T> {
    /// The future of entry `index`, created through `ctx`.
    pub(crate) fn new(
        ctx: &Context,
        index: u32,
        inner: BoxFuture<'static, Result<T, TerminalError>>,
    ) -> Self {
        Self {
            index,
            child: None,
            inner: ctx.receiving(index, inner),
        }
    }

    /// The future of a call to `child`.
    pub(crate) fn of_call(mut self, child: InvocationId) -> Self {
        self.child = Some(child);
        self
    }
}

impl<T> DurableFuture<T> {
    /// The journal index of the entry behind this future.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The invocation a call runs as (`None` for timers and awakeables): what
    /// [`crate::context::CallContext::cancel`] takes.
    pub fn invocation_id(&self) -> Option<&InvocationId> {
        self.child.as_ref()
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

/// Waits for the timer at `index`, recorded (by the outbox, in program order) with
/// `wake_at_ms` as soon as it was created, however late it is first polled.
async fn sleep_until(
    inv: Arc<Attempt>,
    index: u32,
    wake_at_ms: u64,
    recorded: tokio::sync::oneshot::Receiver<()>,
) -> Result<(), TerminalError> {
    if recorded.await.is_err() {
        return std::future::pending().await; // the outbox aborted the attempt
    }
    match inv.completion(index) {
        Some(StepResult::Failure(f)) => return Err(f.into()), // cancelled
        Some(StepResult::Value(_)) => return Ok(()),
        None => {}
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
    match inv.await_completion(index, Some(wake_at_ms)).await {
        StepResult::Failure(f) => Err(f.into()),
        StepResult::Value(_) => Ok(()),
    }
}

/// Where a select is.
enum SelectState {
    /// Not polled yet: a recorded winner (replay) decides, else the candidates race.
    Start,
    /// Racing the candidates.
    Racing,
    /// A candidate won here; its win is being recorded (another attempt may have recorded a
    /// different winner first, which is then adopted).
    Recording { write: BoxFuture<'static, u32> },
    /// The winner is decided: wait for it.
    Decided(usize),
}

/// Races candidates; the winner is recorded in a select entry so that replay picks the same
/// one even when several have completed by then. Among candidates found complete together
/// (e.g. when an attempt resumes late) the one that completed first wins: a timer at its wake
/// time, anything else when its completion was written.
struct SelectFuture<R> {
    inv: Arc<Attempt>,
    index: u32,
    candidates: Vec<(u32, BoxFuture<'static, R>)>,
    /// Results of candidates that finished, kept until the winner is known.
    ready: Vec<Option<R>>,
    state: SelectState,
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

    /// The candidate that completed first among the finished ones, unless an unfinished one
    /// (a timer past its wake time, its firing not recorded yet) completed before it.
    fn first_finished(&self) -> Option<usize> {
        let at = |pos: usize| self.inv.progress.happened_at(self.candidates[pos].0);
        let best = (0..self.candidates.len())
            .filter(|&pos| self.ready[pos].is_some())
            .min_by_key(|&pos| (at(pos).unwrap_or(u64::MAX), pos))?;
        let best_at = at(best).unwrap_or(u64::MAX);
        let earlier_pending = (0..self.candidates.len())
            .any(|pos| self.ready[pos].is_none() && at(pos).is_some_and(|t| t < best_at));
        (!earlier_pending).then_some(best)
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
                            write: this.record_winner(0),
                        },
                        None => SelectState::Racing,
                    };
                }
                SelectState::Racing => {
                    for (pos, (_, fut)) in this.candidates.iter_mut().enumerate() {
                        if this.ready[pos].is_none() {
                            if let Poll::Ready(r) = fut.as_mut().poll(cx) {
                                this.ready[pos] = Some(r);
                            }
                        }
                    }
                    // An earlier timer still recording its firing wakes this select when done.
                    let Some(pos) = this.first_finished() else {
                        return Poll::Pending;
                    };
                    let write = this.record_winner(this.candidates[pos].0);
                    this.state = SelectState::Recording { write };
                }
                SelectState::Recording { write } => {
                    let Poll::Ready(winner) = write.as_mut().poll(cx) else {
                        return Poll::Pending;
                    };
                    let winner_pos = this
                        .candidates
                        .iter()
                        .position(|c| c.0 == winner)
                        .expect("the winner is a candidate");
                    this.state = SelectState::Decided(winner_pos);
                }
                SelectState::Decided(pos) => {
                    let pos = *pos;
                    if let Some(r) = this.ready[pos].take() {
                        return Poll::Ready((pos, r));
                    }
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
    /// closure again. The write is made when the handler next waits for something that is not
    /// ready yet (any durable operation counts: another step, a sleep, a call), before the
    /// handler goes on; a handler that returns without waiting after its last step has that
    /// step recorded together with its outcome, in the same write. Code between the step and
    /// that point runs before the entry is written, including an `.await` that happens to be
    /// ready at once (a fast network call on a loaded machine can be): a crash there runs the
    /// step again, its at-least-once. Side effects belong in steps.
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

    /// Runs `body` in its own scope: the durable operations it creates are numbered in the
    /// scope, not among the caller's, so blocks that run concurrently (e.g. in `tokio::join!`)
    /// may each await several operations and replay identically whatever their timing. The
    /// block's result (or terminal error) is recorded once, large ones in S3; a replay of a
    /// finished scope returns it without running the block again. Scopes nest.
    ///
    /// ```no_run
    /// # use lambda_handler_sdk::prelude::*;
    /// # async fn f(ctx: Context) -> Result<(), HandlerError> {
    /// let (a, b) = tokio::join!(
    ///     ctx.scope("a", |ctx| async move {
    ///         let x: u32 = ctx.run("a1", || async { Ok(1) }).await?;
    ///         Ok(ctx.run("a2", || async move { Ok(x + 1) }).await?)
    ///     }),
    ///     ctx.scope("b", |ctx| async move {
    ///         let y: u32 = ctx.run("b1", || async { Ok(10) }).await?;
    ///         Ok(ctx.run("b2", || async move { Ok(y + 1) }).await?)
    ///     }),
    /// );
    /// let (a, b): (u32, u32) = (a?, b?);
    /// # Ok(()) }
    /// ```
    fn scope<'a, T, F, Fut>(
        &'a self,
        name: &'a str,
        body: F,
    ) -> impl Future<Output = Result<T, TerminalError>> + Send + 'a
    where
        Self: Sized + Clone + 'a,
        T: Serialize + DeserializeOwned + Send + 'a,
        F: FnOnce(Self) -> Fut + Send + 'a,
        Fut: Future<Output = Result<T, HandlerError>> + Send + 'a,
    {
        let ctx = self.context();
        let index = ctx.allocate();
        let scope = crate::context::scope::run_scope(self.clone(), index, name.to_owned(), body);
        ctx.receiving(index, scope)
    }

    /// Runs `f` on every item, each in its own scope, and returns every item's outcome in item
    /// order. Set `.max_concurrency(n)` and a `.completion(policy)` (every item runs by
    /// default); the batch is recorded once, and a replay skips the items that finished.
    ///
    /// ```no_run
    /// # use lambda_handler_sdk::prelude::*;
    /// # async fn f(ctx: Context) -> Result<(), HandlerError> {
    /// let sizes = ctx
    ///     .map("sizes", vec!["a", "bb"], |ctx, s: &str| async move {
    ///         Ok(ctx.run("measure", || async move { Ok(s.len()) }).await?)
    ///     })
    ///     .max_concurrency(10)
    ///     .await?;
    /// let sizes: Vec<usize> = sizes.into_values()?;
    /// # Ok(()) }
    /// ```
    fn map<'a, I, T, F, Fut>(
        &'a self,
        name: &'a str,
        items: Vec<I>,
        f: F,
    ) -> crate::context::scope::Map<'a, Self, I, F>
    where
        Self: Sized + Clone + 'a,
        I: Send + 'a,
        T: Serialize + DeserializeOwned + Send + 'a,
        F: Fn(Self, I) -> Fut + Send + Sync + 'a,
        Fut: Future<Output = Result<T, HandlerError>> + Send + 'a,
    {
        crate::context::scope::Map::new(self, name, items, f)
    }

    /// Runs branches added with `.branch(|ctx| async move { ... })`, each in its own scope;
    /// like [`DurableContext::map`] over blocks of code.
    fn parallel<'a, T>(&'a self, name: &'a str) -> crate::context::scope::Parallel<'a, Self, T>
    where
        Self: Sized + Clone + 'a,
        T: Serialize + DeserializeOwned + Send + 'a,
    {
        crate::context::scope::Parallel::new(self, name)
    }

    /// Waits for a condition: runs `check(state, n)` (`n` counts from 1) as a step named
    /// `name` until it returns [`Check::Done`](crate::Check::Done), handing each
    /// [`Check::Again`](crate::Check::Again) state to the next check, with a durable timer
    /// between two checks (`.wait(strategy)`; a long wait suspends and costs nothing). Each
    /// check is recorded once, so a replay repeats none; the journal grows by two entries per
    /// check, and `.max_checks(n)` (60 by default, at most 1,000) bounds it: when the last
    /// check still finds `Again` the poll fails with a terminal `408`. A check's error fails
    /// the poll terminally (catch it to go on).
    ///
    /// ```no_run
    /// # use lambda_handler_sdk::prelude::*;
    /// # use std::time::Duration;
    /// # async fn f(ctx: Context) -> Result<(), HandlerError> {
    /// let url: String = ctx
    ///     .poll("export ready", 0u32, |tries, _n| async move {
    ///         // ask the export service; `tries` is the state threaded through the checks
    ///         if tries >= 3 { Ok(Check::Done("s3://exports/1".to_owned())) } else { Ok(Check::Again(tries + 1)) }
    ///     })
    ///     .wait(WaitStrategy::exponential(Duration::from_secs(2)).max_delay(Duration::from_secs(60)))
    ///     .max_checks(20)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    fn poll<'a, S, T, F, Fut>(
        &'a self,
        name: &'a str,
        initial: S,
        check: F,
    ) -> crate::context::poll::Poll<'a, Self, S, T, F>
    where
        Self: Sized,
        S: Serialize + DeserializeOwned + Clone + Send + 'a,
        T: Serialize + DeserializeOwned + Send + 'a,
        F: Fn(S, u32) -> Fut + Send + Sync + 'a,
        Fut: Future<Output = Result<crate::context::poll::Check<S, T>, HandlerError>> + Send + 'a,
    {
        crate::context::poll::Poll::new(self, name, initial, check)
    }

    /// The current time, recorded (a step), so that replays see the same.
    fn now(
        &self,
    ) -> impl Future<Output = Result<std::time::SystemTime, TerminalError>> + Send + '_ {
        let step = self.run("now", || async { Ok(now_millis()) });
        async move {
            let ms: u64 = step.await?;
            Ok(std::time::UNIX_EPOCH + Duration::from_millis(ms))
        }
    }

    /// A random number generator that replays identically (seeded from the invocation and
    /// the caller's scope; not for secrets).
    fn rng(&self) -> crate::context::determinism::DurableRng {
        let ctx = self.context();
        crate::context::determinism::DurableRng::seeded(
            &ctx.inner.id,
            ctx.scope.path(),
            ctx.scope.next_rng(),
        )
    }

    /// A random UUID that replays identically (see [`DurableContext::rng`]).
    fn uuid(&self) -> String {
        self.rng().uuid()
    }

    /// The request headers of the invocation: what its HTTP caller sent (without transport,
    /// credential and AWS headers such as `authorization`, `cookie`, `host`, `x-amz-*`), or
    /// for a child of a call or send, its caller's. The same on every replay.
    fn headers(&self) -> &durable_protocol::Headers {
        static NONE: std::sync::OnceLock<durable_protocol::Headers> = std::sync::OnceLock::new();
        self.context()
            .inner
            .headers
            .get()
            .unwrap_or_else(|| NONE.get_or_init(Default::default))
    }

    /// Whether the handler is still replaying what an earlier attempt recorded: true until it
    /// creates its first operation the journal does not have. Use it to keep log lines and
    /// metrics from repeating on every replay (or install [`ReplayAwareFilter`](crate::ReplayAwareFilter)).
    fn is_replaying(&self) -> bool {
        self.context().inner.is_replaying()
    }

    /// A durable timer: completes `duration` from now (measured at this call and recorded in
    /// the journal right away, even if the future is awaited much later, so a retry or a
    /// resume does not restart it). Short waits happen in-process; longer ones suspend the
    /// invocation and an EventBridge Scheduler schedule wakes it.
    fn sleep(&self, duration: Duration) -> DurableFuture<()> {
        self.sleep_named("sleep", duration)
    }

    /// [`DurableContext::sleep`] under a name of your own, shown in the journal (e.g.
    /// `"cool-off"`); a replay must use the same name.
    fn sleep_named(&self, name: &str, duration: Duration) -> DurableFuture<()> {
        let ctx = self.context();
        let index = ctx.allocate();
        let wake_at_ms = match ctx.inner.recorded(index).map(|e| &e.kind) {
            Some(EntryKind::Sleep { wake_at_ms, .. }) => *wake_at_ms,
            _ => now_millis() + duration.as_millis() as u64,
        };
        ctx.inner.progress.note_timer(index, wake_at_ms);
        let recorded = ctx.inner.enqueue(
            index,
            EntryKind::Sleep {
                name: name.to_owned(),
                wake_at_ms,
            },
        );
        let inner = Box::pin(sleep_until(ctx.inner.clone(), index, wake_at_ms, recorded));
        DurableFuture::new(ctx, index, inner)
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
        self.awakeable_named("awakeable")
    }

    /// [`DurableContext::awakeable`] under a name of your own, shown in the journal (e.g.
    /// `"manager approval"`); a replay must use the same name.
    fn awakeable_named<'a, T: DeserializeOwned + Send + 'static>(
        &'a self,
        name: &'a str,
    ) -> impl Future<Output = Result<(String, DurableFuture<T>), TerminalError>> + Send + 'a {
        self.awakeable_with(AwakeableOptions::named(name))
    }

    /// An awakeable with options: a name, a timeout of its own and a heartbeat timeout. Past
    /// its deadline the orchestrator completes it with a terminal `408` (its waiter sees
    /// that, also while suspended) and refuses a late resolve or reject with `410`; each
    /// `POST /awakeables/{id}/heartbeat` moves a heartbeat deadline on (never past the
    /// timeout). The deadline is fixed when the awakeable is created: a replay keeps it.
    ///
    /// ```no_run
    /// # use lambda_handler_sdk::prelude::*;
    /// # use std::time::Duration;
    /// # async fn f(ctx: Context) -> Result<(), HandlerError> {
    /// let options = AwakeableOptions::named("export")
    ///     .timeout(Duration::from_secs(24 * 3600))
    ///     .heartbeat_timeout(Duration::from_secs(300));
    /// let (id, done) = ctx.awakeable_with::<String>(options).await?;
    /// // hand `id` to the worker; it posts a heartbeat at least every 5 minutes
    /// match done.await {
    ///     Ok(file) => println!("exported {file}"),
    ///     Err(e) if e.code() == 408 => println!("the worker went quiet"),
    ///     Err(e) => return Err(e.into()),
    /// }
    /// # Ok(()) }
    /// ```
    fn awakeable_with<'a, T: DeserializeOwned + Send + 'static>(
        &'a self,
        options: AwakeableOptions<'a>,
    ) -> impl Future<Output = Result<(String, DurableFuture<T>), TerminalError>> + Send + 'a {
        let ctx = self.context();
        async move {
            let index = ctx.allocate();
            // A replay keeps the deadline the first attempt fixed.
            let timeout = match ctx.inner.recorded(index).map(|e| &e.kind) {
                Some(EntryKind::Awakeable { timeout, .. }) => *timeout,
                _ => options.at(now_millis())?,
            };
            record(
                &ctx.inner,
                index,
                EntryKind::Awakeable {
                    name: options.name.to_owned(),
                    timeout,
                },
            )
            .await;
            let id = AwakeableId {
                invocation: ctx.inner.id.clone(),
                index,
                tag: ctx.inner.key.tag(Purpose::Awakeable, index),
            };
            let deadline = timeout.map(|t| t.deadline(None));
            let inner = Box::pin(await_entry_until(ctx.inner.clone(), index, deadline));
            Ok((id.to_string(), DurableFuture::new(ctx, index, inner)))
        }
    }

    /// Resolves awakeable `id`, one this handler was handed (in its input, a step's result, a
    /// call's answer), with `value`: its waiter resumes with it, as after
    /// `POST /awakeables/{id}/resolve`. Recorded as a step named `"resolve awakeable"`, so a
    /// replay does not send it again; the send inside is at least once, and the first
    /// completion of an awakeable wins (a later one is ignored). A malformed id fails with a
    /// terminal `400`; an id whose tag does not hold is refused by the orchestrator.
    ///
    /// ```no_run
    /// # use lambda_handler_sdk::prelude::*;
    /// async fn approve(ctx: Context, awakeable_id: String) -> Result<(), HandlerError> {
    ///     ctx.resolve_awakeable(&awakeable_id, &"approved").await?;
    ///     Ok(())
    /// }
    /// ```
    fn resolve_awakeable<'a>(
        &'a self,
        id: &'a str,
        value: &impl Serialize,
    ) -> impl Future<Output = Result<(), TerminalError>> + Send + 'a {
        let result = serde_json::to_value(value)
            .map(StepResult::Value)
            .map_err(|e| TerminalError::new(format!("the value does not serialize to JSON: {e}")));
        complete_awakeable(self.context(), "resolve awakeable", id, result)
    }

    /// Rejects awakeable `id`: its waiter fails with a terminal error (code 500) carrying
    /// `message`, as after `POST /awakeables/{id}/reject`. Recorded like
    /// [`DurableContext::resolve_awakeable`], as a step named `"reject awakeable"`.
    fn reject_awakeable<'a>(
        &'a self,
        id: &'a str,
        message: &'a str,
    ) -> impl Future<Output = Result<(), TerminalError>> + Send + 'a {
        let failure = TerminalFailure::new(TerminalFailure::INTERNAL, message);
        complete_awakeable(
            self.context(),
            "reject awakeable",
            id,
            Ok(StepResult::Failure(failure)),
        )
    }

    /// The callback pattern in one call: creates an awakeable named `name`, hands its id to
    /// `submit` in a step (retried like any step; e.g. it posts the id to a partner who calls
    /// `POST /awakeables/{id}/resolve` later), then waits for the callback. With a `timeout`
    /// (counted from after the submission) a callback that does not come in time is a terminal
    /// `408`.
    ///
    /// ```no_run
    /// # use lambda_handler_sdk::prelude::*;
    /// # async fn f(ctx: Context) -> Result<(), HandlerError> {
    /// let verdict: String = ctx
    ///     .wait_for_callback("review", Some(std::time::Duration::from_secs(3600)), |id| async move {
    ///         println!("send {id} to the reviewer");
    ///         Ok(())
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    fn wait_for_callback<'a, T, F, Fut>(
        &'a self,
        name: &'a str,
        timeout: Option<Duration>,
        submit: F,
    ) -> impl Future<Output = Result<T, TerminalError>> + Send + 'a
    where
        T: DeserializeOwned + Send + 'static,
        F: FnOnce(String) -> Fut + Send + 'a,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'a,
    {
        async move {
            let (id, callback) = self.awakeable_named::<T>(name).await?;
            self.run(name, move || submit(id)).await?;
            match timeout {
                Some(d) => self.timeout(callback, d).await,
                None => callback.await,
            }
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
    let index = ctx.allocate();
    ctx.receiving(
        index,
        SelectFuture {
            inv: ctx.inner.clone(),
            index,
            ready: candidates.iter().map(|_| None).collect(),
            candidates,
            state: SelectState::Start,
        },
    )
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

/// Awaiting a poll: its checks as steps, durable timers between them (see `context::poll`).
impl<'a, C, S, T, F, Fut> std::future::IntoFuture for PollBuilder<'a, C, S, T, F>
where
    C: DurableContext + Sync + 'a,
    S: Serialize + DeserializeOwned + Clone + Send + 'a,
    T: Serialize + DeserializeOwned + Send + 'a,
    F: Fn(S, u32) -> Fut + Send + Sync + 'a,
    Fut: Future<Output = Result<Check<S, T>, HandlerError>> + Send + 'a,
{
    type Output = Result<T, TerminalError>;
    type IntoFuture = BoxFuture<'a, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let PollBuilder {
                ctx,
                name,
                mut state,
                check,
                wait,
                max_checks,
                ..
            } = self;
            if max_checks == 0 || max_checks > MAX_POLL_CHECKS {
                return Err(TerminalError::new(format!(
                    "poll {name:?}: max_checks must be 1 to {MAX_POLL_CHECKS}, not {max_checks}"
                ))
                .with_code(durable_protocol::TerminalFailure::BAD_REQUEST));
            }
            let wait_name = format!("{name} wait");
            let check = &check;
            for n in 1..=max_checks {
                let current = state.clone();
                // A check's error fails the poll (terminally): a caller may catch it.
                let found: Check<S, T> = ctx
                    .run(name, move || check(current, n))
                    .retry_policy(crate::retry::RetryPolicy::default().max_attempts(1))
                    .await?;
                match found {
                    Check::Done(result) => return Ok(result),
                    Check::Again(next) => state = next,
                }
                if n < max_checks {
                    let unit = ctx.rng().next_f64();
                    ctx.sleep_named(&wait_name, wait.delay_after(n, unit))
                        .await?;
                }
            }
            Err(TerminalError::new(format!(
                "poll {name:?}: the condition did not hold after {max_checks} checks"
            ))
            .with_code(durable_protocol::TerminalFailure::TIMEOUT))
        })
    }
}
