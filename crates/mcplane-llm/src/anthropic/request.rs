//! Anthropic Messages requests.

use super::DEFAULT_MAX_TOKENS;
use crate::chat::{
    ChatRequest, Content, FunctionTool, ImagePart, ImageSource, JsonSchemaFormat, Message, Part,
    ResponseFormat, Role, Sampling, Stop, TextPart, Tool, ToolCall, ToolChoice,
};
use crate::json::{self, Extra, Obj, base, index, invalid, nested, put, type_name};
use crate::{Format, LlmError, gemini};
use serde_json::{Value, json};

/// The instruction appended to `system` for OpenAI's JSON mode, which Anthropic lacks.
const JSON_MODE_INSTRUCTION: &str =
    "Respond with a single valid JSON object and nothing else: no prose, no code fences.";

/// Decodes a request body.
pub fn decode_request(body: &[u8]) -> Result<ChatRequest, LlmError> {
    request_from_value(json::parse(body)?)
}

/// Decodes a parsed request.
pub fn request_from_value(value: Value) -> Result<ChatRequest, LlmError> {
    let mut o = Obj::new(value, "")?;
    let model = o.req_string("model")?;
    let max_tokens = o
        .u32("max_tokens")?
        .ok_or_else(|| invalid("max_tokens", "required"))?;
    let mut messages = Vec::new();
    match o.take("system") {
        None => {}
        Some(Value::String(s)) => messages.push(Message::text(Role::System, s)),
        Some(Value::Array(blocks)) => {
            let parts = blocks
                .into_iter()
                .enumerate()
                .map(|(i, b)| decode_block_part(b, &index("system", i)))
                .collect::<Result<Vec<_>, _>>()?;
            messages.push(Message {
                role: Role::System,
                content: Some(Content::Parts(parts)),
                ..Message::default()
            });
        }
        Some(other) => {
            return Err(invalid(
                "system",
                format!(
                    "expected a string or an array of text blocks, got {}",
                    type_name(&other)
                ),
            ));
        }
    }
    let raw = o
        .array("messages")?
        .ok_or_else(|| invalid("messages", "required"))?;
    if raw.is_empty() {
        return Err(invalid("messages", "must contain at least one message"));
    }
    for (i, m) in raw.into_iter().enumerate() {
        decode_message(m, &index("messages", i), &mut messages)?;
    }
    let tools = o
        .array("tools")?
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, t)| decode_tool(t, &index("tools", i)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut tool_choice = None;
    let mut parallel_tool_calls = None;
    if let Some(v) = o.take("tool_choice") {
        match decode_tool_choice(v.clone(), &o.at("tool_choice"))? {
            Some((choice, parallel)) => {
                tool_choice = Some(choice);
                parallel_tool_calls = parallel;
            }
            None => o.keep_value("tool_choice", v),
        }
    }
    let mut user = None;
    if let Some(mut meta) = o.object("metadata")? {
        user = meta.string("user_id")?;
        o.keep("metadata", meta.rest());
    }
    let stop = o
        .array("stop_sequences")?
        .map(|a| {
            a.into_iter()
                .enumerate()
                .map(|(i, s)| json::string(s, &index("stop_sequences", i)))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?
        .map(Stop::Many);
    let sampling = Sampling {
        temperature: o.f64("temperature")?,
        top_p: o.f64("top_p")?,
        top_k: o.u32("top_k")?,
        max_tokens: Some(max_tokens),
        stop,
        ..Sampling::default()
    };
    let mut response_format = None;
    if let Some(mut oc) = o.object("output_config")? {
        if let Some(f) = oc.take("format") {
            match decode_output_format(&f) {
                Some(rf) => response_format = Some(rf),
                None => oc.keep_value("format", f),
            }
        }
        o.keep("output_config", oc.rest());
    }
    let stream = o.bool("stream")?.unwrap_or(false);
    Ok(ChatRequest {
        model,
        messages,
        tools,
        tool_choice,
        parallel_tool_calls,
        response_format,
        sampling,
        stream,
        include_usage: false,
        user,
        source: Some(Format::Anthropic),
        extra: o.rest(),
    })
}

fn decode_output_format(f: &Value) -> Option<ResponseFormat> {
    let o = f.as_object()?;
    if o.get("type")?.as_str()? != "json_schema" || o.len() != 2 {
        return None;
    }
    Some(ResponseFormat::JsonSchema(JsonSchemaFormat {
        name: "response".into(),
        schema: Some(o.get("schema")?.clone()),
        ..JsonSchemaFormat::default()
    }))
}

/// A content block that becomes a part (text, image, or anything else kept whole).
fn decode_block_part(value: Value, at: &str) -> Result<Part, LlmError> {
    let mut o = Obj::new(value, at)?;
    match o.peek_str("type") {
        Some("text") => {
            o.take("type");
            let text = o.req_string("text")?;
            Ok(Part::Text(TextPart {
                text,
                extra: o.rest(),
            }))
        }
        Some("image") => {
            let kind = o
                .peek("source")
                .and_then(|s| s.get("type"))
                .and_then(Value::as_str);
            if !matches!(kind, Some("base64" | "url")) {
                // A file id or another source kind: kept whole.
                return Ok(Part::Other(Value::Object(o.rest())));
            }
            o.take("type");
            let mut src = o.req_object("source")?;
            let source = match src.req_string("type")?.as_str() {
                "base64" => ImageSource::Base64 {
                    media_type: src.req_string("media_type")?,
                    data: src.req_string("data")?,
                },
                _ => ImageSource::Url(src.req_string("url")?),
            };
            o.keep("source", src.rest());
            Ok(Part::Image(ImagePart {
                source,
                detail: None,
                extra: o.rest(),
            }))
        }
        Some(_) => Ok(Part::Other(Value::Object(o.rest()))),
        None => Err(invalid(&o.at("type"), "required")),
    }
}

fn decode_message(value: Value, at: &str, out: &mut Vec<Message>) -> Result<(), LlmError> {
    let mut o = Obj::new(value, at)?;
    let role = match o.req_string("role")?.as_str() {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => {
            return Err(invalid(
                &o.at("role"),
                format!("unknown role {other:?} (expected user or assistant)"),
            ));
        }
    };
    let content_at = o.at("content");
    let content = o.required("content")?;
    let extra = o.rest();
    let blocks = match content {
        Value::String(s) => {
            out.push(Message {
                role,
                content: Some(Content::Text(s)),
                extra,
                ..Message::default()
            });
            return Ok(());
        }
        Value::Array(blocks) => blocks,
        other => {
            return Err(invalid(
                &content_at,
                format!(
                    "expected a string or an array of content blocks, got {}",
                    type_name(&other)
                ),
            ));
        }
    };
    if role == Role::Assistant {
        let mut parts = Vec::new();
        let mut tool_calls = Vec::new();
        for (i, b) in blocks.into_iter().enumerate() {
            let at = index(&content_at, i);
            if b.get("type").and_then(Value::as_str) == Some("tool_use") {
                tool_calls.push(decode_tool_use(b, &at)?);
            } else {
                parts.push(decode_block_part(b, &at)?);
            }
        }
        out.push(Message {
            role,
            content: (!parts.is_empty() || tool_calls.is_empty()).then_some(Content::Parts(parts)),
            tool_calls,
            extra,
            ..Message::default()
        });
        return Ok(());
    }
    // A user turn: tool results become tool messages, in order; other blocks user messages.
    let first = out.len();
    let mut parts = Vec::new();
    let mut any = false;
    for (i, b) in blocks.into_iter().enumerate() {
        let at = index(&content_at, i);
        if b.get("type").and_then(Value::as_str) == Some("tool_result") {
            if !parts.is_empty() {
                out.push(user_parts(std::mem::take(&mut parts)));
            }
            out.push(decode_tool_result(b, &at)?);
            any = true;
        } else {
            parts.push(decode_block_part(b, &at)?);
        }
    }
    if !parts.is_empty() || !any {
        out.push(user_parts(parts));
    }
    // Turn-level fields (none are documented) stay with the turn's user message, if any.
    if let Some(m) = out.get_mut(first).filter(|m| m.role == Role::User) {
        m.extra = extra;
    }
    Ok(())
}

fn user_parts(parts: Vec<Part>) -> Message {
    Message {
        role: Role::User,
        content: Some(Content::Parts(parts)),
        ..Message::default()
    }
}

pub(crate) fn decode_tool_use(value: Value, at: &str) -> Result<ToolCall, LlmError> {
    let mut o = Obj::new(value, at)?;
    o.take("type");
    let id = o.req_string("id")?;
    let name = o.req_string("name")?;
    let arguments = match o.take("input") {
        None => "{}".to_string(),
        Some(v) => v.to_string(),
    };
    Ok(ToolCall {
        id,
        name,
        arguments,
        extra: o.rest(),
    })
}

fn decode_tool_result(value: Value, at: &str) -> Result<Message, LlmError> {
    let mut o = Obj::new(value, at)?;
    o.take("type");
    let tool_use_id = o.req_string("tool_use_id")?;
    let content = match o.take("content") {
        None => Content::Text(String::new()),
        Some(v) => json::content(v, &o.at("content"), "blocks", decode_block_part)?,
    };
    let is_error = o.bool("is_error")?.unwrap_or(false);
    Ok(Message {
        role: Role::Tool,
        content: Some(content),
        tool_call_id: Some(tool_use_id),
        is_error,
        extra: o.rest(),
        ..Message::default()
    })
}

fn decode_tool(value: Value, at: &str) -> Result<Tool, LlmError> {
    let mut o = Obj::new(value, at)?;
    match o.peek_str("type") {
        None | Some("custom") => {}
        Some(_) => return Ok(Tool::Other(Value::Object(o.rest()))),
    }
    let name = o.req_string("name")?;
    let description = o.string("description")?;
    let parameters = o.take("input_schema");
    Ok(Tool::Function(FunctionTool {
        name,
        description,
        parameters,
        strict: None,
        extra: o.rest(),
    }))
}

/// `None` for a shape this crate does not model.
fn decode_tool_choice(
    value: Value,
    at: &str,
) -> Result<Option<(ToolChoice, Option<bool>)>, LlmError> {
    let mut o = Obj::new(value, at)?;
    let choice = match o.req_string("type")?.as_str() {
        "auto" => ToolChoice::Auto,
        "any" => ToolChoice::Required,
        "none" => ToolChoice::None,
        "tool" => ToolChoice::Function(o.req_string("name")?),
        _ => return Ok(None),
    };
    let parallel = o.bool("disable_parallel_tool_use")?.map(|d| !d);
    if !o.rest().is_empty() {
        return Ok(None);
    }
    Ok(Some((choice, parallel)))
}

/// Encodes a request body.
pub fn encode_request(req: &ChatRequest) -> Result<Vec<u8>, LlmError> {
    serde_json::to_vec(&request_to_value(req)?).map_err(|e| LlmError::Json(e.to_string()))
}

/// Encodes a request as a JSON value.
pub fn request_to_value(req: &ChatRequest) -> Result<Value, LlmError> {
    let native = req.source == Some(Format::Anthropic);
    if req.sampling.n.is_some_and(|n| n > 1) {
        return Err(LlmError::Unsupported {
            format: Format::Anthropic,
            what: "n > 1 (several choices)".into(),
        });
    }
    let mut m = base(&req.extra, native);
    m.insert("model".into(), req.model.clone().into());
    m.insert(
        "max_tokens".into(),
        req.sampling
            .max_output_tokens()
            .unwrap_or(DEFAULT_MAX_TOKENS)
            .into(),
    );
    if let Some(system) = encode_system(req, native) {
        m.insert("system".into(), system);
    }
    m.insert("messages".into(), encode_messages(req, native)?.into());
    let gemini_schemas = req.source == Some(Format::Gemini);
    let tools: Vec<Value> = req
        .tools
        .iter()
        .filter_map(|t| match t {
            Tool::Function(f) => {
                let mut tm = base(&f.extra, native);
                tm.insert("name".into(), f.name.clone().into());
                put(&mut tm, "description", f.description.clone());
                let schema = match &f.parameters {
                    Some(p) if gemini_schemas => gemini::schema_to_json_schema(p),
                    Some(p) => p.clone(),
                    None => json!({"type": "object", "properties": {}}),
                };
                tm.insert("input_schema".into(), schema);
                Some(Value::Object(tm))
            }
            Tool::Other(v) => native.then(|| v.clone()),
        })
        .collect();
    let has_tools = !tools.is_empty();
    if has_tools {
        m.insert("tools".into(), tools.into());
    }
    if has_tools || native {
        let choice = match &req.tool_choice {
            Some(ToolChoice::Auto) => Some(json!({"type": "auto"})),
            Some(ToolChoice::Required) => Some(json!({"type": "any"})),
            Some(ToolChoice::None) => Some(json!({"type": "none"})),
            Some(ToolChoice::Function(name)) => Some(json!({"type": "tool", "name": name})),
            None if req.parallel_tool_calls.is_some() => Some(json!({"type": "auto"})),
            None => None,
        };
        if let Some(Value::Object(mut c)) = choice {
            put(
                &mut c,
                "disable_parallel_tool_use",
                req.parallel_tool_calls.map(|p| !p),
            );
            m.insert("tool_choice".into(), Value::Object(c));
        }
    }
    encode_sampling(&req.sampling, native, &mut m);
    if let Some(user) = &req.user {
        nested(&mut m, "metadata", |meta| {
            meta.insert("user_id".into(), user.clone().into());
        });
    }
    if let Some(ResponseFormat::JsonSchema(s)) = &req.response_format {
        let schema = s
            .schema
            .clone()
            .unwrap_or_else(|| json!({"type": "object"}));
        nested(&mut m, "output_config", |oc| {
            oc.insert(
                "format".into(),
                json!({"type": "json_schema", "schema": schema}),
            );
        });
    }
    if req.stream {
        m.insert("stream".into(), true.into());
    }
    Ok(Value::Object(m))
}

fn encode_sampling(s: &Sampling, native: bool, m: &mut Extra) {
    let temperature = if native {
        s.temperature
    } else {
        s.temperature.map(|t| t.clamp(0.0, 1.0))
    };
    put(m, "temperature", temperature);
    put(m, "top_p", s.top_p);
    put(m, "top_k", s.top_k);
    if let Some(stop) = &s.stop {
        m.insert("stop_sequences".into(), stop.sequences().into());
    }
}

/// `system`: a string when every instruction is plain text, text blocks otherwise.
fn encode_system(req: &ChatRequest, native: bool) -> Option<Value> {
    let instructions: Vec<&Message> = req
        .messages
        .iter()
        .filter(|m| m.role.is_instruction())
        .collect();
    let json_mode = req.response_format == Some(ResponseFormat::JsonObject);
    let plain = instructions
        .iter()
        .all(|m| matches!(m.content, Some(Content::Text(_)) | None));
    if plain {
        let mut texts: Vec<String> = instructions.iter().map(|m| m.text_content()).collect();
        if json_mode {
            texts.push(JSON_MODE_INSTRUCTION.into());
        }
        return (!texts.is_empty()).then(|| texts.join("\n\n").into());
    }
    let mut blocks: Vec<Value> = instructions
        .iter()
        .flat_map(|m| m.content.iter().flat_map(Content::parts))
        .filter_map(|p| encode_part(&p, native))
        .collect();
    if json_mode {
        blocks.push(json!({"type": "text", "text": JSON_MODE_INSTRUCTION}));
    }
    Some(blocks.into())
}

fn encode_messages(req: &ChatRequest, native: bool) -> Result<Vec<Value>, LlmError> {
    let mut out: Vec<Value> = Vec::new();
    // Index in `out` of a user turn built from tool results, which later tool results and the
    // next user message join.
    let mut tool_turn: Option<usize> = None;
    for (i, msg) in req.messages.iter().enumerate() {
        match msg.role {
            Role::System | Role::Developer => continue,
            Role::Tool => {
                let block = encode_tool_result(msg, native);
                match tool_turn.and_then(|t| out.get_mut(t)) {
                    Some(turn) => push_block(turn, block),
                    None => {
                        let mut turn = base(&msg.extra, false);
                        turn.insert("role".into(), "user".into());
                        turn.insert("content".into(), vec![block].into());
                        out.push(Value::Object(turn));
                        tool_turn = Some(out.len() - 1);
                    }
                }
            }
            Role::User => {
                let content = encode_content(msg.content.as_ref(), native);
                if let Some(turn) = tool_turn.take().and_then(|t| out.get_mut(t)) {
                    for block in content_blocks(content) {
                        push_block(turn, block);
                    }
                    continue;
                }
                if !native && is_empty_content(&content) {
                    continue;
                }
                let mut mm = base(&msg.extra, native);
                mm.insert("role".into(), "user".into());
                mm.insert("content".into(), content);
                out.push(Value::Object(mm));
            }
            Role::Assistant => {
                tool_turn = None;
                let mut blocks = Vec::new();
                let plain = match &msg.content {
                    Some(Content::Text(t)) if msg.tool_calls.is_empty() => Some(t.clone()),
                    _ => None,
                };
                if plain.is_none() {
                    for p in msg.content.iter().flat_map(Content::parts) {
                        if matches!(&p, Part::Text(t) if t.text.is_empty()) && !native {
                            continue;
                        }
                        blocks.extend(encode_part(&p, native));
                    }
                    for (j, call) in msg.tool_calls.iter().enumerate() {
                        let at = format!("messages[{i}].tool_calls[{j}].function.arguments");
                        blocks.push(encode_tool_use(call, native, &at)?);
                    }
                }
                let content: Value = match plain {
                    Some(t) => t.into(),
                    None => blocks.into(),
                };
                if !native && is_empty_content(&content) {
                    continue;
                }
                let mut mm = base(&msg.extra, native);
                mm.insert("role".into(), "assistant".into());
                mm.insert("content".into(), content);
                out.push(Value::Object(mm));
            }
        }
    }
    Ok(out)
}

fn is_empty_content(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => true,
    }
}

fn content_blocks(content: Value) -> Vec<Value> {
    match content {
        Value::String(s) if s.is_empty() => Vec::new(),
        Value::String(s) => vec![json!({"type": "text", "text": s})],
        Value::Array(a) => a,
        _ => Vec::new(),
    }
}

fn push_block(turn: &mut Value, block: Value) {
    if let Some(Value::Array(blocks)) = turn.get_mut("content") {
        blocks.push(block);
    }
}

/// Content as Anthropic takes it: a string stays a string, parts become blocks (empty text
/// and parts Anthropic cannot express dropped when not native).
fn encode_content(content: Option<&Content>, native: bool) -> Value {
    match content {
        None => Value::Array(Vec::new()),
        Some(Content::Text(t)) => t.clone().into(),
        Some(Content::Parts(parts)) => parts
            .iter()
            .filter(|p| native || !matches!(p, Part::Text(t) if t.text.is_empty()))
            .filter_map(|p| encode_part(p, native))
            .collect::<Vec<_>>()
            .into(),
    }
}

pub(crate) fn encode_part(p: &Part, native: bool) -> Option<Value> {
    match p {
        Part::Text(t) => {
            let mut m = base(&t.extra, native);
            m.insert("type".into(), "text".into());
            m.insert("text".into(), t.text.clone().into());
            Some(Value::Object(m))
        }
        Part::Image(img) => {
            let mut m = base(&img.extra, native);
            m.insert("type".into(), "image".into());
            nested(&mut m, "source", |s| match &img.source {
                ImageSource::Base64 { media_type, data } => {
                    s.insert("type".into(), "base64".into());
                    s.insert("media_type".into(), media_type.clone().into());
                    s.insert("data".into(), data.clone().into());
                }
                ImageSource::Url(url) => {
                    s.insert("type".into(), "url".into());
                    s.insert("url".into(), url.clone().into());
                }
            });
            Some(Value::Object(m))
        }
        Part::Other(v) => native.then(|| v.clone()),
    }
}

pub(crate) fn encode_tool_use(call: &ToolCall, native: bool, at: &str) -> Result<Value, LlmError> {
    let mut m = base(&call.extra, native);
    m.insert("type".into(), "tool_use".into());
    m.insert("id".into(), call.id.clone().into());
    m.insert("name".into(), call.name.clone().into());
    m.insert("input".into(), json::arguments_object(&call.arguments, at)?);
    Ok(Value::Object(m))
}

fn encode_tool_result(msg: &Message, native: bool) -> Value {
    let mut m = base(&msg.extra, native);
    m.insert("type".into(), "tool_result".into());
    m.insert(
        "tool_use_id".into(),
        msg.tool_call_id.clone().unwrap_or_default().into(),
    );
    match &msg.content {
        None => {}
        Some(c) => {
            m.insert("content".into(), encode_content(Some(c), native));
        }
    }
    if msg.is_error {
        m.insert("is_error".into(), true.into());
    }
    Value::Object(m)
}
