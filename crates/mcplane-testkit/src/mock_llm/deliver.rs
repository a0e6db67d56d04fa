//! From a planned call to the HTTP response: pick the fault, record the request, then send the
//! rendered answer with the fault's effects (latency, hang, status, invalid JSON, and for
//! streams first-token delay, pacing, malformed events, truncation, error events, resets).

use super::fault::{Endpoint, Fault, Provider, Selector};
use super::record::{Delivery, Progress, RecordedRequest};
use super::server::Shared;
use super::{anthropic, gemini, openai};
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt as _, stream};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::request::Parts;
use http::{HeaderName, HeaderValue, StatusCode};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How stream events are framed; decides the error event and how an event is made malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `data: {json}\n\n` … `data: [DONE]\n\n` (OpenAI, Azure).
    OpenAi,
    /// `event: name\ndata: {json}\n\n` (Anthropic).
    Anthropic,
    /// `data: {json}\r\n\r\n` (Gemini with `alt=sse`).
    GeminiSse,
    /// A JSON array written element by element (Gemini without `alt=sse`).
    GeminiArray,
}

/// A successful answer, rendered in its wire format.
pub(crate) enum Rendered {
    /// A JSON body.
    Json(Bytes),
    /// An event stream.
    Stream(EventStream),
}

/// The events of a stream, each fully framed.
pub(crate) struct EventStream {
    pub events: Vec<Bytes>,
    /// Index of the first terminal event (what `truncate` leaves out).
    pub terminal_from: usize,
    pub framing: Framing,
}

/// What a wire module decided about a request.
pub(crate) struct Call {
    pub provider: Option<Provider>,
    pub endpoint: Option<Endpoint>,
    pub model: Option<String>,
    pub stream: bool,
    pub outcome: Outcome,
}

pub(crate) enum Outcome {
    /// Refused before any fault applies (bad key, bad body): sent as is.
    Reject(Response),
    /// Answered, subject to the fault rules.
    Answer(Rendered),
}

impl Call {
    pub fn reject(provider: Provider, endpoint: Endpoint, response: Response) -> Self {
        Call {
            provider: Some(provider),
            endpoint: Some(endpoint),
            model: None,
            stream: false,
            outcome: Outcome::Reject(response),
        }
    }
}

/// Applies faults, records, and sends.
pub(crate) async fn finish(
    shared: &Shared,
    seq: u64,
    parts: Parts,
    body: Bytes,
    call: Call,
) -> Response {
    let fault = match (&call.outcome, call.provider, call.endpoint) {
        (Outcome::Answer(_), Some(provider), Some(endpoint)) => shared.faults.pick(&Selector {
            provider,
            endpoint,
            model: call.model.as_deref().unwrap_or(""),
            stream: call.stream,
        }),
        _ => None,
    };
    let status = match (&call.outcome, &fault) {
        (Outcome::Reject(r), _) => Some(r.status().as_u16()),
        (Outcome::Answer(_), Some((_, f))) => f.planned_status(),
        (Outcome::Answer(_), None) => Some(200),
    };
    let progress = Arc::new(Progress::default());
    if shared.log.enabled() {
        shared.log.push(RecordedRequest {
            seq,
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            body,
            provider: call.provider,
            endpoint: call.endpoint,
            model: call.model,
            stream: call.stream,
            status,
            fault: fault.as_ref().map(|(i, _)| *i),
            progress: progress.clone(),
        });
    }
    let rendered = match call.outcome {
        Outcome::Reject(response) => {
            progress.set(Delivery::Complete);
            return response;
        }
        Outcome::Answer(rendered) => rendered,
    };
    let provider = call.provider.unwrap_or(Provider::OpenAi);
    let fault = fault.map(|(_, f)| f);
    let mut response = deliver(shared, provider, seq, fault.as_ref(), rendered, progress).await;
    if let Some((name, value)) = request_id_header(provider, seq) {
        response.headers_mut().insert(name, value);
    }
    response
}

async fn deliver(
    shared: &Shared,
    provider: Provider,
    seq: u64,
    fault: Option<&Fault>,
    rendered: Rendered,
    progress: Arc<Progress>,
) -> Response {
    let cancel = &shared.cancel;
    // Until a body takes over the tracking, leaving early (client gone, shutdown) is an abort.
    let mut guard = AbortGuard(Some(progress));
    if let Some(f) = fault {
        if let Some(ms) = f.latency_ms
            && !sleep(cancel, Duration::from_millis(ms)).await
        {
            return shutting_down();
        }
        if f.hang {
            cancel.cancelled().await;
            return shutting_down();
        }
        if let Some(status) = f.status {
            let mut response = error_response(provider, status, f.message.as_deref(), seq);
            let headers = response.headers_mut();
            if let Some(secs) = f.retry_after {
                headers.insert(RETRY_AFTER, HeaderValue::from(secs));
            }
            if let Some(ms) = f.retry_after_ms {
                headers.insert(
                    HeaderName::from_static("retry-after-ms"),
                    HeaderValue::from(ms),
                );
            }
            return response;
        }
        if f.invalid_json {
            return json_response(Body::from(
                &br#"{"id":"mock-invalid","choices":[{"index":0,"#[..],
            ));
        }
    }
    match rendered {
        Rendered::Json(body) => {
            let Some(f) = fault else {
                guard.complete();
                return json_response(Body::from(body));
            };
            if let Some(ms) = f.first_token_delay_ms
                && !sleep(cancel, Duration::from_millis(ms)).await
            {
                return shutting_down();
            }
            let half = body.slice(..body.len() / 2);
            let partial: Option<Pieces> = if f.drop_after_events.is_some() {
                let reset = stream::once(async {
                    flush_pause().await;
                    Err(reset())
                });
                Some(Box::pin(stream::iter([Ok((half, 0))]).chain(reset)))
            } else if f.truncate || f.truncate_after_events.is_some() || f.malformed_event.is_some()
            {
                Some(Box::pin(stream::iter([Ok((half, 0))])))
            } else {
                None
            };
            match (partial, guard.take()) {
                (Some(pieces), Some(progress)) => {
                    json_response(Body::from_stream(Tracked::new(pieces, progress)))
                }
                _ => {
                    guard.complete();
                    json_response(Body::from(body))
                }
            }
        }
        Rendered::Stream(es) => {
            let content_type = match es.framing {
                Framing::GeminiArray => "application/json; charset=UTF-8",
                Framing::GeminiSse => "text/event-stream",
                Framing::OpenAi | Framing::Anthropic => "text/event-stream; charset=utf-8",
            };
            let Some(progress) = guard.take() else {
                return shutting_down();
            };
            let body = Body::from_stream(Tracked::new(stream_body(shared, es, fault), progress));
            let mut response = Response::new(body);
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
    }
}

/// Body pieces with the number of events each carries.
type Pieces = Pin<Box<dyn Stream<Item = io::Result<(Bytes, usize)>> + Send>>;

fn stream_body(shared: &Shared, es: EventStream, fault: Option<&Fault>) -> Pieces {
    let EventStream {
        mut events,
        terminal_from,
        framing,
    } = es;
    let mut first = Duration::ZERO;
    let mut interval = shared.event_interval;
    let mut drop_after = None;
    if let Some(f) = fault {
        if let Some(i) = f.malformed_event
            && let Some(ev) = events.get_mut(i)
        {
            *ev = malformed(ev, framing);
        }
        let mut end = events.len();
        if f.truncate {
            end = end.min(terminal_from);
        }
        if let Some(k) = f.truncate_after_events {
            end = end.min(k);
        }
        events.truncate(end);
        if let Some(k) = f.error_event_after {
            let k = k.min(events.len());
            events.truncate(k);
            events.push(error_event(framing, k == 0));
        }
        first = Duration::from_millis(f.first_token_delay_ms.unwrap_or(0));
        if let Some(ms) = f.event_delay_ms {
            interval = Duration::from_millis(ms);
        }
        drop_after = f.drop_after_events;
    }
    if first.is_zero() && interval.is_zero() && drop_after.is_none() {
        let total = events.iter().map(Bytes::len).sum();
        let mut all = BytesMut::with_capacity(total);
        for ev in &events {
            all.extend_from_slice(ev);
        }
        return Box::pin(stream::iter([Ok((all.freeze(), events.len()))]));
    }
    let state = Pacer {
        events: events.into_iter(),
        sent: 0,
        first,
        interval,
        drop_after,
        cancel: shared.cancel.clone(),
        done: false,
    };
    Box::pin(stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        if st.drop_after == Some(st.sent) {
            st.done = true;
            flush_pause().await;
            return Some((Err(reset()), st));
        }
        let Some(next) = st.events.next() else {
            if st.drop_after.is_some() {
                st.done = true;
                flush_pause().await;
                return Some((Err(reset()), st));
            }
            return None;
        };
        let wait = if st.sent == 0 { st.first } else { st.interval };
        if !wait.is_zero() && !sleep(&st.cancel, wait).await {
            return None;
        }
        st.sent += 1;
        Some((Ok((next, 1)), st))
    }))
}

/// A body that reports its progress to the request's record: events sent, and how it ended
/// (its end, a reset, or dropped unfinished because the client went away).
struct Tracked {
    inner: Pieces,
    progress: Arc<Progress>,
    finished: bool,
}

impl Tracked {
    fn new(inner: Pieces, progress: Arc<Progress>) -> Self {
        Tracked {
            inner,
            progress,
            finished: false,
        }
    }
}

impl Stream for Tracked {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = match self.inner.as_mut().poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(item) => item,
        };
        Poll::Ready(match item {
            Some(Ok((bytes, events))) => {
                self.progress.add_events(events);
                Some(Ok(bytes))
            }
            Some(Err(e)) => {
                self.finished = true;
                self.progress.set(Delivery::Reset);
                Some(Err(e))
            }
            None => {
                if !self.finished {
                    self.finished = true;
                    self.progress.set(Delivery::Complete);
                }
                None
            }
        })
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if !self.finished {
            self.progress.set(Delivery::Aborted);
        }
    }
}

/// Marks the request aborted if dropped while still holding its progress.
struct AbortGuard(Option<Arc<Progress>>);

impl AbortGuard {
    fn complete(&mut self) {
        if let Some(p) = self.0.take() {
            p.set(Delivery::Complete);
        }
    }

    fn take(&mut self) -> Option<Arc<Progress>> {
        self.0.take()
    }
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            p.set(Delivery::Aborted);
        }
    }
}

struct Pacer {
    events: std::vec::IntoIter<Bytes>,
    sent: usize,
    first: Duration,
    interval: Duration,
    drop_after: Option<usize>,
    cancel: CancellationToken,
    done: bool,
}

/// Sleeps for `d`; false when the mock shut down meanwhile.
async fn sleep(cancel: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = cancel.cancelled() => false,
    }
}

/// Lets the server write out what the body produced so far (it flushes while the body is
/// pending), so a reset comes after the events the fault promised.
async fn flush_pause() {
    tokio::time::sleep(Duration::from_millis(10)).await;
}

fn reset() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        "mock: connection dropped mid-response",
    )
}

fn shutting_down() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "mock shutting down").into_response()
}

pub(crate) fn json_response(body: Body) -> Response {
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The provider's error response for `status`.
pub(crate) fn error_response(
    provider: Provider,
    status: u16,
    message: Option<&str>,
    seq: u64,
) -> Response {
    match provider {
        Provider::OpenAi => openai::error_response(status, message, false),
        Provider::Azure => openai::error_response(status, message, true),
        Provider::Anthropic => anthropic::error_response(status, message, seq),
        Provider::Gemini => gemini::error_response(status, message),
    }
}

fn request_id_header(provider: Provider, seq: u64) -> Option<(HeaderName, HeaderValue)> {
    let name = match provider {
        Provider::OpenAi | Provider::Azure => HeaderName::from_static("x-request-id"),
        Provider::Anthropic => HeaderName::from_static("request-id"),
        Provider::Gemini => return None,
    };
    HeaderValue::from_str(&format!("req_mock{seq:016x}"))
        .ok()
        .map(|v| (name, v))
}

/// The provider's in-stream error event.
fn error_event(framing: Framing, first: bool) -> Bytes {
    match framing {
        Framing::OpenAi => Bytes::from_static(
            b"data: {\"error\":{\"message\":\"The server had an error while processing your request. Sorry about that!\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n",
        ),
        Framing::Anthropic => Bytes::from_static(
            b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
        ),
        Framing::GeminiSse => Bytes::from_static(
            b"data: {\"error\":{\"code\":503,\"message\":\"The model is overloaded. Please try again later.\",\"status\":\"UNAVAILABLE\"}}\r\n\r\n",
        ),
        Framing::GeminiArray => Bytes::from(format!(
            "{}{{\"error\":{{\"code\":503,\"message\":\"The model is overloaded. Please try again later.\",\"status\":\"UNAVAILABLE\"}}}}\n]",
            if first { "[" } else { ",\r\n" }
        )),
    }
}

/// The same event with its JSON payload cut in half (framing kept).
fn malformed(event: &Bytes, framing: Framing) -> Bytes {
    let text = String::from_utf8_lossy(event);
    let (head, json, tail) = match framing {
        Framing::GeminiArray => ("", text.as_ref(), ""),
        Framing::OpenAi | Framing::Anthropic | Framing::GeminiSse => {
            let start = text.find("data: ").map_or(0, |p| p + 6);
            let body = text.trim_end_matches(['\r', '\n']);
            let end = body.len().max(start);
            (&text[..start], &text[start..end], &text[end..])
        }
    };
    let mut cut = json.len() / 2;
    while !json.is_char_boundary(cut) {
        cut -= 1;
    }
    Bytes::from(format!("{head}{}{tail}", &json[..cut]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_keeps_framing_and_breaks_json() {
        let ev = Bytes::from_static(b"event: ping\ndata: {\"type\":\"ping\"}\n\n");
        let m = malformed(&ev, Framing::Anthropic);
        assert_eq!(&m[..], b"event: ping\ndata: {\"type\"\n\n");
        let ev = Bytes::from_static(b"data: {\"a\":\"\xc3\xa9\xc3\xa9\"}\r\n\r\n");
        let m = malformed(&ev, Framing::GeminiSse);
        assert!(std::str::from_utf8(&m).is_ok());
        assert!(m.ends_with(b"\r\n\r\n"));
    }
}
