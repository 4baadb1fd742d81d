//! End-to-end tests of concurrency inside a handler against the local AWS environment: a map
//! over scopes with a concurrency limit, suspensions inside items and a crash in the middle,
//! and nested parallels. Run through `scripts/test.sh`.

use durable_local::harness::{run_id, Env};
use durable_local::inspect::lambda_invocations;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn a_map_of_100_items_ten_at_a_time_survives_suspensions_and_a_crash() {
    let env = Env::load().await;
    let run = run_id();
    let input = json!({
        "run": run, "items": 100, "max_concurrency": 10, "sleep_ms": 3000, "crash_at": 50,
    });
    let id = env.send("testbed", "map_items", input).await;
    let answer = env.output(&id, Duration::from_secs(240)).await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert_eq!(answer.body["reason"], "all_completed", "{}", answer.raw);
    let items = answer.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 100);
    let mut failed = 0;
    for (i, item) in items.iter().enumerate() {
        // The recorded run of each step is its last one: no step ran again once recorded
        // (a step whose first run was lost in the crash may have run twice, and then its
        // second run is the recorded one).
        let effects = env.effects(&run, &format!("item-{i}")).await;
        assert!((1..=2).contains(&effects), "item {i} ran {effects} times");
        if i % 7 == 5 {
            failed += 1;
            assert_eq!(item["status"], "failed", "item {i}: {item}");
            assert_eq!(item["code"], 422, "item {i}: {item}");
            assert_eq!(
                item["message"],
                format!("item {i} ran {effects}"),
                "item {i}"
            );
        } else {
            assert_eq!(item["status"], "succeeded", "item {i}: {item}");
            assert_eq!(item["value"], effects, "item {i}: {item}");
        }
    }
    assert_eq!(failed, 14);
    let calls = lambda_invocations(&env.function("testbed"), &id).unwrap();
    assert!(
        calls
            .iter()
            .any(|c| c.error_type.as_deref() == Some("Runtime.ExitError")),
        "the crash: {calls:?}"
    );
    // Ten items sleep 3 s, at most ten run at once: the invocation suspended and resumed.
    assert!(calls.len() >= 3, "{calls:?}");
}

#[tokio::test]
async fn parallels_nest_and_resume_inside_an_inner_branch() {
    let env = Env::load().await;
    let run = run_id();
    let id = env
        .send("testbed", "nested_parallel", json!({"run": run}))
        .await;
    let answer = env.output(&id, Duration::from_secs(60)).await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert_eq!(answer.body, json!([["a"], ["b", "c"]]));
    for step in ["a", "b", "c"] {
        assert_eq!(env.effects(&run, step).await, 1, "{step}");
    }
    let calls = lambda_invocations(&env.function("testbed"), &id).unwrap();
    assert_eq!(
        calls.len(),
        2,
        "suspended once in the inner branch: {calls:?}"
    );
}
