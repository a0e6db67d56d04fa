//! Scriptable faults: rules that make matching requests fail in a chosen way.
//!
//! A mock holds an ordered list of [`Fault`] rules. Each request to a provider route (after its
//! key and body were accepted) takes the **first** rule that matches it — by provider, endpoint
//! (chat by default), model and streaming — that has uses left (`count`) and whose dice roll
//! passes (`percent`, deterministic from the mock's seed). The rule's effects then combine:
//! latency first, then hang / status / invalid JSON, else the normal response with the stream
//! faults applied. Rules stay listed when used up, so `GET /__mock/faults` shows what happened.
//!
//! Over HTTP the same rules are JSON objects with the field names below, e.g.
//! `POST /__mock/faults` with `[{"status": 429, "retry_after": 1, "count": 2}, {"latency_ms": 50}]`.

use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The wire format a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// OpenAI (`/v1/chat/completions`, `/v1/embeddings`, `/v1/models`).
    OpenAi,
    /// Azure OpenAI (`/openai/deployments/{deployment}/…`).
    Azure,
    /// Anthropic Messages (`/v1/messages`, and `/v1/models` with `anthropic-version`).
    Anthropic,
    /// Google Gemini (`/v1beta/models/{model}:…`).
    Gemini,
}

impl Provider {
    /// The lowercase name used in JSON (`openai`, `azure`, `anthropic`, `gemini`).
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Azure => "azure",
            Provider::Anthropic => "anthropic",
            Provider::Gemini => "gemini",
        }
    }
}

/// What a request asked for; faults select on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// Chat completions, messages, `generateContent` / `streamGenerateContent` (the default).
    #[default]
    Chat,
    /// `/v1/embeddings`, `:embedContent`, `:batchEmbedContents`.
    Embeddings,
    /// Model listings.
    Models,
    /// Anthropic's `/v1/messages/count_tokens`.
    CountTokens,
    /// In a fault only: matches every endpoint.
    Any,
}

/// One fault rule: which requests it applies to, how often, and what goes wrong.
///
/// Build one with the constructors and chain the selectors, e.g.
/// `Fault::status(500).times(2).for_model("gpt-primary")`, or deserialize it from JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Fault {
    // ---- which requests ----
    /// Only requests in this wire format (any when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
    /// Only this endpoint kind; chat by default, [`Endpoint::Any`] for all.
    pub endpoint: Endpoint,
    /// Only requests for this model (Azure: the deployment, or the body's `model`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Only streaming (`true`) or only non-streaming (`false`) requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,

    // ---- how often ----
    /// Applies to the next `count` matching requests, then is used up (forever when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Applies to this percentage (0–100) of matching requests, chosen by a deterministic
    /// pseudo-random sequence (every request when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,

    // ---- what happens ----
    /// Answer with this HTTP status and the provider's error body (e.g. 500, 429, 503, 529).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// With `status`: the `Retry-After` header, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// With `status`: the `retry-after-ms` header (read by the OpenAI SDKs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// With `status`: the error message (a provider-like default otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Wait this long before doing anything else (before the response headers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Streams: send the headers, then wait this long before the first event. Non-streaming
    /// responses wait before the headers (the whole answer is the first token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_token_delay_ms: Option<u64>,
    /// Streams: wait this long between events (overrides the mock's configured interval).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_delay_ms: Option<u64>,
    /// Streams: after this many events, reset the connection (no terminating chunk).
    /// Non-streaming: send half of the body, then reset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_after_events: Option<usize>,
    /// Streams: the event with this index (0-based) carries invalid JSON.
    /// Non-streaming: the body is cut in half.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub malformed_event: Option<usize>,
    /// Streams: end cleanly (proper end of body) before the terminal events — no OpenAI finish
    /// chunk, usage chunk or `[DONE]`; no Anthropic `message_delta`/`message_stop`; no Gemini
    /// chunk with `finishReason`. Non-streaming: the body is cut in half.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncate: bool,
    /// Streams: end cleanly after this many events (whatever they are).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncate_after_events: Option<usize>,
    /// Streams: after this many events, send the provider's in-stream error event and end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_event_after: Option<usize>,
    /// Never send response headers (until the mock shuts down).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hang: bool,
    /// Answer 200 `application/json` with a body that is not valid JSON.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub invalid_json: bool,
}

impl Fault {
    /// Answer with `status` and the provider's error body.
    pub fn status(status: u16) -> Self {
        Fault {
            status: Some(status),
            ..Fault::default()
        }
    }

    /// Delay every matching response by `latency` before its headers.
    pub fn latency(latency: Duration) -> Self {
        Fault {
            latency_ms: Some(millis(latency)),
            ..Fault::default()
        }
    }

    /// Delay the first stream event (or a non-streaming response) by `delay`.
    pub fn first_token_delay(delay: Duration) -> Self {
        Fault {
            first_token_delay_ms: Some(millis(delay)),
            ..Fault::default()
        }
    }

    /// Reset the connection after `events` stream events.
    pub fn drop_after(events: usize) -> Self {
        Fault {
            drop_after_events: Some(events),
            ..Fault::default()
        }
    }

    /// Replace the stream event with this index by invalid JSON.
    pub fn malformed_event(index: usize) -> Self {
        Fault {
            malformed_event: Some(index),
            ..Fault::default()
        }
    }

    /// End the stream cleanly without its terminal events.
    pub fn truncate() -> Self {
        Fault {
            truncate: true,
            ..Fault::default()
        }
    }

    /// End the stream cleanly after `events` events.
    pub fn truncate_after(events: usize) -> Self {
        Fault {
            truncate_after_events: Some(events),
            ..Fault::default()
        }
    }

    /// Send the provider's in-stream error event after `events` events.
    pub fn error_event_after(events: usize) -> Self {
        Fault {
            error_event_after: Some(events),
            ..Fault::default()
        }
    }

    /// Never send response headers.
    pub fn hang() -> Self {
        Fault {
            hang: true,
            ..Fault::default()
        }
    }

    /// Answer 200 with a body that is not valid JSON.
    pub fn invalid_json() -> Self {
        Fault {
            invalid_json: true,
            ..Fault::default()
        }
    }

    /// Only for the next `n` matching requests.
    pub fn times(mut self, n: u64) -> Self {
        self.count = Some(n);
        self
    }

    /// Only for `percent` (0–100) of matching requests.
    pub fn percent(mut self, percent: f64) -> Self {
        self.percent = Some(percent);
        self
    }

    /// Only for requests in this wire format.
    pub fn for_provider(mut self, provider: Provider) -> Self {
        self.provider = Some(provider);
        self
    }

    /// Only for requests for this model.
    pub fn for_model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Only for streaming (`true`) or non-streaming (`false`) requests.
    pub fn for_stream(mut self, stream: bool) -> Self {
        self.stream = Some(stream);
        self
    }

    /// Only for this endpoint kind ([`Endpoint::Any`] for all).
    pub fn on(mut self, endpoint: Endpoint) -> Self {
        self.endpoint = endpoint;
        self
    }

    /// Also send `Retry-After: secs` (with a status).
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// Also wait `latency` before the response headers.
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency_ms = Some(millis(latency));
        self
    }

    /// Also wait `delay` between stream events.
    pub fn with_event_delay(mut self, delay: Duration) -> Self {
        self.event_delay_ms = Some(millis(delay));
        self
    }

    /// Also use this error message (with a status).
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    fn matches(&self, req: &Selector<'_>) -> bool {
        self.provider.is_none_or(|p| p == req.provider)
            && (self.endpoint == Endpoint::Any || self.endpoint == req.endpoint)
            && self.model.as_deref().is_none_or(|m| m == req.model)
            && self.stream.is_none_or(|s| s == req.stream)
    }

    /// The status the response will have: `None` when no headers are ever sent.
    pub(crate) fn planned_status(&self) -> Option<u16> {
        if self.hang {
            None
        } else if let Some(status) = self.status {
            Some(status)
        } else {
            Some(200)
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A rule with its counters, as `GET /__mock/faults` and [`crate::mock_llm::MockHandle::faults`]
/// report it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultStatus {
    /// The rule.
    #[serde(flatten)]
    pub fault: Fault,
    /// Matching requests that reached the rule (its dice were rolled).
    pub seen: u64,
    /// Requests the rule was applied to.
    pub applied: u64,
    /// Uses left, when the rule has a `count`.
    pub remaining: Option<u64>,
}

/// What a request is, for fault selection.
pub(crate) struct Selector<'a> {
    pub provider: Provider,
    pub endpoint: Endpoint,
    pub model: &'a str,
    pub stream: bool,
}

/// The mock's fault rules. Lock-free when no rule is set.
pub(crate) struct FaultBook {
    any: AtomicBool,
    rules: Mutex<Vec<FaultStatus>>,
    seed: u64,
}

impl FaultBook {
    pub fn new(seed: u64) -> Self {
        FaultBook {
            any: AtomicBool::new(false),
            rules: Mutex::new(Vec::new()),
            seed,
        }
    }

    /// Replaces every rule.
    pub fn set(&self, faults: Vec<Fault>) {
        let mut rules = self.lock();
        *rules = faults
            .into_iter()
            .map(|fault| FaultStatus {
                remaining: fault.count,
                fault,
                seen: 0,
                applied: 0,
            })
            .collect();
        self.any.store(!rules.is_empty(), Ordering::Release);
    }

    /// Appends one rule.
    pub fn push(&self, fault: Fault) {
        let mut rules = self.lock();
        rules.push(FaultStatus {
            remaining: fault.count,
            fault,
            seen: 0,
            applied: 0,
        });
        self.any.store(true, Ordering::Release);
    }

    pub fn snapshot(&self) -> Vec<FaultStatus> {
        self.lock().clone()
    }

    /// The rule (index, copy) to apply to this request, if any; counts it as used.
    pub fn pick(&self, req: &Selector<'_>) -> Option<(usize, Fault)> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let mut rules = self.lock();
        for (i, rule) in rules.iter_mut().enumerate() {
            if rule.remaining == Some(0) || !rule.fault.matches(req) {
                continue;
            }
            rule.seen += 1;
            if let Some(percent) = rule.fault.percent {
                let roll = splitmix64(self.seed ^ ((i as u64) << 40) ^ rule.seen) % 10_000;
                if (roll as f64) >= percent * 100.0 {
                    continue;
                }
            }
            rule.applied += 1;
            if let Some(left) = rule.remaining.as_mut() {
                *left -= 1;
            }
            return Some((i, rule.fault.clone()));
        }
        None
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<FaultStatus>> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A well-mixed 64-bit hash of `x` (SplitMix64's finalizer).
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel<'a>(model: &'a str, stream: bool) -> Selector<'a> {
        Selector {
            provider: Provider::OpenAi,
            endpoint: Endpoint::Chat,
            model,
            stream,
        }
    }

    #[test]
    fn first_matching_rule_with_uses_left_wins() {
        let book = FaultBook::new(1);
        book.set(vec![
            Fault::status(500).times(2).for_model("a"),
            Fault::status(503),
        ]);
        let picks: Vec<_> = (0..3)
            .map(|_| book.pick(&sel("a", false)).map(|(i, _)| i))
            .collect();
        assert_eq!(picks, vec![Some(0), Some(0), Some(1)]);
        assert_eq!(book.pick(&sel("b", false)).map(|(i, _)| i), Some(1));
        let snap = book.snapshot();
        assert_eq!(snap[0].remaining, Some(0));
        assert_eq!(snap[0].applied, 2);
    }

    #[test]
    fn selectors_filter() {
        let book = FaultBook::new(1);
        book.set(vec![
            Fault::hang().for_stream(true),
            Fault::status(500).on(Endpoint::Embeddings),
            Fault::status(429).for_provider(Provider::Anthropic),
        ]);
        assert!(book.pick(&sel("m", false)).is_none());
        assert_eq!(book.pick(&sel("m", true)).map(|(i, _)| i), Some(0));
    }

    #[test]
    fn percent_is_roughly_honoured_and_deterministic() {
        let run = || {
            let book = FaultBook::new(7);
            book.set(vec![Fault::status(500).percent(30.0)]);
            (0..1000)
                .filter(|_| book.pick(&sel("m", false)).is_some())
                .count()
        };
        let hits = run();
        assert!((250..350).contains(&hits), "{hits}");
        assert_eq!(hits, run());
    }

    #[test]
    fn json_round_trip_rejects_unknown_fields() {
        let f: Fault = serde_json::from_str(r#"{"status":429,"retry_after":1,"count":2}"#).unwrap();
        assert_eq!(f, Fault::status(429).retry_after(1).times(2));
        assert!(serde_json::from_str::<Fault>(r#"{"statu":429}"#).is_err());
    }
}
