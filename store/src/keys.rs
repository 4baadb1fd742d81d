//! The key scheme of the one table (`pk`/`sk`): every item's key is built here and nowhere else.
//!
//! Everything a handler may touch leads with its service (`inv#<service>#`, `run#<service>#`,
//! `obj#<service>#`), so IAM can grant each handler Lambda its own services' partitions
//! (`dynamodb:LeadingKeys`); what only the orchestrator touches does not (`svc`, `sweep`,
//! `sys`). An invocation id carries its service (`inv_<service>.<local>`).
//!
//! | item | pk | sk |
//! |---|---|---|
//! | invocation | `inv#<service>#<local>` | `meta` |
//! | invocation with a dated id | `run#<service>#<minute, 8 hex>#<shard>` | `<id>` |
//! | journal entry | `inv#<service>#<local>` | `j#<index, 10 digits>` |
//! | service registry | `svc` | `<name>` |
//! | object lock | `obj#<service>#<key>` | `lock` |
//! | object inbox | `obj#<service>#<key>` | `q#<due ms, 15 digits>#<invocation id>` |
//! | object state | `obj#<service>#<key>` | `s#<name>` |
//! | workflow promise | `obj#<service>#<key>` | `p#<name>` |
//! | sweep cursors | `sweep` | `cursor` |
//! | busy minutes (listing) | `busy` | `<service>#<hour, 8 hex>` |
//! | the orchestrator's signing key | `sys` | `signing-key` |

use crate::attrs::{get_s, s, Item};
use durable_protocol::keyed::ObjectRef;
use durable_protocol::{InvocationId, ServiceName};

pub use crate::attrs::{PK, SK};
/// The sort key of an invocation's metadata item.
pub const META_SK: &str = "meta";
/// When an operator asked to cancel the invocation (ms; a metadata attribute).
pub const CANCEL_REQUESTED: &str = "cancel_requested";
/// The flag of a cancellation that reached the handler (a metadata attribute).
pub const CANCEL_DELIVERED: &str = "cancel_delivered";
/// The sort key prefix of journal entries.
pub const JOURNAL_SK_PREFIX: &str = "j#";
/// The TTL attribute of the table (epoch seconds).
pub const EXPIRES_AT: &str = "expires_at";
/// The attribute of a finished invocation's metadata item that holds its last step's
/// journal entry (JSON), recorded with the outcome instead of in an item of its own.
pub const TAIL: &str = "tail";

/// Partition key of everything that belongs to one invocation (its journal, and the
/// metadata item of an id that is not dated).
pub fn invocation_pk(id: &InvocationId) -> String {
    format!("{INVOCATION_PK_PREFIX}{}#{}", id.service_str(), id.local())
}

/// The partition key prefix of invocations' partitions (then the service, `#`, the local part).
pub const INVOCATION_PK_PREFIX: &str = "inv#";

/// The invocation a partition key of [`invocation_pk`] belongs to.
fn id_of_invocation_pk(pk: &str) -> Option<InvocationId> {
    let (service, local) = pk.strip_prefix(INVOCATION_PK_PREFIX)?.split_once('#')?;
    InvocationId::parse(&format!("inv_{service}.{local}")).ok()
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

/// The partition of one service's, minute's and shard's dated metadata items: the lease sweep
/// queries it once the minute is over, instead of finding new invocations in an index.
pub fn run_pk(service: &str, minute: u32, shard: u8) -> String {
    format!("{RUN_PK_PREFIX}{service}#{minute:08x}#{shard}")
}

/// The attributes that put an invocation whose id is not dated in the keys-only `runs` index,
/// in the same partitions as dated ones (`run_pk` of its creation minute and a shard of its
/// id), so that listing reads a minute's invocations of every kind the same way.
pub const LIST_PK: &str = "list_pk";
pub const LIST_SK: &str = "list_sk";
/// The keys-only index of invocations with ids that are not dated, by creation minute.
pub const RUNS_INDEX: &str = "runs";

/// The `runs` index partition of an invocation with an id that is not dated, created at
/// `created_ms`: its shard is a hash of its id, so that one busy minute spreads as dated ones do.
pub fn list_pk(id: &InvocationId, created_ms: u64) -> String {
    let shard = id
        .as_str()
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % u32::from(InvocationId::SHARDS);
    run_pk(id.service_str(), (created_ms / 60_000) as u32, shard as u8)
}

/// The partition of the busy-minute items the sweep writes for listing: one per service and
/// hour, with the minutes in which it found invocations (orchestrator only: no service first).
pub const BUSY_PK: &str = "busy";

/// The key of `service`'s busy-minute item for `hour` (minutes since the epoch / 60).
pub fn busy_key_item(service: &str, hour: u32) -> Item {
    Item::from([
        (PK.to_owned(), s(BUSY_PK.to_owned())),
        (SK.to_owned(), s(busy_sk(service, hour))),
    ])
}

/// The sort key of `service`'s busy-minute item for `hour`.
pub fn busy_sk(service: &str, hour: u32) -> String {
    format!("{service}#{hour:08x}")
}

/// The key (pk, sk) of an invocation's metadata item.
pub fn meta_key(id: &InvocationId) -> (String, String) {
    match id.bucket() {
        Some((minute, shard)) => (
            run_pk(id.service_str(), minute, shard),
            id.as_str().to_owned(),
        ),
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
    if pk.starts_with(INVOCATION_PK_PREFIX) {
        return match get_s(item, SK) == Some(META_SK) {
            true => id_of_invocation_pk(pk),
            false => None,
        };
    }
    if pk.starts_with(RUN_PK_PREFIX) {
        return InvocationId::parse(get_s(item, SK)?).ok();
    }
    None
}

/// The invocation and index of a journal entry item, from its key.
pub fn entry_of_item(item: &Item) -> Option<(InvocationId, u32)> {
    let id = id_of_invocation_pk(get_s(item, PK)?)?;
    let index = get_s(item, SK)?
        .strip_prefix(JOURNAL_SK_PREFIX)?
        .parse()
        .ok()?;
    Some((id, index))
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

/// The partition of the service registry: one item per service (sort key: its name), so the
/// sweep lists the services with one query.
pub const REGISTRY_PK: &str = "svc";

/// The key of a service's registration.
pub fn service_key_item(name: &ServiceName) -> Item {
    Item::from([
        (PK.to_owned(), s(REGISTRY_PK.to_owned())),
        (SK.to_owned(), s(name.as_str().to_owned())),
    ])
}

/// The key of the orchestrator's signing key (see `durable_protocol::auth`).
pub fn signing_key_item() -> Item {
    Item::from([
        (PK.to_owned(), s("sys".to_owned())),
        (SK.to_owned(), s("signing-key".to_owned())),
    ])
}

/// Whether S3 object `key` is one of `id`'s own payloads or its output (under its prefixes).
pub fn owns_payload(id: &InvocationId, key: &str) -> bool {
    ["payloads", "outputs"]
        .iter()
        .any(|root| key.starts_with(&payload_prefix(root, id)))
}

/// Whether S3 object `key` belongs to `service` (what its handlers may read).
pub fn service_owns_payload(service: &str, key: &str) -> bool {
    ["payloads", "outputs"]
        .iter()
        .any(|root| key.starts_with(&format!("{root}/{service}/")))
}

/// The S3 key prefix of `id`'s payloads (or, with `outputs`, its output), ending in `/`:
/// service first, so IAM grants a handler its services' prefixes.
pub fn payload_prefix(root: &str, id: &InvocationId) -> String {
    format!("{root}/{}/{}/", id.service_str(), id.local())
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
        let id = InvocationId::parse(&format!("inv_svc.{}", "a".repeat(32))).unwrap();
        assert_eq!(invocation_pk(&id), format!("inv#svc#{}", "a".repeat(32)));
        let dated = InvocationId::dated(&ServiceName::new("svc").unwrap(), 1_764_000_000_000);
        let (pk, sk) = meta_key(&dated);
        assert!(pk.starts_with("run#svc#"), "{pk}");
        let item = Item::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))]);
        assert_eq!(id_of_meta(&item), Some(dated.clone()));
        let own = format!("{}input/abc", payload_prefix("payloads", &dated));
        assert!(owns_payload(&dated, &own));
        assert!(!owns_payload(&id, &own), "another invocation's");
        assert!(service_owns_payload("svc", &own));
        assert!(!service_owns_payload("sv", &own));
        assert!(!owns_payload(&dated, "payloads/other/x"));
        let entry = entry_key_item(&id, 7);
        assert_eq!(entry_of_item(&entry), Some((id.clone(), 7)));
        assert_eq!(id_of_meta(&entry), None);
        let meta = meta_key_item(&id);
        assert_eq!(entry_of_item(&meta), None);
        assert_eq!(id_of_meta(&meta), Some(id));
    }
}
