//! SigV4 signing of a request to a Function URL on AWS (service `lambda`), with the default
//! credential chain (environment, profile, SSO, instance role).

use crate::CliError;
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{
    sign as sign_request, SignableBody, SignableRequest, SigningSettings,
};
use aws_sigv4::sign::v4;

/// The headers that sign `method url` with `headers` and `body` for `region`.
pub async fn sign(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
    region: &str,
) -> Result<Vec<(String, String)>, CliError> {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let provider = config
        .credentials_provider()
        .ok_or_else(|| CliError::Sign("no AWS credentials are configured".into()))?;
    let credentials = provider
        .provide_credentials()
        .await
        .map_err(|e| CliError::Sign(format!("no AWS credentials: {e}")))?;
    let identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("lambda")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| CliError::Sign(e.to_string()))?
        .into();
    let request = SignableRequest::new(
        method,
        url,
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|e| CliError::Sign(e.to_string()))?;
    let (instructions, _) = sign_request(request, &params)
        .map_err(|e| CliError::Sign(e.to_string()))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect())
}
