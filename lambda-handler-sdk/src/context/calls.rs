//! Calls and sends to other handlers. Each is a journal entry naming a child invocation whose
//! id derives from (this invocation, entry index), so retries never start a second child; the
//! attempt's outbox records them in program order and starts the children.

use crate::context::timers::DurableContext as _;
use crate::context::timers::DurableFuture;
use crate::context::{Context, Sealed};
use crate::error::TerminalError;
use crate::runtime::attempt::Attempt;
use durable_protocol::clock::now_millis;
use durable_protocol::{EntryKind, HandlerName, InvocationId, ServiceName, Target};
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
        call_target(self.context(), target(service, None, handler), input)
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
        call_target(self.context(), target(service, Some(key), handler), input)
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
        let dispatcher = inv.dispatcher.get().cloned().ok_or_else(|| {
            crate::error::HandlerError::retryable("no orchestrator to cancel the child")
        })?;
        dispatcher.cancel_child(&inv.id, index).await.map_err(|e| {
            crate::error::HandlerError::retryable(format!("could not cancel child {index}: {e}"))
        })
    })
    .await
}

fn call_target<O: DeserializeOwned + Send + 'static>(
    ctx: &Context,
    target: Result<Target, TerminalError>,
    input: &impl Serialize,
) -> DurableFuture<O> {
    let index = ctx.allocate();
    let prepared = target.and_then(|t| Ok((t, json_input(input)?)));
    match prepared {
        Err(e) => DurableFuture::new(ctx, index, Box::pin(async move { Err(e) })),
        Ok((target, input)) => {
            let child = InvocationId::child(&ctx.inner.id, index, &target.service);
            ctx.inner.note_child(&child, index);
            let recorded = ctx.inner.enqueue(
                index,
                EntryKind::Call {
                    target,
                    input,
                    child: child.clone(),
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
        None,
    )
}

/// An idempotent send: its child is the invocation `idempotency_key` names for the target.
fn send_keyed(
    ctx: &Context,
    (service, key, handler): (&str, Option<&str>, &str),
    idempotency_key: &str,
    input: &impl Serialize,
) -> Result<InvocationId, TerminalError> {
    let index = ctx.allocate();
    let idempotency_key = durable_protocol::IdempotencyKey::new(idempotency_key)
        .map_err(|e| TerminalError::new(e.to_string()).with_code(400))?;
    send_target(
        ctx,
        index,
        target(service, key, handler),
        input,
        None,
        Some(idempotency_key),
    )
}

fn send_target(
    ctx: &Context,
    index: u32,
    target: Result<Target, TerminalError>,
    input: &impl Serialize,
    due_at_ms: Option<u64>,
    idempotency_key: Option<durable_protocol::IdempotencyKey>,
) -> Result<InvocationId, TerminalError> {
    let target = target?;
    let input = json_input(input)?;
    let child = match &idempotency_key {
        Some(k) => target.idempotent_id(k),
        None => InvocationId::child(&ctx.inner.id, index, &target.service),
    };
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
            idempotency_key,
        },
    );
    Ok(child)
}
