//! Calls and sends to other handlers. Each is a journal entry naming a child invocation whose
//! id derives from (this invocation, entry index), so retries never start a second child. The
//! entries are recorded in program order by one worker per attempt, which also tells the
//! orchestrator (an async `dispatch` event) to start the child at once, while this handler
//! keeps running.

use crate::context::{mismatch, Context};
use crate::durable::DurableFuture;
use crate::error::TerminalError;
use crate::invocation::{Abort, BoxFuture, Invocation};
use durable_protocol::clock::now_millis;
use durable_protocol::{
    ControlEvent, EntryKind, HandlerName, InvocationId, JournalEntry, ServiceName, Target,
    TerminalFailure,
};
use durable_store::Appended;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Starts child invocations: the orchestrator in production, a recorder in unit tests.
pub(crate) trait Dispatcher: Send + Sync {
    fn dispatch<'a>(
        &'a self,
        parent: &'a InvocationId,
        index: u32,
    ) -> BoxFuture<'a, Result<(), String>>;

    /// Tells the orchestrator that entry `index` of `invocation` was completed (e.g. a promise
    /// it waits on was resolved here), so that it resumes it if it is suspended.
    fn resume<'a>(
        &'a self,
        invocation: &'a InvocationId,
        index: u32,
    ) -> BoxFuture<'a, Result<(), String>>;
}

impl LambdaDispatcher {
    async fn event(&self, event: ControlEvent) -> Result<(), String> {
        let function = self
            .orchestrator
            .as_deref()
            .ok_or("the push named no orchestrator to send events to")?;
        self.client
            .invoke()
            .function_name(function)
            .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
            .payload(aws_sdk_lambda::primitives::Blob::new(
                serde_json::to_vec(&event).expect("control events serialize"),
            ))
            .send()
            .await
            .map_err(|e| aws_sdk_lambda::error::DisplayErrorContext(e).to_string())?;
        Ok(())
    }
}

/// Sends `dispatch` and `resume` control events to the orchestrator function.
pub(crate) struct LambdaDispatcher {
    pub(crate) client: aws_sdk_lambda::Client,
    pub(crate) orchestrator: Option<String>,
}

impl Dispatcher for LambdaDispatcher {
    fn dispatch<'a>(
        &'a self,
        parent: &'a InvocationId,
        index: u32,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.event(ControlEvent::Dispatch {
            invocation_id: parent.clone(),
            entry: index,
        }))
    }

    fn resume<'a>(
        &'a self,
        invocation: &'a InvocationId,
        index: u32,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.event(ControlEvent::Resume {
            invocation_id: invocation.clone(),
            entry: index,
        }))
    }
}

/// One call or send to record (in order) and dispatch.
pub(crate) enum Op {
    Record {
        index: u32,
        kind: EntryKind,
        done: oneshot::Sender<()>,
    },
    /// Answered once every op before it is done.
    Flush(oneshot::Sender<()>),
}

/// Records and dispatches ops one after the other, in the order they were created.
pub(crate) async fn outbox_worker(
    inv: Arc<Invocation>,
    dispatcher: Arc<dyn Dispatcher>,
    mut ops: mpsc::UnboundedReceiver<Op>,
) {
    while let Some(op) = ops.recv().await {
        let (index, kind, done) = match op {
            Op::Flush(done) => {
                let _ = done.send(());
                continue;
            }
            Op::Record { index, kind, done } => (index, kind, done),
        };
        let kind = match offload_input(&inv, index, kind).await {
            Ok(kind) => kind,
            Err(abort) => return inv.abort(abort).await,
        };
        let dispatched = match inv.recorded(index) {
            Some(recorded) if !recorded.kind.same_command(&kind) => {
                return inv
                    .abort(Abort::Fatal(mismatch(index, &recorded.kind, &kind)))
                    .await;
            }
            Some(recorded) => recorded.dispatched,
            None => match inv.append(&JournalEntry::new(index, kind.clone())).await {
                Ok(Appended::Written) => false,
                Ok(Appended::AlreadyRecorded(recorded)) if recorded.kind.same_command(&kind) => {
                    recorded.dispatched
                }
                Ok(Appended::AlreadyRecorded(recorded)) => {
                    return inv
                        .abort(Abort::Fatal(mismatch(index, &recorded.kind, &kind)))
                        .await;
                }
                Err(e) => {
                    let message = format!(
                        "could not record {} at journal entry {index}: {e}",
                        kind.label()
                    );
                    return inv
                        .abort(Abort::Retry {
                            message,
                            step: None,
                            retry_after: None,
                        })
                        .await;
                }
            },
        };
        // Not yet dispatched (or not known to be): dispatching again is harmless, the child is
        // created with a conditional put. State changes are only recorded.
        if !dispatched && kind.child().is_some() {
            if let Err(e) = dispatcher.dispatch(&inv.id, index).await {
                let message = format!("could not dispatch {} {}: {e}", kind.label(), kind.name());
                return inv
                    .abort(Abort::Retry {
                        message,
                        step: None,
                        retry_after: None,
                    })
                    .await;
            }
        }
        let _ = done.send(());
        inv.op_done();
    }
}

/// Moves a large call or send input to S3 (the entry keeps a reference). On replay the entry is
/// recorded already (and compared by target only), so nothing is stored again. A too-large input
/// ends the invocation: it is a bug in the handler, not something a retry fixes.
async fn offload_input(
    inv: &Invocation,
    index: u32,
    mut kind: EntryKind,
) -> Result<EntryKind, Abort> {
    let (EntryKind::Call { target, input, .. } | EntryKind::Send { target, input, .. }) = &mut kind
    else {
        return Ok(kind);
    };
    if inv.recorded(index).is_some() {
        return Ok(kind);
    }
    *input = match inv
        .offload(&format!("j{index}"), std::mem::take(input))
        .await
    {
        Ok(v) => v,
        Err(durable_store::PayloadError::TooLarge { size, max }) => {
            return Err(Abort::Fatal(TerminalFailure::new(
                413,
                format!(
                    "the input of {} is {size} bytes, over the limit of {max}",
                    target.display()
                ),
            )))
        }
        Err(e) => {
            return Err(Abort::Retry {
                message: format!("could not store a call input: {e}"),
                step: None,
                retry_after: None,
            })
        }
    };
    Ok(kind)
}

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
    inv: Arc<Invocation>,
    index: u32,
    recorded: oneshot::Receiver<()>,
) -> Result<O, TerminalError> {
    if recorded.await.is_err() {
        return std::future::pending().await; // the worker aborted the attempt
    }
    crate::durable::await_entry(inv, index).await
}

impl Context {
    /// Calls `service/handler` with `input` and returns the future of its output. The call is
    /// started at once (exactly once, however often this invocation is retried); a terminal
    /// error of the callee comes back as a [`TerminalError`] with its code and message.
    pub fn call<O: DeserializeOwned + Send + 'static>(
        &self,
        service: &str,
        handler: &str,
        input: &impl Serialize,
    ) -> DurableFuture<O> {
        self.call_target(target(service, None, handler), input)
    }

    /// Calls handler `handler` of the virtual object (or workflow) `service` at `key`. An
    /// exclusive handler waits for its turn on that key.
    pub fn object_call<O: DeserializeOwned + Send + 'static>(
        &self,
        service: &str,
        key: &str,
        handler: &str,
        input: &impl Serialize,
    ) -> DurableFuture<O> {
        self.call_target(target(service, Some(key), handler), input)
    }

    /// Sends `input` to handler `handler` of the object (or workflow) `service` at `key`
    /// without waiting. Returns the child's invocation id.
    pub fn object_send(
        &self,
        service: &str,
        key: &str,
        handler: &str,
        input: &impl Serialize,
    ) -> Result<InvocationId, TerminalError> {
        let index = self.inner.allocate_index();
        self.send_target(index, target(service, Some(key), handler), input, None)
    }

    /// Like [`Context::object_send`], started after `delay`: an exclusive handler joins its
    /// key's queue when it is due.
    pub fn object_send_after(
        &self,
        delay: Duration,
        service: &str,
        key: &str,
        handler: &str,
        input: &impl Serialize,
    ) -> Result<InvocationId, TerminalError> {
        let index = self.inner.allocate_index();
        self.send_target(
            index,
            target(service, Some(key), handler),
            input,
            Some(now_millis() + delay.as_millis() as u64),
        )
    }

    fn call_target<O: DeserializeOwned + Send + 'static>(
        &self,
        target: Result<Target, TerminalError>,
        input: &impl Serialize,
    ) -> DurableFuture<O> {
        let index = self.inner.allocate_index();
        let prepared = target.and_then(|t| Ok((t, json_input(input)?)));
        let inner: BoxFuture<'static, Result<O, TerminalError>> = match prepared {
            Err(e) => Box::pin(async move { Err(e) }),
            Ok((target, input)) => {
                let child = InvocationId::child(&self.inner.id, index);
                let recorded = self.inner.enqueue(
                    index,
                    EntryKind::Call {
                        target,
                        input,
                        child,
                    },
                );
                Box::pin(await_call(self.inner.clone(), index, recorded))
            }
        };
        DurableFuture::new(index, inner)
    }

    /// Sends `input` to `service/handler` without waiting for it: the child starts at once,
    /// while this handler keeps running. Returns the child's invocation id.
    pub fn send(
        &self,
        service: &str,
        handler: &str,
        input: &impl Serialize,
    ) -> Result<InvocationId, TerminalError> {
        self.send_at(service, handler, input, None)
    }

    /// Like [`Context::send`], but the child starts after `delay` (an EventBridge Scheduler
    /// schedule when the delay is long). The delay runs from this call, once.
    pub fn send_after(
        &self,
        delay: Duration,
        service: &str,
        handler: &str,
        input: &impl Serialize,
    ) -> Result<InvocationId, TerminalError> {
        self.send_at(
            service,
            handler,
            input,
            Some(now_millis() + delay.as_millis() as u64),
        )
    }

    fn send_at(
        &self,
        service: &str,
        handler: &str,
        input: &impl Serialize,
        due_at_ms: Option<u64>,
    ) -> Result<InvocationId, TerminalError> {
        let index = self.inner.allocate_index();
        self.send_target(index, target(service, None, handler), input, due_at_ms)
    }

    fn send_target(
        &self,
        index: u32,
        target: Result<Target, TerminalError>,
        input: &impl Serialize,
        due_at_ms: Option<u64>,
    ) -> Result<InvocationId, TerminalError> {
        let target = target?;
        let input = json_input(input)?;
        let child = InvocationId::child(&self.inner.id, index);
        // Replay keeps the first due time.
        let due_at_ms = match self.inner.recorded(index).map(|e| &e.kind) {
            Some(EntryKind::Send { due_at_ms, .. }) => *due_at_ms,
            _ => due_at_ms,
        };
        let _recorded = self.inner.enqueue(
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
}
