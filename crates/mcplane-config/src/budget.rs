//! The `budgets` section: spending limits per org, team, project or user, per day, per month or
//! per custom window, with alert thresholds and what happens at the limit.

use crate::validate::{field, http_url, ident, index, non_negative};
use crate::{ConfigError, HumanDuration};
use schemars::JsonSchema;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// The levels of the tenant tree a budget can apply to.
pub const SCOPE_KINDS: [&str; 4] = ["org", "team", "project", "user"];

/// One entry of `budgets:`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetSpec {
    /// Who is charged: `org:ID`, `team:ID`, `project:ID` or `user:ID`.
    pub scope: String,
    /// Limit per calendar day (UTC), in US dollars.
    pub daily_usd: Option<f64>,
    /// Limit per calendar month (UTC), in US dollars.
    pub monthly_usd: Option<f64>,
    /// Further fixed windows (aligned to the Unix epoch) with their own limits.
    pub windows: Option<Vec<BudgetWindowSpec>>,
    /// Share(s) of a limit (0 to 1) at which an alert fires, once per window each.
    pub alert_at: Option<AlertAt>,
    /// What happens to a request that would exceed the limit.
    #[schemars(extend("default" = "deny"))]
    pub on_limit: Option<OnLimit>,
    /// `on_limit: degrade`: the (cheaper) model id or alias used instead.
    pub degrade_to: Option<String>,
    /// URL that alerts are POSTed to (besides the log, metrics and audit trail).
    pub alert_webhook: Option<String>,
}

/// A custom budget window.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetWindowSpec {
    /// Window length, e.g. `1h` or `7d` (fixed windows aligned to the Unix epoch).
    pub every: HumanDuration,
    /// Limit per window, in US dollars.
    pub usd: f64,
}

/// What a budget does at its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnLimit {
    /// Refuse the request with an error naming the budget.
    #[default]
    Deny,
    /// Serve it with `degrade_to` instead.
    Degrade,
}

/// Alert thresholds: one share (`0.8`) or several (`[0.5, 0.8, 0.95]`).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum AlertAt {
    /// One threshold.
    One(f64),
    /// Several thresholds.
    Many(Vec<f64>),
}

impl AlertAt {
    /// The thresholds, in the order written.
    pub fn thresholds(&self) -> &[f64] {
        match self {
            AlertAt::One(v) => std::slice::from_ref(v),
            AlertAt::Many(v) => v,
        }
    }
}

impl<'de> Deserialize<'de> for AlertAt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AlertAt;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number from 0 to 1 or a list of them")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<AlertAt, E> {
                Ok(AlertAt::One(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<AlertAt, E> {
                Ok(AlertAt::One(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<AlertAt, E> {
                Ok(AlertAt::One(v as f64))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, s: A) -> Result<AlertAt, A::Error> {
                Vec::<f64>::deserialize(de::value::SeqAccessDeserializer::new(s)).map(AlertAt::Many)
            }
        }
        d.deserialize_any(V)
    }
}

impl BudgetSpec {
    pub(crate) fn validate_all(budgets: &[BudgetSpec], at: &str) -> Result<(), ConfigError> {
        let mut scopes = BTreeSet::new();
        for (i, b) in budgets.iter().enumerate() {
            let at = index(at, i);
            let scope_at = field(&at, "scope");
            let Some((kind, id)) = b.scope.split_once(':') else {
                return Err(ConfigError::invalid(
                    scope_at,
                    format!(
                        "{:?} is not a scope; expected KIND:ID with KIND one of {}",
                        b.scope,
                        SCOPE_KINDS.join(", ")
                    ),
                ));
            };
            if !SCOPE_KINDS.contains(&kind) {
                return Err(ConfigError::invalid(
                    scope_at,
                    format!(
                        "unknown scope kind {kind:?}; expected one of {}",
                        SCOPE_KINDS.join(", ")
                    ),
                ));
            }
            ident(&scope_at, id)?;
            if !scopes.insert(b.scope.as_str()) {
                return Err(ConfigError::invalid(
                    scope_at,
                    format!(
                        "duplicate budget for {:?}; put its limits in one entry",
                        b.scope
                    ),
                ));
            }
            for (key, v) in [("daily_usd", b.daily_usd), ("monthly_usd", b.monthly_usd)] {
                if let Some(v) = v {
                    non_negative(&field(&at, key), v)?;
                }
            }
            for (j, w) in b.windows.iter().flatten().enumerate() {
                let at = index(&field(&at, "windows"), j);
                non_negative(&field(&at, "usd"), w.usd)?;
                if w.every.0.is_zero() {
                    return Err(ConfigError::invalid(
                        field(&at, "every"),
                        "must be longer than 0s",
                    ));
                }
            }
            if b.daily_usd.is_none() && b.monthly_usd.is_none() && b.windows.is_none() {
                return Err(ConfigError::invalid(
                    at,
                    "sets no limit; add daily_usd, monthly_usd or windows",
                ));
            }
            if let Some(a) = &b.alert_at {
                let key = field(&at, "alert_at");
                for (j, &t) in a.thresholds().iter().enumerate() {
                    let key = match a {
                        AlertAt::One(_) => key.clone(),
                        AlertAt::Many(_) => index(&key, j),
                    };
                    if !(t.is_finite() && t > 0.0 && t <= 1.0) {
                        return Err(ConfigError::invalid(
                            key,
                            format!("{t} is out of range; expected a share above 0 and at most 1"),
                        ));
                    }
                }
            }
            if b.on_limit == Some(OnLimit::Degrade) && b.degrade_to.is_none() {
                return Err(ConfigError::invalid(
                    field(&at, "degrade_to"),
                    "required for on_limit: degrade: the model id or alias served instead",
                ));
            }
            if let Some(u) = &b.alert_webhook {
                http_url(&field(&at, "alert_webhook"), u)?;
            }
        }
        Ok(())
    }
}
