//! The model face's front doors, over [`mcplane_llm::dispatch::Dispatcher`]:
//!
//! | route | format |
//! |---|---|
//! | `POST /v1/chat/completions` | OpenAI Chat Completions (streaming, tools, `response_format`, `stream_options.include_usage`) |
//! | `POST /v1/messages` | Anthropic Messages (streaming events exact) |
//! | `POST /v1/embeddings` | OpenAI embeddings (`encoding_format` float or base64) |
//! | `GET /v1/models`, `GET /v1/models/{id}` | the registry's models and aliases (Anthropic's shape when the request has `anthropic-version`) |
//!
//! Any front door can be served by any provider: the dispatcher translates requests, answers,
//! streams and tool calls between formats. Errors come back in the front door's own format
//! (OpenAI `{"error": {...}}`, Anthropic `{"type": "error", ...}`); a 502 after every upstream
//! attempt failed lists them in `error.attempts`. Every answer carries `x-request-id`,
//! `x-mcplane-model`, `x-mcplane-endpoint`, `x-mcplane-route-reason`, `x-mcplane-cost-usd`
//! (for streams: the estimated prompt cost, with `x-mcplane-cost-estimated: true`) and
//! `x-mcplane-attempts`.
//!
//! Client credentials (`Authorization: Bearer …`, `x-api-key`) are accepted and ignored for
//! now — authentication arrives with the governance core — and are never forwarded: providers
//! get the keys configured for them, nothing else from the client. A client-supplied
//! `x-request-id` (printable ASCII, at most 128 bytes) is kept; it also keys the `weighted`
//! split. `x-mcplane-data-residency: eu[,us…]` requires a model (and endpoint) in one of those
//! regions.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use mcplane_llm::dispatch::{self, ChatCall, Dispatcher, EmbeddingsCall, Failure, Reply};
use mcplane_llm::error::{error_body, http_status};
use mcplane_llm::registry::Target;
use mcplane_llm::{Format, LlmError, anthropic, openai};
use mcplane_types::ErrorKind;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

/// Longest route reason sent as a header (the full one is in the request record).
const MAX_REASON_HEADER: usize = 1024;

#[derive(Clone)]
struct LlmState {
    dispatcher: Arc<Dispatcher>,
    max_body_bytes: usize,
}

/// The `/v1` routes, reading bodies up to `max_body_bytes` (413 above).
pub fn router(dispatcher: Arc<Dispatcher>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/messages", post(messages))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(list_models))
        .route("/v1/models/{id}", get(get_model))
        .with_state(LlmState {
            dispatcher,
            max_body_bytes,
        })
}

/// The request id: the client's `x-request-id` when usable, else a fresh one.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(dispatch::new_request_id, str::to_string)
}

/// `x-mcplane-data-residency`: comma-separated acceptable regions.
fn residency(headers: &HeaderMap) -> Result<Vec<String>, String> {
    let Some(v) = headers.get("x-mcplane-data-residency") else {
        return Ok(Vec::new());
    };
    let text = v
        .to_str()
        .map_err(|_| "x-mcplane-data-residency: must be ASCII region names".to_string())?;
    let regions: Vec<String> = text
        .split(',')
        .map(|r| r.trim().to_ascii_lowercase())
        .filter(|r| !r.is_empty())
        .collect();
    if regions.is_empty() {
        return Err("x-mcplane-data-residency: names no region (e.g. \"eu\" or \"eu,us\")".into());
    }
    Ok(regions)
}

/// Reads the body up to the limit.
async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<bytes::Bytes, String> {
    let too_large = || format!("the request body exceeds the {limit}-byte limit");
    if let Some(len) = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > limit as u64
    {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())
}

/// An error in the front door's format.
fn error_response(
    format: Format,
    status: u16,
    kind: ErrorKind,
    message: &str,
    rid: &str,
) -> Response {
    let mut f = Failure::new(kind, message);
    f.status = status;
    failure_response(format, f, rid)
}

fn llm_error(format: Format, e: &LlmError, rid: &str) -> Response {
    let kind = e.kind();
    error_response(format, http_status(kind), kind, &e.to_string(), rid)
}

fn failure_response(format: Format, f: Failure, rid: &str) -> Response {
    let mut body = error_body(format, f.kind, &f.message);
    if let Some(Value::Object(err)) = body.get_mut("error") {
        if format == Format::OpenAi
            && let Some(code) = f.code
        {
            err.insert("code".into(), code.into());
        }
        if !f.attempts.is_empty() {
            err.insert("attempts".into(), f.attempts_json());
        }
    }
    let status = StatusCode::from_u16(f.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut resp = (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        serde_json::to_vec(&body).unwrap_or_default(),
    )
        .into_response();
    let h = resp.headers_mut();
    put(h, "x-request-id", rid);
    if format == Format::Anthropic {
        put(h, "request-id", rid);
    }
    if let Some(m) = &f.model {
        put(h, "x-mcplane-model", m);
    }
    if let Some(r) = &f.reason {
        put(h, "x-mcplane-route-reason", &clip(r));
    }
    if !f.attempts.is_empty() {
        put(h, "x-mcplane-attempts", &f.attempts.len().to_string());
    }
    resp
}

fn put(h: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(HeaderName::from_static(name), v);
    }
}

fn clip(s: &str) -> String {
    if s.len() <= MAX_REASON_HEADER {
        s.to_string()
    } else {
        let mut end = MAX_REASON_HEADER;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    }
}

fn reply_response(format: Format, reply: Reply, rid: &str) -> Response {
    let Reply { served, body } = reply;
    let mut resp = match body {
        dispatch::Body::Json(bytes) => (
            StatusCode::OK,
            [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            bytes,
        )
            .into_response(),
        dispatch::Body::Stream(frames) => {
            let body = Body::from_stream(frames.map(Ok::<_, Infallible>));
            let mut r = (StatusCode::OK, body).into_response();
            let h = r.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            h.insert(
                HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            );
            r
        }
    };
    let h = resp.headers_mut();
    put(h, "x-request-id", rid);
    if format == Format::Anthropic {
        put(h, "request-id", rid);
    }
    put(h, "x-mcplane-model", &served.model);
    put(h, "x-mcplane-endpoint", &served.endpoint);
    put(h, "x-mcplane-route-reason", &clip(&served.reason));
    put(h, "x-mcplane-cost-usd", &served.cost.to_string());
    if served.cost_estimated {
        put(h, "x-mcplane-cost-estimated", "true");
    }
    put(h, "x-mcplane-attempts", &served.attempts.to_string());
    resp
}

async fn chat(s: LlmState, headers: HeaderMap, body: Body, format: Format) -> Response {
    let received = Instant::now();
    let rid = request_id(&headers);
    let bytes = match read_body(body, &headers, s.max_body_bytes).await {
        Ok(b) => b,
        Err(m) => return error_response(format, 413, ErrorKind::InvalidRequest, &m, &rid),
    };
    let decoded = match format {
        Format::Anthropic => anthropic::decode_request(&bytes),
        _ => openai::decode_request(&bytes),
    };
    let request = match decoded {
        Ok(r) => r,
        Err(e) => return llm_error(format, &e, &rid),
    };
    let residency = match residency(&headers) {
        Ok(r) => r,
        Err(m) => return error_response(format, 400, ErrorKind::InvalidRequest, &m, &rid),
    };
    let call = ChatCall {
        request_id: rid.clone(),
        client: format,
        front_door: match format {
            Format::Anthropic => "anthropic.messages",
            _ => "openai.chat",
        },
        request,
        residency,
        received,
    };
    match s.dispatcher.chat(call).await {
        Ok(reply) => reply_response(format, reply, &rid),
        Err(f) => failure_response(format, f, &rid),
    }
}

async fn chat_completions(State(s): State<LlmState>, headers: HeaderMap, body: Body) -> Response {
    chat(s, headers, body, Format::OpenAi).await
}

async fn messages(State(s): State<LlmState>, headers: HeaderMap, body: Body) -> Response {
    chat(s, headers, body, Format::Anthropic).await
}

async fn embeddings(State(s): State<LlmState>, headers: HeaderMap, body: Body) -> Response {
    let received = Instant::now();
    let rid = request_id(&headers);
    let format = Format::OpenAi;
    let bytes = match read_body(body, &headers, s.max_body_bytes).await {
        Ok(b) => b,
        Err(m) => return error_response(format, 413, ErrorKind::InvalidRequest, &m, &rid),
    };
    let request = match openai::decode_embeddings_request(&bytes) {
        Ok(r) => r,
        Err(e) => return llm_error(format, &e, &rid),
    };
    let residency = match residency(&headers) {
        Ok(r) => r,
        Err(m) => return error_response(format, 400, ErrorKind::InvalidRequest, &m, &rid),
    };
    let call = EmbeddingsCall {
        request_id: rid.clone(),
        request,
        residency,
        received,
    };
    match s.dispatcher.embeddings(call).await {
        Ok(reply) => reply_response(format, reply, &rid),
        Err(f) => failure_response(format, f, &rid),
    }
}

/// One listing entry per model and alias, in the requested shape.
fn model_entry(target: Target<'_>, anthropic: bool) -> Value {
    let (id, name, owner, extra) = match target {
        Target::Model(m) => (
            m.id.clone(),
            m.name.clone().unwrap_or_else(|| m.id.clone()),
            m.provider.as_str(),
            json!({
                "kind": "model",
                "capabilities": m.capabilities.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
                "context_window": m.context_window,
                "data_residency": m.data_residency,
            }),
        ),
        Target::Alias(a) => (
            a.name.clone(),
            a.name.clone(),
            "mcplane",
            json!({"kind": "alias"}),
        ),
    };
    if anthropic {
        json!({
            "type": "model",
            "id": id,
            "display_name": name,
            "created_at": "1970-01-01T00:00:00Z",
        })
    } else {
        json!({
            "id": id,
            "object": "model",
            "created": 0,
            "owned_by": owner,
            "mcplane": extra,
        })
    }
}

fn json_ok(value: &Value) -> Response {
    (
        StatusCode::OK,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        serde_json::to_vec(value).unwrap_or_default(),
    )
        .into_response()
}

async fn list_models(State(s): State<LlmState>, headers: HeaderMap) -> Response {
    let anthropic = headers.contains_key("anthropic-version");
    let reg = s.dispatcher.registry();
    let data: Vec<Value> = reg
        .models()
        .iter()
        .map(Target::Model)
        .chain(reg.aliases().iter().map(Target::Alias))
        .map(|t| model_entry(t, anthropic))
        .collect();
    if anthropic {
        let first = data.first().and_then(|d| d.get("id")).cloned();
        let last = data.last().and_then(|d| d.get("id")).cloned();
        json_ok(&json!({"data": data, "has_more": false, "first_id": first, "last_id": last}))
    } else {
        json_ok(&json!({"object": "list", "data": data}))
    }
}

async fn get_model(
    State(s): State<LlmState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let anthropic = headers.contains_key("anthropic-version");
    let rid = request_id(&headers);
    match s.dispatcher.registry().resolve(&id) {
        Some(t) => json_ok(&model_entry(t, anthropic)),
        None => {
            let format = if anthropic {
                Format::Anthropic
            } else {
                Format::OpenAi
            };
            let mut f = Failure::new(
                ErrorKind::NotFound,
                format!(
                    "the model {id:?} does not exist; GET /v1/models lists the models and aliases you can use"
                ),
            );
            f.code = Some("model_not_found");
            failure_response(format, f, &rid)
        }
    }
}
