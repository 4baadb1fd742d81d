//! End-to-end tests of large values against the local AWS environment: inputs, step results and
//! outputs over the offload threshold go through S3 and come back byte for byte, items stay
//! small, the maximum is enforced, and replay reads an S3-referenced step instead of re-running
//! it. Run through `scripts/test.sh` (the local deploy sets a 12 MiB maximum).

use durable_local::harness::{run_id, Env};
use durable_local::inspect::{self, effect_count, lambda_invocations};
use serde_json::json;

/// The same generator as the test Lambda's.
fn content(seed: &str, size: usize) -> String {
    let mut state = seed.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (0..size)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            char::from(b'a' + ((state >> 33) % 26) as u8)
        })
        .collect()
}

fn fnv(text: &str) -> String {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// The size of every attribute of every item of an invocation (DynamoDB's limit is 400 KB).
async fn largest_item_bytes(env: &Env, id: &str) -> usize {
    let items = inspect::items(&env.clients, &env.deployment.table, id)
        .await
        .unwrap();
    items
        .iter()
        .map(|item| {
            item.iter()
                .map(|(k, v)| k.len() + format!("{v:?}").len())
                .sum::<usize>()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test]
async fn a_one_megabyte_input_round_trips_byte_for_byte() {
    let env = Env::load().await;
    let text = content(&run_id(), 1_000_000);
    let answer = env
        .client
        .invoke("testbed", "echo", &json!(text), None)
        .await
        .unwrap();
    assert_eq!(
        answer.status,
        200,
        "{}",
        &answer.raw[..answer.raw.len().min(300)]
    );
    assert_eq!(answer.body, json!(text));
    let id = answer.invocation_id.unwrap();
    let meta = inspect::invocation(&env.clients, &env.deployment.table, &id)
        .await
        .unwrap()
        .meta
        .unwrap();
    let stored_input = meta["input"].as_s().unwrap();
    assert!(
        stored_input.contains("$durable_payload") && stored_input.len() < 1000,
        "{stored_input}"
    );
    assert!(largest_item_bytes(&env, &id).await < 10_000);
}

#[tokio::test]
async fn a_five_megabyte_step_result_is_kept_in_s3_and_replayed_without_rerunning_the_step() {
    let env = Env::load().await;
    let run = run_id();
    let size = 5 * 1024 * 1024;
    let answer = env
        .client
        .invoke(
            "testbed",
            "big_step",
            &json!({"run": run, "size": size, "crash": true}),
            None,
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert_eq!(
        answer.body,
        json!({"len": size, "fnv": fnv(&content(&run, size))})
    );
    // The crash after the step forced a replay, which read the result from S3.
    assert_eq!(
        effect_count(&env.clients, &env.deployment.table, &run, "big")
            .await
            .unwrap(),
        1
    );
    let id = answer.invocation_id.unwrap();
    let calls = lambda_invocations(&format!("{}-testbed", env.deployment.prefix), &id).unwrap();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0].error_type.as_deref(), Some("Runtime.ExitError"));
    // Finished: its payloads are deleted from S3.
    let listed = env
        .clients
        .s3
        .list_objects_v2()
        .bucket(&env.deployment.bucket)
        .prefix(format!("payloads/{id}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(0), "{:?}", listed.contents());
}

#[tokio::test]
async fn the_journal_keeps_a_small_reference_and_expires_with_the_invocation() {
    let env = Env::load().await;
    let run = run_id();
    let answer = env
        .client
        .request(
            reqwest::Method::POST,
            "/testbed/big_step/send",
            Some(&json!({"run": run, "size": 300_000, "hold": true}).to_string()),
            &[("content-type", "application/json")],
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 202, "{}", answer.raw);
    let id = answer.invocation_id.unwrap();
    // It holds on an awakeable after the big step: look at its journal meanwhile.
    let mut awakeable = None;
    for _ in 0..200 {
        let stored = inspect::invocation(&env.clients, &env.deployment.table, &id)
            .await
            .unwrap();
        if let Some(e) = stored
            .journal
            .iter()
            .find(|e| matches!(e.kind, durable_protocol::EntryKind::Awakeable { .. }))
        {
            let invocation = durable_protocol::InvocationId::parse(&id).unwrap();
            awakeable = Some(
                inspect::awakeable_id(&env.clients, &env.deployment.table, &invocation, e.index)
                    .await
                    .unwrap(),
            );
            let durable_protocol::EntryKind::Run { result, .. } = &stored.journal[0].kind else {
                panic!("a step first")
            };
            assert!(
                matches!(result, durable_protocol::StepResult::Value(v) if v.get("$durable_payload").is_some()),
                "{result:?}"
            );
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let awakeable = awakeable.expect("the handler reached its awakeable");
    assert!(
        largest_item_bytes(&env, &id).await < 10_000,
        "every item stays small"
    );
    let resolved = env
        .client
        .request(
            reqwest::Method::POST,
            &format!("/awakeables/{awakeable}/resolve"),
            Some("null"),
            &[("content-type", "application/json")],
        )
        .await
        .unwrap();
    assert_eq!(resolved.status, 200, "{}", resolved.raw);
    let output = env
        .client
        .request(
            reqwest::Method::GET,
            &format!("/invocations/{id}/attach"),
            None,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(output.status, 200, "{}", output.raw);
    assert_eq!(output.body["len"], 300_000);
    // Finished: every item of it (metadata and journal) now carries the retention TTL. The
    // answer may come from another call than the driver, which sets the journal's TTL right
    // after recording the outcome: give it a moment.
    let mut ttls = Vec::new();
    for _ in 0..50 {
        let items = inspect::items(&env.clients, &env.deployment.table, &id)
            .await
            .unwrap();
        assert!(items.len() >= 3, "meta, the step, the awakeable");
        ttls = items
            .iter()
            .map(|i| i.get("expires_at").and_then(|v| v.as_n().ok()).cloned())
            .collect();
        if ttls.iter().all(Option::is_some) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ttls.iter().all(Option::is_some), "{ttls:?}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let ttl: u64 = ttls[0].as_ref().unwrap().parse().unwrap();
    assert!(
        ttl > now + 3600 && ttl <= now + 86_400 + 60,
        "about the 24 h retention: {ttl} vs {now}"
    );
}

#[tokio::test]
async fn a_ten_megabyte_output_is_answered_with_a_download_link_and_round_trips() {
    let env = Env::load().await;
    let run = run_id();
    let size = 10 * 1024 * 1024;
    // The client follows the 303 to the presigned S3 URL.
    let answer = env
        .client
        .invoke(
            "testbed",
            "big_output",
            &json!({"run": run, "size": size}),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        answer.status,
        200,
        "{}",
        &answer.raw[..answer.raw.len().min(300)]
    );
    assert_eq!(
        answer.raw.len(),
        size + 2,
        "a JSON string: the text in quotes"
    );
    assert!(
        answer.raw == format!("\"{}\"", content(&run, size)),
        "byte-for-byte"
    );
}

#[tokio::test]
async fn a_value_over_the_maximum_is_refused_with_413() {
    let env = Env::load().await;
    let run = run_id();
    let answer = env
        .client
        .invoke(
            "testbed",
            "big_step",
            &json!({"run": run, "size": 13 * 1024 * 1024}),
            None,
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 413, "{}", answer.raw);
    assert!(
        answer.body["message"]
            .as_str()
            .unwrap()
            .contains("over the limit"),
        "{}",
        answer.raw
    );
}

/// A large input of a call to another service is kept in S3 under the caller's prefix, which
/// the callee's IAM grant does not cover: the orchestrator copies it under the child's own
/// prefix before the child runs, so the callee reads only what it may.
#[tokio::test]
async fn a_large_call_input_to_another_service_is_copied_under_the_callees_prefix() {
    let env = Env::load().await;
    let key = run_id();
    let answer = env
        .invoke_testbed("call_big", json!({"key": key, "bytes": 300_000}))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert_eq!(
        answer.body,
        json!(300_011),
        "the callee read the whole input"
    );
    let parent =
        durable_protocol::InvocationId::parse(answer.invocation_id.as_deref().unwrap()).unwrap();
    let counter = durable_protocol::ServiceName::new("counter").unwrap();
    let child = durable_protocol::InvocationId::child(&parent, 0, &counter);
    let meta = env.meta(child.as_str()).await;
    let input: serde_json::Value = serde_json::from_str(meta["input"].as_s().unwrap()).unwrap();
    let reference = durable_protocol::payload::as_ref(&input).expect("the input is kept in S3");
    assert!(
        reference.key.starts_with("payloads/counter/"),
        "{} is the callee's",
        reference.key
    );
    assert!(durable_store::keys::owns_payload(&child, &reference.key));
}

#[tokio::test]
async fn a_raw_bytes_handler_takes_and_answers_application_octet_stream() {
    let env = Env::load().await;
    // Every byte value, so nothing survives by accident of an encoding.
    let input: Vec<u8> = (0..=255u8).chain([0, 255, 10, 13]).collect();
    let (status, content_type, body) = env
        .client
        .post_bytes("/testbed/reverse_bytes", input.clone())
        .await
        .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(content_type, "application/octet-stream");
    let mut expected = vec![0xff, 0x00];
    expected.extend(input.iter().rev());
    assert_eq!(body, expected);
    // A JSON body for a handler that takes raw bytes is its 400, saying what to send.
    let json = env
        .client
        .post_json("/testbed/reverse_bytes", r#"{"not": "bytes"}"#, &[])
        .await
        .unwrap();
    assert_eq!(json.status, 400, "{}", json.raw);
    assert!(
        json.raw.contains("application/octet-stream"),
        "{}",
        json.raw
    );
    // Other media types are still refused at the door.
    let other = env
        .client
        .request(
            reqwest::Method::POST,
            "/testbed/reverse_bytes",
            Some("x"),
            &[("content-type", "text/plain")],
        )
        .await
        .unwrap();
    assert_eq!(other.status, 415, "{}", other.raw);
}
