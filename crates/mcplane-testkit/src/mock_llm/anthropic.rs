//! Anthropic Messages wire format: a `message` object with `text` / `tool_use` content blocks,
//! or its event stream, and errors as `{"type":"error","error":{"type","message"},"request_id"}`.
//!
//! Stream order, as Anthropic sends it: `message_start` (empty content, `stop_reason: null`,
//! input usage), then per block `content_block_start`, (`ping` after the first start),
//! `content_block_delta` (`text_delta`, or `input_json_delta` with `partial_json` starting with
//! an empty piece), `content_block_stop`; then `message_delta` (`stop_reason`, `stop_sequence`,
//! `usage.output_tokens`) and `message_stop`. Every event is `event: <type>\ndata: <json>\n\n`.
//! Requests need `anthropic-version` and the key, in `x-api-key` or `Authorization: Bearer` (the
//! Python SDK 2.x sends the latter).

use super::deliver::{Call, EventStream, Framing, Outcome, Rendered};
use super::fault::{Endpoint, Provider};
use super::reply::{self, Answer, Content, Prompt, Reply, ToolChoice, ToolDef, words};
use super::server::{Shared, run};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use http::StatusCode;
use http::request::Parts;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::sync::Arc;

// ---------------------------------------------------------------- handlers

/// `POST /v1/messages`.
pub(crate) async fn messages(State(s): State<Arc<Shared>>, req: Request) -> Response {
    run(&s, req, plan_messages).await
}

/// `POST /v1/messages/count_tokens`.
pub(crate) async fn count_tokens(State(s): State<Arc<Shared>>, req: Request) -> Response {
    run(&s, req, |s, seq, parts, body| {
        let reject = |r| Call::reject(Provider::Anthropic, Endpoint::CountTokens, r);
        if let Err(r) = check_headers(s, seq, parts) {
            return reject(r);
        }
        let req: MessagesRequest<'_> = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => return reject(invalid(seq, &format!("invalid JSON body: {e}"))),
        };
        let Some(model) = req.model.clone() else {
            return reject(invalid(seq, "model: Field required"));
        };
        let prompt = match prompt_of(req, seq) {
            Ok(p) => p,
            Err(r) => return reject(r),
        };
        let body = format!("{{\"input_tokens\":{}}}", prompt.prompt_tokens);
        Call {
            provider: Some(Provider::Anthropic),
            endpoint: Some(Endpoint::CountTokens),
            model: Some(model.into_owned()),
            stream: false,
            outcome: Outcome::Answer(Rendered::Json(body.into())),
        }
    })
    .await
}

/// `GET /v1/models` with `anthropic-version`.
pub(crate) async fn list_models(State(s): State<Arc<Shared>>, req: Request) -> Response {
    run(&s, req, |s, seq, parts, _| {
        if let Err(r) = check_headers(s, seq, parts) {
            return Call::reject(Provider::Anthropic, Endpoint::Models, r);
        }
        models_call(None, s.anthropic_models.clone())
    })
    .await
}

/// `GET /v1/models/{id}` with `anthropic-version`.
pub(crate) async fn get_model(State(s): State<Arc<Shared>>, req: Request) -> Response {
    run(&s, req, |s, seq, parts, _| {
        if let Err(r) = check_headers(s, seq, parts) {
            return Call::reject(Provider::Anthropic, Endpoint::Models, r);
        }
        let id = parts.uri.path().trim_start_matches("/v1/models/");
        let body = serde_json::to_vec(&ModelOut::new(id)).unwrap_or_default();
        models_call(Some(id.to_owned()), body.into())
    })
    .await
}

fn models_call(model: Option<String>, body: Bytes) -> Call {
    Call {
        provider: Some(Provider::Anthropic),
        endpoint: Some(Endpoint::Models),
        model,
        stream: false,
        outcome: Outcome::Answer(Rendered::Json(body)),
    }
}

#[derive(Serialize)]
struct ModelOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    display_name: &'a str,
    created_at: &'static str,
}

impl<'a> ModelOut<'a> {
    fn new(id: &'a str) -> Self {
        ModelOut {
            kind: "model",
            id,
            display_name: id,
            created_at: "2025-01-01T00:00:00Z",
        }
    }
}

/// The Anthropic `GET /v1/models` body for `models`.
pub(crate) fn models_body(models: &[String]) -> Bytes {
    let data: Vec<ModelOut<'_>> = models.iter().map(|m| ModelOut::new(m)).collect();
    let body = serde_json::json!({
        "data": data,
        "has_more": false,
        "first_id": models.first(),
        "last_id": models.last(),
    });
    serde_json::to_vec(&body).unwrap_or_default().into()
}

// ---------------------------------------------------------------- requests

#[derive(Deserialize)]
struct MessagesRequest<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(borrow, default)]
    messages: Option<Vec<Message<'a>>>,
    #[serde(borrow, default)]
    system: Content<'a, Block<'a>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(borrow, default)]
    tools: Option<Vec<Tool<'a>>>,
    #[serde(borrow, default)]
    tool_choice: Option<Choice<'a>>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
    #[serde(borrow, default)]
    content: Content<'a, Block<'a>>,
}

#[derive(Deserialize)]
struct Block<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    /// A `tool_result`'s content.
    #[serde(borrow, default)]
    content: Content<'a, Block<'a>>,
}

#[derive(Deserialize)]
struct Tool<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    input_schema: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
}

/// Text of the blocks (text blocks and, recursively, tool result contents).
fn text_of<'a>(content: &Content<'a, Block<'a>>, out: &mut Vec<Cow<'a, str>>) {
    match content {
        Content::Text(t) => out.push(t.clone()),
        Content::Null => {}
        Content::Parts(blocks) => {
            for b in blocks {
                if let Some(t) = &b.text {
                    out.push(t.clone());
                }
                text_of(&b.content, out);
            }
        }
    }
}

fn is_tool_result(b: &Block<'_>) -> bool {
    b.kind.as_deref() == Some("tool_result")
}

fn prompt_of<'a>(req: MessagesRequest<'a>, seq: u64) -> Result<Prompt<'a>, Response> {
    let Some(messages) = req.messages else {
        return Err(invalid(seq, "messages: Field required"));
    };
    if messages.is_empty() {
        return Err(invalid(seq, "messages: at least one message is required"));
    }
    let mut all = Vec::new();
    text_of(&req.system, &mut all);
    for m in &messages {
        text_of(&m.content, &mut all);
    }
    let mut prompt = Prompt {
        prompt_tokens: all.iter().map(|t| words(t)).sum(),
        max_tokens: req.max_tokens,
        tools: req
            .tools
            .unwrap_or_default()
            .into_iter()
            .map(|t| ToolDef {
                name: t.name,
                schema: t.input_schema,
            })
            .collect(),
        choice: match req.tool_choice {
            None => ToolChoice::Auto,
            Some(c) => match c.kind.as_ref() {
                "none" => ToolChoice::Never,
                "any" => ToolChoice::Required,
                "tool" => c.name.map_or(ToolChoice::Required, ToolChoice::Named),
                _ => ToolChoice::Auto,
            },
        },
        ..Prompt::default()
    };
    if let Some(last) = messages.last()
        && last.role == "user"
        && let Content::Parts(blocks) = &last.content
    {
        for b in blocks.iter().filter(|b| is_tool_result(b)) {
            let mut texts = Vec::new();
            text_of(&b.content, &mut texts);
            prompt.tool_results.push(reply::join(texts));
        }
    }
    if let Some(user) = messages.iter().rev().find(|m| m.role == "user") {
        let mut texts = Vec::new();
        match &user.content {
            Content::Parts(blocks) => {
                for b in blocks.iter().filter(|b| !is_tool_result(b)) {
                    if let Some(t) = &b.text {
                        texts.push(t.clone());
                    }
                }
            }
            other => text_of(other, &mut texts),
        }
        prompt.user_text = reply::join(texts);
    }
    Ok(prompt)
}

fn plan_messages(s: &Shared, seq: u64, parts: &Parts, body: &Bytes) -> Call {
    let reject = |r| Call::reject(Provider::Anthropic, Endpoint::Chat, r);
    if let Err(r) = check_headers(s, seq, parts) {
        return reject(r);
    }
    let req: MessagesRequest<'_> = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return reject(invalid(seq, &format!("invalid JSON body: {e}"))),
    };
    let Some(model) = req.model.clone() else {
        return reject(invalid(seq, "model: Field required"));
    };
    if req.max_tokens.is_none() {
        return reject(invalid(seq, "max_tokens: Field required"));
    }
    let stream = req.stream.unwrap_or(false);
    let prompt = match prompt_of(req, seq) {
        Ok(p) => p,
        Err(r) => return reject(r),
    };
    let answer = reply::answer(&prompt);
    let id = format!("msg_mock{seq:016x}");
    let rendered = if stream {
        Rendered::Stream(render_stream(&id, &model, seq, &answer))
    } else {
        Rendered::Json(render_message(&id, &model, seq, &answer))
    };
    Call {
        provider: Some(Provider::Anthropic),
        endpoint: Some(Endpoint::Chat),
        model: Some(model.into_owned()),
        stream,
        outcome: Outcome::Answer(rendered),
    }
}

// ---------------------------------------------------------------- responses

#[derive(Serialize)]
struct MessageOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<BlockOut<'a>>,
    stop_reason: Option<&'static str>,
    stop_sequence: Option<()>,
    usage: UsageOut,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockOut<'a> {
    Text {
        text: &'a str,
    },
    ToolUse {
        id: String,
        name: &'a str,
        input: &'a RawValue,
    },
}

#[derive(Serialize)]
struct UsageOut {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    cache_creation: CacheCreation,
    output_tokens: u64,
    service_tier: &'static str,
}

#[derive(Serialize)]
struct CacheCreation {
    ephemeral_5m_input_tokens: u64,
    ephemeral_1h_input_tokens: u64,
}

fn usage(input: u64, output: u64) -> UsageOut {
    UsageOut {
        input_tokens: input,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
        cache_creation: CacheCreation {
            ephemeral_5m_input_tokens: 0,
            ephemeral_1h_input_tokens: 0,
        },
        output_tokens: output,
        service_tier: "standard",
    }
}

fn stop_reason(answer: &Answer) -> &'static str {
    match &answer.reply {
        Reply::Tools(_) => "tool_use",
        Reply::Text {
            truncated: true, ..
        } => "max_tokens",
        Reply::Text { .. } => "end_turn",
    }
}

fn tool_id(seq: u64, i: usize) -> String {
    format!("toolu_01mock{seq:012x}{i:04}")
}

fn blocks(answer: &Answer, seq: u64) -> Vec<BlockOut<'_>> {
    match &answer.reply {
        Reply::Text { text, .. } => vec![BlockOut::Text { text }],
        Reply::Tools(calls) => calls
            .iter()
            .enumerate()
            .map(|(i, c)| BlockOut::ToolUse {
                id: tool_id(seq, i),
                name: &c.name,
                input: c.arguments_raw(),
            })
            .collect(),
    }
}

fn render_message(id: &str, model: &str, seq: u64, answer: &Answer) -> Bytes {
    let message = MessageOut {
        id,
        kind: "message",
        role: "assistant",
        model,
        content: blocks(answer, seq),
        stop_reason: Some(stop_reason(answer)),
        stop_sequence: None,
        usage: usage(answer.prompt_tokens, answer.completion_tokens),
    };
    serde_json::to_vec(&message).unwrap_or_default().into()
}

/// Frames `value` as `event: {name}\ndata: {json}\n\n`.
fn event<T: Serialize>(name: &str, value: &T) -> Bytes {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    let _ = serde_json::to_writer(&mut out, value);
    out.extend_from_slice(b"\n\n");
    out.into()
}

#[derive(Serialize)]
struct MessageStart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: MessageOut<'a>,
}

#[derive(Serialize)]
struct BlockStart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: usize,
    content_block: StartBlock<'a>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StartBlock<'a> {
    Text {
        text: &'static str,
    },
    ToolUse {
        id: String,
        name: &'a str,
        input: Empty,
    },
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct BlockDelta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: usize,
    delta: DeltaOut<'a>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum DeltaOut<'a> {
    TextDelta { text: &'a str },
    InputJsonDelta { partial_json: &'a str },
}

#[derive(Serialize)]
struct BlockStop {
    #[serde(rename = "type")]
    kind: &'static str,
    index: usize,
}

#[derive(Serialize)]
struct MessageDelta {
    #[serde(rename = "type")]
    kind: &'static str,
    delta: StopDelta,
    usage: OutputUsage,
}

#[derive(Serialize)]
struct StopDelta {
    stop_reason: &'static str,
    stop_sequence: Option<()>,
}

#[derive(Serialize)]
struct OutputUsage {
    output_tokens: u64,
}

fn render_stream(id: &str, model: &str, seq: u64, answer: &Answer) -> EventStream {
    let ping = Bytes::from_static(b"event: ping\ndata: {\"type\": \"ping\"}\n\n");
    let mut events = vec![event(
        "message_start",
        &MessageStart {
            kind: "message_start",
            message: MessageOut {
                id,
                kind: "message",
                role: "assistant",
                model,
                content: Vec::new(),
                stop_reason: None,
                stop_sequence: None,
                usage: usage(answer.prompt_tokens, 1),
            },
        },
    )];
    let start = |index, content_block| {
        event(
            "content_block_start",
            &BlockStart {
                kind: "content_block_start",
                index,
                content_block,
            },
        )
    };
    let delta = |index, delta| {
        event(
            "content_block_delta",
            &BlockDelta {
                kind: "content_block_delta",
                index,
                delta,
            },
        )
    };
    let stop = |index| {
        event(
            "content_block_stop",
            &BlockStop {
                kind: "content_block_stop",
                index,
            },
        )
    };
    match &answer.reply {
        Reply::Text { text, .. } => {
            events.push(start(0, StartBlock::Text { text: "" }));
            events.push(ping);
            for piece in reply::word_pieces(text) {
                events.push(delta(0, DeltaOut::TextDelta { text: piece }));
            }
            events.push(stop(0));
        }
        Reply::Tools(calls) => {
            for (i, call) in calls.iter().enumerate() {
                events.push(start(
                    i,
                    StartBlock::ToolUse {
                        id: tool_id(seq, i),
                        name: &call.name,
                        input: Empty {},
                    },
                ));
                if i == 0 {
                    events.push(ping.clone());
                }
                events.push(delta(i, DeltaOut::InputJsonDelta { partial_json: "" }));
                for piece in reply::byte_pieces(&call.arguments, 8) {
                    events.push(delta(
                        i,
                        DeltaOut::InputJsonDelta {
                            partial_json: piece,
                        },
                    ));
                }
                events.push(stop(i));
            }
        }
    }
    let terminal_from = events.len();
    events.push(event(
        "message_delta",
        &MessageDelta {
            kind: "message_delta",
            delta: StopDelta {
                stop_reason: stop_reason(answer),
                stop_sequence: None,
            },
            usage: OutputUsage {
                output_tokens: answer.completion_tokens,
            },
        },
    ));
    events.push(Bytes::from_static(
        b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    ));
    EventStream {
        events,
        terminal_from,
        framing: Framing::Anthropic,
    }
}

// ---------------------------------------------------------------- keys and errors

/// The key comes in `x-api-key` (the HTTP API's documented header, sent by older SDKs and most
/// proxies) or `Authorization: Bearer` (what the Python SDK 2.x sends for `api_key`).
fn check_headers(s: &Shared, seq: u64, parts: &Parts) -> Result<(), Response> {
    let header = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v: &http::HeaderValue| v.to_str().ok())
    };
    let presented = header("x-api-key").or_else(|| {
        header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
    });
    match presented {
        None | Some("") => {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "x-api-key header is required",
                seq,
            ));
        }
        Some(key) if !s.key_ok(key) => {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "invalid x-api-key",
                seq,
            ));
        }
        Some(_) => {}
    }
    if !parts.headers.contains_key("anthropic-version") {
        return Err(invalid(seq, "anthropic-version: header is required"));
    }
    Ok(())
}

fn invalid(seq: u64, message: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        message,
        seq,
    )
}

fn error(status: StatusCode, kind: &str, message: &str, seq: u64) -> Response {
    let body = serde_json::json!({
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": format!("req_mock{seq:016x}"),
    });
    let mut response =
        super::deliver::json_response(Body::from(serde_json::to_vec(&body).unwrap_or_default()));
    *response.status_mut() = status;
    response
}

/// An Anthropic error response for `status`, typed as Anthropic types it.
pub(crate) fn error_response(status: u16, message: Option<&str>, seq: u64) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (kind, default) = match status.as_u16() {
        400 => ("invalid_request_error", "Invalid request."),
        401 => ("authentication_error", "invalid x-api-key"),
        403 => (
            "permission_error",
            "Your API key does not have permission to use the specified resource.",
        ),
        404 => ("not_found_error", "The requested resource was not found."),
        413 => (
            "request_too_large",
            "Request exceeds the maximum allowed size.",
        ),
        429 => (
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit.",
        ),
        529 | 503 => ("overloaded_error", "Overloaded"),
        s if s >= 500 => ("api_error", "Internal server error"),
        _ => ("invalid_request_error", "Request failed."),
    };
    error(status, kind, message.unwrap_or(default), seq)
}
