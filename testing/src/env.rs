//! [`TestEnv`]: integration tests of handlers deployed into the local AWS environment
//! (LocalStack with DynamoDB Local, real Lambda processes): deploy, call through the
//! orchestrator's Function URL, complete awakeables and promises, act on invocations, read
//! them back, and fire pending timers now.

use durable_local::client::{Answer, OrchestratorClient};
use durable_local::deploy::clients::Clients;
use durable_local::deploy::handler::{deploy_handler, DeployedHandler, HandlerSource, OwnHandler};
use durable_local::deploy::{repo_root, Deployment};
use durable_protocol::views::InvocationDetail;
use durable_protocol::InvocationId;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What went wrong talking to the local environment.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// No local environment or deployment to use, and what to run.
    #[error("{0}")]
    NotRunning(String),
    /// The orchestrator answered with an error status (its JSON body as text).
    #[error("HTTP {status}: {body}")]
    Http { status: u16, body: String },
    /// The answer is not what the types say.
    #[error("{0}")]
    Types(String),
    /// The local tooling failed (deploy, AWS calls).
    #[error(transparent)]
    Tool(#[from] durable_local::ToolError),
}

/// The local environment as a test sees it: a deployed engine and a client for its ingress.
pub struct TestEnv {
    clients: Clients,
    deployment_path: PathBuf,
    deployment: Deployment,
    client: OrchestratorClient,
}

impl TestEnv {
    /// The running local environment's recorded deployment (`DURABLE_DEPLOYMENT`, else
    /// `$LOCAL_AWS_DIR/deployment.json`, else the checkout's `.local-aws/deployment.json`).
    pub async fn load() -> Result<Self, EnvError> {
        let path = std::env::var_os("DURABLE_DEPLOYMENT")
            .map_or_else(Deployment::default_path, PathBuf::from);
        let deployment =
            Deployment::load(&path).map_err(|e| EnvError::NotRunning(e.to_string()))?;
        let client = OrchestratorClient::new(&deployment.orchestrator_url)?;
        Ok(Self {
            clients: Clients::local().await,
            deployment_path: path,
            deployment,
            client,
        })
    }

    /// [`TestEnv::load`], first starting the local environment and deploying the engine with
    /// the checkout's scripts (`scripts/local-aws.sh up`, `scripts/deploy-local.sh`) if
    /// nothing runs yet.
    pub async fn start() -> Result<Self, EnvError> {
        let root = repo_root();
        let up = std::process::Command::new(root.join("scripts/local-aws.sh"))
            .arg("status")
            .output()
            .is_ok_and(|o| o.status.success());
        if !up {
            run_script(&root, "scripts/local-aws.sh", &["up"])?;
        }
        if Self::load().await.is_err() {
            run_script(&root, "scripts/deploy-local.sh", &[])?;
        }
        Self::load().await
    }

    /// Deploys (or redeploys, as a new version) the handler Lambda at `path` (a crate folder,
    /// built here, or a built binary) as `<prefix>-<name>`, with `env` in its environment,
    /// and registers it.
    pub async fn deploy(
        &mut self,
        name: &str,
        path: &Path,
        env: &[(&str, &str)],
    ) -> Result<DeployedHandler, EnvError> {
        let handler = OwnHandler {
            name: name.to_owned(),
            source: HandlerSource::from_path(path, None),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            timeout_secs: 30,
            retention_secs: None,
        };
        let deployed = deploy_handler(&self.clients, &self.deployment_path, &handler).await?;
        self.deployment = Deployment::load(&self.deployment_path)?;
        Ok(deployed)
    }

    /// The orchestrator's Function URL (reached through the local gateway: the host name
    /// needs no DNS).
    pub fn url(&self) -> &str {
        &self.deployment.orchestrator_url
    }

    /// Calls `service/handler` with `input` and waits for its output.
    pub async fn invoke<I: Serialize + ?Sized, O: DeserializeOwned>(
        &self,
        service: &str,
        handler: &str,
        input: &I,
    ) -> Result<O, EnvError> {
        self.post(&format!("/{service}/{handler}"), input).await
    }

    /// Calls the keyed handler `service/key/handler` and waits for its output.
    pub async fn invoke_keyed<I: Serialize + ?Sized, O: DeserializeOwned>(
        &self,
        service: &str,
        key: &str,
        handler: &str,
        input: &I,
    ) -> Result<O, EnvError> {
        self.post(&format!("/{service}/{key}/{handler}"), input)
            .await
    }

    /// Starts `service/handler` without waiting; its invocation id.
    pub async fn send<I: Serialize + ?Sized>(
        &self,
        service: &str,
        handler: &str,
        input: &I,
    ) -> Result<InvocationId, EnvError> {
        let body = serde_json::to_string(input).map_err(|e| EnvError::Types(e.to_string()))?;
        let answer = self
            .client
            .post_json(&format!("/{service}/{handler}/send"), &body, &[])
            .await?;
        let id = answer.invocation_id.clone();
        let _: serde_json::Value = decode(answer)?;
        id.and_then(|id| InvocationId::parse(&id).ok())
            .ok_or_else(|| EnvError::Types("the answer has no x-invocation-id".into()))
    }

    /// Starts the keyed handler `service/key/handler` without waiting; its invocation id.
    pub async fn send_keyed<I: Serialize + ?Sized>(
        &self,
        service: &str,
        key: &str,
        handler: &str,
        input: &I,
    ) -> Result<InvocationId, EnvError> {
        self.send(service, &format!("{key}/{handler}"), input).await
    }

    /// Waits for invocation `id`'s output (`GET /invocations/{id}/attach`).
    pub async fn attach<O: DeserializeOwned>(&self, id: &InvocationId) -> Result<O, EnvError> {
        decode(
            self.client
                .get(&format!("/invocations/{id}/attach"))
                .await?,
        )
    }

    /// Resolves awakeable `awakeable_id` with `value`.
    pub async fn resolve_awakeable<T: Serialize + ?Sized>(
        &self,
        awakeable_id: &str,
        value: &T,
    ) -> Result<(), EnvError> {
        self.post::<_, serde_json::Value>(&format!("/awakeables/{awakeable_id}/resolve"), value)
            .await
            .map(drop)
    }

    /// Rejects awakeable `awakeable_id`: its waiter fails with `code` and `message`.
    pub async fn reject_awakeable(
        &self,
        awakeable_id: &str,
        code: u16,
        message: &str,
    ) -> Result<(), EnvError> {
        let body = serde_json::json!({"code": code, "message": message});
        self.post::<_, serde_json::Value>(&format!("/awakeables/{awakeable_id}/reject"), &body)
            .await
            .map(drop)
    }

    /// Resolves durable promise `name` of workflow `workflow`'s run on `key`.
    pub async fn resolve_promise<T: Serialize + ?Sized>(
        &self,
        workflow: &str,
        key: &str,
        name: &str,
        value: &T,
    ) -> Result<(), EnvError> {
        self.post::<_, serde_json::Value>(
            &format!("/{workflow}/{key}/promises/{name}/resolve"),
            value,
        )
        .await
        .map(drop)
    }

    /// Invocation `id`'s metadata and timeline (`GET /invocations/{id}`).
    pub async fn describe(&self, id: &InvocationId) -> Result<InvocationDetail, EnvError> {
        decode(self.client.get(&format!("/invocations/{id}")).await?)
    }

    /// The ids of the awakeables invocation `id` created, in journal order.
    pub async fn awakeables(&self, id: &InvocationId) -> Result<Vec<String>, EnvError> {
        Ok(self
            .describe(id)
            .await?
            .timeline
            .into_iter()
            .filter_map(|row| row.awakeable_id)
            .collect())
    }

    /// Waits up to `within` until invocation `id` has status `status` (`suspended`,
    /// `completed`, ...); its detail then.
    pub async fn wait_for_status(
        &self,
        id: &InvocationId,
        status: &str,
        within: Duration,
    ) -> Result<InvocationDetail, EnvError> {
        let started = std::time::Instant::now();
        loop {
            let detail = self.describe(id).await;
            match detail {
                Ok(d) if d.summary.status == status => return Ok(d),
                Ok(d) if started.elapsed() > within => {
                    return Err(EnvError::Types(format!(
                        "{id} is {} after {within:?}, not {status}",
                        d.summary.status
                    )))
                }
                Err(e) if started.elapsed() > within => return Err(e),
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// `POST /invocations/{id}/{action}` (`cancel`, `kill`, `pause`, `resume`, `retry`,
    /// `restart`) with an optional JSON body; the orchestrator's answer.
    pub async fn control(
        &self,
        id: &InvocationId,
        action: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, EnvError> {
        let body = body.cloned().unwrap_or_else(|| serde_json::json!({}));
        self.post(&format!("/invocations/{id}/{action}"), &body)
            .await
    }

    /// Fires every pending durable timer of the deployment now (of invocation `only`, if
    /// given) through the orchestrator's real wake path, so a 3-day timeout takes no time;
    /// how many fired.
    pub async fn fire_due_timers(&self, only: Option<&InvocationId>) -> Result<usize, EnvError> {
        Ok(
            durable_local::timers::fire_timers_now(&self.clients, &self.deployment, only)
                .await?
                .len(),
        )
    }

    async fn post<I: Serialize + ?Sized, O: DeserializeOwned>(
        &self,
        path: &str,
        input: &I,
    ) -> Result<O, EnvError> {
        let body = serde_json::to_string(input).map_err(|e| EnvError::Types(e.to_string()))?;
        decode(self.client.post_json(path, &body, &[]).await?)
    }
}

/// A 2xx answer's JSON body as `O`, else the error.
fn decode<O: DeserializeOwned>(answer: Answer) -> Result<O, EnvError> {
    if !(200..300).contains(&answer.status) {
        return Err(EnvError::Http {
            status: answer.status,
            body: answer.raw,
        });
    }
    let body = if answer.raw.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&answer.raw).map_err(|e| EnvError::Types(e.to_string()))?
    };
    serde_json::from_value(body).map_err(|e| EnvError::Types(format!("{e}: {}", answer.raw)))
}

fn run_script(root: &Path, script: &str, args: &[&str]) -> Result<(), EnvError> {
    let status = std::process::Command::new(root.join(script))
        .args(args)
        .current_dir(root)
        .status()
        .map_err(|e| EnvError::NotRunning(format!("could not run {script}: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(EnvError::NotRunning(format!(
            "{script} {args:?} failed ({status})"
        )))
    }
}
