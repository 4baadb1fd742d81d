//! Invocation metadata items (`inv#<id>` / `meta`) and the conditional writes that move an
//! invocation through its life. Every write that decides something is conditional on the
//! epoch: an orchestrator call that lost ownership cannot overwrite the winner's decisions.

use crate::attrs::get_n;
use crate::attrs::get_s;
use crate::attrs::n;
use crate::attrs::s;
use crate::conditional::apply_update as apply;
use crate::conditional::apply_update_returning as apply_returning;
use crate::conditional::{
    bind_owned, build_err, failed_conditions, owned_and, owned_bindings, OWNED,
};
use crate::journal::tail_value;
use crate::keys;
use crate::Item;
use crate::StoreError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;
use durable_protocol::clock::now_millis;
use durable_protocol::keyed::ObjectRef;
use durable_protocol::trace::TraceParent;
use durable_protocol::{
    HandlerKind, HandlerName, IdempotencyKey, InvocationId, JournalEntry, ObjectKey, ServiceName,
    StepFailures, TerminalFailure,
};
use std::time::Duration;

pub use durable_protocol::Status;

pub use crate::keys::{LEASE_INDEX, LEASE_SHARD, LEASE_SHARD_VALUE, LEASE_UNTIL};
/// The W3C trace context an invocation came with, when it came with one.
const TRACEPARENT: &str = "traceparent";
/// The request headers its handler sees, as JSON (only when there are any).
const HEADERS: &str = "headers";
/// The retention (seconds) its service's registration gave it.
const RETENTION_SECS: &str = "retention_secs";
pub(crate) use crate::keys::{CANCEL_DELIVERED, CANCEL_REQUESTED};
/// When a running invocation's next attempt is due (ms), while it waits for it.
pub(crate) const BACKOFF_UNTIL: &str = "backoff_until";
/// The flag set when an invocation leaves its first attempt: its journal is kept from then on.
const JOURNAL_KEPT: &str = "journal_kept";
/// The flag of a finished invocation whose clean-up is not known to be done.
const CLEANUP: &str = "cleanup";
/// The flag of a running invocation that nobody drives, with no attempt running, that anybody
/// may take over at once whatever its lease says (handed off between pushes, granted its
/// object's lock, a one-way send).
const RELEASED: &str = "released";
/// A lease written into the `leases` index is at least this far in the future. With the
/// sweep's grace, a write that takes less than their sum to become visible in the index is
/// never passed by the sweep's cursor (see `sweep_window`).
pub const LEASE_AHEAD: Duration = Duration::from_secs(10);

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Completed(serde_json::Value),
    Failed(TerminalFailure),
}

/// A decoded metadata item.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub id: InvocationId,
    pub service: ServiceName,
    pub handler: HandlerName,
    /// The handler version this invocation is pinned to.
    pub function_arn: String,
    pub status: Status,
    pub epoch: u64,
    pub attempt: u32,
    pub input: serde_json::Value,
    pub outcome: Option<Outcome>,
    /// Until when (ms since the epoch) the current driver owns it.
    pub lease_until: u64,
    pub step_failures: Option<StepFailures>,
    /// While suspended: the journal entries whose completion resumes it.
    pub waiting_on: Vec<u32>,
    /// The call entry this invocation's result completes, if another invocation called it.
    pub caller: Option<Caller>,
    /// The call entries of other callers that wait for its result too (`call_waiters`): an
    /// idempotent call or a workflow's run that existed when they called.
    pub waiters: Vec<Caller>,
    /// The object or workflow key of a keyed handler.
    pub key: Option<ObjectKey>,
    /// What a keyed handler may do.
    pub handler_kind: Option<HandlerKind>,
    /// Its journal entries are kept (no TTL) until it finishes: it left its first attempt
    /// (suspended, retried, changed hands). Until then its entries expire on their own.
    pub journal_kept: bool,
    /// Nobody drives it: it may be taken over now, whatever `lease_until` says.
    pub released: bool,
    /// Finished, but what follows the finish (its kept journal's TTL, its unfired timers'
    /// schedules, its payloads) is not known to be done: the sweep does it if its driver died.
    pub cleanup_pending: bool,
    /// Some of its values were offloaded to S3 (`payloads/<id>/`).
    pub has_payloads: bool,
    /// An operator asked to cancel it (`cancel_requested`, ms): its handler sees `409
    /// cancelled` at its next durable await.
    pub cancel_requested: Option<u64>,
    /// The cancellation reached the handler (its awaited entries were completed with it, or a
    /// step recorded it): later suspensions are not cancelled again.
    pub cancel_delivered: bool,
    /// While it waits for a retry: when the next attempt is due (ms).
    pub backoff_until: Option<u64>,
    /// A queued exclusive invocation: when it may start (its inbox item's due time).
    pub due_at: Option<u64>,
    /// The handler's last step, recorded on the metadata item with the outcome.
    pub tail: Option<JournalEntry>,
    /// What made it stop retrying (an operator, or its last attempt's error), while paused.
    pub last_error: Option<String>,
    /// The idempotency key it was created with, if any.
    pub idempotency_key: Option<String>,
    /// Why its last few attempts ended in a retry, oldest first (at most
    /// [`KEPT_ATTEMPT_ERRORS`]).
    pub attempt_errors: Vec<AttemptError>,
    /// When it was created, last written and finished, and when its items expire.
    pub times: Times,
    /// The trace it runs in: the one it came with, else one derived from its id.
    pub trace: TraceParent,
    /// The request headers its handler sees (its HTTP caller's, or its caller's).
    pub headers: durable_protocol::Headers,
    /// Its service's retention when it started, if the registration set one.
    pub retention: Option<Duration>,
}

/// How many attempts' errors an invocation keeps (the newest), and how long each may be: the
/// metadata item stays small, so later writes of a retried invocation stay cheap.
pub const KEPT_ATTEMPT_ERRORS: usize = 5;
const ATTEMPT_ERROR_CHARS: usize = 300;

/// Why one attempt ended in a retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptError {
    pub attempt: u32,
    /// When the retry was recorded (ms).
    pub at: u64,
    /// The journal entry of the step that failed, when a step failed.
    pub entry: Option<u32>,
    pub message: String,
}

impl AttemptError {
    fn to_value(&self) -> AttributeValue {
        let mut m = Item::from([
            ("attempt".to_owned(), n(self.attempt)),
            ("at".to_owned(), n(self.at)),
            ("message".to_owned(), s(self.message.clone())),
        ]);
        if let Some(e) = self.entry {
            m.insert("entry".to_owned(), n(e));
        }
        AttributeValue::M(m)
    }

    fn from_value(v: &AttributeValue) -> Option<Self> {
        let m = v.as_m().ok()?;
        Some(Self {
            attempt: get_n(m, "attempt")?,
            at: get_n(m, "at")?,
            entry: get_n(m, "entry"),
            message: get_s(m, "message")?.to_owned(),
        })
    }
}

/// When an invocation was created, last changed and finished (ms), and when it expires (TTL,
/// seconds since the epoch), as stored on its metadata item.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Times {
    pub created_at: u64,
    pub updated_at: u64,
    pub completed_at: Option<u64>,
    pub expires_at: Option<u64>,
}

impl Invocation {
    /// The minute it belongs to for listing: its dated id's minute, else its creation's.
    pub fn list_minute(&self) -> u32 {
        self.id
            .bucket()
            .map_or((self.times.created_at / 60_000) as u32, |(minute, _)| {
                minute
            })
    }
}

impl Invocation {
    /// Whether a cancellation waits to reach its handler.
    pub fn cancel_pending(&self) -> bool {
        self.cancel_requested.is_some() && !self.cancel_delivered
    }
}

impl Invocation {
    /// The object or workflow it runs on, for keyed handlers.
    pub fn object(&self) -> Option<ObjectRef> {
        self.key.as_ref().map(|key| ObjectRef {
            service: self.service.clone(),
            key: key.clone(),
        })
    }
}

/// The journal entry of a calling invocation that waits for this one's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub invocation: InvocationId,
    pub entry: u32,
}

impl Caller {
    /// As stored in a waiter set: `<invocation>:<entry>`, as promise waiters are.
    pub fn encode(&self) -> String {
        format!("{}:{}", self.invocation, self.entry)
    }

    /// Reads a caller written by [`Caller::encode`].
    pub fn decode(text: &str) -> Option<Self> {
        durable_protocol::keyed::Waiter::decode(text).map(|w| Self {
            invocation: w.invocation,
            entry: w.index,
        })
    }
}

/// What a new invocation starts with.
#[derive(Debug, Clone)]
pub struct NewInvocation {
    pub id: InvocationId,
    pub service: ServiceName,
    pub handler: HandlerName,
    pub function_arn: String,
    pub input: serde_json::Value,
    pub idempotency_key: Option<IdempotencyKey>,
    pub lease_until: u64,
    /// Nobody will drive it in this call: whoever gets its `drive` event takes it over at
    /// once (its lease is then only the sweep's fallback, `LEASE_AHEAD` from now).
    pub released: bool,
    /// Set for children of `ctx.call`.
    pub caller: Option<Caller>,
    /// The object or workflow key of a keyed handler.
    pub key: Option<ObjectKey>,
    /// What a keyed handler may do.
    pub handler_kind: Option<HandlerKind>,
    /// The W3C trace context it came with (an HTTP caller's header, a caller's trace); kept
    /// only when given, so an invocation without one stores nothing.
    pub traceparent: Option<TraceParent>,
    /// How long it is kept once finished, when its service's registration sets it (else the
    /// orchestrator's default applies); stored only when given.
    pub retention: Option<Duration>,
    /// The request headers its handler sees; stored only when there are any.
    pub headers: durable_protocol::Headers,
}

/// The result of a create.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// This call created it, at epoch 1, and owns it.
    New(Invocation),
    /// It existed (same idempotency key): here it is as stored.
    Existing(Invocation),
}

/// Reads and conditionally writes invocation metadata.
#[derive(Debug, Clone)]
pub struct InvocationStore {
    pub(crate) client: Client,
    pub(crate) table: String,
}

fn corrupt(id: &InvocationId, reason: &str) -> StoreError {
    let (pk, sk) = keys::meta_key(id);
    StoreError::Corrupt {
        pk,
        sk,
        reason: reason.into(),
    }
}

impl Invocation {
    pub(crate) fn from_item(item: &Item) -> Result<Self, StoreError> {
        let id = keys::id_of_meta(item).ok_or_else(|| StoreError::Corrupt {
            pk: get_s(item, keys::PK).unwrap_or("?").into(),
            sk: get_s(item, keys::SK).unwrap_or("?").into(),
            reason: "bad key".into(),
        })?;
        let text =
            |name: &str| get_s(item, name).ok_or_else(|| corrupt(&id, &format!("no {name}")));
        let service =
            ServiceName::new(text("service")?).map_err(|e| corrupt(&id, &e.to_string()))?;
        let handler =
            HandlerName::new(text("handler")?).map_err(|e| corrupt(&id, &e.to_string()))?;
        let status = Status::parse(text("status")?).ok_or_else(|| corrupt(&id, "bad status"))?;
        let input = serde_json::from_str(text("input")?)
            .map_err(|e| corrupt(&id, &format!("input: {e}")))?;
        let outcome = match status {
            Status::Queued | Status::Running | Status::Suspended | Status::Paused => None,
            Status::Completed => Some(Outcome::Completed(
                serde_json::from_str(text("output")?)
                    .map_err(|e| corrupt(&id, &format!("output: {e}")))?,
            )),
            Status::Failed | Status::Cancelled | Status::Killed => {
                Some(Outcome::Failed(TerminalFailure {
                    code: get_n(item, "failure_code").unwrap_or(500),
                    message: get_s(item, "failure_message")
                        .unwrap_or_default()
                        .to_owned(),
                }))
            }
        };
        let step_failures = match (get_n(item, "retry_index"), get_n(item, "retry_failures")) {
            (Some(index), Some(count)) => Some(StepFailures { index, count }),
            _ => None,
        };
        let caller = match (
            get_s(item, "caller_invocation"),
            get_n(item, "caller_entry"),
        ) {
            (Some(c), Some(entry)) => Some(Caller {
                invocation: InvocationId::parse(c).map_err(|e| corrupt(&id, &e.to_string()))?,
                entry,
            }),
            _ => None,
        };
        let key = get_s(item, "object_key")
            .map(ObjectKey::new)
            .transpose()
            .map_err(|e| corrupt(&id, &e.to_string()))?;
        let handler_kind = get_s(item, "handler_kind")
            .map(|k| {
                k.parse::<HandlerKind>()
                    .map_err(|e| corrupt(&id, &format!("handler_kind: {e}")))
            })
            .transpose()?;
        let flag = |name: &str| {
            item.get(name)
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(false)
        };
        Ok(Self {
            cancel_requested: get_n(item, CANCEL_REQUESTED),
            cancel_delivered: flag(CANCEL_DELIVERED),
            backoff_until: get_n(item, BACKOFF_UNTIL),
            due_at: get_n(item, "due_at"),
            tail: crate::journal::tail_from_meta(item)?,
            last_error: get_s(item, "last_error").map(str::to_owned),
            retention: get_n(item, RETENTION_SECS).map(Duration::from_secs),
            idempotency_key: get_s(item, "idempotency_key").map(str::to_owned),
            trace: get_s(item, TRACEPARENT)
                .and_then(|t| TraceParent::parse(t).ok())
                .unwrap_or_else(|| TraceParent::of_invocation(&id)),
            headers: get_s(item, HEADERS)
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| corrupt(&id, &format!("headers: {e}")))?
                .unwrap_or_default(),
            attempt_errors: item
                .get("attempt_errors")
                .and_then(|v| v.as_l().ok())
                .map(|l| l.iter().filter_map(AttemptError::from_value).collect())
                .unwrap_or_default(),
            times: Times {
                created_at: get_n(item, "created_at").unwrap_or(0),
                updated_at: get_n(item, "updated_at").unwrap_or(0),
                completed_at: get_n(item, "completed_at"),
                expires_at: get_n(item, keys::EXPIRES_AT),
            },
            key,
            handler_kind,
            released: item
                .get(RELEASED)
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(false),
            cleanup_pending: item
                .get(CLEANUP)
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(false),
            has_payloads: item
                .get("has_payloads")
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(false),
            journal_kept: item
                .get(JOURNAL_KEPT)
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(false),
            function_arn: text("function_arn")?.to_owned(),
            epoch: get_n(item, "epoch").ok_or_else(|| corrupt(&id, "no epoch"))?,
            attempt: get_n(item, "attempt").unwrap_or(1),
            lease_until: get_n(item, "lease_until").unwrap_or(0),
            id,
            service,
            handler,
            status,
            input,
            outcome,
            step_failures,
            waiting_on: item
                .get("waiting_on")
                .and_then(|v| v.as_l().ok())
                .map(|l| {
                    l.iter()
                        .filter_map(|v| v.as_n().ok()?.parse().ok())
                        .collect()
                })
                .unwrap_or_default(),
            caller,
            waiters: item
                .get(CALL_WAITERS)
                .and_then(|v| v.as_ss().ok())
                .map(|set| set.iter().filter_map(|w| Caller::decode(w)).collect())
                .unwrap_or_default(),
        })
    }

    /// Whether other callers may wait for it besides its own caller: it is shared by an
    /// idempotency key or is a workflow's run.
    pub fn may_have_waiters(&self) -> bool {
        self.idempotency_key.is_some() || self.handler_kind == Some(HandlerKind::Workflow)
    }

    /// Every call entry its result completes: its caller's and the waiters'.
    pub fn callers(&self) -> impl Iterator<Item = &Caller> {
        self.caller.iter().chain(self.waiters.iter())
    }
}

/// The set of callers that wait for an invocation they did not create.
const CALL_WAITERS: &str = "call_waiters";

/// How many callers may join one shared invocation (about 60 bytes each, so its metadata item
/// stays far below DynamoDB's 400 KB).
pub const MAX_WAITERS: u32 = 1000;

/// What joining a shared invocation's waiters found.
#[derive(Debug)]
pub enum Joined {
    /// Joined: the invocation as it is now (with its outcome, if it finished before).
    Joined(Box<Invocation>),
    /// [`MAX_WAITERS`] wait already: not joined; the invocation as it is.
    Full(Box<Invocation>),
    /// There is no such invocation.
    Missing,
}

/// The result of trying to suspend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Suspension {
    /// Suspended: a completion of one of the entries will resume it.
    Suspended,
    /// One of the entries completed meanwhile: push again instead.
    CompletionArrived,
    /// Another driver owns the invocation now.
    LostOwnership,
    /// A cancellation was requested that has not reached the handler: deliver it instead.
    CancelPending,
}

/// The lease of a released invocation: only the sweep's fallback if its `drive` event is lost
/// (whoever gets that event takes it over at once).
pub fn released_lease() -> u64 {
    now_millis() + LEASE_AHEAD.as_millis() as u64
}

/// A lease to write: at least `LEASE_AHEAD` from now (a call close to its own deadline would
/// otherwise write one that the sweep's cursor may already have passed).
fn lease_ahead(lease_until: u64) -> u64 {
    lease_until.max(released_lease())
}

impl InvocationStore {
    /// A store on `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The metadata item of a new invocation in `status` (running, or queued for its object's
    /// lock).
    pub fn new_item(new: &NewInvocation, status: Status) -> Item {
        let now = now_millis();
        let mut item = keys::meta_key_item(&new.id);
        item.insert("service".into(), s(new.service.as_str()));
        item.insert("handler".into(), s(new.handler.as_str()));
        item.insert("function_arn".into(), s(new.function_arn.clone()));
        item.insert("status".into(), s(status.as_str()));
        item.insert("epoch".into(), n(1));
        item.insert("attempt".into(), n(1));
        item.insert("input".into(), s(new.input.to_string()));
        // An input kept in S3 is under this invocation's prefix: deleted when it finishes.
        if durable_protocol::payload::as_ref(&new.input).is_some() {
            item.insert("has_payloads".into(), AttributeValue::Bool(true));
        }
        if status == Status::Running {
            let lease = if new.released {
                item.insert(RELEASED.into(), AttributeValue::Bool(true));
                released_lease()
            } else {
                new.lease_until
            };
            item.insert("lease_until".into(), n(lease));
            // A dated invocation is found by the sweep in its minute's partition: no index
            // entry until it outlives that minute (`promote`).
            if new.id.bucket().is_none() {
                item.insert(LEASE_SHARD.into(), s(LEASE_SHARD_VALUE));
            }
        }
        item.insert("created_at".into(), n(now));
        item.insert("updated_at".into(), n(now));
        // A dated id is listed through its minute's partition; any other id goes into the
        // keys-only `runs` index once, at creation (later writes leave its keys alone).
        if new.id.bucket().is_none() {
            item.insert(keys::LIST_PK.into(), s(keys::list_pk(&new.id, now)));
            item.insert(keys::LIST_SK.into(), s(new.id.as_str()));
        }
        if let Some(c) = &new.caller {
            item.insert("caller_invocation".into(), s(c.invocation.as_str()));
            item.insert("caller_entry".into(), n(c.entry));
        }
        if let Some(k) = &new.idempotency_key {
            item.insert("idempotency_key".into(), s(k.as_str()));
        }
        if let Some(k) = &new.key {
            item.insert("object_key".into(), s(k.as_str()));
        }
        if let Some(kind) = new.handler_kind {
            item.insert("handler_kind".into(), s(kind.as_str()));
        }
        if let Some(t) = &new.traceparent {
            item.insert(TRACEPARENT.into(), s(t.to_string()));
        }
        if let Some(r) = new.retention {
            item.insert(RETENTION_SECS.into(), n(r.as_secs()));
        }
        if !new.headers.is_empty() {
            item.insert(
                HEADERS.into(),
                s(serde_json::to_string(&new.headers).expect("headers serialize")),
            );
        }
        item
    }

    /// Parses a metadata item.
    pub fn decode(item: &Item) -> Result<Invocation, StoreError> {
        Invocation::from_item(item)
    }

    /// Creates the invocation with a conditional put; if the id exists (an idempotent retry),
    /// returns the stored invocation instead and writes nothing.
    pub async fn create(&self, new: &NewInvocation) -> Result<Created, StoreError> {
        let item = Self::new_item(new, Status::Running);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item.clone()))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Created::New(Invocation::from_item(&item)?)),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(e)) => match e.item() {
                    Some(old) => Ok(Created::Existing(Invocation::from_item(old)?)),
                    None => self
                        .get(&new.id)
                        .await?
                        .map(Created::Existing)
                        .ok_or_else(|| corrupt(&new.id, "exists and does not")),
                },
                _ => Err(StoreError::dynamo("PutItem", err)),
            },
        }
    }

    /// An update of `inv`'s metadata that only applies while `inv.epoch` is current and the
    /// invocation is running (`:e` and `:running` are bound, `#st` names `status`).
    pub(crate) fn update_owned(&self, inv: &Invocation) -> UpdateItemFluentBuilder {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::meta_key_item(&inv.id)))
            .condition_expression(OWNED);
        bind_owned(update, inv.epoch)
    }

    /// The invocation as stored (strongly consistent).
    pub async fn get(&self, id: &InvocationId) -> Result<Option<Invocation>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(keys::meta_key_item(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        out.item.as_ref().map(Invocation::from_item).transpose()
    }

    /// The invocation as stored, eventually consistent (for what does not decide anything).
    pub async fn get_eventually(
        &self,
        id: &InvocationId,
    ) -> Result<Option<Invocation>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(keys::meta_key_item(id)))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        out.item.as_ref().map(Invocation::from_item).transpose()
    }

    /// Starts the next attempt: bumps epoch and attempt if `epoch` is still current.
    /// `false` means another driver owns the invocation now (or it finished).
    pub async fn next_attempt(
        &self,
        inv: &mut Invocation,
        lease_until: u64,
        step_failures: Option<StepFailures>,
        last_error: &str,
        due_ms: u64,
    ) -> Result<bool, StoreError> {
        let lease_until = lease_ahead(lease_until);
        let mut update = self
            .update_owned(inv)
            .expression_attribute_values(":next", n(inv.epoch + 1))
            .expression_attribute_values(":attempt", n(inv.attempt + 1))
            .expression_attribute_values(":lease", n(lease_until))
            .expression_attribute_values(":err", s(truncate(last_error, 2000)))
            .expression_attribute_values(":now", n(now_millis()));
        let mut errors = inv.attempt_errors.clone();
        errors.push(AttemptError {
            attempt: inv.attempt,
            at: now_millis(),
            entry: step_failures
                .map(|f| f.index)
                .filter(|i| i & (1 << 31) == 0),
            message: truncate(last_error, ATTEMPT_ERROR_CHARS),
        });
        let skip = errors.len().saturating_sub(KEPT_ATTEMPT_ERRORS);
        let errors: Vec<AttributeValue> = errors
            .iter()
            .skip(skip)
            .map(AttemptError::to_value)
            .collect();
        let mut set = "SET epoch = :next, attempt = :attempt, lease_until = :lease, last_error = :err, updated_at = :now, journal_kept = :kept, backoff_until = :due, attempt_errors = :errors".to_string();
        update = update
            .expression_attribute_values(":errors", AttributeValue::L(errors))
            .expression_attribute_values(":kept", AttributeValue::Bool(true))
            .expression_attribute_values(":due", n(due_ms))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew);
        match step_failures {
            Some(f) => {
                set.push_str(", retry_index = :ri, retry_failures = :rf");
                update = update
                    .expression_attribute_values(":ri", n(f.index))
                    .expression_attribute_values(":rf", n(f.count));
            }
            None => set.push_str(" REMOVE retry_index, retry_failures"),
        }
        let Some(out) = apply_returning(update.update_expression(set)).await? else {
            return Ok(false);
        };
        // The item as it is now: a cancellation requested meanwhile travels with the next push.
        match out.attributes.as_ref().map(Invocation::from_item) {
            Some(Ok(now)) => *inv = now,
            _ => {
                inv.epoch += 1;
                inv.attempt += 1;
                inv.journal_kept = true;
                inv.lease_until = lease_until;
                inv.step_failures = step_failures;
                inv.backoff_until = Some(due_ms);
            }
        }
        Ok(true)
    }

    /// Takes over a running invocation whose lease expired (its driver died or gave it up):
    /// bumps the epoch so that the previous driver's late writes are refused.
    pub async fn take_over(
        &self,
        inv: &mut Invocation,
        lease_until: u64,
    ) -> Result<bool, StoreError> {
        let lease_until = lease_ahead(lease_until);
        // Taken from a driver whose lease ran out, its attempt may still be running and
        // appending: from now on the journal is kept (the next push takes the TTL off what is
        // there). A released invocation has no attempt running (and one that was pushed before
        // keeps its journal already): nothing changes.
        let keep = !inv.released;
        let set = if keep {
            "SET epoch = :next, lease_until = :lease, updated_at = :now, journal_kept = :t REMOVE released"
        } else {
            "SET epoch = :next, lease_until = :lease, updated_at = :now REMOVE released"
        };
        let update = self
            .update_owned(inv)
            .condition_expression(owned_and("(lease_until < :now OR released = :t)"))
            .update_expression(set)
            .expression_attribute_values(":next", n(inv.epoch + 1))
            .expression_attribute_values(":lease", n(lease_until))
            .expression_attribute_values(":now", n(now_millis()))
            .expression_attribute_values(":t", AttributeValue::Bool(true));
        let applied = apply(update).await?;
        if applied {
            inv.epoch += 1;
            inv.lease_until = lease_until;
            inv.released = false;
            inv.journal_kept |= keep;
        }
        Ok(applied)
    }

    /// Gives up ownership now, between two pushes, so that the next driver can take over at
    /// once. The lease stays (moving it would rewrite the `leases` index): if the hand-off
    /// event is lost, the sweep finds the invocation when the lease ends. Handed from call to
    /// call it may live long: its journal is kept from now on.
    pub async fn release(&self, inv: &Invocation) -> Result<bool, StoreError> {
        apply(
            self.update_owned(inv)
                .update_expression("SET released = :t, journal_kept = :t")
                .expression_attribute_values(":t", AttributeValue::Bool(true)),
        )
        .await
    }

    /// Suspends `inv` until one of `waiting_on` completes, in one transaction that also checks
    /// that none of them has completed yet: a completion that races with the suspension either
    /// lands before it (the transaction fails, the driver pushes again) or finds the invocation
    /// suspended (and resumes it). Nothing can be lost in between.
    pub async fn suspend(
        &self,
        inv: &Invocation,
        waiting_on: &[u32],
    ) -> Result<Suspension, StoreError> {
        use aws_sdk_dynamodb::types::{ConditionCheck, TransactWriteItem, Update};
        let mut items = Vec::new();
        for index in waiting_on {
            let check = ConditionCheck::builder()
                .table_name(&self.table)
                .key(keys::PK, s(keys::invocation_pk(&inv.id)))
                .key(keys::SK, s(keys::journal_sk(*index)))
                .condition_expression(
                    "attribute_exists(sk) AND attribute_not_exists(completion_value) AND attribute_not_exists(completion_failure_code)",
                )
                .build()
                .map_err(build_err)?;
            items.push(TransactWriteItem::builder().condition_check(check).build());
        }
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::meta_key_item(&inv.id)))
            .condition_expression(owned_and(
                "(attribute_not_exists(cancel_requested) OR cancel_delivered = :kept)",
            ))
            .update_expression(
                "SET #st = :suspended, waiting_on = :w, lease_until = :zero, updated_at = :now, journal_kept = :kept REMOVE lease_shard, backoff_until",
            )
            .expression_attribute_values(":kept", AttributeValue::Bool(true));
        let update = bind_owned(update, inv.epoch)
            .expression_attribute_values(":suspended", s(Status::Suspended.as_str()))
            .expression_attribute_values(
                ":w",
                AttributeValue::L(waiting_on.iter().map(n).collect()),
            )
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":now", n(now_millis()))
            .build()
            .map_err(build_err)?;
        items.push(TransactWriteItem::builder().update(update).build());
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(Suspension::Suspended),
            Err(err) => {
                let Some(failed) = err.as_service_error().and_then(failed_conditions) else {
                    return Err(StoreError::dynamo("TransactWriteItems", err));
                };
                if failed.last() == Some(&true) {
                    // Lost, or a cancellation to deliver first: the item tells.
                    Ok(match self.get(&inv.id).await? {
                        Some(now)
                            if now.epoch == inv.epoch
                                && now.status == Status::Running
                                && now.cancel_pending() =>
                        {
                            Suspension::CancelPending
                        }
                        _ => Suspension::LostOwnership,
                    })
                } else if failed.iter().any(|f| *f) {
                    Ok(Suspension::CompletionArrived)
                } else {
                    Err(StoreError::dynamo("TransactWriteItems", err))
                }
            }
        }
    }

    /// Resumes a suspended invocation that waits on `index`: it runs again under a new epoch
    /// owned by the caller. `false` if it was not suspended on that entry (then whoever drives
    /// it sees the completion anyway).
    pub async fn resume(
        &self,
        inv: &mut Invocation,
        index: u32,
        lease_until: u64,
    ) -> Result<bool, StoreError> {
        if inv.status != Status::Suspended || !inv.waiting_on.contains(&index) {
            return Ok(false);
        }
        let lease_until = lease_ahead(lease_until);
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::meta_key_item(&inv.id)))
            .condition_expression("epoch = :e AND #st = :suspended")
            .update_expression(
                "SET #st = :running, epoch = :next, lease_until = :lease, updated_at = :now, lease_shard = :shard, journal_kept = :kept REMOVE waiting_on",
            )
            .expression_attribute_values(":kept", AttributeValue::Bool(true))
            .expression_attribute_values(":shard", s(LEASE_SHARD_VALUE))
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":e", n(inv.epoch))
            .expression_attribute_values(":next", n(inv.epoch + 1))
            .expression_attribute_values(":suspended", s(Status::Suspended.as_str()))
            .expression_attribute_values(":running", s(Status::Running.as_str()))
            .expression_attribute_values(":lease", n(lease_until))
            .expression_attribute_values(":now", n(now_millis()));
        let applied = apply(update).await?;
        if applied {
            inv.status = Status::Running;
            inv.epoch += 1;
            inv.lease_until = lease_until;
            inv.waiting_on.clear();
            inv.journal_kept = true;
        }
        Ok(applied)
    }

    /// Adds `caller` to those waiting for `id`'s result (an idempotent call's child or a
    /// workflow's run that another started). A finish after this write sees the waiter; one
    /// before it left its outcome in the answer, so the waiter is told either way.
    pub async fn add_waiter(
        &self,
        id: &InvocationId,
        caller: &Caller,
    ) -> Result<Joined, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::meta_key_item(id)))
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(#w) OR size(#w) < :max)",
            )
            .update_expression("ADD #w :w")
            .expression_attribute_names("#w", CALL_WAITERS)
            .expression_attribute_values(":w", AttributeValue::Ss(vec![caller.encode()]))
            .expression_attribute_values(":max", n(MAX_WAITERS))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => match out.attributes.as_ref() {
                Some(item) => Ok(Joined::Joined(Box::new(Invocation::from_item(item)?))),
                None => Err(corrupt(id, "a waiter was added to no item")),
            },
            Err(err) => match err.as_service_error() {
                Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(e)) => {
                    Ok(match e.item() {
                        // Full: its outcome may be there already, which the caller can take.
                        Some(old) => Joined::Full(Box::new(Invocation::from_item(old)?)),
                        None => Joined::Missing,
                    })
                }
                _ => Err(StoreError::dynamo("UpdateItem", err)),
            },
        }
    }

    /// Records that a finished invocation's clean-up is done.
    pub async fn cleaned(&self, id: &InvocationId) -> Result<(), StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::meta_key_item(id)))
            .condition_expression("attribute_exists(pk)")
            .update_expression("REMOVE cleanup");
        apply(update).await.map(|_| ())
    }

    /// Records the outcome if `inv.epoch` is still current: `Some(has_payloads)` if it did,
    /// `None` if another driver owns it.
    pub async fn finish(
        &self,
        inv: &Invocation,
        outcome: &Outcome,
        tail: Option<&JournalEntry>,
        retention: Duration,
    ) -> Result<Option<bool>, StoreError> {
        let finish = FinishUpdate::new(inv, outcome, tail, retention, Ending::Owned);
        let mut update = self
            .update_owned(inv)
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew);
        for (name, value) in finish.values {
            update = update.expression_attribute_values(name, value);
        }
        for (name, value) in finish.names {
            update = update.expression_attribute_names(name, value);
        }
        let applied = apply_returning(update.update_expression(finish.expression)).await?;
        Ok(applied.map(|out| {
            out.attributes
                .and_then(|a| {
                    a.get("has_payloads")
                        .and_then(|v| v.as_bool().ok())
                        .copied()
                })
                .unwrap_or(false)
        }))
    }
}

/// The update that records an outcome on an owned invocation's metadata item (conditional on
/// `epoch = :e AND #st = :running`): used alone, or in the transaction that also applies an
/// object's state and hands its lock on. It leaves the lease in the `leases` index (taking it
/// out would cost a second write): the sweep reads the item once, when its cursor passes the
/// lease, and skips it; the index entry goes with the item's TTL. The handler's last step,
/// when nothing durable followed it, is recorded here too (`tail`): one write for both.
/// Who records an outcome, which decides its condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The invocation's driver, at the epoch it owns while it runs ([`OWNED`]).
    Owned,
    /// An operator's kill: at the epoch it read, from any live status ([`STOPPABLE`]).
    Stopped,
}

/// The condition of a kill: the epoch read is current and the invocation is live (running,
/// suspended or paused; a queued one leaves its object's inbox in the same transaction).
pub const STOPPABLE: &str = "epoch = :e AND #st IN (:running, :suspended, :paused)";

pub struct FinishUpdate {
    pub expression: String,
    pub condition: &'static str,
    pub names: Vec<(&'static str, &'static str)>,
    pub values: Vec<(&'static str, AttributeValue)>,
}

impl FinishUpdate {
    /// The update recording `outcome` on `inv`, with the journal entry `tail` if the handler
    /// answered one.
    pub fn new(
        inv: &Invocation,
        outcome: &Outcome,
        tail: Option<&JournalEntry>,
        retention: Duration,
        ending: Ending,
    ) -> Self {
        let now = now_millis();
        let expires_at = now / 1000 + retention.as_secs();
        let owned = owned_bindings(inv.epoch);
        let mut names = owned.names.to_vec();
        let mut values = owned.values.to_vec();
        values.extend([
            (":now", n(now)),
            (":exp", n(expires_at)),
            (":no", AttributeValue::Bool(false)),
        ]);
        let set = match outcome {
            Outcome::Completed(output) => {
                names.push(("#out", "output"));
                values.push((":status", s(Status::Completed.as_str())));
                values.push((":out", s(output.to_string())));
                "SET #st = :status, #out = :out"
            }
            Outcome::Failed(f) => {
                values.push((":status", s(Status::of_failure(f).as_str())));
                values.push((":code", n(f.code)));
                values.push((":msg", s(truncate(&f.message, 8000))));
                "SET #st = :status, failure_code = :code, failure_message = :msg"
            }
        };
        let mut expression = format!(
            "{set}, completed_at = :now, updated_at = :now, expires_at = :exp, has_payloads = if_not_exists(has_payloads, :no)"
        );
        let condition = match ending {
            Ending::Owned => OWNED,
            Ending::Stopped => {
                values.push((":suspended", s(Status::Suspended.as_str())));
                values.push((":paused", s(Status::Paused.as_str())));
                STOPPABLE
            }
        };
        // A stopped invocation's children and schedules are seen to after the write, and by
        // the sweep if that call dies.
        if inv.journal_kept || ending == Ending::Stopped {
            // Its journal needs a TTL and its timers may have schedules: done after the
            // finish, and by the sweep if the finishing call dies first. `journal_kept` is
            // recorded too: a driver may have kept the journal (and made schedules) for a
            // suspension that did not happen, which wrote nothing.
            expression.push_str(", cleanup = :yes, journal_kept = :yes");
            values.push((":yes", AttributeValue::Bool(true)));
        }
        if let Some(entry) = tail {
            expression.push_str(", tail = :tail");
            values.push((":tail", tail_value(entry)));
        }
        expression.push_str(" REMOVE backoff_until, waiting_on");
        Self {
            expression,
            condition,
            names,
            values,
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_round_trip_as_waiter_set_members() {
        let caller = Caller {
            invocation: InvocationId::random(&ServiceName::new("shop").unwrap()),
            entry: 12,
        };
        assert_eq!(Caller::decode(&caller.encode()), Some(caller));
        assert_eq!(Caller::decode("inv_shop.x:1"), None);
        assert_eq!(Caller::decode("no separator"), None);
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h…");
        assert_eq!(truncate("abc", 5), "abc");
    }

    #[test]
    fn metadata_items_decode() {
        let id = InvocationId::random(&durable_protocol::ServiceName::new("svc").unwrap());
        let mut item = Item::new();
        item.insert("pk".into(), s(keys::invocation_pk(&id)));
        item.insert("sk".into(), s("meta"));
        item.insert("service".into(), s("svc"));
        item.insert("handler".into(), s("h"));
        item.insert("function_arn".into(), s("arn:x"));
        item.insert("status".into(), s("failed"));
        item.insert("epoch".into(), n(3));
        item.insert("attempt".into(), n(2));
        item.insert("input".into(), s("{\"a\":1}"));
        item.insert("failure_code".into(), n(409));
        item.insert("failure_message".into(), s("nope"));
        item.insert("retry_index".into(), n(4));
        item.insert("retry_failures".into(), n(2));
        let inv = Invocation::from_item(&item).unwrap();
        assert_eq!(inv.status, Status::Failed);
        assert_eq!(
            inv.outcome,
            Some(Outcome::Failed(TerminalFailure::new(409, "nope")))
        );
        assert_eq!(inv.step_failures, Some(StepFailures { index: 4, count: 2 }));
        assert_eq!(inv.epoch, 3);
        item.insert("status".into(), s("exploded"));
        assert!(Invocation::from_item(&item).is_err());
    }
}
