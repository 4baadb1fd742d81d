//! `cancel_child` events: a handler cancels the child of one of its calls or sends
//! (`ctx.cancel(child)`), cooperatively, as `POST /invocations/{child}/cancel` does. The proof
//! names the parent's entry, and the child is the one that entry names, so a handler can only
//! cancel its own children.

use crate::control::reports::{report, CancelChildReport};
use crate::driver::{LambdaCall, Transition};
use crate::error::OrchestratorError;
use crate::services::Services;
use durable_protocol::InvocationId;

impl Services {
    /// Cancels the child of entry `index` of `parent`. A child whose dispatch has not arrived
    /// yet is created here first (its dispatch then finds it), so the cancellation never
    /// misses it; a finished child is reported, not an error (the sender does not wait).
    pub(crate) async fn cancel_child_event(
        &self,
        parent: &InvocationId,
        index: u32,
        call: &LambdaCall,
    ) -> Result<serde_json::Value, OrchestratorError> {
        let refused = |status: &'static str| {
            report(&CancelChildReport {
                invocation_id: parent,
                entry: index,
                child: None,
                status,
            })
        };
        let Some(entry) = self.journal.entry(parent, index).await? else {
            tracing::warn!(%parent, index, "cancel of the child of an unknown entry");
            return refused("unknown_entry");
        };
        let Some(child) = entry.kind.child().cloned() else {
            return refused("not_a_call_or_send");
        };
        let mut created = None;
        if self.invocations.get(&child).await?.is_none() {
            created = self.create_child(parent, &entry, 0, call).await?;
        }
        let status = match self.cancel(&child, call).await? {
            Transition::Applied(s) | Transition::Refused(s) => s.as_str(),
            Transition::Unknown => "unknown_child",
        };
        if let Some(created) = created {
            // Created here with no lease: drive it now, and its first step sees the cancel.
            self.send_event(&self.signing.drive(created.id)).await?;
        }
        tracing::info!(%parent, index, %child, status, "child cancelled by its parent");
        report(&CancelChildReport {
            invocation_id: parent,
            entry: index,
            child: Some(&child),
            status,
        })
    }
}
