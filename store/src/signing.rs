//! The orchestrator's signing key, kept in the table under a key no handler is granted: made
//! at random by the first orchestrator that needs it, read once per process after that.

use crate::attrs::{get_s, s};
use crate::keys;
use crate::StoreError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::Client;
use durable_protocol::auth::SigningKey;

const KEY_ATTR: &str = "key";

/// The table's signing key: read it, or put a fresh one if there is none yet (conditionally,
/// so that two first readers end up with the same key).
pub async fn load_or_create(client: &Client, table: &str) -> Result<SigningKey, StoreError> {
    for _ in 0..3 {
        if let Some(key) = read(client, table).await? {
            return Ok(key);
        }
        let fresh = SigningKey::random();
        let mut item = keys::signing_key_item();
        item.insert(KEY_ATTR.to_owned(), s(fresh.to_hex()));
        let put = client
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match put {
            Ok(_) => return Ok(fresh),
            // Another orchestrator made it first: read that one.
            Err(e)
                if e.as_service_error()
                    .is_some_and(PutItemError::is_conditional_check_failed_exception) => {}
            Err(e) => return Err(StoreError::dynamo("PutItem", e)),
        }
    }
    Err(StoreError::Corrupt {
        pk: "sys".into(),
        sk: "signing-key".into(),
        reason: "the signing key could be neither read nor made".into(),
    })
}

async fn read(client: &Client, table: &str) -> Result<Option<SigningKey>, StoreError> {
    let out = client
        .get_item()
        .table_name(table)
        .set_key(Some(keys::signing_key_item()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| StoreError::dynamo("GetItem", e))?;
    let Some(item) = out.item else {
        return Ok(None);
    };
    let key = get_s(&item, KEY_ATTR).and_then(SigningKey::from_hex);
    key.map(Some).ok_or_else(|| StoreError::Corrupt {
        pk: "sys".into(),
        sk: "signing-key".into(),
        reason: "the stored signing key is not 64 hex digits".into(),
    })
}
