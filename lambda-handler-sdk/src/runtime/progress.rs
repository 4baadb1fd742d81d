//! Suspension tracking of an attempt: the entries the handler waits on that only the outside
//! completes, the operations making progress in-process, and the completions known so far. The
//! suspension watcher reads it to decide when the handler is blocked on the outside alone.

use durable_protocol::StepResult;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// What the handler waits on and what makes progress.
pub(crate) struct Progress {
    /// Completions known to this attempt (from the push, a re-check, or written here).
    completions: Mutex<HashMap<u32, StepResult>>,
    /// Entries the handler is blocked on that only the outside can complete (timer wake time
    /// for sleeps).
    awaiting: Mutex<BTreeMap<u32, Option<u64>>>,
    /// Operations making progress in-process (running steps, in-process sleeps, queued ops).
    busy: AtomicUsize,
    /// Recorded results held back until other operations are created (see `scope`).
    gated: AtomicUsize,
    /// Signals the suspension watcher that `awaiting`, `busy` or the handler's idleness changed.
    pub(crate) changed: Arc<Notify>,
    /// Whether the handler future is parked (set by `idle::Tracked`).
    pub(crate) idleness: Arc<crate::runtime::idle::Idleness>,
    /// Signals waiters that `completions` changed.
    completed: Notify,
    /// When each known completion happened: written (from the journal) or learnt here; for
    /// timers, their wake time.
    happened: Mutex<HashMap<u32, u64>>,
    /// The wake time of each timer this attempt created.
    timers: Mutex<HashMap<u32, u64>>,
}

/// Counts an operation as making progress in-process while it lives. Every await on in-process
/// work (I/O included) must hold one: a handler parked on it is not blocked on the outside.
pub(crate) struct BusyGuard<'a>(&'a Progress);

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_one();
    }
}

/// Counts a held-back result while it lives.
pub(crate) struct GatedGuard<'a>(&'a Progress);

impl Drop for GatedGuard<'_> {
    fn drop(&mut self) {
        self.0.gated.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_one();
    }
}

/// Removes an entry from `awaiting` when its waiter goes away (done, or dropped by a select).
struct AwaitGuard<'a>(&'a Progress, u32);

impl Drop for AwaitGuard<'_> {
    fn drop(&mut self) {
        self.0
            .awaiting
            .lock()
            .expect("awaiting poisoned")
            .remove(&self.1);
        self.0.changed.notify_one();
    }
}

impl Progress {
    pub(crate) fn new(completions: HashMap<u32, StepResult>, happened: HashMap<u32, u64>) -> Self {
        Self {
            happened: Mutex::new(happened),
            timers: Mutex::new(HashMap::new()),
            completions: Mutex::new(completions),
            awaiting: Mutex::new(BTreeMap::new()),
            busy: AtomicUsize::new(0),
            gated: AtomicUsize::new(0),
            changed: Arc::new(Notify::new()),
            idleness: crate::runtime::idle::Idleness::new(),
            completed: Notify::new(),
        }
    }

    /// A queued op started: in-process work until [`Progress::op_done`].
    pub(crate) fn op_started(&self) {
        self.busy.fetch_add(1, Ordering::SeqCst);
    }

    /// A queued op finished.
    pub(crate) fn op_done(&self) {
        self.busy.fetch_sub(1, Ordering::SeqCst);
        self.changed.notify_one();
    }

    /// Marks an in-process operation until the guard drops.
    pub(crate) fn busy(&self) -> BusyGuard<'_> {
        self.busy.fetch_add(1, Ordering::SeqCst);
        BusyGuard(self)
    }

    /// The completion of entry `index`, if known.
    pub(crate) fn completion(&self, index: u32) -> Option<StepResult> {
        self.completions
            .lock()
            .expect("completions poisoned")
            .get(&index)
            .cloned()
    }

    /// Records a completion learnt in this attempt and wakes its waiters.
    pub(crate) fn learn_completion(&self, index: u32, result: StepResult) {
        self.completions
            .lock()
            .expect("completions poisoned")
            .entry(index)
            .or_insert(result);
        self.happened
            .lock()
            .expect("happened poisoned")
            .entry(index)
            .or_insert_with(durable_protocol::clock::now_millis);
        self.completed.notify_waiters();
    }

    /// Entry `index` is a timer that fires at `wake_at_ms`.
    pub(crate) fn note_timer(&self, index: u32, wake_at_ms: u64) {
        self.timers
            .lock()
            .expect("timers poisoned")
            .insert(index, wake_at_ms);
    }

    /// When entry `index` completed, if it has: a timer at its wake time once that passed
    /// (whenever its firing was recorded), anything else when its completion was written.
    pub(crate) fn happened_at(&self, index: u32) -> Option<u64> {
        if let Some(&wake) = self.timers.lock().expect("timers poisoned").get(&index) {
            return (wake <= durable_protocol::clock::now_millis()).then_some(wake);
        }
        self.happened
            .lock()
            .expect("happened poisoned")
            .get(&index)
            .copied()
    }

    /// Waits until entry `index` is completed from outside; while only such waits are left,
    /// the watcher re-checks the journal and then suspends the attempt.
    pub(crate) async fn await_completion(&self, index: u32, timer: Option<u64>) -> StepResult {
        let _guard = AwaitGuard(self, index);
        loop {
            let notified = self.completed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(result) = self.completion(index) {
                return result;
            }
            self.awaiting
                .lock()
                .expect("awaiting poisoned")
                .insert(index, timer);
            self.changed.notify_one();
            notified.await;
        }
    }

    /// Marks a recorded result held back until the guard drops.
    pub(crate) fn gated(&self) -> GatedGuard<'_> {
        self.gated.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_one();
        GatedGuard(self)
    }

    /// Whether the handler is parked, nothing runs in-process, and a recorded result is held
    /// back: the operations it waits for will never be created (the replay diverged).
    pub(crate) fn stuck_on_gate(&self) -> bool {
        self.gated.load(Ordering::SeqCst) > 0
            && self.busy.load(Ordering::SeqCst) == 0
            && self.idleness.is_idle()
    }

    /// What the handler is blocked on, if it is blocked only on outside completions.
    pub(crate) fn blocked_on(&self) -> Option<BTreeMap<u32, Option<u64>>> {
        if self.busy.load(Ordering::SeqCst) > 0 || !self.idleness.is_idle() {
            return None;
        }
        let awaiting = self.awaiting.lock().expect("awaiting poisoned");
        (!awaiting.is_empty()).then(|| awaiting.clone())
    }
}
