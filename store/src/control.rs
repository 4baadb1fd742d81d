//! The transitions operators ask for (pause, resume, cancel, retry now, restart) and the
//! journal edits a restart needs. Each is one conditional write on the metadata item's status
//! and epoch, so it races safely with a running attempt: whoever writes second finds the
//! condition false and learns what happened instead.

use crate::attrs::n;
use crate::attrs::s;
use crate::conditional::apply_update as apply;
use crate::invocations::{
    released_lease, Ending, FinishUpdate, Invocation, InvocationStore, Status, CANCEL_DELIVERED,
    CANCEL_REQUESTED, LEASE_SHARD, LEASE_SHARD_VALUE,
};
use crate::journal::{entry_to_item, JournalStore};
use crate::keys;
use crate::StoreError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use durable_protocol::clock::now_millis;
use durable_protocol::JournalEntry;

/// The attributes a restarted invocation no longer has: its outcome and what finishing,
/// pausing, retrying and cancelling left.
const RESTART_REMOVES: &str = "#out, failure_code, failure_message, completed_at, expires_at, tail, cleanup, waiting_on, retry_index, retry_failures, backoff_until, cancel_requested, cancel_delivered, last_error";

impl InvocationStore {
    /// An update of `inv`'s metadata conditional on its epoch and on its status being one of
    /// `from` (bound as `:f0`, `:f1`, ...; `#st` names `status`).
    fn transition(&self, inv: &Invocation, from: &[Status]) -> UpdateItemFluentBuilder {
        let names: Vec<String> = (0..from.len()).map(|i| format!(":f{i}")).collect();
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::meta_key_item(&inv.id)))
            .condition_expression(format!("epoch = :e AND #st IN ({})", names.join(", ")))
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":e", n(inv.epoch))
            .expression_attribute_values(":now", n(now_millis()));
        for (name, status) in names.iter().zip(from) {
            update = update.expression_attribute_values(name.as_str(), s(status.as_str()));
        }
        update
    }

    /// Pauses a running or suspended invocation: it stops retrying, holds no lease and is left
    /// out of the `leases` index until it is resumed; the epoch moves on so that an attempt
    /// still running cannot record its outcome. `why` is kept as its `last_error`.
    pub async fn pause(&self, inv: &mut Invocation, why: &str) -> Result<bool, StoreError> {
        let update = self
            .transition(inv, &[Status::Running, Status::Suspended])
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .update_expression(
                "SET #st = :paused, epoch = :next, lease_until = :zero, updated_at = :now, journal_kept = :t, last_error = :why \
                 REMOVE lease_shard, released, backoff_until, waiting_on",
            )
            .expression_attribute_values(":paused", s(Status::Paused.as_str()))
            .expression_attribute_values(":next", n(inv.epoch + 1))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":why", s(why.chars().take(2000).collect::<String>()));
        let applied = apply(update).await?;
        if applied {
            inv.status = Status::Paused;
            inv.epoch += 1;
            inv.journal_kept = true;
        }
        Ok(applied)
    }

    /// Makes a paused invocation run again, released (whoever gets its `drive` takes it over),
    /// with a fresh attempt budget; `function_arn` moves it to another version of its handler.
    /// `cancel` also requests its cancellation (a paused invocation is resumed to observe it).
    pub async fn unpause(
        &self,
        inv: &mut Invocation,
        function_arn: Option<&str>,
        cancel: bool,
    ) -> Result<bool, StoreError> {
        let mut set = "SET #st = :running, epoch = :next, attempt = :one, released = :t, lease_until = :lease, #shard = :shard, updated_at = :now".to_string();
        let mut update = self
            .transition(inv, &[Status::Paused])
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .expression_attribute_names("#shard", LEASE_SHARD)
            .expression_attribute_values(":running", s(Status::Running.as_str()))
            .expression_attribute_values(":next", n(inv.epoch + 1))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":lease", n(released_lease()))
            .expression_attribute_values(":shard", s(LEASE_SHARD_VALUE));
        if let Some(arn) = function_arn {
            set.push_str(", function_arn = :arn");
            update = update.expression_attribute_values(":arn", s(arn));
        }
        if cancel {
            set.push_str(&format!(
                ", {CANCEL_REQUESTED} = if_not_exists({CANCEL_REQUESTED}, :now)"
            ));
        }
        set.push_str(" REMOVE retry_index, retry_failures, last_error");
        let applied = apply(update.update_expression(set)).await?;
        if applied {
            inv.status = Status::Running;
            inv.epoch += 1;
            inv.attempt = 1;
            inv.released = true;
            if let Some(arn) = function_arn {
                inv.function_arn = arn.to_owned();
            }
            if cancel && inv.cancel_requested.is_none() {
                inv.cancel_requested = Some(now_millis());
            }
        }
        Ok(applied)
    }

    /// Records that an operator asked to cancel a running invocation: its driver delivers the
    /// cancellation when the handler next suspends, and its next push carries it.
    pub async fn request_cancel(&self, inv: &mut Invocation) -> Result<bool, StoreError> {
        let update = self
            .transition(inv, &[Status::Running])
            .update_expression(format!(
            "SET {CANCEL_REQUESTED} = if_not_exists({CANCEL_REQUESTED}, :now), updated_at = :now"
        ));
        let applied = apply(update).await?;
        if applied && inv.cancel_requested.is_none() {
            inv.cancel_requested = Some(now_millis());
        }
        Ok(applied)
    }

    /// Wakes a suspended invocation to observe its cancellation: it runs again, owned by the
    /// caller at the next epoch (who completes what it waits on with the cancellation, then
    /// hands it on).
    pub async fn wake_to_cancel(
        &self,
        inv: &mut Invocation,
        lease_until: u64,
    ) -> Result<bool, StoreError> {
        let lease_until = lease_until.max(released_lease());
        let update = self
            .transition(inv, &[Status::Suspended])
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .update_expression(format!(
                "SET #st = :running, epoch = :next, lease_until = :lease, #shard = :shard, updated_at = :now, journal_kept = :t, \
                 {CANCEL_REQUESTED} = if_not_exists({CANCEL_REQUESTED}, :now)"
            ))
            .expression_attribute_names("#shard", LEASE_SHARD)
            .expression_attribute_values(":running", s(Status::Running.as_str()))
            .expression_attribute_values(":next", n(inv.epoch + 1))
            .expression_attribute_values(":lease", n(lease_until))
            .expression_attribute_values(":shard", s(LEASE_SHARD_VALUE));
        let applied = apply(update).await?;
        if applied {
            inv.status = Status::Running;
            inv.epoch += 1;
            inv.lease_until = lease_until;
            inv.journal_kept = true;
            if inv.cancel_requested.is_none() {
                inv.cancel_requested = Some(now_millis());
            }
        }
        Ok(applied)
    }

    /// Records that the cancellation reached the handler (by the owner at `inv.epoch`).
    pub async fn cancel_delivered(&self, inv: &mut Invocation) -> Result<bool, StoreError> {
        let update = self
            .transition(inv, &[Status::Running])
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .update_expression(format!("SET {CANCEL_DELIVERED} = :t, updated_at = :now"));
        let applied = apply(update).await?;
        if applied {
            inv.cancel_delivered = true;
        }
        Ok(applied)
    }

    /// Ends the backoff of a running invocation that waits for its next attempt: the epoch
    /// moves on (the driver waiting out the backoff gives up) and it is released, so that the
    /// `drive` sent next pushes it now.
    pub async fn retry_now(&self, inv: &mut Invocation) -> Result<bool, StoreError> {
        let update = self
            .transition(inv, &[Status::Running])
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .condition_expression(
                "epoch = :e AND #st IN (:f0) AND backoff_until > :now",
            )
            .update_expression(
                "SET epoch = :next, released = :t, lease_until = :lease, updated_at = :now REMOVE backoff_until",
            )
            .expression_attribute_values(":next", n(inv.epoch + 1))
            .expression_attribute_values(":lease", n(released_lease()));
        let applied = apply(update).await?;
        if applied {
            inv.epoch += 1;
            inv.released = true;
            inv.backoff_until = None;
        }
        Ok(applied)
    }

    /// Makes a finished (failed, cancelled, killed) or paused invocation run again as the next
    /// attempt of the same id, released: its outcome and everything finishing left are
    /// removed, its journal is kept. The journal must have been cut first
    /// ([`JournalStore::truncate`]).
    pub async fn restart(&self, inv: &mut Invocation) -> Result<bool, StoreError> {
        let update = self
            .transition(
                inv,
                &[
                    Status::Failed,
                    Status::Cancelled,
                    Status::Killed,
                    Status::Paused,
                ],
            )
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .update_expression(format!(
                "SET #st = :running, epoch = :next, attempt = :attempt, released = :t, lease_until = :lease, #shard = :shard, \
                 updated_at = :now, journal_kept = :t REMOVE {RESTART_REMOVES}"
            ))
            .expression_attribute_names("#shard", LEASE_SHARD)
            .expression_attribute_names("#out", "output")
            .expression_attribute_values(":running", s(Status::Running.as_str()))
            .expression_attribute_values(":next", n(inv.epoch + 1))
            .expression_attribute_values(":attempt", n(inv.attempt + 1))
            .expression_attribute_values(":lease", n(released_lease()))
            .expression_attribute_values(":shard", s(LEASE_SHARD_VALUE));
        let applied = apply(update).await?;
        if applied {
            inv.status = Status::Running;
            inv.epoch += 1;
            inv.attempt += 1;
            inv.released = true;
            inv.outcome = None;
            inv.tail = None;
            inv.journal_kept = true;
            inv.cancel_requested = None;
            inv.cancel_delivered = false;
        }
        Ok(applied)
    }
}

impl JournalStore {
    /// Deletes the entries of `id` from index `from` on, and writes `tail` (the last step
    /// recorded on the metadata item) as an entry if it comes before `from`: what a restart
    /// keeps is then exactly the entries before `from`. Answers how many entries were deleted.
    pub async fn truncate(&self, inv: &Invocation, from: u32) -> Result<usize, StoreError> {
        use aws_sdk_dynamodb::types::{DeleteRequest, PutRequest, WriteRequest};
        let journal = self.load(&inv.id).await?;
        let mut requests: Vec<WriteRequest> = journal
            .iter()
            .filter(|e| e.index >= from)
            .map(|e| {
                let delete = DeleteRequest::builder()
                    .set_key(Some(keys::entry_key_item(&inv.id, e.index)))
                    .build()
                    .expect("key is set");
                WriteRequest::builder().delete_request(delete).build()
            })
            .collect();
        let deleted = requests.len();
        if let Some(tail) = inv.tail.as_ref().filter(|t| t.index < from) {
            if !journal.iter().any(|e| e.index == tail.index) {
                let put = PutRequest::builder()
                    .set_item(Some(entry_to_item(&inv.id, tail, inv.epoch)))
                    .build()
                    .expect("item is set");
                requests.push(WriteRequest::builder().put_request(put).build());
            }
        }
        self.write_batches(requests).await?;
        Ok(deleted)
    }

    /// The entries of a journal, with the tail recorded on the metadata item placed at its
    /// index (what a finished invocation's whole history is).
    pub fn with_tail(
        mut journal: Vec<JournalEntry>,
        tail: Option<&JournalEntry>,
    ) -> Vec<JournalEntry> {
        if let Some(tail) = tail {
            if !journal.iter().any(|e| e.index == tail.index) {
                journal.push(tail.clone());
                journal.sort_by_key(|e| e.index);
            }
        }
        journal
    }
}

impl InvocationStore {
    /// Records `outcome` on a live invocation at the epoch read, whatever its status (an
    /// operator's kill): `Some(has_payloads)` if it did, `None` if the epoch moved on or it
    /// finished meanwhile. Keyed invocations that hold state or a lock end through
    /// [`crate::objects::Objects::finish`] with [`Ending::Stopped`] instead.
    pub async fn stop(
        &self,
        inv: &Invocation,
        outcome: &crate::invocations::Outcome,
        retention: std::time::Duration,
    ) -> Result<Option<bool>, StoreError> {
        let finish = FinishUpdate::new(inv, outcome, None, retention, Ending::Stopped);
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::meta_key_item(&inv.id)))
            .condition_expression(finish.condition)
            .update_expression(finish.expression)
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew);
        for (name, value) in finish.names {
            update = update.expression_attribute_names(name, value);
        }
        for (name, value) in finish.values {
            update = update.expression_attribute_values(name, value);
        }
        let applied = crate::conditional::apply_update_returning(update).await?;
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
