//! Side effects the tests can count and observe: effect counters, once-only markers, and
//! values published for the test to read, all in the test table under `test#<run>`.

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_handler_sdk::HandlerError;
use serde::Deserialize;
use std::sync::OnceLock;

pub(crate) static DYNAMO: OnceLock<(aws_sdk_dynamodb::Client, String)> = OnceLock::new();

pub(crate) fn dynamo() -> &'static (aws_sdk_dynamodb::Client, String) {
    DYNAMO.get().expect("initialised in main")
}

/// Adds one to the side-effect counter of `step` in test run `run`; returns the new count.
pub(crate) async fn count_effect(run: &str, step: &str) -> Result<u64, HandlerError> {
    let (client, table) = dynamo();
    let out = client
        .update_item()
        .table_name(table)
        .key("pk", AttributeValue::S(format!("test#{run}")))
        .key("sk", AttributeValue::S(format!("effect#{step}")))
        .update_expression("ADD #c :one")
        .expression_attribute_names("#c", "count")
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
        .send()
        .await
        .map_err(|e| HandlerError::retryable(format!("counting a side effect failed: {e:?}")))?;
    Ok(out
        .attributes
        .and_then(|a| a.get("count").and_then(|c| c.as_n().ok()?.parse().ok()))
        .unwrap_or(0))
}

/// True exactly once per (run, marker): a conditional put decides, so a retry sees false.
pub(crate) async fn first_time(run: &str, marker: &str) -> Result<bool, HandlerError> {
    let (client, table) = dynamo();
    let result = client
        .put_item()
        .table_name(table)
        .item("pk", AttributeValue::S(format!("test#{run}")))
        .item("sk", AttributeValue::S(format!("marker#{marker}")))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(aws_sdk_dynamodb::operation::put_item::PutItemError::is_conditional_check_failed_exception) =>
        {
            Ok(false)
        }
        Err(e) => Err(HandlerError::retryable(format!(
            "marker write failed: {e:?}"
        ))),
    }
}

/// The input of handlers that only need their test run.
#[derive(Deserialize, serde::Serialize)]
pub(crate) struct RunOnly {
    pub(crate) run: String,
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Stores a value under `test#<run>` / `<sk>` for the test to read.
pub(crate) async fn publish(run: &str, sk: &str, value: &str) -> Result<(), HandlerError> {
    let (client, table) = dynamo();
    client
        .put_item()
        .table_name(table)
        .item("pk", AttributeValue::S(format!("test#{run}")))
        .item("sk", AttributeValue::S(sk.to_owned()))
        .item("value", AttributeValue::S(value.to_owned()))
        .send()
        .await
        .map_err(|e| HandlerError::retryable(format!("publish failed: {e:?}")))?;
    Ok(())
}

/// Whether the test wrote `test#<run>` / `<sk>`.
pub(crate) async fn published(run: &str, sk: &str) -> Result<bool, HandlerError> {
    let (client, table) = dynamo();
    let out = client
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(format!("test#{run}")))
        .key("sk", AttributeValue::S(sk.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| HandlerError::retryable(format!("read failed: {e:?}")))?;
    Ok(out.item.is_some())
}
