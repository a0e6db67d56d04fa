//! The merged catalogue: what every upstream lists, namespaced, cached, and paginated.
//!
//! Each upstream's list of one [`ListKind`] is fetched whole (following its cursors), kept as the
//! pages it came in, and cached until the upstream reconnects or says the list changed. The
//! merged [`View`] applies the naming rules across all upstreams (so `when_needed` and `never`
//! can see every name) and holds the reverse map that routes calls back to their owner.
//! Downstream pages hold up to [`PAGE_LIMIT`] items across upstreams (most lists fit in one,
//! which matters: many clients never ask for a next page); the composite cursor names where the
//! next page starts (`epoch`, upstream index, offset in that upstream's list).

use super::apps::UiMap;
use crate::jsonrpc::RpcError;
use crate::naming;
use crate::param_headers::{self, ParamHeader};
use base64::Engine;
use mcplane_config::NamingConfig;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// Most items in one downstream list page.
pub const PAGE_LIMIT: usize = 1000;

/// The four listable kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    /// `tools/list` → `tools`, named by `name`.
    Tools,
    /// `prompts/list` → `prompts`, named by `name`.
    Prompts,
    /// `resources/list` → `resources`, keyed by `uri` (not renamed).
    Resources,
    /// `resources/templates/list` → `resourceTemplates`, keyed by `uriTemplate` (not renamed).
    Templates,
}

impl ListKind {
    /// All kinds.
    pub const ALL: [ListKind; 4] = [
        ListKind::Tools,
        ListKind::Prompts,
        ListKind::Resources,
        ListKind::Templates,
    ];

    /// The list method.
    pub fn method(self) -> &'static str {
        match self {
            ListKind::Tools => "tools/list",
            ListKind::Prompts => "prompts/list",
            ListKind::Resources => "resources/list",
            ListKind::Templates => "resources/templates/list",
        }
    }

    /// The result field holding the items.
    pub fn field(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources => "resources",
            ListKind::Templates => "resourceTemplates",
        }
    }

    /// The server capability that must be present for the upstream to be asked.
    pub fn capability(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources | ListKind::Templates => "resources",
        }
    }

    /// Whether items are renamed (tools, prompts) or keyed by URI (resources, templates).
    fn renamed(self) -> bool {
        matches!(self, ListKind::Tools | ListKind::Prompts)
    }

    /// The notification that announces a change of this kind (resources and templates share one).
    pub fn list_changed(self) -> &'static str {
        match self {
            ListKind::Tools => "notifications/tools/list_changed",
            ListKind::Prompts => "notifications/prompts/list_changed",
            ListKind::Resources | ListKind::Templates => "notifications/resources/list_changed",
        }
    }

    /// The kinds a `list_changed` notification invalidates.
    pub fn from_list_changed(method: &str) -> &'static [ListKind] {
        match method {
            "notifications/tools/list_changed" => &[ListKind::Tools],
            "notifications/prompts/list_changed" => &[ListKind::Prompts],
            "notifications/resources/list_changed" => &[ListKind::Resources, ListKind::Templates],
            _ => &[],
        }
    }
}

/// One upstream's whole list of one kind, as the pages it came in.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    /// Pages of items, untouched.
    pub pages: Vec<Vec<Value>>,
}

/// How a view presents the upstreams' items: which are shown, which get a fixed name, and
/// edits to each (titles, descriptions). The full catalogue shows everything as it is
/// ([`Everything`]); a virtual server curates.
pub trait Shape {
    /// Whether upstream `i` (`server`)'s item with key `key` (its own name, URI or URI template)
    /// is shown.
    fn shows(&self, _i: usize, _server: &str, _key: &str) -> bool {
        true
    }

    /// A name the item gets as is (tools and prompts only), instead of the naming rules'.
    fn fixed_name(&self, _server: &str, _key: &str) -> Option<&str> {
        None
    }

    /// Edits the item as listed (after renaming).
    fn decorate(&self, _server: &str, _key: &str, _item: &mut Value) {}
}

/// Shows every item unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct Everything;

impl Shape for Everything {}

/// A merged, named list of one kind.
#[derive(Debug, Default)]
pub struct View {
    /// Per upstream (config order): pages of items already renamed for downstream.
    pub pages: Vec<Vec<Vec<Value>>>,
    /// Exposed name (tools/prompts) or URI / URI template (resources/templates) → (upstream index, original name).
    pub owners: HashMap<String, (usize, String)>,
    /// Collisions the naming rules could not resolve (prefix mode `never`), for logs and `/readyz`.
    pub collisions: Vec<String>,
    /// Changes whenever the view is rebuilt.
    pub epoch: u64,
    /// The `ui://` URIs rewritten across upstreams (MCP Apps), applied to this view's items.
    pub ui: Arc<UiMap>,
    /// Tools only: the parameters each tool mirrors into `Mcp-Param-*` headers (tools without
    /// `x-mcp-header` annotations are not listed).
    pub param_headers: HashMap<String, Arc<Vec<ParamHeader>>>,
}

impl View {
    /// Builds the view of one kind from each upstream's fetched list (`None` = not available),
    /// everything shown, no `ui://` rewriting.
    pub fn build(
        kind: ListKind,
        naming_rules: &NamingConfig,
        servers: &[String],
        fetched: &[Option<Arc<Fetched>>],
        epoch: u64,
    ) -> View {
        View::shaped(
            kind,
            naming_rules,
            servers,
            fetched,
            Arc::default(),
            epoch,
            &Everything,
        )
    }

    /// Builds the view of one kind: the items `shape` shows, named by the naming rules (or
    /// `shape`'s fixed names), `ui://` URIs rewritten by `ui`, then decorated by `shape`.
    pub fn shaped(
        kind: ListKind,
        naming_rules: &NamingConfig,
        servers: &[String],
        fetched: &[Option<Arc<Fetched>>],
        ui: Arc<UiMap>,
        epoch: u64,
        shape: &dyn Shape,
    ) -> View {
        let mut view = View {
            epoch,
            ..View::default()
        };
        let key_field = match kind {
            ListKind::Tools | ListKind::Prompts => "name",
            ListKind::Resources => "uri",
            ListKind::Templates => "uriTemplate",
        };
        let key_of = |i: usize, item: &Value| -> Option<String> {
            let key = item.get(key_field).and_then(Value::as_str)?;
            shape.shows(i, &servers[i], key).then(|| key.to_string())
        };
        // (upstream, original key) of every shown item, in list order.
        let mut pairs = Vec::new();
        for (i, f) in fetched.iter().enumerate() {
            for page in f.iter().flat_map(|f| f.pages.iter()) {
                for item in page {
                    if let Some(key) = key_of(i, item) {
                        pairs.push((i, key));
                    }
                }
            }
        }
        let exposed: Vec<Option<String>> = if kind.renamed() {
            let fixed: Vec<Option<&str>> = pairs
                .iter()
                .map(|(i, n)| shape.fixed_name(&servers[*i], n))
                .collect();
            let reserved: BTreeSet<String> =
                fixed.iter().flatten().map(|n| n.to_string()).collect();
            let input: Vec<(String, String)> = pairs
                .iter()
                .zip(&fixed)
                .filter(|(_, f)| f.is_none())
                .map(|((i, n), _)| (servers[*i].clone(), n.clone()))
                .collect();
            let assigned = naming::assign_reserved(naming_rules, &input, &reserved);
            view.collisions = assigned
                .collisions
                .iter()
                .map(ToString::to_string)
                .collect();
            let mut generated = assigned.exposed.into_iter();
            fixed
                .iter()
                .map(|f| match f {
                    Some(name) => Some(name.to_string()),
                    None => generated.next().flatten(),
                })
                .collect()
        } else {
            // URIs are global; the first upstream (config order) to list one owns it, except
            // `ui://` URIs, which `ui` gives each upstream its own.
            let mut seen = HashSet::new();
            pairs
                .iter()
                .map(|(i, uri)| {
                    let exposed = if kind == ListKind::Resources {
                        ui.exposed(*i, uri).to_string()
                    } else {
                        uri.clone()
                    };
                    if seen.insert(exposed.clone()) {
                        Some(exposed)
                    } else {
                        view.collisions.push(format!(
                            "{} {uri:?} of server {} is hidden: already listed by another server",
                            key_field, servers[*i]
                        ));
                        None
                    }
                })
                .collect()
        };
        let mut next = exposed.into_iter();
        for (i, f) in fetched.iter().enumerate() {
            let mut server_pages = Vec::new();
            for page in f.iter().flat_map(|f| f.pages.iter()) {
                let mut out = Vec::with_capacity(page.len());
                for item in page {
                    let Some(orig) = key_of(i, item) else {
                        continue;
                    };
                    let Some(Some(name)) = next.next() else {
                        continue;
                    };
                    let mut item = item.clone();
                    if name != orig
                        && let Some(o) = item.as_object_mut()
                    {
                        o.insert(key_field.into(), name.clone().into());
                    }
                    if kind == ListKind::Tools {
                        ui.rewrite_item(i, &mut item);
                    }
                    shape.decorate(&servers[i], &orig, &mut item);
                    if kind == ListKind::Tools
                        && let Some(schema) = item.get("inputSchema")
                    {
                        match param_headers::declared(schema) {
                            Ok(d) if d.is_empty() => {}
                            Ok(d) => {
                                view.param_headers.insert(name.clone(), Arc::new(d));
                            }
                            Err(why) => tracing::warn!(
                                server = %servers[i], tool = %orig,
                                "invalid x-mcp-header annotation (2026-07-28 clients will skip this tool): {why}"
                            ),
                        }
                    }
                    view.owners.insert(name, (i, orig));
                    out.push(item);
                }
                server_pages.push(out);
            }
            view.pages.push(server_pages);
        }
        view.ui = ui;
        view
    }

    /// One downstream page: the items and the cursor of the next page.
    pub fn page(&self, kind: ListKind, cursor: Option<&str>) -> Result<Value, RpcError> {
        let (start_server, start_offset) = match cursor {
            None => (0, 0),
            Some(c) => decode_cursor(c).ok_or_else(|| {
                RpcError::invalid_params("invalid cursor: pass back nextCursor exactly as received")
            })?,
        };
        let mut items = Vec::new();
        let mut next = None;
        'upstreams: for (s, pages) in self.pages.iter().enumerate().skip(start_server) {
            let skip = if s == start_server { start_offset } else { 0 };
            for (offset, item) in pages.iter().flatten().enumerate().skip(skip) {
                if items.len() == PAGE_LIMIT {
                    next = Some((s, offset));
                    break 'upstreams;
                }
                items.push(item.clone());
            }
        }
        let mut result = serde_json::Map::new();
        result.insert(kind.field().into(), Value::Array(items));
        if let Some((s, offset)) = next {
            result.insert(
                "nextCursor".into(),
                encode_cursor(self.epoch, s, offset).into(),
            );
        }
        Ok(Value::Object(result))
    }
}

fn encode_cursor(epoch: u64, server: usize, offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("mcplane:{epoch}:{server}:{offset}"))
}

fn decode_cursor(c: &str) -> Option<(usize, usize)> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let mut parts = text.strip_prefix("mcplane:")?.split(':');
    let _epoch: u64 = parts.next()?.parse().ok()?;
    let server = parts.next()?.parse().ok()?;
    let page = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((server, page))
}

/// Whether `uri` matches an RFC 6570 level-1 template (`{var}` matches one or more characters
/// other than `/`; `{+var}`/`{#var}` match anything).
pub fn template_matches(template: &str, uri: &str) -> bool {
    fn go(t: &str, u: &str) -> bool {
        match t.find('{') {
            None => t == u,
            Some(open) => {
                let Some(close_rel) = t[open..].find('}') else {
                    return t == u;
                };
                let close = open + close_rel;
                if !u.starts_with(&t[..open]) {
                    return false;
                }
                let var = &t[open + 1..close];
                let rest_t = &t[close + 1..];
                let rest_u = &u[open..];
                let greedy = var.starts_with('+') || var.starts_with('#');
                // Try every split point for the variable's value (at least one character).
                rest_u
                    .char_indices()
                    .map(|(i, c)| i + c.len_utf8())
                    .take_while(|&end| greedy || !rest_u[..end].contains('/'))
                    .any(|end| go(rest_t, &rest_u[end..]))
            }
        }
    }
    go(template, uri)
}

/// A JSON view of collisions for `/readyz` detail.
pub fn collisions_json(kind: ListKind, view: &View) -> Value {
    json!({"kind": kind.field(), "collisions": view.collisions})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match() {
        assert!(template_matches("demo://notes/{name}", "demo://notes/a"));
        assert!(!template_matches("demo://notes/{name}", "demo://notes/"));
        assert!(!template_matches("demo://notes/{name}", "demo://notes/a/b"));
        assert!(template_matches("file:///{+path}", "file:///a/b/c"));
        assert!(template_matches("x://{a}/{b}", "x://1/2"));
        assert!(!template_matches("x://{a}/{b}", "y://1/2"));
    }

    #[test]
    fn cursor_round_trip_and_garbage() {
        let c = encode_cursor(3, 1, 2);
        assert_eq!(decode_cursor(&c), Some((1, 2)));
        assert_eq!(decode_cursor("garbage"), None);
    }

    fn fetched(pages: Vec<Vec<Value>>) -> Option<Arc<Fetched>> {
        Some(Arc::new(Fetched { pages }))
    }

    fn walk(view: &View) -> (Vec<String>, usize) {
        let mut names = Vec::new();
        let mut cursor: Option<String> = None;
        for pages in 1.. {
            let page = view.page(ListKind::Tools, cursor.as_deref()).unwrap();
            for t in page["tools"].as_array().unwrap() {
                names.push(t["name"].as_str().unwrap().to_string());
            }
            match page.get("nextCursor").and_then(Value::as_str) {
                Some(c) => cursor = Some(c.to_string()),
                None => return (names, pages),
            }
        }
        unreachable!()
    }

    #[test]
    fn one_page_spans_upstreams_and_large_lists_continue_by_cursor() {
        let servers = vec!["a".to_string(), "b".to_string()];
        let many = |from: usize, to: usize| {
            (from..to)
                .map(|i| json!({"name": format!("t{i}")}))
                .collect::<Vec<_>>()
        };
        let f = vec![
            fetched(vec![many(0, 1500)]),
            fetched(vec![many(0, 700), many(700, 1000)]),
        ];
        let view = View::build(ListKind::Tools, &NamingConfig::default(), &servers, &f, 1);
        let (names, pages) = walk(&view);
        assert_eq!(pages, 3);
        assert_eq!(names.len(), 2500);
        let unique: HashSet<_> = names.iter().collect();
        assert_eq!(unique.len(), 2500);
        assert_eq!(names[1500], "b__t0");
    }

    #[test]
    fn pagination_walks_every_upstream_page() {
        let servers = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let f = vec![
            fetched(vec![vec![json!({"name": "x"})], vec![json!({"name": "y"})]]),
            None,
            fetched(vec![vec![], vec![json!({"name": "z", "extra": 1})]]),
        ];
        let view = View::build(ListKind::Tools, &NamingConfig::default(), &servers, &f, 1);
        let (names, pages) = walk(&view);
        assert_eq!(pages, 1);
        assert_eq!(names, ["a__x", "a__y", "c__z"]);
        assert_eq!(view.owners["c__z"], (2, "z".to_string()));
        assert!(view.page(ListKind::Tools, Some("nope")).is_err());
    }
}
