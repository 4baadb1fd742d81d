//! A deployment for crash tests: the orchestrator and the test Lambda with their crash points
//! armed through a directory (see `durable_protocol::crash`), short timeouts so that a dead
//! driver's lease ends soon, and a sweep sent every second (the Scheduler's job on AWS); plus
//! a client that retries as a user would when a request dies with the process serving it.

use crate::client::{Answer, OrchestratorClient};
use crate::deploy::clients::Clients;
use crate::deploy::{deploy_with, repo_root, sweep, HandlerFunction};
use crate::harness::Env;
use durable_protocol::crash::CRASH_POINTS_ENV;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The prefix of the crash deployment's resources.
pub const CRASH_PREFIX: &str = "durable-crash";
/// The crash deployment's orchestrator timeout: a driver that dies leaves a lease that ends at
/// most this plus 5 s later.
pub const CRASH_ORCHESTRATOR_TIMEOUT_SECS: i32 = 10;

const TESTBED: &[HandlerFunction] = &[HandlerFunction {
    name: "testbed",
    binary: "test-services",
    timeout_secs: 8,
    env: &[("DURABLE_IN_PROCESS_WAIT_MS", "300")],
}];

/// The crash deployment and its crash-point directory.
pub struct CrashEnv {
    pub env: Env,
    pub dir: PathBuf,
    sweeper: tokio::task::JoinHandle<()>,
}

impl Drop for CrashEnv {
    fn drop(&mut self) {
        self.sweeper.abort();
    }
}

impl CrashEnv {
    /// Deploys (or updates) the crash deployment from the debug binaries and starts sending it
    /// a sweep every second.
    pub async fn deploy() -> CrashEnv {
        let clients = Clients::local().await;
        let dir = repo_root().join(".local-aws").join("crash-points");
        // Nothing left armed by an earlier run.
        let _ = std::fs::remove_dir_all(dir.join("armed"));
        std::fs::create_dir_all(dir.join("armed")).expect("crash-point dir");
        std::fs::create_dir_all(dir.join("fired")).expect("crash-point dir");
        let env: BTreeMap<String, String> = [
            (CRASH_POINTS_ENV, dir.display().to_string()),
            ("DURABLE_SWEEP_GRACE_MS", "1000".into()),
            ("DURABLE_MIN_PUSH_MS", "2000".into()),
            ("DURABLE_FINISH_RESERVE_MS", "1000".into()),
            ("DURABLE_RETRY_MAX_MS", "1000".into()),
            ("DURABLE_REGISTRY_CACHE_MS", "60000".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let out = repo_root().join(".local-aws").join("crash-deployment.json");
        let deployment = deploy_with(
            &clients,
            CRASH_PREFIX,
            &repo_root().join("target/debug"),
            &out,
            TESTBED,
            &env,
            CRASH_ORCHESTRATOR_TIMEOUT_SECS,
        )
        .await
        .expect("the crash deployment");
        let sweeper = {
            let clients = clients.clone();
            let orchestrator = deployment.orchestrator_function.clone();
            tokio::spawn(async move {
                loop {
                    // A sweep that dies (an armed point) is simply sent again.
                    let _ = sweep(&clients, &orchestrator).await;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            })
        };
        CrashEnv {
            env: Env::for_deployment(deployment).await,
            dir,
            sweeper,
        }
    }

    /// Arms crash point `name`: the next process that passes it dies there.
    pub fn arm(&self, name: &str) {
        std::fs::write(self.dir.join("armed").join(name), b"").expect("arm");
    }

    /// Disarms `name`; `true` if it was still armed (no process passed it).
    pub fn disarm(&self, name: &str) -> bool {
        std::fs::remove_file(self.dir.join("armed").join(name)).is_ok()
    }

    /// Forgets the points passed so far.
    pub fn clear_trace(&self) {
        let _ = std::fs::remove_file(self.dir.join("trace"));
    }

    /// The points passed since the trace was cleared, in the order first passed.
    pub fn trace(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.dir.join("trace")).unwrap_or_default();
        let mut seen = BTreeSet::new();
        text.lines()
            .filter(|l| !l.is_empty() && seen.insert(l.to_owned()))
            .map(str::to_owned)
            .collect()
    }
}

/// How long a retrying client waits between two requests: long enough that many clients
/// polling at once do not by themselves saturate the local gateway.
const POLL_PAUSE: Duration = Duration::from_millis(1000);

/// Sends a request until it gets an answer from the orchestrator itself (not a dead process's
/// 5xx from the gateway, not a dropped connection), for at most `within`.
pub async fn until_answered(
    client: &OrchestratorClient,
    method: reqwest::Method,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
    within: Duration,
) -> Result<Answer, String> {
    let started = Instant::now();
    loop {
        match client.request(method.clone(), path, body, headers).await {
            Ok(a) if a.status < 500 || is_failure(&a) => return Ok(a),
            Ok(a) => {
                if started.elapsed() > within {
                    return Err(format!("{path}: still {} after {within:?}", a.status));
                }
            }
            Err(e) => {
                if started.elapsed() > within {
                    return Err(format!("{path}: {e} after {within:?}"));
                }
            }
        }
        tokio::time::sleep(POLL_PAUSE).await;
    }
}

/// Polls `GET /invocations/{id}/output` until the invocation finished, for at most `within`:
/// its output, or its failure as an error.
pub async fn finished_output(
    client: &OrchestratorClient,
    id: &str,
    within: Duration,
) -> Result<serde_json::Value, String> {
    let started = Instant::now();
    loop {
        let answer = client.output(id).await;
        match answer {
            Ok(a) if a.status == 200 => return Ok(a.body),
            Ok(a) if is_failure(&a) => {
                return Err(format!("{id} failed: {} {}", a.status, a.raw));
            }
            _ => {}
        }
        if started.elapsed() > within {
            return Err(format!("{id} not finished after {within:?} (stuck)"));
        }
        tokio::time::sleep(POLL_PAUSE).await;
    }
}

/// The names of the schedules that target `function`.
pub async fn schedules_of(clients: &Clients, function: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut token = None;
    loop {
        let Ok(out) = clients
            .scheduler
            .list_schedules()
            .set_next_token(token)
            .send()
            .await
        else {
            return names;
        };
        for s in out.schedules() {
            let target = s
                .target()
                .map(aws_sdk_scheduler::types::TargetSummary::arn)
                .unwrap_or_default();
            if target.contains(function) {
                names.push(s.name().unwrap_or_default().to_owned());
            }
        }
        token = out.next_token;
        if token.is_none() {
            return names;
        }
    }
}

/// An answer that reports the invocation's own terminal failure (not a dead process).
fn is_failure(a: &Answer) -> bool {
    matches!(
        a.body.get("code").and_then(|c| c.as_str()),
        Some("terminal_error" | "non_determinism")
    )
}
