//! Large values in S3: offloading a value behind a reference, resolving references, presigned
//! downloads and the clean-up of an invocation's payloads.

use crate::keys;
use aws_sdk_s3::primitives::ByteStream;
use durable_protocol::payload::{as_ref, Limits, PayloadRef, REF_KEY};
use durable_protocol::InvocationId;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Errors of payload handling.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("the value is {size} bytes, over the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("a {size}-byte value must go to S3, but no payload bucket is configured")]
    NoBucket { size: usize },
    #[error("S3 {operation} of {key} failed: {message}")]
    S3 {
        operation: &'static str,
        key: String,
        message: String,
    },
    #[error("the payload {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads and writes large values.
#[derive(Debug, Clone)]
pub struct PayloadStore {
    s3: aws_sdk_s3::Client,
    bucket: Option<String>,
    limits: Limits,
}

impl PayloadStore {
    /// A store on `bucket` (`None`: values over the threshold are refused).
    pub fn new(s3: aws_sdk_s3::Client, bucket: Option<String>, limits: Limits) -> Self {
        Self { s3, bucket, limits }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The bucket, if any.
    pub fn bucket(&self) -> Option<&str> {
        self.bucket.as_deref()
    }

    /// Refuses a value whose serialized size is over the maximum.
    pub fn check_size(&self, size: usize) -> Result<(), PayloadError> {
        if size > self.limits.max_value_bytes {
            return Err(PayloadError::TooLarge {
                size,
                max: self.limits.max_value_bytes,
            });
        }
        Ok(())
    }

    /// `value` as it should be stored: itself when small, else a reference to the S3 object
    /// `payloads/<scope>/<slot>/<sha256>` written here (idempotently).
    pub async fn offload(
        &self,
        scope: &InvocationId,
        slot: &str,
        value: serde_json::Value,
    ) -> Result<serde_json::Value, PayloadError> {
        self.offload_under("payloads", scope, slot, value).await
    }

    /// Like [`PayloadStore::offload`], for an invocation's output: kept under `outputs/` so it
    /// outlives the invocation's other payloads for the retention period.
    pub async fn offload_output(
        &self,
        scope: &InvocationId,
        value: serde_json::Value,
    ) -> Result<serde_json::Value, PayloadError> {
        self.offload_under("outputs", scope, "output", value).await
    }

    async fn offload_under(
        &self,
        prefix: &str,
        scope: &InvocationId,
        slot: &str,
        value: serde_json::Value,
    ) -> Result<serde_json::Value, PayloadError> {
        if as_ref(&value).is_some() {
            return Ok(value);
        }
        let text = value.to_string();
        self.check_size(text.len())?;
        if text.len() <= self.limits.offload_bytes {
            return Ok(value);
        }
        let bucket = self
            .bucket
            .as_deref()
            .ok_or(PayloadError::NoBucket { size: text.len() })?;
        let sha256 = hex(&Sha256::digest(text.as_bytes()));
        let key = format!("{}{slot}/{sha256}", keys::payload_prefix(prefix, scope));
        let size = text.len() as u64;
        let result = self
            .s3
            .put_object()
            .bucket(bucket)
            .key(&key)
            .content_type("application/json")
            .if_none_match("*")
            .body(ByteStream::from(text.into_bytes()))
            .send()
            .await;
        match result {
            Ok(_) => {}
            // Already there: the key names its content, so it is the same value.
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => {}
            Err(e) => {
                return Err(PayloadError::S3 {
                    operation: "PutObject",
                    key,
                    message: aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
                })
            }
        }
        Ok(serde_json::json!({ REF_KEY: PayloadRef { key, size, sha256 } }))
    }

    /// The value a stored value stands for: fetched (and checked) if it is a reference.
    pub async fn resolve(
        &self,
        value: serde_json::Value,
    ) -> Result<serde_json::Value, PayloadError> {
        let Some(r) = as_ref(&value) else {
            return Ok(value);
        };
        let bytes = self.fetch(&r).await?;
        serde_json::from_slice(&bytes).map_err(|e| PayloadError::Corrupt {
            key: r.key,
            reason: e.to_string(),
        })
    }

    /// The bytes of a referenced value, checked against its hash.
    pub async fn fetch(&self, r: &PayloadRef) -> Result<Vec<u8>, PayloadError> {
        let bucket = self.bucket.as_deref().ok_or(PayloadError::NoBucket {
            size: r.size as usize,
        })?;
        let s3_err = |operation, e: String| PayloadError::S3 {
            operation,
            key: r.key.clone(),
            message: e,
        };
        let out = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(&r.key)
            .send()
            .await
            .map_err(|e| {
                s3_err(
                    "GetObject",
                    aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
                )
            })?;
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| s3_err("GetObject", e.to_string()))?
            .into_bytes()
            .to_vec();
        if hex(&Sha256::digest(&bytes)) != r.sha256 {
            return Err(PayloadError::Corrupt {
                key: r.key.clone(),
                reason: "content does not match its hash".into(),
            });
        }
        Ok(bytes)
    }

    /// A time-limited URL to download a referenced value (for outputs too large to answer inline).
    pub async fn presigned_url(
        &self,
        r: &PayloadRef,
        expires_in: Duration,
    ) -> Result<String, PayloadError> {
        let bucket = self.bucket.as_deref().ok_or(PayloadError::NoBucket {
            size: r.size as usize,
        })?;
        let config =
            aws_sdk_s3::presigning::PresigningConfig::expires_in(expires_in).map_err(|e| {
                PayloadError::S3 {
                    operation: "presign",
                    key: r.key.clone(),
                    message: e.to_string(),
                }
            })?;
        let request = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(&r.key)
            .presigned(config)
            .await
            .map_err(|e| PayloadError::S3 {
                operation: "presign",
                key: r.key.clone(),
                message: e.to_string(),
            })?;
        Ok(request.uri().to_string())
    }

    /// Deletes every payload of invocation `scope` (after it finished), but not its output.
    pub async fn delete_all(&self, scope: &InvocationId) -> Result<usize, PayloadError> {
        let Some(bucket) = self.bucket.as_deref() else {
            return Ok(0);
        };
        let prefix = keys::payload_prefix("payloads", scope);
        let err = |operation, e: String| PayloadError::S3 {
            operation,
            key: prefix.clone(),
            message: e,
        };
        let mut deleted = 0;
        let mut token = None;
        loop {
            let out = self
                .s3
                .list_objects_v2()
                .bucket(bucket)
                .prefix(&prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| {
                    err(
                        "ListObjectsV2",
                        aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
                    )
                })?;
            for object in out.contents() {
                if let Some(key) = object.key() {
                    self.s3
                        .delete_object()
                        .bucket(bucket)
                        .key(key)
                        .send()
                        .await
                        .map_err(|e| {
                            err(
                                "DeleteObject",
                                aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
                            )
                        })?;
                    deleted += 1;
                }
            }
            match out.next_continuation_token {
                Some(t) => token = Some(t),
                None => return Ok(deleted),
            }
        }
    }
}
