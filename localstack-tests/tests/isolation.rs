//! Isolation against the local environment, tried as an attacker with a handler's permissions
//! would: events sent straight to the orchestrator (which every handler role may invoke) are
//! refused unless they come through their door with a proof for their invocation, guessed
//! awakeable ids are refused, path segments are decoded once, and nothing refused is written.
//! IAM itself is not enforced by LocalStack: the CDK tests evaluate the policies offline.

use aws_sdk_lambda::primitives::Blob;
use durable_local::harness::{run_id, Env};
use durable_local::inspect;
use durable_protocol::auth::{Purpose, SigningKey, Tag};
use durable_protocol::{
    AwakeableId, ControlEvent, EntryKind, HandlerName, IdempotencyKey, InvocationId, JournalEntry,
    ServiceName, Target,
};
use durable_store::keys;
use durable_store::JournalStore;
use serde_json::json;
use std::time::Duration;

/// Invokes the orchestrator through `qualifier` (`None`: the unqualified function) with
/// `event`; the function error (if any) and the answer.
async fn invoke_orchestrator(
    env: &Env,
    qualifier: Option<&str>,
    event: &serde_json::Value,
) -> (Option<String>, String) {
    let name = &env.deployment.orchestrator_function;
    let function = match qualifier {
        Some(q) => format!("{name}:{q}"),
        None => name.clone(),
    };
    let out = env
        .clients
        .lambda
        .invoke()
        .function_name(function)
        .payload(Blob::new(serde_json::to_vec(event).unwrap()))
        .send()
        .await
        .expect("invoke");
    let body = out.payload.map(Blob::into_inner).unwrap_or_default();
    (
        out.function_error,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

async fn signing_key(env: &Env) -> SigningKey {
    durable_store::signing::load_or_create(&env.clients.dynamo, &env.deployment.table)
        .await
        .unwrap()
}

async fn registered_at(env: &Env, service: &str) -> String {
    let item = env
        .clients
        .dynamo
        .get_item()
        .table_name(&env.deployment.table)
        .set_key(Some(keys::service_key_item(
            &ServiceName::new(service).unwrap(),
        )))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("registered");
    format!("{:?}", item.get("registered_at"))
}

#[tokio::test]
async fn a_register_outside_the_admin_door_is_refused_and_writes_nothing() {
    let env = Env::load().await;
    let before = registered_at(&env, "testbed").await;
    let event = serde_json::to_value(ControlEvent::Register {
        function_arn: env.deployment.services["testbed"].clone(),
        services: None,
        retention_secs: None,
    })
    .unwrap();
    for door in [None, Some("url")] {
        let (error, body) = invoke_orchestrator(&env, door, &event).await;
        assert!(error.is_some(), "{door:?}: {body}");
        assert!(body.contains("refused"), "{door:?}: {body}");
    }
    assert_eq!(
        registered_at(&env, "testbed").await,
        before,
        "the registry is untouched"
    );

    // Through the admin door, a Lambda that serves more than it was granted is refused too.
    let limited = serde_json::to_value(ControlEvent::Register {
        function_arn: env.deployment.services["testbed"].clone(),
        services: Some(vec![ServiceName::new("testbed").unwrap()]),
        retention_secs: None,
    })
    .unwrap();
    let (error, body) = invoke_orchestrator(&env, Some("admin"), &limited).await;
    assert!(
        error.is_some() && body.contains("may serve only testbed"),
        "{body}"
    );
    assert_eq!(registered_at(&env, "testbed").await, before);
}

#[tokio::test]
async fn an_http_request_that_did_not_come_through_the_function_url_is_refused() {
    let env = Env::load().await;
    let key = run_id();
    let request = json!({
        "version": "2.0",
        "rawPath": "/testbed/steps",
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "idempotency-key": key},
        "body": json!({"run": key, "steps": 1}).to_string(),
        "isBase64Encoded": false,
        "requestContext": {"http": {"method": "POST", "path": "/testbed/steps"}}
    });
    let (error, body) = invoke_orchestrator(&env, None, &request).await;
    assert!(error.is_some(), "{body}");
    assert!(body.contains("only through the Function URL"), "{body}");
    let id = InvocationId::for_idempotency_key(
        &ServiceName::new("testbed").unwrap(),
        &HandlerName::new("steps").unwrap(),
        &IdempotencyKey::new(key).unwrap(),
    );
    let stored = inspect::invocation(&env.clients, &env.deployment.table, id.as_str())
        .await
        .unwrap();
    assert!(
        stored.meta.is_none() && stored.item_count == 0,
        "nothing was written"
    );
    // And the URL's door serves nothing but HTTP.
    let (error, body) = invoke_orchestrator(&env, Some("url"), &json!({"type": "sweep"})).await;
    assert!(error.is_some() && body.contains("refused"), "{body}");
}

#[tokio::test]
async fn a_dispatch_for_another_services_invocation_is_refused_and_writes_nothing() {
    let env = Env::load().await;
    let testbed = ServiceName::new("testbed").unwrap();
    // The victim: an invocation of `testbed` whose call entry waits for its dispatch.
    let victim = InvocationId::random(&testbed);
    let target = Target {
        service: testbed.clone(),
        key: None,
        handler: HandlerName::new("steps").unwrap(),
    };
    let child = InvocationId::child(&victim, 0, &testbed);
    let call = JournalEntry::new(
        0,
        EntryKind::Call {
            target,
            input: json!({"run": run_id(), "steps": 1}),
            child: child.clone(),
            idempotency_key: None,
            attach: false,
        },
    );
    JournalStore::new(env.clients.dynamo.clone(), &env.deployment.table)
        .append(&victim, &call, 1)
        .await
        .unwrap();
    let signing = signing_key(&env).await;
    // What a handler of another service can make: a proof under its own service's key.
    let attacker = signing.service_key(&ServiceName::new("counter").unwrap());
    let forged = [
        ControlEvent::dispatch(victim.clone(), 0, &attacker.invocation_key(&victim)),
        ControlEvent::Dispatch {
            invocation_id: victim.clone(),
            entry: 0,
            proof: Tag::parse(&"0".repeat(32)).unwrap(),
        },
        // A proof of another purpose does not do either.
        ControlEvent::Dispatch {
            invocation_id: victim.clone(),
            entry: 0,
            proof: signing.invocation_key(&victim).tag(Purpose::Resume, 0),
        },
    ];
    for event in &forged {
        let (error, body) =
            invoke_orchestrator(&env, None, &serde_json::to_value(event).unwrap()).await;
        assert!(
            error.is_some() && body.contains("proof does not hold"),
            "{body}"
        );
    }
    let stored = inspect::invocation(&env.clients, &env.deployment.table, child.as_str())
        .await
        .unwrap();
    assert_eq!(stored.item_count, 0, "no child was created");
    let entry = inspect::invocation(&env.clients, &env.deployment.table, victim.as_str())
        .await
        .unwrap()
        .journal;
    assert!(!entry[0].dispatched, "the entry is not marked dispatched");

    // The victim's own proof does it: the refusal above was the proof's, nothing else.
    let own = ControlEvent::dispatch(victim.clone(), 0, &signing.invocation_key(&victim));
    let (error, body) = invoke_orchestrator(&env, None, &serde_json::to_value(&own).unwrap()).await;
    assert!(error.is_none(), "{body}");
    let stored = inspect::invocation(&env.clients, &env.deployment.table, child.as_str())
        .await
        .unwrap();
    assert!(
        stored.meta.is_some(),
        "the proven dispatch created the child"
    );
}

#[tokio::test]
async fn a_guessed_awakeable_id_is_refused_and_writes_nothing() {
    let env = Env::load().await;
    let run = run_id();
    let id = env
        .send(
            "testbed",
            "approval",
            json!({"run": run, "timeout_ms": 60_000}),
        )
        .await;
    let real = env.published(&run, "awakeable").await;
    let parsed = AwakeableId::parse(&real).expect("an awakeable id");
    let invocation = InvocationId::parse(&id).unwrap();
    assert_eq!(parsed.invocation, invocation);
    let guesses = [
        // The right invocation and entry, any tag.
        AwakeableId {
            tag: Tag::parse(&"ab".repeat(16)).unwrap(),
            ..parsed.clone()
        }
        .to_string(),
        // A tag made with another service's key.
        AwakeableId {
            tag: signing_key(&env)
                .await
                .service_key(&ServiceName::new("counter").unwrap())
                .invocation_key(&invocation)
                .tag(Purpose::Awakeable, parsed.index),
            ..parsed.clone()
        }
        .to_string(),
        // The id as it used to be made from public facts.
        format!("awk_{}_{}", invocation.local(), parsed.index),
    ];
    for guess in &guesses {
        let answer = env
            .complete_awakeable(
                guess,
                "resolve",
                r#"{"decided_by":"mallory","status":"paid"}"#,
            )
            .await;
        assert_eq!(
            (answer.status, answer.body["code"].as_str()),
            (404, Some("unknown_awakeable")),
            "{guess}: {}",
            answer.raw
        );
    }
    let stored = inspect::invocation(&env.clients, &env.deployment.table, &id)
        .await
        .unwrap();
    let entry = stored
        .journal
        .iter()
        .find(|e| e.index == parsed.index)
        .unwrap();
    assert!(entry.completion.is_none(), "nothing was written: {entry:?}");
    let answer = env
        .complete_awakeable(&real, "resolve", r#"{"by":"ada"}"#)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    let output = env.output(&id, Duration::from_secs(30)).await;
    assert_eq!(
        output.body,
        json!({"approved": {"by": "ada"}}),
        "{}",
        output.raw
    );
}

#[tokio::test]
async fn a_promise_of_a_workflow_never_submitted_is_404_and_writes_nothing() {
    let env = Env::load().await;
    let key = run_id();
    let answer = env
        .client
        .request(
            reqwest::Method::POST,
            &format!("/onboarding/{key}/promises/confirmed/resolve"),
            Some("true"),
            &[("content-type", "application/json")],
        )
        .await
        .unwrap();
    assert_eq!(
        (answer.status, answer.body["code"].as_str()),
        (404, Some("unknown_workflow")),
        "{}",
        answer.raw
    );
    let items = inspect::query_all(
        &env.clients,
        &env.deployment.table,
        &format!("obj#onboarding#{key}"),
    )
    .await
    .unwrap();
    assert!(items.is_empty(), "{items:?}");
}

#[tokio::test]
async fn path_segments_are_decoded_exactly_once() {
    let env = Env::load().await;
    let get = |path: String| {
        let client = env.client.clone();
        async move {
            client
                .request(reqwest::Method::GET, &path, None, &[])
                .await
                .unwrap()
        }
    };
    // `%2541` is `%41` once decoded: not a valid key (it was `A` when decoded twice).
    let answer = get("/onboarding/a%2541/output".into()).await;
    assert_eq!(
        (answer.status, answer.body["code"].as_str()),
        (400, Some("invalid_key")),
        "{}",
        answer.raw
    );
    for bad in ["%c3%28", "%ff%28", "%zz"] {
        let answer = get(format!("/onboarding/{bad}/output")).await;
        assert_eq!(
            (answer.status, answer.body["code"].as_str()),
            (400, Some("invalid_path")),
            "{bad}: {}",
            answer.raw
        );
    }
    // An escaped key is decoded (once) to itself.
    let answer = get("/onboarding/ada%40example.com/output".into()).await;
    assert_eq!(
        (answer.status, answer.body["code"].as_str()),
        (404, Some("unknown_workflow")),
        "{}",
        answer.raw
    );
}
