//! Raw bytes as a handler's input or output. The ingress turns an `application/octet-stream`
//! body into a [`Bytes`] input and answers a [`Bytes`] output as `application/octet-stream`;
//! in the journal, in calls and in S3 the bytes travel as the JSON object
//! `{"$durable_bytes": "<base64>"}`, so every other part of the engine stays JSON.

use base64::Engine as _;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The reserved key of the JSON form of raw bytes (a user value of exactly this shape is not
/// supported).
pub const BYTES_KEY: &str = "$durable_bytes";

/// Raw bytes, for handlers that take or return something other than JSON (an image, a PDF, a
/// protobuf message): `async fn thumbnail(ctx: Context, image: Bytes) -> Result<Bytes, _>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    /// The bytes of `value` if it is the JSON form of raw bytes.
    pub fn of_json(value: &serde_json::Value) -> Option<Self> {
        let object = value.as_object()?;
        if object.len() != 1 {
            return None;
        }
        let text = object.get(BYTES_KEY)?.as_str()?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()
            .map(Self)
    }

    /// The JSON form of these bytes.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ BYTES_KEY: base64::engine::general_purpose::STANDARD.encode(&self.0) })
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Bytes::of_json(&value).ok_or_else(|| {
            D::Error::custom(
                "expected raw bytes: send this handler's input as application/octet-stream",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_travel_as_tagged_base64_and_nothing_else_reads_as_bytes() {
        let bytes = Bytes(vec![0, 159, 146, 150, 255]);
        let json = serde_json::to_value(&bytes).unwrap();
        assert_eq!(json, serde_json::json!({"$durable_bytes": "AJ+Slv8="}));
        assert_eq!(serde_json::from_value::<Bytes>(json).unwrap(), bytes);
        let err = serde_json::from_value::<Bytes>(serde_json::json!({"a": 1})).unwrap_err();
        assert!(
            err.to_string().contains("application/octet-stream"),
            "{err}"
        );
        assert_eq!(Bytes::of_json(&serde_json::json!("AJ+Slv8=")), None);
        assert_eq!(
            Bytes::of_json(&serde_json::json!({"$durable_bytes": "AA==", "more": 1})),
            None
        );
    }
}
