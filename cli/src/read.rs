//! The read verbs: `list`, `describe`, `state` and `tail`, printed as tables for people (or
//! the API's JSON with `--json`).

use crate::endpoint::Endpoint;
use crate::CliError;
use durable_protocol::views::{
    InvocationDetail, InvocationPage, InvocationSummary, ObjectView, TimelineRow, ValueView,
};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

/// What `list` asks for.
pub struct ListArgs<'a> {
    pub services: &'a [String],
    pub statuses: &'a [String],
    pub handler: Option<&'a str>,
    pub key: Option<&'a str>,
    pub since: &'a str,
    pub until: Option<&'a str>,
    pub limit: usize,
}

impl ListArgs<'_> {
    fn query(&self, limit: usize, cursor: Option<&str>) -> String {
        let mut q = vec![
            format!("since={}", encode(self.since)),
            format!("limit={limit}"),
        ];
        if !self.services.is_empty() {
            q.push(format!("service={}", encode(&self.services.join(","))));
        }
        if !self.statuses.is_empty() {
            q.push(format!("status={}", encode(&self.statuses.join(","))));
        }
        for (name, value) in [
            ("handler", self.handler),
            ("key", self.key),
            ("until", self.until),
        ] {
            if let Some(v) = value {
                q.push(format!("{name}={}", encode(v)));
            }
        }
        if let Some(c) = cursor {
            q.push(format!("cursor={c}"));
        }
        q.join("&")
    }
}

/// The outcome of a read verb: what to print and whether the API said yes.
pub type Printed = Result<bool, CliError>;

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    crate::encode_segment(value)
}

fn api_error(status: u16, answer: &serde_json::Value) {
    eprintln!(
        "{status} {}: {}",
        answer["code"].as_str().unwrap_or("error"),
        answer["message"].as_str().unwrap_or(&answer.to_string())
    );
}

/// `GET path`: the answer when it is `200`, else `None` after printing the API's error.
async fn fetch(endpoint: &Endpoint, path: &str) -> Result<Option<serde_json::Value>, CliError> {
    let (status, answer) = endpoint.get(path).await?;
    if status != 200 {
        api_error(status, &answer);
        return Ok(None);
    }
    Ok(Some(answer))
}

fn parse<T: serde::de::DeserializeOwned>(answer: serde_json::Value) -> Result<T, CliError> {
    serde_json::from_value(answer).map_err(|e| CliError::Http(format!("unexpected answer: {e}")))
}

/// `durable list`: pages through the listing until `limit` rows (or the end).
pub async fn list(endpoint: &Endpoint, args: &ListArgs<'_>, json: bool) -> Printed {
    let mut rows: Vec<InvocationSummary> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = format!(
            "/invocations?{}",
            args.query(args.limit - rows.len(), cursor.as_deref())
        );
        let Some(answer) = fetch(endpoint, &path).await? else {
            return Ok(false);
        };
        let page: InvocationPage = parse(answer)?;
        rows.extend(page.invocations);
        cursor = page.next_cursor;
        if rows.len() >= args.limit || cursor.is_none() {
            break;
        }
    }
    if json {
        println!(
            "{}",
            serde_json::json!({ "invocations": rows, "next_cursor": cursor })
        );
        return Ok(true);
    }
    print_table(
        &[
            "ID",
            "SERVICE/HANDLER",
            "KEY",
            "STATUS",
            "STARTED",
            "DURATION",
            "ATTEMPTS",
        ],
        rows.iter()
            .map(|r| {
                vec![
                    r.invocation_id.to_string(),
                    format!("{}/{}", r.service, r.handler),
                    r.key.clone().unwrap_or_else(|| "-".into()),
                    r.status.clone(),
                    time(r.created_at),
                    duration(r.duration_ms),
                    r.attempt.to_string(),
                ]
            })
            .collect(),
    );
    if cursor.is_some() {
        eprintln!("(more: raise --limit or narrow --since)");
    }
    Ok(true)
}

/// `durable describe`: the metadata, then the timeline, children under the entries that
/// made them.
pub async fn describe(endpoint: &Endpoint, id: &str, json: bool) -> Printed {
    let path = format!("/invocations/{}", crate::encode_segment(id));
    let Some(answer) = fetch(endpoint, &path).await? else {
        return Ok(false);
    };
    if json {
        println!("{answer}");
        return Ok(true);
    }
    let d: InvocationDetail = parse(answer)?;
    let s = &d.summary;
    let red = Paint::new();
    let field = |name: &str, value: String| println!("{:<16} {value}", format!("{name}:"));
    field("Invocation", s.invocation_id.to_string());
    field("Handler", format!("{}/{}", s.service, s.handler));
    if let Some(k) = &s.key {
        field("Key", k.clone());
    }
    field("Status", red.status(&s.status));
    field("Started", time(s.created_at));
    if let Some(at) = s.completed_at {
        field("Finished", time(at));
    }
    field("Duration", duration(s.duration_ms));
    field("Attempt", s.attempt.to_string());
    field("Version", d.function_arn.clone());
    if let Some(c) = &s.caller {
        field(
            "Caller",
            format!("{c} (entry {})", d.caller_entry.unwrap_or(0)),
        );
    }
    if !d.waiters.is_empty() {
        field("Also awaited by", d.waiters.join(", "));
    }
    if let Some(k) = &s.idempotency_key {
        field("Idempotency", k.clone());
    }
    match d.expires_at {
        Some(at) => field(
            "Expires",
            format!(
                "{} (retention {})",
                time(at),
                duration(d.retention_secs * 1000)
            ),
        ),
        None => field(
            "Retention",
            format!("{} once finished", duration(d.retention_secs * 1000)),
        ),
    }
    if let Some(at) = d.next_attempt_at {
        field("Next attempt", time(at));
    }
    field("Input", value(&d.input));
    if let Some(o) = &d.output {
        field("Output", value(o));
    }
    if let Some(f) = &d.failure {
        field("Failure", red.error(&format!("{} {}", f.code, f.message)));
    }
    if let Some(e) = &d.last_error {
        field("Last error", red.error(e));
    }
    if !d.attempt_errors.is_empty() {
        println!("\nRetries:");
        for e in &d.attempt_errors {
            println!(
                "  attempt {} at {}{}: {}",
                e.attempt,
                time(e.at),
                e.entry.map(|i| format!(" (entry {i})")).unwrap_or_default(),
                red.error(&e.message)
            );
        }
    }
    println!("\nTimeline:");
    let t0 = s.created_at;
    let mut rows = Vec::new();
    for r in &d.timeline {
        rows.push(timeline_row(r, t0, &red));
        if let Some(c) = &r.child {
            rows.push(vec![
                String::new(),
                String::new(),
                format!("└─ {}", c.kind),
                format!("{} {}", c.target, c.invocation_id),
                String::new(),
                String::new(),
                String::new(),
                red.status(&c.status),
            ]);
        }
    }
    print_table(
        &[
            "#", "OP", "KIND", "NAME", "START", "DURATION", "RETRIES", "RESULT",
        ],
        rows,
    );
    Ok(true)
}

fn timeline_row(r: &TimelineRow, t0: u64, paint: &Paint) -> Vec<String> {
    let start = r
        .started_at
        .or(r.ended_at)
        .map(|at| format!("+{}", duration(at.saturating_sub(t0))))
        .unwrap_or_default();
    let took = match (r.pending, r.duration_ms) {
        (true, _) => "waiting".to_owned(),
        (false, Some(ms)) => duration(ms),
        (false, None) => String::new(),
    };
    let mut result = match (&r.error, &r.result) {
        (Some(e), _) => paint.error(&format!("{} {}", e.code, e.message)),
        (None, Some(v)) => value(v),
        (None, None) => String::new(),
    };
    if let Some(at) = r.wake_at {
        result = format!("{result} wakes {}", time(at)).trim().to_owned();
    }
    if let Some(a) = &r.awakeable_id {
        result = format!("{result} {a}").trim().to_owned();
    }
    vec![
        r.index.to_string(),
        r.op.clone(),
        r.kind.clone(),
        r.name.clone(),
        start,
        took,
        match r.retries {
            0 => String::new(),
            n => n.to_string(),
        },
        result,
    ]
}

/// `durable state`: an object's state keys and values, lock holder and queue.
pub async fn state(endpoint: &Endpoint, service: &str, key: &str, json: bool) -> Printed {
    let path = format!(
        "/objects/{}/{}",
        crate::encode_segment(service),
        crate::encode_segment(key)
    );
    let Some(answer) = fetch(endpoint, &path).await? else {
        return Ok(false);
    };
    if json {
        println!("{answer}");
        return Ok(true);
    }
    let o: ObjectView = parse(answer)?;
    println!(
        "{}/{}: lock {}",
        o.service,
        o.key,
        o.lock_holder
            .as_ref()
            .map_or("free".to_owned(), |h| format!("held by {h}"))
    );
    print_table(
        &["KEY", "VALUE"],
        o.state
            .iter()
            .map(|s| vec![s.name.clone(), value(&s.value)])
            .collect(),
    );
    if !o.queue.is_empty() {
        println!("\nQueued:");
        print_table(
            &["INVOCATION", "DUE"],
            o.queue
                .iter()
                .map(|q| vec![q.invocation_id.to_string(), time(q.due_at)])
                .collect(),
        );
    }
    Ok(true)
}

/// `durable tail`: prints invocations as they appear and as their status changes, polling
/// the listing; stops after `for_secs` if given.
pub async fn tail(
    endpoint: &Endpoint,
    services: &[String],
    every: Duration,
    for_secs: Option<u64>,
) -> Printed {
    let started = std::time::Instant::now();
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut first = true;
    let since = "2m";
    loop {
        let args = ListArgs {
            services,
            statuses: &[],
            handler: None,
            key: None,
            since,
            until: None,
            limit: 200,
        };
        let path = format!("/invocations?{}", args.query(200, None));
        let Some(answer) = fetch(endpoint, &path).await? else {
            return Ok(false);
        };
        let page: InvocationPage = parse(answer)?;
        for r in page.invocations.iter().rev() {
            let id = r.invocation_id.to_string();
            if seen.get(&id) != Some(&r.status) {
                if !first || r.status != "completed" {
                    println!(
                        "{} {:<10} {} {}/{}{}",
                        time(r.updated_at),
                        r.status,
                        id,
                        r.service,
                        r.handler,
                        r.completed_at
                            .map(|_| format!(" ({})", duration(r.duration_ms)))
                            .unwrap_or_default()
                    );
                }
                seen.insert(id, r.status.clone());
            }
        }
        first = false;
        if for_secs.is_some_and(|s| started.elapsed() >= Duration::from_secs(s)) {
            return Ok(true);
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = tokio::signal::ctrl_c() => return Ok(true),
        }
    }
}

/// A value for one table cell: inline JSON (cut), or where a large one is.
fn value(v: &ValueView) -> String {
    match v {
        ValueView::Inline { value } => {
            let text = value.to_string();
            match text.chars().count() > 60 {
                true => format!("{}…", text.chars().take(59).collect::<String>()),
                false => text,
            }
        }
        ValueView::Stored { size, .. } => format!("({size} bytes in S3)"),
    }
}

/// A UTC time as `2026-12-01 10:00:00Z`.
pub fn time(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A duration for people: `850ms`, `3.2s`, `4.5m`, `2.0h`.
pub fn duration(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{:.1}m", ms as f64 / 60_000.0),
        3_600_000..172_800_000 => format!("{:.1}h", ms as f64 / 3_600_000.0),
        _ => format!("{:.1}d", ms as f64 / 86_400_000.0),
    }
}

/// Prints rows under headers in aligned columns (as `kubectl get` does).
pub fn print_table(headers: &[&str], rows: Vec<Vec<String>>) {
    let visible = |s: &str| strip_ansi(s).chars().count();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(visible(cell));
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        let text: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| match i == last {
                true => c.clone(),
                false => format!("{c}{}", " ".repeat(widths[i] - visible(c))),
            })
            .collect();
        println!("{}", text.join("   ").trim_end());
    };
    line(headers.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        line(row);
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_escape = false;
    for c in s.chars() {
        match (in_escape, c) {
            (false, '\u{1b}') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, c) => out.push(c),
        }
    }
    out
}

/// Highlights errors in red when stdout is a terminal.
struct Paint {
    on: bool,
}

impl Paint {
    fn new() -> Self {
        Self {
            on: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    fn error(&self, text: &str) -> String {
        match self.on {
            true => format!("\u{1b}[31m{text}\u{1b}[0m"),
            false => text.to_owned(),
        }
    }

    fn status(&self, status: &str) -> String {
        match status {
            "failed" | "killed" | "cancelled" => self.error(status),
            _ => status.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations_read_well() {
        assert_eq!(time(1_764_000_000_000), "2025-11-24 16:00:00Z");
        assert_eq!(duration(850), "850ms");
        assert_eq!(duration(3_200), "3.2s");
        assert_eq!(duration(270_000), "4.5m");
        assert_eq!(duration(86_400_000), "24.0h");
        assert_eq!(duration(7 * 86_400_000), "7.0d");
        assert_eq!(strip_ansi("\u{1b}[31mred\u{1b}[0m"), "red");
    }

    #[test]
    fn list_queries_carry_every_filter() {
        let services = vec!["a".to_owned(), "b".to_owned()];
        let statuses = vec!["failed".to_owned()];
        let args = ListArgs {
            services: &services,
            statuses: &statuses,
            handler: Some("h"),
            key: None,
            since: "1h",
            until: None,
            limit: 5,
        };
        assert_eq!(
            args.query(5, Some("ab")),
            "since=1h&limit=5&service=a%2Cb&status=failed&handler=h&cursor=ab"
        );
    }
}
