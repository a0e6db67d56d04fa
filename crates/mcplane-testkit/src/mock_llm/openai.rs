//! OpenAI and Azure OpenAI wire formats: chat completions (a `chat.completion` object, or a
//! stream of `chat.completion.chunk` events ending in `data: [DONE]`), embeddings (floats or
//! base64), model listings, and errors as `{"error":{"message","type","param","code"}}`
//! (Azure: `{"error":{"code","message"}}`).
//!
//! Stream order: per choice a first chunk with `role` (and `content: ""`, or the first tool call
//! delta with `id`, `type`, `function.name` and empty `arguments`), then content or argument
//! deltas; then one chunk per choice with `finish_reason` and an empty delta; then, with
//! `stream_options.include_usage`, a chunk with `choices: []` and `usage` (every other chunk
//! carrying `usage: null`); then `[DONE]`. OpenAI chunks carry an `obfuscation` padding string
//! unless `stream_options.include_obfuscation` is false. Azure streams start with its
//! `prompt_filter_results` chunk (`choices: []`) and carry no obfuscation, as Azure does.

use super::deliver::{self, Call, EventStream, Framing, Outcome, Rendered};
use super::embed;
use super::fault::{Endpoint, Provider};
use super::reply::{self, Answer, Content, Prompt, Reply, ToolChoice, ToolDef, words};
use super::server::{Shared, now_unix, run};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::response::Response;
use http::request::Parts;
use http::{HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

const FINGERPRINT: &str = "fp_mcplane_mock";

// ---------------------------------------------------------------- handlers

/// `POST /v1/chat/completions`.
pub(crate) async fn chat(State(s): State<Arc<Shared>>, req: Request) -> Response {
    run(&s, req, |s, seq, parts, body| {
        plan_chat(s, Provider::OpenAi, seq, parts, body, None)
    })
    .await
}

/// `POST /openai/deployments/{deployment}/chat/completions?api-version=…`.
pub(crate) async fn azure_chat(
    State(s): State<Arc<Shared>>,
    Path(deployment): Path<String>,
    req: Request,
) -> Response {
    run(&s, req, |s, seq, parts, body| {
        plan_chat(s, Provider::Azure, seq, parts, body, Some(&deployment))
    })
    .await
}

/// `POST /v1/embeddings`.
pub(crate) async fn embeddings(State(s): State<Arc<Shared>>, req: Request) -> Response {
    run(&s, req, |s, _, parts, body| {
        plan_embeddings(s, Provider::OpenAi, parts, body, None)
    })
    .await
}

/// `POST /openai/deployments/{deployment}/embeddings?api-version=…`.
pub(crate) async fn azure_embeddings(
    State(s): State<Arc<Shared>>,
    Path(deployment): Path<String>,
    req: Request,
) -> Response {
    run(&s, req, |s, _, parts, body| {
        plan_embeddings(s, Provider::Azure, parts, body, Some(&deployment))
    })
    .await
}

/// `GET /v1/models`.
pub(crate) async fn list_models(State(s): State<Arc<Shared>>, req: Request) -> Response {
    run(&s, req, |s, _, parts, _| {
        if let Err(r) = check_key(s, Provider::OpenAi, parts) {
            return Call::reject(Provider::OpenAi, Endpoint::Models, r);
        }
        models_call(None, Rendered::Json(s.openai_models.clone()))
    })
    .await
}

/// `GET /v1/models/{id}`.
pub(crate) async fn get_model(State(s): State<Arc<Shared>>, req: Request) -> Response {
    run(&s, req, |s, _, parts, _| {
        if let Err(r) = check_key(s, Provider::OpenAi, parts) {
            return Call::reject(Provider::OpenAi, Endpoint::Models, r);
        }
        let id = parts.uri.path().trim_start_matches("/v1/models/");
        let body = serde_json::to_vec(&ModelOut::new(id)).unwrap_or_default();
        models_call(Some(id.to_owned()), Rendered::Json(body.into()))
    })
    .await
}

fn models_call(model: Option<String>, rendered: Rendered) -> Call {
    Call {
        provider: Some(Provider::OpenAi),
        endpoint: Some(Endpoint::Models),
        model,
        stream: false,
        outcome: Outcome::Answer(rendered),
    }
}

// ---------------------------------------------------------------- requests

#[derive(Deserialize)]
struct ChatRequest<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    messages: Option<Vec<Message<'a>>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(borrow, default)]
    tools: Option<Vec<Tool<'a>>>,
    #[serde(borrow, default)]
    tool_choice: Option<&'a RawValue>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    #[serde(default)]
    n: Option<u64>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
    #[serde(default)]
    include_obfuscation: Option<bool>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
    #[serde(borrow, default)]
    content: Content<'a, Part<'a>>,
}

#[derive(Deserialize)]
struct Part<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Tool<'a> {
    #[serde(borrow, default)]
    function: Option<Function<'a>>,
}

#[derive(Deserialize)]
struct Function<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    parameters: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct NamedChoice<'a> {
    #[serde(borrow, default)]
    function: Option<NamedFunction<'a>>,
}

#[derive(Deserialize)]
struct NamedFunction<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
}

fn text_of<'a>(content: Content<'a, Part<'a>>) -> Cow<'a, str> {
    match content {
        Content::Text(t) => t,
        Content::Null => Cow::Borrowed(""),
        Content::Parts(parts) => reply::join(
            parts
                .into_iter()
                .filter(|p| p.kind.as_deref().is_none_or(|k| k == "text"))
                .filter_map(|p| p.text)
                .collect(),
        ),
    }
}

fn tool_choice(raw: Option<&RawValue>) -> ToolChoice<'_> {
    let Some(raw) = raw else {
        return ToolChoice::Auto;
    };
    match raw.get() {
        "\"none\"" => ToolChoice::Never,
        "\"required\"" => ToolChoice::Required,
        s if s.starts_with('{') => match serde_json::from_str::<NamedChoice<'_>>(s) {
            Ok(NamedChoice {
                function: Some(f), ..
            }) => ToolChoice::Named(f.name),
            _ => ToolChoice::Auto,
        },
        _ => ToolChoice::Auto,
    }
}

// ---------------------------------------------------------------- chat

fn plan_chat(
    s: &Shared,
    provider: Provider,
    seq: u64,
    parts: &Parts,
    body: &Bytes,
    deployment: Option<&str>,
) -> Call {
    let reject = |r| Call::reject(provider, Endpoint::Chat, r);
    if let Err(r) = check_key(s, provider, parts) {
        return reject(r);
    }
    let req: ChatRequest<'_> = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return reject(bad_json(&e)),
    };
    let model: Cow<'_, str> = match (req.model, deployment) {
        (Some(m), _) => m,
        (None, Some(d)) => Cow::Borrowed(d),
        (None, None) => {
            return reject(invalid("you must provide a model parameter", None, None));
        }
    };
    let Some(messages) = req.messages else {
        return reject(invalid(
            "Missing required parameter: 'messages'.",
            Some("messages"),
            Some("missing_required_parameter"),
        ));
    };
    if messages.is_empty() {
        return reject(invalid(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            Some("messages"),
            Some("empty_array"),
        ));
    }
    let n = req.n.unwrap_or(1);
    if !(1..=128).contains(&n) {
        return reject(invalid(
            "Invalid 'n': integer out of range. Expected a value between 1 and 128.",
            Some("n"),
            Some("integer_out_of_range"),
        ));
    }
    let stream = req.stream.unwrap_or(false);

    let mut prompt = Prompt {
        choice: tool_choice(req.tool_choice),
        max_tokens: req.max_completion_tokens.or(req.max_tokens),
        tools: req
            .tools
            .unwrap_or_default()
            .into_iter()
            .filter_map(|t| t.function)
            .map(|f| ToolDef {
                name: f.name,
                schema: f.parameters,
            })
            .collect(),
        ..Prompt::default()
    };
    let texts: Vec<(Cow<'_, str>, Cow<'_, str>)> = messages
        .into_iter()
        .map(|m| (m.role, text_of(m.content)))
        .collect();
    prompt.prompt_tokens = texts.iter().map(|(_, t)| words(t)).sum();
    let trailing_tools = texts.iter().rev().take_while(|(r, _)| r == "tool").count();
    prompt.tool_results = texts[texts.len() - trailing_tools..]
        .iter()
        .map(|(_, t)| t.clone())
        .collect();
    if let Some((_, t)) = texts.iter().rev().find(|(r, _)| r == "user") {
        prompt.user_text = t.clone();
    }
    let answer = reply::answer(&prompt);

    let ids = Ids {
        id: format!("chatcmpl-mock{seq:016x}"),
        created: now_unix(),
        model: &model,
        seq,
        azure: provider == Provider::Azure,
    };
    let rendered = if stream {
        let options = req.stream_options;
        let include_usage = options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        let obfuscate = provider == Provider::OpenAi
            && options.and_then(|o| o.include_obfuscation).unwrap_or(true);
        Rendered::Stream(render_stream(&ids, &answer, n, include_usage, obfuscate))
    } else {
        Rendered::Json(render_completion(&ids, &answer, n))
    };
    Call {
        provider: Some(provider),
        endpoint: Some(Endpoint::Chat),
        model: Some(model.into_owned()),
        stream,
        outcome: Outcome::Answer(rendered),
    }
}

struct Ids<'a> {
    id: String,
    created: u64,
    model: &'a str,
    seq: u64,
    azure: bool,
}

impl Ids<'_> {
    fn call_id(&self, choice: u64, i: usize) -> String {
        format!("call_mock{:012x}{:03x}{i:03}", self.seq, choice)
    }
}

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<Choice<'a>>,
    usage: Usage,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_filter_results: Option<&'static RawValue>,
    service_tier: &'static str,
    system_fingerprint: &'static str,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u64,
    message: OutMessage<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_filter_results: Option<&'static RawValue>,
}

#[derive(Serialize)]
struct OutMessage<'a> {
    role: &'static str,
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<OutToolCall<'a>>>,
    refusal: Option<()>,
    annotations: [(); 0],
}

#[derive(Serialize)]
struct OutToolCall<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    function: OutFunction<'a>,
}

#[derive(Serialize)]
struct OutFunction<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: PromptDetails,
    completion_tokens_details: CompletionDetails,
}

#[derive(Serialize, Default)]
struct PromptDetails {
    cached_tokens: u64,
    audio_tokens: u64,
}

#[derive(Serialize, Default)]
struct CompletionDetails {
    reasoning_tokens: u64,
    audio_tokens: u64,
    accepted_prediction_tokens: u64,
    rejected_prediction_tokens: u64,
}

fn usage(answer: &Answer, n: u64) -> Usage {
    let completion = answer.completion_tokens * n;
    Usage {
        prompt_tokens: answer.prompt_tokens,
        completion_tokens: completion,
        total_tokens: answer.prompt_tokens + completion,
        prompt_tokens_details: PromptDetails::default(),
        completion_tokens_details: CompletionDetails::default(),
    }
}

fn finish_reason(answer: &Answer) -> &'static str {
    match &answer.reply {
        Reply::Tools(_) => "tool_calls",
        Reply::Text {
            truncated: true, ..
        } => "length",
        Reply::Text { .. } => "stop",
    }
}

static AZURE_FILTERS: LazyLock<Box<RawValue>> = LazyLock::new(|| {
    raw(
        r#"{"hate":{"filtered":false,"severity":"safe"},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":false,"severity":"safe"}}"#,
    )
});

static AZURE_PROMPT_FILTERS: LazyLock<Box<RawValue>> = LazyLock::new(|| {
    raw(&format!(
        r#"[{{"prompt_index":0,"content_filter_results":{}}}]"#,
        AZURE_FILTERS.get()
    ))
});

fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_owned()).unwrap_or_default()
}

fn render_completion(ids: &Ids<'_>, answer: &Answer, n: u64) -> Bytes {
    let choices = (0..n)
        .map(|index| {
            let message = match &answer.reply {
                Reply::Text { text, .. } => OutMessage {
                    role: "assistant",
                    content: Some(text),
                    tool_calls: None,
                    refusal: None,
                    annotations: [],
                },
                Reply::Tools(calls) => OutMessage {
                    role: "assistant",
                    content: None,
                    tool_calls: Some(
                        calls
                            .iter()
                            .enumerate()
                            .map(|(i, c)| OutToolCall {
                                id: ids.call_id(index, i),
                                kind: "function",
                                function: OutFunction {
                                    name: &c.name,
                                    arguments: &c.arguments,
                                },
                            })
                            .collect(),
                    ),
                    refusal: None,
                    annotations: [],
                },
            };
            Choice {
                index,
                message,
                logprobs: None,
                finish_reason: finish_reason(answer),
                content_filter_results: ids.azure.then(|| &**AZURE_FILTERS),
            }
        })
        .collect();
    let completion = Completion {
        id: &ids.id,
        object: "chat.completion",
        created: ids.created,
        model: ids.model,
        choices,
        usage: usage(answer, n),
        prompt_filter_results: ids.azure.then(|| &**AZURE_PROMPT_FILTERS),
        service_tier: "default",
        system_fingerprint: FINGERPRINT,
    };
    serde_json::to_vec(&completion).unwrap_or_default().into()
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    service_tier: &'static str,
    system_fingerprint: &'static str,
    choices: &'a [ChunkChoice<'a>],
    /// Absent without `include_usage`; `null` on every chunk but the usage chunk with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<&'a Usage>>,
    /// Size-normalising padding OpenAI adds to every chunk unless
    /// `stream_options.include_obfuscation` is false (Azure sends none).
    #[serde(skip_serializing_if = "Option::is_none")]
    obfuscation: Option<&'static str>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u64,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[DeltaToolCall<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refusal: Option<Option<&'a str>>,
}

#[derive(Serialize)]
struct DeltaToolCall<'a> {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: DeltaFunction<'a>,
}

#[derive(Serialize)]
struct DeltaFunction<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

/// Frames `value` as `data: {json}\n\n`.
fn sse<T: Serialize>(value: &T) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"data: ");
    let _ = serde_json::to_writer(&mut out, value);
    out.extend_from_slice(b"\n\n");
    out.into()
}

/// Padding strings of varied length, cycled through the chunks of a stream.
const OBFUSCATION: [&str; 4] = ["mK3", "q9Xw1", "Zp", "tR7vLs"];

fn render_stream(
    ids: &Ids<'_>,
    answer: &Answer,
    n: u64,
    include_usage: bool,
    obfuscate: bool,
) -> EventStream {
    let usage_null = include_usage.then_some(None);
    let pad = std::cell::Cell::new(0usize);
    let obfuscation = || {
        obfuscate.then(|| {
            let i = pad.get();
            pad.set(i + 1);
            OBFUSCATION[i % OBFUSCATION.len()]
        })
    };
    let chunk = |choice: ChunkChoice<'_>| {
        sse(&Chunk {
            id: &ids.id,
            object: "chat.completion.chunk",
            created: ids.created,
            model: ids.model,
            service_tier: "default",
            system_fingerprint: FINGERPRINT,
            choices: &[choice],
            usage: usage_null,
            obfuscation: obfuscation(),
        })
    };
    let mut events = Vec::new();
    if ids.azure {
        events.push(Bytes::from(format!(
            "data: {{\"choices\":[],\"created\":0,\"id\":\"\",\"model\":\"\",\"object\":\"\",\"prompt_filter_results\":{}}}\n\n",
            AZURE_PROMPT_FILTERS.get()
        )));
    }
    let call_ids: Vec<Vec<String>> = (0..n)
        .map(|index| match &answer.reply {
            Reply::Tools(calls) => (0..calls.len()).map(|i| ids.call_id(index, i)).collect(),
            Reply::Text { .. } => Vec::new(),
        })
        .collect();
    for index in 0..n {
        let content_choice = |delta| ChunkChoice {
            index,
            delta,
            logprobs: None,
            finish_reason: None,
        };
        match &answer.reply {
            Reply::Text { text, .. } => {
                events.push(chunk(content_choice(Delta {
                    role: Some("assistant"),
                    content: Some(Some("")),
                    refusal: Some(None),
                    ..Delta::default()
                })));
                for piece in reply::word_pieces(text) {
                    events.push(chunk(content_choice(Delta {
                        content: Some(Some(piece)),
                        ..Delta::default()
                    })));
                }
            }
            Reply::Tools(calls) => {
                for (i, call) in calls.iter().enumerate() {
                    let id = call_ids
                        .get(index as usize)
                        .and_then(|v| v.get(i))
                        .map(String::as_str);
                    let first = DeltaToolCall {
                        index: i,
                        id,
                        kind: Some("function"),
                        function: DeltaFunction {
                            name: Some(&call.name),
                            arguments: "",
                        },
                    };
                    let delta = if i == 0 {
                        Delta {
                            role: Some("assistant"),
                            content: Some(None),
                            tool_calls: Some([first]),
                            refusal: Some(None),
                        }
                    } else {
                        Delta {
                            tool_calls: Some([first]),
                            ..Delta::default()
                        }
                    };
                    events.push(chunk(content_choice(delta)));
                    for piece in reply::byte_pieces(&call.arguments, 8) {
                        events.push(chunk(content_choice(Delta {
                            tool_calls: Some([DeltaToolCall {
                                index: i,
                                id: None,
                                kind: None,
                                function: DeltaFunction {
                                    name: None,
                                    arguments: piece,
                                },
                            }]),
                            ..Delta::default()
                        })));
                    }
                }
            }
        }
    }
    let terminal_from = events.len();
    for index in 0..n {
        events.push(chunk(ChunkChoice {
            index,
            delta: Delta::default(),
            logprobs: None,
            finish_reason: Some(finish_reason(answer)),
        }));
    }
    if include_usage {
        let usage = usage(answer, n);
        events.push(sse(&Chunk {
            id: &ids.id,
            object: "chat.completion.chunk",
            created: ids.created,
            model: ids.model,
            service_tier: "default",
            system_fingerprint: FINGERPRINT,
            choices: &[],
            usage: Some(Some(&usage)),
            obfuscation: obfuscation(),
        }));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    EventStream {
        events,
        terminal_from,
        framing: Framing::OpenAi,
    }
}

// ---------------------------------------------------------------- embeddings

#[derive(Deserialize)]
struct EmbedRequest<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
    #[serde(borrow, default)]
    encoding_format: Option<Cow<'a, str>>,
    #[serde(default)]
    dimensions: Option<u64>,
}

#[derive(Serialize)]
struct EmbedResponse<'a> {
    object: &'static str,
    data: Vec<EmbeddingOut>,
    model: &'a str,
    usage: EmbedUsage,
}

#[derive(Serialize)]
struct EmbeddingOut {
    object: &'static str,
    index: usize,
    embedding: Vector,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Vector {
    Floats(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
struct EmbedUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

/// The texts of an embeddings `input`: a string, strings, a token array or token arrays.
fn embed_inputs(input: &RawValue) -> Option<Vec<String>> {
    let tokens = |v: &[Value]| -> Option<String> {
        let ids: Option<Vec<String>> = v
            .iter()
            .map(|t| t.as_u64().map(|n| n.to_string()))
            .collect();
        ids.map(|ids| ids.join(" "))
    };
    let inputs = match serde_json::from_str::<Value>(input.get()).ok()? {
        Value::String(s) => vec![s],
        Value::Array(items) if items.iter().all(Value::is_number) => vec![tokens(&items)?],
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => Some(s),
                Value::Array(t) => tokens(&t),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?,
        _ => return None,
    };
    (!inputs.is_empty() && inputs.iter().all(|s| !s.is_empty())).then_some(inputs)
}

fn plan_embeddings(
    s: &Shared,
    provider: Provider,
    parts: &Parts,
    body: &Bytes,
    deployment: Option<&str>,
) -> Call {
    let reject = |r| Call::reject(provider, Endpoint::Embeddings, r);
    if let Err(r) = check_key(s, provider, parts) {
        return reject(r);
    }
    let req: EmbedRequest<'_> = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return reject(bad_json(&e)),
    };
    let model: Cow<'_, str> = match (req.model, deployment) {
        (Some(m), _) => m,
        (None, Some(d)) => Cow::Borrowed(d),
        (None, None) => {
            return reject(invalid("you must provide a model parameter", None, None));
        }
    };
    let Some(inputs) = req.input.and_then(embed_inputs) else {
        return reject(invalid(
            "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
            Some("input"),
            None,
        ));
    };
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return reject(invalid(
                &format!("Invalid value: '{other}'. Supported values are: 'float' and 'base64'."),
                Some("encoding_format"),
                Some("invalid_value"),
            ));
        }
    };
    let dims = match req.dimensions {
        None => s.embedding_dims,
        Some(d) if (1..=65_536).contains(&d) => d as usize,
        Some(_) => {
            return reject(invalid(
                "Invalid 'dimensions': expected a value between 1 and 65536.",
                Some("dimensions"),
                None,
            ));
        }
    };
    let tokens: u64 = inputs.iter().map(|t| words(t)).sum();
    let data = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let v = embed::embed(text, dims);
            EmbeddingOut {
                object: "embedding",
                index,
                embedding: if base64 {
                    Vector::Base64(embed::to_base64(&v))
                } else {
                    Vector::Floats(v)
                },
            }
        })
        .collect();
    let out = EmbedResponse {
        object: "list",
        data,
        model: &model,
        usage: EmbedUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    };
    Call {
        provider: Some(provider),
        endpoint: Some(Endpoint::Embeddings),
        model: Some(model.to_string()),
        stream: false,
        outcome: Outcome::Answer(Rendered::Json(
            serde_json::to_vec(&out).unwrap_or_default().into(),
        )),
    }
}

// ---------------------------------------------------------------- models

#[derive(Serialize)]
struct ModelOut<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
}

impl<'a> ModelOut<'a> {
    fn new(id: &'a str) -> Self {
        ModelOut {
            id,
            object: "model",
            created: 1_700_000_000,
            owned_by: "mcplane-mock",
        }
    }
}

/// The `GET /v1/models` body for `models`.
pub(crate) fn models_body(models: &[String]) -> Bytes {
    #[derive(Serialize)]
    struct List<'a> {
        object: &'static str,
        data: Vec<ModelOut<'a>>,
    }
    let list = List {
        object: "list",
        data: models.iter().map(|m| ModelOut::new(m)).collect(),
    };
    serde_json::to_vec(&list).unwrap_or_default().into()
}

// ---------------------------------------------------------------- keys and errors

fn check_key(s: &Shared, provider: Provider, parts: &Parts) -> Result<(), Response> {
    if provider == Provider::Azure {
        let ok = parts
            .headers
            .get("api-key")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|k| s.key_ok(k));
        if !ok {
            return Err(azure_error(
                StatusCode::UNAUTHORIZED,
                "401",
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.",
            ));
        }
        let has_version = parts.uri.query().is_some_and(|q| {
            q.split('&')
                .any(|kv| kv.starts_with("api-version=") && kv.len() > 12)
        });
        if !has_version {
            return Err(azure_error(
                StatusCode::NOT_FOUND,
                "404",
                "Resource not found",
            ));
        }
        return Ok(());
    }
    let presented = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        None | Some("") => Err(error_with(
            StatusCode::UNAUTHORIZED,
            "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            None,
            None,
        )),
        Some(key) if !s.key_ok(key) => Err(error_with(
            StatusCode::UNAUTHORIZED,
            &format!(
                "Incorrect API key provided: {}. You can find your API key at https://platform.openai.com/account/api-keys.",
                mask(key)
            ),
            "invalid_request_error",
            None,
            Some("invalid_api_key"),
        )),
        Some(_) => Ok(()),
    }
}

/// `sk-abc…wxyz` as OpenAI shows keys in errors.
fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

/// 404 for a route no provider has, worded as OpenAI words it.
pub(crate) fn unknown_url(parts: &Parts) -> Response {
    error_with(
        StatusCode::NOT_FOUND,
        &format!("Invalid URL ({} {})", parts.method, parts.uri.path()),
        "invalid_request_error",
        None,
        None,
    )
}

fn bad_json(e: &serde_json::Error) -> Response {
    error_with(
        StatusCode::BAD_REQUEST,
        &format!(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.) Detail: {e}"
        ),
        "invalid_request_error",
        None,
        None,
    )
}

fn invalid(message: &str, param: Option<&str>, code: Option<&str>) -> Response {
    error_with(
        StatusCode::BAD_REQUEST,
        message,
        "invalid_request_error",
        param,
        code,
    )
}

fn error_with(
    status: StatusCode,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Response {
    #[derive(Serialize)]
    struct Body<'a> {
        error: Inner<'a>,
    }
    #[derive(Serialize)]
    struct Inner<'a> {
        message: &'a str,
        #[serde(rename = "type")]
        kind: &'a str,
        param: Option<&'a str>,
        code: Option<&'a str>,
    }
    let body = Body {
        error: Inner {
            message,
            kind,
            param,
            code,
        },
    };
    with_status(status, serde_json::to_vec(&body).unwrap_or_default())
}

fn azure_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"error": {"code": code, "message": message}});
    with_status(status, serde_json::to_vec(&body).unwrap_or_default())
}

fn with_status(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = deliver::json_response(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("openai-processing-ms", HeaderValue::from_static("1"));
    response
}

/// An OpenAI (or Azure) error response for `status`, with a provider-like default message.
pub(crate) fn error_response(status: u16, message: Option<&str>, azure: bool) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (kind, code, default) = match status.as_u16() {
        400 => ("invalid_request_error", None, "Invalid request."),
        401 => (
            "invalid_request_error",
            Some("invalid_api_key"),
            "Incorrect API key provided.",
        ),
        403 => (
            "invalid_request_error",
            Some("unsupported_country_region_territory"),
            "Country, region, or territory not supported",
        ),
        404 => (
            "invalid_request_error",
            Some("model_not_found"),
            "The model does not exist or you do not have access to it.",
        ),
        429 => (
            "requests",
            Some("rate_limit_exceeded"),
            "Rate limit reached for requests. Please try again later.",
        ),
        503 => (
            "server_error",
            None,
            "The engine is currently overloaded, please try again later",
        ),
        s if s >= 500 => (
            "server_error",
            None,
            "The server had an error while processing your request. Sorry about that!",
        ),
        _ => ("invalid_request_error", None, "Request failed."),
    };
    let message = message.unwrap_or(default);
    if azure {
        azure_error(status, status.as_str(), message)
    } else {
        error_with(status, message, kind, None, code)
    }
}
