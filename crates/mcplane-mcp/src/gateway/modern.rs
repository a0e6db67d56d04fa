//! Stateless (2026-07-28) clients in front of session-based upstreams.
//!
//! The server core does the protocol work (per-request `_meta`, `server/discover`, result
//! fields, and turning server→client requests into `input_required` rounds); this module is
//! what only the gateway knows:
//! - `server/discover` and caching hints from the merged catalogue (`mcp.cache_ttl`; lists are
//!   `"public"` because today they do not depend on the caller — [`Gateway::lists_are_public`]
//!   is the hook a per-principal policy must flip);
//! - `subscriptions/listen`: listeners get the upstreams' `list_changed` and
//!   `resources/updated` notifications they opted in to; a resource subscription of a listener
//!   subscribes upstream (`resources/subscribe` on the owner) while anyone needs it;
//! - MRTR bridging details for a call relayed to a legacy upstream: the upstream's request id
//!   becomes the `inputRequests` key (unless it names one with `_meta["dev.mcplane/inputKey"]`),
//!   a request for a capability the client did not declare is refused toward the upstream with
//!   `-32021`, and a call that then fails with a JSON-RPC error is reported to the client as that
//!   `-32021` (an `isError` tool result is relayed as it is).

use super::Gateway;
use crate::jsonrpc::{MISSING_REQUIRED_CLIENT_CAPABILITY, Message, RpcError};
use crate::protocol::meta;
use crate::server::{CacheHints, Listening, ServerOptions, Session};
use crate::upstream::Upstream;
use serde_json::{Map, Value, json};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Notifications buffered per listener before new ones are dropped.
const LISTENER_CAPACITY: usize = 64;

/// Legacy sessions' resource subscriptions: exposed URI → session ids.
pub(crate) type SessionSubscriptions = Arc<Mutex<HashMap<String, HashSet<String>>>>;

struct Listener {
    id: u64,
    tools: bool,
    prompts: bool,
    resources: bool,
    uris: HashSet<String>,
    tx: mpsc::Sender<Value>,
}

/// Open `subscriptions/listen` streams, and the upstream subscriptions made for them.
pub(crate) struct Listeners {
    next: AtomicU64,
    list: Mutex<Vec<Listener>>,
    /// Exposed URI → (upstream, its URI), subscribed upstream on listeners' behalf.
    upstream: Mutex<HashMap<String, (usize, String)>>,
    upstreams: Vec<Arc<Upstream>>,
    sessions: SessionSubscriptions,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Listeners {
    pub(crate) fn new(upstreams: Vec<Arc<Upstream>>, sessions: SessionSubscriptions) -> Listeners {
        Listeners {
            next: AtomicU64::new(1),
            list: Mutex::new(Vec::new()),
            upstream: Mutex::new(HashMap::new()),
            upstreams,
            sessions,
        }
    }

    /// Delivers an upstream's `notifications/*/list_changed` to the listeners that opted in.
    pub(crate) fn list_changed(&self, method: &str) {
        let note = Message::notification(method, None).into_value();
        for l in locked(&self.list).iter() {
            let wanted = match method {
                "notifications/tools/list_changed" => l.tools,
                "notifications/prompts/list_changed" => l.prompts,
                "notifications/resources/list_changed" => l.resources,
                _ => false,
            };
            if wanted && l.tx.try_send(note.clone()).is_err() {
                tracing::debug!(listener = l.id, "listener full or gone; {method} dropped");
            }
        }
    }

    /// Delivers `notifications/resources/updated` for `uri` (as clients know it) to the
    /// listeners subscribed to it.
    pub(crate) fn resource_updated(&self, uri: &str, params: Option<&Value>) {
        let params = params.cloned().unwrap_or_else(|| json!({"uri": uri}));
        let note = Message::notification("notifications/resources/updated", Some(params));
        let note = note.into_value();
        for l in locked(&self.list).iter().filter(|l| l.uris.contains(uri)) {
            let _ = l.tx.try_send(note.clone());
        }
    }

    /// Whether a listener is subscribed to `uri`.
    pub(crate) fn wants(&self, uri: &str) -> bool {
        locked(&self.list).iter().any(|l| l.uris.contains(uri))
    }

    /// Removes listener `id`; unsubscribes upstream the URIs nobody needs any more.
    fn remove(&self, id: u64) {
        let uris: Vec<String> = {
            let mut list = locked(&self.list);
            let gone: Vec<String> = list
                .iter()
                .filter(|l| l.id == id)
                .flat_map(|l| l.uris.iter().cloned())
                .collect();
            list.retain(|l| l.id != id);
            gone.into_iter()
                .filter(|u| !list.iter().any(|l| l.uris.contains(u)))
                .collect()
        };
        for uri in uris {
            if locked(&self.sessions)
                .get(&uri)
                .is_some_and(|s| !s.is_empty())
            {
                continue;
            }
            let Some((i, original)) = locked(&self.upstream).remove(&uri) else {
                continue;
            };
            let Some(up) = self.upstreams.get(i).cloned() else {
                continue;
            };
            super::unsubscribe_upstream(up, original);
        }
    }
}

impl Gateway {
    /// The server-core options for an endpoint serving this gateway (`mcp.input_required`).
    pub fn server_options(&self) -> ServerOptions {
        ServerOptions {
            input_timeout: self.stateless.input_timeout,
            max_parked: self.stateless.max_pending,
        }
    }

    /// What `server/discover` reports.
    pub(crate) async fn discover_result(&self) -> Value {
        self.wait_ready().await;
        json!({"capabilities": self.merged_capabilities(), "serverInfo": self.server_identity()})
    }

    /// mcplane's `Implementation`.
    pub(crate) fn server_identity(&self) -> Value {
        json!({"name": "mcplane", "title": "mcplane MCP gateway", "version": env!("CARGO_PKG_VERSION")})
    }

    /// Whether list results are the same for every caller (`cacheScope: "public"`). True today:
    /// lists depend only on the upstreams. A policy that filters lists per principal must make
    /// this false for the callers it filters.
    pub(crate) fn lists_are_public(&self, _session: &Session) -> bool {
        true
    }

    /// Caching hints of the gateway's cacheable results: lists and discovery fresh for
    /// `mcp.cache_ttl`; a read resource is the upstream's business (stale at once, private).
    pub(crate) fn stateless_cache_hints(
        &self,
        session: &Session,
        method: &str,
    ) -> Option<CacheHints> {
        match method {
            "resources/read" => Some(CacheHints {
                ttl: Duration::ZERO,
                public: false,
            }),
            _ => Some(CacheHints {
                ttl: self.stateless.cache_ttl,
                public: self.lists_are_public(session),
            }),
        }
    }

    /// Whether some connected upstream serves `capability` (`tools`, `prompts`, `resources`).
    pub(crate) fn serves(&self, capability: &str) -> bool {
        (0..self.upstreams.len()).any(|i| self.has_capability(i, capability))
    }

    /// Opens a `subscriptions/listen` stream: the filter's flags the merged capabilities back,
    /// and the resource URIs whose owner could be subscribed.
    pub(crate) async fn open_listener(&self, filter: &Value) -> Result<Listening, RpcError> {
        self.wait_ready().await;
        let caps = self.merged_capabilities();
        let flag = |field: &str, cap: &str| {
            filter.get(field) == Some(&Value::Bool(true))
                && caps[cap]["listChanged"] == Value::Bool(true)
        };
        let (tools, prompts, resources) = (
            flag("toolsListChanged", "tools"),
            flag("promptsListChanged", "prompts"),
            flag("resourcesListChanged", "resources"),
        );
        let requested: BTreeSet<String> = match filter.get("resourceSubscriptions") {
            None | Some(Value::Null) => BTreeSet::new(),
            Some(Value::Array(uris)) => uris
                .iter()
                .map(|u| {
                    u.as_str().map(str::to_string).ok_or_else(|| {
                        RpcError::invalid_params("resourceSubscriptions must be a list of URIs")
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(RpcError::invalid_params(
                    "resourceSubscriptions must be a list of URIs",
                ));
            }
        };
        let mut uris = HashSet::new();
        for uri in &requested {
            if self.subscribe_for_listener(uri).await {
                uris.insert(uri.clone());
            }
        }
        let mut ack = Map::new();
        for (field, on) in [
            ("toolsListChanged", tools),
            ("promptsListChanged", prompts),
            ("resourcesListChanged", resources),
        ] {
            if on {
                ack.insert(field.into(), true.into());
            }
        }
        if filter.get("resourceSubscriptions").is_some() {
            let acked: Vec<&String> = requested.iter().filter(|u| uris.contains(*u)).collect();
            ack.insert("resourceSubscriptions".into(), json!(acked));
        }
        let (tx, rx) = mpsc::channel(LISTENER_CAPACITY);
        let id = self.listeners.next.fetch_add(1, Ordering::Relaxed);
        let watch = tx.clone();
        locked(&self.listeners.list).push(Listener {
            id,
            tools,
            prompts,
            resources,
            uris,
            tx,
        });
        let listeners = self.listeners.clone();
        // The stream's end (client gone, shutdown) drops the receiver: clean up then.
        tokio::spawn(async move {
            watch.closed().await;
            listeners.remove(id);
        });
        Ok(Listening {
            acknowledged: Value::Object(ack),
            notifications: rx,
        })
    }

    /// Makes sure the owner of `uri` sends its updates: subscribes upstream unless a session or
    /// listener already did. False when the URI has no owner that supports subscriptions.
    async fn subscribe_for_listener(&self, uri: &str) -> bool {
        let Ok((i, original)) = self.resolve_uri(uri).await else {
            return false;
        };
        let subscribable = self.upstreams[i]
            .init_result()
            .is_some_and(|r| r["capabilities"]["resources"]["subscribe"] == Value::Bool(true));
        if !subscribable {
            return false;
        }
        let already = locked(&self.listeners.upstream).contains_key(uri)
            || locked(&self.subscriptions)
                .get(uri)
                .is_some_and(|s| !s.is_empty());
        if already {
            return true;
        }
        let params = json!({"uri": original});
        match self.upstreams[i]
            .request("resources/subscribe", Some(params), None)
            .await
        {
            Ok(m) if m.rpc_error().is_none() => {
                locked(&self.listeners.upstream).insert(uri.to_string(), (i, original));
                true
            }
            Ok(m) => {
                tracing::debug!(uri, error = ?m.rpc_error(), "upstream refused resources/subscribe");
                false
            }
            Err(e) => {
                tracing::debug!(uri, error = %e, "resources/subscribe not sent");
                false
            }
        }
    }

    /// A session-based `resources/unsubscribe` that must not reach the upstream because a
    /// listener still needs the subscription: recorded locally and answered `{}`.
    pub(crate) fn unsubscribe_locally(
        &self,
        session: &Session,
        params: Option<&Value>,
    ) -> Option<Value> {
        let uri = params?.get("uri")?.as_str()?;
        if !self.listeners.wants(uri) {
            return None;
        }
        self.subscription(session, uri, false);
        Some(json!({}))
    }
}

/// Names the `inputRequests` key of an upstream's server→client request: its own
/// `_meta["dev.mcplane/inputKey"]` if set, else its JSON-RPC id.
pub(crate) fn with_input_key(params: Option<Value>, id: &Value) -> Option<Value> {
    let key = match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut params = match params {
        Some(Value::Object(p)) => p,
        None => Map::new(),
        other => return other,
    };
    let m = params
        .entry("_meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(m) = m {
        m.entry(meta::INPUT_KEY).or_insert(Value::String(key));
    }
    Some(Value::Object(params))
}

/// A failed call during which mcplane refused the upstream capabilities the client had not
/// declared: the failure is reported as that `MissingRequiredClientCapability`.
pub(crate) fn blame_missing_capabilities(
    error: RpcError,
    refused: &BTreeSet<&'static str>,
) -> RpcError {
    if refused.is_empty() || error.code == MISSING_REQUIRED_CLIENT_CAPABILITY {
        return error;
    }
    let mut e = RpcError::missing_capabilities(refused.iter().copied());
    e.message = format!(
        "{} (the upstream asked for it and then failed: {})",
        e.message, error.message
    );
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_keys_come_from_the_hint_or_the_id() {
        let p = with_input_key(None, &json!(7)).unwrap();
        assert_eq!(p["_meta"][meta::INPUT_KEY], "7");
        let p = with_input_key(Some(json!({"message": "m"})), &json!("user_name")).unwrap();
        assert_eq!(p["_meta"][meta::INPUT_KEY], "user_name");
        assert_eq!(p["message"], "m");
        let hinted = json!({"_meta": {meta::INPUT_KEY: "mine", "k": 1}});
        let p = with_input_key(Some(hinted), &json!(3)).unwrap();
        assert_eq!(p["_meta"], json!({meta::INPUT_KEY: "mine", "k": 1}));
    }

    #[test]
    fn failures_after_a_refusal_blame_the_capability() {
        let refused: BTreeSet<&'static str> = ["sampling"].into_iter().collect();
        let e = blame_missing_capabilities(RpcError::internal("boom"), &refused);
        assert_eq!(e.code, MISSING_REQUIRED_CLIENT_CAPABILITY);
        assert_eq!(
            e.data.unwrap()["requiredCapabilities"],
            json!({"sampling": {}})
        );
        let e = blame_missing_capabilities(RpcError::internal("boom"), &BTreeSet::new());
        assert_eq!(e.code, crate::jsonrpc::INTERNAL_ERROR);
    }
}
