//! The durable side of the benchmark: one handler per scenario.

use bench_lambdas::step_work;
use lambda_handler_sdk::prelude::*;
use lambda_handler_sdk::{
    serve, Context, Endpoint, HandlerError, ObjectContext, Service, VirtualObject,
};
use std::time::Duration;

async fn steps(ctx: Context, n: u32) -> Result<u64, HandlerError> {
    let mut acc = 0u64;
    for i in 0..n {
        acc = ctx
            .run("step", || async move { Ok(step_work(acc, i)) })
            .await?;
    }
    Ok(acc)
}

/// `n` items, ten at a time, one step each.
async fn map(ctx: Context, n: u32) -> Result<u64, HandlerError> {
    let batch = ctx
        .map("items", (0..n).collect(), |ctx, i: u32| async move {
            Ok(ctx
                .run("step", || async move { Ok(step_work(u64::from(i), i)) })
                .await?)
        })
        .max_concurrency(10)
        .await?;
    Ok(batch
        .into_values()?
        .into_iter()
        .fold(0u64, |acc, v: u64| acc ^ v))
}

async fn sleep(ctx: Context, millis: u64) -> Result<u64, HandlerError> {
    ctx.sleep(Duration::from_millis(millis)).await?;
    Ok(millis)
}

async fn call(ctx: Context, n: u64) -> Result<u64, HandlerError> {
    Ok(ctx.call::<u64>("bench", "callee", &n).await?)
}

async fn callee(ctx: Context, n: u64) -> Result<u64, HandlerError> {
    Ok(ctx
        .run("step", || async move { Ok(step_work(n, 0)) })
        .await?)
}

async fn awakeable(ctx: Context, _: ()) -> Result<String, HandlerError> {
    let (_id, answer) = ctx.awakeable::<String>().await?;
    Ok(answer.await?)
}

/// Takes a large input, records it as a step result (in S3), answers its size.
async fn payload(ctx: Context, blob: String) -> Result<usize, HandlerError> {
    let kept: String = ctx.run("keep", || async move { Ok(blob) }).await?;
    Ok(kept.len())
}

async fn add(ctx: ObjectContext, n: i64) -> Result<i64, HandlerError> {
    let total = ctx.get::<i64>("total").await?.unwrap_or(0) + n;
    ctx.set("total", &total)?;
    Ok(total)
}

#[tokio::main]
async fn main() -> Result<(), lambda_handler_sdk::lambda_runtime::Error> {
    lambda_handler_sdk::init_tracing();
    serve(
        Endpoint::new()
            .service(
                Service::new("bench")
                    .handler("steps", steps)
                    .handler("map", map)
                    .handler("sleep", sleep)
                    .handler("call", call)
                    .handler("callee", callee)
                    .handler("awakeable", awakeable)
                    .handler("payload", payload),
            )
            .service(VirtualObject::new("bench_counter").exclusive("add", add)),
    )
    .await
}
