//! End-to-end tests of virtual objects and workflows against the local AWS environment: keyed
//! state, single-writer exclusive handlers in arrival order, shared handlers that are never
//! blocked, state that survives a terminal failure, and workflows that run once per key and
//! answer with the value their durable promise was resolved with. Run through `scripts/test.sh`.

use aws_sdk_dynamodb::types::AttributeValue;
use durable_local::client::Answer;
use durable_local::harness::{run_id, Env};
use futures::future::join_all;
use serde_json::json;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

async fn post(env: &Env, path: &str, body: serde_json::Value) -> Answer {
    env.client
        .post_json(path, &body.to_string(), &[])
        .await
        .expect("request")
}

async fn get(env: &Env, path: &str) -> Answer {
    env.client
        .request(reqwest::Method::GET, path, None, &[])
        .await
        .expect("request")
}

/// The object's items other than state: the lock and what waits in its inbox.
async fn lock_and_inbox(env: &Env, pk: &str) -> (Option<String>, usize) {
    let out = env
        .clients
        .dynamo
        .query()
        .table_name(&env.deployment.table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .expect("query");
    let mut holder = None;
    let mut queued = 0;
    for item in out.items() {
        match item
            .get("sk")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
        {
            Some("lock") => holder = item.get("holder").and_then(|v| v.as_s().ok()).cloned(),
            Some(sk) if sk.starts_with("q#") => queued += 1,
            _ => {}
        }
    }
    (holder, queued)
}

async fn status_of(env: &Env, id: &str) -> String {
    env.meta(id).await["status"].as_s().unwrap().clone()
}

async fn wait_for_status(env: &Env, id: &str, wanted: &str, within: Duration) {
    let started = Instant::now();
    loop {
        let status = status_of(env, id).await;
        if status == wanted {
            return;
        }
        assert!(
            started.elapsed() < within,
            "{id} is {status}, not {wanted}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn add_answers_the_old_and_new_count() {
    let env = Env::load().await;
    let key = run_id();
    let first = post(&env, &format!("/counter/{key}/add"), json!(1)).await;
    assert_eq!(first.status, 200, "{}", first.raw);
    assert_eq!(first.body, json!({"old": 0, "new": 1}));
    let second = post(&env, &format!("/counter/{key}/add"), json!(2)).await;
    assert_eq!(second.body, json!({"old": 1, "new": 3}));
    let read = post(&env, &format!("/counter/{key}/get"), json!(null)).await;
    assert_eq!(read.body, json!(3));
    // The lock is free and the inbox empty once nothing runs.
    assert_eq!(
        lock_and_inbox(&env, &format!("obj#counter#{key}")).await,
        (None, 0)
    );
}

#[tokio::test]
async fn a_hundred_concurrent_adds_on_one_key_count_exactly_a_hundred() {
    let env = Env::load().await;
    let key = run_id();
    let sends = (0..100).map(|_| {
        let env = &env;
        let key = &key;
        async move {
            let answer = post(env, &format!("/counter/{key}/add/send"), json!(1)).await;
            assert_eq!(answer.status, 202, "{}", answer.raw);
            answer.invocation_id.expect("id")
        }
    });
    let ids: Vec<String> = join_all(sends).await;
    let mut olds = BTreeSet::new();
    for id in &ids {
        let output = env.output(id, Duration::from_secs(240)).await;
        assert_eq!(output.status, 200, "{}", output.raw);
        assert_eq!(
            output.body["new"].as_i64().unwrap(),
            output.body["old"].as_i64().unwrap() + 1
        );
        olds.insert(output.body["old"].as_i64().unwrap());
    }
    // One writer at a time: every add saw a different count, 0 to 99.
    assert_eq!(olds, (0..100).collect::<BTreeSet<i64>>());
    let read = post(&env, &format!("/counter/{key}/get"), json!(null)).await;
    assert_eq!(read.body, json!(100));
    assert_eq!(
        lock_and_inbox(&env, &format!("obj#counter#{key}")).await,
        (None, 0)
    );
}

#[tokio::test]
async fn concurrent_waiting_callers_each_get_their_own_answer() {
    let env = Env::load().await;
    let key = run_id();
    let path = format!("/counter/{key}/add");
    let calls = (0..12).map(|_| post(&env, &path, json!(1)));
    let answers = join_all(calls).await;
    let mut olds = BTreeSet::new();
    for a in &answers {
        let body = if a.status == 202 {
            // Answered before it ran (the call ran out of waiting time): fetch the output.
            env.output(a.invocation_id.as_ref().unwrap(), Duration::from_secs(120))
                .await
                .body
        } else {
            assert_eq!(a.status, 200, "{}", a.raw);
            a.body.clone()
        };
        olds.insert(body["old"].as_i64().unwrap());
    }
    assert_eq!(olds, (0..12).collect::<BTreeSet<i64>>());
}

#[tokio::test]
async fn different_keys_run_in_parallel_and_one_key_in_order() {
    let env = Env::load().await;
    let run = run_id();
    let (held, free) = (format!("{run}-held"), format!("{run}-free"));
    // An exclusive handler holds `held` until we resolve its awakeable.
    let holder = post(
        &env,
        &format!("/counter/{held}/wait/send"),
        json!({"run": run}),
    )
    .await;
    let holder = holder.invocation_id.expect("id");
    let awakeable = env.published(&run, "awakeable").await;
    // Another key is not blocked by it.
    let other = post(&env, &format!("/counter/{free}/add"), json!(5)).await;
    assert_eq!(other.status, 200, "{}", other.raw);
    assert_eq!(other.body, json!({"old": 0, "new": 5}));
    // The same key is: an add waits in the inbox.
    let queued = post(&env, &format!("/counter/{held}/add/send"), json!(1)).await;
    let queued = queued.invocation_id.expect("id");
    wait_for_status(&env, &holder, "suspended", Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(status_of(&env, &queued).await, "queued");
    assert_eq!(
        lock_and_inbox(&env, &format!("obj#counter#{held}")).await,
        (Some(holder.clone()), 1)
    );
    let resolved = env
        .complete_awakeable(&awakeable, "resolve", r#""go""#)
        .await;
    assert_eq!(resolved.status, 200, "{}", resolved.raw);
    assert_eq!(
        env.output(&holder, Duration::from_secs(60)).await.body,
        json!("go")
    );
    let added = env.output(&queued, Duration::from_secs(60)).await;
    assert_eq!(added.body, json!({"old": 0, "new": 1}));
}

#[tokio::test]
async fn a_queued_exclusive_runs_after_a_suspended_holder_finishes_and_shared_is_not_blocked() {
    let env = Env::load().await;
    let run = run_id();
    let key = run.clone();
    // Sets the count to 100, then sleeps 6 s (suspended, holding the lock).
    let holder = post(
        &env,
        &format!("/counter/{key}/hold/send"),
        json!({"run": run, "count": 100, "sleep_ms": 6000}),
    )
    .await
    .invocation_id
    .expect("id");
    env.published(&run, "hold").await;
    wait_for_status(&env, &holder, "suspended", Duration::from_secs(30)).await;
    let queued = post(&env, &format!("/counter/{key}/add/send"), json!(1))
        .await
        .invocation_id
        .expect("id");
    // A shared handler answers while the holder sleeps, with the state as last committed.
    let started = Instant::now();
    let read = post(&env, &format!("/counter/{key}/get"), json!(null)).await;
    assert_eq!(read.status, 200, "{}", read.raw);
    assert_eq!(read.body, json!(0));
    assert_eq!(status_of(&env, &holder).await, "suspended");
    assert_eq!(status_of(&env, &queued).await, "queued");
    println!(
        "shared read while the holder sleeps: {:?}",
        started.elapsed()
    );
    // The queued add runs only once the holder finished: it sees the holder's count.
    let added = env.output(&queued, Duration::from_secs(90)).await;
    assert_eq!(added.status, 200, "{}", added.raw);
    assert_eq!(added.body, json!({"old": 100, "new": 101}));
    assert_eq!(status_of(&env, &holder).await, "completed");
    let holder_done: u64 = env.meta(&holder).await["completed_at"]
        .as_n()
        .unwrap()
        .parse()
        .unwrap();
    let add_done: u64 = env.meta(&queued).await["completed_at"]
        .as_n()
        .unwrap()
        .parse()
        .unwrap();
    assert!(holder_done <= add_done);
}

#[tokio::test]
async fn state_set_before_a_terminal_failure_persists() {
    let env = Env::load().await;
    let key = run_id();
    let failed = post(
        &env,
        &format!("/counter/{key}/put"),
        json!({"name": "count", "value": 7, "then_fail": true}),
    )
    .await;
    assert_eq!(failed.status, 409, "{}", failed.raw);
    let read = post(&env, &format!("/counter/{key}/get"), json!(null)).await;
    assert_eq!(read.body, json!(7));
    // And the lock was handed on: the next exclusive call runs.
    let added = post(&env, &format!("/counter/{key}/add"), json!(1)).await;
    assert_eq!(added.body, json!({"old": 7, "new": 8}));
}

#[tokio::test]
async fn a_holder_that_crashes_keeps_the_lock_and_its_state_is_applied_once() {
    let env = Env::load().await;
    let run = run_id();
    let key = run.clone();
    let (crash_path, add_path) = (
        format!("/counter/{key}/crash_add"),
        format!("/counter/{key}/add/send"),
    );
    // Both race for the lock; the loser waits in the inbox.
    let (crashed, queued) = tokio::join!(
        post(&env, &crash_path, json!({"run": run, "n": 5})),
        post(&env, &add_path, json!(1))
    );
    let queued = queued.invocation_id.expect("id");
    let body = if crashed.status == 202 {
        env.output(
            crashed.invocation_id.as_ref().unwrap(),
            Duration::from_secs(60),
        )
        .await
        .body
    } else {
        assert_eq!(crashed.status, 200, "{}", crashed.raw);
        crashed.body
    };
    let added = env.output(&queued, Duration::from_secs(60)).await.body;
    // Whichever ran first, each saw the other's committed count exactly once.
    let mut seen = [
        (body["old"].as_i64().unwrap(), body["new"].as_i64().unwrap()),
        (
            added["old"].as_i64().unwrap(),
            added["new"].as_i64().unwrap(),
        ),
    ];
    seen.sort();
    assert!(
        seen == [(0, 1), (1, 6)] || seen == [(0, 5), (5, 6)],
        "{seen:?}"
    );
    assert_eq!(env.effects(&run, "counted").await, 1);
    let read = post(&env, &format!("/counter/{key}/get"), json!(null)).await;
    assert_eq!(read.body, json!(6));
    assert_eq!(
        lock_and_inbox(&env, &format!("obj#counter#{key}")).await,
        (None, 0)
    );
}

#[tokio::test]
async fn clear_all_clears_only_its_own_keys_state() {
    let env = Env::load().await;
    let run = run_id();
    let (one, two) = (format!("{run}-1"), format!("{run}-2"));
    for (key, name) in [(&one, "a"), (&one, "b"), (&two, "a")] {
        let put = post(
            &env,
            &format!("/counter/{key}/put"),
            json!({"name": name, "value": name}),
        )
        .await;
        assert_eq!(put.status, 200, "{}", put.raw);
    }
    let keys = post(&env, &format!("/counter/{one}/keys"), json!(null)).await;
    assert_eq!(keys.body, json!(["a", "b"]));
    let cleared = post(&env, &format!("/counter/{one}/clear"), json!(null)).await;
    assert_eq!(cleared.status, 200, "{}", cleared.raw);
    let keys = post(&env, &format!("/counter/{one}/keys"), json!(null)).await;
    assert_eq!(keys.body, json!([]));
    let keys = post(&env, &format!("/counter/{two}/keys"), json!(null)).await;
    assert_eq!(keys.body, json!(["a"]));
}

#[tokio::test]
async fn a_workflow_submitted_twice_runs_once_and_answers_with_its_promise() {
    let env = Env::load().await;
    let run = run_id();
    let key = format!("{run}@example.com");
    let first = post(&env, &format!("/onboarding/{key}/run/send"), json!(run)).await;
    assert_eq!(first.status, 202, "{}", first.raw);
    let second = post(&env, &format!("/onboarding/{key}/run/send"), json!(run)).await;
    assert_eq!(second.status, 202, "{}", second.raw);
    assert_eq!(first.invocation_id, second.invocation_id);
    let id = first.invocation_id.unwrap();
    assert_eq!(env.published(&run, "signup").await, key);
    wait_for_status(&env, &id, "suspended", Duration::from_secs(30)).await;
    // Not finished yet; a shared handler peeks at the promise without waiting.
    assert_eq!(
        get(&env, &format!("/onboarding/{key}/output")).await.status,
        409
    );
    let status = post(&env, &format!("/onboarding/{key}/status"), json!(null)).await;
    assert_eq!(status.body["link"], json!(null));
    assert_eq!(
        status.body["status"],
        json!("waiting"),
        "the run's state is visible while it runs: {}",
        status.raw
    );
    // Resolved through the ingress; a second resolution is refused.
    let resolved = post(
        &env,
        &format!("/onboarding/{key}/promises/confirmed/resolve"),
        json!("link-42"),
    )
    .await;
    assert_eq!(resolved.status, 200, "{}", resolved.raw);
    let output = get(&env, &format!("/onboarding/{key}/attach")).await;
    assert_eq!(output.status, 200, "{}", output.raw);
    assert_eq!(output.body, json!({"confirmed_with": "link-42"}));
    let again = post(
        &env,
        &format!("/onboarding/{key}/confirm"),
        json!("link-43"),
    )
    .await;
    assert_eq!(again.status, 409, "{}", again.raw);
    // Submitting it once more answers with the same output, without running it again.
    let third = post(&env, &format!("/onboarding/{key}/run"), json!(run)).await;
    assert_eq!(third.status, 200, "{}", third.raw);
    assert_eq!(third.body, json!({"confirmed_with": "link-42"}));
    assert_eq!(env.effects(&run, "send e-mail").await, 1);
    let status = post(&env, &format!("/onboarding/{key}/status"), json!(null)).await;
    assert_eq!(
        status.body,
        json!({"status": "confirmed", "link": "link-42"})
    );
}

#[tokio::test]
async fn a_shared_handler_resolves_the_promise_the_run_waits_for() {
    let env = Env::load().await;
    let run = run_id();
    let key = run.clone();
    let id = post(&env, &format!("/onboarding/{key}/run/send"), json!(run))
        .await
        .invocation_id
        .unwrap();
    env.published(&run, "signup").await;
    let confirmed = post(
        &env,
        &format!("/onboarding/{key}/confirm"),
        json!("via-handler"),
    )
    .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.raw);
    let output = env.output(&id, Duration::from_secs(60)).await;
    assert_eq!(output.body, json!({"confirmed_with": "via-handler"}));
}

#[tokio::test]
async fn keyed_requests_are_validated_and_write_nothing() {
    let env = Env::load().await;
    let key = run_id();
    let cases = [
        (
            post(&env, "/counter/add", json!(1)).await,
            400,
            "key_required",
        ),
        (
            post(&env, &format!("/counter/{key}/nope"), json!(1)).await,
            404,
            "unknown_handler",
        ),
        (
            post(&env, "/counter/a%20b/add", json!(1)).await,
            400,
            "invalid_key",
        ),
        (
            post(&env, &format!("/testbed/{key}/steps"), json!(1)).await,
            404,
            "not_found",
        ),
        (
            post(
                &env,
                &format!("/counter/{key}/promises/x/resolve"),
                json!(1),
            )
            .await,
            400,
            "not_a_workflow",
        ),
        (
            get(&env, &format!("/onboarding/{key}/output")).await,
            404,
            "unknown_workflow",
        ),
    ];
    for (answer, status, code) in cases {
        assert_eq!(answer.status, status, "{}", answer.raw);
        assert_eq!(answer.body["code"], code, "{}", answer.raw);
    }
    assert_eq!(
        lock_and_inbox(&env, &format!("obj#counter#{key}")).await,
        (None, 0)
    );
}

#[tokio::test]
async fn the_cart_example_keeps_one_cart_per_user() {
    let env = Env::load().await;
    let user = run_id();
    let added = post(
        &env,
        &format!("/cart/{user}/add"),
        json!({"sku": "tea", "quantity": 2}),
    )
    .await;
    assert_eq!(added.status, 200, "{}", added.raw);
    post(&env, &format!("/cart/{user}/add"), json!({"sku": "mug"})).await;
    let view = post(&env, &format!("/cart/{user}/view"), json!(null)).await;
    assert_eq!(view.body["items"], json!({"mug": 1, "tea": 2}));
    let order = post(&env, &format!("/cart/{user}/checkout"), json!(null)).await;
    assert_eq!(order.status, 200, "{}", order.raw);
    assert_eq!(order.body, json!(format!("order-{user}-3")));
    let view = post(&env, &format!("/cart/{user}/view"), json!(null)).await;
    assert_eq!(view.body["items"], json!({}));
    assert_eq!(view.body["checked_out_orders"], json!(1));
    let empty = post(&env, &format!("/cart/{user}/checkout"), json!(null)).await;
    assert_eq!(empty.status, 409, "{}", empty.raw);
}

#[tokio::test]
async fn the_signup_example_waits_for_the_link() {
    let env = Env::load().await;
    let email = format!("{}@example.com", run_id());
    let started = post(
        &env,
        &format!("/signup/{email}/run/send"),
        json!({"name": "Ada"}),
    )
    .await;
    assert_eq!(started.status, 202, "{}", started.raw);
    let id = started.invocation_id.unwrap();
    wait_for_status(&env, &id, "suspended", Duration::from_secs(30)).await;
    // The secret is recorded in the run's journal (the e-mail would carry it).
    let stored = durable_local::inspect::invocation(&env.clients, &env.deployment.table, &id)
        .await
        .unwrap();
    let secret = stored
        .journal
        .iter()
        .find_map(|e| match &e.kind {
            durable_protocol::EntryKind::Run {
                name,
                result: durable_protocol::StepResult::Value(v),
            } if name == "create secret" => v.as_str().map(str::to_owned),
            _ => None,
        })
        .expect("secret step");
    let clicked = post(&env, &format!("/signup/{email}/click"), json!(secret)).await;
    assert_eq!(clicked.status, 200, "{}", clicked.raw);
    let account = get(&env, &format!("/signup/{email}/attach")).await;
    assert_eq!(account.status, 200, "{}", account.raw);
    assert_eq!(
        account.body,
        json!({"email": email, "name": "Ada", "confirmed": true})
    );
    let status = post(&env, &format!("/signup/{email}/status"), json!(null)).await;
    assert_eq!(status.body, json!({"status": "confirmed", "clicked": true}));
}

#[tokio::test]
async fn another_handler_submits_a_workflow_resolves_its_promise_and_attaches_to_it() {
    let env = Env::load().await;
    let run = run_id();
    let key = format!("{run}@example.org");
    let body = json!({"run": run, "key": key});
    let answer = post(&env, "/testbed/onboard", body.clone()).await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert_eq!(answer.body, json!({"confirmed_with": "from a handler"}));
    // A workflow runs once per key: a later call from a handler gets that run's result.
    let joined = post(&env, "/testbed/join_onboarding", body).await;
    assert_eq!(joined.status, 200, "{}", joined.raw);
    assert_eq!(joined.body, answer.body);
    assert_eq!(env.effects(&run, "send e-mail").await, 1, "one run");
    let output = get(&env, &format!("/onboarding/{key}/output")).await;
    assert_eq!(output.body, answer.body, "{}", output.raw);
    // What cannot be done: attaching to a key never submitted, calling `run` as a handler.
    let misuse = post(
        &env,
        "/testbed/misuse_workflow",
        json!(format!("nobody-{run}")),
    )
    .await;
    assert_eq!(misuse.status, 200, "{}", misuse.raw);
    assert_eq!(misuse.body, json!([404, 400]));
}
