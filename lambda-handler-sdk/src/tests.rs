//! Unit tests of replay and journaling logic against an in-memory journal.
//! (The end-to-end behaviour against DynamoDB is covered by `localstack-tests`.)

use crate::{Context, Endpoint, HandlerError, RetryPolicy, Service, TerminalError};
use durable_protocol::{
    EntryKind, HandlerName, HandlerResponse, InvocationId, InvokeRequest, JournalEntry,
    ServiceName, StepFailures, StepResult, TerminalFailure,
};
use durable_store::memory::MemoryStore;
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

/// An S3 client that is never called: unit tests use no bucket and small values.
fn offline_s3() -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .build(),
    )
}

/// Far in the future: unit tests never run short of Lambda time.
const NO_DEADLINE: u64 = u64::MAX / 2;

/// Records which entries were dispatched (the orchestrator's part is tested end to end).
#[derive(Default)]
struct MemoryDispatcher {
    dispatched: Mutex<Vec<u32>>,
    resumed: Mutex<Vec<u32>>,
}

impl crate::runtime::outbox::Dispatcher for MemoryDispatcher {
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
}

impl Endpoint {
    async fn run(&self, req: InvokeRequest, journal: Arc<MemoryJournal>) -> HandlerResponse {
        let response = self
            .execute(
                req,
                journal.clone(),
                Arc::new(MemoryDispatcher::default()),
                offline_s3(),
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
            .execute(req, journal.clone(), dispatcher, offline_s3(), NO_DEADLINE)
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
    assert_eq!(id, InvocationId::child(ctx.invocation_id(), n));
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
    InvokeRequest::new(
        InvocationId::derived(&["test", handler]),
        ServiceName::new("svc").unwrap(),
        HandlerName::new(handler).unwrap(),
        input,
        "t",
    )
    .with_journal(journal)
}

fn run_entry(index: u32, name: &str, value: serde_json::Value) -> JournalEntry {
    JournalEntry::new(
        index,
        EntryKind::Run {
            name: name.into(),
            result: StepResult::Value(value),
        },
    )
}

#[tokio::test]
async fn fresh_run_writes_one_entry_per_step() {
    let journal = Arc::new(MemoryJournal::default());
    let resp = endpoint()
        .run(request("three", json!(1), vec![]), journal.clone())
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!(25),
            tail: None
        }
    );
    // Steps 0 and 1 are appended; the last one is answered with the outcome.
    assert_eq!(journal.writes.load(Ordering::SeqCst), 2);
    assert_eq!(
        *journal.tails.lock().unwrap(),
        vec![run_entry(2, "c", json!(25))]
    );
    let entries = journal.entries.lock().unwrap();
    assert_eq!(entries[&0], run_entry(0, "a", json!(2)));
    assert_eq!(entries[&2], run_entry(2, "c", json!(25)));
}

#[tokio::test]
async fn appends_carry_the_pushed_epoch_and_journal_ttl() {
    let journal = Arc::new(MemoryJournal::default());
    let req = InvokeRequest {
        epoch: 4,
        journal_expires_at: Some(1_900_000_000),
        ..request("three", json!(1), vec![])
    };
    endpoint().run(req, journal.clone()).await;
    let expected = durable_store::Writer {
        epoch: 4,
        expires_at: Some(1_900_000_000),
    };
    assert_eq!(*journal.writers.lock().unwrap(), vec![expected; 2]);
    // A push without a TTL (the journal is kept): entries are written without one.
    let kept = Arc::new(MemoryJournal::default());
    endpoint()
        .run(request("three", json!(1), vec![]), kept.clone())
        .await;
    assert!(kept
        .writers
        .lock()
        .unwrap()
        .iter()
        .all(|w| w.expires_at.is_none()));
}

#[tokio::test]
async fn replay_returns_recorded_results_without_running_or_writing() {
    let journal = Arc::new(MemoryJournal::default());
    // Recorded values differ from what the closures would compute: replay must use them.
    let recorded = vec![run_entry(0, "a", json!(100)), run_entry(1, "b", json!(7))];
    let resp = endpoint()
        .run(request("three", json!(1), recorded), journal.clone())
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!(12),
            tail: None
        }
    );
    assert_eq!(
        journal.writes.load(Ordering::SeqCst),
        0,
        "only the new step is recorded, and with the outcome"
    );
    assert_eq!(
        *journal.tails.lock().unwrap(),
        vec![run_entry(2, "c", json!(12))]
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
        .run(request("three", json!(1), recorded), journal.clone())
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!(3),
            tail: None
        }
    );
    // A closure that ran would have written its entry.
    assert_eq!(journal.writes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn divergent_replay_is_a_non_determinism_failure() {
    let journal = Arc::new(MemoryJournal::default());
    let recorded = vec![run_entry(0, "something-else", json!(1))];
    let resp = endpoint()
        .run(request("three", json!(1), recorded), journal.clone())
        .await;
    match resp {
        HandlerResponse::Failed { failure, .. } => {
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
        .run(request("three", json!(1), recorded), journal)
        .await;
    assert!(
        matches!(resp, HandlerResponse::Failed { failure, .. } if failure.code == 570 && failure.message.contains("does not decode"))
    );
}

#[tokio::test]
async fn a_concurrent_writer_wins_and_the_next_attempt_builds_on_its_result() {
    let journal = Arc::new(MemoryJournal::default());
    // Another attempt recorded step 0 after this attempt's push was built.
    journal
        .entries
        .lock()
        .unwrap()
        .insert(0, run_entry(0, "a", json!(40)));
    let resp = endpoint()
        .run(request("three", json!(1), vec![]), journal.clone())
        .await;
    // This attempt's step 0 (2) was used before its write found 40 recorded: it stops before
    // step 1 runs, and asks to be retried at once.
    match resp {
        HandlerResponse::Retryable {
            message,
            retry_after_ms: Some(0),
            ..
        } => assert!(message.contains("recorded step \"a\""), "{message}"),
        other => panic!("expected a retry, got {other:?}"),
    }
    assert_eq!(
        journal.entries.lock().unwrap().len(),
        1,
        "nothing else written"
    );
    // The retry replays the recorded result.
    let recorded = journal.entries.lock().unwrap().values().cloned().collect();
    let resp = endpoint()
        .run(request("three", json!(1), recorded), journal.clone())
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!(405),
            tail: None
        }
    );
}

#[tokio::test]
async fn a_concurrent_writer_of_the_same_result_is_adopted_without_a_retry() {
    let journal = Arc::new(MemoryJournal::default());
    journal
        .entries
        .lock()
        .unwrap()
        .insert(0, run_entry(0, "a", json!(2)));
    let resp = endpoint()
        .run(request("three", json!(1), vec![]), journal.clone())
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!(25),
            tail: None
        }
    );
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
        .run(request("three", json!(1), vec![]), journal)
        .await;
    assert!(matches!(resp, HandlerResponse::Failed { failure, .. } if failure.code == 570));
}

#[tokio::test]
async fn terminal_step_failures_are_recorded_and_replayed() {
    let journal = Arc::new(MemoryJournal::default());
    let resp = endpoint()
        .run(request("fail", json!(null), vec![]), journal.clone())
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Failed {
            failure: TerminalFailure::new(402, "card declined"),
            tail: None,
        }
    );
    let recorded: Vec<_> = journal.entries.lock().unwrap().values().cloned().collect();
    assert_eq!(recorded.len(), 2);
    // Replaying the recorded failure gives the same outcome without writing.
    let again = Arc::new(MemoryJournal::default());
    let resp = endpoint()
        .run(request("fail", json!(null), recorded), again.clone())
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Failed {
            failure: TerminalFailure::new(402, "card declined"),
            tail: None,
        }
    );
    assert_eq!(again.writes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn retryable_step_failures_end_the_attempt_until_the_policy_is_exhausted() {
    let journal = Arc::new(MemoryJournal::default());
    let resp = endpoint()
        .run(request("flaky", json!(null), vec![]), journal.clone())
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
    let resp = endpoint().run(req, journal.clone()).await;
    assert!(
        matches!(&resp, HandlerResponse::Failed { failure, .. } if failure.message.contains("failed 3 times")),
        "{resp:?}"
    );
    assert_eq!(journal.writes.load(Ordering::SeqCst), 0);
    assert_eq!(
        journal.tails.lock().unwrap().len(),
        1,
        "recorded with the outcome"
    );
}

#[tokio::test]
async fn bad_input_and_unknown_handlers_fail_terminally() {
    let journal = Arc::new(MemoryJournal::default());
    let resp = endpoint()
        .run(request("three", json!("nope"), vec![]), journal.clone())
        .await;
    assert!(
        matches!(resp, HandlerResponse::Failed { failure, .. } if failure.code == 400 && failure.message.contains("invalid input"))
    );
    let resp = endpoint()
        .run(request("missing", json!(1), vec![]), journal)
        .await;
    assert!(matches!(resp, HandlerResponse::Failed { failure, .. } if failure.code == 404));
}

#[tokio::test]
async fn panics_become_retryable_failures() {
    async fn boom(_ctx: Context, _: ()) -> Result<(), HandlerError> {
        panic!("kaboom")
    }
    let ep = Endpoint::new().service(Service::new("svc").handler("boom", boom));
    let resp = ep
        .run(
            request("boom", json!(null), vec![]),
            Arc::new(MemoryJournal::default()),
        )
        .await;
    assert!(
        matches!(resp, HandlerResponse::Retryable { message, .. } if message.contains("kaboom"))
    );
}

#[tokio::test]
async fn short_sleeps_wait_in_process_and_record_their_firing() {
    let journal = Arc::new(MemoryJournal::default());
    let started = Instant::now();
    let resp = endpoint()
        .run(request("nap", json!(20), vec![]), journal.clone())
        .await;
    assert!(started.elapsed() >= Duration::from_millis(20));
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!("rested"),
            tail: None,
        }
    );
    let entries = journal.entries.lock().unwrap();
    assert!(matches!(entries[&0].kind, EntryKind::Sleep { .. }));
    assert_eq!(entries[&0].completion, Some(StepResult::Value(json!(null))));
}

#[tokio::test]
async fn long_sleeps_suspend_with_their_timer() {
    let journal = Arc::new(MemoryJournal::default());
    let before = durable_protocol::clock::now_millis();
    let resp = endpoint()
        .run(request("nap", json!(60_000), vec![]), journal.clone())
        .await;
    match resp {
        HandlerResponse::Suspended { waiting_on, timers } => {
            assert_eq!(waiting_on, vec![0]);
            assert_eq!(timers.len(), 1);
            assert!(timers[0].wake_at_ms >= before + 60_000);
        }
        other => panic!("expected a suspension, got {other:?}"),
    }
    // Replayed with the timer fired: it completes without waiting.
    let mut fired = journal.entries.lock().unwrap()[&0].clone();
    fired.completion = Some(StepResult::Value(json!(null)));
    let resp = endpoint()
        .run(request("nap", json!(60_000), vec![fired]), journal)
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!("rested"),
            tail: None,
        }
    );
}

#[tokio::test]
async fn a_completion_found_when_re_checking_prevents_the_suspension() {
    // The timer fired after the push was built: the journal holds the completion.
    let journal = Arc::new(MemoryJournal::default());
    let mut entry = JournalEntry::new(
        0,
        EntryKind::Sleep {
            name: "sleep".into(),
            wake_at_ms: 1,
        },
    );
    entry.completion = Some(StepResult::Value(json!(null)));
    // The push still shows it incomplete and far away.
    let mut pushed = entry.clone();
    pushed.completion = None;
    if let EntryKind::Sleep { wake_at_ms, .. } = &mut pushed.kind {
        *wake_at_ms = u64::MAX / 4;
    }
    journal.entries.lock().unwrap().insert(0, entry);
    let resp = endpoint()
        .run(request("nap", json!(60_000), vec![pushed]), journal)
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!("rested"),
            tail: None,
        }
    );
}

#[tokio::test]
async fn awakeables_suspend_and_resume_with_their_value_or_the_timeout() {
    let journal = Arc::new(MemoryJournal::default());
    let resp = endpoint()
        .run(request("approval", json!(60_000), vec![]), journal.clone())
        .await;
    let HandlerResponse::Suspended { waiting_on, timers } = resp else {
        panic!("{resp:?}")
    };
    assert_eq!(
        waiting_on,
        vec![0, 1],
        "the awakeable and the timeout timer"
    );
    assert_eq!(timers.iter().map(|t| t.index).collect::<Vec<_>>(), vec![1]);

    // Resolved: replay picks the awakeable and records it as the winner.
    let recorded: Vec<_> = journal.entries.lock().unwrap().values().cloned().collect();
    let mut resolved = recorded.clone();
    resolved[0].completion = Some(StepResult::Value(json!("ada")));
    let resp = endpoint()
        .run(
            request("approval", json!(60_000), resolved.clone()),
            journal.clone(),
        )
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!("approved by ada"),
            tail: None,
        }
    );
    let select = journal.entries.lock().unwrap()[&2].clone();
    assert_eq!(
        select.kind,
        EntryKind::Select {
            of: vec![0, 1],
            winner: 0
        }
    );

    // A later replay where the timer has fired too still returns the recorded winner.
    let mut both = resolved;
    both[1].completion = Some(StepResult::Value(json!(null)));
    both.push(select);
    let resp = endpoint()
        .run(
            request("approval", json!(60_000), both),
            Arc::new(MemoryJournal::default()),
        )
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!("approved by ada"),
            tail: None,
        }
    );
}

#[tokio::test]
async fn the_timeout_wins_when_nobody_resolves() {
    let journal = Arc::new(MemoryJournal::default());
    let resp = endpoint()
        .run(request("approval", json!(30), vec![]), journal.clone())
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!("timed out"),
            tail: None,
        }
    );
    let entries = journal.entries.lock().unwrap();
    assert_eq!(
        entries[&2].kind,
        EntryKind::Select {
            of: vec![0, 1],
            winner: 1
        }
    );
}

#[tokio::test]
async fn rejected_awakeables_fail_the_wait_terminally() {
    let journal = Arc::new(MemoryJournal::default());
    let mut awk = JournalEntry::new(
        0,
        EntryKind::Awakeable {
            name: "awakeable".into(),
        },
    );
    awk.completion = Some(StepResult::Failure(TerminalFailure::new(400, "no way")));
    let resp = endpoint()
        .run(request("approval", json!(60_000), vec![awk]), journal)
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Failed {
            failure: TerminalFailure::new(400, "no way"),
            tail: None,
        }
    );
}

#[tokio::test]
async fn timers_waited_together_run_concurrently() {
    let journal = Arc::new(MemoryJournal::default());
    let started = Instant::now();
    let resp = endpoint()
        .run(request("two_timers", json!(null), vec![]), journal)
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!(2),
            tail: None
        }
    );
    // One after the other would take at least 500 ms.
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_sleep_where_the_journal_has_a_step_is_a_divergence() {
    let resp = endpoint()
        .run(
            request("nap", json!(10), vec![run_entry(0, "a", json!(1))]),
            Arc::new(MemoryJournal::default()),
        )
        .await;
    assert!(
        matches!(resp, HandlerResponse::Failed { failure, .. } if failure.code == 570 && failure.message.contains("asks for sleep"))
    );
}

#[tokio::test]
async fn calls_and_sends_are_recorded_and_dispatched_in_program_order() {
    let journal = Arc::new(MemoryJournal::default());
    let dispatcher = Arc::new(MemoryDispatcher::default());
    let resp = endpoint()
        .run_with(
            request("fan_out", json!(4), vec![]),
            journal.clone(),
            dispatcher.clone(),
        )
        .await;
    let HandlerResponse::Suspended { waiting_on, timers } = resp else {
        panic!("{resp:?}")
    };
    assert_eq!(waiting_on, vec![0, 1, 2, 3]);
    assert!(timers.is_empty());
    assert_eq!(*dispatcher.dispatched.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    let entries: Vec<_> = journal.entries.lock().unwrap().values().cloned().collect();
    assert!(
        matches!(&entries[4].kind, EntryKind::Send { target, .. } if target.display() == "audit/log")
    );
    let parent = InvocationId::derived(&["test", "fan_out"]);
    assert!(
        matches!(&entries[2].kind, EntryKind::Call { child, input, .. } if *child == InvocationId::child(&parent, 2) && *input == json!(2))
    );

    // Replayed with the children done and the dispatches acknowledged: no new dispatch.
    let done: Vec<_> = entries
        .into_iter()
        .map(|mut e| {
            e.dispatched = true;
            if let EntryKind::Call { input, .. } = &e.kind {
                let i = input.as_u64().unwrap();
                e.completion = Some(StepResult::Value(json!(i * i)));
            }
            e
        })
        .collect();
    let again = Arc::new(MemoryDispatcher::default());
    let resp = endpoint()
        .run_with(
            request("fan_out", json!(4), done.clone()),
            Arc::new(MemoryJournal::default()),
            again.clone(),
        )
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!(1 + 4 + 9),
            tail: None,
        }
    );
    assert!(again.dispatched.lock().unwrap().is_empty());

    // Not acknowledged (e.g. the dispatch was lost): replay dispatches again.
    let mut lost = done;
    lost[1].dispatched = false;
    lost[4].dispatched = false;
    let again = Arc::new(MemoryDispatcher::default());
    endpoint()
        .run_with(
            request("fan_out", json!(4), lost),
            Arc::new(MemoryJournal::default()),
            again.clone(),
        )
        .await;
    assert_eq!(*again.dispatched.lock().unwrap(), vec![1, 4]);
}

#[tokio::test]
async fn a_callees_terminal_error_reaches_the_caller() {
    let mut entries = Vec::new();
    let parent = InvocationId::derived(&["test", "fan_out"]);
    let target = durable_protocol::Target {
        key: None,
        service: ServiceName::new("math").unwrap(),
        handler: HandlerName::new("square").unwrap(),
    };
    let mut call = JournalEntry::new(
        0,
        EntryKind::Call {
            target,
            input: json!(0),
            child: InvocationId::child(&parent, 0),
        },
    );
    call.dispatched = true;
    call.completion = Some(StepResult::Failure(TerminalFailure::new(
        422,
        "negative zero",
    )));
    entries.push(call);
    let resp = endpoint()
        .run(
            request("fan_out", json!(1), entries),
            Arc::new(MemoryJournal::default()),
        )
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Failed {
            failure: TerminalFailure::new(422, "negative zero"),
            tail: None,
        }
    );
}

/// Regression: an in-process timer racing an awakeable must not be lost while its firing is
/// being written (the handler is parked on that write, not blocked on the outside).
#[tokio::test]
async fn a_timer_fired_in_process_is_not_lost_while_its_completion_is_written() {
    for _ in 0..5 {
        let journal = Arc::new(MemoryJournal {
            completion_delay: Some(Duration::from_millis(40)),
            ..MemoryJournal::default()
        });
        let resp = endpoint()
            .run(request("approval", json!(20), vec![]), journal)
            .await;
        assert_eq!(
            resp,
            HandlerResponse::Completed {
                output: json!("timed out"),
                tail: None,
            }
        );
    }
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
    assert_eq!(
        names,
        [
            "approval",
            "fail",
            "fan_out",
            "flaky",
            "nap",
            "three",
            "two_timers"
        ]
    );
}

mod keyed {
    use super::*;
    use crate::{
        ObjectContext, SharedObjectContext, SharedWorkflowContext, VirtualObject, Workflow,
        WorkflowContext,
    };
    use durable_protocol::{EagerState, HandlerKind, ObjectKey, StateDelta};

    async fn add(ctx: ObjectContext, n: i64) -> Result<serde_json::Value, HandlerError> {
        let old = ctx.get::<i64>("count").await?.unwrap_or(0);
        ctx.set("count", &(old + n))?;
        let seen = ctx.get::<i64>("count").await?;
        ctx.run("noop", || async { Ok(()) }).await?;
        Ok(json!({"old": old, "new": old + n, "seen": seen}))
    }

    async fn wipe(ctx: ObjectContext, _: ()) -> Result<Vec<String>, HandlerError> {
        ctx.set("a", &1)?;
        ctx.clear_all();
        ctx.set("b", &2)?;
        Ok(ctx.state_keys().await)
    }

    async fn peek(ctx: SharedObjectContext, _: ()) -> Result<Option<i64>, HandlerError> {
        Ok(ctx.get::<i64>("count").await?)
    }

    async fn signup(ctx: WorkflowContext, email: String) -> Result<String, HandlerError> {
        ctx.set("email", &email)?;
        let link: String = ctx.promise("link").await?;
        Ok(format!("{email} confirmed with {link}"))
    }

    async fn confirm(ctx: SharedWorkflowContext, link: String) -> Result<(), HandlerError> {
        ctx.resolve_promise("link", &link).await?;
        Ok(())
    }

    fn endpoint() -> Endpoint {
        Endpoint::new()
            .service(
                VirtualObject::new("counter")
                    .exclusive("add", add)
                    .exclusive("wipe", wipe)
                    .shared("peek", peek),
            )
            .service(Workflow::new("signup", signup).shared("confirm", confirm))
    }

    fn keyed_request(
        service: &str,
        handler: &str,
        input: serde_json::Value,
        state: Option<EagerState>,
    ) -> InvokeRequest {
        InvokeRequest {
            service: ServiceName::new(service).unwrap(),
            key: Some(ObjectKey::new("k").unwrap()),
            handler_kind: Some(HandlerKind::Exclusive),
            state,
            invocation_id: InvocationId::derived(&["keyed", service, handler]),
            ..request(handler, input, vec![])
        }
    }

    #[tokio::test]
    async fn discovery_describes_kinds() {
        let d = endpoint().discover();
        let counter = d
            .services
            .iter()
            .find(|s| s.name.as_str() == "counter")
            .unwrap();
        assert_eq!(counter.kind, durable_protocol::ServiceKind::Object);
        let kinds: Vec<_> = counter
            .handlers
            .iter()
            .map(|h| (h.name.as_str(), h.kind))
            .collect();
        assert!(kinds.contains(&("peek", Some(HandlerKind::Shared))));
        assert!(kinds.contains(&("add", Some(HandlerKind::Exclusive))));
        let signup = d
            .services
            .iter()
            .find(|s| s.name.as_str() == "signup")
            .unwrap();
        assert!(signup
            .handlers
            .iter()
            .any(|h| h.name.as_str() == "run" && h.kind == Some(HandlerKind::Workflow)));
    }

    #[tokio::test]
    async fn state_changes_are_journaled_and_seen_by_the_handler() {
        let journal = Arc::new(MemoryJournal::default());
        let eager = EagerState {
            values: [("count".to_string(), json!(5))].into(),
            complete: true,
        };
        let resp = endpoint()
            .run(
                keyed_request("counter", "add", json!(2), Some(eager.clone())),
                journal.clone(),
            )
            .await;
        assert_eq!(
            resp,
            HandlerResponse::Completed {
                output: json!({"old": 5, "new": 7, "seen": 7}),
                tail: None,
            }
        );
        // Complete eager state: no reads from the store.
        assert_eq!(journal.state_reads.load(Ordering::SeqCst), 0);
        let entries: Vec<JournalEntry> =
            journal.entries.lock().unwrap().values().cloned().collect();
        let delta = StateDelta::from_journal(&entries);
        assert_eq!(delta.changes["count"], Some(json!(7)));
        // Replay with the journal: no new writes, same answer.
        let writes = journal.writes.load(Ordering::SeqCst);
        let mut req = keyed_request("counter", "add", json!(2), Some(eager));
        req.journal = entries;
        let again = endpoint().run(req, journal.clone()).await;
        assert_eq!(again, resp);
        assert_eq!(journal.writes.load(Ordering::SeqCst), writes);
    }

    #[tokio::test]
    async fn state_not_pushed_is_read_lazily() {
        let journal = Arc::new(MemoryJournal::default());
        journal
            .state
            .lock()
            .unwrap()
            .insert("count".into(), json!(40));
        let resp = endpoint()
            .run(
                keyed_request("counter", "add", json!(2), None),
                journal.clone(),
            )
            .await;
        assert_eq!(
            resp,
            HandlerResponse::Completed {
                output: json!({"old": 40, "new": 42, "seen": 42}),
                tail: None,
            }
        );
        assert_eq!(journal.state_reads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn clear_all_then_set_leaves_only_later_keys() {
        let journal = Arc::new(MemoryJournal::default());
        journal.state.lock().unwrap().insert("old".into(), json!(1));
        let resp = endpoint()
            .run(
                keyed_request("counter", "wipe", json!(null), None),
                journal.clone(),
            )
            .await;
        assert_eq!(
            resp,
            HandlerResponse::Completed {
                output: json!(["b"]),
                tail: None,
            }
        );
        let entries: Vec<JournalEntry> =
            journal.entries.lock().unwrap().values().cloned().collect();
        let delta = StateDelta::from_journal(&entries);
        assert!(delta.clear_all);
        assert_eq!(delta.changes.len(), 1);
    }

    #[tokio::test]
    async fn shared_reads_are_recorded_for_replay() {
        let journal = Arc::new(MemoryJournal::default());
        journal
            .state
            .lock()
            .unwrap()
            .insert("count".into(), json!(3));
        let mut req = keyed_request("counter", "peek", json!(null), None);
        req.handler_kind = Some(HandlerKind::Shared);
        let resp = endpoint().run(req.clone(), journal.clone()).await;
        assert_eq!(
            resp,
            HandlerResponse::Completed {
                output: json!(3),
                tail: None
            }
        );
        // The state changes; a replay still sees what the first attempt read.
        journal
            .state
            .lock()
            .unwrap()
            .insert("count".into(), json!(99));
        req.journal = journal.entries.lock().unwrap().values().cloned().collect();
        let again = endpoint().run(req, journal.clone()).await;
        assert_eq!(
            again,
            HandlerResponse::Completed {
                output: json!(3),
                tail: None
            }
        );
    }

    #[tokio::test]
    async fn a_resolved_promise_completes_the_waiting_run() {
        let journal = Arc::new(MemoryJournal::default());
        let dispatcher = Arc::new(MemoryDispatcher::default());
        let mut run = keyed_request("signup", "run", json!("ada@example.com"), None);
        run.handler = HandlerName::new("run").unwrap();
        run.handler_kind = Some(HandlerKind::Workflow);
        let first = endpoint()
            .run_with(run.clone(), journal.clone(), dispatcher.clone())
            .await;
        assert!(
            matches!(first, HandlerResponse::Suspended { .. }),
            "{first:?}"
        );
        // A shared handler of the same workflow resolves it (another invocation, same object).
        let other = Arc::new(MemoryJournal::default());
        *other.promises.lock().unwrap() = std::mem::take(&mut *journal.promises.lock().unwrap());
        let mut confirm = keyed_request("signup", "confirm", json!("link-1"), None);
        confirm.handler_kind = Some(HandlerKind::Shared);
        let resp = endpoint()
            .run_with(confirm.clone(), other.clone(), dispatcher.clone())
            .await;
        assert_eq!(
            resp,
            HandlerResponse::Completed {
                output: json!(null),
                tail: None,
            }
        );
        // The waiter was told: its entry completion goes to the waiter's journal (here the
        // resolver's memory journal stands in for the table) and a resume was sent.
        assert_eq!(dispatcher.resumed.lock().unwrap().len(), 1);
        // Resolving again fails with 409.
        let third = Arc::new(MemoryJournal::default());
        *third.promises.lock().unwrap() = std::mem::take(&mut *other.promises.lock().unwrap());
        let mut again = confirm.clone();
        again.invocation_id = InvocationId::random();
        let resp = endpoint()
            .run_with(again, third.clone(), dispatcher.clone())
            .await;
        assert!(
            matches!(&resp, HandlerResponse::Failed { failure, .. } if failure.code == 409),
            "{resp:?}"
        );
        // The run, re-pushed, finds the promise resolved.
        *journal.promises.lock().unwrap() = std::mem::take(&mut *third.promises.lock().unwrap());
        run.journal = journal.entries.lock().unwrap().values().cloned().collect();
        let done = endpoint().run_with(run, journal.clone(), dispatcher).await;
        assert_eq!(
            done,
            HandlerResponse::Completed {
                output: json!("ada@example.com confirmed with link-1"),
                tail: None,
            }
        );
    }

    #[tokio::test]
    async fn keyed_handlers_need_a_key() {
        let journal = Arc::new(MemoryJournal::default());
        let mut req = keyed_request("counter", "add", json!(1), None);
        req.key = None;
        let resp = endpoint().run(req, journal).await;
        assert!(
            matches!(&resp, HandlerResponse::Failed { failure, .. } if failure.code == 400),
            "{resp:?}"
        );
    }
}

/// The last step's entry is deferred until something durable follows it: these pin down when
/// it is written.
mod deferred_steps {
    use super::*;

    /// A handler whose second step's closure reports which entries were stored when it began.
    fn observing(journal: Arc<MemoryJournal>) -> Endpoint {
        let handler = move |ctx: Context, _: ()| {
            let journal = journal.clone();
            async move {
                ctx.run("first", || async { Ok(1) }).await?;
                let seen: Vec<u32> = ctx
                    .run("second", || async move {
                        Ok(journal.entries.lock().unwrap().keys().copied().collect())
                    })
                    .await?;
                Ok(seen)
            }
        };
        Endpoint::new().service(Service::new("svc").handler("observe", handler))
    }

    #[tokio::test]
    async fn a_step_is_recorded_before_the_next_steps_closure_runs() {
        let journal = Arc::new(MemoryJournal::default());
        let resp = observing(journal.clone())
            .run(request("observe", json!(null), vec![]), journal.clone())
            .await;
        assert_eq!(
            resp,
            HandlerResponse::Completed {
                output: json!([0]),
                tail: None
            },
            "entry 0 was stored when the second closure ran"
        );
        assert_eq!(journal.writes.load(Ordering::SeqCst), 1);
        assert_eq!(journal.tails.lock().unwrap()[0].index, 1);
    }

    async fn step_then_sleep(ctx: Context, _: ()) -> Result<(), HandlerError> {
        ctx.run("before", || async { Ok(7) }).await?;
        ctx.sleep(Duration::from_secs(3600)).await?;
        Ok(())
    }

    async fn step_then_retryable_error(ctx: Context, _: ()) -> Result<(), HandlerError> {
        ctx.run("kept", || async { Ok(7) }).await?;
        Err(HandlerError::retryable("downstream unavailable"))
    }

    async fn two_concurrent_steps(ctx: Context, _: ()) -> Result<u32, HandlerError> {
        let (a, b) = tokio::join!(
            ctx.run("a", || async { Ok(1u32) }),
            ctx.run("b", || async { Ok(2u32) })
        );
        Ok(a? + b?)
    }

    fn endpoint() -> Endpoint {
        Endpoint::new().service(
            Service::new("svc")
                .handler("sleep", step_then_sleep)
                .handler("error", step_then_retryable_error)
                .handler("join", two_concurrent_steps),
        )
    }

    /// A handler that, after its step, awaits something that is not durable (here a timer of
    /// the runtime; an HTTP call, a channel...) and then reports what was stored by then.
    fn awaiting_after_a_step(journal: Arc<MemoryJournal>) -> Endpoint {
        let handler = move |ctx: Context, _: ()| {
            let journal = journal.clone();
            async move {
                ctx.run("only", || async { Ok(5) }).await?;
                tokio::time::sleep(Duration::from_millis(5)).await;
                let stored = journal.entries.lock().unwrap().contains_key(&0);
                Ok(stored)
            }
        };
        Endpoint::new().service(Service::new("svc").handler("await", handler))
    }

    #[tokio::test]
    async fn a_step_is_recorded_before_the_handler_resumes_from_any_await() {
        let journal = Arc::new(MemoryJournal::default());
        let resp = awaiting_after_a_step(journal.clone())
            .run(request("await", json!(null), vec![]), journal.clone())
            .await;
        assert_eq!(
            resp,
            HandlerResponse::Completed {
                output: json!(true),
                tail: None
            },
            "the entry was written while the handler was parked"
        );
        assert_eq!(journal.writes.load(Ordering::SeqCst), 1);
        assert!(journal.tails.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_step_before_a_suspension_is_appended_not_answered() {
        let journal = Arc::new(MemoryJournal::default());
        let resp = endpoint()
            .run(request("sleep", json!(null), vec![]), journal.clone())
            .await;
        assert!(
            matches!(&resp, HandlerResponse::Suspended { waiting_on, .. } if waiting_on == &[1]),
            "{resp:?}"
        );
        let entries = journal.entries.lock().unwrap();
        assert_eq!(entries[&0], run_entry(0, "before", json!(7)));
        assert!(matches!(entries[&1].kind, EntryKind::Sleep { .. }));
        assert!(journal.tails.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_step_before_a_retryable_failure_is_kept_for_the_retry() {
        let journal = Arc::new(MemoryJournal::default());
        let resp = endpoint()
            .run(request("error", json!(null), vec![]), journal.clone())
            .await;
        assert!(
            matches!(&resp, HandlerResponse::Retryable { message, .. } if message.contains("downstream")),
            "{resp:?}"
        );
        assert_eq!(
            journal.entries.lock().unwrap()[&0],
            run_entry(0, "kept", json!(7))
        );
        assert!(journal.tails.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn of_steps_finishing_together_one_is_appended_and_the_last_answered() {
        let journal = Arc::new(MemoryJournal::default());
        let resp = endpoint()
            .run(request("join", json!(null), vec![]), journal.clone())
            .await;
        assert_eq!(
            resp,
            HandlerResponse::Completed {
                output: json!(3),
                tail: None
            }
        );
        assert_eq!(journal.writes.load(Ordering::SeqCst), 1);
        assert_eq!(journal.entries.lock().unwrap().len(), 2);
        assert_eq!(journal.tails.lock().unwrap().len(), 1);
    }
}
