//! From zero to a tested durable service of one's own, as a new user goes: `durable new`
//! makes a crate whose unit tests pass as made; its integration tests (which deploy the crate
//! into the local environment with the test kit) pass; `durable-local deploy --handler`
//! deploys it and the CLIs call it and read it back.

use durable_local::deploy::repo_root;
use durable_local::harness::Env;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// One of the checkout's built binaries (`scripts/deploy-local.sh` builds them).
fn tool(name: &str) -> PathBuf {
    let path = repo_root().join("target/debug").join(name);
    assert!(path.is_file(), "{} is not built", path.display());
    path
}

/// Runs `cmd`, failing the test with its output if it fails; its stdout.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("the command runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A new crate, built into the checkout's target folder so that the engine's crates are not
/// compiled again.
fn cargo_in(dir: &Path) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(dir)
        .env("CARGO_TARGET_DIR", repo_root().join("target"));
    cmd
}

#[tokio::test]
async fn a_new_service_passes_its_tests_deploys_and_answers() {
    let env = Env::load().await;
    let dir = std::env::temp_dir().join(format!("durable-new-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let made = run(Command::new(tool("durable"))
        .args(["new", "shop", "--path"])
        .arg(&dir));
    assert!(made.contains("made"), "{made}");

    // The unit tests (in-process) and the integration tests (which deploy the crate with
    // the test kit and drive it through the local environment) pass as made.
    let tested = cargo_in(&dir)
        .args(["test", "--", "--include-ignored"])
        .output()
        .unwrap();
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&tested.stdout),
        String::from_utf8_lossy(&tested.stderr)
    );
    assert!(tested.status.success(), "{report}");
    assert!(report.contains("test result: ok. 4 passed"), "{report}");
    assert!(report.contains("test result: ok. 2 passed"), "{report}");

    // The CLI way: deploy the crate, start an order, confirm it, read the answer.
    let deployed = run(Command::new(tool("durable-local"))
        .env("CARGO_TARGET_DIR", repo_root().join("target"))
        .args(["deploy", "--handler"])
        .arg(format!("shop={}", dir.display())));
    assert!(deployed.contains("service       shop -> "), "{deployed}");
    let sent = run(Command::new(tool("durable-local")).args([
        "send",
        "shop",
        "place",
        r#"{"id":"o-cli","amount_cents":500}"#,
    ]));
    let id = sent
        .split("(invocation ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .expect("the invocation id")
        .to_owned();
    env.wait_status(&id, "suspended", Duration::from_secs(30))
        .await;
    let described = run(Command::new(tool("durable")).args(["describe", &id, "--json"]));
    let detail: serde_json::Value = serde_json::from_str(&described).unwrap();
    let awakeable = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|row| row["awakeable_id"].as_str())
        .expect("the awakeable in the timeline")
        .to_owned();
    run(Command::new(tool("durable-local")).args(["resolve", &awakeable, "true"]));
    let answer = run(Command::new(tool("durable-local")).args(["attach", &id]));
    assert!(answer.contains("\"status\": \"charged\""), "{answer}");
    assert!(
        answer.contains("\"charge_id\": \"ch-o-cli-500\""),
        "{answer}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
