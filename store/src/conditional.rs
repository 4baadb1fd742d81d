//! Conditional writes: the one place that tells a failed condition from a failed request.

use crate::error::StoreError;

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
