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

/// Two steps, the first longer than the cancellation poll.
async fn long_then_short(ctx: Context, _: ()) -> Result<String, HandlerError> {
    ctx.run("long", || async {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        Ok(())
    })
    .await?;
    match ctx.run("short", || async { Ok(()) }).await {
        Ok(()) => Ok("ran".into()),
        Err(e) if e.is_cancelled() => {
            let undone: String = ctx
                .run("undo", || async { Ok("undone".to_owned()) })
                .await?;
            Ok(undone)
        }
        Err(e) => Err(e.into()),
    }
}

#[tokio::test]
async fn a_running_attempt_sees_a_cancellation_at_its_next_step_after_a_second() {
    let endpoint =
        Endpoint::new().service(Service::new("svc").handler("long_then_short", long_then_short));
    let journal = Arc::new(MemoryJournal::default());
    journal.cancel_pending.store(true, Ordering::SeqCst);
    let resp = endpoint
        .run(
            request("long_then_short", json!(null), vec![]),
            journal.clone(),
        )
        .await;
    assert!(
        matches!(&resp, HandlerResponse::Completed { output, .. } if output == &json!("undone")),
        "the step after the long one records the cancellation, the compensation runs: {resp:?}"
    );
    let entries = journal.journal();
    assert!(
        matches!(&entries[1].kind, EntryKind::Run { name, result: StepResult::Failure(f) } if name == "short" && f.is_cancelled()),
        "{entries:?}"
    );
    assert_eq!(
        journal.cancel_reads.load(Ordering::SeqCst),
        1,
        "one look (the first step started within the first second; the compensation does not look again)"
    );

    // A short run never looks: the happy path pays no read.
    let quick = Arc::new(MemoryJournal::default());
    quick.cancel_pending.store(true, Ordering::SeqCst);
    let resp = super::endpoint()
        .run(request("three", json!(1), vec![]), quick.clone())
        .await;
    assert!(
        matches!(resp, HandlerResponse::Completed { .. }),
        "{resp:?}"
    );
    assert_eq!(quick.cancel_reads.load(Ordering::SeqCst), 0);
}

/// Sends a delayed reminder, then cancels it; and tries to cancel an id it did not make.
async fn cancels_its_child(ctx: Context, foreign: String) -> Result<(), HandlerError> {
    let reminder = ctx.send_after(Duration::from_secs(3600), "other", "remind", &"soon")?;
    ctx.cancel(&reminder).await?;
    let foreign = InvocationId::parse(&foreign).map_err(|e| TerminalError::new(e.to_string()))?;
    ctx.cancel(&foreign).await?;
    Ok(())
}

#[tokio::test]
async fn a_handler_cancels_its_own_child_once_and_no_one_elses() {
    let endpoint =
        Endpoint::new().service(Service::new("svc").handler("cancels", cancels_its_child));
    let journal = Arc::new(MemoryJournal::default());
    let dispatcher = Arc::new(MemoryDispatcher::default());
    let foreign = InvocationId::random(&ServiceName::new("other").unwrap());
    let req = request("cancels", json!(foreign.as_str()), vec![]);
    let resp = endpoint
        .run_with(req.clone(), journal.clone(), dispatcher.clone())
        .await;
    let HandlerResponse::Failed { failure, .. } = &resp else {
        panic!("{resp:?}")
    };
    assert_eq!(failure.code, 400, "{failure:?}");
    assert!(
        failure.message.contains("not a call or send"),
        "{failure:?}"
    );
    assert_eq!(
        *dispatcher.cancelled.lock().unwrap(),
        vec![0],
        "the send's entry, once"
    );
    let entries = journal.journal();
    assert!(
        matches!(&entries[1].kind, EntryKind::Run { name, result: StepResult::Value(_) } if name == "cancel child"),
        "{entries:?}"
    );

    // A replay of the recorded journal sends nothing again.
    let again = Arc::new(MemoryDispatcher::default());
    let replay = Arc::new(MemoryJournal::default());
    let req = request("cancels", json!(foreign.as_str()), entries);
    let resp = endpoint.run_with(req, replay, again.clone()).await;
    assert!(
        matches!(&resp, HandlerResponse::Failed { failure, .. } if failure.code == 400),
        "{resp:?}"
    );
    assert!(again.cancelled.lock().unwrap().is_empty());
}
