//! OpenAI Chat Completions and Embeddings (`POST /v1/chat/completions`, `POST /v1/embeddings`),
//! the format of OpenAI, Azure OpenAI and every OpenAI-compatible server.
//!
//! - Requests: [`decode_request`] / [`encode_request`] — `messages` (content as a string or
//!   `text`/`image_url` parts), `tools` (`type: function`), `tool_choice`, `response_format`
//!   (`json_object`, `json_schema`), sampling fields, `stream` and
//!   `stream_options.include_usage`. Both `max_tokens` and `max_completion_tokens` are kept as
//!   sent.
//! - Responses: [`decode_response`] / [`encode_response`] (`object: chat.completion`).
//! - Streams: [`StreamDecoder`] / [`StreamEncoder`] over `chat.completion.chunk` events ending
//!   with `data: [DONE]`; with `include_usage` a last chunk with empty `choices` carries the
//!   usage and every other chunk has `"usage": null`. A failure mid-stream is an
//!   `{"error": {...}}` data line followed by `[DONE]`, which the official SDKs raise.
//! - Embeddings: [`decode_embeddings_request`], [`encode_embeddings_request`],
//!   [`decode_embeddings_response`], [`encode_embeddings_response`].
//!
//! From other formats: parts OpenAI cannot take are dropped, text-only content becomes a
//! string, and a tool result flagged as an error (Anthropic `is_error`) gets `Error: ` before its
//! content.
//!
//! Finish reasons: `stop` ↔ [`FinishReason::Stop`] (and `StopSequence` encodes as `stop`),
//! `length` ↔ `Length`, `tool_calls` ↔ `ToolCalls`, `content_filter` ↔ `ContentFilter`; other
//! formats' reasons encode as their nearest equivalent (Anthropic `pause_turn` → `stop`,
//! `model_context_window_exceeded` → `length`; Gemini `RECITATION`, `BLOCKLIST`,
//! `PROHIBITED_CONTENT`, `SPII`, `IMAGE_SAFETY` → `content_filter`, `MALFORMED_FUNCTION_CALL`
//! and `OTHER` → `stop`).

mod embeddings;
mod request;
mod response;
mod stream;

pub use embeddings::{
    decode_embeddings_request, decode_embeddings_response, encode_embeddings_request,
    encode_embeddings_response,
};
pub use request::{decode_request, encode_request, request_from_value, request_to_value};
pub use response::{decode_response, encode_response, response_from_value, response_to_value};
pub(crate) use response::{usage_from_value, usage_to_value};
pub use stream::{StreamDecoder, StreamEncoder};

use crate::chat::FinishReason;

/// A finish reason as OpenAI spells it.
pub fn finish_reason_to_wire(reason: &FinishReason) -> String {
    match reason {
        FinishReason::Stop | FinishReason::StopSequence => "stop".into(),
        FinishReason::Length => "length".into(),
        FinishReason::ToolCalls => "tool_calls".into(),
        FinishReason::ContentFilter => "content_filter".into(),
        FinishReason::Other(s) => match s.as_str() {
            "pause_turn"
            | "end_turn"
            | "MALFORMED_FUNCTION_CALL"
            | "OTHER"
            | "STOP"
            | "FINISH_REASON_UNSPECIFIED"
            | "UNEXPECTED_TOOL_CALL"
            | "LANGUAGE" => "stop".into(),
            "model_context_window_exceeded" | "max_tokens" | "MAX_TOKENS" => "length".into(),
            "refusal" | "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII"
            | "IMAGE_SAFETY" => "content_filter".into(),
            other => other.into(),
        },
    }
}

/// A finish reason from OpenAI's spelling.
pub fn finish_reason_from_wire(s: &str) -> FinishReason {
    match s {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "tool_calls" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.into()),
    }
}
