//! Virtual objects and workflows: the contexts their handlers get, split by capability so that
//! misuse does not compile (a shared handler's context has no setters), keyed state, and
//! durable promises.
//!
//! State changes are journal entries (recorded in program order, like sends); the orchestrator
//! applies them when the invocation finishes, in the transaction that records its outcome and
//! hands the object's lock on. Until then the handler sees its own changes on top of the
//! state it started with (sent with the push when small, else read key by key).

use crate::context::timers::DurableFuture;
use crate::context::{CallContext, Context, DurableContext, Sealed};
use crate::error::TerminalError;
use crate::runtime::attempt::{Abort, Attempt, BoxFuture};
use crate::runtime::divergence::mismatch;
use crate::runtime::keyed::Keyed;
use durable_protocol::keyed::{check_name, ObjectRef, PromiseCompletion, Waiter, MAX_VALUE_BYTES};
use durable_protocol::{EntryKind, ObjectKey, StepResult, TerminalFailure};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;
use std::sync::Arc;

fn keyed(inv: &Attempt) -> &Keyed {
    inv.keyed
        .get()
        .expect("keyed contexts are only built for keyed invocations")
}

fn invalid(message: String) -> TerminalError {
    TerminalError::new(message).with_code(400)
}

/// Decodes a stored JSON value as `T`; a value that does not decode is the caller's error.
fn decode_value<T: DeserializeOwned>(
    name: &str,
    value: serde_json::Value,
) -> Result<T, TerminalError> {
    serde_json::from_value(value).map_err(|e| {
        TerminalError::new(format!(
            "state {name:?} does not decode as {}: {e}",
            std::any::type_name::<T>()
        ))
    })
}

/// The current value of `name` as this attempt sees it (its own changes first), reading the
/// store when the pushed state did not hold it. Not journaled: under the object's lock nobody
/// else changes the state, so every replay reads the same.
async fn current(inv: &Attempt, name: &str) -> Option<serde_json::Value> {
    let keyed = keyed(inv);
    {
        let view = keyed.view.lock().expect("state poisoned");
        if let Some(v) = view.values.get(name) {
            return v.clone();
        }
        if view.complete {
            return None;
        }
    }
    let read = {
        let _busy = inv.busy();
        inv.sink.get_state(&keyed.object, name).await
    };
    match read {
        Ok(value) => keyed
            .view
            .lock()
            .expect("state poisoned")
            .values
            .entry(name.to_owned())
            .or_insert(value)
            .clone(),
        Err(e) => {
            inv.abort(Abort::retry(format!("could not read state {name:?}: {e}")))
                .await
        }
    }
}

/// Every state key as this attempt sees it.
async fn current_keys(inv: &Attempt) -> Vec<String> {
    let keyed = keyed(inv);
    let stored = {
        let complete = keyed.view.lock().expect("state poisoned").complete;
        if complete {
            Vec::new()
        } else {
            let _busy = inv.busy();
            match inv.sink.state_names(&keyed.object).await {
                Ok(names) => names,
                Err(e) => {
                    return inv
                        .abort(Abort::retry(format!("could not list the state keys: {e}")))
                        .await
                }
            }
        }
    };
    let view = keyed.view.lock().expect("state poisoned");
    let mut keys: std::collections::BTreeSet<String> = stored
        .into_iter()
        .filter(|k| !matches!(view.values.get(k), Some(None)))
        .collect();
    keys.extend(
        view.values
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| k.clone()),
    );
    keys.into_iter().collect()
}

/// Records an entry (or checks the recorded one on replay) and returns what holds.
async fn record_read(inv: &Attempt, index: u32, entry: EntryKind) -> EntryKind {
    crate::runtime::journal::record(inv, index, entry)
        .await
        .kind
}

/// `get` of a shared handler: the value is recorded, so a replay (perhaps after the state
/// changed) sees what the first attempt saw.
async fn shared_get(ctx: &Context, name: &str) -> Option<serde_json::Value> {
    let inv = &ctx.inner;
    let index = ctx.allocate();
    let value = match inv.recorded(index) {
        Some(_) => None, // replay: the recorded value wins below
        None => current(inv, name).await,
    };
    match record_read(
        inv,
        index,
        EntryKind::GetState {
            name: name.to_owned(),
            value,
        },
    )
    .await
    {
        EntryKind::GetState { value, .. } => {
            ctx.receive(index).await;
            value
        }
        _ => unreachable!("record_read checks the kind"),
    }
}

async fn shared_keys(ctx: &Context) -> Vec<String> {
    let inv = &ctx.inner;
    let index = ctx.allocate();
    let keys = match inv.recorded(index) {
        Some(_) => Vec::new(),
        None => current_keys(inv).await,
    };
    match record_read(inv, index, EntryKind::GetStateKeys { keys }).await {
        EntryKind::GetStateKeys { keys } => {
            ctx.receive(index).await;
            keys
        }
        _ => unreachable!("record_read checks the kind"),
    }
}

/// Journals a state change (in program order, like a send) and applies it to this attempt's view.
fn change(ctx: &Context, entry: EntryKind) {
    let inv = &ctx.inner;
    let index = ctx.allocate();
    {
        let mut view = keyed(inv).view.lock().expect("state poisoned");
        match &entry {
            EntryKind::SetState { name, value } => {
                view.values.insert(name.clone(), Some(value.clone()));
            }
            EntryKind::ClearState { name } => {
                view.values.insert(name.clone(), None);
            }
            EntryKind::ClearAllState => {
                view.values.clear();
                view.complete = true;
            }
            _ => {}
        }
    }
    let _recorded = inv.enqueue(index, entry);
}

fn checked_name(name: &str) -> Result<(), TerminalError> {
    check_name("state key", name).map_err(invalid)
}

fn set_value(ctx: &Context, name: &str, value: &impl Serialize) -> Result<(), TerminalError> {
    checked_name(name)?;
    let value = serde_json::to_value(value).map_err(|e| {
        TerminalError::new(format!("state {name:?} does not serialize to JSON: {e}"))
    })?;
    let size = value.to_string().len();
    if size > MAX_VALUE_BYTES {
        return Err(TerminalError::new(format!(
            "state {name:?} is {size} bytes; a state value is at most {MAX_VALUE_BYTES} bytes"
        ))
        .with_code(413));
    }
    change(
        ctx,
        EntryKind::SetState {
            name: name.to_owned(),
            value,
        },
    );
    Ok(())
}

macro_rules! keyed_context {
    ($(#[$doc:meta])* $name:ident: $($capability:ident),*) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name {
            ctx: Context,
        }

        impl $name {
            pub(crate) fn new(ctx: Context) -> Self {
                Self { ctx }
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("invocation_id", &self.ctx.inner.id)
                    .field("key", &self.key())
                    .finish_non_exhaustive()
            }
        }

        impl Sealed for $name {
            fn context(&self) -> &Context {
                &self.ctx
            }

            fn rescoped(&self, ctx: Context) -> Self {
                Self { ctx }
            }
        }

        impl DurableContext for $name {}
        impl CallContext for $name {}
        impl KeyedContext for $name {}
        $(keyed_context!(@capability $name $capability);)*
    };
    (@capability $name:ident ReadsCurrent) => {
        impl ReadState for $name {
            fn records_reads(&self) -> bool {
                false
            }
        }
    };
    (@capability $name:ident ReadsRecorded) => {
        impl ReadState for $name {
            fn records_reads(&self) -> bool {
                true
            }
        }
    };
    (@capability $name:ident $capability:ident) => {
        impl $capability for $name {}
    };
}

/// The key of the object or workflow a keyed handler runs on. Implemented by the four keyed
/// contexts.
pub trait KeyedContext: DurableContext {
    /// The key of the object or workflow this handler runs on.
    fn key(&self) -> &str {
        keyed(&self.context().inner).object.key.as_str()
    }
}

/// Reading the key's state. An exclusive handler (and a workflow's `run`) sees its own changes
/// and reads without journaling (nobody else writes under the lock); a shared handler reads
/// what is stored and records what it read, so a replay reads the same.
pub trait ReadState: KeyedContext {
    /// Whether reads are recorded in the journal (shared handlers).
    #[doc(hidden)]
    fn records_reads(&self) -> bool;

    /// The value of state key `name`, or `None`.
    fn get<'a, T: DeserializeOwned + 'a>(
        &'a self,
        name: &'a str,
    ) -> impl Future<Output = Result<Option<T>, TerminalError>> + Send + 'a {
        async move {
            checked_name(name)?;
            let ctx = self.context();
            let value = if self.records_reads() {
                shared_get(ctx, name).await
            } else {
                current(&ctx.inner, name).await
            };
            value.map(|v| decode_value(name, v)).transpose()
        }
    }

    /// The state keys that have a value, sorted.
    fn state_keys(&self) -> impl Future<Output = Vec<String>> + Send + '_ {
        async move {
            let ctx = self.context();
            if self.records_reads() {
                shared_keys(ctx).await
            } else {
                current_keys(&ctx.inner).await
            }
        }
    }
}

/// Changing the key's state: journaled now, stored when the invocation finishes (whether it
/// succeeds or fails terminally). Only exclusive handlers and a workflow's `run` have it.
pub trait WriteState: ReadState {
    /// Sets state key `name`.
    fn set(&self, name: &str, value: &impl Serialize) -> Result<(), TerminalError> {
        set_value(self.context(), name, value)
    }

    /// Removes state key `name`.
    fn clear(&self, name: &str) -> Result<(), TerminalError> {
        checked_name(name)?;
        change(
            self.context(),
            EntryKind::ClearState {
                name: name.to_owned(),
            },
        );
        Ok(())
    }

    /// Removes every state key of this object (and only of this object).
    fn clear_all(&self) {
        change(self.context(), EntryKind::ClearAllState);
    }
}

keyed_context!(
    /// The context of an exclusive handler of a virtual object: it runs alone on its key and
    /// reads and writes the key's state. Everything a [`Context`] does works here too.
    ObjectContext: ReadsCurrent, WriteState
);
keyed_context!(
    /// The context of a shared handler of a virtual object: it runs concurrently with anything
    /// and may only read state (it has no setters, so writing does not compile).
    ///
    /// ```compile_fail
    /// # use lambda_handler_sdk::prelude::*;
    /// async fn get(ctx: SharedObjectContext, _: ()) -> Result<(), HandlerError> {
    ///     ctx.set("count", &1)?; // no `set` on a shared context
    ///     Ok(())
    /// }
    /// ```
    SharedObjectContext: ReadsRecorded
);
keyed_context!(
    /// The context of a workflow's `run`: it executes once per key, reads and writes state and
    /// awaits durable promises.
    WorkflowContext: ReadsCurrent, WriteState, PromiseContext
);
keyed_context!(
    /// The context of a workflow's shared handlers: they read state and resolve, reject, peek or
    /// await durable promises, concurrently with `run`.
    ///
    /// ```compile_fail
    /// # use lambda_handler_sdk::prelude::*;
    /// async fn peek(ctx: SharedWorkflowContext, _: ()) -> Result<(), HandlerError> {
    ///     ctx.clear_all(); // no state writes in a shared handler
    ///     Ok(())
    /// }
    /// ```
    SharedWorkflowContext: ReadsRecorded, PromiseContext
);

/// Waits for a promise: records the wait, then registers with the promise (or finds its
/// result); the orchestrator completes the entry and resumes the invocation when it resolves.
async fn await_promise<T: DeserializeOwned>(
    inv: Arc<Attempt>,
    index: u32,
    name: String,
) -> Result<T, TerminalError> {
    record_read(&inv, index, EntryKind::Promise { name: name.clone() }).await;
    if inv.completion(index).is_none() {
        let waiter = Waiter {
            invocation: inv.id.clone(),
            index,
        };
        let found = {
            let _busy = inv.busy();
            inv.sink
                .wait_promise(&keyed(&inv).object, &name, &waiter)
                .await
        };
        match found {
            Ok(Some(result)) => {
                // Written onto the entry so that replay finds it without asking again.
                let written = {
                    let _busy = inv.busy();
                    inv.sink
                        .complete(
                            &inv.id,
                            index,
                            durable_protocol::EntryTag::Promise,
                            &result,
                            durable_store::Completer::Own,
                        )
                        .await
                };
                if let Err(e) = written {
                    return inv
                        .abort(Abort::retry(format!(
                            "could not record promise {name:?}: {e}"
                        )))
                        .await;
                }
                inv.learn_completion(index, result);
            }
            Ok(None) => {}
            Err(e) => {
                return inv
                    .abort(Abort::retry(format!(
                        "could not wait for promise {name:?}: {e}"
                    )))
                    .await
            }
        }
    }
    crate::runtime::journal::await_entry(inv, index).await
}

async fn peek_promise<T: DeserializeOwned>(
    ctx: &Context,
    name: &str,
) -> Result<Option<T>, TerminalError> {
    check_name("promise name", name).map_err(invalid)?;
    let inv = &ctx.inner;
    let index = ctx.allocate();
    let result = match inv.recorded(index) {
        Some(_) => None,
        None => {
            let _busy = inv.busy();
            match inv.sink.peek_promise(&keyed(inv).object, name).await {
                Ok(r) => r,
                Err(e) => {
                    return inv
                        .abort(Abort::retry(format!(
                            "could not read promise {name:?}: {e}"
                        )))
                        .await
                }
            }
        }
    };
    let recorded = record_read(
        inv,
        index,
        EntryKind::PeekPromise {
            name: name.to_owned(),
            result,
        },
    )
    .await;
    let EntryKind::PeekPromise { result, .. } = recorded else {
        unreachable!("record_read checks the kind")
    };
    ctx.receive(index).await;
    match result {
        None => Ok(None),
        Some(StepResult::Failure(f)) => Err(f.into()),
        Some(StepResult::Value(v)) => serde_json::from_value(v).map(Some).map_err(|e| {
            TerminalError::new(format!(
                "promise {name:?} does not decode as {}: {e}",
                std::any::type_name::<T>()
            ))
        }),
    }
}

/// Completes a promise once: the outcome is recorded, so a replay does not complete it again;
/// a completer that died before recording finds its own completion and carries on.
async fn complete_promise(
    ctx: &Context,
    name: &str,
    result: StepResult,
) -> Result<(), TerminalError> {
    let inv = &ctx.inner;
    check_name("promise name", name).map_err(invalid)?;
    if let StepResult::Value(v) = &result {
        let size = v.to_string().len();
        if size > MAX_VALUE_BYTES {
            return Err(TerminalError::new(format!(
                "promise {name:?} value is {size} bytes; the limit is {MAX_VALUE_BYTES}"
            ))
            .with_code(413));
        }
    }
    let index = ctx.allocate();
    let asked = EntryKind::CompletePromise {
        name: name.to_owned(),
        result: result.clone(),
        refused: None,
    };
    if let Some(recorded) = inv.recorded(index) {
        return match &recorded.kind {
            EntryKind::CompletePromise { refused, .. } if recorded.kind.same_command(&asked) => {
                ctx.receive(index).await;
                refused.clone().map_or(Ok(()), |f| Err(f.into()))
            }
            other => {
                inv.abort(Abort::Fatal(mismatch(index, other, &asked)))
                    .await
            }
        };
    }
    let object = &keyed(inv).object;
    let by = format!("{}:{index}", inv.id);
    let completion = {
        let _busy = inv.busy();
        inv.sink.complete_promise(object, name, &result, &by).await
    };
    let (waiters, kept, refused) = match completion {
        Ok(PromiseCompletion::Completed { waiters }) => (waiters, result.clone(), None),
        Ok(PromiseCompletion::AlreadyCompleted {
            result: kept,
            by: earlier,
            waiters,
        }) => {
            let refused = (earlier != by).then(|| {
                TerminalFailure::new(
                    TerminalFailure::CONFLICT,
                    format!("promise {name:?} was already completed"),
                )
            });
            (waiters, kept, refused)
        }
        Err(e) => {
            return inv
                .abort(Abort::retry(format!(
                    "could not complete promise {name:?}: {e}"
                )))
                .await
        }
    };
    // Tell the waiters (again, harmlessly, if an earlier attempt did).
    for waiter in &waiters {
        let told = {
            let _busy = inv.busy();
            match inv
                .sink
                .complete(
                    &waiter.invocation,
                    waiter.index,
                    durable_protocol::EntryTag::Promise,
                    &kept,
                    durable_store::Completer::Other,
                )
                .await
            {
                Ok(_) => match inv.dispatcher.get() {
                    Some(d) => d.resume(&waiter.invocation, waiter.index).await,
                    None => Err("no dispatcher".into()),
                },
                Err(e) => Err(e.to_string()),
            }
        };
        if let Err(e) = told {
            return inv
                .abort(Abort::retry(format!(
                    "could not resume {} waiting for promise {name:?}: {e}",
                    waiter.invocation
                )))
                .await;
        }
    }
    let entry = EntryKind::CompletePromise {
        name: name.to_owned(),
        result,
        refused: refused.clone(),
    };
    record_read(inv, index, entry).await;
    ctx.receive(index).await;
    refused.map_or(Ok(()), |f| Err(f.into()))
}

/// A workflow's durable promises: awaiting, peeking, resolving and rejecting them. The workflow's
/// `run` and its shared handlers have it.
pub trait PromiseContext: KeyedContext {
    /// The durable promise `name` of this workflow: resolves when somebody resolves it
    /// (a shared handler, or `POST /{workflow}/{key}/promises/{name}/resolve`), even if
    /// that happened before this was awaited.
    fn promise<T: DeserializeOwned + Send + 'static>(&self, name: &str) -> DurableFuture<T> {
        let index = self.context().allocate();
        let inner: BoxFuture<'static, Result<T, TerminalError>> =
            match check_name("promise name", name) {
                Err(e) => Box::pin(async move { Err(invalid(e)) }),
                Ok(()) => Box::pin(await_promise(
                    self.context().inner.clone(),
                    index,
                    name.to_owned(),
                )),
            };
        DurableFuture::new(self.context(), index, inner)
    }

    /// The promise's value if it was resolved, its failure if it was rejected, or `None`.
    fn peek_promise<'a, T: DeserializeOwned + 'a>(
        &'a self,
        name: &'a str,
    ) -> impl Future<Output = Result<Option<T>, TerminalError>> + Send + 'a {
        peek_promise(self.context(), name)
    }

    /// Resolves the promise with `value`; fails with 409 if it was completed already.
    fn resolve_promise<'a>(
        &'a self,
        name: &'a str,
        value: &impl Serialize,
    ) -> impl Future<Output = Result<(), TerminalError>> + Send + 'a {
        let value = serde_json::to_value(value)
            .map_err(|e| TerminalError::new(format!("the value does not serialize to JSON: {e}")));
        async move { complete_promise(self.context(), name, StepResult::Value(value?)).await }
    }

    /// Rejects the promise: whoever awaits it gets a terminal error with `message`.
    fn reject_promise<'a>(
        &'a self,
        name: &'a str,
        message: &'a str,
    ) -> impl Future<Output = Result<(), TerminalError>> + Send + 'a {
        complete_promise(
            self.context(),
            name,
            StepResult::Failure(TerminalFailure::new(TerminalFailure::INTERNAL, message)),
        )
    }
}

/// The key check for keyed handlers: the push must carry one.
pub(crate) fn object_of(
    service: &durable_protocol::ServiceName,
    key: Option<ObjectKey>,
) -> Result<ObjectRef, TerminalFailure> {
    key.map(|key| ObjectRef {
        service: service.clone(),
        key,
    })
    .ok_or_else(|| {
        TerminalFailure::new(
            TerminalFailure::BAD_REQUEST,
            format!("{service} is keyed: the push named no key"),
        )
    })
}
