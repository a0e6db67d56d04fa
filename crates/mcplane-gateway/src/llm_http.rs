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
//! Callers are authenticated at the edge ([`crate::governance`]); their credentials are never
//! forwarded: providers get the keys configured for them, nothing else from the client. Policy
//! applies here: `/v1/models` lists only the models and aliases the caller may use (and
//! `/v1/models/{id}` answers 404 for the others), a call a rule denies is a 403 naming the rule,
//! a rule's `route_to` sends a call for another model to the first model or alias it names, and
//! the call's estimated tokens (prompt counted plus its output limit) count against the
//! tokens-per-minute limits (429 with `Retry-After` and `x-ratelimit-*-tokens`). A client-supplied
//! `x-request-id` (printable ASCII, at most 128 bytes) is kept; it also keys the `weighted`
//! split. `x-mcplane-data-residency: eu[,us…]` requires a model (and endpoint) in one of those
//! regions.

use crate::governance::{AuthFailure, Caller};
use axum::Extension;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use mcplane_core::budgets::{BudgetError, Reservation};
use mcplane_core::governance::Governance;
use mcplane_core::policy::Effect;
use mcplane_llm::chat::ChatRequest;
use mcplane_llm::dispatch::{self, ChatCall, Dispatcher, EmbeddingsCall, Failure, OnCost, Reply};
use mcplane_llm::error::{error_body, http_status};
use mcplane_llm::registry::Target;
use mcplane_llm::{Format, LlmError, anthropic, openai};
use mcplane_types::{ErrorKind, MicroUsd, Operation};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

/// Longest route reason sent as a header (the full one is in the request record).
const MAX_REASON_HEADER: usize = 1024;

#[derive(Clone)]
struct LlmState {
    dispatcher: Arc<Dispatcher>,
    governance: Arc<Governance>,
    max_body_bytes: usize,
}

/// The `/v1` routes, reading bodies up to `max_body_bytes` (413 above), under `governance`'s
/// policy and token limits (authentication and request limits are [`crate::governance::layer`]'s).
pub fn router(
    dispatcher: Arc<Dispatcher>,
    governance: Arc<Governance>,
    max_body_bytes: usize,
) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/messages", post(messages))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(list_models))
        .route("/v1/models/{id}", get(get_model))
        .with_state(LlmState {
            dispatcher,
            governance,
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

/// Tokens and cost a chat call is estimated at, for policy and token limits: the prompt counted
/// with the model's tokenizer plus its output limit, priced at the model's rate (for an alias,
/// its most expensive candidate's).
fn estimate(s: &LlmState, request: &ChatRequest) -> (u64, MicroUsd) {
    let reg = s.dispatcher.registry();
    let models: Vec<&mcplane_llm::registry::Model> = match reg.resolve(&request.model) {
        Some(Target::Model(m)) => vec![m],
        Some(Target::Alias(a)) => a.candidates.iter().map(|i| reg.model_at(*i)).collect(),
        None => Vec::new(),
    };
    let mut worst = (0, MicroUsd::ZERO);
    for m in models {
        let e = mcplane_llm::tokens::estimate_chat(request, &m.id);
        let completion = e
            .max_completion_tokens
            .or(m.max_output_tokens)
            .unwrap_or(DEFAULT_COMPLETION_ESTIMATE);
        let tokens = e.prompt_tokens + u64::from(completion);
        let cost = m.price.cost(e.prompt_tokens, u64::from(completion));
        worst = (worst.0.max(tokens), worst.1.max(cost));
    }
    worst
}

/// Reserves the call's estimated `cost` under the caller's budgets. At a budget that says
/// `on_limit: degrade`, the call is moved to its `degrade_to` (if the policies allow that) and
/// reserved at that model's estimate; otherwise a 402 names the budget.
async fn reserve(
    s: &LlmState,
    caller: &Caller,
    request: &mut ChatRequest,
    cost: MicroUsd,
    format: Format,
    rid: &str,
) -> Result<Option<Reservation>, Box<Response>> {
    let budgets = &s.governance.budgets;
    if budgets.is_empty() {
        return Ok(None);
    }
    let now = mcplane_types::clock::since_epoch();
    let refuse = |e: BudgetError| {
        let (status, kind) = match e {
            BudgetError::Exceeded { .. } => (402, ErrorKind::BudgetExceeded),
            BudgetError::Unavailable(_) => (503, ErrorKind::UpstreamUnavailable),
        };
        Box::new(error_response(format, status, kind, &e.to_string(), rid))
    };
    match budgets.reserve(&caller.principal, cost, now).await {
        Ok(r) => Ok(Some(r)),
        Err(BudgetError::Exceeded {
            degrade_to: Some(to),
            scope,
            ..
        }) if to != request.model => {
            tracing::info!(budget = %scope, asked = %request.model, degraded = %to, "budget degrade");
            request.model = to;
            let (tokens, cheaper) = estimate(s, request);
            let op = Operation::ModelCall {
                model: request.model.clone(),
                estimated_tokens: tokens,
                estimated_cost: cheaper,
            };
            refused_by_policy(s, caller, &op, format, rid)?;
            budgets
                .reserve(&caller.principal, cheaper, now)
                .await
                .map(Some)
                .map_err(refuse)
        }
        Err(e) => Err(refuse(e)),
    }
}

/// Output tokens assumed for a request and model that set no limit.
const DEFAULT_COMPLETION_ESTIMATE: u32 = 1024;

/// The policy decision about `op` as a response when it refuses: 403 naming the rule.
fn refused_by_policy(
    s: &LlmState,
    caller: &Caller,
    op: &Operation,
    format: Format,
    rid: &str,
) -> Result<Option<Vec<String>>, Box<Response>> {
    if !s.governance.decides_for(&caller.principal) {
        return Ok(None);
    }
    let d = s.governance.decide(&caller.principal, op, &caller.request);
    let refuse = |message: String| {
        let mut f = Failure::new(ErrorKind::Forbidden, message);
        f.status = 403;
        f.code = Some("policy_denied");
        Box::new(failure_response(format, f, rid))
    };
    match d.effect {
        Effect::Deny { reason, .. } => Err(refuse(reason)),
        Effect::Allow => match d.approval {
            Some(rule) => Err(refuse(format!(
                "policy {rule} requires a human approval for this, which this mcplane cannot collect yet"
            ))),
            None => Ok(d.route_to),
        },
    }
}

async fn chat(
    s: LlmState,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
    format: Format,
) -> Response {
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
    let mut request = match decoded {
        Ok(r) => r,
        Err(e) => return llm_error(format, &e, &rid),
    };
    let residency = match residency(&headers) {
        Ok(r) => r,
        Err(m) => return error_response(format, 400, ErrorKind::InvalidRequest, &m, &rid),
    };
    let governed = s.governance.decides_for(&caller.principal)
        || !s.governance.limits.is_empty()
        || !s.governance.budgets.is_empty();
    let (tokens, cost) = if governed {
        estimate(&s, &request)
    } else {
        (0, MicroUsd::ZERO)
    };
    let op = Operation::ModelCall {
        model: request.model.clone(),
        estimated_tokens: tokens,
        estimated_cost: cost,
    };
    match refused_by_policy(&s, &caller, &op, format, &rid) {
        Err(r) => return *r,
        // A rule restricts this call to some models or aliases: keep the one asked for if it is
        // among them, else use the first.
        Ok(Some(allowed)) if !allowed.contains(&request.model) => {
            if let Some(first) = allowed.first() {
                tracing::info!(asked = %request.model, routed = %first, "policy route_to");
                request.model = first.clone();
            }
        }
        Ok(_) => {}
    }
    let _tokens = match s.governance.admit_tokens(&caller.principal, tokens).await {
        Ok(a) => a,
        Err(e) => {
            let path = match format {
                Format::Anthropic => "/v1/messages",
                _ => "/v1/chat/completions",
            };
            return AuthFailure::from_limit(&e).render(path, &headers);
        }
    };
    let reservation = match reserve(&s, &caller, &mut request, cost, format, &rid).await {
        Ok(r) => r,
        Err(refusal) => return *refusal,
    };
    let call = ChatCall {
        on_cost: reservation.map(|r| {
            OnCost(Box::new(move |actual| {
                tokio::spawn(r.settle(actual));
            }))
        }),
        caller: Some(caller.principal.clone()),
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

/// The caller the edge put on the request (anonymous without [`crate::governance::layer`]).
fn caller_of(c: Option<Extension<Caller>>) -> Caller {
    c.map(|Extension(c)| c).unwrap_or_default()
}

async fn chat_completions(
    State(s): State<LlmState>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    chat(s, caller_of(caller), headers, body, Format::OpenAi).await
}

async fn messages(
    State(s): State<LlmState>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    chat(s, caller_of(caller), headers, body, Format::Anthropic).await
}

async fn embeddings(
    State(s): State<LlmState>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let caller = caller_of(caller);
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
    let op = Operation::Embed {
        model: request.model.clone(),
        estimated_tokens: 0,
    };
    if let Err(r) = refused_by_policy(&s, &caller, &op, format, &rid) {
        return *r;
    }
    let residency = match residency(&headers) {
        Ok(r) => r,
        Err(m) => return error_response(format, 400, ErrorKind::InvalidRequest, &m, &rid),
    };
    let call = EmbeddingsCall {
        caller: Some(caller.principal.clone()),
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

/// Whether `caller` may use the model or alias `id` (what `/v1/models` lists).
fn may_use(s: &LlmState, caller: &Caller, id: &str) -> bool {
    if !s.governance.decides_for(&caller.principal) {
        return true;
    }
    let op = Operation::ModelCall {
        model: id.to_string(),
        estimated_tokens: 0,
        estimated_cost: MicroUsd::ZERO,
    };
    let d = s.governance.decide(&caller.principal, &op, &caller.request);
    d.allowed() && d.approval.is_none()
}

fn target_id(t: &Target<'_>) -> String {
    match t {
        Target::Model(m) => m.id.clone(),
        Target::Alias(a) => a.name.clone(),
    }
}

async fn list_models(
    State(s): State<LlmState>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
) -> Response {
    let caller = caller_of(caller);
    let anthropic = headers.contains_key("anthropic-version");
    let reg = s.dispatcher.registry();
    let data: Vec<Value> = reg
        .models()
        .iter()
        .map(Target::Model)
        .chain(reg.aliases().iter().map(Target::Alias))
        .filter(|t| may_use(&s, &caller, &target_id(t)))
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
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let caller = caller_of(caller);
    let anthropic = headers.contains_key("anthropic-version");
    let rid = request_id(&headers);
    match s.dispatcher.registry().resolve(&id) {
        // A model the caller may not use is not shown, here either.
        Some(t) if may_use(&s, &caller, &id) => json_ok(&model_entry(t, anthropic)),
        _ => {
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
