//! Starting, observing and stopping a mock: [`MockConfig`], [`MockProvider::start`] and the
//! [`MockHandle`] tests keep; the route table and the state every handler shares.

use super::control;
use super::fault::{Fault, FaultBook, FaultStatus, Provider};
use super::record::{RecordedRequest, RequestLog};
use super::{anthropic, deliver, gemini, openai};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use http::StatusCode;
use http::request::Parts;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How a mock behaves. `MockConfig::default()` listens on a free loopback port and accepts any
/// non-empty key.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Where to listen (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The one key every provider route requires (OpenAI `Authorization: Bearer`, Azure
    /// `api-key`, Anthropic `x-api-key` or `Authorization: Bearer`, Gemini
    /// `x-goog-api-key`/`?key=`). `None`: a key must be present, any value passes.
    pub api_key: Option<String>,
    /// Model ids the listing endpoints return (requests may name any model).
    pub models: Vec<String>,
    /// Embedding dimensions when the request does not ask for a number.
    pub embedding_dims: usize,
    /// Delay between stream events (0: each stream is written at once).
    pub event_interval: Duration,
    /// How many recent requests the log keeps (0: none; the counter still counts).
    pub record_limit: usize,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Seed of the dice `percent` faults roll.
    pub seed: u64,
    /// Fault rules in force from the start.
    pub faults: Vec<Fault>,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            api_key: None,
            models: [
                "gpt-4o",
                "gpt-4o-mini",
                "text-embedding-3-small",
                "claude-sonnet-4-5",
                "claude-haiku-4-5",
                "gemini-2.5-flash",
                "text-embedding-004",
            ]
            .map(String::from)
            .to_vec(),
            embedding_dims: 1536,
            event_interval: Duration::ZERO,
            record_limit: 10_000,
            max_body_bytes: 32 * 1024 * 1024,
            seed: 0x006d_6370_6c61_6e65,
            faults: Vec::new(),
        }
    }
}

impl MockConfig {
    /// Requires exactly `key` on every provider route.
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Listens on `addr`.
    pub fn with_listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Paces every stream with `interval` between events.
    pub fn with_event_interval(mut self, interval: Duration) -> Self {
        self.event_interval = interval;
        self
    }
}

/// The state every handler shares.
pub(crate) struct Shared {
    pub api_key: Option<String>,
    pub embedding_dims: usize,
    pub event_interval: Duration,
    pub max_body_bytes: usize,
    pub faults: FaultBook,
    pub log: RequestLog,
    pub cancel: CancellationToken,
    /// Precomputed model listings.
    pub openai_models: Bytes,
    pub anthropic_models: Bytes,
    pub gemini_models: Bytes,
}

impl Shared {
    /// Whether `presented` is an acceptable key.
    pub fn key_ok(&self, presented: &str) -> bool {
        match &self.api_key {
            Some(key) => presented == key,
            None => !presented.is_empty(),
        }
    }
}

/// Starts mock providers.
pub struct MockProvider;

impl MockProvider {
    /// Binds `config.listen` and serves every format until the handle is shut down or dropped.
    pub async fn start(config: MockConfig) -> io::Result<MockHandle> {
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let cancel = CancellationToken::new();
        let faults = FaultBook::new(config.seed);
        faults.set(config.faults);
        let shared = Arc::new(Shared {
            openai_models: openai::models_body(&config.models),
            anthropic_models: anthropic::models_body(&config.models),
            gemini_models: gemini::models_body(&config.models),
            api_key: config.api_key,
            embedding_dims: config.embedding_dims,
            event_interval: config.event_interval,
            max_body_bytes: config.max_body_bytes,
            faults,
            log: RequestLog::new(config.record_limit),
            cancel: cancel.clone(),
        });
        let app = router(shared.clone());
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let signal = cancel.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { signal.cancelled().await })
                .await
        });
        Ok(MockHandle {
            addr,
            shared,
            task: Some(task),
        })
    }
}

/// A running mock. Dropping it stops the server (without waiting).
pub struct MockHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl MockHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`: the base URL for the Anthropic and Gemini SDKs and Azure's endpoint.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://ADDR/v1`: the base URL for the OpenAI SDKs and OpenAI-compatible clients.
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Replaces every fault rule.
    pub fn set_faults(&self, faults: Vec<Fault>) {
        self.shared.faults.set(faults);
    }

    /// Adds a fault rule after the existing ones.
    pub fn push_fault(&self, fault: Fault) {
        self.shared.faults.push(fault);
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.shared.faults.set(Vec::new());
    }

    /// The fault rules with their counters.
    pub fn faults(&self) -> Vec<FaultStatus> {
        self.shared.faults.snapshot()
    }

    /// The recorded requests, oldest first (the newest `record_limit`).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.log.since(0)
    }

    /// The recorded requests with `seq > since`.
    pub fn requests_since(&self, since: u64) -> Vec<RecordedRequest> {
        self.shared.log.since(since)
    }

    /// How many requests reached the mock (recorded or not), control routes excluded.
    pub fn request_count(&self) -> u64 {
        self.shared.log.total()
    }

    /// Forgets the recorded requests and resets the counter.
    pub fn clear_requests(&self) {
        self.shared.log.clear();
    }

    /// Stops accepting, ends hung requests and paced streams, and waits (at most 2 s) for the
    /// server to finish.
    pub async fn shutdown(mut self) -> io::Result<()> {
        self.shared.cancel.cancel();
        let Some(mut task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(Duration::from_secs(2), &mut task).await {
            Ok(joined) => joined.map_err(io::Error::other)?,
            Err(_) => {
                task.abort();
                Ok(())
            }
        }
    }
}

impl Drop for MockHandle {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(openai::chat))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/v1/models", get(list_models))
        .route("/v1/models/{id}", get(get_model).post(gemini::action))
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(openai::azure_chat),
        )
        .route(
            "/openai/deployments/{deployment}/embeddings",
            post(openai::azure_embeddings),
        )
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/messages/count_tokens", post(anthropic::count_tokens))
        .route("/v1beta/models", get(gemini::list_models))
        .route(
            "/v1beta/models/{id}",
            get(gemini::get_model).post(gemini::action),
        )
        .merge(control::router())
        .fallback(unknown_route)
        .with_state(shared)
}

/// Which format a request to a shared path (`/v1/models…`) speaks, by its headers.
fn shared_path_provider(req: &Request) -> Provider {
    let has_key_param = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv.starts_with("key=")));
    if req.headers().contains_key("anthropic-version") {
        Provider::Anthropic
    } else if req.headers().contains_key("x-goog-api-key") || has_key_param {
        Provider::Gemini
    } else {
        Provider::OpenAi
    }
}

/// `GET /v1/models`: Anthropic's listing when the request carries `anthropic-version`,
/// Gemini's with a Google key, OpenAI's otherwise.
async fn list_models(state: State<Arc<Shared>>, req: Request) -> Response {
    match shared_path_provider(&req) {
        Provider::Anthropic => anthropic::list_models(state, req).await,
        Provider::Gemini => gemini::list_models(state, req).await,
        _ => openai::list_models(state, req).await,
    }
}

/// `GET /v1/models/{id}`, split the same way.
async fn get_model(state: State<Arc<Shared>>, Path(id): Path<String>, req: Request) -> Response {
    match shared_path_provider(&req) {
        Provider::Anthropic => anthropic::get_model(state, req).await,
        Provider::Gemini => gemini::get_model(state, Path(id), req).await,
        _ => openai::get_model(state, req).await,
    }
}

/// Any other route: recorded (to debug URL building), answered 404 in OpenAI's shape.
async fn unknown_route(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = match read(&shared, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let seq = shared.log.next_seq();
    let response = openai::unknown_url(&parts);
    let call = deliver::Call {
        provider: None,
        endpoint: None,
        model: None,
        stream: false,
        outcome: deliver::Outcome::Reject(response),
    };
    deliver::finish(&shared, seq, parts, body, call).await
}

/// Reads the body, plans the call, and finishes it.
pub(crate) async fn run(
    s: &Shared,
    req: Request,
    plan: impl FnOnce(&Shared, u64, &Parts, &Bytes) -> deliver::Call,
) -> Response {
    let (parts, body) = match read(s, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let seq = s.log.next_seq();
    let call = plan(s, seq, &parts, &body);
    deliver::finish(s, seq, parts, body, call).await
}

/// Reads the whole body (bounded by the configured limit).
pub(crate) async fn read(shared: &Shared, req: Request) -> Result<(Parts, Bytes), Response> {
    let (parts, body) = req.into_parts();
    match axum::body::to_bytes(body, shared.max_body_bytes).await {
        Ok(bytes) => Ok((parts, bytes)),
        Err(_) => Err((StatusCode::PAYLOAD_TOO_LARGE, "mock: body too large").into_response()),
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
