//! The stateless 2026-07-28 protocol in the server core.
//!
//! [`Server::dispatch_modern`] takes one message of a modern client. A request is validated
//! (`_meta` must carry `io.modelcontextprotocol/protocolVersion` and `…/clientCapabilities`:
//! `-32602`; a version other than 2026-07-28: `-32022` listing what mcplane speaks; a method the
//! revision removed: `-32601`), gets an ephemeral [`Session`] holding what its `_meta` said, and
//! runs:
//! - `server/discover` in the core, from [`Service::discover`];
//! - `subscriptions/listen` in the core, fed by [`Service::listen`]: the acknowledgement first,
//!   then the service's notifications, each tagged with the subscription id, until the client
//!   closes the stream (or the server shuts down: then a closing result);
//! - anything else in the [`Service`], with server→client requests bridged to multi round-trip
//!   `input_required` results ([`super::mrtr`]).
//!
//! Every result gets `resultType` (`"complete"` unless the service said otherwise) and
//! `_meta["io.modelcontextprotocol/serverInfo"]`; cacheable results get `ttlMs`/`cacheScope`
//! (`0`/`"private"` unless the service chose); `-32002` (resource not found, retired in this
//! revision) becomes `-32602`. Closing the response stream cancels the request.

use super::mrtr::{Attached, Exchange, Outcome, Parked};
use super::{ClientInfo, Outlet, RequestContext, Server, Service, Session};
use crate::jsonrpc::{Kind, Message, RESOURCE_NOT_FOUND, RpcError, UNSUPPORTED_PROTOCOL_VERSION};
use crate::protocol::{self, LogLevel, meta};
use mcplane_core::policy::RequestAttributes;
use mcplane_types::Principal;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Messages buffered per modern response stream before the producer waits.
const STREAM_CAPACITY: usize = 64;
/// After a first question, how long the core waits for more before answering `input_required`
/// (several server→client requests sent together become one result).
const GATHER_QUIET: Duration = Duration::from_millis(30);
/// The longest the core keeps gathering questions.
const GATHER_MAX: Duration = Duration::from_millis(300);

/// Tunables of the server core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerOptions {
    /// How long a 2026-07-28 request answered `input_required` waits for the client's retry.
    pub input_timeout: Duration,
    /// Most 2026-07-28 requests waiting for a retry at once; beyond it new ones fail.
    pub max_parked: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            input_timeout: Duration::from_secs(60),
            max_parked: 1024,
        }
    }
}

/// Caching hints of a cacheable 2026-07-28 result (see [`Service::cache_hints`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheHints {
    /// How long the client may consider the result fresh (`ttlMs`).
    pub ttl: Duration,
    /// `cacheScope: "public"` (identical for every caller, shared caches may keep it) rather
    /// than `"private"` (only for the same authorization context).
    pub public: bool,
}

/// A `subscriptions/listen` stream as a [`Service`] opens it.
pub struct Listening {
    /// The part of the client's filter the service honours (the acknowledgement's
    /// `notifications`): e.g. `{"toolsListChanged": true, "resourceSubscriptions": [uri]}`.
    pub acknowledged: Value,
    /// The notifications to deliver (whole JSON-RPC notifications); the core adds the
    /// subscription id. When it ends, the core closes the subscription gracefully.
    pub notifications: mpsc::Receiver<Value>,
}

impl std::fmt::Debug for Listening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listening")
            .field("acknowledged", &self.acknowledged)
            .finish_non_exhaustive()
    }
}

/// What [`Server::dispatch_modern`] made of a message.
#[derive(Debug)]
pub enum ModernDispatch {
    /// A notification: nothing to answer (HTTP 202).
    Accepted,
    /// A request: its response stream (allowed notifications, then one response).
    Reply(mpsc::Receiver<Value>),
    /// Refused before any work: answer `error` for request `id` (HTTP 404 for `-32601`, else
    /// 400).
    Rejected {
        /// The request id (null when unreadable).
        id: Value,
        /// The error.
        error: RpcError,
    },
}

/// What a modern request's `_meta` said.
struct RequestMeta {
    client: ClientInfo,
    log_level: Option<LogLevel>,
}

fn missing_meta(what: &str) -> RpcError {
    RpcError::invalid_params(format!(
        "{what}: a 2026-07-28 request carries \"{}\" (string) and \"{}\" (object) in \
         params._meta",
        meta::PROTOCOL_VERSION,
        meta::CLIENT_CAPABILITIES
    ))
}

/// Reads and checks the per-request `_meta` fields.
fn read_meta(params: Option<&Value>) -> Result<RequestMeta, RpcError> {
    let m = match params.and_then(|p| p.get("_meta")) {
        Some(Value::Object(m)) => m,
        Some(_) => return Err(missing_meta("params._meta must be an object")),
        None => return Err(missing_meta("missing params._meta")),
    };
    let version = match m.get(meta::PROTOCOL_VERSION) {
        Some(Value::String(v)) => v.as_str(),
        Some(_) => return Err(missing_meta("protocolVersion must be a string")),
        None => return Err(missing_meta("missing _meta protocolVersion")),
    };
    let capabilities = match m.get(meta::CLIENT_CAPABILITIES) {
        Some(c @ Value::Object(_)) => c.clone(),
        Some(_) => return Err(missing_meta("clientCapabilities must be an object")),
        None => return Err(missing_meta("missing _meta clientCapabilities")),
    };
    if version != protocol::MODERN {
        return Err(unsupported_version(version));
    }
    let log_level = match m.get(meta::LOG_LEVEL) {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_str().and_then(LogLevel::parse).ok_or_else(|| {
            RpcError::invalid_params(format!(
                "unknown {} {v}: expected one of {}",
                meta::LOG_LEVEL,
                LogLevel::ALL.map(LogLevel::as_str).join(", ")
            ))
        })?),
    };
    Ok(RequestMeta {
        client: ClientInfo {
            protocol_version: version.to_string(),
            capabilities,
            client_info: m.get(meta::CLIENT_INFO).cloned().unwrap_or(Value::Null),
        },
        log_level,
    })
}

/// `-32022` for `requested`, listing every version mcplane speaks.
pub(crate) fn unsupported_version(requested: &str) -> RpcError {
    let legacy = protocol::is_supported(requested);
    let hint = if legacy {
        format!(
            "; {requested} is a session-based version: send initialize (without per-request \
             _meta) to use it"
        )
    } else {
        String::new()
    };
    RpcError::new(
        UNSUPPORTED_PROTOCOL_VERSION,
        format!(
            "Unsupported protocol version {requested:?} for a stateless request (per-request \
             _meta speaks {}){hint}",
            protocol::MODERN
        ),
    )
    .with_data(json!({"supported": protocol::ALL_VERSIONS, "requested": requested}))
}

/// The client's answers and the state to resume, taken out of the params.
struct InputParams {
    responses: Map<String, Value>,
    state: Option<String>,
}

fn take_input_params(params: &mut Option<Value>) -> Result<InputParams, RpcError> {
    let mut out = InputParams {
        responses: Map::new(),
        state: None,
    };
    let Some(Value::Object(p)) = params.as_mut() else {
        return Ok(out);
    };
    match p.remove("inputResponses") {
        None => {}
        Some(Value::Object(responses)) => {
            for (key, value) in &responses {
                if !value.is_object() {
                    return Err(RpcError::invalid_params(format!(
                        "inputResponses.{key} must be an object: the client's result for the \
                         input request with that key (e.g. an ElicitResult)"
                    ))
                    .with_data(json!({"field": format!("inputResponses.{key}")})));
                }
            }
            out.responses = responses;
        }
        Some(_) => {
            return Err(RpcError::invalid_params(
                "inputResponses must be an object mapping input request keys to results",
            )
            .with_data(json!({"field": "inputResponses"})));
        }
    }
    match p.remove("requestState") {
        None => {}
        Some(Value::String(s)) => out.state = Some(s),
        Some(_) => {
            return Err(RpcError::invalid_params(
                "requestState must be the string an input_required result gave",
            )
            .with_data(json!({"field": "requestState"})));
        }
    }
    Ok(out)
}

/// Removes the per-request protocol keys from `params._meta` (the session holds them); drops an
/// emptied `_meta`.
fn strip_protocol_meta(params: &mut Option<Value>) {
    let Some(Value::Object(p)) = params.as_mut() else {
        return;
    };
    let emptied = match p.get_mut("_meta") {
        Some(Value::Object(m)) => {
            for k in meta::PER_REQUEST {
                m.remove(k);
            }
            m.is_empty()
        }
        _ => false,
    };
    if emptied {
        p.remove("_meta");
    }
}

/// The `name` or `uri` a request is about (bound into its `requestState`).
fn target_of(method: &str, params: Option<&Value>) -> String {
    let field = if method == "resources/read" {
        "uri"
    } else {
        "name"
    };
    params
        .and_then(|p| p.get(field))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Gives a result the fields 2026-07-28 requires: `resultType`, `_meta` serverInfo and, on a
/// complete cacheable result, `ttlMs`/`cacheScope` (from `hints` where the service set none).
fn complete_result(
    method: &str,
    result: Value,
    server_info: &Value,
    hints: Option<CacheHints>,
) -> Value {
    let mut obj = match result {
        Value::Object(o) => o,
        Value::Null => Map::new(),
        other => {
            let mut o = Map::new();
            o.insert("value".into(), other);
            o
        }
    };
    obj.entry("resultType").or_insert_with(|| "complete".into());
    let complete = obj.get("resultType").and_then(Value::as_str) == Some("complete");
    if complete && protocol::CACHEABLE.contains(&method) {
        let (ttl, scope) = match hints {
            Some(h) => (
                u64::try_from(h.ttl.as_millis()).unwrap_or(u64::MAX),
                if h.public { "public" } else { "private" },
            ),
            None => (0, "private"),
        };
        obj.entry("ttlMs").or_insert_with(|| ttl.into());
        obj.entry("cacheScope").or_insert_with(|| scope.into());
    }
    let m = obj
        .entry("_meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(m) = m {
        m.entry(meta::SERVER_INFO)
            .or_insert_with(|| server_info.clone());
    }
    Value::Object(obj)
}

/// Error codes this revision retired, mapped to their replacements.
fn modern_error(mut e: RpcError) -> RpcError {
    if e.code == RESOURCE_NOT_FOUND {
        e.code = crate::jsonrpc::INVALID_PARAMS;
    }
    e
}

/// A `resources/read` refused with `-32602` says which URI in `data.uri` (SEP-2164), as
/// session-era servers often do not.
fn not_found_names_uri(mut e: RpcError, uri: Option<String>) -> RpcError {
    if let Some(uri) = uri
        && e.code == crate::jsonrpc::INVALID_PARAMS
    {
        match &mut e.data {
            Some(Value::Object(d)) => {
                d.entry("uri").or_insert(Value::String(uri));
            }
            None => e.data = Some(json!({"uri": uri})),
            Some(_) => {}
        }
    }
    e
}

/// Everything a modern request task needs from the server.
#[derive(Clone)]
struct Core {
    service: Arc<dyn Service>,
    tasks: tokio_util::task::TaskTracker,
    stopping: CancellationToken,
    parked: Arc<super::mrtr::Registry>,
}

impl Server {
    /// Handles one message of a stateless 2026-07-28 client. `binding` is the caller identity
    /// (as for sessions): a `requestState` only resumes for the caller it was issued to.
    pub async fn dispatch_modern(&self, msg: Message, binding: Option<String>) -> ModernDispatch {
        self.dispatch_modern_as(msg, binding, None).await
    }

    /// [`Server::dispatch_modern`] for an authenticated caller (`None`: anonymous): its principal
    /// and the request attributes policy reads.
    pub async fn dispatch_modern_as(
        &self,
        msg: Message,
        binding: Option<String>,
        caller: Option<(Arc<Principal>, Arc<RequestAttributes>)>,
    ) -> ModernDispatch {
        let id = msg.id().cloned().unwrap_or(Value::Null);
        match msg.kind() {
            Kind::Response | Kind::Error => {
                return ModernDispatch::Rejected {
                    id,
                    error: RpcError::invalid_request(
                        "a 2026-07-28 client never sends responses: server→client requests \
                         arrive as input_required results and are answered with inputResponses \
                         on a retry",
                    ),
                };
            }
            Kind::Notification => {
                // No client notification changes anything here: cancellation over HTTP is
                // closing the response stream.
                return ModernDispatch::Accepted;
            }
            Kind::Request => {}
        }
        let mut msg = msg;
        let method = msg.method().unwrap_or_default().to_string();
        let mut params = msg.take_params();
        if params.as_ref().is_some_and(|p| !p.is_object()) {
            return ModernDispatch::Rejected {
                id,
                error: RpcError::invalid_params("params must be an object"),
            };
        }
        let request_meta = match read_meta(params.as_ref()) {
            Ok(m) => m,
            Err(error) => return ModernDispatch::Rejected { id, error },
        };
        if protocol::REMOVED_IN_MODERN.contains(&method.as_str()) {
            let error = RpcError::new(
                crate::jsonrpc::METHOD_NOT_FOUND,
                format!(
                    "Method not found: {method} does not exist in protocol {} (use \
                     server/discover, per-request _meta and subscriptions/listen instead)",
                    protocol::MODERN
                ),
            );
            return ModernDispatch::Rejected { id, error };
        }
        let input = if protocol::INPUT_REQUIRED_METHODS.contains(&method.as_str()) {
            match take_input_params(&mut params) {
                Ok(i) => i,
                Err(error) => return ModernDispatch::Rejected { id, error },
            }
        } else {
            if let Some(Value::Object(p)) = params.as_mut() {
                p.remove("inputResponses");
                p.remove("requestState");
            }
            InputParams {
                responses: Map::new(),
                state: None,
            }
        };
        let progress_token = params
            .as_ref()
            .and_then(|p| p.get("_meta"))
            .and_then(|m| m.get("progressToken"))
            .cloned();
        strip_protocol_meta(&mut params);
        let session = Session::ephemeral(
            binding,
            request_meta.client,
            request_meta.log_level,
            &self.stopping,
        );
        if let Some((p, a)) = caller {
            session.set_caller(p, a);
        }
        let (tx, rx) = mpsc::channel(STREAM_CAPACITY);
        let core = Core {
            service: self.service.clone(),
            tasks: self.tasks.clone(),
            stopping: self.stopping.clone(),
            parked: self.parked.clone(),
        };
        let request = ModernRequest {
            core: core.clone(),
            session,
            id,
            method,
            params,
            input,
            progress_token,
            tx,
        };
        self.tasks.spawn(request.run());
        ModernDispatch::Reply(rx)
    }

    /// Number of 2026-07-28 requests waiting for a retry with `inputResponses`.
    pub fn parked_count(&self) -> usize {
        self.parked.len()
    }
}

struct ModernRequest {
    core: Core,
    session: Arc<Session>,
    id: Value,
    method: String,
    params: Option<Value>,
    input: InputParams,
    progress_token: Option<Value>,
    tx: mpsc::Sender<Value>,
}

/// How the carrying request of some work ended.
enum Front {
    Done(Result<Value, RpcError>),
    Cancelled,
    Park,
}

impl ModernRequest {
    async fn run(self) {
        let server_info = self.core.service.server_info();
        let (id, method, tx) = (self.id.clone(), self.method.clone(), self.tx.clone());
        let (service, session) = (self.core.service.clone(), self.session.clone());
        let read_uri = (method == "resources/read")
            .then(|| target_of(&method, self.params.as_ref()))
            .filter(|u| !u.is_empty());
        let outcome = match method.as_str() {
            "server/discover" => {
                let r = tokio::select! {
                    r = discover(&*service, &session) => Some(r),
                    _ = tx.closed() => None,
                };
                service.session_closed(&session);
                r
            }
            "subscriptions/listen" => {
                self.listen(&server_info).await;
                service.session_closed(&session);
                return;
            }
            _ => self.work().await,
        };
        let hints = service.cache_hints(&session, &method);
        if let Some(outcome) = outcome {
            let reply = match outcome {
                Ok(result) => {
                    Message::response(id, complete_result(&method, result, &server_info, hints))
                }
                Err(e) => Message::error(id, &not_found_names_uri(modern_error(e), read_uri)),
            };
            let _ = tx.send(reply.into_value()).await;
        }
    }

    /// A request the service answers: run it (or resume the parked run `requestState` names)
    /// while this HTTP request carries it. `None`: cancelled, or already answered
    /// (`input_required`).
    async fn work(self) -> Outcome {
        let attached = Attached {
            tx: self.tx.clone(),
            progress_token: self.progress_token.clone(),
            log_level: self.session.log_level(),
            offered: Map::new(),
        };
        let binding = self.session.binding().map(str::to_string);
        let target = target_of(&self.method, self.params.as_ref());
        let responses = self.input.responses.clone();
        let mut parked = match &self.input.state {
            Some(state) => {
                match self
                    .core
                    .parked
                    .resume(state, binding.as_deref(), &self.method, &target)
                {
                    Ok(p) => {
                        p.exchange.attach(attached, responses);
                        p
                    }
                    Err(e) => return Some(Err(e)),
                }
            }
            None => self.start(binding, target, attached, responses),
        };
        match front(&parked.exchange, &mut parked.done, &self.tx).await {
            Front::Done(r) => {
                parked.exchange.detach();
                Some(r)
            }
            Front::Cancelled => {
                parked.exchange.detach();
                parked.runner.cancel();
                None
            }
            Front::Park => {
                let requests = parked.exchange.open_requests();
                parked.exchange.detach();
                let runner = parked.runner.clone();
                match self
                    .core
                    .parked
                    .park(parked, &self.core.tasks, &self.core.stopping)
                {
                    Ok(state) => {
                        let result = json!({
                            "resultType": "input_required",
                            "inputRequests": requests,
                            "requestState": state,
                        });
                        Some(Ok(result))
                    }
                    Err(e) => {
                        runner.cancel();
                        Some(Err(e))
                    }
                }
            }
        }
    }

    /// Starts the service's work on its own task, so it can outlive this HTTP request.
    fn start(
        &self,
        binding: Option<String>,
        target: String,
        attached: Attached,
        responses: Map<String, Value>,
    ) -> Parked {
        let exchange = Exchange::new(&self.method);
        exchange.attach(attached, responses);
        let runner = self.core.stopping.child_token();
        let (done_tx, done) = oneshot::channel();
        let cx = RequestContext {
            session: self.session.clone(),
            request_id: self.id.clone(),
            meta: self.params.as_ref().and_then(|p| p.get("_meta")).cloned(),
            out: Outlet::Exchange(exchange.clone()),
            cancelled: runner.clone(),
        };
        let service = self.core.service.clone();
        let (method, params) = (self.method.clone(), self.params.clone());
        let cancel = runner.clone();
        self.core.tasks.spawn(async move {
            let outcome = tokio::select! {
                biased;
                _ = cancel.cancelled() => None,
                r = service.request(&cx, &method, params) => Some(r),
            };
            service.session_closed(&cx.session);
            let _ = done_tx.send(outcome);
        });
        Parked {
            exchange,
            done,
            runner,
            round: 0,
            binding,
            method: self.method.clone(),
            target,
        }
    }

    async fn listen(self, server_info: &Value) {
        let filter = match self.params.as_ref().and_then(|p| p.get("notifications")) {
            Some(f @ Value::Object(_)) => f.clone(),
            _ => {
                let e = RpcError::invalid_params(
                    "subscriptions/listen needs params.notifications: an object such as \
                     {\"toolsListChanged\": true, \"resourceSubscriptions\": [\"file:///x\"]}",
                );
                let _ = self.tx.send(Message::error(self.id, &e).into_value()).await;
                return;
            }
        };
        let cx = RequestContext {
            session: self.session.clone(),
            request_id: self.id.clone(),
            meta: self.params.as_ref().and_then(|p| p.get("_meta")).cloned(),
            out: Outlet::Stream(self.tx.clone()),
            cancelled: self.session.closed().clone(),
        };
        let opened = tokio::select! {
            r = self.core.service.listen(&cx, &filter) => r,
            _ = self.tx.closed() => return,
        };
        let mut listening = match opened {
            Ok(l) => l,
            Err(e) => {
                let e = modern_error(e);
                let _ = self.tx.send(Message::error(self.id, &e).into_value()).await;
                return;
            }
        };
        let tag = |mut m: Value| {
            if let Some(obj) = m.as_object_mut() {
                let params = obj
                    .entry("params")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Some(p) = params.as_object_mut() {
                    let meta_obj = p
                        .entry("_meta")
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Some(mo) = meta_obj.as_object_mut() {
                        mo.insert(meta::SUBSCRIPTION_ID.into(), self.id.clone());
                    }
                }
            }
            m
        };
        let ack = Message::notification(
            "notifications/subscriptions/acknowledged",
            Some(json!({"notifications": listening.acknowledged})),
        );
        if self.tx.send(tag(ack.into_value())).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                m = listening.notifications.recv() => match m {
                    Some(m) => {
                        if self.tx.send(tag(m)).await.is_err() {
                            return;
                        }
                    }
                    None => break,
                },
                _ = self.tx.closed() => return,
                _ = self.core.stopping.cancelled() => break,
            }
        }
        // The server ends the subscription: a closing result, then the stream ends.
        let result = complete_result(
            "subscriptions/listen",
            json!({"_meta": {meta::SUBSCRIPTION_ID: self.id.clone()}}),
            server_info,
            None,
        );
        let _ = self
            .tx
            .send(Message::response(self.id, result).into_value())
            .await;
    }
}

/// Carries `exchange`'s work on one HTTP request until it finishes, the client goes away, or it
/// needs answers the client has not given (then the caller parks it).
async fn front(
    exchange: &Exchange,
    done: &mut oneshot::Receiver<Outcome>,
    tx: &mpsc::Sender<Value>,
) -> Front {
    let mut asked = exchange.watch();
    let finished = |r: Result<Outcome, oneshot::error::RecvError>| match r {
        Ok(Some(outcome)) => Front::Done(outcome),
        Ok(None) => Front::Cancelled,
        Err(_) => Front::Done(Err(RpcError::internal("the request's work ended abruptly"))),
    };
    loop {
        if exchange.has_open() {
            let until = tokio::time::Instant::now() + GATHER_MAX;
            loop {
                tokio::select! {
                    biased;
                    r = &mut *done => return finished(r),
                    _ = tx.closed() => return Front::Cancelled,
                    _ = asked.changed() => {}
                    _ = tokio::time::sleep(GATHER_QUIET) => break,
                    _ = tokio::time::sleep_until(until) => break,
                }
            }
            if exchange.has_open() {
                return Front::Park;
            }
            continue;
        }
        tokio::select! {
            biased;
            r = &mut *done => return finished(r),
            _ = tx.closed() => return Front::Cancelled,
            r = asked.changed() => {
                if r.is_err() {
                    // The exchange is gone: only the work's end can follow.
                    return finished((&mut *done).await);
                }
            }
        }
    }
}

/// `server/discover` from what the service reports.
async fn discover(service: &dyn Service, session: &Arc<Session>) -> Result<Value, RpcError> {
    let d = service.discover(session).await?;
    let mut result = Map::new();
    result.insert("supportedVersions".into(), json!(protocol::ALL_VERSIONS));
    result.insert(
        "capabilities".into(),
        d.get("capabilities").cloned().unwrap_or_else(|| json!({})),
    );
    for key in ["instructions", "ttlMs", "cacheScope"] {
        if let Some(v) = d.get(key) {
            result.insert(key.into(), v.clone());
        }
    }
    let info = d
        .get("serverInfo")
        .cloned()
        .unwrap_or_else(|| service.server_info());
    result.insert("_meta".into(), json!({meta::SERVER_INFO: info}));
    Ok(Value::Object(result))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::{
        HEADER_MISMATCH, INVALID_PARAMS, METHOD_NOT_FOUND, MISSING_REQUIRED_CLIENT_CAPABILITY,
    };
    use async_trait::async_trait;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    const T: Duration = Duration::from_secs(30);

    /// Sets its flag when dropped (work cancelled or finished).
    struct DropFlag(Arc<AtomicBool>);
    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[derive(Default)]
    struct Asker {
        dropped: Arc<AtomicBool>,
        feed: Mutex<Option<mpsc::Sender<Value>>>,
    }

    fn keyed(key: &str, params: Value) -> Option<Value> {
        let mut p = params;
        p["_meta"] = json!({meta::INPUT_KEY: key});
        Some(p)
    }

    #[async_trait]
    impl Service for Asker {
        async fn initialize(&self, _: &Arc<Session>) -> Result<Value, RpcError> {
            Ok(json!({
                "capabilities": {"tools": {"listChanged": true}},
                "serverInfo": {"name": "asker", "version": "1"},
            }))
        }

        fn server_info(&self) -> Value {
            json!({"name": "asker", "version": "1"})
        }

        async fn request(
            &self,
            cx: &RequestContext,
            method: &str,
            params: Option<Value>,
        ) -> Result<Value, RpcError> {
            let name = params
                .as_ref()
                .and_then(|p| p.get("name"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            match (method, name.as_str()) {
                ("tools/list", _) => {
                    let asked = cx.request("roots/list", None, T).await;
                    Ok(json!({"tools": [], "asked": asked.is_ok()}))
                }
                ("resources/read", _) => {
                    Err(RpcError::new(RESOURCE_NOT_FOUND, "nope").with_data(json!({"uri": "x"})))
                }
                ("tools/call", "echo_params") => Ok(json!({"params": params})),
                ("tools/call", "ask_one") => {
                    let a = cx
                        .request(
                            "elicitation/create",
                            keyed("user_name", json!({"message": "name?"})),
                            T,
                        )
                        .await?;
                    Ok(
                        json!({"content": [{"type": "text", "text": format!("Hello, {}!", a["content"]["name"])}]}),
                    )
                }
                ("tools/call", "ask_three") => {
                    let (a, b, c) = tokio::join!(
                        cx.request(
                            "elicitation/create",
                            keyed("user_name", json!({"message": "name?"})),
                            T
                        ),
                        cx.request("sampling/createMessage", keyed("greeting", json!({})), T),
                        cx.request("roots/list", None, T),
                    );
                    Ok(json!({"a": a?, "b": b?, "c": c?}))
                }
                ("tools/call", "two_rounds") => {
                    let a = cx
                        .request("elicitation/create", keyed("step1", json!({})), T)
                        .await?;
                    let b = cx
                        .request("elicitation/create", keyed("step2", json!({})), T)
                        .await?;
                    Ok(json!({"a": a, "b": b}))
                }
                ("tools/call", "log") => {
                    for level in ["debug", "info", "warning", "error"] {
                        cx.notify(
                            "notifications/message",
                            Some(json!({"level": level, "data": level})),
                        )
                        .await;
                    }
                    if let Some(t) = cx.progress_token().cloned() {
                        cx.notify(
                            "notifications/progress",
                            Some(json!({"progressToken": t, "progress": 1})),
                        )
                        .await;
                    }
                    Ok(json!({"content": []}))
                }
                ("tools/call", "hang") => {
                    let _flag = DropFlag(self.dropped.clone());
                    std::future::pending::<()>().await;
                    Ok(Value::Null)
                }
                _ => Err(RpcError::method_not_found(method)),
            }
        }

        async fn listen(
            &self,
            _cx: &RequestContext,
            filter: &Value,
        ) -> Result<Listening, RpcError> {
            let (tx, rx) = mpsc::channel(8);
            *self.feed.lock().unwrap() = Some(tx);
            Ok(Listening {
                acknowledged: json!({"toolsListChanged": filter.get("toolsListChanged").is_some()}),
                notifications: rx,
            })
        }
    }

    fn meta_full() -> Value {
        json!({
            meta::PROTOCOL_VERSION: protocol::MODERN,
            meta::CLIENT_CAPABILITIES: {"elicitation": {}, "sampling": {}, "roots": {}},
            meta::CLIENT_INFO: {"name": "t", "version": "1"},
        })
    }

    fn call(id: i64, method: &str, mut params: Value) -> Message {
        if params.get("_meta").is_none() {
            params["_meta"] = meta_full();
        }
        Message::request(json!(id), method, Some(params))
    }

    async fn reply(server: &Server, msg: Message, binding: Option<&str>) -> Vec<Value> {
        match server
            .dispatch_modern(msg, binding.map(str::to_string))
            .await
        {
            ModernDispatch::Reply(mut rx) => {
                let mut out = Vec::new();
                while let Some(v) = rx.recv().await {
                    out.push(v);
                }
                out
            }
            ModernDispatch::Rejected { id, error } => vec![Message::error(id, &error).into_value()],
            ModernDispatch::Accepted => Vec::new(),
        }
    }

    async fn last(server: &Server, msg: Message) -> Value {
        reply(server, msg, None).await.pop().unwrap()
    }

    #[tokio::test]
    async fn meta_is_required_and_versions_checked() {
        let server = Server::new(Arc::new(Asker::default()));
        let code = |v: &Value| v["error"]["code"].as_i64().unwrap();
        let no_meta = Message::request(json!(1), "server/discover", Some(json!({})));
        let ModernDispatch::Rejected { id, error } = server.dispatch_modern(no_meta, None).await
        else {
            panic!("accepted a request without _meta")
        };
        assert_eq!((id, error.code), (json!(1), INVALID_PARAMS));
        let no_caps = call(
            2,
            "server/discover",
            json!({"_meta": {meta::PROTOCOL_VERSION: protocol::MODERN}}),
        );
        assert_eq!(code(&last(&server, no_caps).await), INVALID_PARAMS);
        let no_version = call(
            3,
            "server/discover",
            json!({"_meta": {meta::CLIENT_CAPABILITIES: {}}}),
        );
        assert_eq!(code(&last(&server, no_version).await), INVALID_PARAMS);
        let future = call(
            4,
            "server/discover",
            json!({"_meta": {meta::PROTOCOL_VERSION: "v999.0.0", meta::CLIENT_CAPABILITIES: {}}}),
        );
        let v = last(&server, future).await;
        assert_eq!(code(&v), crate::jsonrpc::UNSUPPORTED_PROTOCOL_VERSION);
        assert_eq!(v["error"]["data"]["requested"], "v999.0.0");
        assert_eq!(v["error"]["data"]["supported"][0], protocol::MODERN);
        assert_eq!(v["id"], 4);
        let legacy = call(
            5,
            "tools/list",
            json!({"_meta": {meta::PROTOCOL_VERSION: "2025-11-25", meta::CLIENT_CAPABILITIES: {}}}),
        );
        let v = last(&server, legacy).await;
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("initialize")
        );
        let bad_level = call(
            6,
            "tools/list",
            json!({"_meta": {meta::PROTOCOL_VERSION: protocol::MODERN, meta::CLIENT_CAPABILITIES: {}, meta::LOG_LEVEL: "loud"}}),
        );
        assert_eq!(code(&last(&server, bad_level).await), INVALID_PARAMS);
        // clientInfo is optional.
        let no_info = call(
            7,
            "server/discover",
            json!({"_meta": {meta::PROTOCOL_VERSION: protocol::MODERN, meta::CLIENT_CAPABILITIES: {}}}),
        );
        assert!(last(&server, no_info).await.get("result").is_some());
        assert_ne!(HEADER_MISMATCH, INVALID_PARAMS);
    }

    #[tokio::test]
    async fn removed_methods_are_not_found() {
        let server = Server::new(Arc::new(Asker::default()));
        for m in protocol::REMOVED_IN_MODERN {
            if m.starts_with("notifications/") {
                continue;
            }
            let v = last(&server, call(9, m, json!({}))).await;
            assert_eq!(v["error"]["code"], METHOD_NOT_FOUND, "{m}: {v}");
            assert_eq!(v["id"], 9);
        }
        let note = Message::notification("notifications/initialized", None);
        assert!(matches!(
            server.dispatch_modern(note, None).await,
            ModernDispatch::Accepted
        ));
    }

    #[tokio::test]
    async fn discover_and_result_fields() {
        let server = Server::new(Arc::new(Asker::default()));
        let v = last(&server, call(1, "server/discover", json!({}))).await;
        let r = &v["result"];
        assert_eq!(r["resultType"], "complete");
        let versions: Vec<&str> = r["supportedVersions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(versions, protocol::ALL_VERSIONS);
        assert_eq!(r["capabilities"]["tools"]["listChanged"], true);
        assert_eq!(r["_meta"][meta::SERVER_INFO]["name"], "asker");
        assert_eq!(r["ttlMs"], 0);
        assert_eq!(r["cacheScope"], "private");

        let v = last(&server, call(2, "tools/call", json!({"name": "echo_params", "arguments": {}, "_meta": {
            meta::PROTOCOL_VERSION: protocol::MODERN, meta::CLIENT_CAPABILITIES: {}, "progressToken": 7, "traceparent": "00-x"
        }}))).await;
        let r = &v["result"];
        assert_eq!(r["resultType"], "complete");
        assert_eq!(r["_meta"][meta::SERVER_INFO]["version"], "1");
        assert!(r.get("ttlMs").is_none(), "tools/call is not cacheable: {r}");
        // The service sees _meta without the per-request protocol keys.
        let seen = &r["params"]["_meta"];
        assert_eq!(seen, &json!({"progressToken": 7, "traceparent": "00-x"}));

        let v = last(&server, call(3, "resources/read", json!({"uri": "x"}))).await;
        assert_eq!(v["error"]["code"], INVALID_PARAMS, "-32002 is retired: {v}");
        assert_eq!(v["error"]["data"]["uri"], "x");
    }

    #[tokio::test]
    async fn logs_only_at_or_above_the_requested_level_and_progress_with_the_token() {
        let server = Server::new(Arc::new(Asker::default()));
        let quiet = reply(&server, call(1, "tools/call", json!({"name": "log"})), None).await;
        assert_eq!(quiet.len(), 1, "no log without logLevel: {quiet:?}");
        let mut m = meta_full();
        m[meta::LOG_LEVEL] = json!("warning");
        m["progressToken"] = json!("p1");
        let loud = reply(
            &server,
            call(2, "tools/call", json!({"name": "log", "_meta": m})),
            None,
        )
        .await;
        let levels: Vec<&str> = loud
            .iter()
            .filter(|v| v["method"] == "notifications/message")
            .map(|v| v["params"]["level"].as_str().unwrap())
            .collect();
        assert_eq!(levels, ["warning", "error"]);
        let progress: Vec<&Value> = loud
            .iter()
            .filter(|v| v["method"] == "notifications/progress")
            .collect();
        assert_eq!(progress.len(), 1);
        assert_eq!(progress[0]["params"]["progressToken"], "p1");
        assert_eq!(loud.last().unwrap()["result"]["resultType"], "complete");
    }

    #[tokio::test]
    async fn closing_the_stream_cancels_the_work() {
        let asker = Arc::new(Asker::default());
        let server = Server::new(asker.clone());
        let ModernDispatch::Reply(rx) = server
            .dispatch_modern(call(1, "tools/call", json!({"name": "hang"})), None)
            .await
        else {
            panic!()
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!asker.dropped.load(Ordering::SeqCst));
        drop(rx);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !asker.dropped.load(Ordering::SeqCst) {
            assert!(tokio::time::Instant::now() < deadline, "work not cancelled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn retry(id: i64, name: &str, responses: Value, state: &Value) -> Message {
        call(
            id,
            "tools/call",
            json!({"name": name, "arguments": {}, "inputResponses": responses, "requestState": state}),
        )
    }

    #[tokio::test]
    async fn input_required_round_trip() {
        let server = Server::new(Arc::new(Asker::default()));
        let v = last(&server, call(1, "tools/call", json!({"name": "ask_one"}))).await;
        let r = &v["result"];
        assert_eq!(r["resultType"], "input_required", "{v}");
        assert_eq!(
            r["inputRequests"]["user_name"]["method"],
            "elicitation/create"
        );
        assert_eq!(
            r["inputRequests"]["user_name"]["params"],
            json!({"message": "name?"}),
            "the key hint is not shown to the client"
        );
        assert!(r.get("ttlMs").is_none());
        let state = r["requestState"].clone();
        assert_eq!(server.parked_count(), 1);
        let done = last(
            &server,
            retry(
                2,
                "ask_one",
                json!({"user_name": {"action": "accept", "content": {"name": "Ada"}}, "extra": {"x": 1}}),
                &state,
            ),
        )
        .await;
        assert_eq!(done["id"], 2);
        assert_eq!(done["result"]["resultType"], "complete", "{done}");
        assert_eq!(done["result"]["content"][0]["text"], "Hello, \"Ada\"!");
        assert_eq!(server.parked_count(), 0);
        // The state was used: a replay is refused.
        let again = last(&server, retry(3, "ask_one", json!({}), &state)).await;
        assert_eq!(again["error"]["code"], INVALID_PARAMS);
    }

    #[tokio::test]
    async fn several_questions_one_result_and_missing_answers_are_asked_again() {
        let server = Server::new(Arc::new(Asker::default()));
        let v = last(&server, call(1, "tools/call", json!({"name": "ask_three"}))).await;
        let r = &v["result"];
        let keys: Vec<&String> = r["inputRequests"].as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 3, "{v}");
        assert!(r["inputRequests"]["user_name"].is_object());
        assert!(r["inputRequests"]["greeting"].is_object());
        let roots_key = keys
            .iter()
            .find(|k| r["inputRequests"][k.as_str()]["method"] == "roots/list")
            .unwrap()
            .to_string();
        // Answer two of three: the third is asked again, with a new state.
        let v2 = last(
            &server,
            retry(
                2,
                "ask_three",
                json!({"user_name": {"action": "accept"}, "greeting": {"role": "assistant"}}),
                &r["requestState"],
            ),
        )
        .await;
        let r2 = &v2["result"];
        assert_eq!(r2["resultType"], "input_required", "{v2}");
        let keys2: Vec<&String> = r2["inputRequests"].as_object().unwrap().keys().collect();
        assert_eq!(keys2, [&roots_key]);
        assert_ne!(r2["requestState"], r["requestState"]);
        let stale = last(
            &server,
            retry(3, "ask_three", json!({}), &r["requestState"]),
        )
        .await;
        assert_eq!(stale["error"]["code"], INVALID_PARAMS);
        let done = last(
            &server,
            retry(
                4,
                "ask_three",
                json!({roots_key.as_str(): {"roots": []}}),
                &r2["requestState"],
            ),
        )
        .await;
        assert_eq!(done["result"]["c"], json!({"roots": []}), "{done}");
    }

    #[tokio::test]
    async fn multi_round_and_tampered_state() {
        let server = Server::new(Arc::new(Asker::default()));
        let v = last(
            &server,
            call(1, "tools/call", json!({"name": "two_rounds"})),
        )
        .await;
        let s1 = v["result"]["requestState"].clone();
        assert!(v["result"]["inputRequests"]["step1"].is_object());
        let tampered = json!(format!("{}-TAMPERED", s1.as_str().unwrap()));
        let bad = last(
            &server,
            retry(2, "two_rounds", json!({"step1": {}}), &tampered),
        )
        .await;
        assert_eq!(bad["error"]["code"], INVALID_PARAMS, "{bad}");
        // Another caller cannot use it either.
        let foreign = reply(
            &server,
            retry(3, "two_rounds", json!({"step1": {}}), &s1),
            Some("mallory"),
        )
        .await;
        assert_eq!(foreign[0]["error"]["code"], INVALID_PARAMS);
        let v2 = last(
            &server,
            retry(4, "two_rounds", json!({"step1": {"n": 1}}), &s1),
        )
        .await;
        assert!(v2["result"]["inputRequests"]["step2"].is_object(), "{v2}");
        let s2 = v2["result"]["requestState"].clone();
        let done = last(
            &server,
            retry(5, "two_rounds", json!({"step2": {"n": 2}}), &s2),
        )
        .await;
        assert_eq!(
            done["result"],
            json!({"a": {"n": 1}, "b": {"n": 2}, "resultType": "complete", "_meta": {meta::SERVER_INFO: {"name": "asker", "version": "1"}}})
        );
    }

    #[tokio::test]
    async fn answers_given_up_front_and_input_validation() {
        let server = Server::new(Arc::new(Asker::default()));
        let v = last(
            &server,
            call(
                1,
                "tools/call",
                json!({"name": "ask_one", "inputResponses": {"user_name": {"content": {"name": "Bo"}}, "other": {}}}),
            ),
        )
        .await;
        assert_eq!(v["result"]["content"][0]["text"], "Hello, \"Bo\"!", "{v}");
        let bad = last(
            &server,
            call(
                2,
                "tools/call",
                json!({"name": "ask_one", "inputResponses": {"user_name": 12345}}),
            ),
        )
        .await;
        assert_eq!(bad["error"]["code"], INVALID_PARAMS);
        let null = last(
            &server,
            call(
                3,
                "tools/call",
                json!({"name": "ask_one", "inputResponses": null}),
            ),
        )
        .await;
        assert_eq!(null["error"]["code"], INVALID_PARAMS);
        assert_eq!(server.parked_count(), 0);
    }

    #[tokio::test]
    async fn undeclared_capability_and_no_questions_outside_tools_prompts_resources() {
        let server = Server::new(Arc::new(Asker::default()));
        let mut m = meta_full();
        m[meta::CLIENT_CAPABILITIES] = json!({"sampling": {}});
        let v = last(
            &server,
            call(1, "tools/call", json!({"name": "ask_one", "_meta": m})),
        )
        .await;
        assert_eq!(
            v["error"]["code"], MISSING_REQUIRED_CLIENT_CAPABILITY,
            "{v}"
        );
        assert_eq!(
            v["error"]["data"]["requiredCapabilities"],
            json!({"elicitation": {}})
        );
        let list = last(&server, call(2, "tools/list", json!({}))).await;
        assert_eq!(list["result"]["asked"], false, "{list}");
        assert_eq!(list["result"]["resultType"], "complete");
    }

    #[tokio::test]
    async fn listen_acknowledges_first_then_tags_and_closes_on_shutdown() {
        let asker = Arc::new(Asker::default());
        let server = Server::new(asker.clone());
        let ModernDispatch::Reply(mut rx) = server
            .dispatch_modern(
                call(
                    "7".parse().unwrap(),
                    "subscriptions/listen",
                    json!({"notifications": {"toolsListChanged": true}}),
                ),
                None,
            )
            .await
        else {
            panic!()
        };
        let ack = rx.recv().await.unwrap();
        assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
        assert_eq!(ack["params"]["notifications"]["toolsListChanged"], true);
        assert_eq!(ack["params"]["_meta"][meta::SUBSCRIPTION_ID], 7);
        let feed = asker.feed.lock().unwrap().clone().unwrap();
        feed.send(Message::notification("notifications/tools/list_changed", None).into_value())
            .await
            .unwrap();
        let n = rx.recv().await.unwrap();
        assert_eq!(n["method"], "notifications/tools/list_changed");
        assert_eq!(n["params"]["_meta"][meta::SUBSCRIPTION_ID], 7);
        server.shutdown().await;
        let end = rx.recv().await.unwrap();
        assert_eq!(end["id"], 7);
        assert_eq!(end["result"]["_meta"][meta::SUBSCRIPTION_ID], 7);
        assert!(rx.recv().await.is_none());
    }
}
