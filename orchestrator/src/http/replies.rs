//! What the ingress answers: the typed bodies, and the answer for where an invocation got to.

use crate::driver::Driven;
use crate::error::OrchestratorError;
use crate::http::ApiError;
use crate::http::FunctionUrlResponse;
use crate::services::Services;
use durable_protocol::{HandlerName, InvocationId, TerminalFailure};
use durable_store::invocations::Outcome;
use serde::Serialize;
use std::time::Duration;

/// Outputs in S3 up to this size are answered inline (a Lambda response holds 6 MB).
const INLINE_ANSWER_BYTES: usize = 5_000_000;
/// How long the download URL of a large output works.
const OUTPUT_URL_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// `202` for a one-way send: the invocation it started (or found).
#[derive(Debug, Serialize)]
pub struct Accepted<'a> {
    pub invocation_id: &'a InvocationId,
    /// `accepted` for a new invocation, else the status of the one found.
    pub status: &'a str,
}

/// `202` while an invocation is not finished: where to fetch its output later.
#[derive(Debug, Serialize)]
pub struct Pending<'a> {
    pub invocation_id: &'a InvocationId,
    pub status: &'a str,
    pub output: String,
}

/// `303` for an output too large to answer inline: a presigned download URL.
#[derive(Debug, Serialize)]
pub struct OutputUrl<'a> {
    pub invocation_id: &'a InvocationId,
    pub output_url: &'a str,
    pub size: u64,
}

/// `409` for `GET /invocations/{id}/output` before the invocation finished.
#[derive(Debug, Serialize)]
pub struct NotReady<'a> {
    pub code: &'static str,
    pub message: String,
    pub invocation_id: &'a InvocationId,
    pub status: &'a str,
}

/// The error body of an invocation that failed terminally.
#[derive(Debug, Serialize)]
pub struct Failure<'a> {
    /// `terminal_error`, or `non_determinism` for a replay that diverged.
    pub code: &'static str,
    pub message: &'a str,
    pub invocation_id: &'a InvocationId,
}

/// `200` for a completed promise (or one completed before with the same result).
#[derive(Debug, Serialize)]
pub struct PromiseCompleted<'a> {
    pub promise: &'a str,
    pub status: &'a str,
}

/// `200` for a resolved or rejected awakeable.
#[derive(Debug, Serialize)]
pub struct AwakeableCompleted<'a> {
    pub awakeable_id: String,
    pub status: &'a str,
}

/// The answer to a heartbeat: the awakeable's deadline now (ms since the Unix epoch).
#[derive(Debug, Serialize)]
pub struct AwakeableAlive<'a> {
    pub awakeable_id: String,
    pub status: &'a str,
    pub deadline_ms: u64,
}

impl Services {
    /// The HTTP answer for where an invocation got to; an output kept in S3 is answered inline
    /// when it fits in a Lambda response, else with `303 See Other` to a presigned download URL.
    pub(crate) async fn answer(&self, id: &InvocationId, driven: Driven) -> FunctionUrlResponse {
        let Driven::Finished(Outcome::Completed(output)) = &driven else {
            return respond(id, driven);
        };
        let Some(reference) = durable_protocol::payload::as_ref(output) else {
            return respond(id, driven);
        };
        // Only the invocation's own objects leave through the ingress: a reference a handler
        // made up to point elsewhere is not followed.
        if !durable_store::keys::owns_payload(id, &reference.key) {
            tracing::warn!(%id, key = %reference.key, "refused an output reference outside the invocation's prefixes");
            return ApiError::from(OrchestratorError::Protocol(format!(
                "the output of {id} refers to an object outside its prefixes"
            )))
            .response();
        }
        let result = if reference.size as usize <= INLINE_ANSWER_BYTES {
            match self.payloads.resolve(output.clone()).await {
                Ok(value) => return respond(id, Driven::Finished(Outcome::Completed(value))),
                Err(e) => Err(e),
            }
        } else {
            self.payloads
                .presigned_url(&reference, OUTPUT_URL_LIFETIME)
                .await
        };
        match result {
            Ok(url) => FunctionUrlResponse::json(
                303,
                &OutputUrl {
                    invocation_id: id,
                    output_url: &url,
                    size: reference.size,
                },
            )
            .with_header("location", url)
            .with_header("x-invocation-id", id.as_str()),
            Err(e) => ApiError::from(OrchestratorError::Protocol(e.to_string())).response(),
        }
    }
}

pub(crate) fn join(names: &[HandlerName]) -> String {
    names
        .iter()
        .map(HandlerName::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The HTTP answer for where an invocation got to.
pub(crate) fn respond(id: &InvocationId, driven: Driven) -> FunctionUrlResponse {
    let response = match driven {
        Driven::Finished(Outcome::Completed(output)) => {
            match durable_protocol::Bytes::of_json(&output) {
                Some(bytes) => FunctionUrlResponse::bytes(200, &bytes.0),
                None => FunctionUrlResponse::json(200, &output),
            }
        }
        Driven::Finished(Outcome::Failed(failure)) => failure_response(id, &failure),
        Driven::Running | Driven::Suspended | Driven::Paused => FunctionUrlResponse::json(
            202,
            &Pending {
                invocation_id: id,
                status: driven.name(),
                output: format!("/invocations/{id}/output"),
            },
        )
        .with_header("location", format!("/invocations/{id}/output")),
    };
    response.with_header("x-invocation-id", id.as_str())
}

pub(crate) fn failure_response(
    id: &InvocationId,
    failure: &TerminalFailure,
) -> FunctionUrlResponse {
    let status = if (400..=599).contains(&failure.code) {
        failure.code
    } else {
        500
    };
    let code = if failure.code == TerminalFailure::NON_DETERMINISM {
        "non_determinism"
    } else {
        "terminal_error"
    };
    FunctionUrlResponse::json(
        status,
        &Failure {
            code,
            message: &failure.message,
            invocation_id: id,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn responses_carry_status_code_and_id() {
        let id = InvocationId::random(&durable_protocol::ServiceName::new("svc").unwrap());
        let ok = respond(&id, Driven::Finished(Outcome::Completed(json!({"a": 1}))));
        assert_eq!(ok.status_code, 200);
        assert_eq!(ok.body, r#"{"a":1}"#);
        assert_eq!(ok.headers["x-invocation-id"], id.as_str());
        let raw = durable_protocol::Bytes(vec![0, 255, 7]).to_json();
        let bytes = respond(&id, Driven::Finished(Outcome::Completed(raw)));
        assert_eq!(bytes.headers["content-type"], "application/octet-stream");
        assert!(bytes.is_base64_encoded);
        assert_eq!(
            bytes.body, "AP8H",
            "the bytes themselves, base64 on the wire"
        );
        let failed = respond(
            &id,
            Driven::Finished(Outcome::Failed(TerminalFailure::new(409, "sold out"))),
        );
        assert_eq!(failed.status_code, 409);
        let body: serde_json::Value = serde_json::from_str(&failed.body).unwrap();
        assert_eq!(body["code"], "terminal_error");
        assert_eq!(body["message"], "sold out");
        let odd = respond(
            &id,
            Driven::Finished(Outcome::Failed(TerminalFailure::new(200, "?"))),
        );
        assert_eq!(odd.status_code, 500);
        let running = respond(&id, Driven::Running);
        assert_eq!(running.status_code, 202);
        assert!(running.headers["location"].ends_with("/output"));
    }
}
