//! An in-memory implementation of the storage traits with DynamoDB's first-writer-wins
//! semantics, for unit tests of the logic above the store (feature `test-util`). It holds one
//! invocation's journal and one object's state and promises; it counts what was done to it so
//! that tests can assert on writes.

use crate::traits::{BoxFuture, Journal, Payloads, Promises, State};
use crate::PayloadError;
use crate::{Appended, Completed, Completer, StoreError, Writer};
use durable_protocol::keyed::{ObjectRef, PromiseCompletion, Waiter};
use durable_protocol::payload::{as_ref, Limits, PayloadRef, REF_KEY};
use durable_protocol::{EntryKind, EntryTag, InvocationId, JournalEntry, StepResult};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// A promise in memory: its result and completer, and its waiters.
type MemoryPromise = (Option<(StepResult, String)>, Vec<Waiter>);

/// One invocation's journal and one object's state and promises, in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    /// The journal, by index.
    pub entries: Mutex<BTreeMap<u32, JournalEntry>>,
    /// How many appends were tried.
    pub writes: AtomicU32,
    /// Who tried each append, in order.
    pub writers: Mutex<Vec<Writer>>,
    /// Completions take this long, like a network write.
    pub completion_delay: Option<Duration>,
    /// The object's state as stored.
    pub state: Mutex<BTreeMap<String, serde_json::Value>>,
    /// How many state reads were made.
    pub state_reads: AtomicU32,
    /// The workflow's promises.
    pub promises: Mutex<BTreeMap<String, MemoryPromise>>,
    /// The entries recorded with an outcome (see [`MemoryStore::record_tail`]).
    pub tails: Mutex<Vec<JournalEntry>>,
    /// An operator's cancellation waits to reach the handler.
    pub cancel_pending: std::sync::atomic::AtomicBool,
    /// How often the handler looked for one.
    pub cancel_reads: AtomicU32,
}

impl MemoryStore {
    /// A store holding `journal`.
    pub fn with_journal(journal: impl IntoIterator<Item = JournalEntry>) -> Self {
        let store = Self::default();
        store
            .entries
            .lock()
            .expect("entries poisoned")
            .extend(journal.into_iter().map(|e| (e.index, e)));
        store
    }

    /// Records a handler's last step the way the orchestrator's finish does: with the outcome,
    /// not as an append. Panics if the entry was appended as well (a handler answers a tail only
    /// for a step it did not write).
    pub fn record_tail(&self, entry: JournalEntry) {
        let previous = self
            .entries
            .lock()
            .expect("entries poisoned")
            .insert(entry.index, entry.clone());
        assert!(previous.is_none(), "a tail entry was appended as well");
        self.tails.lock().expect("tails poisoned").push(entry);
    }

    /// The journal, in index order.
    pub fn journal(&self) -> Vec<JournalEntry> {
        self.entries
            .lock()
            .expect("entries poisoned")
            .values()
            .cloned()
            .collect()
    }
}

impl Journal for MemoryStore {
    fn append<'a>(
        &'a self,
        _id: &'a InvocationId,
        entry: &'a JournalEntry,
        writer: Writer,
    ) -> BoxFuture<'a, Result<Appended, StoreError>> {
        Box::pin(async move {
            self.writes.fetch_add(1, Ordering::SeqCst);
            self.writers.lock().expect("writers poisoned").push(writer);
            let mut entries = self.entries.lock().expect("entries poisoned");
            if let Some(existing) = entries.get(&entry.index) {
                return Ok(Appended::AlreadyRecorded(Box::new(existing.clone())));
            }
            entries.insert(entry.index, entry.clone());
            Ok(Appended::Written)
        })
    }

    fn load<'a>(
        &'a self,
        _id: &'a InvocationId,
    ) -> BoxFuture<'a, Result<Vec<JournalEntry>, StoreError>> {
        Box::pin(async move { Ok(self.journal()) })
    }

    fn flag_payloads<'a>(&'a self, _id: &'a InvocationId) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }

    fn complete<'a>(
        &'a self,
        _id: &'a InvocationId,
        index: u32,
        kind: EntryTag,
        result: &'a StepResult,
        _by: Completer,
    ) -> BoxFuture<'a, Result<Completed, StoreError>> {
        Box::pin(async move {
            if let Some(delay) = self.completion_delay {
                tokio::time::sleep(delay).await;
            }
            let mut entries = self.entries.lock().expect("entries poisoned");
            let Some(entry) = entries.get_mut(&index) else {
                return Ok(Completed::NoSuchEntry);
            };
            if entry.kind.tag() != kind {
                return Ok(Completed::WrongKind(entry.kind.tag()));
            }
            if let Some(c) = &entry.completion {
                return Ok(Completed::AlreadyCompleted(c.clone()));
            }
            entry.completion = Some(result.clone());
            entry.completed_at_ms = Some(durable_protocol::clock::now_millis());
            Ok(Completed::Written)
        })
    }

    fn retry_started<'a>(
        &'a self,
        _id: &'a InvocationId,
        index: u32,
        (from, to): (u32, u32),
        _writer: Writer,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            self.writes.fetch_add(1, Ordering::SeqCst);
            let mut entries = self.entries.lock().expect("entries poisoned");
            let Some(entry) = entries.get_mut(&index) else {
                return Ok(false);
            };
            match &mut entry.kind {
                EntryKind::Started { attempt, .. }
                    if *attempt == from && entry.completion.is_none() =>
                {
                    *attempt = to;
                    Ok(true)
                }
                _ => Ok(false),
            }
        })
    }

    fn cancel_pending<'a>(
        &'a self,
        _id: &'a InvocationId,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            self.cancel_reads.fetch_add(1, Ordering::SeqCst);
            Ok(self.cancel_pending.load(Ordering::SeqCst))
        })
    }
}

impl State for MemoryStore {
    fn get_state<'a>(
        &'a self,
        _object: &'a ObjectRef,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<serde_json::Value>, StoreError>> {
        Box::pin(async move {
            self.state_reads.fetch_add(1, Ordering::SeqCst);
            Ok(self
                .state
                .lock()
                .expect("state poisoned")
                .get(name)
                .cloned())
        })
    }

    fn state_names<'a>(
        &'a self,
        _object: &'a ObjectRef,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            Ok(self
                .state
                .lock()
                .expect("state poisoned")
                .keys()
                .cloned()
                .collect())
        })
    }

    fn write_through<'a>(
        &'a self,
        _object: &'a ObjectRef,
        name: &'a str,
        value: Option<&'a serde_json::Value>,
        _version: u32,
        _owner: (&'a InvocationId, u64),
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        // One attempt runs at a time here, in order: the change is simply applied.
        Box::pin(async move {
            let mut state = self.state.lock().expect("state poisoned");
            match value {
                Some(v) => state.insert(name.to_owned(), v.clone()),
                None => state.remove(name),
            };
            Ok(true)
        })
    }
}

impl Promises for MemoryStore {
    fn peek_promise<'a>(
        &'a self,
        _object: &'a ObjectRef,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<StepResult>, StoreError>> {
        Box::pin(async move {
            Ok(self
                .promises
                .lock()
                .expect("promises poisoned")
                .get(name)
                .and_then(|p| p.0.as_ref().map(|r| r.0.clone())))
        })
    }

    fn wait_promise<'a>(
        &'a self,
        _object: &'a ObjectRef,
        name: &'a str,
        waiter: &'a Waiter,
    ) -> BoxFuture<'a, Result<Option<StepResult>, StoreError>> {
        Box::pin(async move {
            let mut promises = self.promises.lock().expect("promises poisoned");
            let p = promises.entry(name.to_owned()).or_default();
            match &p.0 {
                Some((r, _)) => Ok(Some(r.clone())),
                None => {
                    p.1.push(waiter.clone());
                    Ok(None)
                }
            }
        })
    }

    fn complete_promise<'a>(
        &'a self,
        _object: &'a ObjectRef,
        name: &'a str,
        result: &'a StepResult,
        by: &'a str,
    ) -> BoxFuture<'a, Result<PromiseCompletion, StoreError>> {
        Box::pin(async move {
            let mut promises = self.promises.lock().expect("promises poisoned");
            let p = promises.entry(name.to_owned()).or_default();
            match &p.0 {
                Some((kept, earlier)) => Ok(PromiseCompletion::AlreadyCompleted {
                    result: kept.clone(),
                    by: earlier.clone(),
                    waiters: p.1.clone(),
                }),
                None => {
                    p.0 = Some((result.clone(), by.to_owned()));
                    Ok(PromiseCompletion::Completed {
                        waiters: p.1.clone(),
                    })
                }
            }
        })
    }
}

/// Large values in memory, with the same limits and references as the S3 store: a value over
/// the offload threshold is kept here and replaced by a reference.
#[derive(Debug, Default)]
pub struct MemoryPayloads {
    /// The thresholds in force.
    pub limits: Limits,
    /// Stored values by key.
    pub objects: Mutex<BTreeMap<String, serde_json::Value>>,
}

impl MemoryPayloads {
    fn put(
        &self,
        key: String,
        value: serde_json::Value,
    ) -> Result<serde_json::Value, PayloadError> {
        if as_ref(&value).is_some() {
            return Ok(value);
        }
        let size = value.to_string().len();
        if size > self.limits.max_value_bytes {
            return Err(PayloadError::TooLarge {
                size,
                max: self.limits.max_value_bytes,
            });
        }
        if size <= self.limits.offload_bytes {
            return Ok(value);
        }
        self.objects
            .lock()
            .expect("objects poisoned")
            .insert(key.clone(), value);
        Ok(
            serde_json::json!({ REF_KEY: PayloadRef { key, size: size as u64, sha256: String::new() } }),
        )
    }
}

impl Payloads for MemoryPayloads {
    fn offload<'a>(
        &'a self,
        scope: &'a InvocationId,
        slot: &'a str,
        value: serde_json::Value,
    ) -> BoxFuture<'a, Result<serde_json::Value, PayloadError>> {
        Box::pin(async move {
            self.put(
                format!("{}{slot}", crate::keys::payload_prefix("payloads", scope)),
                value,
            )
        })
    }

    fn offload_output<'a>(
        &'a self,
        scope: &'a InvocationId,
        value: serde_json::Value,
    ) -> BoxFuture<'a, Result<serde_json::Value, PayloadError>> {
        Box::pin(async move {
            self.put(
                format!("{}output", crate::keys::payload_prefix("outputs", scope)),
                value,
            )
        })
    }

    fn resolve(
        &self,
        value: serde_json::Value,
    ) -> BoxFuture<'_, Result<serde_json::Value, PayloadError>> {
        Box::pin(async move {
            let Some(r) = as_ref(&value) else {
                return Ok(value);
            };
            self.objects
                .lock()
                .expect("objects poisoned")
                .get(&r.key)
                .cloned()
                .ok_or(PayloadError::Corrupt {
                    key: r.key,
                    reason: "no such payload".into(),
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable_protocol::EntryKind;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
            .block_on(f)
    }

    #[test]
    fn the_first_writer_of_an_index_wins_and_completions_happen_once() {
        let store = MemoryStore::default();
        let id = InvocationId::random(&durable_protocol::ServiceName::new("svc").unwrap());
        let sleep = JournalEntry::new(
            0,
            EntryKind::Sleep {
                name: "nap".into(),
                wake_at_ms: 5,
            },
        );
        assert_eq!(
            block_on(store.append(&id, &sleep, Writer::from(1))).unwrap(),
            Appended::Written
        );
        let other = JournalEntry::new(
            0,
            EntryKind::Awakeable {
                name: "other".into(),
                timeout: None,
            },
        );
        assert_eq!(
            block_on(store.append(&id, &other, Writer::from(2))).unwrap(),
            Appended::AlreadyRecorded(Box::new(sleep.clone()))
        );
        let fired = StepResult::Value(serde_json::Value::Null);
        assert_eq!(
            block_on(store.complete(&id, 0, EntryTag::Awakeable, &fired, Completer::Other))
                .unwrap(),
            Completed::WrongKind(EntryTag::Sleep)
        );
        assert_eq!(
            block_on(store.complete(&id, 0, EntryTag::Sleep, &fired, Completer::Other)).unwrap(),
            Completed::Written
        );
        assert_eq!(
            block_on(store.complete(&id, 0, EntryTag::Sleep, &fired, Completer::Other)).unwrap(),
            Completed::AlreadyCompleted(fired)
        );
        assert_eq!(store.writes.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn large_values_go_behind_references_and_come_back() {
        let payloads = MemoryPayloads {
            limits: Limits {
                offload_bytes: 8,
                max_value_bytes: 64,
            },
            ..MemoryPayloads::default()
        };
        let id = InvocationId::random(&durable_protocol::ServiceName::new("svc").unwrap());
        let small = serde_json::json!(1);
        assert_eq!(
            block_on(payloads.offload(&id, "j0", small.clone())).unwrap(),
            small
        );
        let large = serde_json::json!("a longer value");
        let stored = block_on(payloads.offload(&id, "j1", large.clone())).unwrap();
        assert!(as_ref(&stored).is_some(), "{stored}");
        assert_eq!(block_on(payloads.resolve(stored)).unwrap(), large);
        let huge = serde_json::json!("x".repeat(100));
        assert!(matches!(
            block_on(payloads.offload_output(&id, huge)),
            Err(PayloadError::TooLarge { size: 102, max: 64 })
        ));
    }
}
