//! Wiring for the long-running commands: logging, config, upstreams, gateway, transports,
//! readiness and graceful shutdown.

use crate::reload::Reloader;
use anyhow::Context;
use axum::Json;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use mcplane_config::{Config, Loaded};
use mcplane_gateway::virtual_servers::VirtualEndpoints;
use mcplane_llm::dispatch::Dispatcher;
use mcplane_mcp::gateway::Gateway;
use mcplane_mcp::server::Server;
use mcplane_mcp::upstream::{self, Upstream};
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Structured logs to stderr (stdout belongs to the stdio transport). `MCPLANE_LOG` sets the
/// filter (default `info`); `MCPLANE_LOG_FORMAT=json` switches to JSON lines.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MCPLANE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if std::env::var("MCPLANE_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The config used when none is given: the built-in demo server as the one upstream.
fn default_config() -> anyhow::Result<Loaded> {
    let exe = std::env::current_exe().context("cannot locate the mcplane executable")?;
    let yaml = format!(
        "mcp:\n  servers:\n    demo:\n      transport: stdio\n      command: {}\n      args: [demo-server]\n",
        serde_json::to_string(&exe.display().to_string())?
    );
    Ok(mcplane_config::parse(&yaml, &|_| None)?)
}

fn load(path: Option<&Path>) -> anyhow::Result<Config> {
    let loaded = match path {
        Some(p) => mcplane_config::load(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
        None => default_config()?,
    };
    for n in &loaded.notices {
        tracing::warn!(key = %n.path, "{}", n.message);
    }
    Ok(loaded.config)
}

/// Everything a running gateway holds.
struct Running {
    config: Config,
    gateway: Arc<Gateway>,
    server: Arc<Server>,
    virtual_servers: Arc<VirtualEndpoints>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

fn start(config: Config) -> Running {
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let (events_tx, events_rx) = tokio::sync::mpsc::channel(1024);
    let upstreams = config
        .mcp
        .servers
        .iter()
        .map(|u| {
            Upstream::spawn(
                u.clone(),
                upstream::opener(),
                events_tx.clone(),
                shutdown.clone(),
                &tasks,
            )
        })
        .collect();
    let gateway = Gateway::new(&config.mcp, upstreams);
    tasks.spawn(gateway.clone().route_events(events_rx));
    let server = Server::with_options(gateway.clone(), gateway.server_options());
    tasks.spawn(mcplane_gateway::http::reap_idle_sessions(
        server.clone(),
        config.server.session_idle_timeout,
        shutdown.clone(),
    ));
    let virtual_servers =
        VirtualEndpoints::new(gateway.clone(), &config.server, &config.mcp.virtual_servers);
    tasks.spawn(
        virtual_servers
            .clone()
            .reap_idle_sessions(config.server.session_idle_timeout, shutdown.clone()),
    );
    Running {
        config,
        gateway,
        server,
        virtual_servers,
        shutdown,
        tasks,
    }
}

impl Running {
    /// Closes sessions, stops upstreams (children terminated), waits for background tasks.
    async fn stop(self) {
        self.server.shutdown().await;
        self.virtual_servers.shutdown().await;
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// How often the API keys are reloaded from the store (new keys and revocations take effect
/// within this long).
pub const KEY_REFRESH: std::time::Duration = std::time::Duration::from_secs(2);

/// Keeps the authenticator's API keys in step with the store until `shutdown`.
async fn refresh_keys(
    store: mcplane_store::Store,
    governance: Arc<mcplane_core::governance::Governance>,
    shutdown: CancellationToken,
) {
    let mut failing = false;
    loop {
        match store.active_keys(mcplane_types::clock::now_ms()).await {
            Ok(keys) => {
                if failing {
                    tracing::info!(keys = keys.len(), "API keys reloaded from the store again");
                }
                failing = false;
                governance
                    .authn
                    .replace_keys(mcplane_core::keys::KeySet::new(keys));
            }
            // The last good snapshot stays in force.
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "cannot reload API keys from the store; keeping the last ones");
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(KEY_REFRESH) => {}
        }
    }
}

/// Model-call records buffered for the store before new ones are dropped (and counted).
const RECORD_BUFFER: usize = 8192;

/// `mcplane serve`.
pub async fn serve(path: Option<&Path>, listen: Option<SocketAddr>) -> anyhow::Result<ExitCode> {
    let mut config = load(path)?;
    if let Some(l) = listen {
        config.server.listen = l;
    }
    // The store: model-call records are written to it off the request path.
    let store =
        mcplane_store::Store::open_with(config.store.url.expose(), config.store.max_connections)
            .await
            .context("store.url: cannot open the store")?;
    let records = mcplane_store::CallWriter::start(store.clone(), RECORD_BUFFER);
    // The model face: registry, router and provider adapters (a restart applies changes to
    // `models` and `routing`).
    let llm = Dispatcher::new(&config.models, &config.routing, Some(records.clone()))
        .context("cannot start the model face")?;
    let governance = Arc::new(
        crate::governance::build(&config, crate::governance::counters(&config).await?)
            .context("cannot set up authentication, policy and limits")?,
    );
    if config.store.redis.is_none() && !governance.budgets.is_empty() {
        // Budget counters live in this process: rebuild the current windows from the records.
        let now = mcplane_types::clock::since_epoch();
        for (kind, id, since_ms, key) in governance.budgets.current_windows(now) {
            let spent = store
                .spent_since(&kind, &id, since_ms)
                .await
                .context("cannot rebuild budget spend from the store")?;
            governance.budgets.seed(&key, spent).await?;
        }
    }
    let running = start(config);
    running.gateway.govern(governance.clone());
    if governance.authn.accepts_api_keys() {
        let keys = store
            .active_keys(mcplane_types::clock::now_ms())
            .await
            .context("cannot load the API keys from the store")?;
        governance
            .authn
            .replace_keys(mcplane_core::keys::KeySet::new(keys));
        running.tasks.spawn(refresh_keys(
            store.clone(),
            governance.clone(),
            running.shutdown.clone(),
        ));
    }
    if let Some(p) = path {
        let reloader = Reloader::new(
            p,
            running.config.clone(),
            listen.is_some(),
            running.virtual_servers.clone(),
        );
        running.tasks.spawn(reloader.run(running.shutdown.clone()));
    }
    if !running.config.models.is_empty() {
        running.tasks.spawn_blocking(mcplane_llm::tokens::warm_up);
    }
    let gateway = running.gateway.clone();
    let virtual_servers = running.virtual_servers.clone();
    let models = llm.clone();
    let health = axum::Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route(
            "/readyz",
            get(move || {
                let gateway = gateway.clone();
                let virtual_servers = virtual_servers.clone();
                let models = models.clone();
                async move {
                    // Readiness first: upstreams never un-settle, so the detail taken after it
                    // agrees with the status code.
                    let ready = gateway.ready();
                    let mut detail = gateway.status().await;
                    detail["virtual_servers"] = virtual_servers.status().await;
                    detail["models"] = models.status();
                    let code = if ready {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    (code, Json(detail)).into_response()
                }
            }),
        )
        .merge(running.virtual_servers.router())
        .merge(mcplane_gateway::governance::metadata_routes(
            governance.clone(),
        ))
        .merge(mcplane_gateway::llm_http::router(
            llm.clone(),
            governance.clone(),
            running.config.server.max_body_bytes,
        ));
    let app = mcplane_gateway::governance::layer(
        mcplane_gateway::http::app(running.server.clone(), &running.config.server, health),
        governance,
    );
    let listener = tokio::net::TcpListener::bind(running.config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", running.config.server.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, virtual_servers = ?running.virtual_servers.names(), models = llm.registry().models().len(), "mcplane listening (MCP at /mcp, virtual servers at /mcp/NAME, models at /v1)");
    let stop = CancellationToken::new();
    let stop_on_signal = stop.clone();
    tokio::spawn(async move {
        signal().await;
        tracing::info!("shutting down");
        stop_on_signal.cancel();
    });
    mcplane_gateway::http::serve(listener, app, stop, running.config.server.shutdown_grace).await?;
    running.stop().await;
    records.close().await;
    store.close().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// `mcplane stdio`.
pub async fn stdio(path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let running = start(load(path)?);
    tokio::select! {
        r = mcplane_mcp::stdio_server::serve(running.server.clone(), tokio::io::stdin(), tokio::io::stdout()) => r?,
        _ = signal() => {}
    }
    running.stop().await;
    Ok(ExitCode::SUCCESS)
}

/// `mcplane demo-server`.
pub async fn demo_server(listen: Option<SocketAddr>) -> anyhow::Result<ExitCode> {
    let server = Server::new(Arc::new(mcplane_mcp::demo::DemoServer::default()));
    match listen {
        None => {
            tokio::select! {
                r = mcplane_mcp::stdio_server::serve(server.clone(), tokio::io::stdin(), tokio::io::stdout()) => r?,
                _ = signal() => {}
            }
        }
        Some(addr) => {
            let mut edge = mcplane_config::parse("", &|_| None)?.config.server;
            edge.listen = addr;
            let app = mcplane_gateway::http::app(server.clone(), &edge, axum::Router::new());
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            tracing::info!(addr = %listener.local_addr()?, "mcplane demo server listening (MCP at /mcp)");
            let stop = CancellationToken::new();
            let s = stop.clone();
            tokio::spawn(async move {
                signal().await;
                s.cancel();
            });
            mcplane_gateway::http::serve(listener, app, stop, edge.shutdown_grace).await?;
        }
    }
    server.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
