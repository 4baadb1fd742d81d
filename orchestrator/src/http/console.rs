//! `GET /console`: the web console, one self-contained page (no framework, nothing loaded from
//! elsewhere) that reads and acts through the same routes as every other client.

use crate::http::{ApiError, FunctionUrlResponse};
use std::collections::HashMap;

/// The console page.
const INDEX: &str = include_str!("../../console/index.html");

/// Answers the console page (`/console` or `/console/index.html`).
pub(crate) fn console(asset: Option<&str>) -> Result<FunctionUrlResponse, ApiError> {
    match asset {
        None | Some("index.html") => Ok(FunctionUrlResponse {
            status_code: 200,
            headers: HashMap::from([
                (
                    "content-type".to_owned(),
                    "text/html; charset=utf-8".to_owned(),
                ),
                (
                    "content-security-policy".to_owned(),
                    "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                     frame-ancestors 'none'"
                        .to_owned(),
                ),
                ("x-content-type-options".to_owned(), "nosniff".to_owned()),
                ("cache-control".to_owned(), "no-cache".to_owned()),
            ]),
            body: INDEX.to_owned(),
            is_base64_encoded: false,
        }),
        Some(other) => Err(ApiError::not_found(
            "not_found",
            format!("the console has no asset {other:?}"),
        )),
    }
}
