//! Gemini `generateContent` requests.

use super::{
    decode_model_part, encode_part, function_call_part, function_response, function_response_text,
};
use crate::chat::{
    ChatRequest, Content, FunctionTool, ImagePart, ImageSource, JsonSchemaFormat, Message, Part,
    ResponseFormat, Role, Sampling, Stop, TextPart, Tool, ToolChoice,
};
use crate::json::{self, Extra, Obj, base, index, invalid, nested, put};
use crate::{Format, LlmError};
use serde_json::{Value, json};

/// Decodes a request body; `model` and `stream` come from the URL.
pub fn decode_request(body: &[u8], model: &str, stream: bool) -> Result<ChatRequest, LlmError> {
    request_from_value(json::parse(body)?, model, stream)
}

/// Decodes a parsed request.
pub fn request_from_value(
    value: Value,
    model: &str,
    stream: bool,
) -> Result<ChatRequest, LlmError> {
    let mut o = Obj::new(value, "")?;
    let mut messages = Vec::new();
    if let Some(mut si) = o.object("systemInstruction")? {
        let parts = si
            .array("parts")?
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, p)| user_part(p, &index("systemInstruction.parts", i)))
            .collect::<Result<Vec<_>, _>>()?;
        messages.push(Message {
            role: Role::System,
            content: Some(Content::Parts(parts)),
            extra: si.rest(),
            ..Message::default()
        });
    }
    let raw = o
        .array("contents")?
        .ok_or_else(|| invalid("contents", "required"))?;
    if raw.is_empty() {
        return Err(invalid("contents", "must contain at least one content"));
    }
    let mut ids = Ids::default();
    for (i, c) in raw.into_iter().enumerate() {
        decode_content(c, &index("contents", i), &mut ids, &mut messages)?;
    }
    let mut tools = Vec::new();
    for (i, t) in o
        .array("tools")?
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let at = index("tools", i);
        let mut t = Obj::new(t, &at)?;
        let decls_at = t.at("functionDeclarations");
        for (j, d) in t
            .array("functionDeclarations")?
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            tools.push(decode_declaration(d, &index(&decls_at, j))?);
        }
        let rest = t.rest();
        if !rest.is_empty() {
            tools.push(Tool::Other(Value::Object(rest)));
        }
    }
    let mut tool_choice = None;
    if let Some(mut tc) = o.object("toolConfig")? {
        if let Some(fcc) = tc.take("functionCallingConfig") {
            match decode_calling_config(&fcc) {
                Some(c) => tool_choice = Some(c),
                None => tc.keep_value("functionCallingConfig", fcc),
            }
        }
        o.keep("toolConfig", tc.rest());
    }
    let mut sampling = Sampling::default();
    let mut response_format = None;
    if let Some(mut g) = o.object("generationConfig")? {
        sampling = Sampling {
            temperature: g.f64("temperature")?,
            top_p: g.f64("topP")?,
            top_k: g.u32("topK")?,
            max_tokens: g.u32("maxOutputTokens")?,
            max_completion_tokens: None,
            stop: g
                .array("stopSequences")?
                .map(|a| {
                    a.into_iter()
                        .enumerate()
                        .map(|(i, s)| json::string(s, &index("generationConfig.stopSequences", i)))
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?
                .map(Stop::Many),
            seed: g.i64("seed")?,
            n: g.u32("candidateCount")?,
            presence_penalty: g.f64("presencePenalty")?,
            frequency_penalty: g.f64("frequencyPenalty")?,
        };
        match g.peek_str("responseMimeType") {
            Some("application/json") => {
                g.take("responseMimeType");
                let schema = g
                    .take("responseSchema")
                    .or_else(|| g.take("responseJsonSchema"));
                response_format = Some(match schema {
                    Some(schema) => ResponseFormat::JsonSchema(JsonSchemaFormat {
                        name: "response".into(),
                        schema: Some(schema),
                        ..JsonSchemaFormat::default()
                    }),
                    None => ResponseFormat::JsonObject,
                });
            }
            Some("text/plain") => {
                g.take("responseMimeType");
                response_format = Some(ResponseFormat::Text);
            }
            _ => {}
        }
        o.keep("generationConfig", g.rest());
    }
    Ok(ChatRequest {
        model: model.strip_prefix("models/").unwrap_or(model).to_string(),
        messages,
        tools,
        tool_choice,
        parallel_tool_calls: None,
        response_format,
        sampling,
        stream,
        include_usage: false,
        user: None,
        source: Some(Format::Gemini),
        extra: o.rest(),
    })
}

/// Synthetic ids for calls without one, and the calls still waiting for their response.
#[derive(Default)]
struct Ids {
    next: usize,
    pending: Vec<(String, String)>,
}

fn decode_content(
    value: Value,
    at: &str,
    ids: &mut Ids,
    out: &mut Vec<Message>,
) -> Result<(), LlmError> {
    let mut o = Obj::new(value, at)?;
    let role = o.string("role")?.unwrap_or_else(|| "user".into());
    let parts_at = o.at("parts");
    let raw = o.array("parts")?.unwrap_or_default();
    let extra = o.rest();
    match role.as_str() {
        "model" => {
            let mut parts = Vec::new();
            let mut calls = Vec::new();
            for (i, p) in raw.into_iter().enumerate() {
                let mut next = || {
                    let id = super::synthetic_id("", ids.next);
                    ids.next += 1;
                    id
                };
                decode_model_part(p, &index(&parts_at, i), &mut parts, &mut calls, &mut next)?;
            }
            ids.pending
                .extend(calls.iter().map(|c| (c.name.clone(), c.id.clone())));
            out.push(Message {
                role: Role::Assistant,
                content: (!parts.is_empty() || calls.is_empty()).then_some(Content::Parts(parts)),
                tool_calls: calls,
                extra,
                ..Message::default()
            });
        }
        "user" | "function" | "tool" => {
            let first = out.len();
            let mut parts = Vec::new();
            let mut any = false;
            for (i, p) in raw.into_iter().enumerate() {
                let at = index(&parts_at, i);
                if p.get("functionResponse").is_some() {
                    if !parts.is_empty() {
                        out.push(user(std::mem::take(&mut parts)));
                    }
                    out.push(decode_function_response(p, &at, ids)?);
                    any = true;
                } else {
                    parts.push(user_part(p, &at)?);
                }
            }
            if !parts.is_empty() || !any {
                out.push(user(parts));
            }
            if let Some(m) = out.get_mut(first).filter(|m| m.role == Role::User) {
                m.extra = extra;
            }
        }
        other => {
            return Err(invalid(
                &json::join(at, "role"),
                format!("unknown role {other:?} (expected user or model)"),
            ));
        }
    }
    Ok(())
}

fn user(parts: Vec<Part>) -> Message {
    Message {
        role: Role::User,
        content: Some(Content::Parts(parts)),
        ..Message::default()
    }
}

/// A part of a user turn (or of `systemInstruction`).
fn user_part(value: Value, at: &str) -> Result<Part, LlmError> {
    let mut o = Obj::new(value, at)?;
    if o.has("text") {
        let text = o.req_string("text")?;
        return Ok(Part::Text(TextPart {
            text,
            extra: o.rest(),
        }));
    }
    let image_mime = |o: &Obj, key: &str| {
        o.peek(key)
            .and_then(|d| d.get("mimeType"))
            .and_then(Value::as_str)
            .is_some_and(|m| m.starts_with("image/"))
    };
    if image_mime(&o, "inlineData") {
        let mut d = o.req_object("inlineData")?;
        let source = ImageSource::Base64 {
            media_type: d.req_string("mimeType")?,
            data: d.req_string("data")?,
        };
        o.keep("inlineData", d.rest());
        return Ok(Part::Image(ImagePart {
            source,
            detail: None,
            extra: o.rest(),
        }));
    }
    if image_mime(&o, "fileData")
        && o.peek("fileData")
            .is_some_and(|d| d.as_object().is_some_and(|d| d.len() == 2))
    {
        let mut d = o.req_object("fileData")?;
        d.take("mimeType");
        let source = ImageSource::Url(d.req_string("fileUri")?);
        return Ok(Part::Image(ImagePart {
            source,
            detail: None,
            extra: o.rest(),
        }));
    }
    Ok(Part::Other(Value::Object(o.rest())))
}

fn decode_function_response(value: Value, at: &str, ids: &mut Ids) -> Result<Message, LlmError> {
    let mut o = Obj::new(value, at)?;
    let mut fr = o.req_object("functionResponse")?;
    let name = fr.req_string("name")?;
    let response = fr.take("response").unwrap_or_else(|| json!({}));
    let id = match fr.string("id")? {
        Some(id) => {
            ids.pending.retain(|(_, pending)| *pending != id);
            id
        }
        None => match ids.pending.iter().position(|(n, _)| *n == name) {
            Some(pos) => ids.pending.remove(pos).1,
            None => {
                let id = super::synthetic_id("", ids.next);
                ids.next += 1;
                id
            }
        },
    };
    o.keep("functionResponse", fr.rest());
    let (text, is_error) = function_response_text(&response);
    Ok(Message {
        role: Role::Tool,
        content: Some(Content::Text(text)),
        name: Some(name),
        tool_call_id: Some(id),
        is_error,
        extra: o.rest(),
        ..Message::default()
    })
}

fn decode_declaration(value: Value, at: &str) -> Result<Tool, LlmError> {
    let mut o = Obj::new(value, at)?;
    let name = o.req_string("name")?;
    let description = o.string("description")?;
    let parameters = o
        .take("parameters")
        .or_else(|| o.take("parametersJsonSchema"));
    Ok(Tool::Function(FunctionTool {
        name,
        description,
        parameters,
        strict: None,
        extra: o.rest(),
    }))
}

fn decode_calling_config(v: &Value) -> Option<ToolChoice> {
    let o = v.as_object()?;
    let mode = o.get("mode")?.as_str()?;
    let allowed = o.get("allowedFunctionNames");
    match (mode, allowed, o.len()) {
        ("AUTO", None, 1) => Some(ToolChoice::Auto),
        ("NONE", None, 1) => Some(ToolChoice::None),
        ("ANY", None, 1) => Some(ToolChoice::Required),
        ("ANY", Some(Value::Array(names)), 2) if names.len() == 1 => {
            Some(ToolChoice::Function(names[0].as_str()?.to_string()))
        }
        _ => None,
    }
}

/// Encodes a request body (send it to [`super::generate_path`]).
pub fn encode_request(req: &ChatRequest) -> Result<Vec<u8>, LlmError> {
    serde_json::to_vec(&request_to_value(req)?).map_err(|e| LlmError::Json(e.to_string()))
}

/// Encodes a request as a JSON value.
pub fn request_to_value(req: &ChatRequest) -> Result<Value, LlmError> {
    let native = req.source == Some(Format::Gemini);
    let mut m = base(&req.extra, native);
    let instructions: Vec<Value> = req
        .messages
        .iter()
        .filter(|msg| msg.role.is_instruction())
        .flat_map(|msg| msg.content.iter().flat_map(Content::parts))
        .filter_map(|p| encode_part(&p, native))
        .collect();
    if !instructions.is_empty() {
        let si_extra = req
            .messages
            .iter()
            .find(|msg| msg.role.is_instruction())
            .map(|msg| base(&msg.extra, native))
            .unwrap_or_default();
        let mut si = si_extra;
        si.insert("parts".into(), instructions.into());
        m.insert("systemInstruction".into(), Value::Object(si));
    }
    m.insert("contents".into(), encode_contents(req, native)?.into());
    let mut decls = Vec::new();
    let mut others = Vec::new();
    for t in &req.tools {
        match t {
            Tool::Function(f) => {
                let mut d = base(&f.extra, native);
                d.insert("name".into(), f.name.clone().into());
                put(&mut d, "description", f.description.clone());
                if let Some(p) = &f.parameters {
                    if native {
                        d.insert("parameters".into(), p.clone());
                    } else {
                        d.insert("parametersJsonSchema".into(), p.clone());
                    }
                }
                decls.push(Value::Object(d));
            }
            Tool::Other(v) if native => others.push(v.clone()),
            Tool::Other(_) => {}
        }
    }
    let mut tools = Vec::new();
    if !decls.is_empty() {
        tools.push(json!({"functionDeclarations": decls}));
    }
    tools.extend(others);
    let has_tools = !tools.is_empty();
    if has_tools {
        m.insert("tools".into(), tools.into());
    }
    if let Some(choice) = &req.tool_choice
        && (has_tools || native)
    {
        let config = match choice {
            ToolChoice::Auto => json!({"mode": "AUTO"}),
            ToolChoice::None => json!({"mode": "NONE"}),
            ToolChoice::Required => json!({"mode": "ANY"}),
            ToolChoice::Function(name) => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
        };
        nested(&mut m, "toolConfig", |tc| {
            tc.insert("functionCallingConfig".into(), config);
        });
    }
    let s = &req.sampling;
    let mut g = Extra::new();
    put(&mut g, "temperature", s.temperature);
    put(&mut g, "topP", s.top_p);
    put(&mut g, "topK", s.top_k);
    put(&mut g, "maxOutputTokens", s.max_output_tokens());
    if let Some(stop) = &s.stop {
        g.insert("stopSequences".into(), stop.sequences().into());
    }
    put(&mut g, "candidateCount", s.n);
    put(&mut g, "seed", s.seed);
    put(&mut g, "presencePenalty", s.presence_penalty);
    put(&mut g, "frequencyPenalty", s.frequency_penalty);
    match &req.response_format {
        None => {}
        Some(ResponseFormat::Text) => {
            g.insert("responseMimeType".into(), "text/plain".into());
        }
        Some(ResponseFormat::JsonObject) => {
            g.insert("responseMimeType".into(), "application/json".into());
        }
        Some(ResponseFormat::JsonSchema(f)) => {
            g.insert("responseMimeType".into(), "application/json".into());
            if let Some(schema) = &f.schema {
                let key = if native {
                    "responseSchema"
                } else {
                    "responseJsonSchema"
                };
                g.insert(key.into(), schema.clone());
            }
        }
    }
    if !g.is_empty() {
        nested(&mut m, "generationConfig", |gc| gc.extend(g));
    }
    Ok(Value::Object(m))
}

fn encode_contents(req: &ChatRequest, native: bool) -> Result<Vec<Value>, LlmError> {
    let mut out: Vec<Value> = Vec::new();
    // Index in `out` of a user turn of function responses, which later responses join.
    let mut response_turn: Option<usize> = None;
    for (i, msg) in req.messages.iter().enumerate() {
        match msg.role {
            Role::System | Role::Developer => {}
            Role::Tool => {
                let name = match &msg.name {
                    Some(n) => n.clone(),
                    None => call_name(req, i)?,
                };
                let mut fr = serde_json::Map::new();
                fr.insert("name".into(), name.into());
                fr.insert(
                    "response".into(),
                    function_response(msg.content.as_ref(), msg.is_error),
                );
                if native
                    && let Some(id) = &msg.tool_call_id
                    && !id.starts_with(super::SYNTHETIC_ID_PREFIX)
                {
                    fr.insert("id".into(), id.clone().into());
                }
                let mut part = base(&msg.extra, native);
                let mut merged = match part.remove("functionResponse") {
                    Some(Value::Object(f)) => f,
                    _ => serde_json::Map::new(),
                };
                merged.extend(fr);
                part.insert("functionResponse".into(), Value::Object(merged));
                let part = Value::Object(part);
                match response_turn.and_then(|t| out.get_mut(t)) {
                    Some(Value::Object(turn)) => {
                        if let Some(Value::Array(parts)) = turn.get_mut("parts") {
                            parts.push(part);
                        }
                    }
                    _ => {
                        out.push(json!({"role": "user", "parts": [part]}));
                        response_turn = Some(out.len() - 1);
                    }
                }
            }
            Role::User => {
                let parts: Vec<Value> = msg
                    .content
                    .iter()
                    .flat_map(Content::parts)
                    .filter_map(|p| encode_part(&p, native))
                    .collect();
                // A user message right after function responses joins their turn.
                if let Some(Value::Object(turn)) = response_turn.take().and_then(|t| out.get_mut(t))
                    && !native
                {
                    if let Some(Value::Array(turn_parts)) = turn.get_mut("parts") {
                        turn_parts.extend(parts);
                    }
                    continue;
                }
                if parts.is_empty() && !native {
                    continue;
                }
                let mut c = base(&msg.extra, native);
                c.insert("role".into(), "user".into());
                c.insert("parts".into(), parts.into());
                out.push(Value::Object(c));
            }
            Role::Assistant => {
                response_turn = None;
                let mut parts: Vec<Value> = msg
                    .content
                    .iter()
                    .flat_map(Content::parts)
                    .filter(|p| native || !matches!(p, Part::Text(t) if t.text.is_empty()))
                    .filter_map(|p| encode_part(&p, native))
                    .collect();
                for (j, call) in msg.tool_calls.iter().enumerate() {
                    let at = format!("messages[{i}].tool_calls[{j}].function.arguments");
                    parts.push(function_call_part(call, native, native, &at)?);
                }
                if parts.is_empty() && !native {
                    continue;
                }
                let mut c = base(&msg.extra, native);
                c.insert("role".into(), "model".into());
                c.insert("parts".into(), parts.into());
                out.push(Value::Object(c));
            }
        }
    }
    Ok(out)
}

/// The function name of the call a tool message answers, from the earlier assistant messages.
fn call_name(req: &ChatRequest, i: usize) -> Result<String, LlmError> {
    let msg = &req.messages[i];
    let at = format!("messages[{i}].tool_call_id");
    let Some(id) = &msg.tool_call_id else {
        return Err(invalid(&at, "required (Gemini needs the function's name)"));
    };
    req.messages[..i]
        .iter()
        .rev()
        .flat_map(|m| m.tool_calls.iter())
        .find(|c| c.id == *id)
        .map(|c| c.name.clone())
        .ok_or_else(|| {
            invalid(
                &at,
                format!("no earlier assistant message has a tool call with id {id:?}"),
            )
        })
}
