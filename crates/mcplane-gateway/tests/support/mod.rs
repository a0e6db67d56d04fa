//! Shared fixtures for the transport tests: a tiny MCP service, a gateway on 127.0.0.1:0, an SSE
//! reader and a raw HTTP/1.1 client for requests reqwest will not send.

#![allow(dead_code)]

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use mcplane_config::ServerConfig;
use mcplane_mcp::jsonrpc::RpcError;
use mcplane_mcp::server::{RequestContext, Server, Service, Session};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Barrier;
use tokio_util::sync::CancellationToken;

/// How long any single wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// Tools: `echo` (returns its arguments), `progress` (a progress notification, then the
/// answer), `rendezvous` (waits until two calls are in flight), `broadcast` (a standalone
/// notification on the session).
pub struct TestService {
    barrier: Barrier,
}

impl TestService {
    pub fn new() -> Arc<TestService> {
        Arc::new(TestService {
            barrier: Barrier::new(2),
        })
    }
}

fn text(args: &Value) -> Value {
    json!({"content": [{"type": "text", "text": args.to_string()}], "structuredContent": args})
}

#[async_trait]
impl Service for TestService {
    async fn initialize(&self, _: &Arc<Session>) -> Result<Value, RpcError> {
        Ok(json!({"capabilities": {"tools": {}}, "serverInfo": {"name": "test", "version": "0"}}))
    }

    async fn request(
        &self,
        cx: &RequestContext,
        method: &str,
        params: Option<Value>,
    ) -> Result<Value, RpcError> {
        let params = params.unwrap_or_default();
        match method {
            "tools/list" => Ok(json!({"tools": []})),
            "tools/call" => {
                let args = params.get("arguments").cloned().unwrap_or(json!({}));
                match params.get("name").and_then(Value::as_str) {
                    Some("echo") => Ok(text(&args)),
                    Some("progress") => {
                        let token = cx.progress_token().cloned().unwrap_or(json!("none"));
                        cx.notify(
                            "notifications/progress",
                            Some(json!({"progressToken": token, "progress": 1, "total": 2})),
                        )
                        .await;
                        Ok(text(&args))
                    }
                    Some("rendezvous") => {
                        self.barrier.wait().await;
                        Ok(text(&args))
                    }
                    Some("broadcast") => {
                        cx.session.notify(
                            "notifications/message",
                            Some(json!({"level": "info", "data": args})),
                        );
                        Ok(text(&json!({})))
                    }
                    other => Err(RpcError::invalid_params(format!("unknown tool {other:?}"))),
                }
            }
            m => Err(RpcError::method_not_found(m)),
        }
    }
}

/// A running gateway.
pub struct Gateway {
    pub addr: SocketAddr,
    pub server: Arc<Server>,
    pub stop: CancellationToken,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Gateway {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The `server:` config from YAML (empty = defaults).
pub fn server_config(yaml: &str) -> ServerConfig {
    mcplane_config::parse(yaml, &|_| None)
        .unwrap()
        .config
        .server
}

/// Starts the full app (with a `/healthz` extra route) on 127.0.0.1:0.
pub async fn start(config: ServerConfig) -> Gateway {
    let server = Server::new(TestService::new());
    let extra = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
    let app = mcplane_gateway::http::app(server.clone(), &config, extra);
    start_app(server, app).await
}

/// Serves `app` (answering with `server`) on 127.0.0.1:0.
pub async fn start_app(server: Arc<Server>, app: axum::Router) -> Gateway {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(mcplane_gateway::http::serve(
        listener,
        app,
        stop.clone(),
        Duration::from_secs(2),
    ));
    Gateway {
        addr,
        server,
        stop,
        task,
    }
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// Polls `check` until it holds or [`WAIT`] passes.
pub async fn eventually(mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in time"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One parsed SSE event.
#[derive(Debug, Clone, Default)]
pub struct Event {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

impl Event {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap()
    }
}

/// Reads SSE events from a response body, skipping comments.
pub struct SseReader {
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    buf: String,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> SseReader {
        SseReader {
            body: response.bytes_stream().boxed(),
            buf: String::new(),
        }
    }

    /// The next event, or `None` when the stream ends.
    pub async fn next(&mut self) -> Option<Event> {
        tokio::time::timeout(WAIT, self.next_inner())
            .await
            .expect("no SSE event in time")
    }

    async fn next_inner(&mut self) -> Option<Event> {
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut event = Event::default();
                let mut has_data = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("data: ") {
                        if has_data {
                            event.data.push('\n');
                        }
                        event.data.push_str(v);
                        has_data = true;
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        event.id = Some(v.to_string());
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        event.event = Some(v.to_string());
                    }
                }
                if has_data {
                    return Some(event);
                }
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buf.push_str(std::str::from_utf8(&chunk).unwrap()),
                Some(Err(_)) | None => return None,
            }
        }
    }
}

/// A raw HTTP/1.1 exchange: writes `request` as is, reads the response until the server closes.
/// Returns the status code and the whole response text.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut out = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    out.extend_from_slice(&chunk[..n]);
                    if complete(&out) {
                        break;
                    }
                }
            }
        }
        let text = String::from_utf8_lossy(&out).to_string();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, text)
    };
    tokio::time::timeout(WAIT, exchange)
        .await
        .expect("raw HTTP exchange timed out")
}

/// Whether `out` holds a whole response with a `content-length` body.
fn complete(out: &[u8]) -> bool {
    let text = String::from_utf8_lossy(out);
    let Some(head_end) = text.find("\r\n\r\n") else {
        return false;
    };
    let length = text[..head_end]
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    out.len() >= head_end + 4 + length
}

/// The JSON body of a raw response.
pub fn raw_json(text: &str) -> Value {
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    serde_json::from_str(body).unwrap()
}
