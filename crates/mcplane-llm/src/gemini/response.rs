//! Gemini `GenerateContentResponse`s.

use super::{
    decode_model_part, encode_part, finish_reason_from_wire, finish_reason_to_wire,
    function_call_part, salt_of, synthetic_id, usage_from_obj, usage_to_value,
};
use crate::chat::{ChatResponse, Choice, Content, Message, Part, Role};
use crate::json::{self, Obj, base, index, invalid, put};
use crate::{Format, LlmError};
use serde_json::Value;

/// Decodes a response body (an upstream answer: errors are [`LlmError::Protocol`]). Calls
/// without an id get synthetic ones salted with the response id, or a hash of the body.
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, LlmError> {
    let salt = salt_of(body);
    json::parse(body)
        .and_then(|v| response_from_value(v, &salt))
        .map_err(|e| e.upstream("response"))
}

/// Decodes a parsed response (`salt`: for synthetic call ids when there is no `responseId`).
pub fn response_from_value(value: Value, salt: &str) -> Result<ChatResponse, LlmError> {
    let mut o = Obj::new(value, "")?;
    let id = o.string("responseId")?.unwrap_or_default();
    let model = o.string("modelVersion")?.unwrap_or_default();
    let salt = if id.is_empty() {
        salt.to_string()
    } else {
        id.clone()
    };
    let mut n = 0;
    let mut choices = Vec::new();
    for (i, c) in o
        .array("candidates")?
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let mut next = || {
            let id = synthetic_id(&salt, n);
            n += 1;
            id
        };
        choices.push(decode_candidate(c, &index("candidates", i), i, &mut next)?);
    }
    let usage = o.object("usageMetadata")?.map(usage_from_obj).transpose()?;
    Ok(ChatResponse {
        id,
        model,
        created: None,
        choices,
        usage,
        source: Some(Format::Gemini),
        extra: o.rest(),
    })
}

pub(crate) fn decode_candidate(
    value: Value,
    at: &str,
    position: usize,
    next_id: &mut dyn FnMut() -> String,
) -> Result<Choice, LlmError> {
    let mut o = Obj::new(value, at)?;
    let index = o.u32("index")?.unwrap_or(position as u32);
    let mut parts = Vec::new();
    let mut calls = Vec::new();
    if let Some(mut content) = o.object("content")? {
        let parts_at = content.at("parts");
        for (i, p) in content
            .array("parts")?
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            decode_model_part(
                p,
                &json::index(&parts_at, i),
                &mut parts,
                &mut calls,
                next_id,
            )?;
        }
        match content.string("role")?.as_deref() {
            None | Some("model") => {}
            Some(other) => {
                return Err(invalid(
                    &content.at("role"),
                    format!("expected model, got {other:?}"),
                ));
            }
        }
        o.keep("content", content.rest());
    }
    let finish_reason = o
        .string("finishReason")?
        .map(|r| finish_reason_from_wire(&r, !calls.is_empty()));
    Ok(Choice {
        index,
        message: Message {
            role: Role::Assistant,
            content: (!parts.is_empty()).then_some(Content::Parts(parts)),
            tool_calls: calls,
            ..Message::default()
        },
        finish_reason,
        stop_sequence: None,
        extra: o.rest(),
    })
}

/// Encodes a response body.
pub fn encode_response(resp: &ChatResponse) -> Result<Vec<u8>, LlmError> {
    let v = response_to_value(resp)?;
    serde_json::to_vec(&v).map_err(|e| LlmError::Json(e.to_string()))
}

/// Encodes a response as a JSON value. Tool-call arguments that are not a JSON object are an
/// [`LlmError::Protocol`] error.
pub fn response_to_value(resp: &ChatResponse) -> Result<Value, LlmError> {
    let native = resp.source == Some(Format::Gemini);
    let mut m = base(&resp.extra, native);
    let mut candidates = Vec::new();
    for (ci, c) in resp.choices.iter().enumerate() {
        let mut parts: Vec<Value> = c
            .message
            .content
            .iter()
            .flat_map(Content::parts)
            .filter(|p| native || !matches!(p, Part::Text(t) if t.text.is_empty()))
            .filter_map(|p| encode_part(&p, native))
            .collect();
        for (j, call) in c.message.tool_calls.iter().enumerate() {
            let at = format!("choices[{ci}].message.tool_calls[{j}].function.arguments");
            parts.push(
                function_call_part(call, native, true, &at).map_err(|e| e.upstream("response"))?,
            );
        }
        let mut cm = base(&c.extra, native);
        let mut content = match cm.remove("content") {
            Some(Value::Object(content)) => content,
            _ => Default::default(),
        };
        content.insert("parts".into(), parts.into());
        content.insert("role".into(), "model".into());
        cm.insert("content".into(), Value::Object(content));
        put(
            &mut cm,
            "finishReason",
            c.finish_reason.as_ref().map(finish_reason_to_wire),
        );
        cm.insert("index".into(), c.index.into());
        candidates.push(Value::Object(cm));
    }
    m.insert("candidates".into(), candidates.into());
    put(
        &mut m,
        "usageMetadata",
        resp.usage.as_ref().map(|u| usage_to_value(u, native)),
    );
    m.insert("modelVersion".into(), resp.model.clone().into());
    if !resp.id.is_empty() {
        m.insert("responseId".into(), resp.id.clone().into());
    }
    Ok(Value::Object(m))
}
