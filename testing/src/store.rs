//! What one in-process invocation's attempts run against: its own journal, its object's state
//! and promises (shared by every invocation of one key), and an injected crash.

use durable_protocol::keyed::{ObjectRef, PromiseCompletion, Waiter};
use durable_protocol::{EntryTag, InvocationId, JournalEntry, StepResult};
use durable_store::memory::MemoryStore;
use durable_store::traits::{BoxFuture, Journal, Promises, State};
use durable_store::{Appended, Completed, Completer, StoreError, Writer};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// One invocation's storage as its attempts see it.
pub(crate) struct InvocationStore {
    /// The journal.
    pub(crate) journal: Arc<MemoryStore>,
    /// The object's (or workflow's) state and promises; a store of its own for plain services.
    pub(crate) object: Arc<MemoryStore>,
    /// The attempt "crashes" once the entry at this index is recorded (then it is disarmed).
    pub(crate) crash_after: Mutex<Option<u32>>,
    /// The current attempt crashed: it records nothing more and its answer is lost.
    pub(crate) crashed: AtomicBool,
}

impl InvocationStore {
    pub(crate) fn new(object: Arc<MemoryStore>, crash_after: Option<u32>) -> Self {
        Self {
            journal: Arc::default(),
            object,
            crash_after: Mutex::new(crash_after),
            crashed: AtomicBool::new(false),
        }
    }

    /// Whether the attempt that just ended crashed; clears it for the next attempt.
    pub(crate) fn take_crash(&self) -> bool {
        self.crashed.swap(false, Ordering::SeqCst)
    }

    fn dead(&self) -> Option<StoreError> {
        self.crashed
            .load(Ordering::SeqCst)
            .then(|| StoreError::Corrupt {
                pk: "test-runner".into(),
                sk: "crash".into(),
                reason: "the attempt crashed (injected by the test)".into(),
            })
    }

    fn after_record(&self, index: u32) {
        let mut armed = self.crash_after.lock().expect("crash poisoned");
        if *armed == Some(index) {
            *armed = None;
            self.crashed.store(true, Ordering::SeqCst);
        }
    }
}

impl Journal for InvocationStore {
    fn append<'a>(
        &'a self,
        id: &'a InvocationId,
        entry: &'a JournalEntry,
        writer: Writer,
    ) -> BoxFuture<'a, Result<Appended, StoreError>> {
        Box::pin(async move {
            if let Some(e) = self.dead() {
                return Err(e);
            }
            let appended = self.journal.append(id, entry, writer).await?;
            self.after_record(entry.index);
            Ok(appended)
        })
    }

    fn load<'a>(
        &'a self,
        id: &'a InvocationId,
    ) -> BoxFuture<'a, Result<Vec<JournalEntry>, StoreError>> {
        self.journal.load(id)
    }

    fn flag_payloads<'a>(&'a self, id: &'a InvocationId) -> BoxFuture<'a, Result<(), StoreError>> {
        self.journal.flag_payloads(id)
    }

    fn complete<'a>(
        &'a self,
        id: &'a InvocationId,
        index: u32,
        kind: EntryTag,
        result: &'a StepResult,
        by: Completer,
    ) -> BoxFuture<'a, Result<Completed, StoreError>> {
        Box::pin(async move {
            if let Some(e) = self.dead() {
                return Err(e);
            }
            self.journal.complete(id, index, kind, result, by).await
        })
    }

    fn retry_started<'a>(
        &'a self,
        id: &'a InvocationId,
        index: u32,
        tries: (u32, u32),
        writer: Writer,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            if let Some(e) = self.dead() {
                return Err(e);
            }
            self.journal.retry_started(id, index, tries, writer).await
        })
    }
}

impl State for InvocationStore {
    fn get_state<'a>(
        &'a self,
        object: &'a ObjectRef,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<serde_json::Value>, StoreError>> {
        self.object.get_state(object, name)
    }

    fn state_names<'a>(
        &'a self,
        object: &'a ObjectRef,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        self.object.state_names(object)
    }

    fn write_through<'a>(
        &'a self,
        object: &'a ObjectRef,
        name: &'a str,
        value: Option<&'a serde_json::Value>,
        version: u32,
        owner: (&'a InvocationId, u64),
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.object
            .write_through(object, name, value, version, owner)
    }
}

impl Promises for InvocationStore {
    fn peek_promise<'a>(
        &'a self,
        object: &'a ObjectRef,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<StepResult>, StoreError>> {
        self.object.peek_promise(object, name)
    }

    fn wait_promise<'a>(
        &'a self,
        object: &'a ObjectRef,
        name: &'a str,
        waiter: &'a Waiter,
    ) -> BoxFuture<'a, Result<Option<StepResult>, StoreError>> {
        self.object.wait_promise(object, name, waiter)
    }

    fn complete_promise<'a>(
        &'a self,
        object: &'a ObjectRef,
        name: &'a str,
        result: &'a StepResult,
        by: &'a str,
    ) -> BoxFuture<'a, Result<PromiseCompletion, StoreError>> {
        Box::pin(async move {
            if let Some(e) = self.dead() {
                return Err(e);
            }
            self.object.complete_promise(object, name, result, by).await
        })
    }
}
