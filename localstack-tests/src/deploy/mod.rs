//! An idempotent deploy of the engine and the example services into LocalStack: the table
//! (TTL on), the payload bucket, the orchestrator (with a Function URL), the handler Lambdas
//! (a published version behind the alias `live`) and their registration with the orchestrator.

pub mod clients;
pub mod handler;
pub mod package;

use crate::deploy::clients::Clients;
use crate::deploy::package::package;
use crate::{Result, ToolError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    Architecture, Environment, FunctionUrlAuthType, LastUpdateStatus, Runtime, State,
};
use durable_protocol::{ControlEvent, MinuteRange};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The role the local functions run as (LocalStack does not enforce IAM).
const LOCAL_ROLE: &str = "arn:aws:iam::000000000000:role/durable-local-lambda";
/// The role EventBridge Scheduler invokes the orchestrator with.
const LOCAL_SCHEDULER_ROLE: &str = "arn:aws:iam::000000000000:role/durable-local-scheduler";
/// The alias new invocations of a handler go through.
pub const LIVE_ALIAS: &str = "live";

/// A handler Lambda to deploy: its function name suffix, binary and settings.
#[derive(Debug, Clone)]
pub struct HandlerFunction {
    pub name: &'static str,
    pub binary: &'static str,
    pub timeout_secs: i32,
    /// Extra environment variables.
    pub env: &'static [(&'static str, &'static str)],
}

/// The handler Lambdas of this repository.
pub const HANDLERS: &[HandlerFunction] = &[
    HandlerFunction {
        name: "checkout",
        binary: "checkout",
        timeout_secs: 30,
        env: &[],
    },
    HandlerFunction {
        name: "approvals",
        binary: "approvals",
        timeout_secs: 30,
        env: &[],
    },
    HandlerFunction {
        name: "trips",
        binary: "trips",
        timeout_secs: 30,
        env: &[],
    },
    HandlerFunction {
        name: "fanout",
        binary: "fanout",
        timeout_secs: 30,
        env: &[],
    },
    HandlerFunction {
        name: "cart",
        binary: "cart",
        timeout_secs: 30,
        env: &[],
    },
    HandlerFunction {
        name: "signup",
        binary: "signup",
        timeout_secs: 30,
        env: &[],
    },
    // Timers over 300 ms go through EventBridge Scheduler, so the tests exercise that path.
    HandlerFunction {
        name: "testbed",
        binary: "test-services",
        timeout_secs: 30,
        env: &[("DURABLE_IN_PROCESS_WAIT_MS", "300")],
    },
];

/// What was deployed, saved to `deployment.json` for the CLI and the tests.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Deployment {
    pub prefix: String,
    pub table: String,
    pub bucket: String,
    pub orchestrator_function: String,
    pub orchestrator_url: String,
    /// Handler function name suffix -> alias ARN.
    pub handlers: BTreeMap<String, String>,
    /// Service name -> pinned version ARN, as registered.
    pub services: BTreeMap<String, String>,
}

impl Deployment {
    /// Where deployments are recorded: `$LOCAL_AWS_DIR/deployment.json` or `.local-aws/` in the repo.
    pub fn default_path() -> PathBuf {
        let dir = std::env::var_os("LOCAL_AWS_DIR")
            .map_or_else(|| repo_root().join(".local-aws"), PathBuf::from);
        dir.join("deployment.json")
    }

    /// Reads the recorded deployment.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ToolError::Message(format!(
                "no deployment at {} ({e}); start the local environment and deploy the engine first (scripts/local-aws.sh up && scripts/deploy-local.sh)",
                path.display()
            ))
        })?;
        serde_json::from_str(&text)
            .map_err(|e| ToolError::Message(format!("{}: {e}", path.display())))
    }

    pub(crate) fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| ToolError::Io {
                context: dir.display().to_string(),
                source: e,
            })?;
        }
        // Written aside and renamed over, so a reader never sees half a file.
        let text = serde_json::to_string_pretty(self).expect("deployment serializes");
        let aside = path.with_extension(format!("json.{}", std::process::id()));
        std::fs::write(&aside, text)
            .and_then(|()| std::fs::rename(&aside, path))
            .map_err(|e| ToolError::Io {
                context: path.display().to_string(),
                source: e,
            })
    }
}

/// The repository root (this crate lives in `<root>/localstack-tests`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crate has a parent")
        .to_path_buf()
}

/// Deploys everything under names starting with `prefix`, using binaries from `bin_dir`, with
/// the sweep's `rate(1 minute)` schedule (as the CDK construct creates it) unless `sweep` is
/// [`SweepSchedule::None`].
pub async fn deploy(
    clients: &Clients,
    prefix: &str,
    bin_dir: &Path,
    out: &Path,
    sweep: SweepSchedule,
) -> Result<Deployment> {
    let deployment = deploy_with(
        clients,
        prefix,
        bin_dir,
        out,
        HANDLERS,
        &BTreeMap::new(),
        ORCHESTRATOR_TIMEOUT_SECS,
    )
    .await?;
    ensure_sweep_schedule(clients, &deployment, sweep).await?;
    Ok(deployment)
}

/// Whether a deployment's orchestrator gets the sweep schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepSchedule {
    /// `rate(1 minute)`, fired by the local environment's schedule pump: local runs recover
    /// by themselves, as on AWS.
    EveryMinute,
    /// None (and an existing one is deleted): the caller sends sweeps itself, e.g. tests that
    /// check what each sweep did.
    None,
}

/// The name of a deployment's sweep schedule.
pub fn sweep_schedule_name(prefix: &str) -> String {
    format!("{prefix}-sweep")
}

/// Creates (or deletes) the sweep schedule of `deployment`.
pub async fn ensure_sweep_schedule(
    clients: &Clients,
    deployment: &Deployment,
    sweep: SweepSchedule,
) -> Result<()> {
    use aws_sdk_scheduler::types::{FlexibleTimeWindow, FlexibleTimeWindowMode, Target};
    let name = sweep_schedule_name(&deployment.prefix);
    // Replaced every time, so that a changed orchestrator ARN is picked up.
    let _ = clients.scheduler.delete_schedule().name(&name).send().await;
    if sweep == SweepSchedule::None {
        return Ok(());
    }
    let arn = clients
        .lambda
        .get_function()
        .function_name(&deployment.orchestrator_function)
        .send()
        .await
        .map_err(|e| ToolError::aws("GetFunction", e))?
        .configuration
        .and_then(|c| c.function_arn)
        .ok_or_else(|| ToolError::Message("the orchestrator has no ARN".into()))?;
    let input =
        serde_json::to_string(&ControlEvent::Sweep { minutes: None }).expect("an event serializes");
    let target = Target::builder()
        .arn(arn)
        .role_arn(LOCAL_SCHEDULER_ROLE)
        .input(input)
        .build()
        .map_err(|e| ToolError::Message(e.to_string()))?;
    let window = FlexibleTimeWindow::builder()
        .mode(FlexibleTimeWindowMode::Off)
        .build()
        .map_err(|e| ToolError::Message(e.to_string()))?;
    clients
        .scheduler
        .create_schedule()
        .name(&name)
        .schedule_expression("rate(1 minute)")
        .flexible_time_window(window)
        .target(target)
        .send()
        .await
        .map_err(|e| ToolError::aws("CreateSchedule", e))?;
    Ok(())
}

/// The orchestrator's timeout in the local deployment (the CDK construct's default).
pub const ORCHESTRATOR_TIMEOUT_SECS: i32 = 60;

/// Deploys the orchestrator (with `orchestrator_timeout_secs`) and `handler_functions` under
/// `prefix`, with `extra_env` added to every function's environment (the benchmark routes AWS
/// calls through its counting proxy).
pub async fn deploy_with(
    clients: &Clients,
    prefix: &str,
    bin_dir: &Path,
    out: &Path,
    handler_functions: &[HandlerFunction],
    extra_env: &BTreeMap<String, String>,
    orchestrator_timeout_secs: i32,
) -> Result<Deployment> {
    let table = format!("{prefix}-journal");
    let bucket = format!("{prefix}-payloads");
    ensure_table(clients, &table).await?;
    ensure_bucket(clients, &bucket).await?;

    let orchestrator_function = format!("{prefix}-orchestrator");
    let mut env = BTreeMap::new();
    env.insert("DURABLE_TABLE".to_owned(), table.clone());
    env.insert("DURABLE_BUCKET".to_owned(), bucket.clone());
    env.insert(
        "DURABLE_SCHEDULER_ROLE_ARN".to_owned(),
        LOCAL_SCHEDULER_ROLE.to_owned(),
    );
    // Large enough for the 10 MB output test, small enough to test the limit.
    env.insert(
        "DURABLE_MAX_VALUE_BYTES".to_owned(),
        (12 * 1024 * 1024).to_string(),
    );
    env.insert("RUST_LOG".to_owned(), "info".to_owned());
    env.extend(extra_env.clone());
    let zip = package(&bin_dir.join("orchestrator"))?;
    upsert_function(
        clients,
        &orchestrator_function,
        zip,
        env,
        orchestrator_timeout_secs,
    )
    .await?;
    ensure_doors(clients, &orchestrator_function).await?;
    let orchestrator_url = ensure_function_url(clients, &orchestrator_function).await?;

    let mut handlers = BTreeMap::new();
    for h in handler_functions {
        let name = format!("{prefix}-{}", h.name);
        let mut env = BTreeMap::new();
        env.insert("RUST_LOG".to_owned(), "info".to_owned());
        env.insert("TEST_TABLE".to_owned(), table.clone());
        for (k, v) in h.env {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        env.extend(extra_env.clone());
        let zip = package(&bin_dir.join(h.binary))?;
        upsert_function(clients, &name, zip, env, h.timeout_secs).await?;
        let alias_arn = publish_behind_alias(clients, &name).await?;
        handlers.insert(h.name.to_owned(), alias_arn);
    }

    let mut services = BTreeMap::new();
    for alias_arn in handlers.values() {
        let answer = register(clients, &orchestrator_function, alias_arn).await?;
        for reg in answer["registered"].as_array().into_iter().flatten() {
            if let (Some(s), Some(arn)) = (reg["service"].as_str(), reg["function_arn"].as_str()) {
                services.insert(s.to_owned(), arn.to_owned());
            }
        }
    }

    let deployment = Deployment {
        prefix: prefix.to_owned(),
        table,
        bucket,
        orchestrator_function,
        orchestrator_url,
        handlers,
        services,
    };
    deployment.save(out)?;
    Ok(deployment)
}

/// The keys-only `runs` index: invocations with ids that are not dated, by creation minute
/// and shard, for listing (see `durable_store::listing`).
fn runs_index() -> GlobalSecondaryIndex {
    let key = |name: &str, kt: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kt)
            .build()
            .expect("key")
    };
    GlobalSecondaryIndex::builder()
        .index_name("runs")
        .key_schema(key("list_pk", KeyType::Hash))
        .key_schema(key("list_sk", KeyType::Range))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::KeysOnly)
                .build(),
        )
        .build()
        .expect("index")
}

fn string_attr(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("attr")
}

async fn ensure_table(clients: &Clients, table: &str) -> Result<()> {
    let described = clients
        .dynamo
        .describe_table()
        .table_name(table)
        .send()
        .await;
    let exists = described.is_ok();
    // A table made by an earlier version gets the `runs` index added.
    if let Ok(d) = &described {
        let has_runs = d.table().is_none_or(|t| {
            t.global_secondary_indexes()
                .iter()
                .any(|i| i.index_name() == Some("runs"))
        });
        if !has_runs {
            use aws_sdk_dynamodb::types::{
                CreateGlobalSecondaryIndexAction, GlobalSecondaryIndexUpdate,
            };
            let index = runs_index();
            clients
                .dynamo
                .update_table()
                .table_name(table)
                .attribute_definitions(string_attr("list_pk"))
                .attribute_definitions(string_attr("list_sk"))
                .global_secondary_index_updates(
                    GlobalSecondaryIndexUpdate::builder()
                        .create(
                            CreateGlobalSecondaryIndexAction::builder()
                                .index_name("runs")
                                .set_key_schema(Some(index.key_schema().to_vec()))
                                .set_projection(index.projection().cloned())
                                .build()
                                .expect("index"),
                        )
                        .build(),
                )
                .send()
                .await
                .map_err(|e| ToolError::aws("UpdateTable", e))?;
        }
    }
    if !exists {
        let key = |name: &str, kt: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kt)
                .build()
        };
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
        };
        clients
            .dynamo
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("pk", KeyType::Hash).expect("key"))
            .key_schema(key("sk", KeyType::Range).expect("key"))
            .attribute_definitions(attr("pk").expect("attr"))
            .attribute_definitions(attr("sk").expect("attr"))
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("lease_shard")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .expect("attr"),
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("lease_until")
                    .attribute_type(ScalarAttributeType::N)
                    .build()
                    .expect("attr"),
            )
            // Running invocations by lease expiry, for the sweep (sparse, keys only).
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name("leases")
                    .key_schema(key("lease_shard", KeyType::Hash).expect("key"))
                    .key_schema(key("lease_until", KeyType::Range).expect("key"))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::KeysOnly)
                            .build(),
                    )
                    .build()
                    .expect("index"),
            )
            .attribute_definitions(string_attr("list_pk"))
            .attribute_definitions(string_attr("list_sk"))
            .global_secondary_indexes(runs_index())
            .send()
            .await
            .map_err(|e| ToolError::aws("CreateTable", e))?;
        clients
            .dynamo
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("expires_at")
                    .build()
                    .expect("ttl"),
            )
            .send()
            .await
            .map_err(|e| ToolError::aws("UpdateTimeToLive", e))?;
    }
    Ok(())
}

async fn ensure_bucket(clients: &Clients, bucket: &str) -> Result<()> {
    if clients.s3.head_bucket().bucket(bucket).send().await.is_ok() {
        return Ok(());
    }
    clients
        .s3
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| ToolError::aws("CreateBucket", e))?;
    // Outputs are kept for the retention period (1 day); other payloads are deleted by the
    // orchestrator when their invocation finishes.
    use aws_sdk_s3::types::{
        BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
        LifecycleRuleFilter,
    };
    let rule = LifecycleRule::builder()
        .id("expire-outputs")
        .filter(LifecycleRuleFilter::builder().prefix("outputs/").build())
        .expiration(LifecycleExpiration::builder().days(1).build())
        .status(ExpirationStatus::Enabled)
        .build()
        .expect("rule");
    clients
        .s3
        .put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(rule)
                .build()
                .expect("lifecycle"),
        )
        .send()
        .await
        .map_err(|e| ToolError::aws("PutBucketLifecycleConfiguration", e))?;
    Ok(())
}

async fn wait_until_ready(clients: &Clients, name: &str) -> Result<()> {
    for _ in 0..600 {
        let cfg = clients
            .lambda
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .map_err(|e| ToolError::aws("GetFunctionConfiguration", e))?;
        let state = cfg.state().cloned();
        let update = cfg.last_update_status().cloned();
        if matches!(state, Some(State::Failed)) || matches!(update, Some(LastUpdateStatus::Failed))
        {
            return Err(ToolError::Message(format!(
                "function {name} failed to become ready: {:?} {:?}",
                cfg.state_reason(),
                cfg.last_update_status_reason()
            )));
        }
        if matches!(state, Some(State::Active))
            && !matches!(update, Some(LastUpdateStatus::InProgress))
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(ToolError::Message(format!(
        "function {name} did not become active in 60 s"
    )))
}

/// Creates or updates a function (code and configuration) and waits until it is active.
pub async fn upsert_function(
    clients: &Clients,
    name: &str,
    zip: Vec<u8>,
    env: BTreeMap<String, String>,
    timeout_secs: i32,
) -> Result<()> {
    let environment = Environment::builder()
        .set_variables(Some(env.into_iter().collect()))
        .build();
    let exists = clients
        .lambda
        .get_function()
        .function_name(name)
        .send()
        .await
        .is_ok();
    if exists {
        clients
            .lambda
            .update_function_code()
            .function_name(name)
            .zip_file(Blob::new(zip))
            .send()
            .await
            .map_err(|e| ToolError::aws("UpdateFunctionCode", e))?;
        wait_until_ready(clients, name).await?;
        clients
            .lambda
            .update_function_configuration()
            .function_name(name)
            .environment(environment)
            .timeout(timeout_secs)
            .send()
            .await
            .map_err(|e| ToolError::aws("UpdateFunctionConfiguration", e))?;
    } else {
        clients
            .lambda
            .create_function()
            .function_name(name)
            .runtime(Runtime::Providedal2023)
            .handler("bootstrap")
            .role(LOCAL_ROLE)
            .architectures(Architecture::X8664)
            .memory_size(256)
            .timeout(timeout_secs)
            .environment(environment)
            .code(
                aws_sdk_lambda::types::FunctionCode::builder()
                    .zip_file(Blob::new(zip))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| ToolError::aws("CreateFunction", e))?;
    }
    wait_until_ready(clients, name).await
}

/// Publishes the function's current code and configuration as a version and points the
/// alias `live` at it; returns the alias ARN.
pub(crate) async fn publish_behind_alias(clients: &Clients, name: &str) -> Result<String> {
    let version = clients
        .lambda
        .publish_version()
        .function_name(name)
        .send()
        .await
        .map_err(|e| ToolError::aws("PublishVersion", e))?
        .version
        .ok_or_else(|| {
            ToolError::Message(format!("PublishVersion of {name} returned no version"))
        })?;
    let existing = clients
        .lambda
        .get_alias()
        .function_name(name)
        .name(LIVE_ALIAS)
        .send()
        .await;
    let arn = if existing.is_ok() {
        clients
            .lambda
            .update_alias()
            .function_name(name)
            .name(LIVE_ALIAS)
            .function_version(&version)
            .send()
            .await
            .map_err(|e| ToolError::aws("UpdateAlias", e))?
            .alias_arn
    } else {
        clients
            .lambda
            .create_alias()
            .function_name(name)
            .name(LIVE_ALIAS)
            .function_version(&version)
            .send()
            .await
            .map_err(|e| ToolError::aws("CreateAlias", e))?
            .alias_arn
    };
    arn.ok_or_else(|| ToolError::Message(format!("alias of {name} has no ARN")))
}

/// The orchestrator's doors: the aliases `url` (the Function URL's) and `admin` (`register`),
/// both on `$LATEST` here, so that redeploying the code needs no new version. On AWS the CDK
/// construct points them at the published version and grants each to its senders only.
async fn ensure_doors(clients: &Clients, name: &str) -> Result<()> {
    for alias in [URL_ALIAS, ADMIN_ALIAS] {
        let exists = clients
            .lambda
            .get_alias()
            .function_name(name)
            .name(alias)
            .send()
            .await
            .is_ok();
        if !exists {
            clients
                .lambda
                .create_alias()
                .function_name(name)
                .name(alias)
                .function_version("$LATEST")
                .send()
                .await
                .map_err(|e| ToolError::aws("CreateAlias", e))?;
        }
    }
    Ok(())
}

/// The orchestrator's alias that serves HTTP (its Function URL is attached to it).
pub const URL_ALIAS: &str = "url";
/// The orchestrator's alias that accepts `register`.
pub const ADMIN_ALIAS: &str = "admin";

async fn ensure_function_url(clients: &Clients, name: &str) -> Result<String> {
    if let Ok(existing) = clients
        .lambda
        .get_function_url_config()
        .function_name(name)
        .qualifier(URL_ALIAS)
        .send()
        .await
    {
        return Ok(existing.function_url);
    }
    // Locally the URL is open (LocalStack does not check SigV4 on Function URLs); the CDK
    // construct uses AWS_IAM.
    let out = clients
        .lambda
        .create_function_url_config()
        .function_name(name)
        .qualifier(URL_ALIAS)
        .auth_type(FunctionUrlAuthType::None)
        .send()
        .await
        .map_err(|e| ToolError::aws("CreateFunctionUrlConfig", e))?;
    Ok(out.function_url)
}

/// Registers the handler Lambda `alias_arn` with the orchestrator, its services keeping their
/// finished invocations for `retention_secs` if given (else the orchestrator's default);
/// returns its answer.
pub async fn register_with(
    clients: &Clients,
    orchestrator: &str,
    alias_arn: &str,
    retention_secs: Option<u64>,
) -> Result<serde_json::Value> {
    let event = ControlEvent::Register {
        function_arn: alias_arn.to_owned(),
        services: None,
        retention_secs,
    };
    let admin = format!("{}:{ADMIN_ALIAS}", unqualified_name(orchestrator));
    control(clients, &admin, &event).await
}

/// Registers the handler Lambda `alias_arn` with the orchestrator's default retention.
pub async fn register(
    clients: &Clients,
    orchestrator: &str,
    alias_arn: &str,
) -> Result<serde_json::Value> {
    register_with(clients, orchestrator, alias_arn, None).await
}

/// Sends the orchestrator a `sweep` (its schedule does every minute on AWS); returns its
/// answer (`redriven`, and what each part did: `minutes`, `leases`).
pub async fn sweep(clients: &Clients, orchestrator: &str) -> Result<serde_json::Value> {
    control(
        clients,
        orchestrator,
        &ControlEvent::Sweep { minutes: None },
    )
    .await
}

/// A `sweep` that looks at the dated invocations of the minutes `from..=to` (since the Unix
/// epoch), whatever its cursor says, and leaves that cursor alone.
pub async fn sweep_minutes(
    clients: &Clients,
    orchestrator: &str,
    from: u32,
    to: u32,
) -> Result<serde_json::Value> {
    let event = ControlEvent::Sweep {
        minutes: Some(MinuteRange { from, to }),
    };
    control(clients, orchestrator, &event).await
}

/// A function name or ARN without its qualifier.
fn unqualified_name(function: &str) -> String {
    if function.starts_with("arn:") {
        function.split(':').take(7).collect::<Vec<_>>().join(":")
    } else {
        function.split(':').next().unwrap_or(function).to_owned()
    }
}

/// Sends the orchestrator a control event synchronously; returns its JSON answer.
async fn control(
    clients: &Clients,
    orchestrator: &str,
    event: &ControlEvent,
) -> Result<serde_json::Value> {
    let out = clients
        .lambda
        .invoke()
        .function_name(orchestrator)
        .payload(Blob::new(
            serde_json::to_vec(event).expect("control events serialize"),
        ))
        .send()
        .await
        .map_err(|e| ToolError::aws("Invoke", e))?;
    let body = out.payload.map(Blob::into_inner).unwrap_or_default();
    if let Some(fe) = out.function_error {
        return Err(ToolError::Message(format!(
            "the orchestrator failed on {event:?} ({fe}): {}",
            String::from_utf8_lossy(&body)
        )));
    }
    serde_json::from_slice(&body)
        .map_err(|e| ToolError::Message(format!("the answer to {event:?} is not JSON: {e}")))
}
