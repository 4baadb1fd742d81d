//! The orchestrator Lambda's binary.

use durable_orchestrator::app::App;
use durable_orchestrator::config::Config;
use durable_orchestrator::driver::LambdaCall;
use durable_orchestrator::services::Services;
use durable_orchestrator::signer::Signer;
use lambda_runtime::{service_fn, LambdaEvent};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // JSON lines by default (one per event, with the invocation's span fields), text with
    // `DURABLE_LOG_FORMAT=text`.
    if std::env::var("DURABLE_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("text")) {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .without_time()
            .with_ansi(false)
            .init();
    } else {
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(filter)
            .without_time()
            .init();
    }

    let config = Config::from_env()?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let dynamo = aws_sdk_dynamodb::Client::new(&aws);
    // One read per process: the key that proves events and awakeable ids.
    let signing = durable_store::signing::load_or_create(&dynamo, &config.table).await?;
    let app = Arc::new(App::new(Services::new(
        config,
        dynamo,
        aws_sdk_lambda::Client::new(&aws),
        aws_sdk_scheduler::Client::new(&aws),
        // Path-style S3 addressing where an endpoint is overridden (LocalStack).
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&aws)
                .force_path_style(std::env::var_os("AWS_ENDPOINT_URL").is_some())
                .build(),
        ),
        Signer::new(signing),
    )));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let app = app.clone();
        async move {
            let call = LambdaCall::new(event.context.deadline, &event.context.invoked_function_arn);
            app.handle(event.payload, &call)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
