//! End-to-end tests of the operator's actions on invocations (cancel, kill, pause, resume,
//! retry, restart) against the local AWS environment. Run through `scripts/test.sh`.

use durable_local::harness::{run_id, Env};
use durable_local::inspect;
use durable_protocol::{EntryKind, InvocationId, ServiceName};
use serde_json::json;
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(60);

/// Starts `testbed/saga` waiting on `wait` and returns its id once it is suspended.
async fn suspended_saga(env: &Env, run: &str, wait: &str) -> String {
    let id = env
        .send("testbed", "saga", json!({"run": run, "wait": wait}))
        .await;
    env.wait_status(&id, "suspended", WITHIN).await;
    id
}

/// Cancels a suspended saga and checks it compensated (a journaled step) and ended cancelled.
async fn cancel_and_check(env: &Env, run: &str, id: &str) {
    let answer = env.manage(id, "cancel", None).await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert_eq!(answer.body["status"], "running", "{}", answer.raw);
    // Its output is the failure it ended with: 409 cancelled (a finished one, not "not ready").
    env.wait_status(id, "cancelled", WITHIN).await;
    let out = env.client.output(id).await.unwrap();
    assert_eq!(out.status, 409, "{}", out.raw);
    assert_eq!(out.body["message"], "cancelled", "{}", out.raw);
    assert_eq!(env.effects(run, "book").await, 1, "booked once");
    assert_eq!(env.effects(run, "compensate").await, 1, "compensated once");
    let stored = inspect::invocation(&env.clients, &env.deployment.table, id)
        .await
        .unwrap();
    assert!(
        stored
            .journal
            .iter()
            .any(|e| matches!(&e.kind, EntryKind::Run { name, .. } if name == "compensate")),
        "the compensation is journaled: {:?}",
        stored.journal
    );
    // A second cancel of the finished invocation is refused and changes nothing.
    let again = env.manage(id, "cancel", None).await;
    assert_eq!(again.status, 409, "{}", again.raw);
    assert_eq!(again.body["status"], "cancelled", "{}", again.raw);
}

#[tokio::test]
async fn cancel_while_sleeping_runs_the_compensation() {
    let env = Env::load().await;
    let run = run_id();
    let id = suspended_saga(&env, &run, "sleep").await;
    cancel_and_check(&env, &run, &id).await;
}

#[tokio::test]
async fn cancel_while_awaiting_an_awakeable_runs_the_compensation() {
    let env = Env::load().await;
    let run = run_id();
    let id = suspended_saga(&env, &run, "awakeable").await;
    let awakeable = env.published(&run, "awakeable").await;
    cancel_and_check(&env, &run, &id).await;
    // The awakeable is completed (with the cancellation): a late resolve is refused.
    let late = env.complete_awakeable(&awakeable, "resolve", "1").await;
    assert_eq!(late.status, 409, "{}", late.raw);
}

#[tokio::test]
async fn cancel_while_awaiting_a_call_cancels_the_child_too() {
    let env = Env::load().await;
    let run = run_id();
    let id = suspended_saga(&env, &run, "call").await;
    env.published(&run, "child").await;
    let parent = InvocationId::parse(&id).unwrap();
    let child = InvocationId::child(&parent, 1, &ServiceName::new("testbed").unwrap());
    env.wait_status(child.as_str(), "suspended", WITHIN).await;
    cancel_and_check(&env, &run, &id).await;
    env.wait_status(child.as_str(), "cancelled", WITHIN).await;
    assert_eq!(env.effects(&run, "child-compensate").await, 1);
}

#[tokio::test]
async fn cancel_of_a_queued_exclusive_invocation_takes_it_out_of_the_inbox() {
    let env = Env::load().await;
    let run = run_id();
    let key = format!("k{}", &run[..8]);
    let holder = env
        .send_keyed("counter", &key, "wait", json!({"run": run}))
        .await;
    let awakeable = env.published(&run, "awakeable").await;
    let queued = env.send_keyed("counter", &key, "add", json!(5)).await;
    assert_eq!(env.status(&queued).await, "queued");
    let answer = env.manage(&queued, "cancel", None).await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert_eq!(answer.body["status"], "cancelled", "{}", answer.raw);
    let inbox = inspect::query_all(
        &env.clients,
        &env.deployment.table,
        &format!("obj#counter#{key}"),
    )
    .await
    .unwrap();
    assert!(
        !inbox.iter().any(|i| i
            .get("sk")
            .and_then(|v| v.as_s().ok())
            .is_some_and(|sk| sk.starts_with("q#"))),
        "the inbox is empty: {inbox:?}"
    );
    // The lock's holder and its later users still run.
    let resolved = env
        .complete_awakeable(&awakeable, "resolve", "\"ok\"")
        .await;
    assert_eq!(resolved.status, 200, "{}", resolved.raw);
    assert_eq!(env.output(&holder, WITHIN).await.body, json!("ok"));
    let later = env
        .client
        .request(
            reqwest::Method::POST,
            &format!("/counter/{key}/add"),
            Some("2"),
            &[("content-type", "application/json")],
        )
        .await
        .unwrap();
    assert_eq!(later.status, 200, "{}", later.raw);
    assert_eq!(
        later.body,
        json!({"old": 0, "new": 2}),
        "the cancelled add never ran"
    );
}

#[tokio::test]
async fn kill_of_a_call_tree_holding_an_object_lock_hands_the_lock_on() {
    let env = Env::load().await;
    let run = run_id();
    let key = format!("k{}", &run[..8]);
    let root = env
        .send("testbed", "hold_lock", json!({"run": run, "key": key}))
        .await;
    env.published(&run, "awakeable").await;
    let parent = InvocationId::parse(&root).unwrap();
    let child = InvocationId::child(&parent, 0, &ServiceName::new("counter").unwrap());
    let queued = env.send_keyed("counter", &key, "add", json!(3)).await;
    assert_eq!(env.status(&queued).await, "queued");
    let answer = env.manage(&root, "kill", None).await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert_eq!(answer.body["status"], "killed", "{}", answer.raw);
    env.wait_status(&root, "killed", WITHIN).await;
    let out = env.client.output(&root).await.unwrap();
    assert_eq!(out.status, 409, "{}", out.raw);
    assert_eq!(out.body["message"], "killed", "{}", out.raw);
    env.wait_status(child.as_str(), "killed", WITHIN).await;
    // The lock went on to the queued add, which ran.
    let added = env.output(&queued, WITHIN).await;
    assert_eq!(added.status, 200, "{}", added.raw);
    assert_eq!(added.body, json!({"old": 0, "new": 3}));
    let again = env.manage(&root, "kill", None).await;
    assert_eq!(again.status, 409, "{}", again.raw);
    assert_eq!(again.body["status"], "killed");
}

#[tokio::test]
async fn pause_after_max_attempts_then_resume_after_the_fix_completes_without_rerunning_steps() {
    let env = Env::load().await;
    let run = run_id();
    let id = env.send("testbed", "guarded", json!({"run": run})).await;
    env.wait_status(&id, "paused", Duration::from_secs(120))
        .await;
    let tries = env.effects(&run, "step-3").await;
    assert!(tries >= 2, "step 3 was retried: {tries}");
    let meta = env.meta(&id).await;
    assert!(
        meta.get("last_error")
            .and_then(|v| v.as_s().ok())
            .is_some_and(|e| e.contains("gave up after")),
        "{meta:?}"
    );
    // Paused: nothing runs.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        env.effects(&run, "step-3").await,
        tries,
        "nothing ran while paused"
    );
    env.publish(&run, "fixed", "yes").await;
    let answer = env.manage(&id, "resume", None).await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert_eq!(answer.body["status"], "running");
    let out = env.output(&id, WITHIN).await;
    assert_eq!(out.status, 200, "{}", out.raw);
    assert_eq!(out.body, json!(100 + 10 + tries + 1));
    assert_eq!(env.effects(&run, "step-1").await, 1);
    assert_eq!(env.effects(&run, "step-2").await, 1);
}

#[tokio::test]
async fn an_operator_pauses_a_sleeping_invocation_and_resumes_it() {
    let env = Env::load().await;
    let run = run_id();
    let id = env
        .send("testbed", "nap", json!({"millis": 3000, "run": run}))
        .await;
    env.wait_status(&id, "suspended", WITHIN).await;
    let paused = env.manage(&id, "pause", None).await;
    assert_eq!(paused.status, 200, "{}", paused.raw);
    assert_eq!(paused.body["status"], "paused");
    let twice = env.manage(&id, "pause", None).await;
    assert_eq!(twice.status, 200, "{}", twice.raw);
    // The timer fires while paused; nothing runs until the resume.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(env.status(&id).await, "paused");
    let bad = env
        .manage(&id, "resume", Some(r#"{"version": "latest!"}"#))
        .await;
    assert_eq!(bad.status, 400, "{}", bad.raw);
    let resumed = env
        .manage(&id, "resume", Some(r#"{"version": "current"}"#))
        .await;
    assert_eq!(resumed.status, 200, "{}", resumed.raw);
    let out = env.output(&id, WITHIN).await;
    assert_eq!(out.status, 200, "{}", out.raw);
}

#[tokio::test]
async fn restart_from_entry_1_of_a_failed_three_step_run_reruns_steps_2_and_3_only() {
    let env = Env::load().await;
    let run = run_id();
    let first = env
        .invoke_testbed("guarded", json!({"run": run, "terminal": true}))
        .await;
    assert_eq!(first.status, 422, "{}", first.raw);
    let id = first.invocation_id.clone().unwrap();
    assert_eq!(env.status(&id).await, "failed");
    env.publish(&run, "fixed", "yes").await;
    let answer = env
        .manage(&id, "restart", Some(r#"{"from_entry": 1}"#))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert_eq!(answer.body["from_entry"], 1);
    let out = env.output(&id, WITHIN).await;
    assert_eq!(out.status, 200, "{}", out.raw);
    assert_eq!(out.body, json!(100 + 20 + 2));
    assert_eq!(env.effects(&run, "step-1").await, 1, "entry 0 replayed");
    assert_eq!(env.effects(&run, "step-2").await, 2);
    assert_eq!(env.effects(&run, "step-3").await, 2);
    let again = env.manage(&id, "restart", None).await;
    assert_eq!(again.status, 409, "{}", again.raw);
    assert_eq!(again.body["status"], "completed");
}

#[tokio::test]
async fn retry_now_skips_a_long_backoff() {
    let env = Env::load().await;
    let run = run_id();
    let id = env.send("testbed", "backoff", json!({"run": run})).await;
    // The first failure waits 25 s before the next attempt.
    for _ in 0..100 {
        if env.effects(&run, "backoff").await >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answer = env.manage(&id, "retry", None).await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    for _ in 0..100 {
        if env.effects(&run, "backoff").await >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        env.effects(&run, "backoff").await >= 2,
        "the second attempt ran within 10 s, not after the 25 s backoff"
    );
    let _ = env.manage(&id, "kill", None).await;
}

#[tokio::test]
async fn every_route_refuses_bad_input_with_json_and_writes_nothing() {
    let env = Env::load().await;
    let done = env
        .invoke_testbed("steps", json!({"run": run_id(), "steps": 1}))
        .await;
    let id = done.invocation_id.clone().unwrap();
    let before = env.meta(&id).await;
    for action in ["cancel", "kill", "pause", "resume", "retry", "restart"] {
        let wrong_state = env.manage(&id, action, None).await;
        assert_eq!(wrong_state.status, 409, "{action}: {}", wrong_state.raw);
        assert_eq!(wrong_state.body["status"], "completed", "{action}");
        assert!(wrong_state.body["message"].is_string(), "{action}");
        let unknown = env
            .manage("inv_testbed.00000000000000000000000000000000", action, None)
            .await;
        assert_eq!(unknown.status, 404, "{action}: {}", unknown.raw);
        assert_eq!(unknown.body["code"], "unknown_invocation");
        let malformed = env.manage("not-an-id", action, None).await;
        assert_eq!(malformed.status, 400, "{action}: {}", malformed.raw);
        assert_eq!(malformed.body["code"], "invalid_invocation_id");
        let get = env
            .client
            .request(
                reqwest::Method::GET,
                &format!("/invocations/{id}/{action}"),
                None,
                &[],
            )
            .await
            .unwrap();
        assert_eq!(get.status, 405, "{action}: {}", get.raw);
        let body = env.manage(&id, action, Some(r#"{"surprise": 1}"#)).await;
        assert_eq!(body.status, 400, "{action}: {}", body.raw);
        let not_json = env.manage(&id, action, Some("{")).await;
        assert_eq!(not_json.status, 400, "{action}: {}", not_json.raw);
    }
    let too_far = {
        let run = run_id();
        let failed = env
            .invoke_testbed("guarded", json!({"run": run, "terminal": true}))
            .await;
        let failed_id = failed.invocation_id.unwrap();
        env.manage(&failed_id, "restart", Some(r#"{"from_entry": 99}"#))
            .await
    };
    assert_eq!(too_far.status, 400, "{}", too_far.raw);
    assert_eq!(too_far.body["code"], "invalid_entry");
    assert_eq!(env.meta(&id).await, before, "nothing was written");
}

/// Runs the `durable` command (crate `durable-cli`) against the local deployment.
fn durable(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["run", "-q", "-p", "durable-cli", "--"])
        .args(args)
        .current_dir(durable_local::deploy::repo_root())
        .output()
        .expect("cargo runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn the_durable_command_pauses_resumes_kills_and_reports_refusals() {
    let env = Env::load().await;
    // Built first, so that no step below waits for a compiler.
    let (code, text) = durable(&["--help"]);
    assert_eq!(code, 0, "{text}");
    let run = run_id();
    let id = suspended_saga(&env, &run, "awakeable").await;
    let (code, text) = durable(&["pause", &id]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("paused"), "{text}");
    assert_eq!(env.status(&id).await, "paused");
    let (code, text) = durable(&["--json", "resume", &id]);
    assert_eq!(code, 0, "{text}");
    let answer: serde_json::Value = serde_json::from_str(text.trim()).expect("--json prints JSON");
    assert_eq!(answer["status"], "running");
    env.wait_status(&id, "suspended", WITHIN).await;
    let (code, text) = durable(&["kill", &id]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("killed"), "{text}");
    assert_eq!(env.status(&id).await, "killed");
    // A refused action exits 1 and says why.
    let (code, text) = durable(&["kill", &id]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("409") && text.contains("killed"), "{text}");
}

#[tokio::test]
async fn a_handler_cancels_the_child_it_called_and_the_reminder_it_sent() {
    let env = Env::load().await;
    let run = run_id();
    let id = env
        .send("testbed", "cancel_children", json!({ "run": run }))
        .await;
    env.wait_status(&id, "completed", WITHIN).await;
    let out = env.client.output(&id).await.unwrap();
    assert_eq!(out.body, json!("child cancelled"), "{}", out.raw);
    let parent = InvocationId::parse(&id).unwrap();
    let testbed = ServiceName::new("testbed").unwrap();
    let (child, reminder) = (
        InvocationId::child(&parent, 0, &testbed),
        InvocationId::child(&parent, 1, &testbed),
    );
    env.wait_status(child.as_str(), "cancelled", WITHIN).await;
    // The delayed reminder is due after 3 s: its one step records the cancellation instead
    // of running.
    env.wait_status(reminder.as_str(), "cancelled", WITHIN)
        .await;
    assert_eq!(
        env.effects(&run, "remind").await,
        0,
        "the reminder never ran"
    );
    let stored = inspect::invocation(&env.clients, &env.deployment.table, &id)
        .await
        .unwrap();
    let cancels = stored
        .journal
        .iter()
        .filter(|e| matches!(&e.kind, EntryKind::Run { name, .. } if name == "cancel child"))
        .count();
    assert_eq!(cancels, 2, "each cancel is one step: {:?}", stored.journal);
    // A child that had published its awakeable compensated once; one cancelled before its
    // first step never got to.
    assert!(env.effects(&run, "child-compensate").await <= 1);
}

#[tokio::test]
async fn a_cancel_reaches_a_running_handler_at_its_next_step() {
    let env = Env::load().await;
    let run = run_id();
    let id = env
        .send(
            "testbed",
            "slow_then_step",
            json!({ "run": run, "millis": 4000 }),
        )
        .await;
    // Cancelled while the first step runs: the attempt never suspends, so only a look at the
    // step boundary can see it.
    while env.effects(&run, "slow").await == 0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answer = env.manage(&id, "cancel", None).await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    env.wait_status(&id, "cancelled", WITHIN).await;
    let stored = inspect::invocation(&env.clients, &env.deployment.table, &id)
        .await
        .unwrap();
    let second = stored.journal.iter().find(|e| e.index == 1).cloned();
    assert!(
        matches!(&second, Some(e) if e.carries_cancellation()),
        "the second step recorded the cancellation instead of running: {second:?}"
    );
    assert_eq!(
        env.effects(&run, "slow").await,
        1,
        "the first step ran once"
    );
}
