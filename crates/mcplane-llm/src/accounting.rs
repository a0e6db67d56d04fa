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
//! counters, the metrics hook). [`Sinks`] fans out to several. The record and the sink trait live
//! in `mcplane-core` (`calls`), so the store can persist records (`mcplane-store`'s writer is one
//! more sink, behind a bounded buffer, so the hot path never waits on SQL).

use crate::stream::UsageSource;
pub use mcplane_core::calls::{Outcome, RequestRecord, RequestSink};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The name of a usage source in records.
pub fn usage_source_name(s: UsageSource) -> &'static str {
    match s {
        UsageSource::Reported => "reported",
        UsageSource::Estimated => "estimated",
    }
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
            tenancy: Default::default(),
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
