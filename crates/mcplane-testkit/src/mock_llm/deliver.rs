//! From a planned call to the HTTP response: pick the fault, record the request, then send the
//! rendered answer with the fault's effects (latency, hang, status, invalid JSON, and for
//! streams first-token delay, pacing, malformed events, truncation, error events, resets).

use super::fault::{Endpoint, Fault, Provider, Selector};
use super::record::RecordedRequest;
use super::server::Shared;
use super::{anthropic, gemini, openai};
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures::{StreamExt as _, stream};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::request::Parts;
use http::{HeaderName, HeaderValue, StatusCode};
use std::io;
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
        });
    }
    let rendered = match call.outcome {
        Outcome::Reject(response) => return response,
        Outcome::Answer(rendered) => rendered,
    };
    let provider = call.provider.unwrap_or(Provider::OpenAi);
    let fault = fault.map(|(_, f)| f);
    let mut response = deliver(shared, provider, seq, fault.as_ref(), rendered).await;
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
) -> Response {
    let cancel = &shared.cancel;
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
                return json_response(Body::from(body));
            };
            if let Some(ms) = f.first_token_delay_ms
                && !sleep(cancel, Duration::from_millis(ms)).await
            {
                return shutting_down();
            }
            let half = body.slice(..body.len() / 2);
            if f.drop_after_events.is_some() {
                let reset = stream::once(async {
                    flush_pause().await;
                    Err(reset())
                });
                json_response(Body::from_stream(
                    stream::iter([io::Result::Ok(half)]).chain(reset),
                ))
            } else if f.truncate || f.truncate_after_events.is_some() || f.malformed_event.is_some()
            {
                json_response(Body::from_stream(stream::iter([io::Result::Ok(half)])))
            } else {
                json_response(Body::from(body))
            }
        }
        Rendered::Stream(es) => {
            let content_type = match es.framing {
                Framing::GeminiArray => "application/json; charset=UTF-8",
                Framing::GeminiSse => "text/event-stream",
                Framing::OpenAi | Framing::Anthropic => "text/event-stream; charset=utf-8",
            };
            let body = stream_body(shared, es, fault);
            let mut response = Response::new(body);
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
    }
}

fn stream_body(shared: &Shared, es: EventStream, fault: Option<&Fault>) -> Body {
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
        return Body::from_stream(stream::iter([io::Result::Ok(all.freeze())]));
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
    Body::from_stream(stream::unfold(state, |mut st| async move {
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
        Some((Ok(next), st))
    }))
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
