//! The in-process test runner: replay, retries, injected failures and crashes, virtual time,
//! awakeables, calls and sends, object state and workflow promises.

use durable_testing::{EntryKind, RunError, Status, StepResult, TestRunner};
use lambda_handler_sdk::prelude::*;
use std::time::{Duration, Instant};

const THREE_DAYS: Duration = Duration::from_secs(3 * 24 * 3600);

async fn three_steps(ctx: Context, base: u32) -> Result<u32, HandlerError> {
    let a: u32 = ctx.run("a", || async move { Ok(base + 1) }).await?;
    let b: u32 = ctx.run("b", || async move { Ok(a * 10) }).await?;
    let c: u32 = ctx.run("c", || async move { Ok(b + 5) }).await?;
    Ok(c)
}

async fn charge_once(ctx: Context, _: ()) -> Result<u32, HandlerError> {
    let try_number = ctx
        .run("charge", || async {
            Ok(lambda_handler_sdk::step_attempt().unwrap_or(0))
        })
        .semantics(StepSemantics::AtMostOncePerRetry)
        .await?;
    Ok(try_number)
}

async fn declined(ctx: Context, _: ()) -> Result<(), HandlerError> {
    ctx.run("charge", || async {
        Err::<(), _>(TerminalError::new("card declined").with_code(402).into())
    })
    .await?;
    Ok(())
}

async fn approval(ctx: Context, timeout: Duration) -> Result<String, HandlerError> {
    let (_id, decision) = ctx.awakeable_named::<String>("manager").await?;
    match ctx.timeout(decision, timeout).await {
        Ok(by) => Ok(format!("approved by {by}")),
        Err(e) if e.code() == 408 => Ok("expired".to_owned()),
        Err(e) => Err(e.into()),
    }
}

async fn forever(ctx: Context, _: ()) -> Result<String, HandlerError> {
    let (_id, never) = ctx.awakeable::<String>().await?;
    Ok(never.await?)
}

async fn long_nap(ctx: Context, _: ()) -> Result<&'static str, HandlerError> {
    ctx.sleep(THREE_DAYS).await?;
    ctx.sleep(THREE_DAYS).await?;
    Ok("rested")
}

async fn square(_ctx: Context, n: u32) -> Result<u32, HandlerError> {
    Ok(n * n)
}

async fn sum_of_squares(ctx: Context, n: u32) -> Result<u32, HandlerError> {
    let calls = (1..=n)
        .map(|i| ctx.call::<u32>("math", "square", &i))
        .collect();
    let mut sum = 0;
    for r in ctx.all(calls).await {
        sum += r?;
    }
    ctx.send("audit", "log", &sum)?;
    Ok(sum)
}

async fn log(ctx: Context, sum: u32) -> Result<(), HandlerError> {
    ctx.run("write log", || async move { Ok(sum) }).await?;
    Ok(())
}

async fn add(ctx: ObjectContext, n: u32) -> Result<u32, HandlerError> {
    let total = ctx.get::<u32>("total").await?.unwrap_or(0) + n;
    ctx.set("total", &total)?;
    Ok(total)
}

async fn total(ctx: SharedObjectContext, _: ()) -> Result<u32, HandlerError> {
    Ok(ctx.get::<u32>("total").await?.unwrap_or(0))
}

async fn signup(ctx: WorkflowContext, email: String) -> Result<String, HandlerError> {
    ctx.set("stage", &"waiting for the code")?;
    let code: String = ctx.promise("code").await?;
    ctx.set("stage", &"confirmed")?;
    Ok(format!("{email} confirmed with {code}"))
}

async fn stage(ctx: SharedWorkflowContext, _: ()) -> Result<Option<String>, HandlerError> {
    Ok(ctx.get::<String>("stage").await?)
}

async fn confirm(ctx: SharedWorkflowContext, code: String) -> Result<(), HandlerError> {
    ctx.resolve_promise("code", &code).await?;
    Ok(())
}

async fn waiter(ctx: Context, _: ()) -> Result<String, HandlerError> {
    let (id, answer) = ctx.awakeable::<String>().await?;
    ctx.send("svc", "resolver", &id)?;
    Ok(answer.await?)
}

async fn resolver(ctx: Context, awakeable_id: String) -> Result<(), HandlerError> {
    ctx.resolve_awakeable(&awakeable_id, &"from a handler")
        .await?;
    Ok(())
}

/// Sleeps for a day unless cancelled; tells the cancellation apart.
async fn slow(ctx: Context, _: ()) -> Result<String, HandlerError> {
    ctx.sleep(Duration::from_secs(24 * 3600)).await?;
    Ok("slept".into())
}

/// Calls `slow`, cancels it, and reports what the call answered.
async fn abandons(ctx: Context, _: ()) -> Result<String, HandlerError> {
    let call = ctx.call::<String>("svc", "slow", &());
    let child = call.invocation_id().cloned().expect("a call has a child");
    ctx.cancel(&child).await?;
    match call.await {
        Ok(out) => Ok(out),
        Err(e) if e.is_cancelled() => Ok(format!("child cancelled ({})", e.code())),
        Err(e) => Err(e.into()),
    }
}

/// Waits a day at most for an approval of its own deadline.
async fn deadline(ctx: Context, _: ()) -> Result<String, HandlerError> {
    let options = AwakeableOptions::named("approval").timeout(Duration::from_secs(24 * 3600));
    let (_id, approval) = ctx.awakeable_with::<String>(options).await?;
    match approval.await {
        Ok(by) => Ok(format!("approved by {by}")),
        Err(e) if e.code() == 408 => Ok("expired".into()),
        Err(e) => Err(e.into()),
    }
}

/// Waits for a worker that must beat every 10 minutes, for at most a day.
async fn worker(ctx: Context, _: ()) -> Result<String, HandlerError> {
    let options = AwakeableOptions::named("worker")
        .timeout(Duration::from_secs(24 * 3600))
        .heartbeat_timeout(Duration::from_secs(600));
    let (_id, done) = ctx.awakeable_with::<String>(options).await?;
    match done.await {
        Ok(result) => Ok(result),
        Err(e) if e.code() == 408 => Ok("worker lost".into()),
        Err(e) => Err(e.into()),
    }
}

/// The tenant its caller named in a header, and the one its callee sees.
async fn tenant(ctx: Context, _: ()) -> Result<(String, String), HandlerError> {
    let mine = ctx.headers().get("x-tenant").unwrap_or("none").to_owned();
    let callee: String = ctx.call("svc", "tenant_of_callee", &()).await?;
    Ok((mine, callee))
}

async fn tenant_of_callee(ctx: Context, _: ()) -> Result<String, HandlerError> {
    Ok(ctx.headers().get("x-tenant").unwrap_or("none").to_owned())
}

/// Polls hourly, then more slowly, until the fifth check.
async fn hourly(ctx: Context, _: ()) -> Result<u32, HandlerError> {
    Ok(ctx
        .poll("stock", 0u32, |seen, n| async move {
            Ok(if n == 5 {
                Check::Done(seen)
            } else {
                Check::Again(seen + 1)
            })
        })
        .wait(WaitStrategy::exponential(Duration::from_secs(3600)))
        .await?)
}

/// Logs order `order` once, however many invocations ask (an idempotent send).
async fn log_once(ctx: Context, order: u32) -> Result<String, HandlerError> {
    let child = ctx.send_idempotent("audit", "log", &format!("order-{order}"), &order)?;
    Ok(child.to_string())
}

/// How often `charge` ran (only the idempotent-call test uses it).
static CHARGES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Pays order `order` through an idempotent call: one charge per order, whoever asks.
async fn pay(ctx: Context, order: u32) -> Result<String, HandlerError> {
    let key = format!("order-{order}");
    Ok(ctx
        .call_idempotent::<String>("math", "charge", &key, &order)
        .await?)
}

/// Charges once, then takes an hour to settle (callers that come meanwhile join it).
async fn charge(ctx: Context, order: u32) -> Result<String, HandlerError> {
    let n = ctx
        .run("charge", || async {
            Ok(CHARGES.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1)
        })
        .await?;
    ctx.sleep(Duration::from_secs(3600)).await?;
    Ok(format!("receipt {order} (charge {n})"))
}

/// Drives the `signup` workflow of `key` from outside it: submits, resolves its promise,
/// and waits for its result.
async fn onboard(ctx: Context, key: String) -> Result<String, HandlerError> {
    let run = ctx.workflow_submit("signup", &key, &format!("{key}@example.com"))?;
    ctx.resolve_workflow_promise("signup", &key, "code", &"4242")
        .await?;
    let out: String = ctx.workflow_attach("signup", &key).await?;
    Ok(format!("{out} (run {run})"))
}

/// Submits (or finds) the `signup` workflow of `key` and waits for it.
async fn join_signup(ctx: Context, key: String) -> Result<String, HandlerError> {
    Ok(ctx
        .workflow_call::<String>("signup", &key, &"another@example.com")
        .await?)
}

/// The codes of what cannot be done with a workflow from a handler: attaching to a key
/// never submitted, and calling its `run` as a plain handler.
async fn misuse(ctx: Context, key: String) -> Result<(u16, u16), HandlerError> {
    let attach = ctx.workflow_attach::<String>("signup", &key).await;
    let plain = ctx
        .object_call::<String>("signup", &key, "run", &"x@example.com")
        .await;
    let code = |r: Result<String, TerminalError>| r.err().map_or(0, |e| e.code());
    Ok((code(attach), code(plain)))
}

fn runner() -> TestRunner {
    TestRunner::new(
        Endpoint::new()
            .service(
                Service::new("svc")
                    .handler("three", three_steps)
                    .handler("declined", declined)
                    .handler("charge_once", charge_once)
                    .handler("worker", worker)
                    .handler("tenant", tenant)
                    .handler("tenant_of_callee", tenant_of_callee)
                    .handler("approval", approval)
                    .handler("forever", forever)
                    .handler("long_nap", long_nap)
                    .handler("sum_of_squares", sum_of_squares)
                    .handler("waiter", waiter)
                    .handler("resolver", resolver)
                    .handler("slow", slow)
                    .handler("abandons", abandons)
                    .handler("deadline", deadline)
                    .handler("hourly", hourly)
                    .handler("log_once", log_once)
                    .handler("pay", pay)
                    .handler("onboard", onboard)
                    .handler("join_signup", join_signup)
                    .handler("misuse", misuse),
            )
            .service(
                VirtualObject::new("counter")
                    .exclusive("add", add)
                    .shared("total", total),
            )
            .service(
                Workflow::new("signup", signup)
                    .shared("confirm", confirm)
                    .shared("stage", stage),
            ),
    )
    .with(
        Endpoint::new()
            .service(
                Service::new("math")
                    .handler("square", square)
                    .handler("charge", charge),
            )
            .service(Service::new("audit").handler("log", log)),
    )
}

#[tokio::test]
async fn steps_run_once_and_their_results_are_journaled() {
    let runner = runner();
    let id = runner.start("svc", "three", &1).await.unwrap();
    assert_eq!(runner.status(&id), Some(Status::Completed(25.into())));
    let steps: Vec<(String, StepResult)> = runner
        .journal(&id)
        .into_iter()
        .filter_map(|e| match e.kind {
            EntryKind::Run { name, result } => Some((name, result)),
            _ => None,
        })
        .collect();
    assert_eq!(
        steps,
        vec![
            ("a".to_owned(), StepResult::Value(2.into())),
            ("b".to_owned(), StepResult::Value(20.into())),
            ("c".to_owned(), StepResult::Value(25.into())),
        ]
    );
    assert_eq!((runner.attempts(&id), runner.step_runs("b")), (1, 1));
}

#[tokio::test]
async fn an_injected_step_failure_is_retried_and_earlier_steps_are_replayed() {
    let runner = runner();
    runner.fail_step("b", 2);
    let id = runner.start("svc", "three", &1).await.unwrap();
    let out: u32 = runner.finish(&id).await.unwrap();
    assert_eq!(out, 25);
    assert_eq!(
        runner.attempts(&id),
        3,
        "two failed attempts, then the good one"
    );
    assert_eq!(
        (
            runner.step_runs("a"),
            runner.step_runs("b"),
            runner.step_runs("c")
        ),
        (1, 3, 1),
        "a replayed from the journal, b ran three times"
    );
}

#[tokio::test]
async fn an_invocation_that_keeps_failing_is_paused() {
    let runner = runner().max_attempts(3);
    runner.fail_step("a", 100);
    let err = runner
        .invoke::<_, u32>("svc", "three", &1)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RunError::Paused { attempts: 3, message } if message.contains("injected")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_crash_after_an_entry_replays_it_and_repeats_only_the_unrecorded_step() {
    let runner = runner();
    runner.crash_after_entry(1);
    let out: u32 = runner.invoke("svc", "three", &1).await.unwrap();
    assert_eq!(out, 25);
    let id = runner.invocations()[0].clone();
    assert_eq!(runner.attempts(&id), 2);
    // b was recorded before the crash; c ran, but its record was lost with the attempt.
    assert_eq!(
        (
            runner.step_runs("a"),
            runner.step_runs("b"),
            runner.step_runs("c")
        ),
        (1, 1, 2)
    );
}

#[tokio::test]
async fn a_crash_during_an_at_most_once_step_fails_that_try_and_runs_the_next_once() {
    let runner = runner();
    // The attempt dies right after the marker of try 1 is recorded: its closure's result is
    // lost, and the step is not run again in try 1.
    runner.crash_after_entry(0);
    let out: u32 = runner.invoke("svc", "charge_once", &()).await.unwrap();
    assert_eq!(out, 2, "the result of try 2");
    let id = runner.invocations()[0].clone();
    assert_eq!(runner.step_runs("charge"), 2, "once per try");
    assert_eq!(runner.attempts(&id), 3, "crash, interrupted, try 2");
    assert!(matches!(
        runner.journal(&id)[0].kind,
        EntryKind::Started { attempt: 2, .. }
    ));
}

#[tokio::test]
async fn terminal_failures_reach_the_caller_with_their_code() {
    let err = runner()
        .invoke::<_, ()>("svc", "declined", &())
        .await
        .unwrap_err();
    match err {
        RunError::Failed(f) => assert_eq!((f.code, f.message.as_str()), (402, "card declined")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn long_timers_take_no_time() {
    let runner = runner();
    let started = Instant::now();
    let out: String = runner.invoke("svc", "long_nap", &()).await.unwrap();
    assert_eq!(out, "rested");
    assert!(
        started.elapsed() < THREE_DAYS / 1000,
        "{:?}",
        started.elapsed()
    );
    let id = runner.invocations()[0].clone();
    let sleeps = runner
        .journal(&id)
        .iter()
        .filter(|e| matches!(e.kind, EntryKind::Sleep { .. }) && e.completion.is_some())
        .count();
    assert_eq!(sleeps, 2);
}

#[tokio::test]
async fn an_awakeable_nobody_resolves_times_out_and_a_resolved_one_wins() {
    let runner = runner();
    let out: String = runner.invoke("svc", "approval", &THREE_DAYS).await.unwrap();
    assert_eq!(out, "expired");

    runner.resolve_awakeable("manager", &"ada");
    let out: String = runner.invoke("svc", "approval", &THREE_DAYS).await.unwrap();
    assert_eq!(out, "approved by ada");

    runner.reject_awakeable("manager", 403, "not yours");
    let err = runner
        .invoke::<_, String>("svc", "approval", &THREE_DAYS)
        .await
        .unwrap_err();
    assert!(matches!(err, RunError::Failed(f) if f.code == 403));
}

#[tokio::test]
async fn the_clock_moves_only_when_told() {
    let runner = runner();
    let id = runner
        .start("svc", "approval", &Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(matches!(runner.status(&id), Some(Status::Suspended { .. })));
    runner.advance(Duration::from_secs(1800)).await;
    assert!(
        matches!(runner.status(&id), Some(Status::Suspended { .. })),
        "half-way"
    );
    runner.advance(Duration::from_secs(1801)).await;
    assert_eq!(
        runner.status(&id),
        Some(Status::Completed("expired".into()))
    );
}

#[tokio::test]
async fn waiting_for_what_nobody_does_is_reported_as_stuck() {
    let err = runner()
        .invoke::<_, String>("svc", "forever", &())
        .await
        .unwrap_err();
    match err {
        RunError::Stuck { waiting_on, what } => {
            assert_eq!(waiting_on, vec![0]);
            assert!(what.contains("resolve_awakeable"), "{what}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn calls_and_sends_run_the_other_endpoints_handlers() {
    let runner = runner();
    let out: u32 = runner.invoke("svc", "sum_of_squares", &3).await.unwrap();
    assert_eq!(out, 1 + 4 + 9);
    assert_eq!(
        runner.invocations().len(),
        1 + 3 + 1,
        "three calls and a send"
    );
    assert_eq!(runner.step_runs("write log"), 1, "the send ran");
    let err = runner
        .invoke::<_, u32>("nowhere", "x", &1)
        .await
        .unwrap_err();
    assert!(matches!(err, RunError::Unknown(_)), "{err:?}");
}

#[tokio::test]
async fn object_state_is_kept_per_key_between_invocations() {
    let runner = runner();
    for n in [1, 2, 3] {
        let _: u32 = runner
            .invoke_keyed("counter", "ada", "add", &n)
            .await
            .unwrap();
    }
    let _: u32 = runner
        .invoke_keyed("counter", "bob", "add", &10)
        .await
        .unwrap();
    let ada: u32 = runner
        .invoke_keyed("counter", "ada", "total", &())
        .await
        .unwrap();
    assert_eq!(ada, 6);
    assert_eq!(runner.state::<u32>("counter", "bob", "total"), Some(10));
    let err = runner
        .invoke::<_, u32>("counter", "add", &1)
        .await
        .unwrap_err();
    assert!(matches!(err, RunError::Types(m) if m.contains("keyed")));
}

#[tokio::test]
async fn a_workflow_waits_for_its_promise_until_a_shared_handler_resolves_it() {
    let runner = runner();
    let run = runner
        .start_keyed("signup", "ada", "run", &"ada@example.com")
        .await
        .unwrap();
    assert!(matches!(
        runner.status(&run),
        Some(Status::Suspended { .. })
    ));
    let stage: Option<String> = runner
        .invoke_keyed("signup", "ada", "stage", &())
        .await
        .unwrap();
    assert_eq!(
        stage.as_deref(),
        Some("waiting for the code"),
        "the run's progress is visible while it runs"
    );
    let (): () = runner
        .invoke_keyed("signup", "ada", "confirm", &"1234")
        .await
        .unwrap();
    let out: String = runner.finish(&run).await.unwrap();
    assert_eq!(out, "ada@example.com confirmed with 1234");
}

#[tokio::test]
async fn a_handler_resolves_an_awakeable_it_was_handed_once() {
    let runner = runner();
    let out: String = runner.invoke("svc", "waiter", &()).await.unwrap();
    assert_eq!(out, "from a handler");
    let resolver = runner.invocations()[1].clone();
    let steps: Vec<String> = runner
        .journal(&resolver)
        .into_iter()
        .filter_map(|e| match e.kind {
            EntryKind::Run { name, .. } => Some(name),
            _ => None,
        })
        .collect();
    assert_eq!(
        steps,
        vec!["resolve awakeable".to_owned()],
        "recorded as one step"
    );
    let err = runner
        .invoke::<_, ()>("svc", "resolver", &"awk_not-an-id")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RunError::Failed(f) if f.code == 400),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_handler_cancels_the_child_it_called_and_its_call_fails_with_409() {
    let runner = runner();
    let out: String = runner.invoke("svc", "abandons", &()).await.unwrap();
    assert_eq!(out, "child cancelled (409)");
    let child = runner.invocations()[1].clone();
    assert!(
        matches!(runner.status(&child), Some(Status::Failed(f)) if f.is_cancelled()),
        "{:?}",
        runner.status(&child)
    );
}

#[tokio::test]
async fn an_awakeable_of_its_own_deadline_times_out_in_virtual_time() {
    let runner = runner();
    let started = Instant::now();
    let out: String = runner.invoke("svc", "deadline", &()).await.unwrap();
    assert_eq!(out, "expired", "a day passes on the virtual clock");
    assert!(started.elapsed() < Duration::from_secs(5));
    runner.resolve_awakeable("approval", &"ada");
    let out: String = runner.invoke("svc", "deadline", &()).await.unwrap();
    assert_eq!(out, "approved by ada");
}

#[tokio::test]
async fn heartbeats_keep_an_awakeable_alive_past_its_heartbeat_timeout() {
    let runner = runner();
    let id = runner.start("svc", "worker", &()).await.unwrap();
    for _ in 0..3 {
        runner.advance(Duration::from_secs(8 * 60)).await;
        runner.heartbeat_awakeable("worker").unwrap();
    }
    assert!(matches!(runner.status(&id), Some(Status::Suspended { .. })));
    runner.resolve_awakeable("worker", &"built");
    let out: String = runner.finish(&id).await.unwrap();
    assert_eq!(out, "built", "24 minutes of beats, none 10 apart");

    // Without beats, the heartbeat timeout ends the wait; a beat after that is refused.
    let lost = runner.start("svc", "worker", &()).await.unwrap();
    runner.advance(Duration::from_secs(11 * 60)).await;
    let out: String = runner.finish(&lost).await.unwrap();
    assert_eq!(out, "worker lost");
    assert!(matches!(
        runner.heartbeat_awakeable("worker"),
        Err(RunError::Unknown(_))
    ));
    // An awakeable with no heartbeat timeout takes no beats.
    let plain = runner.start("svc", "deadline", &()).await.unwrap();
    assert!(matches!(
        runner.heartbeat_awakeable("approval"),
        Err(RunError::Types(m)) if m.contains("no heartbeat timeout")
    ));
    runner.resolve_awakeable("approval", &"ada");
    runner.settle().await;
    assert!(matches!(runner.status(&plain), Some(Status::Completed(_))));
}

#[tokio::test]
async fn request_headers_reach_the_handler_and_its_callees() {
    let runner = runner();
    runner
        .request_headers([("X-Tenant", "acme"), ("Authorization", "secret")])
        .unwrap();
    let out: (String, String) = runner.invoke("svc", "tenant", &()).await.unwrap();
    assert_eq!(out, ("acme".to_owned(), "acme".to_owned()));
    // Only the next invocation from outside gets them.
    let out: (String, String) = runner.invoke("svc", "tenant", &()).await.unwrap();
    assert_eq!(out, ("none".to_owned(), "none".to_owned()));
}

#[tokio::test]
async fn a_poll_with_hours_between_checks_finishes_on_the_virtual_clock() {
    let runner = runner();
    let started = Instant::now();
    let id = runner.start("svc", "hourly", &()).await.unwrap();
    let seen: u32 = runner.finish(&id).await.unwrap();
    assert_eq!(seen, 4, "four checks said again, the fifth done");
    assert!(started.elapsed() < Duration::from_secs(5));
    let sleeps = runner
        .journal(&id)
        .iter()
        .filter(|e| matches!(e.kind, EntryKind::Sleep { .. }))
        .count();
    assert_eq!(sleeps, 4, "a durable timer between every two checks");
    assert_eq!(runner.pushes(&id), 5, "it suspended at each long wait");
    assert_eq!(runner.step_runs("stock"), 5, "each check ran once");
}

#[tokio::test]
async fn idempotent_sends_with_one_key_start_one_child() {
    let runner = runner();
    let first: String = runner.invoke("svc", "log_once", &7).await.unwrap();
    let second: String = runner.invoke("svc", "log_once", &7).await.unwrap();
    assert_eq!(first, second, "the key names the child");
    let other: String = runner.invoke("svc", "log_once", &8).await.unwrap();
    assert_ne!(first, other);
    assert_eq!(
        runner.step_runs("write log"),
        2,
        "orders 7 and 8, once each"
    );
}

#[tokio::test]
async fn idempotent_calls_share_one_child_and_every_caller_gets_its_result() {
    let runner = runner();
    let first = runner.start("svc", "pay", &7).await.unwrap();
    let second = runner.start("svc", "pay", &7).await.unwrap();
    for id in [&first, &second] {
        assert!(
            matches!(runner.status(id), Some(Status::Suspended { .. })),
            "both wait for the one charge"
        );
    }
    runner.advance(Duration::from_secs(3600)).await;
    let receipt = "receipt 7 (charge 1)".to_string();
    assert_eq!(runner.finish::<String>(&first).await.unwrap(), receipt);
    assert_eq!(runner.finish::<String>(&second).await.unwrap(), receipt);
    let late: String = runner.invoke("svc", "pay", &7).await.unwrap();
    assert_eq!(late, receipt, "a caller after it finished gets its result");
    assert_eq!(
        CHARGES.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one child for the key"
    );
}

#[tokio::test]
async fn a_workflow_is_submitted_resolved_and_attached_to_from_another_handler() {
    let runner = runner();
    let out: String = runner.invoke("svc", "onboard", &"bea").await.unwrap();
    assert!(
        out.starts_with("bea@example.com confirmed with 4242 (run inv_signup."),
        "{out}"
    );
    let again: String = runner.invoke("svc", "join_signup", &"bea").await.unwrap();
    assert_eq!(
        again, "bea@example.com confirmed with 4242",
        "a workflow runs once per key: a later call gets the first run's result"
    );
    let codes: (u16, u16) = runner.invoke("svc", "misuse", &"nobody").await.unwrap();
    assert_eq!(codes, (404, 400));
}
