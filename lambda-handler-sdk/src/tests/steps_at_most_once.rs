//! At-most-once steps: a marker before the closure, and an interrupted try that is failed
//! (retried per policy, or terminal) instead of run again.

use super::*;
use crate::StepSemantics;
use std::sync::atomic::AtomicU32;

/// A handler with one at-most-once step (`charge`), at most `tries` tries, that counts how
/// often its closure ran and answers the try it ran in.
fn charging(runs: Arc<AtomicU32>, tries: u32) -> Endpoint {
    let handler = move |ctx: Context, _: ()| {
        let runs = runs.clone();
        async move {
            let try_number: u32 = ctx
                .run("charge", || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    Ok(crate::step_attempt().unwrap_or(0))
                })
                .semantics(StepSemantics::AtMostOncePerRetry)
                .retry_policy(
                    RetryPolicy::exponential(Duration::from_millis(10), 2.0).max_attempts(tries),
                )
                .await?;
            Ok(try_number)
        }
    };
    Endpoint::new().service(Service::new("svc").handler("charge", handler))
}

fn started(attempt: u32) -> JournalEntry {
    JournalEntry::new(
        0,
        EntryKind::Started {
            name: "charge".into(),
            attempt,
        },
    )
}

/// The journal of the store and of the push both hold `entries`, as after an earlier attempt.
fn seeded(entries: &[JournalEntry]) -> Arc<MemoryJournal> {
    let journal = Arc::new(MemoryJournal::default());
    for e in entries {
        journal.entries.lock().unwrap().insert(e.index, e.clone());
    }
    journal
}

#[tokio::test]
async fn an_at_most_once_step_records_a_marker_before_its_closure_and_its_result_on_it() {
    let runs = Arc::new(AtomicU32::new(0));
    let journal = Arc::new(MemoryJournal::default());
    let resp = charging(runs.clone(), 3)
        .run(request("charge", json!(null), vec![]), journal.clone())
        .await;
    assert_eq!(
        resp,
        HandlerResponse::Completed {
            output: json!(1),
            tail: None
        }
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let entry = journal.entries.lock().unwrap()[&0].clone();
    assert_eq!(
        entry.kind,
        EntryKind::Started {
            name: "charge".into(),
            attempt: 1
        }
    );
    assert_eq!(entry.completion, Some(StepResult::Value(json!(1))));
    assert!(entry.started_at_ms.is_some());
    assert!(journal.tails.lock().unwrap().is_empty(), "not deferred");

    // A replay returns the recorded result without running the closure.
    let resp = charging(runs.clone(), 3)
        .run(request("charge", json!(null), vec![entry]), journal.clone())
        .await;
    assert!(matches!(resp, HandlerResponse::Completed { output, .. } if output == json!(1)));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_interrupted_try_is_failed_not_run_again_and_the_next_try_runs_once() {
    let runs = Arc::new(AtomicU32::new(0));
    // Try 1 started and its attempt died: the next attempt fails that try, runs nothing.
    let journal = seeded(&[started(1)]);
    let resp = charging(runs.clone(), 3)
        .run(
            request("charge", json!(null), vec![started(1)]),
            journal.clone(),
        )
        .await;
    match &resp {
        HandlerResponse::Retryable { message, step, .. } => {
            assert_eq!(*step, Some(0), "counted as a failure of the step");
            assert!(message.contains("was interrupted"), "{message}");
        }
        other => panic!("expected a retry, got {other:?}"),
    }
    assert_eq!(runs.load(Ordering::SeqCst), 0);

    // The orchestrator counted it: try 2 starts (the marker moves on) and runs once.
    let mut req = request("charge", json!(null), vec![started(1)]);
    req.step_failures = Some(StepFailures { index: 0, count: 1 });
    let resp = charging(runs.clone(), 3).run(req, journal.clone()).await;
    assert!(
        matches!(&resp, HandlerResponse::Completed { output, .. } if *output == json!(2)),
        "{resp:?}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let entry = journal.entries.lock().unwrap()[&0].clone();
    assert_eq!(entry.kind, started(2).kind);
    assert_eq!(entry.completion, Some(StepResult::Value(json!(2))));
}

#[tokio::test]
async fn an_interrupted_last_try_is_a_terminal_failure_recorded_on_the_step() {
    let runs = Arc::new(AtomicU32::new(0));
    let journal = seeded(&[started(2)]);
    let mut req = request("charge", json!(null), vec![started(2)]);
    req.step_failures = Some(StepFailures { index: 0, count: 1 });
    let resp = charging(runs.clone(), 2).run(req, journal.clone()).await;
    match &resp {
        HandlerResponse::Failed { failure, .. } => {
            assert_eq!(failure.code, 500);
            assert!(failure.message.contains("was interrupted"), "{failure:?}");
        }
        other => panic!("expected a terminal failure, got {other:?}"),
    }
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    let entry = journal.entries.lock().unwrap()[&0].clone();
    assert!(
        matches!(&entry.completion, Some(StepResult::Failure(f)) if f.code == 500),
        "{entry:?}"
    );
}

#[tokio::test]
async fn a_try_another_attempt_moved_on_is_not_run_twice() {
    // The store already has try 2 (a racing attempt moved the marker on); this attempt's push
    // still shows try 1, counted: it must not run try 2 as well.
    let runs = Arc::new(AtomicU32::new(0));
    let journal = seeded(&[started(2)]);
    let mut req = request("charge", json!(null), vec![started(1)]);
    req.step_failures = Some(StepFailures { index: 0, count: 1 });
    let resp = charging(runs.clone(), 3).run(req, journal.clone()).await;
    assert!(
        matches!(&resp, HandlerResponse::Retryable { message, .. } if message.contains("moved step")),
        "{resp:?}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_at_least_once_step_writes_no_marker() {
    let journal = Arc::new(MemoryJournal::default());
    endpoint()
        .run(request("three", json!(1), vec![]), journal.clone())
        .await;
    assert!(journal
        .entries
        .lock()
        .unwrap()
        .values()
        .all(|e| matches!(e.kind, EntryKind::Run { .. })));
}
