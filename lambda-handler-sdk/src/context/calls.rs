//! Calls and sends to other handlers. Each is a journal entry naming a child invocation whose
//! id derives from (this invocation, entry index), so retries never start a second child; the
//! attempt's outbox records them in program order and starts the children.

use crate::context::timers::DurableContext as _;
use crate::context::timers::DurableFuture;
use crate::context::{Context, Sealed};
use crate::error::TerminalError;
use crate::runtime::attempt::Attempt;
use durable_protocol::clock::now_millis;
use durable_protocol::keyed::ObjectRef;
use durable_protocol::{
    EntryKind, HandlerName, InvocationId, ServiceName, StepResult, Target, TerminalFailure,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

fn target(service: &str, key: Option<&str>, handler: &str) -> Result<Target, TerminalError> {
    let invalid = |e: durable_protocol::IdError| TerminalError::new(e.to_string()).with_code(400);
    Ok(Target {
        service: ServiceName::new(service).map_err(invalid)?,
        key: key
            .map(durable_protocol::ObjectKey::new)
            .transpose()
            .map_err(invalid)?,
        handler: HandlerName::new(handler).map_err(invalid)?,
    })
}

fn json_input(input: &impl Serialize) -> Result<serde_json::Value, TerminalError> {
    serde_json::to_value(input)
        .map_err(|e| TerminalError::new(format!("the input does not serialize to JSON: {e}")))
}

async fn await_call<O: DeserializeOwned>(
    inv: Arc<Attempt>,
    index: u32,
    recorded: oneshot::Receiver<()>,
) -> Result<O, TerminalError> {
    if recorded.await.is_err() {
        return std::future::pending().await; // the worker aborted the attempt
    }
    crate::runtime::journal::await_entry(inv, index).await
}

/// Calls and one-way sends to other handlers. Implemented by every context.
pub trait CallContext: Sealed {
    /// The plain context underneath, for generated typed clients.
    #[doc(hidden)]
    fn as_context(&self) -> &Context {
        self.context()
    }

    /// Calls `service/handler` with `input` and returns the future of its output. The call is
    /// started at once (exactly once, however often this invocation is retried); a terminal
    /// error of the callee comes back as a [`TerminalError`] with its code and message.
    fn call<O: DeserializeOwned + Send + 'static>(
        &self,
        service: &str,
        handler: &str,
        input: &impl Serialize,
    ) -> DurableFuture<O> {
        call_target(
            self.context(),
            target(service, None, handler),
            input,
            Ok(Naming::Own),
        )
    }

    /// Calls handler `handler` of the virtual object (or workflow) `service` at `key`. An
    /// exclusive handler waits for its turn on that key.
    fn object_call<O: DeserializeOwned + Send + 'static>(
        &self,
        service: &str,
        key: &str,
        handler: &str,
        input: &impl Serialize,
    ) -> DurableFuture<O> {
        call_target(
            self.context(),
            target(service, Some(key), handler),
            input,
            Ok(Naming::Own),
        )
    }

    /// Sends `input` to handler `handler` of the object (or workflow) `service` at `key`
    /// without waiting. Returns the child's invocation id.
    fn object_send(
        &self,
        service: &str,
        key: &str,
        handler: &str,
        input: &impl Serialize,
    ) -> Result<InvocationId, TerminalError> {
        send_at(self.context(), service, Some(key), handler, input, None)
    }

    /// Like [`CallContext::object_send`], started after `delay`: an exclusive handler joins its
    /// key's queue when it is due.
    fn object_send_after(
        &self,
        delay: Duration,
        service: &str,
        key: &str,
        handler: &str,
        input: &impl Serialize,
    ) -> Result<InvocationId, TerminalError> {
        let due = now_millis() + delay.as_millis() as u64;
        send_at(
            self.context(),
            service,
            Some(key),
            handler,
            input,
            Some(due),
        )
    }

    /// Sends `input` to `service/handler` without waiting for it: the child starts at once,
    /// while this handler keeps running. Returns the child's invocation id.
    fn send(
        &self,
        service: &str,
        handler: &str,
        input: &impl Serialize,
    ) -> Result<InvocationId, TerminalError> {
        send_at(self.context(), service, None, handler, input, None)
    }

    /// Like [`CallContext::send`], but the child starts after `delay` (an EventBridge Scheduler
    /// schedule when the delay is long). The delay runs from this call, once.
    fn send_after(
        &self,
        delay: Duration,
        service: &str,
        handler: &str,
        input: &impl Serialize,
    ) -> Result<InvocationId, TerminalError> {
        let due = now_millis() + delay.as_millis() as u64;
        send_at(self.context(), service, None, handler, input, Some(due))
    }

    /// Like [`CallContext::send`], idempotent by `idempotency_key`: the child is the
    /// invocation that key names for `service/handler`, whoever sends it (another invocation,
    /// or an HTTP request with the header `idempotency-key`), so it starts once; sending it
    /// again returns the same id. A malformed key is a terminal `400`.
    fn send_idempotent(
        &self,
        service: &str,
        handler: &str,
        idempotency_key: &str,
        input: &impl Serialize,
    ) -> Result<InvocationId, TerminalError> {
        send_keyed(
            self.context(),
            (service, None, handler),
            idempotency_key,
            input,
        )
    }

    /// [`CallContext::send_idempotent`] to handler `handler` of object `service` at `key`.
    fn object_send_idempotent(
        &self,
        service: &str,
        key: &str,
        handler: &str,
        idempotency_key: &str,
        input: &impl Serialize,
    ) -> Result<InvocationId, TerminalError> {
        send_keyed(
            self.context(),
            (service, Some(key), handler),
            idempotency_key,
            input,
        )
    }

    /// Like [`CallContext::call`], idempotent by `idempotency_key`: the child is the
    /// invocation that key names for `service/handler` (the same one an idempotent send or an
    /// HTTP request with the header `idempotency-key` names), so it runs once, and every
    /// caller with the key gets its result, also one that calls while it runs or after it
    /// finished (until its retention ends). A parent's kill or cancellation does not reach
    /// such a shared child. A malformed key is a terminal `400`.
    ///
    /// ```no_run
    /// # use lambda_handler_sdk::prelude::*;
    /// async fn checkout(ctx: Context, order: String) -> Result<String, HandlerError> {
    ///     let receipt: String = ctx
    ///         .call_idempotent("payments", "charge", &format!("charge-{order}"), &order)
    ///         .await?;
    ///     Ok(receipt)
    /// }
    /// ```
    fn call_idempotent<O: DeserializeOwned + Send + 'static>(
        &self,
        service: &str,
        handler: &str,
        idempotency_key: &str,
        input: &impl Serialize,
    ) -> DurableFuture<O> {
        call_target(
            self.context(),
            target(service, None, handler),
            input,
            idempotency_key_of(idempotency_key).map(Naming::Idempotent),
        )
    }

    /// [`CallContext::call_idempotent`] of handler `handler` of object `service` at `key`.
    fn object_call_idempotent<O: DeserializeOwned + Send + 'static>(
        &self,
        service: &str,
        key: &str,
        handler: &str,
        idempotency_key: &str,
        input: &impl Serialize,
    ) -> DurableFuture<O> {
        call_target(
            self.context(),
            target(service, Some(key), handler),
            input,
            idempotency_key_of(idempotency_key).map(Naming::Idempotent),
        )
    }

    /// Submits the workflow `service` at `key` with `input` (as `POST /{service}/{key}/run`
    /// does) and waits for its `run`'s result. A workflow runs once per key: if that key was
    /// submitted already, `input` is ignored and this waits for the run there is (or returns
    /// its result if it finished).
    fn workflow_call<O: DeserializeOwned + Send + 'static>(
        &self,
        service: &str,
        key: &str,
        input: &impl Serialize,
    ) -> DurableFuture<O> {
        call_target(
            self.context(),
            target(service, Some(key), crate::Workflow::RUN),
            input,
            Ok(Naming::WorkflowRun),
        )
    }

    /// Submits the workflow `service` at `key` with `input` without waiting; returns its
    /// run's invocation id (the existing run's, if the key was submitted already).
    fn workflow_submit(
        &self,
        service: &str,
        key: &str,
        input: &impl Serialize,
    ) -> Result<InvocationId, TerminalError> {
        let ctx = self.context();
        let index = ctx.allocate();
        send_target(
            ctx,
            index,
            target(service, Some(key), crate::Workflow::RUN),
            input,
            None,
            Ok(Naming::WorkflowRun),
        )
    }

    /// Waits for the result of the workflow `service` at `key`, submitted by someone else
    /// (or earlier). A key that was never submitted fails with a terminal `404`.
    fn workflow_attach<O: DeserializeOwned + Send + 'static>(
        &self,
        service: &str,
        key: &str,
    ) -> DurableFuture<O> {
        call_target(
            self.context(),
            target(service, Some(key), crate::Workflow::RUN),
            &serde_json::Value::Null,
            Ok(Naming::Attach),
        )
    }

    /// Resolves promise `name` of the workflow `service` at `key` with `value`, as
    /// `POST /{service}/{key}/promises/{name}/resolve` does: its waiters (the run, shared
    /// handlers) resume with it. Recorded as a step named `"resolve promise"`, so a replay
    /// does not send it again; the first completion of a promise wins (a later one is
    /// ignored, and logged by the orchestrator). A promise may be resolved before the
    /// workflow waits for it, once its key was submitted (a key never submitted has no
    /// promises: the completion is refused and logged).
    ///
    /// ```no_run
    /// # use lambda_handler_sdk::prelude::*;
    /// async fn approve(ctx: Context, order: String) -> Result<(), HandlerError> {
    ///     ctx.resolve_workflow_promise("signup", &order, "approved", &true).await?;
    ///     Ok(())
    /// }
    /// ```
    fn resolve_workflow_promise<'a>(
        &'a self,
        service: &'a str,
        key: &'a str,
        name: &'a str,
        value: &impl Serialize,
    ) -> impl std::future::Future<Output = Result<(), TerminalError>> + Send + 'a {
        let result = serde_json::to_value(value)
            .map(StepResult::Value)
            .map_err(|e| TerminalError::new(format!("the value does not serialize to JSON: {e}")));
        complete_promise(
            self.context(),
            "resolve promise",
            (service, key, name),
            result,
        )
    }

    /// Rejects promise `name` of the workflow `service` at `key`: its waiters fail with a
    /// terminal error (code 500) carrying `message`. Recorded as a step named `"reject
    /// promise"`, like [`CallContext::resolve_workflow_promise`].
    fn reject_workflow_promise<'a>(
        &'a self,
        service: &'a str,
        key: &'a str,
        name: &'a str,
        message: &'a str,
    ) -> impl std::future::Future<Output = Result<(), TerminalError>> + Send + 'a {
        let failure = TerminalFailure::new(TerminalFailure::INTERNAL, message);
        complete_promise(
            self.context(),
            "reject promise",
            (service, key, name),
            Ok(StepResult::Failure(failure)),
        )
    }

    /// Cancels `child`, an invocation this handler called or sent (the id `send` returned, or
    /// [`DurableFuture::invocation_id`] of a call), cooperatively, as
    /// `POST /invocations/{child}/cancel` does: the child sees a terminal `409 cancelled` at
    /// its next durable await and may compensate; a call's future then fails with it. A child
    /// that finished already is left as it is. Recorded as a step named `"cancel child"`, so
    /// a replay does not send it again. An id this handler did not make fails with a terminal
    /// `400` (an operator cancels other invocations through the orchestrator's API).
    ///
    /// ```no_run
    /// # use lambda_handler_sdk::prelude::*;
    /// async fn abandon(ctx: Context, order: String) -> Result<(), HandlerError> {
    ///     let reminder = ctx.send_after(std::time::Duration::from_secs(3600), "reminders", "send", &order)?;
    ///     ctx.cancel(&reminder).await?;
    ///     Ok(())
    /// }
    /// ```
    fn cancel<'a>(
        &'a self,
        child: &'a InvocationId,
    ) -> impl std::future::Future<Output = Result<(), TerminalError>> + Send + 'a {
        cancel_child(self.context(), child)
    }
}

/// `ctx.cancel(child)`: a step that sends the `cancel_child` event for the entry that made it.
async fn cancel_child(ctx: &Context, child: &InvocationId) -> Result<(), TerminalError> {
    let index = ctx.inner.child_entry(child).ok_or_else(|| {
        TerminalError::new(format!(
            "{child} is not a call or send of this handler: ctx.cancel cancels only the \
             invocation's own children"
        ))
        .with_code(durable_protocol::TerminalFailure::BAD_REQUEST)
    });
    let inv = ctx.inner.clone();
    ctx.run("cancel child", move || async move {
        let index = index?;
        // The call's entry is recorded (and its dispatch sent) before it is cancelled.
        inv.flush().await;
        let dispatcher = inv.orchestrator("cancel the child")?;
        dispatcher.cancel_child(&inv.id, index).await.map_err(|e| {
            crate::error::HandlerError::retryable(format!("could not cancel child {index}: {e}"))
        })
    })
    .await
}

/// How a call or send names its child.
enum Naming {
    /// A child of its own, made from the caller and the entry.
    Own,
    /// The child the idempotency key names for the target (shared with whoever uses it).
    Idempotent(durable_protocol::IdempotencyKey),
    /// The run of the workflow at the target's key (one per key).
    WorkflowRun,
    /// The existing run of the workflow at the target's key, only waited for.
    Attach,
}

impl Naming {
    fn child(&self, ctx: &Context, index: u32, target: &Target) -> InvocationId {
        let key = match self {
            Naming::Idempotent(k) => Some(k),
            _ => None,
        };
        let run_of_workflow = matches!(self, Naming::WorkflowRun | Naming::Attach);
        target.child_id(&ctx.inner.id, index, key, run_of_workflow)
    }

    fn key(self) -> Option<durable_protocol::IdempotencyKey> {
        match self {
            Naming::Idempotent(k) => Some(k),
            _ => None,
        }
    }
}

fn idempotency_key_of(key: &str) -> Result<durable_protocol::IdempotencyKey, TerminalError> {
    durable_protocol::IdempotencyKey::new(key)
        .map_err(|e| TerminalError::new(e.to_string()).with_code(400))
}

/// `ctx.resolve_workflow_promise` / `reject_workflow_promise`: a step that sends the `complete_promise` event.
async fn complete_promise(
    ctx: &Context,
    step: &str,
    (service, key, name): (&str, &str, &str),
    result: Result<StepResult, TerminalError>,
) -> Result<(), TerminalError> {
    let bad = |e: String| TerminalError::new(e).with_code(TerminalFailure::BAD_REQUEST);
    let workflow = ServiceName::new(service)
        .and_then(|service| {
            Ok(ObjectRef {
                service,
                key: durable_protocol::ObjectKey::new(key)?,
            })
        })
        .map_err(|e| bad(e.to_string()))
        .and_then(|w| {
            durable_protocol::keyed::check_name("promise name", name).map_err(bad)?;
            Ok(w)
        });
    let inv = ctx.inner.clone();
    ctx.run(step, move || async move {
        let (workflow, result) = (workflow?, result?);
        // A submit just before is recorded first: the orchestrator starts it before completing.
        inv.flush().await;
        let dispatcher = inv.orchestrator("complete the promise")?;
        dispatcher
            .complete_promise(&inv.id, &workflow, name, result)
            .await
            .map_err(|e| {
                crate::error::HandlerError::retryable(format!(
                    "could not complete promise {name} of {workflow}: {e}"
                ))
            })
    })
    .await
}

fn call_target<O: DeserializeOwned + Send + 'static>(
    ctx: &Context,
    target: Result<Target, TerminalError>,
    input: &impl Serialize,
    naming: Result<Naming, TerminalError>,
) -> DurableFuture<O> {
    let index = ctx.allocate();
    let prepared = target.and_then(|t| Ok((t, json_input(input)?, naming?)));
    match prepared {
        Err(e) => DurableFuture::new(ctx, index, Box::pin(async move { Err(e) })),
        Ok((target, input, naming)) => {
            let child = naming.child(ctx, index, &target);
            ctx.inner.note_child(&child, index);
            let attach = matches!(naming, Naming::Attach);
            let recorded = ctx.inner.enqueue(
                index,
                EntryKind::Call {
                    target,
                    input,
                    child: child.clone(),
                    idempotency_key: naming.key(),
                    attach,
                },
            );
            let inner = Box::pin(await_call(ctx.inner.clone(), index, recorded));
            DurableFuture::new(ctx, index, inner).of_call(child)
        }
    }
}

/// Takes the send's journal index now, in program order, and queues it.
fn send_at(
    ctx: &Context,
    service: &str,
    key: Option<&str>,
    handler: &str,
    input: &impl Serialize,
    due_at_ms: Option<u64>,
) -> Result<InvocationId, TerminalError> {
    let index = ctx.allocate();
    send_target(
        ctx,
        index,
        target(service, key, handler),
        input,
        due_at_ms,
        Ok(Naming::Own),
    )
}

/// An idempotent send: its child is the invocation `idempotency_key` names for the target.
fn send_keyed(
    ctx: &Context,
    (service, key, handler): (&str, Option<&str>, &str),
    key_of_send: &str,
    input: &impl Serialize,
) -> Result<InvocationId, TerminalError> {
    let index = ctx.allocate();
    send_target(
        ctx,
        index,
        target(service, key, handler),
        input,
        None,
        idempotency_key_of(key_of_send).map(Naming::Idempotent),
    )
}

fn send_target(
    ctx: &Context,
    index: u32,
    target: Result<Target, TerminalError>,
    input: &impl Serialize,
    due_at_ms: Option<u64>,
    naming: Result<Naming, TerminalError>,
) -> Result<InvocationId, TerminalError> {
    let target = target?;
    let input = json_input(input)?;
    let naming = naming?;
    let child = naming.child(ctx, index, &target);
    ctx.inner.note_child(&child, index);
    // Replay keeps the first due time.
    let due_at_ms = match ctx.inner.recorded(index).map(|e| &e.kind) {
        Some(EntryKind::Send { due_at_ms, .. }) => *due_at_ms,
        _ => due_at_ms,
    };
    let _recorded = ctx.inner.enqueue(
        index,
        EntryKind::Send {
            target,
            input,
            child: child.clone(),
            due_at_ms,
            idempotency_key: naming.key(),
        },
    );
    Ok(child)
}
