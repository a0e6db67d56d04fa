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

mod ledger;
mod stream;
mod upstream;

use ledger::{Finish, Ledger};
use stream::StreamRun;
use upstream::{Got, Job};

use crate::accounting::{
    LogSink, Outcome, RecentRequests, RequestRecord, RequestSink, Sinks, Totals,
};
use crate::embeddings::{EmbeddingsRequest, EncodingFormat, Vector};
use crate::health::Health;
use crate::provider::{EndpointError, Prepared};
use crate::registry::{Endpoint, Registry};
use crate::router::{CallKind, Needs, Plan, RouteError, RouteInput, Router, chat_needs};
use crate::stream::{EncodeOptions, UsageSource};
use crate::usage::Usage;
use crate::{ChatRequest, Format, LlmError, codec, openai, tokens};
use bytes::Bytes;
use futures::Stream;
use mcplane_config::{ModelConfig, ModelTimeouts, RetryConfig, RoutingConfig};
use mcplane_types::Principal;
use mcplane_types::{ErrorKind, MicroUsd};
use serde::Serialize;
use serde_json::{Value, json};
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
    /// Who is calling, for the request record (id and tenant levels).
    pub caller: Option<Arc<Principal>>,
    /// Called once with the call's final cost (failed, streamed or abandoned calls included),
    /// when it is known: where budget reservations are settled.
    pub on_cost: Option<OnCost>,
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

/// Told a call's final cost (see [`ChatCall::on_cost`]).
pub struct OnCost(pub Box<dyn FnOnce(MicroUsd) + Send>);

impl std::fmt::Debug for OnCost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnCost")
    }
}

/// An embeddings call (OpenAI format at the front door).
#[derive(Debug)]
pub struct EmbeddingsCall {
    /// Who is calling, for the request record (id and tenant levels).
    pub caller: Option<Arc<Principal>>,
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
            caller,
            on_cost,
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
        ledger.attribute(caller.as_deref());
        ledger.on_cost = on_cost;
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
            caller,
        } = call;
        let mut ledger = Ledger::new(
            self.sink.clone(),
            &request_id,
            "openai.embeddings",
            &request.model,
            false,
            received,
        );
        ledger.attribute(caller.as_deref());
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

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A fresh request id: 24 random hex digits.
pub fn new_request_id() -> String {
    let n: u128 = rand::random();
    format!("{:024x}", n & ((1u128 << 96) - 1))
}
