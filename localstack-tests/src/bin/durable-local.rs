//! `durable-local`: deploy the engine into the local AWS environment, call it, look inside.

use clap::{Parser, Subcommand};
use durable_local::client::OrchestratorClient;
use durable_local::deploy::clients::Clients;
use durable_local::deploy::{deploy, handler, repo_root, Deployment, SweepSchedule};
use durable_local::inspect::{self, show};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "durable-local",
    about = "Deploy and drive durable-lambda in the local AWS environment"
)]
struct Cli {
    /// Where the deployment is recorded.
    #[arg(long, global = true, env = "DURABLE_DEPLOYMENT")]
    deployment: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Package the built binaries and deploy (or update) everything in LocalStack; with
    /// `--handler`, deploy only your own handler Lambdas into the recorded deployment.
    Deploy {
        /// A handler Lambda of yours, as `[NAME=]PATH`: a crate folder (built here with `cargo
        /// build`) or a built binary. Repeatable. The function is `<prefix>-NAME` (default: the
        /// crate's folder or the binary's name); each deploy publishes a new version and
        /// registers it: new invocations run it, in-flight ones stay on their version.
        #[arg(long = "handler", value_name = "[NAME=]PATH")]
        handlers: Vec<String>,
        /// The binary to deploy when a `--handler` crate builds several.
        #[arg(long, requires = "handlers")]
        bin: Option<String>,
        /// An environment variable of the `--handler` functions, as `KEY=VALUE`. Repeatable.
        #[arg(long = "env", value_name = "KEY=VALUE", requires = "handlers")]
        env: Vec<String>,
        /// The `--handler` functions' timeout in seconds.
        #[arg(long, default_value_t = 30, requires = "handlers")]
        timeout_secs: i32,
        /// How long the `--handler` services keep finished invocations (seconds).
        #[arg(long, requires = "handlers")]
        retention_secs: Option<u64>,
        /// Prefix of every resource name.
        #[arg(long, default_value = "durable-local")]
        prefix: String,
        /// Folder with the built binaries (orchestrator, checkout, test-services).
        #[arg(long)]
        bin_dir: Option<PathBuf>,
        /// Create no sweep schedule (and delete one left from before): whoever uses this
        /// deployment sends `sweep` events itself, like the end-to-end tests do.
        #[arg(long)]
        no_sweep_schedule: bool,
    },
    /// Call a handler through the orchestrator's Function URL and print the answer.
    Invoke {
        service: String,
        handler: String,
        /// The input, as JSON.
        input: String,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Start a handler without waiting (`POST /{service}/{handler}/send`); prints its id.
    Send {
        service: String,
        handler: String,
        /// The input, as JSON.
        input: String,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Resolve an awakeable with a JSON value.
    Resolve { awakeable_id: String, value: String },
    /// Reject an awakeable: the waiting handler gets a terminal error.
    Reject {
        awakeable_id: String,
        message: String,
        /// The status code of the terminal error (4xx/5xx).
        #[arg(long, default_value_t = 500)]
        code: u16,
    },
    /// Wait for an invocation's output (`GET /invocations/{id}/attach`).
    Attach { invocation_id: String },
    /// Register a handler Lambda (its alias or version ARN) with an orchestrator function.
    Register {
        /// The orchestrator function's name or ARN.
        #[arg(long)]
        orchestrator: String,
        function_arn: String,
        /// How long its services' finished invocations are kept (seconds; default: the
        /// orchestrator's `DURABLE_RETENTION_SECS`).
        #[arg(long)]
        retention_secs: Option<u64>,
    },
    /// Print an invocation's metadata and journal.
    Journal { invocation_id: String },
    /// Fire the deployment's pending durable timers now, through the orchestrator's wake path
    /// (a long sleep or timeout need not be waited out while testing).
    FireTimers {
        /// Only this invocation's timers.
        #[arg(long)]
        invocation: Option<String>,
    },
    /// Run the checkout example and print its output and journal.
    Demo,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> durable_local::Result<ExitCode> {
    let path = cli.deployment.unwrap_or_else(Deployment::default_path);
    let clients = Clients::local().await;
    match cli.command {
        Command::Deploy {
            handlers,
            bin,
            env,
            timeout_secs,
            retention_secs,
            ..
        } if !handlers.is_empty() => {
            let env = env
                .iter()
                .map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .ok_or_else(|| {
                            durable_local::ToolError::Message(format!(
                                "--env {kv:?} is not KEY=VALUE"
                            ))
                        })
                })
                .collect::<durable_local::Result<BTreeMap<_, _>>>()?;
            for arg in &handlers {
                let (name, source) = handler::parse_handler_arg(arg)?;
                let own = handler::OwnHandler {
                    name,
                    source: handler::HandlerSource::from_path(&source, bin.clone()),
                    env: env.clone(),
                    timeout_secs,
                    retention_secs,
                };
                let deployed = handler::deploy_handler(&clients, &path, &own).await?;
                println!("deployed {} ({})", deployed.function, deployed.alias_arn);
                for (service, arn) in &deployed.services {
                    println!("  service       {service} -> {arn}");
                }
            }
            let d = Deployment::load(&path)?;
            println!("call it: durable-local invoke <service> <handler> '<json>'");
            println!("  or POST {}<service>/<handler>", d.orchestrator_url);
            Ok(ExitCode::SUCCESS)
        }
        Command::Deploy {
            prefix,
            bin_dir,
            no_sweep_schedule,
            ..
        } => {
            let bin_dir = bin_dir.unwrap_or_else(|| repo_root().join("target/debug"));
            let sweep = if no_sweep_schedule {
                SweepSchedule::None
            } else {
                SweepSchedule::EveryMinute
            };
            let d = deploy(&clients, &prefix, &bin_dir, &path, sweep).await?;
            println!(
                "deployed into {}:",
                durable_local::deploy::clients::endpoint()
            );
            println!("  table         {}", d.table);
            println!("  bucket        {}", d.bucket);
            println!(
                "  orchestrator  {} at {}",
                d.orchestrator_function, d.orchestrator_url
            );
            for (service, arn) in &d.services {
                println!("  service       {service} -> {arn}");
            }
            println!("recorded in {}", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Invoke {
            service,
            handler,
            input,
            idempotency_key,
        } => {
            let input: serde_json::Value = serde_json::from_str(&input).map_err(|e| {
                durable_local::ToolError::Message(format!("the input is not JSON: {e}"))
            })?;
            print_answer(
                &orchestrator(&path)?
                    .invoke(&service, &handler, &input, idempotency_key.as_deref())
                    .await?,
            )
        }
        Command::Send {
            service,
            handler,
            input,
            idempotency_key,
        } => {
            let key: Vec<(&str, &str)> = idempotency_key
                .as_deref()
                .map(|k| ("idempotency-key", k))
                .into_iter()
                .collect();
            print_answer(
                &orchestrator(&path)?
                    .post_json(&format!("/{service}/{handler}/send"), &input, &key)
                    .await?,
            )
        }
        Command::Resolve {
            awakeable_id,
            value,
        } => print_answer(
            &orchestrator(&path)?
                .post_json(&format!("/awakeables/{awakeable_id}/resolve"), &value, &[])
                .await?,
        ),
        Command::Reject {
            awakeable_id,
            message,
            code,
        } => {
            let body = serde_json::json!({"message": message, "code": code}).to_string();
            print_answer(
                &orchestrator(&path)?
                    .post_json(&format!("/awakeables/{awakeable_id}/reject"), &body, &[])
                    .await?,
            )
        }
        Command::Attach { invocation_id } => {
            let url_path = format!("/invocations/{invocation_id}/attach");
            print_answer(
                &orchestrator(&path)?
                    .request(reqwest::Method::GET, &url_path, None, &[])
                    .await?,
            )
        }
        Command::Register {
            orchestrator,
            function_arn,
            retention_secs,
        } => {
            let answer = durable_local::deploy::register_with(
                &clients,
                &orchestrator,
                &function_arn,
                retention_secs,
            )
            .await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&answer).unwrap_or_default()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::FireTimers { invocation } => {
            let d = Deployment::load(&path)?;
            let only = invocation
                .as_deref()
                .map(durable_protocol::InvocationId::parse)
                .transpose()
                .map_err(|e| durable_local::ToolError::Message(e.to_string()))?;
            let fired = durable_local::timers::fire_timers_now(&clients, &d, only.as_ref()).await?;
            for t in &fired {
                println!("fired timer {} of {}", t.entry, t.invocation_id);
            }
            println!("{} timer(s) fired", fired.len());
            Ok(ExitCode::SUCCESS)
        }
        Command::Journal { invocation_id } => {
            let d = Deployment::load(&path)?;
            print_invocation(&clients, &d, &invocation_id).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo => {
            let d = Deployment::load(&path)?;
            let client = OrchestratorClient::new(&d.orchestrator_url)?;
            let order = serde_json::json!({
                "order_id": format!("demo-{}", std::process::id()),
                "items": ["keyboard", "mouse"],
                "amount_cents": 12_999
            });
            println!("POST /checkout/checkout {order}");
            let answer = client.invoke("checkout", "checkout", &order, None).await?;
            println!(
                "HTTP {} (invocation {})",
                answer.status,
                answer.invocation_id.as_deref().unwrap_or("-")
            );
            println!("{}", pretty(&answer.body, &answer.raw));
            if let Some(id) = &answer.invocation_id {
                println!();
                print_invocation(&clients, &d, id).await?;
            }
            Ok(if answer.status == 200 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// A client of the recorded deployment's orchestrator.
fn orchestrator(deployment: &std::path::Path) -> durable_local::Result<OrchestratorClient> {
    OrchestratorClient::new(&Deployment::load(deployment)?.orchestrator_url)
}

fn print_answer(answer: &durable_local::client::Answer) -> durable_local::Result<ExitCode> {
    println!(
        "HTTP {} (invocation {})",
        answer.status,
        answer.invocation_id.as_deref().unwrap_or("-")
    );
    println!("{}", pretty(&answer.body, &answer.raw));
    Ok(if answer.status < 300 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn pretty(body: &serde_json::Value, raw: &str) -> String {
    if body.is_null() {
        raw.to_owned()
    } else {
        serde_json::to_string_pretty(body).unwrap_or_else(|_| raw.to_owned())
    }
}

async fn print_invocation(
    clients: &Clients,
    d: &Deployment,
    id: &str,
) -> durable_local::Result<()> {
    let stored = inspect::invocation(clients, &d.table, id).await?;
    println!("invocation {id}");
    if let Some(meta) = &stored.meta {
        for field in [
            "service",
            "handler",
            "status",
            "epoch",
            "attempt",
            "function_arn",
        ] {
            if let Some(v) = meta.get(field) {
                println!("  {field:<13}{}", show(v));
            }
        }
    } else {
        println!("  (no such invocation)");
    }
    println!("journal ({} entries)", stored.journal.len());
    for entry in &stored.journal {
        let show_result = |r: &durable_protocol::StepResult| match r {
            durable_protocol::StepResult::Value(v) => v.to_string(),
            durable_protocol::StepResult::Failure(f) => {
                format!("terminal failure {}: {}", f.code, f.message)
            }
        };
        let what = match &entry.kind {
            durable_protocol::EntryKind::Run { name, result } => {
                format!("run {:<10} -> {}", format!("{name:?}"), show_result(result))
            }
            durable_protocol::EntryKind::Scope { name, result } => {
                format!(
                    "scope {:<8} -> {}",
                    format!("{name:?}"),
                    show_result(result)
                )
            }
            durable_protocol::EntryKind::Started { name, attempt } => {
                format!(
                    "run {:<10} (at most once, try {attempt})",
                    format!("{name:?}")
                )
            }
            durable_protocol::EntryKind::Sleep { wake_at_ms, .. } => {
                format!("sleep until {wake_at_ms} ms")
            }
            durable_protocol::EntryKind::Awakeable { .. } => {
                let invocation = durable_protocol::InvocationId::parse(id)
                    .map_err(|e| durable_local::ToolError::Message(e.to_string()))?;
                let awk =
                    inspect::awakeable_id(clients, &d.table, &invocation, entry.index).await?;
                format!("awakeable {awk}")
            }
            durable_protocol::EntryKind::Select { of, winner } => {
                format!("select of {of:?} -> #{winner}")
            }
            durable_protocol::EntryKind::Call {
                target,
                child,
                attach: true,
                ..
            } => format!("attach to {} -> {child}", target.display()),
            durable_protocol::EntryKind::Call {
                target,
                input,
                child,
                idempotency_key,
                ..
            } => match idempotency_key {
                Some(key) => format!(
                    "call {} {input} (idempotency key {}) -> child {child}",
                    target.display(),
                    key.as_str()
                ),
                None => format!("call {} {input} -> child {child}", target.display()),
            },
            durable_protocol::EntryKind::Send {
                target,
                input,
                child,
                due_at_ms,
                ..
            } => match due_at_ms {
                Some(due) => format!(
                    "send {} {input} at {due} ms -> child {child}",
                    target.display()
                ),
                None => format!("send {} {input} -> child {child}", target.display()),
            },
            durable_protocol::EntryKind::SetState { name, value } => {
                format!("set state {name:?} = {value}")
            }
            durable_protocol::EntryKind::ClearState { name } => format!("clear state {name:?}"),
            durable_protocol::EntryKind::ClearAllState => "clear all state".to_owned(),
            durable_protocol::EntryKind::GetState { name, value } => match value {
                Some(v) => format!("get state {name:?} -> {v}"),
                None => format!("get state {name:?} -> (none)"),
            },
            durable_protocol::EntryKind::GetStateKeys { keys } => format!("state keys -> {keys:?}"),
            durable_protocol::EntryKind::Promise { name } => format!("promise {name:?}"),
            durable_protocol::EntryKind::PeekPromise { name, result } => match result {
                Some(r) => format!("peek promise {name:?} -> {}", show_result(r)),
                None => format!("peek promise {name:?} -> (pending)"),
            },
            durable_protocol::EntryKind::CompletePromise {
                name,
                result,
                refused,
            } => match refused {
                Some(f) => format!(
                    "complete promise {name:?} with {} -> refused: {}",
                    show_result(result),
                    f.message
                ),
                None => format!("complete promise {name:?} with {}", show_result(result)),
            },
        };
        let completion = match &entry.completion {
            Some(c) => format!(" (completed: {})", show_result(c)),
            None if entry.kind.completes_later() => " (pending)".to_owned(),
            None => String::new(),
        };
        let op = entry
            .op
            .as_ref()
            .map(|p| format!(" (op {p})"))
            .unwrap_or_default();
        println!("  #{:<3} {what}{completion}{op}", entry.index);
    }
    Ok(())
}
