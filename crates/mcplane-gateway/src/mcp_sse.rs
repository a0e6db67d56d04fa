//! The legacy HTTP+SSE transport (protocol 2024-11-05) in front of a [`Server`], for clients that
//! predate Streamable HTTP.
//!
//! `GET /sse` opens a session and an SSE stream whose first event is `endpoint`, carrying the
//! URL to post to (`<mount prefix>/messages?sessionId=<id>`). Each `POST /messages?sessionId=…`
//! carries one JSON-RPC message (or a batch) and is answered `202 Accepted`; everything the
//! server sends to that session — replies to its requests, their interim messages, and
//! standalone messages — goes out on the SSE stream as `message` events. The session lives as
//! long as the stream: when the client disconnects (or the server shuts down) it is closed.

use crate::governance::Caller;
use crate::http::ShutdownSignal;
use crate::reply::{
    Frames, KEEP_ALIVE, Rejection, accepted, keep_alive_timer, message_event, rpc_error,
    rpc_error_with_id, sse_event, sse_frames,
};
use crate::request::{
    batches_allowed, check_content_length, read_body, require_accept, require_json_content,
    session_binding, unknown_session,
};
use axum::Router;
use axum::extract::{OriginalUri, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::SelectAll;
use mcplane_mcp::jsonrpc::{self, Body, RpcError};
use mcplane_mcp::server::{Dispatch, Server, StandaloneStream};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Interval;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

/// Reply channels queued for a stream before a POST waits.
const OUTLET_CAPACITY: usize = 64;

/// How the legacy endpoints are mounted and limited.
#[derive(Debug, Clone)]
pub struct LegacySseOptions {
    /// The SSE path. Default `/sse`.
    pub sse_path: String,
    /// The POST path announced in the `endpoint` event. Default `/messages`.
    pub messages_path: String,
    /// Largest accepted POST body in bytes (413 above). Default 4 MiB.
    pub max_body_bytes: usize,
    /// Interval between SSE keep-alive comments. Default 15 s.
    pub keep_alive: Duration,
}

impl Default for LegacySseOptions {
    fn default() -> Self {
        LegacySseOptions {
            sse_path: "/sse".into(),
            messages_path: "/messages".into(),
            max_body_bytes: 4 * 1024 * 1024,
            keep_alive: Duration::from_secs(15),
        }
    }
}

/// Where a POST hands its reply channels to the session's SSE stream.
type Outlet = mpsc::Sender<mpsc::Receiver<Value>>;

struct Legacy {
    server: Arc<Server>,
    options: LegacySseOptions,
    outlets: Mutex<HashMap<String, Outlet>>,
}

impl Legacy {
    fn outlet(&self, session_id: &str) -> Option<Outlet> {
        self.outlets.lock().ok()?.get(session_id).cloned()
    }
}

/// The legacy router for `server`: `GET options.sse_path` and `POST options.messages_path`.
pub fn router(server: Arc<Server>, options: LegacySseOptions) -> Router {
    let sse_path = options.sse_path.clone();
    let messages_path = options.messages_path.clone();
    let legacy = Arc::new(Legacy {
        server,
        options,
        outlets: Mutex::new(HashMap::new()),
    });
    Router::new()
        .route(&sse_path, get(handle_sse))
        .route(&messages_path, post(handle_message))
        .with_state(legacy)
}

/// The path this router is mounted under (`/a/b` when `/a/b/sse` reached the `/sse` route).
fn mount_prefix(parts: &axum::http::request::Parts) -> String {
    let here = parts.uri.path();
    match parts.extensions.get::<OriginalUri>() {
        Some(OriginalUri(original)) => original
            .path()
            .strip_suffix(here)
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_string(),
        None => String::new(),
    }
}

async fn handle_sse(State(legacy): State<Arc<Legacy>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    if let Err(rejection) = require_accept(&parts.headers, &["text/event-stream"]) {
        return rejection.into_response();
    }
    let binding = session_binding(&parts.headers);
    let session = legacy.server.new_session(binding.clone());
    let caller = parts
        .extensions
        .get::<Caller>()
        .cloned()
        .unwrap_or_default();
    session.set_caller(caller.principal, caller.request);
    let Some(standalone) = session.take_standalone() else {
        legacy.server.close_session(session.id());
        return rpc_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            RpcError::internal("could not open the session stream; retry"),
        );
    };
    let (outlet, incoming) = mpsc::channel(OUTLET_CAPACITY);
    if let Ok(mut outlets) = legacy.outlets.lock() {
        outlets.insert(session.id().to_string(), outlet);
    }
    let endpoint = format!(
        "{}{}?sessionId={}",
        mount_prefix(&parts),
        legacy.options.messages_path,
        session.id()
    );
    let state = LegacyStream {
        legacy: legacy.clone(),
        session_id: session.id().to_string(),
        binding,
        endpoint: Some(endpoint),
        standalone,
        replies: SelectAll::new(),
        incoming,
        incoming_open: true,
        tick: keep_alive_timer(legacy.options.keep_alive),
        shutdown: ShutdownSignal::of(&parts.extensions),
    };
    sse_frames(state)
}

/// One legacy session's SSE stream. Dropping it (client gone, stream ended) closes the session.
struct LegacyStream {
    legacy: Arc<Legacy>,
    session_id: String,
    binding: Option<String>,
    endpoint: Option<String>,
    standalone: StandaloneStream,
    replies: SelectAll<ReceiverStream<Value>>,
    incoming: mpsc::Receiver<mpsc::Receiver<Value>>,
    incoming_open: bool,
    tick: Interval,
    shutdown: CancellationToken,
}

enum Next {
    Channel(Option<mpsc::Receiver<Value>>),
    Message(Value),
    Idle,
    Tick,
    End,
}

impl Frames for LegacyStream {
    async fn next_frame(&mut self) -> Option<Bytes> {
        if let Some(endpoint) = self.endpoint.take() {
            return Some(sse_event(None, Some("endpoint"), &endpoint));
        }
        loop {
            let next = tokio::select! {
                c = self.incoming.recv(), if self.incoming_open => Next::Channel(c),
                m = self.replies.next(), if !self.replies.is_empty() => m.map_or(Next::Idle, Next::Message),
                m = self.standalone.recv() => m.map_or(Next::End, Next::Message),
                _ = self.tick.tick() => Next::Tick,
                _ = self.shutdown.cancelled() => Next::End,
            };
            match next {
                Next::Channel(Some(rx)) => self.replies.push(ReceiverStream::new(rx)),
                Next::Channel(None) => self.incoming_open = false,
                Next::Message(v) => return Some(message_event(None, &v)),
                Next::Idle => {}
                Next::Tick => {
                    // The open stream keeps the session alive; stop if it was closed elsewhere.
                    self.legacy
                        .server
                        .session(&self.session_id, self.binding.as_deref())
                        .ok()?;
                    return Some(Bytes::from_static(KEEP_ALIVE));
                }
                Next::End => return None,
            }
        }
    }
}

impl Drop for LegacyStream {
    fn drop(&mut self) {
        if let Ok(mut outlets) = self.legacy.outlets.lock() {
            outlets.remove(&self.session_id);
        }
        self.legacy.server.close_session(&self.session_id);
    }
}

/// A channel already holding `message` and closed, for answers known up front.
fn ready_channel(message: Value) -> mpsc::Receiver<Value> {
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.try_send(message);
    rx
}

async fn handle_message(State(legacy): State<Arc<Legacy>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let session_id = parts.uri.query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "sessionId")
            .map(|(_, v)| v.into_owned())
    });
    let Some(session_id) = session_id else {
        return Rejection::new(
            StatusCode::BAD_REQUEST,
            "missing sessionId query parameter: post to the URL sent in the endpoint event",
        )
        .into_response();
    };
    if let Err(rejection) = check_content_length(headers, legacy.options.max_body_bytes)
        .and_then(|()| require_json_content(headers))
    {
        return rejection.into_response();
    }
    let binding = session_binding(headers);
    let (Ok(session), Some(outlet)) = (
        legacy.server.session(&session_id, binding.as_deref()),
        legacy.outlet(&session_id),
    ) else {
        return unknown_session().into_response();
    };
    let bytes = match read_body(headers, body, legacy.options.max_body_bytes).await {
        Ok(b) => b,
        Err(rejection) => return rejection.into_response(),
    };
    let items = match jsonrpc::parse_body(&bytes) {
        Ok(Body::Single(msg)) => vec![Ok(msg)],
        Ok(Body::Batch(items)) => {
            if let Err(rejection) = batches_allowed(&session) {
                return rejection.into_response();
            }
            items
        }
        Err((id, error)) => return rpc_error_with_id(StatusCode::BAD_REQUEST, id, &error),
    };
    for item in items {
        let channel = match item {
            Ok(msg) => match legacy.server.dispatch(&session, msg).await {
                Dispatch::Accepted => continue,
                Dispatch::Reply(rx) => rx,
            },
            Err((id, error)) => ready_channel(jsonrpc::error_value(id, &error)),
        };
        if outlet.send(channel).await.is_err() {
            return unknown_session().into_response();
        }
    }
    accepted()
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use mcplane_mcp::server::{RequestContext, Service, Session};
    use tower::ServiceExt;

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
    async fn endpoint_event_names_the_mount_prefix_and_drop_closes_the_session() {
        let server = Server::new(Arc::new(Nothing));
        let app = Router::new().nest(
            "/tenant/a",
            router(server.clone(), LegacySseOptions::default()),
        );
        let req = axum::http::Request::get("/tenant/a/sse")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = app.oneshot(req).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut body = response.into_body().into_data_stream();
        let first = body.next().await.unwrap().unwrap();
        let text = std::str::from_utf8(&first).unwrap();
        assert!(
            text.starts_with("event: endpoint\ndata: /tenant/a/messages?sessionId="),
            "{text}"
        );
        assert_eq!(server.session_count(), 1);
        drop(body);
        assert_eq!(server.session_count(), 0);
    }
}
