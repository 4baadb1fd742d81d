//! The state of one attempt of one invocation: the replayed journal, the next entry index, where
//! new entries go, and the signal that ends the attempt early (retry, fatal divergence).

use durable_protocol::store::{Appended, JournalStore, StoreError};
use durable_protocol::{InvocationId, JournalEntry, StepFailures, TerminalFailure};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A boxed future, as object-safe traits need.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where new journal entries are recorded: DynamoDB in production, memory in unit tests.
pub(crate) trait JournalSink: Send + Sync {
    fn append<'a>(
        &'a self,
        id: &'a InvocationId,
        entry: &'a JournalEntry,
        epoch: u64,
    ) -> BoxFuture<'a, Result<Appended, StoreError>>;
}

impl JournalSink for JournalStore {
    fn append<'a>(
        &'a self,
        id: &'a InvocationId,
        entry: &'a JournalEntry,
        epoch: u64,
    ) -> BoxFuture<'a, Result<Appended, StoreError>> {
        Box::pin(JournalStore::append(self, id, entry, epoch))
    }
}

/// Why an attempt stopped before the handler returned.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Abort {
    /// Retry the invocation later; the journal is kept.
    Retry {
        message: String,
        step: Option<u32>,
        retry_after: Option<Duration>,
    },
    /// The attempt cannot go on (e.g. replay diverged from the journal): fail the invocation.
    Fatal(TerminalFailure),
}

/// Shared by every clone of a handler's `Context`.
pub(crate) struct Invocation {
    pub(crate) id: InvocationId,
    pub(crate) epoch: u64,
    recorded: HashMap<u32, JournalEntry>,
    step_failures: Option<StepFailures>,
    next_index: AtomicU32,
    sink: Arc<dyn JournalSink>,
    abort: watch::Sender<Option<Abort>>,
}

impl Invocation {
    pub(crate) fn new(
        id: InvocationId,
        epoch: u64,
        journal: Vec<JournalEntry>,
        step_failures: Option<StepFailures>,
        sink: Arc<dyn JournalSink>,
    ) -> Self {
        let recorded = journal.into_iter().map(|e| (e.index, e)).collect();
        Self {
            id,
            epoch,
            recorded,
            step_failures,
            next_index: AtomicU32::new(0),
            sink,
            abort: watch::channel(None).0,
        }
    }

    /// Takes the next journal index. Called when an operation is created, in program order,
    /// so that replay assigns the same indexes.
    pub(crate) fn allocate_index(&self) -> u32 {
        self.next_index.fetch_add(1, Ordering::SeqCst)
    }

    /// The entry recorded at `index` by an earlier attempt, if any.
    pub(crate) fn recorded(&self, index: u32) -> Option<&JournalEntry> {
        self.recorded.get(&index)
    }

    /// Failed attempts so far of the step at `index`.
    pub(crate) fn previous_failures(&self, index: u32) -> u32 {
        match self.step_failures {
            Some(f) if f.index == index => f.count,
            _ => 0,
        }
    }

    pub(crate) async fn append(&self, entry: &JournalEntry) -> Result<Appended, StoreError> {
        self.sink.append(&self.id, entry, self.epoch).await
    }

    /// Ends the attempt (the first reason wins) and never returns: the operation that asked
    /// stays pending while the endpoint answers the orchestrator.
    pub(crate) async fn abort<T>(&self, reason: Abort) -> T {
        self.abort.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        });
        std::future::pending().await
    }

    /// Resolves once the attempt was aborted.
    pub(crate) async fn aborted(&self) -> Abort {
        let mut rx = self.abort.subscribe();
        let reason = rx
            .wait_for(Option::is_some)
            .await
            .map(|r| r.clone())
            .ok()
            .flatten();
        reason.unwrap_or_else(|| Abort::Fatal(TerminalFailure::new(500, "abort channel closed")))
    }

    /// The abort reason, if the attempt was aborted.
    pub(crate) fn abort_reason(&self) -> Option<Abort> {
        self.abort.borrow().clone()
    }
}
