//! Google Gemini wire format: `generateContent` (a `GenerateContentResponse` with `candidates`,
//! `usageMetadata`, `modelVersion`, `responseId`), `streamGenerateContent` (with `alt=sse`:
//! `data: {chunk}\r\n\r\n` events and no end marker; without it: one JSON array written element
//! by element), `embedContent`, `batchEmbedContents`, model listings, and errors as
//! `{"error":{"code","message","status"}}`.
//!
//! Stream chunks carry one word each, cumulative `usageMetadata`, and the last one
//! `finishReason`; a function call comes whole in one chunk, as Gemini sends it. The key comes
//! in `x-goog-api-key` or the `key` query parameter. Routes live under `/v1beta` (and `/v1`).

use super::deliver::{Call, EventStream, Framing, Outcome, Rendered};
use super::embed;
use super::fault::{Endpoint, Provider};
use super::reply::{self, Answer, Prompt, Reply, ToolChoice, ToolDef, words};
use super::server::{Shared, run};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::response::Response;
use http::StatusCode;
use http::request::Parts;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::sync::Arc;

// ---------------------------------------------------------------- handlers

/// `POST /v1beta/models/{model}:{action}` (and `/v1/…`).
pub(crate) async fn action(
    State(s): State<Arc<Shared>>,
    Path(target): Path<String>,
    req: Request,
) -> Response {
    run(&s, req, |s, seq, parts, body| {
        let (model, verb) = target.rsplit_once(':').unwrap_or((target.as_str(), ""));
        let endpoint = match verb {
            "embedContent" | "batchEmbedContents" => Endpoint::Embeddings,
            "countTokens" => Endpoint::CountTokens,
            _ => Endpoint::Chat,
        };
        if let Err(r) = check_key(s, parts) {
            return Call::reject(Provider::Gemini, endpoint, r);
        }
        match verb {
            "generateContent" => plan_generate(seq, model, body, None),
            "streamGenerateContent" => plan_generate(seq, model, body, Some(wants_sse(parts))),
            "countTokens" => plan_count(model, body),
            "embedContent" => plan_embed(s, model, body, false),
            "batchEmbedContents" => plan_embed(s, model, body, true),
            _ => Call::reject(
                Provider::Gemini,
                endpoint,
                error(
                    StatusCode::NOT_FOUND,
                    &format!("Method not found: {verb:?}"),
                ),
            ),
        }
    })
    .await
}

/// `GET /v1beta/models`.
pub(crate) async fn list_models(State(s): State<Arc<Shared>>, req: Request) -> Response {
    run(&s, req, |s, _, parts, _| {
        if let Err(r) = check_key(s, parts) {
            return Call::reject(Provider::Gemini, Endpoint::Models, r);
        }
        models_call(None, s.gemini_models.clone())
    })
    .await
}

/// `GET /v1beta/models/{model}`.
pub(crate) async fn get_model(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    run(&s, req, |s, _, parts, _| {
        if let Err(r) = check_key(s, parts) {
            return Call::reject(Provider::Gemini, Endpoint::Models, r);
        }
        let body = serde_json::to_vec(&ModelOut::new(&id)).unwrap_or_default();
        models_call(Some(id.clone()), body.into())
    })
    .await
}

fn models_call(model: Option<String>, body: Bytes) -> Call {
    Call {
        provider: Some(Provider::Gemini),
        endpoint: Some(Endpoint::Models),
        model,
        stream: false,
        outcome: Outcome::Answer(Rendered::Json(body)),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModelOut<'a> {
    name: String,
    version: &'static str,
    display_name: &'a str,
    input_token_limit: u64,
    output_token_limit: u64,
    supported_generation_methods: [&'static str; 4],
}

impl<'a> ModelOut<'a> {
    fn new(id: &'a str) -> Self {
        ModelOut {
            name: format!("models/{id}"),
            version: "001",
            display_name: id,
            input_token_limit: 1_048_576,
            output_token_limit: 65_536,
            supported_generation_methods: [
                "generateContent",
                "countTokens",
                "embedContent",
                "batchEmbedContents",
            ],
        }
    }
}

/// The `GET /v1beta/models` body for `models`.
pub(crate) fn models_body(models: &[String]) -> Bytes {
    let data: Vec<ModelOut<'_>> = models.iter().map(|m| ModelOut::new(m)).collect();
    serde_json::to_vec(&serde_json::json!({ "models": data }))
        .unwrap_or_default()
        .into()
}

fn wants_sse(parts: &Parts) -> bool {
    parts
        .uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "alt=sse"))
}

// ---------------------------------------------------------------- requests

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateRequest<'a> {
    #[serde(borrow, default)]
    contents: Option<Vec<GContent<'a>>>,
    #[serde(borrow, default)]
    system_instruction: Option<GContent<'a>>,
    #[serde(borrow, default)]
    tools: Option<Vec<GTool<'a>>>,
    #[serde(borrow, default)]
    tool_config: Option<ToolConfig<'a>>,
    #[serde(default)]
    generation_config: Option<GenerationConfig>,
}

#[derive(Deserialize)]
struct GContent<'a> {
    #[serde(borrow, default)]
    role: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    parts: Vec<GPart<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GPart<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    function_response: Option<FunctionResponse<'a>>,
}

#[derive(Deserialize)]
struct FunctionResponse<'a> {
    #[serde(borrow, default)]
    response: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GTool<'a> {
    #[serde(borrow, default)]
    function_declarations: Option<Vec<FunctionDeclaration<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FunctionDeclaration<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    parameters: Option<&'a RawValue>,
    #[serde(borrow, default)]
    parameters_json_schema: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfig<'a> {
    #[serde(borrow, default)]
    function_calling_config: Option<FunctionCallingConfig<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FunctionCallingConfig<'a> {
    #[serde(borrow, default)]
    mode: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    allowed_function_names: Option<Vec<Cow<'a, str>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig {
    #[serde(default)]
    max_output_tokens: Option<u64>,
}

fn texts_of<'a>(content: &GContent<'a>, out: &mut Vec<Cow<'a, str>>) {
    for p in &content.parts {
        if let Some(t) = &p.text {
            out.push(t.clone());
        }
        if let Some(r) = p.function_response.as_ref().and_then(|f| f.response) {
            out.push(Cow::Borrowed(r.get()));
        }
    }
}

fn prompt_of<'a>(req: GenerateRequest<'a>) -> Result<Prompt<'a>, Response> {
    let contents = req.contents.unwrap_or_default();
    if contents.is_empty() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "* GenerateContentRequest.contents: contents is not specified\n",
        ));
    }
    let mut all = Vec::new();
    if let Some(system) = &req.system_instruction {
        texts_of(system, &mut all);
    }
    for c in &contents {
        texts_of(c, &mut all);
    }
    let config = req.tool_config.and_then(|c| c.function_calling_config);
    let choice = match config {
        None => ToolChoice::Auto,
        Some(c) => match c.mode.as_deref().map(str::to_ascii_uppercase).as_deref() {
            Some("NONE") => ToolChoice::Never,
            Some("ANY") => match c
                .allowed_function_names
                .and_then(|mut n| (n.len() == 1).then(|| n.pop()).flatten())
            {
                Some(name) => ToolChoice::Named(name),
                None => ToolChoice::Required,
            },
            _ => ToolChoice::Auto,
        },
    };
    let mut prompt = Prompt {
        prompt_tokens: all.iter().map(|t| words(t)).sum(),
        max_tokens: req.generation_config.and_then(|g| g.max_output_tokens),
        tools: req
            .tools
            .unwrap_or_default()
            .into_iter()
            .flat_map(|t| t.function_declarations.unwrap_or_default())
            .map(|f| ToolDef {
                name: f.name,
                schema: f.parameters.or(f.parameters_json_schema),
            })
            .collect(),
        choice,
        ..Prompt::default()
    };
    if let Some(last) = contents.last() {
        for p in &last.parts {
            if let Some(r) = p.function_response.as_ref().and_then(|f| f.response) {
                prompt.tool_results.push(Cow::Borrowed(r.get()));
            }
        }
    }
    if let Some(user) = contents.iter().rev().find(|c| {
        c.role.as_deref().is_none_or(|r| r == "user") && c.parts.iter().any(|p| p.text.is_some())
    }) {
        let texts = user.parts.iter().filter_map(|p| p.text.clone()).collect();
        prompt.user_text = reply::join(texts);
    }
    Ok(prompt)
}

fn plan_generate(seq: u64, model: &str, body: &Bytes, stream: Option<bool>) -> Call {
    let reject = |r| Call::reject(Provider::Gemini, Endpoint::Chat, r);
    let req: GenerateRequest<'_> = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return reject(bad_json(&e)),
    };
    let prompt = match prompt_of(req) {
        Ok(p) => p,
        Err(r) => return reject(r),
    };
    let answer = reply::answer(&prompt);
    let response_id = format!("mock{seq:016x}");
    let rendered = match stream {
        None => Rendered::Json(render_response(model, &response_id, &answer)),
        Some(sse) => Rendered::Stream(render_stream(model, &response_id, &answer, sse)),
    };
    Call {
        provider: Some(Provider::Gemini),
        endpoint: Some(Endpoint::Chat),
        model: Some(model.to_owned()),
        stream: stream.is_some(),
        outcome: Outcome::Answer(rendered),
    }
}

fn plan_count(model: &str, body: &Bytes) -> Call {
    let reject = |r| Call::reject(Provider::Gemini, Endpoint::CountTokens, r);
    let req: GenerateRequest<'_> = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return reject(bad_json(&e)),
    };
    let prompt = match prompt_of(req) {
        Ok(p) => p,
        Err(r) => return reject(r),
    };
    let body = format!("{{\"totalTokens\":{}}}", prompt.prompt_tokens);
    Call {
        provider: Some(Provider::Gemini),
        endpoint: Some(Endpoint::CountTokens),
        model: Some(model.to_owned()),
        stream: false,
        outcome: Outcome::Answer(Rendered::Json(body.into())),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EmbedRequest<'a> {
    #[serde(borrow, default)]
    content: Option<GContent<'a>>,
    #[serde(default)]
    output_dimensionality: Option<u64>,
}

#[derive(Deserialize)]
struct BatchEmbedRequest<'a> {
    #[serde(borrow, default)]
    requests: Vec<EmbedRequest<'a>>,
}

fn plan_embed(s: &Shared, model: &str, body: &Bytes, batch: bool) -> Call {
    let reject = |r| Call::reject(Provider::Gemini, Endpoint::Embeddings, r);
    let requests = if batch {
        match serde_json::from_slice::<BatchEmbedRequest<'_>>(body) {
            Ok(b) => b.requests,
            Err(e) => return reject(bad_json(&e)),
        }
    } else {
        match serde_json::from_slice::<EmbedRequest<'_>>(body) {
            Ok(r) => vec![r],
            Err(e) => return reject(bad_json(&e)),
        }
    };
    let mut vectors = Vec::with_capacity(requests.len());
    for r in &requests {
        let Some(content) = &r.content else {
            return reject(error(
                StatusCode::BAD_REQUEST,
                "* EmbedContentRequest.content: contents is not specified\n",
            ));
        };
        let mut texts = Vec::new();
        texts_of(content, &mut texts);
        let text = reply::join(texts);
        let dims = r
            .output_dimensionality
            .map_or(s.embedding_dims, |d| d.clamp(1, 65_536) as usize);
        vectors.push(serde_json::json!({ "values": embed::embed(&text, dims) }));
    }
    let out = if batch {
        serde_json::json!({ "embeddings": vectors })
    } else {
        serde_json::json!({ "embedding": vectors.pop() })
    };
    Call {
        provider: Some(Provider::Gemini),
        endpoint: Some(Endpoint::Embeddings),
        model: Some(model.to_owned()),
        stream: false,
        outcome: Outcome::Answer(Rendered::Json(
            serde_json::to_vec(&out).unwrap_or_default().into(),
        )),
    }
}

// ---------------------------------------------------------------- responses

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseOut<'a> {
    candidates: [Candidate<'a>; 1],
    usage_metadata: UsageMetadata,
    model_version: &'a str,
    response_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Candidate<'a> {
    content: ContentOut<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_reason: Option<&'static str>,
    index: u32,
}

#[derive(Serialize)]
struct ContentOut<'a> {
    parts: Vec<PartOut<'a>>,
    role: &'static str,
}

#[derive(Serialize)]
#[serde(untagged)]
enum PartOut<'a> {
    Text {
        text: &'a str,
    },
    FunctionCall {
        #[serde(rename = "functionCall")]
        function_call: FunctionCallOut<'a>,
    },
}

#[derive(Serialize)]
struct FunctionCallOut<'a> {
    name: &'a str,
    args: &'a RawValue,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    prompt_token_count: u64,
    candidates_token_count: u64,
    total_token_count: u64,
    prompt_tokens_details: [ModalityCount; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModalityCount {
    modality: &'static str,
    token_count: u64,
}

fn usage(prompt: u64, candidates: u64) -> UsageMetadata {
    UsageMetadata {
        prompt_token_count: prompt,
        candidates_token_count: candidates,
        total_token_count: prompt + candidates,
        prompt_tokens_details: [ModalityCount {
            modality: "TEXT",
            token_count: prompt,
        }],
    }
}

fn finish_reason(answer: &Answer) -> &'static str {
    match &answer.reply {
        Reply::Text {
            truncated: true, ..
        } => "MAX_TOKENS",
        _ => "STOP",
    }
}

fn parts(answer: &Answer) -> Vec<PartOut<'_>> {
    match &answer.reply {
        Reply::Text { text, .. } => vec![PartOut::Text { text }],
        Reply::Tools(calls) => calls
            .iter()
            .map(|c| PartOut::FunctionCall {
                function_call: FunctionCallOut {
                    name: &c.name,
                    args: c.arguments_raw(),
                },
            })
            .collect(),
    }
}

fn response<'a>(
    model: &'a str,
    response_id: &'a str,
    parts: Vec<PartOut<'a>>,
    finish: Option<&'static str>,
    usage: UsageMetadata,
) -> ResponseOut<'a> {
    ResponseOut {
        candidates: [Candidate {
            content: ContentOut {
                parts,
                role: "model",
            },
            finish_reason: finish,
            index: 0,
        }],
        usage_metadata: usage,
        model_version: model,
        response_id,
    }
}

fn render_response(model: &str, response_id: &str, answer: &Answer) -> Bytes {
    let out = response(
        model,
        response_id,
        parts(answer),
        Some(finish_reason(answer)),
        usage(answer.prompt_tokens, answer.completion_tokens),
    );
    serde_json::to_vec(&out).unwrap_or_default().into()
}

fn render_stream(model: &str, response_id: &str, answer: &Answer, sse: bool) -> EventStream {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    match &answer.reply {
        Reply::Tools(_) => {
            let out = response(
                model,
                response_id,
                parts(answer),
                Some(finish_reason(answer)),
                usage(answer.prompt_tokens, answer.completion_tokens),
            );
            chunks.push(serde_json::to_vec(&out).unwrap_or_default());
        }
        Reply::Text { text, .. } => {
            let mut pieces = reply::word_pieces(text);
            if pieces.is_empty() {
                pieces.push("");
            }
            let last = pieces.len() - 1;
            let mut seen = 0;
            for (i, piece) in pieces.into_iter().enumerate() {
                seen += words(piece);
                let out = response(
                    model,
                    response_id,
                    vec![PartOut::Text { text: piece }],
                    (i == last).then(|| finish_reason(answer)),
                    usage(answer.prompt_tokens, seen),
                );
                chunks.push(serde_json::to_vec(&out).unwrap_or_default());
            }
        }
    }
    let terminal_from = chunks.len() - 1;
    let count = chunks.len();
    let events = chunks
        .into_iter()
        .enumerate()
        .map(|(i, json)| {
            let mut out = Vec::with_capacity(json.len() + 8);
            if sse {
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(&json);
                out.extend_from_slice(b"\r\n\r\n");
            } else {
                out.extend_from_slice(if i == 0 { b"[" } else { b",\r\n" });
                out.extend_from_slice(&json);
                if i + 1 == count {
                    out.extend_from_slice(b"]");
                }
            }
            Bytes::from(out)
        })
        .collect();
    EventStream {
        events,
        terminal_from,
        framing: if sse {
            Framing::GeminiSse
        } else {
            Framing::GeminiArray
        },
    }
}

// ---------------------------------------------------------------- keys and errors

fn check_key(s: &Shared, parts: &Parts) -> Result<(), Response> {
    let header = parts
        .headers
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok());
    let query = parts
        .uri
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("key=")));
    match header.or(query) {
        None | Some("") => Err(error(
            StatusCode::FORBIDDEN,
            "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
        )),
        Some(key) if !s.key_ok(key) => Err(error(
            StatusCode::BAD_REQUEST,
            "API key not valid. Please pass a valid API key.",
        )),
        Some(_) => Ok(()),
    }
}

fn bad_json(e: &serde_json::Error) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        &format!("Invalid JSON payload received. {e}"),
    )
}

fn error(status: StatusCode, message: &str) -> Response {
    let status_name = match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        s if s >= 500 => "INTERNAL",
        _ => "FAILED_PRECONDITION",
    };
    let body = serde_json::json!({
        "error": {"code": status.as_u16(), "message": message, "status": status_name}
    });
    let mut response =
        super::deliver::json_response(Body::from(serde_json::to_vec(&body).unwrap_or_default()));
    *response.status_mut() = status;
    response
}

/// A Gemini error response for `status`.
pub(crate) fn error_response(status: u16, message: Option<&str>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let default = match status.as_u16() {
        429 => "Resource has been exhausted (e.g. check quota).",
        503 => "The model is overloaded. Please try again later.",
        s if s >= 500 => {
            "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"
        }
        _ => "Request failed.",
    };
    error(status, message.unwrap_or(default))
}
