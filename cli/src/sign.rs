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
    sign_as(
        credentials,
        std::time::SystemTime::now(),
        (method, url, headers, body),
        region,
    )
}

/// The signing itself, for `identity` at `time` (apart so that it can be checked offline).
fn sign_as(
    credentials: aws_credential_types::Credentials,
    time: std::time::SystemTime,
    (method, url, headers, body): (&str, &str, &[(String, String)], &[u8]),
    region: &str,
) -> Result<Vec<(String, String)>, CliError> {
    let identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("lambda")
        .time(time)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(body: &[u8]) -> Vec<(String, String)> {
        let credentials = aws_credential_types::Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "test",
        );
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_342_400);
        sign_as(
            credentials,
            time,
            (
                "POST",
                "https://abc.lambda-url.eu-west-1.on.aws/invocations/inv_x/cancel",
                &[("content-type".into(), "application/json".into())],
                body,
            ),
            "eu-west-1",
        )
        .unwrap()
    }

    #[test]
    fn a_request_is_signed_for_lambda_in_the_urls_region_with_its_body() {
        let headers = signed(b"{}");
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map_or_else(|| panic!("no {name} in {headers:?}"), |(_, v)| v.clone())
        };
        let auth = get("authorization");
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261204/eu-west-1/lambda/aws4_request"
            ),
            "{auth}"
        );
        assert!(
            auth.contains("SignedHeaders=content-type;host;x-amz-date"),
            "{auth}"
        );
        assert_eq!(get("x-amz-date"), "20261204T000000Z");
        let other = signed(b"{\"from_entry\": 1}");
        let other_auth = &other.iter().find(|(n, _)| n == "authorization").unwrap().1;
        assert_ne!(&auth, other_auth, "the body is part of the signature");
    }
}
