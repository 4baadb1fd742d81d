//! What the sweep reads and writes: its cursors, the minutes' partitions of dated invocations,
//! the `leases` index, and the conditional marks that hand a stranded invocation to a new driver.

use crate::attrs::{get_n, n, s};
use crate::conditional::{
    apply_update as apply, apply_update_returning as apply_returning, owned_and,
};
use crate::invocations::{Invocation, InvocationStore, LEASE_INDEX, LEASE_SHARD_VALUE};
use crate::keys;
use crate::{Item, StoreError};
use durable_protocol::clock::now_millis;
use durable_protocol::{InvocationId, ServiceName, Status};

/// The item that holds how far the sweep has looked through the `leases` index.
const SWEEP_PK: &str = "sweep";
const SWEEP_SK: &str = "cursor";

/// Where the sweep left off (the item `sweep`/`cursor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepCursors {
    /// How far it has looked through the `leases` index (ms; 0 before the first sweep).
    pub swept_until: u64,
    /// The last minute whose dated invocations it has looked at (`None` before the first).
    pub minutes_until: Option<u32>,
}

/// What the `leases` index holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leased {
    /// An invocation that runs (or ran: finishing leaves it there), by when its lease ends.
    Invocation { id: InvocationId, lease_until: u64 },
    /// A journal entry, by when it was stamped: a call or send when it was recorded (the sweep
    /// dispatches it if its `dispatch` was lost), an entry completed by someone other than its
    /// invocation when it was completed (the sweep resumes the invocation if it is still
    /// suspended on it).
    Entry {
        id: InvocationId,
        index: u32,
        stamped_at: u64,
    },
}

impl Leased {
    /// Where it sorts in the index (ms since the Unix epoch).
    pub fn at(&self) -> u64 {
        match self {
            Leased::Invocation { lease_until, .. } => *lease_until,
            Leased::Entry { stamped_at, .. } => *stamped_at,
        }
    }
}

impl InvocationStore {
    /// Where the sweep left off in the `leases` index and in the minutes' partitions.
    pub async fn sweep_cursors(&self) -> Result<SweepCursors, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(keys::PK, s(SWEEP_PK))
            .key(keys::SK, s(SWEEP_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        let item = out.item.unwrap_or_default();
        Ok(SweepCursors {
            swept_until: get_n(&item, "swept_until").unwrap_or(0),
            minutes_until: get_n(&item, "minutes_until"),
        })
    }

    /// Moves the sweep's cursor in the `leases` index forward to `to`.
    pub async fn advance_sweep_cursor(&self, to: u64) -> Result<(), StoreError> {
        self.advance_cursor("swept_until", to).await
    }

    /// Moves the minutes cursor forward to `minute`.
    pub async fn advance_minutes_cursor(&self, minute: u32) -> Result<(), StoreError> {
        self.advance_cursor("minutes_until", minute.into()).await
    }

    /// Moves the cursor `attribute` of the sweep item forward to `to`, never back: racing
    /// sweeps are harmless.
    async fn advance_cursor(&self, attribute: &'static str, to: u64) -> Result<(), StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(keys::PK, s(SWEEP_PK))
            .key(keys::SK, s(SWEEP_SK))
            .condition_expression("attribute_not_exists(#c) OR #c < :to")
            .update_expression("SET #c = :to")
            .expression_attribute_names("#c", attribute)
            .expression_attribute_values(":to", n(to));
        apply(update).await.map(|_| ())
    }

    /// One page of the metadata items of `service`'s dated invocations made in `minute` (one
    /// shard), eventually consistent: the sweep only acts on what it then writes conditionally.
    pub async fn minute_page(
        &self,
        service: &ServiceName,
        minute: u32,
        shard: u8,
        start: Option<Item>,
    ) -> Result<(Vec<Invocation>, Option<Item>), StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(keys::run_pk(service.as_str(), minute, shard)))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        let found = out
            .items()
            .iter()
            .map(Invocation::from_item)
            .collect::<Result<_, _>>()?;
        Ok((found, out.last_evaluated_key.filter(|k| !k.is_empty())))
    }

    /// Puts a dated invocation that still runs after its minute was swept into the `leases`
    /// index, where later sweeps find it: conditional on it running (whoever drives it, at
    /// whatever epoch, so a stale read cannot make the sweep skip it). Returns it as it is
    /// now, or `None` if it does not run (finished, or suspended: resuming puts it in the
    /// index).
    pub async fn promote(&self, id: &InvocationId) -> Result<Option<Invocation>, StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::meta_key_item(id)))
            .condition_expression("#st = :running")
            .update_expression("SET lease_shard = :shard")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":running", s(Status::Running.as_str()))
            .expression_attribute_values(":shard", s(LEASE_SHARD_VALUE))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew);
        match apply_returning(update).await? {
            Some(out) => out
                .attributes
                .as_ref()
                .map(Invocation::from_item)
                .transpose(),
            None => Ok(None),
        }
    }

    /// One page of the `leases` index between `after` (exclusive) and `upto` (inclusive), in
    /// lease order: invocations and completions, and where the next page starts.
    pub async fn leases_page(
        &self,
        after: u64,
        upto: u64,
        start: Option<Item>,
    ) -> Result<(Vec<Leased>, Option<Item>), StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(LEASE_INDEX)
            .key_condition_expression("lease_shard = :shard AND lease_until BETWEEN :from AND :to")
            .expression_attribute_values(":shard", s(LEASE_SHARD_VALUE))
            .expression_attribute_values(":from", n(after + 1))
            .expression_attribute_values(":to", n(upto))
            .set_exclusive_start_key(start)
            .limit(100)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        let found = out
            .items()
            .iter()
            .filter_map(|i| {
                let at = get_n(i, "lease_until")?;
                if let Some(id) = keys::id_of_meta(i) {
                    return Some(Leased::Invocation {
                        id,
                        lease_until: at,
                    });
                }
                let (id, index) = keys::entry_of_item(i)?;
                Some(Leased::Entry {
                    id,
                    index,
                    stamped_at: at,
                })
            })
            .collect();
        Ok((found, out.last_evaluated_key.filter(|k| !k.is_empty())))
    }

    /// The invocations of `ids` as stored (eventually consistent, in one or a few batch
    /// reads): the sweep only needs to tell finished ones from running ones, and a
    /// finished invocation never runs again.
    pub async fn get_many(&self, ids: &[InvocationId]) -> Result<Vec<Invocation>, StoreError> {
        let keys = ids.iter().map(keys::meta_key_item).collect();
        crate::batch::batch_get(&self.client, &self.table, keys)
            .await?
            .iter()
            .map(Invocation::from_item)
            .collect()
    }

    /// Moves the lease of a running invocation that nobody drives to now: still expired (the
    /// `drive` event sent next takes it over at once) but ahead of the sweep's cursor, so that
    /// a later sweep finds it again if that event is lost too. `false` if it changed meanwhile.
    /// Not `released`: its last driver's attempt may still be running.
    pub async fn mark_stranded(&self, inv: &Invocation) -> Result<bool, StoreError> {
        let now = now_millis();
        apply(
            self.update_owned(inv)
                .condition_expression(owned_and("lease_until = :old"))
                .update_expression("SET lease_until = :now, updated_at = :now")
                .expression_attribute_values(":old", n(inv.lease_until))
                .expression_attribute_values(":now", n(now)),
        )
        .await
    }
}
