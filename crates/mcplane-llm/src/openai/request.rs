//! OpenAI Chat Completions requests.

use crate::chat::{
    ChatRequest, Content, FunctionTool, ImagePart, ImageSource, JsonSchemaFormat, Message, Part,
    ResponseFormat, Role, Sampling, Stop, TextPart, Tool, ToolCall, ToolChoice,
};
use crate::json::{self, Extra, Obj, base, index, invalid, nested, put, type_name};
use crate::{Format, LlmError, gemini};
use serde_json::{Value, json};

/// Decodes a request body.
pub fn decode_request(body: &[u8]) -> Result<ChatRequest, LlmError> {
    request_from_value(json::parse(body)?)
}

/// Decodes a parsed request.
pub fn request_from_value(value: Value) -> Result<ChatRequest, LlmError> {
    let mut o = Obj::new(value, "")?;
    let model = o.req_string("model")?;
    let raw_messages = o
        .array("messages")?
        .ok_or_else(|| invalid("messages", "required"))?;
    if raw_messages.is_empty() {
        return Err(invalid("messages", "must contain at least one message"));
    }
    let messages = raw_messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| decode_message(m, &index("messages", i), false))
        .collect::<Result<Vec<_>, _>>()?;
    let tools = o
        .array("tools")?
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, t)| decode_tool(t, &index("tools", i)))
        .collect::<Result<Vec<_>, _>>()?;
    let tool_choice = match o.take("tool_choice") {
        None => None,
        Some(v) => match decode_tool_choice(&v, &o.at("tool_choice"))? {
            Some(c) => Some(c),
            None => {
                // A shape this crate does not model (e.g. `allowed_tools`): relayed as is.
                o.keep_value("tool_choice", v);
                None
            }
        },
    };
    let parallel_tool_calls = o.bool("parallel_tool_calls")?;
    let response_format = match o.take("response_format") {
        None => None,
        Some(v) => match decode_response_format(v.clone(), &o.at("response_format"))? {
            Some(f) => Some(f),
            None => {
                o.keep_value("response_format", v);
                None
            }
        },
    };
    let stop = match o.take("stop") {
        None => None,
        Some(v) => Some(match json::text_or_items(v, "stop", "strings")? {
            json::TextOrItems::Text(s) => Stop::One(s),
            json::TextOrItems::Items(a) => Stop::Many(
                a.into_iter()
                    .enumerate()
                    .map(|(i, s)| json::string(s, &index("stop", i)))
                    .collect::<Result<_, _>>()?,
            ),
        }),
    };
    let n = o.u32("n")?;
    if n == Some(0) {
        return Err(invalid("n", "must be at least 1"));
    }
    let sampling = Sampling {
        temperature: o.f64("temperature")?,
        top_p: o.f64("top_p")?,
        top_k: None,
        max_tokens: o.u32("max_tokens")?,
        max_completion_tokens: o.u32("max_completion_tokens")?,
        stop,
        seed: o.i64("seed")?,
        n,
        presence_penalty: o.f64("presence_penalty")?,
        frequency_penalty: o.f64("frequency_penalty")?,
    };
    let stream = o.bool("stream")?.unwrap_or(false);
    let mut include_usage = false;
    if let Some(mut so) = o.object("stream_options")? {
        include_usage = so.bool("include_usage")?.unwrap_or(false);
        o.keep("stream_options", so.rest());
    }
    let user = o.string("user")?;
    Ok(ChatRequest {
        model,
        messages,
        tools,
        tool_choice,
        parallel_tool_calls,
        response_format,
        sampling,
        stream,
        include_usage,
        user,
        source: Some(Format::OpenAi),
        extra: o.rest(),
    })
}

/// Decodes one message (`response`: an assistant message of a response, whose content may be
/// absent).
pub(crate) fn decode_message(value: Value, at: &str, response: bool) -> Result<Message, LlmError> {
    let mut o = Obj::new(value, at)?;
    let role_name = o.req_string("role")?;
    let role = match role_name.as_str() {
        "system" => Role::System,
        "developer" => Role::Developer,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "tool" => Role::Tool,
        other => {
            return Err(invalid(
                &o.at("role"),
                format!(
                    "unknown role {other:?} (expected system, developer, user, assistant or tool)"
                ),
            ));
        }
    };
    let content = match o.take("content") {
        None => None,
        Some(v) => Some(json::content(
            v,
            &o.at("content"),
            "content parts",
            decode_part,
        )?),
    };
    if content.is_none()
        && !response
        && matches!(
            role,
            Role::System | Role::Developer | Role::User | Role::Tool
        )
    {
        return Err(invalid(&o.at("content"), "required"));
    }
    let name = o.string("name")?;
    let tool_calls = match o.array("tool_calls")? {
        None => Vec::new(),
        Some(calls) => {
            let at = o.at("tool_calls");
            calls
                .into_iter()
                .enumerate()
                .map(|(i, c)| decode_tool_call(c, &index(&at, i)))
                .collect::<Result<_, _>>()?
        }
    };
    let tool_call_id = o.string("tool_call_id")?;
    if role == Role::Tool && tool_call_id.is_none() {
        return Err(invalid(
            &o.at("tool_call_id"),
            "required for a tool message",
        ));
    }
    Ok(Message {
        role,
        content,
        name,
        tool_calls,
        tool_call_id,
        is_error: false,
        extra: o.rest(),
    })
}

fn decode_part(value: Value, at: &str) -> Result<Part, LlmError> {
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
        Some("image_url") => {
            o.take("type");
            let (url, detail) = match o.required("image_url")? {
                Value::String(url) => (url, None),
                other => {
                    let mut iu = Obj::new(other, &o.at("image_url"))?;
                    let url = iu.req_string("url")?;
                    let detail = iu.string("detail")?;
                    o.keep("image_url", iu.rest());
                    (url, detail)
                }
            };
            Ok(Part::Image(ImagePart {
                source: ImageSource::from_url(url),
                detail,
                extra: o.rest(),
            }))
        }
        Some(_) => Ok(Part::Other(Value::Object(o.rest()))),
        None => Err(invalid(&o.at("type"), "required")),
    }
}

pub(crate) fn decode_tool_call(value: Value, at: &str) -> Result<ToolCall, LlmError> {
    let mut o = Obj::new(value, at)?;
    let id = o.req_string("id")?;
    match o.string("type")?.as_deref() {
        None | Some("function") => {}
        Some(other) => {
            return Err(invalid(
                &o.at("type"),
                format!("only function tool calls are supported, got {other:?}"),
            ));
        }
    }
    let mut f = o.req_object("function")?;
    let name = f.req_string("name")?;
    let arguments = match f.take("arguments") {
        None => String::new(),
        Some(Value::String(s)) => s,
        // Lenient: some clients send the arguments as an object.
        Some(other) => other.to_string(),
    };
    o.keep("function", f.rest());
    Ok(ToolCall {
        id,
        name,
        arguments,
        extra: o.rest(),
    })
}

fn decode_tool(value: Value, at: &str) -> Result<Tool, LlmError> {
    let mut o = Obj::new(value, at)?;
    if o.peek_str("type") != Some("function") {
        if !o.has("type") {
            return Err(invalid(&o.at("type"), "required"));
        }
        return Ok(Tool::Other(Value::Object(o.rest())));
    }
    o.take("type");
    let mut f = o.req_object("function")?;
    let tool = FunctionTool {
        name: f.req_string("name")?,
        description: f.string("description")?,
        parameters: f.take("parameters"),
        strict: f.bool("strict")?,
        extra: Extra::new(),
    };
    o.keep("function", f.rest());
    Ok(Tool::Function(FunctionTool {
        extra: o.rest(),
        ..tool
    }))
}

/// `None` for a shape this crate does not model.
fn decode_tool_choice(value: &Value, at: &str) -> Result<Option<ToolChoice>, LlmError> {
    match value {
        Value::String(s) => match s.as_str() {
            "none" => Ok(Some(ToolChoice::None)),
            "auto" => Ok(Some(ToolChoice::Auto)),
            "required" => Ok(Some(ToolChoice::Required)),
            other => Err(invalid(
                at,
                format!("unknown tool choice {other:?} (expected none, auto or required)"),
            )),
        },
        Value::Object(o) => {
            if o.get("type").and_then(Value::as_str) != Some("function") {
                return Ok(None);
            }
            match o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
            {
                Some(name) if o.len() == 2 => Ok(Some(ToolChoice::Function(name.to_string()))),
                Some(_) => Ok(None),
                None => Err(invalid(&format!("{at}.function.name"), "required")),
            }
        }
        other => Err(invalid(
            at,
            format!("expected a string or an object, got {}", type_name(other)),
        )),
    }
}

/// `None` for a shape this crate does not model.
fn decode_response_format(value: Value, at: &str) -> Result<Option<ResponseFormat>, LlmError> {
    let mut o = Obj::new(value, at)?;
    let ty = o.req_string("type")?;
    let format = match ty.as_str() {
        "text" => ResponseFormat::Text,
        "json_object" => ResponseFormat::JsonObject,
        "json_schema" => {
            let mut s = o.req_object("json_schema")?;
            let f = JsonSchemaFormat {
                name: s.req_string("name")?,
                description: s.string("description")?,
                schema: s.take("schema"),
                strict: s.bool("strict")?,
            };
            if !s.rest().is_empty() {
                return Ok(None);
            }
            ResponseFormat::JsonSchema(f)
        }
        _ => return Ok(None),
    };
    if o.rest().is_empty() {
        Ok(Some(format))
    } else {
        Ok(None)
    }
}

/// Encodes a request body.
pub fn encode_request(req: &ChatRequest) -> Result<Vec<u8>, LlmError> {
    serde_json::to_vec(&request_to_value(req)?).map_err(|e| LlmError::Json(e.to_string()))
}

/// Encodes a request as a JSON value.
pub fn request_to_value(req: &ChatRequest) -> Result<Value, LlmError> {
    let native = req.source == Some(Format::OpenAi);
    let mut m = base(&req.extra, native);
    m.insert("model".into(), req.model.clone().into());
    let messages: Vec<Value> = req
        .messages
        .iter()
        .filter_map(|msg| encode_message(msg, native, false))
        .collect();
    m.insert("messages".into(), messages.into());
    let gemini_schemas = req.source == Some(Format::Gemini);
    let tools: Vec<Value> = req
        .tools
        .iter()
        .filter_map(|t| match t {
            Tool::Function(f) => Some(encode_tool(f, native, gemini_schemas)),
            Tool::Other(v) => native.then(|| v.clone()),
        })
        .collect();
    if !tools.is_empty() {
        m.insert("tools".into(), tools.into());
    }
    if let Some(choice) = &req.tool_choice {
        m.insert(
            "tool_choice".into(),
            match choice {
                ToolChoice::None => "none".into(),
                ToolChoice::Auto => "auto".into(),
                ToolChoice::Required => "required".into(),
                ToolChoice::Function(name) => {
                    json!({"type": "function", "function": {"name": name}})
                }
            },
        );
    }
    put(&mut m, "parallel_tool_calls", req.parallel_tool_calls);
    if let Some(f) = &req.response_format {
        m.insert(
            "response_format".into(),
            encode_response_format(f, gemini_schemas),
        );
    }
    encode_sampling(&req.sampling, &mut m);
    if req.stream {
        m.insert("stream".into(), true.into());
        if req.include_usage {
            nested(&mut m, "stream_options", |so| {
                so.insert("include_usage".into(), true.into());
            });
        }
    }
    put(&mut m, "user", req.user.clone());
    Ok(Value::Object(m))
}

fn encode_sampling(s: &Sampling, m: &mut Extra) {
    put(m, "temperature", s.temperature);
    put(m, "top_p", s.top_p);
    put(m, "max_tokens", s.max_tokens);
    put(m, "max_completion_tokens", s.max_completion_tokens);
    match &s.stop {
        Some(Stop::One(one)) => {
            m.insert("stop".into(), one.clone().into());
        }
        Some(Stop::Many(many)) => {
            m.insert("stop".into(), many.clone().into());
        }
        None => {}
    }
    put(m, "seed", s.seed);
    put(m, "n", s.n);
    put(m, "presence_penalty", s.presence_penalty);
    put(m, "frequency_penalty", s.frequency_penalty);
}

fn encode_response_format(f: &ResponseFormat, gemini_schema: bool) -> Value {
    match f {
        ResponseFormat::Text => json!({"type": "text"}),
        ResponseFormat::JsonObject => json!({"type": "json_object"}),
        ResponseFormat::JsonSchema(s) => {
            let mut js = Extra::new();
            js.insert("name".into(), s.name.clone().into());
            put(&mut js, "description", s.description.clone());
            put(
                &mut js,
                "schema",
                s.schema.as_ref().map(|v| {
                    if gemini_schema {
                        gemini::schema_to_json_schema(v)
                    } else {
                        v.clone()
                    }
                }),
            );
            put(&mut js, "strict", s.strict);
            json!({"type": "json_schema", "json_schema": js})
        }
    }
}

fn encode_tool(f: &FunctionTool, native: bool, gemini_schema: bool) -> Value {
    let mut m = base(&f.extra, native);
    m.insert("type".into(), "function".into());
    nested(&mut m, "function", |func| {
        func.insert("name".into(), f.name.clone().into());
        put(func, "description", f.description.clone());
        put(
            func,
            "parameters",
            f.parameters.as_ref().map(|p| {
                if gemini_schema {
                    gemini::schema_to_json_schema(p)
                } else {
                    p.clone()
                }
            }),
        );
        put(func, "strict", f.strict);
    });
    Value::Object(m)
}

/// Encodes one message; `None` when nothing of it can be expressed. `response`: the message
/// of a response, whose content is always a string or null.
pub(crate) fn encode_message(msg: &Message, native: bool, response: bool) -> Option<Value> {
    let mut m = base(&msg.extra, native);
    m.insert("role".into(), msg.role.as_str().into());
    let content = match &msg.content {
        None => Value::Null,
        Some(Content::Text(t)) => t.clone().into(),
        Some(Content::Parts(parts)) if native && !response => parts
            .iter()
            .filter_map(|p| encode_part(p, true))
            .collect::<Vec<_>>()
            .into(),
        Some(Content::Parts(parts)) => {
            let all_text = parts.iter().all(|p| matches!(p, Part::Text(_)));
            if all_text || response || matches!(msg.role, Role::Assistant | Role::Tool) {
                // OpenAI responses, assistant and tool messages carry text; from another
                // format, text-only content becomes one string too.
                let sep = if response { "" } else { "\n" };
                let text = text_of(parts, sep);
                if text.is_empty() && !msg.tool_calls.is_empty() {
                    Value::Null
                } else {
                    text.into()
                }
            } else {
                let parts: Vec<Value> =
                    parts.iter().filter_map(|p| encode_part(p, false)).collect();
                if parts.is_empty() {
                    Value::Null
                } else {
                    parts.into()
                }
            }
        }
    };
    if content.is_null() && msg.role != Role::Assistant {
        return None;
    }
    // OpenAI has no error flag on tool results: say it in the content.
    let content = match content {
        Value::String(s) if msg.is_error && !native => format!("Error: {s}").into(),
        other => other,
    };
    m.insert("content".into(), content);
    if msg.role != Role::Tool || native {
        put(&mut m, "name", msg.name.clone());
    }
    if !msg.tool_calls.is_empty() {
        let calls: Vec<Value> = msg
            .tool_calls
            .iter()
            .map(|c| encode_tool_call(c, native))
            .collect();
        m.insert("tool_calls".into(), calls.into());
    }
    put(&mut m, "tool_call_id", msg.tool_call_id.clone());
    Some(Value::Object(m))
}

pub(crate) fn encode_tool_call(c: &ToolCall, native: bool) -> Value {
    let mut m = base(&c.extra, native);
    m.insert("id".into(), c.id.clone().into());
    m.insert("type".into(), "function".into());
    nested(&mut m, "function", |f| {
        f.insert("name".into(), c.name.clone().into());
        f.insert("arguments".into(), c.arguments.clone().into());
    });
    Value::Object(m)
}

/// The text parts joined with `sep`.
pub(crate) fn text_of(parts: &[Part], sep: &str) -> String {
    parts
        .iter()
        .filter_map(|p| match p {
            Part::Text(t) => Some(t.text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(sep)
}

fn encode_part(p: &Part, native: bool) -> Option<Value> {
    match p {
        Part::Text(t) => {
            let mut m = base(&t.extra, native);
            m.insert("type".into(), "text".into());
            m.insert("text".into(), t.text.clone().into());
            Some(Value::Object(m))
        }
        Part::Image(img) => {
            let mut m = base(&img.extra, native);
            m.insert("type".into(), "image_url".into());
            nested(&mut m, "image_url", |iu| {
                iu.insert("url".into(), img.source.to_url().into());
                put(iu, "detail", img.detail.clone());
            });
            Some(Value::Object(m))
        }
        Part::Other(v) => native.then(|| v.clone()),
    }
}
