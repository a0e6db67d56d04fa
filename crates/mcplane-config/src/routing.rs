//! The `routing` section: how the router scores eligible models, the aliases (virtual model
//! names) clients may ask for, and what happens when a call fails.

use crate::validate::{field, fraction, ident, non_negative};
use crate::{ConfigError, HumanDuration};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `routing:` as written. Not active yet.
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
    /// Cheapest candidate whose quality is at least `quality_threshold`.
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
    /// Error rate (0 to 1) over the last minute that opens the circuit.
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
