//! What a view is built from: each upstream's fetched list of the kind, and for tools and
//! resources also the other kind's lists (MCP Apps link the two through `ui://` URIs, see
//! [`super::apps`]). Lists are fetched through the gateway's cache; [`SourceKey`] tells whether
//! a view built earlier is still current.

use super::Gateway;
use super::apps::UiMap;
use super::catalog::{Fetched, ListKind};
use crate::jsonrpc::RpcError;
use crate::upstream::{UpstreamError, UpstreamState};
use mcplane_config::FailMode;
use std::sync::Arc;

/// The lists one view is built from.
pub(crate) struct Sources {
    /// Per upstream: its list of the view's kind (`None`: not available).
    pub(crate) lists: Vec<Option<Arc<Fetched>>>,
    /// Per upstream: tools and resources, as far as available, for the `ui://` map (empty for
    /// prompts and templates).
    tools: Vec<Option<Arc<Fetched>>>,
    resources: Vec<Option<Arc<Fetched>>>,
}

/// Identifies the fetched lists a view was built from (the same `Arc`s: a list refetched is a
/// new one). Holding them keeps their addresses from being reused.
#[derive(Default)]
pub(crate) struct SourceKey(Vec<Option<Arc<Fetched>>>);

impl PartialEq for SourceKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self.0.iter().zip(&other.0).all(|(a, b)| match (a, b) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            })
    }
}

impl Sources {
    /// The key of these sources.
    pub(crate) fn key(&self) -> SourceKey {
        let mut all = self.lists.clone();
        all.push(None);
        all.extend(self.tools.iter().cloned());
        all.push(None);
        all.extend(self.resources.iter().cloned());
        SourceKey(all)
    }

    /// The `ui://` rewriting these sources call for.
    pub(crate) fn ui_map(&self, servers: &[String]) -> Arc<UiMap> {
        if self.tools.is_empty() && self.resources.is_empty() {
            return Arc::default();
        }
        Arc::new(UiMap::build(servers, &self.tools, &self.resources))
    }
}

impl Gateway {
    /// Upstream `i`'s whole list of `kind`, cached until it reconnects or says the list changed
    /// (one fetch at a time, however many ask: see [`super::list_cache`]); `None` when it does not
    /// serve that kind.
    async fn fetch_one(
        &self,
        i: usize,
        kind: ListKind,
    ) -> Result<Option<Arc<Fetched>>, UpstreamError> {
        let up = &self.upstreams[i];
        if up.state() != UpstreamState::Ready {
            return Err(UpstreamError::Unavailable {
                server: up.name().to_string(),
                reason: "not connected".into(),
            });
        }
        if !self.has_capability(i, kind.capability()) {
            return Ok(None);
        }
        let fetched = self
            .lists
            .get((i, kind), up.generation(), up.config().list_ttl, || {
                self.fetch_all(i, kind)
            })
            .await?;
        Ok(Some(fetched))
    }

    /// Every upstream's list of `kind`; a failed upstream is left out (`fail_open`) or fails the
    /// whole (`fail_closed`, with `strict`).
    async fn fetch_every(
        &self,
        kind: ListKind,
        strict: bool,
    ) -> Result<Vec<Option<Arc<Fetched>>>, RpcError> {
        let results =
            futures::future::join_all((0..self.upstreams.len()).map(|i| self.fetch_one(i, kind)))
                .await;
        let mut fetched = Vec::with_capacity(results.len());
        for r in results {
            match r {
                Ok(f) => fetched.push(f),
                Err(e) if strict && self.fail_mode == FailMode::FailClosed => {
                    return Err(super::unavailable(&e));
                }
                Err(e) => {
                    tracing::debug!(error = %e, list = kind.method(), "upstream left out of the list");
                    fetched.push(None);
                }
            }
        }
        Ok(fetched)
    }

    /// The lists a view of `kind` is built from.
    pub(crate) async fn sources(&self, kind: ListKind) -> Result<Sources, RpcError> {
        // Tools and resources link through `ui://` URIs: the other list is fetched alongside.
        let companion = match kind {
            ListKind::Tools => Some(ListKind::Resources),
            ListKind::Resources => Some(ListKind::Tools),
            ListKind::Prompts | ListKind::Templates => None,
        };
        let (lists, other) = futures::future::join(self.fetch_every(kind, true), async {
            match companion {
                Some(c) => self.fetch_every(c, false).await,
                None => Ok(Vec::new()),
            }
        })
        .await;
        let (lists, other) = (lists?, other?);
        let (tools, resources) = match kind {
            ListKind::Tools => (lists.clone(), other),
            ListKind::Resources => (other, lists.clone()),
            ListKind::Prompts | ListKind::Templates => (Vec::new(), Vec::new()),
        };
        Ok(Sources {
            lists,
            tools,
            resources,
        })
    }
}
