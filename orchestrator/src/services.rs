//! The clients and stores every entry point works with, built once per Lambda process.

use crate::config::Config;
use crate::error::OrchestratorError;
use crate::metrics::{Event, Metrics};
use crate::signer::Signer;
use crate::timers::Timers;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use durable_protocol::ControlEvent;
use durable_store::invocations::{Invocation, InvocationStore, Outcome};
use durable_store::objects::Objects;
use durable_store::registry::Registry;
use durable_store::{JournalStore, PayloadStore};
use std::sync::Arc;

/// The orchestrator's settings, AWS clients and stores. Each entry-point module (`http`,
/// `control`, `driver`) adds the methods of its job to it.
pub struct Services {
    /// Settings from the environment.
    pub config: Arc<Config>,
    /// Invokes handler Lambdas and this function.
    pub lambda: aws_sdk_lambda::Client,
    /// Which version serves which service.
    pub registry: Registry,
    /// Invocation metadata.
    pub invocations: InvocationStore,
    /// Journal entries.
    pub journal: JournalStore,
    /// Durable timers (EventBridge Scheduler).
    pub timers: Timers,
    /// Large values in S3.
    pub payloads: PayloadStore,
    /// Virtual objects' locks, inboxes and state.
    pub objects: Objects,
    /// Proves the events this function sends and checks those it receives.
    pub signing: Signer,
    /// CloudWatch metrics as EMF log lines.
    pub metrics: Metrics,
}

impl Services {
    /// Builds the services from the settings and AWS clients.
    pub fn new(
        config: Config,
        dynamo: aws_sdk_dynamodb::Client,
        lambda: aws_sdk_lambda::Client,
        scheduler: aws_sdk_scheduler::Client,
        s3: aws_sdk_s3::Client,
        signing: Signer,
    ) -> Self {
        let config = Arc::new(config);
        let table = config.table.clone();
        Self {
            registry: Registry::new(dynamo.clone(), table.clone(), config.registry_cache),
            invocations: InvocationStore::new(dynamo.clone(), table.clone()),
            journal: JournalStore::new(dynamo.clone(), table.clone()),
            payloads: PayloadStore::new(s3, config.bucket.clone(), config.limits),
            objects: Objects::new(dynamo, table),
            timers: Timers {
                client: scheduler,
                config: config.clone(),
                signing: signing.clone(),
            },
            signing,
            config,
            lambda,
            metrics: Metrics::from_env(),
        }
    }

    /// How long `inv` is kept once finished: its service's retention when it started, else
    /// the orchestrator's default.
    pub(crate) fn retention(&self, inv: &Invocation) -> std::time::Duration {
        inv.retention.unwrap_or(self.config.retention)
    }

    /// Reports a new invocation (a metric line).
    pub(crate) fn started(&self, inv: &Invocation) {
        self.metrics.emit(Event::Started(inv));
    }

    /// Reports a finished invocation with its duration (a metric line).
    pub(crate) fn finished(&self, inv: &Invocation, outcome: &Outcome) {
        let status = match outcome {
            Outcome::Completed(_) => durable_protocol::Status::Completed,
            Outcome::Failed(f) => durable_protocol::Status::of_failure(f),
        };
        self.metrics.emit(Event::Finished {
            inv,
            status,
            duration_ms: durable_protocol::clock::now_millis().saturating_sub(inv.times.created_at),
        });
    }

    /// Sends this function an event asynchronously (a fresh call handles it).
    pub async fn send_event(&self, event: &ControlEvent) -> Result<(), OrchestratorError> {
        let function = self.config.self_function.as_deref().ok_or_else(|| {
            OrchestratorError::Protocol(
                "AWS_LAMBDA_FUNCTION_NAME is not set: cannot dispatch work".into(),
            )
        })?;
        let payload =
            serde_json::to_vec(event).map_err(|e| OrchestratorError::Protocol(e.to_string()))?;
        self.lambda
            .invoke()
            .function_name(function)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(|e| OrchestratorError::Lambda {
                operation: "Invoke",
                message: aws_sdk_lambda::error::DisplayErrorContext(&e).to_string(),
            })?;
        Ok(())
    }
}
