//! Serving a fixture [`Service`] over HTTP for tests: mcplane's own downstream transports
//! (Streamable HTTP at `/mcp`, legacy HTTP+SSE at `/sse` + `/messages`) behind the edge checks
//! (loopback `Host`/`Origin` only, so DNS-rebinding attempts are refused), on a real socket.

use mcplane_gateway::edge::{EdgeLayer, EdgePolicy};
use mcplane_gateway::{http, mcp_http, mcp_sse};
use mcplane_mcp::server::{Server, Service};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Largest request header block the fixture accepts.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// How long [`HttpFixture::shutdown`] lets in-flight requests finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// A fixture service listening on HTTP. Dropping it stops the listener.
pub struct HttpFixture {
    addr: SocketAddr,
    server: Arc<Server>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<io::Result<()>>>,
}

/// Serves `service` on `addr` (port 0 picks a free port) until the returned handle is shut down
/// or dropped.
pub async fn serve(service: Arc<dyn Service>, addr: SocketAddr) -> io::Result<HttpFixture> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let server = Server::new(service);
    let app = mcp_http::router(server.clone(), mcp_http::McpHttpOptions::default())
        .merge(mcp_sse::router(
            server.clone(),
            mcp_sse::LegacySseOptions::default(),
        ))
        .layer(EdgeLayer::new(EdgePolicy::new(&[], &[], MAX_HEADER_BYTES)));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(http::serve(listener, app, shutdown.clone(), SHUTDOWN_GRACE));
    Ok(HttpFixture {
        addr,
        server,
        shutdown,
        task: Some(task),
    })
}

impl HttpFixture {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The Streamable HTTP endpoint, e.g. `http://127.0.0.1:41234/mcp`.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// The legacy HTTP+SSE endpoint, e.g. `http://127.0.0.1:41234/sse`.
    pub fn sse_url(&self) -> String {
        format!("http://{}/sse", self.addr)
    }

    /// The server core (sessions) behind the listener.
    pub fn server(&self) -> &Arc<Server> {
        &self.server
    }

    /// Stops accepting, closes every session and waits for the listener to finish.
    pub async fn shutdown(mut self) -> io::Result<()> {
        self.shutdown.cancel();
        self.server.shutdown().await;
        match self.task.take() {
            Some(task) => task.await.map_err(io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for HttpFixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpFixture")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for HttpFixture {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[cfg(test)]
mod tests {
    use crate::conformance::{SERVER_NAME, serve_conformance_fixture};
    use serde_json::{Value, json};

    const ACCEPT: &str = "application/json, text/event-stream";

    fn client() -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::new()
    }

    async fn post(url: &str, session: Option<&str>, body: &Value) -> reqwest::Response {
        let mut req = client()
            .post(url)
            .header("accept", ACCEPT)
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(s) = session {
            req = req.header("mcp-session-id", s);
        }
        req.send().await.unwrap()
    }

    /// The JSON-RPC message answering a POST, whether sent as JSON or as the last SSE event.
    async fn answer(r: reqwest::Response) -> Value {
        let sse = r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream");
        let text = r.text().await.unwrap();
        if !sse {
            return serde_json::from_str(&text).unwrap();
        }
        let last = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .rfind(|d| !d.trim().is_empty())
            .unwrap();
        serde_json::from_str(last.trim()).unwrap()
    }

    #[tokio::test]
    async fn conformance_fixture_over_streamable_http() {
        let (http, fixture) = serve_conformance_fixture(([127, 0, 0, 1], 0).into())
            .await
            .unwrap();
        let url = http.url();
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}});
        let r = post(&url, None, &init).await;
        assert!(r.status().is_success());
        let session = r.headers()["mcp-session-id"].to_str().unwrap().to_string();
        assert_eq!(answer(r).await["result"]["serverInfo"]["name"], SERVER_NAME);
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        assert_eq!(post(&url, Some(&session), &initialized).await.status(), 202);

        let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "test_simple_text"}});
        let v = answer(post(&url, Some(&session), &call).await).await;
        assert_eq!(v["result"]["content"][0]["type"], "text");
        let sub = json!({"jsonrpc": "2.0", "id": 3, "method": "resources/subscribe", "params": {"uri": "test://watched-resource"}});
        answer(post(&url, Some(&session), &sub).await).await;
        assert_eq!(fixture.subscriptions(&session).len(), 1);

        // DNS rebinding: a foreign Host is refused.
        let r = client()
            .post(&url)
            .header("host", "evil.example.com")
            .header("origin", "http://evil.example.com")
            .header("accept", ACCEPT)
            .header("content-type", "application/json")
            .body(init.to_string())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{}", r.status());

        http.shutdown().await.unwrap();
    }
}
