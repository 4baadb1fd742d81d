//! The last step's deferred write: when it is written, and when it travels with the outcome.

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
    assert_eq!(untimed(&entries[&0]), run_entry(0, "before", json!(7)));
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
        untimed(&journal.entries.lock().unwrap()[&0]),
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
