//! The items of virtual objects and workflows that handlers and the orchestrator both touch:
//! state (`s#<name>`, read here, written by the orchestrator when an invocation finishes) and
//! durable promises (`p#<name>`: a result, written once, and the journal entries waiting on it).

use crate::envelope::EagerState;
use crate::ids::{InvocationId, ObjectKey, ServiceName};
use crate::journal::StepResult;
use crate::store::{get_s, keys, read_result, s, Item, StoreError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;

/// The largest state value or promise result, in bytes of JSON: both live in one DynamoDB item
/// (400 KB at most), with room for the attributes around them.
pub const MAX_VALUE_BYTES: usize = 300 * 1024;

/// State up to this size (in bytes of JSON) is pushed with the invocation; larger state is read
/// key by key when the handler asks.
pub const EAGER_STATE_BYTES: usize = 64 * 1024;

/// Longest state key or promise name, in bytes.
pub const MAX_NAME_BYTES: usize = 200;

/// One object or workflow instance: a service and a key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectRef {
    pub service: ServiceName,
    pub key: ObjectKey,
}

impl ObjectRef {
    /// The partition key of its items.
    pub fn pk(&self) -> String {
        keys::object_pk(&self.service, &self.key)
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.service, self.key)
    }
}

/// Why a state key or promise name was refused.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("a {what} must not be empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!("a {what} is at most {MAX_NAME_BYTES} bytes"));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("a {what} must not contain control characters"));
    }
    Ok(())
}

/// How completing a promise went.
#[derive(Debug, Clone, PartialEq)]
pub enum PromiseCompletion {
    /// This completion took; these journal entries wait for it.
    Completed { waiters: Vec<Waiter> },
    /// The promise had a result already (kept), completed by `by`; its waiters are listed so
    /// that a retried completion can make sure they were told.
    AlreadyCompleted {
        result: StepResult,
        by: String,
        waiters: Vec<Waiter>,
    },
}

/// A journal entry waiting for a promise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiter {
    pub invocation: InvocationId,
    pub index: u32,
}

impl Waiter {
    fn encode(&self) -> String {
        format!("{}:{}", self.invocation, self.index)
    }

    fn decode(text: &str) -> Option<Self> {
        let (id, index) = text.split_once(':')?;
        Some(Self {
            invocation: InvocationId::parse(id).ok()?,
            index: index.parse().ok()?,
        })
    }
}

fn waiters(item: &Item) -> Vec<Waiter> {
    item.get("waiters")
        .and_then(|v| v.as_ss().ok())
        .map(|set| set.iter().filter_map(|w| Waiter::decode(w)).collect())
        .unwrap_or_default()
}

/// Reads state and reads and completes promises.
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
            .key(keys::PK, s(object.pk()))
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
                .expression_attribute_values(":pk", s(object.pk()))
                .expression_attribute_values(":prefix", s(keys::STATE_SK_PREFIX))
                .set_projection_expression(keys_only.then(|| "sk".to_owned()))
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
                    pk: object.pk(),
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
                    pk: object.pk(),
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

    /// The names of every state key of `object`.
    pub async fn names(&self, object: &ObjectRef) -> Result<Vec<String>, StoreError> {
        let mut names = Vec::new();
        self.walk_state(object, true, |item| {
            if let Some(sk) = get_s(item, keys::SK) {
                names.push(sk.trim_start_matches(keys::STATE_SK_PREFIX).to_owned());
            }
            Ok(true)
        })
        .await?;
        Ok(names)
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
            .key(keys::PK, s(object.pk()))
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
            .key(keys::PK, s(object.pk()))
            .key(keys::SK, s(keys::promise_sk(name)))
            .condition_expression(
                "attribute_not_exists(result_value) AND attribute_not_exists(result_failure_code)",
            )
            .expression_attribute_values(":by", s(by))
            .expression_attribute_values(":now", crate::store::n(crate::store::now_millis()))
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
                .expression_attribute_values(":c", crate::store::n(f.code))
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
                            pk: object.pk(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_round_trip() {
        let w = Waiter {
            invocation: InvocationId::random(),
            index: 7,
        };
        assert_eq!(Waiter::decode(&w.encode()), Some(w));
        assert_eq!(Waiter::decode("nope"), None);
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("state key", "count").is_ok());
        assert!(check_name("state key", "").is_err());
        assert!(check_name("state key", &"x".repeat(201)).is_err());
        assert!(check_name("state key", "a\nb").is_err());
    }
}
