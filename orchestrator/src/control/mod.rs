//! Control events: one module per kind, and the dispatch here.
//!
//! * [`register`]: registering a handler Lambda's services.
//! * [`awakeables`]: awakeables completed by handlers.
//! * [`promises`]: workflow promises completed by handlers.
//! * [`children`]: children cancelled by their parent's handler.
//! * [`drive`]: `drive`, `wake` and `resume`.
//! * [`dispatch`]: starting the children of calls and sends.
//! * [`sweep`]: re-driving invocations whose driver is gone.
//! * [`reports`]: the typed answers of control events.

pub mod awakeables;
pub mod children;
pub mod dispatch;
pub mod drive;
pub mod promises;
pub mod register;
pub mod reports;
pub mod sweep;

use crate::driver::LambdaCall;
use crate::error::OrchestratorError;
use crate::services::Services;
use durable_protocol::ControlEvent;

impl Services {
    /// Handles one control event (its door and proof already checked by `app`); answers a JSON
    /// report of what it did.
    pub async fn control(
        &self,
        control: ControlEvent,
        call: &LambdaCall,
    ) -> Result<serde_json::Value, OrchestratorError> {
        match control {
            ControlEvent::Register {
                function_arn,
                services,
                retention_secs,
            } => {
                self.register(&function_arn, services.as_deref(), retention_secs)
                    .await
            }
            ControlEvent::Drive { invocation_id, .. } => self.redrive(&invocation_id, call).await,
            ControlEvent::Wake {
                invocation_id,
                entry,
                ..
            } => self.wake(&invocation_id, entry, call).await,
            ControlEvent::Resume {
                invocation_id,
                entry,
                ..
            } => self.resume(&invocation_id, entry, call).await,
            ControlEvent::Dispatch {
                invocation_id,
                entry,
                ..
            } => self.dispatch_entry(&invocation_id, entry, call).await,
            ControlEvent::Sweep { minutes } => self.sweep(call, minutes).await,
            ControlEvent::CancelChild {
                invocation_id,
                entry,
                ..
            } => self.cancel_child_event(&invocation_id, entry, call).await,
            ControlEvent::CompleteAwakeable {
                awakeable_id,
                result,
            } => {
                self.complete_awakeable_event(&awakeable_id, &result, call)
                    .await
            }
            ControlEvent::CompletePromise {
                invocation_id,
                workflow,
                key,
                name,
                result,
                ..
            } => {
                let workflow = durable_protocol::keyed::ObjectRef {
                    service: workflow,
                    key,
                };
                self.complete_promise_event((&workflow, &name), &result, &invocation_id, call)
                    .await
            }
        }
    }
}
