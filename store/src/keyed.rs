//! Object state and workflow promises as items: lazy state reads, the eager state of a push,
//! promise waits and the once-only completion of a promise.

use crate::attrs::{get_s, read_result, s, Item};
use crate::error::StoreError;
use crate::keys;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;
use durable_protocol::keyed::{ObjectRef, PromiseCompletion, Waiter};
use durable_protocol::{EagerState, StepResult};

/// On a state item a running workflow wrote: the journal entry of that change.
const WRITTEN_AT_ENTRY: &str = "wt_entry";
/// On a state item a running workflow cleared: readers treat the key as gone.
const WRITTEN_CLEAR: &str = "wt_cleared";

fn waiters(item: &Item) -> Vec<Waiter> {
    item.get("waiters")
        .and_then(|v| v.as_ss().ok())
        .map(|set| set.iter().filter_map(|w| Waiter::decode(w)).collect())
        .unwrap_or_default()
}

#[derive(Debug, Clone)]
pub struct KeyedStore {
    client: Client,
    table: String,
}

impl KeyedStore {
    /// A store on `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// One item of `object` (strongly consistent).
    async fn item(&self, object: &ObjectRef, sk: String) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(keys::PK, s(keys::object_ref_pk(object)))
            .key(keys::SK, s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        Ok(out.item)
    }

    /// Every state item of `object`, page by page (only their keys when `keys_only`); `each`
    /// sees each item and may stop the walk by returning `false`.
    async fn walk_state(
        &self,
        object: &ObjectRef,
        keys_only: bool,
        mut each: impl FnMut(&Item) -> Result<bool, StoreError>,
    ) -> Result<bool, StoreError> {
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(keys::object_ref_pk(object)))
                .expression_attribute_values(":prefix", s(keys::STATE_SK_PREFIX))
                .set_projection_expression(keys_only.then(|| format!("sk, {WRITTEN_CLEAR}")))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::dynamo("Query", e))?;
            for item in out.items() {
                if !each(item)? {
                    return Ok(false);
                }
            }
            match out.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(true),
            }
        }
    }

    /// One state value, as stored now.
    pub async fn get(
        &self,
        object: &ObjectRef,
        name: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        self.item(object, keys::state_sk(name))
            .await?
            .as_ref()
            .and_then(|i| get_s(i, "value"))
            .map(|v| {
                serde_json::from_str(v).map_err(|e| StoreError::Corrupt {
                    pk: keys::object_ref_pk(object),
                    sk: keys::state_sk(name),
                    reason: format!("value is not JSON: {e}"),
                })
            })
            .transpose()
    }

    /// Every state item of `object` (keys and values), page by page; stops early and returns
    /// `None` once more than `budget` bytes were read (then the state is read key by key).
    pub async fn load(
        &self,
        object: &ObjectRef,
        budget: Option<usize>,
    ) -> Result<Option<EagerState>, StoreError> {
        let mut state = EagerState {
            values: Default::default(),
            complete: true,
        };
        let mut size = 0usize;
        let whole = self
            .walk_state(object, false, |item| {
                let (Some(sk), Some(value)) = (get_s(item, keys::SK), get_s(item, "value")) else {
                    return Ok(true);
                };
                size += sk.len() + value.len();
                if budget.is_some_and(|b| size > b) {
                    return Ok(false);
                }
                let value = serde_json::from_str(value).map_err(|e| StoreError::Corrupt {
                    pk: keys::object_ref_pk(object),
                    sk: sk.to_owned(),
                    reason: format!("value is not JSON: {e}"),
                })?;
                let name = sk.trim_start_matches(keys::STATE_SK_PREFIX).to_owned();
                state.values.insert(name, value);
                Ok(true)
            })
            .await?;
        Ok(whole.then_some(state))
    }

    /// Writes one state change of a running workflow's `run` as it records it (journal entry
    /// `version`; `None` clears the key), so the workflow's shared handlers see its progress
    /// before it finishes. One transaction: the write applies only while `owner` (the
    /// invocation at its epoch) still runs, so an attempt that lost its invocation (or one
    /// that finished) cannot write, and an older change never overwrites a newer one. The
    /// finish writes the final state as for any keyed handler. `false` if it did not apply.
    pub async fn write_through(
        &self,
        object: &ObjectRef,
        name: &str,
        value: Option<&serde_json::Value>,
        version: u32,
        owner: (&durable_protocol::InvocationId, u64),
    ) -> Result<bool, StoreError> {
        use aws_sdk_dynamodb::types::{ConditionCheck, TransactWriteItem, Update};
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(keys::meta_key_item(owner.0)))
            .condition_expression(crate::conditional::OWNED);
        let check = crate::conditional::bind_owned(check, owner.1)
            .build()
            .map_err(crate::conditional::build_err)?;
        let update = Update::builder()
            .table_name(&self.table)
            .key(keys::PK, s(keys::object_ref_pk(object)))
            .key(keys::SK, s(keys::state_sk(name)))
            .condition_expression(format!(
                "attribute_not_exists({WRITTEN_AT_ENTRY}) OR {WRITTEN_AT_ENTRY} <= :version"
            ))
            .expression_attribute_values(":version", crate::attrs::n(version))
            .expression_attribute_values(
                ":now",
                crate::attrs::n(durable_protocol::clock::now_millis()),
            )
            .expression_attribute_names("#v", "value");
        let update = match value {
            Some(v) => update
                .update_expression(format!(
                    "SET #v = :value, updated_at = :now, {WRITTEN_AT_ENTRY} = :version REMOVE {WRITTEN_CLEAR}"
                ))
                .expression_attribute_values(":value", s(v.to_string())),
            None => update
                .update_expression(format!(
                    "SET updated_at = :now, {WRITTEN_AT_ENTRY} = :version, {WRITTEN_CLEAR} = :t REMOVE #v"
                ))
                .expression_attribute_values(":t", AttributeValue::Bool(true)),
        }
        .build()
        .map_err(crate::conditional::build_err)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().condition_check(check).build())
            .transact_items(TransactWriteItem::builder().update(update).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .and_then(crate::conditional::failed_conditions)
                    .is_some() =>
            {
                Ok(false) // not owned any more, or a newer change is there already
            }
            Err(e) => Err(StoreError::dynamo("TransactWriteItems", e)),
        }
    }

    /// The names of every state key of `object`.
    pub async fn names(&self, object: &ObjectRef) -> Result<Vec<String>, StoreError> {
        self.names_of(object, false).await
    }

    /// The names of every state item of `object`, also of keys a running workflow cleared
    /// (what a finish that clears all state deletes).
    pub async fn stored_names(&self, object: &ObjectRef) -> Result<Vec<String>, StoreError> {
        self.names_of(object, true).await
    }

    async fn names_of(
        &self,
        object: &ObjectRef,
        with_cleared: bool,
    ) -> Result<Vec<String>, StoreError> {
        let mut names = Vec::new();
        self.walk_state(object, true, |item| {
            // A key a running workflow cleared is gone for readers (its item goes at the finish).
            if !with_cleared && item.contains_key(WRITTEN_CLEAR) {
                return Ok(true);
            }
            if let Some(sk) = get_s(item, keys::SK) {
                names.push(sk.trim_start_matches(keys::STATE_SK_PREFIX).to_owned());
            }
            Ok(true)
        })
        .await?;
        Ok(names)
    }

    /// Gives every promise of a workflow whose `run` finished the TTL `expires_at` (epoch
    /// seconds): nobody waits for them any more, and they go with the run's own items.
    pub async fn expire_promises(
        &self,
        object: &ObjectRef,
        expires_at: u64,
    ) -> Result<usize, StoreError> {
        let mut start = None;
        let mut count = 0;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
                .expression_attribute_values(":pk", s(keys::object_ref_pk(object)))
                .expression_attribute_values(":p", s(keys::PROMISE_SK_PREFIX))
                .projection_expression("pk, sk")
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::dynamo("Query", e))?;
            for item in out.items() {
                self.client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(item.clone()))
                    .update_expression("SET expires_at = :exp")
                    .expression_attribute_values(":exp", crate::attrs::n(expires_at))
                    .send()
                    .await
                    .map_err(|e| StoreError::dynamo("UpdateItem", e))?;
                count += 1;
            }
            start = out.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                return Ok(count);
            }
        }
    }

    /// The result of a promise, if it has one.
    pub async fn peek(
        &self,
        object: &ObjectRef,
        name: &str,
    ) -> Result<Option<StepResult>, StoreError> {
        match self.item(object, keys::promise_sk(name)).await? {
            Some(item) => read_result(&item, "result_"),
            None => Ok(None),
        }
    }

    /// Registers journal entry `waiter` as waiting for the promise, unless it has a result:
    /// then the result is returned and nothing is registered. One conditional update, so a
    /// completion either sees the waiter or the waiter sees the result.
    pub async fn wait(
        &self,
        object: &ObjectRef,
        name: &str,
        waiter: &Waiter,
    ) -> Result<Option<StepResult>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(keys::PK, s(keys::object_ref_pk(object)))
            .key(keys::SK, s(keys::promise_sk(name)))
            .update_expression("ADD waiters :w")
            .condition_expression(
                "attribute_not_exists(result_value) AND attribute_not_exists(result_failure_code)",
            )
            .expression_attribute_values(":w", AttributeValue::Ss(vec![waiter.encode()]))
            .send()
            .await;
        match result {
            Ok(_) => Ok(None),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                self.peek(object, name).await
            }
            Err(e) => Err(StoreError::dynamo("UpdateItem", e)),
        }
    }

    /// Completes the promise with `result` unless it has a result already (the first
    /// completion wins). `by` names the completer, so that a completer that retries can tell
    /// its own earlier completion from somebody else's.
    pub async fn complete(
        &self,
        object: &ObjectRef,
        name: &str,
        result: &StepResult,
        by: &str,
    ) -> Result<PromiseCompletion, StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(keys::PK, s(keys::object_ref_pk(object)))
            .key(keys::SK, s(keys::promise_sk(name)))
            .condition_expression(
                "attribute_not_exists(result_value) AND attribute_not_exists(result_failure_code)",
            )
            .expression_attribute_values(":by", s(by))
            .expression_attribute_values(
                ":now",
                crate::attrs::n(durable_protocol::clock::now_millis()),
            )
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            );
        update = match result {
            StepResult::Value(v) => update
                .update_expression("SET result_value = :v, completed_by = :by, completed_at = :now")
                .expression_attribute_values(":v", s(v.to_string())),
            StepResult::Failure(f) => update
                .update_expression(
                    "SET result_failure_code = :c, result_failure_message = :m, completed_by = :by, completed_at = :now",
                )
                .expression_attribute_values(":c", crate::attrs::n(f.code))
                .expression_attribute_values(":m", s(f.message.clone())),
        };
        match update.send().await {
            Ok(out) => Ok(PromiseCompletion::Completed {
                waiters: out.attributes.as_ref().map(waiters).unwrap_or_default(),
            }),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(c)) => {
                    let old = c.item().cloned().unwrap_or_default();
                    let result =
                        read_result(&old, "result_")?.ok_or_else(|| StoreError::Corrupt {
                            pk: keys::object_ref_pk(object),
                            sk: keys::promise_sk(name),
                            reason: "completed without a result".into(),
                        })?;
                    Ok(PromiseCompletion::AlreadyCompleted {
                        result,
                        by: get_s(&old, "completed_by").unwrap_or_default().to_owned(),
                        waiters: waiters(&old),
                    })
                }
                _ => Err(StoreError::dynamo("UpdateItem", e)),
            },
        }
    }
}
