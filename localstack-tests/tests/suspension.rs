//! End-to-end tests of suspension and resumption against the local AWS environment: durable
//! timers (in-process and through EventBridge Scheduler and the local pump), awakeables,
//! combinators, attach and one-way sends. Run through `scripts/test.sh`.

use aws_sdk_dynamodb::types::AttributeValue;
use durable_local::harness::{run_id, Env};
use durable_local::inspect::{self, lambda_invocations};
use durable_protocol::{
    AwakeableId, EntryKind, HandlerName, InvocationId, JournalEntry, ServiceName, StepResult,
};
use durable_store::invocations::{Created, InvocationStore, NewInvocation, Status, Suspension};
use durable_store::Appended;
use durable_store::JournalStore;
use durable_store::{Completed, Completer};
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_short_sleep_waits_in_process_for_at_least_its_duration() {
    let env = Env::load().await;
    let answer = env
        .client
        .invoke("testbed", "nap", &json!({"millis": 10}), None)
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert!(
        answer.body["elapsed_ms"].as_u64().unwrap() >= 10,
        "{}",
        answer.raw
    );
    let id = answer.invocation_id.unwrap();
    assert_eq!(
        lambda_invocations(&env.function("testbed"), &id)
            .unwrap()
            .len(),
        1,
        "no suspension for 10 ms"
    );
}

#[tokio::test]
async fn a_long_sleep_suspends_and_the_scheduler_wakes_it() {
    let env = Env::load().await;
    let answer = env
        .client
        .invoke("testbed", "nap", &json!({"millis": 1500}), None)
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert!(
        answer.body["elapsed_ms"].as_u64().unwrap() >= 1500,
        "{}",
        answer.raw
    );
    let id = answer.invocation_id.unwrap();
    // Suspended once, resumed once: two handler calls, one wake from the Scheduler pump.
    assert_eq!(
        lambda_invocations(&env.function("testbed"), &id)
            .unwrap()
            .len(),
        2
    );
    let wakes: Vec<_> = lambda_invocations(env.deployment.orchestrator_function.as_str(), &id)
        .unwrap()
        .into_iter()
        .filter(|i| i.payload_head.contains("\"type\":\"wake\""))
        .collect();
    assert_eq!(wakes.len(), 1, "{wakes:?}");
    let stored = inspect::invocation(&env.clients, &env.deployment.table, &id)
        .await
        .unwrap();
    assert!(matches!(stored.journal[1].kind, EntryKind::Sleep { .. }));
    assert_eq!(
        stored.journal[1].completion,
        Some(StepResult::Value(json!(null)))
    );
}

#[tokio::test]
async fn a_three_day_sleep_fired_now_through_the_wake_path_finishes_at_once() {
    let env = Env::load().await;
    let three_days = 3 * 24 * 3600 * 1000_u64;
    let id = env
        .send("testbed", "nap", json!({"millis": three_days}))
        .await;
    env.wait_status(&id, "suspended", Duration::from_secs(30))
        .await;
    let invocation = durable_protocol::InvocationId::parse(&id).unwrap();
    let fired =
        durable_local::timers::fire_timers_now(&env.clients, &env.deployment, Some(&invocation))
            .await
            .unwrap();
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!((&fired[0].invocation_id, fired[0].entry), (&invocation, 1));
    let answer = env.output(&id, Duration::from_secs(30)).await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert!(
        answer.body["elapsed_ms"].as_u64().unwrap() < three_days,
        "the sleep was cut short: {}",
        answer.raw
    );
    let again =
        durable_local::timers::fire_timers_now(&env.clients, &env.deployment, Some(&invocation))
            .await
            .unwrap();
    assert!(again.is_empty(), "its schedule is gone: {again:?}");
}

#[tokio::test]
async fn twenty_concurrent_invocations_with_several_timers_all_finish() {
    let env = Env::load().await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(
            env.send("testbed", "timers", json!({"millis": [400, 900, 1400]}))
                .await,
        );
    }
    for id in &ids {
        let answer = env.output(id, Duration::from_secs(90)).await;
        assert_eq!(answer.status, 200, "{id}: {}", answer.raw);
        assert_eq!(answer.body, json!(3));
    }
}

#[tokio::test]
async fn a_crash_in_the_middle_of_a_sleep_still_completes_after_the_wake_time() {
    let env = Env::load().await;
    let run = run_id();
    let answer = env
        .client
        .invoke(
            "testbed",
            "nap",
            &json!({"millis": 250, "crash_after_ms": 100, "run": run}),
            None,
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert!(
        answer.body["elapsed_ms"].as_u64().unwrap() >= 250,
        "{}",
        answer.raw
    );
    let calls = lambda_invocations(
        &env.function("testbed"),
        answer.invocation_id.as_deref().unwrap(),
    )
    .unwrap();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0].error_type.as_deref(), Some("Runtime.ExitError"));
}

/// Starts `testbed/approval` (a 60 s timeout) in the background: its id and its awakeable's.
async fn start_approval(env: &Env) -> (String, String) {
    let run = run_id();
    let id = env
        .send(
            "testbed",
            "approval",
            json!({"run": run, "timeout_ms": 60_000}),
        )
        .await;
    (id, env.published(&run, "awakeable").await)
}

#[tokio::test]
async fn an_awakeable_resolved_from_outside_resumes_the_invocation() {
    let env = Env::load().await;
    let (id, awakeable) = start_approval(&env).await;
    let resolved = env
        .complete_awakeable(&awakeable, "resolve", r#"{"by":"ada"}"#)
        .await;
    assert_eq!(resolved.status, 200, "{}", resolved.raw);
    assert_eq!(resolved.body["status"], "resolved");
    let answer = env.output(&id, Duration::from_secs(30)).await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert_eq!(answer.body, json!({"approved": {"by": "ada"}}));

    let again = env
        .complete_awakeable(&awakeable, "resolve", r#"{"by":"bob"}"#)
        .await;
    assert_eq!(
        (again.status, again.body["code"].as_str()),
        (409, Some("already_completed")),
        "{}",
        again.raw
    );
    let stored = inspect::invocation(&env.clients, &env.deployment.table, &id)
        .await
        .unwrap();
    let select = stored
        .journal
        .iter()
        .find(|e| matches!(e.kind, EntryKind::Select { .. }))
        .unwrap();
    assert_eq!(
        select.kind,
        EntryKind::Select {
            of: vec![0, 2],
            winner: 0
        },
        "the awakeable won"
    );
}

#[tokio::test]
async fn a_handler_completes_another_invocations_awakeable() {
    let env = Env::load().await;
    let (id, awakeable) = start_approval(&env).await;
    let sent = env
        .invoke_testbed(
            "complete_other",
            json!({"awakeable_id": awakeable, "value": {"by": "a handler"}}),
        )
        .await;
    assert_eq!(
        (sent.status, sent.body.clone()),
        (200, json!("sent")),
        "{}",
        sent.raw
    );
    let answer = env.output(&id, Duration::from_secs(30)).await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert_eq!(answer.body, json!({"approved": {"by": "a handler"}}));

    // Rejected from a handler: the waiter fails with the message.
    let (id, awakeable) = start_approval(&env).await;
    let sent = env
        .invoke_testbed(
            "complete_other",
            json!({"awakeable_id": awakeable, "reject": "not from you"}),
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.raw);
    let answer = env.output(&id, Duration::from_secs(30)).await;
    assert_eq!(answer.status, 500, "{}", answer.raw);
    assert!(answer.raw.contains("not from you"), "{}", answer.raw);

    // A forged id (another entry's tag) is refused at the orchestrator's door: the waiter
    // stays suspended; a malformed one fails the handler's step with a 400.
    let (id, awakeable) = start_approval(&env).await;
    let mut parts: Vec<&str> = awakeable.split('.').collect();
    parts[2] = "7";
    let forged = parts.join(".");
    let sent = env
        .invoke_testbed(
            "complete_other",
            json!({"awakeable_id": forged, "value": 1}),
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.raw);
    let malformed = env
        .invoke_testbed(
            "complete_other",
            json!({"awakeable_id": "awk_nope", "value": 1}),
        )
        .await;
    assert_eq!(malformed.status, 400, "{}", malformed.raw);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        env.status(&id).await,
        "suspended",
        "the forged completion did nothing"
    );
    let resolved = env.complete_awakeable(&awakeable, "resolve", "1").await;
    assert_eq!(resolved.status, 200, "{}", resolved.raw);
}

#[tokio::test]
async fn a_rejected_awakeable_fails_the_wait_with_its_code() {
    let env = Env::load().await;
    let (id, awakeable) = start_approval(&env).await;
    let rejected = env
        .complete_awakeable(&awakeable, "reject", r#"{"message":"denied","code":403}"#)
        .await;
    assert_eq!(rejected.status, 200, "{}", rejected.raw);
    assert_eq!(rejected.body["status"], "rejected");
    let answer = env.output(&id, Duration::from_secs(30)).await;
    assert_eq!(answer.status, 403, "{}", answer.raw);
    assert_eq!(answer.body["message"], "denied");
}

#[tokio::test]
async fn an_awakeable_resolved_before_it_is_awaited_is_kept() {
    let env = Env::load().await;
    let run = run_id();
    let id = env.send("testbed", "early", json!({"run": run})).await;
    let awakeable = env.published(&run, "awakeable").await;
    let resolved = env
        .complete_awakeable(&awakeable, "resolve", r#""early bird""#)
        .await;
    assert_eq!(resolved.status, 200, "{}", resolved.raw);
    env.clients
        .dynamo
        .put_item()
        .table_name(&env.deployment.table)
        .item("pk", AttributeValue::S(format!("test#{run}")))
        .item("sk", AttributeValue::S("resolved".into()))
        .send()
        .await
        .unwrap();
    let answer = env.output(&id, Duration::from_secs(30)).await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert_eq!(answer.body, json!({"approved": "early bird"}));
    assert_eq!(
        lambda_invocations(&env.function("testbed"), &id)
            .unwrap()
            .len(),
        1,
        "it never suspended"
    );
}

#[tokio::test]
async fn awakeable_or_timeout_returns_the_timeout_when_nobody_resolves() {
    let env = Env::load().await;
    let run = run_id();
    let started = Instant::now();
    let answer = env
        .client
        .invoke(
            "testbed",
            "approval",
            &json!({"run": run, "timeout_ms": 1000}),
            None,
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert_eq!(answer.body, json!({"timed_out": true}));
    assert!(started.elapsed() >= Duration::from_millis(1000));
    let stored = inspect::invocation(
        &env.clients,
        &env.deployment.table,
        answer.invocation_id.as_deref().unwrap(),
    )
    .await
    .unwrap();
    let select = stored
        .journal
        .iter()
        .find(|e| matches!(e.kind, EntryKind::Select { .. }))
        .unwrap();
    assert_eq!(
        select.kind,
        EntryKind::Select {
            of: vec![0, 2],
            winner: 2
        },
        "the timer won"
    );
    // Resolving after the timeout is accepted (the entry is still open) but changes nothing.
    let awakeable = env.published(&run, "awakeable").await;
    let late = env.complete_awakeable(&awakeable, "resolve", "1").await;
    assert_eq!(late.status, 200, "{}", late.raw);
    let output = env
        .client
        .output(answer.invocation_id.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(output.body, json!({"timed_out": true}));
}

#[tokio::test]
async fn unknown_and_malformed_awakeables_are_refused() {
    let env = Env::load().await;
    let invocation = InvocationId::random(&ServiceName::new("testbed").unwrap());
    // Well formed, naming nothing (and with a tag nobody made).
    let unknown = AwakeableId {
        tag: durable_protocol::auth::SigningKey::random()
            .invocation_key(&invocation)
            .tag(durable_protocol::auth::Purpose::Awakeable, 0),
        invocation,
        index: 0,
    }
    .to_string();
    // Malformed ids get the same answer: a guess learns nothing from it.
    for id in [unknown.as_str(), "awk_bogus"] {
        let answer = env.complete_awakeable(id, "resolve", "1").await;
        assert_eq!(
            (answer.status, answer.body["code"].as_str()),
            (404, Some("unknown_awakeable")),
            "{}",
            answer.raw
        );
    }
    let answer = env
        .complete_awakeable(&unknown, "reject", r#"{"nope":1}"#)
        .await;
    assert_eq!(
        (answer.status, answer.body["code"].as_str()),
        (400, Some("invalid_rejection")),
        "{}",
        answer.raw
    );
}

#[tokio::test]
async fn attach_waits_for_a_sent_invocation() {
    let env = Env::load().await;
    let id = env.send("testbed", "nap", json!({"millis": 800})).await;
    let answer = env
        .client
        .request(
            reqwest::Method::GET,
            &format!("/invocations/{id}/attach"),
            None,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert!(answer.body["elapsed_ms"].as_u64().unwrap() >= 800);
}

/// A completion that lands between the handler's last look and the suspension is not lost:
/// the suspension transaction sees it and refuses to suspend.
#[tokio::test]
async fn a_completion_racing_with_the_suspension_is_not_lost() {
    let env = Env::load().await;
    let store = InvocationStore::new(env.clients.dynamo.clone(), &env.deployment.table);
    let journal = JournalStore::new(env.clients.dynamo.clone(), &env.deployment.table);
    let new = |id: &InvocationId| NewInvocation {
        id: id.clone(),
        service: ServiceName::new("testbed").unwrap(),
        handler: HandlerName::new("approval").unwrap(),
        function_arn: "arn:aws:lambda:us-east-1:000000000000:function:none".into(),
        input: json!(null),
        idempotency_key: None,
        lease_until: u64::MAX,
        released: false,
        caller: None,
        key: None,
        handler_kind: None,
        traceparent: None,
        retention: None,
        headers: Default::default(),
    };
    let awakeable = JournalEntry::new(
        0,
        EntryKind::Awakeable {
            name: "awakeable".into(),
            timeout: None,
        },
    );
    let value = StepResult::Value(json!("yes"));

    // The completion arrived first: suspending fails, the driver pushes again.
    let id = InvocationId::random(&ServiceName::new("testbed").unwrap());
    let Created::New(inv) = store.create(&new(&id)).await.unwrap() else {
        panic!()
    };
    assert_eq!(
        journal.append(&id, &awakeable, 1).await.unwrap(),
        Appended::Written
    );
    assert_eq!(
        journal
            .complete(
                &id,
                0,
                durable_protocol::EntryTag::Awakeable,
                &value,
                Completer::Other
            )
            .await
            .unwrap(),
        Completed::Written
    );
    assert_eq!(
        store.suspend(&inv, &[0]).await.unwrap(),
        Suspension::CompletionArrived
    );
    assert_eq!(
        store.get(&id).await.unwrap().unwrap().status,
        Status::Running
    );

    // The suspension came first: the completion finds it suspended and resumes it, once.
    let id = InvocationId::random(&ServiceName::new("testbed").unwrap());
    let Created::New(inv) = store.create(&new(&id)).await.unwrap() else {
        panic!()
    };
    assert_eq!(
        journal.append(&id, &awakeable, 1).await.unwrap(),
        Appended::Written
    );
    assert_eq!(
        store.suspend(&inv, &[0]).await.unwrap(),
        Suspension::Suspended
    );
    assert_eq!(
        store.suspend(&inv, &[0]).await.unwrap(),
        Suspension::LostOwnership,
        "suspended already"
    );
    assert_eq!(
        journal
            .complete(
                &id,
                0,
                durable_protocol::EntryTag::Awakeable,
                &value,
                Completer::Other
            )
            .await
            .unwrap(),
        Completed::Written
    );
    assert_eq!(
        journal
            .complete(
                &id,
                0,
                durable_protocol::EntryTag::Awakeable,
                &StepResult::Value(json!("no")),
                Completer::Other,
            )
            .await
            .unwrap(),
        Completed::AlreadyCompleted(value.clone())
    );
    let mut suspended = store.get(&id).await.unwrap().unwrap();
    assert_eq!(
        (suspended.status, suspended.waiting_on.clone()),
        (Status::Suspended, vec![0])
    );
    assert!(
        !store.resume(&mut suspended.clone(), 5, 0).await.unwrap(),
        "not waiting on entry 5"
    );
    let mut twin = suspended.clone();
    assert!(store.resume(&mut suspended, 0, u64::MAX).await.unwrap());
    assert!(
        !store.resume(&mut twin, 0, u64::MAX).await.unwrap(),
        "a duplicate resume is refused"
    );
    let resumed = store.get(&id).await.unwrap().unwrap();
    assert_eq!((resumed.status, resumed.epoch), (Status::Running, 2));
    assert_eq!(
        journal
            .complete(
                &id,
                7,
                durable_protocol::EntryTag::Awakeable,
                &value,
                Completer::Other
            )
            .await
            .unwrap(),
        Completed::NoSuchEntry
    );
}

/// Regression: approvals whose timeout is waited in-process (2 s, the default limit) must all
/// expire, never stay suspended on the awakeable alone.
#[tokio::test]
async fn in_process_timeouts_racing_awakeables_always_fire() {
    let env = Env::load().await;
    let requests = (0..6).map(|i| {
        let input = json!({"expense_id": format!("race-{}-{i}", run_id()), "amount_cents": 5, "approval_timeout_secs": 2});
        let client = env.client.clone();
        async move { client.invoke("approvals", "request", &input, None).await.unwrap() }
    });
    for answer in futures::future::join_all(requests).await {
        assert_eq!(answer.status, 200, "{}", answer.raw);
        assert_eq!(answer.body["status"], "expired", "{}", answer.raw);
    }
}

#[tokio::test]
async fn an_empty_resolve_completes_an_awakeable_with_null() {
    let env = Env::load().await;
    let (id, awakeable) = start_approval(&env).await;
    let resolved = env.complete_awakeable(&awakeable, "resolve", "").await;
    assert_eq!(resolved.status, 200, "{}", resolved.raw);
    let answer = env.output(&id, Duration::from_secs(30)).await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert_eq!(answer.body, json!({"approved": null}));
}

/// `POST /awakeables/{id}/heartbeat`.
async fn heartbeat(env: &Env, id: &str) -> durable_local::client::Answer {
    env.client
        .request(
            reqwest::Method::POST,
            &format!("/awakeables/{id}/heartbeat"),
            None,
            &[],
        )
        .await
        .expect("request")
}

#[tokio::test]
async fn an_awakeable_with_a_timeout_of_its_own_times_out_and_refuses_a_late_resolve() {
    let env = Env::load().await;
    let run = run_id();
    let id = env
        .send(
            "testbed",
            "timed_awakeable",
            json!({"run": run, "timeout_ms": 2000}),
        )
        .await;
    let awakeable = env.published(&run, "awakeable").await;
    env.wait_status(&id, "completed", Duration::from_secs(60))
        .await;
    let out = env.client.output(&id).await.unwrap();
    assert_eq!(
        out.body,
        json!({"timed_out": "awakeable timed out"}),
        "{}",
        out.raw
    );
    let late = env.complete_awakeable(&awakeable, "resolve", "1").await;
    assert_eq!(late.status, 410, "{}", late.raw);
    assert_eq!(late.body["code"], "awakeable_expired", "{}", late.raw);
    let late = env
        .complete_awakeable(&awakeable, "reject", r#"{"message": "too late"}"#)
        .await;
    assert_eq!(late.status, 410, "{}", late.raw);
    let beat = heartbeat(&env, &awakeable).await;
    assert_eq!(beat.status, 400, "no heartbeat timeout: {}", beat.raw);
    assert_eq!(beat.body["code"], "no_heartbeat_timeout", "{}", beat.raw);
}

#[tokio::test]
async fn heartbeats_keep_an_awakeable_alive_past_its_heartbeat_timeout() {
    let env = Env::load().await;
    let run = run_id();
    let id = env
        .send(
            "testbed",
            "timed_awakeable",
            json!({"run": run, "heartbeat_ms": 3000}),
        )
        .await;
    let awakeable = env.published(&run, "awakeable").await;
    let mut last_deadline = 0;
    // Twice the heartbeat timeout, one heartbeat a second.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let beat = heartbeat(&env, &awakeable).await;
        assert_eq!(beat.status, 200, "{}", beat.raw);
        assert_eq!(beat.body["status"], "alive", "{}", beat.raw);
        let deadline = beat.body["deadline_ms"].as_u64().unwrap();
        assert!(deadline > last_deadline, "{}", beat.raw);
        last_deadline = deadline;
    }
    assert_eq!(env.status(&id).await, "suspended", "kept alive");
    let done = env
        .complete_awakeable(&awakeable, "resolve", r#""done""#)
        .await;
    assert_eq!(done.status, 200, "{}", done.raw);
    env.wait_status(&id, "completed", Duration::from_secs(60))
        .await;
    let out = env.client.output(&id).await.unwrap();
    assert_eq!(out.body, json!({"resolved": "done"}), "{}", out.raw);
    let beat = heartbeat(&env, &awakeable).await;
    assert_eq!(beat.status, 409, "completed already: {}", beat.raw);
}

#[tokio::test]
async fn an_awakeable_whose_heartbeats_stop_times_out() {
    let env = Env::load().await;
    let run = run_id();
    let id = env
        .send(
            "testbed",
            "timed_awakeable",
            json!({"run": run, "heartbeat_ms": 2000, "timeout_ms": 600_000}),
        )
        .await;
    let awakeable = env.published(&run, "awakeable").await;
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let beat = heartbeat(&env, &awakeable).await;
        assert_eq!(beat.status, 200, "{}", beat.raw);
    }
    env.wait_status(&id, "completed", Duration::from_secs(60))
        .await;
    let out = env.client.output(&id).await.unwrap();
    assert_eq!(
        out.body,
        json!({"timed_out": "awakeable timed out"}),
        "{}",
        out.raw
    );
    let beat = heartbeat(&env, &awakeable).await;
    assert_eq!(beat.status, 410, "{}", beat.raw);
    let late = env.complete_awakeable(&awakeable, "resolve", "1").await;
    assert_eq!(late.status, 410, "{}", late.raw);
}

#[tokio::test]
async fn heartbeats_count_across_a_resume_in_between() {
    let env = Env::load().await;
    let run = run_id();
    // A 4 s sleep beside the awakeable resumes the invocation while heartbeats keep it alive;
    // its next suspension still reports the awakeable's first deadline, long past.
    let id = env
        .send(
            "testbed",
            "timed_awakeable",
            json!({"run": run, "heartbeat_ms": 2500, "sleep_ms": 4000}),
        )
        .await;
    let awakeable = env.published(&run, "awakeable").await;
    for _ in 0..7 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let beat = heartbeat(&env, &awakeable).await;
        assert_eq!(beat.status, 200, "{}", beat.raw);
    }
    assert_eq!(
        env.status(&id).await,
        "suspended",
        "kept alive past the resume"
    );
    env.wait_status(&id, "completed", Duration::from_secs(60))
        .await;
    let out = env.client.output(&id).await.unwrap();
    assert_eq!(
        out.body,
        json!({"timed_out": "awakeable timed out"}),
        "{}",
        out.raw
    );
}

#[tokio::test]
async fn a_poll_that_needs_five_checks_waits_with_real_timers_between_them() {
    let env = Env::load().await;
    let run = run_id();
    let id = env
        .send("testbed", "poll_until", json!({"run": run, "checks": 5}))
        .await;
    env.wait_status(&id, "completed", Duration::from_secs(90))
        .await;
    let out = env.client.output(&id).await.unwrap();
    let times: Vec<u64> = serde_json::from_value(out.body["times"].clone()).unwrap();
    assert_eq!(times.len(), 5, "{}", out.raw);
    let gaps: Vec<u64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    for (gap, wait) in gaps.iter().zip([1000, 2000, 3000, 3000]) {
        assert!(
            *gap >= wait,
            "waited {gap} ms for a {wait} ms wait: {gaps:?}"
        );
    }
    assert_eq!(env.effects(&run, "check").await, 5, "each check ran once");
    let stored = inspect::invocation(&env.clients, &env.deployment.table, &id)
        .await
        .unwrap();
    assert_eq!(
        stored.journal.len(),
        9,
        "two entries per check: {:?}",
        stored.journal
    );
    let pushes = lambda_invocations(&env.function("testbed"), &id)
        .unwrap()
        .len();
    assert!(pushes >= 3, "the 3 s waits suspended: {pushes} pushes");
}
