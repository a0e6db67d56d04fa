//! The `cache` section: exact-match and semantic (embedding similarity) caching of model calls.

use crate::validate::{field, fraction, non_empty};
use crate::{ConfigError, HumanDuration};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `cache:` as written. Not active yet.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheSpec {
    /// Where entries live: `memory` (one replica) or `redis` (shared; needs `store.redis`).
    #[schemars(extend("default" = "memory"))]
    pub backend: Option<CacheBackend>,
    /// Responses reused for byte-identical requests.
    pub exact: Option<ExactCacheSpec>,
    /// Responses reused for requests whose embedding is similar enough.
    pub semantic: Option<SemanticCacheSpec>,
}

/// Where cache entries live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CacheBackend {
    /// In this process.
    #[default]
    Memory,
    /// In Redis, shared by replicas.
    Redis,
}

/// The exact-match cache.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExactCacheSpec {
    /// How long an entry is served.
    #[schemars(extend("default" = "1h"))]
    pub ttl: Option<HumanDuration>,
    /// Most entries kept (least recently used evicted first).
    #[schemars(extend("default" = 10000))]
    pub max_entries: Option<u64>,
}

/// The semantic cache.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SemanticCacheSpec {
    /// Least cosine similarity (0 to 1) for a cached response to be served.
    #[schemars(extend("default" = 0.9))]
    pub threshold: Option<f64>,
    /// Model id (from `models`) that computes the embeddings.
    pub embedding_model: String,
    /// How long an entry is served.
    #[schemars(extend("default" = "1h"))]
    pub ttl: Option<HumanDuration>,
    /// Most entries kept.
    #[schemars(extend("default" = 10000))]
    pub max_entries: Option<u64>,
}

impl CacheSpec {
    pub(crate) fn validate(&self, at: &str) -> Result<(), ConfigError> {
        if let Some(s) = &self.semantic {
            let at = field(at, "semantic");
            if let Some(t) = s.threshold {
                fraction(&field(&at, "threshold"), t)?;
            }
            non_empty(&field(&at, "embedding_model"), &s.embedding_model)?;
        }
        Ok(())
    }
}
