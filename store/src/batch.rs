//! Batch reads: many items by key in as few requests as DynamoDB allows.

use crate::StoreError;

/// Reads the items at `keys` of `table` (eventually consistent), 100 per BatchGetItem; keys
/// left unprocessed (throttling) are asked for again a few times. Missing items are left out.
pub async fn batch_get(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    keys: Vec<crate::Item>,
) -> Result<Vec<crate::Item>, StoreError> {
    use aws_sdk_dynamodb::types::KeysAndAttributes;
    let mut found = Vec::new();
    for chunk in keys.chunks(100) {
        let mut keys_left = chunk.to_vec();
        for _ in 0..5 {
            if keys_left.is_empty() {
                break;
            }
            let request = KeysAndAttributes::builder()
                .set_keys(Some(keys_left))
                .build()
                .map_err(|e| StoreError::Dynamo {
                    operation: "BatchGetItem",
                    source: e.into(),
                })?;
            let out = client
                .batch_get_item()
                .request_items(table, request)
                .send()
                .await
                .map_err(|e| StoreError::dynamo("BatchGetItem", e))?;
            found.extend(
                out.responses
                    .and_then(|mut r| r.remove(table))
                    .unwrap_or_default(),
            );
            keys_left = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(table))
                .map(|k| k.keys)
                .unwrap_or_default();
        }
    }
    Ok(found)
}
