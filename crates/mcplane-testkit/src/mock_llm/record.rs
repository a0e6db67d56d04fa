//! The request log: every request that reached a provider route (or no route at all), with its
//! headers and body unredacted, so tests can assert what mcplane sent upstream.
//!
//! The log keeps the newest `record_limit` requests (a ring); a counter
//! ([`MockHandle::request_count`](super::MockHandle::request_count)) counts all of
//! them. `GET /__mock/requests` renders it as JSON (see [`RecordedRequest::to_json`]).

use super::fault::{Endpoint, Provider};
use bytes::Bytes;
use http::{HeaderMap, Method, Uri};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// One request as the mock received it, and what the mock decided to do with it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Arrival order, from 1.
    pub seq: u64,
    /// HTTP method.
    pub method: Method,
    /// Path and query as received.
    pub uri: Uri,
    /// Every header as received (nothing redacted).
    pub headers: HeaderMap,
    /// The raw body.
    pub body: Bytes,
    /// The wire format of the route, `None` for an unknown route.
    pub provider: Option<Provider>,
    /// The endpoint kind, `None` for an unknown route.
    pub endpoint: Option<Endpoint>,
    /// The requested model (Azure: body `model` or the deployment), when known.
    pub model: Option<String>,
    /// Whether a stream was asked for.
    pub stream: bool,
    /// The response status, `None` when the mock never sends headers (a `hang` fault).
    pub status: Option<u16>,
    /// Index of the fault rule applied, if any.
    pub fault: Option<usize>,
    pub(crate) progress: Arc<Progress>,
}

/// How far the mock got in sending a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Still being sent (a paced stream), or never sent (a `hang` fault).
    Pending,
    /// Sent to its end.
    Complete,
    /// The client went away (or the mock shut down) before the end: what a downstream
    /// disconnect that mcplane propagates looks like from the upstream.
    Aborted,
    /// The mock reset the connection on purpose (a `drop_after_events` fault).
    Reset,
}

/// Shared between a record and the body being sent.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    events: AtomicUsize,
    state: AtomicU8,
}

impl Progress {
    pub fn add_events(&self, n: usize) {
        self.events.fetch_add(n, Ordering::Relaxed);
    }

    pub fn set(&self, d: Delivery) {
        let v = match d {
            Delivery::Pending => 0,
            Delivery::Complete => 1,
            Delivery::Aborted => 2,
            Delivery::Reset => 3,
        };
        self.state.store(v, Ordering::Release);
    }

    fn get(&self) -> Delivery {
        match self.state.load(Ordering::Acquire) {
            1 => Delivery::Complete,
            2 => Delivery::Aborted,
            3 => Delivery::Reset,
            _ => Delivery::Pending,
        }
    }
}

impl RecordedRequest {
    /// How far the response got (updated while a stream is sent).
    pub fn delivery(&self) -> Delivery {
        self.progress.get()
    }

    /// Stream events sent so far (0 for JSON responses).
    pub fn events_sent(&self) -> usize {
        self.progress.events.load(Ordering::Relaxed)
    }

    /// The request path.
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    /// A header's value as text (the first one when repeated).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body parsed as JSON, when it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The JSON form used by `GET /__mock/requests`: `seq`, `method`, `path`, `query`,
    /// `headers` (name → value, repeated values joined by `, `), `body` (parsed JSON, else the
    /// text), `provider`, `endpoint`, `model`, `stream`, `status`, `fault`, `delivery`,
    /// `events_sent`.
    pub fn to_json(&self) -> Value {
        let mut headers = Map::new();
        for (name, value) in &self.headers {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            match headers.get_mut(name.as_str()) {
                Some(Value::String(prev)) => {
                    prev.push_str(", ");
                    prev.push_str(&value);
                }
                _ => {
                    headers.insert(name.as_str().to_owned(), Value::String(value));
                }
            }
        }
        let body = self
            .json()
            .unwrap_or_else(|| Value::String(String::from_utf8_lossy(&self.body).into_owned()));
        serde_json::json!({
            "seq": self.seq,
            "method": self.method.as_str(),
            "path": self.uri.path(),
            "query": self.uri.query(),
            "headers": headers,
            "body": body,
            "provider": self.provider,
            "endpoint": self.endpoint,
            "model": self.model,
            "stream": self.stream,
            "status": self.status,
            "fault": self.fault,
            "delivery": self.delivery(),
            "events_sent": self.events_sent(),
        })
    }
}

/// The bounded log of recent requests plus a total counter.
pub(crate) struct RequestLog {
    limit: usize,
    total: AtomicU64,
    entries: Mutex<VecDeque<RecordedRequest>>,
}

impl RequestLog {
    pub fn new(limit: usize) -> Self {
        RequestLog {
            limit,
            total: AtomicU64::new(0),
            entries: Mutex::new(VecDeque::new()),
        }
    }

    /// The next sequence number (counts the request).
    pub fn next_seq(&self) -> u64 {
        self.total.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Whether pushing is worth building a record for.
    pub fn enabled(&self) -> bool {
        self.limit > 0
    }

    pub fn push(&self, record: RecordedRequest) {
        if self.limit == 0 {
            return;
        }
        let mut entries = self.lock();
        if entries.len() == self.limit {
            entries.pop_front();
        }
        entries.push_back(record);
    }

    /// Recorded requests with `seq > since`, oldest first.
    pub fn since(&self, since: u64) -> Vec<RecordedRequest> {
        self.lock()
            .iter()
            .filter(|r| r.seq > since)
            .cloned()
            .collect()
    }

    /// Forgets every record and resets the counter.
    pub fn clear(&self) {
        let mut entries = self.lock();
        entries.clear();
        self.total.store(0, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<RecordedRequest>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}
