//! Support for the benchmark tool (`durable-bench`): replaying a journal in memory, without
//! AWS, to measure the SDK's own replay cost. Not part of the handler API.

use crate::prelude::*;
use crate::{Context, Endpoint, HandlerError, Service};
use durable_protocol::keyed::{ObjectRef, PromiseCompletion, Waiter};
use durable_protocol::{
    EntryKind, HandlerName, HandlerResponse, InvocationId, InvokeRequest, JournalEntry,
    ServiceName, StepResult,
};
use durable_store::traits::{BoxFuture, Journal, Promises, State};
use durable_store::Appended;
use durable_store::Completed;
use durable_store::StoreError;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A sink that must not be written to: a full replay records nothing.
struct ReplayOnly;

fn unexpected<T>(what: &str) -> Result<T, StoreError> {
    Err(StoreError::Corrupt {
        pk: "bench".into(),
        sk: what.into(),
        reason: "a full replay touched the store".into(),
    })
}

impl Journal for ReplayOnly {
    fn append<'a>(
        &'a self,
        _: &'a InvocationId,
        _: &'a JournalEntry,
        _: durable_store::Writer,
    ) -> BoxFuture<'a, Result<Appended, StoreError>> {
        Box::pin(async { unexpected("append") })
    }
    fn load<'a>(
        &'a self,
        _: &'a InvocationId,
    ) -> BoxFuture<'a, Result<Vec<JournalEntry>, StoreError>> {
        Box::pin(async { unexpected("load") })
    }
    fn flag_payloads<'a>(&'a self, _: &'a InvocationId) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { unexpected("flag") })
    }
    fn complete<'a>(
        &'a self,
        _: &'a InvocationId,
        _: u32,
        _: durable_protocol::EntryTag,
        _: &'a StepResult,
        _: durable_store::Completer,
    ) -> BoxFuture<'a, Result<Completed, StoreError>> {
        Box::pin(async { unexpected("complete") })
    }
    fn retry_started<'a>(
        &'a self,
        _: &'a InvocationId,
        _: u32,
        _: (u32, u32),
        _: durable_store::Writer,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async { unexpected("retry_started") })
    }
}

impl State for ReplayOnly {
    fn get_state<'a>(
        &'a self,
        _: &'a ObjectRef,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Option<serde_json::Value>, StoreError>> {
        Box::pin(async { unexpected("get_state") })
    }
    fn state_names<'a>(
        &'a self,
        _: &'a ObjectRef,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        Box::pin(async { unexpected("state_names") })
    }
}

impl Promises for ReplayOnly {
    fn peek_promise<'a>(
        &'a self,
        _: &'a ObjectRef,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Option<StepResult>, StoreError>> {
        Box::pin(async { unexpected("peek") })
    }
    fn wait_promise<'a>(
        &'a self,
        _: &'a ObjectRef,
        _: &'a str,
        _: &'a Waiter,
    ) -> BoxFuture<'a, Result<Option<StepResult>, StoreError>> {
        Box::pin(async { unexpected("wait") })
    }
    fn complete_promise<'a>(
        &'a self,
        _: &'a ObjectRef,
        _: &'a str,
        _: &'a StepResult,
        _: &'a str,
    ) -> BoxFuture<'a, Result<PromiseCompletion, StoreError>> {
        Box::pin(async { unexpected("complete_promise") })
    }
}

struct NoDispatch;

impl crate::runtime::ops::Dispatcher for NoDispatch {
    fn dispatch<'a>(&'a self, _: &'a InvocationId, _: u32) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Err("a full replay dispatches nothing".into()) })
    }
    fn resume<'a>(&'a self, _: &'a InvocationId, _: u32) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Err("a full replay resumes nothing".into()) })
    }
    fn complete_awakeable<'a>(
        &'a self,
        _: &'a durable_protocol::AwakeableId,
        _: durable_protocol::StepResult,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Err("a full replay completes nothing".into()) })
    }
    fn cancel_child<'a>(
        &'a self,
        _: &'a InvocationId,
        _: u32,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Err("a full replay cancels nothing".into()) })
    }
    fn complete_promise<'a>(
        &'a self,
        _: &'a InvocationId,
        _: &'a durable_protocol::keyed::ObjectRef,
        _: &'a str,
        _: durable_protocol::StepResult,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Err("a full replay completes nothing".into()) })
    }
}

async fn steps(ctx: Context, n: u32) -> Result<u64, HandlerError> {
    let mut sum = 0u64;
    for i in 0..n {
        let v: u64 = ctx
            .run("step", || async move { Ok(u64::from(i) * 2) })
            .await?;
        sum += v;
    }
    Ok(sum)
}

/// A push of an `n`-step handler whose `n` steps are all recorded: executing it replays them.
pub fn replay_request(n: u32) -> InvokeRequest {
    let journal = (0..n)
        .map(|i| {
            JournalEntry::new(
                i,
                EntryKind::Run {
                    name: "step".into(),
                    result: StepResult::Value(serde_json::json!(u64::from(i) * 2)),
                },
            )
        })
        .collect();
    let service = ServiceName::new("bench").expect("valid");
    InvokeRequest::new(
        InvocationId::derived(&service, &[&n.to_string()]),
        durable_protocol::auth::SigningKey::random().service_key(&service),
        HandlerName::new("steps").expect("valid"),
        serde_json::json!(n),
        "bench",
    )
    .with_journal(journal)
    .at(2, 2)
}

/// Replays `request` (from [`replay_request`]) in memory and returns how long it took; panics
/// if the replay did not complete without touching the store.
pub async fn replay(request: InvokeRequest) -> Duration {
    let n = request.journal.len() as u64;
    let endpoint = Endpoint::new().service(Service::new("bench").handler("steps", steps));
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .build(),
    );
    let started = Instant::now();
    let response = endpoint
        .execute(
            request,
            Arc::new(ReplayOnly),
            Arc::new(NoDispatch),
            s3,
            u64::MAX / 2,
        )
        .await;
    let elapsed = started.elapsed();
    let expected = serde_json::json!((0..n).map(|i| i * 2).sum::<u64>());
    assert_eq!(
        response,
        HandlerResponse::Completed {
            output: expected,
            tail: None
        },
        "the replay did not complete from the journal alone"
    );
    elapsed
}
