//! Running an [`Endpoint`] as a Lambda function on `lambda_runtime`.

use crate::endpoint::Endpoint;
use durable_protocol::HandlerRequest;
use durable_store::traits::Table;
use lambda_runtime::{service_fn, LambdaEvent};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Serves `endpoint` as this process's Lambda handler until the runtime stops it.
///
/// The function answers two requests from the orchestrator: `discover` (which services and
/// handlers it serves) and `invoke` (run or replay one invocation). Steps are recorded directly
/// in the orchestrator's DynamoDB table, so the function needs `dynamodb:PutItem` on it.
///
/// It installs no tracing subscriber: call [`init_tracing`] first (or install your own) to see
/// the SDK's and your handlers' logs.
pub async fn serve(endpoint: Endpoint) -> Result<(), lambda_runtime::Error> {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let lambda = aws_sdk_lambda::Client::new(&config);
    // Path-style S3 addressing where an endpoint is overridden (LocalStack); virtual-hosted on AWS.
    let s3_config = aws_sdk_s3::config::Builder::from(&config)
        .force_path_style(std::env::var_os("AWS_ENDPOINT_URL").is_some())
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(s3_config);
    let endpoint = Arc::new(endpoint);
    let stores: Arc<Mutex<HashMap<String, Arc<Table>>>> = Arc::default();
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let endpoint = endpoint.clone();
        let dynamo = dynamo.clone();
        let lambda = lambda.clone();
        let s3 = s3.clone();
        let stores = stores.clone();
        async move {
            let request: HandlerRequest = serde_json::from_value(event.payload)
                .map_err(|e| format!("not a durable handler request (is the orchestrator's version compatible?): {e}"))?;
            match request {
                HandlerRequest::Discover => Ok::<_, lambda_runtime::Error>(serde_json::to_value(endpoint.discover())?),
                HandlerRequest::Invoke(req) => {
                    let store = {
                        let mut stores = stores.lock().expect("store cache poisoned");
                        stores
                            .entry(req.table.clone())
                            .or_insert_with(|| Arc::new(Table::new(dynamo.clone(), &req.table)))
                            .clone()
                    };
                    let deadline_ms = event.context.deadline;
                    let dispatcher: Arc<dyn crate::runtime::ops::Dispatcher> = Arc::new(crate::runtime::ops::LambdaDispatcher {
                        client: lambda,
                        orchestrator: req.orchestrator.clone(),
                        key: req.service_key.clone(),
                    });
                    let response = endpoint.execute(req, store, dispatcher, s3, deadline_ms).await;
                    Ok(serde_json::to_value(response)?)
                }
            }
        }
    }))
    .await
}

/// Installs a `tracing` subscriber suited to Lambda: JSON lines (one per event, with the
/// attempt's span: invocation id, service, handler, attempt, trace id; `DURABLE_LOG_FORMAT=text`
/// for plain text), the level from `RUST_LOG` (default `info`), no timestamps (Lambda adds its
/// own), and no repeated lines from handlers replaying (see
/// [`ReplayAwareFilter`](crate::ReplayAwareFilter)). Does nothing if a subscriber is installed
/// already.
pub fn init_tracing() {
    use tracing_subscriber::filter::FilterExt;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Lambda adds its own timestamps to log lines. `and`: what the level filter turns off
    // stays off for good (no per-event check for the AWS SDK's debug and trace callsites).
    let filter = filter.and(crate::ReplayAwareFilter);
    // JSON lines by default (one per event, with the attempt's and step's span fields), text
    // with `DURABLE_LOG_FORMAT=text`.
    if std::env::var("DURABLE_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("text")) {
        let layer = tracing_subscriber::fmt::layer()
            .without_time()
            .with_ansi(false)
            .with_filter(filter);
        let _ = tracing_subscriber::registry().with(layer).try_init();
    } else {
        let layer = tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .without_time()
            .with_filter(filter);
        let _ = tracing_subscriber::registry().with(layer).try_init();
    }
}
