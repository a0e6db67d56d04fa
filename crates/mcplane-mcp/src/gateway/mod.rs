//! The MCP gateway: a [`Service`] that aggregates many upstream servers behind one session.
//!
//! Lists are merged from the [`catalog`]; calls are routed to their owner by the catalogue's
//! reverse maps and relayed untouched (results, errors, `_meta`, unknown fields). While a call is
//! in flight, whatever the upstream sends for it (progress, logging, sampling / elicitation /
//! roots requests) is relayed to the client on that request's stream, with progress tokens and
//! request ids remapped so concurrent clients never see each other's traffic. Messages an upstream
//! sends outside any call go through [`Gateway::route_events`].

pub mod apps;
pub mod catalog;
pub mod curation;
pub mod list_cache;
mod methods;
mod modern;
mod sources;

use crate::jsonrpc::{Kind, Message, RpcError, UPSTREAM_UNAVAILABLE};
use crate::param_headers::ParamHeader;
use crate::protocol;
use crate::server::{CacheHints, Listening, RequestContext, Service, Session};
use crate::upstream::{RelatedSink, Upstream, UpstreamError, UpstreamEvent, UpstreamState};
use async_trait::async_trait;
use catalog::{Fetched, ListKind, View};
use futures::stream::{FuturesUnordered, StreamExt};
use mcplane_config::{FailMode, McpConfig, NamingConfig, PrefixMode, StatelessConfig};
use serde_json::{Map, Value, json};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::mpsc;

/// Messages buffered per relayed call (progress, logs) before the upstream side waits.
const RELAY_CAPACITY: usize = 64;

struct CachedView {
    inputs: sources::SourceKey,
    view: Arc<View>,
}

/// The aggregating MCP service.
pub struct Gateway {
    upstreams: Vec<Arc<Upstream>>,
    names: Vec<String>,
    naming: NamingConfig,
    fail_mode: FailMode,
    lists: list_cache::ListCache,
    /// Throttles the `list_changed` notifications passed on to clients.
    announcements: Arc<list_cache::Coalescer>,
    views: Mutex<HashMap<ListKind, CachedView>>,
    epoch: AtomicU64,
    sessions: Mutex<HashMap<String, Weak<Session>>>,
    inflight: Mutex<HashMap<usize, Vec<(u64, RelatedSink)>>>,
    subscriptions: modern::SessionSubscriptions,
    /// The owner (upstream, its own URI) of each URI sessions are subscribed to, so the shared
    /// upstream subscription can be dropped when the last session leaves.
    subscribed: Mutex<HashMap<String, (usize, String)>>,
    next_seq: AtomicU64,
    /// Stateless (2026-07-28) clients: caching and `input_required` settings.
    stateless: StatelessConfig,
    /// Stateless clients' `subscriptions/listen` streams.
    listeners: Arc<modern::Listeners>,
}

/// Removes a relayed call from the in-flight list when it ends, however it ends.
struct Registration<'a> {
    gateway: &'a Gateway,
    upstream: usize,
    seq: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        if let Ok(mut f) = self.gateway.inflight.lock()
            && let Some(v) = f.get_mut(&self.upstream)
        {
            v.retain(|(s, _)| *s != self.seq);
        }
    }
}

fn unavailable(e: &UpstreamError) -> RpcError {
    RpcError::new(UPSTREAM_UNAVAILABLE, e.to_string())
}

/// Drops the shared upstream subscription to `original` (the owner's URI) in the background,
/// once no session or listener wants it any more.
fn unsubscribe_upstream(up: Arc<Upstream>, original: String) {
    tokio::spawn(async move {
        let params = json!({"uri": original});
        if let Err(e) = up
            .request("resources/unsubscribe", Some(params), None)
            .await
        {
            tracing::debug!(server = up.name(), error = %e, "resources/unsubscribe failed");
        }
    });
}

impl Gateway {
    /// A gateway over already-spawned upstreams (in config order).
    pub fn new(config: &McpConfig, upstreams: Vec<Arc<Upstream>>) -> Arc<Gateway> {
        let subscriptions = modern::SessionSubscriptions::default();
        let listeners = modern::Listeners::new(upstreams.clone(), subscriptions.clone());
        Arc::new(Gateway {
            names: upstreams.iter().map(|u| u.name().to_string()).collect(),
            upstreams,
            naming: config.naming.clone(),
            fail_mode: config.on_upstream_failure,
            lists: list_cache::ListCache::default(),
            announcements: Arc::default(),
            views: Mutex::new(HashMap::new()),
            epoch: AtomicU64::new(1),
            sessions: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
            subscriptions,
            subscribed: Mutex::new(HashMap::new()),
            next_seq: AtomicU64::new(1),
            stateless: config.stateless,
            listeners: Arc::new(listeners),
        })
    }

    /// The upstreams.
    pub fn upstreams(&self) -> &[Arc<Upstream>] {
        &self.upstreams
    }

    /// Ready when every upstream has been initialized or given up on.
    pub fn ready(&self) -> bool {
        self.upstreams.iter().all(|u| u.settled())
    }

    /// Waits until [`Gateway::ready`].
    pub async fn wait_ready(&self) {
        futures::future::join_all(self.upstreams.iter().map(|u| u.wait_settled())).await;
    }

    /// Per-upstream state and naming collisions, for `/readyz`.
    pub async fn status(&self) -> Value {
        let servers: Vec<Value> = self
            .upstreams
            .iter()
            .map(|u| {
                let (state, reason) = match u.state() {
                    UpstreamState::Connecting => ("connecting", None),
                    UpstreamState::Ready => ("ready", None),
                    UpstreamState::Down { reason } => ("down", Some(reason)),
                };
                json!({"name": u.name(), "state": state, "reason": reason})
            })
            .collect();
        let mut collisions = Vec::new();
        if self.ready() {
            for kind in ListKind::ALL {
                if let Ok(view) = self.view(kind).await {
                    collisions.extend(view.collisions.iter().cloned());
                }
            }
        }
        json!({"ready": self.ready(), "servers": servers, "collisions": collisions})
    }

    fn has_capability(&self, i: usize, capability: &str) -> bool {
        self.upstreams[i].has_capability(capability)
    }

    /// The merged view of one kind, fetching what is missing or stale.
    pub async fn view(&self, kind: ListKind) -> Result<Arc<View>, RpcError> {
        let sources = self.sources(kind).await?;
        let inputs = sources.key();
        if let Ok(views) = self.views.lock()
            && let Some(c) = views.get(&kind)
            && c.inputs == inputs
        {
            return Ok(c.view.clone());
        }
        let epoch = self.epoch.fetch_add(1, Ordering::Relaxed);
        let view = Arc::new(View::shaped(
            kind,
            &self.naming,
            &self.names,
            &sources.lists,
            sources.ui_map(&self.names),
            epoch,
            &catalog::Everything,
        ));
        for c in &view.collisions {
            tracing::warn!(list = kind.method(), "naming collision: {c}");
        }
        if let Ok(mut views) = self.views.lock() {
            views.insert(
                kind,
                CachedView {
                    inputs,
                    view: view.clone(),
                },
            );
        }
        Ok(view)
    }

    async fn fetch_all(&self, i: usize, kind: ListKind) -> Result<Fetched, UpstreamError> {
        let up = &self.upstreams[i];
        let mut pages = Vec::new();
        let mut cursor: Option<String> = None;
        let mut seen = HashSet::new();
        loop {
            let params = cursor.as_ref().map(|c| json!({"cursor": c}));
            let response = up.request(kind.method(), params, None).await?;
            let result = response
                .into_outcome()
                .map_err(|e| UpstreamError::Protocol {
                    server: up.name().to_string(),
                    reason: format!("{} failed: {}", kind.method(), e.message),
                })?;
            let items = result
                .get(kind.field())
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            pages.push(items);
            match result.get("nextCursor").and_then(Value::as_str) {
                // A cursor seen before would loop forever: stop there.
                Some(c) if !c.is_empty() && seen.insert(c.to_string()) => {
                    cursor = Some(c.to_string())
                }
                _ => break,
            }
        }
        Ok(Fetched { pages })
    }

    /// The upstream that owns a resource URI: listed exactly, or matching a template, or the only
    /// upstream serving resources.
    async fn owner_by_uri(&self, uri: &str) -> Result<usize, RpcError> {
        if let Some((i, _)) = self.view(ListKind::Resources).await?.owners.get(uri) {
            return Ok(*i);
        }
        let templates = self.view(ListKind::Templates).await?;
        let mut matches: Vec<(usize, &str)> = templates
            .owners
            .iter()
            .filter(|(t, _)| catalog::template_matches(t, uri) || t.as_str() == uri)
            .map(|(t, (i, _))| (*i, t.as_str()))
            .collect();
        matches.sort();
        if let Some((i, _)) = matches.first() {
            return Ok(*i);
        }
        let serving: Vec<usize> = (0..self.upstreams.len())
            .filter(|&i| self.has_capability(i, "resources"))
            .collect();
        match serving.as_slice() {
            [only] => Ok(*only),
            _ => Err(methods::not_found(uri)),
        }
    }

    /// Relays one request to upstream `i`, streaming what the upstream sends for it to the client.
    async fn relay(
        &self,
        cx: &RequestContext,
        i: usize,
        method: &str,
        mut params: Value,
    ) -> Result<Value, RpcError> {
        let (tx, mut rx) = mpsc::channel(RELAY_CAPACITY);
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        // Clients choose progress tokens freely; the upstream connection is shared, so the
        // token it sees is unique per call (the connection routes progress back by it).
        let client_token = cx.progress_token().cloned();
        if let (Some(_), Some(meta)) = (
            &client_token,
            params
                .as_object_mut()
                .and_then(|p| p.get_mut("_meta"))
                .and_then(Value::as_object_mut),
        ) {
            meta.insert("progressToken".into(), format!("mcplane-{seq}").into());
        }
        if let Ok(mut f) = self.inflight.lock() {
            f.entry(i).or_default().push((seq, tx.clone()));
        }
        let _registration = Registration {
            gateway: self,
            upstream: i,
            seq,
        };
        let call = self.upstreams[i].request(method, Some(params), Some(tx));
        tokio::pin!(call);
        let mut client_requests = FuturesUnordered::new();
        // Capabilities the client lacked when the upstream asked for them.
        let mut refused = BTreeSet::new();
        let outcome = loop {
            tokio::select! {
                r = &mut call => break r,
                Some(msg) = rx.recv() => {
                    if let Some(fut) = self.relay_related(cx, i, msg, client_token.as_ref()).await {
                        client_requests.push(fut);
                    }
                }
                Some(r) = client_requests.next(), if !client_requests.is_empty() => match r {
                    Some(cap) => {
                        refused.insert(cap);
                    }
                    // The client answered (for a stateless client, on a later HTTP request):
                    // what the upstream sends next most likely belongs to this call.
                    None => self.promote(i, seq),
                },
            }
        };
        // Progress or logs that arrived just before the response still reach the client first.
        while let Ok(msg) = rx.try_recv() {
            if let Some(fut) = self.relay_related(cx, i, msg, client_token.as_ref()).await {
                drop(fut);
            }
        }
        let result = match outcome {
            Ok(response) => response.into_outcome(),
            Err(e) => Err(unavailable(&e)),
        };
        if cx.session.is_modern() {
            return result.map_err(|e| modern::blame_missing_capabilities(e, &refused));
        }
        result
    }

    /// Makes call `seq` the newest in flight on upstream `i` (where unattributed server→client
    /// requests and log lines go).
    fn promote(&self, i: usize, seq: u64) {
        if let Ok(mut f) = self.inflight.lock()
            && let Some(v) = f.get_mut(&i)
            && let Some(at) = v.iter().position(|(s, _)| *s == seq)
        {
            let entry = v.remove(at);
            v.push(entry);
        }
    }

    /// Relays one message an upstream sent during a call. Server→client requests return a future
    /// that asks the client and answers the upstream; the caller keeps polling it.
    async fn relay_related<'a>(
        &'a self,
        cx: &'a RequestContext,
        i: usize,
        msg: Value,
        client_token: Option<&Value>,
    ) -> Option<futures::future::BoxFuture<'a, Option<&'static str>>> {
        let message = Message::from_value(msg).ok()?;
        match message.kind() {
            Kind::Notification => {
                let mut value = message.into_value();
                if value["method"] == "notifications/progress" {
                    value["params"]["progressToken"] = client_token?.clone();
                }
                cx.send(value).await;
                None
            }
            Kind::Request => Some(Box::pin(self.ask_client(cx, i, message))),
            _ => None,
        }
    }

    /// Forwards a server→client request (sampling, elicitation, roots) to the client of `cx` and
    /// sends the client's answer back upstream under the upstream's own id. For a stateless
    /// client the question becomes an `input_required` entry keyed by that id (see [`modern`]).
    /// Returns the capability the client lacked, if the request was refused for it.
    async fn ask_client(
        &self,
        cx: &RequestContext,
        i: usize,
        mut request: Message,
    ) -> Option<&'static str> {
        let up = &self.upstreams[i];
        let id = request.id().cloned().unwrap_or(Value::Null);
        let method = request.method().unwrap_or_default().to_string();
        let capability = protocol::capability_for(&method);
        let modern = cx.session.is_modern();
        let mut refused = None;
        let outcome = match capability {
            Some(cap) if !cx.session.client_supports(cap) => {
                refused = Some(cap);
                if modern {
                    Err(RpcError::missing_capabilities([cap]))
                } else {
                    Err(RpcError::method_not_found(&method).with_data(json!({
                        "reason": format!("the client connected through mcplane does not support {cap}")
                    })))
                }
            }
            _ if method == "ping" => Ok(json!({})),
            _ => {
                let mut params = request.take_params();
                if modern {
                    params = modern::with_input_key(params, &id);
                }
                cx.request(&method, params, up.config().timeouts.call).await
            }
        };
        let reply = match outcome {
            Ok(result) => Message::response(id, result),
            Err(e) => Message::error(id, &e),
        };
        if let Err(e) = up.send(reply.into_value()).await {
            tracing::debug!(server = up.name(), error = %e, "could not answer the upstream's request");
        }
        refused
    }

    /// Routes messages upstreams send outside any call: server→client requests and log messages
    /// to the newest call in flight on that upstream, list changes (cache invalidation and a
    /// broadcast), resource updates to subscribers, everything else to every session.
    pub async fn route_events(self: Arc<Self>, mut events: mpsc::Receiver<UpstreamEvent>) {
        while let Some(event) = events.recv().await {
            let Some(i) = self.names.iter().position(|n| *n == event.server) else {
                continue;
            };
            let Ok(message) = Message::from_value(event.message) else {
                continue;
            };
            let method = message.method().unwrap_or_default().to_string();
            if message.kind() == Kind::Request {
                match self.newest_call(i) {
                    Some(sink) => {
                        let _ = sink.try_send(message.into_value());
                    }
                    None => {
                        let id = message.id().cloned().unwrap_or(Value::Null);
                        let err = RpcError::method_not_found(&method).with_data(json!({
                            "reason": "no client request is in flight through mcplane to answer this"
                        }));
                        let _ = self.upstreams[i]
                            .send(Message::error(id, &err).into_value())
                            .await;
                    }
                }
                continue;
            }
            let params = message.params().cloned();
            match method.as_str() {
                // Progress of a live call is routed by the connection; this one's call is over.
                "notifications/progress" => {
                    tracing::debug!(server = %event.server, "progress for a finished request dropped");
                }
                m if !ListKind::from_list_changed(m).is_empty() => {
                    let kinds = ListKind::from_list_changed(m);
                    for kind in kinds {
                        self.lists.invalidate(i, *kind);
                    }
                    let method = kinds[0].list_changed();
                    let this = self.clone();
                    self.announcements.announce(method, move || {
                        this.broadcast(method, None);
                        this.listeners.list_changed(method);
                    });
                }
                "notifications/resources/updated" => {
                    let mut params = params;
                    let uri = self.exposed_uri_in(i, params.as_mut());
                    let subscribers = self
                        .subscriptions
                        .lock()
                        .ok()
                        .and_then(|s| s.get(&uri).cloned())
                        .unwrap_or_default();
                    for session in self.live_sessions() {
                        if subscribers.contains(session.id()) {
                            session.notify(&method, params.clone());
                        }
                    }
                    self.listeners.resource_updated(&uri, params.as_ref());
                }
                // A log line from a transport that cannot say which call it belongs to goes to
                // the newest call on that upstream, not to every client.
                "notifications/message" => match self.newest_call(i) {
                    Some(sink) => {
                        let _ = sink.try_send(message.into_value());
                    }
                    None => self.broadcast(&method, params),
                },
                _ => self.broadcast(&method, params),
            }
        }
    }

    /// The relay sink of the newest call in flight on upstream `i`.
    fn newest_call(&self, i: usize) -> Option<RelatedSink> {
        let inflight = self.inflight.lock().ok()?;
        inflight.get(&i)?.last().map(|(_, sink)| sink.clone())
    }

    fn live_sessions(&self) -> Vec<Arc<Session>> {
        self.sessions
            .lock()
            .map(|s| s.values().filter_map(Weak::upgrade).collect())
            .unwrap_or_default()
    }

    fn broadcast(&self, method: &str, params: Option<Value>) {
        for session in self.live_sessions() {
            session.notify(method, params.clone());
        }
    }

    fn merged_capabilities(&self) -> Value {
        let mut caps = Map::new();
        for (i, _) in self.upstreams.iter().enumerate() {
            let Some(theirs) = self.upstreams[i]
                .init_result()
                .and_then(|r| r.get("capabilities").cloned())
            else {
                continue;
            };
            for key in ["tools", "prompts", "resources", "logging", "completions"] {
                let Some(Value::Object(their)) = theirs.get(key) else {
                    continue;
                };
                let ours = caps.entry(key).or_insert_with(|| Value::Object(Map::new()));
                if let Some(ours) = ours.as_object_mut() {
                    for flag in ["listChanged", "subscribe"] {
                        if their.get(flag) == Some(&Value::Bool(true)) {
                            ours.insert(flag.into(), true.into());
                        }
                    }
                }
            }
        }
        Value::Object(caps)
    }

    /// The owner of a name no upstream lists, when it can only be one connected upstream: the
    /// one its prefix names, or (prefix mode `never`) the only upstream serving this kind. The
    /// upstream then answers for its own namespace, exactly as it would to a direct client.
    fn attribute(&self, kind: ListKind, name: &str) -> Option<(usize, String)> {
        let ready = |i: &usize| self.upstreams[*i].state() == UpstreamState::Ready;
        let by_prefix = self.names.iter().enumerate().find_map(|(i, server)| {
            let rest = name
                .strip_prefix(server.as_str())?
                .strip_prefix(&self.naming.delimiter)?;
            Some((i, rest.to_string()))
        });
        if let Some((i, rest)) = by_prefix {
            return ready(&i).then_some((i, rest));
        }
        if self.naming.prefix != PrefixMode::Never {
            return None;
        }
        let serving: Vec<usize> = (0..self.upstreams.len())
            .filter(|&i| self.has_capability(i, kind.capability()))
            .collect();
        match serving.as_slice() {
            [only] if ready(only) => Some((*only, name.to_string())),
            _ => None,
        }
    }

    /// The error for a name no live upstream lists: if its prefix names an upstream that is not
    /// connected, say so; otherwise it is unknown.
    fn unknown(&self, kind: ListKind, name: &str) -> RpcError {
        let down = self.upstreams.iter().find(|u| {
            name.strip_prefix(u.name())
                .is_some_and(|rest| rest.starts_with(&self.naming.delimiter))
                && u.state() != UpstreamState::Ready
        });
        match down.map(|u| (u.name(), u.state())) {
            Some((server, UpstreamState::Down { reason })) => RpcError::new(
                UPSTREAM_UNAVAILABLE,
                format!("server {server} is unavailable: {reason}"),
            ),
            Some((server, _)) => RpcError::new(
                UPSTREAM_UNAVAILABLE,
                format!("server {server} is still connecting; retry shortly"),
            ),
            None => methods::unknown(kind, name),
        }
    }

    async fn set_level(&self, params: Option<Value>) -> Result<Value, RpcError> {
        let targets: Vec<usize> = (0..self.upstreams.len())
            .filter(|&i| self.has_capability(i, "logging"))
            .collect();
        let sends = targets.iter().map(|&i| {
            let params = params.clone();
            async move {
                self.upstreams[i]
                    .request("logging/setLevel", params, None)
                    .await
            }
        });
        for r in futures::future::join_all(sends).await {
            if let Err(e) = r {
                tracing::debug!(error = %e, "logging/setLevel not applied upstream");
            }
        }
        Ok(json!({}))
    }

    /// Whether anyone but `session` (another session, a stateless listener) holds a
    /// subscription to `uri`: the upstream subscription is shared, so it stays as it is.
    pub(crate) fn shared_subscription(&self, session: &Session, uri: &str) -> bool {
        let others = self.subscriptions.lock().is_ok_and(|s| {
            s.get(uri)
                .is_some_and(|set| set.iter().any(|id| id != session.id()))
        });
        others || self.listeners.wants(uri)
    }

    /// Remembers which upstream serves a subscribed URI (or forgets it).
    pub(crate) fn subscribed_owner(&self, uri: &str, owner: Option<(usize, String)>) {
        if let Ok(mut m) = self.subscribed.lock() {
            match owner {
                Some(o) => m.insert(uri.to_string(), o),
                None => m.remove(uri),
            };
        }
    }

    fn subscription(&self, session: &Session, uri: &str, subscribe: bool) {
        if let Ok(mut s) = self.subscriptions.lock() {
            let set = s.entry(uri.to_string()).or_default();
            if subscribe {
                set.insert(session.id().to_string());
            } else {
                set.remove(session.id());
                if set.is_empty() {
                    s.remove(uri);
                }
            }
        }
    }
}

#[async_trait]
impl methods::Catalogue for Gateway {
    fn gateway(&self) -> &Gateway {
        self
    }

    async fn view(&self, kind: ListKind) -> Result<Arc<View>, RpcError> {
        Gateway::view(self, kind).await
    }

    /// A listed name, or one [`Gateway::attribute`] can place.
    fn owner(&self, kind: ListKind, view: &View, name: &str) -> Result<(usize, String), RpcError> {
        view.owners
            .get(name)
            .cloned()
            .or_else(|| self.attribute(kind, name))
            .ok_or_else(|| self.unknown(kind, name))
    }

    async fn completion_owner(&self, uri: &str) -> Result<(usize, String), RpcError> {
        Ok((self.owner_by_uri(uri).await?, uri.to_string()))
    }

    async fn resource_request(
        &self,
        cx: &RequestContext,
        method: &str,
        params: Option<Value>,
    ) -> Result<Value, RpcError> {
        if method == "resources/unsubscribe"
            && !cx.session.is_modern()
            && let Some(done) = self.unsubscribe_locally(&cx.session, params.as_ref())
        {
            return Ok(done);
        }
        let (params, uri) = apps::uri_param(method, params)?;
        let (i, original) = self.resolve_uri(&uri).await?;
        let ui = Gateway::view(self, ListKind::Resources).await?.ui.clone();
        self.relay_resource(cx, method, params, &uri, (i, &original), &ui)
            .await
    }
}

#[async_trait]
impl Service for Gateway {
    async fn initialize(&self, session: &Arc<Session>) -> Result<Value, RpcError> {
        self.wait_ready().await;
        if let Ok(mut s) = self.sessions.lock() {
            s.insert(session.id().to_string(), Arc::downgrade(session));
        }
        Ok(json!({
            "capabilities": self.merged_capabilities(),
            "serverInfo": self.server_identity(),
        }))
    }

    async fn discover(&self, _session: &Arc<Session>) -> Result<Value, RpcError> {
        Ok(self.discover_result().await)
    }

    fn server_info(&self) -> Value {
        self.server_identity()
    }

    fn cache_hints(&self, session: &Session, method: &str) -> Option<CacheHints> {
        self.stateless_cache_hints(session, method)
    }

    async fn listen(&self, _cx: &RequestContext, filter: &Value) -> Result<Listening, RpcError> {
        self.open_listener(filter).await
    }

    async fn request(
        &self,
        cx: &RequestContext,
        method: &str,
        params: Option<Value>,
    ) -> Result<Value, RpcError> {
        methods::serve(self, cx, method, params).await
    }

    async fn param_headers(&self, name: &str) -> Option<Arc<Vec<ParamHeader>>> {
        methods::param_headers(self, name).await
    }

    fn session_closed(&self, session: &Session) {
        if let Ok(mut s) = self.sessions.lock() {
            s.remove(session.id());
        }
        let mut orphaned = Vec::new();
        if let Ok(mut subs) = self.subscriptions.lock() {
            subs.retain(|uri, set| {
                let was = set.remove(session.id());
                if was && set.is_empty() {
                    orphaned.push(uri.clone());
                }
                !set.is_empty()
            });
        }
        for uri in orphaned {
            if self.listeners.wants(&uri) {
                continue;
            }
            let owner = self.subscribed.lock().ok().and_then(|mut m| m.remove(&uri));
            if let Some((i, original)) = owner {
                unsubscribe_upstream(self.upstreams[i].clone(), original);
            }
        }
    }
}
