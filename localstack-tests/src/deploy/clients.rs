//! AWS SDK configuration for the local environment (LocalStack on 127.0.0.1).

use aws_config::{BehaviorVersion, Region, SdkConfig};

/// The default local endpoint, overridable with `AWS_ENDPOINT_URL`.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4566";

/// The endpoint in use.
pub fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| DEFAULT_ENDPOINT.to_owned())
}

/// SDK settings for LocalStack: its endpoint, us-east-1 and its fixed test credentials.
pub async fn local_config() -> SdkConfig {
    let creds =
        aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "durable-local");
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint())
        .credentials_provider(creds)
        .load()
        .await
}

/// Clients for every service the tooling uses.
#[derive(Clone, Debug)]
pub struct Clients {
    pub dynamo: aws_sdk_dynamodb::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub s3: aws_sdk_s3::Client,
    pub scheduler: aws_sdk_scheduler::Client,
}

impl Clients {
    /// Clients for the local environment.
    pub async fn local() -> Self {
        let config = local_config().await;
        let s3_config = aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build();
        Self {
            dynamo: aws_sdk_dynamodb::Client::new(&config),
            lambda: aws_sdk_lambda::Client::new(&config),
            scheduler: aws_sdk_scheduler::Client::new(&config),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
        }
    }
}
