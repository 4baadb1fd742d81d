//! The services a handler Lambda serves, and the execution of one push.

use crate::context::keyed::{
    ObjectContext, SharedObjectContext, SharedWorkflowContext, WorkflowContext,
};
use crate::context::Context;
use crate::error::{ErrorKind, HandlerError};
use crate::runtime::attempt::{Abort, Attempt, BoxFuture, HandlerStore, Limits, Payloads};
use durable_protocol::{
    DiscoveryResponse, HandlerDescriptor, HandlerKind, HandlerName, HandlerResponse, InvokeRequest,
    ServiceDescriptor, ServiceKind, ServiceName, TerminalFailure, PROTOCOL_VERSION,
};
use durable_store::PayloadError;
use durable_store::PayloadStore;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

type ErasedHandler = Arc<
    dyn Fn(
            Context,
            serde_json::Value,
        ) -> BoxFuture<'static, Result<serde_json::Value, HandlerError>>
        + Send
        + Sync,
>;

/// A service: a name and its handlers.
pub struct Service {
    name: ServiceName,
    kind: ServiceKind,
    handlers: BTreeMap<HandlerName, (ErasedHandler, Option<HandlerKind>)>,
}

fn erase<C, I, O, F, Fut>(wrap: fn(Context) -> C, handler: F) -> ErasedHandler
where
    C: Send + 'static,
    I: DeserializeOwned + Send + 'static,
    O: Serialize + Send + 'static,
    F: Fn(C, I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, HandlerError>> + Send + 'static,
{
    let handler = Arc::new(handler);
    Arc::new(move |ctx, input| {
        let handler = handler.clone();
        Box::pin(async move {
            let input: I = serde_json::from_value(input).map_err(|e| {
                HandlerError(ErrorKind::Terminal(
                    crate::TerminalError::new(format!("invalid input: {e}")).with_code(400),
                ))
            })?;
            let output = handler(wrap(ctx), input).await?;
            serde_json::to_value(output).map_err(|e| {
                HandlerError(ErrorKind::Terminal(crate::TerminalError::new(format!(
                    "the handler's output does not serialize to JSON: {e}"
                ))))
            })
        })
    })
}

impl Service {
    /// A service named `name`.
    ///
    /// # Panics
    /// If the name is not a valid service name (letters, digits, `_`, `-`; starting with a
    /// letter; at most 64 characters): a programming error, caught at start-up.
    pub fn new(name: &str) -> Self {
        Self::of_kind(name, ServiceKind::Service)
    }

    fn of_kind(name: &str, kind: ServiceKind) -> Self {
        let name = ServiceName::new(name).unwrap_or_else(|e| panic!("invalid service name: {e}"));
        Self {
            name,
            kind,
            handlers: BTreeMap::new(),
        }
    }

    fn add(mut self, name: &str, handler: ErasedHandler, kind: Option<HandlerKind>) -> Self {
        let hname = HandlerName::new(name).unwrap_or_else(|e| panic!("invalid handler name: {e}"));
        if self.handlers.insert(hname, (handler, kind)).is_some() {
            panic!("handler {name:?} registered twice in service {}", self.name);
        }
        self
    }

    /// Adds a handler: an `async fn(Context, I) -> Result<O, HandlerError>` with serde-typed
    /// input and output.
    ///
    /// # Panics
    /// If the handler name is invalid or taken twice.
    pub fn handler<I, O, F, Fut>(self, name: &str, handler: F) -> Self
    where
        I: DeserializeOwned + Send + 'static,
        O: Serialize + Send + 'static,
        F: Fn(Context, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, HandlerError>> + Send + 'static,
    {
        self.add(name, erase(|ctx| ctx, handler), None)
    }
}

/// A virtual object: handlers addressed by key (`POST /{object}/{key}/{handler}`), with state
/// per key. Exclusive handlers of one key run one at a time in arrival order; shared handlers
/// run concurrently and only read.
///
/// ```no_run
/// use lambda_handler_sdk::prelude::*;
///
/// async fn add(ctx: ObjectContext, n: i64) -> Result<i64, HandlerError> {
///     let total = ctx.get::<i64>("total").await?.unwrap_or(0) + n;
///     ctx.set("total", &total)?;
///     Ok(total)
/// }
///
/// async fn get(ctx: SharedObjectContext, _: ()) -> Result<i64, HandlerError> {
///     Ok(ctx.get::<i64>("total").await?.unwrap_or(0))
/// }
///
/// let counter = VirtualObject::new("counter").exclusive("add", add).shared("get", get);
/// ```
#[derive(Debug)]
pub struct VirtualObject(Service);

impl VirtualObject {
    /// A virtual object named `name` (panics on an invalid name, like [`Service::new`]).
    pub fn new(name: &str) -> Self {
        Self(Service::of_kind(name, ServiceKind::Object))
    }

    /// Adds an exclusive handler: one at a time per key, reads and writes state.
    pub fn exclusive<I, O, F, Fut>(self, name: &str, handler: F) -> Self
    where
        I: DeserializeOwned + Send + 'static,
        O: Serialize + Send + 'static,
        F: Fn(ObjectContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, HandlerError>> + Send + 'static,
    {
        Self(self.0.add(
            name,
            erase(ObjectContext::new, handler),
            Some(HandlerKind::Exclusive),
        ))
    }

    /// Adds a shared handler: runs concurrently with anything, reads state only.
    pub fn shared<I, O, F, Fut>(self, name: &str, handler: F) -> Self
    where
        I: DeserializeOwned + Send + 'static,
        O: Serialize + Send + 'static,
        F: Fn(SharedObjectContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, HandlerError>> + Send + 'static,
    {
        Self(self.0.add(
            name,
            erase(SharedObjectContext::new, handler),
            Some(HandlerKind::Shared),
        ))
    }
}

/// A workflow: `run` executes once per key (`POST /{workflow}/{key}/run`; a second submission
/// finds the first), shared handlers interact with it through state and durable promises.
#[derive(Debug)]
pub struct Workflow(Service);

impl Workflow {
    /// A workflow named `name` whose `run` handler is `run`.
    pub fn new<I, O, F, Fut>(name: &str, run: F) -> Self
    where
        I: DeserializeOwned + Send + 'static,
        O: Serialize + Send + 'static,
        F: Fn(WorkflowContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, HandlerError>> + Send + 'static,
    {
        Self(Service::of_kind(name, ServiceKind::Workflow).add(
            Self::RUN,
            erase(WorkflowContext::new, run),
            Some(HandlerKind::Workflow),
        ))
    }

    /// The name of a workflow's main handler.
    pub const RUN: &'static str = "run";

    /// Adds a shared handler (signals, queries): reads state, completes and peeks promises.
    pub fn shared<I, O, F, Fut>(self, name: &str, handler: F) -> Self
    where
        I: DeserializeOwned + Send + 'static,
        O: Serialize + Send + 'static,
        F: Fn(SharedWorkflowContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, HandlerError>> + Send + 'static,
    {
        Self(self.0.add(
            name,
            erase(SharedWorkflowContext::new, handler),
            Some(HandlerKind::Shared),
        ))
    }
}

impl From<VirtualObject> for Service {
    fn from(o: VirtualObject) -> Service {
        o.0
    }
}

impl From<Workflow> for Service {
    fn from(w: Workflow) -> Service {
        w.0
    }
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field(
                "handlers",
                &self
                    .handlers
                    .iter()
                    .map(|(name, (_, kind))| (name, kind))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Everything one handler Lambda serves.
#[derive(Debug)]
pub struct Endpoint {
    services: BTreeMap<ServiceName, Service>,
    in_process_wait: Duration,
}

impl Default for Endpoint {
    fn default() -> Self {
        let in_process_wait = std::env::var("DURABLE_IN_PROCESS_WAIT_MS")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .map_or(Self::DEFAULT_IN_PROCESS_WAIT, Duration::from_millis);
        Self {
            services: BTreeMap::new(),
            in_process_wait,
        }
    }
}

impl Endpoint {
    /// Waits up to this long happen in-process by default (a longer sleep suspends the
    /// invocation, which then costs nothing until its timer fires).
    pub const DEFAULT_IN_PROCESS_WAIT: Duration = Duration::from_secs(2);

    /// An endpoint with no services yet. The in-process wait limit is
    /// `DURABLE_IN_PROCESS_WAIT_MS` from the environment, else 2 s.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets how long a timer may be waited in-process before the invocation suspends instead.
    pub fn in_process_wait(mut self, limit: Duration) -> Self {
        self.in_process_wait = limit;
        self
    }

    /// Adds a service.
    ///
    /// # Panics
    /// If a service of the same name was added before.
    pub fn service(mut self, service: impl Into<Service>) -> Self {
        let service = service.into();
        let name = service.name.clone();
        if self.services.insert(name.clone(), service).is_some() {
            panic!("service {name} added twice");
        }
        self
    }

    /// What this endpoint serves, for the orchestrator's registry.
    pub fn discover(&self) -> DiscoveryResponse {
        DiscoveryResponse {
            protocol_version: PROTOCOL_VERSION,
            services: self
                .services
                .values()
                .map(|s| ServiceDescriptor {
                    name: s.name.clone(),
                    kind: s.kind,
                    handlers: s
                        .handlers
                        .iter()
                        .map(|(h, (_, kind))| HandlerDescriptor {
                            name: h.clone(),
                            kind: *kind,
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// Runs (or replays) one pushed invocation until it completes, fails or stops early.
    pub(crate) async fn execute(
        &self,
        req: InvokeRequest,
        sink: Arc<dyn HandlerStore>,
        dispatcher: Arc<dyn crate::runtime::ops::Dispatcher>,
        s3: aws_sdk_s3::Client,
        deadline_ms: u64,
    ) -> HandlerResponse {
        use tracing::Instrument;
        let payloads = Arc::new(PayloadStore::new(s3, req.bucket.clone(), req.limits));
        // Every log line of this attempt names its invocation, attempt and trace.
        let span = tracing::info_span!(
            "attempt",
            invocation_id = %req.invocation_id,
            service = %req.service,
            handler = %req.handler,
            attempt = req.attempt,
            trace_id = req
                .traceparent
                .as_deref()
                .and_then(|t| t.split('-').nth(1))
                .unwrap_or_default(),
        );
        self.run_invocation(req, sink, dispatcher, payloads, deadline_ms)
            .instrument(span)
            .await
    }

    /// [`Endpoint::execute`] with its large values in `payloads`.
    pub(crate) async fn run_invocation(
        &self,
        req: InvokeRequest,
        sink: Arc<dyn HandlerStore>,
        dispatcher: Arc<dyn crate::runtime::ops::Dispatcher>,
        payloads: Arc<dyn Payloads>,
        deadline_ms: u64,
    ) -> HandlerResponse {
        self.run_invocation_with(req, sink, dispatcher, payloads, deadline_ms, None)
            .await
    }

    /// [`Endpoint::run_invocation`] with step failures injected by `faults` (test runners).
    pub(crate) async fn run_invocation_with(
        &self,
        mut req: InvokeRequest,
        sink: Arc<dyn HandlerStore>,
        dispatcher: Arc<dyn crate::runtime::ops::Dispatcher>,
        payloads: Arc<dyn Payloads>,
        deadline_ms: u64,
        faults: Option<Arc<dyn crate::runtime::faults::StepFaults>>,
    ) -> HandlerResponse {
        let Some((handler, handler_kind)) = self
            .services
            .get(&req.service)
            .and_then(|s| s.handlers.get(&req.handler))
            .cloned()
        else {
            return HandlerResponse::Failed {
                failure: TerminalFailure::new(
                    404,
                    format!("this Lambda does not serve {}/{}", req.service, req.handler),
                ),
                tail: None,
            };
        };
        let limits = Limits {
            in_process_wait: self.in_process_wait,
            deadline_ms,
        };
        let retry = |message: String| HandlerResponse::Retryable {
            message,
            step: None,
            retry_after_ms: None,
        };
        if req.journal_in_store {
            match sink.load(&req.invocation_id).await {
                Ok(journal) => req.journal = journal,
                Err(e) => return retry(format!("could not read the journal: {e}")),
            }
        }
        match payloads.resolve(std::mem::take(&mut req.input)).await {
            Ok(input) => req.input = input,
            Err(e) => return retry(format!("could not read the input: {e}")),
        }
        let key = req.service_key.invocation_key(&req.invocation_id);
        let headers = std::mem::take(&mut req.headers);
        // A cancellation that an entry carries already reached the handler (one time only).
        let carried = req
            .journal
            .iter()
            .any(durable_protocol::JournalEntry::carries_cancellation);
        let cancel = req.cancel && !carried;
        let inv = Arc::new(Attempt::new(
            (req.invocation_id, key),
            durable_store::Writer {
                epoch: req.epoch,
                expires_at: req.journal_expires_at,
            },
            req.journal,
            req.step_failures,
            sink,
            limits,
            payloads,
        ));
        if handler_kind.is_some() {
            match crate::context::keyed::object_of(&req.service, req.key.take()) {
                Ok(object) => {
                    let _ = inv.keyed.set(crate::runtime::keyed::Keyed::new(
                        object,
                        req.state.take(),
                        handler_kind == Some(HandlerKind::Workflow),
                    ));
                }
                Err(failure) => {
                    return HandlerResponse::Failed {
                        failure,
                        tail: None,
                    }
                }
            }
        }
        let _ = inv.headers.set(headers);
        if cancel {
            inv.cancel_pending();
        } else if carried {
            inv.cancel_seen();
        }
        if let Some(faults) = faults {
            let _ = inv.faults.set(faults);
        }
        let _ = inv.dispatcher.set(dispatcher.clone());
        let ctx = Context::new(inv.clone());
        let (ops, ops_rx) = tokio::sync::mpsc::unbounded_channel();
        inv.set_outbox(ops);
        // Spawned tasks keep the attempt's span, so their log lines name the invocation.
        let outbox = tokio::spawn(tracing::Instrument::in_current_span(
            crate::runtime::outbox::outbox_worker(inv.clone(), dispatcher, ops_rx),
        ));
        // Spawned so that a panic in user code becomes a retryable failure with its message.
        let on_park = {
            let inv = inv.clone();
            Box::new(move || inv.write_deferred_on_park())
        };
        let tracked = crate::runtime::idle::Tracked::new(
            crate::replay_log::scoped(inv.clone(), handler(ctx, req.input)),
            inv.progress.idleness.clone(),
            inv.progress.changed.clone(),
            on_park,
        );
        let mut task = tokio::spawn(tracing::Instrument::in_current_span(tracked));
        let outcome = tokio::select! {
            biased;
            reason = inv.aborted() => Err(reason),
            joined = &mut task => Ok(joined),
            () = inv.watch_for_suspension() => unreachable!("the watcher ends by aborting"),
        };
        // Sends queued by a handler that finished must be recorded and dispatched first.
        let outcome = match outcome {
            Ok(joined) => tokio::select! {
                biased;
                reason = inv.aborted() => Err(reason),
                () = inv.flush() => Ok(joined),
            },
            aborted => aborted,
        };
        task.abort();
        outbox.abort();
        // A handler may finish after an operation aborted (e.g. it dropped the step's future):
        // the abort still decides.
        let outcome = match (outcome, inv.abort_reason()) {
            (Ok(_), Some(reason)) => Err(reason),
            (other, _) => other,
        };
        let response = match outcome {
            Err(reason) => aborted(reason),
            Ok(Ok(Ok(output))) => HandlerResponse::Completed { output, tail: None },
            Ok(Ok(Err(HandlerError(ErrorKind::Terminal(t))))) => HandlerResponse::Failed {
                failure: t.into(),
                tail: None,
            },
            Ok(Ok(Err(HandlerError(ErrorKind::Retryable(message))))) => {
                HandlerResponse::Retryable {
                    message,
                    step: None,
                    retry_after_ms: None,
                }
            }
            Ok(Err(join_error)) => {
                let message = match join_error.try_into_panic() {
                    Ok(panic) => panic
                        .downcast_ref::<&str>()
                        .map(std::string::ToString::to_string)
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic payload".into()),
                    Err(e) => e.to_string(),
                };
                HandlerResponse::Retryable {
                    message: format!("handler panicked: {message}"),
                    step: None,
                    retry_after_ms: None,
                }
            }
        };
        let response = settle(&inv, response).await;
        match &response {
            HandlerResponse::Suspended { .. } => {
                durable_protocol::crash_point!("sdk.answer.suspended");
            }
            HandlerResponse::Completed { .. } => {
                durable_protocol::crash_point!("sdk.answer.completed");
            }
            _ => {}
        }
        response
    }
}

/// Completes an answer: an outcome takes the deferred step entry along (the orchestrator
/// records both in one write) and a large output goes to S3; any other answer writes the
/// deferred entry first, so that the next attempt replays it.
async fn settle(inv: &Attempt, response: HandlerResponse) -> HandlerResponse {
    match response {
        HandlerResponse::Completed { output, .. } => {
            // Outputs over the threshold go to S3 (Lambda answers at most 6 MB).
            match inv.payloads.offload_output(&inv.id, output).await {
                Ok(output) => HandlerResponse::Completed {
                    output,
                    tail: inv.take_deferred().await,
                },
                Err(PayloadError::TooLarge { size, max }) => HandlerResponse::Failed {
                    failure: TerminalFailure::new(
                        413,
                        format!("the output is {size} bytes, over the limit of {max}"),
                    ),
                    tail: inv.take_deferred().await,
                },
                Err(e) => {
                    let _ = inv.flush_deferred().await;
                    HandlerResponse::Retryable {
                        message: format!("could not store the output: {e}"),
                        step: None,
                        retry_after_ms: None,
                    }
                }
            }
        }
        HandlerResponse::Failed { failure, .. } => HandlerResponse::Failed {
            failure,
            tail: inv.take_deferred().await,
        },
        HandlerResponse::Suspended { waiting_on, timers } => match inv.flush_deferred().await {
            Ok(()) => HandlerResponse::Suspended { waiting_on, timers },
            Err(reason) => aborted(reason),
        },
        retryable @ HandlerResponse::Retryable { .. } => {
            // Best effort: a step that is not recorded runs again (at least once).
            let _ = inv.flush_deferred().await;
            retryable
        }
    }
}

/// The answer for an attempt that stopped early.
fn aborted(reason: Abort) -> HandlerResponse {
    match reason {
        Abort::Suspend { waiting_on, timers } => {
            tracing::info!(?waiting_on, "suspending until a completion arrives");
            HandlerResponse::Suspended { waiting_on, timers }
        }
        Abort::Fatal(failure) => {
            tracing::error!(code = failure.code, message = %failure.message, "invocation failed fatally");
            HandlerResponse::Failed {
                failure,
                tail: None,
            }
        }
        Abort::Retry {
            message,
            step,
            retry_after,
        } => HandlerResponse::Retryable {
            message,
            step,
            retry_after_ms: retry_after.map(|d| d.as_millis() as u64),
        },
    }
}
