//! Unit tests of replay and journaling logic against an in-memory journal.
//! (The end-to-end behaviour against DynamoDB is covered by `localstack-tests`.)

use crate::invocation::{BoxFuture, JournalSink};
use crate::{Context, Endpoint, HandlerError, RetryPolicy, Service, TerminalError};
use durable_protocol::store::{Appended, StoreError};
use durable_protocol::{
    EntryKind, HandlerName, HandlerResponse, InvocationId, InvokeRequest, JournalEntry,
    ServiceName, StepFailures, StepResult, TerminalFailure,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// A journal in memory with DynamoDB's first-writer-wins semantics.
#[derive(Default)]
struct MemoryJournal {
    entries: Mutex<BTreeMap<u32, JournalEntry>>,
    writes: AtomicU32,
}

impl JournalSink for MemoryJournal {
    fn append<'a>(
        &'a self,
        _id: &'a InvocationId,
        entry: &'a JournalEntry,
        _epoch: u64,
    ) -> BoxFuture<'a, Result<Appended, StoreError>> {
        Box::pin(async move {
            self.writes.fetch_add(1, Ordering::SeqCst);
            let mut entries = self.entries.lock().unwrap();
            if let Some(existing) = entries.get(&entry.index) {
                return Ok(Appended::AlreadyRecorded(existing.clone()));
            }
            entries.insert(entry.index, entry.clone());
            Ok(Appended::Written)
        })
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

fn endpoint() -> Endpoint {
    Endpoint::new().service(
        Service::new("svc")
            .handler("three", three_steps)
            .handler("fail", fails_terminally)
            .handler("flaky", flaky),
    )
}

fn request(handler: &str, input: serde_json::Value, journal: Vec<JournalEntry>) -> InvokeRequest {
    InvokeRequest {
        invocation_id: InvocationId::derived(&["test", handler]),
        epoch: 1,
        attempt: 1,
        service: ServiceName::new("svc").unwrap(),
        handler: HandlerName::new(handler).unwrap(),
        input,
        journal,
        step_failures: None,
        table: "t".into(),
    }
}

fn run_entry(index: u32, name: &str, value: serde_json::Value) -> JournalEntry {
    JournalEntry {
        index,
        kind: EntryKind::Run {
            name: name.into(),
            result: StepResult::Value(value),
        },
    }
}

#[tokio::test]
async fn fresh_run_writes_one_entry_per_step() {
    let journal = Arc::new(MemoryJournal::default());
    let resp = endpoint()
        .execute(request("three", json!(1), vec![]), journal.clone())
        .await;
    assert_eq!(resp, HandlerResponse::Completed { output: json!(25) });
    assert_eq!(journal.writes.load(Ordering::SeqCst), 3);
    let entries = journal.entries.lock().unwrap();
    assert_eq!(entries[&0], run_entry(0, "a", json!(2)));
    assert_eq!(entries[&2], run_entry(2, "c", json!(25)));
}

#[tokio::test]
async fn replay_returns_recorded_results_without_running_or_writing() {
    let journal = Arc::new(MemoryJournal::default());
    // Recorded values differ from what the closures would compute: replay must use them.
    let recorded = vec![run_entry(0, "a", json!(100)), run_entry(1, "b", json!(7))];
    let resp = endpoint()
        .execute(request("three", json!(1), recorded), journal.clone())
        .await;
    assert_eq!(resp, HandlerResponse::Completed { output: json!(12) });
    assert_eq!(
        journal.writes.load(Ordering::SeqCst),
        1,
        "only the new step is written"
    );
}

#[tokio::test]
async fn full_replay_runs_no_closure() {
    let journal = Arc::new(MemoryJournal::default());
    let recorded = vec![
        run_entry(0, "a", json!(1)),
        run_entry(1, "b", json!(2)),
        run_entry(2, "c", json!(3)),
    ];
    let resp = endpoint()
        .execute(request("three", json!(1), recorded), journal.clone())
        .await;
    assert_eq!(resp, HandlerResponse::Completed { output: json!(3) });
    // A closure that ran would have written its entry.
    assert_eq!(journal.writes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn divergent_replay_is_a_non_determinism_failure() {
    let journal = Arc::new(MemoryJournal::default());
    let recorded = vec![run_entry(0, "something-else", json!(1))];
    let resp = endpoint()
        .execute(request("three", json!(1), recorded), journal.clone())
        .await;
    match resp {
        HandlerResponse::Failed { failure } => {
            assert_eq!(failure.code, TerminalFailure::NON_DETERMINISM);
            assert!(
                failure.message.contains("journal entry 0"),
                "{}",
                failure.message
            );
            assert!(
                failure.message.contains("something-else"),
                "{}",
                failure.message
            );
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(journal.writes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn recorded_value_of_the_wrong_type_is_reported() {
    let journal = Arc::new(MemoryJournal::default());
    let recorded = vec![run_entry(0, "a", json!("not a number"))];
    let resp = endpoint()
        .execute(request("three", json!(1), recorded), journal)
        .await;
    assert!(
        matches!(resp, HandlerResponse::Failed { failure } if failure.code == 570 && failure.message.contains("does not decode"))
    );
}

#[tokio::test]
async fn a_concurrent_writer_wins_and_its_result_is_adopted() {
    let journal = Arc::new(MemoryJournal::default());
    // Another attempt recorded step 0 after this attempt's push was built.
    journal
        .entries
        .lock()
        .unwrap()
        .insert(0, run_entry(0, "a", json!(40)));
    let resp = endpoint()
        .execute(request("three", json!(1), vec![]), journal.clone())
        .await;
    assert_eq!(resp, HandlerResponse::Completed { output: json!(405) });
}

#[tokio::test]
async fn a_concurrent_writer_with_another_step_is_a_divergence() {
    let journal = Arc::new(MemoryJournal::default());
    journal
        .entries
        .lock()
        .unwrap()
        .insert(0, run_entry(0, "other", json!(40)));
    let resp = endpoint()
        .execute(request("three", json!(1), vec![]), journal)
        .await;
    assert!(matches!(resp, HandlerResponse::Failed { failure } if failure.code == 570));
}

#[tokio::test]
async fn terminal_step_failures_are_recorded_and_replayed() {
    let journal = Arc::new(MemoryJournal::default());
    let resp = endpoint()
        .execute(request("fail", json!(null), vec![]), journal.clone())
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Failed {
            failure: TerminalFailure::new(402, "card declined")
        }
    );
    let recorded: Vec<_> = journal.entries.lock().unwrap().values().cloned().collect();
    assert_eq!(recorded.len(), 2);
    // Replaying the recorded failure gives the same outcome without writing.
    let again = Arc::new(MemoryJournal::default());
    let resp = endpoint()
        .execute(request("fail", json!(null), recorded), again.clone())
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Failed {
            failure: TerminalFailure::new(402, "card declined")
        }
    );
    assert_eq!(again.writes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn retryable_step_failures_end_the_attempt_until_the_policy_is_exhausted() {
    let journal = Arc::new(MemoryJournal::default());
    let resp = endpoint()
        .execute(request("flaky", json!(null), vec![]), journal.clone())
        .await;
    match resp {
        HandlerResponse::Retryable {
            step,
            retry_after_ms,
            message,
        } => {
            assert_eq!(step, Some(0));
            assert_eq!(retry_after_ms, Some(100));
            assert!(message.contains("timeout talking to the bank"));
        }
        other => panic!("expected retryable, got {other:?}"),
    }
    assert_eq!(
        journal.writes.load(Ordering::SeqCst),
        0,
        "a retryable failure records nothing"
    );

    // Third attempt (two failures so far): the policy is exhausted and the failure recorded.
    let mut req = request("flaky", json!(null), vec![]);
    req.step_failures = Some(StepFailures { index: 0, count: 2 });
    let resp = endpoint().execute(req, journal.clone()).await;
    assert!(
        matches!(&resp, HandlerResponse::Failed { failure } if failure.message.contains("failed 3 times")),
        "{resp:?}"
    );
    assert_eq!(journal.writes.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn bad_input_and_unknown_handlers_fail_terminally() {
    let journal = Arc::new(MemoryJournal::default());
    let resp = endpoint()
        .execute(request("three", json!("nope"), vec![]), journal.clone())
        .await;
    assert!(
        matches!(resp, HandlerResponse::Failed { failure } if failure.code == 400 && failure.message.contains("invalid input"))
    );
    let resp = endpoint()
        .execute(request("missing", json!(1), vec![]), journal)
        .await;
    assert!(matches!(resp, HandlerResponse::Failed { failure } if failure.code == 404));
}

#[tokio::test]
async fn panics_become_retryable_failures() {
    async fn boom(_ctx: Context, _: ()) -> Result<(), HandlerError> {
        panic!("kaboom")
    }
    let ep = Endpoint::new().service(Service::new("svc").handler("boom", boom));
    let resp = ep
        .execute(
            request("boom", json!(null), vec![]),
            Arc::new(MemoryJournal::default()),
        )
        .await;
    assert!(
        matches!(resp, HandlerResponse::Retryable { message, .. } if message.contains("kaboom"))
    );
}

#[test]
fn discovery_lists_services_and_handlers() {
    let d = endpoint().discover();
    assert_eq!(d.services.len(), 1);
    let names: Vec<_> = d.services[0]
        .handlers
        .iter()
        .map(|h| h.name.as_str().to_owned())
        .collect();
    assert_eq!(names, ["fail", "flaky", "three"]);
}
