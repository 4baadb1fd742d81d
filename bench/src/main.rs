//! `durable-bench`: what a durable step costs, measured against the local AWS environment.
//!
//! It deploys the orchestrator and the benchmark Lambdas under the prefix `durable-bench`, with
//! every AWS call of theirs routed through a counting proxy, runs each scenario sequentially,
//! and prints (and writes to `BENCHMARKS.md`) per scenario: latency p50/p99, the exact requests
//! per invocation (Lambda invocations by function, DynamoDB by operation with consumed capacity,
//! S3, Scheduler), the orchestrator's CPU time, the plain-Lambda baseline side by side, and the
//! modeled cost next to Step Functions Standard. Then it replays journals of 10, 1,000 and
//! 10,000 entries in the SDK, in memory, counting time and allocations.

mod cost;
mod proxy;

use clap::Parser;
use cost::Usage;
use durable_local::client::OrchestratorClient;
use durable_local::deploy::clients::Clients;
use durable_local::deploy::{self, Deployment, HandlerFunction};
use durable_local::inspect;
use durable_protocol::{HandlerName, IdempotencyKey, InvocationId, ServiceName};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Counts heap allocations, for the replay benchmark.
struct CountingAlloc;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static ALLOCATED_BYTES: AtomicU64 = AtomicU64::new(0);

// The one unsafe code in the workspace: a global allocator must implement an unsafe trait; it only
// counts and forwards to the system allocator.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const PREFIX: &str = "durable-bench";

#[derive(Parser)]
#[command(about = "Benchmark durable invocations against the local AWS environment")]
struct Args {
    /// Measured runs per scenario (after 2 warm-up runs); slow scenarios use fewer.
    #[arg(long, default_value_t = 30)]
    runs: usize,
    /// Where the built release binaries are.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// The report to write.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
    /// Port of the counting proxy on 127.0.0.1.
    #[arg(long, default_value_t = 4570)]
    proxy_port: u16,
    /// Only the in-memory replay benchmark (no local environment needed).
    #[arg(long)]
    replay_only: bool,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args = Args::parse();
    let mut report = String::new();
    writeln!(report, "# Benchmarks\n")?;
    writeln!(
        report,
        "Produced by `scripts/bench.sh` (`durable-bench --runs {}`) on {}, {} cores, {}; \
         against LocalStack with DynamoDB Local and the project's host-process Lambda executor. \
         Latencies are local (no network, no cold-start penalties of real Lambda): compare them \
         with each other, not with AWS. Counts are exact and carry over to AWS.\n",
        args.runs,
        today(),
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        machine()
    )?;
    let results = if args.replay_only {
        Vec::new()
    } else {
        scenarios(&args, &mut report).await?
    };
    let replay_10k = replay_bench(&mut report).await?;
    if !results.is_empty() {
        write_targets(&mut report, &results, replay_10k)?;
    }
    print!("{report}");
    std::fs::write(&args.out, &report)?;
    eprintln!("written to {}", args.out.display());
    Ok(())
}

fn today() -> String {
    std::process::Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "today".into(), |s| s.trim().to_owned())
}

fn machine() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// How a scenario is driven.
#[derive(Clone)]
enum Drive {
    /// A request-response call through the ingress.
    Http { path: String, body: String },
    /// Started with `/send`, finished when its metadata says so (async scenarios).
    Sleep { millis: u64 },
    /// Started, awaited until suspended, then its awakeable is resolved.
    Awakeable,
}

struct Scenario {
    name: &'static str,
    drive: Drive,
    runs: usize,
    /// The plain Lambda's payload, for the baseline.
    plain: Option<serde_json::Value>,
    /// Step Functions Standard: (state transitions, Lambda task states), or `None` if it
    /// cannot express it.
    step_functions: Option<(f64, f64)>,
    /// Step Functions Express: (Lambda task states, waits in ms), or `None` if it cannot
    /// express it (no callbacks, at most 5 minutes).
    express: Option<(f64, f64)>,
    /// The equivalent AWS Lambda durable function, or `None` if it has no equivalent.
    aws_durable: Option<cost::AwsDurable>,
    note: &'static str,
}

fn scenario_list(runs: usize) -> Vec<Scenario> {
    let blob = "x".repeat(1024 * 1024);
    let steps = |name, n: u32, note| Scenario {
        name,
        drive: Drive::Http {
            path: "/bench/steps".into(),
            body: n.to_string(),
        },
        runs,
        plain: Some(serde_json::json!({ "steps": n })),
        step_functions: Some((f64::from(n), f64::from(n))),
        express: Some((f64::from(n), 0.0)),
        // One step operation and one checkpoint (under 1 KB) per step.
        aws_durable: Some(cost::AwsDurable {
            operations: f64::from(n),
            invocations: 1.0,
            written_kb: f64::from(n),
        }),
        note,
    };
    vec![
        steps("1-step ctx.run", 1, ""),
        steps("3-step ctx.run", 3, ""),
        steps("10-step ctx.run", 10, ""),
        Scenario {
            name: "map of 100 (concurrency 10)",
            drive: Drive::Http {
                path: "/bench/map".into(),
                body: "100".into(),
            },
            runs: runs.min(10),
            plain: Some(serde_json::json!({ "steps": 100 })),
            step_functions: Some((101.0, 100.0)),
            express: Some((100.0, 0.0)),
            // The map, a child context per item and a step in each.
            aws_durable: Some(cost::AwsDurable {
                operations: 201.0,
                invocations: 1.0,
                written_kb: 201.0,
            }),
            note: "`ctx.map` over 100 items, at most 10 at a time, one step per item: each item \
                   writes its step and its scope's result, the map its batch result (large \
                   batches go to S3). Step Functions: a Map state with one Lambda task per item.",
        },
        Scenario {
            name: "sleep 1 s (suspends)",
            drive: Drive::Sleep { millis: 1000 },
            runs: runs.min(5),
            plain: None,
            step_functions: Some((1.0, 0.0)),
            express: Some((0.0, 1000.0)),
            // A wait, and a second invocation when it ends.
            aws_durable: Some(cost::AwsDurable {
                operations: 1.0,
                invocations: 2.0,
                written_kb: 1.0,
            }),
            note: "The handler suspends (in-process waits are off in this deployment); a one-time \
                   Scheduler schedule fires the timer, which LocalStack's pump polls every second.",
        },
        Scenario {
            name: "call (handler to handler)",
            drive: Drive::Http {
                path: "/bench/call".into(),
                body: "7".into(),
            },
            runs,
            plain: Some(serde_json::json!({ "steps": 1 })),
            step_functions: Some((2.0, 2.0)),
            express: Some((2.0, 0.0)),
            // The caller's invoke and the callee's step; the caller is resumed once.
            aws_durable: Some(cost::AwsDurable {
                operations: 2.0,
                invocations: 3.0,
                written_kb: 2.0,
            }),
            note: "The caller records the call, the orchestrator runs the callee (one step) and \
                   resumes the caller with its result.",
        },
        Scenario {
            name: "awakeable",
            drive: Drive::Awakeable,
            runs: runs.min(10),
            plain: None,
            step_functions: Some((2.0, 1.0)),
            express: None,
            // A callback is two operations (create, complete); resumed once.
            aws_durable: Some(cost::AwsDurable {
                operations: 2.0,
                invocations: 2.0,
                written_kb: 2.0,
            }),
            note: "Latency is from the resolve request to the finished invocation.",
        },
        Scenario {
            name: "virtual object update",
            drive: Drive::Http {
                path: "/bench_counter/k/add".into(),
                body: "1".into(),
            },
            runs,
            plain: Some(serde_json::json!({ "steps": 1 })),
            step_functions: Some((1.0, 1.0)),
            express: Some((1.0, 0.0)),
            aws_durable: None,
            note: "get + set on one key: the lock, the state write and the hand-over are part of \
                   the finishing transaction.",
        },
        Scenario {
            name: "1 MB payload",
            drive: Drive::Http {
                path: "/bench/payload".into(),
                body: serde_json::to_string(&blob).expect("string"),
            },
            runs: runs.min(10),
            plain: Some(serde_json::json!({ "blob": blob })),
            step_functions: None,
            express: None,
            aws_durable: None,
            note: "A 1 MB input recorded as a step result: both go to S3 behind references.",
        },
    ]
}

/// CPU time (user + system, ms) of the running processes of one function.
fn cpu_ms(function: &str) -> f64 {
    let marker = format!("/{function}-");
    let mut ticks = 0u64;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    for entry in dir.flatten() {
        let path = entry.path();
        let Ok(cmd) = std::fs::read(path.join("cmdline")) else {
            continue;
        };
        if !String::from_utf8_lossy(&cmd).contains(&marker) {
            continue;
        }
        if let Ok(stat) = std::fs::read_to_string(path.join("stat")) {
            // Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th.
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0);
            let stime: u64 = fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
            ticks += utime + stime;
        }
    }
    ticks as f64 * 10.0 // 100 clock ticks per second
}

/// Lambda invocations recorded by the executor since `offset`: (function, billed ms).
fn lambda_calls(log: &Path, offset: u64) -> (Vec<(String, f64)>, u64) {
    let text = std::fs::read(log).unwrap_or_default();
    let start = (offset as usize).min(text.len());
    let calls = String::from_utf8_lossy(&text[start..])
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            (
                v["function"].as_str().unwrap_or("").to_owned(),
                // What Lambda bills: from the event reaching the runtime to its answer.
                v["billed_ms"]
                    .as_f64()
                    .or_else(|| v["duration_ms"].as_f64())
                    .unwrap_or(0.0),
            )
        })
        .collect();
    (calls, text.len() as u64)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn status(clients: &Clients, table: &str, id: &InvocationId) -> String {
    clients
        .dynamo
        .get_item()
        .table_name(table)
        .set_key(Some(durable_store::keys::meta_key_item(id)))
        .consistent_read(true)
        .send()
        .await
        .ok()
        .and_then(|o| o.item)
        .and_then(|i| i.get("status").and_then(|s| s.as_s().ok().cloned()))
        .unwrap_or_default()
}

async fn wait_status(
    clients: &Clients,
    table: &str,
    id: &InvocationId,
    wanted: &[&str],
) -> Result<(), Error> {
    let started = Instant::now();
    while !wanted.contains(&status(clients, table, id).await.as_str()) {
        if started.elapsed() > Duration::from_secs(120) {
            return Err(format!("{id} did not reach {wanted:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// One durable run of a scenario; its latency.
async fn run_once(
    scenario: &Scenario,
    client: &OrchestratorClient,
    clients: &Clients,
    deployment: &Deployment,
    seq: usize,
) -> Result<Duration, Error> {
    match &scenario.drive {
        Drive::Http { path, body } => {
            let started = Instant::now();
            let answer = client.post_json(path, body, &[]).await?;
            if answer.status != 200 {
                return Err(format!(
                    "{} answered {}: {}",
                    scenario.name, answer.status, answer.raw
                )
                .into());
            }
            Ok(started.elapsed())
        }
        Drive::Sleep { millis } => {
            let started = Instant::now();
            let answer = client
                .post_json("/bench/sleep/send", &millis.to_string(), &[])
                .await?;
            let id = InvocationId::parse(answer.invocation_id.as_deref().unwrap_or(""))?;
            wait_status(clients, &deployment.table, &id, &["completed"]).await?;
            Ok(started.elapsed())
        }
        Drive::Awakeable => {
            let key = format!("awk-{}-{seq}", std::process::id());
            let id = InvocationId::for_idempotency_key(
                &ServiceName::new("bench")?,
                &HandlerName::new("awakeable")?,
                &IdempotencyKey::new(key.clone())?,
            );
            client
                .post_json(
                    "/bench/awakeable/send",
                    "null",
                    &[("idempotency-key", &key)],
                )
                .await?;
            wait_status(clients, &deployment.table, &id, &["suspended"]).await?;
            let awakeable = inspect::awakeable_id(clients, &deployment.table, &id, 0).await?;
            let started = Instant::now();
            let answer = client
                .post_json(&format!("/awakeables/{awakeable}/resolve"), "\"ok\"", &[])
                .await?;
            if answer.status != 200 {
                return Err(format!("resolve answered {}: {}", answer.status, answer.raw).into());
            }
            wait_status(clients, &deployment.table, &id, &["completed"]).await?;
            Ok(started.elapsed())
        }
    }
}

/// One plain-Lambda run of the baseline; its latency.
async fn run_plain(clients: &Clients, payload: &serde_json::Value) -> Result<Duration, Error> {
    let started = Instant::now();
    let out = clients
        .lambda
        .invoke()
        .function_name(format!("{PREFIX}-plain"))
        .payload(aws_sdk_lambda::primitives::Blob::new(serde_json::to_vec(
            payload,
        )?))
        .send()
        .await?;
    if out.function_error.is_some() {
        return Err("the plain Lambda failed".into());
    }
    Ok(started.elapsed())
}

struct Measured {
    p50: f64,
    p99: f64,
    usage: Usage,
    counts: proxy::Counts,
    runs: usize,
}

fn latencies(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    (percentile(&samples, 50.0), percentile(&samples, 99.0))
}

/// What the targets are checked against, per scenario.
struct ScenarioResult {
    name: &'static str,
    handler_calls: f64,
    wcu: f64,
    cost: f64,
    step_functions: Option<f64>,
    aws_durable: Option<f64>,
}

/// The targets, checked against this run.
fn write_targets(
    report: &mut String,
    results: &[ScenarioResult],
    (replay_10k_ms, replay_bytes_per_entry): (f64, f64),
) -> Result<(), Error> {
    let find = |name: &str| results.iter().find(|r| r.name == name);
    let yes = |ok: bool| if ok { "met" } else { "**not met**" };
    writeln!(
        report,
        "## Targets
"
    )?;
    writeln!(report, "| target | measured | |")?;
    writeln!(report, "|---|---|---|")?;
    let steps: Vec<&ScenarioResult> = ["1-step ctx.run", "3-step ctx.run", "10-step ctx.run"]
        .iter()
        .filter_map(|n| find(n))
        .collect();
    let calls: Vec<String> = steps
        .iter()
        .map(|r| format!("{:.2}", r.handler_calls))
        .collect();
    writeln!(
        report,
        "| exactly 1 handler Lambda call for an N-step run without waits | {} (1, 3, 10 steps) | {} |",
        calls.join(", "),
        yes(steps.iter().all(|r| (r.handler_calls - 1.0).abs() < 1e-9))
    )?;
    if let (Some(one), Some(ten)) = (find("1-step ctx.run"), find("10-step ctx.run")) {
        let per_step = (ten.wcu - one.wcu) / 9.0;
        writeln!(
            report,
            "| 1 DynamoDB write per `ctx.run` step, <= 1 WCU under 1 KB | {per_step:.2} WCU per step (10-step minus 1-step, over 9) | {} |",
            yes(per_step <= 1.0 + 1e-9)
        )?;
    }
    if let Some(three) = find("3-step ctx.run") {
        writeln!(
            report,
            "| modeled cost of a 3-step run <= $5 per million | {} | {} |",
            money(three.cost),
            yes(three.cost * 1e6 <= 5.0)
        )?;
        if let Some(sfn) = three.step_functions {
            let ratio = sfn / three.cost;
            writeln!(
                report,
                "| >= 20x cheaper than Step Functions Standard | {ratio:.1}x ({} vs {}) | {} |",
                money(three.cost),
                money(sfn),
                yes(ratio >= 20.0)
            )?;
        }
        if let Some(peer) = three.aws_durable {
            let ratio = peer / three.cost;
            writeln!(
                report,
                "| cheaper than AWS Lambda durable functions (3-step run) | {ratio:.1}x ({} vs {}) | {} |",
                money(three.cost),
                money(peer),
                yes(ratio > 1.0)
            )?;
        }
    }
    writeln!(
        report,
        "| replay of 10,000 entries under 50 ms | {replay_10k_ms:.2} ms | {} |",
        yes(replay_10k_ms < 50.0)
    )?;
    writeln!(
        report,
        "| replay allocates at most 4 KiB per entry (10,000 entries) | {replay_bytes_per_entry:.0} bytes | {} |\n",
        yes(replay_bytes_per_entry <= 4096.0)
    )?;
    Ok(())
}

async fn scenarios(args: &Args, report: &mut String) -> Result<Vec<ScenarioResult>, Error> {
    let counter = proxy::Counter::default();
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], args.proxy_port));
    proxy::serve(
        listen,
        durable_local::deploy::clients::endpoint()
            .trim_end_matches('/')
            .to_owned(),
        counter.clone(),
    )
    .await?;
    let clients = Clients::local().await;
    let extra_env = BTreeMap::from([
        (
            "DURABLE_AWS_ENDPOINT".to_owned(),
            format!("http://127.0.0.1:{}", args.proxy_port),
        ),
        // The sweep sent after each scenario looks at every run of it (a minute's worth of
        // invocations in production, where it runs every minute with a 30 s grace).
        ("DURABLE_SWEEP_GRACE_MS".to_owned(), "1000".to_owned()),
    ]);
    let functions = [HandlerFunction {
        name: "bench",
        binary: "bench-durable",
        timeout_secs: 30,
        env: &[("DURABLE_IN_PROCESS_WAIT_MS", "0")],
    }];
    eprintln!("deploying {PREFIX} from {}", args.bin_dir.display());
    let deployment = deploy::deploy_with(
        &clients,
        PREFIX,
        &args.bin_dir,
        &durable_local::deploy::Deployment::default_path().with_file_name("bench-deployment.json"),
        &functions,
        &extra_env,
        ORCHESTRATOR_TIMEOUT_SECS,
    )
    .await?;
    let zip = durable_local::deploy::package::package(&args.bin_dir.join("bench-plain"))?;
    deploy::upsert_function(
        &clients,
        &format!("{PREFIX}-plain"),
        zip,
        BTreeMap::new(),
        30,
    )
    .await?;
    let client = OrchestratorClient::new(&deployment.orchestrator_url)?;
    let log = Path::new(".local-aws/logs/lambda/invocations.jsonl").to_path_buf();
    let orchestrator_fn = format!("{PREFIX}-orchestrator");
    let handler_fn = format!("{PREFIX}-bench");
    let plain_fn = format!("{PREFIX}-plain");

    let mut summary = String::new();
    writeln!(summary, "## Summary (per invocation)\n")?;
    writeln!(summary, "| scenario | p50 | p99 | plain p50 | Lambda calls (orch. + handler) | DynamoDB writes / WCU | reads / RCU | S3 | Scheduler | orch. CPU | cost per 1M | Step Functions Standard per 1M | Step Functions Express per 1M | AWS Lambda durable functions per 1M |")?;
    writeln!(
        summary,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )?;
    let mut details = String::new();
    let mut results = Vec::new();
    for scenario in scenario_list(args.runs) {
        eprintln!("scenario: {}", scenario.name);
        for seq in 0..2 {
            run_once(&scenario, &client, &clients, &deployment, 1_000_000 + seq).await?;
            if let Some(p) = &scenario.plain {
                run_plain(&clients, p).await?;
            }
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // Each scenario starts in a minute of its own: its runs' dated metadata items are then
        // the only ones in the minutes' partitions its sweep reads.
        let into_minute = durable_protocol::clock::now_millis() % 60_000;
        tokio::time::sleep(Duration::from_millis(60_000 - into_minute + 200)).await;
        let first_minute = (durable_protocol::clock::now_millis() / 60_000) as u32;
        let (_, offset) = lambda_calls(&log, 0);
        counter.take();
        let cpu_before = cpu_ms(&orchestrator_fn);
        let handler_cpu_before = cpu_ms(&handler_fn);
        let mut samples = Vec::new();
        for seq in 0..scenario.runs {
            samples.push(
                run_once(&scenario, &client, &clients, &deployment, seq)
                    .await?
                    .as_secs_f64()
                    * 1000.0,
            );
        }
        // Let asynchronous tails (clean-up, events) finish before counting.
        tokio::time::sleep(Duration::from_millis(2000)).await;
        let orchestrator_cpu_ms = (cpu_ms(&orchestrator_fn) - cpu_before).max(0.0);
        let handler_cpu_ms = (cpu_ms(&handler_fn) - handler_cpu_before).max(0.0);
        let (calls, _) = lambda_calls(&log, offset);
        // The lease sweep's share: once the runs' leases have ended (the orchestrator call's
        // deadline plus 5 s) it reads the minutes' partitions of the scenario's dated runs
        // and each run it meets in the `leases` index once. Its own Lambda call is not
        // counted: it runs once a minute whatever the traffic.
        let last_minute = (durable_protocol::clock::now_millis() / 60_000) as u32;
        tokio::time::sleep(Duration::from_secs(ORCHESTRATOR_TIMEOUT_SECS as u64 + 6)).await;
        deploy::sweep_minutes(
            &clients,
            &deployment.orchestrator_function,
            first_minute,
            last_minute,
        )
        .await?;
        let counts = counter.take();
        let n = scenario.runs as f64;
        let sum = |f: &str| -> (f64, f64) {
            calls
                .iter()
                .filter(|(name, _)| name == f)
                .fold((0.0, 0.0), |a, (_, ms)| (a.0 + 1.0, a.1 + ms))
        };
        let (oc, oms) = sum(&orchestrator_fn);
        let (hc, hms) = sum(&handler_fn);
        let stat = |service: &str, f: &dyn Fn(&str) -> bool| -> proxy::OpStats {
            counts
                .iter()
                .filter(|((s, op), _)| s == service && f(op))
                .fold(proxy::OpStats::default(), |a, (_, b)| proxy::OpStats {
                    requests: a.requests + b.requests,
                    wcu: a.wcu + b.wcu,
                    rcu: a.rcu + b.rcu,
                })
        };
        let dynamo = stat("dynamodb", &|_| true);
        let s3_writes = stat("s3", &|op| {
            matches!(op, "PutObject" | "ListObjectsV2" | "DeleteObjects")
        })
        .requests;
        let s3_reads = stat("s3", &|op| matches!(op, "GetObject" | "HeadObject")).requests;
        let schedules = stat("scheduler", &|op| op == "CreateSchedule").requests;
        let usage = Usage {
            orchestrator_calls: oc / n,
            orchestrator_ms: oms / n,
            orchestrator_cpu_ms: orchestrator_cpu_ms / n,
            handler_calls: hc / n,
            handler_ms: hms / n,
            handler_cpu_ms: handler_cpu_ms / n,
            wru: dynamo.wcu / n,
            rru: dynamo.rcu / n,
            s3_writes: s3_writes as f64 / n,
            s3_reads: s3_reads as f64 / n,
            schedules: schedules as f64 / n,
        };
        let (p50, p99) = latencies(samples);
        let measured = Measured {
            p50,
            p99,
            usage,
            counts,
            runs: scenario.runs,
        };
        // The baseline, measured right after.
        let plain = match &scenario.plain {
            Some(payload) => {
                let (_, offset) = lambda_calls(&log, 0);
                let plain_cpu_before = cpu_ms(&plain_fn);
                let mut samples = Vec::new();
                for _ in 0..scenario.runs {
                    samples.push(run_plain(&clients, payload).await?.as_secs_f64() * 1000.0);
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                let (calls, _) = lambda_calls(&log, offset);
                let ms: f64 = calls
                    .iter()
                    .filter(|(f, _)| *f == plain_fn)
                    .map(|c| c.1)
                    .sum::<f64>()
                    / n;
                let plain_cpu = (cpu_ms(&plain_fn) - plain_cpu_before).max(0.0) / n;
                let (p50, p99) = latencies(samples);
                Some(Plain {
                    p50,
                    p99,
                    ms,
                    cpu_ms: plain_cpu,
                })
            }
            None => None,
        };
        let (cost, step_functions, aws_durable) =
            write_scenario(&mut summary, &mut details, &scenario, &measured, plain)?;
        results.push(ScenarioResult {
            name: scenario.name,
            handler_calls: measured.usage.handler_calls,
            wcu: measured.usage.wru,
            cost,
            step_functions,
            aws_durable,
        });
    }
    writeln!(report, "{summary}")?;
    writeln!(
        report,
        "Cost model: {}. Lambda: $0.20 per million requests, $0.0000133334 per GB-s (arm64), billed per ms, \
         orchestrator {} MB, handlers {} MB (the CDK defaults); billed durations as measured here \
         (from the event reaching the runtime to its answer, as Lambda bills), with \
         the CPU time measured here (on a full x86 core) stretched by the CPU share of that memory size \
         (a full vCPU at 1,769 MB), since waiting takes as long on Lambda but computing takes longer. \
         Each scenario's counts include the lease sweep's reads (it reads every finished run's \
         item once; its own Lambda call, once a minute whatever the traffic, is not counted). \
         DynamoDB on-demand: $0.625 per million WRU, $0.125 per million RRU (consumed capacity as \
         DynamoDB Local reports it). S3: $0.005 per 1,000 PUT/LIST, $0.0004 per 1,000 GET. \
         Scheduler: $1.00 per million invocations. Step Functions Standard: $25 per million state \
         transitions (one per Task or Wait state), plus one Lambda task invocation per task at the \
         plain baseline's duration. Peers: {}; an AWS durable function's invocations are \
         modeled at the plain baseline's duration (a lower bound: its checkpoint calls take time \
         too), its checkpoints at 1 KB each and retained {RETENTION_DAYS} day like ours; an \
         Express workflow runs the same Lambda tasks one after another. Free tiers ignored.\n",
        cost::PRICES_AS_OF,
        cost::ORCHESTRATOR_MB,
        cost::HANDLER_MB,
        cost::PEER_PRICES_AS_OF
    )?;
    writeln!(report, "{details}")?;
    Ok(results)
}

fn money(per_invocation: f64) -> String {
    format!("${:.2}", per_invocation * 1e6)
}

/// How long finished runs are kept, ours (the orchestrator's default) and the modeled peers'.
const RETENTION_DAYS: f64 = 1.0;

/// The orchestrator's timeout in the benchmark deployment: short, so that the leases of a
/// scenario's runs end (and the sweep reads them) soon after it.
const ORCHESTRATOR_TIMEOUT_SECS: i32 = 15;

/// The plain-Lambda baseline of a scenario, per call.
#[derive(Debug, Clone, Copy)]
struct Plain {
    p50: f64,
    p99: f64,
    ms: f64,
    cpu_ms: f64,
}

fn write_scenario(
    summary: &mut String,
    details: &mut String,
    scenario: &Scenario,
    m: &Measured,
    plain: Option<Plain>,
) -> Result<(f64, Option<f64>, Option<f64>), Error> {
    let u = &m.usage;
    let n = m.runs as f64;
    let dynamo_writes: u64 = m
        .counts
        .iter()
        .filter(|((s, op), _)| s == "dynamodb" && !proxy::is_read(op))
        .map(|(_, st)| st.requests)
        .sum();
    let dynamo_reads: u64 = m
        .counts
        .iter()
        .filter(|((s, op), _)| s == "dynamodb" && proxy::is_read(op))
        .map(|(_, st)| st.requests)
        .sum();
    let s3: u64 = m
        .counts
        .iter()
        .filter(|((s, _), _)| s == "s3")
        .map(|(_, st)| st.requests)
        .sum();
    let cost = cost::cost(u);
    let sfn_cost = scenario.step_functions.map(|(t, tasks)| {
        let (ms, cpu) = plain.map_or((1.0, 0.0), |p| (p.ms, p.cpu_ms));
        cost::step_functions(t, tasks, ms, cpu)
    });
    let sfn = sfn_cost.map_or_else(|| "n/a (256 KB payload limit)".into(), money);
    let (task_ms, task_cpu) = plain.map_or((1.0, 0.0), |p| (p.ms, p.cpu_ms));
    let express = scenario
        .express
        .map(|(tasks, waits)| cost::step_functions_express(tasks, task_ms, task_cpu, waits));
    let aws_durable = scenario
        .aws_durable
        .map(|d| cost::aws_durable(&d, task_ms, task_cpu, RETENTION_DAYS));
    let na = |why: &str| format!("n/a ({why})");
    writeln!(
        summary,
        "| {} | {:.1} ms | {:.1} ms | {} | {:.2} + {:.2} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} | {:.2} | {:.1} ms | {} | {} | {} | {} |",
        scenario.name,
        m.p50,
        m.p99,
        plain.map_or("n/a".into(), |p| format!("{:.1} ms", p.p50)),
        u.orchestrator_calls,
        u.handler_calls,
        dynamo_writes as f64 / n,
        u.wru,
        dynamo_reads as f64 / n,
        u.rru,
        s3 as f64 / n,
        u.schedules,
        u.orchestrator_cpu_ms,
        money(cost.total()),
        sfn,
        express.map_or_else(|| na("no callbacks or large payloads"), money),
        aws_durable.map_or_else(|| na("no keyed state or 256 KB checkpoint limit"), money),
    )?;
    writeln!(details, "## {}\n", scenario.name)?;
    if !scenario.note.is_empty() {
        writeln!(details, "{}\n", scenario.note)?;
    }
    writeln!(
        details,
        "{} measured runs after 2 warm-up runs. Per invocation:\n",
        m.runs
    )?;
    writeln!(details, "| what | durable | plain Lambda |")?;
    writeln!(details, "|---|---|---|")?;
    match plain {
        Some(Plain {
            p50,
            p99,
            ms,
            cpu_ms,
        }) => {
            writeln!(
                details,
                "| latency p50 / p99 | {:.1} / {:.1} ms | {:.1} / {:.1} ms |",
                m.p50, m.p99, p50, p99
            )?;
            writeln!(
                details,
                "| latency ratio (p50) | {:.1}x | 1x |",
                m.p50 / p50.max(0.001)
            )?;
            writeln!(
                details,
                "| Lambda invocations | orchestrator {:.2} ({:.1} ms), handler {:.2} ({:.1} ms) | 1 ({:.1} ms) |",
                u.orchestrator_calls, u.orchestrator_ms, u.handler_calls, u.handler_ms, ms
            )?;
            let plain_cost = cost::plain_call(ms, cpu_ms, cost::HANDLER_MB);
            writeln!(
                details,
                "| modeled cost per million | {} | {} |",
                money(cost.total()),
                money(plain_cost)
            )?;
        }
        None => {
            writeln!(
                details,
                "| latency p50 / p99 | {:.1} / {:.1} ms | n/a |",
                m.p50, m.p99
            )?;
            writeln!(
                details,
                "| Lambda invocations | orchestrator {:.2} ({:.1} ms), handler {:.2} ({:.1} ms) | n/a |",
                u.orchestrator_calls, u.orchestrator_ms, u.handler_calls, u.handler_ms
            )?;
            writeln!(
                details,
                "| modeled cost per million | {} | n/a |",
                money(cost.total())
            )?;
        }
    }
    writeln!(
        details,
        "| CPU time (full core) | orchestrator {:.1} ms, handler {:.1} ms | {} |",
        u.orchestrator_cpu_ms,
        u.handler_cpu_ms,
        plain.map_or("".into(), |p| format!("{:.1} ms", p.cpu_ms))
    )?;
    writeln!(
        details,
        "| modeled Lambda duration | orchestrator {:.1} ms at {} MB, handler {:.1} ms at {} MB | {} |",
        cost::on_lambda_ms(u.orchestrator_ms, u.orchestrator_cpu_ms, cost::ORCHESTRATOR_MB),
        cost::ORCHESTRATOR_MB,
        cost::on_lambda_ms(u.handler_ms, u.handler_cpu_ms, cost::HANDLER_MB),
        cost::HANDLER_MB,
        plain.map_or("".into(), |p| format!(
            "{:.1} ms at {} MB",
            cost::on_lambda_ms(p.ms, p.cpu_ms, cost::HANDLER_MB),
            cost::HANDLER_MB
        ))
    )?;
    writeln!(
        details,
        "| cost split per million | Lambda {}, DynamoDB {}, S3 {}, Scheduler {} | |",
        money(cost.lambda),
        money(cost.dynamo),
        money(cost.s3),
        money(cost.scheduler)
    )?;
    writeln!(details, "\n| service | operation | requests | WCU | RCU |")?;
    writeln!(details, "|---|---|---|---|---|")?;
    for ((service, op), st) in &m.counts {
        writeln!(
            details,
            "| {service} | {op} | {:.2} | {:.2} | {:.2} |",
            st.requests as f64 / n,
            st.wcu / n,
            st.rcu / n
        )?;
    }
    writeln!(details)?;
    Ok((cost.total(), sfn_cost, aws_durable))
}

/// The in-memory replay benchmark; returns the median time for 10,000 entries (ms) and the
/// bytes it allocated per entry.
async fn replay_bench(report: &mut String) -> Result<(f64, f64), Error> {
    writeln!(report, "## Replay in the SDK (in memory)\n")?;
    writeln!(
        report,
        "A handler of N `ctx.run` steps pushed with all N recorded: the SDK replays them without \
         touching the store. Median of 7 runs (release build); allocations counted by a global \
         allocator around the replay (the push is built before).\n"
    )?;
    writeln!(
        report,
        "| journal entries | time (median) | per entry | allocations | allocated bytes | allocations per entry | bytes per entry |"
    )?;
    writeln!(report, "|---|---|---|---|---|---|---|")?;
    let mut last = (0.0, 0.0);
    for n in [10u32, 1_000, 10_000] {
        let mut times = Vec::new();
        let mut allocs = (0, 0);
        for _ in 0..7 {
            let request = lambda_handler_sdk::bench::replay_request(n);
            let (a0, b0) = (
                ALLOCATIONS.load(Ordering::Relaxed),
                ALLOCATED_BYTES.load(Ordering::Relaxed),
            );
            let t = lambda_handler_sdk::bench::replay(request).await;
            allocs = (
                ALLOCATIONS.load(Ordering::Relaxed) - a0,
                ALLOCATED_BYTES.load(Ordering::Relaxed) - b0,
            );
            times.push(t.as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        last = (median, allocs.1 as f64 / f64::from(n));
        writeln!(
            report,
            "| {n} | {median:.2} ms | {:.2} µs | {} | {} | {:.1} | {:.0} |",
            median * 1000.0 / f64::from(n),
            allocs.0,
            allocs.1,
            allocs.0 as f64 / f64::from(n),
            allocs.1 as f64 / f64::from(n)
        )?;
    }
    writeln!(report)?;
    Ok(last)
}
