//! [`TestRunner`]: handlers run in this process by the SDK's real replay code, with an
//! in-memory journal and a small orchestrator loop (suspend, wake, retry, calls and sends
//! between the registered endpoints, object state), virtual time, and injected completions,
//! failures and crashes.

use crate::store::InvocationStore;
use durable_protocol::auth::{AwakeableId, Purpose, SigningKey};
use durable_protocol::keyed::ObjectRef;
use durable_protocol::{
    EagerState, EntryKind, HandlerKind, HandlerName, HandlerResponse, Headers, InvocationId,
    InvokeRequest, JournalEntry, ObjectKey, ServiceName, StepFailures, StepResult, TerminalFailure,
};
use durable_store::memory::{MemoryPayloads, MemoryStore};
use durable_store::traits::{BoxFuture, Promises as _};
use lambda_handler_sdk::harness::{AttemptParts, Children, StepFaults};
use lambda_handler_sdk::{Endpoint, HandlerError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Pushes in one [`TestRunner::settle`] before the runner gives up on a handler that never
/// stops making progress (a durable loop without end).
const MAX_PUSHES_PER_SETTLE: usize = 100_000;

/// Why a run did not give the output asked for.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunError {
    /// The handler failed terminally (its code and message, as a caller would get them).
    #[error("failed with {}: {}", .0.code, .0.message)]
    Failed(TerminalFailure),
    /// Every attempt failed with a retryable error: the orchestrator would pause it.
    #[error("paused after {attempts} attempts; the last error: {message}")]
    Paused { attempts: u32, message: String },
    /// It waits for something nobody will do: an awakeable nobody resolves, a promise nobody
    /// completes.
    #[error("stuck waiting on journal entries {waiting_on:?}: {what}")]
    Stuck { waiting_on: Vec<u32>, what: String },
    /// The input or output is not what the types say.
    #[error("{0}")]
    Types(String),
    /// No registered endpoint serves the handler.
    #[error("no endpoint serves {0}")]
    Unknown(String),
}

/// Where an in-process invocation is.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Waiting for its next attempt.
    Ready,
    /// Waiting for one of these journal entries to complete.
    Suspended { waiting_on: Vec<u32> },
    /// Finished with this output.
    Completed(serde_json::Value),
    /// Finished with this terminal failure.
    Failed(TerminalFailure),
    /// Gave up retrying (see [`RunError::Paused`]).
    Paused { message: String },
}

impl Status {
    fn finished(&self) -> bool {
        matches!(
            self,
            Status::Completed(_) | Status::Failed(_) | Status::Paused { .. }
        )
    }
}

/// One invocation the runner knows.
struct Invocation {
    handler: HandlerName,
    key: Option<ObjectKey>,
    kind: Option<HandlerKind>,
    input: serde_json::Value,
    endpoint: usize,
    store: Arc<InvocationStore>,
    status: Status,
    epoch: u64,
    attempt: u32,
    step_failures: Option<StepFailures>,
    /// The call entries that wait for it: its caller's, then those that joined a shared
    /// child (an idempotent call's, a workflow's run).
    callers: Vec<(InvocationId, u32)>,
    /// Every push it got, in order.
    pushes: u32,
    /// Its parent cancelled it and its handler has not been told yet.
    cancel: bool,
    /// The request headers its handler sees (`ctx.headers()`); children get their caller's.
    headers: Headers,
}

/// What the loop shares with attempts: children to start, and the virtual clock.
#[derive(Default)]
struct World {
    invocations: BTreeMap<InvocationId, Invocation>,
    /// Creation order, for a fair pick of the next one to run.
    order: Vec<InvocationId>,
    objects: HashMap<(ServiceName, ObjectKey), Arc<MemoryStore>>,
    /// Calls and sends recorded and not started yet.
    dispatched: Vec<(InvocationId, u32)>,
    /// Children cancelled by their parent (its call or send entry), not applied yet.
    cancels: Vec<(InvocationId, u32)>,
    /// Workflow promises completed by handlers (workflow, name, result, by), not applied yet.
    promise_completions: Vec<(ObjectRef, String, StepResult, InvocationId)>,
    /// How far the virtual clock is ahead of the real one.
    offset_ms: u64,
    /// The clock offset when each timer entry was first seen: its virtual wake time is its
    /// recorded wake time plus this.
    seen: HashMap<(InvocationId, u32), u64>,
    /// The last heartbeat of each awakeable entry, in the entry's own clock (virtual time
    /// less the offset it was first seen at), as its deadline counts it.
    beats: HashMap<(InvocationId, u32), u64>,
}

/// Step failures to inject and step runs seen.
#[derive(Default)]
struct Faults {
    /// Step name -> how many more runs of it fail, and with what.
    fail: Mutex<HashMap<String, (u32, String)>>,
    /// Step name -> how many times its closure ran (or was failed in its place).
    runs: Mutex<HashMap<String, u32>>,
}

impl StepFaults for Faults {
    fn step_fault(&self, _: &InvocationId, step: &str, _attempt: u32) -> Option<HandlerError> {
        *self
            .runs
            .lock()
            .expect("runs poisoned")
            .entry(step.to_owned())
            .or_default() += 1;
        let mut fail = self.fail.lock().expect("faults poisoned");
        let (left, message) = fail.get_mut(step)?;
        if *left == 0 {
            return None;
        }
        *left -= 1;
        Some(HandlerError::retryable(message.clone()))
    }
}

/// Hears the children an attempt records and the awakeables it completes.
struct Dispatch {
    world: Arc<Mutex<World>>,
    signing: SigningKey,
}

impl Children for Dispatch {
    fn dispatch<'a>(
        &'a self,
        parent: &'a InvocationId,
        index: u32,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.world
                .lock()
                .expect("world poisoned")
                .dispatched
                .push((parent.clone(), index));
            Ok(())
        })
    }

    fn resume<'a>(&'a self, _: &'a InvocationId, _: u32) -> BoxFuture<'a, Result<(), String>> {
        // Every loop turn looks at what each suspended invocation waits on.
        Box::pin(async { Ok(()) })
    }

    fn cancel_child<'a>(
        &'a self,
        parent: &'a InvocationId,
        index: u32,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.world
                .lock()
                .expect("world poisoned")
                .cancels
                .push((parent.clone(), index));
            Ok(())
        })
    }

    fn complete_awakeable<'a>(
        &'a self,
        id: &'a AwakeableId,
        result: StepResult,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            // As the orchestrator does: an id whose tag does not hold completes nothing.
            if !self
                .signing
                .verify(&id.invocation, Purpose::Awakeable, id.index, &id.tag)
            {
                return Ok(());
            }
            let store = {
                let world = self.world.lock().expect("world poisoned");
                world
                    .invocations
                    .get(&id.invocation)
                    .map(|i| i.store.clone())
            };
            if let Some(store) = store {
                complete_in(&store, id.index, result);
            }
            Ok(())
        })
    }

    fn complete_promise<'a>(
        &'a self,
        from: &'a InvocationId,
        workflow: &'a ObjectRef,
        name: &'a str,
        result: StepResult,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            // Applied by the loop after the children dispatched before it are started, as the
            // orchestrator starts a submit it finds undispatched first.
            self.world
                .lock()
                .expect("world poisoned")
                .promise_completions
                .push((workflow.clone(), name.to_owned(), result, from.clone()));
            Ok(())
        })
    }
}

/// Whether an entry of `store`'s journal carries a cancellation (the handler was told).
fn carries_cancellation(store: &InvocationStore) -> bool {
    store
        .journal
        .entries
        .lock()
        .expect("entries poisoned")
        .values()
        .any(JournalEntry::carries_cancellation)
}

/// Completes entry `index` of `store`'s journal with `result` unless it is completed already.
fn complete_in(store: &InvocationStore, index: u32, result: StepResult) {
    let mut entries = store.journal.entries.lock().expect("entries poisoned");
    if let Some(entry) = entries.get_mut(&index) {
        if entry.completion.is_none() {
            entry.completion = Some(result);
            entry.completed_at_ms = Some(durable_protocol::clock::now_millis());
        }
    }
}

/// Runs durable handlers in this process for fast unit tests of their logic: the SDK's own
/// replay code against an in-memory journal, with an orchestrator loop that suspends, wakes,
/// retries, and runs calls and sends between the endpoints it was given.
///
/// Time is virtual: [`TestRunner::invoke`] skips ahead to the next timer whenever nothing
/// else can happen, so a 3-day timeout takes no time. Awakeables are resolved by name
/// ([`TestRunner::resolve_awakeable`]); steps can be made to fail
/// ([`TestRunner::fail_step`]) and attempts to crash ([`TestRunner::crash_after_entry`]);
/// the recorded history is there to assert on ([`TestRunner::journal`]).
///
/// ```
/// use durable_testing::TestRunner;
/// use lambda_handler_sdk::prelude::*;
///
/// async fn greet(ctx: Context, name: String) -> Result<String, HandlerError> {
///     let greeting: String = ctx.run("compose", || async move { Ok(format!("Hello, {name}!")) }).await?;
///     ctx.sleep(std::time::Duration::from_secs(3 * 24 * 3600)).await?;
///     Ok(greeting)
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let runner = TestRunner::new(Endpoint::new().service(Service::new("greeter").handler("greet", greet)));
/// runner.fail_step("compose", 2);
/// let out: String = runner.invoke("greeter", "greet", &"Ada").await.unwrap();
/// assert_eq!(out, "Hello, Ada!");
/// assert_eq!(runner.step_runs("compose"), 3);
/// # }
/// ```
pub struct TestRunner {
    endpoints: Vec<Endpoint>,
    world: Arc<Mutex<World>>,
    faults: Arc<Faults>,
    payloads: Arc<MemoryPayloads>,
    signing: SigningKey,
    /// Awakeable name -> results to complete its next waits with, in order.
    answers: Mutex<HashMap<String, VecDeque<StepResult>>>,
    next_crash: Mutex<Option<u32>>,
    next_headers: Mutex<Headers>,
    max_attempts: u32,
}

impl TestRunner {
    /// A runner of `endpoint`'s services. Timers never wait in-process here: every sleep
    /// suspends, and the runner fires it on the virtual clock.
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoints: vec![endpoint.in_process_wait(Duration::ZERO)],
            world: Arc::default(),
            faults: Arc::default(),
            payloads: Arc::default(),
            signing: SigningKey::random(),
            answers: Mutex::default(),
            next_crash: Mutex::default(),
            next_headers: Mutex::default(),
            max_attempts: 10,
        }
    }

    /// Also runs `endpoint`'s services (the callees of calls and sends).
    #[must_use]
    pub fn with(mut self, endpoint: Endpoint) -> Self {
        self.endpoints
            .push(endpoint.in_process_wait(Duration::ZERO));
        self
    }

    /// Attempts before an invocation that keeps failing retryably is paused (default 10, as
    /// the orchestrator's `DURABLE_MAX_ATTEMPTS`).
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The next `times` runs of every step named `step` fail with a retryable error instead
    /// of running their closure, so the step's retry policy (and the invocation's retries)
    /// take over.
    pub fn fail_step(&self, step: &str, times: u32) {
        self.faults.fail.lock().expect("faults poisoned").insert(
            step.to_owned(),
            (times, format!("injected failure of step {step:?}")),
        );
    }

    /// How many times steps named `step` ran (injected failures included) in this runner.
    pub fn step_runs(&self, step: &str) -> u32 {
        self.faults
            .runs
            .lock()
            .expect("runs poisoned")
            .get(step)
            .copied()
            .unwrap_or(0)
    }

    /// The next invocation started crashes once, as if its Lambda died, right after its
    /// attempt records journal entry `index` (its answer is lost; the next attempt replays).
    pub fn crash_after_entry(&self, index: u32) {
        *self.next_crash.lock().expect("crash poisoned") = Some(index);
    }

    /// The next invocation started from outside (`invoke`, `start`, ...) gets these request
    /// headers, filtered and limited as the ingress does (`ctx.headers()`; its calls and
    /// sends hand them on).
    pub fn request_headers<'a>(
        &self,
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), RunError> {
        let headers = Headers::from_request(headers).map_err(|e| RunError::Types(e.to_string()))?;
        *self.next_headers.lock().expect("headers poisoned") = headers;
        Ok(())
    }

    /// A heartbeat of the pending awakeable named `name`, now on the virtual clock, as
    /// `POST /awakeables/{id}/heartbeat` is: its heartbeat timeout starts again (never past
    /// its own timeout). An error if no awakeable of that name waits, if it has no heartbeat
    /// timeout, or if its deadline passed already.
    pub fn heartbeat_awakeable(&self, name: &str) -> Result<(), RunError> {
        let mut world = self.world.lock().expect("world poisoned");
        let now = virtual_now(&world);
        let pending = world.invocations.iter().find_map(|(id, inv)| {
            inv.store
                .journal
                .journal()
                .into_iter()
                .find_map(|e| match &e.kind {
                    EntryKind::Awakeable { name: n, timeout }
                        if n == name && e.completion.is_none() =>
                    {
                        Some((id.clone(), e.clone(), *timeout))
                    }
                    _ => None,
                })
        });
        let Some((id, entry, timeout)) = pending else {
            return Err(RunError::Unknown(format!(
                "a pending awakeable named {name:?}"
            )));
        };
        if timeout.is_none_or(|t| t.heartbeat_ms.is_none()) {
            return Err(RunError::Types(format!(
                "awakeable {name:?} has no heartbeat timeout (AwakeableOptions::heartbeat_timeout)"
            )));
        }
        if virtual_wake(&world, &id, &entry).is_some_and(|at| at <= now) {
            return Err(RunError::Failed(TerminalFailure::timed_out("awakeable")));
        }
        let offset = seen_offset(&world, &id, entry.index);
        world.beats.insert((id, entry.index), now - offset);
        Ok(())
    }

    /// The next wait on an awakeable named `name` (`ctx.awakeable_named`; `"awakeable"` for
    /// `ctx.awakeable`) gets `value`, before any timer it races with fires.
    pub fn resolve_awakeable<T: Serialize>(&self, name: &str, value: &T) {
        let value = serde_json::to_value(value).expect("the value serializes to JSON");
        self.answer(name, StepResult::Value(value));
    }

    /// Like [`TestRunner::resolve_awakeable`], but the wait fails with this terminal error.
    pub fn reject_awakeable(&self, name: &str, code: u16, message: &str) {
        self.answer(
            name,
            StepResult::Failure(TerminalFailure::new(code, message.to_owned())),
        );
    }

    fn answer(&self, name: &str, result: StepResult) {
        self.answers
            .lock()
            .expect("answers poisoned")
            .entry(name.to_owned())
            .or_default()
            .push_back(result);
    }

    /// Runs `service/handler` with `input` to its end, skipping time whenever only timers
    /// are left; its output, or why there is none.
    pub async fn invoke<I: Serialize + ?Sized, O: DeserializeOwned>(
        &self,
        service: &str,
        handler: &str,
        input: &I,
    ) -> Result<O, RunError> {
        let id = self.start(service, handler, input).await?;
        self.finish(&id).await
    }

    /// [`TestRunner::invoke`] of a keyed (object or workflow) handler on `key`.
    pub async fn invoke_keyed<I: Serialize + ?Sized, O: DeserializeOwned>(
        &self,
        service: &str,
        key: &str,
        handler: &str,
        input: &I,
    ) -> Result<O, RunError> {
        let id = self.start_keyed(service, key, handler, input).await?;
        self.finish(&id).await
    }

    /// Starts `service/handler` and runs it (and everything it starts) until it finishes or
    /// waits; time does not move. Its id, for [`TestRunner::status`] and the rest.
    pub async fn start<I: Serialize + ?Sized>(
        &self,
        service: &str,
        handler: &str,
        input: &I,
    ) -> Result<InvocationId, RunError> {
        self.start_inner(service, None, handler, input).await
    }

    /// [`TestRunner::start`] of a keyed (object or workflow) handler on `key`.
    pub async fn start_keyed<I: Serialize + ?Sized>(
        &self,
        service: &str,
        key: &str,
        handler: &str,
        input: &I,
    ) -> Result<InvocationId, RunError> {
        self.start_inner(service, Some(key), handler, input).await
    }

    async fn start_inner<I: Serialize + ?Sized>(
        &self,
        service: &str,
        key: Option<&str>,
        handler: &str,
        input: &I,
    ) -> Result<InvocationId, RunError> {
        let input = serde_json::to_value(input).map_err(|e| RunError::Types(e.to_string()))?;
        let bad = |e: durable_protocol::IdError| RunError::Types(e.to_string());
        let service = ServiceName::new(service).map_err(bad)?;
        let handler = HandlerName::new(handler).map_err(bad)?;
        let key = key.map(ObjectKey::new).transpose().map_err(bad)?;
        let id = match (&key, self.kind(&service, &handler)) {
            (Some(key), Some(HandlerKind::Workflow)) => InvocationId::for_workflow(&service, key),
            _ => InvocationId::random(&service),
        };
        let crash = self.next_crash.lock().expect("crash poisoned").take();
        let headers = std::mem::take(&mut *self.next_headers.lock().expect("headers poisoned"));
        self.create(
            id.clone(),
            &service,
            handler,
            key,
            input,
            None,
            (crash, headers),
        )?;
        self.settle().await;
        Ok(id)
    }

    fn kind(&self, service: &ServiceName, handler: &HandlerName) -> Option<HandlerKind> {
        self.endpoints
            .iter()
            .find_map(|e| e.kind_of(service, handler))
            .and_then(|(_, kind)| kind)
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &self,
        id: InvocationId,
        service: &ServiceName,
        handler: HandlerName,
        key: Option<ObjectKey>,
        input: serde_json::Value,
        caller: Option<(InvocationId, u32)>,
        (crash, headers): (Option<u32>, Headers),
    ) -> Result<(), RunError> {
        let (endpoint, kind) = self
            .endpoints
            .iter()
            .enumerate()
            .find_map(|(i, e)| e.kind_of(service, &handler).map(|(_, kind)| (i, kind)))
            .ok_or_else(|| RunError::Unknown(format!("{service}/{handler}")))?;
        if kind.is_some() != key.is_some() {
            return Err(RunError::Types(format!(
                "{service}/{handler} {}",
                if kind.is_some() {
                    "is keyed: start it with a key"
                } else {
                    "takes no key"
                }
            )));
        }
        let mut world = self.world.lock().expect("world poisoned");
        if let Some(existing) = world.invocations.get_mut(&id) {
            // A workflow runs once per key, an idempotency key names one child: a caller
            // joins it, or takes its result now.
            let Some(caller) = caller else {
                return Ok(());
            };
            let finished = match &existing.status {
                Status::Completed(v) => Some(StepResult::Value(v.clone())),
                Status::Failed(f) => Some(StepResult::Failure(f.clone())),
                _ => None,
            };
            match finished {
                Some(result) => {
                    drop(world);
                    self.complete_entry(&caller.0, caller.1, result);
                }
                None if !existing.callers.contains(&caller) => existing.callers.push(caller),
                None => {}
            }
            return Ok(());
        }
        let object = match &key {
            Some(k) => world
                .objects
                .entry((service.clone(), k.clone()))
                .or_default()
                .clone(),
            None => Arc::default(),
        };
        world.order.push(id.clone());
        world.invocations.insert(
            id,
            Invocation {
                handler,
                key,
                kind,
                input,
                endpoint,
                store: Arc::new(InvocationStore::new(object, crash)),
                status: Status::Ready,
                epoch: 0,
                attempt: 1,
                step_failures: None,
                callers: caller.into_iter().collect(),
                pushes: 0,
                cancel: false,
                headers,
            },
        );
        Ok(())
    }

    /// Runs until nothing can happen without time moving (or without something from
    /// outside): every ready invocation, every started child, every wait that can complete.
    pub async fn settle(&self) {
        for _ in 0..MAX_PUSHES_PER_SETTLE {
            self.start_children();
            self.apply_cancels();
            self.apply_promise_completions().await;
            let Some(id) = self.next_runnable() else {
                return;
            };
            self.run_attempt(&id).await;
        }
        panic!("the runner pushed {MAX_PUSHES_PER_SETTLE} times without settling: a handler loops");
    }

    /// Moves the virtual clock `by` ahead and runs what that wakes.
    pub async fn advance(&self, by: Duration) {
        self.world.lock().expect("world poisoned").offset_ms += by.as_millis() as u64;
        self.settle().await;
    }

    /// Fires the next pending timer now (moving the virtual clock to it) and runs what that
    /// wakes; `false` if no timer is pending.
    pub async fn skip_to_next_timer(&self) -> bool {
        let next = {
            let world = self.world.lock().expect("world poisoned");
            pending_timers(&world).into_iter().min()
        };
        let Some(at) = next else { return false };
        {
            let mut world = self.world.lock().expect("world poisoned");
            let now = virtual_now(&world);
            world.offset_ms += at.saturating_sub(now);
        }
        self.settle().await;
        true
    }

    /// Runs `id` to its end, skipping time as needed; its output.
    pub async fn finish<O: DeserializeOwned>(&self, id: &InvocationId) -> Result<O, RunError> {
        loop {
            self.settle().await;
            let status = self.status(id);
            if status.as_ref().is_some_and(Status::finished) {
                break;
            }
            if !self.skip_to_next_timer().await {
                break;
            }
        }
        match self.status(id) {
            Some(Status::Completed(output)) => {
                serde_json::from_value(output).map_err(|e| RunError::Types(e.to_string()))
            }
            Some(Status::Failed(failure)) => Err(RunError::Failed(failure)),
            Some(Status::Paused { message }) => Err(RunError::Paused {
                attempts: self.attempts(id),
                message,
            }),
            Some(Status::Suspended { waiting_on }) => {
                let what = self.describe_waits(id, &waiting_on);
                Err(RunError::Stuck { waiting_on, what })
            }
            Some(Status::Ready) | None => Err(RunError::Unknown(id.to_string())),
        }
    }

    /// Where invocation `id` is.
    pub fn status(&self, id: &InvocationId) -> Option<Status> {
        let world = self.world.lock().expect("world poisoned");
        world.invocations.get(id).map(|i| i.status.clone())
    }

    /// How many attempts invocation `id` made (1 if it never failed or crashed).
    pub fn attempts(&self, id: &InvocationId) -> u32 {
        let world = self.world.lock().expect("world poisoned");
        world.invocations.get(id).map_or(0, |i| i.attempt)
    }

    /// How many times invocation `id` was pushed (attempts, plus a push per wake-up).
    pub fn pushes(&self, id: &InvocationId) -> u32 {
        let world = self.world.lock().expect("world poisoned");
        world.invocations.get(id).map_or(0, |i| i.pushes)
    }

    /// Invocation `id`'s journal as recorded, in index order.
    pub fn journal(&self, id: &InvocationId) -> Vec<JournalEntry> {
        let world = self.world.lock().expect("world poisoned");
        world
            .invocations
            .get(id)
            .map(|i| i.store.journal.journal())
            .unwrap_or_default()
    }

    /// The invocations started so far (children included), oldest first.
    pub fn invocations(&self) -> Vec<InvocationId> {
        self.world.lock().expect("world poisoned").order.clone()
    }

    /// An object's (or workflow's) state value, as stored after the invocations that finished.
    pub fn state<T: DeserializeOwned>(&self, service: &str, key: &str, name: &str) -> Option<T> {
        let service = ServiceName::new(service).ok()?;
        let key = ObjectKey::new(key).ok()?;
        let world = self.world.lock().expect("world poisoned");
        let object = world.objects.get(&(service, key))?;
        let value = object
            .state
            .lock()
            .expect("state poisoned")
            .get(name)?
            .clone();
        serde_json::from_value(value).ok()
    }

    /// Starts the children of the calls and sends recorded since the last look.
    fn start_children(&self) {
        let dispatched = std::mem::take(&mut self.world.lock().expect("world poisoned").dispatched);
        for (parent, index) in dispatched {
            let Some(entry) = self.entry(&parent, index) else {
                continue;
            };
            let Some(start) = entry.kind.child_start() else {
                continue;
            };
            let (target, input, child, waits) = (
                start.target.clone(),
                start.input.clone(),
                start.child.clone(),
                start.awaited,
            );
            let caller = waits.then(|| (parent.clone(), index));
            // As the orchestrator refuses them: a child id other than the one the entry must
            // name, and an attach to a workflow key never submitted.
            let run_of_workflow =
                self.kind(&target.service, &target.handler) == Some(HandlerKind::Workflow);
            let served = self
                .endpoints
                .iter()
                .any(|e| e.kind_of(&target.service, &target.handler).is_some());
            let refused =
                if served && child != start.expected_child(&parent, index, run_of_workflow) {
                    Some(TerminalFailure::new(
                        TerminalFailure::BAD_REQUEST,
                        format!(
                            "{}: a workflow's run is submitted with ctx.workflow_submit, called \
                         with ctx.workflow_call or waited for with ctx.workflow_attach",
                            target.display()
                        ),
                    ))
                } else if start.attach
                    && !self
                        .world
                        .lock()
                        .expect("world poisoned")
                        .invocations
                        .contains_key(&child)
                {
                    Some(TerminalFailure::new(
                        404,
                        format!("workflow {} has no run for that key", target.service),
                    ))
                } else {
                    None
                };
            if let Some(failure) = refused {
                if waits {
                    self.complete_entry(&parent, index, StepResult::Failure(failure));
                }
                continue;
            }
            // Children see their caller's headers, as the orchestrator copies them.
            let headers = self
                .world
                .lock()
                .expect("world poisoned")
                .invocations
                .get(&parent)
                .map(|p| p.headers.clone())
                .unwrap_or_default();
            let started = self.create(
                child,
                &target.service,
                target.handler.clone(),
                target.key.clone(),
                input,
                caller.clone(),
                (None, headers),
            );
            if let (Err(e), Some((parent, index))) = (started, caller) {
                self.complete_entry(
                    &parent,
                    index,
                    StepResult::Failure(TerminalFailure::new(404, e.to_string())),
                );
            }
        }
    }

    /// Completes the workflow promises handlers completed, as the orchestrator does: only a
    /// submitted workflow has promises, and the first completion wins.
    async fn apply_promise_completions(&self) {
        let completions = std::mem::take(
            &mut self
                .world
                .lock()
                .expect("world poisoned")
                .promise_completions,
        );
        for (workflow, name, result, by) in completions {
            let object = {
                let world = self.world.lock().expect("world poisoned");
                let run = InvocationId::for_workflow(&workflow.service, &workflow.key);
                if !world.invocations.contains_key(&run) {
                    continue;
                }
                world
                    .objects
                    .get(&(workflow.service.clone(), workflow.key.clone()))
                    .cloned()
            };
            if let Some(object) = object {
                let _ = object
                    .complete_promise(&workflow, &name, &result, by.as_str())
                    .await;
            }
        }
    }

    /// Cancels the children their parents cancelled, as the orchestrator does: a waiting
    /// child's waits complete with `409 cancelled`, a ready or paused one is told at its next
    /// push (its next new step records it), a finished one is left as it is.
    fn apply_cancels(&self) {
        let cancels = std::mem::take(&mut self.world.lock().expect("world poisoned").cancels);
        let cancelled = StepResult::Failure(TerminalFailure::cancelled());
        for (parent, index) in cancels {
            let Some(child) = self
                .entry(&parent, index)
                .and_then(|e| e.kind.child().cloned())
            else {
                continue;
            };
            let waiting = {
                let mut world = self.world.lock().expect("world poisoned");
                let Some(inv) = world.invocations.get_mut(&child) else {
                    continue;
                };
                match &inv.status {
                    Status::Suspended { waiting_on } => waiting_on.clone(),
                    Status::Ready | Status::Paused { .. } => {
                        inv.status = Status::Ready;
                        inv.cancel = true;
                        continue;
                    }
                    _ => continue,
                }
            };
            for entry in waiting {
                self.complete_entry(&child, entry, cancelled.clone());
            }
        }
    }

    /// The next invocation that can run: a ready one, or a suspended one a wait of which
    /// completed or can be completed now (an answered awakeable, a completed promise, a due
    /// timer).
    fn next_runnable(&self) -> Option<InvocationId> {
        let candidates: Vec<(InvocationId, Vec<u32>)> = {
            let world = self.world.lock().expect("world poisoned");
            world
                .order
                .iter()
                .filter_map(|id| match &world.invocations[id].status {
                    Status::Ready => Some((id.clone(), Vec::new())),
                    Status::Suspended { waiting_on } => Some((id.clone(), waiting_on.clone())),
                    _ => None,
                })
                .collect()
        };
        for (id, waiting_on) in candidates {
            if waiting_on.is_empty() || self.wake(&id, &waiting_on) {
                return Some(id);
            }
        }
        None
    }

    /// Completes what it can of `id`'s waits; whether one of them is complete.
    fn wake(&self, id: &InvocationId, waiting_on: &[u32]) -> bool {
        let journal = self.journal(id);
        let (store, now) = {
            let world = self.world.lock().expect("world poisoned");
            (world.invocations[id].store.clone(), virtual_now(&world))
        };
        for index in waiting_on {
            let Some(entry) = journal.iter().find(|e| e.index == *index) else {
                continue;
            };
            if entry.completion.is_some() {
                return true;
            }
            let result = match &entry.kind {
                EntryKind::Awakeable { name, timeout } => self
                    .answers
                    .lock()
                    .expect("answers poisoned")
                    .get_mut(name)
                    .and_then(VecDeque::pop_front)
                    .or_else(|| {
                        let due = timeout.is_some()
                            && self.wake_time(id, entry).is_some_and(|at| at <= now);
                        due.then(|| StepResult::Failure(TerminalFailure::timed_out("awakeable")))
                    }),
                EntryKind::Sleep { .. } => {
                    let due = self.wake_time(id, entry).is_some_and(|at| at <= now);
                    due.then_some(StepResult::Value(serde_json::Value::Null))
                }
                EntryKind::Promise { name } => store
                    .object
                    .promises
                    .lock()
                    .expect("promises poisoned")
                    .get(name)
                    .and_then(|p| p.0.as_ref().map(|(r, _)| r.clone())),
                _ => None,
            };
            if let Some(result) = result {
                self.complete_entry(id, *index, result);
                return true;
            }
        }
        false
    }

    /// A timer entry's virtual wake time (see [`virtual_wake`]).
    fn wake_time(&self, id: &InvocationId, entry: &JournalEntry) -> Option<u64> {
        virtual_wake(&self.world.lock().expect("world poisoned"), id, entry)
    }

    /// Entry `index` of invocation `id`, as recorded now.
    fn entry(&self, id: &InvocationId, index: u32) -> Option<JournalEntry> {
        let store = {
            let world = self.world.lock().expect("world poisoned");
            world.invocations.get(id)?.store.clone()
        };
        let entries = store.journal.entries.lock().expect("entries poisoned");
        entries.get(&index).cloned()
    }

    fn complete_entry(&self, id: &InvocationId, index: u32, result: StepResult) {
        let store = {
            let world = self.world.lock().expect("world poisoned");
            world.invocations.get(id).map(|i| i.store.clone())
        };
        if let Some(store) = store {
            complete_in(&store, index, result);
        }
    }

    /// One push of `id`, and what its answer means.
    async fn run_attempt(&self, id: &InvocationId) {
        let (req, endpoint, store) = {
            let mut world = self.world.lock().expect("world poisoned");
            let inv = world.invocations.get_mut(id).expect("known invocation");
            inv.epoch += 1;
            inv.pushes += 1;
            let service = id.service();
            let mut req = InvokeRequest::new(
                id.clone(),
                self.signing.service_key(&service),
                inv.handler.clone(),
                inv.input.clone(),
                "in-memory",
            )
            .with_journal(inv.store.journal.journal())
            .at(inv.epoch, inv.attempt);
            req.step_failures = inv.step_failures;
            req.cancel = inv.cancel;
            req.headers = inv.headers.clone();
            req.key.clone_from(&inv.key);
            req.handler_kind = inv.kind;
            if inv.kind.is_some() {
                req.state = Some(EagerState {
                    values: inv
                        .store
                        .object
                        .state
                        .lock()
                        .expect("state poisoned")
                        .clone(),
                    complete: true,
                });
            }
            (req, inv.endpoint, inv.store.clone())
        };
        let parts = AttemptParts {
            store: store.clone(),
            payloads: self.payloads.clone(),
            children: Arc::new(Dispatch {
                world: self.world.clone(),
                signing: self.signing.clone(),
            }),
            faults: Some(self.faults.clone()),
        };
        let response = self.endpoints[endpoint].run_attempt(req, parts).await;
        let crashed = store.take_crash();
        self.note_timers(id);
        let mut guard = self.world.lock().expect("world poisoned");
        let World {
            invocations,
            offset_ms,
            ..
        } = &mut *guard;
        let inv = invocations.get_mut(id).expect("known invocation");
        if crashed {
            // The Lambda died: its answer never arrived, and the next attempt replays.
            inv.attempt += 1;
            inv.status = Status::Ready;
            return;
        }
        let carried = carries_cancellation(&store);
        let finished = match response {
            HandlerResponse::Completed { output, tail } => {
                record_tail(&store, tail);
                if inv.kind.is_some_and(HandlerKind::writes_state) {
                    apply_state(&store);
                }
                Some(StepResult::Value(output))
            }
            HandlerResponse::Failed { failure, tail } => {
                record_tail(&store, tail);
                // As the orchestrator does: state changes stand when a handler fails terminally.
                if inv.kind.is_some_and(HandlerKind::writes_state) {
                    apply_state(&store);
                }
                Some(StepResult::Failure(failure))
            }
            HandlerResponse::Retryable {
                message,
                step,
                retry_after_ms,
            } => {
                inv.step_failures = step.map(|index| StepFailures {
                    index,
                    count: match inv.step_failures {
                        Some(f) if f.index == index => f.count + 1,
                        _ => 1,
                    },
                });
                if inv.attempt >= self.max_attempts {
                    inv.status = Status::Paused { message };
                } else {
                    inv.attempt += 1;
                    inv.status = Status::Ready;
                    // The backoff passes on the virtual clock.
                    *offset_ms += retry_after_ms.unwrap_or(0);
                }
                None
            }
            HandlerResponse::Suspended { waiting_on, .. } => {
                if std::mem::take(&mut inv.cancel) && !carried {
                    // As the orchestrator delivers a cancellation to a handler that waits.
                    let cancelled = StepResult::Failure(TerminalFailure::cancelled());
                    for index in &waiting_on {
                        complete_in(&store, *index, cancelled.clone());
                    }
                }
                inv.status = Status::Suspended { waiting_on };
                None
            }
        };
        if carried {
            inv.cancel = false;
        }
        if let Some(result) = finished {
            inv.status = match &result {
                StepResult::Value(v) => Status::Completed(v.clone()),
                StepResult::Failure(f) => Status::Failed(f.clone()),
            };
            let callers = inv.callers.clone();
            drop(guard);
            for (parent, index) in callers {
                self.complete_entry(&parent, index, result.clone());
            }
        }
    }

    /// Remembers the clock offset of timers seen for the first time.
    fn note_timers(&self, id: &InvocationId) {
        let journal = self.journal(id);
        let mut world = self.world.lock().expect("world poisoned");
        let offset = world.offset_ms;
        for entry in journal {
            if virtual_wake(&world, id, &entry).is_some() {
                world
                    .seen
                    .entry((id.clone(), entry.index))
                    .or_insert(offset);
            }
        }
    }

    fn describe_waits(&self, id: &InvocationId, waiting_on: &[u32]) -> String {
        let journal = self.journal(id);
        waiting_on
            .iter()
            .filter_map(|i| journal.iter().find(|e| e.index == *i))
            .map(|e| match &e.kind {
                EntryKind::Awakeable { name, .. } => {
                    format!("awakeable {name:?} (resolve it with resolve_awakeable)")
                }
                EntryKind::Promise { name } => format!("promise {name:?}"),
                EntryKind::Call { target, .. } => format!("call of {}", target.display()),
                other => format!("{:?}", other.tag()),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The virtual now.
fn virtual_now(world: &World) -> u64 {
    durable_protocol::clock::now_millis() + world.offset_ms
}

/// A timer entry's virtual wake time: its recorded one plus the clock offset in force when it
/// was first seen (`None` for other entries).
fn virtual_wake(world: &World, id: &InvocationId, entry: &JournalEntry) -> Option<u64> {
    let wake_at_ms = match &entry.kind {
        EntryKind::Sleep { wake_at_ms, .. } => *wake_at_ms,
        EntryKind::Awakeable {
            timeout: Some(t), ..
        } => t.deadline(world.beats.get(&(id.clone(), entry.index)).copied()),
        _ => return None,
    };
    Some(wake_at_ms + seen_offset(world, id, entry.index))
}

/// The clock offset in force when entry `index` of `id` was first seen (now's, if not yet).
fn seen_offset(world: &World, id: &InvocationId, index: u32) -> u64 {
    world
        .seen
        .get(&(id.clone(), index))
        .copied()
        .unwrap_or(world.offset_ms)
}

/// The virtual wake times of the pending timers suspended invocations wait on.
fn pending_timers(world: &World) -> Vec<u64> {
    let mut timers = Vec::new();
    for (id, inv) in &world.invocations {
        let Status::Suspended { waiting_on } = &inv.status else {
            continue;
        };
        for entry in inv.store.journal.journal() {
            if entry.completion.is_none() && waiting_on.contains(&entry.index) {
                timers.extend(virtual_wake(world, id, &entry));
            }
        }
    }
    timers
}

/// Records an answer's tail entry the way the orchestrator's finish does.
fn record_tail(store: &InvocationStore, tail: Option<JournalEntry>) {
    if let Some(entry) = tail {
        let mut entries = store.journal.entries.lock().expect("entries poisoned");
        entries.entry(entry.index).or_insert(entry);
    }
}

/// Applies a finished exclusive or workflow invocation's state changes to its object.
fn apply_state(store: &InvocationStore) {
    let mut state = store.object.state.lock().expect("state poisoned");
    for entry in store.journal.journal() {
        match entry.kind {
            EntryKind::SetState { name, value } => {
                state.insert(name, value);
            }
            EntryKind::ClearState { name } => {
                state.remove(&name);
            }
            EntryKind::ClearAllState => state.clear(),
            _ => {}
        }
    }
}
