//! Supervision of one configured upstream: connect, initialize, reconnect with back-off.

use super::{Connection, Opened, RelatedSink, UpstreamError, UpstreamEvent};
use crate::jsonrpc::Message;
use crate::protocol;
use futures::future::BoxFuture;
use mcplane_config::{Transport, UpstreamConfig};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Opens a transport for a config; the production opener is [`super::open`].
pub type Opener =
    Arc<dyn Fn(UpstreamConfig) -> BoxFuture<'static, Result<Opened, UpstreamError>> + Send + Sync>;

/// Where an upstream stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamState {
    /// Connecting or initializing.
    Connecting,
    /// Initialized and serving.
    Ready,
    /// Not reachable; retrying with back-off.
    Down {
        /// Why (short, non-sensitive).
        reason: String,
    },
}

#[derive(Clone)]
struct Status {
    state: UpstreamState,
    conn: Option<Arc<Connection>>,
    init: Option<Value>,
    /// Increases on each successful initialize (catalog consumers re-fetch when it changes).
    generation: u64,
    /// Initialized or given up on at least once.
    settled: bool,
    /// Failed connection attempts so far (a caller waiting for a reconnect stops at the next).
    failures: u64,
    /// Why the last connection attempt failed, while down because of it.
    error: Option<UpstreamError>,
}

/// One supervised upstream MCP server.
pub struct Upstream {
    config: UpstreamConfig,
    status: watch::Sender<Status>,
}

/// The reason given once the supervisor has stopped.
const SHUT_DOWN: &str = "shut down";

/// How long a connection must have been up for the back-off to reset.
const STABLE_AFTER: Duration = Duration::from_secs(30);

impl Upstream {
    /// Starts supervising `config`. Events (notifications, server→client requests) go to
    /// `events`; the supervisor stops and closes the transport when `shutdown` is cancelled.
    pub fn spawn(
        config: UpstreamConfig,
        opener: Opener,
        events: mpsc::Sender<UpstreamEvent>,
        shutdown: CancellationToken,
        tasks: &TaskTracker,
    ) -> Arc<Upstream> {
        let (status, _) = watch::channel(Status {
            state: UpstreamState::Connecting,
            conn: None,
            init: None,
            generation: 0,
            settled: false,
            failures: 0,
            error: None,
        });
        let up = Arc::new(Upstream { config, status });
        tasks.spawn(up.clone().supervise(opener, events, shutdown));
        up
    }

    /// The configured name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The configuration.
    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    /// The current state.
    pub fn state(&self) -> UpstreamState {
        self.status.borrow().state.clone()
    }

    /// Whether the upstream has been initialized or given up on at least once (readiness).
    pub fn settled(&self) -> bool {
        self.status.borrow().settled
    }

    /// The upstream's `initialize` result while connected.
    pub fn init_result(&self) -> Option<Value> {
        self.status.borrow().init.clone()
    }

    /// Whether the server declared `capability` (a key of its `capabilities`, not `null`), read
    /// in place (lists and calls ask this on every request).
    pub fn has_capability(&self, capability: &str) -> bool {
        self.status
            .borrow()
            .init
            .as_ref()
            .and_then(|r| r.get("capabilities")?.get(capability))
            .is_some_and(|c| !c.is_null())
    }

    /// The generation of the current connection (0 before the first initialize).
    pub fn generation(&self) -> u64 {
        self.status.borrow().generation
    }

    /// Waits until the upstream has settled (see [`Upstream::settled`]).
    pub async fn wait_settled(&self) {
        let mut rx = self.status.subscribe();
        let _ = rx.wait_for(|s| s.settled).await;
    }

    /// Sends a request and returns the response message (result or error). Waits for a
    /// connection still being set up; fails fast when the upstream is down. If the server's
    /// HTTP session expired, reconnects and retries once.
    pub async fn request(
        &self,
        method: &str,
        params: Option<Value>,
        related: Option<RelatedSink>,
    ) -> Result<Message, UpstreamError> {
        let conn = self.connection(0).await?;
        match conn
            .request(
                method,
                params.clone(),
                related.clone(),
                self.config.timeouts.call,
            )
            .await
        {
            Err(UpstreamError::SessionExpired { .. }) => {
                let (seen, failures) = {
                    let s = self.status.borrow();
                    (s.generation, s.failures)
                };
                conn.close().await;
                let conn = self.reconnected(seen + 1, failures).await?;
                conn.request(method, params, related, self.config.timeouts.call)
                    .await
            }
            other => other,
        }
    }

    /// Sends a raw message on the current connection (e.g. a reply to a server→client request).
    pub async fn send(&self, message: Value) -> Result<(), UpstreamError> {
        self.connection(0).await?.send(message).await
    }

    /// Sends a notification on the current connection.
    pub async fn notify(&self, method: &str, params: Option<Value>) -> Result<(), UpstreamError> {
        self.connection(0).await?.notify(method, params).await
    }

    /// A ready connection, waiting while one is being set up; fails fast when down.
    async fn connection(&self, min_generation: u64) -> Result<Arc<Connection>, UpstreamError> {
        self.wait_ready(min_generation, None).await
    }

    /// A connection newer than the one that just ended (generation `min_generation` or later),
    /// waiting through the back-off before the reconnect; fails when a connection attempt made
    /// after `failures_seen` failures fails too.
    async fn reconnected(
        &self,
        min_generation: u64,
        failures_seen: u64,
    ) -> Result<Arc<Connection>, UpstreamError> {
        self.wait_ready(min_generation, Some(failures_seen)).await
    }

    async fn wait_ready(
        &self,
        min_generation: u64,
        failures_seen: Option<u64>,
    ) -> Result<Arc<Connection>, UpstreamError> {
        let limit = self.config.timeouts.connect + self.config.timeouts.initialize;
        let mut rx = self.status.subscribe();
        let wait = rx.wait_for(|s| match &s.state {
            UpstreamState::Ready => s.generation >= min_generation,
            UpstreamState::Down { reason } => match failures_seen {
                None => true,
                Some(seen) => s.failures > seen || reason == SHUT_DOWN,
            },
            UpstreamState::Connecting => false,
        });
        let status = match tokio::time::timeout(limit, wait).await {
            Ok(Ok(s)) => s.clone(),
            Ok(Err(_)) => return Err(self.unavailable("shutting down")),
            Err(_) => {
                return Err(UpstreamError::Timeout {
                    server: self.config.name.clone(),
                    what: "connect and initialize".into(),
                    secs: limit.as_secs_f64(),
                });
            }
        };
        match (status.state, status.conn) {
            (UpstreamState::Ready, Some(conn)) => Ok(conn),
            (UpstreamState::Down { reason }, _) => {
                Err(status.error.unwrap_or_else(|| self.unavailable(&reason)))
            }
            _ => Err(self.unavailable("not connected")),
        }
    }

    fn unavailable(&self, reason: &str) -> UpstreamError {
        UpstreamError::Unavailable {
            server: self.config.name.clone(),
            reason: reason.to_string(),
        }
    }

    fn set(&self, f: impl FnOnce(&mut Status)) {
        self.status.send_modify(f);
    }

    async fn supervise(
        self: Arc<Self>,
        opener: Opener,
        events: mpsc::Sender<UpstreamEvent>,
        shutdown: CancellationToken,
    ) {
        let (initial, max) = match &self.config.transport {
            Transport::Stdio { restart, .. } => (restart.initial_backoff, restart.max_backoff),
            _ => (Duration::from_millis(500), Duration::from_secs(30)),
        };
        let mut backoff = initial;
        loop {
            self.set(|s| s.state = UpstreamState::Connecting);
            // Not raced against shutdown here: `connect` closes what it opened when shutdown
            // interrupts it (dropping it mid-initialize would leave the transport open).
            let attempt = self.connect(&opener, events.clone(), &shutdown).await;
            if shutdown.is_cancelled() {
                if let Ok((conn, _)) = attempt {
                    conn.close().await;
                }
                break;
            }
            match attempt {
                Ok((conn, init)) => {
                    tracing::info!(server = %self.config.name, "upstream initialized");
                    self.set(|s| {
                        s.state = UpstreamState::Ready;
                        s.conn = Some(conn.clone());
                        s.init = Some(init);
                        s.generation += 1;
                        s.settled = true;
                        s.error = None;
                    });
                    let up_since = Instant::now();
                    tokio::select! {
                        _ = conn.closed().cancelled() => {}
                        _ = shutdown.cancelled() => {
                            conn.close().await;
                            break;
                        }
                    }
                    conn.close().await;
                    if up_since.elapsed() > STABLE_AFTER {
                        backoff = initial;
                    }
                    tracing::warn!(server = %self.config.name, "upstream connection lost; reconnecting");
                    self.set(|s| {
                        s.state = UpstreamState::Down {
                            reason: "connection lost; reconnecting".into(),
                        };
                        s.conn = None;
                        s.init = None;
                    });
                }
                Err(e) => {
                    tracing::warn!(server = %self.config.name, error = %e, retry_in_ms = backoff.as_millis() as u64, "upstream unavailable");
                    self.set(|s| {
                        s.state = UpstreamState::Down {
                            reason: e.to_string(),
                        };
                        s.conn = None;
                        s.init = None;
                        s.settled = true;
                        s.failures += 1;
                        s.error = Some(e);
                    });
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.cancelled() => break,
            }
            backoff = (backoff * 2).min(max);
        }
        self.set(|s| {
            s.state = UpstreamState::Down {
                reason: SHUT_DOWN.into(),
            };
            s.conn = None;
            s.settled = true;
            s.error = None;
        });
    }

    async fn connect(
        &self,
        opener: &Opener,
        events: mpsc::Sender<UpstreamEvent>,
        shutdown: &CancellationToken,
    ) -> Result<(Arc<Connection>, Value), UpstreamError> {
        let name = &self.config.name;
        let t = self.config.timeouts;
        let open = tokio::time::timeout(t.connect, opener(self.config.clone()));
        let opened = tokio::select! {
            r = open => r.map_err(|_| UpstreamError::Timeout {
                server: name.clone(),
                what: "connect".into(),
                secs: t.connect.as_secs_f64(),
            })??,
            _ = shutdown.cancelled() => return Err(self.unavailable(SHUT_DOWN)),
        };
        let conn = Connection::start(name.clone(), opened, events);
        let initialize = async {
            let response = conn
                .request("initialize", Some(initialize_params()), None, t.initialize)
                .await
                .map_err(|e| match e {
                    UpstreamError::Timeout { server, secs, .. } => UpstreamError::Timeout {
                        server,
                        what: "initialize".into(),
                        secs,
                    },
                    e => e,
                })?;
            let init = response
                .into_outcome()
                .map_err(|e| UpstreamError::Unavailable {
                    server: name.clone(),
                    reason: format!("initialize failed: {}", e.message),
                })?;
            let version = init
                .get("protocolVersion")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if protocol::era(version).is_none() {
                return Err(UpstreamError::Protocol {
                    server: name.clone(),
                    reason: format!("unsupported protocol version {version:?}"),
                });
            }
            conn.negotiated(version);
            conn.notify("notifications/initialized", None).await?;
            Ok(init)
        };
        let result = tokio::select! {
            r = initialize => r,
            _ = shutdown.cancelled() => Err(self.unavailable(SHUT_DOWN)),
        };
        match result {
            Ok(init) => Ok((conn, init)),
            Err(e) => {
                conn.close().await;
                Err(e)
            }
        }
    }
}

/// What mcplane says about itself when it initializes an upstream. It declares every client
/// capability it can relay to downstream clients; a request for one a particular client lacks is
/// refused toward the upstream at that time.
fn initialize_params() -> Value {
    json!({
        "protocolVersion": protocol::LATEST,
        "capabilities": client_capabilities(),
        "clientInfo": client_info(),
    })
}

/// The client capabilities mcplane declares upstream (in `initialize`, or in every 2026-07-28
/// request's `_meta`).
pub(super) fn client_capabilities() -> Value {
    json!({
        "roots": {"listChanged": true},
        "sampling": {},
        "elicitation": {"form": {}, "url": {}}
    })
}

/// mcplane's `clientInfo`.
pub(super) fn client_info() -> Value {
    json!({"name": "mcplane", "version": env!("CARGO_PKG_VERSION")})
}
