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
    /// Signals the suspension watcher that `awaiting`, `busy` or the handler's idleness changed.
    pub(crate) changed: Arc<Notify>,
    /// Whether the handler future is parked (set by `idle::Tracked`).
    pub(crate) idleness: Arc<crate::runtime::idle::Idleness>,
    /// Signals waiters that `completions` changed.
    completed: Notify,
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
    pub(crate) fn new(completions: HashMap<u32, StepResult>) -> Self {
        Self {
            completions: Mutex::new(completions),
            awaiting: Mutex::new(BTreeMap::new()),
            busy: AtomicUsize::new(0),
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
        self.completed.notify_waiters();
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

    /// What the handler is blocked on, if it is blocked only on outside completions.
    pub(crate) fn blocked_on(&self) -> Option<BTreeMap<u32, Option<u64>>> {
        if self.busy.load(Ordering::SeqCst) > 0 || !self.idleness.is_idle() {
            return None;
        }
        let awaiting = self.awaiting.lock().expect("awaiting poisoned");
        (!awaiting.is_empty()).then(|| awaiting.clone())
    }
}
