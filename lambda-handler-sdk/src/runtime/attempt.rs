//! The state of one attempt of one invocation: the replayed journal, the next entry index, where
//! new entries go, and the signal that ends the attempt early (retry, fatal divergence).

use durable_protocol::{InvocationId, JournalEntry, StepFailures, StepResult, Timer};
use durable_store::Appended;
use durable_store::StoreError;
use durable_store::Writer;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub(crate) use crate::runtime::abort::{Abort, AbortSignal};
use crate::runtime::progress::{BusyGuard, Progress};
use crate::runtime::replay::Replay;
use crate::runtime::scope::Scope;
use durable_protocol::TerminalFailure;

pub(crate) use durable_store::traits::{BoxFuture, HandlerStore, Payloads};

/// Settings of one attempt that come from the endpoint and the Lambda call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Waits up to this long happen in-process; longer ones suspend.
    pub(crate) in_process_wait: Duration,
    /// This Lambda call's deadline (ms since the Unix epoch).
    pub(crate) deadline_ms: u64,
}

/// How often a running attempt looks for an operator's cancellation at its step boundaries.
pub(crate) const CANCEL_POLL: Duration = Duration::from_secs(1);

/// Time kept free before the Lambda deadline: an in-process wait must end before it.
pub(crate) const DEADLINE_MARGIN: Duration = Duration::from_secs(2);

/// Shared by every clone of a handler's `Context`.
pub(crate) struct Attempt {
    pub(crate) id: InvocationId,
    /// This invocation's key: tags the awakeable ids it hands out.
    pub(crate) key: durable_protocol::auth::InvocationKey,
    /// This attempt's epoch and the TTL of the entries it appends.
    pub(crate) writer: Writer,
    /// What earlier attempts recorded, and the next index to hand out.
    replay: Replay,
    pub(crate) sink: Arc<dyn HandlerStore>,
    abort: AbortSignal,
    pub(crate) limits: Limits,
    /// Large values in S3.
    pub(crate) payloads: Arc<dyn Payloads>,
    /// Whether this attempt flagged the invocation as having payloads.
    flagged: std::sync::atomic::AtomicBool,
    /// What the handler waits on, what makes progress in-process, what completed.
    pub(crate) progress: Progress,
    /// Calls and sends waiting to be recorded and dispatched, in program order.
    outbox: Mutex<Option<tokio::sync::mpsc::UnboundedSender<crate::runtime::ops::Op>>>,
    /// Starts children and resumes waiters.
    pub(crate) dispatcher: std::sync::OnceLock<Arc<dyn crate::runtime::ops::Dispatcher>>,
    /// The object or workflow of a keyed handler, and its state as this attempt sees it.
    pub(crate) keyed: std::sync::OnceLock<crate::runtime::keyed::Keyed>,
    /// The entry of the last new step, not written yet: it is written as soon as the handler
    /// awaits anything (before it goes on) and before any other write or step closure, or it
    /// is answered with the outcome if the handler returns without awaiting anything after
    /// the step: a run that ends with a step saves that step's write.
    deferred: Arc<tokio::sync::Mutex<Option<JournalEntry>>>,
    /// An operator cancelled the invocation and no entry carries it yet: the next new step
    /// records `409 cancelled` instead of running.
    cancel: std::sync::atomic::AtomicBool,
    /// The handler has seen the cancellation (or will at its next step): no more looking.
    cancel_known: std::sync::atomic::AtomicBool,
    /// When this attempt last looked for a cancellation (ms since the Unix epoch).
    cancel_checked_at: std::sync::atomic::AtomicU64,
    /// The children of the calls and sends made so far, and their journal entries.
    children: Mutex<std::collections::HashMap<InvocationId, u32>>,
    /// The request headers the handler sees (its HTTP caller's, or its caller's).
    pub(crate) headers: std::sync::OnceLock<durable_protocol::Headers>,
    /// Failures a test runner injects into steps (none in production).
    pub(crate) faults: std::sync::OnceLock<Arc<dyn crate::runtime::faults::StepFaults>>,
}

impl Attempt {
    /// An attempt of invocation `id`, whose handles are tagged with `key`.
    pub(crate) fn new(
        (id, key): (InvocationId, durable_protocol::auth::InvocationKey),
        writer: Writer,
        journal: Vec<JournalEntry>,
        step_failures: Option<StepFailures>,
        sink: Arc<dyn HandlerStore>,
        limits: Limits,
        payloads: Arc<dyn Payloads>,
    ) -> Self {
        let completions = journal
            .iter()
            .filter_map(|e| e.completion.clone().map(|c| (e.index, c)))
            .collect();
        let happened = journal
            .iter()
            .filter_map(|e| e.completed_at_ms.map(|at| (e.index, at)))
            .collect();
        Self {
            id,
            key,
            writer,
            replay: Replay::new(journal, step_failures),
            sink,
            abort: AbortSignal::new(),
            limits,
            progress: Progress::new(completions, happened),
            outbox: Mutex::new(None),
            dispatcher: std::sync::OnceLock::new(),
            keyed: std::sync::OnceLock::new(),
            payloads,
            flagged: std::sync::atomic::AtomicBool::new(false),
            deferred: Arc::new(tokio::sync::Mutex::new(None)),
            cancel: std::sync::atomic::AtomicBool::new(false),
            cancel_known: std::sync::atomic::AtomicBool::new(false),
            cancel_checked_at: std::sync::atomic::AtomicU64::new(
                durable_protocol::clock::now_millis(),
            ),
            children: Mutex::new(std::collections::HashMap::new()),
            headers: std::sync::OnceLock::new(),
            faults: std::sync::OnceLock::new(),
        }
    }

    /// Marks a cancellation the push carried: the next new step observes it, once.
    pub(crate) fn cancel_pending(&self) {
        self.cancel_known.store(true, Ordering::SeqCst);
        self.cancel.store(true, Ordering::SeqCst);
    }

    /// The journal carries the cancellation already: the handler saw it (and may be
    /// compensating), so it is not looked for again.
    pub(crate) fn cancel_seen(&self) {
        self.cancel_known.store(true, Ordering::SeqCst);
    }

    /// At a step boundary of a long-running attempt: looks (at most once per
    /// [`CANCEL_POLL`]) whether an operator cancelled the invocation meanwhile, so the next
    /// new step observes it without waiting for a suspension. A short attempt never looks,
    /// and a failed read is only logged (the next suspension or push delivers it anyway).
    pub(crate) async fn look_for_cancellation(&self) {
        if self.cancel_known.load(Ordering::SeqCst) {
            return;
        }
        let now = durable_protocol::clock::now_millis();
        let last = self.cancel_checked_at.load(Ordering::SeqCst);
        if now < last + CANCEL_POLL.as_millis() as u64 {
            return;
        }
        self.cancel_checked_at.store(now, Ordering::SeqCst);
        match self.sink.cancel_pending(&self.id).await {
            Ok(true) => self.cancel_pending(),
            Ok(false) => {}
            Err(e) => tracing::debug!(error = %e, "could not look for a cancellation"),
        }
    }

    /// Notes that entry `index` is a call or send to `child` (for `ctx.cancel`).
    pub(crate) fn note_child(&self, child: &InvocationId, index: u32) {
        self.children
            .lock()
            .expect("children poisoned")
            .insert(child.clone(), index);
    }

    /// The entry of the call or send that made `child`, if this attempt made it.
    pub(crate) fn child_entry(&self, child: &InvocationId) -> Option<u32> {
        self.children
            .lock()
            .expect("children poisoned")
            .get(child)
            .copied()
    }

    /// Takes a pending cancellation: `true` once, for the step that records it.
    pub(crate) fn take_cancellation(&self) -> bool {
        self.cancel.swap(false, Ordering::SeqCst)
    }

    /// `value` as it should be recorded (a reference when large; see `payload`). The first
    /// offload of an attempt flags the invocation, so its payloads are deleted when it ends.
    pub(crate) async fn offload(
        &self,
        slot: &str,
        value: serde_json::Value,
    ) -> Result<serde_json::Value, durable_store::PayloadError> {
        let _busy = self.busy();
        let stored = self.payloads.offload(&self.id, slot, value).await?;
        if durable_protocol::payload::as_ref(&stored).is_some()
            && !self.flagged.swap(true, Ordering::SeqCst)
        {
            if let Err(e) = self.sink.flag_payloads(&self.id).await {
                tracing::warn!(error = %e, "could not flag the invocation's payloads; they stay until the bucket's lifecycle removes them");
            }
        }
        Ok(stored)
    }

    /// The orchestrator's event sink for a step that sends an event (to `what` says what for),
    /// or a retryable error when the push named none.
    pub(crate) fn orchestrator(
        &self,
        what: &str,
    ) -> Result<Arc<dyn crate::runtime::ops::Dispatcher>, crate::error::HandlerError> {
        self.dispatcher.get().cloned().ok_or_else(|| {
            crate::error::HandlerError::retryable(format!("no orchestrator to {what}"))
        })
    }

    /// The value behind a recorded value (fetched from S3 if it is a reference). A payload that
    /// cannot be read ends the attempt (retryable).
    pub(crate) async fn resolve(&self, value: serde_json::Value) -> serde_json::Value {
        // Most values are inline: no store call (and no boxed store future) for them.
        if !durable_protocol::payload::is_ref(&value) {
            return value;
        }
        let resolved = {
            let _busy = self.busy();
            self.payloads.resolve(value).await
        };
        match resolved {
            Ok(v) => v,
            Err(e) => {
                let message = format!("could not read a large value: {e}");
                self.abort(Abort::retry(message)).await
            }
        }
    }

    /// Connects the outbox worker.
    pub(crate) fn set_outbox(
        &self,
        tx: tokio::sync::mpsc::UnboundedSender<crate::runtime::ops::Op>,
    ) {
        *self.outbox.lock().expect("outbox poisoned") = Some(tx);
    }

    /// Queues a call or send for recording and dispatch; the receiver fires once it is recorded
    /// and dispatched. Counts as in-process work until then (no suspension before it).
    pub(crate) fn enqueue(
        &self,
        index: u32,
        kind: durable_protocol::EntryKind,
    ) -> tokio::sync::oneshot::Receiver<()> {
        let (done, rx) = tokio::sync::oneshot::channel();
        self.progress.op_started();
        let sent = self
            .outbox
            .lock()
            .expect("outbox poisoned")
            .as_ref()
            .is_some_and(|tx| {
                tx.send(crate::runtime::ops::Op::Record { index, kind, done })
                    .is_ok()
            });
        if !sent {
            self.op_done();
        }
        rx
    }

    /// One queued op finished.
    pub(crate) fn op_done(&self) {
        self.progress.op_done();
    }

    /// Marks an in-process operation until the guard drops.
    pub(crate) fn busy(&self) -> BusyGuard<'_> {
        self.progress.busy()
    }

    /// The completion of entry `index`, if known.
    pub(crate) fn completion(&self, index: u32) -> Option<StepResult> {
        self.progress.completion(index)
    }

    /// Records a completion learnt in this attempt and wakes its waiters.
    pub(crate) fn learn_completion(&self, index: u32, result: StepResult) {
        self.progress.learn_completion(index, result);
    }

    /// Waits until entry `index` is completed from outside.
    pub(crate) async fn await_completion(&self, index: u32, timer: Option<u64>) -> StepResult {
        self.progress.await_completion(index, timer).await
    }

    /// Resolves once every op queued so far was recorded and dispatched.
    pub(crate) async fn flush(&self) {
        let (done, rx) = tokio::sync::oneshot::channel();
        let sent = self
            .outbox
            .lock()
            .expect("outbox poisoned")
            .as_ref()
            .is_some_and(|tx| tx.send(crate::runtime::ops::Op::Flush(done)).is_ok());
        if sent {
            let _ = rx.await;
        }
    }

    /// Runs beside the handler: when the handler only waits on outside completions, re-checks
    /// the journal once (a completion may have arrived since the push) and suspends if nothing
    /// arrived. Never returns while the attempt is alive.
    pub(crate) async fn watch_for_suspension(&self) {
        loop {
            self.progress.changed.notified().await;
            // Let the handler's other branches run before judging it blocked.
            for _ in 0..8 {
                tokio::task::yield_now().await;
            }
            if self.progress.stuck_on_gate() {
                let failure = TerminalFailure::new(
                    TerminalFailure::NON_DETERMINISM,
                    "non-deterministic replay: the code waits for a recorded result that the \
                     first attempt received only after creating operations this replay does not \
                     create; handler code must create the same operations on every replay",
                );
                return self.abort(Abort::Fatal(failure)).await;
            }
            let snapshot = self.progress.blocked_on();
            let Some(waiting) = snapshot else { continue };
            let journal = match self.sink.load(&self.id).await {
                Ok(journal) => journal,
                Err(e) => {
                    return self
                        .abort(Abort::retry(format!(
                            "could not re-check the journal before suspending: {e}"
                        )))
                        .await
                }
            };
            let mut arrived = false;
            for entry in journal {
                if let (true, Some(c)) = (waiting.contains_key(&entry.index), entry.completion) {
                    self.learn_completion(entry.index, c);
                    arrived = true;
                }
            }
            if arrived || self.progress.blocked_on().as_ref() != Some(&waiting) {
                continue;
            }
            let timers = waiting
                .iter()
                .filter_map(|(index, wake)| {
                    wake.map(|wake_at_ms| Timer {
                        index: *index,
                        wake_at_ms,
                    })
                })
                .collect();
            return self
                .abort(Abort::Suspend {
                    waiting_on: waiting.keys().copied().collect(),
                    timers,
                })
                .await;
        }
    }

    /// The journal index of the next operation created in `scope` (see `scope::Numbering`).
    /// A replay that creates operations in another order than the journal recorded ends the
    /// attempt (fatal); the operation then never writes.
    pub(crate) fn allocate(&self, scope: &Scope) -> u32 {
        let recorded = |i: u32| self.replay.recorded(i);
        self.placed(self.replay.numbering.allocate(scope, recorded))
    }

    /// The journal index of the operation at creation index `seq` of `scope`, reserved
    /// earlier (a map's items).
    pub(crate) fn allocate_reserved(&self, scope: &Scope, seq: u32) -> u32 {
        self.replay.numbering.allocate_reserved(scope, seq)
    }

    fn placed(&self, allocated: Result<u32, (u32, TerminalFailure)>) -> u32 {
        allocated.unwrap_or_else(|(index, failure)| {
            self.abort.raise(Abort::Fatal(failure));
            index
        })
    }

    /// Whether the code is still replaying recorded operations.
    pub(crate) fn is_replaying(&self) -> bool {
        self.replay.numbering.is_replaying()
    }

    /// Hands the result of entry `index`, created in `scope`, to the code: on replay once the
    /// operations the first attempt had created by then exist again (see `scope`).
    pub(crate) async fn receive(&self, scope: &Scope, index: u32) {
        let numbering = &self.replay.numbering;
        if numbering.is_gated(scope, index) {
            let _gated = self.progress.gated();
            numbering.may_receive(scope, index).await;
        }
        numbering.received(scope, index);
    }

    /// A new entry of `kind` for the operation allocated at `index`.
    pub(crate) fn entry(&self, index: u32, kind: durable_protocol::EntryKind) -> JournalEntry {
        self.replay.numbering.entry(index, kind)
    }

    /// Whether `recorded`, found where this attempt wanted to write, is the operation this
    /// attempt allocated there.
    pub(crate) fn same_operation(&self, recorded: &JournalEntry) -> bool {
        self.replay.numbering.same_operation(recorded)
    }

    /// The operation path of the operation allocated at `index`.
    pub(crate) fn path_of(&self, index: u32) -> durable_protocol::OpPath {
        self.replay
            .numbering
            .path_of(index)
            .unwrap_or_else(|| durable_protocol::OpPath::root().child(index))
    }

    /// What the orchestrator counts the failures of the step at `index` under.
    pub(crate) fn step_key(&self, index: u32) -> u32 {
        self.replay.step_key(index)
    }

    /// The entry recorded at `index` by an earlier attempt, if any.
    pub(crate) fn recorded(&self, index: u32) -> Option<&JournalEntry> {
        self.replay.recorded(index)
    }

    /// Failed attempts so far of the step at `index`.
    pub(crate) fn previous_failures(&self, index: u32) -> u32 {
        self.replay.previous_failures(self.step_key(index))
    }

    /// Records `entry`, after the deferred step entry if there is one (the journal is written
    /// in the order the handler made progress).
    pub(crate) async fn append(&self, entry: &JournalEntry) -> Result<Appended, StoreError> {
        if let Err(reason) = self.flush_deferred().await {
            return self.abort(reason).await;
        }
        self.stop_if_failed().await;
        durable_protocol::crash_point!("sdk.journal.append.before");
        let appended = self.sink.append(&self.id, entry, self.writer).await;
        durable_protocol::crash_point!("sdk.journal.append.after");
        appended
    }

    /// Keeps a new step's entry to be written later (see `deferred`); a step deferred before
    /// it (steps run concurrently) is written now.
    pub(crate) async fn defer(&self, entry: JournalEntry) -> Result<(), Abort> {
        let mut slot = self.deferred.lock().await;
        if let Some(previous) = slot.take() {
            self.write_deferred(&previous).await?;
        }
        *slot = Some(entry);
        Ok(())
    }

    /// Writes the deferred step entry, if there is one.
    pub(crate) async fn flush_deferred(&self) -> Result<(), Abort> {
        let mut slot = self.deferred.lock().await;
        match slot.take() {
            Some(entry) => self.write_deferred(&entry).await,
            None => Ok(()),
        }
    }

    /// The write of the deferred step entry, if there is one and nobody is writing it: run
    /// when the handler parks, before it is polled again (see `idle::Tracked`). It holds the
    /// entry's lock until written, so later writes (the outbox) wait for it. Nothing if the
    /// handler itself holds the lock: it is writing, and will be polled to finish.
    pub(crate) fn write_deferred_on_park(self: &Arc<Self>) -> Option<BoxFuture<'static, ()>> {
        let mut slot = self.deferred.clone().try_lock_owned().ok()?;
        let entry = slot.take()?;
        let inv = self.clone();
        Some(Box::pin(async move {
            let _slot = slot;
            if let Err(reason) = inv.write_deferred(&entry).await {
                inv.abort::<()>(reason).await;
            }
        }))
    }

    /// The deferred step entry, to be answered with the outcome.
    pub(crate) async fn take_deferred(&self) -> Option<JournalEntry> {
        self.deferred.lock().await.take()
    }

    /// Appends a deferred step entry. The handler has used its result already, so another
    /// attempt's different entry at that index cannot be adopted any more: the attempt ends
    /// (retryable; the next one replays the recorded result).
    async fn write_deferred(&self, entry: &JournalEntry) -> Result<(), Abort> {
        self.stop_if_failed().await;
        let _busy = self.busy();
        durable_protocol::crash_point!("sdk.journal.deferred.before");
        let appended = self.sink.append(&self.id, entry, self.writer).await;
        durable_protocol::crash_point!("sdk.journal.deferred.after");
        match appended {
            Ok(Appended::Written) => Ok(()),
            Ok(Appended::AlreadyRecorded(recorded)) if !self.same_operation(&recorded) => {
                Err(self.taken(&recorded))
            }
            Ok(Appended::AlreadyRecorded(recorded)) if recorded.kind == entry.kind => Ok(()),
            Ok(Appended::AlreadyRecorded(recorded)) if recorded.kind.same_command(&entry.kind) => {
                tracing::info!(
                    index = entry.index,
                    "a concurrent attempt recorded this step first with another result; retrying on it"
                );
                Err(Abort::Retry {
                    message: format!(
                        "a concurrent attempt recorded step {:?} (journal entry {}) first",
                        entry.kind.name(),
                        entry.index
                    ),
                    step: None,
                    retry_after: Some(Duration::ZERO),
                })
            }
            Ok(Appended::AlreadyRecorded(recorded)) => Err(Abort::Fatal(
                crate::runtime::divergence::mismatch(entry.index, &recorded.kind, &entry.kind),
            )),
            Err(e) => Err(Abort::Retry {
                message: format!(
                    "could not record step {:?} (journal entry {}): {e}",
                    entry.kind.name(),
                    entry.index
                ),
                step: None,
                retry_after: None,
            }),
        }
    }

    /// Ends the attempt (the first reason wins) and never returns: the operation that asked
    /// stays pending while the endpoint answers the orchestrator.
    pub(crate) async fn abort<T>(&self, reason: Abort) -> T {
        self.abort.raise(reason);
        std::future::pending().await
    }

    /// The retry for an attempt that found another operation at an index it allocated: a
    /// concurrent attempt numbered the new operations of concurrent scopes in another order.
    /// The next attempt replays that one's entries.
    pub(crate) fn taken(&self, recorded: &JournalEntry) -> Abort {
        Abort::Retry {
            message: format!(
                "a concurrent attempt recorded another operation ({} {:?}) at journal entry {}",
                recorded.kind.label(),
                recorded.kind.name(),
                recorded.index
            ),
            step: None,
            retry_after: Some(Duration::ZERO),
        }
    }

    /// Never returns once the attempt failed fatally (e.g. its replay diverged): nothing is
    /// written after that. A retry or a suspension still writes the deferred step entry.
    pub(crate) async fn stop_if_failed(&self) {
        if matches!(self.abort.reason(), Some(Abort::Fatal(_))) {
            std::future::pending::<()>().await;
        }
    }

    /// Never returns once the attempt is ending, whatever the reason: no new side effect
    /// (a step's closure, a dispatch) starts after that.
    pub(crate) async fn stop_if_aborted(&self) {
        if self.abort.reason().is_some() {
            std::future::pending::<()>().await;
        }
    }

    /// Resolves once the attempt was aborted.
    pub(crate) async fn aborted(&self) -> Abort {
        self.abort.raised().await
    }

    /// The abort reason, if the attempt was aborted.
    pub(crate) fn abort_reason(&self) -> Option<Abort> {
        self.abort.reason()
    }
}
