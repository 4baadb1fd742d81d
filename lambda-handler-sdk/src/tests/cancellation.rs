//! Cancellation: what a cancelled invocation's handler sees, once.

use super::*;
use durable_protocol::{EntryKind, StepResult, TerminalFailure};

/// Sleeps; if the sleep is cancelled, compensates in a step and finishes normally.
async fn compensating(ctx: Context, _: ()) -> Result<String, HandlerError> {
    match ctx.sleep(Duration::from_secs(3600)).await {
        Ok(()) => Ok("slept".into()),
        Err(e) if e.is_cancelled() => {
            let undone: String = ctx
                .run("undo", || async { Ok("undone".to_owned()) })
                .await?;
            Ok(undone)
        }
        Err(e) => Err(e.into()),
    }
}

fn cancelled_sleep() -> JournalEntry {
    let mut entry = JournalEntry::new(
        0,
        EntryKind::Sleep {
            name: "sleep".into(),
            wake_at_ms: u64::MAX / 2,
        },
    );
    entry.completion = Some(StepResult::Failure(TerminalFailure::cancelled()));
    entry
}

#[tokio::test]
async fn a_pushed_cancellation_makes_the_next_new_step_record_it_instead_of_running() {
    let journal = Arc::new(MemoryJournal::default());
    let req = InvokeRequest {
        cancel: true,
        ..request("three", json!(1), vec![run_entry(0, "a", json!(2))])
    };
    let resp = endpoint().run(req, journal.clone()).await;
    let HandlerResponse::Failed { failure, .. } = resp else {
        panic!("{resp:?}")
    };
    assert!(failure.is_cancelled(), "{failure:?}");
    // Entry 0 replayed; step "b" recorded the cancellation without running.
    let tail = journal.tails.lock().unwrap()[0].clone();
    assert_eq!(tail.index, 1);
    assert!(matches!(
        &tail.kind,
        EntryKind::Run { name, result: StepResult::Failure(f) } if name == "b" && f.is_cancelled()
    ));
}

#[tokio::test]
async fn a_cancelled_sleep_fails_with_409_and_a_delivered_cancellation_is_not_seen_again() {
    let endpoint = Endpoint::new().service(Service::new("svc").handler("comp", compensating));
    let journal = Arc::new(MemoryJournal::default());
    // The push still says "cancel" (the orchestrator has not recorded the delivery), but the
    // journal carries it: the compensation's step runs.
    let req = InvokeRequest {
        cancel: true,
        ..request("comp", json!(null), vec![cancelled_sleep()])
    };
    let resp = endpoint.run(req, journal.clone()).await;
    assert!(
        matches!(&resp, HandlerResponse::Completed { output, .. } if output == &json!("undone")),
        "{resp:?}"
    );
    assert!(TerminalError::cancelled().is_cancelled());
    assert!(
        !TerminalError::new("cancelled").is_cancelled(),
        "500 is not a cancellation"
    );
    assert!(TerminalError::from(TerminalFailure::killed()).is_killed());
}
