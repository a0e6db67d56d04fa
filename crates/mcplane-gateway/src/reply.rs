//! Building HTTP responses for the MCP transports: JSON bodies, JSON-RPC error bodies, and
//! Server-Sent Events framing (events, keep-alive comments, the streaming response itself).

use axum::body::Body;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use mcplane_mcp::jsonrpc::{self, RpcError};
use serde_json::Value;
use std::convert::Infallible;
use std::time::Duration;
use tokio::time::{Instant, Interval, MissedTickBehavior};

/// An SSE comment line that keeps intermediaries from timing out an idle stream.
pub(crate) const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// A JSON body with `status`.
pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response {
    // Serializing a `Value` cannot fail (its keys are strings).
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        bytes,
    )
        .into_response()
}

/// A JSON-RPC error response body (id null) with an HTTP status.
pub(crate) fn rpc_error(status: StatusCode, error: RpcError) -> Response {
    rpc_error_with_id(status, Value::Null, &error)
}

/// A JSON-RPC error response body echoing `id` (null when unknown).
pub(crate) fn rpc_error_with_id(status: StatusCode, id: Value, error: &RpcError) -> Response {
    json_response(status, &jsonrpc::error_value(id, error))
}

/// A refused request: the HTTP status and the JSON-RPC error (id null) to send as its body.
#[derive(Debug)]
pub(crate) struct Rejection {
    pub(crate) status: StatusCode,
    pub(crate) error: RpcError,
}

impl Rejection {
    /// A rejection with `status` and an Invalid Request error saying `message`.
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Rejection {
        Rejection {
            status,
            error: RpcError::invalid_request(message),
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        rpc_error(self.status, self.error)
    }
}

/// `202 Accepted` with an empty body.
pub(crate) fn accepted() -> Response {
    StatusCode::ACCEPTED.into_response()
}

/// One SSE event. `data` may span lines (each becomes its own `data:` field).
pub(crate) fn sse_event(id: Option<&str>, event: Option<&str>, data: &str) -> Bytes {
    let mut out = String::with_capacity(data.len() + 48);
    if let Some(id) = id {
        out.push_str("id: ");
        out.push_str(id);
        out.push('\n');
    }
    if let Some(event) = event {
        out.push_str("event: ");
        out.push_str(event);
        out.push('\n');
    }
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

/// A JSON-RPC message as an SSE `message` event.
pub(crate) fn message_event(id: Option<&str>, message: &Value) -> Bytes {
    sse_event(id, Some("message"), &message.to_string())
}

/// Event ids unique within a process: `<stream>-<sequence>`.
pub(crate) struct EventIds {
    stream: u64,
    next: u64,
}

impl EventIds {
    /// Ids for stream number `stream`.
    pub(crate) fn new(stream: u64) -> EventIds {
        EventIds { stream, next: 0 }
    }

    /// The next id.
    pub(crate) fn next_id(&mut self) -> String {
        self.next += 1;
        format!("{}-{}", self.stream, self.next)
    }
}

/// A ticker for keep-alive comments whose first tick is one `period` from now.
pub(crate) fn keep_alive_timer(period: Duration) -> Interval {
    let period = period.max(Duration::from_millis(10));
    let mut tick = tokio::time::interval_at(Instant::now() + period, period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick
}

/// A `text/event-stream` response streaming `frames`.
pub(crate) fn sse_response(frames: impl Stream<Item = Bytes> + Send + 'static) -> Response {
    let body = Body::from_stream(frames.map(Ok::<_, Infallible>));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// The state of a long-lived SSE stream: each frame in turn, `None` to end the stream.
pub(crate) trait Frames: Send + 'static {
    fn next_frame(&mut self) -> impl Future<Output = Option<Bytes>> + Send;
}

/// A `text/event-stream` response streaming the frames of `state` until it ends.
pub(crate) fn sse_frames(state: impl Frames) -> Response {
    sse_response(futures::stream::unfold(state, |mut st| async move {
        let frame = st.next_frame().await?;
        Some((frame, st))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_framing() {
        let e = sse_event(Some("1-1"), Some("message"), "{\"a\":1}");
        assert_eq!(&e[..], b"id: 1-1\nevent: message\ndata: {\"a\":1}\n\n");
        let multi = sse_event(None, None, "a\nb");
        assert_eq!(&multi[..], b"data: a\ndata: b\n\n");
        let mut ids = EventIds::new(7);
        assert_eq!(ids.next_id(), "7-1");
        assert_eq!(ids.next_id(), "7-2");
    }
}
