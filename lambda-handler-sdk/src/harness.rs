//! The SDK's side of in-process test runners (feature `testing`): one attempt of an invocation
//! run by this crate's real replay code against stores the runner provides, with the children
//! it starts reported to the runner and step failures injected by it. The `durable-testing`
//! crate's `TestRunner` is built on this; handler authors use that, not this.

use crate::Endpoint;
use durable_protocol::{
    HandlerKind, HandlerName, HandlerResponse, InvokeRequest, ServiceKind, ServiceName,
};
use std::sync::Arc;

pub use crate::runtime::faults::StepFaults;
/// Where an attempt's calls and sends go, and who hears that it completed an entry of another
/// invocation (a workflow's promise): the orchestrator's part, played by the runner.
pub use crate::runtime::ops::Dispatcher as Children;
pub use durable_store::traits::{BoxFuture, HandlerStore, Payloads};

/// What an in-process attempt runs against.
pub struct AttemptParts {
    /// The invocation's journal, and its object's state and promises.
    pub store: Arc<dyn HandlerStore>,
    /// Large values.
    pub payloads: Arc<dyn Payloads>,
    /// Children and resumes.
    pub children: Arc<dyn Children>,
    /// Injected step failures, if any.
    pub faults: Option<Arc<dyn StepFaults>>,
}

impl Endpoint {
    /// Runs (or replays) one attempt of `req` in this process against `parts`, with no Lambda
    /// deadline; answers as the handler Lambda would answer the orchestrator.
    pub async fn run_attempt(&self, req: InvokeRequest, parts: AttemptParts) -> HandlerResponse {
        let AttemptParts {
            store,
            payloads,
            children,
            faults,
        } = parts;
        self.run_invocation_with(req, store, children, payloads, u64::MAX / 2, faults)
            .await
    }

    /// The kind of service `service` and of its handler `handler`, if this endpoint serves it.
    pub fn kind_of(
        &self,
        service: &ServiceName,
        handler: &HandlerName,
    ) -> Option<(ServiceKind, Option<HandlerKind>)> {
        let services = self.discover().services;
        let s = services.into_iter().find(|s| &s.name == service)?;
        let h = s.handlers.into_iter().find(|h| &h.name == handler)?;
        Some((s.kind, h.kind))
    }
}
