//! Virtual servers over HTTP: each `mcp.virtual_servers.<name>` is served at `/mcp/<name>`
//! (Streamable HTTP) and `/mcp/<name>/sse` + `/mcp/<name>/messages` (legacy HTTP+SSE), by its
//! own [`Server`] (its own sessions) around a [`Curated`] service over the shared gateway.
//!
//! [`VirtualEndpoints::apply`] brings the set in line with a new config without a restart: a
//! virtual server that stays keeps its sessions and gets the new definition in place (its
//! sessions are told what changed); a new one starts serving; a removed one closes its sessions
//! and answers 404 from then on. A name that is not configured is a 404 with a JSON-RPC error
//! body, never the full catalogue.

use crate::reply::Rejection;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use mcplane_config::{ServerConfig, VirtualServerConfig};
use mcplane_mcp::gateway::Gateway;
use mcplane_mcp::gateway::curation::Curated;
use mcplane_mcp::server::Server;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// One served virtual server.
struct Endpoint {
    curated: Arc<Curated>,
    server: Arc<Server>,
    router: Router,
}

/// What [`VirtualEndpoints::apply`] changed, for the log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Virtual servers that started serving.
    pub added: Vec<String>,
    /// Virtual servers whose definition changed, with the `list_changed` notifications sent to
    /// their sessions.
    pub updated: Vec<(String, Vec<&'static str>)>,
    /// Virtual servers that stopped serving (their sessions closed).
    pub removed: Vec<String>,
}

impl Applied {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.updated.is_empty() && self.removed.is_empty()
    }
}

/// Every virtual server, by name; swapped in place on reload.
pub struct VirtualEndpoints {
    gateway: Arc<Gateway>,
    max_body_bytes: usize,
    endpoints: RwLock<HashMap<String, Arc<Endpoint>>>,
    applying: tokio::sync::Mutex<()>,
}

impl VirtualEndpoints {
    /// The virtual servers `defs` over `gateway`, with the body limit of `server`.
    pub fn new(
        gateway: Arc<Gateway>,
        server: &ServerConfig,
        defs: &[VirtualServerConfig],
    ) -> Arc<VirtualEndpoints> {
        let endpoints = VirtualEndpoints {
            gateway,
            max_body_bytes: server.max_body_bytes,
            endpoints: RwLock::new(HashMap::new()),
            applying: tokio::sync::Mutex::new(()),
        };
        let built: HashMap<String, Arc<Endpoint>> = defs
            .iter()
            .map(|d| (d.name.clone(), endpoints.endpoint(d.clone())))
            .collect();
        if let Ok(mut e) = endpoints.endpoints.write() {
            *e = built;
        }
        Arc::new(endpoints)
    }

    fn endpoint(&self, def: VirtualServerConfig) -> Arc<Endpoint> {
        let name = def.name.clone();
        let curated = Curated::new(self.gateway.clone(), def);
        let server = Server::with_options(curated.clone(), self.gateway.server_options());
        let router = crate::mcp_http::router(
            server.clone(),
            crate::mcp_http::McpHttpOptions {
                path: format!("/mcp/{name}"),
                max_body_bytes: self.max_body_bytes,
                ..Default::default()
            },
        )
        .merge(crate::mcp_sse::router(
            server.clone(),
            crate::mcp_sse::LegacySseOptions {
                sse_path: format!("/mcp/{name}/sse"),
                messages_path: format!("/mcp/{name}/messages"),
                max_body_bytes: self.max_body_bytes,
                ..Default::default()
            },
        ));
        Arc::new(Endpoint {
            curated,
            server,
            router,
        })
    }

    fn all(&self) -> Vec<(String, Arc<Endpoint>)> {
        let mut all: Vec<(String, Arc<Endpoint>)> = self
            .endpoints
            .read()
            .map(|e| e.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    fn get(&self, name: &str) -> Option<Arc<Endpoint>> {
        self.endpoints.read().ok()?.get(name).cloned()
    }

    /// The names served, sorted.
    pub fn names(&self) -> Vec<String> {
        self.all().into_iter().map(|(n, _)| n).collect()
    }

    /// Brings the served set in line with `defs` (see the module docs).
    pub async fn apply(&self, defs: &[VirtualServerConfig]) -> Applied {
        let _one_at_a_time = self.applying.lock().await;
        let wanted: BTreeMap<&str, &VirtualServerConfig> =
            defs.iter().map(|d| (d.name.as_str(), d)).collect();
        let mut applied = Applied::default();
        let mut removed = Vec::new();
        for (name, endpoint) in self.all() {
            match wanted.get(name.as_str()) {
                Some(def) => {
                    if endpoint.curated.config().as_ref() != *def {
                        let sent = endpoint.curated.update((*def).clone()).await;
                        applied.updated.push((name.clone(), sent));
                    }
                }
                None => {
                    if let Ok(mut e) = self.endpoints.write() {
                        e.remove(&name);
                    }
                    applied.removed.push(name.clone());
                    removed.push(endpoint);
                }
            }
        }
        for (name, def) in wanted {
            if self.get(name).is_none() {
                let endpoint = self.endpoint(def.clone());
                if let Ok(mut e) = self.endpoints.write() {
                    e.insert(name.to_string(), endpoint);
                }
                applied.added.push(name.to_string());
            }
        }
        for endpoint in removed {
            endpoint.server.shutdown().await;
        }
        applied
    }

    /// Per virtual server: naming collisions and live sessions, for `/readyz`.
    pub async fn status(&self) -> Value {
        let mut out = Vec::new();
        for (_, endpoint) in self.all() {
            let mut s = endpoint.curated.status().await;
            s["sessions"] = endpoint.server.session_count().into();
            out.push(s);
        }
        Value::Array(out)
    }

    /// Closes sessions idle for longer than `max_idle` on every virtual server.
    pub fn reap_idle(&self, max_idle: Duration) -> usize {
        self.all()
            .iter()
            .map(|(_, e)| e.server.reap_idle(max_idle))
            .sum()
    }

    /// [`VirtualEndpoints::reap_idle`] periodically (as [`crate::http::reap_idle_sessions`])
    /// until `shutdown`.
    pub async fn reap_idle_sessions(
        self: Arc<Self>,
        idle_timeout: Duration,
        shutdown: CancellationToken,
    ) {
        crate::http::reap_periodically(
            idle_timeout,
            shutdown,
            "virtual server sessions",
            |max_idle| self.reap_idle(max_idle),
        )
        .await;
    }

    /// Closes every virtual server's sessions and waits for their requests (graceful shutdown).
    pub async fn shutdown(&self) {
        for (_, endpoint) in self.all() {
            endpoint.server.shutdown().await;
        }
    }

    /// The routes: `/mcp/{name}`, `/mcp/{name}/sse`, `/mcp/{name}/messages`; anything else under
    /// `/mcp/{name}/` and any unknown name is a 404 with a JSON-RPC error body.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/mcp/{name}", any(handle))
            .route("/mcp/{name}/{*rest}", any(handle))
            .with_state(self.clone())
    }
}

async fn handle(
    State(endpoints): State<Arc<VirtualEndpoints>>,
    Path(params): Path<HashMap<String, String>>,
    req: Request,
) -> Response {
    let name = params.get("name").map(String::as_str).unwrap_or_default();
    let Some(endpoint) = endpoints.get(name) else {
        return Rejection::new(
            StatusCode::NOT_FOUND,
            format!(
                "no virtual server named {name:?}: connect to /mcp for every server, or to \
                 /mcp/NAME for a virtual server configured under mcp.virtual_servers"
            ),
        )
        .into_response();
    };
    let path = req.uri().path().to_string();
    let response = match endpoint.router.clone().oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    if response.status() == StatusCode::NOT_FOUND && response.headers().is_empty() {
        // The virtual server exists, the path under it does not.
        return Rejection::new(
            StatusCode::NOT_FOUND,
            format!(
                "{path} is not an MCP endpoint: virtual server {name:?} is served at /mcp/{name} \
                 (Streamable HTTP) and /mcp/{name}/sse (legacy SSE)"
            ),
        )
        .into_response();
    }
    response
}
