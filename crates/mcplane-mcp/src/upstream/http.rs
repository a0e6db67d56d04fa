//! Streamable HTTP transport (MCP 2025-03-26 and later).
//!
//! Every message is a POST to the MCP endpoint. `send` returns as soon as the response headers
//! arrive; the body (one JSON message or batch, or an SSE stream of messages) is read by a
//! background task that tags everything it yields with the id of the request it answers. The
//! session id the server assigns (`Mcp-Session-Id`) is sent on every later request, and a 404 for
//! it becomes [`UpstreamError::SessionExpired`] so the supervisor starts a new session. After
//! `initialize`, an optional GET stream carries server-initiated messages; it is reopened (with
//! `Last-Event-ID` when the server numbers its events) whenever it drops while the pipe is open.
//!
//! The SSE decoder and a few HTTP helpers here are shared with the legacy SSE transport.

use super::{Incoming, Opened, Pipe, UpstreamError};
use crate::jsonrpc;
use async_trait::async_trait;
use mcplane_config::{Timeouts, Transport, UpstreamConfig};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use url::Url;

/// Largest JSON response body.
pub(super) const MAX_BODY: usize = 16 * 1024 * 1024;
/// Largest error body read for its message.
const REFUSAL_BODY: usize = 64 * 1024;
/// Largest SSE line or event.
const MAX_EVENT: usize = 16 * 1024 * 1024;
/// Incoming messages buffered before readers wait for the connection.
pub(super) const INCOMING_CAPACITY: usize = 256;
const SESSION_HEADER: &str = "mcp-session-id";
pub(super) const VERSION_HEADER: &str = "mcp-protocol-version";
const LAST_EVENT_ID: &str = "last-event-id";
/// How often a POST response stream is resumed without progress before the request fails.
const RESUME_ATTEMPTS: u32 = 5;
/// Delay before resuming a response stream when the server gave no `retry`.
const RESUME_DELAY: Duration = Duration::from_millis(250);
/// GET stream reconnect back-off.
const LISTEN_BACKOFF_MIN: Duration = Duration::from_millis(500);
const LISTEN_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long `close` waits for background tasks.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Opens the transport. Nothing is sent yet: the first POST is `initialize`.
pub async fn open(config: &UpstreamConfig) -> Result<Opened, UpstreamError> {
    let (tx, rx) = mpsc::channel(INCOMING_CAPACITY);
    Ok((session_pipe(config, tx)?, rx))
}

/// A session-based (2025-03-26 … 2025-11-25) pipe that reports what it receives to `tx`; the
/// stateless pipe falls back to one when its server does not speak 2026-07-28.
pub(super) fn session_pipe(
    config: &UpstreamConfig,
    tx: mpsc::Sender<Incoming>,
) -> Result<Box<dyn Pipe>, UpstreamError> {
    let Transport::StreamableHttp { url, headers } = &config.transport else {
        return Err(UpstreamError::Unavailable {
            server: config.name.clone(),
            reason: "not a streamable_http transport".into(),
        });
    };
    let client = build_client(config)?;
    let headers = header_map(&config.name, headers)?;
    let shared = Arc::new(Shared {
        server: config.name.clone(),
        client,
        url: url.clone(),
        headers,
        timeouts: config.timeouts,
        session: Mutex::new(None),
        version: Mutex::new(None),
        tx: Mutex::new(Some(tx)),
        cancel: CancellationToken::new(),
        tasks: TaskTracker::new(),
        listening: AtomicBool::new(false),
        closing: AtomicBool::new(false),
    });
    Ok(Box::new(HttpPipe { shared }))
}

/// Builds the one HTTP client a pipe uses (rustls with ring, keep-alive pool, no redirects).
pub(super) fn build_client(config: &UpstreamConfig) -> Result<Client, UpstreamError> {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    Client::builder()
        .connect_timeout(config.timeouts.connect)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_keepalive(Duration::from_secs(30))
        // Configured headers carry credentials: never follow a redirect elsewhere with them.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| UpstreamError::Unavailable {
            server: config.name.clone(),
            reason: format!("cannot build the HTTP client: {}", describe(&e)),
        })
}

/// The configured headers, values marked sensitive. Errors name the header, never its value.
pub(super) fn header_map(
    server: &str,
    headers: &BTreeMap<String, String>,
) -> Result<HeaderMap, UpstreamError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let invalid = |what: &str| UpstreamError::Unavailable {
            server: server.to_string(),
            reason: format!("configured header {name:?} has an invalid {what}"),
        };
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid("name"))?;
        let mut value = HeaderValue::from_str(value).map_err(|_| invalid("value"))?;
        value.set_sensitive(true);
        map.insert(name, value);
    }
    Ok(map)
}

/// A short, non-sensitive description of a request failure (no URL, no body).
pub(super) fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_connect() {
        "cannot connect"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_body() || e.is_decode() {
        "failed reading the response"
    } else {
        "request failed"
    };
    let mut root: &dyn std::error::Error = e;
    while let Some(source) = root.source() {
        root = source;
    }
    let detail = root.to_string();
    if detail.is_empty() || std::ptr::addr_eq(root, e as &dyn std::error::Error) {
        what.to_string()
    } else {
        format!("{what}: {detail}")
    }
}

/// The error for a non-success status (no body contents).
pub(super) fn status_error(server: &str, status: StatusCode) -> UpstreamError {
    UpstreamError::Unavailable {
        server: server.to_string(),
        reason: format!("the server answered HTTP {status}"),
    }
}

/// The error for a non-success answer, with the message of the JSON-RPC error its body carries
/// if any (a modern-only server names the versions it speaks that way), shortened.
pub(super) async fn refusal(server: &str, resp: Response) -> UpstreamError {
    let status = resp.status();
    let said = read_bounded(resp, REFUSAL_BODY)
        .await
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v.get("error")?.get("message")?.as_str().map(str::to_string));
    match said {
        Some(m) => {
            let m: String = m.chars().take(200).collect();
            UpstreamError::Unavailable {
                server: server.to_string(),
                reason: format!("the server answered HTTP {status}: {m}"),
            }
        }
        None => status_error(server, status),
    }
}

/// What a message is, for errors: its method, or "a response".
fn method_of(message: &Value) -> &str {
    message
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or("a response")
}

/// POSTs one JSON-RPC message (`rb` says where, with which headers) within the timeout its
/// method gets (`initialize` or call); stops early when `cancel` fires.
pub(super) async fn post_message(
    server: &str,
    rb: RequestBuilder,
    message: &Value,
    timeouts: &Timeouts,
    cancel: &CancellationToken,
) -> Result<Response, UpstreamError> {
    let unavailable = |reason: String| UpstreamError::Unavailable {
        server: server.to_string(),
        reason,
    };
    let method = method_of(message);
    let limit = if method == "initialize" {
        timeouts.initialize
    } else {
        timeouts.call
    };
    let body = serde_json::to_vec(message).map_err(|e| UpstreamError::Protocol {
        server: server.to_string(),
        reason: format!("cannot serialize a message: {e}"),
    })?;
    let post = rb
        .header(CONTENT_TYPE, "application/json")
        .body(body)
        .send();
    tokio::select! {
        r = tokio::time::timeout(limit, post) => match r {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(unavailable(describe(&e))),
            Err(_) => Err(UpstreamError::Timeout {
                server: server.to_string(),
                what: method.to_string(),
                secs: limit.as_secs_f64(),
            }),
        },
        _ = cancel.cancelled() => Err(unavailable("connection closed".into())),
    }
}

/// What a response body holds, by its content type.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum BodyKind {
    Json,
    EventStream,
    Other(String),
}

pub(super) fn body_kind(resp: &Response) -> BodyKind {
    let ct = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" || essence.ends_with("+json") {
        BodyKind::Json
    } else if essence == "text/event-stream" {
        BodyKind::EventStream
    } else {
        BodyKind::Other(essence)
    }
}

/// Parses one message or a batch from JSON text.
pub(super) fn parse_messages(text: &[u8]) -> Result<Vec<Value>, String> {
    match serde_json::from_slice::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(vec![v]),
        Ok(Value::Array(items)) if items.iter().all(Value::is_object) => Ok(items),
        Ok(_) => Err("not a JSON-RPC message or batch".into()),
        Err(e) => Err(format!("invalid JSON ({e})")),
    }
}

struct Shared {
    server: String,
    client: Client,
    url: Url,
    headers: HeaderMap,
    timeouts: Timeouts,
    session: Mutex<Option<HeaderValue>>,
    version: Mutex<Option<HeaderValue>>,
    /// The pipe's own sender; background tasks hold clones. Taken on close, so the receiver ends
    /// once the tasks have stopped.
    tx: Mutex<Option<mpsc::Sender<Incoming>>>,
    cancel: CancellationToken,
    tasks: TaskTracker,
    listening: AtomicBool,
    closing: AtomicBool,
}

enum Pumped {
    /// The stream ended (cleanly, or with the error given).
    Ended(Option<String>),
    /// The pipe is closing or nobody reads the messages any more.
    Stop,
}

impl Shared {
    fn unavailable(&self, reason: impl Into<String>) -> UpstreamError {
        UpstreamError::Unavailable {
            server: self.server.clone(),
            reason: reason.into(),
        }
    }

    fn sender(&self) -> Option<mpsc::Sender<Incoming>> {
        self.tx.lock().ok()?.clone()
    }

    fn session(&self) -> Option<HeaderValue> {
        self.session.lock().ok()?.clone()
    }

    /// A request to the MCP endpoint with the configured headers, the session id and the
    /// negotiated version. Also says whether a session id was attached.
    fn request(&self, method: Method) -> (RequestBuilder, bool) {
        let mut rb = self
            .client
            .request(method, self.url.clone())
            .headers(self.headers.clone());
        let session = self.session();
        let with_session = session.is_some();
        if let Some(session) = session {
            rb = rb.header(SESSION_HEADER, session);
        }
        if let Some(version) = self.version.lock().ok().and_then(|v| v.clone()) {
            rb = rb.header(VERSION_HEADER, version);
        }
        (rb, with_session)
    }

    /// Remembers the session id a response carries (visible ASCII only, per the spec).
    fn capture_session(&self, resp: &Response) {
        let Some(value) = resp.headers().get(SESSION_HEADER) else {
            return;
        };
        let bytes = value.as_bytes();
        if bytes.is_empty() || !bytes.iter().all(|b| (0x21..=0x7e).contains(b)) {
            tracing::warn!(server = %self.server, "upstream sent an invalid Mcp-Session-Id; ignored");
            return;
        }
        let mut value = value.clone();
        value.set_sensitive(true);
        if let Ok(mut session) = self.session.lock() {
            *session = Some(value);
        }
    }

    /// An error response for `id`, so a caller learns at once that its answer will not come.
    fn failed(&self, id: u64, reason: &str) -> Incoming {
        Incoming {
            message: json!({
                "jsonrpc": "2.0",
                "id": id,
                "error": {
                    "code": jsonrpc::UPSTREAM_UNAVAILABLE,
                    "message": format!("upstream {} {reason}", self.server),
                }
            }),
            related_to: Some(id),
        }
    }

    /// Opens (or resumes) an SSE stream with GET.
    async fn get_stream(&self, last_event_id: Option<&str>) -> Result<(Response, bool), String> {
        let (mut rb, with_session) = self.request(Method::GET);
        rb = rb.header(ACCEPT, "text/event-stream");
        if let Some(id) = last_event_id
            && let Ok(value) = HeaderValue::from_str(id)
        {
            rb = rb.header(LAST_EVENT_ID, value);
        }
        match tokio::time::timeout(self.timeouts.call, rb.send()).await {
            Ok(Ok(resp)) => {
                self.capture_session(&resp);
                Ok((resp, with_session))
            }
            Ok(Err(e)) => Err(describe(&e)),
            Err(_) => Err("timed out waiting for the response headers".into()),
        }
    }

    /// Forwards every message of an SSE stream to `tx`, tagged `related`, until it ends.
    /// `answered` becomes true when the response to `related` has passed by.
    async fn pump(
        &self,
        reader: &mut SseReader,
        tx: &mpsc::Sender<Incoming>,
        related: Option<u64>,
        answered: &mut bool,
    ) -> Pumped {
        loop {
            let event = tokio::select! {
                e = reader.next() => e,
                _ = self.cancel.cancelled() => return Pumped::Stop,
            };
            let event = match event {
                Ok(Some(event)) => event,
                Ok(None) => return Pumped::Ended(None),
                Err(e) => return Pumped::Ended(Some(e)),
            };
            if !(event.event.is_empty() || event.event == "message") || event.data.is_empty() {
                continue;
            }
            let messages = match parse_messages(event.data.as_bytes()) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(server = %self.server, error = %e, "upstream sent an SSE event that is not a JSON-RPC message; skipped");
                    continue;
                }
            };
            for message in messages {
                if let Some(id) = related
                    && message.get("id").and_then(Value::as_u64) == Some(id)
                    && (message.get("result").is_some() || message.get("error").is_some())
                {
                    *answered = true;
                }
                let incoming = Incoming {
                    message,
                    related_to: related,
                };
                if tx.send(incoming).await.is_err() {
                    return Pumped::Stop;
                }
            }
        }
    }

    /// Sleeps unless the pipe closes first (then false).
    async fn pause(&self, delay: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = self.cancel.cancelled() => false,
        }
    }
}

/// Reads a JSON response body and forwards its messages.
async fn read_json(
    shared: Arc<Shared>,
    resp: Response,
    tx: mpsc::Sender<Incoming>,
    request_id: Option<u64>,
) {
    let body = tokio::select! {
        b = read_bounded(resp, MAX_BODY) => b,
        _ = shared.cancel.cancelled() => return,
    };
    let messages = body.and_then(|b| {
        if b.trim_ascii().is_empty() {
            Ok(Vec::new())
        } else {
            parse_messages(&b)
        }
    });
    match messages {
        Ok(messages) => {
            let answered = messages
                .iter()
                .any(|m| m.get("id").and_then(Value::as_u64) == request_id && request_id.is_some());
            for message in messages {
                let incoming = Incoming {
                    message,
                    related_to: request_id,
                };
                if tx.send(incoming).await.is_err() {
                    return;
                }
            }
            if let Some(id) = request_id
                && !answered
            {
                let _ = tx
                    .send(shared.failed(id, "answered without a response to the request"))
                    .await;
            }
        }
        Err(e) => {
            tracing::warn!(server = %shared.server, error = %e, "upstream sent an invalid JSON response body");
            if let Some(id) = request_id {
                let _ = tx
                    .send(shared.failed(id, &format!("sent an invalid response body: {e}")))
                    .await;
            }
        }
    }
}

/// The body, at most `max` bytes.
pub(super) async fn read_bounded(mut resp: Response, max: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > max {
                    return Err(format!("body exceeds {max} bytes"));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(describe(&e)),
        }
    }
}

/// Reads the SSE stream a POST answered with; resumes it with GET + `Last-Event-ID` if it drops
/// before the response; fails the request if it cannot.
async fn read_post_stream(
    shared: Arc<Shared>,
    resp: Response,
    tx: mpsc::Sender<Incoming>,
    request_id: Option<u64>,
) {
    let mut reader = SseReader::new(resp);
    let mut answered = request_id.is_none();
    let mut attempts = 0;
    loop {
        let why = match shared
            .pump(&mut reader, &tx, request_id, &mut answered)
            .await
        {
            Pumped::Stop => return,
            Pumped::Ended(why) => why,
        };
        let Some(id) = request_id.filter(|_| !answered) else {
            return;
        };
        if reader.received_any() {
            attempts = 0;
        }
        attempts += 1;
        let last = reader.decoder.last_event_id.clone();
        let Some(last) = last.filter(|_| attempts <= RESUME_ATTEMPTS) else {
            let reason = match why {
                Some(e) => format!("response stream failed before the response ({e})"),
                None => "closed the response stream before the response".to_string(),
            };
            let _ = tx.send(shared.failed(id, &reason)).await;
            return;
        };
        let delay = reader.decoder.retry.unwrap_or(RESUME_DELAY);
        if !shared.pause(delay).await {
            return;
        }
        tracing::debug!(server = %shared.server, attempt = attempts, "resuming an upstream response stream");
        match shared.get_stream(Some(&last)).await {
            Ok((resp, _))
                if resp.status().is_success() && body_kind(&resp) == BodyKind::EventStream =>
            {
                let mut next = SseReader::new(resp);
                next.decoder.last_event_id = Some(last);
                next.decoder.retry = reader.decoder.retry;
                reader = next;
            }
            Ok((resp, _)) => {
                // Resuming is not offered; the next round fails the request (or tries again).
                tracing::debug!(server = %shared.server, status = %resp.status(), "upstream refused to resume a response stream");
                attempts = RESUME_ATTEMPTS;
                reader.reset_received();
            }
            Err(e) => {
                tracing::debug!(server = %shared.server, error = %e, "cannot resume an upstream response stream");
                reader.reset_received();
            }
        }
    }
}

/// The GET stream for server-initiated messages, reopened while the pipe is open.
async fn listen(shared: Arc<Shared>, tx: mpsc::Sender<Incoming>) {
    let mut backoff = LISTEN_BACKOFF_MIN;
    let mut last_id: Option<String> = None;
    loop {
        let opened = tokio::select! {
            r = shared.get_stream(last_id.as_deref()) => r,
            _ = shared.cancel.cancelled() => return,
        };
        let delay = match opened {
            Ok((resp, with_session)) => {
                let status = resp.status();
                if status == StatusCode::METHOD_NOT_ALLOWED {
                    tracing::debug!(server = %shared.server, "upstream offers no GET stream");
                    return;
                }
                if status == StatusCode::NOT_FOUND && with_session {
                    tracing::debug!(server = %shared.server, "upstream session ended; GET stream stopped");
                    return;
                }
                if status.is_client_error()
                    && status != StatusCode::REQUEST_TIMEOUT
                    && status != StatusCode::TOO_MANY_REQUESTS
                {
                    tracing::info!(server = %shared.server, %status, "upstream refused the GET stream; not listening for server-initiated messages");
                    return;
                }
                if !status.is_success() {
                    tracing::debug!(server = %shared.server, %status, "upstream GET stream failed; retrying");
                    backoff
                } else if body_kind(&resp) != BodyKind::EventStream {
                    tracing::info!(server = %shared.server, "upstream answered GET without an event stream; not listening for server-initiated messages");
                    return;
                } else {
                    let mut reader = SseReader::new(resp);
                    reader.decoder.last_event_id = last_id.clone();
                    let mut answered = true;
                    match shared.pump(&mut reader, &tx, None, &mut answered).await {
                        Pumped::Stop => return,
                        Pumped::Ended(why) => {
                            tracing::debug!(server = %shared.server, error = ?why, "upstream GET stream ended; reopening");
                        }
                    }
                    last_id = reader.decoder.last_event_id.clone();
                    if reader.received_any() {
                        backoff = LISTEN_BACKOFF_MIN;
                    }
                    reader.decoder.retry.unwrap_or(backoff)
                }
            }
            Err(e) => {
                tracing::debug!(server = %shared.server, error = %e, "cannot open the upstream GET stream; retrying");
                backoff
            }
        };
        if !shared.pause(delay).await {
            return;
        }
        backoff = (backoff * 2).min(LISTEN_BACKOFF_MAX);
    }
}

struct HttpPipe {
    shared: Arc<Shared>,
}

#[async_trait]
impl Pipe for HttpPipe {
    async fn send(&self, message: Value, request_id: Option<u64>) -> Result<(), UpstreamError> {
        let s = &self.shared;
        let Some(tx) = s.sender() else {
            return Err(s.unavailable("connection closed"));
        };
        let (rb, with_session) = s.request(Method::POST);
        let rb = rb.header(ACCEPT, "application/json, text/event-stream");
        let resp = post_message(&s.server, rb, &message, &s.timeouts, &s.cancel).await?;
        s.capture_session(&resp);
        let status = resp.status();
        if status == StatusCode::NOT_FOUND && with_session {
            return Err(UpstreamError::SessionExpired {
                server: s.server.clone(),
            });
        }
        if !status.is_success() {
            return Err(refusal(&s.server, resp).await);
        }
        if status == StatusCode::ACCEPTED || status == StatusCode::NO_CONTENT {
            return Ok(());
        }
        match body_kind(&resp) {
            BodyKind::Json => {
                s.tasks.spawn(read_json(s.clone(), resp, tx, request_id));
            }
            BodyKind::EventStream => {
                s.tasks
                    .spawn(read_post_stream(s.clone(), resp, tx, request_id));
            }
            BodyKind::Other(ct) => {
                if request_id.is_some() {
                    return Err(UpstreamError::Protocol {
                        server: s.server.clone(),
                        reason: format!(
                            "answered {} with content type {ct:?}; expected application/json or text/event-stream",
                            method_of(&message)
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    fn negotiated(&self, protocol_version: &str) {
        let s = &self.shared;
        if let (Ok(value), Ok(mut version)) =
            (HeaderValue::from_str(protocol_version), s.version.lock())
        {
            *version = Some(value);
        }
        start_once(&s.listening, &s.tasks, s.sender(), |tx| {
            listen(s.clone(), tx)
        });
    }

    async fn close(&self) {
        let s = &self.shared;
        if s.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        s.cancel.cancel();
        if let Ok(mut tx) = s.tx.lock() {
            tx.take();
        }
        let (rb, with_session) = s.request(Method::DELETE);
        if with_session {
            // Ending the session is a courtesy: errors and 405 are fine.
            let _ = tokio::time::timeout(s.timeouts.connect, rb.send()).await;
        }
        drain(&s.tasks).await;
    }
}

/// Spawns a pipe's long-lived stream (`task`, given the pipe's sender) the first time asked,
/// when there is a runtime and the pipe is open.
pub(super) fn start_once<F>(
    started: &AtomicBool,
    tasks: &TaskTracker,
    tx: Option<mpsc::Sender<Incoming>>,
    task: impl FnOnce(mpsc::Sender<Incoming>) -> F,
) where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    if started.swap(true, Ordering::AcqRel) || tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    if let Some(tx) = tx {
        tasks.spawn(task(tx));
    }
}

/// Lets a closing pipe's background tasks finish, for a moment at most.
pub(super) async fn drain(tasks: &TaskTracker) {
    tasks.close();
    let _ = tokio::time::timeout(CLOSE_WAIT, tasks.wait()).await;
}

impl Drop for HttpPipe {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
        if let Ok(mut tx) = self.shared.tx.lock() {
            tx.take();
        }
    }
}

/// One dispatched SSE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SseEvent {
    /// The `event` field (empty when not given, which means `message`).
    pub event: String,
    /// The `data` lines joined with `\n`.
    pub data: String,
}

/// An incremental `text/event-stream` decoder (WHATWG rules) with bounded lines and events.
#[derive(Debug, Default)]
pub(super) struct SseDecoder {
    line: Vec<u8>,
    /// The previous chunk ended with `\r`: a leading `\n` belongs to it.
    skip_lf: bool,
    started: bool,
    data: String,
    event: String,
    /// The last event id seen (for `Last-Event-ID`).
    pub last_event_id: Option<String>,
    /// The reconnection time the server asked for.
    pub retry: Option<Duration>,
}

impl SseDecoder {
    /// Decodes a chunk, appending complete events to `out`.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut VecDeque<SseEvent>) -> Result<(), String> {
        if !self.started && !bytes.is_empty() {
            self.started = true;
            if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
                bytes = rest;
            }
        }
        while !bytes.is_empty() {
            if self.skip_lf {
                self.skip_lf = false;
                if bytes[0] == b'\n' {
                    bytes = &bytes[1..];
                    continue;
                }
            }
            match bytes.iter().position(|b| *b == b'\n' || *b == b'\r') {
                Some(i) => {
                    self.push(&bytes[..i])?;
                    self.skip_lf = bytes[i] == b'\r';
                    bytes = &bytes[i + 1..];
                    let line = std::mem::take(&mut self.line);
                    self.line_done(&line, out)?;
                }
                None => {
                    self.push(bytes)?;
                    break;
                }
            }
        }
        Ok(())
    }

    fn push(&mut self, part: &[u8]) -> Result<(), String> {
        if self.line.len() + part.len() > MAX_EVENT {
            return Err(format!("an SSE line exceeds {MAX_EVENT} bytes"));
        }
        self.line.extend_from_slice(part);
        Ok(())
    }

    fn line_done(&mut self, line: &[u8], out: &mut VecDeque<SseEvent>) -> Result<(), String> {
        if line.is_empty() {
            if !self.data.is_empty() {
                let mut data = std::mem::take(&mut self.data);
                data.pop(); // the '\n' after the last data line
                out.push_back(SseEvent {
                    event: std::mem::take(&mut self.event),
                    data,
                });
            }
            self.event.clear();
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => {
                if self.data.len() + value.len() + 1 > MAX_EVENT {
                    return Err(format!("an SSE event exceeds {MAX_EVENT} bytes"));
                }
                self.data.push_str(value);
                self.data.push('\n');
            }
            "event" => self.event = value.to_string(),
            "id" if !value.contains('\0') => self.last_event_id = Some(value.to_string()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(ms) = value.parse::<u64>() {
                    self.retry = Some(Duration::from_millis(ms));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Events from a response body.
pub(super) struct SseReader {
    resp: Response,
    pub decoder: SseDecoder,
    queue: VecDeque<SseEvent>,
    received: bool,
}

impl SseReader {
    pub fn new(resp: Response) -> Self {
        SseReader {
            resp,
            decoder: SseDecoder::default(),
            queue: VecDeque::new(),
            received: false,
        }
    }

    /// The next event, `None` when the stream ends.
    pub async fn next(&mut self) -> Result<Option<SseEvent>, String> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                self.received = true;
                return Ok(Some(event));
            }
            match self.resp.chunk().await {
                Ok(Some(chunk)) => self.decoder.feed(&chunk, &mut self.queue)?,
                Ok(None) => return Ok(None),
                Err(e) => return Err(describe(&e)),
            }
        }
    }

    /// Whether any event has been read since creation or the last reset.
    pub fn received_any(&self) -> bool {
        self.received
    }

    fn reset_received(&mut self) {
        self.received = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(chunks: &[&[u8]]) -> (Vec<SseEvent>, SseDecoder) {
        let mut d = SseDecoder::default();
        let mut out = VecDeque::new();
        for c in chunks {
            d.feed(c, &mut out).unwrap();
        }
        (out.into_iter().collect(), d)
    }

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
        }
    }

    #[test]
    fn decodes_events_across_chunks_and_line_endings() {
        let (events, d) = decode(&[
            b"\xEF\xBB\xBFid: 1\ndata: {\"a\"",
            b":1}\r",
            b"\n\r\n: comment\r\nevent: endpoint\rdata: /messages?x=1\r\r",
            b"data: a\ndata:b\nretry: 1500\nid: 7\n\n",
            b"data: unfinished",
        ]);
        assert_eq!(
            events,
            vec![
                ev("", "{\"a\":1}"),
                ev("endpoint", "/messages?x=1"),
                ev("", "a\nb")
            ]
        );
        assert_eq!(d.last_event_id.as_deref(), Some("7"));
        assert_eq!(d.retry, Some(Duration::from_millis(1500)));
    }

    #[test]
    fn priming_event_sets_the_id_and_has_empty_data() {
        let (events, d) = decode(&[b"id: abc\ndata:\n\nevent: x\n\n"]);
        assert_eq!(events, vec![ev("", "")]);
        assert_eq!(d.last_event_id.as_deref(), Some("abc"));
    }

    #[test]
    fn over_long_lines_are_an_error() {
        let mut d = SseDecoder::default();
        let mut out = VecDeque::new();
        let big = vec![b'x'; 1024 * 1024];
        let mut result = Ok(());
        for _ in 0..17 {
            result = d.feed(&big, &mut out);
            if result.is_err() {
                break;
            }
        }
        assert!(result.is_err());
        assert!(d.line.len() <= MAX_EVENT);
    }

    #[test]
    fn messages_parse_singly_or_as_batches() {
        assert_eq!(parse_messages(br#"{"a":1}"#).unwrap().len(), 1);
        assert_eq!(parse_messages(br#"[{"a":1},{"b":2}]"#).unwrap().len(), 2);
        assert!(parse_messages(b"[1]").is_err());
        assert!(parse_messages(b"nope").is_err());
    }

    #[test]
    fn header_errors_do_not_leak_values() {
        let mut h = BTreeMap::new();
        h.insert("Authorization".to_string(), "Bearer sec\nret".to_string());
        let e = header_map("s", &h).unwrap_err().to_string();
        assert!(e.contains("Authorization"), "{e}");
        assert!(!e.contains("sec"), "{e}");
    }
}
