//! Where the orchestrator's Function URL is, and how a request reaches it: a local URL
//! (LocalStack's `*.localhost.localstack.cloud`) is sent to the local gateway with the URL's
//! host name, unsigned; any other URL is signed with SigV4 for service `lambda`.

use crate::sign;
use crate::CliError;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The local gateway when `AWS_ENDPOINT_URL` is not set.
const LOCAL_GATEWAY: &str = "127.0.0.1:4566";
/// The host suffix of LocalStack's Function URLs.
const LOCAL_SUFFIX: &str = ".localhost.localstack.cloud";

/// A Function URL and how to reach it.
pub struct Endpoint {
    /// The Function URL (its scheme, host and base path).
    base: http::Uri,
    /// The host name requests carry.
    host: String,
    /// Where a local request connects instead of resolving the host (the gateway).
    gateway: Option<String>,
    /// The region to sign for; `None` for a local URL.
    region: Option<String>,
}

impl Endpoint {
    /// The endpoint named by `url`, else by the CDK outputs file, else the local deployment.
    pub fn find(url: Option<&str>, outputs: Option<&Path>) -> Result<Self, CliError> {
        let url = match (url, outputs) {
            (Some(url), _) => url.to_owned(),
            (None, Some(file)) => url_from_outputs(file)?,
            (None, None) => local_url()?,
        };
        Self::new(&url)
    }

    fn new(url: &str) -> Result<Self, CliError> {
        let base: http::Uri = url
            .parse()
            .map_err(|e| CliError::Endpoint(format!("{url:?} is not a URL: {e}")))?;
        let host = base
            .host()
            .ok_or_else(|| CliError::Endpoint(format!("{url} has no host")))?
            .to_owned();
        let local = host.ends_with(LOCAL_SUFFIX) || host == "127.0.0.1" || host == "localhost";
        let (gateway, region) = if local {
            // The name does not resolve offline: connect to the gateway, keep the name.
            let gateway = std::env::var("AWS_ENDPOINT_URL").ok().map_or_else(
                || LOCAL_GATEWAY.to_owned(),
                |e| {
                    e.trim_start_matches("http://")
                        .trim_end_matches('/')
                        .to_owned()
                },
            );
            gateway.parse::<SocketAddr>().map_err(|e| {
                CliError::Endpoint(format!("the local gateway {gateway:?} is not ip:port: {e}"))
            })?;
            (Some(gateway), None)
        } else {
            let region = region_of(&host).ok_or_else(|| {
                CliError::Endpoint(format!(
                    "{host} is not a Function URL (<id>.lambda-url.<region>.on.aws)"
                ))
            })?;
            (None, Some(region))
        };
        Ok(Self {
            base,
            host,
            gateway,
            region,
        })
    }

    /// `POST path` with an optional JSON body: the status and the JSON answer.
    pub async fn post(
        &self,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, serde_json::Value), CliError> {
        let payload = body.map(ToString::to_string).unwrap_or_default();
        let answer = self
            .request("POST", path, payload.into_bytes(), Some("application/json"))
            .await?;
        Ok((answer.status, answer.json()))
    }

    /// `GET path` (with its query): the status and the JSON answer.
    pub async fn get(&self, path: &str) -> Result<(u16, serde_json::Value), CliError> {
        let answer = self.request("GET", path, Vec::new(), None).await?;
        Ok((answer.status, answer.json()))
    }

    /// Any request to the Function URL (signed on AWS): what the console proxy forwards.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        payload: Vec<u8>,
        content_type: Option<&str>,
    ) -> Result<Answer, CliError> {
        use http_body_util::BodyExt;
        let prefix = self.base.path().trim_end_matches('/');
        let url = format!(
            "{}://{}{prefix}{path}",
            self.base.scheme_str().unwrap_or("https"),
            self.base
                .authority()
                .map_or(self.host.as_str(), |a| a.as_str()),
        );
        let mut headers = vec![("host".to_owned(), self.host.clone())];
        if let Some(ct) = content_type {
            headers.push(("content-type".to_owned(), ct.to_owned()));
        }
        if let Some(region) = &self.region {
            let signed = sign::sign(method, &url, &headers, &payload, region).await?;
            headers.extend(signed);
        }
        let target = match &self.gateway {
            Some(gateway) => format!("http://{gateway}{prefix}{path}"),
            None => url,
        };
        let mut request = http::Request::builder().method(method).uri(target);
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        let request = request
            .body(http_body_util::Full::new(bytes::Bytes::from(payload)))
            .map_err(|e| CliError::Http(e.to_string()))?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|e| CliError::Http(format!("TLS roots: {e}")))?
            .https_or_http()
            .enable_http1()
            .build();
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(connector);
        let response =
            tokio::time::timeout(std::time::Duration::from_secs(120), client.request(request))
                .await
                .map_err(|_| CliError::Http("no answer within 120 s".into()))?
                .map_err(|e| CliError::Http(e.to_string()))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| CliError::Http(e.to_string()))?
            .to_bytes()
            .to_vec();
        Ok(Answer {
            status,
            content_type,
            body,
        })
    }
}

/// An answer of the Function URL.
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON (a string value when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        let text = String::from_utf8_lossy(&self.body).into_owned();
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
    }
}

/// The region of a Function URL host: `<id>.lambda-url.<region>.on.aws`.
fn region_of(host: &str) -> Option<String> {
    let mut parts = host.split('.');
    let (_, marker, region) = (parts.next()?, parts.next()?, parts.next()?);
    (marker == "lambda-url").then(|| region.to_owned())
}

/// The `IngressUrl` output of any stack in a `cdk deploy --outputs-file` file.
fn url_from_outputs(file: &Path) -> Result<String, CliError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError::Endpoint(format!("cannot read {}: {e}", file.display())))?;
    let outputs: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| CliError::Endpoint(format!("{} is not JSON: {e}", file.display())))?;
    outputs
        .as_object()
        .into_iter()
        .flat_map(|stacks| stacks.values())
        .find_map(|stack| stack.get("IngressUrl")?.as_str().map(str::to_owned))
        .ok_or_else(|| CliError::Endpoint(format!("{} has no IngressUrl output", file.display())))
}

/// The Function URL of the local deployment (`$LOCAL_AWS_DIR/deployment.json`, else
/// `.local-aws/deployment.json` in this folder or one above it).
fn local_url() -> Result<String, CliError> {
    let file = match std::env::var_os("LOCAL_AWS_DIR") {
        Some(dir) => PathBuf::from(dir).join("deployment.json"),
        None => std::env::current_dir()
            .ok()
            .and_then(|cwd| {
                cwd.ancestors()
                    .map(|d| d.join(".local-aws/deployment.json"))
                    .find(|f| f.exists())
            })
            .ok_or_else(|| {
                CliError::Endpoint(
                    "no --url, no --outputs and no local deployment (.local-aws/deployment.json); \
                     deploy with scripts/deploy-local.sh or pass --url"
                        .into(),
                )
            })?,
    };
    let text = std::fs::read_to_string(&file)
        .map_err(|e| CliError::Endpoint(format!("cannot read {}: {e}", file.display())))?;
    let deployment: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| CliError::Endpoint(format!("{} is not JSON: {e}", file.display())))?;
    deployment["orchestrator_url"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| CliError::Endpoint(format!("{} has no orchestrator_url", file.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_url_hosts_name_their_region() {
        assert_eq!(
            region_of("abc123.lambda-url.eu-west-1.on.aws").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(region_of("example.com"), None);
    }

    #[test]
    fn the_ingress_url_is_read_from_cdk_outputs() {
        let dir = std::env::temp_dir().join(format!("durable-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("outputs.json");
        std::fs::write(
            &file,
            r#"{"DurableExample": {"IngressUrl": "https://x.lambda-url.us-east-1.on.aws/", "JournalTable": "t"}}"#,
        )
        .unwrap();
        assert_eq!(
            url_from_outputs(&file).unwrap(),
            "https://x.lambda-url.us-east-1.on.aws/"
        );
        std::fs::write(&file, "{}").unwrap();
        assert!(url_from_outputs(&file).is_err());
    }
}
