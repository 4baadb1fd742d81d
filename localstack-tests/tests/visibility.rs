//! End-to-end tests of the read API (`GET /invocations`, `GET /invocations/{id}`, `GET
//! /objects/{service}/{key}`), the `durable` read verbs and the web console in a real browser,
//! against the local AWS environment. Run through `scripts/test.sh`.

use durable_local::client::Answer;
use durable_local::harness::{run_id, Env};
use durable_protocol::clock::now_millis;
use durable_protocol::views::{InvocationDetail, InvocationPage, ObjectView, ValueView};
use durable_protocol::InvocationId;
use serde_json::json;
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(60);

async fn get(env: &Env, path: &str) -> Answer {
    env.client
        .request(reqwest::Method::GET, path, None, &[])
        .await
        .expect("request")
}

/// Every page of `query` (followed by its cursors), checking each is newest first.
async fn all_pages(env: &Env, query: &str) -> (Vec<InvocationPage>, Vec<String>) {
    let mut pages = Vec::new();
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/invocations?{query}&cursor={c}"),
            None => format!("/invocations?{query}"),
        };
        let answer = get(env, &path).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.raw);
        let page: InvocationPage = serde_json::from_value(answer.body).expect("a page");
        let created: Vec<u64> = page.invocations.iter().map(|i| i.created_at).collect();
        assert!(
            created.windows(2).all(|w| w[0] >= w[1]),
            "newest first: {created:?}"
        );
        ids.extend(page.invocations.iter().map(|i| i.invocation_id.to_string()));
        cursor = page.next_cursor.clone();
        pages.push(page);
        if cursor.is_none() {
            return (pages, ids);
        }
        assert!(pages.len() < 100, "the listing ends");
    }
}

#[tokio::test]
async fn listing_filters_and_pages_through_every_kind() {
    let env = Env::load().await;
    let since = now_millis();
    let run = run_id();
    // Plain (dated ids), one idempotent, children of calls, and keyed invocations.
    let mut plain = Vec::new();
    for i in 0..5 {
        plain.push(
            env.send(
                "testbed",
                "steps",
                json!({"run": format!("{run}-{i}"), "steps": 1}),
            )
            .await,
        );
    }
    let idem = env
        .client
        .invoke(
            "testbed",
            "steps",
            &json!({"run": format!("{run}-idem"), "steps": 1}),
            Some(&format!("idem-{run}")),
        )
        .await
        .expect("request");
    assert_eq!(idem.status, 200, "{}", idem.raw);
    let idem = idem.invocation_id.expect("id");
    let fan = env.send("testbed", "fan_out", json!(2)).await;
    let key = format!("list-{run}");
    let keyed = vec![
        env.send_keyed("counter", &key, "add", json!(1)).await,
        env.send_keyed("counter", &key, "add", json!(2)).await,
    ];
    for id in plain.iter().chain([&idem, &fan]).chain(&keyed) {
        env.wait_status(id, "completed", WITHIN).await;
    }
    let window = format!("since={since}");

    // Every kind is listed, once, across pages of 3.
    let (pages, ids) = all_pages(&env, &format!("{window}&service=testbed&limit=3")).await;
    assert!(pages.len() >= 3, "{} pages", pages.len());
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no invocation twice: {ids:?}");
    for id in plain.iter().chain([&idem, &fan]) {
        assert!(ids.contains(id), "{id} listed: {ids:?}");
    }
    let children: Vec<&String> = ids
        .iter()
        .filter(|i| {
            pages.iter().flat_map(|p| &p.invocations).any(|s| {
                s.invocation_id.as_str() == i.as_str()
                    && s.caller.as_ref().is_some_and(|c| c.as_str() == fan)
            })
        })
        .collect();
    assert_eq!(
        children.len(),
        2,
        "the two children of the fan-out: {ids:?}"
    );

    // Filters: handler, status, key, service.
    let (_, squares) = all_pages(&env, &format!("{window}&service=testbed&handler=square")).await;
    assert!(children.iter().all(|c| squares.contains(c)), "{squares:?}");
    let (pages, _) = all_pages(&env, &format!("{window}&service=testbed&handler=square")).await;
    assert!(pages
        .iter()
        .flat_map(|p| &p.invocations)
        .all(|s| s.handler == "square"));
    let (_, suspended) = all_pages(
        &env,
        &format!("{window}&service=testbed&status=suspended,failed"),
    )
    .await;
    assert!(
        plain.iter().all(|id| !suspended.contains(id)),
        "completed ones are not listed as suspended"
    );
    let (pages, by_key) = all_pages(&env, &format!("{window}&service=counter&key={key}")).await;
    assert_eq!(
        by_key.iter().collect::<HashSet<_>>(),
        keyed.iter().collect::<HashSet<_>>()
    );
    assert!(pages
        .iter()
        .flat_map(|p| &p.invocations)
        .all(|s| s.key.as_deref() == Some(key.as_str()) && s.status == "completed"));
    // Without a service: every registered service.
    let (_, everything) = all_pages(&env, &format!("{window}&limit=1000")).await;
    for id in plain.iter().chain(&keyed) {
        assert!(everything.contains(id), "{id} in the unfiltered listing");
    }
    // An `until` before them all lists none of them.
    let (_, before) = all_pages(
        &env,
        &format!("since={}&until={}", since - 60_000, since - 1),
    )
    .await;
    assert!(plain.iter().all(|id| !before.contains(id)));

    // The sweep marks the minutes it saw, for listings once its cursor is past them.
    let (from, to) = ((since / 60_000) as u32, (now_millis() / 60_000) as u32);
    env.sweep_minutes(from, to).await;
    let busy = durable_local::inspect::busy_minutes(
        &env.clients,
        &env.deployment.table,
        "testbed",
        from,
        to,
    )
    .await
    .expect("busy minutes");
    assert!(
        busy.iter().any(|(_, b)| b.dated) && busy.iter().any(|(_, b)| b.indexed),
        "dated and indexed invocations were seen: {busy:?}"
    );
}

#[tokio::test]
async fn bad_listing_queries_are_400_with_a_json_body() {
    let env = Env::load().await;
    for (query, code) in [
        ("limit=0", "invalid_limit"),
        ("limit=100000", "invalid_limit"),
        ("cursor=not-a-cursor", "invalid_cursor"),
        ("status=sleeping", "invalid_status"),
        ("since=2000&until=1000", "invalid_window"),
        ("since=tomorrow", "invalid_since"),
        ("colour=red", "unknown_parameter"),
    ] {
        let answer = get(&env, &format!("/invocations?{query}")).await;
        assert_eq!(answer.status, 400, "{query}: {}", answer.raw);
        assert_eq!(answer.body["code"], code, "{query}: {}", answer.raw);
        assert!(answer.body["message"].is_string(), "{}", answer.raw);
    }
    let unknown = get(&env, "/invocations?service=nosuchservice").await;
    assert_eq!(unknown.status, 404, "{}", unknown.raw);
    assert_eq!(unknown.body["code"], "unknown_service");
    let bad_id = get(&env, "/invocations/not-an-id").await;
    assert_eq!(bad_id.status, 400, "{}", bad_id.raw);
    let missing = get(
        &env,
        &format!("/invocations/inv_testbed.{}", "0".repeat(32)),
    )
    .await;
    assert_eq!(missing.status, 404, "{}", missing.raw);
    assert_eq!(missing.body["code"], "unknown_invocation");
    let post = env
        .client
        .request(reqwest::Method::DELETE, "/invocations", None, &[])
        .await
        .unwrap();
    assert_eq!(post.status, 405, "{}", post.raw);
}

async fn describe(env: &Env, id: &str) -> InvocationDetail {
    let answer = get(env, &format!("/invocations/{id}")).await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    serde_json::from_value(answer.body).expect("a detail")
}

#[tokio::test]
async fn describe_links_children_and_shows_retries_and_waits() {
    let env = Env::load().await;
    // A fan-out: its calls name their children, which name their caller.
    let fan = env.send("testbed", "fan_out", json!(2)).await;
    env.wait_status(&fan, "completed", WITHIN).await;
    let d = describe(&env, &fan).await;
    assert_eq!(d.children.len(), 2, "{d:?}");
    assert_eq!(d.timeline.len(), 2);
    for (row, child) in d.timeline.iter().zip(&d.children) {
        assert_eq!(row.kind, "call");
        let c = row.child.as_ref().expect("the call's child");
        assert_eq!(c, child);
        assert_eq!(c.status, "completed");
        assert!(row.started_at.is_some() && row.ended_at.is_some() && row.duration_ms.is_some());
        assert!(
            matches!(row.result, Some(ValueView::Inline { .. })),
            "{row:?}"
        );
        let kid = describe(&env, c.invocation_id.as_str()).await;
        assert_eq!(
            kid.summary.caller.as_ref().map(InvocationId::as_str),
            Some(fan.as_str())
        );
        assert_eq!(kid.caller_entry, Some(row.index));
    }
    assert!(
        d.expires_at.is_some(),
        "a finished invocation shows its expiry"
    );

    // A step that failed twice before it succeeded: each attempt's error.
    let run = run_id();
    let flaky = env.send("testbed", "flaky", json!({"run": run})).await;
    env.wait_status(&flaky, "completed", WITHIN).await;
    let d = describe(&env, &flaky).await;
    assert_eq!(d.summary.attempt, 3);
    let errors: Vec<&str> = d
        .attempt_errors
        .iter()
        .map(|e| e.message.as_str())
        .collect();
    assert_eq!(errors.len(), 2, "{d:?}");
    assert!(
        errors[0].contains("transient failure #1") && errors[1].contains("#2"),
        "{errors:?}"
    );
    assert!(d.attempt_errors.iter().all(|e| e.entry == Some(0)));
    let step = &d.timeline[0];
    assert_eq!((step.kind.as_str(), step.name.as_str()), ("run", "flaky"));
    assert_eq!(step.retries, 2, "recorded after two failed attempts");
    assert!(step.epoch.is_some_and(|e| e >= 3), "{step:?}");
    assert!(step.started_at.is_some(), "a step records when it started");

    // A suspended sleep: its wake time, still pending.
    let nap = env.send("testbed", "nap", json!({"millis": 120_000})).await;
    env.wait_status(&nap, "suspended", WITHIN).await;
    let d = describe(&env, &nap).await;
    assert_eq!(d.summary.status, "suspended");
    let sleep = d
        .timeline
        .iter()
        .find(|r| r.kind == "sleep")
        .expect("sleep row");
    let wake = sleep.wake_at.expect("wake time");
    let started = d.timeline[0].started_at.expect("start step");
    assert!(
        (119_000..=125_000).contains(&(wake - started)),
        "wakes two minutes after the start: {wake} - {started}"
    );
    assert!(sleep.pending && sleep.ended_at.is_none());
    assert_eq!(d.waiting_on, vec![sleep.index]);
    let killed = env.manage(&nap, "kill", None).await;
    assert_eq!(killed.status, 200, "{}", killed.raw);

    // A saga cancelled while it waits on an awakeable: the awakeable's id, the cancellation
    // on it, and the compensation after it.
    let saga = env
        .send("testbed", "saga", json!({"run": run, "wait": "awakeable"}))
        .await;
    env.wait_status(&saga, "suspended", WITHIN).await;
    let published = env.published(&run, "awakeable").await;
    let d = describe(&env, &saga).await;
    let awk = d
        .timeline
        .iter()
        .find(|r| r.kind == "awakeable")
        .expect("awakeable");
    assert_eq!(awk.awakeable_id.as_deref(), Some(published.as_str()));
    assert!(awk.pending);
    assert_eq!(env.manage(&saga, "cancel", None).await.status, 200);
    env.wait_status(&saga, "cancelled", WITHIN).await;
    let d = describe(&env, &saga).await;
    let names: Vec<(&str, &str)> = d
        .timeline
        .iter()
        .map(|r| (r.kind.as_str(), r.name.as_str()))
        .collect();
    assert!(names.contains(&("run", "compensate")), "{names:?}");
    let awk = d.timeline.iter().find(|r| r.kind == "awakeable").unwrap();
    assert_eq!(awk.error.as_ref().map(|e| e.code), Some(409), "{awk:?}");
    assert_eq!(
        d.failure.as_ref().map(|f| f.message.as_str()),
        Some("cancelled")
    );
}

#[tokio::test]
async fn object_state_shows_values_lock_and_queue() {
    let env = Env::load().await;
    let key = format!("state-{}", run_id());
    let id = env.send_keyed("counter", &key, "add", json!(5)).await;
    env.wait_status(&id, "completed", WITHIN).await;
    let answer = get(&env, &format!("/objects/counter/{key}")).await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    let view: ObjectView = serde_json::from_value(answer.body).unwrap();
    assert_eq!(view.key, key);
    assert!(
        view.lock_holder.is_none() && view.queue.is_empty(),
        "{view:?}"
    );
    assert!(
        view.state
            .iter()
            .any(|s| matches!(&s.value, ValueView::Inline { value } if value == &json!(5))),
        "{view:?}"
    );
    // A holder that waits: the lock names it, the next arrival is queued.
    let holder = env
        .send_keyed(
            "counter",
            &key,
            "hold",
            json!({"run": run_id(), "count": 9, "sleep_ms": 8000}),
        )
        .await;
    env.wait_status(&holder, "suspended", WITHIN).await;
    let queued = env.send_keyed("counter", &key, "add", json!(1)).await;
    let view: ObjectView =
        serde_json::from_value(get(&env, &format!("/objects/counter/{key}")).await.body).unwrap();
    assert_eq!(
        view.lock_holder.as_ref().map(InvocationId::as_str),
        Some(holder.as_str())
    );
    assert!(
        view.queue
            .iter()
            .any(|q| q.invocation_id.as_str() == queued),
        "{view:?}"
    );
    env.wait_status(&queued, "completed", WITHIN).await;
    assert_eq!(
        get(&env, "/objects/testbed/x").await.status,
        400,
        "a service has no state"
    );
    assert_eq!(get(&env, "/objects/nosuch/x").await.status, 404);
}

/// The `durable` command's path (built by `cargo build -p durable-cli`).
fn durable_binary() -> PathBuf {
    let root = durable_local::deploy::repo_root();
    let status = Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "durable-cli"])
        .current_dir(&root)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "durable-cli builds");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    target.join("debug").join("durable")
}

fn durable(args: &[&str]) -> (i32, String) {
    let out = Command::new(durable_binary())
        .args(args)
        .current_dir(durable_local::deploy::repo_root())
        .env("NO_COLOR", "1")
        .output()
        .expect("durable runs");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn the_cli_lists_describes_and_tails() {
    let env = Env::load().await;
    let run = run_id();
    let id = env
        .send("testbed", "steps", json!({"run": run, "steps": 2}))
        .await;
    env.wait_status(&id, "completed", WITHIN).await;
    let (code, text) = durable(&[
        "list",
        "--service",
        "testbed",
        "--since",
        "5m",
        "--limit",
        "500",
    ]);
    assert_eq!(code, 0, "{text}");
    assert!(text.starts_with("ID "), "a table with headers: {text}");
    for column in [
        "SERVICE/HANDLER",
        "KEY",
        "STATUS",
        "STARTED",
        "DURATION",
        "ATTEMPTS",
    ] {
        assert!(
            text.lines().next().unwrap().contains(column),
            "{column}: {text}"
        );
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with(&id) && l.contains("testbed/steps") && l.contains("completed")),
        "{text}"
    );
    let (code, text) = durable(&["--json", "list", "--since", "5m", "--status", "completed"]);
    assert_eq!(code, 0, "{text}");
    let listed: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert!(listed["invocations"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["status"] == "completed"));
    let (code, text) = durable(&["describe", &id]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("Timeline:") && text.contains("run") && text.contains("step-2"),
        "{text}"
    );
    let (code, text) = durable(&["list", "--status", "sleeping"]);
    assert_eq!(code, 1, "an API error exits 1: {text}");
    assert!(text.contains("invalid_status"), "{text}");
    let (code, text) = durable(&["state", "counter", "nobody"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("lock free"), "{text}");
    // `tail` prints an invocation that starts while it follows.
    let binary = durable_binary();
    let tail = std::thread::spawn(move || {
        Command::new(binary)
            .args(["tail", "--for-secs", "12", "--every-ms", "500"])
            .current_dir(durable_local::deploy::repo_root())
            .output()
            .expect("tail runs")
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    let late = env
        .send(
            "testbed",
            "steps",
            json!({"run": format!("{run}-late"), "steps": 1}),
        )
        .await;
    let out = tail.join().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.lines().any(|l| l.contains(&late)),
        "tail saw {late}: {text}"
    );
}

/// Runs Chromium headless on `url` with `extra` flags; returns its stdout.
fn chromium(chromium: &str, url: &str, extra: &[&str]) -> String {
    let profile = std::env::temp_dir().join(format!("durable-chromium-{}", run_id()));
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--virtual-time-budget=8000",
            "--window-size=1280,900",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stderr(Stdio::null())
        .output()
        .expect("chromium runs");
    let _ = std::fs::remove_dir_all(profile);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn the_console_shows_a_known_invocation_in_a_real_browser() {
    let env = Env::load().await;
    let root = durable_local::deploy::repo_root();
    let installed = Command::new(root.join("scripts/install-chromium.sh"))
        .output()
        .expect("the install script runs");
    assert!(
        installed.status.success(),
        "{}",
        String::from_utf8_lossy(&installed.stderr)
    );
    let chromium_path = String::from_utf8_lossy(&installed.stdout).trim().to_owned();

    let fan = env.send("testbed", "fan_out", json!(3)).await;
    env.wait_status(&fan, "completed", WITHIN).await;

    // The console through `durable console` on 127.0.0.1 (a free port).
    let mut console = Killed(
        Command::new(durable_binary())
            .args(["console", "--port", "0"])
            .current_dir(&root)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("durable console starts"),
    );
    let mut first = String::new();
    BufReader::new(console.0.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first
        .trim()
        .strip_prefix("console: ")
        .expect(&first)
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let list = chromium(
        &chromium_path,
        &format!("{url}#/?since=10m"),
        &["--dump-dom"],
    );
    let row = format!("data-id=\"{fan}\"");
    assert!(list.contains(&row), "the list shows {fan}: {list}");
    // Open it the way a click does: the row's link.
    let link = format!("href=\"#/inv/{fan}\"");
    assert!(
        list.contains(&link),
        "the row links to the invocation: {link}"
    );
    let page_url = format!("{url}#/inv/{fan}");
    let page = chromium(&chromium_path, &page_url, &["--dump-dom"]);
    assert!(page.contains(&format!("id=\"inv-id\">{fan}<")), "{page}");
    let rows = page.matches("class=\"tl-row\" data-kind=\"call\"").count();
    assert_eq!(rows, 3, "one timeline row per call: {page}");
    assert_eq!(
        page.matches("class=\"child-link\" href=\"#/inv/inv_")
            .count(),
        3,
        "calls link to children"
    );
    let shot = root.join("target/console-screenshot.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &chromium_path,
        &page_url,
        &[&format!("--screenshot={}", shot.display())],
    );
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
}

/// A child process killed when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The lines of `function`'s logs with all of `needles`, waiting up to 20 s for the first.
async fn log_lines(function: &str, needles: &[&str]) -> Vec<String> {
    for _ in 0..100 {
        let lines = durable_local::inspect::lambda_log_lines(function, needles).unwrap();
        if !lines.is_empty() {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no log line of {function} with {needles:?}");
}

#[tokio::test]
async fn traces_flow_from_caller_to_child_and_metrics_are_logged() {
    let env = Env::load().await;
    let trace_id = run_id();
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let answer = env
        .client
        .post_json("/testbed/fan_out", "2", &[("traceparent", &traceparent)])
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.raw);
    let parent = answer.invocation_id.expect("id");
    let d = describe(&env, &parent).await;
    assert_eq!(d.trace_id, trace_id, "the caller's trace is kept");
    for child in &d.children {
        let c = describe(&env, child.invocation_id.as_str()).await;
        assert_eq!(c.trace_id, trace_id, "children run in their caller's trace");
    }
    // Without a header an invocation still has a trace (derived from its id).
    let plain = env.send("testbed", "square", json!(3)).await;
    env.wait_status(&plain, "completed", WITHIN).await;
    let p = describe(&env, &plain).await;
    assert_eq!(p.trace_id.len(), 32);
    assert_ne!(p.trace_id, trace_id);

    // The orchestrator logged EMF metric lines, with the invocation and its trace.
    let orchestrator = &env.deployment.orchestrator_function;
    let child = d.children[0].invocation_id.to_string();
    let emf = log_lines(orchestrator, &["\"_aws\"", &parent, "InvocationsCompleted"]).await;
    let doc: serde_json::Value = serde_json::from_str(&emf[0]).expect("an EMF document");
    let directive = &doc["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "Durable", "{doc}");
    assert_eq!(directive["Dimensions"], json!([["Service"]]), "{doc}");
    assert_eq!(doc["Service"], "testbed");
    assert_eq!(doc["TraceId"], trace_id.as_str());
    assert_eq!(doc["InvocationsCompleted"], 1.0);
    assert!(doc["DurationMs"].as_f64().is_some(), "{doc}");
    log_lines(orchestrator, &["\"_aws\"", &parent, "InvocationsStarted"]).await;
    let child_line = log_lines(orchestrator, &["\"_aws\"", &child, "InvocationsCompleted"]).await;
    let child_doc: serde_json::Value = serde_json::from_str(&child_line[0]).unwrap();
    assert_eq!(
        child_doc["TraceId"],
        trace_id.as_str(),
        "one trace: {child_doc}"
    );

    // Log lines are JSON with the invocation's fields and its trace: a retried step's warning
    // from the handler, the orchestrator's line about the failed attempt.
    let flaky_trace = run_id();
    let answer = env
        .client
        .post_json(
            "/testbed/flaky",
            &json!({"run": run_id()}).to_string(),
            &[(
                "traceparent",
                &format!("00-{flaky_trace}-00f067aa0ba902b7-01"),
            )],
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.raw);
    let flaky = answer.invocation_id.expect("id");
    let needle = format!("\"trace_id\":\"{flaky_trace}\"");
    let handler_line = log_lines(&env.function("testbed"), &[&needle, "step failed"]).await;
    let line: serde_json::Value = serde_json::from_str(&handler_line[0]).expect("JSON");
    assert_eq!(line["span"]["invocation_id"], flaky.as_str(), "{line}");
    assert_eq!(line["span"]["attempt"], 1, "{line}");
    assert_eq!(line["step"], "flaky", "{line}");
    assert_eq!(line["level"], "WARN", "{line}");
    let driver_line = log_lines(orchestrator, &[&needle, "attempt failed"]).await;
    let line: serde_json::Value = serde_json::from_str(&driver_line[0]).expect("JSON");
    assert_eq!(line["span"]["invocation_id"], flaky.as_str(), "{line}");
    assert_eq!(line["span"]["service"], "testbed", "{line}");
}
