//! Conditional writes: the one place that tells a failed condition from a failed request.

use crate::error::StoreError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::AttributeValue;

/// Sends a conditional update: `Ok(false)` when its condition did not hold.
pub async fn apply_update(
    update: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
) -> Result<bool, StoreError> {
    Ok(apply_update_returning(update).await?.is_some())
}

/// Sends a conditional update and returns what DynamoDB answered (the attributes it was asked
/// to return): `Ok(None)` when its condition did not hold.
pub async fn apply_update_returning(
    update: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
) -> Result<Option<aws_sdk_dynamodb::operation::update_item::UpdateItemOutput>, StoreError> {
    match update.send().await {
        Ok(out) => Ok(Some(out)),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(_))
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(StoreError::dynamo("UpdateItem", e)),
    }
}

/// The condition of every write by an invocation's owner: the epoch it owns is current and the
/// invocation runs. Binds `:e` (the epoch), `:running` and `#st` (see [`bind_owned`]).
pub const OWNED: &str = "epoch = :e AND #st = :running";

/// [`OWNED`] and a further condition.
pub fn owned_and(extra: &str) -> String {
    format!("{OWNED} AND {extra}")
}

/// The names and values [`OWNED`] refers to, for the owner at `epoch`.
pub fn owned_bindings(epoch: u64) -> OwnedBindings {
    OwnedBindings {
        names: [("#st", "status")],
        values: [
            (":e", crate::attrs::n(epoch)),
            (
                ":running",
                crate::attrs::s(durable_protocol::Status::Running.as_str()),
            ),
        ],
    }
}

/// What [`OWNED`] binds: attribute names and values, applied by [`bind_owned`].
pub struct OwnedBindings {
    /// `#st`.
    pub names: [(&'static str, &'static str); 1],
    /// `:e` and `:running`.
    pub values: [(&'static str, AttributeValue); 2],
}

/// Anything built with expression bindings: updates, condition checks and transaction parts.
pub trait Bindable: Sized {
    /// Binds an attribute name.
    fn name(self, placeholder: &str, name: &str) -> Self;
    /// Binds an attribute value.
    fn value(self, placeholder: &str, value: AttributeValue) -> Self;
}

macro_rules! bindable {
    ($($builder:ty),*) => {$(
        impl Bindable for $builder {
            fn name(self, placeholder: &str, name: &str) -> Self {
                self.expression_attribute_names(placeholder, name)
            }
            fn value(self, placeholder: &str, value: AttributeValue) -> Self {
                self.expression_attribute_values(placeholder, value)
            }
        }
    )*};
}

bindable!(
    aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    aws_sdk_dynamodb::types::builders::UpdateBuilder,
    aws_sdk_dynamodb::types::builders::ConditionCheckBuilder
);

/// `builder` with [`OWNED`]'s bindings for the owner at `epoch` (its condition is set by the
/// caller: [`OWNED`] or [`owned_and`]).
pub fn bind_owned<B: Bindable>(builder: B, epoch: u64) -> B {
    let bindings = owned_bindings(epoch);
    let builder = bindings
        .names
        .into_iter()
        .fold(builder, |b, (p, name)| b.name(p, name));
    bindings
        .values
        .into_iter()
        .fold(builder, |b, (p, value)| b.value(p, value))
}

/// A transaction part that could not be built (a missing key or expression: a bug here).
pub fn build_err(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Dynamo {
        operation: "TransactWriteItems",
        source: Box::new(e),
    }
}

/// Which parts of a cancelled transaction failed their condition, in the order they were sent;
/// `None` if the transaction failed for another reason.
pub fn failed_conditions(err: &TransactWriteItemsError) -> Option<Vec<bool>> {
    match err {
        TransactWriteItemsError::TransactionCanceledException(e) => Some(
            e.cancellation_reasons()
                .iter()
                .map(|r| r.code() == Some("ConditionalCheckFailed"))
                .collect(),
        ),
        _ => None,
    }
}
