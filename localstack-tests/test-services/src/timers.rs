//! Timers and awakeables.

use crate::effects::*;
use lambda_handler_sdk::prelude::*;
use serde::Deserialize;

#[derive(Deserialize)]
pub(crate) struct NapInput {
    pub(crate) millis: u64,
    /// With `run`: kill the process this long into the sleep, the first time only.
    #[serde(default)]
    pub(crate) crash_after_ms: Option<u64>,
    #[serde(default)]
    pub(crate) run: Option<String>,
}

/// Sleeps durably and reports the time between two recorded steps around the sleep.
pub(crate) async fn nap(ctx: Context, input: NapInput) -> Result<serde_json::Value, HandlerError> {
    let start: u64 = ctx.run("start", || async { Ok(now_ms()) }).await?;
    if let (Some(after), Some(run)) = (input.crash_after_ms, input.run.clone()) {
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(after)).await;
            if first_time(&run, "nap-crash").await.unwrap_or(false) {
                eprintln!("test-services: crashing on purpose in the middle of a sleep");
                std::process::exit(19);
            }
        });
    }
    ctx.sleep(std::time::Duration::from_millis(input.millis))
        .await?;
    let end: u64 = ctx.run("end", || async { Ok(now_ms()) }).await?;
    Ok(serde_json::json!({"elapsed_ms": end - start}))
}

#[derive(Deserialize)]
pub(crate) struct TimersInput {
    pub(crate) millis: Vec<u64>,
}

/// Waits for several timers together.
pub(crate) async fn timers(ctx: Context, input: TimersInput) -> Result<usize, HandlerError> {
    let sleeps = input
        .millis
        .iter()
        .map(|m| ctx.sleep(std::time::Duration::from_millis(*m)))
        .collect();
    let results = ctx.all(sleeps).await;
    for r in &results {
        if let Err(e) = r {
            return Err(e.clone().into());
        }
    }
    Ok(results.len())
}

#[derive(Deserialize)]
pub(crate) struct ApprovalInput {
    pub(crate) run: String,
    pub(crate) timeout_ms: u64,
}

/// Waits for an awakeable (its id published for the test) or a timeout.
pub(crate) async fn approval(
    ctx: Context,
    input: ApprovalInput,
) -> Result<serde_json::Value, HandlerError> {
    let (id, answer) = ctx.awakeable::<serde_json::Value>().await?;
    ctx.run("publish", || publish(&input.run, "awakeable", &id))
        .await?;
    match ctx
        .timeout(answer, std::time::Duration::from_millis(input.timeout_ms))
        .await
    {
        Ok(value) => Ok(serde_json::json!({"approved": value})),
        Err(e) if e.code() == 408 => Ok(serde_json::json!({"timed_out": true})),
        Err(e) => Err(e.into()),
    }
}

#[derive(serde::Deserialize)]
pub(crate) struct CompleteInput {
    pub(crate) awakeable_id: String,
    /// Resolve with this value, or reject with `reject` as the message.
    #[serde(default)]
    pub(crate) value: serde_json::Value,
    #[serde(default)]
    pub(crate) reject: Option<String>,
}

/// Completes an awakeable of another invocation from a handler.
pub(crate) async fn complete_other(
    ctx: Context,
    input: CompleteInput,
) -> Result<&'static str, HandlerError> {
    match &input.reject {
        Some(message) => ctx.reject_awakeable(&input.awakeable_id, message).await?,
        None => {
            ctx.resolve_awakeable(&input.awakeable_id, &input.value)
                .await?;
        }
    }
    Ok("sent")
}

/// Publishes an awakeable id, waits (in a step) until the test says it resolved it, and only
/// then awaits it: the completion is already there.
pub(crate) async fn early(ctx: Context, input: RunOnly) -> Result<serde_json::Value, HandlerError> {
    let (id, answer) = ctx.awakeable::<serde_json::Value>().await?;
    ctx.run("publish", || publish(&input.run, "awakeable", &id))
        .await?;
    ctx.run("wait for the resolution", || async {
        for _ in 0..200 {
            if published(&input.run, "resolved").await? {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Err(HandlerError::retryable(
            "the test did not resolve the awakeable",
        ))
    })
    .await?;
    let value = answer.await?;
    Ok(serde_json::json!({"approved": value}))
}

#[derive(serde::Deserialize)]
pub(crate) struct TimedAwakeableInput {
    pub(crate) run: String,
    #[serde(default)]
    pub(crate) timeout_ms: Option<u64>,
    #[serde(default)]
    pub(crate) heartbeat_ms: Option<u64>,
    /// Also sleep this long while waiting (the sleep's wake resumes it in between).
    #[serde(default)]
    pub(crate) sleep_ms: Option<u64>,
}

/// Waits for an awakeable with a timeout and/or a heartbeat timeout of its own (its id
/// published for the test as `awakeable`).
pub(crate) async fn timed_awakeable(
    ctx: Context,
    input: TimedAwakeableInput,
) -> Result<serde_json::Value, HandlerError> {
    let mut options = AwakeableOptions::named("timed");
    if let Some(ms) = input.timeout_ms {
        options = options.timeout(std::time::Duration::from_millis(ms));
    }
    if let Some(ms) = input.heartbeat_ms {
        options = options.heartbeat_timeout(std::time::Duration::from_millis(ms));
    }
    let (id, answer) = ctx.awakeable_with::<serde_json::Value>(options).await?;
    ctx.run("publish", || publish(&input.run, "awakeable", &id))
        .await?;
    let answer = match input.sleep_ms {
        Some(ms) => {
            let nap = ctx.sleep(std::time::Duration::from_millis(ms));
            let (answer, slept) = tokio::join!(answer, nap);
            slept?;
            answer
        }
        None => answer.await,
    };
    match answer {
        Ok(value) => Ok(serde_json::json!({"resolved": value})),
        Err(e) if e.code() == 408 => Ok(serde_json::json!({"timed_out": e.message()})),
        Err(e) => Err(e.into()),
    }
}

#[derive(serde::Deserialize)]
pub(crate) struct PollInput {
    pub(crate) run: String,
    /// The check that finds the condition true.
    pub(crate) checks: u32,
}

/// Polls a condition that holds at check `checks`, waiting 1 s, 2 s, then 3 s between checks
/// (the longer waits suspend); each check counts an effect and threads the checks' times.
pub(crate) async fn poll_until(
    ctx: Context,
    input: PollInput,
) -> Result<serde_json::Value, HandlerError> {
    let run = input.run.clone();
    let times: Vec<u64> = ctx
        .poll("condition", Vec::<u64>::new(), |mut times, n| {
            let run = run.clone();
            async move {
                count_effect(&run, "check").await?;
                times.push(now_ms());
                Ok(if n == input.checks {
                    Check::Done(times)
                } else {
                    Check::Again(times)
                })
            }
        })
        .wait(
            WaitStrategy::exponential(std::time::Duration::from_secs(1))
                .max_delay(std::time::Duration::from_secs(3)),
        )
        .await?;
    Ok(serde_json::json!({ "times": times }))
}
