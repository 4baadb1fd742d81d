//! The small storage traits that logic above the store is written against: a handler attempt's
//! journal, an object's state, a workflow's promises and large values. [`Table`] implements them on DynamoDB;
//! `memory::MemoryStore` (feature `test-util`) implements them in memory for unit tests.

use crate::{
    Appended, Completed, Completer, JournalStore, KeyedStore, PayloadError, PayloadStore,
    StoreError, Writer,
};
use durable_protocol::keyed::{ObjectRef, PromiseCompletion, Waiter};
use durable_protocol::{EntryTag, InvocationId, JournalEntry, StepResult};
use std::future::Future;
use std::pin::Pin;

/// A boxed future, as object-safe traits need.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An invocation's journal: conditional appends, completions, the whole history.
pub trait Journal: Send + Sync {
    /// Records `entry` unless its index is taken; the first writer wins.
    fn append<'a>(
        &'a self,
        id: &'a InvocationId,
        entry: &'a JournalEntry,
        writer: Writer,
    ) -> BoxFuture<'a, Result<Appended, StoreError>>;

    /// The whole journal, as stored now.
    fn load<'a>(
        &'a self,
        id: &'a InvocationId,
    ) -> BoxFuture<'a, Result<Vec<JournalEntry>, StoreError>>;

    /// Marks the invocation as having values in S3 (to be deleted when it finishes).
    fn flag_payloads<'a>(&'a self, id: &'a InvocationId) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Writes a completion onto a `kind` entry unless it has one; `by` says whether the
    /// sweep must be able to find it (see [`Completer`]).
    fn complete<'a>(
        &'a self,
        id: &'a InvocationId,
        index: u32,
        kind: EntryTag,
        result: &'a StepResult,
        by: Completer,
    ) -> BoxFuture<'a, Result<Completed, StoreError>>;

    /// Starts try `to` of the at-most-once step at entry `index` whose try `from` never
    /// finished; `false` if another try started first or the step has its result.
    fn retry_started<'a>(
        &'a self,
        id: &'a InvocationId,
        index: u32,
        tries: (u32, u32),
        writer: Writer,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Whether an operator's cancellation waits to reach the handler; stores that cannot be
    /// cancelled from outside answer `false`.
    fn cancel_pending<'a>(
        &'a self,
        id: &'a InvocationId,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let _ = id;
        Box::pin(async { Ok(false) })
    }
}

/// An object's state, as stored (written only when an invocation finishes).
pub trait State: Send + Sync {
    /// One state value.
    fn get_state<'a>(
        &'a self,
        object: &'a ObjectRef,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<serde_json::Value>, StoreError>>;

    /// The names of the state keys.
    fn state_names<'a>(
        &'a self,
        object: &'a ObjectRef,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>>;

    /// Writes a running workflow's state change (journal entry `version`; `None` clears it)
    /// for its shared handlers to see before it finishes, while `owner` (invocation, epoch)
    /// still runs; `false` if it did not apply. Stores that apply state only at the finish do
    /// nothing.
    fn write_through<'a>(
        &'a self,
        object: &'a ObjectRef,
        name: &'a str,
        value: Option<&'a serde_json::Value>,
        version: u32,
        owner: (&'a InvocationId, u64),
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let _ = (object, name, value, version, owner);
        Box::pin(async { Ok(false) })
    }
}

/// A workflow's durable promises.
pub trait Promises: Send + Sync {
    /// A promise's result, if it has one.
    fn peek_promise<'a>(
        &'a self,
        object: &'a ObjectRef,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<StepResult>, StoreError>>;

    /// Registers a waiter on a promise, or returns its result if it has one.
    fn wait_promise<'a>(
        &'a self,
        object: &'a ObjectRef,
        name: &'a str,
        waiter: &'a Waiter,
    ) -> BoxFuture<'a, Result<Option<StepResult>, StoreError>>;

    /// Completes a promise (the first completion wins).
    fn complete_promise<'a>(
        &'a self,
        object: &'a ObjectRef,
        name: &'a str,
        result: &'a StepResult,
        by: &'a str,
    ) -> BoxFuture<'a, Result<PromiseCompletion, StoreError>>;
}

/// Large values kept outside the journal, behind references (see `durable_protocol::payload`).
pub trait Payloads: Send + Sync {
    /// `value` as it should be recorded: itself when small, else a reference to where it was
    /// stored (under `payloads/<scope>/<slot>/`, removed when the invocation finishes).
    fn offload<'a>(
        &'a self,
        scope: &'a InvocationId,
        slot: &'a str,
        value: serde_json::Value,
    ) -> BoxFuture<'a, Result<serde_json::Value, PayloadError>>;

    /// Like [`Payloads::offload`], for an invocation's output (kept for the retention period).
    fn offload_output<'a>(
        &'a self,
        scope: &'a InvocationId,
        value: serde_json::Value,
    ) -> BoxFuture<'a, Result<serde_json::Value, PayloadError>>;

    /// The value behind `value` if it is a reference, else `value`.
    fn resolve(
        &self,
        value: serde_json::Value,
    ) -> BoxFuture<'_, Result<serde_json::Value, PayloadError>>;
}

impl Payloads for PayloadStore {
    fn offload<'a>(
        &'a self,
        scope: &'a InvocationId,
        slot: &'a str,
        value: serde_json::Value,
    ) -> BoxFuture<'a, Result<serde_json::Value, PayloadError>> {
        Box::pin(PayloadStore::offload(self, scope, slot, value))
    }

    fn offload_output<'a>(
        &'a self,
        scope: &'a InvocationId,
        value: serde_json::Value,
    ) -> BoxFuture<'a, Result<serde_json::Value, PayloadError>> {
        Box::pin(PayloadStore::offload_output(self, scope, value))
    }

    fn resolve(
        &self,
        value: serde_json::Value,
    ) -> BoxFuture<'_, Result<serde_json::Value, PayloadError>> {
        Box::pin(PayloadStore::resolve(self, value))
    }
}

/// Everything a handler attempt touches in storage.
pub trait HandlerStore: Journal + State + Promises {}

impl<T: Journal + State + Promises> HandlerStore for T {}

/// The orchestrator's table, as handlers use it: journal entries, state and promises.
#[derive(Debug, Clone)]
pub struct Table {
    /// Journal entries.
    pub journal: JournalStore,
    /// State and promises.
    pub keyed: KeyedStore,
}

impl Table {
    /// The table `name` through `client`.
    pub fn new(client: aws_sdk_dynamodb::Client, name: &str) -> Self {
        Self {
            journal: JournalStore::new(client.clone(), name),
            keyed: KeyedStore::new(client, name),
        }
    }
}

impl Journal for Table {
    fn append<'a>(
        &'a self,
        id: &'a InvocationId,
        entry: &'a JournalEntry,
        writer: Writer,
    ) -> BoxFuture<'a, Result<Appended, StoreError>> {
        Box::pin(self.journal.append(id, entry, writer))
    }

    fn load<'a>(
        &'a self,
        id: &'a InvocationId,
    ) -> BoxFuture<'a, Result<Vec<JournalEntry>, StoreError>> {
        Box::pin(self.journal.load(id))
    }

    fn flag_payloads<'a>(&'a self, id: &'a InvocationId) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.journal.flag_payloads(id))
    }

    fn complete<'a>(
        &'a self,
        id: &'a InvocationId,
        index: u32,
        kind: EntryTag,
        result: &'a StepResult,
        by: Completer,
    ) -> BoxFuture<'a, Result<Completed, StoreError>> {
        Box::pin(self.journal.complete(id, index, kind, result, by))
    }

    fn retry_started<'a>(
        &'a self,
        id: &'a InvocationId,
        index: u32,
        tries: (u32, u32),
        writer: Writer,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.journal.retry_started(id, index, tries, writer))
    }

    fn cancel_pending<'a>(
        &'a self,
        id: &'a InvocationId,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.journal.cancel_pending(id))
    }
}

impl State for Table {
    fn get_state<'a>(
        &'a self,
        object: &'a ObjectRef,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<serde_json::Value>, StoreError>> {
        Box::pin(self.keyed.get(object, name))
    }

    fn state_names<'a>(
        &'a self,
        object: &'a ObjectRef,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        Box::pin(self.keyed.names(object))
    }

    fn write_through<'a>(
        &'a self,
        object: &'a ObjectRef,
        name: &'a str,
        value: Option<&'a serde_json::Value>,
        version: u32,
        owner: (&'a InvocationId, u64),
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(
            self.keyed
                .write_through(object, name, value, version, owner),
        )
    }
}

impl Promises for Table {
    fn peek_promise<'a>(
        &'a self,
        object: &'a ObjectRef,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<StepResult>, StoreError>> {
        Box::pin(self.keyed.peek(object, name))
    }

    fn wait_promise<'a>(
        &'a self,
        object: &'a ObjectRef,
        name: &'a str,
        waiter: &'a Waiter,
    ) -> BoxFuture<'a, Result<Option<StepResult>, StoreError>> {
        Box::pin(self.keyed.wait(object, name, waiter))
    }

    fn complete_promise<'a>(
        &'a self,
        object: &'a ObjectRef,
        name: &'a str,
        result: &'a StepResult,
        by: &'a str,
    ) -> BoxFuture<'a, Result<PromiseCompletion, StoreError>> {
        Box::pin(self.keyed.complete(object, name, result, by))
    }
}
