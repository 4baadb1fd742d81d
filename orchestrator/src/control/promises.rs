//! `complete_promise` events: a handler resolves or rejects a workflow's promise, the way
//! `POST /{workflow}/{key}/promises/{name}/resolve` (or `/reject`) does. The sender does not
//! wait for the answer, so a promise completed already or a workflow never submitted is
//! reported, not an error; only a failure to record it is (Lambda then retries the event).

use crate::control::reports::{report, PromiseReport};
use crate::driver::LambdaCall;
use crate::error::OrchestratorError;
use crate::services::Services;
use durable_protocol::keyed::ObjectRef;
use durable_protocol::{InvocationId, StepResult};

impl Services {
    /// Completes promise `name` of `workflow` with `result` for invocation `by`.
    pub(crate) async fn complete_promise_event(
        &self,
        (workflow, name): (&ObjectRef, &str),
        result: &StepResult,
        by: &InvocationId,
        call: &LambdaCall,
    ) -> Result<serde_json::Value, OrchestratorError> {
        let promise = (&workflow.service, &workflow.key, name);
        let mut completed = self.complete_promise(promise, result, by.as_str()).await;
        if matches!(&completed, Err(e) if e.code == "unknown_workflow") {
            // The sender may have submitted the workflow just before (its send is recorded
            // before this event is sent, but its dispatch may come later): its children go
            // first, in program order, as that dispatch would create them; then once more.
            let journal = self.journal.load(by).await?;
            for child in self
                .create_undispatched(by, &journal, u32::MAX, call)
                .await?
            {
                self.send_event(&self.signing.drive(child)).await?;
            }
            completed = self.complete_promise(promise, result, by.as_str()).await;
        }
        let status = match completed {
            Ok(_) if matches!(result, StepResult::Value(_)) => "resolved",
            Ok(_) => "rejected",
            Err(e) if e.status < 500 => {
                tracing::warn!(%workflow, promise = name, %by, code = e.code, message = %e.message, "a handler's promise completion was refused");
                e.code
            }
            Err(e) => return Err(OrchestratorError::Protocol(e.message)),
        };
        tracing::info!(%workflow, promise = name, %by, status, "promise completed by a handler");
        report(&PromiseReport {
            workflow: workflow.to_string(),
            promise: name,
            status,
        })
    }
}
