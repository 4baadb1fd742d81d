//! `POST /{service}/{handler}` and its keyed forms, and the reads of an invocation's result
//! (`output`, `attach`, and a workflow's by its key).

use crate::driver::{Driven, LambdaCall, Push, Wait, LEASE_MARGIN};
use crate::error::OrchestratorError;
use crate::http::ingress::resolve_target;
use crate::http::replies;
use crate::http::replies::join;
use crate::http::ApiError;
use crate::http::FunctionUrlResponse;
use crate::services::Services;
use durable_protocol::clock::now_millis;
use durable_protocol::crash_point;
use durable_protocol::{
    HandlerKind, IdempotencyKey, InvocationId, ObjectKey, ServiceKind, ServiceName,
};
use durable_store::invocations::{Created, Invocation, NewInvocation};
use durable_store::registry::Registration;
use durable_store::PayloadError;

/// The validated parts of an invocation request.
pub(crate) struct InvokeParts {
    pub(crate) service: ServiceName,
    pub(crate) rest: Vec<String>,
    pub(crate) input: serde_json::Value,
    pub(crate) idempotency_key: Option<IdempotencyKey>,
    /// The caller's W3C trace context (`traceparent` header), if it sent a valid one.
    pub(crate) traceparent: Option<durable_protocol::trace::TraceParent>,
    /// The headers its handler sees.
    pub(crate) headers: durable_protocol::Headers,
}

impl Services {
    pub(crate) async fn invoke(
        &self,
        req: InvokeParts,
        call: &LambdaCall,
    ) -> Result<FunctionUrlResponse, ApiError> {
        let InvokeParts {
            service,
            rest,
            input,
            idempotency_key,
            traceparent,
            headers,
        } = req;
        let reg = self.registration(&service).await?;
        let target = resolve_target(&service, reg.kind, &rest, |h| reg.kind_of(h))?;
        let (key, handler, handler_kind, send) =
            (target.key, target.handler, target.handler_kind, target.send);
        if !reg.has_handler(&handler) {
            return Err(ApiError::not_found(
                "unknown_handler",
                format!(
                    "service {service} has no handler {handler}; it has: {}",
                    join(&reg.handlers)
                ),
            ));
        }
        let id = match (&key, handler_kind, &idempotency_key) {
            // A workflow runs once per key: submitting it again finds the first run.
            (Some(key), Some(HandlerKind::Workflow), _) => {
                InvocationId::for_workflow(&service, key)
            }
            (Some(key), _, Some(idem)) => {
                InvocationId::for_keyed_idempotency_key(&service, key, &handler, idem)
            }
            (None, _, Some(idem)) => InvocationId::for_idempotency_key(&service, &handler, idem),
            // A plain service's invocation is dated: the sweep finds it by its minute, with no
            // `leases` index entry until it outlives that minute.
            (None, _, None) => InvocationId::dated(&service, now_millis()),
            // Keyed ones wait in their object's inbox and use the index when they run.
            (Some(_), _, None) => InvocationId::random(&service),
        };
        let input = self.offload(&id, "input", input).await?;
        let new = NewInvocation {
            id: id.clone(),
            service,
            handler,
            function_arn: reg.function_arn,
            retention: reg.retention,
            input,
            idempotency_key,
            lease_until: call.deadline_ms + LEASE_MARGIN.as_millis() as u64,
            // A one-way send is driven by a fresh call, which takes it over at once.
            released: send,
            caller: None,
            key,
            handler_kind,
            traceparent,
            headers,
        };
        // `owned`: this call created the invocation and may run it now (a one-way send runs
        // in a fresh call). An exclusive arrival is owned only if it got its object's lock.
        let (created, owned) = if handler_kind == Some(HandlerKind::Exclusive) {
            self.arrive(&new, now_millis(), (!send).then_some(call))
                .await?
        } else {
            let created = self
                .invocations
                .create(&new)
                .await
                .map_err(OrchestratorError::from)?;
            let owned = matches!(created, Created::New(_));
            if let Created::New(inv) = &created {
                self.started(inv);
            }
            (created, owned)
        };
        crash_point!("ingress.created");
        if matches!(created, Created::New(_))
            && durable_protocol::payload::as_ref(&new.input).is_some()
        {
            self.journal
                .flag_payloads(&id)
                .await
                .map_err(OrchestratorError::from)?;
        }
        if send {
            let status = match &created {
                Created::New(_) => "accepted",
                Created::Existing(inv) => inv.status.as_str(),
            };
            if owned {
                crash_point!("ingress.send.before");
                self.send_event(&self.signing.drive(id.clone())).await?;
            }
            return Ok(FunctionUrlResponse::json(
                202,
                &replies::Accepted {
                    invocation_id: &id,
                    status,
                },
            )
            .with_header("x-invocation-id", id.as_str())
            .with_header("location", format!("/invocations/{id}/output")));
        }
        let driven = match created {
            Created::New(inv) if owned => self.drive(inv, call, Push::First).await?,
            // Queued for its object's lock (or existing): wait for it, driving it if it is
            // granted the lock while this call waits.
            Created::New(inv) | Created::Existing(inv) => {
                self.attach(inv, call, Wait::ForOutcome).await?
            }
        };
        // Suspended (or handed off): other calls drive it on; answer when it finishes, if this
        // call has the time.
        let driven = match driven {
            Driven::Finished(_) => driven,
            _ => {
                self.attach(self.existing(&id).await?, call, Wait::ForOutcome)
                    .await?
            }
        };
        crash_point!("ingress.answer.before");
        Ok(self.answer(&id, driven).await)
    }

    /// `GET /{workflow}/{key}/output|attach`: the workflow's result by its key.
    pub(crate) async fn workflow_output(
        &self,
        service: &ServiceName,
        key: &ObjectKey,
        attach: bool,
        call: &LambdaCall,
    ) -> Result<FunctionUrlResponse, ApiError> {
        let id = self.submitted_workflow(service, key).await?;
        if attach {
            self.attach_http(&id, call).await
        } else {
            self.output(&id).await
        }
    }

    /// The registration of `service`, or `404 unknown_service`.
    async fn registration(&self, service: &ServiceName) -> Result<Registration, ApiError> {
        self.registry
            .lookup(service)
            .await
            .map_err(OrchestratorError::from)?
            .ok_or_else(|| {
                ApiError::not_found(
                    "unknown_service",
                    format!("no service named {service} is registered"),
                )
            })
    }

    pub(crate) async fn workflow_registration(
        &self,
        service: &ServiceName,
    ) -> Result<Registration, ApiError> {
        let reg = self.registration(service).await?;
        if reg.kind != ServiceKind::Workflow {
            return Err(ApiError::bad_request(
                "not_a_workflow",
                format!("{service} is not a workflow"),
            ));
        }
        Ok(reg)
    }

    pub(crate) async fn output(&self, id: &InvocationId) -> Result<FunctionUrlResponse, ApiError> {
        let inv = self.existing(id).await?;
        match inv.outcome {
            None => Ok(FunctionUrlResponse::json(
                409,
                &replies::NotReady {
                    code: "not_ready",
                    message: format!("invocation {id} is {}", inv.status.as_str()),
                    invocation_id: id,
                    status: inv.status.as_str(),
                },
            )
            .with_header("x-invocation-id", id.as_str())),
            Some(outcome) => Ok(self.answer(id, Driven::Finished(outcome)).await),
        }
    }

    pub(crate) async fn existing(&self, id: &InvocationId) -> Result<Invocation, ApiError> {
        self.invocations
            .get(id)
            .await
            .map_err(OrchestratorError::from)?
            .ok_or_else(|| ApiError::not_found("unknown_invocation", format!("no invocation {id}")))
    }

    pub(crate) async fn attach_http(
        &self,
        id: &InvocationId,
        call: &LambdaCall,
    ) -> Result<FunctionUrlResponse, ApiError> {
        let inv = self.existing(id).await?;
        let driven = self.attach(inv, call, Wait::ForOutcome).await?;
        Ok(self.answer(id, driven).await)
    }

    /// A value from a caller as the invocation `scope` stores it: refused with 413 over the
    /// maximum, in S3 over the offload threshold.
    /// The run of workflow `service` at `key`, if that key was submitted (`404
    /// unknown_workflow` if not, or if `service` is no workflow).
    pub(crate) async fn submitted_workflow(
        &self,
        service: &ServiceName,
        key: &ObjectKey,
    ) -> Result<InvocationId, ApiError> {
        self.workflow_registration(service).await?;
        let id = InvocationId::for_workflow(service, key);
        let run = self
            .invocations
            .get(&id)
            .await
            .map_err(OrchestratorError::from)?;
        match run {
            Some(_) => Ok(id),
            None => Err(ApiError::not_found(
                "unknown_workflow",
                format!("workflow {service} has no run for key {key}"),
            )),
        }
    }

    pub(crate) async fn offload(
        &self,
        scope: &InvocationId,
        slot: &str,
        value: serde_json::Value,
    ) -> Result<serde_json::Value, ApiError> {
        match self.payloads.offload(scope, slot, value).await {
            Ok(v) => Ok(v),
            Err(PayloadError::TooLarge { size, max }) => Err(ApiError::new(
                413,
                "payload_too_large",
                format!("the value is {size} bytes; the limit is {max} bytes"),
            )),
            Err(e) => Err(OrchestratorError::Protocol(e.to_string()).into()),
        }
    }
}
