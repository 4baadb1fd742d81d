//! The baseline: the same step logic as a plain Lambda, no journal, no orchestrator.

use bench_lambdas::step_work;
use lambda_handler_sdk::lambda_runtime::{self, service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<serde_json::Value>| async move {
            // `{"steps": n}` runs n steps; `{"blob": "..."}` answers the blob's size.
            if let Some(blob) = event.payload.get("blob").and_then(|b| b.as_str()) {
                return Ok::<_, lambda_runtime::Error>(serde_json::json!(blob.len()));
            }
            let n = event
                .payload
                .get("steps")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(1) as u32;
            let mut acc = 0u64;
            for i in 0..n {
                acc = step_work(acc, i);
            }
            Ok(serde_json::json!(acc))
        },
    ))
    .await
}
