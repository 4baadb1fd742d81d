//! End-to-end tests against the local AWS environment: LocalStack with DynamoDB Local and real
//! Lambda processes, the engine deployed by `durable-local deploy`. Run them with
//! `scripts/test.sh`, which brings the environment up and deploys first.

use aws_sdk_dynamodb::types::AttributeValue;
use durable_local::harness::{run_id, Env};
use durable_local::inspect::{self, lambda_invocations};
use durable_protocol::{
    EntryKind, HandlerName, HandlerRequest, IdempotencyKey, InvocationId, InvokeRequest,
    JournalEntry, ServiceName, StepResult, TerminalFailure,
};
use durable_store::invocations::{Created, InvocationStore, NewInvocation, Outcome};
use durable_store::Appended;
use durable_store::JournalStore;
use serde_json::json;
use std::time::Duration;

fn num(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> u64 {
    item[name].as_n().unwrap().parse().unwrap()
}

#[tokio::test]
async fn checkout_runs_three_steps_in_one_handler_call() {
    let env = Env::load().await;
    let order = json!({"order_id": run_id(), "items": ["a", "b", "c"], "amount_cents": 4200});
    let answer = env
        .client
        .invoke("checkout", "checkout", &order, None)
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.raw);
    let id = answer.invocation_id.clone().expect("x-invocation-id");
    assert_eq!(
        answer.body["payment_id"],
        format!("pay-{}", order["order_id"].as_str().unwrap())
    );
    assert!(answer.body["confirmation"]
        .as_str()
        .unwrap()
        .contains("3 item(s), 4200 cents"));

    let stored = inspect::invocation(&env.clients, &env.deployment.table, &id)
        .await
        .unwrap();
    let names: Vec<_> = stored
        .journal
        .iter()
        .map(|e| e.kind.name().into_owned())
        .collect();
    assert_eq!(names, ["reserve", "charge", "confirm"]);
    assert_eq!(
        stored.journal.iter().map(|e| e.index).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert_eq!(
        stored.item_count, 3,
        "meta + 2 journal entries, nothing else: the last step is recorded with the outcome"
    );
    assert_eq!(stored.tail, Some(2));
    let meta = stored.meta.unwrap();
    assert_eq!(meta["status"].as_s().unwrap(), "completed");
    assert_eq!(num(&meta, "attempt"), 1);
    assert_eq!(
        meta["function_arn"].as_s().unwrap(),
        &env.deployment.services["checkout"],
        "pinned to the registered version"
    );

    // Counted by the Lambda executor, not by the engine: one handler call for three steps.
    let calls = lambda_invocations(&env.function("checkout"), &id).unwrap();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(!calls[0].is_error);
    assert_ne!(
        calls[0].qualifier, "$LATEST",
        "invocations run on the pinned version"
    );
}

#[tokio::test]
async fn a_crash_after_step_two_resumes_without_rerunning_steps() {
    let env = Env::load().await;
    let run = run_id();
    let answer = env
        .client
        .invoke(
            "testbed",
            "steps",
            &json!({"run": run, "steps": 3, "crash_after": 2}),
            None,
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert_eq!(answer.body, json!({"results": [10, 20, 30]}));
    let id = answer.invocation_id.unwrap();

    // Side effects counted in DynamoDB by the steps themselves: each ran exactly once.
    let calls = lambda_invocations(&env.function("testbed"), &id).unwrap();
    let meta = env.meta(&id).await;
    for step in ["step-1", "step-2", "step-3"] {
        assert_eq!(
            env.effects(&run, step).await,
            1,
            "{step}; handler calls {calls:?}; metadata {meta:?}"
        );
    }
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0].error_type.as_deref(), Some("Runtime.ExitError"));
    assert!(!calls[1].is_error);
    assert_eq!(num(&meta, "attempt"), 2);
    assert_eq!(num(&meta, "epoch"), 2);
    assert!(meta["last_error"]
        .as_s()
        .unwrap()
        .contains("exit status 17"));
}

#[tokio::test]
async fn an_idempotency_key_returns_the_same_invocation_and_runs_it_once() {
    let env = Env::load().await;
    let run = run_id();
    let key = format!("key-{run}");
    let input = json!({"run": run, "steps": 2});
    // Two concurrent requests and a later one, all with the same key.
    let (a, b) = tokio::join!(
        env.client.invoke("testbed", "steps", &input, Some(&key)),
        env.client.invoke("testbed", "steps", &input, Some(&key))
    );
    let c = env
        .client
        .invoke("testbed", "steps", &input, Some(&key))
        .await
        .unwrap();
    let (a, b) = (a.unwrap(), b.unwrap());
    for answer in [&a, &b, &c] {
        assert_eq!(answer.status, 200, "{}", answer.raw);
        assert_eq!(answer.body, json!({"results": [10, 20]}));
    }
    assert_eq!(a.invocation_id, b.invocation_id);
    assert_eq!(a.invocation_id, c.invocation_id);
    assert_eq!(env.effects(&run, "step-1").await, 1);
    assert_eq!(env.effects(&run, "step-2").await, 1);
    let id = a.invocation_id.unwrap();
    assert_eq!(
        lambda_invocations(&env.function("testbed"), &id)
            .unwrap()
            .len(),
        1
    );

    // Another key is another invocation.
    let other = env
        .client
        .invoke("testbed", "steps", &input, Some(&format!("other-{run}")))
        .await
        .unwrap();
    assert_ne!(other.invocation_id.as_deref(), Some(id.as_str()));
    assert_eq!(env.effects(&run, "step-1").await, 2);
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_writes_nothing() {
    let env = Env::load().await;
    let marker = run_id();
    let key = format!("bad-{marker}");
    let post = |path: &'static str, body: Option<String>, content_type: &'static str| {
        let client = env.client.clone();
        let key = key.clone();
        async move {
            client
                .request(
                    reqwest::Method::POST,
                    path,
                    body.as_deref(),
                    &[
                        ("content-type", content_type),
                        ("idempotency-key", key.as_str()),
                    ],
                )
                .await
                .unwrap()
        }
    };
    let json_ct = "application/json";
    let cases = [
        (
            post(
                "/testbed/steps",
                Some(format!("{{\"run\": \"{marker}\", ")),
                json_ct,
            )
            .await,
            400,
            "invalid_json",
        ),
        (
            post("/testbed/steps", None, json_ct).await,
            400,
            "empty_body",
        ),
        (
            post(
                "/testbed/steps",
                Some(format!("{{\"run\":\"{marker}\"}}")),
                "text/plain",
            )
            .await,
            415,
            "unsupported_media_type",
        ),
        (
            post(
                "/nosuchservice/steps",
                Some(format!("{{\"run\":\"{marker}\"}}")),
                json_ct,
            )
            .await,
            404,
            "unknown_service",
        ),
        (
            post(
                "/testbed/nosuchhandler",
                Some(format!("{{\"run\":\"{marker}\"}}")),
                json_ct,
            )
            .await,
            404,
            "unknown_handler",
        ),
        (
            post("/too/many/path/segments/here", Some("{}".into()), json_ct).await,
            404,
            "not_found",
        ),
    ];
    for (answer, status, code) in &cases {
        assert_eq!(answer.status, *status, "{}", answer.raw);
        assert_eq!(answer.body["code"], *code, "{}", answer.raw);
        assert!(
            answer.body["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{}",
            answer.raw
        );
    }
    let get = env
        .client
        .request(reqwest::Method::GET, "/testbed/steps", None, &[])
        .await
        .unwrap();
    assert_eq!(
        (get.status, get.body["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    let unknown = env
        .client
        .output(InvocationId::random(&ServiceName::new("testbed").unwrap()).as_str())
        .await
        .unwrap();
    assert_eq!(
        (unknown.status, unknown.body["code"].as_str()),
        (404, Some("unknown_invocation"))
    );
    let malformed = env.client.output("not-an-id").await.unwrap();
    assert_eq!(
        (malformed.status, malformed.body["code"].as_str()),
        (400, Some("invalid_invocation_id"))
    );

    // Nothing written: not under the id the key maps to, nor anywhere with the marker.
    let id = InvocationId::for_idempotency_key(
        &ServiceName::new("testbed").unwrap(),
        &HandlerName::new("steps").unwrap(),
        &IdempotencyKey::new(key.clone()).unwrap(),
    );
    let stored = inspect::invocation(&env.clients, &env.deployment.table, id.as_str())
        .await
        .unwrap();
    assert_eq!(stored.item_count, 0);
    let scan = env
        .clients
        .dynamo
        .scan()
        .table_name(&env.deployment.table)
        .filter_expression("contains(#i, :m) OR idempotency_key = :k")
        .expression_attribute_names("#i", "input")
        .expression_attribute_values(":m", AttributeValue::S(marker.clone()))
        .expression_attribute_values(":k", AttributeValue::S(key.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(scan.count, 0, "{:?}", scan.items);
    assert_eq!(env.effects(&marker, "step-1").await, 0);
}

#[tokio::test]
async fn a_terminal_error_answers_with_its_status_and_keeps_the_journal() {
    let env = Env::load().await;
    let run = run_id();
    let answer = env
        .client
        .invoke("testbed", "reject", &json!({"run": run}), None)
        .await
        .unwrap();
    assert_eq!(answer.status, 409, "{}", answer.raw);
    assert_eq!(answer.body["code"], "terminal_error");
    assert_eq!(answer.body["message"], "out of stock");
    let id = answer.invocation_id.unwrap();
    assert_eq!(answer.body["invocation_id"], id.as_str());
    let output = env.client.output(&id).await.unwrap();
    assert_eq!(output.status, 409);
    assert_eq!(output.body["message"], "out of stock");
    let stored = inspect::invocation(&env.clients, &env.deployment.table, &id)
        .await
        .unwrap();
    assert_eq!(stored.journal.len(), 1);
    assert_eq!(stored.meta.unwrap()["status"].as_s().unwrap(), "failed");
    assert_eq!(
        lambda_invocations(&env.function("testbed"), &id)
            .unwrap()
            .len(),
        1,
        "terminal errors are not retried"
    );
}

#[tokio::test]
async fn the_output_endpoint_returns_a_finished_invocations_output() {
    let env = Env::load().await;
    let run = run_id();
    let answer = env
        .client
        .invoke("testbed", "steps", &json!({"run": run, "steps": 1}), None)
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    let output = env
        .client
        .output(answer.invocation_id.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(output.status, 200);
    assert_eq!(output.body, json!({"results": [10]}));
}

#[tokio::test]
async fn a_failing_step_is_retried_until_it_succeeds() {
    let env = Env::load().await;
    let run = run_id();
    let answer = env
        .client
        .invoke("testbed", "flaky", &json!({"run": run}), None)
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert_eq!(answer.body, json!(3));
    assert_eq!(env.effects(&run, "flaky").await, 3);
    let id = answer.invocation_id.unwrap();
    assert_eq!(
        lambda_invocations(&env.function("testbed"), &id)
            .unwrap()
            .len(),
        3
    );
    let meta = env.meta(&id).await;
    assert_eq!(num(&meta, "attempt"), 3);
}

#[tokio::test]
async fn a_step_fails_terminally_after_its_max_attempts() {
    let env = Env::load().await;
    let run = run_id();
    let answer = env
        .client
        .invoke("testbed", "hopeless", &json!({"run": run}), None)
        .await
        .unwrap();
    assert_eq!(answer.status, 500, "{}", answer.raw);
    assert!(
        answer.body["message"]
            .as_str()
            .unwrap()
            .contains("failed 2 times"),
        "{}",
        answer.raw
    );
    assert!(
        answer.body["message"]
            .as_str()
            .unwrap()
            .contains("the bank is down"),
        "{}",
        answer.raw
    );
    assert_eq!(env.effects(&run, "hopeless").await, 2);
}

#[tokio::test]
async fn non_deterministic_replay_is_reported_not_papered_over() {
    let env = Env::load().await;
    let run = run_id();
    let answer = env
        .client
        .invoke("testbed", "diverge", &json!({"run": run}), None)
        .await
        .unwrap();
    assert_eq!(answer.status, 570, "{}", answer.raw);
    assert_eq!(answer.body["code"], "non_determinism");
    let message = answer.body["message"].as_str().unwrap();
    assert!(
        message.contains("\"original\"") && message.contains("\"changed\""),
        "{message}"
    );
    let stored = inspect::invocation(
        &env.clients,
        &env.deployment.table,
        answer.invocation_id.as_deref().unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        stored.journal.len(),
        1,
        "the divergent step was not recorded"
    );
    assert_eq!(stored.journal[0].kind.name(), "original");
}

/// Two attempts of one invocation run the same step at once (as after a duplicate delivery):
/// both closures run (at least once), one result is recorded, the attempt whose result lost
/// stops before building on it (retryable, at once), and its retry replays the recorded one.
#[tokio::test]
async fn racing_attempts_record_one_result_and_the_loser_retries_on_it() {
    let env = Env::load().await;
    let run = run_id();
    let id = InvocationId::random(&ServiceName::new("testbed").unwrap());
    let push = |epoch: u64, journal: Vec<JournalEntry>| {
        HandlerRequest::Invoke(
            InvokeRequest::new(
                id.clone(),
                durable_protocol::auth::SigningKey::random()
                    .service_key(&ServiceName::new("testbed").unwrap()),
                HandlerName::new("slow_then_step").unwrap(),
                json!({"run": run, "millis": 500}),
                env.deployment.table.clone(),
            )
            .with_journal(journal)
            .at(epoch, 1),
        )
    };
    let arn = env.deployment.services["testbed"].clone();
    let invoke = |request: HandlerRequest| {
        let payload = serde_json::to_vec(&request).unwrap();
        env.clients
            .lambda
            .invoke()
            .function_name(&arn)
            .payload(aws_sdk_lambda::primitives::Blob::new(payload))
            .send()
    };
    let answer = |out: aws_sdk_lambda::operation::invoke::InvokeOutput| -> serde_json::Value {
        assert!(out.function_error.is_none());
        serde_json::from_slice(out.payload.unwrap().as_ref()).unwrap()
    };
    let (a, b) = tokio::join!(invoke(push(1, vec![])), invoke(push(1, vec![])));
    let (a, b) = (answer(a.unwrap()), answer(b.unwrap()));
    assert_eq!(env.effects(&run, "slow").await, 2, "both closures ran");
    let (won, lost) = match (a["status"].as_str(), b["status"].as_str()) {
        (Some("completed"), Some("retryable")) => (a, b),
        (Some("retryable"), Some("completed")) => (b, a),
        other => panic!("one attempt completes, the other retries: {other:?}\n{a}\n{b}"),
    };
    assert_eq!(lost["retry_after_ms"], 0, "{lost}");
    let stored = inspect::invocation(&env.clients, &env.deployment.table, id.as_str())
        .await
        .unwrap();
    assert_eq!(stored.journal.len(), 1, "only the first step is journaled");
    let EntryKind::Run {
        result: StepResult::Value(recorded),
        ..
    } = &stored.journal[0].kind
    else {
        panic!("{:?}", stored.journal[0]);
    };
    assert_eq!(won["output"], json!(recorded.as_u64().unwrap() * 10));
    assert_eq!(
        won["tail"]["index"], 1,
        "the second step comes with the outcome"
    );
    // The loser's retry replays the recorded result and answers what the winner did.
    let retried = answer(invoke(push(2, stored.journal.clone())).await.unwrap());
    assert_eq!(retried["status"], "completed", "{retried}");
    assert_eq!(retried["output"], won["output"]);
    assert_eq!(
        env.effects(&run, "slow").await,
        2,
        "replayed, not run again"
    );
}

/// The orchestrator call that created an invocation died (its lease ran out) after step 1 was
/// recorded: a retry of the request with the same key takes over, replays step 1 from the
/// journal and runs the rest.
#[tokio::test]
async fn a_dead_drivers_invocation_is_taken_over_and_replayed() {
    let env = Env::load().await;
    let run = run_id();
    let key = IdempotencyKey::new(format!("takeover-{run}")).unwrap();
    let (service, handler) = (
        ServiceName::new("testbed").unwrap(),
        HandlerName::new("steps").unwrap(),
    );
    let id = InvocationId::for_idempotency_key(&service, &handler, &key);
    let store = InvocationStore::new(env.clients.dynamo.clone(), &env.deployment.table);
    let input = json!({"run": run, "steps": 3});
    let created = store
        .create(&NewInvocation {
            id: id.clone(),
            service,
            handler,
            function_arn: env.deployment.services["testbed"].clone(),
            input: input.clone(),
            idempotency_key: Some(key.clone()),
            lease_until: 1, // long expired: the driver is gone
            released: false,
            caller: None,
            key: None,
            handler_kind: None,
            traceparent: None,
            retention: None,
            headers: Default::default(),
        })
        .await
        .unwrap();
    assert!(matches!(created, Created::New(_)));
    let journal = JournalStore::new(env.clients.dynamo.clone(), &env.deployment.table);
    let step1 = JournalEntry::new(
        0,
        EntryKind::Run {
            name: "step-1".into(),
            result: StepResult::Value(json!(999)),
        },
    );
    assert_eq!(
        journal.append(&id, &step1, 1).await.unwrap(),
        Appended::Written
    );

    let answer = env
        .client
        .invoke("testbed", "steps", &input, Some(key.as_str()))
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert_eq!(
        answer.body,
        json!({"results": [999, 20, 30]}),
        "step 1 comes from the journal"
    );
    assert_eq!(answer.invocation_id.as_deref(), Some(id.as_str()));
    assert_eq!(env.effects(&run, "step-1").await, 0);
    assert_eq!(env.effects(&run, "step-2").await, 1);
    assert_eq!(
        num(&env.meta(id.as_str()).await, "epoch"),
        2,
        "the take-over bumped the epoch"
    );
}

/// A driver that lost its invocation to another (epoch bumped) cannot record an outcome.
#[tokio::test]
async fn a_stale_driver_cannot_finish_an_invocation() {
    let env = Env::load().await;
    let store = InvocationStore::new(env.clients.dynamo.clone(), &env.deployment.table);
    let id = InvocationId::random(&ServiceName::new("testbed").unwrap());
    let Created::New(mut stale) = store
        .create(&NewInvocation {
            id: id.clone(),
            service: ServiceName::new("testbed").unwrap(),
            handler: HandlerName::new("steps").unwrap(),
            function_arn: "arn:aws:lambda:us-east-1:000000000000:function:none".into(),
            input: json!(null),
            idempotency_key: None,
            lease_until: 1,
            released: false,
            caller: None,
            key: None,
            handler_kind: None,
            traceparent: None,
            retention: None,
            headers: Default::default(),
        })
        .await
        .unwrap()
    else {
        panic!("fresh id exists")
    };
    let mut winner = store.get(&id).await.unwrap().unwrap();
    assert!(store.take_over(&mut winner, u64::MAX).await.unwrap());
    assert!(
        !store.take_over(&mut stale.clone(), u64::MAX).await.unwrap(),
        "a second take-over of the same epoch fails"
    );
    let late = Outcome::Failed(TerminalFailure::new(500, "late"));
    assert_eq!(
        store
            .finish(&stale, &late, None, Duration::from_secs(60))
            .await
            .unwrap(),
        None
    );
    assert!(!store
        .next_attempt(&mut stale, 0, None, "late", 0)
        .await
        .unwrap());
    let done = Outcome::Completed(json!("winner"));
    assert_eq!(
        store
            .finish(&winner, &done, None, Duration::from_secs(60))
            .await
            .unwrap(),
        Some(false)
    );
    assert!(
        store
            .finish(&winner, &late, None, Duration::from_secs(60))
            .await
            .unwrap()
            .is_none(),
        "finished is final"
    );
    let stored = store.get(&id).await.unwrap().unwrap();
    assert_eq!(stored.outcome, Some(done));
    assert_eq!(stored.epoch, 2);
}

/// Conditional append in DynamoDB: of two writers of one index, exactly one wins and the other
/// gets the winner's entry back.
#[tokio::test]
async fn concurrent_appends_of_one_index_have_one_winner() {
    let env = Env::load().await;
    let journal = JournalStore::new(env.clients.dynamo.clone(), &env.deployment.table);
    let id = InvocationId::random(&ServiceName::new("testbed").unwrap());
    let entry = |v: i32| {
        JournalEntry::new(
            0,
            EntryKind::Run {
                name: "x".into(),
                result: StepResult::Value(json!(v)),
            },
        )
    };
    let (e1, e2) = (entry(1), entry(2));
    let (a, b) = tokio::join!(journal.append(&id, &e1, 1), journal.append(&id, &e2, 2));
    let (a, b) = (a.unwrap(), b.unwrap());
    let stored = journal.load(&id).await.unwrap();
    assert_eq!(stored.len(), 1);
    match (a, b) {
        (Appended::Written, Appended::AlreadyRecorded(r)) => {
            assert_eq!((*r.clone(), stored[0].clone()), (e1.clone(), e1));
        }
        (Appended::AlreadyRecorded(r), Appended::Written) => {
            assert_eq!((*r.clone(), stored[0].clone()), (e2.clone(), e2));
        }
        other => panic!("expected one winner: {other:?}"),
    }
}

/// An invocation whose driver died and that nobody asks about again is found by the sweep
/// (expired lease in the `leases` index) and finished.
#[tokio::test]
async fn the_sweep_re_drives_an_invocation_whose_driver_died() {
    let env = Env::load().await;
    let run = run_id();
    let store = InvocationStore::new(env.clients.dynamo.clone(), &env.deployment.table);
    let id = InvocationId::random(&ServiceName::new("testbed").unwrap());
    let created = store
        .create(&NewInvocation {
            id: id.clone(),
            service: ServiceName::new("testbed").unwrap(),
            handler: HandlerName::new("steps").unwrap(),
            function_arn: env.deployment.services["testbed"].clone(),
            input: json!({"run": run, "steps": 2}),
            idempotency_key: None,
            // Its driver is gone: the lease ended before the sweep's grace (30 s).
            lease_until: durable_protocol::clock::now_millis() - 31_000,
            released: false,
            caller: None,
            key: None,
            handler_kind: None,
            traceparent: None,
            retention: None,
            headers: Default::default(),
        })
        .await
        .unwrap();
    assert!(matches!(created, Created::New(_)));
    let answer = env.sweep().await;
    assert!(
        answer["redriven"]
            .as_array()
            .unwrap()
            .contains(&json!(id.as_str())),
        "{answer}"
    );
    let output = env
        .output(id.as_str(), std::time::Duration::from_secs(30))
        .await;
    assert_eq!(output.status, 200, "{}", output.raw);
    assert_eq!(output.body, json!({"results": [10, 20]}));
    assert_eq!(env.effects(&run, "step-1").await, 1);
}

/// An attempt that runs past what the orchestrator call has left (the first attempt is killed
/// by the handler's 30 s timeout, the second would end after the orchestrator's 60 s): the push
/// is bounded by the call's deadline, so the HTTP caller gets an answer with the invocation id
/// before the orchestrator's timeout (not the gateway's 502): `202`, or `200` when the fresh call
/// that takes the invocation on finishes it while this one still waits.
#[tokio::test]
async fn an_attempt_past_the_calls_deadline_answers_with_the_id_in_time() {
    let env = Env::load().await;
    let run = run_id();
    let started = std::time::Instant::now();
    let answer = env
        .invoke_testbed(
            "overrun",
            json!({"run": run, "millis": [35_000, 29_000, 0]}),
        )
        .await;
    assert!(
        answer.status == 202 || answer.status == 200,
        "{} {}",
        answer.status,
        answer.raw
    );
    let id = answer.invocation_id.expect("x-invocation-id");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "answered within the orchestrator's timeout"
    );
    let output = env.output(&id, Duration::from_secs(90)).await;
    assert_eq!(output.status, 200, "{}", output.raw);
    // The third attempt recorded the step (the second was still running when it started).
    assert!(
        output.body.as_u64().is_some_and(|n| n >= 3),
        "{}",
        output.raw
    );
}

/// A backoff longer than what the orchestrator call has left waits on a schedule, not in a
/// Lambda and not skipped: the second retry (30 s, capped) is a `drive` schedule `<id>-r<n>`,
/// and the invocation finishes after it.
#[tokio::test]
async fn a_backoff_longer_than_the_call_becomes_a_schedule() {
    let env = Env::load().await;
    let run = run_id();
    let id = env.send("testbed", "backoff", json!({"run": run})).await;
    let started = std::time::Instant::now();
    let mut scheduled = false;
    while started.elapsed() < Duration::from_secs(55) && !scheduled {
        let names =
            durable_local::crash::schedules_of(&env.clients, &env.deployment.orchestrator_function)
                .await;
        let local = InvocationId::parse(&id)
            .map(|i| i.local().to_owned())
            .unwrap_or_default();
        scheduled = names.iter().any(|n| n.starts_with(&format!("{local}-r")));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(scheduled, "no retry schedule for {id}");
    assert!(
        env.effects(&run, "backoff").await == 2,
        "the third attempt waits for its schedule"
    );
    let output = env.output(&id, Duration::from_secs(60)).await;
    assert_eq!(output.status, 200, "{}", output.raw);
    assert_eq!(output.body, json!(3));
    assert!(
        started.elapsed() >= Duration::from_secs(50),
        "both backoffs were waited: {:?}",
        started.elapsed()
    );
}

/// The local schedule pump fires `rate()` schedules as EventBridge Scheduler does (the sweep's
/// `rate(1 minute)` schedule depends on it): a schedule that sends the test Lambda a marked
/// `discover` every minute fires within about a minute and a half.
#[tokio::test]
async fn the_local_pump_fires_rate_schedules() {
    use aws_sdk_scheduler::types::{FlexibleTimeWindow, FlexibleTimeWindowMode, Target};
    let env = Env::load().await;
    let run = run_id();
    let name = format!("rate-{}", &run[..16]);
    let arn = env.deployment.handlers["testbed"].clone();
    let input = json!({"type": "discover", "marker": run}).to_string();
    env.clients
        .scheduler
        .create_schedule()
        .name(&name)
        .schedule_expression("rate(1 minute)")
        .flexible_time_window(
            FlexibleTimeWindow::builder()
                .mode(FlexibleTimeWindowMode::Off)
                .build()
                .unwrap(),
        )
        .target(
            Target::builder()
                .arn(arn)
                .role_arn("arn:aws:iam::000000000000:role/durable-local-scheduler")
                .input(input)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("create schedule");
    let started = std::time::Instant::now();
    let mut fired = 0;
    while started.elapsed() < Duration::from_secs(100) && fired == 0 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        fired = lambda_invocations(&env.function("testbed"), &run)
            .unwrap()
            .len();
    }
    let _ = env
        .clients
        .scheduler
        .delete_schedule()
        .name(&name)
        .send()
        .await;
    assert!(fired >= 1, "the rate schedule never fired");
    assert!(
        started.elapsed() >= Duration::from_secs(50),
        "fired after its period, not at once: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_at_most_once_step_interrupted_by_a_crash_is_not_run_again_in_that_try() {
    let env = Env::load().await;
    let run = run_id();
    let answer = env
        .client
        .invoke(
            "testbed",
            "charge_once",
            &json!({"run": run, "tries": 3}),
            None,
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert_eq!(answer.body, json!(2), "the result comes from try 2");
    let id = answer.invocation_id.unwrap();
    // Try 1 ran its side effect and died; try 2 ran it once more: never twice in one try.
    assert_eq!(env.effects(&run, "charge").await, 2);
    let calls = lambda_invocations(&env.function("testbed"), &id).unwrap();
    assert_eq!(
        calls.len(),
        3,
        "the crash, the attempt that fails try 1 as interrupted, try 2: {calls:?}"
    );
    assert_eq!(calls[0].error_type.as_deref(), Some("Runtime.ExitError"));
    let stored = inspect::invocation(&env.clients, &env.deployment.table, &id)
        .await
        .unwrap();
    assert_eq!(stored.journal.len(), 1);
    assert_eq!(
        stored.journal[0].kind,
        durable_protocol::EntryKind::Started {
            name: "charge".into(),
            attempt: 2
        }
    );
    let meta = stored.meta.unwrap();
    assert!(
        meta["attempt_errors"]
            .as_l()
            .unwrap()
            .iter()
            .any(|e| format!("{e:?}").contains("was interrupted")),
        "{meta:?}"
    );
}

#[tokio::test]
async fn an_at_most_once_step_with_no_tries_left_fails_when_interrupted() {
    let env = Env::load().await;
    let run = run_id();
    let answer = env
        .client
        .invoke(
            "testbed",
            "charge_once",
            &json!({"run": run, "tries": 1}),
            None,
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 500, "{}", answer.raw);
    assert!(
        answer.body["message"]
            .as_str()
            .unwrap()
            .contains("was interrupted"),
        "{}",
        answer.raw
    );
    assert_eq!(env.effects(&run, "charge").await, 1, "never run again");
    let id = answer.invocation_id.unwrap();
    assert_eq!(env.meta(&id).await["status"].as_s().unwrap(), "failed");
}
