//! The `policies` section: rules with a CEL condition (`when`) over `principal`, `operation`,
//! `request` and time, and the actions (`then`) taken when it holds.

use crate::ConfigError;
use crate::validate::{field, index, non_empty, unique};
use schemars::JsonSchema;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// One entry of `policies:`. Not active yet.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// Unique name, shown in decisions, denials and audit events.
    pub name: String,
    /// What the rule is for.
    pub description: Option<String>,
    /// CEL condition over `principal`, `operation`, `request` and `now`. Unset: always applies.
    pub when: Option<String>,
    /// The action: `allow`, `deny` or `require_approval`, or a mapping of actions.
    pub then: PolicyThen,
    /// Set `false` to keep a rule without applying it.
    #[schemars(extend("default" = true))]
    pub enabled: Option<bool>,
}

/// A policy's `then`: one action by name, or a mapping of actions.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum PolicyThen {
    /// A single action.
    Action(PolicyAction),
    /// Several actions together.
    Actions(PolicyActionsSpec),
}

/// An action written by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PolicyAction {
    /// Let the operation through.
    Allow,
    /// Refuse the operation.
    Deny,
    /// Park the operation until a human approves it.
    RequireApproval,
}

/// How much of an operation the audit trail records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogDetail {
    /// Only that the operation happened.
    Minimal,
    /// Metadata (principal, target, outcome, usage), no arguments or content.
    Metadata,
    /// Everything, arguments and content included (after redaction).
    Full,
}

/// A policy's actions written as a mapping.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyActionsSpec {
    /// `true`: allow the operation.
    pub allow: Option<bool>,
    /// `true`: refuse the operation.
    pub deny: Option<bool>,
    /// The reason given to the caller when denied.
    pub reason: Option<String>,
    /// Restrict model calls to these model ids or aliases.
    pub route_to: Option<Vec<String>>,
    /// Park the operation until a human approves it.
    pub require_approval: Option<bool>,
    /// Redact these detectors' findings (e.g. `pii`, `secrets`) in requests and responses.
    pub redact: Option<Vec<String>>,
    /// How much the audit trail records.
    pub log: Option<LogDetail>,
    /// Mirror a share of the traffic to another target.
    pub shadow: Option<ShadowSpec>,
}

/// Shadow traffic: a copy of some operations sent elsewhere, its answer discarded.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShadowSpec {
    /// Model id or alias receiving the copy.
    pub to: String,
    /// Share of matching operations copied, 0 to 100.
    pub percent: f64,
}

impl<'de> Deserialize<'de> for PolicyThen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PolicyThen;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "an action (`allow`, `deny`, `require_approval`) or a mapping of actions",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PolicyThen, E> {
                PolicyAction::deserialize(de::value::StrDeserializer::<E>::new(v))
                    .map(PolicyThen::Action)
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<PolicyThen, A::Error> {
                PolicyActionsSpec::deserialize(de::value::MapAccessDeserializer::new(m))
                    .map(PolicyThen::Actions)
            }
        }
        d.deserialize_any(V)
    }
}

impl PolicySpec {
    pub(crate) fn validate_all(policies: &[PolicySpec], at: &str) -> Result<(), ConfigError> {
        let mut names = BTreeSet::new();
        for (i, p) in policies.iter().enumerate() {
            let at = index(at, i);
            non_empty(&field(&at, "name"), &p.name)?;
            unique(&mut names, &field(&at, "name"), &p.name, "policy name")?;
            if let Some(w) = &p.when {
                non_empty(&field(&at, "when"), w)?;
            }
            if let PolicyThen::Actions(a) = &p.then {
                let at = field(&at, "then");
                if a == &PolicyActionsSpec::default() {
                    return Err(ConfigError::invalid(at, "must set at least one action"));
                }
                if a.allow == Some(true) && a.deny == Some(true) {
                    return Err(ConfigError::invalid(
                        field(&at, "deny"),
                        "a rule cannot both allow and deny",
                    ));
                }
                if a.route_to.as_ref().is_some_and(Vec::is_empty) {
                    return Err(ConfigError::invalid(
                        field(&at, "route_to"),
                        "must list at least one model id or alias",
                    ));
                }
                if let Some(s) = &a.shadow {
                    let at = field(&at, "shadow");
                    non_empty(&field(&at, "to"), &s.to)?;
                    if !(s.percent.is_finite() && (0.0..=100.0).contains(&s.percent)) {
                        return Err(ConfigError::invalid(
                            field(&at, "percent"),
                            format!("{} is out of range; expected 0 to 100", s.percent),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}
