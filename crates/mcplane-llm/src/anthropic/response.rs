//! Anthropic Messages responses.

use super::request::{decode_tool_use, encode_part, encode_tool_use};
use super::{finish_reason_from_wire, finish_reason_to_wire, usage_from_obj, usage_to_value};
use crate::chat::{ChatResponse, Choice, Content, Message, Part, Role, TextPart};
use crate::json::{self, Obj, base, index, invalid};
use crate::{Format, LlmError};
use serde_json::Value;

/// Decodes a response body (an upstream answer: errors are [`LlmError::Protocol`]).
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, LlmError> {
    json::parse(body)
        .and_then(response_from_value)
        .map_err(|e| e.upstream("response"))
}

/// Decodes a parsed response.
pub fn response_from_value(value: Value) -> Result<ChatResponse, LlmError> {
    let mut o = Obj::new(value, "")?;
    match o.string("type")?.as_deref() {
        None | Some("message") => {}
        Some(other) => {
            return Err(invalid("type", format!("expected message, got {other:?}")));
        }
    }
    o.take("role");
    let id = o.string("id")?.unwrap_or_default();
    let model = o.string("model")?.unwrap_or_default();
    let blocks = o
        .array("content")?
        .ok_or_else(|| invalid("content", "required"))?;
    let mut parts = Vec::new();
    let mut tool_calls = Vec::new();
    for (i, b) in blocks.into_iter().enumerate() {
        let at = index("content", i);
        match b.get("type").and_then(Value::as_str) {
            Some("tool_use") => tool_calls.push(decode_tool_use(b, &at)?),
            Some("text") => {
                let mut t = Obj::new(b, &at)?;
                t.take("type");
                let text = t.req_string("text")?;
                parts.push(Part::Text(TextPart {
                    text,
                    extra: t.rest(),
                }));
            }
            Some(_) => parts.push(Part::Other(b)),
            None => return Err(invalid(&json::join(&at, "type"), "required")),
        }
    }
    let finish_reason = o
        .string("stop_reason")?
        .map(|s| finish_reason_from_wire(&s));
    let stop_sequence = o.string("stop_sequence")?;
    let usage = o.object("usage")?.map(usage_from_obj).transpose()?;
    let message = Message {
        role: Role::Assistant,
        content: (!parts.is_empty()).then_some(Content::Parts(parts)),
        tool_calls,
        ..Message::default()
    };
    Ok(ChatResponse {
        id,
        model,
        created: None,
        choices: vec![Choice {
            index: 0,
            message,
            finish_reason,
            stop_sequence,
            extra: Default::default(),
        }],
        usage,
        source: Some(Format::Anthropic),
        extra: o.rest(),
    })
}

/// Encodes a response body. Only the first choice is expressed (Anthropic has one). Tool-call
/// arguments that are not a JSON object are an [`LlmError::Protocol`] error.
pub fn encode_response(resp: &ChatResponse) -> Result<Vec<u8>, LlmError> {
    let v = response_to_value(resp)?;
    serde_json::to_vec(&v).map_err(|e| LlmError::Json(e.to_string()))
}

/// Encodes a response as a JSON value.
pub fn response_to_value(resp: &ChatResponse) -> Result<Value, LlmError> {
    let native = resp.source == Some(Format::Anthropic);
    let mut m = base(&resp.extra, native);
    m.insert("id".into(), resp.id.clone().into());
    m.insert("type".into(), "message".into());
    m.insert("role".into(), "assistant".into());
    m.insert("model".into(), resp.model.clone().into());
    let choice = resp.choices.first();
    let mut blocks = Vec::new();
    if let Some(c) = choice {
        for p in c.message.content.iter().flat_map(Content::parts) {
            if !native && matches!(&p, Part::Text(t) if t.text.is_empty()) {
                continue;
            }
            blocks.extend(encode_part(&p, native));
        }
        for (j, call) in c.message.tool_calls.iter().enumerate() {
            let at = format!("choices[0].message.tool_calls[{j}].function.arguments");
            blocks.push(encode_tool_use(call, native, &at).map_err(|e| e.upstream("response"))?);
        }
    }
    m.insert("content".into(), blocks.into());
    m.insert(
        "stop_reason".into(),
        choice
            .and_then(|c| c.finish_reason.as_ref())
            .map_or(Value::Null, |r| finish_reason_to_wire(r).into()),
    );
    m.insert(
        "stop_sequence".into(),
        choice
            .and_then(|c| c.stop_sequence.clone())
            .map_or(Value::Null, Value::from),
    );
    m.insert(
        "usage".into(),
        usage_to_value(&resp.usage.clone().unwrap_or_default(), native),
    );
    Ok(Value::Object(m))
}
