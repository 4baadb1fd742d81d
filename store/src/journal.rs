//! Journal entries as items: the codec, the conditional append, completions and the TTL of an
//! invocation's journal.

use crate::attrs::{corrupt, get_n, get_s, n, put_result, read_result, s, Item};
use crate::conditional::apply_update;
use crate::error::StoreError;
use crate::keys;
use crate::keys::{LEASE_SHARD, LEASE_SHARD_VALUE, LEASE_UNTIL};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;
use durable_protocol::clock::now_millis;
use durable_protocol::{
    AwakeableTimeout, EntryKind, EntryTag, InvocationId, JournalEntry, StepResult,
};

/// Who appends a journal entry: the attempt's epoch, and the TTL (epoch seconds) its entries
/// get. An attempt that is expected to finish soon gets one, so that its journal expires after
/// the retention period without another write; `None` keeps entries until the orchestrator
/// gives them a TTL when the invocation finishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Writer {
    pub epoch: u64,
    pub expires_at: Option<u64>,
}

impl From<u64> for Writer {
    /// A writer at `epoch` whose entries are kept.
    fn from(epoch: u64) -> Self {
        Self {
            epoch,
            expires_at: None,
        }
    }
}

/// The attribute of an entry's operation path, when it is not implied by its index.
const OP: &str = "op";
/// The attribute of the entry an operation was created after (see `JournalEntry::after`):
/// absent when it is the entry before, -1 when there is none.
const AFTER: &str = "after";

/// When an entry's completion was written.
const COMPLETED_AT: &str = "completed_at";
/// An awakeable's timeout: when it was created, its hard deadline, its heartbeat timeout (ms).
const TIMEOUT_CREATED: &str = "timeout_created";
const TIMEOUT_UNTIL: &str = "timeout_until";
const HEARTBEAT_MS: &str = "heartbeat_ms";
/// An awakeable's deadline now (moved on by heartbeats) and its last heartbeat (ms).
const DEADLINE_AT: &str = "deadline_at";
const BEAT_AT: &str = "beat_at";
/// When a step's closure started (ms).
const STARTED_AT: &str = "started_at";
/// An at-most-once step's try that started (from 1).
const STEP_TRY: &str = "step_try";
/// When an entry was written (ms).
const WRITTEN_AT: &str = "written_at";

/// The prefix of the attributes that hold a completion (`completion_value`, ...).
const COMPLETION: &str = "completion_";

/// A journal entry with when, and by which attempt (epoch), it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub entry: JournalEntry,
    pub written_at: Option<u64>,
    pub epoch: Option<u64>,
}

/// The item that stores `entry` of invocation `id`, written by attempt `epoch`.
pub fn entry_to_item(id: &InvocationId, entry: &JournalEntry, epoch: u64) -> Item {
    let mut item = Item::new();
    item.insert(keys::PK.into(), s(keys::invocation_pk(id)));
    item.insert(keys::SK.into(), s(keys::journal_sk(entry.index)));
    item.insert("kind".into(), s(entry.kind.tag().as_str()));
    item.insert("name".into(), s(entry.kind.name()));
    item.insert("epoch".into(), n(epoch));
    item.insert(WRITTEN_AT.into(), n(now_millis()));
    match &entry.kind {
        EntryKind::Run { result, .. } | EntryKind::Scope { result, .. } => {
            put_result(&mut item, "", result);
        }
        EntryKind::Started { attempt, .. } => {
            item.insert(STEP_TRY.into(), n(attempt));
        }
        EntryKind::Sleep { wake_at_ms, .. } => {
            item.insert("wake_at".into(), n(wake_at_ms));
        }
        EntryKind::Awakeable {
            timeout: Some(t), ..
        } => {
            item.insert(TIMEOUT_CREATED.into(), n(t.created_at_ms));
            if let Some(until) = t.until_ms {
                item.insert(TIMEOUT_UNTIL.into(), n(until));
            }
            if let Some(h) = t.heartbeat_ms {
                item.insert(HEARTBEAT_MS.into(), n(h));
            }
            item.insert(DEADLINE_AT.into(), n(t.deadline(None)));
        }
        EntryKind::Awakeable { .. } | EntryKind::Promise { .. } => {}
        // Keyed-state and promise entries keep their details as JSON.
        EntryKind::SetState { .. }
        | EntryKind::ClearState { .. }
        | EntryKind::ClearAllState
        | EntryKind::GetState { .. }
        | EntryKind::GetStateKeys { .. }
        | EntryKind::PeekPromise { .. }
        | EntryKind::CompletePromise { .. } => {
            item.insert(
                "body".into(),
                s(serde_json::to_string(&entry.kind).expect("entries serialize")),
            );
        }
        EntryKind::Select { of, winner } => {
            item.insert("of".into(), AttributeValue::L(of.iter().map(n).collect()));
            item.insert("winner".into(), n(winner));
        }
        EntryKind::Call {
            target,
            input,
            child,
            ..
        }
        | EntryKind::Send {
            target,
            input,
            child,
            ..
        } => {
            item.insert("service".into(), s(target.service.as_str()));
            item.insert("handler".into(), s(target.handler.as_str()));
            if let Some(key) = &target.key {
                item.insert("key".into(), s(key.as_str()));
            }
            item.insert("input".into(), s(input.to_string()));
            item.insert("child".into(), s(child.as_str()));
            if let EntryKind::Send {
                due_at_ms: Some(due),
                ..
            } = &entry.kind
            {
                item.insert("due_at".into(), n(due));
            }
            if let EntryKind::Send {
                idempotency_key: Some(key),
                ..
            }
            | EntryKind::Call {
                idempotency_key: Some(key),
                ..
            } = &entry.kind
            {
                item.insert("idempotency_key".into(), s(key.as_str()));
            }
            if let EntryKind::Call { attach: true, .. } = &entry.kind {
                item.insert("attach".into(), AttributeValue::Bool(true));
            }
        }
    }
    if let Some(op) = &entry.op {
        item.insert(OP.into(), s(op.to_string()));
    }
    // Sequential code creates each operation after receiving the previous one's result: that
    // case is left implicit, so the common journal pays nothing for the check.
    if entry.after != entry.index.checked_sub(1) {
        item.insert(AFTER.into(), n(entry.after.map_or(-1, i64::from)));
    }
    if entry.dispatched {
        item.insert("dispatched".into(), AttributeValue::Bool(true));
    } else if entry.kind.child().is_some() {
        // A call or send enters the `leases` index when it is recorded: if its `dispatch`
        // event is lost, the sweep meets it undispatched and dispatches it.
        item.insert(LEASE_SHARD.into(), s(LEASE_SHARD_VALUE));
        item.insert(LEASE_UNTIL.into(), n(now_millis()));
    }
    if let Some(c) = &entry.completion {
        put_result(&mut item, COMPLETION, c);
    }
    if let Some(at) = entry.completed_at_ms {
        item.insert(COMPLETED_AT.into(), n(at));
    }
    if let Some(at) = entry.started_at_ms {
        item.insert(STARTED_AT.into(), n(at));
    }
    item
}

/// Decodes a journal item.
pub fn entry_from_item(item: &Item) -> Result<JournalEntry, StoreError> {
    let sk = get_s(item, keys::SK).ok_or_else(|| corrupt(item, "no sort key"))?;
    let index: u32 = sk
        .strip_prefix(keys::JOURNAL_SK_PREFIX)
        .and_then(|i| i.parse().ok())
        .ok_or_else(|| corrupt(item, "sort key is not a journal key"))?;
    let name = get_s(item, "name")
        .ok_or_else(|| corrupt(item, "no name"))?
        .to_owned();
    let tag: EntryTag = get_s(item, "kind")
        .ok_or_else(|| corrupt(item, "no kind"))?
        .parse()
        .map_err(|e: String| corrupt(item, e))?;
    let kind = match tag {
        EntryTag::Run => EntryKind::Run {
            name,
            result: read_result(item, "")?
                .ok_or_else(|| corrupt(item, "neither value nor failure"))?,
        },
        EntryTag::Started => EntryKind::Started {
            name,
            attempt: get_n(item, STEP_TRY).ok_or_else(|| corrupt(item, "no step_try"))?,
        },
        EntryTag::Scope => EntryKind::Scope {
            name,
            result: read_result(item, "")?
                .ok_or_else(|| corrupt(item, "neither value nor failure"))?,
        },
        EntryTag::Sleep => EntryKind::Sleep {
            name,
            wake_at_ms: get_n(item, "wake_at").ok_or_else(|| corrupt(item, "no wake_at"))?,
        },
        EntryTag::Awakeable => EntryKind::Awakeable {
            name,
            timeout: get_n(item, TIMEOUT_CREATED).map(|created_at_ms| AwakeableTimeout {
                created_at_ms,
                until_ms: get_n(item, TIMEOUT_UNTIL),
                heartbeat_ms: get_n(item, HEARTBEAT_MS),
            }),
        },
        EntryTag::Promise => EntryKind::Promise { name },
        EntryTag::SetState
        | EntryTag::ClearState
        | EntryTag::ClearAllState
        | EntryTag::GetState
        | EntryTag::GetStateKeys
        | EntryTag::PeekPromise
        | EntryTag::CompletePromise => {
            let body = get_s(item, "body").ok_or_else(|| corrupt(item, "no body"))?;
            serde_json::from_str(body).map_err(|e| corrupt(item, format!("body: {e}")))?
        }
        EntryTag::Select => EntryKind::Select {
            of: item
                .get("of")
                .and_then(|v| v.as_l().ok())
                .ok_or_else(|| corrupt(item, "no of"))?
                .iter()
                .map(|v| v.as_n().ok().and_then(|n| n.parse().ok()))
                .collect::<Option<Vec<u32>>>()
                .ok_or_else(|| corrupt(item, "bad of"))?,
            winner: get_n(item, "winner").ok_or_else(|| corrupt(item, "no winner"))?,
        },
        EntryTag::Call | EntryTag::Send => {
            let text = |a: &str| get_s(item, a).ok_or_else(|| corrupt(item, format!("no {a}")));
            let target = durable_protocol::Target {
                service: durable_protocol::ServiceName::new(text("service")?)
                    .map_err(|e| corrupt(item, e.to_string()))?,
                handler: durable_protocol::HandlerName::new(text("handler")?)
                    .map_err(|e| corrupt(item, e.to_string()))?,
                key: get_s(item, "key")
                    .map(durable_protocol::ObjectKey::new)
                    .transpose()
                    .map_err(|e| corrupt(item, e.to_string()))?,
            };
            let input = serde_json::from_str(text("input")?)
                .map_err(|e| corrupt(item, format!("input: {e}")))?;
            let child =
                InvocationId::parse(text("child")?).map_err(|e| corrupt(item, e.to_string()))?;
            let idempotency_key = get_s(item, "idempotency_key")
                .map(durable_protocol::IdempotencyKey::new)
                .transpose()
                .map_err(|e| corrupt(item, e.to_string()))?;
            if tag == EntryTag::Call {
                EntryKind::Call {
                    target,
                    input,
                    child,
                    idempotency_key,
                    attach: item
                        .get("attach")
                        .and_then(|v| v.as_bool().ok())
                        .copied()
                        .unwrap_or(false),
                }
            } else {
                EntryKind::Send {
                    target,
                    input,
                    child,
                    due_at_ms: get_n(item, "due_at"),
                    idempotency_key,
                }
            }
        }
    };
    let dispatched = item
        .get("dispatched")
        .and_then(|v| v.as_bool().ok())
        .copied()
        .unwrap_or(false);
    let op = get_s(item, OP)
        .map(str::parse)
        .transpose()
        .map_err(|e: String| corrupt(item, e))?;
    let after = match get_n::<i64>(item, AFTER) {
        None => index.checked_sub(1),
        Some(a) => u32::try_from(a).ok(),
    };
    Ok(JournalEntry {
        index,
        kind,
        op,
        after,
        completion: read_result(item, COMPLETION)?,
        completed_at_ms: get_n(item, COMPLETED_AT),
        dispatched,
        started_at_ms: get_n(item, STARTED_AT),
    })
}

/// The value of the metadata attribute [`keys::TAIL`] that records `entry`.
pub fn tail_value(entry: &JournalEntry) -> AttributeValue {
    s(serde_json::to_string(entry).expect("entries serialize"))
}

/// The journal entry recorded with the outcome on a metadata item, if it has one.
pub fn tail_from_meta(item: &Item) -> Result<Option<JournalEntry>, StoreError> {
    get_s(item, keys::TAIL)
        .map(|text| serde_json::from_str(text).map_err(|e| corrupt(item, format!("tail: {e}"))))
        .transpose()
}

/// The outcome of writing a completion onto an entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Completed {
    /// This writer completed the entry.
    Written,
    /// The entry was completed before (by this or another writer) with this result.
    AlreadyCompleted(StepResult),
    /// There is no such entry (yet).
    NoSuchEntry,
    /// The entry is of another kind (e.g. an awakeable id pointing at a step).
    WrongKind(EntryTag),
    /// An awakeable whose deadline passed before this completion (ms): a late completion.
    Expired(u64),
    /// A timeout of an awakeable whose deadline (ms) is still ahead (a heartbeat moved it).
    NotDue(u64),
}

/// What a heartbeat of an awakeable found.
#[derive(Debug, Clone, PartialEq)]
pub enum Beat {
    /// Its deadline is now this (ms).
    Extended(u64),
    /// It was completed already, with this.
    Completed(StepResult),
    /// Its deadline passed (ms) before the heartbeat.
    Expired(u64),
    /// It has no heartbeat timeout.
    NoHeartbeat,
    /// There is no such awakeable.
    NoSuchEntry,
}

/// Who writes a completion: it decides whether the sweep must be able to find it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completer {
    /// The invocation's own attempt or driver (an in-process timer, a timer found due at
    /// suspension): it goes on with the completion itself.
    Own,
    /// Anybody else (a timer's schedule, a finished child, an awakeable or promise
    /// resolution), who then resumes the waiter: the completed entry enters the `leases`
    /// index, so that the sweep resumes the waiter if the completer dies before it does.
    /// An awakeable past its deadline refuses it ([`Completed::Expired`]).
    Other,
    /// The orchestrator timing out an awakeable: like `Other`, but only once its deadline
    /// passed ([`Completed::NotDue`] while a heartbeat moved it on).
    Deadline,
}

/// The outcome of a conditional append.
#[derive(Debug, Clone, PartialEq)]
pub enum Appended {
    /// This writer recorded the entry.
    Written,
    /// Another attempt recorded this index first; its entry is authoritative.
    AlreadyRecorded(Box<JournalEntry>),
}

/// Reads and appends journal entries of invocations.
#[derive(Debug, Clone)]
pub struct JournalStore {
    client: Client,
    table: String,
}

impl JournalStore {
    /// A store on `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Records `entry` with one conditional PutItem: the first writer of an index wins, a later
    /// writer gets the recorded entry back (from the failed condition, without a second read).
    /// The entry carries the writer's TTL, if it has one. A writer without a TTL (its journal is
    /// kept until the orchestrator says otherwise) that adopts an entry with one removes it: an
    /// entry this attempt builds on must not expire under it.
    pub async fn append(
        &self,
        id: &InvocationId,
        entry: &JournalEntry,
        writer: impl Into<Writer>,
    ) -> Result<Appended, StoreError> {
        let writer = writer.into();
        let mut item = entry_to_item(id, entry, writer.epoch);
        if let Some(expires_at) = writer.expires_at {
            item.insert(keys::EXPIRES_AT.into(), n(expires_at));
        }
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(sk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Appended::Written),
            Err(err) => {
                let recorded = match err.as_service_error() {
                    Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(e)) => {
                        Some(e.item().cloned())
                    }
                    _ => None,
                };
                let item = match recorded {
                    Some(Some(item)) => item,
                    Some(None) => self.get_entry_item(id, entry.index).await?.ok_or_else(|| {
                        StoreError::Corrupt {
                            pk: keys::invocation_pk(id),
                            sk: keys::journal_sk(entry.index),
                            reason: "condition failed but the entry is missing".into(),
                        }
                    })?,
                    None => return Err(StoreError::dynamo("PutItem", err)),
                };
                if writer.expires_at.is_none() && item.contains_key(keys::EXPIRES_AT) {
                    self.keep_entry(id, entry.index).await?;
                }
                Ok(Appended::AlreadyRecorded(Box::new(entry_from_item(&item)?)))
            }
        }
    }

    /// Writes `result` as the completion of entry `index` (a `kind` entry) unless it has one:
    /// the first completion wins; a second one learns what the first was. A completion by
    /// [`Completer::Other`] also puts the entry in the `leases` index, stamped now, in the
    /// same write: if the completer dies before it resumes the waiter, the sweep does.
    pub async fn complete(
        &self,
        id: &InvocationId,
        index: u32,
        kind: EntryTag,
        result: &StepResult,
        by: Completer,
    ) -> Result<Completed, StoreError> {
        let mut values = Item::new();
        put_result(&mut values, COMPLETION, result);
        if by != Completer::Own {
            values.insert(LEASE_SHARD.to_owned(), s(LEASE_SHARD_VALUE));
            values.insert(LEASE_UNTIL.to_owned(), n(now_millis()));
        }
        let now = now_millis();
        let mut condition =
            "attribute_exists(sk) AND kind = :kind AND attribute_not_exists(completion_value) \
                 AND attribute_not_exists(completion_failure_code)"
                .to_owned();
        match by {
            Completer::Other => condition.push_str(&format!(
                " AND (attribute_not_exists({DEADLINE_AT}) OR {DEADLINE_AT} >= :at)"
            )),
            Completer::Deadline => condition.push_str(&format!(" AND {DEADLINE_AT} <= :at")),
            Completer::Own => {}
        }
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::entry_key_item(id, index)))
            .condition_expression(condition)
            .expression_attribute_values(":kind", s(kind.as_str()))
            .expression_attribute_values(":at", n(now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let mut sets = vec![format!("{COMPLETED_AT} = :at")];
        for (i, (name, value)) in values.into_iter().enumerate() {
            sets.push(format!("{name} = :c{i}"));
            update = update.expression_attribute_values(format!(":c{i}"), value);
        }
        match update
            .update_expression(format!("SET {}", sets.join(", ")))
            .send()
            .await
        {
            Ok(_) => Ok(Completed::Written),
            Err(err) => {
                let old = match err.as_service_error() {
                    Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(e)) => {
                        e.item().cloned()
                    }
                    _ => return Err(StoreError::dynamo("UpdateItem", err)),
                };
                let old = match old {
                    Some(item) => Some(item),
                    None => self.get_entry_item(id, index).await?,
                };
                let Some(old) = old else {
                    return Ok(Completed::NoSuchEntry);
                };
                let entry = entry_from_item(&old)?;
                if entry.kind.tag() != kind {
                    return Ok(Completed::WrongKind(entry.kind.tag()));
                }
                Ok(match (entry.completion, get_n(&old, DEADLINE_AT)) {
                    (Some(c), _) => Completed::AlreadyCompleted(c),
                    (None, Some(deadline)) if by == Completer::Deadline => {
                        Completed::NotDue(deadline)
                    }
                    (None, Some(deadline)) if deadline < now => Completed::Expired(deadline),
                    (None, _) => Completed::NoSuchEntry,
                })
            }
        }
    }

    /// Starts try `to` of the at-most-once step at entry `index`, whose try `from` started and
    /// never finished: one conditional write, so two attempts that both find it cannot both
    /// run it. `false` if the entry moved on (another try started, or it has its result).
    pub async fn retry_started(
        &self,
        id: &InvocationId,
        index: u32,
        (from, to): (u32, u32),
        writer: impl Into<Writer>,
    ) -> Result<bool, StoreError> {
        let writer = writer.into();
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::entry_key_item(id, index)))
            .condition_expression(format!(
                "kind = :kind AND {STEP_TRY} = :from \
                 AND attribute_not_exists(completion_value) AND attribute_not_exists(completion_failure_code)"
            ))
            .update_expression(format!(
                "SET {STEP_TRY} = :to, epoch = :e, {STARTED_AT} = :now, {WRITTEN_AT} = :now"
            ))
            .expression_attribute_values(":kind", s(EntryTag::Started.as_str()))
            .expression_attribute_values(":from", n(from))
            .expression_attribute_values(":to", n(to))
            .expression_attribute_values(":e", n(writer.epoch))
            .expression_attribute_values(":now", n(now_millis()));
        apply_update(update).await
    }

    /// Records a heartbeat of awakeable entry `index`, moving its deadline to `deadline`
    /// (from its timeout and now), unless it is completed, has no heartbeat timeout, or its
    /// deadline passed already: one conditional write.
    pub async fn heartbeat(
        &self,
        id: &InvocationId,
        index: u32,
        deadline: u64,
    ) -> Result<Beat, StoreError> {
        let now = now_millis();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::entry_key_item(id, index)))
            .condition_expression(format!(
                "attribute_exists(sk) AND kind = :kind AND attribute_exists({HEARTBEAT_MS}) \
                 AND attribute_not_exists(completion_value) AND attribute_not_exists(completion_failure_code) \
                 AND {DEADLINE_AT} >= :now"
            ))
            .update_expression(format!("SET {DEADLINE_AT} = :deadline, {BEAT_AT} = :now"))
            .expression_attribute_values(":kind", s(EntryTag::Awakeable.as_str()))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":deadline", n(deadline))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let Err(err) = result else {
            return Ok(Beat::Extended(deadline));
        };
        let old = match err.as_service_error() {
            Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(e)) => e.item().cloned(),
            _ => return Err(StoreError::dynamo("UpdateItem", err)),
        };
        let Some(old) = old else {
            return Ok(Beat::NoSuchEntry);
        };
        let entry = entry_from_item(&old)?;
        Ok(
            match (&entry.kind, entry.completion, get_n(&old, DEADLINE_AT)) {
                (EntryKind::Awakeable { .. }, Some(c), _) => Beat::Completed(c),
                (
                    EntryKind::Awakeable {
                        timeout: Some(t), ..
                    },
                    None,
                    Some(at),
                ) if t.heartbeat_ms.is_some() && at < now => Beat::Expired(at),
                (EntryKind::Awakeable { .. }, None, _) => Beat::NoHeartbeat,
                _ => Beat::NoSuchEntry,
            },
        )
    }

    /// Awakeable entry `index`'s deadline now (moved on by heartbeats), if it has one.
    pub async fn deadline(&self, id: &InvocationId, index: u32) -> Result<Option<u64>, StoreError> {
        Ok(self
            .get_entry_item(id, index)
            .await?
            .and_then(|item| get_n(&item, DEADLINE_AT)))
    }

    /// Journal entries by key (eventually consistent, in batches of 100): what the sweep needs
    /// to know of the entries it meets in the `leases` index. Missing ones are left out.
    pub async fn entries_many(
        &self,
        wanted: &[(InvocationId, u32)],
    ) -> Result<Vec<(InvocationId, JournalEntry)>, StoreError> {
        let keys = wanted
            .iter()
            .map(|(id, index)| keys::entry_key_item(id, *index))
            .collect();
        crate::batch::batch_get(&self.client, &self.table, keys)
            .await?
            .iter()
            .filter_map(|item| Some((keys::entry_of_item(item)?.0, item)))
            .map(|(id, item)| Ok((id, entry_from_item(item)?)))
            .collect()
    }

    /// Stamps a completed entry with now in the `leases` index again: ahead of the sweep's
    /// cursor, so that a later sweep meets it once more if the `resume` sent now is lost too.
    pub async fn restamp(&self, id: &InvocationId, index: u32) -> Result<(), StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::entry_key_item(id, index)))
            .condition_expression("attribute_exists(sk)")
            .update_expression("SET #shard = :shard, #lease = :now")
            .expression_attribute_names("#shard", LEASE_SHARD)
            .expression_attribute_names("#lease", LEASE_UNTIL)
            .expression_attribute_values(":shard", s(LEASE_SHARD_VALUE))
            .expression_attribute_values(":now", n(now_millis()));
        apply_update(update).await.map(|_| ())
    }

    /// Gives every journal entry of `id` the TTL `expires_at` (epoch seconds), after the
    /// invocation finished: DynamoDB removes them then, for free, and until then the journal can
    /// still be inspected (and read by a late `dispatch`). Re-puts the items, 25 per request:
    /// the same write cost as deleting them. Answers the entries.
    pub async fn expire_all(
        &self,
        id: &InvocationId,
        expires_at: u64,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        let items = self.journal_items(id).await?;
        let requests = items
            .iter()
            .map(|item| {
                let mut item = item.clone();
                item.insert(keys::EXPIRES_AT.into(), n(expires_at));
                let put = PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .expect("item is set");
                WriteRequest::builder().put_request(put).build()
            })
            .collect();
        self.write_batches(requests).await?;
        items.iter().map(entry_from_item).collect()
    }

    /// Sends `requests` 25 per `BatchWriteItem`; unprocessed items (throttling, rare here) are
    /// sent again at once, a few times.
    pub(crate) async fn write_batches(
        &self,
        requests: Vec<aws_sdk_dynamodb::types::WriteRequest>,
    ) -> Result<(), StoreError> {
        for chunk in requests.chunks(25) {
            let mut pending = chunk.to_vec();
            for _ in 0..5 {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(|e| StoreError::dynamo("BatchWriteItem", e))?;
                pending = out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.table))
                    .unwrap_or_default();
                if pending.is_empty() {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Takes the TTL off entry `index` of `id`: it is kept until the invocation finishes (an
    /// entry that expired and is gone already has nothing left to keep).
    async fn keep_entry(&self, id: &InvocationId, index: u32) -> Result<(), StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::entry_key_item(id, index)))
            .condition_expression("attribute_exists(sk)")
            .update_expression("REMOVE expires_at");
        apply_update(update).await.map(|_| ())
    }

    /// The whole journal of `id`, after taking the TTL off every entry that has one: from now
    /// on the invocation may live longer than the TTL its first attempt gave its entries
    /// (it suspends, retries or changes hands), so they are kept until it finishes. Costs one
    /// write per entry that had a TTL (sent together), nothing for the others.
    pub async fn load_kept(&self, id: &InvocationId) -> Result<Vec<JournalEntry>, StoreError> {
        let items = self.journal_items(id).await?;
        let entries = items
            .iter()
            .map(entry_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        let expiring = items
            .iter()
            .zip(&entries)
            .filter(|(item, _)| item.contains_key(keys::EXPIRES_AT))
            .map(|(_, entry)| self.keep_entry(id, entry.index));
        futures::future::try_join_all(expiring).await?;
        Ok(entries)
    }

    /// Marks invocation `id` as having values in S3, to be deleted when it finishes.
    pub async fn flag_payloads(&self, id: &InvocationId) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::meta_key_item(id)))
            .condition_expression("attribute_exists(pk)")
            .update_expression("SET has_payloads = :t")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("UpdateItem", e))?;
        Ok(())
    }

    /// Whether an operator's cancellation of `id` waits to reach its handler (requested, not
    /// delivered): read by a running attempt at its step boundaries. One strongly consistent
    /// read of two attributes of the metadata item.
    pub async fn cancel_pending(&self, id: &InvocationId) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(keys::meta_key_item(id)))
            .projection_expression("#r, #d")
            .expression_attribute_names("#r", keys::CANCEL_REQUESTED)
            .expression_attribute_names("#d", keys::CANCEL_DELIVERED)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        let Some(item) = out.item else {
            return Ok(false);
        };
        let delivered = item
            .get(keys::CANCEL_DELIVERED)
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false);
        Ok(item.contains_key(keys::CANCEL_REQUESTED) && !delivered)
    }

    /// Marks a call or send entry as dispatched (its child invocation exists).
    pub async fn mark_dispatched(&self, id: &InvocationId, index: u32) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::entry_key_item(id, index)))
            .condition_expression("attribute_exists(sk)")
            .update_expression("SET dispatched = :t")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("UpdateItem", e))?;
        Ok(())
    }

    /// Entry `index` of `id`, if recorded (strongly consistent).
    pub async fn entry(
        &self,
        id: &InvocationId,
        index: u32,
    ) -> Result<Option<JournalEntry>, StoreError> {
        self.get_entry_item(id, index)
            .await?
            .as_ref()
            .map(entry_from_item)
            .transpose()
    }

    async fn get_entry_item(
        &self,
        id: &InvocationId,
        index: u32,
    ) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(keys::entry_key_item(id, index)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        Ok(out.item)
    }

    /// The whole journal of `id` in index order (strongly consistent).
    pub async fn load(&self, id: &InvocationId) -> Result<Vec<JournalEntry>, StoreError> {
        self.journal_items(id)
            .await?
            .iter()
            .map(entry_from_item)
            .collect()
    }

    /// The whole journal of `id` with when and by which attempt each entry was written (for
    /// timelines), in index order.
    pub async fn load_recorded(&self, id: &InvocationId) -> Result<Vec<Recorded>, StoreError> {
        self.journal_items(id)
            .await?
            .iter()
            .map(|item| {
                Ok(Recorded {
                    entry: entry_from_item(item)?,
                    written_at: get_n(item, WRITTEN_AT),
                    epoch: get_n(item, "epoch"),
                })
            })
            .collect()
    }

    /// Every journal item of `id`, as stored, in index order (strongly consistent).
    async fn journal_items(&self, id: &InvocationId) -> Result<Vec<Item>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :j)")
            .expression_attribute_values(":pk", s(keys::invocation_pk(id)))
            .expression_attribute_values(":j", s(keys::JOURNAL_SK_PREFIX))
            .consistent_read(true);
        crate::batch::query_all(query).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable_protocol::TerminalFailure;

    #[test]
    fn metadata_items_are_found_by_their_ids() {
        let dated = InvocationId::dated(
            &durable_protocol::ServiceName::new("svc").unwrap(),
            1_764_000_000_000,
        );
        let (minute, shard) = dated.bucket().unwrap();
        let (pk, sk) = keys::meta_key(&dated);
        assert_eq!(pk, keys::run_pk("svc", minute, shard));
        assert_eq!(sk, dated.as_str());
        assert_eq!(keys::id_of_meta(&keys::meta_key_item(&dated)), Some(dated));
        let plain = InvocationId::random(&durable_protocol::ServiceName::new("svc").unwrap());
        assert_eq!(
            keys::meta_key(&plain),
            (keys::invocation_pk(&plain), keys::META_SK.to_owned())
        );
        assert_eq!(
            keys::id_of_meta(&keys::meta_key_item(&plain)),
            Some(plain.clone())
        );
        let entry = Item::from([
            (keys::PK.to_owned(), s(keys::invocation_pk(&plain))),
            (keys::SK.to_owned(), s(keys::journal_sk(0))),
        ]);
        assert_eq!(
            keys::id_of_meta(&entry),
            None,
            "a journal entry is no metadata item"
        );
    }

    #[test]
    fn journal_keys_sort_in_index_order() {
        assert_eq!(keys::journal_sk(7), "j#0000000007");
        assert!(keys::journal_sk(9) < keys::journal_sk(10));
        assert!(keys::journal_sk(99) < keys::journal_sk(1000));
    }

    #[test]
    fn operation_paths_and_creation_order_round_trip_and_cost_nothing_when_sequential() {
        let id = InvocationId::random(&durable_protocol::ServiceName::new("svc").unwrap());
        let scope = EntryKind::Scope {
            name: "item".into(),
            result: StepResult::Value(serde_json::json!([1, 2])),
        };
        // Sequential: entry 4 created after 3, its path implied by its index.
        let mut sequential = JournalEntry::new(4, scope.clone());
        sequential.after = Some(3);
        let item = entry_to_item(&id, &sequential, 1);
        assert!(!item.contains_key(OP) && !item.contains_key(AFTER));
        assert_eq!(entry_from_item(&item).unwrap(), sequential);
        // The first operation: no attribute either.
        let first = JournalEntry::new(0, scope.clone());
        let item = entry_to_item(&id, &first, 1);
        assert!(!item.contains_key(AFTER));
        assert_eq!(entry_from_item(&item).unwrap(), first);
        // Inside a scope, created before anything of its scope had completed.
        let mut inner = JournalEntry::new(9, scope.clone());
        inner.op = Some("2.5".parse().unwrap());
        inner.after = None;
        let item = entry_to_item(&id, &inner, 1);
        assert_eq!(get_s(&item, OP), Some("2.5"));
        assert_eq!(get_n::<i64>(&item, AFTER), Some(-1));
        assert_eq!(entry_from_item(&item).unwrap(), inner);
        inner.after = Some(6);
        assert_eq!(
            entry_from_item(&entry_to_item(&id, &inner, 1)).unwrap(),
            inner
        );
    }

    #[test]
    fn entries_round_trip_through_items() {
        let id = InvocationId::random(&durable_protocol::ServiceName::new("svc").unwrap());
        for result in [
            StepResult::Value(serde_json::json!({"a": [1, 2, "three"]})),
            StepResult::Failure(TerminalFailure::new(409, "out of stock")),
        ] {
            let entry = JournalEntry::new(
                12,
                EntryKind::Run {
                    name: "reserve".into(),
                    result,
                },
            );
            let item = entry_to_item(&id, &entry, 3);
            assert_eq!(get_s(&item, "pk"), Some(keys::invocation_pk(&id).as_str()));
            assert_eq!(get_n::<u64>(&item, "epoch"), Some(3));
            assert_eq!(entry_from_item(&item).unwrap(), entry);
        }
        let mut sleep = JournalEntry::new(
            1,
            EntryKind::Sleep {
                name: "nap".into(),
                wake_at_ms: 1234,
            },
        );
        assert_eq!(
            entry_from_item(&entry_to_item(&id, &sleep, 1)).unwrap(),
            sleep
        );
        sleep.completion = Some(StepResult::Value(serde_json::Value::Null));
        assert_eq!(
            entry_from_item(&entry_to_item(&id, &sleep, 1)).unwrap(),
            sleep
        );
        let mut started = JournalEntry::new(
            4,
            EntryKind::Started {
                name: "charge".into(),
                attempt: 2,
            },
        );
        started.started_at_ms = Some(99);
        let item = entry_to_item(&id, &started, 1);
        assert_eq!(get_n::<u32>(&item, STEP_TRY), Some(2));
        assert_eq!(entry_from_item(&item).unwrap(), started);
        started.completion = Some(StepResult::Value(serde_json::json!("paid")));
        assert_eq!(
            entry_from_item(&entry_to_item(&id, &started, 1)).unwrap(),
            started
        );
        let mut awk = JournalEntry::new(
            2,
            EntryKind::Awakeable {
                name: "approval".into(),
                timeout: None,
            },
        );
        awk.completion = Some(StepResult::Failure(TerminalFailure::new(400, "rejected")));
        assert_eq!(entry_from_item(&entry_to_item(&id, &awk, 1)).unwrap(), awk);
        let timed = JournalEntry::new(
            4,
            EntryKind::Awakeable {
                name: "export".into(),
                timeout: Some(AwakeableTimeout {
                    created_at_ms: 1_000,
                    until_ms: Some(61_000),
                    heartbeat_ms: Some(5_000),
                }),
            },
        );
        let item = entry_to_item(&id, &timed, 1);
        assert_eq!(entry_from_item(&item).unwrap(), timed);
        assert_eq!(
            get_n(&item, DEADLINE_AT),
            Some(6_000),
            "the first deadline: a heartbeat timeout after its creation"
        );
        let select = JournalEntry::new(
            3,
            EntryKind::Select {
                of: vec![1, 2],
                winner: 2,
            },
        );
        assert_eq!(
            entry_from_item(&entry_to_item(&id, &select, 1)).unwrap(),
            select
        );
        for kind in [
            EntryKind::SetState {
                name: "count".into(),
                value: serde_json::json!({"n": 1}),
            },
            EntryKind::ClearAllState,
            EntryKind::CompletePromise {
                name: "link".into(),
                result: StepResult::Value(serde_json::json!("x")),
                refused: Some(TerminalFailure::new(409, "taken")),
            },
            EntryKind::Promise {
                name: "link".into(),
            },
        ] {
            let entry = JournalEntry::new(6, kind);
            assert_eq!(
                entry_from_item(&entry_to_item(&id, &entry, 1)).unwrap(),
                entry
            );
        }
        let target = durable_protocol::Target {
            key: Some(durable_protocol::ObjectKey::new("ada").unwrap()),
            service: durable_protocol::ServiceName::new("hotel").unwrap(),
            handler: durable_protocol::HandlerName::new("book").unwrap(),
        };
        let mut call = JournalEntry::new(
            4,
            EntryKind::Call {
                target: target.clone(),
                input: serde_json::json!({"n": 1}),
                child: InvocationId::child(
                    &id,
                    4,
                    &durable_protocol::ServiceName::new("svc").unwrap(),
                ),
                idempotency_key: None,
                attach: false,
            },
        );
        call.dispatched = true;
        call.completion = Some(StepResult::Value(serde_json::json!("ok")));
        assert_eq!(
            entry_from_item(&entry_to_item(&id, &call, 1)).unwrap(),
            call
        );
        let keyed_call = JournalEntry::new(
            7,
            EntryKind::Call {
                target: target.clone(),
                input: serde_json::json!(null),
                child: InvocationId::random(&durable_protocol::ServiceName::new("svc").unwrap()),
                idempotency_key: Some(durable_protocol::IdempotencyKey::new("k-1").unwrap()),
                attach: true,
            },
        );
        assert_eq!(
            entry_from_item(&entry_to_item(&id, &keyed_call, 1)).unwrap(),
            keyed_call
        );
        let send = JournalEntry::new(
            5,
            EntryKind::Send {
                target,
                input: serde_json::json!(null),
                child: InvocationId::child(
                    &id,
                    5,
                    &durable_protocol::ServiceName::new("svc").unwrap(),
                ),
                due_at_ms: Some(99),
                idempotency_key: Some(durable_protocol::IdempotencyKey::new("order-7").unwrap()),
            },
        );
        assert_eq!(
            entry_from_item(&entry_to_item(&id, &send, 1)).unwrap(),
            send
        );
    }

    #[test]
    fn corrupt_items_are_reported() {
        let mut item = Item::new();
        item.insert("pk".into(), s("inv#x"));
        item.insert("sk".into(), s("j#0000000001"));
        item.insert("kind".into(), s("teleport"));
        item.insert("name".into(), s("x"));
        item.insert("value".into(), s("1"));
        let err = entry_from_item(&item).unwrap_err().to_string();
        assert!(err.contains("unknown entry kind"), "{err}");
        item.insert("kind".into(), s("run"));
        item.insert("value".into(), s("{not json"));
        assert!(entry_from_item(&item)
            .unwrap_err()
            .to_string()
            .contains("not JSON"));
    }
}
