//! The HTTP surface: which route a request takes, and validation of everything the caller sent.
//! Nothing here does I/O, so every bad request is refused before anything is written.

use crate::http::query::{list_params, ListParams};
use crate::http::ApiError;
use crate::http::FunctionUrlRequest;
use crate::lifecycle::Version;
use durable_protocol::trace::TraceParent;
use durable_protocol::{
    AwakeableId, HandlerKind, HandlerName, IdempotencyKey, InvocationId, ObjectKey, ServiceKind,
    ServiceName, StepResult, TerminalFailure,
};

/// The header that makes a request idempotent.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// A validated request.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// `POST /{service}/{handler}[/send]` or `POST /{object}/{key}/{handler}[/send]`: which of
    /// the two a three-segment path is depends on the service's kind, so the segments after the
    /// service are resolved by [`resolve_target`] once the service is known.
    Invoke {
        service: ServiceName,
        rest: Vec<String>,
        input: serde_json::Value,
        idempotency_key: Option<IdempotencyKey>,
        /// A valid `traceparent` header (an invalid one is ignored, as W3C trace context says).
        traceparent: Option<TraceParent>,
        /// The headers the handler sees (`ctx.headers()`).
        headers: durable_protocol::Headers,
    },
    /// `GET /{workflow}/{key}/output` or `/attach`: a workflow's result by its key.
    WorkflowOutput {
        service: ServiceName,
        key: ObjectKey,
        attach: bool,
    },
    /// `POST /{workflow}/{key}/promises/{name}/resolve` or `/reject`.
    CompletePromise {
        service: ServiceName,
        key: ObjectKey,
        name: String,
        result: StepResult,
    },
    /// `GET /invocations/{id}/output`: the output of an invocation, if finished.
    Output { id: InvocationId },
    /// `GET /invocations/{id}/attach`: wait for the output (as long as this call may).
    Attach { id: InvocationId },
    /// `POST /awakeables/{id}/resolve` or `/reject`: complete an awakeable.
    CompleteAwakeable { id: AwakeableId, result: StepResult },
    /// `POST /awakeables/{id}/heartbeat`: keep an awakeable with a heartbeat timeout alive.
    HeartbeatAwakeable { id: AwakeableId },
    /// `POST /invocations/{id}/cancel|kill|pause|resume|retry|restart`: an operator's action.
    Manage { id: InvocationId, action: Action },
    /// `GET /invocations?service=&status=&...`: a page of invocations, newest first.
    List(ListParams),
    /// `GET /invocations/{id}`: an invocation's metadata, journal timeline, caller, children.
    Describe { id: InvocationId },
    /// `GET /objects/{service}/{key}`: an object's state, lock holder and queue.
    Object {
        service: ServiceName,
        key: ObjectKey,
    },
    /// `GET /console` and its assets: the web console.
    Console { asset: Option<String> },
}

/// What an operator asks of an invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Cooperative: the handler sees `409 cancelled` at its next durable await.
    Cancel,
    /// Immediate: no more handler code runs.
    Kill,
    /// Stop retrying until resumed.
    Pause,
    /// Continue a paused invocation, optionally on another version of its handler.
    Resume { version: Option<Version> },
    /// Retry now, skipping the current backoff.
    Retry,
    /// Run again from journal entry `from_entry` (default: the entry that failed).
    Restart { from_entry: Option<u32> },
}

impl Action {
    /// The path segment that names it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Cancel => "cancel",
            Action::Kill => "kill",
            Action::Pause => "pause",
            Action::Resume { .. } => "resume",
            Action::Retry => "retry",
            Action::Restart { .. } => "restart",
        }
    }
}

/// The body of `POST /invocations/{id}/resume` (optional).
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ResumeBody {
    #[serde(default)]
    version: Option<String>,
}

/// The body of `POST /invocations/{id}/restart` (optional).
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RestartBody {
    #[serde(default)]
    from_entry: Option<u32>,
}

/// The body of the other actions: nothing, or `{}`.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NoBody {}

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
    // Split on the raw path, then decode each segment exactly once: an escaped `/` stays in
    // its segment, and `%2541` is `%41`, not `A`.
    let decoded = path
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .map(percent_decode)
        .collect::<Result<Vec<String>, ApiError>>()?;
    let segments: Vec<&str> = decoded.iter().map(String::as_str).collect();
    match segments.as_slice() {
        ["invocations"] => {
            if method != "GET" {
                return Err(method_not_allowed(&method, "GET", path));
            }
            Ok(Route::List(list_params(&req.raw_query_string)?))
        }
        ["invocations", id] if method == "GET" => {
            let id = InvocationId::parse(id)
                .map_err(|e| ApiError::bad_request("invalid_invocation_id", e.to_string()))?;
            Ok(Route::Describe { id })
        }
        ["objects", service, key] if method == "GET" => Ok(Route::Object {
            service: service_name(service)?,
            key: object_key(key)?,
        }),
        ["console", rest @ ..] if rest.len() <= 1 => {
            if method != "GET" {
                return Err(method_not_allowed(&method, "GET", path));
            }
            Ok(Route::Console {
                asset: rest.first().map(|a| (*a).to_owned()),
            })
        }
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
        ["invocations", id, action @ ("cancel" | "kill" | "pause" | "resume" | "retry" | "restart")] => {
            if method != "POST" {
                return Err(method_not_allowed(&method, "POST", path));
            }
            let id = InvocationId::parse(id)
                .map_err(|e| ApiError::bad_request("invalid_invocation_id", e.to_string()))?;
            Ok(Route::Manage {
                id,
                action: action_of(req, action)?,
            })
        }
        ["awakeables", id, "heartbeat"] => {
            if method != "POST" {
                return Err(method_not_allowed(&method, "POST", path));
            }
            let id = AwakeableId::parse(id).map_err(|_| {
                ApiError::not_found("unknown_awakeable", format!("no awakeable {id}"))
            })?;
            Ok(Route::HeartbeatAwakeable { id })
        }
        ["awakeables", id, action @ ("resolve" | "reject")] => {
            if method != "POST" {
                return Err(method_not_allowed(&method, "POST", path));
            }
            // Malformed and forged ids get the same answer as unknown ones.
            let id = AwakeableId::parse(id).map_err(|_| {
                ApiError::not_found("unknown_awakeable", format!("no awakeable {id}"))
            })?;
            let result = completion(req, action)?;
            Ok(Route::CompleteAwakeable { id, result })
        }
        [service, key, action @ ("output" | "attach")] if method == "GET" => {
            Ok(Route::WorkflowOutput {
                service: service_name(service)?,
                key: object_key(key)?,
                attach: *action == "attach",
            })
        }
        [service, key, "promises", name, action @ ("resolve" | "reject")] => {
            if method != "POST" {
                return Err(method_not_allowed(&method, "POST", path));
            }
            let name = (*name).to_owned();
            durable_protocol::keyed::check_name("promise name", &name)
                .map_err(|e| ApiError::bad_request("invalid_promise_name", e))?;
            Ok(Route::CompletePromise {
                service: service_name(service)?,
                key: object_key(key)?,
                name,
                result: completion(req, action)?,
            })
        }
        [service, rest @ ..]
            if (1..=3).contains(&rest.len()) && rest.iter().all(|s| !s.is_empty()) =>
        {
            if method != "POST" {
                return Err(method_not_allowed(&method, "POST", path));
            }
            let service = service_name(service)?;
            let input = invocation_input(req)?;
            let idempotency_key = match req.header(IDEMPOTENCY_HEADER) {
                None => None,
                Some(k) => Some(IdempotencyKey::new(k).map_err(|e| {
                    ApiError::bad_request("invalid_idempotency_key", e.to_string())
                })?),
            };
            let headers = durable_protocol::Headers::from_request(
                req.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            )
            .map_err(|e| ApiError::new(431, "headers_too_large", e.to_string()))?;
            Ok(Route::Invoke {
                service,
                rest: rest.iter().map(std::string::ToString::to_string).collect(),
                input,
                idempotency_key,
                traceparent: req
                    .header("traceparent")
                    .and_then(|t| TraceParent::parse(t).ok()),
                headers,
            })
        }
        _ => Err(ApiError::not_found(
            "not_found",
            format!(
                "no route for {method} {path}; use POST /{{service}}/{{handler}}[/send], \
                 POST /{{object}}/{{key}}/{{handler}}[/send], GET /invocations[?query], \
                 GET /invocations/{{id}}[/output|attach], GET /objects/{{service}}/{{key}}, GET /console, \
                 GET /{{workflow}}/{{key}}/output|attach, \
                 POST /invocations/{{id}}/cancel|kill|pause|resume|retry|restart, \
                 POST /{{workflow}}/{{key}}/promises/{{name}}/resolve|reject or \
                 POST /awakeables/{{id}}/resolve|reject|heartbeat"
            ),
        )),
    }
}

/// Which handler an invocation path names, resolved with the service's kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedTarget {
    pub key: Option<ObjectKey>,
    pub handler: HandlerName,
    pub handler_kind: Option<HandlerKind>,
    /// One-way: start it and answer with its id.
    pub send: bool,
}

/// Resolves the path segments after the service: `{handler}[/send]` for services,
/// `{key}/{handler}[/send]` for objects and workflows. `kind_of` gives a keyed handler's kind
/// (`None`: no such handler).
pub fn resolve_target(
    service: &ServiceName,
    kind: ServiceKind,
    rest: &[String],
    kind_of: impl Fn(&HandlerName) -> Option<HandlerKind>,
) -> Result<ResolvedTarget, ApiError> {
    let handler_name = |h: &str| {
        HandlerName::new(h)
            .map_err(|e| ApiError::not_found("unknown_handler", format!("no such handler: {e}")))
    };
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    match kind {
        ServiceKind::Service => match rest.as_slice() {
            [handler] | [handler, "send"] => Ok(ResolvedTarget {
                key: None,
                handler: handler_name(handler)?,
                handler_kind: None,
                send: rest.len() == 2,
            }),
            _ => Err(ApiError::not_found(
                "not_found",
                format!("{service} is a service: use POST /{service}/{{handler}}[/send]"),
            )),
        },
        ServiceKind::Object | ServiceKind::Workflow => match rest.as_slice() {
            [key, handler] | [key, handler, "send"] => {
                let handler = handler_name(handler)?;
                let handler_kind = kind_of(&handler).ok_or_else(|| {
                    ApiError::not_found(
                        "unknown_handler",
                        format!("{service} has no handler {handler}"),
                    )
                })?;
                Ok(ResolvedTarget {
                    key: Some(object_key(key)?),
                    handler,
                    handler_kind: Some(handler_kind),
                    send: rest.len() == 3,
                })
            }
            _ => Err(ApiError::bad_request(
                "key_required",
                format!(
                    "{service} is {}: address it by key, POST /{service}/{{key}}/{{handler}}[/send]",
                    if kind == ServiceKind::Object {
                        "a virtual object"
                    } else {
                        "a workflow"
                    }
                ),
            )),
        },
    }
}

fn service_name(segment: &str) -> Result<ServiceName, ApiError> {
    ServiceName::new(segment)
        .map_err(|e| ApiError::not_found("unknown_service", format!("no such service: {e}")))
}

fn object_key(segment: &str) -> Result<ObjectKey, ApiError> {
    ObjectKey::new(segment).map_err(|e| ApiError::bad_request("invalid_key", e.to_string()))
}

/// Decodes the `%XX` escapes of one raw path segment (keys like `ada@example.com` may arrive
/// escaped). A `%` not followed by two hex digits, or escapes that are not UTF-8, are `400`.
fn percent_decode(segment: &str) -> Result<String, ApiError> {
    let invalid = |why: &str| {
        ApiError::bad_request(
            "invalid_path",
            format!(
                "path segment {:?} {why}",
                segment.chars().take(80).collect::<String>()
            ),
        )
    };
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .ok_or_else(|| invalid("has a '%' that is not followed by two hex digits"))?;
        let hex = std::str::from_utf8(hex).expect("hex digits are ASCII");
        out.push(u8::from_str_radix(hex, 16).expect("two hex digits"));
        i += 3;
    }
    String::from_utf8(out).map_err(|_| invalid("decodes to invalid UTF-8"))
}

/// The result a resolve or reject body completes an awakeable or promise with: an empty resolve
/// body means `null` (a bare signal).
fn completion(req: &FunctionUrlRequest, action: &str) -> Result<StepResult, ApiError> {
    if action == "resolve" {
        let body = json_body_or_empty(req)?.unwrap_or(serde_json::Value::Null);
        return Ok(StepResult::Value(body));
    }
    let body = json_body(req)?;
    let r: Rejection = serde_json::from_value(body).map_err(|e| {
        ApiError::bad_request(
            "invalid_rejection",
            format!("send {{\"message\": \"...\"}} (and optionally a 4xx/5xx \"code\"): {e}"),
        )
    })?;
    let code = r.code.filter(|c| (400..=599).contains(c)).unwrap_or(500);
    Ok(StepResult::Failure(TerminalFailure::new(code, r.message)))
}

/// The action named `name`, with its optional JSON body checked.
fn action_of(req: &FunctionUrlRequest, name: &str) -> Result<Action, ApiError> {
    fn body<T: serde::de::DeserializeOwned + Default>(
        req: &FunctionUrlRequest,
        name: &str,
        expected: &str,
    ) -> Result<T, ApiError> {
        match json_body_or_empty(req)? {
            None => Ok(T::default()),
            Some(value) => serde_json::from_value(value).map_err(|e| {
                ApiError::bad_request("invalid_body", format!("{name} takes {expected}: {e}"))
            }),
        }
    }
    Ok(match name {
        "cancel" => body::<NoBody>(req, name, "no body").map(|_| Action::Cancel)?,
        "kill" => body::<NoBody>(req, name, "no body").map(|_| Action::Kill)?,
        "pause" => body::<NoBody>(req, name, "no body").map(|_| Action::Pause)?,
        "retry" => body::<NoBody>(req, name, "no body").map(|_| Action::Retry)?,
        "resume" => {
            let b: ResumeBody = body(
                req,
                name,
                r#"no body or {"version": "<number>" | "current"}"#,
            )?;
            let version = match b.version.as_deref() {
                None => None,
                Some("current") => Some(Version::Current),
                Some(v) if !v.is_empty() && v.bytes().all(|c| c.is_ascii_digit()) => {
                    Some(Version::Number(v.to_owned()))
                }
                Some(v) => {
                    return Err(ApiError::bad_request(
                        "invalid_version",
                        format!("version {v:?} is neither a version number nor \"current\""),
                    ))
                }
            };
            Action::Resume { version }
        }
        _ => {
            let b: RestartBody = body(req, name, r#"no body or {"from_entry": <entry index>}"#)?;
            Action::Restart {
                from_entry: b.from_entry,
            }
        }
    })
}

/// The JSON body; an empty one is an error.
fn json_body(req: &FunctionUrlRequest) -> Result<serde_json::Value, ApiError> {
    json_body_or_empty(req)?.ok_or_else(|| {
        ApiError::bad_request(
            "empty_body",
            "the request body is empty; send the handler's input as JSON (e.g. null, {} or [])",
        )
    })
}

/// An invocation's input: the JSON body, or raw bytes for `application/octet-stream` (a
/// handler that takes `Bytes`).
fn invocation_input(req: &FunctionUrlRequest) -> Result<serde_json::Value, ApiError> {
    if media_type(req).as_deref() == Some("application/octet-stream") {
        let bytes = req
            .body_bytes()
            .map_err(|e| ApiError::bad_request("invalid_body", e))?;
        return Ok(durable_protocol::Bytes(bytes).to_json());
    }
    json_body(req)
}

/// The request's media type, lower-cased, without parameters.
fn media_type(req: &FunctionUrlRequest) -> Option<String> {
    req.header("content-type").map(|ct| {
        ct.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    })
}

/// The JSON body, `None` if it is empty.
fn json_body_or_empty(req: &FunctionUrlRequest) -> Result<Option<serde_json::Value>, ApiError> {
    if let Some(media) = media_type(req).filter(|m| m != "application/json") {
        return Err(ApiError::new(
            415,
            "unsupported_media_type",
            format!(
                "content-type {media:?} is not supported; send application/json (or \
                 application/octet-stream to a handler that takes raw bytes)"
            ),
        ));
    }
    let bytes = req
        .body_bytes()
        .map_err(|e| ApiError::bad_request("invalid_body", e))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("the request body is not valid JSON: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::function_url::{HttpDescription, RequestContext};

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

    fn err<T: std::fmt::Debug>(r: Result<T, ApiError>) -> (u16, &'static str) {
        let e = r.unwrap_err();
        (e.status, e.code)
    }

    #[test]
    fn operator_actions_parse_with_their_bodies() {
        let id = "inv_svc.0123456789abcdef0123456789abcdef";
        let action = |path: &str, body: Option<&str>| match route(&req("POST", path, body)) {
            Ok(Route::Manage { action, .. }) => action,
            other => panic!("{path}: {other:?}"),
        };
        assert_eq!(
            action(&format!("/invocations/{id}/cancel"), None),
            Action::Cancel
        );
        assert_eq!(
            action(&format!("/invocations/{id}/kill"), Some("{}")),
            Action::Kill
        );
        assert_eq!(
            action(
                &format!("/invocations/{id}/resume"),
                Some(r#"{"version":"7"}"#)
            ),
            Action::Resume {
                version: Some(Version::Number("7".into()))
            }
        );
        assert_eq!(
            action(
                &format!("/invocations/{id}/restart"),
                Some(r#"{"from_entry":2}"#)
            ),
            Action::Restart {
                from_entry: Some(2)
            }
        );
        assert_eq!(
            action(&format!("/invocations/{id}/restart"), None),
            Action::Restart { from_entry: None }
        );
        let path = format!("/invocations/{id}/pause");
        assert_eq!(
            err(route(&req("GET", &path, None))),
            (405, "method_not_allowed")
        );
        assert_eq!(
            err(route(&req("POST", &path, Some(r#"{"x":1}"#)))),
            (400, "invalid_body")
        );
        assert_eq!(
            err(route(&req(
                "POST",
                &format!("/invocations/{id}/resume"),
                Some(r#"{"version":"v1"}"#)
            ))),
            (400, "invalid_version")
        );
        assert_eq!(
            err(route(&req("POST", "/invocations/nope/kill", None))),
            (400, "invalid_invocation_id")
        );
    }

    #[test]
    fn invoke_routes_parse() {
        let mut r = req("POST", "/checkout/run", Some(r#"{"id":1}"#));
        r.headers.insert("idempotency-key".into(), "order-1".into());
        r.headers.insert(
            "content-type".into(),
            "application/json; charset=utf-8".into(),
        );
        r.headers.insert("x-tenant".into(), "acme".into());
        r.headers
            .insert("authorization".into(), "Bearer secret".into());
        match route(&r).unwrap() {
            Route::Invoke {
                service,
                rest,
                input,
                idempotency_key,
                traceparent,
                headers,
            } => {
                assert_eq!(traceparent, None);
                assert_eq!(
                    headers.iter().collect::<Vec<_>>(),
                    vec![("x-tenant", "acme")],
                    "the caller's own headers only: no credentials, no transport"
                );
                assert_eq!(service.as_str(), "checkout");
                assert_eq!(rest, vec!["run".to_string()]);
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
            Route::Invoke { rest, .. } if rest == ["h", "send"]
        ));
        let id = InvocationId::random(&ServiceName::new("svc").unwrap());
        assert_eq!(
            route(&req("GET", &format!("/invocations/{id}/attach"), None)).unwrap(),
            Route::Attach { id: id.clone() }
        );
        let awk = AwakeableId {
            tag: durable_protocol::auth::SigningKey::random()
                .invocation_key(&id)
                .tag(durable_protocol::auth::Purpose::Awakeable, 3),
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
                result: StepResult::Failure(TerminalFailure::new(TerminalFailure::FORBIDDEN, "no"))
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
            (404, "unknown_awakeable"),
            "a malformed id is answered like an unknown one"
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
            route(&req("POST", &format!("/awakeables/{awk}/resolve"), None)).unwrap(),
            Route::CompleteAwakeable {
                id: awk.clone(),
                result: StepResult::Value(serde_json::Value::Null)
            },
            "an empty resolve means null"
        );
        assert_eq!(err(reject("")), (400, "empty_body"));
    }

    #[test]
    fn path_segments_are_decoded_exactly_once_and_strictly() {
        let workflow = |key: &str| {
            route(&req("GET", &format!("/wf/{key}/output"), None)).map(|r| match r {
                Route::WorkflowOutput { key, .. } => key.to_string(),
                other => panic!("{other:?}"),
            })
        };
        assert_eq!(workflow("ada%40example.com").unwrap(), "ada@example.com");
        assert_eq!(
            err(workflow("a%2541")),
            (400, "invalid_key"),
            "%25 decodes to '%', which is not decoded again"
        );
        assert_eq!(
            err(workflow("a%2Fb")),
            (400, "invalid_key"),
            "an escaped '/' stays in its segment"
        );
        for bad in ["%c3%28", "%ff%28", "%zz", "%4", "a%"] {
            assert_eq!(err(workflow(bad)), (400, "invalid_path"), "{bad}");
        }
        for dots in [".", "..", "%2e%2e", "..."] {
            assert_eq!(err(workflow(dots)), (400, "invalid_key"), "{dots}");
        }
        assert_eq!(
            err(workflow("%c3%a9t%c3%a9")),
            (400, "invalid_key"),
            "valid UTF-8, not a key"
        );
    }

    #[test]
    fn output_route_parses() {
        let id = InvocationId::random(&ServiceName::new("svc").unwrap());
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
        let id = InvocationId::random(&ServiceName::new("svc").unwrap());
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
            err(route(&req("POST", "/a/b/c/d/e", Some("{}")))),
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
    }

    #[test]
    fn targets_resolve_by_service_kind() {
        let svc = ServiceName::new("counter").unwrap();
        let rest = |r: &[&str]| {
            r.iter()
                .map(std::string::ToString::to_string)
                .collect::<Vec<_>>()
        };
        let kinds = |h: &HandlerName| match h.as_str() {
            "add" => Some(HandlerKind::Exclusive),
            "get" => Some(HandlerKind::Shared),
            _ => None,
        };
        let t = resolve_target(&svc, ServiceKind::Object, &rest(&["ada", "add"]), kinds).unwrap();
        assert_eq!(t.key.unwrap().as_str(), "ada");
        assert_eq!(t.handler.as_str(), "add");
        assert_eq!(t.handler_kind, Some(HandlerKind::Exclusive));
        assert!(!t.send);
        let t = resolve_target(
            &svc,
            ServiceKind::Object,
            &rest(&["ada", "get", "send"]),
            kinds,
        )
        .unwrap();
        assert!(t.send);
        assert_eq!(t.handler_kind, Some(HandlerKind::Shared));
        let e = resolve_target(&svc, ServiceKind::Object, &rest(&["add"]), kinds).unwrap_err();
        assert_eq!((e.status, e.code), (400, "key_required"));
        let e =
            resolve_target(&svc, ServiceKind::Object, &rest(&["ada", "nope"]), kinds).unwrap_err();
        assert_eq!((e.status, e.code), (404, "unknown_handler"));
        let e =
            resolve_target(&svc, ServiceKind::Object, &rest(&["a b", "add"]), kinds).unwrap_err();
        assert_eq!((e.status, e.code), (400, "invalid_key"));
        let t = resolve_target(
            &svc,
            ServiceKind::Object,
            &rest(&["ada@x.io", "add"]),
            kinds,
        )
        .unwrap();
        assert_eq!(t.key.unwrap().as_str(), "ada@x.io");
        // A service reads the same three segments as handler + send.
        let t = resolve_target(&svc, ServiceKind::Service, &rest(&["run", "send"]), |_| {
            None
        })
        .unwrap();
        assert_eq!((t.handler.as_str(), t.send, t.key), ("run", true, None));
        let e =
            resolve_target(&svc, ServiceKind::Service, &rest(&["a", "b"]), |_| None).unwrap_err();
        assert_eq!(e.status, 404);
        let e = resolve_target(&svc, ServiceKind::Service, &rest(&["1run"]), |_| None).unwrap_err();
        assert_eq!((e.status, e.code), (404, "unknown_handler"));
    }

    #[test]
    fn workflow_routes_parse() {
        assert_eq!(
            route(&req("GET", "/signup/ada/output", None)).unwrap(),
            Route::WorkflowOutput {
                service: ServiceName::new("signup").unwrap(),
                key: ObjectKey::new("ada").unwrap(),
                attach: false
            }
        );
        assert_eq!(
            route(&req(
                "POST",
                "/signup/ada/promises/email-link/resolve",
                Some(r#""ok""#)
            ))
            .unwrap(),
            Route::CompletePromise {
                service: ServiceName::new("signup").unwrap(),
                key: ObjectKey::new("ada").unwrap(),
                name: "email-link".into(),
                result: StepResult::Value(serde_json::json!("ok")),
            }
        );
        assert_eq!(
            err(route(&req("GET", "/signup/ada/promises/x/resolve", None))),
            (405, "method_not_allowed")
        );
        assert_eq!(
            err(route(&req("GET", "/signup/a%20b/output", None))),
            (400, "invalid_key")
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
        // The same bytes as application/octet-stream are a raw-bytes input.
        r.headers
            .insert("content-type".into(), "application/octet-stream".into());
        match route(&r).unwrap() {
            Route::Invoke { input, .. } => assert_eq!(
                durable_protocol::Bytes::of_json(&input),
                Some(durable_protocol::Bytes(vec![0xff]))
            ),
            other => panic!("{other:?}"),
        }
    }
}
