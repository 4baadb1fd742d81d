//! A counting proxy in front of LocalStack: the benchmark's Lambdas send every AWS request
//! through it, so each request is counted by service and operation, whichever process made it.
//! DynamoDB requests get `ReturnConsumedCapacity: TOTAL` added and the consumed capacity read off
//! the answer (LocalStack does not check signatures, so the edited body is accepted).

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// What was counted for one (service, operation).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OpStats {
    pub requests: u64,
    /// DynamoDB write capacity units consumed.
    pub wcu: f64,
    /// DynamoDB read capacity units consumed.
    pub rcu: f64,
}

/// Counts by (service, operation).
pub type Counts = BTreeMap<(String, String), OpStats>;

/// The proxy's shared counters.
#[derive(Clone, Default)]
pub struct Counter(Arc<Mutex<Counts>>);

impl Counter {
    /// Everything counted since the last reset, and a reset.
    pub fn take(&self) -> Counts {
        std::mem::take(&mut *self.0.lock().expect("counter poisoned"))
    }

    fn add(&self, service: &str, op: &str, wcu: f64, rcu: f64) {
        let mut counts = self.0.lock().expect("counter poisoned");
        let s = counts
            .entry((service.to_owned(), op.to_owned()))
            .or_default();
        s.requests += 1;
        s.wcu += wcu;
        s.rcu += rcu;
    }
}

/// The service a request is for: the service of its SigV4 credential scope.
fn service_of(req: &Request<Incoming>) -> String {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|auth| {
            let scope = auth.split("Credential=").nth(1)?.split(',').next()?;
            scope.split('/').nth(3).map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".into())
}

fn operation_of(service: &str, req: &Request<Incoming>) -> String {
    let method = req.method().as_str();
    let path = req.uri().path();
    let query = req.uri().query().unwrap_or("");
    match service {
        "dynamodb" => req
            .headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .and_then(|t| t.split('.').nth(1))
            .unwrap_or("?")
            .to_owned(),
        "lambda" if path.ends_with("/invocations") => {
            let event = req
                .headers()
                .get("x-amz-invocation-type")
                .is_some_and(|v| v == "Event");
            if event {
                "Invoke (async event)"
            } else {
                "Invoke (sync)"
            }
            .to_owned()
        }
        "scheduler" => match method {
            "POST" => "CreateSchedule",
            "DELETE" => "DeleteSchedule",
            "GET" => "GetSchedule",
            _ => "UpdateSchedule",
        }
        .to_owned(),
        "s3" => match method {
            "PUT" => "PutObject",
            "GET" if query.contains("list-type") => "ListObjectsV2",
            "GET" => "GetObject",
            "HEAD" => "HeadObject",
            "DELETE" => "DeleteObject",
            "POST" if query.contains("delete") => "DeleteObjects",
            _ => "other",
        }
        .to_owned(),
        _ => format!("{method} {path}"),
    }
}

/// Sums `CapacityUnits` of a DynamoDB answer's `ConsumedCapacity` (one object or a list).
fn consumed(answer: &serde_json::Value) -> (f64, f64, f64) {
    let one = |c: &serde_json::Value| {
        (
            c["CapacityUnits"].as_f64().unwrap_or(0.0),
            c["WriteCapacityUnits"].as_f64().unwrap_or(0.0),
            c["ReadCapacityUnits"].as_f64().unwrap_or(0.0),
        )
    };
    match &answer["ConsumedCapacity"] {
        serde_json::Value::Array(list) => list
            .iter()
            .map(one)
            .fold((0.0, 0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2)),
        c @ serde_json::Value::Object(_) => one(c),
        _ => (0.0, 0.0, 0.0),
    }
}

/// Whether a DynamoDB operation reads (consumes read units).
pub fn is_read(op: &str) -> bool {
    matches!(
        op,
        "GetItem" | "Query" | "Scan" | "BatchGetItem" | "TransactGetItems"
    )
}

async fn forward(
    upstream: &str,
    http: &reqwest::Client,
    counter: &Counter,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, String> {
    let service = service_of(&req);
    let op = operation_of(&service, &req);
    let url = format!(
        "{upstream}{}",
        req.uri()
            .path_and_query()
            .map_or("/", hyper::http::uri::PathAndQuery::as_str)
    );
    let method = req.method().clone();
    let mut headers = req.headers().clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let body = if service == "dynamodb" {
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(serde_json::Value::Object(mut map)) => {
                map.insert("ReturnConsumedCapacity".into(), "TOTAL".into());
                Bytes::from(serde_json::to_vec(&map).map_err(|e| e.to_string())?)
            }
            _ => body,
        }
    } else {
        body
    };
    headers.remove("content-length");
    headers.remove("connection");
    let answer = http
        .request(method, &url)
        .headers(headers)
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = answer.status();
    let answer_headers = answer.headers().clone();
    let bytes = answer.bytes().await.map_err(|e| e.to_string())?;
    let (mut wcu, mut rcu) = (0.0, 0.0);
    if service == "dynamodb" {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            let (total, w, r) = consumed(&v);
            // DynamoDB Local reports totals; split them by the kind of operation.
            if w + r > 0.0 {
                (wcu, rcu) = (w, r);
            } else if is_read(&op) {
                rcu = total;
            } else {
                wcu = total;
            }
        }
    }
    counter.add(&service, &op, wcu, rcu);
    let mut response = Response::builder().status(status.as_u16());
    for (name, value) in &answer_headers {
        if name != "content-length" && name != "transfer-encoding" && name != "connection" {
            response = response.header(name, value);
        }
    }
    response.body(Full::new(bytes)).map_err(|e| e.to_string())
}

/// Serves the proxy on `listen`, forwarding to `upstream` (`http://127.0.0.1:4566`).
pub async fn serve(listen: SocketAddr, upstream: String, counter: Counter) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (http, counter, upstream) = (http.clone(), counter.clone(), upstream.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let (http, counter, upstream) =
                        (http.clone(), counter.clone(), upstream.clone());
                    async move {
                        Ok::<_, Infallible>(match forward(&upstream, &http, &counter, req).await {
                            Ok(r) => r,
                            Err(e) => Response::builder()
                                .status(502)
                                .body(Full::new(Bytes::from(format!("proxy: {e}"))))
                                .expect("valid response"),
                        })
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(())
}
