//! Lambda Function URL events (payload format 2.0) and their responses, reduced to what the
//! ingress reads and writes.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// An HTTP request as a Function URL delivers it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionUrlRequest {
    #[serde(default)]
    pub raw_path: String,
    #[serde(default)]
    pub raw_query_string: String,
    /// Header names arrive lower-cased; repeated headers are comma-joined.
    #[serde(default)]
    pub headers: HashMap<String, String>,
    pub body: Option<String>,
    #[serde(default)]
    pub is_base64_encoded: bool,
    pub request_context: RequestContext,
}

/// The part of the request context that carries the method.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RequestContext {
    pub http: HttpDescription,
}

/// Method and path as seen by the Function URL.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HttpDescription {
    pub method: String,
}

impl FunctionUrlRequest {
    /// A header by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The body bytes (decoding base64 when the Function URL encoded them).
    pub fn body_bytes(&self) -> Result<Vec<u8>, String> {
        match &self.body {
            None => Ok(Vec::new()),
            Some(b) if self.is_base64_encoded => aws_smithy_types::base64::decode(b)
                .map_err(|e| format!("body is not valid base64: {e}")),
            Some(b) => Ok(b.clone().into_bytes()),
        }
    }
}

/// An HTTP response in the Function URL format.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionUrlResponse {
    pub status_code: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
    pub is_base64_encoded: bool,
}

impl FunctionUrlResponse {
    /// A JSON response with `body` serialized.
    pub fn json(status_code: u16, body: &impl Serialize) -> Self {
        let mut headers = HashMap::new();
        headers.insert("content-type".into(), "application/json".into());
        Self {
            status_code,
            headers,
            body: serde_json::to_string(body).expect("reply bodies serialize"),
            is_base64_encoded: false,
        }
    }

    /// An `application/octet-stream` response of `bytes` (base64 on the wire, as Function
    /// URLs want binary bodies).
    pub fn bytes(status_code: u16, bytes: &[u8]) -> Self {
        let mut headers = HashMap::new();
        headers.insert("content-type".into(), "application/octet-stream".into());
        Self {
            status_code,
            headers,
            body: aws_smithy_types::base64::encode(bytes),
            is_base64_encoded: true,
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }
}
