//! The `store` section: where mcplane keeps state (SQLite or PostgreSQL) and, for replicas, Redis.

use crate::validate::{field, url_with_scheme};
use crate::{ConfigError, SecretString};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `store:` as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreSpec {
    /// Database URL: `sqlite://FILE` (embedded, the default; a relative path is relative to the
    /// config file's directory, or to the working directory without a config file;
    /// `sqlite::memory:` keeps nothing) or `postgres://USER:PASS@HOST/DB` for replicas. May hold
    /// a password: write it with `${ENV}`.
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

/// The default database: an SQLite file next to the config.
pub const DEFAULT_STORE_URL: &str = "sqlite://mcplane.db";

/// Validated `store`.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Database URL (see [`StoreSpec::url`]).
    pub url: SecretString,
    /// Redis URL for state shared by replicas (rate-limit counters today).
    pub redis: Option<SecretString>,
    /// Largest number of pooled database connections.
    pub max_connections: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: SecretString::new(DEFAULT_STORE_URL),
            redis: None,
            max_connections: 8,
        }
    }
}

impl StoreSpec {
    pub(crate) fn lower(self, at: &str) -> Result<StoreConfig, ConfigError> {
        self.validate(at)?;
        Ok(StoreConfig {
            url: self
                .url
                .unwrap_or_else(|| SecretString::new(DEFAULT_STORE_URL)),
            redis: self.redis,
            max_connections: self.max_connections.unwrap_or(8),
        })
    }
}

impl StoreConfig {
    /// Makes a relative SQLite path relative to `dir` (the config file's directory).
    pub fn resolve_relative_to(&mut self, dir: &std::path::Path) {
        let url = self.url.expose();
        let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        else {
            return;
        };
        let (file, query) = path
            .split_once('?')
            .map_or((path, None), |(f, q)| (f, Some(q)));
        if file.is_empty() || file.starts_with(':') || std::path::Path::new(file).is_absolute() {
            return;
        }
        let joined = dir.join(file);
        let mut resolved = format!("sqlite://{}", joined.display());
        if let Some(q) = query {
            resolved.push('?');
            resolved.push_str(q);
        }
        self.url = SecretString::new(resolved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_sqlite_paths_follow_the_config_file() {
        let dir = std::path::Path::new("/etc/mcplane");
        let cases = [
            ("sqlite://mcplane.db", "sqlite:///etc/mcplane/mcplane.db"),
            (
                "sqlite:data/x.db?mode=rwc",
                "sqlite:///etc/mcplane/data/x.db?mode=rwc",
            ),
            ("sqlite:///var/lib/x.db", "sqlite:///var/lib/x.db"),
            ("sqlite::memory:", "sqlite::memory:"),
            ("postgres://h/db", "postgres://h/db"),
        ];
        for (given, want) in cases {
            let mut c = StoreConfig {
                url: SecretString::new(given),
                ..StoreConfig::default()
            };
            c.resolve_relative_to(dir);
            assert_eq!(c.url.expose(), want, "{given}");
        }
    }
}
