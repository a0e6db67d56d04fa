//! Virtual servers: curated endpoints over the gateway's catalogue.
//!
//! A [`Curated`] is a [`Service`] of its own (served by its own [`crate::server::Server`], so
//! its sessions are separate) that shows a subset of the [`Gateway`]'s upstream items, named by
//! its own rules: `include`/`exclude` globs over `SERVER/ITEM`, per-item overrides of the exposed
//! name, title and description, and its own prefix mode. Everything goes through the curation:
//! lists, `tools/call`, `prompts/get`, `resources/*` and `completion/complete` resolve names and
//! URIs in the curated views only, so an item that is not shown cannot be called by any name
//! (the answer is the gateway's "unknown tool" error). Calls are relayed by the gateway, which
//! also carries progress, logging and server→client requests, and routes list changes and
//! resource updates of upstreams to the virtual server's sessions.
//!
//! The definition lives in an [`ArcSwap`]: [`Curated::update`] swaps it in place on a config
//! reload, existing sessions see the new curation on their next request, and sessions are told
//! (`notifications/*/list_changed`) when what they can see changed.
//!
//! MCP Apps: a `ui://` resource referenced by a shown tool is shown too (unless excluded), so
//! the host can render the tool's app.

use super::Gateway;
use super::apps::{UiMap, tool_ui_refs, uri_param};
use super::catalog::{self, ListKind, Shape, View};
use super::methods::{self, Catalogue, not_found, unknown};
use super::sources::SourceKey;
use crate::jsonrpc::{Message, RpcError};
use crate::param_headers::ParamHeader;
use crate::server::{CacheHints, Listening, RequestContext, Service, Session};
use crate::upstream::UpstreamState;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use mcplane_config::VirtualServerConfig;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::mpsc;

/// Notifications buffered per `subscriptions/listen` stream of a virtual server.
const LISTENER_CAPACITY: usize = 64;

/// A curated view as built, and what it was built from.
struct CachedView {
    inputs: SourceKey,
    config: Arc<VirtualServerConfig>,
    /// For resources: the epoch of the tools view whose `ui://` references were added.
    tools_epoch: Option<u64>,
    view: Arc<View>,
}

/// One virtual server: a curated [`Service`] over a [`Gateway`].
pub struct Curated {
    gateway: Arc<Gateway>,
    config: ArcSwap<VirtualServerConfig>,
    views: Mutex<HashMap<ListKind, CachedView>>,
    sessions: Mutex<HashMap<String, Weak<Session>>>,
    /// 2026-07-28 `subscriptions/listen` streams: the list changes each asked for, and where
    /// to send them (the stream ends when the gateway's stream under it does).
    listeners: Mutex<Vec<(BTreeSet<&'static str>, mpsc::WeakSender<Value>)>>,
    epoch: AtomicU64,
}

/// The [`Shape`] of one virtual server's view of one kind.
struct Curation<'a> {
    config: &'a VirtualServerConfig,
    kind: ListKind,
    /// `(upstream, original ui:// URI)` referenced by the tools shown (resources view only).
    app_refs: HashSet<(usize, String)>,
}

impl Shape for Curation<'_> {
    fn shows(&self, i: usize, server: &str, key: &str) -> bool {
        self.config.shows(server, key)
            || (self.kind == ListKind::Resources
                && self.app_refs.contains(&(i, key.to_string()))
                && !self.config.excluded(server, key))
    }

    fn fixed_name(&self, server: &str, key: &str) -> Option<&str> {
        match self.kind {
            ListKind::Tools | ListKind::Prompts => {
                self.config.override_for(server, key)?.name.as_deref()
            }
            ListKind::Resources | ListKind::Templates => None,
        }
    }

    fn decorate(&self, server: &str, key: &str, item: &mut Value) {
        let (Some(o), Some(obj)) = (self.config.override_for(server, key), item.as_object_mut())
        else {
            return;
        };
        if let Some(t) = &o.title {
            obj.insert("title".into(), t.clone().into());
        }
        if let Some(d) = &o.description {
            obj.insert("description".into(), d.clone().into());
        }
        if matches!(self.kind, ListKind::Resources | ListKind::Templates)
            && let Some(n) = &o.name
        {
            obj.insert("name".into(), n.clone().into());
        }
    }
}

/// A virtual server's `Implementation`.
fn identity(config: &VirtualServerConfig) -> Value {
    json!({
        "name": format!("mcplane/{}", config.name),
        "title": format!("mcplane virtual server {}", config.name),
        "version": env!("CARGO_PKG_VERSION"),
    })
}

/// `(upstream, original URI)` of every `ui://` URI the tools of `tools` reference.
fn app_refs(tools: &View) -> HashSet<(usize, String)> {
    let mut refs = HashSet::new();
    for (i, pages) in tools.pages.iter().enumerate() {
        for tool in pages.iter().flatten() {
            for uri in tool_ui_refs(tool) {
                refs.insert(match tools.ui.origin(uri) {
                    Some(origin) => origin.clone(),
                    None => (i, uri.to_string()),
                });
            }
        }
    }
    refs
}

impl Curated {
    /// A virtual server over `gateway`, defined by `config`.
    pub fn new(gateway: Arc<Gateway>, config: VirtualServerConfig) -> Arc<Curated> {
        Arc::new(Curated {
            gateway,
            config: ArcSwap::from_pointee(config),
            views: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            listeners: Mutex::new(Vec::new()),
            epoch: AtomicU64::new(1),
        })
    }

    /// Its name (the endpoint is `/mcp/<name>`).
    pub fn name(&self) -> String {
        self.config.load().name.clone()
    }

    /// The definition in force.
    pub fn config(&self) -> Arc<VirtualServerConfig> {
        self.config.load_full()
    }

    /// Replaces the definition in place. Sessions stay; each kind whose visible items changed is
    /// announced to them with its `list_changed` notification. Returns the notifications sent.
    pub async fn update(&self, config: VirtualServerConfig) -> Vec<&'static str> {
        if *self.config.load_full() == config {
            return Vec::new();
        }
        let before = self.snapshot().await;
        self.config.store(Arc::new(config));
        let after = self.snapshot().await;
        let changed: BTreeSet<&'static str> = ListKind::ALL
            .iter()
            .zip(before.iter().zip(&after))
            .filter(|(_, (b, a))| b.is_none() || b != a)
            .map(|(kind, _)| kind.list_changed())
            .collect();
        for session in self.live_sessions() {
            for method in &changed {
                session.notify(method, None);
            }
        }
        if let Ok(mut listeners) = self.listeners.lock() {
            listeners.retain(|(wanted, tx)| {
                let Some(tx) = tx.upgrade() else {
                    return false;
                };
                for method in changed.intersection(wanted) {
                    let _ = tx.try_send(Message::notification(method, None).into_value());
                }
                true
            });
        }
        changed.into_iter().collect()
    }

    /// Presents a gateway `initialize`/`server/discover` result as this virtual server's.
    fn present(&self, result: &mut Value) {
        let config = self.config.load_full();
        if let Some(caps) = result
            .get_mut("capabilities")
            .and_then(Value::as_object_mut)
        {
            // A reload can change what is listed, whatever the upstreams do.
            for key in ["tools", "prompts", "resources"] {
                if let Some(Value::Object(c)) = caps.get_mut(key) {
                    c.insert("listChanged".into(), true.into());
                }
            }
        }
        result["serverInfo"] = identity(&config);
        if let Some(d) = &config.description {
            result["instructions"] = d.clone().into();
        }
    }

    /// What each kind shows now (`None`: could not be listed).
    async fn snapshot(&self) -> Vec<Option<Vec<Value>>> {
        let mut out = Vec::new();
        for kind in ListKind::ALL {
            let view = self.view(kind).await.ok();
            out.push(view.map(|v| v.pages.iter().flatten().flatten().cloned().collect()));
        }
        out
    }

    fn live_sessions(&self) -> Vec<Arc<Session>> {
        self.sessions
            .lock()
            .map(|s| s.values().filter_map(Weak::upgrade).collect())
            .unwrap_or_default()
    }

    /// Number of live sessions.
    pub fn session_count(&self) -> usize {
        self.live_sessions().len()
    }

    /// Naming collisions inside this virtual server, for `/readyz`.
    pub async fn status(&self) -> Value {
        let mut collisions = Vec::new();
        if self.gateway.ready() {
            for kind in ListKind::ALL {
                if let Ok(view) = self.view(kind).await {
                    collisions.extend(view.collisions.iter().cloned());
                }
            }
        }
        json!({"name": self.name(), "collisions": collisions})
    }

    /// The curated view of one kind.
    pub async fn view(&self, kind: ListKind) -> Result<Arc<View>, RpcError> {
        let config = self.config.load_full();
        let tools = if kind == ListKind::Resources {
            self.view_with(ListKind::Tools, &config, None).await.ok()
        } else {
            None
        };
        self.view_with(kind, &config, tools).await
    }

    async fn view_with(
        &self,
        kind: ListKind,
        config: &Arc<VirtualServerConfig>,
        tools: Option<Arc<View>>,
    ) -> Result<Arc<View>, RpcError> {
        let sources = self.gateway.sources(kind).await?;
        let inputs = sources.key();
        let tools_epoch = tools.as_ref().map(|t| t.epoch);
        if let Ok(views) = self.views.lock()
            && let Some(c) = views.get(&kind)
            && c.inputs == inputs
            && Arc::ptr_eq(&c.config, config)
            && c.tools_epoch == tools_epoch
        {
            return Ok(c.view.clone());
        }
        let shape = Curation {
            config,
            kind,
            app_refs: tools.map(|t| app_refs(&t)).unwrap_or_default(),
        };
        let names = &self.gateway.names;
        let view = Arc::new(View::shaped(
            kind,
            &config.naming,
            names,
            &sources.lists,
            sources.ui_map(names),
            self.epoch.fetch_add(1, Ordering::Relaxed),
            &shape,
        ));
        for c in &view.collisions {
            tracing::warn!(virtual_server = %config.name, list = kind.method(), "naming collision: {c}");
        }
        if let Ok(mut views) = self.views.lock() {
            views.insert(
                kind,
                CachedView {
                    inputs,
                    config: config.clone(),
                    tools_epoch,
                    view: view.clone(),
                },
            );
        }
        Ok(view)
    }

    /// The owner of a URI this virtual server shows, the owner's URI for it, and the `ui://` map
    /// in force: a listed resource, a `ui://` app of a shown tool, a URI matching a shown
    /// template (and not excluded), or a URI the include patterns name on the one upstream
    /// serving resources they allow.
    async fn resolve_uri(&self, uri: &str) -> Result<(usize, String, Arc<UiMap>), RpcError> {
        let config = self.config.load_full();
        let resources = self.view(ListKind::Resources).await?;
        let ui = resources.ui.clone();
        if let Some((i, original)) = resources.owners.get(uri) {
            return Ok((*i, original.clone(), ui));
        }
        let tools = self.view(ListKind::Tools).await?;
        for (i, pages) in tools.pages.iter().enumerate() {
            let referenced = pages
                .iter()
                .flatten()
                .any(|t| tool_ui_refs(t).contains(&uri));
            if referenced {
                let (i, original) = ui.origin(uri).cloned().unwrap_or((i, uri.to_string()));
                if !config.excluded(&self.gateway.names[i], &original) {
                    return Ok((i, original, ui));
                }
            }
        }
        let templates = self.view(ListKind::Templates).await?;
        let mut matching: Vec<(usize, &str)> = templates
            .owners
            .iter()
            .filter(|(t, _)| catalog::template_matches(t, uri))
            .map(|(t, (i, _))| (*i, t.as_str()))
            .collect();
        matching.sort();
        // A `ui://` URI rewritten for an upstream is known to clients under the new one only.
        let own = |i: usize| ui.exposed(i, uri) == uri;
        if let Some((i, _)) = matching
            .iter()
            .find(|(i, _)| own(*i) && !config.excluded(&self.gateway.names[*i], uri))
        {
            return Ok((*i, uri.to_string(), ui));
        }
        let named: Vec<usize> = (0..self.gateway.upstreams.len())
            .filter(|&i| {
                own(i)
                    && self.gateway.has_capability(i, "resources")
                    && self.gateway.upstreams[i].state() == UpstreamState::Ready
                    && config.include.is_some()
                    && config.shows(&self.gateway.names[i], uri)
            })
            .collect();
        match named.as_slice() {
            [only] => Ok((*only, uri.to_string(), ui)),
            _ => Err(not_found(uri)),
        }
    }
}

/// Names and URIs resolve in the curated views only: a name not shown is unknown, whoever has it.
#[async_trait]
impl Catalogue for Curated {
    fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    async fn view(&self, kind: ListKind) -> Result<Arc<View>, RpcError> {
        Curated::view(self, kind).await
    }

    fn owner(&self, kind: ListKind, view: &View, name: &str) -> Result<(usize, String), RpcError> {
        view.owners
            .get(name)
            .cloned()
            .ok_or_else(|| unknown(kind, name))
    }

    async fn completion_owner(&self, uri: &str) -> Result<(usize, String), RpcError> {
        let templates = Curated::view(self, ListKind::Templates).await?;
        if let Some(found) = templates.owners.get(uri) {
            return Ok(found.clone());
        }
        let (i, original, _) = self.resolve_uri(uri).await?;
        Ok((i, original))
    }

    async fn resource_request(
        &self,
        cx: &RequestContext,
        method: &str,
        params: Option<Value>,
    ) -> Result<Value, RpcError> {
        let (params, uri) = uri_param(method, params)?;
        let (i, original, ui) = self.resolve_uri(&uri).await?;
        if method == "resources/unsubscribe"
            && !cx.session.is_modern()
            && let Some(done) = self.gateway.unsubscribe_locally(&cx.session, Some(&params))
        {
            return Ok(done);
        }
        self.gateway
            .relay_resource(cx, method, params, &uri, (i, &original), &ui)
            .await
    }
}

#[async_trait]
impl Service for Curated {
    async fn initialize(&self, session: &Arc<Session>) -> Result<Value, RpcError> {
        let mut result = Service::initialize(&*self.gateway, session).await?;
        if let Ok(mut s) = self.sessions.lock() {
            s.insert(session.id().to_string(), Arc::downgrade(session));
        }
        self.present(&mut result);
        Ok(result)
    }

    async fn discover(&self, session: &Arc<Session>) -> Result<Value, RpcError> {
        let mut result = Service::discover(&*self.gateway, session).await?;
        self.present(&mut result);
        Ok(result)
    }

    fn server_info(&self) -> Value {
        identity(&self.config.load_full())
    }

    fn cache_hints(&self, session: &Session, method: &str) -> Option<CacheHints> {
        Service::cache_hints(&*self.gateway, session, method)
    }

    /// The gateway's listener, with resource subscriptions only for URIs this virtual server
    /// shows, plus the list changes a reload of its definition causes.
    async fn listen(&self, cx: &RequestContext, filter: &Value) -> Result<Listening, RpcError> {
        let mut filter = filter.clone();
        if let Some(Value::Array(uris)) = filter.get_mut("resourceSubscriptions") {
            let mut shown = Vec::with_capacity(uris.len());
            for uri in uris.iter() {
                if let Some(u) = uri.as_str()
                    && self.resolve_uri(u).await.is_ok()
                {
                    shown.push(uri.clone());
                }
            }
            *uris = shown;
        }
        let mut inner = Service::listen(&*self.gateway, cx, &filter).await?;
        let caps = Service::discover(&*self.gateway, &cx.session)
            .await
            .map(|d| d["capabilities"].clone())
            .unwrap_or_default();
        let mut wanted = BTreeSet::new();
        for (field, cap, kind) in [
            ("toolsListChanged", "tools", ListKind::Tools),
            ("promptsListChanged", "prompts", ListKind::Prompts),
            ("resourcesListChanged", "resources", ListKind::Resources),
        ] {
            if filter.get(field) == Some(&Value::Bool(true)) && caps.get(cap).is_some() {
                wanted.insert(kind.list_changed());
                if let Some(ack) = inner.acknowledged.as_object_mut() {
                    ack.insert(field.into(), true.into());
                }
            }
        }
        let (tx, rx) = mpsc::channel(LISTENER_CAPACITY);
        if let Ok(mut listeners) = self.listeners.lock() {
            listeners.retain(|(_, tx)| tx.upgrade().is_some());
            listeners.push((wanted, tx.downgrade()));
        }
        // Forward the gateway's notifications; when its stream ends, this one does.
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    m = inner.notifications.recv() => match m {
                        Some(m) => if tx.send(m).await.is_err() { return },
                        None => return,
                    },
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Listening {
            acknowledged: inner.acknowledged,
            notifications: rx,
        })
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

    async fn notification(&self, session: &Arc<Session>, method: &str, params: Option<Value>) {
        Service::notification(&*self.gateway, session, method, params).await;
    }

    fn session_closed(&self, session: &Session) {
        if let Ok(mut s) = self.sessions.lock() {
            s.remove(session.id());
        }
        Service::session_closed(&*self.gateway, session);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::gateway::catalog::Fetched;

    fn config(virtual_server: &str) -> VirtualServerConfig {
        let yaml = format!(
            "mcp:\n  servers:\n    a: {{ transport: stdio, command: x }}\n    b: {{ transport: stdio, command: x }}\n  virtual_servers:\n    v: {virtual_server}\n"
        );
        mcplane_config::parse(&yaml, &|_| None)
            .unwrap()
            .config
            .mcp
            .virtual_servers
            .remove(0)
    }

    fn servers() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    fn lists(a: Vec<Value>, b: Vec<Value>) -> Vec<Option<Arc<Fetched>>> {
        vec![
            Some(Arc::new(Fetched { pages: vec![a] })),
            Some(Arc::new(Fetched { pages: vec![b] })),
        ]
    }

    fn build(c: &VirtualServerConfig, kind: ListKind, fetched: &[Option<Arc<Fetched>>]) -> View {
        let shape = Curation {
            config: c,
            kind,
            app_refs: HashSet::new(),
        };
        View::shaped(
            kind,
            &c.naming,
            &servers(),
            fetched,
            Arc::default(),
            1,
            &shape,
        )
    }

    fn names(view: &View, key: &str) -> Vec<String> {
        view.pages
            .iter()
            .flatten()
            .flatten()
            .map(|t| t[key].as_str().unwrap().to_string())
            .collect()
    }

    fn tools() -> Vec<Option<Arc<Fetched>>> {
        lists(
            vec![
                json!({"name": "read", "annotations": {"readOnlyHint": true}, "outputSchema": {"type": "object"}, "icons": [{"src": "data:x"}], "_meta": {"k": 1}, "title": "Read"}),
                json!({"name": "delete"}),
            ],
            vec![json!({"name": "read"}), json!({"name": "list_issues"})],
        )
    }

    #[test]
    fn include_exclude_and_overrides_shape_the_view() {
        let c = config(
            "{ include: ['a/*', 'b/list_*'], exclude: [a/delete], overrides: { b/list_issues: { name: issues, title: Issues, description: Open issues } } }",
        );
        let view = build(&c, ListKind::Tools, &tools());
        assert_eq!(names(&view, "name"), ["a__read", "issues"]);
        assert_eq!(view.owners["issues"], (1, "list_issues".to_string()));
        assert_eq!(view.owners["a__read"], (0, "read".to_string()));
        assert!(!view.owners.contains_key("a__delete") && !view.owners.contains_key("delete"));
        let issues = &view.pages[1][0][0];
        assert_eq!(issues["title"], "Issues");
        assert_eq!(issues["description"], "Open issues");
        // Everything else about an item survives untouched.
        let read = &view.pages[0][0][0];
        let mut expected = tools()[0].as_ref().unwrap().pages[0][0].clone();
        expected["name"] = "a__read".into();
        assert_eq!(read, &expected);
    }

    #[test]
    fn never_prefix_reports_collisions_inside_the_virtual_server() {
        let c = config("{ prefix: never, exclude: [a/delete] }");
        let view = build(&c, ListKind::Tools, &tools());
        assert_eq!(names(&view, "name"), ["read", "list_issues"]);
        assert_eq!(view.owners["read"], (0, "read".to_string()));
        assert_eq!(view.collisions.len(), 1, "{:?}", view.collisions);
        assert!(
            view.collisions[0].contains("server b"),
            "{:?}",
            view.collisions
        );
        // Only b included: no collision, b's own name.
        let c = config("{ prefix: never, include: ['b/*'] }");
        let view = build(&c, ListKind::Tools, &tools());
        assert_eq!(view.owners["read"], (1, "read".to_string()));
        assert!(view.collisions.is_empty());
    }

    #[test]
    fn an_override_name_wins_over_a_generated_one() {
        // a/read is renamed to what b/read would be called in prefix mode `never`.
        let c = config("{ prefix: never, overrides: { a/delete: { name: read } } }");
        let view = build(&c, ListKind::Tools, &tools());
        assert_eq!(view.owners["read"], (0, "delete".to_string()));
        let others: Vec<&(usize, String)> = view
            .owners
            .iter()
            .filter(|(k, _)| k.starts_with("read-"))
            .map(|(_, v)| v)
            .collect();
        assert_eq!(others, [&(0, "read".to_string())]);
    }

    #[test]
    fn resources_templates_and_app_references() {
        let c = config(
            "{ include: ['a/demo://notes/*', 'b/tool'], exclude: ['a/demo://notes/secret'] }",
        );
        let resources = lists(
            vec![
                json!({"uri": "demo://notes/x", "name": "x"}),
                json!({"uri": "demo://notes/secret", "name": "s"}),
                json!({"uri": "demo://readme", "name": "r"}),
            ],
            vec![
                json!({"uri": "ui://app/view.html", "name": "app"}),
                json!({"uri": "ui://other.html", "name": "other"}),
            ],
        );
        let view = build(&c, ListKind::Resources, &resources);
        assert_eq!(names(&view, "uri"), ["demo://notes/x"]);
        // The app of a shown tool is shown with it.
        let shape = Curation {
            config: &c,
            kind: ListKind::Resources,
            app_refs: HashSet::from([(1, "ui://app/view.html".to_string())]),
        };
        let view = View::shaped(
            ListKind::Resources,
            &c.naming,
            &servers(),
            &resources,
            Arc::default(),
            1,
            &shape,
        );
        assert_eq!(
            names(&view, "uri"),
            ["demo://notes/x", "ui://app/view.html"]
        );
        let templates = lists(
            vec![json!({"uriTemplate": "demo://notes/{name}", "name": "note"})],
            vec![json!({"uriTemplate": "x://{id}", "name": "x"})],
        );
        let view = build(&c, ListKind::Templates, &templates);
        assert_eq!(names(&view, "uriTemplate"), ["demo://notes/{name}"]);
    }

    #[test]
    fn app_references_map_back_to_original_uris() {
        let servers = servers();
        let tools = lists(
            vec![json!({"name": "t", "_meta": {"ui": {"resourceUri": "ui://w"}}})],
            vec![json!({"name": "t", "_meta": {"ui": {"resourceUri": "ui://w"}}})],
        );
        let ui = Arc::new(UiMap::build(&servers, &tools, &[None, None]));
        let c = config("{}");
        let shape = Curation {
            config: &c,
            kind: ListKind::Tools,
            app_refs: HashSet::new(),
        };
        let view = View::shaped(ListKind::Tools, &c.naming, &servers, &tools, ui, 1, &shape);
        assert_eq!(
            view.pages[1][0][0]["_meta"]["ui"]["resourceUri"],
            "ui://b/w"
        );
        assert_eq!(
            app_refs(&view),
            HashSet::from([(0, "ui://w".to_string()), (1, "ui://w".to_string())])
        );
    }
}
