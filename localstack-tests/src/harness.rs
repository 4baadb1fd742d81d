//! What the end-to-end tests share: the deployed environment, and helpers to call it and look
//! inside it.

use crate::client::{Answer, OrchestratorClient};
use crate::deploy::clients::Clients;
use crate::deploy::Deployment;
use crate::inspect;
use aws_sdk_dynamodb::types::AttributeValue;
use durable_store::Item;
use std::time::{Duration, Instant};

/// The local deployment the tests run against.
pub struct Env {
    pub clients: Clients,
    pub deployment: Deployment,
    pub client: OrchestratorClient,
}

/// A fresh id that keeps one test's items and side effects apart from the others'.
pub fn run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl Env {
    /// The recorded local deployment (`scripts/test.sh` deploys before the tests).
    pub async fn load() -> Env {
        let deployment = Deployment::load(&Deployment::default_path())
            .expect("no local deployment: run the tests through scripts/test.sh");
        let client = OrchestratorClient::new(&deployment.orchestrator_url).expect("client");
        Env {
            clients: Clients::local().await,
            deployment,
            client,
        }
    }

    /// A deployment other than the recorded one (e.g. one a test made for itself).
    pub async fn for_deployment(deployment: Deployment) -> Env {
        let client = OrchestratorClient::new(&deployment.orchestrator_url).expect("client");
        Env {
            clients: Clients::local().await,
            deployment,
            client,
        }
    }

    /// The full name of a deployed function (`testbed`, `checkout`, ...).
    pub fn function(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.deployment.prefix)
    }

    /// `POST /testbed/{handler}`.
    pub async fn invoke_testbed(&self, handler: &str, input: serde_json::Value) -> Answer {
        self.client
            .invoke("testbed", handler, &input, None)
            .await
            .expect("request")
    }

    /// `POST /{service}/{handler}/send`, expecting `202 accepted`: the invocation id.
    pub async fn send(&self, service: &str, handler: &str, input: serde_json::Value) -> String {
        let answer = self
            .client
            .request(
                reqwest::Method::POST,
                &format!("/{service}/{handler}/send"),
                Some(&input.to_string()),
                &[("content-type", "application/json")],
            )
            .await
            .expect("request");
        assert_eq!(answer.status, 202, "{}", answer.raw);
        assert_eq!(answer.body["status"], "accepted");
        answer.invocation_id.expect("x-invocation-id")
    }

    /// `POST /{service}/{key}/{handler}/send`, expecting `202 accepted`: the invocation id.
    pub async fn send_keyed(
        &self,
        service: &str,
        key: &str,
        handler: &str,
        input: serde_json::Value,
    ) -> String {
        self.send(service, &format!("{key}/{handler}"), input).await
    }

    /// Polls `GET /invocations/{id}/output` until it is neither 409 (running) nor 404 (not
    /// created yet), for at most `within`.
    pub async fn output(&self, id: &str, within: Duration) -> Answer {
        let started = Instant::now();
        loop {
            let answer = self.client.output(id).await.expect("request");
            if answer.status != 409 && answer.status != 404 {
                return answer;
            }
            assert!(
                started.elapsed() < within,
                "{id} not finished after {within:?}: {}",
                answer.raw
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// How often the test Lambda's step `step` ran its side effect in test run `run`.
    pub async fn effects(&self, run: &str, step: &str) -> u64 {
        inspect::effect_count(&self.clients, &self.deployment.table, run, step)
            .await
            .expect("effect count")
    }

    /// An invocation's metadata item.
    pub async fn meta(&self, id: &str) -> Item {
        inspect::invocation(&self.clients, &self.deployment.table, id)
            .await
            .expect("read")
            .meta
            .expect("meta item")
    }

    /// The value the test Lambda published under `test#<run>` / `<sk>`, once it is there.
    pub async fn published(&self, run: &str, sk: &str) -> String {
        for _ in 0..200 {
            let out = self
                .clients
                .dynamo
                .get_item()
                .table_name(&self.deployment.table)
                .key("pk", AttributeValue::S(format!("test#{run}")))
                .key("sk", AttributeValue::S(sk.to_owned()))
                .consistent_read(true)
                .send()
                .await
                .expect("read");
            if let Some(v) = out
                .item
                .and_then(|i| i.get("value").and_then(|v| v.as_s().ok().cloned()))
            {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nothing published under test#{run}/{sk}");
    }

    /// Sends the orchestrator a `sweep` (its schedule does every minute on AWS) and returns
    /// its answer (`redriven`, and what each part did: `minutes`, `leases`).
    pub async fn sweep(&self) -> serde_json::Value {
        crate::deploy::sweep(&self.clients, &self.deployment.orchestrator_function)
            .await
            .expect("the sweep answers")
    }

    /// A `sweep` of the dated invocations made in the minutes `from..=to`.
    pub async fn sweep_minutes(&self, from: u32, to: u32) -> serde_json::Value {
        crate::deploy::sweep_minutes(
            &self.clients,
            &self.deployment.orchestrator_function,
            from,
            to,
        )
        .await
        .expect("the sweep answers")
    }

    /// `POST /awakeables/{id}/{action}` with a JSON body.
    pub async fn complete_awakeable(&self, id: &str, action: &str, body: &str) -> Answer {
        self.client
            .request(
                reqwest::Method::POST,
                &format!("/awakeables/{id}/{action}"),
                Some(body),
                &[("content-type", "application/json")],
            )
            .await
            .expect("request")
    }

    /// `POST /invocations/{id}/{action}` with an optional JSON body.
    pub async fn manage(&self, id: &str, action: &str, body: Option<&str>) -> Answer {
        self.client
            .request(
                reqwest::Method::POST,
                &format!("/invocations/{id}/{action}"),
                body,
                &[("content-type", "application/json")],
            )
            .await
            .expect("request")
    }

    /// An invocation's stored status.
    pub async fn status(&self, id: &str) -> String {
        let meta = self.meta(id).await;
        meta.get("status")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until invocation `id` has status `status`, for at most `within`.
    pub async fn wait_status(&self, id: &str, status: &str, within: Duration) {
        let started = Instant::now();
        loop {
            let now = inspect::invocation(&self.clients, &self.deployment.table, id)
                .await
                .ok()
                .and_then(|s| s.meta)
                .and_then(|m| m.get("status").and_then(|v| v.as_s().ok()).cloned());
            if now.as_deref() == Some(status) {
                return;
            }
            assert!(
                started.elapsed() < within,
                "{id} is {now:?}, not {status}, after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Publishes `value` under `test#<run>` / `<sk>`, as the test Lambda's `publish` does (a
    /// flag a handler checks).
    pub async fn publish(&self, run: &str, sk: &str, value: &str) {
        self.clients
            .dynamo
            .put_item()
            .table_name(&self.deployment.table)
            .item("pk", AttributeValue::S(format!("test#{run}")))
            .item("sk", AttributeValue::S(sk.to_owned()))
            .item("value", AttributeValue::S(value.to_owned()))
            .send()
            .await
            .expect("write");
    }
}
