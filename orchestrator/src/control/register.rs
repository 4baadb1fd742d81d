//! `register`: asking a handler Lambda what it serves and pinning its services to the version
//! that answered.

use crate::control::reports as replies;
use crate::error::OrchestratorError;
use crate::services::Services;
use aws_sdk_lambda::primitives::Blob;
use durable_protocol::{
    DiscoveryResponse, HandlerKind, HandlerRequest, ServiceKind, ServiceName, PROTOCOL_VERSION,
};
use durable_store::registry::{pin_version, Registration};

impl Services {
    /// Asks a handler Lambda what it serves and records it, pinned to the version that answered.
    /// With `allowed`, a Lambda that serves any other service is refused and nothing is
    /// recorded.
    pub(crate) async fn register(
        &self,
        function_arn: &str,
        allowed: Option<&[ServiceName]>,
        retention_secs: Option<u64>,
    ) -> Result<serde_json::Value, OrchestratorError> {
        let retention = retention_secs.map(checked_retention).transpose()?;
        let (discovery, executed_version) = self.discover(function_arn).await?;
        if let Some(allowed) = allowed {
            let extra: Vec<&str> = discovery
                .services
                .iter()
                .filter(|s| !allowed.contains(&s.name))
                .map(|s| s.name.as_str())
                .collect();
            if !extra.is_empty() {
                tracing::warn!(
                    function_arn,
                    ?extra,
                    "refused a registration beyond its services"
                );
                return Err(OrchestratorError::Refused(format!(
                    "{function_arn} serves {} but may serve only {}",
                    extra.join(", "),
                    allowed
                        .iter()
                        .map(ServiceName::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        let pinned = pin_version(function_arn, executed_version.as_deref());
        let mut registered = Vec::new();
        for service in discovery.services {
            let reg = Registration {
                service: service.name,
                kind: service.kind,
                function_arn: pinned.clone(),
                kinds: service
                    .handlers
                    .iter()
                    .filter_map(|h| Some((h.name.clone(), h.kind?)))
                    .collect(),
                handlers: service.handlers.into_iter().map(|h| h.name).collect(),
                retention,
            };
            self.registry.put(&reg).await?;
            tracing::info!(service = %reg.service, arn = %reg.function_arn, "registered");
            registered.push(replies::RegisteredService {
                service: reg.service,
                function_arn: reg.function_arn,
                handlers: reg.handlers,
                retention_secs: reg.retention.unwrap_or(self.config.retention).as_secs(),
            });
        }
        replies::report(&replies::Registered { registered })
    }
}

/// The shortest and longest retention a registration may set: a minute (the sweep's and the
/// listing's granularity) and ten years.
pub const RETENTION_RANGE_SECS: std::ops::RangeInclusive<u64> = 60..=10 * 365 * 86_400;

/// A registration's retention, if it is within [`RETENTION_RANGE_SECS`].
fn checked_retention(secs: u64) -> Result<std::time::Duration, OrchestratorError> {
    if RETENTION_RANGE_SECS.contains(&secs) {
        Ok(std::time::Duration::from_secs(secs))
    } else {
        Err(OrchestratorError::Refused(format!(
            "retention_secs must be between {} and {}, not {secs}",
            RETENTION_RANGE_SECS.start(),
            RETENTION_RANGE_SECS.end()
        )))
    }
}

impl Services {
    /// Asks a handler Lambda (`function_arn`, any qualifier) what it serves, checked for
    /// this orchestrator's protocol and the kinds' rules; with the version that answered.
    pub(crate) async fn discover(
        &self,
        function_arn: &str,
    ) -> Result<(DiscoveryResponse, Option<String>), OrchestratorError> {
        let lambda_err = |e: String| OrchestratorError::Lambda {
            operation: "Invoke",
            message: e,
        };
        let payload = serde_json::to_vec(&HandlerRequest::Discover)
            .map_err(|e| OrchestratorError::Protocol(e.to_string()))?;
        let out = self
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
        for service in &discovery.services {
            check_kinds(service).map_err(|e| {
                OrchestratorError::Protocol(format!("{function_arn} serves {}: {e}", service.name))
            })?;
        }
        Ok((discovery, out.executed_version))
    }
}

/// Objects give every handler a kind; a workflow has one `run` (its workflow handler) and
/// shared handlers; services give none.
fn check_kinds(service: &durable_protocol::ServiceDescriptor) -> Result<(), String> {
    let kinds: Vec<Option<HandlerKind>> = service.handlers.iter().map(|h| h.kind).collect();
    match service.kind {
        ServiceKind::Service if kinds.iter().any(Option::is_some) => {
            Err("a service's handlers have no kinds".into())
        }
        ServiceKind::Object
            if kinds
                .iter()
                .any(|k| !matches!(k, Some(HandlerKind::Exclusive | HandlerKind::Shared))) =>
        {
            Err("an object's handlers are exclusive or shared".into())
        }
        ServiceKind::Workflow => {
            let runs: Vec<&str> = service
                .handlers
                .iter()
                .filter(|h| h.kind == Some(HandlerKind::Workflow))
                .map(|h| h.name.as_str())
                .collect();
            if runs != ["run"] {
                return Err("a workflow has exactly one workflow handler, named run".into());
            }
            if kinds.iter().any(Option::is_none) {
                return Err("a workflow's other handlers are shared".into());
            }
            if kinds.contains(&Some(HandlerKind::Exclusive)) {
                return Err("a workflow has no exclusive handlers".into());
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retention_outside_its_range_is_refused() {
        assert_eq!(checked_retention(60).unwrap().as_secs(), 60);
        assert_eq!(checked_retention(7 * 86_400).unwrap().as_secs(), 604_800);
        for bad in [0, 59, 10 * 365 * 86_400 + 1] {
            let err = checked_retention(bad).unwrap_err();
            assert!(
                matches!(&err, OrchestratorError::Refused(m) if m.contains("retention_secs")),
                "{err}"
            );
        }
    }
}
