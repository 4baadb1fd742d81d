//! End-to-end tests of durable service-to-service communication against the local AWS
//! environment: calls, one-way sends, delayed sends, error propagation, exactly-once children
//! under crashes, and fan-out. Run through `scripts/test.sh`.

use durable_local::harness::{run_id, Env};
use durable_local::inspect::{self, lambda_invocations};
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_call_returns_the_callees_output() {
    let env = Env::load().await;
    let answer = env.invoke_testbed("chain", json!({"depth": 1})).await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert_eq!(answer.body, json!(1));
    let id = answer.invocation_id.unwrap();
    let stored = inspect::invocation(&env.clients, &env.deployment.table, &id)
        .await
        .unwrap();
    assert_eq!(stored.journal.len(), 1);
    assert!(stored.journal[0].dispatched);
    assert_eq!(
        stored.journal[0].completion,
        Some(durable_protocol::StepResult::Value(json!(0)))
    );
}

#[tokio::test]
async fn a_one_way_send_runs_the_callee() {
    let env = Env::load().await;
    let run = run_id();
    let answer = env
        .invoke_testbed("sends", json!({"run": run, "n": 1}))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    let child = answer.body[0].as_str().unwrap().to_owned();
    let output = env.output(&child, Duration::from_secs(30)).await;
    assert_eq!(output.status, 200, "{}", output.raw);
    assert_eq!(env.effects(&run, "record-0").await, 1);
}

#[tokio::test]
async fn ten_delayed_sends_run_concurrently_and_once_each() {
    let env = Env::load().await;
    let run = run_id();
    let started = Instant::now();
    let answer = env
        .invoke_testbed("sends", json!({"run": run, "n": 10, "delay_ms": 5000}))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    let children: Vec<String> = answer
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(children.len(), 10);
    for child in &children {
        let output = env.output(child, Duration::from_secs(40)).await;
        assert_eq!(output.status, 200, "{}", output.raw);
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(5),
        "{elapsed:?}: the delay was honoured"
    );
    assert!(
        elapsed < Duration::from_secs(25),
        "{elapsed:?}: delays ran concurrently, not one after another"
    );
    for i in 0..10 {
        assert_eq!(
            env.effects(&run, &format!("record-{i}")).await,
            1,
            "send {i} ran once"
        );
    }
}

#[tokio::test]
async fn a_terminal_error_propagates_through_a_call_chain_of_depth_three() {
    let env = Env::load().await;
    let answer = env
        .invoke_testbed("chain", json!({"depth": 3, "fail_at_bottom": true}))
        .await;
    assert_eq!(answer.status, 418, "{}", answer.raw);
    assert_eq!(answer.body["message"], "the bottom of the chain failed");
}

#[tokio::test]
async fn a_caller_crash_while_its_call_is_in_flight_creates_no_second_child() {
    let env = Env::load().await;
    let run = run_id();
    let answer = env
        .invoke_testbed("call_then_crash", json!({"run": run}))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert_eq!(
        answer.body,
        json!(1),
        "the child ran once, so its count is 1"
    );
    assert_eq!(env.effects(&run, "slow").await, 1, "exactly one child ran");
    let id = answer.invocation_id.unwrap();
    let calls = lambda_invocations(&format!("{}-testbed", env.deployment.prefix), &id).unwrap();
    assert!(
        calls
            .iter()
            .any(|c| c.error_type.as_deref() == Some("Runtime.ExitError")),
        "{calls:?}"
    );
}

#[tokio::test]
async fn a_fan_out_of_fifty_children_joins_correctly() {
    let env = Env::load().await;
    let answer = env.invoke_testbed("fan_out", json!(50)).await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert_eq!(answer.body, json!((0..50u64).map(|i| i * i).sum::<u64>()));
    let id = answer.invocation_id.unwrap();
    let stored = inspect::invocation(&env.clients, &env.deployment.table, &id)
        .await
        .unwrap();
    assert_eq!(stored.journal.len(), 50);
    assert!(stored
        .journal
        .iter()
        .all(|e| e.dispatched && e.completion.is_some()));
}

#[tokio::test]
async fn a_call_to_an_unregistered_service_fails_with_404_which_the_caller_can_catch() {
    let env = Env::load().await;
    let answer = env.invoke_testbed("call_unknown", json!(null)).await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert_eq!(answer.body["code"], 404);
    assert!(
        answer.body["message"]
            .as_str()
            .unwrap()
            .contains("nosuchservice/anything"),
        "{}",
        answer.raw
    );
}

#[tokio::test]
async fn the_trip_saga_books_everything_or_compensates_in_reverse_order() {
    let env = Env::load().await;
    let trip = |id: &str, limit: u64| json!({"trip_id": id, "destination": "LIS", "nights": 2, "card_limit_cents": limit});
    let run = run_id();
    let ok = env
        .client
        .invoke(
            "trips",
            "book",
            &trip(&format!("ok-{run}"), 1_000_000),
            None,
        )
        .await
        .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.raw);
    assert_eq!(ok.body["total_cents"], 45_000 + 2 * 12_000);

    let declined = env
        .client
        .invoke("trips", "book", &trip(&format!("no-{run}"), 10_000), None)
        .await
        .unwrap();
    assert_eq!(declined.status, 402, "{}", declined.raw);
    let message = declined.body["message"].as_str().unwrap();
    assert!(message.starts_with("card declined"), "{message}");
    // The journal shows the compensations as durable calls, hotel first, then flight.
    let stored = inspect::invocation(
        &env.clients,
        &env.deployment.table,
        declined.invocation_id.as_deref().unwrap(),
    )
    .await
    .unwrap();
    let calls: Vec<String> = stored
        .journal
        .iter()
        .map(|e| e.kind.name().into_owned())
        .collect();
    assert_eq!(
        calls,
        [
            "flights/reserve",
            "hotels/reserve",
            "payments/charge",
            "hotels/cancel",
            "flights/cancel"
        ]
    );
    assert!(stored.journal.iter().all(|e| e.completion.is_some()));
}

#[tokio::test]
async fn the_fan_out_example_joins_one_child_per_document() {
    let env = Env::load().await;
    let docs: Vec<String> = (0..12).map(|i| vec!["word"; i + 1].join(" ")).collect();
    let answer = env
        .client
        .invoke("batch", "analyze", &json!(docs), None)
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert_eq!(answer.body["total_words"], (1..=12).sum::<u64>());
    assert_eq!(
        answer.body["per_document"],
        json!((1..=12).collect::<Vec<u64>>())
    );
}

#[tokio::test]
async fn a_handler_sees_its_callers_headers_and_its_children_see_them_too() {
    let env = Env::load().await;
    let answer = env
        .client
        .post_json(
            "/testbed/headers",
            "1",
            &[
                ("x-tenant", "acme"),
                ("x-request-id", "r-42"),
                ("authorization", "Bearer not-for-handlers"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.raw);
    let expected = json!({"x-request-id": "r-42", "x-tenant": "acme"});
    assert_eq!(answer.body["headers"], expected, "{}", answer.raw);
    assert_eq!(
        answer.body["child"]["headers"], expected,
        "propagated to the child it called: {}",
        answer.raw
    );
    // Too many headers are refused before anything is written.
    let names: Vec<String> = (0..40).map(|i| format!("x-h{i}")).collect();
    let many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    let refused = env
        .client
        .post_json("/testbed/headers", "0", &many)
        .await
        .unwrap();
    assert_eq!(refused.status, 431, "{}", refused.raw);
    assert_eq!(refused.body["code"], "headers_too_large", "{}", refused.raw);
}

#[tokio::test]
async fn idempotent_sends_from_two_invocations_and_an_http_request_start_one_child() {
    let env = Env::load().await;
    let run = run_id();
    let key = format!("record-{run}");
    let body = json!({"run": run, "key": key});
    let first = env
        .client
        .invoke("testbed", "send_once", &body, None)
        .await
        .unwrap();
    let second = env
        .client
        .invoke("testbed", "send_once", &body, None)
        .await
        .unwrap();
    assert_eq!(first.status, 200, "{}", first.raw);
    assert_ne!(first.invocation_id, second.invocation_id, "two senders");
    assert_eq!(
        first.body, second.body,
        "one child: {} / {}",
        first.raw, second.raw
    );
    let child = first.body.as_str().unwrap().to_owned();
    env.wait_status(&child, "completed", Duration::from_secs(60))
        .await;
    // The same key over HTTP names the same invocation: it answers its output, runs nothing.
    let http = env
        .client
        .invoke(
            "testbed",
            "record",
            &json!({"run": run, "tag": "once"}),
            Some(&key),
        )
        .await
        .unwrap();
    assert_eq!(http.status, 200, "{}", http.raw);
    assert_eq!(http.invocation_id.as_deref(), Some(child.as_str()));
    assert_eq!(
        env.effects(&run, "record-once").await,
        1,
        "the child ran once"
    );
}

#[tokio::test]
async fn idempotent_calls_from_two_invocations_and_an_http_request_share_one_child() {
    let env = Env::load().await;
    let run = run_id();
    let key = format!("settle-{run}");
    // The settlement takes 3 s, so the second caller joins it while it runs.
    let body = json!({"run": run, "key": key, "settle_ms": 3000});
    let (first, second) = tokio::join!(
        env.client.invoke("testbed", "pay_once", &body, None),
        async {
            tokio::time::sleep(Duration::from_millis(700)).await;
            env.client.invoke("testbed", "pay_once", &body, None).await
        }
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.status, 200, "{}", first.raw);
    assert_eq!(second.status, 200, "{}", second.raw);
    assert_ne!(first.invocation_id, second.invocation_id, "two callers");
    assert_eq!(first.body, second.body, "one settlement's result");
    // A caller after it finished gets the same result at once.
    let late = env
        .client
        .invoke("testbed", "pay_once", &body, None)
        .await
        .unwrap();
    assert_eq!(late.status, 200, "{}", late.raw);
    assert_eq!(late.body, first.body);
    // The same key over HTTP names the same invocation: its output, nothing run again.
    let http = env
        .client
        .invoke(
            "testbed",
            "settle",
            &json!({"run": run, "settle_ms": 3000}),
            Some(&key),
        )
        .await
        .unwrap();
    assert_eq!(http.status, 200, "{}", http.raw);
    assert_eq!(http.body, first.body);
    assert_eq!(env.effects(&run, "settle").await, 1, "the child ran once");
    // The first caller made it; the second joined it while it ran.
    let child = http.invocation_id.unwrap();
    let detail = env
        .client
        .get(&format!("/invocations/{child}"))
        .await
        .unwrap();
    let callers = [
        detail.body["caller"].as_str().unwrap_or_default(),
        detail.body["waiters"][0].as_str().unwrap_or_default(),
    ];
    let ids = [first.invocation_id.unwrap(), second.invocation_id.unwrap()];
    assert!(
        callers[0] == ids[0] && callers[1] == format!("{}:0", ids[1])
            || callers[0] == ids[1] && callers[1] == format!("{}:0", ids[0]),
        "{callers:?} {ids:?}: {}",
        detail.raw
    );
}
