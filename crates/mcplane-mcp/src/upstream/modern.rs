//! mcplane as a stateless (2026-07-28) client of a Streamable HTTP upstream.
//!
//! The [`Connection`](super::Connection) above speaks one language (JSON-RPC requests with
//! server→client requests and notifications related to them), so this pipe translates the
//! stateless era into it and back, and the gateway relays a modern upstream exactly as it relays
//! a session-based one:
//! - `initialize` becomes a `server/discover` probe. A discovery result (or a recognized modern
//!   error) means a modern server; a `4xx` without one, or a `-32601`, means a session-based
//!   server, and with `protocol: auto` the pipe hands everything to a session pipe from then on
//!   (spec: *Versioning*, *Streamable HTTP: Backward Compatibility*). The discovery result is
//!   answered as an `initialize` result (capabilities, server info, instructions).
//! - Every request is its own POST carrying `params._meta` (protocol version, client
//!   capabilities, client info, log level) and the standard headers (`MCP-Protocol-Version`,
//!   `Mcp-Method`, `Mcp-Name`), plus a `Mcp-Param-{Name}` header for each argument a tool's input
//!   schema annotates with `x-mcp-header` (learnt from `tools/list`, where a tool whose
//!   annotations break the spec's rules is left out). Notifications on the response stream are
//!   related to the request.
//! - An `input_required` result becomes server→client requests related to the call (ids minted
//!   here, the upstream's input key in `_meta["dev.mcplane/inputKey"]`); the answers the gateway
//!   sends back are gathered and the call is retried with `inputResponses` and the upstream's
//!   `requestState`, which never leaves mcplane, until a final result. A question left
//!   unanswered past the call timeout, or answered with an error, fails the call.
//! - `notifications/cancelled` (the caller went away or timed out) closes that request's HTTP
//!   stream: in this era that is the cancellation.
//! - Removed methods are answered here: `ping` (`{}`), `logging/setLevel` (the level goes into
//!   every later request's `_meta`), `resources/subscribe`/`unsubscribe` (the URI set of the
//!   listen stream).
//! - One `subscriptions/listen` stream is held open (reopened with back-off); its
//!   `list_changed` and `resources/updated` notifications reach the gateway as unrelated events,
//!   the path session-based notifications take. After the stream was lost and came back, a
//!   `list_changed` for each kind and a `resources/updated` for each subscribed URI are
//!   synthesized: what happened in the gap is unknown, so caches are refreshed.
//!
//! A modern "resource not found" (`-32602`) is answered with the session era's `-32002`, which
//! the server core turns back into `-32602` for modern clients.
//!
//! Result fields that describe this leg only (`resultType`, `ttlMs`, `cacheScope`,
//! `_meta["io.modelcontextprotocol/serverInfo"]`) are removed from relayed results; everything
//! else is relayed untouched.

use super::http::{
    BodyKind, MAX_BODY, SseReader, VERSION_HEADER, body_kind, build_client, drain, header_map,
    parse_messages, post_message, read_bounded, session_pipe, start_once,
};
use super::{Incoming, Opened, Pipe, UpstreamError, supervisor};
use crate::jsonrpc::{
    self, HEADER_MISMATCH, METHOD_NOT_FOUND, MISSING_REQUIRED_CLIENT_CAPABILITY, Message, RpcError,
    UNSUPPORTED_PROTOCOL_VERSION,
};
use crate::protocol::{self, meta};
use async_trait::async_trait;
use mcplane_config::{ProtocolMode, Timeouts, Transport, UpstreamConfig};
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Map, Value, json};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use url::Url;

const METHOD_HEADER: &str = "mcp-method";
const NAME_HEADER: &str = "mcp-name";
/// Most `input_required` rounds one call may take before mcplane gives up on it.
const MAX_ROUNDS: u32 = 16;
/// Listen stream reconnect back-off.
const LISTEN_BACKOFF_MIN: Duration = Duration::from_millis(250);
const LISTEN_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// The log level asked for when no `logging/setLevel` came: everything, as a session-based
/// server sends by default (downstream, each client's own level filters).
const DEFAULT_LOG_LEVEL: &str = "debug";

/// The `list_changed` notifications a listen stream asks for, by filter field.
const LIST_CHANGED: [(&str, &str); 3] = [
    ("toolsListChanged", "notifications/tools/list_changed"),
    ("promptsListChanged", "notifications/prompts/list_changed"),
    (
        "resourcesListChanged",
        "notifications/resources/list_changed",
    ),
];

/// Opens a pipe that speaks 2026-07-28; with `protocol: auto` it falls back to the session era
/// when the server does not speak it. Nothing is sent yet.
pub async fn open(config: &UpstreamConfig) -> Result<Opened, UpstreamError> {
    let Transport::StreamableHttp { url, headers } = &config.transport else {
        return Err(UpstreamError::Unavailable {
            server: config.name.clone(),
            reason: "not a streamable_http transport".into(),
        });
    };
    let (tx, rx) = mpsc::channel(super::http::INCOMING_CAPACITY);
    let (subscribed, _) = watch::channel(BTreeSet::new());
    let shared = Arc::new(Shared {
        server: config.name.clone(),
        client: build_client(config)?,
        url: url.clone(),
        headers: header_map(&config.name, headers)?,
        timeouts: config.timeouts,
        tx: Mutex::new(Some(tx)),
        cancel: CancellationToken::new(),
        tasks: TaskTracker::new(),
        calls: Mutex::new(HashMap::new()),
        asks: Mutex::new(HashMap::new()),
        next_ask: AtomicU64::new(1),
        log_level: Mutex::new(None),
        tool_params: Mutex::new(HashMap::new()),
        subscribed,
        listening: AtomicBool::new(false),
        closing: AtomicBool::new(false),
    });
    Ok((
        Box::new(ModernPipe {
            shared,
            config: config.clone(),
            fallback: OnceLock::new(),
        }),
        rx,
    ))
}

/// What a probe with `server/discover` found.
#[derive(Debug, PartialEq)]
enum Era {
    /// A 2026-07-28 server: its discovery result.
    Modern(Value),
    /// Not a modern server: speak the session era.
    Legacy(String),
}

struct Shared {
    server: String,
    client: Client,
    url: Url,
    headers: HeaderMap,
    timeouts: Timeouts,
    tx: Mutex<Option<mpsc::Sender<Incoming>>>,
    cancel: CancellationToken,
    tasks: TaskTracker,
    /// Calls in flight by upstream id (what `notifications/cancelled` names).
    calls: Mutex<HashMap<u64, AbortHandle>>,
    /// Questions of `input_required` results waiting for the client: minted id → answer.
    asks: Mutex<HashMap<String, oneshot::Sender<Message>>>,
    next_ask: AtomicU64,
    /// The level `logging/setLevel` last asked for.
    log_level: Mutex<Option<Value>>,
    /// Tool name → its `Mcp-Param-*` headers, from the last `tools/list` pages seen.
    tool_params: Mutex<HashMap<String, ParamHeaders>>,
    /// Resource URIs the listen stream subscribes to; a change reopens it.
    subscribed: watch::Sender<BTreeSet<String>>,
    listening: AtomicBool,
    closing: AtomicBool,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

struct ModernPipe {
    shared: Arc<Shared>,
    config: UpstreamConfig,
    /// The session pipe, once a probe found a session-based server (`protocol: auto`).
    fallback: OnceLock<Box<dyn Pipe>>,
}

impl Shared {
    fn sender(&self) -> Option<mpsc::Sender<Incoming>> {
        locked(&self.tx).clone()
    }

    fn unavailable(&self, reason: impl Into<String>) -> UpstreamError {
        UpstreamError::Unavailable {
            server: self.server.clone(),
            reason: reason.into(),
        }
    }

    /// `params._meta` of a request mcplane sends: its own keys over whatever was there.
    fn with_meta(&self, params: Option<Value>) -> Value {
        let mut params = match params {
            Some(Value::Object(p)) => p,
            _ => Map::new(),
        };
        let m = params
            .entry("_meta")
            .or_insert_with(|| Value::Object(Map::new()));
        if !m.is_object() {
            *m = Value::Object(Map::new());
        }
        if let Value::Object(m) = m {
            m.insert(meta::PROTOCOL_VERSION.into(), protocol::MODERN.into());
            m.insert(
                meta::CLIENT_CAPABILITIES.into(),
                supervisor::client_capabilities(),
            );
            m.insert(meta::CLIENT_INFO.into(), supervisor::client_info());
            let level = locked(&self.log_level)
                .clone()
                .unwrap_or_else(|| DEFAULT_LOG_LEVEL.into());
            m.insert(meta::LOG_LEVEL.into(), level);
        }
        Value::Object(params)
    }

    /// POSTs one request with the standard headers; returns the response once its headers came.
    async fn post(&self, message: &Value) -> Result<Response, UpstreamError> {
        let method = message
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut rb = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(ACCEPT, "application/json, text/event-stream")
            .header(VERSION_HEADER, protocol::MODERN);
        if let Ok(v) = HeaderValue::from_str(method) {
            rb = rb.header(METHOD_HEADER, v);
        }
        let name = match method {
            "tools/call" | "prompts/get" => message["params"].get("name"),
            "resources/read" => message["params"].get("uri"),
            _ => None,
        };
        if let Some(name) = name.and_then(Value::as_str)
            && let Ok(v) = HeaderValue::from_str(&protocol::encode_header_value(name))
        {
            rb = rb.header(NAME_HEADER, v);
        }
        if method == "tools/call"
            && let Some(name) = message["params"].get("name").and_then(Value::as_str)
        {
            let annotated = locked(&self.tool_params).get(name).cloned();
            let arguments = message["params"].get("arguments");
            let values =
                crate::param_headers::client_values(&annotated.unwrap_or_default(), arguments);
            for (header, value) in values {
                if let (Ok(n), Ok(v)) = (
                    reqwest::header::HeaderName::from_bytes(header.as_bytes()),
                    HeaderValue::from_str(&protocol::encode_header_value(&value)),
                ) {
                    rb = rb.header(n, v);
                }
            }
        }
        post_message(&self.server, rb, message, &self.timeouts, &self.cancel).await
    }

    /// Sends a request and reads its answer: notifications on the way go to `related`
    /// (tagged with `tag`), the response to `wire_id` is returned. A `4xx` with a JSON-RPC error
    /// body is that error.
    async fn exchange(
        &self,
        message: &Value,
        tag: Option<u64>,
        related: Option<&mpsc::Sender<Incoming>>,
    ) -> Result<Message, UpstreamError> {
        let wire_id = message.get("id").cloned().unwrap_or(Value::Null);
        let resp = self.post(message).await?;
        let status = resp.status();
        let kind = body_kind(&resp);
        if status.is_success() && kind == BodyKind::EventStream {
            return self.read_stream(resp, &wire_id, tag, related).await;
        }
        if !(status.is_success() || status.is_client_error()) {
            return Err(super::http::status_error(&self.server, status));
        }
        let body = read_bounded(resp, MAX_BODY)
            .await
            .map_err(|e| self.unavailable(e))?;
        let answer = parse_messages(&body).ok().and_then(|messages| {
            messages.into_iter().find_map(|m| {
                let m = Message::from_value(m).ok()?;
                let answers = matches!(m.kind(), jsonrpc::Kind::Response | jsonrpc::Kind::Error)
                    && (m.id() == Some(&wire_id) || m.id() == Some(&Value::Null));
                answers.then_some(m)
            })
        });
        match answer {
            Some(m) if status.is_success() || m.kind() == jsonrpc::Kind::Error => Ok(m),
            _ if status.is_success() => Err(UpstreamError::Protocol {
                server: self.server.clone(),
                reason: "answered without a response to the request".into(),
            }),
            _ => Err(HttpRefusal(status).into_error(&self.server)),
        }
    }

    async fn read_stream(
        &self,
        resp: Response,
        wire_id: &Value,
        tag: Option<u64>,
        related: Option<&mpsc::Sender<Incoming>>,
    ) -> Result<Message, UpstreamError> {
        let mut reader = SseReader::new(resp);
        loop {
            let event = tokio::select! {
                e = reader.next() => e,
                _ = self.cancel.cancelled() => return Err(self.unavailable("connection closed")),
            };
            let event = match event {
                Ok(Some(e)) => e,
                Ok(None) => {
                    return Err(self.unavailable("closed the response stream before the response"));
                }
                Err(e) => {
                    return Err(self
                        .unavailable(format!("response stream failed before the response ({e})")));
                }
            };
            if !(event.event.is_empty() || event.event == "message") || event.data.is_empty() {
                continue;
            }
            let Ok(messages) = parse_messages(event.data.as_bytes()) else {
                tracing::warn!(server = %self.server, "upstream sent an SSE event that is not a JSON-RPC message; skipped");
                continue;
            };
            for m in messages {
                let Ok(m) = Message::from_value(m) else {
                    continue;
                };
                match m.kind() {
                    jsonrpc::Kind::Response | jsonrpc::Kind::Error if m.id() == Some(wire_id) => {
                        return Ok(m);
                    }
                    jsonrpc::Kind::Notification => {
                        if let Some(related) = related {
                            let incoming = Incoming {
                                message: m.into_value(),
                                related_to: tag,
                            };
                            if related.send(incoming).await.is_err() {
                                return Err(self.unavailable("connection closed"));
                            }
                        }
                    }
                    _ => {
                        tracing::warn!(server = %self.server, "upstream sent a request or stray response on a 2026-07-28 response stream; ignored");
                    }
                }
            }
        }
    }

    /// Probes the server's era with `server/discover`.
    async fn probe(&self) -> Result<Era, UpstreamError> {
        let request = Message::request(
            json!("mcplane-discover"),
            "server/discover",
            Some(self.with_meta(None)),
        )
        .into_value();
        let probe = tokio::time::timeout(
            self.timeouts.initialize,
            self.exchange(&request, None, None),
        );
        let answer = match probe.await {
            Ok(Ok(m)) => m,
            Ok(Err(UpstreamError::Protocol { reason, .. })) => return Ok(Era::Legacy(reason)),
            Ok(Err(e)) => return classify_failure(e),
            Err(_) => {
                return Err(UpstreamError::Timeout {
                    server: self.server.clone(),
                    what: "server/discover".into(),
                    secs: self.timeouts.initialize.as_secs_f64(),
                });
            }
        };
        classify(&self.server, answer)
    }

    /// Fetches every `tools/list` page to learn the tools' `x-mcp-header` annotations.
    async fn relist_tools(&self) {
        let mut cursor: Option<Value> = None;
        for page in 0..MAX_ROUNDS {
            let params = cursor.take().map(|c| json!({"cursor": c}));
            let request = Message::request(
                json!(format!("mcplane-relist-{page}")),
                "tools/list",
                Some(self.with_meta(params)),
            )
            .into_value();
            let Ok(Ok(mut result)) = self
                .exchange(&request, None, None)
                .await
                .map(Message::into_outcome)
            else {
                return;
            };
            self.learn_tools(&mut result);
            match result.get("nextCursor") {
                Some(c @ Value::String(s)) if !s.is_empty() => cursor = Some(c.clone()),
                _ => return,
            }
        }
    }

    /// Records the `x-mcp-header` annotations of a `tools/list` page, and removes the tools
    /// whose annotations are invalid (spec: clients MUST exclude them).
    fn learn_tools(&self, result: &mut Value) {
        let Some(tools) = result.get_mut("tools").and_then(Value::as_array_mut) else {
            return;
        };
        let mut known = locked(&self.tool_params);
        tools.retain(|tool| {
            let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
            match crate::param_headers::declared(tool.get("inputSchema").unwrap_or(&Value::Null)) {
                Ok(headers) => {
                    if headers.is_empty() {
                        known.remove(name);
                    } else {
                        known.insert(name.to_string(), headers);
                    }
                    true
                }
                Err(why) => {
                    tracing::warn!(server = %self.server, tool = name, reason = %why, "tool left out: invalid x-mcp-header annotation");
                    known.remove(name);
                    false
                }
            }
        });
    }

    fn forget_call(&self, id: u64) {
        locked(&self.calls).remove(&id);
    }
}

/// A tool's `Mcp-Param-*` headers.
type ParamHeaders = Vec<crate::param_headers::ParamHeader>;

/// A `4xx` whose body was not a JSON-RPC error.
struct HttpRefusal(StatusCode);

impl HttpRefusal {
    fn into_error(self, server: &str) -> UpstreamError {
        UpstreamError::Unavailable {
            server: server.to_string(),
            reason: format!("the server answered HTTP {}", self.0),
        }
    }
}

/// The era a failed probe shows: an HTTP `4xx` without a modern error body is a session-based
/// server; anything else (unreachable, `5xx`) is an outage.
fn classify_failure(e: UpstreamError) -> Result<Era, UpstreamError> {
    match &e {
        UpstreamError::Unavailable { reason, .. }
            if reason.starts_with("the server answered HTTP 4") =>
        {
            Ok(Era::Legacy(reason.clone()))
        }
        _ => Err(e),
    }
}

/// The era a probe's JSON-RPC answer shows (see the module docs).
fn classify(server: &str, answer: Message) -> Result<Era, UpstreamError> {
    let error = match answer.into_outcome() {
        Ok(result) => {
            let speaks = result
                .get("supportedVersions")
                .and_then(Value::as_array)
                .is_none_or(|v| v.iter().any(|v| v == protocol::MODERN));
            return Ok(if speaks {
                Era::Modern(result)
            } else {
                Era::Legacy(format!(
                    "server/discover lists no version mcplane speaks statelessly ({})",
                    result["supportedVersions"]
                ))
            });
        }
        Err(e) => e,
    };
    match error.code {
        UNSUPPORTED_PROTOCOL_VERSION => {
            let supported = error
                .data
                .as_ref()
                .and_then(|d| d.get("supported"))
                .cloned()
                .unwrap_or(Value::Null);
            let legacy = supported.as_array().is_some_and(|v| {
                v.iter()
                    .any(|v| v.as_str().is_some_and(protocol::is_supported))
            });
            if legacy {
                Ok(Era::Legacy(format!(
                    "the server does not speak {} (it supports {supported})",
                    protocol::MODERN
                )))
            } else {
                Err(UpstreamError::Protocol {
                    server: server.to_string(),
                    reason: format!("no common protocol version (the server supports {supported})"),
                })
            }
        }
        HEADER_MISMATCH | MISSING_REQUIRED_CLIENT_CAPABILITY => Err(UpstreamError::Protocol {
            server: server.to_string(),
            reason: format!("server/discover failed: {}", error.message),
        }),
        METHOD_NOT_FOUND => Ok(Era::Legacy("server/discover is unknown".into())),
        _ => Ok(Era::Legacy(format!(
            "server/discover failed: {}",
            error.message
        ))),
    }
}

/// What an `initialize` result says about a modern server, from its discovery result.
fn initialize_result(server: &str, discovered: &Value) -> Value {
    let info = discovered
        .get("_meta")
        .and_then(|m| m.get(meta::SERVER_INFO))
        .or_else(|| discovered.get("serverInfo"))
        .cloned()
        .unwrap_or_else(|| json!({"name": server, "version": ""}));
    let mut result = json!({
        "protocolVersion": protocol::MODERN,
        "capabilities": discovered.get("capabilities").cloned().unwrap_or_else(|| json!({})),
        "serverInfo": info,
    });
    if let Some(i) = discovered.get("instructions") {
        result["instructions"] = i.clone();
    }
    result
}

/// Removes the fields of a modern result that describe the upstream leg only.
fn strip_leg_fields(result: &mut Value) {
    let Some(obj) = result.as_object_mut() else {
        return;
    };
    for key in ["resultType", "ttlMs", "cacheScope"] {
        obj.remove(key);
    }
    strip_meta_key(obj, meta::SERVER_INFO);
}

/// A modern "resource not found" (`-32602` naming the URI in `data` or saying "not found")
/// takes the session era's code, `-32002`: what a legacy client expects, and what the server
/// core turns back into `-32602` for a modern one.
fn legacy_not_found(response: &mut Value) {
    let Some(error) = response.get_mut("error").and_then(Value::as_object_mut) else {
        return;
    };
    let names_uri = error
        .get("data")
        .and_then(|d| d.get("uri"))
        .is_some_and(Value::is_string);
    let says = error
        .get("message")
        .and_then(Value::as_str)
        .is_some_and(|m| m.to_ascii_lowercase().contains("not found"));
    if error.get("code").and_then(Value::as_i64) == Some(jsonrpc::INVALID_PARAMS)
        && (names_uri || says)
    {
        error.insert("code".into(), jsonrpc::RESOURCE_NOT_FOUND.into());
    }
}

/// Removes `_meta[key]`, and `_meta` itself when that left it empty.
fn strip_meta_key(obj: &mut Map<String, Value>, key: &str) {
    let emptied = match obj.get_mut("_meta") {
        Some(Value::Object(m)) => m.remove(key).is_some() && m.is_empty(),
        _ => false,
    };
    if emptied {
        obj.remove("_meta");
    }
}

/// The message for upstream id `id` that fails it with `error`.
fn error_for(id: u64, error: &RpcError) -> Incoming {
    Incoming {
        message: Message::error(json!(id), error).into_value(),
        related_to: Some(id),
    }
}

/// Removes a call's open questions when the call ends, however it ends.
struct AskGuard<'a> {
    shared: &'a Shared,
    ids: Vec<String>,
}

impl Drop for AskGuard<'_> {
    fn drop(&mut self) {
        let mut asks = locked(&self.shared.asks);
        for id in &self.ids {
            asks.remove(id);
        }
    }
}

/// Runs one call to its final result, answering `input_required` rounds through the client.
async fn run_call(shared: Arc<Shared>, id: u64, method: String, params: Option<Value>) {
    let Some(tx) = shared.sender() else {
        return;
    };
    let outcome = call_rounds(&shared, id, &method, params, &tx).await;
    let incoming = match outcome {
        Ok(mut m) => {
            m.set_id(json!(id));
            let mut value = m.into_value();
            if method == "resources/read" {
                legacy_not_found(&mut value);
            }
            if let Some(result) = value.get_mut("result") {
                strip_leg_fields(result);
                if method == "tools/list" {
                    shared.learn_tools(result);
                }
            }
            Incoming {
                message: value,
                related_to: Some(id),
            }
        }
        Err(Failure::Rpc(e)) => error_for(id, &e),
        Err(Failure::Transport(e)) => error_for(
            id,
            &RpcError::new(jsonrpc::UPSTREAM_UNAVAILABLE, e.to_string()),
        ),
    };
    let _ = tx.send(incoming).await;
    shared.forget_call(id);
}

enum Failure {
    Rpc(RpcError),
    Transport(UpstreamError),
}

async fn call_rounds(
    shared: &Shared,
    id: u64,
    method: &str,
    params: Option<Value>,
    tx: &mpsc::Sender<Incoming>,
) -> Result<Message, Failure> {
    let mut extra: Map<String, Value> = Map::new();
    let mut relisted = false;
    let mut round = 0;
    while round <= MAX_ROUNDS {
        let mut p = shared.with_meta(params.clone());
        if let Value::Object(p) = &mut p {
            // Only mcplane carries input between rounds: nothing of the caller's survives.
            p.remove("inputResponses");
            p.remove("requestState");
            p.extend(extra.clone());
        }
        let wire_id = if round == 0 {
            json!(id)
        } else {
            json!(format!("{id}.{round}"))
        };
        let request = Message::request(wire_id, method, Some(p)).into_value();
        let answer = shared
            .exchange(&request, Some(id), Some(tx))
            .await
            .map_err(Failure::Transport)?;
        let mismatch = answer
            .rpc_error()
            .is_some_and(|e| e.code == HEADER_MISMATCH);
        if mismatch && method == "tools/call" && !relisted {
            // The tool's `x-mcp-header` annotations may be new to mcplane: re-list, retry once.
            relisted = true;
            shared.relist_tools().await;
            continue;
        }
        round += 1;
        let input_required = answer
            .result()
            .and_then(|r| r.get("resultType"))
            .is_some_and(|t| t == "input_required");
        if !input_required {
            return Ok(answer);
        }
        let Some(result) = answer.into_outcome().ok() else {
            break;
        };
        extra.clear();
        let questions = match result.get("inputRequests") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(q)) => q.clone(),
            Some(_) => {
                return Err(Failure::Transport(UpstreamError::Protocol {
                    server: shared.server.clone(),
                    reason: "inputRequests is not an object".into(),
                }));
            }
        };
        if !questions.is_empty() {
            let answers = ask_client(shared, id, questions, tx).await?;
            extra.insert("inputResponses".into(), Value::Object(answers));
        }
        if let Some(state) = result.get("requestState") {
            extra.insert("requestState".into(), state.clone());
        }
    }
    Err(Failure::Rpc(RpcError::internal(format!(
        "upstream {} asked for input more than {MAX_ROUNDS} times; gave up",
        shared.server
    ))))
}

/// Asks the client every question of one `input_required` result (as server→client requests
/// related to call `id`) and gathers the answers by input key.
async fn ask_client(
    shared: &Shared,
    id: u64,
    questions: Map<String, Value>,
    tx: &mpsc::Sender<Incoming>,
) -> Result<Map<String, Value>, Failure> {
    let mut guard = AskGuard {
        shared,
        ids: Vec::new(),
    };
    let mut waits = Vec::new();
    for (key, question) in questions {
        let method = question
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if protocol::capability_for(&method).is_none() {
            return Err(Failure::Transport(UpstreamError::Protocol {
                server: shared.server.clone(),
                reason: format!("input request {key:?} is not sampling, elicitation or roots"),
            }));
        }
        let mut params = match question.get("params") {
            Some(Value::Object(p)) => p.clone(),
            _ => Map::new(),
        };
        let m = params
            .entry("_meta")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = m {
            m.insert(meta::INPUT_KEY.into(), key.clone().into());
        }
        let n = shared.next_ask.fetch_add(1, Ordering::Relaxed);
        let ask_id = format!("mcplane-input-{n}");
        let (done, wait) = oneshot::channel();
        locked(&shared.asks).insert(ask_id.clone(), done);
        guard.ids.push(ask_id.clone());
        let request = Message::request(json!(ask_id), &method, Some(Value::Object(params)));
        let incoming = Incoming {
            message: request.into_value(),
            related_to: Some(id),
        };
        if tx.send(incoming).await.is_err() {
            return Err(Failure::Transport(shared.unavailable("connection closed")));
        }
        waits.push((key, method, wait));
    }
    let limit = shared.timeouts.call;
    let mut answers = Map::new();
    let deadline = tokio::time::Instant::now() + limit;
    for (key, method, wait) in waits {
        let reply = match tokio::time::timeout_at(deadline, wait).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => return Err(Failure::Transport(shared.unavailable("connection closed"))),
            Err(_) => {
                return Err(Failure::Rpc(RpcError::internal(format!(
                    "upstream {} needed {method} from the client, which did not answer within {}s",
                    shared.server,
                    limit.as_secs_f64()
                ))));
            }
        };
        match reply.into_outcome() {
            Ok(result) => {
                answers.insert(key, result);
            }
            Err(e) => {
                let mut refused = RpcError::new(
                    e.code,
                    format!(
                        "upstream {} needed {method} from the client, which failed: {}",
                        shared.server, e.message
                    ),
                );
                refused.data = e.data;
                return Err(Failure::Rpc(refused));
            }
        }
    }
    Ok(answers)
}

/// The `subscriptions/listen` stream, held open while the pipe is.
async fn listen(shared: Arc<Shared>, tx: mpsc::Sender<Incoming>) {
    let mut backoff = LISTEN_BACKOFF_MIN;
    let mut changes = shared.subscribed.subscribe();
    let mut lost = false;
    let mut n = 0u64;
    loop {
        n += 1;
        let uris: Vec<String> = changes.borrow_and_update().iter().cloned().collect();
        let mut filter = Map::new();
        for (field, _) in LIST_CHANGED {
            filter.insert(field.into(), true.into());
        }
        filter.insert("resourceSubscriptions".into(), json!(uris));
        let wire_id = json!(format!("mcplane-listen-{n}"));
        let mut params = Map::new();
        params.insert("notifications".into(), Value::Object(filter));
        let request = Message::request(
            wire_id.clone(),
            "subscriptions/listen",
            Some(shared.with_meta(Some(Value::Object(params)))),
        )
        .into_value();
        let opened = tokio::select! {
            r = shared.post(&request) => r,
            _ = shared.cancel.cancelled() => return,
        };
        let ended = match opened {
            Ok(resp) if resp.status().is_success() && body_kind(&resp) == BodyKind::EventStream => {
                let mut reader = SseReader::new(resp);
                tokio::select! {
                    r = pump_listen(&shared, &mut reader, &tx, &wire_id, &uris, &mut lost, &mut backoff) => r,
                    _ = changes.changed() => ListenEnd::Resubscribe,
                    _ = shared.cancel.cancelled() => return,
                }
            }
            Ok(resp)
                if matches!(
                    resp.status(),
                    StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
                ) =>
            {
                tracing::info!(server = %shared.server, status = %resp.status(), "upstream offers no subscriptions/listen; no list_changed or resource updates from it");
                return;
            }
            Ok(resp) => ListenEnd::Lost(format!("HTTP {}", resp.status())),
            Err(e) => ListenEnd::Lost(e.to_string()),
        };
        match ended {
            ListenEnd::Resubscribe => continue,
            ListenEnd::Stop => return,
            ListenEnd::Lost(why) => {
                tracing::debug!(server = %shared.server, error = %why, retry_in_ms = backoff.as_millis() as u64, "upstream listen stream lost; reopening");
                lost = true;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shared.cancel.cancelled() => return,
        }
        backoff = (backoff * 2).min(LISTEN_BACKOFF_MAX);
    }
}

enum ListenEnd {
    /// The stream dropped or could not be opened.
    Lost(String),
    /// The subscribed URIs changed: reopen at once.
    Resubscribe,
    /// Nobody reads events any more.
    Stop,
}

/// Forwards a listen stream's notifications as unrelated events until it ends.
async fn pump_listen(
    shared: &Shared,
    reader: &mut SseReader,
    tx: &mpsc::Sender<Incoming>,
    wire_id: &Value,
    uris: &[String],
    lost: &mut bool,
    backoff: &mut Duration,
) -> ListenEnd {
    loop {
        let event = match reader.next().await {
            Ok(Some(e)) => e,
            Ok(None) => return ListenEnd::Lost("stream closed".into()),
            Err(e) => return ListenEnd::Lost(e),
        };
        if !(event.event.is_empty() || event.event == "message") || event.data.is_empty() {
            continue;
        }
        let Ok(messages) = parse_messages(event.data.as_bytes()) else {
            continue;
        };
        for m in messages {
            let Ok(m) = Message::from_value(m) else {
                continue;
            };
            if m.kind() != jsonrpc::Kind::Notification {
                if m.id() == Some(wire_id) {
                    // The server closed the subscription (gracefully, or refused it).
                    if let Some(e) = m.rpc_error() {
                        tracing::info!(server = %shared.server, error = %e.message, "upstream refused subscriptions/listen");
                        return ListenEnd::Stop;
                    }
                    return ListenEnd::Lost("the server ended the subscription".into());
                }
                continue;
            }
            let method = m.method().unwrap_or_default().to_string();
            if method == "notifications/subscriptions/acknowledged" {
                *backoff = LISTEN_BACKOFF_MIN;
                if std::mem::take(lost) {
                    // Whatever changed while the stream was down went unseen.
                    let mut missed: Vec<Value> = LIST_CHANGED
                        .iter()
                        .map(|(_, method)| Message::notification(method, None).into_value())
                        .collect();
                    missed.extend(uris.iter().map(|uri| {
                        Message::notification(
                            "notifications/resources/updated",
                            Some(json!({"uri": uri})),
                        )
                        .into_value()
                    }));
                    for message in missed {
                        let incoming = Incoming {
                            message,
                            related_to: None,
                        };
                        if tx.send(incoming).await.is_err() {
                            return ListenEnd::Stop;
                        }
                    }
                }
                continue;
            }
            let mut value = m.into_value();
            if let Some(Value::Object(params)) = value.get_mut("params") {
                strip_meta_key(params, meta::SUBSCRIPTION_ID);
            }
            let incoming = Incoming {
                message: value,
                related_to: None,
            };
            if tx.send(incoming).await.is_err() {
                return ListenEnd::Stop;
            }
        }
    }
}

impl ModernPipe {
    /// Answers request `id` at once (methods this era removed).
    async fn answer(&self, id: u64, result: Value) -> Result<(), UpstreamError> {
        let Some(tx) = self.shared.sender() else {
            return Err(self.shared.unavailable("connection closed"));
        };
        let incoming = Incoming {
            message: Message::response(json!(id), result).into_value(),
            related_to: Some(id),
        };
        tx.send(incoming)
            .await
            .map_err(|_| self.shared.unavailable("connection closed"))
    }

    /// `initialize`: probe, then answer from discovery or hand over to a session pipe.
    async fn initialize(&self, message: Value, id: u64) -> Result<(), UpstreamError> {
        let s = &self.shared;
        match s.probe().await? {
            Era::Modern(discovered) => {
                tracing::info!(server = %s.server, "upstream speaks 2026-07-28; using it statelessly");
                self.answer(id, initialize_result(&s.server, &discovered))
                    .await
            }
            Era::Legacy(why) if self.config.protocol == ProtocolMode::Auto => {
                tracing::info!(server = %s.server, reason = %why, "upstream does not speak 2026-07-28; using the session era");
                let Some(tx) = s.sender() else {
                    return Err(s.unavailable("connection closed"));
                };
                let pipe = self
                    .fallback
                    .get_or_init(|| match session_pipe(&self.config, tx) {
                        Ok(p) => p,
                        Err(e) => Box::new(Broken(e)) as Box<dyn Pipe>,
                    });
                pipe.send(message, Some(id)).await
            }
            Era::Legacy(why) => Err(UpstreamError::Protocol {
                server: s.server.clone(),
                reason: format!(
                    "protocol is stateless but the server does not speak {} ({why})",
                    protocol::MODERN
                ),
            }),
        }
    }

    fn set_subscribed(&self, uri: Option<&str>, on: bool) {
        let Some(uri) = uri else {
            return;
        };
        self.shared.subscribed.send_if_modified(|set| {
            if on {
                set.insert(uri.to_string())
            } else {
                set.remove(uri)
            }
        });
    }
}

/// A session pipe that could not be built: every send fails with why.
struct Broken(UpstreamError);

#[async_trait]
impl Pipe for Broken {
    async fn send(&self, _: Value, _: Option<u64>) -> Result<(), UpstreamError> {
        Err(self.0.clone())
    }
    async fn close(&self) {}
}

#[async_trait]
impl Pipe for ModernPipe {
    async fn send(&self, message: Value, request_id: Option<u64>) -> Result<(), UpstreamError> {
        if let Some(pipe) = self.fallback.get() {
            return pipe.send(message, request_id).await;
        }
        let s = &self.shared;
        if s.cancel.is_cancelled() {
            return Err(s.unavailable("connection closed"));
        }
        let method = message
            .get("method")
            .and_then(Value::as_str)
            .map(str::to_string);
        let Some(method) = method else {
            // The client's answer to one of the questions of an `input_required` result.
            let waiter = message
                .get("id")
                .and_then(Value::as_str)
                .and_then(|id| locked(&s.asks).remove(id));
            match (waiter, Message::from_value(message)) {
                (Some(w), Ok(m)) => {
                    let _ = w.send(m);
                }
                _ => {
                    tracing::debug!(server = %s.server, "answer to an unknown or finished input request ignored")
                }
            }
            return Ok(());
        };
        let Some(id) = request_id else {
            match method.as_str() {
                "notifications/cancelled" => {
                    let target = message["params"]["requestId"].as_u64();
                    if let Some(call) = target.and_then(|t| locked(&s.calls).remove(&t)) {
                        // Closing the response stream is the cancellation in this era.
                        call.abort();
                    }
                }
                other => {
                    tracing::debug!(server = %s.server, method = other, "notification not sent to a 2026-07-28 upstream")
                }
            }
            return Ok(());
        };
        let params = message.get("params").cloned();
        match method.as_str() {
            "initialize" => self.initialize(message, id).await,
            "ping" => self.answer(id, json!({})).await,
            "logging/setLevel" => {
                let level = params.as_ref().and_then(|p| p.get("level")).cloned();
                *locked(&s.log_level) = level;
                self.answer(id, json!({})).await
            }
            "resources/subscribe" | "resources/unsubscribe" => {
                let uri = params
                    .as_ref()
                    .and_then(|p| p.get("uri"))
                    .and_then(Value::as_str);
                self.set_subscribed(uri, method == "resources/subscribe");
                self.answer(id, json!({})).await
            }
            _ => {
                // Held while spawning, so the call cannot end (and forget itself) before it is
                // recorded.
                let mut calls = locked(&s.calls);
                let handle = s
                    .tasks
                    .spawn(run_call(s.clone(), id, method, params))
                    .abort_handle();
                calls.insert(id, handle);
                Ok(())
            }
        }
    }

    fn negotiated(&self, protocol_version: &str) {
        if let Some(pipe) = self.fallback.get() {
            return pipe.negotiated(protocol_version);
        }
        let s = &self.shared;
        start_once(&s.listening, &s.tasks, s.sender(), |tx| {
            listen(s.clone(), tx)
        });
    }

    async fn close(&self) {
        let s = &self.shared;
        if s.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(pipe) = self.fallback.get() {
            pipe.close().await;
        }
        s.cancel.cancel();
        locked(&s.tx).take();
        for (_, call) in locked(&s.calls).drain() {
            call.abort();
        }
        drain(&s.tasks).await;
    }
}

impl Drop for ModernPipe {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
        locked(&self.shared.tx).take();
        for (_, call) in locked(&self.shared.calls).drain() {
            call.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(v: Value) -> Message {
        Message::from_value(v).map_err(|(_, e)| e).unwrap()
    }

    #[test]
    fn probe_answers_decide_the_era() {
        let ok = answer(json!({"jsonrpc": "2.0", "id": 1, "result": {
            "supportedVersions": ["2026-07-28", "2025-11-25"], "capabilities": {"tools": {}}}}));
        assert!(matches!(classify("s", ok), Ok(Era::Modern(_))));
        let future_only = answer(json!({"jsonrpc": "2.0", "id": 1, "result": {
            "supportedVersions": ["2027-01-01"], "capabilities": {}}}));
        assert!(matches!(classify("s", future_only), Ok(Era::Legacy(_))));
        let unknown = answer(
            json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "nope"}}),
        );
        assert!(matches!(classify("s", unknown), Ok(Era::Legacy(_))));
        let dual = answer(
            json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32022, "message": "v",
            "data": {"supported": ["2025-11-25"], "requested": "2026-07-28"}}}),
        );
        assert!(matches!(classify("s", dual), Ok(Era::Legacy(_))));
        let none = answer(
            json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32022, "message": "v",
            "data": {"supported": ["2099-01-01"]}}}),
        );
        assert!(matches!(
            classify("s", none),
            Err(UpstreamError::Protocol { .. })
        ));
        let mismatch =
            answer(json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32020, "message": "h"}}));
        assert!(matches!(
            classify("s", mismatch),
            Err(UpstreamError::Protocol { .. })
        ));
        let refused = UpstreamError::Unavailable {
            server: "s".into(),
            reason: "the server answered HTTP 400 Bad Request".into(),
        };
        assert!(matches!(classify_failure(refused), Ok(Era::Legacy(_))));
        let down = UpstreamError::Unavailable {
            server: "s".into(),
            reason: "the server answered HTTP 503 Service Unavailable".into(),
        };
        assert!(classify_failure(down).is_err());
    }

    #[test]
    fn discovery_becomes_an_initialize_result() {
        let d = json!({"supportedVersions": ["2026-07-28"], "capabilities": {"tools": {"listChanged": true}},
            "_meta": {meta::SERVER_INFO: {"name": "up", "version": "2"}}, "instructions": "hi", "ttlMs": 5});
        let r = initialize_result("s", &d);
        assert_eq!(r["protocolVersion"], protocol::MODERN);
        assert_eq!(r["capabilities"]["tools"]["listChanged"], true);
        assert_eq!(r["serverInfo"]["name"], "up");
        assert_eq!(r["instructions"], "hi");
        let bare = initialize_result("s", &json!({}));
        assert_eq!(bare["serverInfo"]["name"], "s");
        assert_eq!(bare["capabilities"], json!({}));
    }

    #[test]
    fn x_mcp_header_values_for_a_call() {
        let schema = json!({"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "opts": {"type": "object", "properties": {
                "limit": {"type": "integer", "x-mcp-header": "Limit"},
                "dry": {"type": "boolean", "x-mcp-header": "Dry-Run"}
            }},
            "query": {"type": "string"}
        }});
        let declared = crate::param_headers::declared(&schema).unwrap();
        let mut values = crate::param_headers::client_values(
            &declared,
            Some(&json!({"region": "Zürich", "opts": {"limit": 42, "dry": false}})),
        );
        values.sort();
        assert_eq!(
            values,
            [
                ("mcp-param-dry-run".to_string(), "false".to_string()),
                ("mcp-param-limit".to_string(), "42".to_string()),
                ("mcp-param-region".to_string(), "Zürich".to_string()),
            ]
        );
        let odd = json!({"region": null, "opts": {"limit": 1e300, "dry": "yes"}});
        assert!(crate::param_headers::client_values(&declared, Some(&odd)).is_empty());
        let unsafe_int = json!({"opts": {"limit": 9007199254740993i64}});
        assert!(crate::param_headers::client_values(&declared, Some(&unsafe_int)).is_empty());
        assert!(crate::param_headers::client_values(&declared, None).is_empty());
    }

    #[test]
    fn a_modern_not_found_takes_the_legacy_code() {
        let mut e = json!({"id": 1, "error": {"code": -32602, "message": "no such resource", "data": {"uri": "x://y"}}});
        legacy_not_found(&mut e);
        assert_eq!(e["error"]["code"], -32002);
        let mut e = json!({"id": 1, "error": {"code": -32602, "message": "Resource not found"}});
        legacy_not_found(&mut e);
        assert_eq!(e["error"]["code"], -32002);
        let mut e = json!({"id": 1, "error": {"code": -32602, "message": "uri must be a string"}});
        legacy_not_found(&mut e);
        assert_eq!(e["error"]["code"], -32602);
        let mut ok = json!({"id": 1, "result": {"contents": []}});
        legacy_not_found(&mut ok);
        assert_eq!(ok, json!({"id": 1, "result": {"contents": []}}));
    }

    #[test]
    fn leg_fields_are_stripped_and_the_rest_kept() {
        let mut r = json!({"resultType": "complete", "ttlMs": 1, "cacheScope": "public",
            "content": [], "x-unknown": 1, "_meta": {meta::SERVER_INFO: {}, "k": 2}});
        strip_leg_fields(&mut r);
        assert_eq!(r, json!({"content": [], "x-unknown": 1, "_meta": {"k": 2}}));
        let mut r = json!({"resultType": "complete", "_meta": {meta::SERVER_INFO: {}}});
        strip_leg_fields(&mut r);
        assert_eq!(r, json!({}));
        let mut r = json!({"_meta": {}});
        strip_leg_fields(&mut r);
        assert_eq!(
            r,
            json!({"_meta": {}}),
            "an empty _meta the server sent stays"
        );
    }
}
