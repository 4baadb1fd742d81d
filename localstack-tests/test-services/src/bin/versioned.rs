//! A handler Lambda whose answers name the version they ran on (its `VERSION_TAG` variable),
//! for the test that a redeploy leaves in-flight invocations on the version they started on.

use lambda_handler_sdk::prelude::*;

/// The deployed version's tag, read by every attempt (never journaled).
fn tag() -> String {
    std::env::var("VERSION_TAG").unwrap_or_else(|_| "untagged".to_owned())
}

/// Records the version it started on, waits for an awakeable (the journal's entry 1), and
/// answers with both versions and who resolved it.
async fn greet(ctx: Context, name: String) -> Result<serde_json::Value, HandlerError> {
    let started: String = ctx.run("started_on", || async { Ok(tag()) }).await?;
    let (_id, resolved) = ctx.awakeable::<String>().await?;
    let by = resolved.await?;
    Ok(serde_json::json!({
        "hello": name,
        "started_on": started,
        "finished_on": tag(),
        "resolved_by": by,
    }))
}

#[tokio::main]
async fn main() -> Result<(), lambda_handler_sdk::lambda_runtime::Error> {
    lambda_handler_sdk::init_tracing();
    serve(Endpoint::new().service(Service::new("versioned").handler("greet", greet))).await
}
