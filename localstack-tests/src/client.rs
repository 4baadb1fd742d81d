//! An HTTP client for the orchestrator's Function URL in LocalStack.
//!
//! LocalStack serves Function URLs at `<id>.lambda-url.<region>.localhost.localstack.cloud`;
//! that name is resolved to the local gateway here, so no DNS is needed.

use crate::{Result, ToolError};
use std::net::SocketAddr;

/// An HTTP answer of the orchestrator.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub invocation_id: Option<String>,
    pub body: serde_json::Value,
    pub raw: String,
}

/// Calls the orchestrator over HTTP.
#[derive(Debug, Clone)]
pub struct OrchestratorClient {
    http: reqwest::Client,
    base: reqwest::Url,
}

impl OrchestratorClient {
    /// A client for the Function URL `url`, connecting to the local gateway.
    pub fn new(url: &str) -> Result<Self> {
        let base = reqwest::Url::parse(url)
            .map_err(|e| ToolError::Message(format!("bad Function URL {url}: {e}")))?;
        let gateway: SocketAddr = crate::deploy::clients::endpoint()
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .map_err(|e| {
                ToolError::Message(format!("AWS_ENDPOINT_URL is not http://<ip>:<port>: {e}"))
            })?;
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .timeout(std::time::Duration::from_secs(120));
        if let Some(host) = base.host_str() {
            builder = builder.resolve(host, gateway);
        }
        let http = builder
            .build()
            .map_err(|e| ToolError::Message(format!("http client: {e}")))?;
        Ok(Self { http, base })
    }

    /// Sends a request; `body` is sent as is (so tests can send malformed input).
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<Answer> {
        let url = self
            .base
            .join(path.trim_start_matches('/'))
            .map_err(|e| ToolError::Message(e.to_string()))?;
        let mut req = self.http.request(method, url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b.to_owned());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| ToolError::Message(format!("HTTP request failed: {e}")))?;
        let status = resp.status().as_u16();
        let invocation_id = resp
            .headers()
            .get("x-invocation-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let raw = resp
            .text()
            .await
            .map_err(|e| ToolError::Message(format!("reading the answer: {e}")))?;
        let body = serde_json::from_str(&raw).unwrap_or(serde_json::Value::Null);
        Ok(Answer {
            status,
            invocation_id,
            body,
            raw,
        })
    }

    /// `POST` of raw bytes as `application/octet-stream`: the status, the answer's content
    /// type and its bytes.
    pub async fn post_bytes(&self, path: &str, body: Vec<u8>) -> Result<(u16, String, Vec<u8>)> {
        let url = self
            .base
            .join(path.trim_start_matches('/'))
            .map_err(|e| ToolError::Message(e.to_string()))?;
        let resp = self
            .http
            .post(url)
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .map_err(|e| ToolError::Message(format!("HTTP request failed: {e}")))?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ToolError::Message(format!("reading the answer: {e}")))?;
        Ok((status, content_type, bytes.to_vec()))
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Answer> {
        self.request(reqwest::Method::GET, path, None, &[]).await
    }

    /// `POST` of a JSON body (given as text, sent as is) with optional extra headers.
    pub async fn post_json(
        &self,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Result<Answer> {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        self.request(reqwest::Method::POST, path, Some(body), &all)
            .await
    }

    /// `POST /{service}/{handler}` with a JSON input and an optional idempotency key.
    pub async fn invoke(
        &self,
        service: &str,
        handler: &str,
        input: &serde_json::Value,
        idempotency_key: Option<&str>,
    ) -> Result<Answer> {
        let key: Vec<(&str, &str)> = idempotency_key
            .map(|k| ("idempotency-key", k))
            .into_iter()
            .collect();
        self.post_json(&format!("/{service}/{handler}"), &input.to_string(), &key)
            .await
    }

    /// `GET /invocations/{id}/output`.
    pub async fn output(&self, id: &str) -> Result<Answer> {
        self.get(&format!("/invocations/{id}/output")).await
    }
}
