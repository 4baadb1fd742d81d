//! The orchestrator's entry point for every event: HTTP requests from the Function URL go to
//! [`crate::http`], control events to [`crate::control`]. Nothing else happens here.

use crate::doors::Door;
use crate::driver::LambdaCall;
use crate::error::OrchestratorError;
use crate::http::ApiError;
use crate::http::FunctionUrlRequest;
use crate::services::Services;
use durable_protocol::ControlEvent;

/// Everything the orchestrator needs, built once per Lambda process.
pub struct App {
    services: Services,
}

impl App {
    /// The orchestrator over its services (see [`Services::new`]).
    pub fn new(services: Services) -> Self {
        Self { services }
    }

    /// Handles one Lambda event.
    pub async fn handle(
        &self,
        event: serde_json::Value,
        call: &LambdaCall,
    ) -> Result<serde_json::Value, OrchestratorError> {
        let looks_like_http = event.get("requestContext").is_some();
        if looks_like_http != (call.door == Door::Url) {
            let reason = match call.door {
                Door::Url => "only HTTP requests come through the Function URL's alias",
                _ => "HTTP requests are served only through the Function URL",
            };
            return Err(refuse(call.door, reason));
        }
        if looks_like_http {
            let response = match serde_json::from_value::<FunctionUrlRequest>(event) {
                // Boxed: the entry points' futures nest deeply, and a box keeps the type (and
                // the Lambda runtime's future) small.
                Ok(req) => Box::pin(self.services.http(req, call)).await,
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
        match (&control, call.door) {
            (ControlEvent::Register { .. }, Door::Admin) => {}
            (ControlEvent::Register { .. }, _) => {
                return Err(refuse(
                    call.door,
                    "register is accepted only through the admin alias",
                ))
            }
            (_, Door::Admin) => {
                return Err(refuse(
                    call.door,
                    "the admin alias accepts administrative events only",
                ))
            }
            (event, _) if !self.services.signing.proves(event) => {
                let id = event.proven().map(|(id, ..)| id.to_string());
                tracing::warn!(door = ?call.door, invocation = ?id, "refused an event whose proof does not hold");
                return Err(OrchestratorError::Refused(
                    "the event's proof does not hold for its invocation".into(),
                ));
            }
            _ => {}
        }
        Box::pin(self.services.control(control, call)).await
    }
}

/// Logs why an event was refused and makes the error it is answered with.
fn refuse(door: Door, reason: &str) -> OrchestratorError {
    tracing::warn!(?door, reason, "refused an event");
    OrchestratorError::Refused(reason.to_owned())
}
