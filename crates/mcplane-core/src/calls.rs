//! Model calls as accounted: one [`RequestRecord`] per call that reached a front door (errors,
//! client disconnects and mid-stream failures included), handed to a [`RequestSink`] without
//! blocking the response. The model face produces them; sinks log, count and persist them.

use mcplane_types::{MicroUsd, Tenancy};
use serde::Serialize;

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
    /// Who called (the principal's id; `anonymous` without authentication).
    pub principal: Option<String>,
    /// The caller's org, team and project (what budgets and spend reports group by).
    pub tenancy: Tenancy,
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

/// Where request records go. `record` must not block: it runs on the request path (or when a
/// stream ends or is dropped).
pub trait RequestSink: Send + Sync + std::fmt::Debug {
    /// Takes one record.
    fn record(&self, record: &RequestRecord);
}
