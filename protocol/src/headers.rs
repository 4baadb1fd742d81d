//! The request headers an invocation hands to its handler (`ctx.headers()`) and to the children
//! it calls: what its HTTP caller sent, minus what belongs to the transport, to credentials or to
//! AWS, so nothing secret is stored and a plain request stores nothing at all.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// At most this many headers are kept for one invocation.
pub const MAX_HEADERS: usize = 32;
/// At most this many bytes of names and values are kept for one invocation.
pub const MAX_HEADER_BYTES: usize = 4096;

/// Headers that are never handed to a handler: the transport's, credentials, the trace context
/// (carried as the invocation's trace) and the idempotency key (its own attribute).
const DROPPED: &[&str] = &[
    "accept",
    "accept-encoding",
    "accept-language",
    "authorization",
    "cache-control",
    "connection",
    "content-encoding",
    "content-length",
    "content-type",
    "cookie",
    "expect",
    "forwarded",
    "host",
    "idempotency-key",
    "keep-alive",
    "origin",
    "pragma",
    "proxy-authorization",
    "referer",
    "te",
    "traceparent",
    "tracestate",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "via",
];

/// Name prefixes that are never handed to a handler (AWS's and the proxies').
const DROPPED_PREFIXES: &[&str] = &["x-amz", "x-forwarded-", "sec-", "proxy-"];

/// An invocation's headers: lower-case names, in name order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Headers(BTreeMap<String, String>);

/// Why a request's headers cannot be kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadersError {
    #[error("at most {MAX_HEADERS} headers are handed to a handler; this request has {0}")]
    TooMany(usize),
    #[error(
        "at most {MAX_HEADER_BYTES} bytes of headers are handed to a handler; this request has {0}"
    )]
    TooLarge(usize),
}

impl Headers {
    /// The headers of a request (`(name, value)` pairs) a handler may see: names lower-cased,
    /// transport, credential and AWS headers left out, within the limits.
    pub fn from_request<'a>(
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, HeadersError> {
        let kept: BTreeMap<String, String> = headers
            .into_iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value))
            .filter(|(name, _)| is_handed_on(name))
            .map(|(name, value)| (name, value.to_owned()))
            .collect();
        if kept.len() > MAX_HEADERS {
            return Err(HeadersError::TooMany(kept.len()));
        }
        let bytes: usize = kept.iter().map(|(n, v)| n.len() + v.len()).sum();
        if bytes > MAX_HEADER_BYTES {
            return Err(HeadersError::TooLarge(bytes));
        }
        Ok(Self(kept))
    }

    /// The value of header `name` (any case), if it was sent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    /// Every header, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

fn is_handed_on(name: &str) -> bool {
    !DROPPED.contains(&name) && !DROPPED_PREFIXES.iter().any(|p| name.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handler_sees_its_callers_own_headers_and_nothing_secret_or_technical() {
        let headers = Headers::from_request([
            ("X-Tenant", "acme"),
            ("x-request-id", "r-1"),
            ("Authorization", "Bearer secret"),
            ("cookie", "s=1"),
            ("content-type", "application/json"),
            ("x-amzn-trace-id", "Root=1"),
            ("x-forwarded-for", "10.0.0.1"),
            ("traceparent", "00-..."),
        ])
        .unwrap();
        assert_eq!(
            headers.iter().collect::<Vec<_>>(),
            vec![("x-request-id", "r-1"), ("x-tenant", "acme")]
        );
        assert_eq!(headers.get("X-TENANT"), Some("acme"));
        assert!(
            Headers::from_request([("host", "x"), ("user-agent", "curl")])
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            serde_json::to_value(&headers).unwrap(),
            serde_json::json!({"x-request-id": "r-1", "x-tenant": "acme"})
        );
    }

    #[test]
    fn too_many_or_too_large_headers_are_refused() {
        let names: Vec<String> = (0..=MAX_HEADERS).map(|i| format!("x-h{i}")).collect();
        let many = names.iter().map(|n| (n.as_str(), "v"));
        assert_eq!(
            Headers::from_request(many),
            Err(HeadersError::TooMany(MAX_HEADERS + 1))
        );
        let big = "v".repeat(MAX_HEADER_BYTES);
        assert!(matches!(
            Headers::from_request([("x-big", big.as_str())]),
            Err(HeadersError::TooLarge(_))
        ));
    }
}
