//! MCP Streamable HTTP (protocol 2025-03-26 and later) in front of a [`Server`]: one endpoint
//! (default `/mcp`) answering POST, GET and DELETE.
//!
//! - **POST** carries one JSON-RPC message (or, where the session's protocol version allows, a
//!   batch). `initialize` without `Mcp-Session-Id` creates a session and returns its id in that
//!   header; everything else needs a live session (400 without the header, 404 for an unknown,
//!   expired or foreign one). Notifications and responses get `202`. A request is answered with
//!   `application/json` when its final response is the first thing the server produces, or
//!   with a `text/event-stream` carrying the related notifications/requests and then the
//!   response when something else comes first (or when nothing arrives within one keep-alive
//!   period, so long calls keep the connection alive through proxies).
//! - **GET** opens the session's standalone SSE stream (server messages unrelated to any
//!   request); only one at a time (409 otherwise).
//! - **DELETE** ends the session.
//!
//! Sessions are bound to the caller's `Authorization` header (see [`session_binding`]). Every
//! rejection carries a JSON-RPC error body (id null) that says how to fix the request. Streams do
//! not support resumption (`Last-Event-ID` is ignored); event ids are still unique per session.
//!
//! **Stateless clients (2026-07-28)** share the endpoint. A POST whose `MCP-Protocol-Version` is
//! not a session-based version (2026-07-28, or one mcplane does not know), or that has no such
//! header but carries `_meta["io.modelcontextprotocol/protocolVersion"]`, is served statelessly
//! through [`Server::dispatch_modern`]: no session (an `Mcp-Session-Id` on it is refused), the
//! mirrored headers checked against the body (`MCP-Protocol-Version` = `_meta` version,
//! `Mcp-Method` = `method`, `Mcp-Name` = `params.name`/`params.uri`, and for `tools/call` each
//! `Mcp-Param-*` header the tool declares with `x-mcp-header` = its argument; Base64 sentinel
//! decoded; any mismatch or omission: 400 `HeaderMismatch` -32020), errors mapped to their HTTP status
//! (-32601 → 404; -32020, -32021, -32022, and `_meta` validation → 400), no SSE event ids, and
//! closing the response stream cancels the request. GET and DELETE are 405 for such clients.

use crate::http::ShutdownSignal;
use crate::reply::{
    EventIds, Frames, KEEP_ALIVE, Rejection, accepted, json_response, keep_alive_timer,
    message_event, rpc_error, rpc_error_with_id, sse_frames, sse_response,
};
pub use crate::request::session_binding;
use crate::request::{
    PROTOCOL_HEADER, SESSION_HEADER, batches_allowed, check_content_length, check_protocol_header,
    missing_session, read_body, require_accept, require_json_content, session_header,
    unknown_session,
};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use futures::stream::{self, SelectAll};
use futures::{Stream, StreamExt};
use mcplane_mcp::jsonrpc::{self, Body, Kind, Message, RpcError};
use mcplane_mcp::param_headers;
use mcplane_mcp::protocol::{self, meta};
use mcplane_mcp::server::{Dispatch, ModernDispatch, Server, Session, StandaloneStream};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Interval;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

const JSON: &str = "application/json";
const EVENT_STREAM: &str = "text/event-stream";

/// Numbers SSE streams so event ids are unique across every stream of a session.
static STREAMS: AtomicU64 = AtomicU64::new(1);

fn next_stream_ids() -> EventIds {
    EventIds::new(STREAMS.fetch_add(1, Ordering::Relaxed))
}

/// How the Streamable HTTP endpoint is mounted and limited.
#[derive(Debug, Clone)]
pub struct McpHttpOptions {
    /// The endpoint path. Default `/mcp`.
    pub path: String,
    /// Largest accepted body in bytes (413 above). Default 4 MiB.
    pub max_body_bytes: usize,
    /// Interval between SSE keep-alive comments; also how long a POST waits for a first message
    /// before switching to an SSE answer. Default 15 s.
    pub keep_alive: Duration,
}

impl Default for McpHttpOptions {
    fn default() -> Self {
        McpHttpOptions {
            path: "/mcp".into(),
            max_body_bytes: 4 * 1024 * 1024,
            keep_alive: Duration::from_secs(15),
        }
    }
}

struct Endpoint {
    server: Arc<Server>,
    options: McpHttpOptions,
}

/// The Streamable HTTP router for `server`, at `options.path`.
pub fn router(server: Arc<Server>, options: McpHttpOptions) -> Router {
    let path = options.path.clone();
    let endpoint = Arc::new(Endpoint { server, options });
    Router::new()
        .route(
            &path,
            post(handle_post).get(handle_get).delete(handle_delete),
        )
        .with_state(endpoint)
}

fn is_initialize(msg: &Message) -> bool {
    msg.kind() == Kind::Request && msg.method() == Some("initialize")
}

/// Whether `v` is the final response to the request with `id`.
fn is_final(v: &Value, id: &Value) -> bool {
    v.get("method").is_none()
        && (v.get("result").is_some() || v.get("error").is_some())
        && v.get("id") == Some(id)
}

fn with_session_header(mut response: Response, session: &Session) -> Response {
    if let Ok(v) = HeaderValue::from_str(session.id()) {
        response.headers_mut().insert("mcp-session-id", v);
    }
    response
}

/// Whether a request speaks the stateless 2026-07-28 protocol: its `MCP-Protocol-Version` is not
/// a session-based version, or (without the header) its body's `_meta` names a version.
fn is_modern(headers: &axum::http::HeaderMap, parsed: &Body) -> bool {
    match headers.get(PROTOCOL_HEADER).map(|v| v.to_str()) {
        Some(Ok(v)) => !protocol::is_supported(v.trim()),
        Some(Err(_)) => true,
        None => match parsed {
            Body::Single(m) => m
                .params()
                .and_then(|p| p.get("_meta"))
                .is_some_and(|m| m.get(meta::PROTOCOL_VERSION).is_some()),
            Body::Batch(_) => false,
        },
    }
}

/// Whether the headers say 2026-07-28 (for GET and DELETE, which that revision does not have).
fn says_modern(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(PROTOCOL_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == protocol::MODERN)
}

async fn handle_post(State(ep): State<Arc<Endpoint>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let checks = check_content_length(headers, ep.options.max_body_bytes)
        .and_then(|()| require_json_content(headers))
        .and_then(|()| require_accept(headers, &[JSON, EVENT_STREAM]));
    if let Err(rejection) = checks {
        return rejection.into_response();
    }
    let bytes = match read_body(headers, body, ep.options.max_body_bytes).await {
        Ok(b) => b,
        Err(rejection) => return rejection.into_response(),
    };
    let parsed = match jsonrpc::parse_body(&bytes) {
        Ok(b) => b,
        Err((id, error)) => return rpc_error_with_id(StatusCode::BAD_REQUEST, id, &error),
    };
    if is_modern(headers, &parsed) {
        return ep.modern(headers, parsed).await;
    }
    if let Err(rejection) = check_protocol_header(headers) {
        return rejection.into_response();
    }
    let session_id = match session_header(headers) {
        Ok(id) => id,
        Err(rejection) => return rejection.into_response(),
    };
    let binding = session_binding(headers);
    let session = match session_id {
        Some(id) => match ep.server.session(id, binding.as_deref()) {
            Ok(s) => s,
            Err(_) => return unknown_session().into_response(),
        },
        None => match parsed {
            Body::Single(msg) if is_initialize(&msg) => {
                let session = ep.server.new_session(binding);
                return ep.initialize(session, msg).await;
            }
            _ => return missing_session().into_response(),
        },
    };
    match parsed {
        Body::Single(msg) => {
            let id = msg.id().cloned().unwrap_or(Value::Null);
            match ep.server.dispatch(&session, msg).await {
                Dispatch::Accepted => accepted(),
                Dispatch::Reply(rx) => ep.answer(vec![(id, rx)], Vec::new(), Answer::Legacy).await,
            }
        }
        Body::Batch(items) => {
            if let Err(rejection) = batches_allowed(&session) {
                return rejection.into_response();
            }
            let mut replies = Vec::new();
            let mut finals = Vec::new();
            for item in items {
                match item {
                    Ok(msg) => {
                        let id = msg.id().cloned().unwrap_or(Value::Null);
                        if let Dispatch::Reply(rx) = ep.server.dispatch(&session, msg).await {
                            replies.push((id, rx));
                        }
                    }
                    Err((id, error)) => finals.push(jsonrpc::error_value(id, &error)),
                }
            }
            ep.answer(replies, finals, Answer::Batch).await
        }
    }
}

type Tagged = (usize, Value);

/// How a POST is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// One request of a session.
    Legacy,
    /// A batch of a session (an array answer).
    Batch,
    /// One 2026-07-28 request: errors carry their HTTP status, no SSE event ids.
    Modern,
}

/// The HTTP status of a 2026-07-28 error answered as JSON.
fn modern_status(code: i64) -> StatusCode {
    match code {
        jsonrpc::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        jsonrpc::HEADER_MISMATCH
        | jsonrpc::MISSING_REQUIRED_CLIENT_CAPABILITY
        | jsonrpc::UNSUPPORTED_PROTOCOL_VERSION => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    }
}

/// The headers `Mcp-Name` mirrors: `params.name`, or `params.uri` for `resources/read`.
fn named_field(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    }
}

/// A mirrored header's value: surrounding whitespace removed, the `=?base64?…?=` sentinel
/// decoded (standard alphabet, padded, UTF-8).
fn header_value(raw: &axum::http::HeaderValue) -> Result<String, String> {
    protocol::decode_header_value(&header_text(raw)?)
}

/// A header's raw text, or why it is not visible ASCII.
fn header_text(raw: &axum::http::HeaderValue) -> Result<String, String> {
    raw.to_str()
        .map(str::to_string)
        .map_err(|_| "is not visible ASCII (Base64-encode it as =?base64?…?=)".to_string())
}

/// Checks the headers a 2026-07-28 request mirrors from its body; the error is a
/// `HeaderMismatch` saying which.
fn check_mirrored_headers(headers: &axum::http::HeaderMap, msg: &Message) -> Result<(), RpcError> {
    let mismatch = |m: String| Err(RpcError::header_mismatch(format!("Header mismatch: {m}")));
    let method = msg.method().unwrap_or_default();
    let version = match headers.get(PROTOCOL_HEADER).map(header_value) {
        None => {
            return mismatch(format!(
                "missing MCP-Protocol-Version header (it must repeat                  _meta[\"{}\"], e.g. {})",
                meta::PROTOCOL_VERSION,
                protocol::MODERN
            ));
        }
        Some(Err(why)) => return mismatch(format!("MCP-Protocol-Version {why}")),
        Some(Ok(v)) => v,
    };
    let body_version = msg
        .params()
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.get(meta::PROTOCOL_VERSION))
        .and_then(Value::as_str);
    if let Some(b) = body_version
        && b != version
    {
        return mismatch(format!(
            "MCP-Protocol-Version header value '{version}' does not match body              _meta protocolVersion '{b}'"
        ));
    }
    match headers.get("mcp-method").map(header_value) {
        None => {
            return mismatch(format!(
                "missing Mcp-Method header (it must repeat the body's method, {method})"
            ));
        }
        Some(Err(why)) => return mismatch(format!("Mcp-Method {why}")),
        Some(Ok(h)) if h != method => {
            return mismatch(format!(
                "Mcp-Method header value '{h}' does not match body method '{method}'"
            ));
        }
        Some(Ok(_)) => {}
    }
    let Some(field) = named_field(method) else {
        return Ok(());
    };
    let body = msg
        .params()
        .and_then(|p| p.get(field))
        .and_then(Value::as_str);
    match (headers.get("mcp-name").map(header_value), body) {
        (None, None) => Ok(()),
        (None, Some(b)) => mismatch(format!(
            "missing Mcp-Name header (it must repeat params.{field}, {b:?})"
        )),
        (Some(Err(why)), _) => mismatch(format!("Mcp-Name {why}")),
        (Some(Ok(h)), b) if Some(h.as_str()) != b => mismatch(format!(
            "Mcp-Name header value '{h}' does not match body params.{field} '{}'",
            b.unwrap_or("(absent)")
        )),
        (Some(Ok(_)), _) => Ok(()),
    }
}

impl Endpoint {
    /// Checks the headers a 2026-07-28 request mirrors from its body: the standard ones, and for
    /// `tools/call` the `Mcp-Param-*` headers of the tool's `x-mcp-header` parameters.
    async fn check_headers(
        &self,
        headers: &axum::http::HeaderMap,
        msg: &Message,
    ) -> Result<(), RpcError> {
        check_mirrored_headers(headers, msg)?;
        if msg.method() != Some("tools/call") {
            return Ok(());
        }
        let params = msg.params();
        let Some(name) = params.and_then(|p| p.get("name")).and_then(Value::as_str) else {
            return Ok(());
        };
        let Some(declared) = self.server.param_headers(name).await else {
            return Ok(());
        };
        param_headers::check(
            &declared,
            params.and_then(|p| p.get("arguments")),
            |header| headers.get(header).map(header_text),
        )
        .map_err(|m| RpcError::header_mismatch(format!("Header mismatch: {m}")))
    }

    /// A POST of a stateless 2026-07-28 client.
    async fn modern(&self, headers: &axum::http::HeaderMap, parsed: Body) -> Response {
        if headers.contains_key(SESSION_HEADER) {
            return Rejection::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "Mcp-Session-Id is part of the session-based protocol (up to 2025-11-25) but \
                     this request speaks {} (MCP-Protocol-Version or _meta): drop the header for \
                     a stateless request, or send the session's MCP-Protocol-Version",
                    protocol::MODERN
                ),
            )
            .into_response();
        }
        let msg = match parsed {
            Body::Single(m) => m,
            Body::Batch(_) => {
                return Rejection::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "JSON-RPC batches are not part of protocol {}; send one message per POST",
                        protocol::MODERN
                    ),
                )
                .into_response();
            }
        };
        let id = msg.id().cloned().unwrap_or(Value::Null);
        if msg.kind() == Kind::Request
            && let Err(e) = self.check_headers(headers, &msg).await
        {
            return rpc_error_with_id(StatusCode::BAD_REQUEST, id, &e);
        }
        match self
            .server
            .dispatch_modern(msg, session_binding(headers))
            .await
        {
            ModernDispatch::Accepted => accepted(),
            ModernDispatch::Rejected { id, error } => {
                let status = if error.code == jsonrpc::METHOD_NOT_FOUND {
                    StatusCode::NOT_FOUND
                } else {
                    StatusCode::BAD_REQUEST
                };
                rpc_error_with_id(status, id, &error)
            }
            ModernDispatch::Reply(rx) => {
                self.answer(vec![(id, rx)], Vec::new(), Answer::Modern)
                    .await
            }
        }
    }

    /// Runs `initialize` on a fresh session: on success the answer carries `Mcp-Session-Id`; on
    /// failure the session is discarded.
    async fn initialize(&self, session: Arc<Session>, msg: Message) -> Response {
        let id = msg.id().cloned().unwrap_or(Value::Null);
        let Dispatch::Reply(mut rx) = self.server.dispatch(&session, msg).await else {
            self.server.close_session(session.id());
            return accepted();
        };
        match rx.recv().await {
            Some(v) if is_final(&v, &id) && v.get("result").is_some() => {
                with_session_header(json_response(StatusCode::OK, &v), &session)
            }
            Some(v) => {
                self.server.close_session(session.id());
                json_response(StatusCode::OK, &v)
            }
            None => {
                self.server.close_session(session.id());
                rpc_error_with_id(
                    StatusCode::SERVICE_UNAVAILABLE,
                    id,
                    &RpcError::new(
                        jsonrpc::CONNECTION_CLOSED,
                        "the server is shutting down; retry initialize later",
                    ),
                )
            }
        }
    }

    /// Answers requests whose replies arrive on `replies`, with `finals` (error responses for
    /// invalid batch items) already known. JSON while only final responses arrive; SSE as soon
    /// as anything else does (or nothing arrives for one keep-alive period).
    async fn answer(
        &self,
        replies: Vec<(Value, mpsc::Receiver<Value>)>,
        mut finals: Vec<Value>,
        how: Answer,
    ) -> Response {
        let modern = how == Answer::Modern;
        let mut remaining = replies.len();
        let mut ids = Vec::with_capacity(replies.len());
        let mut merged: SelectAll<_> =
            stream::select_all(replies.into_iter().enumerate().map(|(i, (id, rx))| {
                ids.push(id);
                ReceiverStream::new(rx).map(move |v| (i, v))
            }));
        let wait = tokio::time::sleep(self.options.keep_alive);
        tokio::pin!(wait);
        while remaining > 0 {
            let next = tokio::select! {
                m = merged.next() => m,
                _ = &mut wait => return self.reply_stream(finals, merged, modern),
            };
            match next {
                Some((i, v)) if ids.get(i).is_some_and(|id| is_final(&v, id)) => {
                    finals.push(v);
                    remaining -= 1;
                }
                Some((_, v)) => {
                    finals.push(v);
                    return self.reply_stream(finals, merged, modern);
                }
                // Every channel closed: the rest were cancelled and get no response.
                None => break,
            }
        }
        if how == Answer::Batch {
            if finals.is_empty() {
                accepted()
            } else {
                json_response(StatusCode::OK, &Value::Array(finals))
            }
        } else {
            match finals.pop() {
                Some(v) => {
                    let status = match v["error"]["code"].as_i64() {
                        Some(code) if modern => modern_status(code),
                        _ => StatusCode::OK,
                    };
                    json_response(status, &v)
                }
                // Cancelled: an SSE stream that ends without a response.
                None => sse_response(stream::empty()),
            }
        }
    }

    /// An SSE answer: `first` messages, then everything still to come on `rest`. Event ids only
    /// for session-based clients (2026-07-28 dropped them with resumability).
    fn reply_stream(
        &self,
        first: Vec<Value>,
        rest: impl Stream<Item = Tagged> + Send + Unpin + 'static,
        modern: bool,
    ) -> Response {
        struct State<S> {
            first: VecDeque<Value>,
            rest: S,
            ids: Option<EventIds>,
            tick: Interval,
        }
        let state = State {
            first: first.into(),
            rest,
            ids: (!modern).then(next_stream_ids),
            tick: keep_alive_timer(self.options.keep_alive),
        };
        sse_response(stream::unfold(state, |mut st| async move {
            let msg = match st.first.pop_front() {
                Some(v) => Some(v),
                None => tokio::select! {
                    m = st.rest.next() => Some(m?.1),
                    _ = st.tick.tick() => None,
                },
            };
            let frame = match msg {
                Some(v) => {
                    let id = st.ids.as_mut().map(EventIds::next_id);
                    message_event(id.as_deref(), &v)
                }
                None => Bytes::from_static(KEEP_ALIVE),
            };
            Some((frame, st))
        }))
    }
}

/// Looks up the session a GET or DELETE names.
fn existing_session(
    ep: &Endpoint,
    parts: &axum::http::request::Parts,
) -> Result<Arc<Session>, Rejection> {
    check_protocol_header(&parts.headers)?;
    let id = session_header(&parts.headers)?.ok_or_else(missing_session)?;
    ep.server
        .session(id, session_binding(&parts.headers).as_deref())
        .map_err(|_| unknown_session())
}

/// 405 for GET/DELETE from a 2026-07-28 client (that revision has only POST).
fn not_in_modern(verb: &str) -> Response {
    let mut response = rpc_error(
        StatusCode::METHOD_NOT_ALLOWED,
        RpcError::invalid_request(format!(
            "{verb} is not part of protocol {}: send every request as a POST (change \
             notifications come from a subscriptions/listen request)",
            protocol::MODERN
        )),
    );
    response
        .headers_mut()
        .insert(axum::http::header::ALLOW, HeaderValue::from_static("POST"));
    response
}

async fn handle_get(State(ep): State<Arc<Endpoint>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    if says_modern(&parts.headers) {
        return not_in_modern("GET");
    }
    if let Err(rejection) = require_accept(&parts.headers, &[EVENT_STREAM]) {
        return rejection.into_response();
    }
    let session = match existing_session(&ep, &parts) {
        Ok(s) => s,
        Err(rejection) => return rejection.into_response(),
    };
    let Some(standalone) = session.take_standalone() else {
        return Rejection::new(
            StatusCode::CONFLICT,
            "this session already has an open GET stream; close it before opening another",
        )
        .into_response();
    };
    let state = Standalone {
        server: ep.server.clone(),
        session_id: session.id().to_string(),
        binding: session_binding(&parts.headers),
        standalone,
        ids: next_stream_ids(),
        tick: keep_alive_timer(ep.options.keep_alive),
        shutdown: ShutdownSignal::of(&parts.extensions),
    };
    sse_frames(state)
}

/// A GET stream: the session's standalone messages plus keep-alives, until the session closes,
/// the client goes away or the server shuts down.
struct Standalone {
    server: Arc<Server>,
    session_id: String,
    binding: Option<String>,
    standalone: StandaloneStream,
    ids: EventIds,
    tick: Interval,
    shutdown: CancellationToken,
}

impl Frames for Standalone {
    async fn next_frame(&mut self) -> Option<Bytes> {
        tokio::select! {
            m = self.standalone.recv() => Some(message_event(Some(&self.ids.next_id()), &m?)),
            _ = self.tick.tick() => {
                // An open stream counts as activity; stop if the session is gone.
                self.server.session(&self.session_id, self.binding.as_deref()).ok()?;
                Some(Bytes::from_static(KEEP_ALIVE))
            }
            _ = self.shutdown.cancelled() => None,
        }
    }
}

async fn handle_delete(State(ep): State<Arc<Endpoint>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    if says_modern(&parts.headers) {
        return not_in_modern("DELETE");
    }
    match existing_session(&ep, &parts) {
        Ok(session) => {
            ep.server.close_session(session.id());
            StatusCode::NO_CONTENT.into_response()
        }
        Err(rejection) => rejection.into_response(),
    }
}
