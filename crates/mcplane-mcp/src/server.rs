//! The downstream side: an MCP server core that any transport (Streamable HTTP, legacy SSE,
//! stdio) drives, and any [`Service`] answers.
//!
//! The core owns what every MCP server must do the same way: sessions and their lifecycle,
//! version negotiation in `initialize`, `ping`, cancellation (`notifications/cancelled`), and
//! server→client requests with their replies. A transport turns bytes into [`Message`]s and calls
//! [`Server::dispatch`]; each request yields a channel of outgoing messages (interim notifications
//! and requests related to it, then exactly one response), which the transport writes out as JSON
//! or as an SSE stream. The gateway, the demo server and test fixtures are all [`Service`]s.
//!
//! Clients of the stateless 2026-07-28 protocol go through [`Server::dispatch_modern`] instead
//! (see [`modern`]): each request brings its version, capabilities and client in `params._meta`
//! and gets an ephemeral, unregistered [`Session`] carrying them, so a `Service` answers both eras
//! with the same code. The core also answers `server/discover`, runs `subscriptions/listen`
//! streams, and turns a `Service`'s server→client requests into multi round-trip
//! `input_required` results ([`mrtr`]).

mod modern;
mod mrtr;

pub use modern::{CacheHints, Listening, ModernDispatch, ServerOptions};

use crate::jsonrpc::{Kind, Message, RpcError};
use crate::param_headers::ParamHeader;
use crate::protocol::{self, LogLevel};
use async_trait::async_trait;
use rand::RngCore;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Messages buffered per request stream before the producer waits (backpressure).
const REQUEST_STREAM_CAPACITY: usize = 64;
/// Messages buffered for a session's standalone stream before new ones are dropped.
const STANDALONE_CAPACITY: usize = 256;

/// Answers MCP requests for a session. Implemented by the gateway, the demo server and fixtures.
#[async_trait]
pub trait Service: Send + Sync + 'static {
    /// The `initialize` result without `protocolVersion` (the core sets it): `capabilities`,
    /// `serverInfo`, optional `instructions`. The session already holds the client's details.
    async fn initialize(&self, session: &Arc<Session>) -> Result<Value, RpcError>;

    /// Answers one request (never `initialize` or `ping`, which the core handles).
    async fn request(
        &self,
        cx: &RequestContext,
        method: &str,
        params: Option<Value>,
    ) -> Result<Value, RpcError>;

    /// A notification from the client (never `notifications/cancelled`, handled by the core).
    async fn notification(&self, _session: &Arc<Session>, _method: &str, _params: Option<Value>) {}

    /// What `server/discover` reports to a 2026-07-28 client: `capabilities`, optional
    /// `instructions`, and optionally `serverInfo`, `ttlMs` and `cacheScope` (the core adds
    /// `supportedVersions`, `resultType` and the `_meta` fields). The default reuses
    /// [`Service::initialize`].
    async fn discover(&self, session: &Arc<Session>) -> Result<Value, RpcError> {
        self.initialize(session).await
    }

    /// The server's `Implementation` (`name`, `version`, …), put in every 2026-07-28 result's
    /// `_meta["io.modelcontextprotocol/serverInfo"]`.
    fn server_info(&self) -> Value {
        json!({"name": "mcplane", "version": env!("CARGO_PKG_VERSION")})
    }

    /// Caching hints for a cacheable 2026-07-28 result of `method` (`server/discover`, the four
    /// lists, `resources/read`) that does not carry its own `ttlMs`/`cacheScope`. The default,
    /// `None`, makes the core say `ttlMs: 0, cacheScope: "private"` (stale at once, never shared).
    fn cache_hints(&self, _session: &Session, _method: &str) -> Option<CacheHints> {
        None
    }

    /// Opens a 2026-07-28 `subscriptions/listen` stream for `filter` (the request's
    /// `params.notifications`). The core sends the acknowledgement, tags every notification with
    /// the subscription id, and ends the stream when the client closes it. The default: not
    /// supported (`-32601`).
    async fn listen(&self, _cx: &RequestContext, _filter: &Value) -> Result<Listening, RpcError> {
        Err(RpcError::method_not_found("subscriptions/listen"))
    }

    /// The parameters tool `name` mirrors into `Mcp-Param-*` headers (its `x-mcp-header`
    /// annotations), which a 2026-07-28 `tools/call` over HTTP must carry. The default: none.
    async fn param_headers(&self, _name: &str) -> Option<Arc<Vec<ParamHeader>>> {
        None
    }

    /// The session ended (client DELETE, idle expiry, shutdown).
    fn session_closed(&self, _session: &Session) {}
}

/// What the client told us in `initialize`.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// Negotiated protocol version.
    pub protocol_version: String,
    /// The client's `capabilities` object.
    pub capabilities: Value,
    /// The client's `clientInfo`.
    pub client_info: Value,
}

/// One downstream session.
pub struct Session {
    id: String,
    binding: Option<String>,
    client: OnceLock<ClientInfo>,
    initialized: AtomicBool,
    standalone_tx: mpsc::Sender<Value>,
    standalone_rx: Mutex<Option<mpsc::Receiver<Value>>>,
    pending: Mutex<HashMap<String, oneshot::Sender<Result<Value, RpcError>>>>,
    inflight: Mutex<HashMap<String, CancellationToken>>,
    next_id: AtomicU64,
    last_active: Mutex<Instant>,
    closed: CancellationToken,
    /// 2026-07-28 only: the request's `io.modelcontextprotocol/logLevel`.
    log_level: Option<LogLevel>,
}

fn id_key(id: &Value) -> String {
    id.to_string()
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Session {
    fn new(id: String, binding: Option<String>, closed: CancellationToken) -> Session {
        let (tx, rx) = mpsc::channel(STANDALONE_CAPACITY);
        Session {
            id,
            binding,
            client: OnceLock::new(),
            initialized: AtomicBool::new(false),
            standalone_tx: tx,
            standalone_rx: Mutex::new(Some(rx)),
            pending: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            last_active: Mutex::new(Instant::now()),
            closed,
            log_level: None,
        }
    }

    /// The session of one 2026-07-28 request: never registered, already "initialized" with what
    /// the request's `_meta` said, closed with `parent` (server shutdown).
    fn ephemeral(
        binding: Option<String>,
        client: ClientInfo,
        log_level: Option<LogLevel>,
        parent: &CancellationToken,
    ) -> Arc<Session> {
        let mut session = Session::new(
            format!("modern-{}", random_hex(12)),
            binding,
            parent.child_token(),
        );
        session.log_level = log_level;
        let _ = session.client.set(client);
        session.initialized.store(true, Ordering::Release);
        Arc::new(session)
    }

    /// Whether this is the ephemeral session of a stateless 2026-07-28 request.
    pub fn is_modern(&self) -> bool {
        self.protocol_version() == protocol::MODERN
    }

    /// 2026-07-28: the minimum log level the request asked for (`None`: it wants no
    /// `notifications/message`; the core drops them). Always `None` for legacy sessions, whose
    /// level a `Service` tracks itself (`logging/setLevel`).
    pub fn log_level(&self) -> Option<LogLevel> {
        self.log_level
    }

    /// The caller identity this session is bound to (a hash of its credentials), if any.
    pub fn binding(&self) -> Option<&str> {
        self.binding.as_deref()
    }

    /// The session id (`Mcp-Session-Id`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// What the client sent in `initialize`, once it has.
    pub fn client(&self) -> Option<&ClientInfo> {
        self.client.get()
    }

    /// The negotiated protocol version (the HTTP default before `initialize`).
    pub fn protocol_version(&self) -> &str {
        self.client
            .get()
            .map_or(protocol::HTTP_DEFAULT, |c| c.protocol_version.as_str())
    }

    /// Whether the client declared a capability (e.g. `sampling`, `elicitation`, `roots`).
    pub fn client_supports(&self, capability: &str) -> bool {
        self.client
            .get()
            .is_some_and(|c| c.capabilities.get(capability).is_some_and(|v| !v.is_null()))
    }

    /// Cancelled when the session closes.
    pub fn closed(&self) -> &CancellationToken {
        &self.closed
    }

    /// Takes the standalone stream (server messages unrelated to a request). Only one holder at a
    /// time; the [`StandaloneStream`] gives it back when dropped.
    pub fn take_standalone(self: &Arc<Self>) -> Option<StandaloneStream> {
        let rx = self.standalone_rx.lock().ok()?.take()?;
        Some(StandaloneStream {
            session: self.clone(),
            rx: Some(rx),
        })
    }

    /// Sends a notification on the standalone stream; dropped (and logged) if nobody listens and
    /// the buffer is full.
    pub fn notify(&self, method: &str, params: Option<Value>) {
        if self.is_modern() {
            // A stateless request has no standalone stream.
            return;
        }
        self.send_standalone(Message::notification(method, params).into_value());
    }

    fn send_standalone(&self, msg: Value) {
        if self.standalone_tx.try_send(msg).is_err() {
            tracing::debug!(session = %self.id, "standalone stream full or closed; message dropped");
        }
    }

    /// Sends a server→client request on the standalone stream and waits for the reply.
    pub async fn request(
        &self,
        method: &str,
        params: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, RpcError> {
        self.request_via(None, method, params, timeout).await
    }

    async fn request_via(
        &self,
        tx: Option<&mpsc::Sender<Value>>,
        method: &str,
        params: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, RpcError> {
        if tx.is_none() && self.is_modern() {
            return Err(RpcError::internal(format!(
                "cannot send {method} to a 2026-07-28 client outside a request: the stateless \
                 protocol has no server→client requests (they travel as input_required results)"
            )));
        }
        let id = Value::String(format!(
            "mcplane-{}",
            self.next_id.fetch_add(1, Ordering::Relaxed)
        ));
        let key = id_key(&id);
        let (done_tx, done_rx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert(key.clone(), done_tx);
        }
        let msg = Message::request(id, method, params).into_value();
        let sent = match tx {
            Some(tx) => tx.send(msg).await.is_ok(),
            None => self.standalone_tx.try_send(msg).is_ok(),
        };
        let outcome = if sent {
            tokio::select! {
                r = tokio::time::timeout(timeout, done_rx) => match r {
                    Ok(Ok(result)) => Some(result),
                    Ok(Err(_)) => Some(Err(RpcError::new(crate::jsonrpc::CONNECTION_CLOSED, "session closed before the client answered"))),
                    Err(_) => None,
                },
                _ = self.closed.cancelled() => Some(Err(RpcError::new(crate::jsonrpc::CONNECTION_CLOSED, "session closed before the client answered"))),
            }
        } else {
            Some(Err(RpcError::new(
                crate::jsonrpc::CONNECTION_CLOSED,
                format!("cannot deliver {method} to the client: its stream is closed"),
            )))
        };
        if let Ok(mut p) = self.pending.lock() {
            p.remove(&key);
        }
        outcome.unwrap_or_else(|| {
            Err(RpcError::internal(format!(
                "the client did not answer {method} within {}s",
                timeout.as_secs_f64()
            )))
        })
    }

    fn touch(&self) {
        if let Ok(mut t) = self.last_active.lock() {
            *t = Instant::now();
        }
    }

    fn idle_for(&self) -> Duration {
        self.last_active
            .lock()
            .map(|t| t.elapsed())
            .unwrap_or_default()
    }
}

/// A session's standalone stream, returned to the session when dropped.
pub struct StandaloneStream {
    session: Arc<Session>,
    rx: Option<mpsc::Receiver<Value>>,
}

impl StandaloneStream {
    /// The next message, or `None` when the session closed.
    pub async fn recv(&mut self) -> Option<Value> {
        let rx = self.rx.as_mut()?;
        tokio::select! {
            m = rx.recv() => m,
            _ = self.session.closed.cancelled() => None,
        }
    }
}

impl Drop for StandaloneStream {
    fn drop(&mut self) {
        if let (Some(rx), Ok(mut slot)) = (self.rx.take(), self.session.standalone_rx.lock()) {
            *slot = Some(rx);
        }
    }
}

/// Where a request's interim messages go.
enum Outlet {
    /// A legacy session: the request's own stream.
    Stream(mpsc::Sender<Value>),
    /// A 2026-07-28 request: whichever HTTP request currently carries it (the first one, then
    /// each retry with `inputResponses`), filtered to what the stateless protocol allows.
    Exchange(Arc<mrtr::Exchange>),
}

/// One request in flight: where its interim messages go and how it learns of cancellation.
pub struct RequestContext {
    /// The session the request came on.
    pub session: Arc<Session>,
    /// The client's request id.
    pub request_id: Value,
    /// `params._meta` of the request, if any (for 2026-07-28 requests without the per-request
    /// protocol keys, which the session holds).
    pub meta: Option<Value>,
    out: Outlet,
    cancelled: CancellationToken,
}

impl RequestContext {
    /// Sends a notification related to this request (progress, logging).
    pub async fn notify(&self, method: &str, params: Option<Value>) {
        self.send(Message::notification(method, params).into_value())
            .await;
    }

    /// Sends a raw message on this request's stream. For a 2026-07-28 request only progress
    /// (with the current request's token) and log messages at or above the requested level get
    /// through; everything else is dropped.
    pub async fn send(&self, msg: Value) {
        let delivered = match &self.out {
            Outlet::Stream(tx) => tx.send(msg).await.is_ok(),
            Outlet::Exchange(exchange) => exchange.send(msg).await,
        };
        if !delivered {
            tracing::debug!(session = %self.session.id, "request stream closed; message dropped");
        }
    }

    /// Sends a server→client request related to this request and waits for the reply. For a
    /// 2026-07-28 request it becomes an entry of an `input_required` result (key: the params'
    /// `_meta["dev.mcplane/inputKey"]` if given, else generated) and the reply comes with the
    /// client's retry; a capability the client did not declare fails with `-32021` at once.
    pub async fn request(
        &self,
        method: &str,
        params: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, RpcError> {
        match &self.out {
            Outlet::Stream(tx) => {
                self.session
                    .request_via(Some(tx), method, params, timeout)
                    .await
            }
            Outlet::Exchange(exchange) => {
                exchange.ask(&self.session, method, params, timeout).await
            }
        }
    }

    /// The `progressToken` the client attached, if any.
    pub fn progress_token(&self) -> Option<&Value> {
        self.meta.as_ref()?.get("progressToken")
    }

    /// Cancelled when the client cancels the request or the session closes.
    pub fn cancelled(&self) -> &CancellationToken {
        &self.cancelled
    }
}

/// What [`Server::dispatch`] made of a message.
#[derive(Debug)]
pub enum Dispatch {
    /// A notification or response was consumed; nothing to send back (HTTP 202).
    Accepted,
    /// A request: interim messages, then the final response; the channel then closes.
    Reply(mpsc::Receiver<Value>),
}

/// Why a session could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    /// Unknown or expired id, or one bound to another caller (both look the same: 404).
    NotFound,
}

/// The server core: sessions plus dispatch into a [`Service`].
pub struct Server {
    service: Arc<dyn Service>,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    tasks: TaskTracker,
    /// Cancelled by [`Server::shutdown`]: ends `subscriptions/listen` streams gracefully and
    /// closes the ephemeral sessions of 2026-07-28 requests.
    stopping: CancellationToken,
    /// 2026-07-28 requests waiting for the client's `inputResponses`.
    parked: Arc<mrtr::Registry>,
}

fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Server {
    /// A server answering with `service`, with default [`ServerOptions`].
    pub fn new(service: Arc<dyn Service>) -> Arc<Server> {
        Server::with_options(service, ServerOptions::default())
    }

    /// A server answering with `service`.
    pub fn with_options(service: Arc<dyn Service>, options: ServerOptions) -> Arc<Server> {
        Arc::new(Server {
            service,
            sessions: Mutex::new(HashMap::new()),
            tasks: TaskTracker::new(),
            stopping: CancellationToken::new(),
            parked: Arc::new(mrtr::Registry::new(options)),
        })
    }

    /// Creates and registers a session bound to `binding` (a caller identity; `None` = anyone).
    pub fn new_session(&self, binding: Option<String>) -> Arc<Session> {
        let session = Arc::new(Session::new(
            random_hex(24),
            binding,
            CancellationToken::new(),
        ));
        if let Ok(mut s) = self.sessions.lock() {
            s.insert(session.id.clone(), session.clone());
        }
        session
    }

    /// A session for an ongoing exchange: must exist and be bound to the same caller.
    pub fn session(&self, id: &str, binding: Option<&str>) -> Result<Arc<Session>, SessionError> {
        let s = self
            .sessions
            .lock()
            .ok()
            .and_then(|s| s.get(id).cloned())
            .ok_or(SessionError::NotFound)?;
        if s.binding.as_deref() != binding {
            return Err(SessionError::NotFound);
        }
        s.touch();
        Ok(s)
    }

    /// The `Mcp-Param-*` headers a `tools/call` of tool `name` must carry (see
    /// [`Service::param_headers`]).
    pub async fn param_headers(&self, name: &str) -> Option<Arc<Vec<ParamHeader>>> {
        self.service.param_headers(name).await
    }

    /// Ends a session: cancels its requests, fails its pending server→client requests.
    pub fn close_session(&self, id: &str) -> bool {
        let removed = self.sessions.lock().ok().and_then(|mut s| s.remove(id));
        match removed {
            Some(s) => {
                s.closed.cancel();
                self.service.session_closed(&s);
                true
            }
            None => false,
        }
    }

    /// Closes sessions idle for longer than `max_idle`; returns how many.
    pub fn reap_idle(&self, max_idle: Duration) -> usize {
        let idle: Vec<String> = self
            .sessions
            .lock()
            .map(|s| {
                s.values()
                    .filter(|s| s.idle_for() > max_idle)
                    .map(|s| s.id.clone())
                    .collect()
            })
            .unwrap_or_default();
        idle.iter().filter(|id| self.close_session(id)).count()
    }

    /// Number of live sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// Closes every session and waits for in-flight requests to finish (graceful shutdown).
    /// Open `subscriptions/listen` streams get their closing response; requests parked for
    /// `inputResponses` are abandoned.
    pub async fn shutdown(&self) {
        self.stopping.cancel();
        self.parked.clear();
        let ids: Vec<String> = self
            .sessions
            .lock()
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default();
        for id in ids {
            self.close_session(&id);
        }
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Handles one message from the client on `session`.
    pub async fn dispatch(&self, session: &Arc<Session>, msg: Message) -> Dispatch {
        session.touch();
        match msg.kind() {
            Kind::Response | Kind::Error => {
                let key = msg.id().map(id_key).unwrap_or_default();
                let waiter = session.pending.lock().ok().and_then(|mut p| p.remove(&key));
                match waiter {
                    Some(w) => {
                        let _ = w.send(msg.into_outcome());
                    }
                    None => {
                        tracing::debug!(session = %session.id, id = %key, "reply to an unknown request id ignored")
                    }
                }
                Dispatch::Accepted
            }
            Kind::Notification => {
                self.notification(session, msg).await;
                Dispatch::Accepted
            }
            Kind::Request => Dispatch::Reply(self.request(session, msg)),
        }
    }

    async fn notification(&self, session: &Arc<Session>, mut msg: Message) {
        let method = msg.method().unwrap_or_default().to_string();
        match method.as_str() {
            "notifications/cancelled" => {
                let key = msg
                    .params()
                    .and_then(|p| p.get("requestId"))
                    .map(id_key)
                    .unwrap_or_default();
                if let Some(t) = session
                    .inflight
                    .lock()
                    .ok()
                    .and_then(|f| f.get(&key).cloned())
                {
                    t.cancel();
                }
            }
            "notifications/initialized" => {
                self.service
                    .notification(session, &method, msg.take_params())
                    .await;
            }
            _ => {
                self.service
                    .notification(session, &method, msg.take_params())
                    .await
            }
        }
    }

    fn request(&self, session: &Arc<Session>, mut msg: Message) -> mpsc::Receiver<Value> {
        let (tx, rx) = mpsc::channel(REQUEST_STREAM_CAPACITY);
        let id = msg.id().cloned().unwrap_or(Value::Null);
        let method = msg.method().unwrap_or_default().to_string();
        let params = msg.take_params();
        let key = id_key(&id);
        let cancelled = session.closed.child_token();
        let duplicate = match session.inflight.lock() {
            Ok(f) if f.contains_key(&key) => true,
            Ok(mut f) => {
                f.insert(key.clone(), cancelled.clone());
                false
            }
            Err(_) => false,
        };
        if duplicate {
            let err = RpcError::invalid_request(format!(
                "request id {key} is already in use by a request in flight on this session"
            ));
            let _ = tx.try_send(Message::error(id, &err).into_value());
            return rx;
        }
        let cx = RequestContext {
            session: session.clone(),
            request_id: id.clone(),
            meta: params.as_ref().and_then(|p| p.get("_meta")).cloned(),
            out: Outlet::Stream(tx.clone()),
            cancelled: cancelled.clone(),
        };
        let service = self.service.clone();
        let session = session.clone();
        self.tasks.spawn(async move {
            let work = async {
                match method.as_str() {
                    "initialize" => initialize(&*service, &session, params.as_ref()).await,
                    "ping" => Ok(json!({})),
                    _ if !session.initialized.load(Ordering::Acquire) => {
                        Err(RpcError::invalid_request(
                            "the session is not initialized: send initialize first",
                        ))
                    }
                    _ => service.request(&cx, &method, params).await,
                }
            };
            let outcome = tokio::select! {
                biased;
                _ = cancelled.cancelled() => None,
                r = work => Some(r),
            };
            if let Ok(mut f) = session.inflight.lock() {
                f.remove(&key);
            }
            // A cancelled request gets no response (MCP cancellation semantics).
            if let Some(outcome) = outcome.filter(|_| !cancelled.is_cancelled()) {
                let reply = match outcome {
                    Ok(result) => Message::response(id, result),
                    Err(e) => Message::error(id, &e),
                };
                let _ = tx.send(reply.into_value()).await;
            }
        });
        rx
    }
}

async fn initialize(
    service: &dyn Service,
    session: &Arc<Session>,
    params: Option<&Value>,
) -> Result<Value, RpcError> {
    let params = params.ok_or_else(|| RpcError::invalid_params("initialize needs params"))?;
    let requested = params.get("protocolVersion").and_then(Value::as_str);
    let version = protocol::negotiate(requested);
    let info = ClientInfo {
        protocol_version: version.to_string(),
        capabilities: params.get("capabilities").cloned().unwrap_or(json!({})),
        client_info: params.get("clientInfo").cloned().unwrap_or(Value::Null),
    };
    if session.client.set(info).is_err() {
        return Err(RpcError::invalid_request(
            "initialize was already called on this session; start a new session instead",
        ));
    }
    let mut result = service.initialize(session).await?;
    if let Value::Object(o) = &mut result {
        o.insert("protocolVersion".into(), version.into());
    }
    session.initialized.store(true, Ordering::Release);
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;

    #[async_trait]
    impl Service for Echo {
        async fn initialize(&self, _: &Arc<Session>) -> Result<Value, RpcError> {
            Ok(json!({"capabilities": {}, "serverInfo": {"name": "echo", "version": "0"}}))
        }
        async fn request(
            &self,
            cx: &RequestContext,
            method: &str,
            params: Option<Value>,
        ) -> Result<Value, RpcError> {
            match method {
                "echo" => Ok(params.unwrap_or_default()),
                "ask" => {
                    cx.request("sampling/createMessage", None, Duration::from_secs(5))
                        .await
                }
                "hang" => {
                    std::future::pending::<()>().await;
                    Ok(Value::Null)
                }
                m => Err(RpcError::method_not_found(m)),
            }
        }
    }

    fn req(id: Value, method: &str, params: Value) -> Message {
        Message::request(id, method, Some(params))
    }

    async fn init(server: &Server) -> Arc<Session> {
        let s = server.new_session(None);
        let Dispatch::Reply(mut rx) = server
            .dispatch(
                &s,
                req(
                    json!(0),
                    "initialize",
                    json!({"protocolVersion": "2025-06-18", "capabilities": {"sampling": {}}}),
                ),
            )
            .await
        else {
            panic!()
        };
        let v = rx.recv().await.unwrap();
        assert_eq!(v["result"]["protocolVersion"], "2025-06-18");
        s
    }

    #[tokio::test]
    async fn requests_need_initialize_and_ping_does_not() {
        let server = Server::new(Arc::new(Echo));
        let s = server.new_session(None);
        let Dispatch::Reply(mut rx) = server.dispatch(&s, req(json!(1), "echo", json!({}))).await
        else {
            panic!()
        };
        assert_eq!(rx.recv().await.unwrap()["error"]["code"], -32600);
        let Dispatch::Reply(mut rx) = server.dispatch(&s, req(json!(2), "ping", json!({}))).await
        else {
            panic!()
        };
        assert_eq!(rx.recv().await.unwrap()["result"], json!({}));
    }

    #[tokio::test]
    async fn server_to_client_request_round_trip() {
        let server = Server::new(Arc::new(Echo));
        let s = init(&server).await;
        let Dispatch::Reply(mut rx) = server.dispatch(&s, req(json!("a"), "ask", json!({}))).await
        else {
            panic!()
        };
        let ask = rx.recv().await.unwrap();
        assert_eq!(ask["method"], "sampling/createMessage");
        let reply = Message::response(ask["id"].clone(), json!({"content": "hi"}));
        assert!(matches!(
            server.dispatch(&s, reply).await,
            Dispatch::Accepted
        ));
        let done = rx.recv().await.unwrap();
        assert_eq!(done["id"], "a");
        assert_eq!(done["result"]["content"], "hi");
    }

    #[tokio::test]
    async fn cancellation_stops_without_response() {
        let server = Server::new(Arc::new(Echo));
        let s = init(&server).await;
        let Dispatch::Reply(mut rx) = server.dispatch(&s, req(json!(9), "hang", json!({}))).await
        else {
            panic!()
        };
        let cancel =
            Message::notification("notifications/cancelled", Some(json!({"requestId": 9})));
        server.dispatch(&s, cancel).await;
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn duplicate_inflight_ids_are_refused_and_sessions_are_isolated() {
        let server = Server::new(Arc::new(Echo));
        let a = init(&server).await;
        let b = init(&server).await;
        let Dispatch::Reply(_hang) = server.dispatch(&a, req(json!(5), "hang", json!({}))).await
        else {
            panic!()
        };
        let Dispatch::Reply(mut dup) = server.dispatch(&a, req(json!(5), "echo", json!({}))).await
        else {
            panic!()
        };
        assert_eq!(dup.recv().await.unwrap()["error"]["code"], -32600);
        let Dispatch::Reply(mut other) = server
            .dispatch(&b, req(json!(5), "echo", json!({"x": 1})))
            .await
        else {
            panic!()
        };
        assert_eq!(other.recv().await.unwrap()["result"]["x"], 1);
    }

    #[tokio::test]
    async fn sessions_are_bound_to_their_caller() {
        let server = Server::new(Arc::new(Echo));
        let s = server.new_session(Some("alice".into()));
        assert!(server.session(s.id(), Some("alice")).is_ok());
        assert_eq!(
            server.session(s.id(), Some("bob")).unwrap_err(),
            SessionError::NotFound
        );
        assert_eq!(
            server.session("nope", None).unwrap_err(),
            SessionError::NotFound
        );
        assert!(server.close_session(s.id()));
        assert!(server.session(s.id(), Some("alice")).is_err());
    }
}
