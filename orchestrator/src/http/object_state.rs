//! `GET /objects/{service}/{key}`: a virtual object's (or workflow's) state, the invocation
//! holding its lock and the exclusive invocations queued for it.

use crate::error::OrchestratorError;
use crate::http::{ApiError, FunctionUrlResponse};
use crate::services::Services;
use durable_protocol::keyed::ObjectRef;
use durable_protocol::views::{ObjectView, QueuedView, StateView};
use durable_protocol::{ObjectKey, ServiceKind, ServiceName};

impl Services {
    /// Answers what is stored for object `key` of `service`.
    pub(crate) async fn object_state(
        &self,
        service: &ServiceName,
        key: &ObjectKey,
    ) -> Result<FunctionUrlResponse, ApiError> {
        let registration = self
            .registry
            .lookup(service)
            .await
            .map_err(OrchestratorError::from)?
            .ok_or_else(|| {
                ApiError::not_found(
                    "unknown_service",
                    format!("no service {service} is registered"),
                )
            })?;
        if registration.kind == ServiceKind::Service {
            return Err(ApiError::bad_request(
                "not_keyed",
                format!("{service} is a service: only objects and workflows have state"),
            ));
        }
        let object = ObjectRef {
            service: service.clone(),
            key: key.clone(),
        };
        let snap = self
            .objects
            .snapshot(&object)
            .await
            .map_err(OrchestratorError::from)?;
        let mut state = Vec::with_capacity(snap.state.len());
        for (name, value) in &snap.state {
            state.push(StateView {
                name: name.clone(),
                value: self.value_view(value).await,
            });
        }
        Ok(FunctionUrlResponse::json(
            200,
            &ObjectView {
                service: service.to_string(),
                key: key.as_str().to_owned(),
                state,
                lock_holder: snap.holder,
                queue: snap
                    .queue
                    .into_iter()
                    .map(|(due_at, invocation_id)| QueuedView {
                        invocation_id,
                        due_at,
                    })
                    .collect(),
            },
        ))
    }
}
