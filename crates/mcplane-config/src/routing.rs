//! The `routing` section: how the router scores eligible models, the aliases (virtual model
//! names) clients may ask for, and what happens when a call fails. Lowered into
//! [`RoutingConfig`] with every default filled in.

use crate::models::ModelConfig;
use crate::validate::{field, fraction, ident, index, non_negative};
use crate::{ConfigError, HumanDuration, Notice};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// `routing:` as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutingSpec {
    /// Relative weights of the score's parts; they need not add up to 1.
    pub weights: Option<RoutingWeightsSpec>,
    /// Virtual model names and how each picks among its candidates.
    pub aliases: Option<BTreeMap<String, AliasSpec>>,
    /// Retries of a failed call before falling back to the next candidate.
    pub retry: Option<RetrySpec>,
    /// Per-endpoint circuit breaker.
    pub circuit_breaker: Option<CircuitBreakerSpec>,
    /// Time limits of one model call.
    pub timeouts: Option<ModelTimeoutsSpec>,
    /// Data residency every model call must satisfy (e.g. `[eu]`): only models whose
    /// `compliance.data_residency` lists one of these regions serve. A request can narrow it
    /// further with the `x-mcplane-data-residency` header, never widen it.
    pub data_residency: Option<Vec<String>>,
}

/// Weights of the router's score.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutingWeightsSpec {
    /// Weight of performance (latency, throughput).
    #[schemars(extend("default" = 0.4))]
    pub performance: Option<f64>,
    /// Weight of (low) cost.
    #[schemars(extend("default" = 0.3))]
    pub cost: Option<f64>,
    /// Weight of live availability (error rate, latency EWMA).
    #[schemars(extend("default" = 0.3))]
    pub availability: Option<f64>,
}

/// How an alias chooses among its candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RouteStrategy {
    /// Highest weighted score first.
    #[default]
    Score,
    /// Split traffic by `split` weights (A/B tests).
    Weighted,
    /// Among candidates whose `performance.quality` is at least `quality_threshold`, the one
    /// with the highest quality ÷ predicted cost of the request.
    Cheapest,
    /// Lowest observed latency first.
    Latency,
}

/// One alias under `routing.aliases`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AliasSpec {
    /// Model ids the alias may route to.
    pub candidates: Vec<String>,
    /// How the primary is chosen.
    #[schemars(extend("default" = "score"))]
    pub strategy: Option<RouteStrategy>,
    /// How many further candidates are tried when the primary fails.
    #[schemars(extend("default" = 1))]
    pub fallbacks: Option<u32>,
    /// `weighted`: traffic share per candidate id.
    pub split: Option<BTreeMap<String, f64>>,
    /// `cheapest`: the least predicted quality (0 to 1) a candidate must have.
    pub quality_threshold: Option<f64>,
}

/// Retries of one candidate.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Attempts per candidate, the first included.
    #[schemars(extend("default" = 2))]
    pub max_attempts: Option<u32>,
    /// First back-off (a `Retry-After` from the provider wins when longer).
    #[schemars(extend("default" = "250ms"))]
    pub initial_backoff: Option<HumanDuration>,
    /// Longest back-off.
    #[schemars(extend("default" = "5s"))]
    pub max_backoff: Option<HumanDuration>,
}

/// When an endpoint is taken out of rotation.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreakerSpec {
    /// Consecutive failures that open the circuit.
    #[schemars(extend("default" = 5))]
    pub consecutive_failures: Option<u32>,
    /// Error rate (0 to 1) over the last minute that opens the circuit (once at least 10 calls
    /// were made in that minute).
    #[schemars(extend("default" = 0.5))]
    pub error_rate: Option<f64>,
    /// How long an open circuit waits before letting one trial call through.
    #[schemars(extend("default" = "30s"))]
    pub cooldown: Option<HumanDuration>,
}

/// Time limits of one model call.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelTimeoutsSpec {
    /// The whole request.
    #[schemars(extend("default" = "120s"))]
    pub request: Option<HumanDuration>,
    /// Until the first token of a streamed response.
    #[schemars(extend("default" = "30s"))]
    pub first_token: Option<HumanDuration>,
}

/// Validated score weights (defaults filled in; not all zero).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoutingWeights {
    /// Weight of performance.
    pub performance: f64,
    /// Weight of cost.
    pub cost: f64,
    /// Weight of availability.
    pub availability: f64,
}

/// A validated alias.
#[derive(Debug, Clone, PartialEq)]
pub struct AliasConfig {
    /// The name clients ask for.
    pub name: String,
    /// Candidate model ids that exist in the registry, in the order written.
    pub candidates: Vec<String>,
    /// How the primary is chosen.
    pub strategy: RouteStrategy,
    /// Further candidates tried when the primary fails.
    pub fallbacks: u32,
    /// `weighted`: share per candidate (candidates not listed get 0).
    pub split: Vec<(String, f64)>,
    /// `cheapest`: least quality accepted.
    pub quality_threshold: Option<f64>,
}

/// Validated retry settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryConfig {
    /// Attempts per candidate, the first included (≥ 1).
    pub max_attempts: u32,
    /// First back-off.
    pub initial_backoff: Duration,
    /// Longest back-off; a `Retry-After` longer than this moves on to the next candidate.
    pub max_backoff: Duration,
}

/// Validated circuit-breaker settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CircuitBreakerConfig {
    /// Consecutive failures that open the circuit (≥ 1).
    pub consecutive_failures: u32,
    /// Failure rate over the last minute that opens it.
    pub error_rate: f64,
    /// Time an open circuit waits before one trial call.
    pub cooldown: Duration,
}

/// Validated time limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelTimeouts {
    /// One attempt, start to end (a whole stream included).
    pub request: Duration,
    /// Streams: until the response headers and the first event.
    pub first_token: Duration,
}

/// The validated `routing` section.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingConfig {
    /// Score weights.
    pub weights: RoutingWeights,
    /// Aliases, by name.
    pub aliases: Vec<AliasConfig>,
    /// Retries.
    pub retry: RetryConfig,
    /// Circuit breaker.
    pub circuit_breaker: CircuitBreakerConfig,
    /// Time limits.
    pub timeouts: ModelTimeouts,
    /// Required residency regions (lower-cased; empty: none required).
    pub data_residency: Vec<String>,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            weights: RoutingWeights {
                performance: 0.4,
                cost: 0.3,
                availability: 0.3,
            },
            aliases: Vec::new(),
            retry: RetryConfig {
                max_attempts: 2,
                initial_backoff: Duration::from_millis(250),
                max_backoff: Duration::from_secs(5),
            },
            circuit_breaker: CircuitBreakerConfig {
                consecutive_failures: 5,
                error_rate: 0.5,
                cooldown: Duration::from_secs(30),
            },
            timeouts: ModelTimeouts {
                request: Duration::from_secs(120),
                first_token: Duration::from_secs(30),
            },
            data_residency: Vec::new(),
        }
    }
}

impl RoutingSpec {
    /// Validates the section against the registry and fills in defaults. An alias candidate
    /// that is not a model id is reported as a notice and left out (the alias routes among the
    /// others); an alias name that is also a model id is an error.
    pub(crate) fn lower(
        self,
        at: &str,
        models: &[ModelConfig],
        notices: &mut Vec<Notice>,
    ) -> Result<RoutingConfig, ConfigError> {
        self.validate(at)?;
        let d = RoutingConfig::default();
        let weights = match &self.weights {
            None => d.weights,
            Some(w) => RoutingWeights {
                performance: w.performance.unwrap_or(d.weights.performance),
                cost: w.cost.unwrap_or(d.weights.cost),
                availability: w.availability.unwrap_or(d.weights.availability),
            },
        };
        if weights.performance + weights.cost + weights.availability <= 0.0 {
            return Err(ConfigError::invalid(
                field(at, "weights"),
                "at least one weight must be above 0",
            ));
        }
        let mut aliases = Vec::new();
        for (name, a) in self.aliases.unwrap_or_default() {
            let a_at = field(&field(at, "aliases"), &name);
            if models.iter().any(|m| m.id == name) {
                return Err(ConfigError::invalid(
                    a_at,
                    format!("{name:?} is already a model id; an alias needs its own name"),
                ));
            }
            let mut candidates = Vec::new();
            for (i, c) in a.candidates.iter().enumerate() {
                if !models.iter().any(|m| &m.id == c) {
                    notices.push(Notice {
                        path: index(&field(&a_at, "candidates"), i),
                        message: format!(
                            "{c:?} is not a model id in `models`; the alias ignores it"
                        ),
                    });
                } else if !candidates.contains(c) {
                    candidates.push(c.clone());
                }
            }
            if candidates.is_empty() {
                notices.push(Notice {
                    path: field(&a_at, "candidates"),
                    message: "no candidate is a model in `models`; requests for this alias fail"
                        .into(),
                });
            }
            let strategy = a.strategy.unwrap_or_default();
            aliases.push(AliasConfig {
                name,
                candidates,
                strategy,
                fallbacks: a.fallbacks.unwrap_or(1),
                split: a.split.unwrap_or_default().into_iter().collect(),
                quality_threshold: a.quality_threshold,
            });
        }
        let retry = match &self.retry {
            None => d.retry,
            Some(r) => RetryConfig {
                max_attempts: r.max_attempts.unwrap_or(d.retry.max_attempts),
                initial_backoff: r.initial_backoff.map_or(d.retry.initial_backoff, |x| x.0),
                max_backoff: r.max_backoff.map_or(d.retry.max_backoff, |x| x.0),
            },
        };
        if retry.initial_backoff > retry.max_backoff {
            return Err(ConfigError::invalid(
                field(&field(at, "retry"), "initial_backoff"),
                "must not be longer than max_backoff",
            ));
        }
        let cb = &d.circuit_breaker;
        let circuit_breaker = match &self.circuit_breaker {
            None => *cb,
            Some(c) => CircuitBreakerConfig {
                consecutive_failures: c.consecutive_failures.unwrap_or(cb.consecutive_failures),
                error_rate: c.error_rate.unwrap_or(cb.error_rate),
                cooldown: c.cooldown.map_or(cb.cooldown, |x| x.0),
            },
        };
        if circuit_breaker.consecutive_failures == 0 {
            return Err(ConfigError::invalid(
                field(&field(at, "circuit_breaker"), "consecutive_failures"),
                "must be at least 1",
            ));
        }
        let timeouts = match &self.timeouts {
            None => d.timeouts,
            Some(t) => ModelTimeouts {
                request: t.request.map_or(d.timeouts.request, |x| x.0),
                first_token: t.first_token.map_or(d.timeouts.first_token, |x| x.0),
            },
        };
        for (key, v) in [
            ("request", timeouts.request),
            ("first_token", timeouts.first_token),
        ] {
            if v.is_zero() {
                return Err(ConfigError::invalid(
                    field(&field(at, "timeouts"), key),
                    "must be longer than 0",
                ));
            }
        }
        let mut data_residency = Vec::new();
        for (i, r) in self.data_residency.unwrap_or_default().iter().enumerate() {
            let r = r.trim().to_ascii_lowercase();
            if r.is_empty() {
                return Err(ConfigError::invalid(
                    index(&field(at, "data_residency"), i),
                    "must not be empty",
                ));
            }
            data_residency.push(r);
        }
        Ok(RoutingConfig {
            weights,
            aliases,
            retry,
            circuit_breaker,
            timeouts,
            data_residency,
        })
    }
}

impl RoutingSpec {
    pub(crate) fn validate(&self, at: &str) -> Result<(), ConfigError> {
        if let Some(w) = &self.weights {
            let at = field(at, "weights");
            for (key, v) in [
                ("performance", w.performance),
                ("cost", w.cost),
                ("availability", w.availability),
            ] {
                if let Some(v) = v {
                    non_negative(&field(&at, key), v)?;
                }
            }
        }
        for (name, a) in self.aliases.iter().flatten() {
            let at = field(&field(at, "aliases"), name);
            ident(&at, name)?;
            if a.candidates.is_empty() {
                return Err(ConfigError::invalid(
                    field(&at, "candidates"),
                    "must list at least one model id",
                ));
            }
            for (model, share) in a.split.iter().flatten() {
                let key = field(&field(&at, "split"), model);
                non_negative(&key, *share)?;
                if !a.candidates.contains(model) {
                    return Err(ConfigError::invalid(
                        key,
                        "not one of this alias's candidates",
                    ));
                }
            }
            if let Some(q) = a.quality_threshold {
                fraction(&field(&at, "quality_threshold"), q)?;
            }
            match a.strategy.unwrap_or_default() {
                RouteStrategy::Weighted if a.split.is_none() => {
                    return Err(ConfigError::invalid(
                        field(&at, "split"),
                        "required for strategy weighted: the traffic share of each candidate",
                    ));
                }
                RouteStrategy::Cheapest if a.quality_threshold.is_none() => {
                    return Err(ConfigError::invalid(
                        field(&at, "quality_threshold"),
                        "required for strategy cheapest: the least quality (0 to 1) accepted",
                    ));
                }
                _ => {}
            }
        }
        if let Some(r) = self.circuit_breaker.as_ref().and_then(|c| c.error_rate) {
            fraction(&field(&field(at, "circuit_breaker"), "error_rate"), r)?;
        }
        if self.retry.as_ref().and_then(|r| r.max_attempts) == Some(0) {
            return Err(ConfigError::invalid(
                field(&field(at, "retry"), "max_attempts"),
                "must be at least 1",
            ));
        }
        Ok(())
    }
}
