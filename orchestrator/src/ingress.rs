//! The HTTP surface: which route a request takes, and validation of everything the caller sent.
//! Nothing here does I/O, so every bad request is refused before anything is written.

use crate::error::ApiError;
use crate::http::FunctionUrlRequest;
use durable_protocol::{
    AwakeableId, HandlerName, IdempotencyKey, InvocationId, ServiceName, StepResult,
    TerminalFailure,
};

/// The header that makes a request idempotent.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// A validated request.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// `POST /{service}/{handler}` (wait for the output) or `.../send` (answer 202 at once).
    Invoke {
        service: ServiceName,
        handler: HandlerName,
        input: serde_json::Value,
        idempotency_key: Option<IdempotencyKey>,
        /// One-way: start it and answer with its id.
        send: bool,
    },
    /// `GET /invocations/{id}/output`: the output of an invocation, if finished.
    Output { id: InvocationId },
    /// `GET /invocations/{id}/attach`: wait for the output (as long as this call may).
    Attach { id: InvocationId },
    /// `POST /awakeables/{id}/resolve` or `/reject`: complete an awakeable.
    CompleteAwakeable { id: AwakeableId, result: StepResult },
}

/// The body of `POST /awakeables/{id}/reject`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Rejection {
    message: String,
    #[serde(default)]
    code: Option<u16>,
}

fn method_not_allowed(method: &str, allowed: &str, path: &str) -> ApiError {
    ApiError::new(
        405,
        "method_not_allowed",
        format!("{method} is not allowed on {path}; use {allowed}"),
    )
}

/// Maps a Function URL request to a route, or to the 4xx error that explains what is wrong.
pub fn route(req: &FunctionUrlRequest) -> Result<Route, ApiError> {
    let method = req.request_context.http.method.to_ascii_uppercase();
    let path = req.raw_path.as_str();
    let segments: Vec<&str> = path
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .collect();
    match segments.as_slice() {
        ["invocations", id, action @ ("output" | "attach")] => {
            if method != "GET" {
                return Err(method_not_allowed(&method, "GET", path));
            }
            let id = InvocationId::parse(id)
                .map_err(|e| ApiError::bad_request("invalid_invocation_id", e.to_string()))?;
            Ok(if *action == "output" {
                Route::Output { id }
            } else {
                Route::Attach { id }
            })
        }
        ["awakeables", id, action @ ("resolve" | "reject")] => {
            if method != "POST" {
                return Err(method_not_allowed(&method, "POST", path));
            }
            let id = AwakeableId::parse(id)
                .map_err(|e| ApiError::bad_request("invalid_awakeable_id", e.to_string()))?;
            let body = json_body(req)?;
            let result = if *action == "resolve" {
                StepResult::Value(body)
            } else {
                let r: Rejection = serde_json::from_value(body).map_err(|e| {
                    ApiError::bad_request("invalid_rejection", format!("send {{\"message\": \"...\"}} (and optionally a 4xx/5xx \"code\"): {e}"))
                })?;
                let code = r.code.filter(|c| (400..=599).contains(c)).unwrap_or(500);
                StepResult::Failure(TerminalFailure::new(code, r.message))
            };
            Ok(Route::CompleteAwakeable { id, result })
        }
        [service, handler] | [service, handler, "send"]
            if !service.is_empty() && !handler.is_empty() =>
        {
            let send = segments.len() == 3;
            if method != "POST" {
                return Err(method_not_allowed(&method, "POST", path));
            }
            let service = ServiceName::new(*service).map_err(|e| {
                ApiError::not_found("unknown_service", format!("no such service: {e}"))
            })?;
            let handler = HandlerName::new(*handler).map_err(|e| {
                ApiError::not_found("unknown_handler", format!("no such handler: {e}"))
            })?;
            let input = json_body(req)?;
            let idempotency_key = match req.header(IDEMPOTENCY_HEADER) {
                None => None,
                Some(k) => Some(IdempotencyKey::new(k).map_err(|e| {
                    ApiError::bad_request("invalid_idempotency_key", e.to_string())
                })?),
            };
            Ok(Route::Invoke {
                service,
                handler,
                input,
                idempotency_key,
                send,
            })
        }
        _ => Err(ApiError::not_found(
            "not_found",
            format!(
                "no route for {method} {path}; use POST /{{service}}/{{handler}}[/send], \
                 GET /invocations/{{id}}/output|attach or POST /awakeables/{{id}}/resolve|reject"
            ),
        )),
    }
}

fn json_body(req: &FunctionUrlRequest) -> Result<serde_json::Value, ApiError> {
    if let Some(ct) = req.header("content-type") {
        let media = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if media != "application/json" {
            return Err(ApiError::new(
                415,
                "unsupported_media_type",
                format!("content-type {ct:?} is not supported; send application/json"),
            ));
        }
    }
    let bytes = req
        .body_bytes()
        .map_err(|e| ApiError::bad_request("invalid_body", e))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "empty_body",
            "the request body is empty; send the handler's input as JSON (e.g. null, {} or [])",
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("the request body is not valid JSON: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{HttpDescription, RequestContext};

    fn req(method: &str, path: &str, body: Option<&str>) -> FunctionUrlRequest {
        FunctionUrlRequest {
            raw_path: path.into(),
            body: body.map(str::to_owned),
            request_context: RequestContext {
                http: HttpDescription {
                    method: method.into(),
                },
            },
            ..Default::default()
        }
    }

    fn err(r: Result<Route, ApiError>) -> (u16, &'static str) {
        let e = r.unwrap_err();
        (e.status, e.code)
    }

    #[test]
    fn invoke_routes_parse() {
        let mut r = req("POST", "/checkout/run", Some(r#"{"id":1}"#));
        r.headers.insert("idempotency-key".into(), "order-1".into());
        r.headers.insert(
            "content-type".into(),
            "application/json; charset=utf-8".into(),
        );
        match route(&r).unwrap() {
            Route::Invoke {
                service,
                handler,
                input,
                idempotency_key,
                send: false,
            } => {
                assert_eq!(service.as_str(), "checkout");
                assert_eq!(handler.as_str(), "run");
                assert_eq!(input, serde_json::json!({"id": 1}));
                assert_eq!(idempotency_key.unwrap().as_str(), "order-1");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn send_attach_and_awakeable_routes_parse() {
        assert!(matches!(
            route(&req("POST", "/svc/h/send", Some("1"))).unwrap(),
            Route::Invoke { send: true, .. }
        ));
        let id = InvocationId::random();
        assert_eq!(
            route(&req("GET", &format!("/invocations/{id}/attach"), None)).unwrap(),
            Route::Attach { id: id.clone() }
        );
        let awk = AwakeableId {
            invocation: id,
            index: 3,
        };
        assert_eq!(
            route(&req(
                "POST",
                &format!("/awakeables/{awk}/resolve"),
                Some(r#"{"ok":1}"#)
            ))
            .unwrap(),
            Route::CompleteAwakeable {
                id: awk.clone(),
                result: StepResult::Value(serde_json::json!({"ok": 1}))
            }
        );
        assert_eq!(
            route(&req(
                "POST",
                &format!("/awakeables/{awk}/reject"),
                Some(r#"{"message":"no","code":403}"#)
            ))
            .unwrap(),
            Route::CompleteAwakeable {
                id: awk.clone(),
                result: StepResult::Failure(TerminalFailure::new(403, "no"))
            }
        );
        let reject = |body| {
            route(&req(
                "POST",
                &format!("/awakeables/{awk}/reject"),
                Some(body),
            ))
        };
        assert_eq!(err(reject(r#""just text""#)), (400, "invalid_rejection"));
        assert_eq!(
            err(reject(r#"{"message":"x","extra":1}"#)),
            (400, "invalid_rejection")
        );
        assert_eq!(
            err(route(&req(
                "POST",
                "/awakeables/awk_nope_1/resolve",
                Some("1")
            ))),
            (400, "invalid_awakeable_id")
        );
        assert_eq!(
            err(route(&req(
                "GET",
                &format!("/awakeables/{awk}/resolve"),
                None
            ))),
            (405, "method_not_allowed")
        );
        assert_eq!(
            err(route(&req(
                "POST",
                &format!("/awakeables/{awk}/resolve"),
                None
            ))),
            (400, "empty_body")
        );
    }

    #[test]
    fn output_route_parses() {
        let id = InvocationId::random();
        let r = req("GET", &format!("/invocations/{id}/output"), None);
        assert_eq!(route(&r).unwrap(), Route::Output { id });
        assert_eq!(
            err(route(&req("GET", "/invocations/nope/output", None))),
            (400, "invalid_invocation_id")
        );
    }

    #[test]
    fn wrong_methods_are_405() {
        assert_eq!(
            err(route(&req("GET", "/checkout/run", None))),
            (405, "method_not_allowed")
        );
        assert_eq!(
            err(route(&req("PUT", "/checkout/run", Some("{}")))),
            (405, "method_not_allowed")
        );
        let id = InvocationId::random();
        assert_eq!(
            err(route(&req(
                "POST",
                &format!("/invocations/{id}/output"),
                None
            ))),
            (405, "method_not_allowed")
        );
    }

    #[test]
    fn unknown_paths_are_404() {
        assert_eq!(err(route(&req("POST", "/", None))), (404, "not_found"));
        assert_eq!(
            err(route(&req("POST", "/a/b/c/d", Some("{}")))),
            (404, "not_found")
        );
        assert_eq!(
            err(route(&req("POST", "/bad%20name/run", Some("{}")))),
            (404, "unknown_service")
        );
        assert_eq!(
            err(route(&req("POST", "/invocations/run", Some("{}")))),
            (404, "unknown_service")
        );
        assert_eq!(
            err(route(&req("POST", "/svc/1run", Some("{}")))),
            (404, "unknown_handler")
        );
    }

    #[test]
    fn bad_bodies_are_400_or_415() {
        assert_eq!(
            err(route(&req("POST", "/s/h", Some("{not json")))),
            (400, "invalid_json")
        );
        assert_eq!(err(route(&req("POST", "/s/h", None))), (400, "empty_body"));
        assert_eq!(
            err(route(&req("POST", "/s/h", Some("  ")))),
            (400, "empty_body")
        );
        let mut r = req("POST", "/s/h", Some("{}"));
        r.headers.insert("content-type".into(), "text/plain".into());
        assert_eq!(err(route(&r)), (415, "unsupported_media_type"));
        let mut r = req("POST", "/s/h", Some("{}"));
        r.headers
            .insert("idempotency-key".into(), "has space".into());
        assert_eq!(err(route(&r)), (400, "invalid_idempotency_key"));
        let mut r = req("POST", "/s/h", Some("e30=")); // base64 of {}
        r.is_base64_encoded = true;
        assert!(route(&r).is_ok());
        let mut r = req("POST", "/s/h", Some("/w==")); // base64 of 0xff: not UTF-8
        r.is_base64_encoded = true;
        assert_eq!(err(route(&r)), (400, "invalid_json"));
    }
}
