//! Attribute values: reading and writing the typed parts of an item, and the result codec
//! shared by journal entries and promises.

use crate::error::StoreError;
use aws_sdk_dynamodb::types::AttributeValue;
use durable_protocol::{StepResult, TerminalFailure};
use std::collections::HashMap;

/// The partition key attribute of the table.
pub const PK: &str = "pk";
/// The sort key attribute of the table.
pub const SK: &str = "sk";

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// Reads a string attribute.
pub fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// Reads a number attribute.
pub fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
}

/// A string attribute value.
pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// A number attribute value.
pub fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub fn corrupt(item: &Item, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        pk: get_s(item, PK).unwrap_or("?").to_owned(),
        sk: get_s(item, SK).unwrap_or("?").to_owned(),
        reason: reason.into(),
    }
}

pub fn put_result(item: &mut Item, prefix: &str, result: &StepResult) {
    match result {
        StepResult::Value(v) => {
            item.insert(format!("{prefix}value"), s(v.to_string()));
        }
        StepResult::Failure(f) => {
            item.insert(format!("{prefix}failure_code"), n(f.code));
            item.insert(format!("{prefix}failure_message"), s(f.message.clone()));
        }
    }
}

pub fn read_result(item: &Item, prefix: &str) -> Result<Option<StepResult>, StoreError> {
    if let Some(v) = get_s(item, &format!("{prefix}value")) {
        let value = serde_json::from_str(v)
            .map_err(|e| corrupt(item, format!("{prefix}value is not JSON: {e}")))?;
        return Ok(Some(StepResult::Value(value)));
    }
    Ok(get_n(item, &format!("{prefix}failure_code")).map(|code| {
        let message = get_s(item, &format!("{prefix}failure_message"))
            .unwrap_or_default()
            .to_owned();
        StepResult::Failure(TerminalFailure { code, message })
    }))
}
