//! `durable`: list, inspect and act on invocations through the orchestrator's Function URL,
//! in the local environment or on AWS (requests signed with SigV4, as the URL's `AWS_IAM` auth
//! requires).
//!
//! * [`endpoint`]: where the Function URL is (a flag, CDK outputs, the local deployment) and
//!   how to reach it.
//! * [`sign`]: SigV4 signing of requests to a Function URL on AWS.
//! * [`read`]: `list`, `describe`, `state`, `tail`.
//! * [`console`]: the web console served on 127.0.0.1.
//! * [`new`]: `durable new`, a new handler crate from the template.

mod console;
mod endpoint;
mod new;
mod read;
mod sign;

use clap::{Parser, Subcommand};
use endpoint::Endpoint;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "durable",
    version,
    about = "Make durable services and list, inspect and act on their invocations: new, list, describe, state, tail, console, cancel, kill, pause, resume, retry, restart"
)]
struct Cli {
    /// The orchestrator's Function URL (default: the CDK outputs file, else the local
    /// deployment recorded by `durable-local deploy`).
    #[arg(long, global = true, env = "DURABLE_URL")]
    url: Option<String>,
    /// A `cdk deploy --outputs-file` file whose `IngressUrl` output is the Function URL.
    #[arg(long, global = true, env = "DURABLE_CDK_OUTPUTS")]
    outputs: Option<PathBuf>,
    /// Print the orchestrator's JSON answer instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make a new handler crate: a handler with unit tests, integration tests against the
    /// local environment, a CDK stack and a README; it builds and passes its tests as made.
    New {
        /// The crate's name (also its service's and its binary's).
        name: String,
        /// Where to make it (default: ./NAME).
        #[arg(long)]
        path: Option<PathBuf>,
        /// The engine's checkout (its SDK, test kit and constructs; default: the checkout
        /// this binary was built from).
        #[arg(long)]
        engine: Option<PathBuf>,
    },
    /// List invocations, newest first.
    List {
        /// Only these statuses (repeat or comma-separate): queued, running, suspended,
        /// paused, completed, failed, cancelled, killed.
        #[arg(long, value_delimiter = ',')]
        status: Vec<String>,
        /// Only these services (repeat or comma-separate).
        #[arg(long, value_delimiter = ',')]
        service: Vec<String>,
        /// Only this handler.
        #[arg(long)]
        handler: Option<String>,
        /// Only this object or workflow key.
        #[arg(long)]
        key: Option<String>,
        /// Created since: a distance (`30s`, `15m`, `1h`, `7d`), ms since the epoch or an
        /// RFC 3339 UTC time.
        #[arg(long, default_value = "1h")]
        since: String,
        /// Created until (same forms as `--since`; default now).
        #[arg(long)]
        until: Option<String>,
        /// At most this many rows.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Show one invocation: its metadata and its journal as a timeline.
    Describe { invocation_id: String },
    /// Show an object's (or workflow's) state, lock holder and queue.
    State { service: String, key: String },
    /// Follow invocations as they start and finish (Ctrl-C stops).
    Tail {
        /// Only these services.
        #[arg(long, value_delimiter = ',')]
        service: Vec<String>,
        /// How often to look, in ms.
        #[arg(long, default_value_t = 1000)]
        every_ms: u64,
        /// Stop after this many seconds.
        #[arg(long)]
        for_secs: Option<u64>,
    },
    /// Serve the web console on 127.0.0.1 (requests are forwarded to the Function URL, signed
    /// on AWS).
    Console {
        /// The port (0: any free one).
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
    /// Cancel cooperatively: the handler sees `409 cancelled` at its next durable await and may
    /// compensate; awaited children are cancelled too.
    Cancel { invocation_id: String },
    /// Kill at once: no more handler code runs, its object lock is handed on, its awaited
    /// children are killed, its callers get `409 killed`.
    Kill { invocation_id: String },
    /// Stop retrying (nothing runs, nothing is scheduled) until resumed.
    Pause { invocation_id: String },
    /// Continue a paused invocation.
    Resume {
        invocation_id: String,
        /// Run it on another version of its handler Lambda: a number, or `current` (the
        /// version its service is registered with now).
        #[arg(long)]
        version: Option<String>,
    },
    /// Retry now, skipping the current backoff.
    Retry { invocation_id: String },
    /// Run a failed, cancelled, killed or paused invocation again from a journal entry
    /// (entries before it are kept and replayed).
    Restart {
        invocation_id: String,
        /// The first entry to run again (default: the entry that failed).
        #[arg(long = "from")]
        from_entry: Option<u32>,
    },
}

/// Why a command did not work.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The Function URL could not be found or used.
    #[error("{0}")]
    Endpoint(String),
    /// The request did not get an answer.
    #[error("request failed: {0}")]
    Http(String),
    /// Signing failed (no credentials, a bad URL).
    #[error("could not sign the request: {0}")]
    Sign(String),
    /// The arguments do not make sense.
    #[error("{0}")]
    Usage(String),
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, CliError> {
    if let Command::New { name, path, engine } = &cli.command {
        let dir = new::new_crate(&new::NewArgs {
            name,
            path: path.as_deref(),
            engine: engine.as_deref(),
        })?;
        println!("made {}", dir.display());
        println!("  cd {} && cargo test", dir.display());
        println!("  then see its README.md: deploy it locally, call it, look at it");
        return Ok(ExitCode::SUCCESS);
    }
    let endpoint = Endpoint::find(cli.url.as_deref(), cli.outputs.as_deref())?;
    let ok = match &cli.command {
        Command::List {
            status,
            service,
            handler,
            key,
            since,
            until,
            limit,
        } => {
            if !(1..=10_000).contains(limit) {
                return Err(CliError::Usage(format!(
                    "--limit {limit} is not from 1 to 10000"
                )));
            }
            let args = read::ListArgs {
                services: service,
                statuses: status,
                handler: handler.as_deref(),
                key: key.as_deref(),
                since,
                until: until.as_deref(),
                limit: *limit,
            };
            read::list(&endpoint, &args, cli.json).await?
        }
        Command::Describe { invocation_id } => {
            read::describe(&endpoint, invocation_id, cli.json).await?
        }
        Command::State { service, key } => read::state(&endpoint, service, key, cli.json).await?,
        Command::Tail {
            service,
            every_ms,
            for_secs,
        } => {
            read::tail(
                &endpoint,
                service,
                std::time::Duration::from_millis((*every_ms).max(200)),
                *for_secs,
            )
            .await?
        }
        Command::Console { port } => console::serve(endpoint, *port).await?,
        _ => act(&endpoint, &cli.command, cli.json).await?,
    };
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The control verbs: one `POST /invocations/{id}/<action>`, printing the status afterwards.
async fn act(endpoint: &Endpoint, command: &Command, json: bool) -> Result<bool, CliError> {
    let (id, action, body) = match command {
        Command::Cancel { invocation_id } => (invocation_id, "cancel", None),
        Command::Kill { invocation_id } => (invocation_id, "kill", None),
        Command::Pause { invocation_id } => (invocation_id, "pause", None),
        Command::Retry { invocation_id } => (invocation_id, "retry", None),
        Command::Resume {
            invocation_id,
            version,
        } => (
            invocation_id,
            "resume",
            version
                .as_ref()
                .map(|v| serde_json::json!({ "version": v })),
        ),
        Command::Restart {
            invocation_id,
            from_entry,
        } => (
            invocation_id,
            "restart",
            from_entry.map(|n| serde_json::json!({ "from_entry": n })),
        ),
        _ => unreachable!("new and the read verbs are handled by run"),
    };
    let path = format!("/invocations/{}/{action}", encode_segment(id));
    let (status, answer) = endpoint.post(&path, body.as_ref()).await?;
    if json {
        println!("{answer}");
    } else if (200..300).contains(&status) {
        read::print_table(
            &["INVOCATION", "ACTION", "STATUS"],
            vec![vec![
                answer["invocation_id"].as_str().unwrap_or(id).to_owned(),
                action.to_owned(),
                answer["status"].as_str().unwrap_or("?").to_owned(),
            ]],
        );
        if let Some(from) = answer["from_entry"].as_u64() {
            println!("restarted from entry {from}");
        }
    } else {
        let status_now = answer["status"]
            .as_str()
            .map(|s| format!(" (it is {s})"))
            .unwrap_or_default();
        eprintln!(
            "{status} {}: {}{status_now}",
            answer["code"].as_str().unwrap_or("error"),
            answer["message"].as_str().unwrap_or(&answer.to_string())
        );
    }
    Ok((200..300).contains(&status))
}

/// Percent-encodes what a path segment may not hold as is.
fn encode_segment(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_sent_as_one_path_segment() {
        assert_eq!(encode_segment("inv_svc.abc"), "inv_svc.abc");
        assert_eq!(encode_segment("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn the_verbs_parse_with_their_options() {
        let cli = Cli::try_parse_from(["durable", "restart", "inv_x.y", "--from", "2"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Restart {
                from_entry: Some(2),
                ..
            }
        ));
        let cli =
            Cli::try_parse_from(["durable", "resume", "inv_x.y", "--version", "current"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Resume {
                version: Some(_),
                ..
            }
        ));
        assert!(Cli::try_parse_from(["durable", "explode", "inv_x.y"]).is_err());
    }
}
