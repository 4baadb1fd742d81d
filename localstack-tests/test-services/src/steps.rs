//! Steps: counting, divergence, terminal and retryable failures, racing attempts.

use crate::effects::*;
use lambda_handler_sdk::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
pub(crate) struct StepsInput {
    pub(crate) run: String,
    pub(crate) steps: u32,
    /// Exit the process (as a crash would) right after this step, the first time only.
    #[serde(default)]
    pub(crate) crash_after: Option<u32>,
}

#[derive(Serialize)]
pub(crate) struct StepsOutput {
    pub(crate) results: Vec<u32>,
}

pub(crate) async fn steps(ctx: Context, input: StepsInput) -> Result<StepsOutput, HandlerError> {
    let mut results = Vec::new();
    for i in 1..=input.steps {
        let name = format!("step-{i}");
        let value: u32 = ctx
            .run(&name, || async {
                count_effect(&input.run, &name).await?;
                Ok(i * 10)
            })
            .await?;
        results.push(value);
        if input.crash_after == Some(i) {
            crash_once(&input.run, "crash", 17, &format!("after {name}")).await?;
        }
    }
    Ok(StepsOutput { results })
}

/// Takes another first step on its retry than on its first attempt: non-deterministic code.
pub(crate) async fn diverge(ctx: Context, input: RunOnly) -> Result<(), HandlerError> {
    let first = first_time(&input.run, "diverge").await?;
    let name = if first { "original" } else { "changed" };
    ctx.run(name, || async { Ok(1u8) }).await?;
    if first {
        // The step is journaled once the handler awaits anything after it.
        tokio::task::yield_now().await;
        std::process::exit(18);
    }
    Ok(())
}

/// Records one step, then fails terminally with 409.
pub(crate) async fn reject(ctx: Context, input: RunOnly) -> Result<(), HandlerError> {
    ctx.run("check-stock", || async {
        count_effect(&input.run, "check-stock").await?;
        Ok(0u32)
    })
    .await?;
    Err(TerminalError::new("out of stock").with_code(409).into())
}

/// A step that fails twice with a retryable error, then succeeds.
pub(crate) async fn flaky(ctx: Context, input: RunOnly) -> Result<u64, HandlerError> {
    let n: u64 = ctx
        .run("flaky", || async {
            let n = count_effect(&input.run, "flaky").await?;
            if n < 3 {
                return Err(HandlerError::retryable(format!("transient failure #{n}")));
            }
            Ok(n)
        })
        .retry_policy(
            RetryPolicy::exponential(std::time::Duration::from_millis(50), 2.0).max_attempts(5),
        )
        .await?;
    Ok(n)
}

/// A step that always fails retryably, with at most two attempts.
pub(crate) async fn hopeless(ctx: Context, input: RunOnly) -> Result<(), HandlerError> {
    ctx.run("hopeless", || async {
        count_effect(&input.run, "hopeless").await?;
        Err::<(), _>(HandlerError::retryable("the bank is down"))
    })
    .retry_policy(
        RetryPolicy::exponential(std::time::Duration::from_millis(20), 2.0).max_attempts(2),
    )
    .await?;
    Ok(())
}

/// Sleeps in-process (not durably) while holding its step open: lets tests race attempts.
pub(crate) async fn slow(ctx: Context, input: SlowInput) -> Result<u64, HandlerError> {
    let n: u64 = ctx
        .run("slow", || async {
            let n = count_effect(&input.run, "slow").await?;
            tokio::time::sleep(std::time::Duration::from_millis(input.millis)).await;
            Ok(n)
        })
        .await?;
    Ok(n)
}

#[derive(Deserialize)]
pub(crate) struct SlowInput {
    pub(crate) run: String,
    pub(crate) millis: u64,
}

/// `slow`, then a second step built on its result: racing attempts meet at the first step's
/// write (it is journaled before the second step runs).
pub(crate) async fn slow_then_step(ctx: Context, input: SlowInput) -> Result<u64, HandlerError> {
    let n = slow(ctx.clone(), input).await?;
    Ok(ctx.run("times ten", || async move { Ok(n * 10) }).await?)
}

#[derive(Deserialize)]
pub(crate) struct OverrunInput {
    pub(crate) run: String,
    /// How long attempt n (from 1) keeps its step open; later attempts take the last value.
    pub(crate) millis: Vec<u64>,
}

/// One step that stays open longer on early attempts: with the right lengths an attempt is
/// killed by the handler's timeout and the next runs past what the orchestrator call has left.
pub(crate) async fn overrun(ctx: Context, input: OverrunInput) -> Result<u64, HandlerError> {
    let n: u64 = ctx
        .run("overrun", || async {
            let n = count_effect(&input.run, "overrun").await?;
            let index = usize::try_from(n).unwrap_or(usize::MAX).saturating_sub(1);
            let millis = input
                .millis
                .get(index)
                .or(input.millis.last())
                .copied()
                .unwrap_or(0);
            tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
            Ok(n)
        })
        .await?;
    Ok(n)
}

/// A step that fails twice with a retryable error and a long backoff (25 s, then 50 s capped by
/// the orchestrator's maximum), then succeeds: the second backoff outlasts the orchestrator call.
pub(crate) async fn backoff(ctx: Context, input: RunOnly) -> Result<u64, HandlerError> {
    let n: u64 = ctx
        .run("backoff", || async {
            let n = count_effect(&input.run, "backoff").await?;
            if n < 3 {
                return Err(HandlerError::retryable(format!("transient failure #{n}")));
            }
            Ok(n)
        })
        .retry_policy(
            RetryPolicy::exponential(std::time::Duration::from_secs(25), 2.0)
                .max_interval(std::time::Duration::from_secs(60))
                .max_attempts(5),
        )
        .await?;
    Ok(n)
}

#[derive(Deserialize)]
pub(crate) struct ChargeOnceInput {
    pub(crate) run: String,
    /// Tries the step's policy allows.
    pub(crate) tries: u32,
}

/// An at-most-once step whose first try dies in the middle of its closure (the process
/// exits after the side effect, before the result is recorded): the next attempt must not
/// run that try again; per policy it runs a fresh try, or fails terminally.
pub(crate) async fn charge_once(ctx: Context, input: ChargeOnceInput) -> Result<u32, HandlerError> {
    let run = input.run.clone();
    let try_number: u32 = ctx
        .run("charge", || async move {
            count_effect(&run, "charge").await?;
            if first_time(&run, "charge-crash").await? {
                eprintln!(
                    "test-services: crashing on purpose in the middle of an at-most-once step"
                );
                std::process::exit(23);
            }
            Ok(lambda_handler_sdk::step_attempt().unwrap_or(0))
        })
        .semantics(StepSemantics::AtMostOncePerRetry)
        .retry_policy(
            RetryPolicy::exponential(std::time::Duration::from_millis(50), 2.0)
                .max_attempts(input.tries),
        )
        .await?;
    Ok(try_number)
}
