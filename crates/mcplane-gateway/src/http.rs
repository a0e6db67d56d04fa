//! The HTTP listener, assembled: Streamable HTTP at `/mcp`, legacy SSE at `/sse` + `/messages`,
//! whatever routes the binary adds (health, readiness), the edge checks (Origin, Host, header
//! size) and the body limit; serving with graceful shutdown; and the idle-session reaper.

use crate::edge::{EdgeLayer, EdgePolicy};
use crate::{mcp_http, mcp_sse};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use mcplane_config::ServerConfig;
use mcplane_mcp::server::Server;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Request extension telling long-lived SSE streams (GET `/mcp`, `/sse`) to end because the
/// server is shutting down. [`serve`] installs it; streams without it run until their session
/// closes.
#[derive(Debug, Clone, Default)]
pub struct ShutdownSignal(pub CancellationToken);

impl ShutdownSignal {
    /// The shutdown token a request carries (one that never fires without [`serve`]).
    pub(crate) fn of(extensions: &axum::http::Extensions) -> CancellationToken {
        extensions
            .get::<ShutdownSignal>()
            .map(|s| s.0.clone())
            .unwrap_or_default()
    }
}

/// The whole HTTP app for `server`: `/mcp`, `/sse`, `/messages` and the routes in `extra`
/// (e.g. `/healthz`, `/readyz`), behind the edge checks and body limit from `config`.
pub fn app(server: Arc<Server>, config: &ServerConfig, extra: Router) -> Router {
    let streamable = mcp_http::router(
        server.clone(),
        mcp_http::McpHttpOptions {
            max_body_bytes: config.max_body_bytes,
            ..Default::default()
        },
    );
    let legacy = mcp_sse::router(
        server,
        mcp_sse::LegacySseOptions {
            max_body_bytes: config.max_body_bytes,
            ..Default::default()
        },
    );
    streamable
        .merge(legacy)
        .merge(extra)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(EdgeLayer::new(EdgePolicy::from_config(config)))
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then stops accepting, ends the
/// long-lived SSE streams, and waits for in-flight requests for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    let app = app.layer(axum::Extension(ShutdownSignal(shutdown.clone())));
    let signal = shutdown.clone();
    let serving = axum::serve(listener, app)
        .with_graceful_shutdown(async move { signal.cancelled().await })
        .into_future();
    tokio::select! {
        r = serving => r,
        _ = async {
            shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(grace_secs = grace.as_secs_f64(), "requests still in flight after the shutdown grace period; stopped waiting");
            Ok(())
        }
    }
}

/// Closes sessions idle for longer than `idle_timeout`, checking periodically (a quarter of the
/// timeout, between 1 s and 60 s) until `shutdown`. Spawn it on the process's task tracker.
pub async fn reap_idle_sessions(
    server: Arc<Server>,
    idle_timeout: Duration,
    shutdown: CancellationToken,
) {
    reap_periodically(idle_timeout, shutdown, "MCP sessions", |max_idle| {
        server.reap_idle(max_idle)
    })
    .await;
}

/// Calls `reap` (close what has been idle for longer than its argument, say how many) a few
/// times per `idle_timeout` (a quarter of it, between 1 s and 60 s) until `shutdown`; `what` names
/// the sessions in the log line.
pub(crate) async fn reap_periodically(
    idle_timeout: Duration,
    shutdown: CancellationToken,
    what: &str,
    reap: impl Fn(Duration) -> usize,
) {
    let every = (idle_timeout / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let closed = reap(idle_timeout);
                if closed > 0 {
                    tracing::info!(closed, "closed idle {what}");
                }
            }
            _ = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use mcplane_mcp::jsonrpc::RpcError;
    use mcplane_mcp::server::{RequestContext, Service, Session};
    use serde_json::Value;

    struct Nothing;

    #[async_trait]
    impl Service for Nothing {
        async fn initialize(&self, _: &Arc<Session>) -> Result<Value, RpcError> {
            Ok(serde_json::json!({"capabilities": {}, "serverInfo": {"name": "n", "version": "0"}}))
        }
        async fn request(
            &self,
            _: &RequestContext,
            method: &str,
            _: Option<Value>,
        ) -> Result<Value, RpcError> {
            Err(RpcError::method_not_found(method))
        }
    }

    #[tokio::test]
    async fn reaper_closes_idle_sessions_and_stops_on_shutdown() {
        let server = Server::new(Arc::new(Nothing));
        server.new_session(None);
        let stop = CancellationToken::new();
        let reaper = tokio::spawn(reap_idle_sessions(
            server.clone(),
            Duration::from_millis(20),
            stop.clone(),
        ));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while server.session_count() > 0 {
            assert!(tokio::time::Instant::now() < deadline, "session not reaped");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.cancel();
        reaper.await.unwrap();
    }
}
