//! Virtual objects: the lock and inbox that make exclusive handlers of one key run one at a
//! time in arrival order, and the transaction that ends a keyed invocation (outcome, state
//! changes and lock hand-over at once).
//!
//! The lock item (`obj#<svc>#<key>` / `lock`) names its `holder` and counts `arrivals`. An
//! exclusive invocation arrives by a transaction that creates it `queued`, puts it in the inbox
//! (`q#<due>#<id>`) and bumps `arrivals`; then anybody may *pump* the object: if nobody holds
//! the lock, the first due inbox item is granted it (one transaction: lock, invocation, inbox).
//! The holder's finishing transaction hands the lock to the next due item, or frees it only if
//! `arrivals` did not change since the inbox was read, so an arrival that saw the lock held is
//! never left waiting for nobody.

use crate::attrs::get_n;
use crate::attrs::get_s;
use crate::attrs::n;
use crate::attrs::s;
use crate::conditional::{bind_owned, build_err, failed_conditions, OWNED};
use crate::invocations::{
    Ending, FinishUpdate, Invocation, InvocationStore, NewInvocation, Outcome, Status, LEASE_SHARD,
};
use crate::keys;
use crate::Item;
use crate::KeyedStore;
use crate::StoreError;
use aws_sdk_dynamodb::types::{ConditionCheck, Delete, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use durable_protocol::clock::now_millis;
use durable_protocol::keyed::ObjectRef;
use durable_protocol::{HandlerKind, InvocationId, JournalEntry, StateDelta};
use std::time::Duration;

/// DynamoDB's limit of items per transaction.
const MAX_TRANSACTION_ITEMS: usize = 100;
/// A transaction holds at most 4 MB; state chunks stay well below.
const MAX_TRANSACTION_BYTES: usize = 3_000_000;
/// How often a finish re-reads the inbox when arrivals keep racing with it.
const MAX_HANDOFF_ROUNDS: usize = 8;

/// How an arrival went.
#[derive(Debug, Clone, PartialEq)]
pub enum Arrival {
    /// Queued now: the invocation as written.
    Queued(Box<Invocation>),
    /// The id existed (an idempotent retry): as stored.
    Existing(Box<Invocation>),
}

/// How a keyed finish went.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// Whether the invocation had values in S3.
    pub has_payloads: bool,
    /// The queued invocation the lock went to: it must be driven now.
    pub next: Option<InvocationId>,
}

/// An object as stored: state (by name), the lock's holder, the inbox (due time, id) in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectSnapshot {
    pub state: Vec<(String, serde_json::Value)>,
    pub holder: Option<InvocationId>,
    pub queue: Vec<(u64, InvocationId)>,
}

/// The lock, inbox and state writes of objects.
#[derive(Debug, Clone)]
pub struct Objects {
    client: Client,
    table: String,
    pub keyed: KeyedStore,
}

impl Objects {
    /// Objects in `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        let table = table.into();
        Self {
            keyed: KeyedStore::new(client.clone(), table.clone()),
            client,
            table,
        }
    }

    fn key(&self, pk: String, sk: impl Into<String>) -> Item {
        Item::from([(keys::PK.into(), s(pk)), (keys::SK.into(), s(sk))])
    }

    /// Everything stored for `object` in one consistent read of its partition: its state,
    /// the lock's holder and the inbox in order (for operators; handlers read state lazily).
    pub async fn snapshot(&self, object: &ObjectRef) -> Result<ObjectSnapshot, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(keys::object_ref_pk(object)))
            .consistent_read(true);
        let mut snap = ObjectSnapshot::default();
        for item in crate::batch::query_all(query).await? {
            let sk = get_s(&item, keys::SK).unwrap_or_default();
            if sk == keys::LOCK_SK {
                snap.holder = get_s(&item, "holder").and_then(|h| InvocationId::parse(h).ok());
            } else if let Some(rest) = sk.strip_prefix(keys::QUEUE_SK_PREFIX) {
                let parsed = rest
                    .split_once('#')
                    .and_then(|(due, id)| Some((due.parse().ok()?, InvocationId::parse(id).ok()?)));
                snap.queue.extend(parsed);
            } else if let Some(name) = sk.strip_prefix(keys::STATE_SK_PREFIX) {
                // A key a running workflow cleared has no value: it is not shown.
                if let Some(value) =
                    get_s(&item, "value").and_then(|v| serde_json::from_str(v).ok())
                {
                    snap.state.push((name.to_owned(), value));
                }
            }
        }
        Ok(snap)
    }

    /// Creates an exclusive invocation in its object's inbox, due at `due_ms` (now, or later for
    /// a delayed send). Nothing is written if the id exists.
    pub async fn arrive(
        &self,
        invocations: &InvocationStore,
        new: &NewInvocation,
        object: &ObjectRef,
        due_ms: u64,
    ) -> Result<Arrival, StoreError> {
        let mut meta = InvocationStore::new_item(new, Status::Queued);
        meta.insert("due_at".into(), n(due_ms));
        // In the `leases` index from its arrival: if the pump after this write never runs (the
        // arriving call died), the sweep pumps the object once this lease has passed.
        meta.insert(LEASE_SHARD.into(), s(crate::invocations::LEASE_SHARD_VALUE));
        meta.insert(
            "lease_until".into(),
            n(due_ms.max(now_millis()) + crate::invocations::LEASE_AHEAD.as_millis() as u64),
        );
        let queued = InvocationStore::decode(&meta)?;
        let put_meta = Put::builder()
            .table_name(&self.table)
            .set_item(Some(meta))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(build_err)?;
        let mut inbox = self.key(keys::object_ref_pk(object), keys::queue_sk(due_ms, &new.id));
        inbox.insert("invocation".into(), s(new.id.as_str()));
        let put_inbox = Put::builder()
            .table_name(&self.table)
            .set_item(Some(inbox))
            .build()
            .map_err(build_err)?;
        let bump = Update::builder()
            .table_name(&self.table)
            .set_key(Some(self.key(keys::object_ref_pk(object), keys::LOCK_SK)))
            .update_expression("ADD arrivals :one REMOVE expires_at")
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(build_err)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put_meta).build())
            .transact_items(TransactWriteItem::builder().put(put_inbox).build())
            .transact_items(TransactWriteItem::builder().update(bump).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(Arrival::Queued(Box::new(queued))),
            Err(err) => {
                let exists = err
                    .as_service_error()
                    .and_then(failed_conditions)
                    .is_some_and(|f| f.first() == Some(&true));
                if !exists {
                    return Err(StoreError::dynamo("TransactWriteItems", err));
                }
                invocations
                    .get(&new.id)
                    .await?
                    .map(|inv| Arrival::Existing(Box::new(inv)))
                    .ok_or_else(|| StoreError::Corrupt {
                        pk: keys::invocation_pk(&new.id),
                        sk: keys::META_SK.into(),
                        reason: "exists and does not".into(),
                    })
            }
        }
    }

    /// The lock item: its holder and arrival count.
    async fn lock(&self, object: &ObjectRef) -> Result<(Option<InvocationId>, u64), StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(self.key(keys::object_ref_pk(object), keys::LOCK_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        let item = out.item.unwrap_or_default();
        let holder = get_s(&item, "holder").and_then(|h| InvocationId::parse(h).ok());
        Ok((holder, get_n(&item, "arrivals").unwrap_or(0)))
    }

    /// The first inbox item that is due: (its sort key, its invocation).
    async fn first_due(
        &self,
        object: &ObjectRef,
    ) -> Result<Option<(String, InvocationId)>, StoreError> {
        // Every item due by now sorts at or below `q#<now + 1>` (a prefix of later items).
        let upper = format!("{}{:015}", keys::QUEUE_SK_PREFIX, now_millis() + 1);
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
            .expression_attribute_values(":pk", s(keys::object_ref_pk(object)))
            .expression_attribute_values(":lo", s(keys::QUEUE_SK_PREFIX))
            .expression_attribute_values(":hi", s(upper))
            .consistent_read(true)
            .limit(1)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        Ok(out.items().first().and_then(|item| {
            let sk = get_s(item, keys::SK)?.to_owned();
            let id = InvocationId::parse(get_s(item, "invocation")?).ok()?;
            Some((sk, id))
        }))
    }

    /// The writes that give the lock's next holder its run: it leaves the inbox and becomes
    /// running with an expired lease (whoever drives it takes it over).
    fn grant_items(
        &self,
        object: &ObjectRef,
        sk: &str,
        next: &InvocationId,
    ) -> Result<[TransactWriteItem; 2], StoreError> {
        let meta = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::meta_key_item(next)))
            .condition_expression("#st = :queued")
            .update_expression(
                "SET #st = :running, lease_until = :soon, released = :t, #shard = :shard, updated_at = :now",
            )
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#shard", LEASE_SHARD)
            .expression_attribute_values(":queued", s(Status::Queued.as_str()))
            .expression_attribute_values(":running", s(Status::Running.as_str()))
            // Whoever drives it takes it over at once (released); if its `drive` event is
            // lost, the sweep finds it when this lease ends.
            .expression_attribute_values(":soon", n(crate::invocations::released_lease()))
            .expression_attribute_values(":t", aws_sdk_dynamodb::types::AttributeValue::Bool(true))
            .expression_attribute_values(":shard", s("L"))
            .expression_attribute_values(":now", n(now_millis()))
            .build()
            .map_err(build_err)?;
        let dequeue = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(self.key(keys::object_ref_pk(object), sk)))
            .build()
            .map_err(build_err)?;
        Ok([
            TransactWriteItem::builder().update(meta).build(),
            TransactWriteItem::builder().delete(dequeue).build(),
        ])
    }

    /// If nobody holds the object's lock, grants it to the first due invocation of its inbox and
    /// returns it (to be driven now). Racing pumps grant it once.
    pub async fn pump(&self, object: &ObjectRef) -> Result<Option<InvocationId>, StoreError> {
        let (holder, _) = self.lock(object).await?;
        if holder.is_some() {
            return Ok(None);
        }
        let Some((sk, next)) = self.first_due(object).await? else {
            return Ok(None);
        };
        let take = Update::builder()
            .table_name(&self.table)
            .set_key(Some(self.key(keys::object_ref_pk(object), keys::LOCK_SK)))
            .condition_expression("attribute_not_exists(holder)")
            .update_expression("SET holder = :next, granted_at = :now REMOVE expires_at")
            .expression_attribute_values(":next", s(next.as_str()))
            .expression_attribute_values(":now", n(now_millis()))
            .build()
            .map_err(build_err)?;
        let [meta, dequeue] = self.grant_items(object, &sk, &next)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(take).build())
            .transact_items(meta)
            .transact_items(dequeue)
            .send()
            .await;
        match result {
            Ok(_) => {
                tracing::info!(%object, %next, "granted the lock");
                Ok(Some(next))
            }
            Err(err) if err.as_service_error().and_then(failed_conditions).is_some() => {
                // Somebody else granted it (or took it) first.
                Ok(None)
            }
            Err(err) => Err(StoreError::dynamo("TransactWriteItems", err)),
        }
    }

    /// The puts and deletes that apply `delta` to the object's state.
    async fn state_writes(
        &self,
        object: &ObjectRef,
        delta: &StateDelta,
    ) -> Result<Vec<(TransactWriteItem, usize)>, StoreError> {
        let mut writes = Vec::new();
        if delta.clear_all {
            for name in self.keyed.stored_names(object).await? {
                if !matches!(delta.changes.get(&name), Some(Some(_))) {
                    let delete = Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(
                            self.key(keys::object_ref_pk(object), keys::state_sk(&name)),
                        ))
                        .build()
                        .map_err(build_err)?;
                    writes.push((
                        TransactWriteItem::builder().delete(delete).build(),
                        64 + name.len(),
                    ));
                }
            }
        }
        for (name, value) in &delta.changes {
            let key = self.key(keys::object_ref_pk(object), keys::state_sk(name));
            let write = match value {
                Some(value) => {
                    let text = value.to_string();
                    let size = 64 + name.len() + text.len();
                    let mut item = key;
                    item.insert("value".into(), s(text));
                    item.insert("updated_at".into(), n(now_millis()));
                    let put = Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(item))
                        .build()
                        .map_err(build_err)?;
                    (TransactWriteItem::builder().put(put).build(), size)
                }
                None => {
                    let delete = Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(key))
                        .build()
                        .map_err(build_err)?;
                    (
                        TransactWriteItem::builder().delete(delete).build(),
                        64 + name.len(),
                    )
                }
            };
            writes.push(write);
        }
        Ok(writes)
    }

    /// A check that `inv` is still owned at its epoch: guards state chunks written before the
    /// finishing transaction, so a driver that lost ownership writes nothing.
    fn ownership_check(&self, inv: &Invocation) -> Result<TransactWriteItem, StoreError> {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(keys::meta_key_item(&inv.id)))
            .condition_expression(OWNED);
        let check = bind_owned(check, inv.epoch).build().map_err(build_err)?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    /// Ends a keyed invocation that writes state (an exclusive handler or a workflow's `run`):
    /// records its outcome, applies its state changes and, for an exclusive handler, hands the
    /// object's lock to the next due invocation (or frees it), in one transaction. `None` if
    /// another driver owns the invocation now.
    ///
    /// State changes too many for one transaction go first, in transactions that check the
    /// invocation is still owned; the last one carries the outcome and the lock.
    pub async fn finish(
        &self,
        inv: &Invocation,
        outcome: &Outcome,
        tail: Option<&JournalEntry>,
        retention: Duration,
        delta: &StateDelta,
        ending: Ending,
    ) -> Result<Option<Finished>, StoreError> {
        let object = inv.object().ok_or_else(|| StoreError::Corrupt {
            pk: keys::invocation_pk(&inv.id),
            sk: keys::META_SK.into(),
            reason: "a keyed finish of an invocation without a key".into(),
        })?;
        let exclusive = inv.handler_kind == Some(HandlerKind::Exclusive);
        let mut writes = self.state_writes(&object, delta).await?;
        // Room in the last transaction: outcome, lock, and the next holder's two items.
        let reserved = 4;
        while writes.len() > MAX_TRANSACTION_ITEMS - reserved {
            let mut chunk = vec![self.ownership_check(inv)?];
            let mut bytes = 0;
            while chunk.len() < MAX_TRANSACTION_ITEMS
                && writes.len() > MAX_TRANSACTION_ITEMS - reserved
                && bytes + writes.last().map_or(0, |w| w.1) < MAX_TRANSACTION_BYTES
            {
                let (write, size) = writes.pop().expect("non-empty");
                bytes += size;
                chunk.push(write);
            }
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(chunk))
                .send()
                .await;
            match result {
                Ok(_) => {}
                Err(err) if err.as_service_error().and_then(failed_conditions).is_some() => {
                    return Ok(None)
                }
                Err(err) => return Err(StoreError::dynamo("TransactWriteItems", err)),
            }
        }
        let state: Vec<TransactWriteItem> = writes.into_iter().map(|w| w.0).collect();
        for _ in 0..MAX_HANDOFF_ROUNDS {
            let finish = FinishUpdate::new(inv, outcome, tail, retention, ending);
            let mut meta = Update::builder()
                .table_name(&self.table)
                .set_key(Some(keys::meta_key_item(&inv.id)))
                .condition_expression(finish.condition)
                .update_expression(finish.expression);
            for (name, value) in finish.names {
                meta = meta.expression_attribute_names(name, value);
            }
            for (name, value) in finish.values {
                meta = meta.expression_attribute_values(name, value);
            }
            let mut items = vec![TransactWriteItem::builder()
                .update(meta.build().map_err(build_err)?)
                .build()];
            let mut next = None;
            if exclusive {
                let (_, arrivals) = self.lock(&object).await?;
                let lock = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(self.key(keys::object_ref_pk(&object), keys::LOCK_SK)))
                    .expression_attribute_values(":me", s(inv.id.as_str()))
                    .expression_attribute_values(":now", n(now_millis()));
                let lock = match self.first_due(&object).await? {
                    Some((sk, id)) => {
                        let grant = self.grant_items(&object, &sk, &id)?;
                        next = Some((id.clone(), grant));
                        lock.condition_expression("holder = :me")
                            .update_expression(
                                "SET holder = :next, granted_at = :now REMOVE expires_at",
                            )
                            .expression_attribute_values(":next", s(id.as_str()))
                    }
                    None => lock
                        .condition_expression(
                            "holder = :me AND (arrivals = :seen OR attribute_not_exists(arrivals))",
                        )
                        // An idle lock item expires with the retention; an arrival or a
                        // grant takes the TTL off again.
                        .update_expression(
                            "REMOVE holder SET released_at = :now, expires_at = :exp",
                        )
                        .expression_attribute_values(":seen", n(arrivals))
                        .expression_attribute_values(
                            ":exp",
                            n(now_millis() / 1000 + retention.as_secs()),
                        ),
                };
                items.push(
                    TransactWriteItem::builder()
                        .update(lock.build().map_err(build_err)?)
                        .build(),
                );
            }
            let next_id = next.as_ref().map(|(id, _)| id.clone());
            if let Some((_, grant)) = next {
                items.extend(grant);
            }
            items.extend(state.iter().cloned());
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await;
            match result {
                Ok(_) => {
                    let has_payloads = self.has_payloads(&inv.id).await?;
                    if let Some(next) = &next_id {
                        tracing::info!(%object, from = %inv.id, to = %next, "handed the lock on");
                    }
                    return Ok(Some(Finished {
                        has_payloads,
                        next: next_id,
                    }));
                }
                Err(err) => {
                    let Some(failed) = err.as_service_error().and_then(failed_conditions) else {
                        return Err(StoreError::dynamo("TransactWriteItems", err));
                    };
                    if failed.first() == Some(&true) {
                        return Ok(None); // lost ownership
                    }
                    // The lock moved under us (a new arrival, or a racing grant of the next
                    // holder): read the inbox again.
                    tracing::info!(%object, id = %inv.id, ?failed, "lock hand-over raced with an arrival; retrying");
                }
            }
        }
        Err(StoreError::Corrupt {
            pk: keys::object_ref_pk(&object),
            sk: keys::LOCK_SK.into(),
            reason: format!(
                "could not hand the lock on from {} after {MAX_HANDOFF_ROUNDS} rounds; is it the holder?",
                inv.id
            ),
        })
    }

    /// Takes a queued invocation out of its object's inbox and finishes it with `failure`
    /// (a cancel or a kill: it never ran), in one transaction; `false` if it is no longer
    /// queued at its epoch (it was granted the lock meanwhile).
    pub async fn leave_inbox(
        &self,
        inv: &Invocation,
        failure: &durable_protocol::TerminalFailure,
        retention: Duration,
    ) -> Result<bool, StoreError> {
        let (Some(object), Some(due)) = (inv.object(), inv.due_at) else {
            return Ok(false);
        };
        let now = now_millis();
        let meta = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::meta_key_item(&inv.id)))
            .condition_expression("epoch = :e AND #st = :queued")
            .update_expression(
                "SET #st = :status, failure_code = :code, failure_message = :msg, completed_at = :now, updated_at = :now, expires_at = :exp",
            )
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":e", n(inv.epoch))
            .expression_attribute_values(":queued", s(Status::Queued.as_str()))
            .expression_attribute_values(":status", s(Status::of_failure(failure).as_str()))
            .expression_attribute_values(":code", n(failure.code))
            .expression_attribute_values(":msg", s(failure.message.clone()))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":exp", n(now / 1000 + retention.as_secs()))
            .build()
            .map_err(build_err)?;
        let dequeue = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(
                self.key(keys::object_ref_pk(&object), keys::queue_sk(due, &inv.id)),
            ))
            .build()
            .map_err(build_err)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(meta).build())
            .transact_items(TransactWriteItem::builder().delete(dequeue).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if err.as_service_error().and_then(failed_conditions).is_some() => Ok(false),
            Err(err) => Err(StoreError::dynamo("TransactWriteItems", err)),
        }
    }

    async fn has_payloads(&self, id: &InvocationId) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(keys::meta_key_item(id)))
            .projection_expression("has_payloads")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        Ok(out
            .item
            .and_then(|i| {
                i.get("has_payloads")
                    .and_then(|v| v.as_bool().ok())
                    .copied()
            })
            .unwrap_or(false))
    }
}
