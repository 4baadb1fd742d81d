//! The store's errors.

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("DynamoDB {operation} failed: {source}")]
    Dynamo {
        operation: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("corrupt item {pk}/{sk}: {reason}")]
    Corrupt {
        pk: String,
        sk: String,
        reason: String,
    },
}

impl StoreError {
    /// Wraps an AWS SDK error with the operation it came from (keeping the service's own message).
    pub fn dynamo<E>(operation: &'static str, err: aws_sdk_dynamodb::error::SdkError<E>) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        // DisplayErrorContext keeps the service's error code and message, which Display alone drops.
        let source = aws_sdk_dynamodb::error::DisplayErrorContext(err)
            .to_string()
            .into();
        StoreError::Dynamo { operation, source }
    }
}
