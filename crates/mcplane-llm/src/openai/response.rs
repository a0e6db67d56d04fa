//! OpenAI Chat Completions responses and usage.

use super::request::{decode_message, encode_message};
use super::{finish_reason_from_wire, finish_reason_to_wire};
use crate::Format;
use crate::LlmError;
use crate::chat::{ChatResponse, Choice, Role};
use crate::json::{self, Extra, Obj, base, index, invalid, nested, put};
use crate::usage::Usage;
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
    let id = o.string("id")?.unwrap_or_default();
    let model = o.string("model")?.unwrap_or_default();
    let created = o.u64("created")?;
    o.take("object");
    let raw = o
        .array("choices")?
        .ok_or_else(|| invalid("choices", "required"))?;
    let choices = raw
        .into_iter()
        .enumerate()
        .map(|(i, c)| decode_choice(c, &index("choices", i), i))
        .collect::<Result<Vec<_>, _>>()?;
    let usage = o.object("usage")?.map(usage_from_obj).transpose()?;
    Ok(ChatResponse {
        id,
        model,
        created,
        choices,
        usage,
        source: Some(Format::OpenAi),
        extra: o.rest(),
    })
}

fn decode_choice(value: Value, at: &str, position: usize) -> Result<Choice, LlmError> {
    let mut o = Obj::new(value, at)?;
    let index = o.u32("index")?.unwrap_or(position as u32);
    let message = decode_message(o.required("message")?, &o.at("message"), true)?;
    if message.role != Role::Assistant {
        return Err(invalid(&o.at("message.role"), "expected assistant"));
    }
    let finish_reason = o
        .string("finish_reason")?
        .map(|s| finish_reason_from_wire(&s));
    Ok(Choice {
        index,
        message,
        finish_reason,
        stop_sequence: None,
        extra: o.rest(),
    })
}

/// Decodes an OpenAI `usage` object.
pub(crate) fn usage_from_value(value: Value, at: &str) -> Result<Usage, LlmError> {
    usage_from_obj(Obj::new(value, at)?)
}

fn usage_from_obj(mut o: Obj) -> Result<Usage, LlmError> {
    let prompt_tokens = o.u64("prompt_tokens")?.unwrap_or(0);
    let completion_tokens = o.u64("completion_tokens")?.unwrap_or(0);
    let total_tokens = o
        .u64("total_tokens")?
        .unwrap_or(prompt_tokens.saturating_add(completion_tokens));
    let mut cached_tokens = None;
    if let Some(mut d) = o.object("prompt_tokens_details")? {
        cached_tokens = d.u64("cached_tokens")?;
        o.keep("prompt_tokens_details", d.rest());
    }
    let mut reasoning_tokens = None;
    if let Some(mut d) = o.object("completion_tokens_details")? {
        reasoning_tokens = d.u64("reasoning_tokens")?;
        o.keep("completion_tokens_details", d.rest());
    }
    Ok(Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens,
        cached_tokens,
        cache_creation_tokens: None,
        reasoning_tokens,
        extra: o.rest(),
    })
}

/// Encodes usage as OpenAI's `usage` object (`native`: it was decoded from OpenAI).
pub(crate) fn usage_to_value(u: &Usage, native: bool) -> Value {
    let mut m = base(&u.extra, native);
    m.insert("prompt_tokens".into(), u.prompt_tokens.into());
    m.insert("completion_tokens".into(), u.completion_tokens.into());
    m.insert("total_tokens".into(), u.total_tokens.into());
    if let Some(c) = u.cached_tokens {
        nested(&mut m, "prompt_tokens_details", |d| {
            d.insert("cached_tokens".into(), c.into());
        });
    }
    if let Some(r) = u.reasoning_tokens {
        nested(&mut m, "completion_tokens_details", |d| {
            d.insert("reasoning_tokens".into(), r.into());
        });
    }
    Value::Object(m)
}

/// Encodes a response body. `created` is 0 when the response has none (set it first).
pub fn encode_response(resp: &ChatResponse) -> Result<Vec<u8>, LlmError> {
    serde_json::to_vec(&response_to_value(resp)).map_err(|e| LlmError::Json(e.to_string()))
}

/// Encodes a response as a JSON value.
pub fn response_to_value(resp: &ChatResponse) -> Value {
    let native = resp.source == Some(Format::OpenAi);
    let mut m = base(&resp.extra, native);
    m.insert("id".into(), resp.id.clone().into());
    m.insert("object".into(), "chat.completion".into());
    m.insert("created".into(), resp.created.unwrap_or(0).into());
    m.insert("model".into(), resp.model.clone().into());
    let choices: Vec<Value> = resp
        .choices
        .iter()
        .map(|c| {
            let mut cm = if native {
                c.extra.clone()
            } else {
                non_native_choice()
            };
            cm.insert("index".into(), c.index.into());
            let message =
                encode_message(&c.message, native, true).unwrap_or(Value::Object(Extra::new()));
            cm.insert("message".into(), message);
            cm.insert(
                "finish_reason".into(),
                c.finish_reason
                    .as_ref()
                    .map_or(Value::Null, |r| finish_reason_to_wire(r).into()),
            );
            Value::Object(cm)
        })
        .collect();
    m.insert("choices".into(), choices.into());
    put(
        &mut m,
        "usage",
        resp.usage.as_ref().map(|u| usage_to_value(u, native)),
    );
    Value::Object(m)
}

fn non_native_choice() -> Extra {
    let mut m = Extra::new();
    m.insert("logprobs".into(), Value::Null);
    m
}
