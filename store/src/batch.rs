//! Batch reads: many items by key in as few requests as DynamoDB allows, and every page of
//! a query.

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

/// Every item `query` matches, following its pages.
pub async fn query_all(
    query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
) -> Result<Vec<crate::Item>, StoreError> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = query
            .clone()
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query", e))?;
        items.extend(out.items.unwrap_or_default());
        match out.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return Ok(items),
        }
    }
}
