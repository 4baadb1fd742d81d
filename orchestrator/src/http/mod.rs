//! HTTP routes of the Function URL: one module per kind of request, and the dispatch here.
//!
//! * [`function_url`]: Function URL events and responses.
//! * [`ingress`]: routing and validation (no I/O).
//! * [`invoke`]: invocations, and reads of their results.
//! * [`completions`]: awakeables and workflow promises completed from outside.
//! * [`manage`]: an operator's actions on an invocation (cancel, kill, pause, ...).
//! * [`query`]: the listing's query string, validated (no I/O).
//! * [`listing`]: `GET /invocations`, newest first.
//! * [`timeline`]: `GET /invocations/{id}`, the journal as a timeline.
//! * [`object_state`]: `GET /objects/{service}/{key}`.
//! * [`console`]: the web console page.
//! * [`replies`]: the typed bodies, and the answer for where an invocation got to.
//! * [`api_error`]: errors answered to callers.

pub mod api_error;
pub mod completions;
pub mod console;
pub mod function_url;
pub mod ingress;
pub mod invoke;
pub mod listing;
pub mod manage;
pub mod object_state;
pub mod query;
pub mod replies;
pub mod timeline;

pub use api_error::{ApiError, ErrorBody};
pub use function_url::{FunctionUrlRequest, FunctionUrlResponse};

use crate::driver::LambdaCall;
use crate::services::Services;
use ingress::{route, Route};
use invoke::InvokeParts;

impl Services {
    pub async fn http(&self, req: FunctionUrlRequest, call: &LambdaCall) -> FunctionUrlResponse {
        let result = match route(&req) {
            Err(e) => Err(e),
            Ok(Route::Invoke {
                service,
                rest,
                input,
                idempotency_key,
                traceparent,
                headers,
            }) => {
                self.invoke(
                    InvokeParts {
                        service,
                        rest,
                        input,
                        idempotency_key,
                        traceparent,
                        headers,
                    },
                    call,
                )
                .await
            }
            Ok(Route::WorkflowOutput {
                service,
                key,
                attach,
            }) => self.workflow_output(&service, &key, attach, call).await,
            Ok(Route::CompletePromise {
                service,
                key,
                name,
                result,
            }) => {
                self.complete_promise((&service, &key, &name), &result, "ingress")
                    .await
            }
            Ok(Route::Output { id }) => self.output(&id).await,
            Ok(Route::Attach { id }) => self.attach_http(&id, call).await,
            Ok(Route::CompleteAwakeable { id, result }) => {
                self.complete_awakeable(&id, &result, call).await
            }
            Ok(Route::HeartbeatAwakeable { id }) => self.heartbeat_awakeable(&id).await,
            Ok(Route::Manage { id, action }) => self.manage(&id, &action, call).await,
            Ok(Route::List(params)) => self.list(&params, call).await,
            Ok(Route::Describe { id }) => self.describe(&id).await,
            Ok(Route::Object { service, key }) => self.object_state(&service, &key).await,
            Ok(Route::Console { asset }) => console::console(asset.as_deref()),
        };
        result.unwrap_or_else(|e| e.response())
    }
}
