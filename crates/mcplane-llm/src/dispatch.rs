//! The dispatcher: routes a decoded call, sends it to providers with retries, fallback and
//! circuit breaking, translates the answer into the client's format, and accounts for it.
//!
//! ```text
//!   ChatCall ──router::plan──▶ [step: model × endpoint]… ──for each step──▶ attempts (retry with back-off)
//!        │                                                        │ ok: JSON body or a live stream
//!        │                                                        ▼
//!        └──────────────── Reply { served (model, endpoint, reason, cost), body } ─┘   or Failure (every attempt listed)
//! ```
//!
//! ## Failure handling
//!
//! Each attempt's failure is classified:
//!
//! - **retry** the same endpoint (then fall back): HTTP 408, 429, 5xx, timeouts, connection
//!   errors, a connection lost before the first event. The back-off doubles from
//!   `routing.retry.initial_backoff` to `max_backoff`; a provider's `Retry-After` (or
//!   `retry-after-ms`) wins when longer, and when it is longer than `max_backoff` the endpoint is
//!   not retried at all: the next candidate is tried at once.
//! - **fall back** to the next step: 401, 403, 404 and other 4xx (a key, account or model
//!   problem at that provider), malformed or truncated answers, a request the provider's format
//!   cannot express.
//! - **stop**: 400, 413, 422 — the request itself is bad; the provider's message is relayed
//!   with its status and no other provider is bothered.
//!
//! Failures on the provider's side count against the endpoint's health (error-rate EWMA and
//! circuit breaker, [`crate::health`]); an endpoint whose circuit is open is skipped without a
//! call. When every step fails the client gets 502 listing every attempt (model, endpoint,
//! status, error).
//!
//! ## Time limits
//!
//! `routing.timeouts.request` bounds one attempt from start to end (a whole stream included);
//! `first_token` bounds a stream's response headers and first event. Nothing is sent to a
//! streaming client until the first event arrived, so a stream that fails before its first event
//! still falls back; after that a failure ends the stream with the client format's terminal
//! error event ([`crate::StreamTranslator::fail`]), never a silent truncation, and a stream that
//! ends without its terminal event is such a failure.
//!
//! ## Cancellation and accounting
//!
//! Dropping a [`Reply`]'s stream (the client disconnected) drops the upstream response body,
//! which closes the provider connection; the request is still accounted with the tokens
//! produced so far. Every call produces exactly one [`RequestRecord`].

use crate::accounting::{
    LogSink, Outcome, RecentRequests, RequestRecord, RequestSink, Sinks, Totals, usage_source_name,
};
use crate::chat::ChatResponse;
use crate::embeddings::{EmbeddingsRequest, EmbeddingsResponse, EncodingFormat, Vector};
use crate::error::{decode_error_body, kind_of_status};
use crate::health::{Health, Permit};
use crate::provider::{EndpointError, Prepared, UpstreamRequest, retry_after};
use crate::registry::{Endpoint, Model, Registry};
use crate::router::{CallKind, Needs, Plan, RouteError, RouteInput, Router, Step, chat_needs};
use crate::sse::{SseDecoder, SseEvent};
use crate::stream::{EncodeOptions, StreamTranslator, UsageSource};
use crate::usage::Usage;
use crate::{ChatRequest, Format, LlmError, codec, gemini, openai, tokens};
use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use mcplane_config::{ModelConfig, ModelTimeouts, RetryConfig, RoutingConfig};
use mcplane_types::{ErrorKind, MicroUsd};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Once};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Largest provider response body read (non-streaming).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// Largest provider error body read.
const MAX_ERROR_BYTES: usize = 64 * 1024;
/// How many recent request records are kept in memory.
pub const RECENT_REQUESTS: usize = 1000;

/// Why the dispatcher could not be built from the config.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// A price or other registry value is unusable.
    #[error("model registry: {0}")]
    Registry(LlmError),
    /// An endpoint's key or headers cannot be sent.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for model providers: {0}")]
    Client(String),
}

/// A chat call, decoded by a front door.
#[derive(Debug)]
pub struct ChatCall {
    /// The request id.
    pub request_id: String,
    /// The format the client speaks (and gets its answer and errors in).
    pub client: Format,
    /// Front door name for records (`openai.chat`, `anthropic.messages`).
    pub front_door: &'static str,
    /// The decoded request (`model` is the id or alias asked for).
    pub request: ChatRequest,
    /// Regions from `x-mcplane-data-residency` (acceptable alternatives; empty: none).
    pub residency: Vec<String>,
    /// When the request arrived.
    pub received: Instant,
}

/// An embeddings call (OpenAI format at the front door).
#[derive(Debug)]
pub struct EmbeddingsCall {
    /// The request id.
    pub request_id: String,
    /// The decoded request.
    pub request: EmbeddingsRequest,
    /// Regions from `x-mcplane-data-residency`.
    pub residency: Vec<String>,
    /// When the request arrived.
    pub received: Instant,
}

/// What served a call (the `x-mcplane-*` response headers).
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    /// Registry model id.
    pub model: String,
    /// Endpoint label.
    pub endpoint: String,
    /// Route reason (printable ASCII).
    pub reason: String,
    /// Cost: final for JSON answers; for streams, the estimated prompt cost when the headers
    /// are sent (the final cost is in the request record).
    pub cost: MicroUsd,
    /// Whether `cost` is an estimate (streams).
    pub cost_estimated: bool,
    /// Upstream attempts made.
    pub attempts: usize,
}

/// A streamed answer: SSE frames in the client's format.
pub type FrameStream = Pin<Box<dyn Stream<Item = Bytes> + Send>>;

/// The answer body.
pub enum Body {
    /// A JSON document.
    Json(Bytes),
    /// An event stream.
    Stream(FrameStream),
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Json(b) => write!(f, "Json({} bytes)", b.len()),
            Body::Stream(_) => f.write_str("Stream"),
        }
    }
}

/// A successful answer.
#[derive(Debug)]
pub struct Reply {
    /// What served it.
    pub served: Served,
    /// The body.
    pub body: Body,
}

/// One upstream attempt, as listed in a 502.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    /// Registry model id.
    pub model: String,
    /// Endpoint label.
    pub endpoint: String,
    /// HTTP status from the provider, if any came.
    pub status: Option<u16>,
    /// Classification.
    pub kind: ErrorKind,
    /// What went wrong.
    pub error: String,
    /// How long it took.
    pub duration_ms: u64,
}

/// A call that could not be answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// Classification (decides the error `type` in the client's format).
    pub kind: ErrorKind,
    /// HTTP status for the client.
    pub status: u16,
    /// What went wrong, for the client.
    pub message: String,
    /// OpenAI-style error `code` when a more precise one exists (`model_not_found`).
    pub code: Option<&'static str>,
    /// Every upstream attempt.
    pub attempts: Vec<Attempt>,
    /// The model that answered with the error (for `x-mcplane-model`), when one did.
    pub model: Option<String>,
    /// The route reason, when routing got that far.
    pub reason: Option<String>,
}

impl Failure {
    /// A failure of `kind` (its usual HTTP status) saying `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            status: crate::error::http_status(kind),
            message: message.into(),
            code: None,
            attempts: Vec::new(),
            model: None,
            reason: None,
        }
    }

    /// A client error (400) with this message.
    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(ErrorKind::InvalidRequest, message)
    }

    fn route(e: &RouteError) -> Failure {
        match e {
            RouteError::UnknownModel(_) => Failure {
                code: Some("model_not_found"),
                ..Failure::new(ErrorKind::NotFound, e.to_string())
            },
            RouteError::EmptyAlias(_) => Failure {
                code: Some("model_not_found"),
                ..Failure::new(ErrorKind::NotFound, e.to_string())
            },
            RouteError::NoneEligible { .. } => Failure::invalid(e.to_string()),
        }
    }

    /// The attempts as JSON (for error bodies).
    pub fn attempts_json(&self) -> Value {
        serde_json::to_value(&self.attempts).unwrap_or(Value::Null)
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Retry,
    Fallback,
    Stop,
}

#[derive(Debug, Clone)]
struct AttemptError {
    kind: ErrorKind,
    status: Option<u16>,
    message: String,
    retry_after: Option<Duration>,
    next: Next,
    /// Whether it counts against the endpoint's health.
    counts: bool,
}

impl AttemptError {
    fn of_kind(kind: ErrorKind, message: impl Into<String>) -> AttemptError {
        let next = match kind {
            ErrorKind::RateLimited
            | ErrorKind::UpstreamUnavailable
            | ErrorKind::UpstreamTimeout => Next::Retry,
            ErrorKind::InvalidRequest => Next::Stop,
            _ => Next::Fallback,
        };
        AttemptError {
            kind,
            status: None,
            message: message.into(),
            retry_after: None,
            next,
            counts: next != Next::Stop,
        }
    }

    fn timeout(message: impl Into<String>) -> AttemptError {
        AttemptError::of_kind(ErrorKind::UpstreamTimeout, message)
    }

    fn status(
        status: u16,
        message: String,
        retry_after: Option<Duration>,
        kind: ErrorKind,
    ) -> AttemptError {
        let next = match status {
            408 | 429 | 500..=599 => Next::Retry,
            400 | 413 | 422 => Next::Stop,
            _ => Next::Fallback,
        };
        AttemptError {
            kind,
            status: Some(status),
            message,
            retry_after,
            next,
            counts: next != Next::Stop,
        }
    }

    /// A decoding or stream error from this crate.
    fn llm(e: &LlmError) -> AttemptError {
        let message = match e {
            LlmError::Upstream { message, .. } => message.clone(),
            other => other.to_string(),
        };
        match e.kind() {
            // A request the provider's format cannot express: the next candidate may.
            ErrorKind::InvalidRequest => AttemptError {
                next: Next::Fallback,
                counts: false,
                ..AttemptError::of_kind(ErrorKind::InvalidRequest, message)
            },
            kind => AttemptError::of_kind(kind, message),
        }
    }
}

/// The model face's engine. Build one per config ([`Dispatcher::new`]) and share it.
#[derive(Debug)]
pub struct Dispatcher {
    registry: Registry,
    prepared: Vec<Prepared>,
    health: Health,
    router: Router,
    client: reqwest::Client,
    retry: RetryConfig,
    timeouts: ModelTimeouts,
    data_residency: Vec<String>,
    sink: Sinks,
    totals: Arc<Totals>,
    recent: Arc<RecentRequests>,
}

/// Installs rustls's ring provider once (the binary does it too; this covers libraries and
/// tests that build a dispatcher directly).
fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Dispatcher {
    /// Builds the registry, provider adapters, health table and HTTP client. `sink` receives
    /// every request record besides the built-in log, ring and totals.
    pub fn new(
        models: &[ModelConfig],
        routing: &RoutingConfig,
        sink: Option<Arc<dyn RequestSink>>,
    ) -> Result<Arc<Dispatcher>, DispatchError> {
        install_crypto();
        let registry = Registry::new(models, routing).map_err(DispatchError::Registry)?;
        let mut prepared = Vec::with_capacity(registry.slot_count());
        for m in registry.models() {
            for e in &m.endpoints {
                prepared.push(Prepared::new(m, e)?);
            }
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            // Keys ride in headers: never follow a redirect elsewhere with them.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| DispatchError::Client(e.to_string()))?;
        let totals = Arc::new(Totals::default());
        let recent = Arc::new(RecentRequests::new(RECENT_REQUESTS));
        let mut sinks: Vec<Arc<dyn RequestSink>> =
            vec![Arc::new(LogSink), totals.clone(), recent.clone()];
        sinks.extend(sink);
        Ok(Arc::new(Dispatcher {
            health: Health::new(registry.slot_count(), routing.circuit_breaker),
            router: Router::new(routing.weights),
            registry,
            prepared,
            client,
            retry: routing.retry,
            timeouts: routing.timeouts,
            data_residency: routing.data_residency.clone(),
            sink: Sinks(sinks),
            totals,
            recent,
        }))
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The health table.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// The most recent request records, oldest first.
    pub fn recent(&self) -> Vec<RequestRecord> {
        self.recent.snapshot()
    }

    /// Running totals.
    pub fn totals(&self) -> crate::accounting::TotalsSnapshot {
        self.totals.snapshot()
    }

    /// A status document: models, aliases, every endpoint's circuit and counts, totals.
    pub fn status(&self) -> Value {
        let now = Instant::now();
        let endpoints: Vec<Value> = self
            .registry
            .models()
            .iter()
            .flat_map(|m| m.endpoints.iter())
            .map(|e| {
                let (ok, failed, state) = self.health.totals(e.slot, now);
                let view = self.health.view(e.slot, now);
                json!({
                    "endpoint": e.label,
                    "circuit": state.as_str(),
                    "ok": ok,
                    "failed": failed,
                    "latency_ms": view.latency_ms.map(|l| (l * 10.0).round() / 10.0),
                    "error_rate": (view.error_rate * 1000.0).round() / 1000.0,
                })
            })
            .collect();
        json!({
            "models": self.registry.models().len(),
            "aliases": self.registry.aliases().iter().map(|a| a.name.clone()).collect::<Vec<_>>(),
            "endpoints": endpoints,
            "totals": self.totals.snapshot(),
        })
    }

    fn residency(&self, header: &[String]) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        if !self.data_residency.is_empty() {
            out.push(self.data_residency.clone());
        }
        if !header.is_empty() {
            out.push(header.to_vec());
        }
        out
    }

    fn plan(&self, input: &RouteInput<'_>) -> Result<Plan, RouteError> {
        let plan = self
            .router
            .plan(&self.registry, &self.health, input, Instant::now())?;
        // Alias decisions are the interesting ones (info); a model asked for by id is routed
        // by nothing but its endpoints' health (debug).
        macro_rules! decision {
            ($level:expr) => {
                tracing::event!(
                    target: "mcplane::llm::route",
                    $level,
                    request_id = input.request_id,
                    requested = input.requested,
                    strategy = plan.strategy,
                    prompt_tokens = plan.prompt_tokens,
                    max_output = input.needs.max_output,
                    residency = ?input.residency,
                    candidates = %serde_json::to_string(&plan.candidates).unwrap_or_default(),
                    reason = %plan.reason,
                    "route decision"
                )
            };
        }
        if plan.alias.is_some() {
            decision!(tracing::Level::INFO);
        } else {
            decision!(tracing::Level::DEBUG);
        }
        Ok(plan)
    }

    /// Serves a chat call.
    pub async fn chat(self: &Arc<Self>, call: ChatCall) -> Result<Reply, Failure> {
        let ChatCall {
            request_id,
            client,
            front_door,
            mut request,
            residency,
            received,
        } = call;
        let stream = request.stream;
        let mut ledger = Ledger::new(
            self.sink.clone(),
            &request_id,
            front_door,
            &request.model,
            stream,
            received,
        );
        let needs = chat_needs(&request);
        let residency = self.residency(&residency);
        let requested = request.model.clone();
        let plan = match self.plan(&RouteInput {
            requested: &requested,
            request_id: &request_id,
            kind: CallKind::Chat,
            needs: needs.clone(),
            residency: &residency,
        }) {
            Ok(p) => p,
            Err(e) => return Err(ledger.fail(Failure::route(&e))),
        };
        ledger.rec.route_reason.clone_from(&plan.reason);
        let include_usage = request.include_usage;
        let fallback_id = match client {
            Format::Anthropic => format!("msg_mcplane_{request_id}"),
            _ => format!("chatcmpl-mcplane-{request_id}"),
        };
        let job = Job::Chat {
            req: &mut request,
            stream,
            client,
            options: EncodeOptions {
                include_usage,
                created: unix_now(),
                fallback_id: fallback_id.clone(),
                prompt_tokens: Some(plan.prompt_tokens),
            },
        };
        let done = self.run(&plan, job, &mut ledger).await?;
        let model = self.registry.model_at(done.step.model);
        let endpoint = &model.endpoints[done.step.endpoint];
        let reason = served_reason(&plan, &done.attempts, endpoint);
        ledger.rec.route_reason.clone_from(&reason);
        ledger.rec.attempts = done.attempts.len() + 1;
        match done.got {
            Got::Chat(raw, mut resp) => {
                let (usage, source) = match &resp.usage {
                    Some(u) => (u.clone(), UsageSource::Reported),
                    None => (
                        Usage::new(
                            plan.prompt_tokens,
                            tokens::count_text(
                                &endpoint.upstream_model,
                                &resp
                                    .choices
                                    .iter()
                                    .map(|c| c.message.text_content())
                                    .collect::<String>(),
                            ),
                        ),
                        UsageSource::Estimated,
                    ),
                };
                let cost = model.price.cost_of(&usage);
                let body = if client == model.format {
                    raw
                } else {
                    if resp.created.is_none() {
                        resp.created = Some(unix_now());
                    }
                    if resp.id.is_empty() {
                        resp.id = fallback_id;
                    }
                    if resp.model.is_empty() {
                        resp.model.clone_from(&endpoint.upstream_model);
                    }
                    match codec::encode_response(client, &resp) {
                        Ok(b) => Bytes::from(b),
                        Err(e) => {
                            return Err(ledger.fail(Failure::new(
                                ErrorKind::UpstreamProtocol,
                                format!("cannot translate {}'s answer: {e}", model.id),
                            )));
                        }
                    }
                };
                let latency = received.elapsed();
                ledger.finish(Finish {
                    outcome: Outcome::Ok,
                    status: 200,
                    usage: Some((usage, source)),
                    cost,
                    ttft: Some(latency),
                    error: None,
                });
                Ok(Reply {
                    served: Served {
                        model: model.id.clone(),
                        endpoint: endpoint.label.clone(),
                        reason,
                        cost,
                        cost_estimated: false,
                        attempts: done.attempts.len() + 1,
                    },
                    body: Body::Json(body),
                })
            }
            Got::Stream(state) => {
                let prompt_cost = model.price.cost(plan.prompt_tokens, 0);
                let run = StreamRun {
                    state,
                    deadline: done.deadline,
                    permit: done.permit,
                    ledger,
                    ttft: received.elapsed(),
                    upstream_model: endpoint.upstream_model.clone(),
                    prompt_estimate: plan.prompt_tokens,
                    price: model.price,
                    finished: false,
                };
                let attempts = done.attempts.len() + 1;
                Ok(Reply {
                    served: Served {
                        model: model.id.clone(),
                        endpoint: endpoint.label.clone(),
                        reason,
                        cost: prompt_cost,
                        cost_estimated: true,
                        attempts,
                    },
                    body: Body::Stream(Box::pin(futures::stream::unfold(
                        Box::new(run),
                        |mut run| async move { run.next_frame().await.map(|b| (b, run)) },
                    ))),
                })
            }
            Got::Embeddings(..) => Err(ledger.fail(Failure::new(
                ErrorKind::Internal,
                "internal error: an embeddings answer to a chat call",
            ))),
        }
    }

    /// Serves an embeddings call (OpenAI format in and out).
    pub async fn embeddings(self: &Arc<Self>, call: EmbeddingsCall) -> Result<Reply, Failure> {
        let EmbeddingsCall {
            request_id,
            mut request,
            residency,
            received,
        } = call;
        let mut ledger = Ledger::new(
            self.sink.clone(),
            &request_id,
            "openai.embeddings",
            &request.model,
            false,
            received,
        );
        let prompt_tokens = tokens::estimate_embeddings(&request, &request.model);
        let residency = self.residency(&residency);
        let requested = request.model.clone();
        let plan = match self.plan(&RouteInput {
            requested: &requested,
            request_id: &request_id,
            kind: CallKind::Embeddings,
            needs: Needs {
                choices: 1,
                prompt_tokens,
                ..Needs::default()
            },
            residency: &residency,
        }) {
            Ok(p) => p,
            Err(e) => return Err(ledger.fail(Failure::route(&e))),
        };
        ledger.rec.route_reason.clone_from(&plan.reason);
        let wants_base64 = request.encoding_format == Some(EncodingFormat::Base64);
        let done = self
            .run(&plan, Job::Embeddings { req: &mut request }, &mut ledger)
            .await?;
        let model = self.registry.model_at(done.step.model);
        let endpoint = &model.endpoints[done.step.endpoint];
        let reason = served_reason(&plan, &done.attempts, endpoint);
        ledger.rec.route_reason.clone_from(&reason);
        ledger.rec.attempts = done.attempts.len() + 1;
        let Got::Embeddings(raw, mut resp) = done.got else {
            return Err(ledger.fail(Failure::new(
                ErrorKind::Internal,
                "internal error: a chat answer to an embeddings call",
            )));
        };
        let (usage, source) = match &resp.usage {
            Some(u) => (u.clone(), UsageSource::Reported),
            None => (Usage::new(prompt_tokens, 0), UsageSource::Estimated),
        };
        let cost = model.price.cost_of(&usage);
        let body = if model.format == Format::OpenAi {
            raw
        } else {
            if resp.model.is_empty() {
                resp.model.clone_from(&endpoint.upstream_model);
            }
            if resp.usage.is_none() {
                resp.usage = Some(usage.clone());
            }
            if wants_base64 {
                for e in &mut resp.data {
                    if let Vector::Float(_) = e.vector {
                        e.vector = Vector::Base64(e.vector.to_base64());
                    }
                }
            }
            match openai::encode_embeddings_response(&resp) {
                Ok(b) => Bytes::from(b),
                Err(e) => {
                    return Err(ledger.fail(Failure::new(
                        ErrorKind::UpstreamProtocol,
                        format!("cannot translate {}'s answer: {e}", model.id),
                    )));
                }
            }
        };
        ledger.finish(Finish {
            outcome: Outcome::Ok,
            status: 200,
            usage: Some((usage, source)),
            cost,
            ttft: Some(received.elapsed()),
            error: None,
        });
        Ok(Reply {
            served: Served {
                model: model.id.clone(),
                endpoint: endpoint.label.clone(),
                reason,
                cost,
                cost_estimated: false,
                attempts: done.attempts.len() + 1,
            },
            body: Body::Json(body),
        })
    }

    /// Walks the plan: every step, with retries, until one succeeds.
    async fn run(
        &self,
        plan: &Plan,
        mut job: Job<'_>,
        ledger: &mut Ledger,
    ) -> Result<Done, Failure> {
        let mut attempts: Vec<Attempt> = Vec::new();
        let max_attempts = self.retry.max_attempts.max(1);
        for step in &plan.steps {
            let model = self.registry.model_at(step.model);
            let endpoint = &model.endpoints[step.endpoint];
            let prepared = &self.prepared[step.slot];
            ledger.rec.model = Some(model.id.clone());
            ledger.rec.endpoint = Some(endpoint.label.clone());
            let upstream = match job.request(model, prepared) {
                Ok(u) => u,
                Err(e) => {
                    let err = AttemptError::llm(&e);
                    attempts.push(attempt(model, endpoint, &err, Duration::ZERO));
                    continue;
                }
            };
            for n in 1..=max_attempts {
                let permit = match self.health.acquire(step.slot, Instant::now()) {
                    Ok(p) => p,
                    Err(refused) => {
                        let err = AttemptError {
                            counts: false,
                            next: Next::Fallback,
                            ..AttemptError::of_kind(
                                ErrorKind::UpstreamUnavailable,
                                if refused.retry_in.is_zero() {
                                    "circuit half-open: a trial call is in flight".to_string()
                                } else {
                                    format!(
                                        "circuit open (next trial in {} ms)",
                                        refused.retry_in.as_millis()
                                    )
                                },
                            )
                        };
                        attempts.push(attempt(model, endpoint, &err, Duration::ZERO));
                        break;
                    }
                };
                let started = Instant::now();
                let deadline = tokio::time::Instant::now() + self.timeouts.request;
                match self.attempt(model, &upstream, &job, deadline).await {
                    Ok(got) => {
                        let permit = if matches!(got, Got::Stream(_)) {
                            Some(permit)
                        } else {
                            permit.success(started.elapsed());
                            None
                        };
                        if !attempts.is_empty() {
                            tracing::info!(
                                target: "mcplane::llm::route",
                                request_id = %ledger.rec.request_id,
                                served_by = %endpoint.label,
                                failed_attempts = attempts.len(),
                                "served after fallback or retry"
                            );
                        }
                        return Ok(Done {
                            step: *step,
                            got,
                            permit,
                            attempts,
                            deadline,
                        });
                    }
                    Err(err) => {
                        tracing::debug!(
                            target: "mcplane::llm::route",
                            request_id = %ledger.rec.request_id,
                            endpoint = %endpoint.label,
                            attempt = n,
                            status = err.status,
                            error = %err.message,
                            "upstream attempt failed"
                        );
                        attempts.push(attempt(model, endpoint, &err, started.elapsed()));
                        if err.counts {
                            permit.failure();
                        } else {
                            drop(permit);
                        }
                        match err.next {
                            Next::Stop => {
                                let mut f = Failure::new(
                                    err.kind,
                                    format!(
                                        "{} ({}) rejected the request: {}",
                                        model.id, endpoint.label, err.message
                                    ),
                                );
                                f.status = err.status.unwrap_or(f.status);
                                f.model = Some(model.id.clone());
                                f.reason = Some(plan.reason.clone());
                                f.attempts = attempts;
                                return Err(ledger.fail(f));
                            }
                            Next::Fallback => break,
                            Next::Retry => {
                                if n == max_attempts {
                                    break;
                                }
                                match self.backoff(n, err.retry_after) {
                                    Some(wait) => tokio::time::sleep(wait).await,
                                    None => break,
                                }
                            }
                        }
                    }
                }
            }
        }
        let mut f = if attempts.iter().all(|a| a.kind == ErrorKind::InvalidRequest) {
            Failure::invalid(format!(
                "no candidate can take this request: {}",
                summary(&attempts)
            ))
        } else {
            Failure::new(
                ErrorKind::UpstreamUnavailable,
                format!(
                    "every upstream attempt failed ({} attempt(s)): {}",
                    attempts.len(),
                    summary(&attempts)
                ),
            )
        };
        f.reason = Some(plan.reason.clone());
        f.attempts = attempts;
        Err(ledger.fail(f))
    }

    /// The wait before retry `n + 1`: doubling back-off, or the provider's `Retry-After` when
    /// longer; `None` when the provider asks for longer than `max_backoff` (move on instead).
    fn backoff(&self, n: u32, retry_after: Option<Duration>) -> Option<Duration> {
        let exp = self
            .retry
            .initial_backoff
            .saturating_mul(1u32 << (n - 1).min(20))
            .min(self.retry.max_backoff);
        match retry_after {
            Some(ra) if ra > self.retry.max_backoff => None,
            Some(ra) => Some(ra.max(exp)),
            None => Some(exp),
        }
    }

    /// One attempt.
    async fn attempt(
        &self,
        model: &Model,
        upstream: &UpstreamRequest,
        job: &Job<'_>,
        deadline: tokio::time::Instant,
    ) -> Result<Got, AttemptError> {
        match job {
            Job::Chat { stream: false, .. } => {
                let raw = self.send_json(upstream, deadline).await?;
                let resp = codec::decode_response(model.format, &raw)
                    .map_err(|e| AttemptError::llm(&e))?;
                Ok(Got::Chat(raw, resp))
            }
            Job::Chat {
                stream: true,
                client,
                options,
                ..
            } => {
                let first = deadline.min(tokio::time::Instant::now() + self.timeouts.first_token);
                let resp = self.send(upstream, first).await?;
                let resp = self.check(resp, deadline).await?;
                let is_sse = resp
                    .headers()
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_none_or(|ct| ct.contains("text/event-stream"));
                if !is_sse {
                    return Err(AttemptError::of_kind(
                        ErrorKind::UpstreamProtocol,
                        "asked for a stream, got a response that is not text/event-stream",
                    ));
                }
                let mut state = StreamState {
                    body: resp.bytes_stream().boxed(),
                    sse: SseDecoder::default(),
                    events: Vec::new(),
                    translator: StreamTranslator::new(model.format, *client, options.clone()),
                    pending: VecDeque::new(),
                    done: false,
                    failed: None,
                };
                while state.pending.is_empty() && !state.done {
                    state.pump(first).await.map_err(|e| match e {
                        PumpError::Timeout => AttemptError::timeout(format!(
                            "no stream event within the first-token limit ({} ms)",
                            self.timeouts.first_token.as_millis()
                        )),
                        PumpError::Llm(e) => AttemptError::llm(&e),
                    })?;
                }
                Ok(Got::Stream(Box::new(state)))
            }
            Job::Embeddings { .. } => {
                let raw = self.send_json(upstream, deadline).await?;
                let resp = match model.format {
                    Format::Gemini => gemini::decode_embeddings_response(&raw),
                    _ => openai::decode_embeddings_response(&raw),
                }
                .map_err(|e| AttemptError::llm(&e))?;
                Ok(Got::Embeddings(raw, resp))
            }
        }
    }

    /// Sends and waits for the response headers until `deadline`.
    async fn send(
        &self,
        up: &UpstreamRequest,
        deadline: tokio::time::Instant,
    ) -> Result<reqwest::Response, AttemptError> {
        let fut = self
            .client
            .post(&up.url)
            .headers(up.headers.clone())
            .body(up.body.clone())
            .send();
        match tokio::time::timeout_at(deadline, fut).await {
            Err(_) => Err(AttemptError::timeout("no response headers in time")),
            Ok(Err(e)) => Err(AttemptError::of_kind(
                if e.is_timeout() {
                    ErrorKind::UpstreamTimeout
                } else {
                    ErrorKind::UpstreamUnavailable
                },
                describe(&e),
            )),
            Ok(Ok(r)) => Ok(r),
        }
    }

    /// Passes a success status; turns any other into the provider's error.
    async fn check(
        &self,
        resp: reqwest::Response,
        deadline: tokio::time::Instant,
    ) -> Result<reqwest::Response, AttemptError> {
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(resp);
        }
        let after = retry_after(resp.headers());
        // The error body is small; give it a few seconds at most.
        let until = deadline.min(tokio::time::Instant::now() + Duration::from_secs(5));
        let body = read_body(resp, until, MAX_ERROR_BYTES)
            .await
            .unwrap_or_default();
        let provider = decode_error_body(&body, Some(status));
        let kind = match status {
            408 | 429 | 500..=599 => kind_of_status(status),
            _ => provider.as_ref().map_or(kind_of_status(status), |p| p.kind),
        };
        let message = match provider {
            Some(p) if !p.message.is_empty() => format!("HTTP {status}: {}", p.message),
            _ => format!("HTTP {status}"),
        };
        Err(AttemptError::status(status, message, after, kind))
    }

    /// Sends, checks the status and reads the whole body until `deadline`.
    async fn send_json(
        &self,
        up: &UpstreamRequest,
        deadline: tokio::time::Instant,
    ) -> Result<Bytes, AttemptError> {
        let resp = self.send(up, deadline).await?;
        let resp = self.check(resp, deadline).await?;
        read_body(resp, deadline, MAX_RESPONSE_BYTES).await
    }
}

/// What one call asks of each step.
enum Job<'a> {
    Chat {
        req: &'a mut ChatRequest,
        stream: bool,
        client: Format,
        options: EncodeOptions,
    },
    Embeddings {
        req: &'a mut EmbeddingsRequest,
    },
}

impl Job<'_> {
    fn request(&mut self, model: &Model, prepared: &Prepared) -> Result<UpstreamRequest, LlmError> {
        match self {
            Job::Chat { req, stream, .. } => prepared.chat(model, req, *stream),
            Job::Embeddings { req } => prepared.embeddings(model, req),
        }
    }
}

/// What a successful attempt got.
enum Got {
    Chat(Bytes, ChatResponse),
    Stream(Box<StreamState>),
    Embeddings(Bytes, EmbeddingsResponse),
}

struct Done {
    step: Step,
    got: Got,
    /// Kept for streams: the outcome is reported when the stream ends.
    permit: Option<Permit>,
    attempts: Vec<Attempt>,
    deadline: tokio::time::Instant,
}

fn attempt(model: &Model, endpoint: &Endpoint, err: &AttemptError, took: Duration) -> Attempt {
    Attempt {
        model: model.id.clone(),
        endpoint: endpoint.label.clone(),
        status: err.status,
        kind: err.kind,
        error: err.message.clone(),
        duration_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
    }
}

fn summary(attempts: &[Attempt]) -> String {
    attempts
        .iter()
        .map(|a| format!("{}: {}", a.endpoint, a.error))
        .collect::<Vec<_>>()
        .join("; ")
}

fn served_reason(plan: &Plan, attempts: &[Attempt], endpoint: &Endpoint) -> String {
    if attempts.is_empty() {
        return plan.reason.clone();
    }
    let failed: Vec<String> = attempts
        .iter()
        .map(|a| match a.status {
            Some(s) => format!("{} {s}", a.endpoint),
            None => format!("{} {}", a.endpoint, short_kind(a.kind)),
        })
        .collect();
    let text = format!(
        "{}; served by {} after {}",
        plan.reason,
        endpoint.label,
        failed.join(", ")
    );
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

fn short_kind(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::UpstreamTimeout => "timeout",
        ErrorKind::UpstreamProtocol => "protocol error",
        ErrorKind::UpstreamUnavailable => "unavailable",
        ErrorKind::InvalidRequest => "unsupported",
        _ => "error",
    }
}

/// A reqwest error without URL or secrets.
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_connect() {
        "cannot connect to the provider"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_body() || e.is_decode() {
        "the response body failed"
    } else if e.is_request() {
        "the request failed"
    } else {
        "HTTP error"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        what.to_string()
    } else {
        format!("{what}: {detail}")
    }
}

/// Reads a body up to `limit` bytes before `deadline`.
async fn read_body(
    mut resp: reqwest::Response,
    deadline: tokio::time::Instant,
    limit: usize,
) -> Result<Bytes, AttemptError> {
    let mut buf = BytesMut::new();
    loop {
        match tokio::time::timeout_at(deadline, resp.chunk()).await {
            Err(_) => {
                return Err(AttemptError::timeout(
                    "the response body did not arrive in time",
                ));
            }
            Ok(Err(e)) => {
                return Err(AttemptError::of_kind(
                    ErrorKind::UpstreamUnavailable,
                    describe(&e),
                ));
            }
            Ok(Ok(None)) => return Ok(buf.freeze()),
            Ok(Ok(Some(chunk))) => {
                if buf.len() + chunk.len() > limit {
                    return Err(AttemptError::of_kind(
                        ErrorKind::UpstreamProtocol,
                        format!("the response exceeds {limit} bytes"),
                    ));
                }
                buf.extend_from_slice(&chunk);
            }
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

enum PumpError {
    Timeout,
    Llm(LlmError),
}

/// An upstream stream being translated for the client.
struct StreamState {
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    sse: SseDecoder,
    events: Vec<SseEvent>,
    translator: StreamTranslator,
    pending: VecDeque<Bytes>,
    done: bool,
    failed: Option<String>,
}

impl StreamState {
    /// Reads one chunk of the upstream body (until `until`) and queues the client frames it
    /// completes.
    async fn pump(&mut self, until: tokio::time::Instant) -> Result<(), PumpError> {
        if self.translator.is_complete() {
            self.done = true;
            return Ok(());
        }
        let next = tokio::time::timeout_at(until, self.body.next())
            .await
            .map_err(|_| PumpError::Timeout)?;
        match next {
            None => {
                self.sse.finish(&mut self.events).map_err(PumpError::Llm)?;
                self.feed().map_err(PumpError::Llm)?;
                let frames = self.translator.end().map_err(PumpError::Llm)?;
                self.pending.extend(frames);
                self.done = true;
            }
            Some(Err(e)) => {
                return Err(PumpError::Llm(LlmError::Upstream {
                    kind: ErrorKind::UpstreamUnavailable,
                    message: format!(
                        "the provider connection failed mid-stream ({})",
                        describe(&e)
                    ),
                    provider_type: None,
                }));
            }
            Some(Ok(chunk)) => {
                self.sse
                    .feed(&chunk, &mut self.events)
                    .map_err(PumpError::Llm)?;
                self.feed().map_err(PumpError::Llm)?;
                if self.translator.is_complete() {
                    self.done = true;
                }
            }
        }
        Ok(())
    }

    fn feed(&mut self) -> Result<(), LlmError> {
        for ev in self.events.drain(..) {
            let frames = self.translator.feed(&ev)?;
            self.pending.extend(frames);
        }
        Ok(())
    }
}

/// A stream on its way to the client; accounts for itself when it ends or is dropped.
struct StreamRun {
    state: Box<StreamState>,
    deadline: tokio::time::Instant,
    permit: Option<Permit>,
    ledger: Ledger,
    ttft: Duration,
    upstream_model: String,
    prompt_estimate: u64,
    price: crate::Price,
    finished: bool,
}

impl StreamRun {
    async fn next_frame(&mut self) -> Option<Bytes> {
        loop {
            if let Some(b) = self.state.pending.pop_front() {
                return Some(b);
            }
            if self.state.done {
                self.finish();
                return None;
            }
            if let Err(e) = self.state.pump(self.deadline).await {
                let e = match e {
                    PumpError::Timeout => LlmError::Upstream {
                        kind: ErrorKind::UpstreamTimeout,
                        message:
                            "the provider's stream did not finish within the request time limit"
                                .into(),
                        provider_type: None,
                    },
                    PumpError::Llm(e) => e,
                };
                let frames = self.state.translator.fail(&e);
                self.state.pending.extend(frames);
                self.state.done = true;
                self.state.failed = Some(match &e {
                    LlmError::Upstream { message, .. } => message.clone(),
                    other => other.to_string(),
                });
            }
        }
    }

    fn usage(&self) -> (Usage, UsageSource) {
        self.state
            .translator
            .final_usage(&self.upstream_model, self.prompt_estimate)
    }

    fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let (usage, source) = self.usage();
        let cost = self.price.cost_of(&usage);
        let failed = self.state.failed.take();
        if let Some(p) = self.permit.take() {
            if failed.is_some() {
                p.failure();
            } else {
                p.success(self.ttft);
            }
        }
        self.ledger.finish(Finish {
            outcome: if failed.is_some() {
                Outcome::StreamError
            } else {
                Outcome::Ok
            },
            status: 200,
            usage: Some((usage, source)),
            cost,
            ttft: Some(self.ttft),
            error: failed,
        });
    }
}

impl Drop for StreamRun {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        // The client went away: the upstream body is dropped with `self.state`, which closes
        // the provider connection. Account for what was produced.
        let (usage, source) = self.usage();
        let cost = self.price.cost_of(&usage);
        self.ledger.finish(Finish {
            outcome: Outcome::ClientClosed,
            status: 200,
            usage: Some((usage, source)),
            cost,
            ttft: Some(self.ttft),
            error: Some("the client closed the stream".into()),
        });
    }
}

struct Finish {
    outcome: Outcome,
    status: u16,
    usage: Option<(Usage, UsageSource)>,
    cost: MicroUsd,
    ttft: Option<Duration>,
    error: Option<String>,
}

/// Builds the request record and hands it to the sinks exactly once (on drop when the call was
/// abandoned: the client went away before an answer).
struct Ledger {
    sink: Sinks,
    rec: RequestRecord,
    received: Instant,
    done: bool,
}

impl Ledger {
    fn new(
        sink: Sinks,
        request_id: &str,
        front_door: &'static str,
        requested: &str,
        stream: bool,
        received: Instant,
    ) -> Ledger {
        Ledger {
            sink,
            rec: RequestRecord {
                request_id: request_id.to_string(),
                principal: None,
                front_door,
                requested: requested.to_string(),
                model: None,
                endpoint: None,
                stream,
                status: 0,
                outcome: Outcome::Error,
                error: None,
                latency_ms: 0,
                ttft_ms: None,
                prompt_tokens: 0,
                completion_tokens: 0,
                usage_source: "none",
                cost_micros: 0,
                route_reason: String::new(),
                attempts: 0,
            },
            received,
            done: false,
        }
    }

    fn finish(&mut self, f: Finish) {
        if self.done {
            return;
        }
        self.done = true;
        let r = &mut self.rec;
        r.status = f.status;
        r.outcome = f.outcome;
        r.error = f.error;
        r.latency_ms = millis(self.received.elapsed());
        r.ttft_ms = f.ttft.map(millis);
        if let Some((u, s)) = f.usage {
            r.prompt_tokens = u.prompt_tokens;
            r.completion_tokens = u.completion_tokens;
            r.usage_source = usage_source_name(s);
        }
        r.cost_micros = f.cost.micros();
        self.sink.record(r);
    }

    fn fail(&mut self, f: Failure) -> Failure {
        self.rec.attempts = f.attempts.len();
        if f.model.is_some() {
            self.rec.model.clone_from(&f.model);
        }
        self.finish(Finish {
            outcome: Outcome::Error,
            status: f.status,
            usage: None,
            cost: MicroUsd::ZERO,
            ttft: None,
            error: Some(f.message.clone()),
        });
        f
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        if !self.done {
            self.finish(Finish {
                outcome: Outcome::ClientClosed,
                status: 499,
                usage: None,
                cost: MicroUsd::ZERO,
                ttft: None,
                error: Some("the client went away before the answer".into()),
            });
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A fresh request id: 24 random hex digits.
pub fn new_request_id() -> String {
    let n: u128 = rand::random();
    format!("{:024x}", n & ((1u128 << 96) - 1))
}
