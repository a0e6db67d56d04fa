//! The `store` section: where mcplane keeps state (SQLite or PostgreSQL) and, for replicas, Redis.

use crate::validate::{field, url_with_scheme};
use crate::{ConfigError, SecretString};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `store:` as written. Not active yet.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreSpec {
    /// Database URL: `sqlite://FILE` (embedded, the default) or `postgres://USER:PASS@HOST/DB` for
    /// replicas. May hold a password: write it with `${ENV}`.
    #[schemars(extend("default" = "sqlite://mcplane.db"))]
    pub url: Option<SecretString>,
    /// Redis URL (`redis://…` or `rediss://…`) for counters, cache and sessions shared by
    /// replicas. Unset: in-process state (one replica).
    pub redis: Option<SecretString>,
    /// Largest number of pooled database connections.
    #[schemars(extend("default" = 8))]
    pub max_connections: Option<u32>,
}

impl StoreSpec {
    pub(crate) fn validate(&self, at: &str) -> Result<(), ConfigError> {
        if let Some(url) = &self.url {
            url_with_scheme(
                &field(at, "url"),
                url.expose(),
                &["sqlite", "postgres", "postgresql"],
            )?;
        }
        if let Some(redis) = &self.redis {
            url_with_scheme(&field(at, "redis"), redis.expose(), &["redis", "rediss"])?;
        }
        if self.max_connections == Some(0) {
            return Err(ConfigError::invalid(
                field(at, "max_connections"),
                "must be at least 1",
            ));
        }
        Ok(())
    }
}
