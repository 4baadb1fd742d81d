//! What the outbox carries (one op per call, send or state change) and who starts children:
//! the orchestrator, through `dispatch`, `resume` and `cancel_child` control events.

use durable_protocol::auth::{AwakeableId, ServiceKey};
use durable_protocol::keyed::ObjectRef;
use durable_protocol::{ControlEvent, EntryKind, InvocationId, StepResult};
use durable_store::traits::BoxFuture;
use tokio::sync::oneshot;

/// Starts child invocations and resumes waiters: the orchestrator in production (through
/// control events), an in-process runner's loop in tests.
pub trait Dispatcher: Send + Sync {
    /// Entry `index` of `parent` (a call or a send) was recorded: start its child.
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

    /// Completes awakeable `id` (of any invocation; its tag is the proof) with `result`.
    fn complete_awakeable<'a>(
        &'a self,
        id: &'a AwakeableId,
        result: StepResult,
    ) -> BoxFuture<'a, Result<(), String>>;

    /// Cancels the child of call or send entry `index` of `parent`.
    fn cancel_child<'a>(
        &'a self,
        parent: &'a InvocationId,
        index: u32,
    ) -> BoxFuture<'a, Result<(), String>>;

    /// Completes promise `name` of workflow `workflow` with `result`, sent by invocation `from`.
    fn complete_promise<'a>(
        &'a self,
        from: &'a InvocationId,
        workflow: &'a ObjectRef,
        name: &'a str,
        result: StepResult,
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

/// Sends `dispatch` and `resume` control events to the orchestrator function, proven with
/// the keys of the invocations they name (all of this push's service).
pub(crate) struct LambdaDispatcher {
    pub(crate) client: aws_sdk_lambda::Client,
    pub(crate) orchestrator: Option<String>,
    pub(crate) key: ServiceKey,
}

impl Dispatcher for LambdaDispatcher {
    fn dispatch<'a>(
        &'a self,
        parent: &'a InvocationId,
        index: u32,
    ) -> BoxFuture<'a, Result<(), String>> {
        let key = self.key.invocation_key(parent);
        Box::pin(self.event(ControlEvent::dispatch(parent.clone(), index, &key)))
    }

    fn resume<'a>(
        &'a self,
        invocation: &'a InvocationId,
        index: u32,
    ) -> BoxFuture<'a, Result<(), String>> {
        let key = self.key.invocation_key(invocation);
        Box::pin(self.event(ControlEvent::resume(invocation.clone(), index, &key)))
    }

    fn complete_awakeable<'a>(
        &'a self,
        id: &'a AwakeableId,
        result: StepResult,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.event(ControlEvent::CompleteAwakeable {
            awakeable_id: id.clone(),
            result,
        }))
    }

    fn cancel_child<'a>(
        &'a self,
        parent: &'a InvocationId,
        index: u32,
    ) -> BoxFuture<'a, Result<(), String>> {
        let key = self.key.invocation_key(parent);
        Box::pin(self.event(ControlEvent::cancel_child(parent.clone(), index, &key)))
    }

    fn complete_promise<'a>(
        &'a self,
        from: &'a InvocationId,
        workflow: &'a ObjectRef,
        name: &'a str,
        result: StepResult,
    ) -> BoxFuture<'a, Result<(), String>> {
        let key = self.key.invocation_key(from);
        Box::pin(self.event(ControlEvent::complete_promise(
            from.clone(),
            (workflow.clone(), name.to_owned()),
            result,
            &key,
        )))
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
