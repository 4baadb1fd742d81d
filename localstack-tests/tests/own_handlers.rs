//! `durable-local deploy --handler`: a user's own handler Lambda deployed into the local
//! environment, redeployed as a new version while an invocation of the old one waits.

use durable_local::deploy::handler::{deploy_handler, HandlerSource, OwnHandler};
use durable_local::deploy::{repo_root, Deployment};
use durable_local::harness::Env;
use durable_local::inspect;
use durable_protocol::InvocationId;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

/// The `versioned` test Lambda, tagged `tag` by its environment.
fn versioned(tag: &str) -> OwnHandler {
    OwnHandler {
        name: "versioned".to_owned(),
        source: HandlerSource::Binary(repo_root().join("target/debug/versioned")),
        env: BTreeMap::from([("VERSION_TAG".to_owned(), tag.to_owned())]),
        timeout_secs: 30,
        retention_secs: None,
    }
}

/// Resolves the awakeable (entry 1) of the suspended `versioned/greet` invocation `id`.
async fn resolve(env: &Env, id: &str, by: &str) {
    let invocation = InvocationId::parse(id).unwrap();
    let awakeable = inspect::awakeable_id(&env.clients, &env.deployment.table, &invocation, 1)
        .await
        .unwrap();
    let answer = env
        .complete_awakeable(&awakeable.to_string(), "resolve", &json!(by).to_string())
        .await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
}

#[tokio::test]
async fn a_redeploy_runs_new_invocations_on_the_new_version_and_keeps_waiting_ones_on_theirs() {
    let env = Env::load().await;
    let path = Deployment::default_path();
    let v1 = deploy_handler(&env.clients, &path, &versioned("v1"))
        .await
        .unwrap();
    let first = env.send("versioned", "greet", json!("first")).await;
    env.wait_status(&first, "suspended", Duration::from_secs(30))
        .await;

    let v2 = deploy_handler(&env.clients, &path, &versioned("v2"))
        .await
        .unwrap();
    assert_eq!(v1.alias_arn, v2.alias_arn, "one function, one alias");
    assert_ne!(
        v1.services["versioned"], v2.services["versioned"],
        "the redeploy published and registered a new version"
    );
    let recorded = Deployment::load(&path).unwrap();
    assert_eq!(recorded.services["versioned"], v2.services["versioned"]);
    assert_eq!(recorded.handlers["versioned"], v2.alias_arn);

    let second = env.send("versioned", "greet", json!("second")).await;
    env.wait_status(&second, "suspended", Duration::from_secs(30))
        .await;
    resolve(&env, &first, "ada").await;
    resolve(&env, &second, "bob").await;

    let answer = env.output(&first, Duration::from_secs(30)).await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert_eq!(
        answer.body,
        json!({"hello": "first", "started_on": "v1", "finished_on": "v1", "resolved_by": "ada"}),
        "the waiting invocation resumed on the version it started on"
    );
    let answer = env.output(&second, Duration::from_secs(30)).await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert_eq!(
        answer.body,
        json!({"hello": "second", "started_on": "v2", "finished_on": "v2", "resolved_by": "bob"})
    );
    let pinned = |id: String| {
        let env = &env;
        async move {
            env.meta(&id).await["function_arn"]
                .as_s()
                .unwrap()
                .to_owned()
        }
    };
    assert_eq!(pinned(first).await, v1.services["versioned"]);
    assert_eq!(pinned(second).await, v2.services["versioned"]);
}
