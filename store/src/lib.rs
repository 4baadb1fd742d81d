//! Storage of the durable-execution engine: everything that talks to DynamoDB and S3.
//!
//! * [`keys`]: the key scheme of the one table, and nothing else builds keys.
//! * [`attrs`]: typed reads and writes of attribute values, the result codec.
//! * [`conditional`]: conditional writes and the parsing of their refusals.
//! * [`batch`]: batch reads of many items by key.
//! * [`journal`]: journal entries as items, the conditional append, completions, TTLs.
//! * [`invocations`]: invocation metadata and its conditional lifecycle transitions.
//! * [`control`]: the transitions operators ask for (pause, resume, cancel, retry, restart).
//! * [`listing`]: invocations listed newest first, by minute, and the sweep's busy minutes.
//! * [`sweep`]: the sweep's cursors, the pages it walks and its conditional marks.
//! * [`objects`]: virtual objects' lock and inbox, and the transaction that ends a keyed
//!   invocation (outcome, state, lock hand-over).
//! * [`keyed`]: object state and workflow promises.
//! * [`registry`]: which handler Lambda version serves which service.
//! * [`signing`]: the orchestrator's signing key (see `durable_protocol::auth`).
//! * [`payloads`]: large values in S3 behind small references.
//! * [`traits`]: the small storage traits that logic above the store is written against.

pub mod attrs;
pub mod batch;
pub mod conditional;
pub mod control;
pub mod error;
pub mod invocations;
pub mod journal;
pub mod keyed;
pub mod keys;
pub mod listing;
pub mod objects;
pub mod payloads;
pub mod registry;
pub mod signing;
pub mod sweep;
pub mod traits;

#[cfg(any(test, feature = "test-util"))]
pub mod memory;

pub use attrs::Item;
pub use error::StoreError;
pub use journal::{Appended, Beat, Completed, Completer, JournalStore, Writer};
pub use keyed::KeyedStore;
pub use payloads::{PayloadError, PayloadStore};
