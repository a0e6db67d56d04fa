//! Wiring of the governance core: the authenticator (with an HTTP JWKS source), the compiled
//! policies, and the rate limits and budgets over the counters the config asks for (Redis when
//! `store.redis` is set, so replicas share them; this process's memory otherwise).

use anyhow::Context;
use async_trait::async_trait;
use futures::StreamExt;
use mcplane_config::Config;
use mcplane_core::authn::{Authenticator, JwksSource};
use mcplane_core::budgets::Budgets;
use mcplane_core::governance::Governance;
use mcplane_core::limits::{Counters, Limits};
use mcplane_core::policy::PolicySet;
use mcplane_counters::{MemoryCounters, RedisCounters};
use std::sync::Arc;
use std::time::Duration;

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Fetches JWKS documents over HTTP(S): 5 s to answer, at most 1 MiB, no redirects.
pub struct HttpJwks {
    client: reqwest::Client,
}

impl HttpJwks {
    fn new() -> anyhow::Result<HttpJwks> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("cannot build the JWKS HTTP client")?;
        Ok(HttpJwks { client })
    }
}

#[async_trait]
impl JwksSource for HttpJwks {
    async fn fetch(&self, url: &str) -> Result<String, String> {
        let host = url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| "the JWKS URL".into());
        let response = self.client.get(url).send().await.map_err(|e| {
            if e.is_timeout() {
                format!("{host} did not answer in time")
            } else {
                format!("cannot reach {host}")
            }
        })?;
        if !response.status().is_success() {
            return Err(format!(
                "{host} answered HTTP {}",
                response.status().as_u16()
            ));
        }
        let mut body = Vec::new();
        let mut chunks = response.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|_| format!("{host} broke off the JWKS download"))?;
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!("{host} sent a JWKS larger than 1 MiB"));
            }
            body.extend_from_slice(&chunk);
        }
        String::from_utf8(body).map_err(|_| format!("{host} sent a JWKS that is not UTF-8"))
    }
}

/// The counters rate limits count in.
pub async fn counters(config: &Config) -> anyhow::Result<Arc<dyn Counters>> {
    let redis = config.store.redis.as_ref();
    Ok(match redis {
        Some(url) => Arc::new(
            RedisCounters::connect(url.expose(), "mcplane:")
                .await
                .context("store.redis: cannot connect to Redis for the rate-limit counters")?,
        ),
        None => Arc::new(MemoryCounters::default()),
    })
}

/// Builds the governance of `config` (reads `jwks_file`s, compiles policies); errors name the
/// key path. `counters` is where rate limits count.
pub fn build(config: &Config, counters: Arc<dyn Counters>) -> anyhow::Result<Governance> {
    let read = |p: &std::path::Path| std::fs::read_to_string(p).map_err(|e| e.to_string());
    let authn = Authenticator::new(config.auth.as_ref(), &read, Arc::new(HttpJwks::new()?))?;
    let policy = PolicySet::compile(&config.policies, "policies")?;
    let limits = Limits::new(config.tenants.as_ref(), counters.clone(), false);
    let budgets = Budgets::new(&config.budgets, counters);
    Ok(Governance {
        authn,
        policy,
        limits,
        budgets,
    })
}

/// What `mcplane check` validates: [`build`] with counters in memory.
pub fn validate(config: &Config) -> anyhow::Result<()> {
    build(config, Arc::new(MemoryCounters::default())).map(|_| ())
}
