//! `complete_awakeable` events: a handler completes an awakeable whose id it was given, the
//! way `POST /awakeables/{id}/resolve` (or `/reject`) does. The sender does not wait for the
//! answer, so an awakeable completed already or unknown is reported, not an error; only a
//! failure to record it is (Lambda then retries the event).

use crate::control::reports::{report, AwakeableReport};
use crate::driver::LambdaCall;
use crate::error::OrchestratorError;
use crate::services::Services;
use durable_protocol::auth::AwakeableId;
use durable_protocol::StepResult;

impl Services {
    /// Completes awakeable `id` with `result`, resuming its waiter.
    pub(crate) async fn complete_awakeable_event(
        &self,
        id: &AwakeableId,
        result: &StepResult,
        call: &LambdaCall,
    ) -> Result<serde_json::Value, OrchestratorError> {
        let status = match self.complete_awakeable(id, result, call).await {
            Ok(_) if matches!(result, StepResult::Value(_)) => "resolved",
            Ok(_) => "rejected",
            Err(e) if e.status == 409 => "already_completed",
            Err(e) if e.status == 404 => "unknown_awakeable",
            Err(e) if e.status < 500 => {
                tracing::warn!(awakeable = %id, code = e.code, message = %e.message, "a handler's awakeable completion was refused");
                e.code
            }
            Err(e) => return Err(OrchestratorError::Protocol(e.message)),
        };
        tracing::info!(awakeable = %id, status, "awakeable completed by a handler");
        report(&AwakeableReport {
            awakeable_id: id.to_string(),
            status,
        })
    }
}
