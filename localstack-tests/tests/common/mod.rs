//! What the crash tests share: the scenarios and their invariants, run against the crash
//! deployment with a client that retries as a user would when a request dies with the process
//! serving it.

#![allow(dead_code)]

use aws_sdk_dynamodb::types::AttributeValue;
use durable_local::crash::{finished_output, schedules_of, until_answered};
use durable_local::harness::{run_id, Env};
use durable_local::inspect;
use reqwest::Method;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long (s) a scenario may take to finish after a crash before it counts as stuck.
static RECOVERY_SECS: AtomicU64 = AtomicU64::new(90);

/// Sets how long a scenario may take before it counts as stuck (a test under heavier fire
/// allows more).
pub fn set_recovery(limit: Duration) {
    RECOVERY_SECS.store(limit.as_secs(), Ordering::Relaxed);
}

/// How often a step's closure may run at most, whatever the handler runs of its invocation (one
/// armed crash point allows 2; random kills bound it by the handler runs alone).
static MAX_CLOSURE_RUNS: AtomicU64 = AtomicU64::new(2);

/// Sets how often a step's closure may run before it counts as wrong.
pub fn set_max_closure_runs(limit: u64) {
    MAX_CLOSURE_RUNS.store(limit, Ordering::Relaxed);
}

/// How long a scenario may take to finish before it counts as stuck.
fn recovery() -> Duration {
    Duration::from_secs(RECOVERY_SECS.load(Ordering::Relaxed))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scenario {
    Steps,
    Sleep,
    Call,
    Send,
    DelayedSend,
    Awakeable,
    Object,
    Workflow,
    Map,
    SharedCall,
    HandlerWorkflow,
}

impl Scenario {
    pub const ALL: [Scenario; 11] = [
        Scenario::Steps,
        Scenario::Sleep,
        Scenario::Call,
        Scenario::Send,
        Scenario::DelayedSend,
        Scenario::Awakeable,
        Scenario::Object,
        Scenario::Workflow,
        Scenario::Map,
        Scenario::SharedCall,
        Scenario::HandlerWorkflow,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Steps => "3 steps",
            Scenario::Sleep => "sleep",
            Scenario::Call => "call",
            Scenario::Send => "send",
            Scenario::DelayedSend => "delayed send",
            Scenario::Awakeable => "awakeable",
            Scenario::Object => "object",
            Scenario::Workflow => "workflow",
            Scenario::Map => "map",
            Scenario::SharedCall => "shared call",
            Scenario::HandlerWorkflow => "handler wf",
        }
    }

    /// Runs the scenario once and checks its invariants; `Err` says what did not hold.
    pub async fn run(self, env: &Env) -> Result<(), String> {
        let run = run_id();
        match self {
            Scenario::Steps => {
                let (id, out) =
                    invoke_traced(env, "/testbed/steps", json!({"run": run, "steps": 3}), &run)
                        .await?;
                expect(&out, &json!({"results": [10, 20, 30]}))?;
                let limit = closure_limit(env, &id.ok_or(NO_ID)?).await?;
                for step in ["step-1", "step-2", "step-3"] {
                    closure_runs_within(env, &run, step, limit).await?;
                }
            }
            Scenario::Sleep => {
                let out = invoke(env, "/testbed/nap", json!({"millis": 1500}), &run).await?;
                let elapsed = out["elapsed_ms"]
                    .as_u64()
                    .ok_or(format!("no elapsed_ms in {out}"))?;
                if elapsed < 1500 {
                    return Err(format!("woke after {elapsed} ms, before the timer"));
                }
            }
            Scenario::Call => {
                let out = invoke(env, "/testbed/chain", json!({"depth": 1}), &run).await?;
                expect(&out, &json!(1))?;
            }
            Scenario::Send | Scenario::DelayedSend => {
                let delay = if self == Scenario::Send { 0 } else { 1500 };
                let out = invoke(
                    env,
                    "/testbed/sends",
                    json!({"run": run, "n": 1, "delay_ms": delay}),
                    &run,
                )
                .await?;
                let child = out[0].as_str().ok_or(format!("no child id in {out}"))?;
                finished_output(&env.client, child, recovery()).await?;
                let limit = closure_limit(env, child).await?;
                closure_runs_within(env, &run, "record-0", limit).await?;
            }
            Scenario::Awakeable => {
                let id = send(
                    env,
                    "/testbed/approval/send",
                    json!({"run": run, "timeout_ms": 120_000}),
                    &run,
                )
                .await?;
                let awakeable = published(env, &run, "awakeable").await?;
                let path = format!("/awakeables/{awakeable}/resolve");
                resolve(env, &path, "\"yes\"").await?;
                let out = finished_output(&env.client, &id, recovery()).await?;
                expect(&out, &json!({"approved": "yes"}))?;
            }
            Scenario::Object => {
                // Two updates race for the key: one holds the lock, the other waits in the inbox.
                let path = format!("/counter/{run}/add");
                let (key_a, key_b) = (format!("{run}-a"), format!("{run}-b"));
                let (a, b) = tokio::join!(
                    invoke(env, &path, json!(1), &key_a),
                    invoke(env, &path, json!(1), &key_b),
                );
                let mut news = [a?["new"].as_i64(), b?["new"].as_i64()];
                news.sort_unstable();
                if news != [Some(1), Some(2)] {
                    return Err(format!("the two updates answered new counts {news:?}"));
                }
                let get = until_answered(
                    &env.client,
                    Method::POST,
                    &format!("/counter/{run}/get"),
                    Some("null"),
                    JSON,
                    recovery(),
                )
                .await?;
                expect(&get.body, &json!(2))?;
                lock_free(env, &format!("obj#counter#{run}")).await?;
            }
            Scenario::Workflow => {
                let id = send(
                    env,
                    &format!("/onboarding/{run}/run/send"),
                    json!(run),
                    &run,
                )
                .await?;
                published(env, &run, "signup").await?;
                let path = format!("/onboarding/{run}/promises/confirmed/resolve");
                resolve(env, &path, "\"link-1\"").await?;
                let out = finished_output(&env.client, &id, recovery()).await?;
                expect(&out, &json!({"confirmed_with": "link-1"}))?;
                let limit = closure_limit(env, &id).await?;
                closure_runs_within(env, &run, "send e-mail", limit).await?;
            }
            Scenario::Map => {
                // Six items two at a time; item 3 sleeps (suspends), item 5 fails.
                let input = json!({"run": run, "items": 6, "max_concurrency": 2, "sleep_ms": 1500});
                let (id, out) = invoke_traced(env, "/testbed/map_items", input, &run).await?;
                let limit = closure_limit(env, &id.ok_or(NO_ID)?).await?;
                let items = out["items"]
                    .as_array()
                    .ok_or(format!("no items in {out}"))?;
                if items.len() != 6 || out["reason"] != "all_completed" {
                    return Err(format!("unexpected batch {out}"));
                }
                for (i, item) in items.iter().enumerate() {
                    let status = if i == 5 { "failed" } else { "succeeded" };
                    if item["status"] != status {
                        return Err(format!("item {i} is {item}, expected {status}"));
                    }
                    closure_runs_within(env, &run, &format!("item-{i}"), limit).await?;
                }
            }
            Scenario::SharedCall => {
                // Two callers, one idempotent call: one of them joins the other's child.
                let key = format!("settle-{run}");
                let input = json!({"run": run, "key": key, "settle_ms": 1500});
                let (key_a, key_b) = (format!("{run}-a"), format!("{run}-b"));
                let (a, b) = tokio::join!(
                    invoke(env, "/testbed/pay_once", input.clone(), &key_a),
                    invoke(env, "/testbed/pay_once", input, &key_b),
                );
                let (a, b) = (a?, b?);
                if a != b || !a.is_u64() {
                    return Err(format!("the callers answered {a} and {b}"));
                }
                let child = durable_protocol::InvocationId::for_idempotency_key(
                    &durable_protocol::ServiceName::new("testbed").map_err(|e| e.to_string())?,
                    &durable_protocol::HandlerName::new("settle").map_err(|e| e.to_string())?,
                    &durable_protocol::IdempotencyKey::new(key).map_err(|e| e.to_string())?,
                );
                let limit = closure_limit(env, child.as_str()).await?;
                closure_runs_within(env, &run, "settle", limit).await?;
            }
            Scenario::HandlerWorkflow => {
                // A handler submits the workflow, resolves its promise and attaches to it.
                let out = invoke(
                    env,
                    "/testbed/onboard",
                    json!({"run": run, "key": run}),
                    &run,
                )
                .await?;
                expect(&out, &json!({"confirmed_with": "from a handler"}))?;
                let id = durable_protocol::InvocationId::for_workflow(
                    &durable_protocol::ServiceName::new("onboarding").map_err(|e| e.to_string())?,
                    &durable_protocol::ObjectKey::new(&run).map_err(|e| e.to_string())?,
                );
                let limit = closure_limit(env, id.as_str()).await?;
                closure_runs_within(env, &run, "send e-mail", limit).await?;
            }
        }
        Ok(())
    }
}

const JSON: &[(&str, &str)] = &[("content-type", "application/json")];

/// `POST path` with an idempotency key, retried while the process serving it dies; then the
/// output, once the invocation finished.
pub async fn invoke(
    env: &Env,
    path: &str,
    input: serde_json::Value,
    key: &str,
) -> Result<serde_json::Value, String> {
    invoke_traced(env, path, input, key)
        .await
        .map(|(_, out)| out)
}

/// [`invoke`], also answering the invocation's id (when the ingress named it).
pub async fn invoke_traced(
    env: &Env,
    path: &str,
    input: serde_json::Value,
    key: &str,
) -> Result<(Option<String>, serde_json::Value), String> {
    let body = input.to_string();
    let headers = [
        ("content-type", "application/json"),
        ("idempotency-key", key),
    ];
    let answer = until_answered(
        &env.client,
        Method::POST,
        path,
        Some(&body),
        &headers,
        recovery(),
    )
    .await?;
    match answer.status {
        200 => Ok((answer.invocation_id, answer.body)),
        202 => {
            let id = answer
                .invocation_id
                .ok_or(format!("202 without x-invocation-id: {}", answer.raw))?;
            let out = finished_output(&env.client, &id, recovery()).await?;
            Ok((Some(id), out))
        }
        s => Err(format!("{path} answered {s}: {}", answer.raw)),
    }
}

/// `POST path` resolving an awakeable or a promise with `body`, retried while the process
/// serving it dies: `409` (a retry after a resolution that did land) counts as done.
async fn resolve(env: &Env, path: &str, body: &str) -> Result<(), String> {
    let answer = until_answered(
        &env.client,
        Method::POST,
        path,
        Some(body),
        JSON,
        recovery(),
    )
    .await?;
    if answer.status != 200 && answer.status != 409 {
        return Err(format!(
            "resolve answered {}: {}",
            answer.status, answer.raw
        ));
    }
    Ok(())
}

/// `POST path` (a `/send`) with an idempotency key: the invocation id.
async fn send(
    env: &Env,
    path: &str,
    input: serde_json::Value,
    key: &str,
) -> Result<String, String> {
    let body = input.to_string();
    let headers = [
        ("content-type", "application/json"),
        ("idempotency-key", key),
    ];
    let answer = until_answered(
        &env.client,
        Method::POST,
        path,
        Some(&body),
        &headers,
        recovery(),
    )
    .await?;
    if answer.status != 202 {
        return Err(format!("{path} answered {}: {}", answer.status, answer.raw));
    }
    answer
        .invocation_id
        .ok_or(format!("202 without x-invocation-id: {}", answer.raw))
}

fn expect(got: &serde_json::Value, want: &serde_json::Value) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("answered {got}, expected {want}"))
    }
}

const NO_ID: &str = "the ingress named no invocation id";

/// How often a step of invocation `id` may have run its closure: once per handler run (every
/// push carries a new epoch and epochs start at 1, so the final epoch bounds the runs however
/// many crashes hit it), and at most `MAX_CLOSURE_RUNS`.
async fn closure_limit(env: &Env, id: &str) -> Result<u64, String> {
    let stored = inspect::invocation(&env.clients, &env.deployment.table, id)
        .await
        .map_err(|e| e.to_string())?;
    let epoch: u64 = stored
        .meta
        .and_then(|m| m.get("epoch").and_then(|v| v.as_n().ok()?.parse().ok()))
        .ok_or(format!("{id} has no stored epoch"))?;
    Ok(epoch.min(MAX_CLOSURE_RUNS.load(Ordering::Relaxed)))
}

/// A step's closure ran at least once and at most `limit` times.
async fn closure_runs_within(env: &Env, run: &str, step: &str, limit: u64) -> Result<(), String> {
    let n = inspect::effect_count(&env.clients, &env.deployment.table, run, step)
        .await
        .map_err(|e| e.to_string())?;
    if (1..=limit).contains(&n) {
        Ok(())
    } else {
        Err(format!(
            "step {step} ran its closure {n} times (at most {limit} allowed)"
        ))
    }
}

/// What the test Lambda published under `test#<run>`/`sk`, once there.
async fn published(env: &Env, run: &str, sk: &str) -> Result<String, String> {
    let started = Instant::now();
    let limit = recovery();
    while started.elapsed() < limit {
        let out = env
            .clients
            .dynamo
            .get_item()
            .table_name(&env.deployment.table)
            .key("pk", AttributeValue::S(format!("test#{run}")))
            .key("sk", AttributeValue::S(sk.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if let Some(v) = out
            .item
            .and_then(|i| i.get("value").and_then(|v| v.as_s().ok().cloned()))
        {
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!(
        "nothing published under {sk} after {limit:?} (stuck)"
    ))
}

/// Nobody holds the object's lock and nothing waits in its inbox.
async fn lock_free(env: &Env, pk: &str) -> Result<(), String> {
    let out = env
        .clients
        .dynamo
        .query()
        .table_name(&env.deployment.table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    for item in out.items() {
        let sk = item
            .get("sk")
            .and_then(|v| v.as_s().ok())
            .map_or("", String::as_str);
        if sk == "lock" && item.contains_key("holder") {
            return Err(format!(
                "{pk}: the lock is still held by {:?}",
                item["holder"]
            ));
        }
        if sk.starts_with("q#") {
            return Err(format!("{pk}: {sk} is left in the inbox"));
        }
    }
    Ok(())
}

/// No schedule targets the crash orchestrator any more (timers fired or deleted) within 60 s:
/// the schedule pump fires due ones every second, and the clean-up of an invocation whose
/// finishing call died is done by the sweep once that call's lease (at most 15 s) has passed.
pub async fn no_schedules_left(env: &Env) -> Result<(), String> {
    let started = Instant::now();
    loop {
        let left = schedules_of(&env.clients, &env.deployment.orchestrator_function).await;
        if left.is_empty() {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(60) {
            return Err(format!("schedules left: {left:?}"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
