//! What one push came back with, classified, and the retry arithmetic: which step failed how
//! often, and how long to wait before the next attempt.

use crate::config::Config;
use durable_protocol::{HandlerResponse, JournalEntry, StepFailures, Timer};
use durable_store::invocations::Outcome;
use serde::Deserialize;
use std::time::Duration;

/// What one push came back with, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// It finished; `tail` is its last step's entry when the handler recorded it with the
    /// outcome (nothing durable came after that step).
    Finished {
        outcome: Outcome,
        tail: Option<Box<JournalEntry>>,
    },
    Retry {
        message: String,
        step: Option<u32>,
        retry_after: Option<Duration>,
    },
    Suspend {
        waiting_on: Vec<u32>,
        timers: Vec<Timer>,
    },
    /// The attempt did not answer within what this orchestrator call could wait: it may still
    /// be running, and a fresh call takes the invocation on.
    Overran,
}

/// The step-failure count to carry into the next attempt.
pub fn next_step_failures(
    previous: Option<StepFailures>,
    failed_step: Option<u32>,
) -> Option<StepFailures> {
    match (previous, failed_step) {
        (_, None) => None,
        (Some(p), Some(index)) if p.index == index => Some(StepFailures {
            index,
            count: p.count + 1,
        }),
        (_, Some(index)) => Some(StepFailures { index, count: 1 }),
    }
}

/// The delay before the next attempt: the handler's wish if it has one, else exponential
/// backoff from the configured initial delay; never more than the configured maximum.
pub fn retry_delay(config: &Config, attempt: u32, requested: Option<Duration>) -> Duration {
    let backoff = || {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
        config.retry_initial.saturating_mul(factor)
    };
    requested.unwrap_or_else(backoff).min(config.retry_max)
}

fn classify_lambda_error(function_error: &str, payload: &[u8]) -> Reply {
    #[derive(Deserialize)]
    struct LambdaErrorBody {
        #[serde(rename = "errorType", default)]
        error_type: String,
        #[serde(rename = "errorMessage", default)]
        error_message: String,
    }
    let detail = serde_json::from_slice::<LambdaErrorBody>(payload).map_or_else(
        |_| String::from_utf8_lossy(payload).chars().take(500).collect(),
        |b| format!("{}: {}", b.error_type, b.error_message),
    );
    Reply::Retry {
        message: format!("the handler Lambda failed ({function_error}): {detail}"),
        step: None,
        retry_after: None,
    }
}

/// Maps a handler's answer to a decision.
pub fn classify(function_error: Option<&str>, payload: &[u8]) -> Reply {
    if let Some(fe) = function_error {
        return classify_lambda_error(fe, payload);
    }
    match serde_json::from_slice::<HandlerResponse>(payload) {
        Ok(HandlerResponse::Completed { output, tail }) => Reply::Finished {
            outcome: Outcome::Completed(output),
            tail: tail.map(Box::new),
        },
        Ok(HandlerResponse::Failed { failure, tail }) => Reply::Finished {
            outcome: Outcome::Failed(failure),
            tail: tail.map(Box::new),
        },
        Ok(HandlerResponse::Retryable {
            message,
            step,
            retry_after_ms,
        }) => Reply::Retry {
            message,
            step,
            retry_after: retry_after_ms.map(Duration::from_millis),
        },
        Ok(HandlerResponse::Suspended { waiting_on, timers }) => {
            Reply::Suspend { waiting_on, timers }
        }
        Err(e) => {
            Reply::Retry {
                message: format!(
                "the handler answered something that is not a durable handler response ({e}): {}",
                String::from_utf8_lossy(payload).chars().take(300).collect::<String>()
            ),
                step: None,
                retry_after: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable_protocol::TerminalFailure;

    fn config() -> Config {
        Config {
            table: "t".into(),
            max_attempts: 5,
            on_max_attempts: crate::config::OnMaxAttempts::Fail,
            retry_initial: Duration::from_millis(200),
            retry_max: Duration::from_secs(2),
            retention: Duration::from_secs(60),
            journal_grace: Duration::from_secs(3600),
            registry_cache: Duration::ZERO,
            min_push_time: Duration::from_secs(1),
            finish_reserve: Duration::from_secs(1),
            sweep_grace: Duration::from_secs(30),
            self_function: None,
            scheduler_role_arn: None,
            schedule_group: "default".into(),
            timer_lead: Duration::ZERO,
            bucket: None,
            limits: Default::default(),
        }
    }

    #[test]
    fn step_failures_count_consecutive_failures_of_one_step() {
        assert_eq!(
            next_step_failures(None, Some(2)),
            Some(StepFailures { index: 2, count: 1 })
        );
        let one = Some(StepFailures { index: 2, count: 1 });
        assert_eq!(
            next_step_failures(one, Some(2)),
            Some(StepFailures { index: 2, count: 2 })
        );
        assert_eq!(
            next_step_failures(one, Some(3)),
            Some(StepFailures { index: 3, count: 1 })
        );
        assert_eq!(next_step_failures(one, None), None);
    }

    #[test]
    fn retry_delays_back_off_and_are_capped() {
        let c = config();
        assert_eq!(retry_delay(&c, 1, None), Duration::from_millis(200));
        assert_eq!(retry_delay(&c, 3, None), Duration::from_millis(800));
        assert_eq!(retry_delay(&c, 30, None), Duration::from_secs(2));
        assert_eq!(
            retry_delay(&c, 1, Some(Duration::from_millis(50))),
            Duration::from_millis(50)
        );
        assert_eq!(
            retry_delay(&c, 1, Some(Duration::from_secs(60))),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn replies_are_classified() {
        let crash = br#"{"errorType":"Runtime.ExitError","errorMessage":"RequestId: x Error: Runtime exited with error: exit status 1"}"#;
        match classify(Some("Unhandled"), crash) {
            Reply::Retry {
                message,
                step: None,
                ..
            } => assert!(message.contains("Runtime.ExitError"), "{message}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            classify(None, br#"{"status":"completed","output":{"ok":true}}"#),
            Reply::Finished {
                outcome: Outcome::Completed(serde_json::json!({"ok": true})),
                tail: None
            }
        );
        let with_tail = br#"{"status":"completed","output":7,"tail":{"index":2,"kind":"run","name":"last","result":{"value":7}}}"#;
        match classify(None, with_tail) {
            Reply::Finished {
                outcome: Outcome::Completed(output),
                tail: Some(tail),
            } => {
                assert_eq!(output, serde_json::json!(7));
                assert_eq!(tail.index, 2);
                assert_eq!(tail.kind.name(), "last");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            classify(
                None,
                br#"{"status":"failed","failure":{"code":409,"message":"no"}}"#
            ),
            Reply::Finished {
                outcome: Outcome::Failed(TerminalFailure::new(409, "no")),
                tail: None
            }
        );
        assert_eq!(
            classify(
                None,
                br#"{"status":"retryable","message":"m","step":1,"retry_after_ms":30}"#
            ),
            Reply::Retry {
                message: "m".into(),
                step: Some(1),
                retry_after: Some(Duration::from_millis(30))
            }
        );
        assert!(
            matches!(classify(None, b"\"hello\""), Reply::Retry { message, .. } if message.contains("not a durable handler response"))
        );
    }
}
