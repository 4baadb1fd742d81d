//! Completions from outside: resolving and rejecting awakeables and workflow promises, and
//! telling the invocations that wait for them.

use crate::driver::LambdaCall;
use crate::error::OrchestratorError;
use crate::http::replies;
use crate::http::ApiError;
use crate::http::FunctionUrlResponse;
use crate::services::Services;
use durable_protocol::auth::Purpose;
use durable_protocol::clock::now_millis;
use durable_protocol::crash_point;
use durable_protocol::keyed::{ObjectRef, PromiseCompletion, Waiter};
use durable_protocol::{
    AwakeableId, EntryKind, ObjectKey, ServiceName, StepResult, TerminalFailure,
};
use durable_store::{Beat, Completed, Completer};

impl Services {
    /// `POST /{workflow}/{key}/promises/{name}/resolve|reject` (and a handler's
    /// `complete_promise`, `by` its invocation): completes a durable promise (the first
    /// completion wins) and resumes whoever waits for it.
    pub(crate) async fn complete_promise(
        &self,
        (service, key, name): (&ServiceName, &ObjectKey, &str),
        result: &StepResult,
        by: &str,
    ) -> Result<FunctionUrlResponse, ApiError> {
        // Promises belong to a submitted workflow: a key that never ran has none, and a
        // completion must not leave items nobody will ever clean up.
        self.submitted_workflow(service, key).await?;
        if let StepResult::Value(v) = result {
            let size = v.to_string().len();
            if size > durable_protocol::keyed::MAX_VALUE_BYTES {
                return Err(ApiError::new(
                    413,
                    "payload_too_large",
                    format!(
                        "a promise value is at most {} bytes; this one is {size}",
                        durable_protocol::keyed::MAX_VALUE_BYTES
                    ),
                ));
            }
        }
        let object = ObjectRef {
            service: service.clone(),
            key: key.clone(),
        };
        let completion = self
            .objects
            .keyed
            .complete(&object, name, result, by)
            .await
            .map_err(OrchestratorError::from)?;
        crash_point!("promise.completed");
        match completion {
            PromiseCompletion::Completed { waiters } => {
                self.notify_waiters(&waiters, result).await?;
                let status = completion_status(result);
                Ok(FunctionUrlResponse::json(
                    200,
                    &replies::PromiseCompleted {
                        promise: name,
                        status,
                    },
                ))
            }
            PromiseCompletion::AlreadyCompleted {
                result: kept,
                waiters,
                ..
            } => {
                // A retry of a completion whose first try died before telling the waiters.
                self.notify_waiters(&waiters, &kept).await?;
                Err(ApiError::new(
                    409,
                    "already_completed",
                    format!("promise {name} of {object} was already completed"),
                ))
            }
        }
    }

    /// Completes the journal entries waiting for a promise and resumes their invocations.
    pub(crate) async fn notify_waiters(
        &self,
        waiters: &[Waiter],
        result: &StepResult,
    ) -> Result<(), OrchestratorError> {
        for waiter in waiters {
            self.journal
                .complete(
                    &waiter.invocation,
                    waiter.index,
                    durable_protocol::EntryTag::Promise,
                    result,
                    Completer::Other,
                )
                .await?;
            crash_point!("promise.waiter.completed");
            self.send_event(&self.signing.resume(waiter.invocation.clone(), waiter.index))
                .await?;
        }
        Ok(())
    }

    pub(crate) async fn complete_awakeable(
        &self,
        id: &AwakeableId,
        result: &StepResult,
        call: &LambdaCall,
    ) -> Result<FunctionUrlResponse, ApiError> {
        // Checked before anything is read or written: a forged id answers like an unknown one.
        let tag_holds = self
            .signing
            .verify(&id.invocation, Purpose::Awakeable, id.index, &id.tag);
        if !tag_holds {
            tracing::warn!(invocation = %id.invocation, entry = id.index, "refused an awakeable id whose tag does not hold");
            return Err(unknown_awakeable(id));
        }
        let stored = match result {
            StepResult::Value(v) => StepResult::Value(
                self.offload(&id.invocation, &format!("c{}", id.index), v.clone())
                    .await?,
            ),
            failure => failure.clone(),
        };
        // A value now in S3 is flagged whether or not the completion wins, so it is cleaned up.
        if matches!(&stored, StepResult::Value(v) if durable_protocol::payload::as_ref(v).is_some())
        {
            self.journal
                .flag_payloads(&id.invocation)
                .await
                .map_err(OrchestratorError::from)?;
        }
        let completed = self
            .journal
            .complete(
                &id.invocation,
                id.index,
                durable_protocol::EntryTag::Awakeable,
                &stored,
                Completer::Other,
            )
            .await
            .map_err(OrchestratorError::from)?;
        match completed {
            Completed::Written => {}
            Completed::AlreadyCompleted(StepResult::Failure(f))
                if f == TerminalFailure::timed_out("awakeable") =>
            {
                return Err(expired(id));
            }
            Completed::Expired(_) => {
                // Late: the waiter gets its timeout now rather than at its schedule.
                self.time_out_awakeable(&id.invocation, id.index).await?;
                return Err(expired(id));
            }
            Completed::AlreadyCompleted(_) => {
                // A retry of a resolution whose first try may have died before the resume.
                self.send_event(&self.signing.resume(id.invocation.clone(), id.index))
                    .await?;
                return Err(ApiError::new(
                    409,
                    "already_completed",
                    format!("awakeable {id} was already completed"),
                ));
            }
            Completed::NoSuchEntry | Completed::WrongKind(_) | Completed::NotDue(_) => {
                return Err(unknown_awakeable(id))
            }
        }
        crash_point!("awakeable.completed");
        // Resume in a fresh call so that this request answers at once.
        if self.config.self_function.is_some() {
            self.send_event(&self.signing.resume(id.invocation.clone(), id.index))
                .await?;
        } else {
            self.resume(&id.invocation, id.index, call).await?;
        }
        let status = completion_status(result);
        Ok(FunctionUrlResponse::json(
            200,
            &replies::AwakeableCompleted {
                awakeable_id: id.to_string(),
                status,
            },
        ))
    }
}

impl Services {
    /// `POST /awakeables/{id}/heartbeat`: moves the deadline of an awakeable with a heartbeat
    /// timeout to its heartbeat timeout from now (never past its own timeout). `409` once it
    /// is completed, `410` once its deadline passed, `400` for one without a heartbeat timeout.
    pub(crate) async fn heartbeat_awakeable(
        &self,
        id: &AwakeableId,
    ) -> Result<FunctionUrlResponse, ApiError> {
        if !self
            .signing
            .verify(&id.invocation, Purpose::Awakeable, id.index, &id.tag)
        {
            return Err(unknown_awakeable(id));
        }
        let entry = self
            .journal
            .entry(&id.invocation, id.index)
            .await
            .map_err(OrchestratorError::from)?;
        let timeout = match entry.map(|e| e.kind) {
            Some(EntryKind::Awakeable {
                timeout: Some(t), ..
            }) if t.heartbeat_ms.is_some() => t,
            Some(EntryKind::Awakeable { .. }) => return Err(no_heartbeat_timeout(id)),
            _ => return Err(unknown_awakeable(id)),
        };
        let deadline = timeout.deadline(Some(now_millis()));
        let beat = self
            .journal
            .heartbeat(&id.invocation, id.index, deadline)
            .await
            .map_err(OrchestratorError::from)?;
        match beat {
            Beat::Extended(deadline) => Ok(FunctionUrlResponse::json(
                200,
                &replies::AwakeableAlive {
                    awakeable_id: id.to_string(),
                    status: "alive",
                    deadline_ms: deadline,
                },
            )),
            Beat::Completed(StepResult::Failure(f))
                if f == TerminalFailure::timed_out("awakeable") =>
            {
                Err(expired(id))
            }
            Beat::Completed(_) => Err(ApiError::new(
                409,
                "already_completed",
                format!("awakeable {id} was already completed"),
            )),
            Beat::Expired(_) => {
                self.time_out_awakeable(&id.invocation, id.index).await?;
                Err(expired(id))
            }
            Beat::NoHeartbeat => Err(no_heartbeat_timeout(id)),
            Beat::NoSuchEntry => Err(unknown_awakeable(id)),
        }
    }

    /// Completes awakeable entry `index` of `invocation` with its timeout (`408`) if its
    /// deadline passed, and resumes its waiter; what the conditional completion found.
    pub(crate) async fn time_out_awakeable(
        &self,
        invocation: &durable_protocol::InvocationId,
        index: u32,
    ) -> Result<Completed, OrchestratorError> {
        let completed = self
            .journal
            .complete(
                invocation,
                index,
                durable_protocol::EntryTag::Awakeable,
                &StepResult::Failure(TerminalFailure::timed_out("awakeable")),
                Completer::Deadline,
            )
            .await?;
        if completed == Completed::Written {
            crash_point!("awakeable.timed_out");
            tracing::info!(%invocation, index, "awakeable timed out");
            self.send_event(&self.signing.resume(invocation.clone(), index))
                .await?;
        }
        Ok(completed)
    }
}

/// The answer to a heartbeat of an awakeable made without a heartbeat timeout.
fn no_heartbeat_timeout(id: &AwakeableId) -> ApiError {
    ApiError::bad_request(
        "no_heartbeat_timeout",
        format!("awakeable {id} has no heartbeat timeout: there is nothing to keep alive"),
    )
}

/// The answer to a completion or heartbeat that came after the awakeable's deadline.
fn expired(id: &AwakeableId) -> ApiError {
    ApiError::new(
        410,
        "awakeable_expired",
        format!("awakeable {id} timed out before this request; its waiter got a 408"),
    )
}

/// The answer to an awakeable id that names nothing (or whose tag does not hold: the same
/// answer, so that a guess tells nothing).
fn unknown_awakeable(id: &AwakeableId) -> ApiError {
    ApiError::not_found("unknown_awakeable", format!("no awakeable {id}"))
}

/// How a completion is reported: `resolved` for a value, `rejected` for a failure.
fn completion_status(result: &StepResult) -> &'static str {
    if matches!(result, StepResult::Value(_)) {
        "resolved"
    } else {
        "rejected"
    }
}
