//! The orchestrator's entry point for every event: HTTP requests from the Function URL and
//! control events (registration, hand-offs, timers, resumptions).

use crate::config::Config;
use crate::driver::{Call, Driven, Driver, LEASE_MARGIN};
use crate::error::{ApiError, OrchestratorError};
use crate::http::{FunctionUrlRequest, FunctionUrlResponse};
use crate::ingress::{resolve_target, route, Route};
use crate::timers::Timers;
use aws_sdk_lambda::primitives::Blob;
use durable_protocol::clock::now_millis;
use durable_protocol::keyed::{ObjectRef, PromiseCompletion, Waiter};
use durable_protocol::{
    AwakeableId, DiscoveryResponse, EntryKind, HandlerKind, HandlerName, HandlerRequest,
    IdempotencyKey, InvocationId, ObjectKey, ServiceKind, ServiceName, StepResult, TerminalFailure,
    PROTOCOL_VERSION,
};
use durable_protocol::{ControlEvent, MinuteRange};
use durable_store::invocations::{
    Created, Invocation, InvocationStore, NewInvocation, Outcome, Status,
};
use durable_store::objects::{Arrival, Objects};
use durable_store::registry::{pin_version, Registration, Registry};
use durable_store::Completed;
use durable_store::JournalStore;
use durable_store::PayloadError;
use durable_store::PayloadStore;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Outputs in S3 up to this size are answered inline (a Lambda response holds 6 MB).
const INLINE_ANSWER_BYTES: usize = 5_000_000;
/// How long the download URL of a large output works.
const OUTPUT_URL_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// How long before its own deadline a sweep stops walking the `leases` index.
const SWEEP_MARGIN: Duration = Duration::from_secs(10);
/// How many minutes back the first sweep of dated invocations looks (there is no cursor yet).
const FIRST_SWEEP_MINUTES: u32 = 15;

/// How long before its own deadline a call stops waiting and answers 202.
const ANSWER_MARGIN: Duration = Duration::from_secs(2);

/// Everything the orchestrator needs, built once per Lambda process.
pub struct App {
    registry: Registry,
    invocations: InvocationStore,
    driver: Driver,
}

/// The validated parts of an invocation request.
struct InvokeParts {
    service: ServiceName,
    rest: Vec<String>,
    input: serde_json::Value,
    idempotency_key: Option<IdempotencyKey>,
}

impl App {
    /// Builds the orchestrator from its settings and AWS clients.
    pub fn new(
        config: Config,
        dynamo: aws_sdk_dynamodb::Client,
        lambda: aws_sdk_lambda::Client,
        scheduler: aws_sdk_scheduler::Client,
        s3: aws_sdk_s3::Client,
    ) -> Self {
        let config = Arc::new(config);
        let table = config.table.clone();
        let payloads = PayloadStore::new(s3, config.bucket.clone(), config.limits);
        let invocations = InvocationStore::new(dynamo.clone(), config.table.clone());
        Self {
            registry: Registry::new(dynamo.clone(), config.table.clone(), config.registry_cache),
            invocations: invocations.clone(),
            driver: Driver {
                journal: JournalStore::new(dynamo.clone(), config.table.clone()),
                timers: Timers {
                    client: scheduler,
                    config: config.clone(),
                },
                config,
                lambda,
                invocations,
                payloads,
                objects: Objects::new(dynamo, table),
            },
        }
    }

    /// Handles one Lambda event.
    pub async fn handle(
        &self,
        event: serde_json::Value,
        call: &Call,
    ) -> Result<serde_json::Value, OrchestratorError> {
        if event.get("requestContext").is_some() {
            let response = match serde_json::from_value::<FunctionUrlRequest>(event) {
                Ok(req) => self.http(req, call).await,
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
        match control {
            ControlEvent::Register { function_arn } => self.register(&function_arn).await,
            ControlEvent::Drive { invocation_id } => self.redrive(&invocation_id, call).await,
            ControlEvent::Wake {
                invocation_id,
                entry,
            } => self.wake(&invocation_id, entry, call).await,
            ControlEvent::Resume {
                invocation_id,
                entry,
            } => self.resume(&invocation_id, entry, call).await,
            ControlEvent::Dispatch {
                invocation_id,
                entry,
            } => self.dispatch_entry(&invocation_id, entry, call).await,
            ControlEvent::Sweep { minutes } => self.sweep(call, minutes).await,
        }
    }

    async fn http(&self, req: FunctionUrlRequest, call: &Call) -> FunctionUrlResponse {
        let result = match route(&req) {
            Err(e) => Err(e),
            Ok(Route::Invoke {
                service,
                rest,
                input,
                idempotency_key,
            }) => {
                self.invoke(
                    InvokeParts {
                        service,
                        rest,
                        input,
                        idempotency_key,
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
            }) => self.complete_promise(&service, &key, &name, &result).await,
            Ok(Route::Output { id }) => self.output(&id).await,
            Ok(Route::Attach { id }) => self.attach_http(&id, call).await,
            Ok(Route::CompleteAwakeable { id, result }) => {
                self.complete_awakeable(&id, &result, call).await
            }
        };
        result.unwrap_or_else(|e| e.response())
    }

    async fn invoke(&self, req: InvokeParts, call: &Call) -> Result<FunctionUrlResponse, ApiError> {
        let InvokeParts {
            service,
            rest,
            input,
            idempotency_key,
        } = req;
        let reg = self
            .registry
            .lookup(&service)
            .await
            .map_err(OrchestratorError::from)?
            .ok_or_else(|| {
                ApiError::not_found(
                    "unknown_service",
                    format!("no service named {service} is registered"),
                )
            })?;
        let target = resolve_target(&service, reg.kind, &rest, |h| reg.kind_of(h))?;
        let (key, handler, handler_kind, send) =
            (target.key, target.handler, target.handler_kind, target.send);
        if !reg.has_handler(&handler) {
            return Err(ApiError::not_found(
                "unknown_handler",
                format!(
                    "service {service} has no handler {handler}; it has: {}",
                    join(&reg.handlers)
                ),
            ));
        }
        let id = match (&key, handler_kind, &idempotency_key) {
            // A workflow runs once per key: submitting it again finds the first run.
            (Some(key), Some(HandlerKind::Workflow), _) => {
                InvocationId::for_workflow(&service, key)
            }
            (Some(key), _, Some(idem)) => {
                InvocationId::for_keyed_idempotency_key(&service, key, &handler, idem)
            }
            (None, _, Some(idem)) => InvocationId::for_idempotency_key(&service, &handler, idem),
            // A plain service's invocation is dated: the sweep finds it by its minute, with no
            // `leases` index entry until it outlives that minute.
            (None, _, None) => InvocationId::dated(now_millis()),
            // Keyed ones wait in their object's inbox and use the index when they run.
            (Some(_), _, None) => InvocationId::random(),
        };
        let input = self.offload(&id, "input", input).await?;
        let new = NewInvocation {
            id: id.clone(),
            service,
            handler,
            function_arn: reg.function_arn,
            input,
            idempotency_key,
            lease_until: call.deadline_ms + LEASE_MARGIN.as_millis() as u64,
            // A one-way send is driven by a fresh call, which takes it over at once.
            released: send,
            caller: None,
            key,
            handler_kind,
        };
        // `owned`: this call created the invocation and may run it now (a one-way send runs
        // in a fresh call). An exclusive arrival is owned only if it got its object's lock.
        let (created, owned) = if handler_kind == Some(HandlerKind::Exclusive) {
            self.arrive(&new, now_millis(), (!send).then_some(call))
                .await?
        } else {
            let created = self
                .invocations
                .create(&new)
                .await
                .map_err(OrchestratorError::from)?;
            let owned = matches!(created, Created::New(_));
            (created, owned)
        };
        if matches!(created, Created::New(_))
            && durable_protocol::payload::as_ref(&new.input).is_some()
        {
            self.driver
                .journal
                .flag_payloads(&id)
                .await
                .map_err(OrchestratorError::from)?;
        }
        if send {
            let status = match &created {
                Created::New(_) => "accepted",
                Created::Existing(inv) => inv.status.as_str(),
            };
            if owned {
                self.driver
                    .send_event(&ControlEvent::Drive {
                        invocation_id: id.clone(),
                    })
                    .await?;
            }
            return Ok(FunctionUrlResponse::json(
                202,
                &json!({"invocation_id": id, "status": status}),
            )
            .with_header("x-invocation-id", id.as_str())
            .with_header("location", format!("/invocations/{id}/output")));
        }
        let driven = match created {
            Created::New(inv) if owned => self.driver.drive(inv, call, true).await?,
            // Queued for its object's lock (or existing): wait for it, driving it if it is
            // granted the lock while this call waits.
            Created::New(inv) | Created::Existing(inv) => self.attach(inv, call, true).await?,
        };
        // Suspended (or handed off): other calls drive it on; answer when it finishes, if this
        // call has the time.
        let driven = match driven {
            Driven::Finished(_) => driven,
            _ => self.attach(self.existing(&id).await?, call, true).await?,
        };
        Ok(self.answer(&id, driven).await)
    }

    /// An exclusive invocation arrives in its object's inbox; then the object is pumped and
    /// whoever is granted the lock is started by a fresh call, except this arrival itself when
    /// `waiting` (an HTTP call that waits for it): then it is taken over here and returned owned.
    async fn arrive(
        &self,
        new: &NewInvocation,
        due_ms: u64,
        waiting: Option<&Call>,
    ) -> Result<(Created, bool), OrchestratorError> {
        let object = ObjectRef {
            service: new.service.clone(),
            key: new.key.clone().ok_or_else(|| {
                OrchestratorError::Protocol("an exclusive invocation without a key".into())
            })?,
        };
        let mut inv = match self
            .driver
            .objects
            .arrive(&self.invocations, new, &object, due_ms)
            .await?
        {
            Arrival::Existing(inv) => return Ok((Created::Existing(*inv), false)),
            Arrival::Queued(inv) => *inv,
        };
        let Some(granted) = self.driver.objects.pump(&object).await? else {
            return Ok((Created::New(inv), false));
        };
        if granted == new.id {
            // As the grant left it: running and released.
            inv.status = Status::Running;
            inv.released = true;
            if let Some(call) = waiting {
                let lease = call.deadline_ms + LEASE_MARGIN.as_millis() as u64;
                let owned = self.invocations.take_over(&mut inv, lease).await?;
                return Ok((Created::New(inv), owned));
            }
        }
        self.driver
            .send_event(&ControlEvent::Drive {
                invocation_id: granted,
            })
            .await?;
        Ok((Created::New(inv), false))
    }

    /// `GET /{workflow}/{key}/output|attach`: the workflow's result by its key.
    async fn workflow_output(
        &self,
        service: &ServiceName,
        key: &ObjectKey,
        attach: bool,
        call: &Call,
    ) -> Result<FunctionUrlResponse, ApiError> {
        self.workflow_registration(service).await?;
        let id = InvocationId::for_workflow(service, key);
        if self
            .invocations
            .get(&id)
            .await
            .map_err(OrchestratorError::from)?
            .is_none()
        {
            return Err(ApiError::not_found(
                "unknown_workflow",
                format!("workflow {service} has no run for key {key}"),
            ));
        }
        if attach {
            self.attach_http(&id, call).await
        } else {
            self.output(&id).await
        }
    }

    async fn workflow_registration(
        &self,
        service: &ServiceName,
    ) -> Result<durable_store::registry::Registration, ApiError> {
        let reg = self
            .registry
            .lookup(service)
            .await
            .map_err(OrchestratorError::from)?
            .ok_or_else(|| {
                ApiError::not_found(
                    "unknown_service",
                    format!("no service named {service} is registered"),
                )
            })?;
        if reg.kind != ServiceKind::Workflow {
            return Err(ApiError::bad_request(
                "not_a_workflow",
                format!("{service} is not a workflow"),
            ));
        }
        Ok(reg)
    }

    /// `POST /{workflow}/{key}/promises/{name}/resolve|reject`: completes a durable promise
    /// (the first completion wins) and resumes whoever waits for it.
    async fn complete_promise(
        &self,
        service: &ServiceName,
        key: &ObjectKey,
        name: &str,
        result: &StepResult,
    ) -> Result<FunctionUrlResponse, ApiError> {
        self.workflow_registration(service).await?;
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
            .driver
            .objects
            .keyed
            .complete(&object, name, result, "ingress")
            .await
            .map_err(OrchestratorError::from)?;
        match completion {
            PromiseCompletion::Completed { waiters } => {
                self.notify_waiters(&waiters, result).await?;
                let status = if matches!(result, StepResult::Value(_)) {
                    "resolved"
                } else {
                    "rejected"
                };
                Ok(FunctionUrlResponse::json(
                    200,
                    &json!({"promise": name, "status": status}),
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
    async fn notify_waiters(
        &self,
        waiters: &[Waiter],
        result: &StepResult,
    ) -> Result<(), OrchestratorError> {
        for waiter in waiters {
            self.driver
                .journal
                .complete(
                    &waiter.invocation,
                    waiter.index,
                    durable_protocol::EntryTag::Promise,
                    result,
                )
                .await?;
            self.driver
                .send_event(&ControlEvent::Resume {
                    invocation_id: waiter.invocation.clone(),
                    entry: waiter.index,
                })
                .await?;
        }
        Ok(())
    }

    /// A value from a caller as the invocation `scope` stores it: refused with 413 over the
    /// maximum, in S3 over the offload threshold.
    async fn offload(
        &self,
        scope: &InvocationId,
        slot: &str,
        value: serde_json::Value,
    ) -> Result<serde_json::Value, ApiError> {
        match self.driver.payloads.offload(scope, slot, value).await {
            Ok(v) => Ok(v),
            Err(PayloadError::TooLarge { size, max }) => Err(ApiError::new(
                413,
                "payload_too_large",
                format!("the value is {size} bytes; the limit is {max} bytes"),
            )),
            Err(e) => Err(OrchestratorError::Protocol(e.to_string()).into()),
        }
    }

    /// The HTTP answer for where an invocation got to; an output kept in S3 is answered inline
    /// when it fits in a Lambda response, else with `303 See Other` to a presigned download URL.
    async fn answer(&self, id: &InvocationId, driven: Driven) -> FunctionUrlResponse {
        let Driven::Finished(Outcome::Completed(output)) = &driven else {
            return respond(id, driven);
        };
        let Some(reference) = durable_protocol::payload::as_ref(output) else {
            return respond(id, driven);
        };
        let result = if reference.size as usize <= INLINE_ANSWER_BYTES {
            match self.driver.payloads.resolve(output.clone()).await {
                Ok(value) => return respond(id, Driven::Finished(Outcome::Completed(value))),
                Err(e) => Err(e),
            }
        } else {
            self.driver
                .payloads
                .presigned_url(&reference, OUTPUT_URL_LIFETIME)
                .await
        };
        match result {
            Ok(url) => FunctionUrlResponse::json(
                303,
                &json!({"invocation_id": id, "output_url": url, "size": reference.size}),
            )
            .with_header("location", url)
            .with_header("x-invocation-id", id.as_str()),
            Err(e) => ApiError::from(OrchestratorError::Protocol(e.to_string())).response(),
        }
    }

    /// An existing invocation: its outcome if finished; else drive it if its driver is gone,
    /// and (for an HTTP caller, `wait`) wait for it while this call has time. Control events
    /// never wait: they would hold a Lambda, and the async-invoke capacity, for nothing.
    async fn attach(
        &self,
        mut inv: Invocation,
        call: &Call,
        wait: bool,
    ) -> Result<Driven, OrchestratorError> {
        let mut pause = Duration::from_millis(50);
        loop {
            if let Some(outcome) = inv.outcome.clone() {
                return Ok(Driven::Finished(outcome));
            }
            if inv.status == Status::Running && (inv.released || inv.lease_until < now_millis()) {
                let lease = call.deadline_ms + LEASE_MARGIN.as_millis() as u64;
                if self.invocations.take_over(&mut inv, lease).await? {
                    tracing::info!(id = %inv.id, epoch = inv.epoch, "took over an invocation whose driver is gone");
                    let driven = self.driver.drive(inv.clone(), call, false).await?;
                    if !wait || matches!(driven, Driven::Finished(_)) {
                        return Ok(driven);
                    }
                    // Suspended or handed off: wait for whoever continues it.
                }
            }
            if !wait || now_millis() + (pause + ANSWER_MARGIN).as_millis() as u64 > call.deadline_ms
            {
                return Ok(if inv.status == Status::Suspended {
                    Driven::Suspended
                } else {
                    Driven::Running
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
            inv = self.invocations.get(&inv.id).await?.ok_or_else(|| {
                OrchestratorError::Protocol(format!("invocation {} disappeared", inv.id))
            })?;
        }
    }

    async fn output(&self, id: &InvocationId) -> Result<FunctionUrlResponse, ApiError> {
        let inv = self.existing(id).await?;
        match inv.outcome {
            None => Ok(FunctionUrlResponse::json(
                409,
                &json!({
                    "code": "not_ready",
                    "message": format!("invocation {id} is {}", inv.status.as_str()),
                    "invocation_id": id,
                    "status": inv.status.as_str(),
                }),
            )
            .with_header("x-invocation-id", id.as_str())),
            Some(outcome) => Ok(self.answer(id, Driven::Finished(outcome)).await),
        }
    }

    async fn existing(&self, id: &InvocationId) -> Result<Invocation, ApiError> {
        self.invocations
            .get(id)
            .await
            .map_err(OrchestratorError::from)?
            .ok_or_else(|| ApiError::not_found("unknown_invocation", format!("no invocation {id}")))
    }

    async fn attach_http(
        &self,
        id: &InvocationId,
        call: &Call,
    ) -> Result<FunctionUrlResponse, ApiError> {
        let inv = self.existing(id).await?;
        let driven = self.attach(inv, call, true).await?;
        Ok(self.answer(id, driven).await)
    }

    async fn complete_awakeable(
        &self,
        id: &AwakeableId,
        result: &StepResult,
        call: &Call,
    ) -> Result<FunctionUrlResponse, ApiError> {
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
            self.driver
                .journal
                .flag_payloads(&id.invocation)
                .await
                .map_err(OrchestratorError::from)?;
        }
        let completed = self
            .driver
            .journal
            .complete(
                &id.invocation,
                id.index,
                durable_protocol::EntryTag::Awakeable,
                &stored,
            )
            .await
            .map_err(OrchestratorError::from)?;
        match completed {
            Completed::Written => {}
            Completed::AlreadyCompleted(_) => {
                return Err(ApiError::new(
                    409,
                    "already_completed",
                    format!("awakeable {id} was already completed"),
                ))
            }
            Completed::NoSuchEntry | Completed::WrongKind(_) => {
                return Err(ApiError::not_found(
                    "unknown_awakeable",
                    format!("no awakeable {id}"),
                ))
            }
        }
        // Resume in a fresh call so that this request answers at once.
        if self.driver.config.self_function.is_some() {
            self.driver
                .send_event(&ControlEvent::Resume {
                    invocation_id: id.invocation.clone(),
                    entry: id.index,
                })
                .await?;
        } else {
            self.resume(&id.invocation, id.index, call).await?;
        }
        let status = if matches!(result, StepResult::Value(_)) {
            "resolved"
        } else {
            "rejected"
        };
        Ok(FunctionUrlResponse::json(
            200,
            &json!({"awakeable_id": id.to_string(), "status": status}),
        ))
    }

    /// Finds running invocations whose lease expired and hands each to a fresh call (`drive`
    /// takes it over conditionally, so a sweep racing a live driver changes nothing).
    ///
    /// The sweep walks the `leases` index from where the last sweep stopped (a cursor item) up
    /// to the grace period before now, and reads the items it meets once: finished
    /// invocations stay in the index (their finish does not pay a second write to leave it)
    /// and are skipped. A stranded invocation gets a fresh lease ahead of the cursor before its
    /// `drive` event is sent, so that a later sweep finds it again if that event is lost too.
    async fn sweep(
        &self,
        call: &Call,
        minutes: Option<MinuteRange>,
    ) -> Result<serde_json::Value, OrchestratorError> {
        let cursors = self.invocations.sweep_cursors().await?;
        let (mut redriven, minutes) = self
            .sweep_minutes(call, minutes, cursors.minutes_until)
            .await?;
        let (more, leases) = self.sweep_leases(call, cursors.swept_until).await?;
        redriven.extend(more);
        if !redriven.is_empty() {
            tracing::info!(
                count = redriven.len(),
                "sweep re-drives invocations with expired leases"
            );
        }
        Ok(json!({"redriven": redriven, "minutes": minutes, "leases": leases}))
    }

    /// The first part of a sweep: the partitions of the dated invocations made in the minutes
    /// after the minutes cursor, up to the last one that ended more than the grace ago (or
    /// the minutes asked for). Every invocation there that still runs goes into the `leases`
    /// index (`promote`), so the second part finds it from now on; one whose lease ended, or
    /// that nobody drives, is marked stranded (its lease moved to now, ahead of the index's
    /// cursor) and re-driven. So a new invocation costs no index write while it finishes
    /// within its minute, and none is lost if its driver dies.
    async fn sweep_minutes(
        &self,
        call: &Call,
        asked: Option<MinuteRange>,
        cursor: Option<u32>,
    ) -> Result<(Vec<InvocationId>, serde_json::Value), OrchestratorError> {
        let grace = self.driver.config.sweep_grace.as_millis() as u64;
        let upto = now_millis().saturating_sub(grace);
        // The last minute no new dated invocation can land in any more.
        let last_done = (upto / 60_000) as u32 - 1;
        // An explicit range looks again, whatever the cursor says.
        let (from, to) = match (asked, cursor) {
            (Some(range), _) => (range.from, range.to),
            (None, Some(swept)) => (swept + 1, last_done),
            // The first sweep looks back a while: dated invocations exist only since this
            // version of the orchestrator runs, and the sweep runs every minute.
            (None, None) => (last_done.saturating_sub(FIRST_SWEEP_MINUTES), last_done),
        };
        let mut redriven = Vec::new();
        let (mut seen, mut promoted) = (0usize, 0usize);
        let mut reached = None;
        'minutes: for minute in from..=to {
            for shard in 0..InvocationId::SHARDS {
                let mut page = None;
                loop {
                    let (found, next) = self.invocations.minute_page(minute, shard, page).await?;
                    seen += found.len();
                    for inv in found.iter().filter(|i| i.status == Status::Running) {
                        let Some(now) = self.invocations.promote(&inv.id).await? else {
                            continue;
                        };
                        promoted += 1;
                        if self.redrive_if_stranded(&now, upto).await? {
                            redriven.push(now.id);
                        }
                    }
                    match next {
                        Some(n) => page = Some(n),
                        None => break,
                    }
                }
            }
            reached = Some(minute);
            if now_millis() + SWEEP_MARGIN.as_millis() as u64 > call.deadline_ms {
                break 'minutes;
            }
        }
        if let (None, Some(minute)) = (asked, reached) {
            self.invocations.advance_minutes_cursor(minute).await?;
        }
        Ok((
            redriven,
            json!({"from": from, "to": to, "swept_until": reached, "looked_at": seen, "promoted": promoted}),
        ))
    }

    /// Re-drives `inv` if it runs and nobody drives it (released, or its lease ended by
    /// `upto`): its lease moves to now first (conditional on the lease it had), so that a later
    /// sweep finds it again if the `drive` event is lost too. `true` if it was re-driven.
    async fn redrive_if_stranded(
        &self,
        inv: &Invocation,
        upto: u64,
    ) -> Result<bool, OrchestratorError> {
        if inv.status != Status::Running
            || !(inv.released || inv.lease_until <= upto)
            || !self.invocations.mark_stranded(inv).await?
        {
            return Ok(false);
        }
        self.driver
            .send_event(&ControlEvent::Drive {
                invocation_id: inv.id.clone(),
            })
            .await?;
        Ok(true)
    }

    /// The second part of a sweep: the `leases` index, from its cursor up to the grace before
    /// now.
    async fn sweep_leases(
        &self,
        call: &Call,
        cursor: u64,
    ) -> Result<(Vec<InvocationId>, serde_json::Value), OrchestratorError> {
        let upto = now_millis().saturating_sub(self.driver.config.sweep_grace.as_millis() as u64);
        let mut redriven = Vec::new();
        let mut seen = 0usize;
        let mut reached = cursor;
        let mut page = None;
        let mut done = upto <= cursor;
        while !done {
            let (leases, next) = self.invocations.leases_page(cursor, upto, page).await?;
            seen += leases.len();
            let ids: Vec<InvocationId> = leases.iter().map(|(id, _)| id.clone()).collect();
            for inv in self.invocations.get_many(&ids).await? {
                if self.redrive_if_stranded(&inv, upto).await? {
                    redriven.push(inv.id);
                }
            }
            // Pages come in lease order.
            if let Some((_, lease)) = leases.last() {
                reached = *lease;
            }
            done = next.is_none();
            page = next;
            // Out of time: the next sweep goes on from the last lease looked at (again from
            // that lease: another invocation may share it; looking twice is harmless).
            if !done && now_millis() + SWEEP_MARGIN.as_millis() as u64 > call.deadline_ms {
                break;
            }
        }
        let advanced = if done {
            upto
        } else {
            reached.saturating_sub(1)
        };
        if advanced > cursor {
            self.invocations.advance_sweep_cursor(advanced).await?;
        }
        Ok((
            redriven,
            json!({"looked_at": seen, "swept_until": advanced}),
        ))
    }

    /// Drives an invocation whose driver handed it off or died.
    async fn redrive(
        &self,
        id: &InvocationId,
        call: &Call,
    ) -> Result<serde_json::Value, OrchestratorError> {
        let Some(inv) = self.invocations.get(id).await? else {
            return Ok(json!({"invocation_id": id, "status": "unknown"}));
        };
        if inv.status == Status::Queued {
            // Queued for its object's lock (e.g. a delayed send that is due now): pump.
            let Some(object) = inv.object() else {
                return Ok(json!({"invocation_id": id, "status": "queued"}));
            };
            return match self.driver.objects.pump(&object).await? {
                Some(granted) if &granted == id => {
                    let inv = self.invocations.get(id).await?.ok_or_else(|| {
                        OrchestratorError::Protocol(format!("invocation {id} disappeared"))
                    })?;
                    let driven = self.attach(inv, call, false).await?;
                    Ok(json!({"invocation_id": id, "status": driven_name(&driven)}))
                }
                Some(granted) => {
                    self.driver
                        .send_event(&ControlEvent::Drive {
                            invocation_id: granted,
                        })
                        .await?;
                    Ok(json!({"invocation_id": id, "status": "queued"}))
                }
                None => Ok(json!({"invocation_id": id, "status": "queued"})),
            };
        }
        let driven = self.attach(inv, call, false).await?;
        Ok(json!({"invocation_id": id, "status": driven_name(&driven)}))
    }

    /// A timer is due: record that it fired and resume the invocation if it waits on it.
    async fn wake(
        &self,
        id: &InvocationId,
        index: u32,
        call: &Call,
    ) -> Result<serde_json::Value, OrchestratorError> {
        let Some(entry) = self.driver.journal.entry(id, index).await? else {
            tracing::warn!(%id, index, "wake for an unknown timer");
            return Ok(json!({"invocation_id": id, "status": "unknown timer"}));
        };
        let EntryKind::Sleep { wake_at_ms, .. } = entry.kind else {
            return Err(OrchestratorError::Protocol(format!(
                "entry {index} of {id} is not a timer"
            )));
        };
        // Precise mode (or an early firing): wait the rest here.
        let early = Duration::from_millis(wake_at_ms.saturating_sub(now_millis()));
        if !early.is_zero() {
            if now_millis() + (early + ANSWER_MARGIN).as_millis() as u64 > call.deadline_ms {
                return Err(OrchestratorError::Protocol(format!(
                    "timer {index} of {id} fired {} ms early, more than this call can wait; \
                     give the orchestrator a timeout above DURABLE_TIMER_LEAD_MS",
                    early.as_millis()
                )));
            }
            tokio::time::sleep(early).await;
        }
        self.driver
            .journal
            .complete(
                id,
                index,
                durable_protocol::EntryTag::Sleep,
                &StepResult::Value(serde_json::Value::Null),
            )
            .await?;
        self.resume(id, index, call).await
    }

    /// A call or send entry of `parent` was recorded: create its child (and, first, the children
    /// of the parent's earlier calls and sends, so children start in program order), then drive
    /// it. Creating a child is a conditional put on its derived id: however often a dispatch
    /// arrives, there is one child.
    async fn dispatch_entry(
        &self,
        parent: &InvocationId,
        index: u32,
        call: &Call,
    ) -> Result<serde_json::Value, OrchestratorError> {
        let journal = self.driver.journal.load(parent).await?;
        let Some(entry) = journal.iter().find(|e| e.index == index).cloned() else {
            tracing::warn!(%parent, index, "dispatch of an unknown entry");
            return Ok(json!({"invocation_id": parent, "status": "unknown entry"}));
        };
        // Earlier calls and sends not started yet go first; their own dispatch drives them.
        for earlier in journal.iter().filter(|e| e.index < index && !e.dispatched) {
            if let Some(child) = self.create_child(parent, earlier, 0, call).await? {
                self.driver
                    .send_event(&ControlEvent::Drive {
                        invocation_id: child.id,
                    })
                    .await?;
            }
        }
        let lease = call.deadline_ms + LEASE_MARGIN.as_millis() as u64;
        match self.create_child(parent, &entry, lease, call).await? {
            Some(child) => {
                let driven = self.driver.drive(child, call, true).await?;
                Ok(json!({"invocation_id": parent, "entry": index, "child": driven_name(&driven)}))
            }
            None => {
                // It existed: finish what a crashed dispatch may have left undone.
                let Some(child_id) = entry.kind.child() else {
                    return Ok(json!({"status": "not a call"}));
                };
                let Some(child) = self.invocations.get(child_id).await? else {
                    return Ok(json!({"status": "no child"}));
                };
                match &child.outcome {
                    Some(outcome) => self.driver.notify_caller(&child, outcome).await?,
                    None => {
                        self.attach(child, call, false).await?;
                    }
                }
                Ok(json!({"invocation_id": parent, "entry": index, "child": "existing"}))
            }
        }
    }

    /// Creates the child of a call or send entry and marks the entry dispatched; `Some` if this
    /// created it and it should start now. A delayed send's child is created at once but leased
    /// until it is due, and a schedule starts it then, so it never depends on the sender's
    /// journal later. A call to an unknown service or handler completes with a 404.
    async fn create_child(
        &self,
        parent: &InvocationId,
        entry: &durable_protocol::JournalEntry,
        lease_until: u64,
        call: &Call,
    ) -> Result<Option<Invocation>, OrchestratorError> {
        // Rounded down to the second like the schedule, so the start always finds it due.
        let due = match &entry.kind {
            EntryKind::Send {
                due_at_ms: Some(due),
                ..
            } if *due > now_millis() + 1000 => Some(due / 1000 * 1000),
            _ => None,
        };
        let lease_until = due.unwrap_or(lease_until);
        let (target, input, child, is_call) = match &entry.kind {
            EntryKind::Call {
                target,
                input,
                child,
            } => (target, input, child, true),
            EntryKind::Send {
                target,
                input,
                child,
                ..
            } => (target, input, child, false),
            _ => return Ok(None),
        };
        let registration = self
            .registry
            .lookup(&target.service)
            .await?
            .filter(|r| r.has_handler(&target.handler));
        let refused = match &registration {
            None => Some(TerminalFailure::new(
                404,
                format!("no handler {} is registered", target.display()),
            )),
            Some(r) => match (r.kind, &target.key) {
                (ServiceKind::Service, Some(_)) => Some(TerminalFailure::new(
                    400,
                    format!("{} is a service: call it without a key", target.service),
                )),
                (ServiceKind::Object | ServiceKind::Workflow, None) => Some(TerminalFailure::new(
                    400,
                    format!("{} is keyed: call it with a key", target.service),
                )),
                (ServiceKind::Workflow, Some(_))
                    if r.kind_of(&target.handler) == Some(HandlerKind::Workflow) =>
                {
                    Some(TerminalFailure::new(
                        400,
                        format!(
                            "{}: a workflow's run is submitted through the ingress \
                             (POST /{}/{{key}}/run), not called from a handler",
                            target.display(),
                            target.service
                        ),
                    ))
                }
                _ => None,
            },
        };
        if let Some(failure) = refused {
            tracing::warn!(%parent, entry = entry.index, "{}", failure.message);
            self.driver
                .journal
                .mark_dispatched(parent, entry.index)
                .await?;
            if is_call {
                self.driver
                    .journal
                    .complete(
                        parent,
                        entry.index,
                        durable_protocol::EntryTag::Call,
                        &StepResult::Failure(failure),
                    )
                    .await?;
                self.driver
                    .send_event(&ControlEvent::Resume {
                        invocation_id: parent.clone(),
                        entry: entry.index,
                    })
                    .await?;
            }
            return Ok(None);
        }
        let registration = registration.expect("refused when missing");
        let handler_kind = registration.kind_of(&target.handler);
        let new = NewInvocation {
            id: child.clone(),
            service: target.service.clone(),
            handler: target.handler.clone(),
            function_arn: registration.function_arn,
            input: input.clone(),
            idempotency_key: None,
            lease_until,
            released: false,
            caller: is_call.then(|| durable_store::invocations::Caller {
                invocation: parent.clone(),
                entry: entry.index,
            }),
            key: target.key.clone(),
            handler_kind,
        };
        if handler_kind == Some(HandlerKind::Exclusive) {
            // Into the object's inbox, due now or when a delayed send is due (a schedule
            // pumps the object then).
            self.arrive(&new, due.unwrap_or_else(now_millis), None)
                .await?;
            if let Some(due) = due {
                self.driver
                    .timers
                    .schedule_start(child, due, &call.function_arn)
                    .await?;
            }
            self.driver
                .journal
                .mark_dispatched(parent, entry.index)
                .await?;
            return Ok(None);
        }
        let created = self.invocations.create(&new).await?;
        if let Some(due) = due {
            // Scheduled (again, harmlessly, if it existed) before the entry counts as dispatched.
            self.driver
                .timers
                .schedule_start(child, due, &call.function_arn)
                .await?;
            self.driver
                .journal
                .mark_dispatched(parent, entry.index)
                .await?;
            return Ok(None);
        }
        self.driver
            .journal
            .mark_dispatched(parent, entry.index)
            .await?;
        Ok(match created {
            Created::New(inv) => Some(inv),
            Created::Existing(_) => None,
        })
    }

    /// Entry `index` completed: if the invocation is suspended on it, run it again here.
    async fn resume(
        &self,
        id: &InvocationId,
        index: u32,
        call: &Call,
    ) -> Result<serde_json::Value, OrchestratorError> {
        let Some(mut inv) = self.invocations.get(id).await? else {
            return Ok(json!({"invocation_id": id, "status": "unknown"}));
        };
        let lease = call.deadline_ms + LEASE_MARGIN.as_millis() as u64;
        if !self.invocations.resume(&mut inv, index, lease).await? {
            // Not suspended on it: its driver will see the completion (or it is finished).
            return Ok(json!({"invocation_id": id, "status": inv.status.as_str()}));
        }
        let driven = self.driver.drive(inv, call, false).await?;
        Ok(json!({"invocation_id": id, "status": driven_name(&driven)}))
    }

    /// Asks a handler Lambda what it serves and records it, pinned to the version that answered.
    async fn register(&self, function_arn: &str) -> Result<serde_json::Value, OrchestratorError> {
        let lambda_err = |e: String| OrchestratorError::Lambda {
            operation: "Invoke",
            message: e,
        };
        let payload = serde_json::to_vec(&HandlerRequest::Discover)
            .map_err(|e| OrchestratorError::Protocol(e.to_string()))?;
        let out = self
            .driver
            .lambda
            .invoke()
            .function_name(function_arn)
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(|e| lambda_err(aws_sdk_lambda::error::DisplayErrorContext(&e).to_string()))?;
        let body = out.payload.map(Blob::into_inner).unwrap_or_default();
        if let Some(fe) = out.function_error {
            return Err(lambda_err(format!(
                "discovery failed ({fe}): {}",
                String::from_utf8_lossy(&body)
            )));
        }
        let discovery: DiscoveryResponse = serde_json::from_slice(&body).map_err(|e| {
            OrchestratorError::Protocol(format!(
                "{function_arn} did not answer discovery like a durable handler: {e}"
            ))
        })?;
        if discovery.protocol_version != PROTOCOL_VERSION {
            return Err(OrchestratorError::Protocol(format!(
                "{function_arn} speaks protocol {}, this orchestrator speaks {PROTOCOL_VERSION}",
                discovery.protocol_version
            )));
        }
        if discovery.services.is_empty() {
            return Err(OrchestratorError::Protocol(format!(
                "{function_arn} serves no services"
            )));
        }
        for service in &discovery.services {
            check_kinds(service).map_err(|e| {
                OrchestratorError::Protocol(format!("{function_arn} serves {}: {e}", service.name))
            })?;
        }
        let pinned = pin_version(function_arn, out.executed_version.as_deref());
        let mut registered = Vec::new();
        for service in discovery.services {
            let reg = Registration {
                service: service.name,
                kind: service.kind,
                function_arn: pinned.clone(),
                kinds: service
                    .handlers
                    .iter()
                    .filter_map(|h| Some((h.name.clone(), h.kind?)))
                    .collect(),
                handlers: service.handlers.into_iter().map(|h| h.name).collect(),
            };
            self.registry.put(&reg).await?;
            tracing::info!(service = %reg.service, arn = %reg.function_arn, "registered");
            registered.push(json!({"service": reg.service, "function_arn": reg.function_arn, "handlers": reg.handlers}));
        }
        Ok(json!({ "registered": registered }))
    }
}

/// Objects give every handler a kind; a workflow has one `run` (its workflow handler) and
/// shared handlers; services give none.
fn check_kinds(service: &durable_protocol::ServiceDescriptor) -> Result<(), String> {
    let kinds: Vec<Option<HandlerKind>> = service.handlers.iter().map(|h| h.kind).collect();
    match service.kind {
        ServiceKind::Service if kinds.iter().any(Option::is_some) => {
            Err("a service's handlers have no kinds".into())
        }
        ServiceKind::Object
            if kinds
                .iter()
                .any(|k| !matches!(k, Some(HandlerKind::Exclusive | HandlerKind::Shared))) =>
        {
            Err("an object's handlers are exclusive or shared".into())
        }
        ServiceKind::Workflow => {
            let runs: Vec<&str> = service
                .handlers
                .iter()
                .filter(|h| h.kind == Some(HandlerKind::Workflow))
                .map(|h| h.name.as_str())
                .collect();
            if runs != ["run"] {
                return Err("a workflow has exactly one workflow handler, named run".into());
            }
            if kinds.iter().any(Option::is_none) {
                return Err("a workflow's other handlers are shared".into());
            }
            if kinds.contains(&Some(HandlerKind::Exclusive)) {
                return Err("a workflow has no exclusive handlers".into());
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn driven_name(driven: &Driven) -> &'static str {
    match driven {
        Driven::Finished(_) => "finished",
        Driven::Running => "running",
        Driven::Suspended => "suspended",
    }
}

fn join(names: &[HandlerName]) -> String {
    names
        .iter()
        .map(HandlerName::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The HTTP answer for where an invocation got to.
fn respond(id: &InvocationId, driven: Driven) -> FunctionUrlResponse {
    let response = match driven {
        Driven::Finished(Outcome::Completed(output)) => FunctionUrlResponse::json(200, &output),
        Driven::Finished(Outcome::Failed(failure)) => failure_response(id, &failure),
        Driven::Running | Driven::Suspended => FunctionUrlResponse::json(
            202,
            &json!({"invocation_id": id, "status": driven_name(&driven), "output": format!("/invocations/{id}/output")}),
        )
        .with_header("location", format!("/invocations/{id}/output")),
    };
    response.with_header("x-invocation-id", id.as_str())
}

fn failure_response(id: &InvocationId, failure: &TerminalFailure) -> FunctionUrlResponse {
    let status = if (400..=599).contains(&failure.code) {
        failure.code
    } else {
        500
    };
    let code = if failure.code == TerminalFailure::NON_DETERMINISM {
        "non_determinism"
    } else {
        "terminal_error"
    };
    FunctionUrlResponse::json(
        status,
        &json!({"code": code, "message": failure.message, "invocation_id": id}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_carry_status_code_and_id() {
        let id = InvocationId::random();
        let ok = respond(&id, Driven::Finished(Outcome::Completed(json!({"a": 1}))));
        assert_eq!(ok.status_code, 200);
        assert_eq!(ok.body, r#"{"a":1}"#);
        assert_eq!(ok.headers["x-invocation-id"], id.as_str());
        let failed = respond(
            &id,
            Driven::Finished(Outcome::Failed(TerminalFailure::new(409, "sold out"))),
        );
        assert_eq!(failed.status_code, 409);
        let body: serde_json::Value = serde_json::from_str(&failed.body).unwrap();
        assert_eq!(body["code"], "terminal_error");
        assert_eq!(body["message"], "sold out");
        let odd = respond(
            &id,
            Driven::Finished(Outcome::Failed(TerminalFailure::new(200, "?"))),
        );
        assert_eq!(odd.status_code, 500);
        let running = respond(&id, Driven::Running);
        assert_eq!(running.status_code, 202);
        assert!(running.headers["location"].ends_with("/output"));
    }
}
