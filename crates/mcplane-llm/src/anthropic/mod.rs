//! Anthropic Messages (`POST /v1/messages`).
//!
//! - Requests: [`decode_request`] / [`encode_request`]. The top-level `system` (a string or
//!   text blocks) becomes leading system messages; a user message's `tool_result` blocks become
//!   `tool` messages (in block order, the other blocks staying a user message); an assistant's
//!   `tool_use` blocks become its tool calls. Encoding merges consecutive tool messages, and the
//!   user message right after them, back into one user turn, and collects every system or
//!   developer message into `system`. `max_tokens` is required on decode; on encode a request
//!   without a limit gets [`DEFAULT_MAX_TOKENS`] (set `sampling.max_tokens` from the registry
//!   first). `n > 1` cannot be expressed ([`LlmError::Unsupported`]). From other formats,
//!   `seed` and the presence/frequency penalties are dropped, `temperature` is clamped to
//!   Anthropic's 0–1, `response_format: json_schema` becomes `output_config.format` and
//!   `json_object` (which Anthropic lacks) an instruction appended to `system`.
//! - Responses: [`decode_response`] / [`encode_response`] (`type: message`).
//! - Streams: [`StreamDecoder`] / [`StreamEncoder`] over `message_start`,
//!   `content_block_start`, `content_block_delta` (`text_delta`, `input_json_delta`),
//!   `content_block_stop`, `message_delta` (stop reason and cumulative usage), `message_stop`,
//!   `ping` and `error` events.
//!
//! Usage: Anthropic's `input_tokens` excludes cache reads and writes, which it reports as
//! `cache_read_input_tokens` and `cache_creation_input_tokens`; the canonical
//! [`Usage::prompt_tokens`] is their sum (see [`crate::usage`]).
//!
//! Finish reasons: `end_turn` ↔ [`FinishReason::Stop`], `stop_sequence` ↔ `StopSequence`,
//! `max_tokens` ↔ `Length`, `tool_use` ↔ `ToolCalls`, `refusal` ↔ `ContentFilter`; others
//! (`pause_turn`, `model_context_window_exceeded`) are kept as they are; other formats' reasons
//! encode as their nearest equivalent.

mod request;
mod response;
mod stream;

pub use request::{decode_request, encode_request, request_from_value, request_to_value};
pub use response::{decode_response, encode_response, response_from_value, response_to_value};
pub use stream::{StreamDecoder, StreamEncoder};

use crate::LlmError;
use crate::chat::FinishReason;
use crate::json::{Extra, Obj, base, put};
use crate::usage::Usage;
use serde_json::Value;

/// `max_tokens` sent when a request from another format sets no output limit.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// A finish reason as Anthropic spells it.
pub fn finish_reason_to_wire(reason: &FinishReason) -> String {
    match reason {
        FinishReason::Stop => "end_turn".into(),
        FinishReason::StopSequence => "stop_sequence".into(),
        FinishReason::Length => "max_tokens".into(),
        FinishReason::ToolCalls => "tool_use".into(),
        FinishReason::ContentFilter => "refusal".into(),
        FinishReason::Other(s) => match s.as_str() {
            "pause_turn" | "model_context_window_exceeded" => s.clone(),
            "MAX_TOKENS" | "length" => "max_tokens".into(),
            "function_call" => "tool_use".into(),
            "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII"
            | "IMAGE_SAFETY" | "content_filter" => "refusal".into(),
            _ => "end_turn".into(),
        },
    }
}

/// A finish reason from Anthropic's spelling.
pub fn finish_reason_from_wire(s: &str) -> FinishReason {
    match s {
        "end_turn" => FinishReason::Stop,
        "stop_sequence" => FinishReason::StopSequence,
        "max_tokens" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.into()),
    }
}

/// Anthropic's usage fields, before they are summed into the canonical shape.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RawUsage {
    pub input: u64,
    pub output: u64,
    pub cache_creation: Option<u64>,
    pub cache_read: Option<u64>,
    pub extra: Extra,
}

impl RawUsage {
    /// Reads a `usage` object; fields not present leave `self` as it was (so a
    /// `message_delta`'s usage updates a `message_start`'s).
    pub fn update(&mut self, mut o: Obj) -> Result<(), LlmError> {
        if let Some(v) = o.u64("input_tokens")? {
            self.input = v;
        }
        if let Some(v) = o.u64("output_tokens")? {
            self.output = v;
        }
        if let Some(v) = o.u64("cache_creation_input_tokens")? {
            self.cache_creation = Some(v);
        }
        if let Some(v) = o.u64("cache_read_input_tokens")? {
            self.cache_read = Some(v);
        }
        self.extra.extend(o.rest());
        Ok(())
    }

    pub fn to_usage(&self) -> Usage {
        let prompt = self
            .input
            .saturating_add(self.cache_creation.unwrap_or(0))
            .saturating_add(self.cache_read.unwrap_or(0));
        Usage {
            prompt_tokens: prompt,
            completion_tokens: self.output,
            total_tokens: prompt.saturating_add(self.output),
            cached_tokens: self.cache_read,
            cache_creation_tokens: self.cache_creation,
            reasoning_tokens: None,
            extra: self.extra.clone(),
        }
    }
}

/// Decodes a `usage` object.
pub(crate) fn usage_from_obj(o: Obj) -> Result<Usage, LlmError> {
    let mut raw = RawUsage::default();
    raw.update(o)?;
    Ok(raw.to_usage())
}

/// Encodes usage as Anthropic's `usage` object.
pub(crate) fn usage_to_value(u: &Usage, native: bool) -> Value {
    let mut m = base(&u.extra, native);
    let cached = u.cached_tokens.unwrap_or(0);
    let created = u.cache_creation_tokens.unwrap_or(0);
    m.insert(
        "input_tokens".into(),
        u.prompt_tokens
            .saturating_sub(cached)
            .saturating_sub(created)
            .into(),
    );
    m.insert("output_tokens".into(), u.completion_tokens.into());
    put(
        &mut m,
        "cache_creation_input_tokens",
        u.cache_creation_tokens,
    );
    put(&mut m, "cache_read_input_tokens", u.cached_tokens);
    Value::Object(m)
}
