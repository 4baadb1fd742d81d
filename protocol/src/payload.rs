//! Large values in S3. A value over the offload threshold is stored as an S3 object and
//! replaced, wherever it would be stored or sent, by a small reference:
//! `{"$durable_payload": {"key", "size", "sha256"}}`. The object key holds the content hash
//! (`payloads/<invocation>/<slot>/<sha256>`), so a retried write puts the same bytes under the
//! same key and two racing attempts with different values can never leave a reference pointing
//! at the other's bytes. References are resolved lazily, when a value is actually needed.

use serde::{Deserialize, Serialize};

/// The reserved key that marks a reference (a user value of exactly this shape is not supported).
pub const REF_KEY: &str = "$durable_payload";
/// Default threshold above which values go to S3 (well under DynamoDB's 400 KB items).
pub const DEFAULT_OFFLOAD_BYTES: usize = 64 * 1024;
/// Default largest value accepted anywhere.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 32 * 1024 * 1024;

/// Where a large value lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadRef {
    pub key: String,
    pub size: u64,
    pub sha256: String,
}

/// Offload settings, as the orchestrator decides them (and passes to handlers in each push).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Values larger than this (serialized) go to S3.
    pub offload_bytes: usize,
    /// Values larger than this are refused.
    pub max_value_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            offload_bytes: DEFAULT_OFFLOAD_BYTES,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
        }
    }
}

/// Whether `value` has the shape of a reference (checked without decoding it), so that an
/// inline value skips the payload store altogether.
pub fn is_ref(value: &serde_json::Value) -> bool {
    value
        .as_object()
        .is_some_and(|obj| obj.len() == 1 && obj.contains_key(REF_KEY))
}

/// The reference inside `value`, if it is one.
pub fn as_ref(value: &serde_json::Value) -> Option<PayloadRef> {
    let obj = value.as_object()?;
    if obj.len() != 1 {
        return None;
    }
    serde_json::from_value(obj.get(REF_KEY)?.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_recognised_exactly() {
        let r = serde_json::json!({REF_KEY: {"key": "payloads/x/y/z", "size": 3, "sha256": "ab"}});
        assert_eq!(as_ref(&r).unwrap().size, 3);
        assert!(
            as_ref(&serde_json::json!({REF_KEY: {"key": "k"}})).is_none(),
            "incomplete"
        );
        assert!(as_ref(
            &serde_json::json!({REF_KEY: {"key": "k", "size": 1, "sha256": "a"}, "x": 1})
        )
        .is_none());
        assert!(as_ref(&serde_json::json!("plain")).is_none());
    }
}
