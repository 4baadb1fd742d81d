//! Unit tests of replay and journaling logic against the store's in-memory journal, one module
//! per feature. The end-to-end behaviour against DynamoDB is covered by the end-to-end tests in `localstack-tests/tests`.

mod calls;
mod cancellation;
mod concurrency;
mod deferred_steps;
mod discovery;
mod keyed;
mod steps;
mod steps_at_most_once;
mod timers;

use crate::prelude::*;
use crate::{Context, Endpoint, HandlerError, RetryPolicy, Service, TerminalError};
use durable_protocol::{
    EntryKind, HandlerName, HandlerResponse, InvocationId, InvokeRequest, JournalEntry,
    ServiceName, StepFailures, StepResult, TerminalFailure,
};
use durable_store::memory::{MemoryPayloads, MemoryStore};
use durable_store::traits::BoxFuture;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The SDK's unit tests run against the store's in-memory implementation.
type MemoryJournal = MemoryStore;

/// Records an answer's tail entry as the orchestrator would (with the outcome, not as an
/// append) and returns the answer without it.
fn settle(journal: &MemoryStore, response: HandlerResponse) -> HandlerResponse {
    let (response, tail) = match response {
        HandlerResponse::Completed { output, tail } => {
            (HandlerResponse::Completed { output, tail: None }, tail)
        }
        HandlerResponse::Failed { failure, tail } => (
            HandlerResponse::Failed {
                failure,
                tail: None,
            },
            tail,
        ),
        other => (other, None),
    };
    if let Some(entry) = tail {
        journal.record_tail(entry);
    }
    response
}

/// Far in the future: unit tests never run short of Lambda time.
const NO_DEADLINE: u64 = u64::MAX / 2;

/// Records which entries were dispatched (the orchestrator's part is tested end to end).
#[derive(Default)]
struct MemoryDispatcher {
    dispatched: Mutex<Vec<u32>>,
    resumed: Mutex<Vec<u32>>,
    /// Awakeables completed by the handler: (id, result).
    completed: Mutex<Vec<(String, StepResult)>>,
    /// Children cancelled by the handler: their entries.
    cancelled: Mutex<Vec<u32>>,
    /// Workflow promises completed by the handler: ("workflow/key", name, result).
    promises: Mutex<Vec<(String, String, StepResult)>>,
}

impl crate::runtime::ops::Dispatcher for MemoryDispatcher {
    fn dispatch<'a>(
        &'a self,
        _parent: &'a InvocationId,
        index: u32,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.dispatched.lock().unwrap().push(index);
            Ok(())
        })
    }

    fn resume<'a>(
        &'a self,
        _invocation: &'a InvocationId,
        index: u32,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.resumed.lock().unwrap().push(index);
            Ok(())
        })
    }

    fn complete_awakeable<'a>(
        &'a self,
        id: &'a durable_protocol::AwakeableId,
        result: StepResult,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.completed
                .lock()
                .unwrap()
                .push((id.to_string(), result));
            Ok(())
        })
    }

    fn cancel_child<'a>(
        &'a self,
        _parent: &'a InvocationId,
        index: u32,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.cancelled.lock().unwrap().push(index);
            Ok(())
        })
    }

    fn complete_promise<'a>(
        &'a self,
        _from: &'a InvocationId,
        workflow: &'a durable_protocol::keyed::ObjectRef,
        name: &'a str,
        result: StepResult,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.promises
                .lock()
                .unwrap()
                .push((workflow.to_string(), name.to_owned(), result));
            Ok(())
        })
    }
}

impl Endpoint {
    async fn run(&self, req: InvokeRequest, journal: Arc<MemoryJournal>) -> HandlerResponse {
        let response = self
            .run_invocation(
                req,
                journal.clone(),
                Arc::new(MemoryDispatcher::default()),
                Arc::new(MemoryPayloads::default()),
                NO_DEADLINE,
            )
            .await;
        settle(&journal, response)
    }

    async fn run_with(
        &self,
        req: InvokeRequest,
        journal: Arc<MemoryJournal>,
        dispatcher: Arc<MemoryDispatcher>,
    ) -> HandlerResponse {
        let response = self
            .run_invocation(
                req,
                journal.clone(),
                dispatcher,
                Arc::new(MemoryPayloads::default()),
                NO_DEADLINE,
            )
            .await;
        settle(&journal, response)
    }
}

async fn three_steps(ctx: Context, base: u32) -> Result<u32, HandlerError> {
    let a: u32 = ctx.run("a", || async move { Ok(base + 1) }).await?;
    let b: u32 = ctx.run("b", || async move { Ok(a * 10) }).await?;
    let c: u32 = ctx.run("c", || async move { Ok(b + 5) }).await?;
    Ok(c)
}

async fn fails_terminally(ctx: Context, _: ()) -> Result<(), HandlerError> {
    ctx.run("reserve", || async { Ok(1u8) }).await?;
    let r: Result<u8, TerminalError> = ctx
        .run("charge", || async {
            Err(TerminalError::new("card declined").with_code(402).into())
        })
        .await;
    r?;
    Ok(())
}

async fn flaky(ctx: Context, _: ()) -> Result<(), HandlerError> {
    ctx.run("flaky", || async {
        Err::<(), _>(HandlerError::retryable("timeout talking to the bank"))
    })
    .retry_policy(RetryPolicy::default().max_attempts(3))
    .await?;
    Ok(())
}

async fn nap(ctx: Context, millis: u64) -> Result<&'static str, HandlerError> {
    ctx.sleep(Duration::from_millis(millis)).await?;
    Ok("rested")
}

async fn approval(ctx: Context, timeout_ms: u64) -> Result<String, HandlerError> {
    let (_id, approved) = ctx.awakeable::<String>().await?;
    match ctx
        .timeout(approved, Duration::from_millis(timeout_ms))
        .await
    {
        Ok(who) => Ok(format!("approved by {who}")),
        Err(e) if e.code() == 408 => Ok("timed out".into()),
        Err(e) => Err(e.into()),
    }
}

async fn two_timers(ctx: Context, _: ()) -> Result<usize, HandlerError> {
    let results = ctx
        .all(vec![
            ctx.sleep(Duration::from_millis(250)),
            ctx.sleep(Duration::from_millis(250)),
        ])
        .await;
    Ok(results.len())
}

async fn fan_out(ctx: Context, n: u32) -> Result<u32, HandlerError> {
    let calls = (0..n)
        .map(|i| ctx.call::<u32>("math", "square", &i))
        .collect();
    let id = ctx.send("audit", "log", &"fanned out")?;
    assert_eq!(
        id,
        InvocationId::child(ctx.invocation_id(), n, &ServiceName::new("audit").unwrap())
    );
    let mut sum = 0;
    for r in ctx.all(calls).await {
        sum += r?;
    }
    Ok(sum)
}

fn endpoint() -> Endpoint {
    Endpoint::new()
        .in_process_wait(Duration::from_secs(1))
        .service(
            Service::new("svc")
                .handler("three", three_steps)
                .handler("fail", fails_terminally)
                .handler("flaky", flaky)
                .handler("nap", nap)
                .handler("approval", approval)
                .handler("two_timers", two_timers)
                .handler("fan_out", fan_out),
        )
}

fn request(handler: &str, input: serde_json::Value, journal: Vec<JournalEntry>) -> InvokeRequest {
    let svc = ServiceName::new("svc").unwrap();
    InvokeRequest::new(
        InvocationId::derived(&svc, &["test", handler]),
        durable_protocol::auth::SigningKey::random().service_key(&svc),
        HandlerName::new(handler).unwrap(),
        input,
        "t",
    )
    .with_journal(journal)
}

/// A recorded step entry without its start time (which the SDK stamps), checking it has one.
fn untimed(entry: &JournalEntry) -> JournalEntry {
    let mut entry = entry.clone();
    assert!(
        entry.started_at_ms.take().is_some(),
        "a recorded step carries its start time: {entry:?}"
    );
    entry
}

/// A step entry as sequential code records it (created after the one before it completed).
fn run_entry(index: u32, name: &str, value: serde_json::Value) -> JournalEntry {
    let mut entry = JournalEntry::new(
        index,
        EntryKind::Run {
            name: name.into(),
            result: StepResult::Value(value),
        },
    );
    entry.after = index.checked_sub(1);
    entry
}
