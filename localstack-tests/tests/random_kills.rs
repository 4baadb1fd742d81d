//! Random kills under load: a mixed workload of a few hundred invocations runs against the
//! crash deployment while random Lambda processes of it (the orchestrator's and the handler's)
//! are killed with SIGKILL for a bounded time; then every invocation must have finished with
//! the right output, object counts must be exact, and no schedule of an unfinished invocation
//! may be left. It reports invocations, kills, recovered, stuck, steps whose closure ran again
//! and timer schedules that outlived their finished invocation.
//!
//! `DURABLE_KILL_INVOCATIONS` (default 150) and `DURABLE_KILL_SECS` (default 40) size it.

mod common;

use common::{invoke, no_schedules_left, set_max_closure_runs, set_recovery, Scenario};
use durable_local::crash::{schedules_of, CrashEnv, CRASH_PREFIX};
use durable_local::harness::run_id;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A random number below `n` (v4 UUIDs are random; no RNG crate needed for a test).
fn below(n: usize) -> usize {
    (uuid::Uuid::new_v4().as_u128() % n as u128) as usize
}

/// The pids of the crash deployment's Lambda processes (found by their environment).
fn lambda_pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let marker = format!("AWS_LAMBDA_FUNCTION_NAME={CRASH_PREFIX}-");
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                env.split(|b| *b == 0)
                    .any(|var| var.starts_with(marker.as_bytes()))
            })
        })
        .collect()
}

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread")]
async fn random_kills_under_load_leave_nothing_stuck() {
    let invocations = setting("DURABLE_KILL_INVOCATIONS", 150) as usize;
    let kill_for = Duration::from_secs(setting("DURABLE_KILL_SECS", 40));
    // Under fire the local Lambda service itself slows down (a killed process holds its
    // invocation until the function's timeout): "stuck" is what has not finished five minutes
    // after the kills stopped.
    set_recovery(kill_for + Duration::from_secs(300));
    // Several kills can land on one step's attempts (the last step's closure is lost with the
    // orchestrator too, until the finish is written): a closure may run once per handler run
    // of its invocation, however many that took.
    set_max_closure_runs(u64::MAX);
    let crash = Arc::new(CrashEnv::deploy().await);
    // Three object keys that many updates race for; their counts must come out exact.
    let keys: Vec<String> = (0..3).map(|_| run_id()).collect();
    let adds: Arc<Vec<AtomicUsize>> = Arc::new((0..3).map(|_| AtomicUsize::new(0)).collect());

    let started = Instant::now();
    let killer = tokio::spawn(async move {
        let mut kills = 0usize;
        while started.elapsed() < kill_for {
            tokio::time::sleep(Duration::from_millis(500 + below(1000) as u64)).await;
            let pids = lambda_pids();
            if pids.is_empty() {
                continue;
            }
            let pid = pids[below(pids.len())];
            if std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .is_ok_and(|s| s.success())
            {
                kills += 1;
            }
        }
        kills
    });

    // The workload: spread over the kill window, a mix of every scenario, plus object updates.
    let mut tasks = Vec::new();
    for i in 0..invocations {
        let crash = crash.clone();
        let keys = keys.clone();
        let adds = adds.clone();
        let at = kill_for.mul_f64(0.8) * i as u32 / invocations as u32;
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(at).await;
            let env = &crash.env;
            let pick = below(10);
            let result = if pick < 3 {
                let k = below(keys.len());
                adds[k].fetch_add(1, Ordering::SeqCst);
                let key = &keys[k];
                invoke(env, &format!("/counter/{key}/add"), json!(1), &run_id())
                    .await
                    .map(|_| ())
            } else {
                let scenario = match pick {
                    3 => Scenario::Sleep,
                    4 => Scenario::Call,
                    5 => Scenario::Send,
                    6 => Scenario::Awakeable,
                    7 => Scenario::Workflow,
                    _ => Scenario::Steps,
                };
                scenario.run(env).await
            };
            (i, result)
        }));
    }
    let kills = killer.await.expect("the killer");
    let mut stuck = Vec::new();
    for task in tasks {
        let (i, result) = task.await.expect("a workload task");
        if let Err(e) = result {
            stuck.push(format!("#{i}: {e}"));
        }
    }
    // Object counts are exact: every add applied once, whatever died.
    let env = &crash.env;
    for (k, key) in keys.iter().enumerate() {
        let want = adds[k].load(Ordering::SeqCst);
        let got = invoke(env, &format!("/counter/{key}/get"), json!(null), &run_id()).await;
        match got {
            Ok(v) if v == json!(want) => {}
            other => stuck.push(format!("counter {key}: {other:?}, expected {want}")),
        }
    }
    // A schedule may outlive its invocation when a driver that had lost it to another one
    // created a timer and was killed before it could see the invocation finished: it fires
    // once, completes nothing that waits, and is gone. Only a schedule of an invocation that
    // has not finished would mean something is stuck.
    let mut orphans = 0;
    if no_schedules_left(env).await.is_err() {
        for name in schedules_of(&env.clients, &env.deployment.orchestrator_function).await {
            // A schedule is named after the id's local part; the service is whichever has it.
            let local = name
                .rsplit_once('-')
                .map_or(name.as_str(), |(local, _)| local);
            let mut stored = None;
            for service in env.deployment.services.keys() {
                let id = format!("inv_{service}.{local}");
                let status =
                    durable_local::inspect::invocation(&env.clients, &env.deployment.table, &id)
                        .await
                        .ok()
                        .and_then(|s| s.meta)
                        .and_then(|m| m.get("status").and_then(|v| v.as_s().ok()).cloned());
                if status.is_some() {
                    stored = status;
                    break;
                }
            }
            match stored.as_deref() {
                Some("completed" | "failed") => orphans += 1,
                other => stuck.push(format!(
                    "schedule {name} of an unfinished invocation ({other:?})"
                )),
            }
        }
    }
    let duplicated = durable_local::inspect::effects_over(&env.clients, &env.deployment.table, 1)
        .await
        .unwrap_or_default();
    let report = format!(
        "random kills: {invocations} invocations (+ object updates), {kills} processes killed in \
         {kill_for:?}; {} recovered, {} stuck or wrong; {} steps ran their closure more than \
         once (at-least-once, recorded once); {orphans} timer schedules outlived their finished \
         invocation (each fires once for nothing); {:.0?} in all",
        invocations - stuck.len().min(invocations),
        stuck.len(),
        duplicated,
        started.elapsed()
    );
    println!("{report}");
    let _ = std::fs::write(crash.dir.join("kills.txt"), &report);
    assert!(stuck.is_empty(), "not recovered:\n{}", stuck.join("\n"));
}
