//! The crash-point sweep: for every scenario and every crash point the scenario passes
//! through, the scenario runs once with that point armed (the process passing it aborts), the
//! sweep and the retries recover, and the invariants hold: the right output, every recorded step
//! ran its closure at most twice and is recorded once, exact object counts, no lock held, no
//! inbox item and no schedule left. It prints the table crash point x scenario.
//!
//! `DURABLE_CRASH_MATRIX=full` runs every point of every scenario; the default (the test
//! command) runs every point of the scenarios that pass the most orchestrator code (a call, an
//! awakeable, an object update) and a spread of the others; `DURABLE_CRASH_MATRIX=<scenario>`
//! runs one scenario's points.

mod common;

use common::{no_schedules_left, Scenario};
use durable_local::crash::CrashEnv;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One cell of the table.
#[derive(Debug)]
enum Cell {
    Recovered(Duration),
    /// The armed point was not passed this time (another path was taken).
    NotReached(Duration),
    Failed(String),
}

/// Which points of `scenario` the chosen matrix runs.
fn chosen(scenario: Scenario, points: Vec<String>, matrix: &str) -> Vec<String> {
    match matrix {
        "full" => points,
        one if one == scenario.name() => points,
        "default" => match scenario {
            Scenario::Call | Scenario::Awakeable | Scenario::Object => points,
            // A spread of the others: every other point.
            _ => points.into_iter().step_by(2).collect(),
        },
        _ => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_crash_point_recovers() {
    let matrix = std::env::var("DURABLE_CRASH_MATRIX").unwrap_or_else(|_| "default".into());
    let crash = CrashEnv::deploy().await;
    let env = &crash.env;
    let mut table: BTreeMap<(String, Scenario), Cell> = BTreeMap::new();
    let started = Instant::now();
    for scenario in Scenario::ALL {
        // Which points it passes: a run with nothing armed, traced.
        crash.clear_trace();
        let clean = match scenario.run(env).await {
            Ok(()) => no_schedules_left(env).await,
            e => e,
        };
        clean.unwrap_or_else(|e| panic!("{} fails without a crash: {e}", scenario.name()));
        tokio::time::sleep(Duration::from_millis(500)).await;
        let points: Vec<String> = crash
            .trace()
            .into_iter()
            .filter(|p| !p.starts_with("sweep."))
            .collect();
        let points = chosen(scenario, points, &matrix);
        for point in points {
            crash.arm(&point);
            let t = Instant::now();
            let result = match scenario.run(env).await {
                Ok(()) => no_schedules_left(env).await,
                e => e,
            };
            let took = t.elapsed();
            let not_reached = crash.disarm(&point);
            let cell = match result {
                Ok(()) if not_reached => Cell::NotReached(took),
                Ok(()) => Cell::Recovered(took),
                Err(e) => Cell::Failed(e),
            };
            eprintln!("{:<34} {:<13} {cell:?}", point, scenario.name());
            table.insert((point, scenario), cell);
        }
    }
    let mut report = format!(
        "crash point x scenario ({matrix} matrix, {:.0?} in all)\n{:<34} {:<13} result\n",
        started.elapsed(),
        "crash point",
        "scenario"
    );
    let mut failed = Vec::new();
    let (mut recovered, mut unreached) = (0, 0);
    for ((point, scenario), cell) in &table {
        let shown = match cell {
            Cell::Recovered(t) => {
                recovered += 1;
                format!("recovered in {:.1} s", t.as_secs_f64())
            }
            Cell::NotReached(t) => {
                unreached += 1;
                format!("not reached ({:.1} s)", t.as_secs_f64())
            }
            Cell::Failed(e) => {
                failed.push(format!("{point} in {}: {e}", scenario.name()));
                format!("STUCK/WRONG: {e}")
            }
        };
        report.push_str(&format!("{point:<34} {:<13} {shown}\n", scenario.name()));
    }
    report.push_str(&format!(
        "{} cases: {recovered} recovered, {unreached} not reached, {} stuck or wrong\n",
        table.len(),
        failed.len()
    ));
    // Printed, and kept beside the crash points for whoever ran the suite without output.
    println!("\n{report}");
    let _ = std::fs::write(crash.dir.join("table.txt"), &report);
    assert!(failed.is_empty(), "not recovered:\n{}", failed.join("\n"));
}
