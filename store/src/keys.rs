//! The key scheme of the one table (`pk`/`sk`): every item's key is built here and nowhere else.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | invocation | `inv#<id>` | `meta` |
//! | invocation with a dated id | `run#<minute, 8 hex>#<shard>` | `<id>` |
//! | journal entry | `inv#<id>` | `j#<index, 10 digits>` |
//! | service registry | `svc#<name>` | `live` |
//! | object lock | `obj#<service>#<key>` | `lock` |
//! | object inbox | `obj#<service>#<key>` | `q#<due ms, 15 digits>#<invocation id>` |
//! | object state | `obj#<service>#<key>` | `s#<name>` |
//! | workflow promise | `obj#<service>#<key>` | `p#<name>` |
//! | sweep cursors | `sweep` | `cursor` |

use crate::attrs::{get_s, s, Item};
use durable_protocol::keyed::ObjectRef;
use durable_protocol::{InvocationId, ServiceName};

pub use crate::attrs::{PK, SK};
/// The sort key of an invocation's metadata item.
pub const META_SK: &str = "meta";
/// The sort key prefix of journal entries.
pub const JOURNAL_SK_PREFIX: &str = "j#";
/// The sort key of a service's live registration.
pub const LIVE_SK: &str = "live";
/// The TTL attribute of the table (epoch seconds).
pub const EXPIRES_AT: &str = "expires_at";
/// The attribute of a finished invocation's metadata item that holds its last step's
/// journal entry (JSON), recorded with the outcome instead of in an item of its own.
pub const TAIL: &str = "tail";

/// Partition key of everything that belongs to one invocation (its journal, and the
/// metadata item of an id that is not dated).
pub fn invocation_pk(id: &InvocationId) -> String {
    format!("inv#{id}")
}

/// The attribute (and its only value) that puts an item in the sparse `leases` index: running
/// invocations, queued ones, recorded calls and sends, completions made by others. The sweep
/// finds them there without scanning the table.
pub const LEASE_SHARD: &str = "lease_shard";
pub const LEASE_SHARD_VALUE: &str = "L";
/// The attribute the `leases` index sorts by (ms since the Unix epoch).
pub const LEASE_UNTIL: &str = "lease_until";
/// The sparse index of items the sweep must look at, by `lease_until`.
pub const LEASE_INDEX: &str = "leases";

/// The partition key prefix of the minutes' partitions of dated metadata items.
pub const RUN_PK_PREFIX: &str = "run#";

/// The partition of one minute's (and shard's) dated metadata items: the lease sweep
/// queries it once the minute is over, instead of finding new invocations in an index.
pub fn run_pk(minute: u32, shard: u8) -> String {
    format!("{RUN_PK_PREFIX}{minute:08x}#{shard}")
}

/// The key (pk, sk) of an invocation's metadata item.
pub fn meta_key(id: &InvocationId) -> (String, String) {
    match id.bucket() {
        Some((minute, shard)) => (run_pk(minute, shard), id.as_str().to_owned()),
        None => (invocation_pk(id), META_SK.to_owned()),
    }
}

/// The key of an invocation's metadata item, as the attributes of a key.
pub fn meta_key_item(id: &InvocationId) -> Item {
    let (pk, sk) = meta_key(id);
    Item::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}

/// The invocation a metadata item belongs to, from its key.
pub fn id_of_meta(item: &Item) -> Option<InvocationId> {
    let pk = get_s(item, PK)?;
    let id = match pk.strip_prefix("inv#") {
        Some(id) if get_s(item, SK) == Some(META_SK) => id,
        Some(_) => return None,
        None if pk.starts_with(RUN_PK_PREFIX) => get_s(item, SK)?,
        None => return None,
    };
    InvocationId::parse(id).ok()
}

/// The invocation and index of a journal entry item, from its key.
pub fn entry_of_item(item: &Item) -> Option<(InvocationId, u32)> {
    let id = get_s(item, PK)?.strip_prefix("inv#")?;
    let index = get_s(item, SK)?
        .strip_prefix(JOURNAL_SK_PREFIX)?
        .parse()
        .ok()?;
    Some((InvocationId::parse(id).ok()?, index))
}

/// The key of journal entry `index` of `id`, as the attributes of a key.
pub fn entry_key_item(id: &InvocationId, index: u32) -> Item {
    Item::from([
        (PK.to_owned(), s(invocation_pk(id))),
        (SK.to_owned(), s(journal_sk(index))),
    ])
}

/// Sort key of journal entry `index`: zero-padded so that keys sort in index order.
pub fn journal_sk(index: u32) -> String {
    format!("{JOURNAL_SK_PREFIX}{index:010}")
}

/// The sort key of an object's lock item.
pub const LOCK_SK: &str = "lock";
/// The sort key prefix of an object's inbox (queued exclusive invocations).
pub const QUEUE_SK_PREFIX: &str = "q#";
/// The sort key prefix of an object's state items.
pub const STATE_SK_PREFIX: &str = "s#";
/// The sort key prefix of a workflow's promises.
pub const PROMISE_SK_PREFIX: &str = "p#";

/// Partition key of everything that belongs to one object or workflow instance.
pub fn object_pk(service: &ServiceName, key: &durable_protocol::ObjectKey) -> String {
    format!("obj#{service}#{key}")
}

/// Sort key of a queued invocation: ordered by when it may start, then by id.
pub fn queue_sk(due_ms: u64, id: &InvocationId) -> String {
    format!("{QUEUE_SK_PREFIX}{due_ms:015}#{id}")
}

/// Sort key of a state item.
pub fn state_sk(name: &str) -> String {
    format!("{STATE_SK_PREFIX}{name}")
}

/// Sort key of a promise item.
pub fn promise_sk(name: &str) -> String {
    format!("{PROMISE_SK_PREFIX}{name}")
}

/// Partition key of a service's registry items.
pub fn service_pk(name: &ServiceName) -> String {
    format!("svc#{name}")
}

/// The partition key of an object's (or workflow's) items.
pub fn object_ref_pk(object: &ObjectRef) -> String {
    object_pk(&object.service, &object.key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_and_meta_keys_are_told_apart() {
        let id = InvocationId::parse(&format!("inv_{}", "a".repeat(32))).unwrap();
        let entry = entry_key_item(&id, 7);
        assert_eq!(entry_of_item(&entry), Some((id.clone(), 7)));
        assert_eq!(id_of_meta(&entry), None);
        let meta = meta_key_item(&id);
        assert_eq!(entry_of_item(&meta), None);
        assert_eq!(id_of_meta(&meta), Some(id));
    }
}
