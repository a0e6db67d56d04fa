//! The request log: every request that reached a provider route (or no route at all), with its
//! headers and body unredacted, so tests can assert what mcplane sent upstream.
//!
//! The log keeps the newest `record_limit` requests (a ring); [`RequestLog::total`] counts all of
//! them. `GET /__mock/requests` renders it as JSON (see [`RecordedRequest::to_json`]).

use super::fault::{Endpoint, Provider};
use bytes::Bytes;
use http::{HeaderMap, Method, Uri};
use serde_json::{Map, Value};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

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
}

impl RecordedRequest {
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
    /// text), `provider`, `endpoint`, `model`, `stream`, `status`, `fault`.
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
