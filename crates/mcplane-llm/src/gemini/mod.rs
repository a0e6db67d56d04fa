//! Google Gemini `generateContent` (`POST …/models/{model}:generateContent`, streamed with
//! `:streamGenerateContent?alt=sse`) and embeddings (`:embedContent`, `:batchEmbedContents`).
//!
//! The model and streaming are in the URL, not the body: [`generate_path`] and
//! [`embed_path`] build it; [`decode_request`] takes the model as an argument.
//!
//! - Requests: `contents` (`user`/`model` turns of `parts`: `text`, `inlineData`, `fileData`,
//!   `functionCall`, `functionResponse`), `systemInstruction`, `tools[].functionDeclarations`,
//!   `toolConfig.functionCallingConfig` (`AUTO`, `ANY` + `allowedFunctionNames`, `NONE`) and
//!   `generationConfig` (`temperature`, `topP`, `topK`, `maxOutputTokens`, `stopSequences`,
//!   `candidateCount`, `seed`, penalties, `responseMimeType` with `responseSchema` or
//!   `responseJsonSchema`).
//! - Responses and stream chunks are both `GenerateContentResponse`s: `candidates`,
//!   `usageMetadata`, `modelVersion`, `responseId`. A stream has no terminal event; it ends
//!   after the chunk carrying `finishReason`.
//!
//! Mapping notes:
//!
//! - **Tool-call ids.** Gemini calls may lack an `id`; the decoders then synthesize one,
//!   `call_gemini_<salt>_<n>` (the salt is the response id, or a hash of the body), so an
//!   OpenAI or Anthropic client can answer it. Function responses are matched to calls by
//!   name, so the encoders never send synthetic ids back, and send real ids only when the
//!   request came from Gemini. A tool message's function name is its `name`, or the name of the
//!   call it answers (looked up by `tool_call_id` in the earlier assistant messages).
//! - **Turns.** Consecutive tool messages become one `user` turn of `functionResponse` parts,
//!   which a following user message joins (from other formats).
//! - **Function responses** must be objects: tool output that is a JSON object is sent as is,
//!   other text as `{"output": text}` (or `{"error": text}` for an error result), and decoded
//!   back the same way.
//! - **Schemas.** From other formats, tool parameters and response schemas are sent as
//!   `parametersJsonSchema` / `responseJsonSchema` (full JSON Schema, which Gemini's OpenAPI
//!   subset in `parameters` rejects: `additionalProperties`, `$defs`, …). Both keys are read;
//!   native requests are written back with `parameters` / `responseSchema`. Gemini's
//!   upper-case type names (`OBJECT`) are lower-cased when a schema goes to another format.
//! - **Finish reasons**: `STOP` ↔ [`FinishReason::Stop`] (or `ToolCalls` when the candidate
//!   called functions), `MAX_TOKENS` ↔ `Length`, `SAFETY` ↔ `ContentFilter`; others
//!   (`RECITATION`, `BLOCKLIST`, `MALFORMED_FUNCTION_CALL`, …) are kept as they are.
//! - **Usage**: `thoughtsTokenCount` is added to the completion (and is its reasoning part);
//!   `cachedContentTokenCount` is the cached part of the prompt.

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
pub use stream::{StreamDecoder, StreamEncoder};

use crate::LlmError;
use crate::chat::{Content, FinishReason, Part, ToolCall};
use crate::json::{Extra, Obj, base, put};
use crate::usage::Usage;
use serde_json::{Map, Value, json};

/// Prefix of tool-call ids synthesized for Gemini calls without one.
pub const SYNTHETIC_ID_PREFIX: &str = "call_gemini_";

/// The path (relative to the API base, e.g. `https://generativelanguage.googleapis.com/v1beta/`)
/// of a generate call: `models/{model}:generateContent`, or
/// `models/{model}:streamGenerateContent?alt=sse` when streaming.
pub fn generate_path(model: &str, stream: bool) -> String {
    let model = model.strip_prefix("models/").unwrap_or(model);
    if stream {
        format!("models/{model}:streamGenerateContent?alt=sse")
    } else {
        format!("models/{model}:generateContent")
    }
}

/// The path of an embeddings call: `models/{model}:embedContent`, or
/// `models/{model}:batchEmbedContents` for several inputs.
pub fn embed_path(model: &str, batch: bool) -> String {
    let model = model.strip_prefix("models/").unwrap_or(model);
    if batch {
        format!("models/{model}:batchEmbedContents")
    } else {
        format!("models/{model}:embedContent")
    }
}

/// A finish reason as Gemini spells it.
pub fn finish_reason_to_wire(reason: &FinishReason) -> String {
    match reason {
        FinishReason::Stop | FinishReason::StopSequence | FinishReason::ToolCalls => "STOP".into(),
        FinishReason::Length => "MAX_TOKENS".into(),
        FinishReason::ContentFilter => "SAFETY".into(),
        FinishReason::Other(s) => match s.as_str() {
            "length" | "max_tokens" | "model_context_window_exceeded" => "MAX_TOKENS".into(),
            "content_filter" | "refusal" => "SAFETY".into(),
            upper
                if !upper.is_empty()
                    && upper.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') =>
            {
                upper.into()
            }
            _ => "STOP".into(),
        },
    }
}

/// A finish reason from Gemini's spelling (`called_tools`: the candidate called functions).
pub fn finish_reason_from_wire(s: &str, called_tools: bool) -> FinishReason {
    match s {
        "STOP" if called_tools => FinishReason::ToolCalls,
        "STOP" => FinishReason::Stop,
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.into()),
    }
}

/// A synthetic tool-call id.
pub(crate) fn synthetic_id(salt: &str, n: usize) -> String {
    let salt: String = salt
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(24)
        .collect();
    if salt.is_empty() {
        format!("{SYNTHETIC_ID_PREFIX}{n}")
    } else {
        format!("{SYNTHETIC_ID_PREFIX}{salt}_{n}")
    }
}

/// A salt for synthetic ids from bytes (FNV-1a, 64 bits).
pub(crate) fn salt_of(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// A JSON Schema from a Gemini schema: upper-case type names lower-cased, recursively.
pub fn schema_to_json_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        ("type", Value::String(t)) => Value::String(t.to_ascii_lowercase()),
                        ("properties" | "$defs" | "definitions", Value::Object(props)) => {
                            Value::Object(
                                props
                                    .iter()
                                    .map(|(name, s)| (name.clone(), schema_to_json_schema(s)))
                                    .collect(),
                            )
                        }
                        (_, other) => schema_to_json_schema(other),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(schema_to_json_schema).collect()),
        other => other.clone(),
    }
}

/// Reads a `usageMetadata` object.
pub(crate) fn usage_from_obj(mut o: Obj) -> Result<Usage, LlmError> {
    let prompt = o.u64("promptTokenCount")?.unwrap_or(0);
    let candidates = o.u64("candidatesTokenCount")?.unwrap_or(0);
    let thoughts = o.u64("thoughtsTokenCount")?;
    let cached = o.u64("cachedContentTokenCount")?;
    let completion = candidates.saturating_add(thoughts.unwrap_or(0));
    let total = o
        .u64("totalTokenCount")?
        .unwrap_or(prompt.saturating_add(completion));
    Ok(Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: total,
        cached_tokens: cached,
        cache_creation_tokens: None,
        reasoning_tokens: thoughts,
        extra: o.rest(),
    })
}

/// Writes a `usageMetadata` object.
pub(crate) fn usage_to_value(u: &Usage, native: bool) -> Value {
    let mut m = base(&u.extra, native);
    m.insert("promptTokenCount".into(), u.prompt_tokens.into());
    m.insert(
        "candidatesTokenCount".into(),
        u.completion_tokens
            .saturating_sub(u.reasoning_tokens.unwrap_or(0))
            .into(),
    );
    m.insert("totalTokenCount".into(), u.total_tokens.into());
    put(&mut m, "thoughtsTokenCount", u.reasoning_tokens);
    put(&mut m, "cachedContentTokenCount", u.cached_tokens);
    Value::Object(m)
}

/// A tool output as a `functionResponse.response` object.
pub(crate) fn function_response(content: Option<&Content>, is_error: bool) -> Value {
    let text = content.map(Content::text).unwrap_or_default();
    if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(&text) {
        return if is_error { json!({"error": v}) } else { v };
    }
    if is_error {
        json!({"error": text})
    } else {
        json!({"output": text})
    }
}

/// A `functionResponse.response` object as tool output text, and whether it reports an error.
pub(crate) fn function_response_text(response: &Value) -> (String, bool) {
    if let Value::Object(m) = response
        && m.len() == 1
    {
        match (m.get("output"), m.get("error")) {
            (Some(Value::String(s)), _) => return (s.clone(), false),
            (_, Some(Value::String(s))) => return (s.clone(), true),
            (_, Some(v @ Value::Object(_))) => return (v.to_string(), true),
            _ => {}
        }
    }
    (response.to_string(), false)
}

/// A `functionCall` part (`with_id`: send the call's id).
pub(crate) fn function_call_part(
    call: &ToolCall,
    native: bool,
    with_id: bool,
    at: &str,
) -> Result<Value, LlmError> {
    let args = crate::json::arguments_object(&call.arguments, at)?;
    let mut m = base(&call.extra, native);
    let mut fc = match m.remove("functionCall") {
        Some(Value::Object(f)) => f,
        _ => Map::new(),
    };
    fc.insert("name".into(), call.name.clone().into());
    fc.insert("args".into(), args);
    if with_id && !call.id.is_empty() && !call.id.starts_with(SYNTHETIC_ID_PREFIX) {
        fc.insert("id".into(), call.id.clone().into());
    }
    m.insert("functionCall".into(), Value::Object(fc));
    Ok(Value::Object(m))
}

/// Reads a part of a model turn into text/other parts or a tool call. `next_id` synthesizes an
/// id for a call without one.
pub(crate) fn decode_model_part(
    value: Value,
    at: &str,
    parts: &mut Vec<Part>,
    calls: &mut Vec<ToolCall>,
    next_id: &mut dyn FnMut() -> String,
) -> Result<(), LlmError> {
    let mut o = Obj::new(value, at)?;
    if o.has("functionCall") {
        let mut fc = o.req_object("functionCall")?;
        let name = fc.req_string("name")?;
        let arguments = fc
            .take("args")
            .map_or_else(|| "{}".to_string(), |a| a.to_string());
        let id = match fc.string("id")? {
            Some(id) => id,
            None => next_id(),
        };
        o.keep("functionCall", fc.rest());
        calls.push(ToolCall {
            id,
            name,
            arguments,
            extra: o.rest(),
        });
        return Ok(());
    }
    if o.has("text") && o.peek("thought").and_then(Value::as_bool) != Some(true) {
        let text = o.req_string("text")?;
        parts.push(Part::Text(crate::chat::TextPart {
            text,
            extra: o.rest(),
        }));
        return Ok(());
    }
    parts.push(Part::Other(Value::Object(o.rest())));
    Ok(())
}

/// Encodes a text or image part (`None` for what Gemini cannot take from another format).
pub(crate) fn encode_part(p: &Part, native: bool) -> Option<Value> {
    match p {
        Part::Text(t) => {
            let mut m = base(&t.extra, native);
            m.insert("text".into(), t.text.clone().into());
            Some(Value::Object(m))
        }
        Part::Image(img) => {
            let mut m: Extra = base(&img.extra, native);
            match &img.source {
                crate::chat::ImageSource::Base64 { media_type, data } => {
                    m.insert(
                        "inlineData".into(),
                        json!({"mimeType": media_type, "data": data}),
                    );
                }
                crate::chat::ImageSource::Url(url) => {
                    m.insert(
                        "fileData".into(),
                        json!({"mimeType": mime_of(url), "fileUri": url}),
                    );
                }
            }
            Some(Value::Object(m))
        }
        Part::Other(v) => native.then(|| v.clone()),
    }
}

/// An image URL's MIME type from its extension (JPEG when unknown).
fn mime_of(url: &str) -> &'static str {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    if path.ends_with(".png") {
        "image/png"
    } else if path.ends_with(".gif") {
        "image/gif"
    } else if path.ends_with(".webp") {
        "image/webp"
    } else if path.ends_with(".heic") {
        "image/heic"
    } else {
        "image/jpeg"
    }
}
