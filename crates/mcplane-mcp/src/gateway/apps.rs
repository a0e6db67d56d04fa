//! MCP Apps (`ui://` resources) across upstreams.
//!
//! An MCP App is a tool whose `_meta` names a `ui://` resource the host renders
//! (`_meta.ui.resourceUri`; also the deprecated flat `_meta["ui/resourceUri"]` and OpenAI's
//! `_meta["openai/outputTemplate"]`). `ui://` URIs are chosen by each server, so two upstreams
//! easily use the same one (`ui://widget/app.html`). [`UiMap`] keeps them apart: a `ui://` URI
//! listed or referenced by one upstream only is left alone; one claimed by several is kept by the
//! first (config order) and rewritten for the others to `ui://<server>/<rest>`, in their tools'
//! `_meta`, their `resources/list` entries, their `tools/call` results and their
//! `resources/read` contents. The reverse map routes a rewritten URI back to its owner under its
//! original URI.

use super::Gateway;
use super::catalog::{Fetched, ListKind};
use crate::jsonrpc::RpcError;
use crate::server::RequestContext;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// The `ui://` scheme prefix.
const UI: &str = "ui://";

/// `_meta` keys (flat) that hold a `ui://` URI of the tool's app.
const FLAT_KEYS: [&str; 2] = ["ui/resourceUri", "openai/outputTemplate"];

/// Rewritten `ui://` URIs: which upstream's URI became what, and back.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct UiMap {
    /// (upstream index, original URI) → exposed URI, for rewritten URIs only.
    exposed: HashMap<(usize, String), String>,
    /// Exposed URI → (upstream index, original URI), for rewritten URIs only.
    origin: HashMap<String, (usize, String)>,
}

/// The `ui://` URIs a tool's `_meta` references.
pub fn tool_ui_refs(tool: &Value) -> Vec<&str> {
    let Some(meta) = tool.get("_meta") else {
        return Vec::new();
    };
    let nested = meta.get("ui").and_then(|u| u.get("resourceUri"));
    nested
        .into_iter()
        .chain(FLAT_KEYS.iter().filter_map(|k| meta.get(*k)))
        .filter_map(Value::as_str)
        .filter(|u| u.starts_with(UI))
        .collect()
}

impl UiMap {
    /// Computes the map from every upstream's tools and resources (`None`: not available).
    /// `servers` are the upstream names in config order.
    pub fn build(
        servers: &[String],
        tools: &[Option<Arc<Fetched>>],
        resources: &[Option<Arc<Fetched>>],
    ) -> UiMap {
        // URI → the upstreams claiming it, in config order.
        let mut claims: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
        let items = |lists: &[Option<Arc<Fetched>>], i: usize| -> Vec<Value> {
            lists
                .get(i)
                .and_then(Option::as_ref)
                .map(|f| f.pages.iter().flatten().cloned().collect())
                .unwrap_or_default()
        };
        for i in 0..servers.len() {
            for tool in items(tools, i) {
                for uri in tool_ui_refs(&tool) {
                    claims.entry(uri.to_string()).or_default().insert(i);
                }
            }
            for resource in items(resources, i) {
                if let Some(uri) = resource.get("uri").and_then(Value::as_str)
                    && uri.starts_with(UI)
                {
                    claims.entry(uri.to_string()).or_default().insert(i);
                }
            }
        }
        let mut map = UiMap::default();
        let mut taken: BTreeSet<String> = claims.keys().cloned().collect();
        for (uri, owners) in &claims {
            let rest = &uri[UI.len()..];
            // The first upstream keeps the URI; the others get their own.
            for &i in owners.iter().skip(1) {
                let server = &servers[i];
                let exposed = (1..)
                    .map(|k| match k {
                        1 => format!("{UI}{server}/{rest}"),
                        k => format!("{UI}{server}-{k}/{rest}"),
                    })
                    .find(|candidate| !taken.contains(candidate))
                    .unwrap_or_default();
                taken.insert(exposed.clone());
                map.exposed.insert((i, uri.clone()), exposed.clone());
                map.origin.insert(exposed, (i, uri.clone()));
            }
        }
        map
    }

    /// Whether nothing is rewritten.
    pub fn is_empty(&self) -> bool {
        self.exposed.is_empty()
    }

    /// The URI clients see for upstream `i`'s `uri`.
    pub fn exposed<'a>(&'a self, i: usize, uri: &'a str) -> &'a str {
        if !uri.starts_with(UI) || self.exposed.is_empty() {
            return uri;
        }
        self.exposed
            .get(&(i, uri.to_string()))
            .map_or(uri, String::as_str)
    }

    /// The owner and original URI of a rewritten URI.
    pub fn origin(&self, uri: &str) -> Option<&(usize, String)> {
        self.origin.get(uri)
    }

    /// Rewrites the `ui://` references in a `_meta` object of upstream `i` (a tool's or a
    /// `tools/call` result's).
    pub fn rewrite_meta(&self, i: usize, meta: &mut Value) {
        if self.exposed.is_empty() {
            return;
        }
        let fix = |v: &mut Value| {
            if let Some(uri) = v.as_str() {
                let new = self.exposed(i, uri);
                if new != uri {
                    *v = Value::String(new.to_string());
                }
            }
        };
        if let Some(v) = meta.get_mut("ui").and_then(|u| u.get_mut("resourceUri")) {
            fix(v);
        }
        for key in FLAT_KEYS {
            if let Some(v) = meta.get_mut(key) {
                fix(v);
            }
        }
    }

    /// Rewrites an item's (tool or `tools/call` result) `_meta` references for upstream `i`.
    pub fn rewrite_item(&self, i: usize, item: &mut Value) {
        if let Some(meta) = item.get_mut("_meta") {
            self.rewrite_meta(i, meta);
        }
    }

    /// Rewrites the `contents[].uri` of a `resources/read` result of upstream `i`.
    pub fn rewrite_contents(&self, i: usize, result: &mut Value) {
        if self.exposed.is_empty() {
            return;
        }
        for content in result
            .get_mut("contents")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(uri) = content.get("uri").and_then(Value::as_str) {
                let new = self.exposed(i, uri);
                if new != uri {
                    content["uri"] = Value::String(new.to_string());
                }
            }
        }
    }
}

/// The `uri` of a `resources/*` request, and the params as an object.
pub(crate) fn uri_param(method: &str, params: Option<Value>) -> Result<(Value, String), RpcError> {
    let params = params.unwrap_or_else(|| json!({}));
    let uri = params
        .get("uri")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params(format!("{method} needs params.uri")))?
        .to_string();
    Ok((params, uri))
}

impl Gateway {
    /// The owner of a URI a client sent and the URI that owner knows it by: a listed URI (a
    /// rewritten `ui://` one included), a rewritten `ui://` URI only a tool references, or as
    /// [`Gateway::owner_by_uri`] finds it.
    pub(crate) async fn resolve_uri(&self, uri: &str) -> Result<(usize, String), RpcError> {
        let view = self.view(ListKind::Resources).await?;
        if let Some(found) = view.owners.get(uri).or_else(|| view.ui.origin(uri)) {
            return Ok(found.clone());
        }
        Ok((self.owner_by_uri(uri).await?, uri.to_string()))
    }

    /// Relays a `resources/*` request for `uri` (as the client knows it) to its owner under the
    /// owner's URI; read contents get the client's `ui://` URIs back, and subscriptions are
    /// recorded under the client's URI.
    pub(crate) async fn relay_resource(
        &self,
        cx: &RequestContext,
        method: &str,
        mut params: Value,
        uri: &str,
        (i, original): (usize, &str),
        ui: &UiMap,
    ) -> Result<Value, RpcError> {
        params["uri"] = Value::String(original.to_string());
        if method == "resources/read" {
            let mut result = self.relay(cx, i, method, params).await?;
            ui.rewrite_contents(i, &mut result);
            return Ok(result);
        }
        // Sessions share one upstream connection, so they share its subscription: only the
        // first subscriber subscribes upstream and only the last one unsubscribes.
        let subscribe = method == "resources/subscribe";
        if self.shared_subscription(&cx.session, uri) {
            self.subscription(&cx.session, uri, subscribe);
            return Ok(json!({}));
        }
        let result = self.relay(cx, i, method, params).await?;
        self.subscription(&cx.session, uri, subscribe);
        self.subscribed_owner(uri, subscribe.then(|| (i, original.to_string())));
        Ok(result)
    }

    /// The URI clients know upstream `i`'s `params.uri` by (rewritten in `params` too), for
    /// `notifications/resources/updated`.
    pub(crate) fn exposed_uri_in(&self, i: usize, params: Option<&mut Value>) -> String {
        let Some(params) = params else {
            return String::new();
        };
        let uri = params
            .get("uri")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let ui = self
            .views
            .lock()
            .ok()
            .and_then(|v| v.get(&ListKind::Resources).map(|c| c.view.ui.clone()));
        let exposed = ui.map_or(uri.clone(), |ui| ui.exposed(i, &uri).to_string());
        if exposed != uri {
            params["uri"] = Value::String(exposed.clone());
        }
        exposed
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn f(items: Vec<Value>) -> Option<Arc<Fetched>> {
        Some(Arc::new(Fetched { pages: vec![items] }))
    }

    fn app_tool(name: &str, uri: &str) -> Value {
        json!({"name": name, "_meta": {"ui": {"resourceUri": uri, "visibility": ["model"]}, "x": 1}})
    }

    #[test]
    fn only_shared_ui_uris_are_rewritten_and_map_back() {
        let servers = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let tools = vec![
            f(vec![app_tool("t", "ui://widget/app.html")]),
            f(vec![
                app_tool("t", "ui://widget/app.html"),
                json!({"name": "flat", "_meta": {"openai/outputTemplate": "ui://b-only/x"}}),
            ]),
            f(vec![app_tool("t", "ui://c/own.html")]),
        ];
        let resources = vec![
            f(vec![json!({"uri": "ui://widget/app.html"})]),
            f(vec![
                json!({"uri": "ui://widget/app.html"}),
                json!({"uri": "file:///x"}),
            ]),
            None,
        ];
        let map = UiMap::build(&servers, &tools, &resources);
        assert_eq!(
            map.exposed(0, "ui://widget/app.html"),
            "ui://widget/app.html"
        );
        assert_eq!(
            map.exposed(1, "ui://widget/app.html"),
            "ui://b/widget/app.html"
        );
        assert_eq!(map.exposed(1, "ui://b-only/x"), "ui://b-only/x");
        assert_eq!(map.exposed(2, "ui://c/own.html"), "ui://c/own.html");
        assert_eq!(map.exposed(1, "file:///x"), "file:///x");
        assert_eq!(
            map.origin("ui://b/widget/app.html"),
            Some(&(1, "ui://widget/app.html".to_string()))
        );
        assert_eq!(map.origin("ui://widget/app.html"), None);

        let mut tool = tools[1].as_ref().unwrap().pages[0][0].clone();
        map.rewrite_item(1, &mut tool);
        assert_eq!(tool["_meta"]["ui"]["resourceUri"], "ui://b/widget/app.html");
        assert_eq!(tool["_meta"]["ui"]["visibility"], json!(["model"]));
        assert_eq!(tool["_meta"]["x"], 1);
        let mut result = json!({"contents": [{"uri": "ui://widget/app.html", "text": "<html>"}]});
        map.rewrite_contents(1, &mut result);
        assert_eq!(result["contents"][0]["uri"], "ui://b/widget/app.html");
    }

    #[test]
    fn rewritten_uris_never_meet_existing_ones() {
        let servers = vec!["a".to_string(), "b".to_string()];
        // `ui://b/w` is already a real URI of `a`: `b`'s copy of `ui://w` must go elsewhere.
        let resources = vec![
            f(vec![json!({"uri": "ui://w"}), json!({"uri": "ui://b/w"})]),
            f(vec![json!({"uri": "ui://w"})]),
        ];
        let map = UiMap::build(&servers, &[None, None], &resources);
        assert_eq!(map.exposed(1, "ui://w"), "ui://b-2/w");
        assert_eq!(map.exposed(0, "ui://b/w"), "ui://b/w");
    }

    #[test]
    fn flat_and_openai_keys_are_references_too() {
        let t = json!({"_meta": {"ui/resourceUri": "ui://a", "openai/outputTemplate": "ui://b", "ui": {"resourceUri": "https://x"}}});
        assert_eq!(tool_ui_refs(&t), ["ui://a", "ui://b"]);
        assert!(tool_ui_refs(&json!({"name": "x"})).is_empty());
    }
}
