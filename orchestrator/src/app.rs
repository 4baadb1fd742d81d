//! The orchestrator's entry point for every event: HTTP requests from the Function URL and
//! control events (registration, hand-offs).

use crate::config::Config;
use crate::driver::{ControlEvent, Driven, Driver, LEASE_MARGIN};
use crate::error::{ApiError, OrchestratorError};
use crate::http::{FunctionUrlRequest, FunctionUrlResponse};
use crate::ingress::{route, Route};
use crate::invocations::{Created, Invocation, InvocationStore, NewInvocation, Outcome, Status};
use crate::registry::{pin_version, Registration, Registry};
use aws_sdk_lambda::primitives::Blob;
use durable_protocol::store::{now_millis, JournalStore};
use durable_protocol::{
    DiscoveryResponse, HandlerName, HandlerRequest, IdempotencyKey, InvocationId, ServiceName,
    TerminalFailure, PROTOCOL_VERSION,
};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// How long before its own deadline a call stops waiting and answers 202.
const ANSWER_MARGIN: Duration = Duration::from_secs(2);

/// Everything the orchestrator needs, built once per Lambda process.
pub struct App {
    registry: Registry,
    invocations: InvocationStore,
    driver: Driver,
}

impl App {
    /// Builds the orchestrator from its settings and AWS clients.
    pub fn new(
        config: Config,
        dynamo: aws_sdk_dynamodb::Client,
        lambda: aws_sdk_lambda::Client,
    ) -> Self {
        let config = Arc::new(config);
        let invocations = InvocationStore::new(dynamo.clone(), config.table.clone());
        Self {
            registry: Registry::new(dynamo.clone(), config.table.clone()),
            invocations: invocations.clone(),
            driver: Driver {
                journal: JournalStore::new(dynamo, config.table.clone()),
                config,
                lambda,
                invocations,
            },
        }
    }

    /// Handles one Lambda event. `deadline_ms` is this call's deadline.
    pub async fn handle(
        &self,
        event: serde_json::Value,
        deadline_ms: u64,
    ) -> Result<serde_json::Value, OrchestratorError> {
        if event.get("requestContext").is_some() {
            let response = match serde_json::from_value::<FunctionUrlRequest>(event) {
                Ok(req) => self.http(req, deadline_ms).await,
                Err(e) => ApiError::bad_request(
                    "invalid_request",
                    format!("not a Function URL request: {e}"),
                )
                .response(),
            };
            return serde_json::to_value(response)
                .map_err(|e| OrchestratorError::Protocol(e.to_string()));
        }
        let control: ControlEvent = serde_json::from_value(event).map_err(|e| {
            OrchestratorError::Protocol(format!(
                "unknown event (neither HTTP nor a control event): {e}"
            ))
        })?;
        match control {
            ControlEvent::Register { function_arn } => self.register(&function_arn).await,
            ControlEvent::Drive { invocation_id } => self.resume(&invocation_id, deadline_ms).await,
        }
    }

    async fn http(&self, req: FunctionUrlRequest, deadline_ms: u64) -> FunctionUrlResponse {
        let result = match route(&req) {
            Err(e) => Err(e),
            Ok(Route::Invoke {
                service,
                handler,
                input,
                idempotency_key,
            }) => {
                self.invoke(service, handler, input, idempotency_key, deadline_ms)
                    .await
            }
            Ok(Route::Output { id }) => self.output(&id).await,
        };
        result.unwrap_or_else(|e| e.response())
    }

    async fn invoke(
        &self,
        service: ServiceName,
        handler: HandlerName,
        input: serde_json::Value,
        idempotency_key: Option<IdempotencyKey>,
        deadline_ms: u64,
    ) -> Result<FunctionUrlResponse, ApiError> {
        let reg = self
            .registry
            .lookup(&service)
            .await
            .map_err(OrchestratorError::from)?
            .ok_or_else(|| {
                ApiError::not_found(
                    "unknown_service",
                    format!("no service named {service} is registered"),
                )
            })?;
        if !reg.has_handler(&handler) {
            return Err(ApiError::not_found(
                "unknown_handler",
                format!(
                    "service {service} has no handler {handler}; it has: {}",
                    join(&reg.handlers)
                ),
            ));
        }
        let id = match &idempotency_key {
            Some(key) => InvocationId::for_idempotency_key(&service, &handler, key),
            None => InvocationId::random(),
        };
        let new = NewInvocation {
            id: id.clone(),
            service,
            handler,
            function_arn: reg.function_arn,
            input,
            idempotency_key,
            lease_until: deadline_ms + LEASE_MARGIN.as_millis() as u64,
        };
        let driven = match self
            .invocations
            .create(&new)
            .await
            .map_err(OrchestratorError::from)?
        {
            Created::New(inv) => self.driver.drive(inv, deadline_ms, true).await?,
            Created::Existing(inv) => self.attach(inv, deadline_ms).await?,
        };
        Ok(respond(&id, driven))
    }

    /// An existing invocation: its outcome if finished; else drive it if its driver is gone,
    /// or wait for it while this call has time.
    async fn attach(
        &self,
        mut inv: Invocation,
        deadline_ms: u64,
    ) -> Result<Driven, OrchestratorError> {
        let mut pause = Duration::from_millis(50);
        loop {
            if let Some(outcome) = inv.outcome.clone() {
                return Ok(Driven::Finished(outcome));
            }
            if inv.lease_until < now_millis() {
                let lease = deadline_ms + LEASE_MARGIN.as_millis() as u64;
                if self.invocations.take_over(&mut inv, lease).await? {
                    tracing::info!(id = %inv.id, epoch = inv.epoch, "took over an invocation whose driver is gone");
                    return self.driver.drive(inv, deadline_ms, false).await;
                }
            }
            if now_millis() + (pause + ANSWER_MARGIN).as_millis() as u64 > deadline_ms {
                return Ok(Driven::Running);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
            inv = self.invocations.get(&inv.id).await?.ok_or_else(|| {
                OrchestratorError::Protocol(format!("invocation {} disappeared", inv.id))
            })?;
        }
    }

    async fn output(&self, id: &InvocationId) -> Result<FunctionUrlResponse, ApiError> {
        let inv = self
            .invocations
            .get(id)
            .await
            .map_err(OrchestratorError::from)?
            .ok_or_else(|| {
                ApiError::not_found("unknown_invocation", format!("no invocation {id}"))
            })?;
        match (inv.status, inv.outcome) {
            (Status::Running, _) | (_, None) => Ok(FunctionUrlResponse::json(
                409,
                &json!({"code": "not_ready", "message": format!("invocation {id} is still running"), "invocation_id": id}),
            )
            .with_header("x-invocation-id", id.as_str())),
            (_, Some(outcome)) => Ok(respond(id, Driven::Finished(outcome))),
        }
    }

    async fn resume(
        &self,
        id: &InvocationId,
        deadline_ms: u64,
    ) -> Result<serde_json::Value, OrchestratorError> {
        let Some(inv) = self.invocations.get(id).await? else {
            return Ok(json!({"invocation_id": id, "status": "unknown"}));
        };
        let driven = self.attach(inv, deadline_ms).await?;
        Ok(
            json!({"invocation_id": id, "status": match driven { Driven::Finished(_) => "finished", Driven::Running => "running" }}),
        )
    }

    /// Asks a handler Lambda what it serves and records it, pinned to the version that answered.
    async fn register(&self, function_arn: &str) -> Result<serde_json::Value, OrchestratorError> {
        let lambda_err = |e: String| OrchestratorError::Lambda {
            operation: "Invoke",
            message: e,
        };
        let payload = serde_json::to_vec(&HandlerRequest::Discover)
            .map_err(|e| OrchestratorError::Protocol(e.to_string()))?;
        let out = self
            .driver
            .lambda
            .invoke()
            .function_name(function_arn)
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(|e| lambda_err(aws_sdk_lambda::error::DisplayErrorContext(&e).to_string()))?;
        let body = out.payload.map(Blob::into_inner).unwrap_or_default();
        if let Some(fe) = out.function_error {
            return Err(lambda_err(format!(
                "discovery failed ({fe}): {}",
                String::from_utf8_lossy(&body)
            )));
        }
        let discovery: DiscoveryResponse = serde_json::from_slice(&body).map_err(|e| {
            OrchestratorError::Protocol(format!(
                "{function_arn} did not answer discovery like a durable handler: {e}"
            ))
        })?;
        if discovery.protocol_version != PROTOCOL_VERSION {
            return Err(OrchestratorError::Protocol(format!(
                "{function_arn} speaks protocol {}, this orchestrator speaks {PROTOCOL_VERSION}",
                discovery.protocol_version
            )));
        }
        if discovery.services.is_empty() {
            return Err(OrchestratorError::Protocol(format!(
                "{function_arn} serves no services"
            )));
        }
        let pinned = pin_version(function_arn, out.executed_version.as_deref());
        let mut registered = Vec::new();
        for service in discovery.services {
            let reg = Registration {
                service: service.name,
                kind: service.kind,
                function_arn: pinned.clone(),
                handlers: service.handlers.into_iter().map(|h| h.name).collect(),
            };
            self.registry.put(&reg).await?;
            tracing::info!(service = %reg.service, arn = %reg.function_arn, "registered");
            registered.push(json!({"service": reg.service, "function_arn": reg.function_arn, "handlers": reg.handlers}));
        }
        Ok(json!({ "registered": registered }))
    }
}

fn join(names: &[HandlerName]) -> String {
    names
        .iter()
        .map(HandlerName::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The HTTP answer for where an invocation got to.
fn respond(id: &InvocationId, driven: Driven) -> FunctionUrlResponse {
    let response = match driven {
        Driven::Finished(Outcome::Completed(output)) => FunctionUrlResponse::json(200, &output),
        Driven::Finished(Outcome::Failed(failure)) => failure_response(id, &failure),
        Driven::Running => FunctionUrlResponse::json(
            202,
            &json!({"invocation_id": id, "status": "running", "output": format!("/invocations/{id}/output")}),
        )
        .with_header("location", format!("/invocations/{id}/output")),
    };
    response.with_header("x-invocation-id", id.as_str())
}

fn failure_response(id: &InvocationId, failure: &TerminalFailure) -> FunctionUrlResponse {
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
        &json!({"code": code, "message": failure.message, "invocation_id": id}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_carry_status_code_and_id() {
        let id = InvocationId::random();
        let ok = respond(&id, Driven::Finished(Outcome::Completed(json!({"a": 1}))));
        assert_eq!(ok.status_code, 200);
        assert_eq!(ok.body, r#"{"a":1}"#);
        assert_eq!(ok.headers["x-invocation-id"], id.as_str());
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
