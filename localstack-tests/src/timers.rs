//! Firing a local deployment's pending durable timers now, through the real wake path, so a
//! test of a 3-day timeout does not wait 3 days: each timer's journal entry is moved to now,
//! the orchestrator gets the `wake` event its schedule carries (as EventBridge Scheduler
//! would send it), and the schedule is deleted.

use crate::deploy::clients::Clients;
use crate::deploy::Deployment;
use crate::{Result, ToolError};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_lambda::primitives::Blob;
use durable_protocol::clock::now_millis;
use durable_protocol::{ControlEvent, InvocationId};

/// A timer that was fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiredTimer {
    pub invocation_id: InvocationId,
    /// The sleep entry's index.
    pub entry: u32,
}

/// Fires every pending timer of `deployment` (of one invocation only, if `only` is given) now;
/// returns the timers fired. Delayed sends and other schedules are left alone.
pub async fn fire_timers_now(
    clients: &Clients,
    deployment: &Deployment,
    only: Option<&InvocationId>,
) -> Result<Vec<FiredTimer>> {
    let mut fired = Vec::new();
    for name in crate::crash::schedules_of(clients, &deployment.orchestrator_function).await {
        let Ok(schedule) = clients.scheduler.get_schedule().name(&name).send().await else {
            continue; // fired and deleted meanwhile
        };
        let Some(input) = schedule.target().map(|t| t.input().unwrap_or_default()) else {
            continue;
        };
        let Ok(event) = serde_json::from_str::<ControlEvent>(input) else {
            continue;
        };
        let ControlEvent::Wake {
            invocation_id,
            entry,
            ..
        } = &event
        else {
            continue;
        };
        if only.is_some_and(|id| id != invocation_id) {
            continue;
        }
        // The entry becomes due now, so the orchestrator's wake completes it at once.
        let moved = clients
            .dynamo
            .update_item()
            .table_name(&deployment.table)
            .set_key(Some(durable_store::keys::entry_key_item(
                invocation_id,
                *entry,
            )))
            .update_expression("SET wake_at = :now")
            .condition_expression("attribute_exists(wake_at)")
            .expression_attribute_values(":now", AttributeValue::N(now_millis().to_string()))
            .send()
            .await;
        if moved.is_err() {
            continue; // the invocation is gone (finished and cleaned up)
        }
        let out = clients
            .lambda
            .invoke()
            .function_name(&deployment.orchestrator_function)
            .payload(Blob::new(input.as_bytes().to_vec()))
            .send()
            .await
            .map_err(|e| ToolError::aws("Invoke", e))?;
        if let Some(error) = out.function_error {
            return Err(ToolError::Message(format!(
                "the orchestrator failed to wake timer {entry} of {invocation_id} ({error}): {}",
                String::from_utf8_lossy(&out.payload.map(Blob::into_inner).unwrap_or_default())
            )));
        }
        let _ = clients.scheduler.delete_schedule().name(&name).send().await;
        fired.push(FiredTimer {
            invocation_id: invocation_id.clone(),
            entry: *entry,
        });
    }
    Ok(fired)
}
