//! Handlers for the operator's actions: a saga that compensates when it is cancelled, a step
//! that fails until the test "fixes" it, and a root that calls an object's exclusive handler.

use crate::effects::*;
use lambda_handler_sdk::prelude::*;
use serde::Deserialize;

#[derive(Deserialize)]
pub(crate) struct SagaInput {
    pub(crate) run: String,
    /// What it waits on after booking: `sleep` (60 s), `awakeable` (published as
    /// `awakeable`) or `call` (a `saga_child` that waits on an awakeable published as `child`).
    pub(crate) wait: String,
}

/// Books, waits, and on a cancellation compensates (a journaled step) and ends cancelled.
pub(crate) async fn saga(ctx: Context, input: SagaInput) -> Result<String, HandlerError> {
    ctx.run("book", || count_effect(&input.run, "book")).await?;
    let waited: Result<(), TerminalError> = match input.wait.as_str() {
        "sleep" => ctx.sleep(std::time::Duration::from_secs(60)).await,
        "awakeable" => {
            let (id, answer) = ctx.awakeable::<serde_json::Value>().await?;
            ctx.run("publish", || publish(&input.run, "awakeable", &id))
                .await?;
            answer.await.map(|_| ())
        }
        _ => ctx
            .call::<String>(
                "testbed",
                "saga_child",
                &RunOnly {
                    run: input.run.clone(),
                },
            )
            .await
            .map(|_| ()),
    };
    match waited {
        Ok(()) => Ok("done".into()),
        Err(e) if e.is_cancelled() => {
            ctx.run("compensate", || count_effect(&input.run, "compensate"))
                .await?;
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// Waits on an awakeable (published as `child`); compensates when cancelled.
pub(crate) async fn saga_child(ctx: Context, input: RunOnly) -> Result<String, HandlerError> {
    let (id, answer) = ctx.awakeable::<String>().await?;
    ctx.run("publish", || publish(&input.run, "child", &id))
        .await?;
    match answer.await {
        Ok(v) => Ok(v),
        Err(e) if e.is_cancelled() => {
            ctx.run("child-compensate", || {
                count_effect(&input.run, "child-compensate")
            })
            .await?;
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub(crate) struct GuardedInput {
    pub(crate) run: String,
    /// Step 3 fails terminally (else retryably, without end) until `fixed` is published.
    #[serde(default)]
    pub(crate) terminal: bool,
}

/// Three steps; the third fails until the test publishes `fixed` for the run.
pub(crate) async fn guarded(ctx: Context, input: GuardedInput) -> Result<u64, HandlerError> {
    let one = ctx
        .run("step-1", || count_effect(&input.run, "step-1"))
        .await?;
    let two = ctx
        .run("step-2", || count_effect(&input.run, "step-2"))
        .await?;
    let three: u64 = ctx
        .run("step-3", || async {
            let n = count_effect(&input.run, "step-3").await?;
            if published(&input.run, "fixed").await? {
                return Ok(n);
            }
            if input.terminal {
                return Err(TerminalError::new("not fixed yet").with_code(422).into());
            }
            Err(HandlerError::retryable(format!("not fixed yet (try {n})")))
        })
        .retry_policy(
            RetryPolicy::exponential(std::time::Duration::from_millis(20), 1.0)
                .max_attempts(u32::MAX),
        )
        .await?;
    Ok(one * 100 + two * 10 + three)
}

#[derive(Deserialize)]
pub(crate) struct HolderInput {
    pub(crate) run: String,
    pub(crate) key: String,
}

/// Calls `counter/{key}/wait`, which holds the key's lock until its awakeable is resolved.
pub(crate) async fn hold_lock(ctx: Context, input: HolderInput) -> Result<String, HandlerError> {
    Ok(ctx
        .object_call::<String>("counter", &input.key, "wait", &RunOnly { run: input.run })
        .await?)
}

/// Calls `saga_child`, sends `remind` due in 3 s, gives the child time to publish its
/// awakeable, then cancels both and reports what the call answered.
pub(crate) async fn cancel_children(ctx: Context, input: RunOnly) -> Result<String, HandlerError> {
    let call = ctx.call::<String>(
        "testbed",
        "saga_child",
        &RunOnly {
            run: input.run.clone(),
        },
    );
    let child = call
        .invocation_id()
        .cloned()
        .expect("a call names its child");
    let reminder = ctx.send_after(
        std::time::Duration::from_secs(3),
        "testbed",
        "remind",
        &RunOnly {
            run: input.run.clone(),
        },
    )?;
    ctx.sleep(std::time::Duration::from_secs(2)).await?;
    ctx.cancel(&child).await?;
    ctx.cancel(&reminder).await?;
    match call.await {
        Ok(v) => Ok(format!("child answered {v}")),
        Err(e) if e.is_cancelled() => Ok("child cancelled".into()),
        Err(e) => Err(e.into()),
    }
}

/// A delayed reminder: one counted step.
pub(crate) async fn remind(ctx: Context, input: RunOnly) -> Result<u64, HandlerError> {
    Ok(ctx
        .run("remind", || count_effect(&input.run, "remind"))
        .await?)
}
