//! `durable`: act on invocations through the orchestrator's Function URL, in the local
//! environment or on AWS (requests signed with SigV4, as the URL's `AWS_IAM` auth requires).
//!
//! * [`endpoint`]: where the Function URL is (a flag, CDK outputs, the local deployment) and
//!   how to reach it.
//! * [`sign`]: SigV4 signing of requests to a Function URL on AWS.

mod endpoint;
mod sign;

use clap::{Parser, Subcommand};
use endpoint::Endpoint;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "durable",
    version,
    about = "Act on durable invocations: cancel, kill, pause, resume, retry, restart"
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
    let endpoint = Endpoint::find(cli.url.as_deref(), cli.outputs.as_deref())?;
    let (id, action, body) = match &cli.command {
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
    };
    let path = format!("/invocations/{}/{action}", encode_segment(id));
    let (status, answer) = endpoint.post(&path, body.as_ref()).await?;
    if cli.json {
        println!("{answer}");
    } else if (200..300).contains(&status) {
        println!("{:<48} {:<10} STATUS", "INVOCATION", "ACTION");
        println!(
            "{:<48} {:<10} {}",
            answer["invocation_id"].as_str().unwrap_or(id),
            action,
            answer["status"].as_str().unwrap_or("?")
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
    Ok(if (200..300).contains(&status) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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
