//! Calls and sends to other handlers. Each is a journal entry naming a child invocation whose
//! id derives from (this invocation, entry index), so retries never start a second child; the
//! attempt's outbox records them in program order and starts the children.

use crate::context::timers::DurableFuture;
use crate::context::{Context, Sealed};
use crate::error::TerminalError;
use crate::runtime::attempt::{Attempt, BoxFuture};
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
}

fn call_target<O: DeserializeOwned + Send + 'static>(
    ctx: &Context,
    target: Result<Target, TerminalError>,
    input: &impl Serialize,
) -> DurableFuture<O> {
    let index = ctx.allocate();
    let prepared = target.and_then(|t| Ok((t, json_input(input)?)));
    let inner: BoxFuture<'static, Result<O, TerminalError>> = match prepared {
        Err(e) => Box::pin(async move { Err(e) }),
        Ok((target, input)) => {
            let child = InvocationId::child(&ctx.inner.id, index, &target.service);
            let recorded = ctx.inner.enqueue(
                index,
                EntryKind::Call {
                    target,
                    input,
                    child,
                },
            );
            Box::pin(await_call(ctx.inner.clone(), index, recorded))
        }
    };
    DurableFuture::new(ctx, index, inner)
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
    send_target(ctx, index, target(service, key, handler), input, due_at_ms)
}

fn send_target(
    ctx: &Context,
    index: u32,
    target: Result<Target, TerminalError>,
    input: &impl Serialize,
    due_at_ms: Option<u64>,
) -> Result<InvocationId, TerminalError> {
    let target = target?;
    let input = json_input(input)?;
    let child = InvocationId::child(&ctx.inner.id, index, &target.service);
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
        },
    );
    Ok(child)
}
