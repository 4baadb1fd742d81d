//! `POST /invocations/{id}/cancel|kill|pause|resume|retry|restart`: an operator's actions,
//! answered with the invocation's status afterwards (`404` for an unknown id, `409` with the
//! current status for an action that does not apply).

use crate::driver::{LambdaCall, Transition};
use crate::http::ingress::Action;
use crate::http::{ApiError, FunctionUrlResponse};
use crate::lifecycle::Restart;
use crate::services::Services;
use durable_protocol::InvocationId;

/// The answer of an action that applied.
#[derive(Debug, serde::Serialize)]
pub struct Managed<'a> {
    pub invocation_id: &'a InvocationId,
    pub action: &'static str,
    pub status: &'static str,
    /// A restart: the entry it runs again from, and how many entries it deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_entry: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_entries: Option<usize>,
}

impl Services {
    /// Applies `action` to invocation `id`.
    pub(crate) async fn manage(
        &self,
        id: &InvocationId,
        action: &Action,
        call: &LambdaCall,
    ) -> Result<FunctionUrlResponse, ApiError> {
        let name = action.as_str();
        let transition = match action {
            Action::Cancel => self.cancel(id, call).await?,
            Action::Kill => self.kill(id, call).await?,
            Action::Pause => self.pause(id).await?,
            Action::Retry => self.retry_now(id).await?,
            Action::Resume { version } => self
                .resume_paused(id, version.as_ref())
                .await?
                .map_err(|why| ApiError::bad_request("invalid_version", why))?,
            Action::Restart { from_entry } => {
                return match self.restart(id, *from_entry).await? {
                    Restart::From { entry, deleted } => Ok(FunctionUrlResponse::json(
                        200,
                        &Managed {
                            invocation_id: id,
                            action: name,
                            status: durable_protocol::Status::Running.as_str(),
                            from_entry: Some(entry),
                            deleted_entries: Some(deleted),
                        },
                    )),
                    Restart::Unknown => Err(unknown(id)),
                    Restart::Refused(status, why) => Err(ApiError::invalid_transition(status, why)),
                    Restart::BadEntry { asked, entries } => Err(ApiError::bad_request(
                        "invalid_entry",
                        format!(
                            "{id} has {entries} journal entries; from_entry {asked} is past its end"
                        ),
                    )),
                };
            }
        };
        match transition {
            Transition::Applied(status) => Ok(FunctionUrlResponse::json(
                200,
                &Managed {
                    invocation_id: id,
                    action: name,
                    status: status.as_str(),
                    from_entry: None,
                    deleted_entries: None,
                },
            )),
            Transition::Unknown => Err(unknown(id)),
            Transition::Refused(status) => Err(ApiError::invalid_transition(
                status,
                format!("{name} does not apply to {id}: it is {status}"),
            )),
        }
    }
}

fn unknown(id: &InvocationId) -> ApiError {
    ApiError::not_found("unknown_invocation", format!("no invocation {id}"))
}
