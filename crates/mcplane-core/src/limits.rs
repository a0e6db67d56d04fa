//! Rate limits, the same for both faces: requests per minute, model tokens per minute and
//! requests in flight, per tenant level (org, team, project) as configured under `tenants:`.
//!
//! Counting goes through the [`Counters`] port — in process for one replica, Redis for several —
//! and admission is atomic across every level a request is charged at: either every counter
//! takes the request or none does, so a request refused by its team's limit does not use up its
//! org's. Windows are fixed minutes; a refusal says when the window resets ([`Limited`]), which
//! the faces turn into `429` with `Retry-After` and `x-ratelimit-*` headers.
//!
//! Tokens are admitted on the request's estimate and corrected to the actual count afterwards
//! ([`Admitted::settle_tokens`]).

use async_trait::async_trait;
use mcplane_config::{RateLimitSpec, TenantsSpec};
use mcplane_types::Principal;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The window every per-minute limit counts in.
pub const WINDOW: Duration = Duration::from_secs(60);

/// One counter a request is charged to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// Counter key (`rpm:team:payments`, `tpm:org:acme`, `inflight:project:bot`).
    pub key: String,
    /// Amount to add.
    pub amount: u64,
    /// Largest count allowed.
    pub limit: u64,
    /// `Some(window)`: a count per fixed window; `None`: a gauge (in-flight requests, budget
    /// spend of a named period) that [`Counters::release`] or [`Counters::adjust`] change.
    pub window: Option<Duration>,
    /// A gauge's lifetime in shared counters after its last change (`None`: the counters'
    /// default for in-flight counts). Windowed counts expire with their window.
    pub ttl: Option<Duration>,
}

/// What the counters said about a set of charges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Every counter took its charge. Per charge (in order): the count after it.
    Admitted(Vec<u64>),
    /// Charge `index` would go over its limit; nothing was charged. `reset_in`: when its window
    /// ends (`None` for a gauge: when a request in flight ends).
    Refused {
        /// Which charge.
        index: usize,
        /// Its current count.
        count: u64,
        /// Time until its window resets.
        reset_in: Option<Duration>,
    },
}

/// Counting, shared by every request (in process or across replicas).
#[async_trait]
pub trait Counters: Send + Sync {
    /// Adds every charge, or none if any would exceed its limit (atomically).
    async fn admit(&self, charges: &[Charge]) -> Result<Admission, CountersError>;
    /// Adds `delta` (may be negative, never below zero) to a counter without a limit
    /// (corrections): a windowed one in its current window (`Some`), or a gauge (`None`).
    async fn adjust(
        &self,
        key: &str,
        window: Option<Duration>,
        delta: i64,
    ) -> Result<(), CountersError>;
    /// Decrements a gauge (a request in flight ended).
    async fn release(&self, key: &str) -> Result<(), CountersError>;
}

/// The counters could not be reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate-limit counters unavailable: {0}")]
pub struct CountersError(pub String);

/// A refusal, ready to render as `429`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    /// What ran out, for the caller (`requests per minute of team payments`).
    pub what: String,
    /// The limit.
    pub limit: u64,
    /// What is left (0).
    pub remaining: u64,
    /// When to retry.
    pub retry_after: Duration,
    /// `requests` or `tokens` or `concurrent` (for `x-ratelimit-*-{requests,tokens}`).
    pub dimension: &'static str,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// A limit is reached.
    #[error("rate limit reached: {}; retry in {}s", .0.what, .0.retry_after.as_secs().max(1))]
    Limited(Limited),
    /// The counters are down and limits fail closed.
    #[error("{0}")]
    Unavailable(CountersError),
}

/// What one admission charges.
#[derive(Debug, Clone, Copy)]
enum Dimension {
    /// A request: requests per minute and in flight.
    Requests,
    /// Estimated model tokens: tokens per minute.
    Tokens(u64),
}

/// The limits of one tenant level.
#[derive(Debug, Clone)]
struct Level {
    scope: String,
    title: String,
    spec: RateLimitSpec,
}

/// The configured limits; see the module docs.
pub struct Limits {
    by_scope: HashMap<String, Level>,
    counters: Arc<dyn Counters>,
    /// Whether requests go through when the counters are unreachable.
    fail_open: bool,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("scopes", &self.by_scope.keys().collect::<Vec<_>>())
            .field("fail_open", &self.fail_open)
            .finish()
    }
}

/// A request's admission: the in-flight gauges it holds (released on drop) and its token
/// charges (corrected by [`Admitted::settle_tokens`]).
#[must_use = "dropping the admission ends the request's in-flight count"]
pub struct Admitted {
    counters: Arc<dyn Counters>,
    gauges: Vec<String>,
    token_keys: Vec<String>,
    estimated_tokens: u64,
}

impl Admitted {
    /// The limit charged nothing (no limits apply).
    fn none(counters: Arc<dyn Counters>) -> Admitted {
        Admitted {
            counters,
            gauges: Vec::new(),
            token_keys: Vec::new(),
            estimated_tokens: 0,
        }
    }

    /// Whether it holds in-flight counts (released when it is dropped).
    pub fn holds_in_flight(&self) -> bool {
        !self.gauges.is_empty()
    }

    /// Corrects the tokens charged on admission (the estimate) to `actual`.
    pub async fn settle_tokens(&mut self, actual: u64) {
        let delta = actual as i64 - self.estimated_tokens as i64;
        self.estimated_tokens = actual;
        if delta == 0 {
            return;
        }
        for key in &self.token_keys {
            if let Err(e) = self.counters.adjust(key, Some(WINDOW), delta).await {
                tracing::warn!(key, error = %e, "could not correct a token count");
            }
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if self.gauges.is_empty() {
            return;
        }
        let counters = self.counters.clone();
        let gauges = std::mem::take(&mut self.gauges);
        let release = async move {
            for key in gauges {
                if let Err(e) = counters.release(&key).await {
                    tracing::warn!(key, error = %e, "could not release an in-flight count");
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(release);
            }
            Err(_) => tracing::warn!("in-flight counts not released: no runtime"),
        }
    }
}

impl Limits {
    /// The limits of `tenants` counted in `counters`.
    pub fn new(
        tenants: Option<&TenantsSpec>,
        counters: Arc<dyn Counters>,
        fail_open: bool,
    ) -> Limits {
        let mut by_scope = HashMap::new();
        let mut add = |kind: &str, id: &str, spec: &Option<RateLimitSpec>| {
            if let Some(spec) = spec {
                let scope = format!("{kind}:{id}");
                by_scope.insert(
                    scope.clone(),
                    Level {
                        scope,
                        title: format!("{kind} {id}"),
                        spec: spec.clone(),
                    },
                );
            }
        };
        for org in tenants.and_then(|t| t.orgs.as_ref()).into_iter().flatten() {
            add("org", &org.id, &org.limits);
            for team in org.teams.iter().flatten() {
                add("team", &team.id, &team.limits);
                for project in team.projects.iter().flatten() {
                    if let mcplane_config::ProjectSpec::Full(p) = project {
                        add("project", &p.id, &p.limits);
                    }
                }
            }
        }
        Limits {
            by_scope,
            counters,
            fail_open,
        }
    }

    /// Whether any limit is configured.
    pub fn is_empty(&self) -> bool {
        self.by_scope.is_empty()
    }

    /// The levels `principal` is charged at, tightest first.
    fn levels(&self, principal: &Principal) -> Vec<&Level> {
        let t = &principal.tenancy;
        [
            t.project.as_ref().map(|p| format!("project:{p}")),
            t.team.as_ref().map(|p| format!("team:{p}")),
            t.org.as_ref().map(|p| format!("org:{p}")),
        ]
        .into_iter()
        .flatten()
        .filter_map(|scope| self.by_scope.get(&scope))
        .collect()
    }

    /// Admits one request of `principal` under the requests-per-minute and in-flight limits of
    /// its levels, or says which limit it hits.
    pub async fn admit(&self, principal: &Principal) -> Result<Admitted, LimitError> {
        self.charge(principal, Dimension::Requests).await
    }

    /// Admits `tokens` estimated model tokens of `principal` under the tokens-per-minute limits
    /// of its levels (corrected later by [`Admitted::settle_tokens`]).
    pub async fn admit_tokens(
        &self,
        principal: &Principal,
        tokens: u64,
    ) -> Result<Admitted, LimitError> {
        self.charge(principal, Dimension::Tokens(tokens)).await
    }

    async fn charge(
        &self,
        principal: &Principal,
        dimension: Dimension,
    ) -> Result<Admitted, LimitError> {
        let levels = self.levels(principal);
        let tokens = match dimension {
            Dimension::Tokens(t) => t,
            Dimension::Requests => 0,
        };
        if levels.is_empty() || (matches!(dimension, Dimension::Tokens(_)) && tokens == 0) {
            return Ok(Admitted::none(self.counters.clone()));
        }
        let mut charges = Vec::new();
        let mut meta = Vec::new();
        for level in levels {
            let s = &level.spec;
            match dimension {
                Dimension::Requests => {
                    if let Some(rpm) = s.requests_per_minute {
                        charges.push(Charge {
                            key: format!("rpm:{}", level.scope),
                            amount: 1,
                            limit: u64::from(rpm),
                            window: Some(WINDOW),
                            ttl: None,
                        });
                        meta.push((level, "requests", "requests per minute"));
                    }
                    if let Some(c) = s.concurrent {
                        charges.push(Charge {
                            key: format!("inflight:{}", level.scope),
                            amount: 1,
                            limit: u64::from(c),
                            window: None,
                            ttl: None,
                        });
                        meta.push((level, "concurrent", "requests in flight"));
                    }
                }
                Dimension::Tokens(_) => {
                    if let Some(tpm) = s.tokens_per_minute {
                        charges.push(Charge {
                            key: format!("tpm:{}", level.scope),
                            amount: tokens,
                            limit: tpm,
                            window: Some(WINDOW),
                            ttl: None,
                        });
                        meta.push((level, "tokens", "tokens per minute"));
                    }
                }
            }
        }
        if charges.is_empty() {
            return Ok(Admitted::none(self.counters.clone()));
        }
        match self.counters.admit(&charges).await {
            Ok(Admission::Admitted(_)) => Ok(Admitted {
                counters: self.counters.clone(),
                gauges: charges
                    .iter()
                    .filter(|c| c.window.is_none())
                    .map(|c| c.key.clone())
                    .collect(),
                token_keys: charges
                    .iter()
                    .filter(|c| c.key.starts_with("tpm:"))
                    .map(|c| c.key.clone())
                    .collect(),
                estimated_tokens: tokens,
            }),
            Ok(Admission::Refused {
                index,
                count: _,
                reset_in,
            }) => {
                let (level, dimension, what) = meta[index];
                let charge = &charges[index];
                let too_big = charge.amount > charge.limit;
                Err(LimitError::Limited(Limited {
                    what: if too_big {
                        format!(
                            "{what} of {} ({}): this request alone needs {}",
                            level.title, charge.limit, charge.amount
                        )
                    } else {
                        format!("{what} of {} ({})", level.title, charge.limit)
                    },
                    limit: charge.limit,
                    remaining: 0,
                    retry_after: reset_in.unwrap_or(Duration::from_secs(1)),
                    dimension,
                }))
            }
            Err(e) if self.fail_open => {
                tracing::warn!(error = %e, "rate limits not enforced: counters unavailable (fail open)");
                Ok(Admitted::none(self.counters.clone()))
            }
            Err(e) => Err(LimitError::Unavailable(e)),
        }
    }
}
