//! Calls and sends between handlers.

use crate::effects::*;
use aws_sdk_dynamodb::types::AttributeValue;
use lambda_handler_sdk::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub(crate) struct ChainInput {
    pub(crate) depth: u32,
    #[serde(default)]
    pub(crate) fail_at_bottom: bool,
}

/// Calls itself `depth` times; the bottom one may fail terminally (418).
pub(crate) async fn chain(ctx: Context, input: ChainInput) -> Result<u32, HandlerError> {
    if input.depth == 0 {
        if input.fail_at_bottom {
            return Err(TerminalError::new("the bottom of the chain failed")
                .with_code(418)
                .into());
        }
        return Ok(0);
    }
    let below: u32 = ctx
        .call(
            "testbed",
            "chain",
            &ChainInput {
                depth: input.depth - 1,
                fail_at_bottom: input.fail_at_bottom,
            },
        )
        .await?;
    Ok(below + 1)
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Tagged {
    pub(crate) run: String,
    pub(crate) tag: String,
}

/// Counts that it ran (once per tag) and answers the time.
pub(crate) async fn record(ctx: Context, input: Tagged) -> Result<u64, HandlerError> {
    ctx.run("record", || async {
        count_effect(&input.run, &format!("record-{}", input.tag)).await?;
        Ok(now_ms())
    })
    .await
    .map_err(Into::into)
}

#[derive(Deserialize)]
pub(crate) struct SendsInput {
    pub(crate) run: String,
    pub(crate) n: u32,
    #[serde(default)]
    pub(crate) delay_ms: u64,
}

/// Sends `n` one-way messages to `record` (after `delay_ms`), returns the children's ids.
pub(crate) async fn sends(ctx: Context, input: SendsInput) -> Result<Vec<String>, HandlerError> {
    let mut ids = Vec::new();
    for i in 0..input.n {
        let msg = Tagged {
            run: input.run.clone(),
            tag: i.to_string(),
        };
        let id = if input.delay_ms > 0 {
            ctx.send_after(
                std::time::Duration::from_millis(input.delay_ms),
                "testbed",
                "record",
                &msg,
            )?
        } else {
            ctx.send("testbed", "record", &msg)?
        };
        ids.push(id.to_string());
    }
    Ok(ids)
}

pub(crate) async fn square(_ctx: Context, n: u64) -> Result<u64, HandlerError> {
    Ok(n * n)
}

/// Calls `square` for 0..n at once and sums the answers.
pub(crate) async fn fan_out(ctx: Context, n: u64) -> Result<u64, HandlerError> {
    let calls = (0..n)
        .map(|i| ctx.call::<u64>("testbed", "square", &i))
        .collect();
    let mut sum = 0;
    for r in ctx.all(calls).await {
        sum += r?;
    }
    Ok(sum)
}

#[derive(Deserialize)]
pub(crate) struct BigCall {
    key: String,
    bytes: usize,
}

/// Calls `counter/{key}/size` (another service) with an input of `bytes` characters: large
/// enough to be kept in S3, where the callee must be able to read it.
pub(crate) async fn call_big(ctx: Context, input: BigCall) -> Result<usize, HandlerError> {
    let blob = "x".repeat(input.bytes);
    Ok(ctx
        .object_call::<usize>(
            "counter",
            &input.key,
            "size",
            &serde_json::json!({"blob": blob}),
        )
        .await?)
}

/// Calls `slow`, and the first time crashes once the child exists (before it finishes).
pub(crate) async fn call_then_crash(ctx: Context, input: RunOnly) -> Result<u64, HandlerError> {
    let answer = ctx.call::<u64>(
        "testbed",
        "slow",
        &serde_json::json!({"run": input.run, "millis": 1500}),
    );
    let child = lambda_handler_sdk::child_id(&ctx, answer.index(), "testbed")
        .ok_or_else(|| HandlerError::retryable("testbed is a valid service name"))?;
    let (client, table) = dynamo();
    let mut exists = false;
    for _ in 0..200 {
        let out = client
            .get_item()
            .table_name(table)
            .key(
                "pk",
                AttributeValue::S(format!("inv#{}#{}", child.service_str(), child.local())),
            )
            .key("sk", AttributeValue::S("meta".into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| HandlerError::retryable(format!("{e:?}")))?;
        if out.item.is_some() {
            exists = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    if exists && first_time(&input.run, "call-crash").await? {
        eprintln!("test-services: crashing on purpose while a call is in flight");
        std::process::exit(20);
    }
    Ok(answer.await?)
}

/// Calls a service nobody registered and reports the error it gets.
pub(crate) async fn call_unknown(
    ctx: Context,
    _: serde_json::Value,
) -> Result<serde_json::Value, HandlerError> {
    match ctx
        .call::<serde_json::Value>("nosuchservice", "anything", &())
        .await
    {
        Ok(v) => Err(TerminalError::new(format!("expected an error, got {v}")).into()),
        Err(e) => Ok(serde_json::json!({"code": e.code(), "message": e.message()})),
    }
}

/// The headers this invocation sees, and (when `depth` > 0) those of a child it calls.
pub(crate) async fn headers(ctx: Context, depth: u32) -> Result<serde_json::Value, HandlerError> {
    let own = serde_json::to_value(ctx.headers()).map_err(|e| TerminalError::new(e.to_string()))?;
    if depth == 0 {
        return Ok(serde_json::json!({ "headers": own }));
    }
    let child: serde_json::Value = ctx.call("testbed", "headers", &(depth - 1)).await?;
    Ok(serde_json::json!({ "headers": own, "child": child }))
}

#[derive(Deserialize)]
pub(crate) struct SendOnceInput {
    pub(crate) run: String,
    pub(crate) key: String,
}

/// Sends `record` (tag `once`) idempotently by `key`; answers the child's id.
pub(crate) async fn send_once(ctx: Context, input: SendOnceInput) -> Result<String, HandlerError> {
    let child = ctx.send_idempotent(
        "testbed",
        "record",
        &input.key,
        &Tagged {
            run: input.run.clone(),
            tag: "once".into(),
        },
    )?;
    Ok(child.to_string())
}

#[derive(Serialize, Deserialize)]
pub(crate) struct SettleInput {
    pub(crate) run: String,
    /// How long the settlement takes after it is counted (a durable sleep).
    pub(crate) settle_ms: u64,
}

#[derive(Deserialize)]
pub(crate) struct PayOnceInput {
    pub(crate) run: String,
    pub(crate) key: String,
    pub(crate) settle_ms: u64,
}

/// Calls `settle` idempotently by `key`: one settlement per key, whoever calls; answers
/// the settlement's result.
pub(crate) async fn pay_once(ctx: Context, input: PayOnceInput) -> Result<u64, HandlerError> {
    let settle = SettleInput {
        run: input.run,
        settle_ms: input.settle_ms,
    };
    Ok(ctx
        .call_idempotent("testbed", "settle", &input.key, &settle)
        .await?)
}

/// Counts a settlement (effect `settle`), then takes `settle_ms`; answers when it was counted.
pub(crate) async fn settle(ctx: Context, input: SettleInput) -> Result<u64, HandlerError> {
    let run = input.run.clone();
    let at = ctx
        .run("settle", || async move {
            count_effect(&run, "settle").await?;
            Ok(now_ms())
        })
        .await?;
    ctx.sleep(std::time::Duration::from_millis(input.settle_ms))
        .await?;
    Ok(at)
}
