//! Per-request accounting: one [`RequestRecord`] for every model call that reached a front door
//! (errors, client disconnects and mid-stream failures included), handed to a [`RequestSink`]
//! without blocking the response.
//!
//! Tokens come from the provider's usage; when a stream ends without usage (or fails, or the
//! client goes away), the output produced so far is counted with the tokenizer
//! ([`crate::StreamTranslator::final_usage`]) and the record says `usage_source: estimated`.
//! Cost is the registry price applied to those tokens, rounded up to the micro-dollar.
//!
//! Sinks here: [`LogSink`] (a structured `tracing` event, target `mcplane::llm::request`),
//! [`RecentRequests`] (an in-memory ring for status pages and tests) and [`Totals`] (running
//! counters, the metrics hook). [`Sinks`] fans out to several. Writing records to the store
//! (SQLite/PostgreSQL) is a later step: it will be one more `RequestSink` behind a bounded
//! buffer, so the hot path never waits on SQL.

use crate::stream::UsageSource;
use mcplane_types::MicroUsd;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Answered completely.
    Ok,
    /// Refused or failed before any answer (the status says how).
    Error,
    /// A stream began and then failed; the client got a terminal error event.
    StreamError,
    /// The client went away before the answer was complete; the upstream call was cancelled.
    ClientClosed,
}

impl Outcome {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::StreamError => "stream_error",
            Outcome::ClientClosed => "client_closed",
        }
    }
}

/// One model call, as accounted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestRecord {
    /// The request id (`x-request-id`).
    pub request_id: String,
    /// Who called (a placeholder until authentication lands: always `None`).
    pub principal: Option<String>,
    /// The front door: `openai.chat`, `anthropic.messages`, `openai.embeddings`.
    pub front_door: &'static str,
    /// The model or alias asked for.
    pub requested: String,
    /// The registry model that served (or last failed).
    pub model: Option<String>,
    /// The endpoint that served (or last failed).
    pub endpoint: Option<String>,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// HTTP status sent to the client.
    pub status: u16,
    /// How it ended.
    pub outcome: Outcome,
    /// Error message, when there was one.
    pub error: Option<String>,
    /// From arrival to the end of the response, in milliseconds.
    pub latency_ms: u64,
    /// From arrival to the first byte of the answer, in milliseconds.
    pub ttft_ms: Option<u64>,
    /// Input tokens.
    pub prompt_tokens: u64,
    /// Output tokens.
    pub completion_tokens: u64,
    /// Whether the provider reported the tokens or they were counted here.
    pub usage_source: &'static str,
    /// Cost in micro-dollars.
    pub cost_micros: i64,
    /// The route reason.
    pub route_reason: String,
    /// Upstream attempts made (retries and fallbacks included).
    pub attempts: usize,
}

impl RequestRecord {
    /// The cost as money.
    pub fn cost(&self) -> MicroUsd {
        MicroUsd::from_micros(self.cost_micros)
    }
}

/// The name of a usage source in records.
pub fn usage_source_name(s: UsageSource) -> &'static str {
    match s {
        UsageSource::Reported => "reported",
        UsageSource::Estimated => "estimated",
    }
}

/// Where request records go. `record` must not block: it runs on the request path (or when a
/// stream ends or is dropped).
pub trait RequestSink: Send + Sync + std::fmt::Debug {
    /// Takes one record.
    fn record(&self, record: &RequestRecord);
}

/// Logs every record as one structured `tracing` event (`info`, or `warn` when it failed).
#[derive(Debug, Default, Clone, Copy)]
pub struct LogSink;

impl RequestSink for LogSink {
    fn record(&self, r: &RequestRecord) {
        macro_rules! event {
            ($level:expr) => {
                tracing::event!(
                    target: "mcplane::llm::request",
                    $level,
                    request_id = %r.request_id,
                    front_door = r.front_door,
                    requested = %r.requested,
                    model = r.model.as_deref().unwrap_or("-"),
                    endpoint = r.endpoint.as_deref().unwrap_or("-"),
                    stream = r.stream,
                    status = r.status,
                    outcome = r.outcome.as_str(),
                    latency_ms = r.latency_ms,
                    ttft_ms = r.ttft_ms,
                    prompt_tokens = r.prompt_tokens,
                    completion_tokens = r.completion_tokens,
                    usage_source = r.usage_source,
                    cost_usd = %r.cost(),
                    attempts = r.attempts,
                    route_reason = %r.route_reason,
                    error = r.error.as_deref(),
                    "model request"
                )
            };
        }
        if r.outcome == Outcome::Ok {
            event!(tracing::Level::INFO);
        } else {
            event!(tracing::Level::WARN);
        }
    }
}

/// The last `capacity` records, newest last.
#[derive(Debug)]
pub struct RecentRequests {
    capacity: usize,
    ring: Mutex<VecDeque<RequestRecord>>,
}

impl RecentRequests {
    /// A ring of `capacity` records.
    pub fn new(capacity: usize) -> RecentRequests {
        RecentRequests {
            capacity,
            ring: Mutex::new(VecDeque::with_capacity(capacity.min(1024))),
        }
    }

    /// A copy of the records, oldest first.
    pub fn snapshot(&self) -> Vec<RequestRecord> {
        self.ring
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

impl RequestSink for RecentRequests {
    fn record(&self, r: &RequestRecord) {
        if self.capacity == 0 {
            return;
        }
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        ring.push_back(r.clone());
    }
}

/// Running totals (the metrics hook until `/metrics` lands).
#[derive(Debug, Default)]
pub struct Totals {
    requests: AtomicU64,
    failed: AtomicU64,
    client_closed: AtomicU64,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    cost_micros: AtomicI64,
}

/// A copy of [`Totals`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TotalsSnapshot {
    /// Records seen.
    pub requests: u64,
    /// Records with outcome `error` or `stream_error`.
    pub failed: u64,
    /// Records with outcome `client_closed`.
    pub client_closed: u64,
    /// Sum of input tokens.
    pub prompt_tokens: u64,
    /// Sum of output tokens.
    pub completion_tokens: u64,
    /// Sum of costs, micro-dollars.
    pub cost_micros: i64,
}

impl Totals {
    /// The current totals.
    pub fn snapshot(&self) -> TotalsSnapshot {
        TotalsSnapshot {
            requests: self.requests.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            client_closed: self.client_closed.load(Ordering::Relaxed),
            prompt_tokens: self.prompt_tokens.load(Ordering::Relaxed),
            completion_tokens: self.completion_tokens.load(Ordering::Relaxed),
            cost_micros: self.cost_micros.load(Ordering::Relaxed),
        }
    }
}

impl RequestSink for Totals {
    fn record(&self, r: &RequestRecord) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        match r.outcome {
            Outcome::Error | Outcome::StreamError => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::ClientClosed => {
                self.client_closed.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Ok => {}
        }
        self.prompt_tokens
            .fetch_add(r.prompt_tokens, Ordering::Relaxed);
        self.completion_tokens
            .fetch_add(r.completion_tokens, Ordering::Relaxed);
        self.cost_micros.fetch_add(r.cost_micros, Ordering::Relaxed);
    }
}

/// Sends every record to each sink in turn.
#[derive(Debug, Default, Clone)]
pub struct Sinks(pub Vec<Arc<dyn RequestSink>>);

impl RequestSink for Sinks {
    fn record(&self, r: &RequestRecord) {
        for s in &self.0 {
            s.record(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(outcome: Outcome, cost: i64) -> RequestRecord {
        RequestRecord {
            request_id: "r".into(),
            principal: None,
            front_door: "openai.chat",
            requested: "m".into(),
            model: Some("m".into()),
            endpoint: Some("m".into()),
            stream: false,
            status: 200,
            outcome,
            error: None,
            latency_ms: 1,
            ttft_ms: Some(1),
            prompt_tokens: 10,
            completion_tokens: 5,
            usage_source: "reported",
            cost_micros: cost,
            route_reason: "direct: m".into(),
            attempts: 1,
        }
    }

    #[test]
    fn ring_keeps_the_newest_and_totals_add_up() {
        let ring = Arc::new(RecentRequests::new(2));
        let totals = Arc::new(Totals::default());
        let sinks = Sinks(vec![ring.clone(), totals.clone(), Arc::new(LogSink)]);
        sinks.record(&rec(Outcome::Ok, 3));
        sinks.record(&rec(Outcome::Error, 0));
        sinks.record(&rec(Outcome::ClientClosed, 4));
        let snap = ring.snapshot();
        assert_eq!(snap.len(), 2);
        assert_eq!(snap[1].outcome, Outcome::ClientClosed);
        let t = totals.snapshot();
        assert_eq!((t.requests, t.failed, t.client_closed), (3, 1, 1));
        assert_eq!((t.prompt_tokens, t.cost_micros), (30, 7));
    }
}
