//! The orchestrator's entry point for every event: HTTP requests from the Function URL go to
//! [`crate::http`], control events to [`crate::control`]. Nothing else happens here.

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
        if event.get("requestContext").is_some() {
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
        Box::pin(self.services.control(control, call)).await
    }
}
