//! `durable console`: serves the orchestrator's web console on 127.0.0.1, forwarding every
//! request to the Function URL (signed with SigV4 on AWS, where a browser cannot sign).

use crate::endpoint::Endpoint;
use crate::CliError;
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;

/// The largest request body forwarded (the API's bodies are small JSON).
const MAX_BODY: usize = 1 << 20;

/// Serves the console on `127.0.0.1:port` until interrupted.
pub async fn serve(endpoint: Endpoint, port: u16) -> Result<bool, CliError> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| CliError::Endpoint(format!("cannot listen on {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| CliError::Endpoint(e.to_string()))?;
    println!("console: http://{local}/console");
    let endpoint = Arc::new(endpoint);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted.map_err(|e| CliError::Http(e.to_string()))?,
            _ = tokio::signal::ctrl_c() => return Ok(true),
        };
        let endpoint = endpoint.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| forward(endpoint.clone(), req));
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("console connection: {e}");
            }
        });
    }
}

type Reply = hyper::Response<http_body_util::Full<bytes::Bytes>>;

async fn forward(
    endpoint: Arc<Endpoint>,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<Reply, std::convert::Infallible> {
    let method = req.method().as_str().to_owned();
    let path = req
        .uri()
        .path_and_query()
        .map_or("/".to_owned(), |p| p.as_str().to_owned());
    let path = if path == "/" {
        "/console".to_owned()
    } else {
        path
    };
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let reply = |status: u16, content_type: &str, body: Vec<u8>| {
        hyper::Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .expect("a valid response")
    };
    let body = match http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes().to_vec(),
        Err(e) => {
            let body = serde_json::json!({"code": "bad_request", "message": e.to_string()});
            return Ok(reply(
                400,
                "application/json",
                body.to_string().into_bytes(),
            ));
        }
    };
    Ok(
        match endpoint
            .request(&method, &path, body, content_type.as_deref())
            .await
        {
            Ok(answer) => reply(
                answer.status,
                answer.content_type.as_deref().unwrap_or("application/json"),
                answer.body,
            ),
            Err(e) => {
                let body = serde_json::json!({"code": "bad_gateway", "message": e.to_string()});
                reply(502, "application/json", body.to_string().into_bytes())
            }
        },
    )
}
