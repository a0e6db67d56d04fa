//! Policy: rules with a CEL condition over `principal`, `operation`, `request` and `now`, and the
//! actions taken when it holds. One [`PolicySet`] decides for both faces, and for lists too: a
//! list shows an item only when calling it would be allowed, so a caller never sees a tool or
//! model it cannot use.
//!
//! How a [`Decision`] is made, rule by rule in configuration order (disabled rules skipped):
//! - A rule *applies* when its `when` holds (a rule without `when` always applies).
//! - **Effect**: the first applying rule that says `allow` or `deny` decides; when none does the
//!   operation is allowed. So an early `allow` can exempt callers from later `deny` rules, and a
//!   last rule `then: deny` makes the set an allow-list.
//! - **Obligations** come from every applying rule, whatever its position: `require_approval`
//!   (any), `route_to` (the first that sets it), `redact` (all), `log` (the most detailed),
//!   `shadow` (the first).
//! - **Errors deny.** A condition that fails to evaluate (a type error, an unknown function, a
//!   result that is not a boolean) denies the operation, naming the rule. A condition that reads
//!   an attribute the operation does not have (`operation.tool` of a model call, a header not
//!   sent) does not hold: test with `has(…)` when that matters.
//!
//! What conditions see: `principal` (`id`, `kind`, `org`, `team`, `project`, `roles`,
//! `attributes`, `auth`), `operation` ([`Operation::to_json`]: `kind`, `face`, `server`, `tool`
//! with `annotations`, `arguments`, `model`, `estimated_tokens`, `estimated_cost_usd`, …),
//! `request` (`data_classification`, `environment`, `headers` the operator lets through) and
//! `now` (a timestamp).

use cel::{Context, ExecutionError, Program};
use mcplane_config::{LogDetail, PolicyAction, PolicySpec, PolicyThen};
use mcplane_types::{Operation, Principal};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// A policy that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PolicyError {
    /// A `when` condition is not valid CEL.
    #[error("{path}: not a valid CEL expression: {message}")]
    Compile {
        /// Key path of the condition (`policies[2].when`).
        path: String,
        /// What the parser said.
        message: String,
    },
}

/// Request attributes a condition may read as `request`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RequestAttributes {
    /// How sensitive the request's data is (`pii`, `public`, …), when known.
    pub data_classification: Option<String>,
    /// The deployment environment (`dev`, `prod`, …), when known.
    pub environment: Option<String>,
    /// Request headers the operator exposes to policy (lowercased names).
    pub headers: BTreeMap<String, String>,
}

/// What the rules decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Go ahead.
    Allow,
    /// Refuse, saying why.
    Deny {
        /// The deciding rule.
        rule: String,
        /// Why, for the caller.
        reason: String,
    },
}

/// The outcome of [`PolicySet::decide`].
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Allow or deny.
    pub effect: Effect,
    /// The rule that decided the effect (`None`: no rule said allow or deny; allowed).
    pub decided_by: Option<String>,
    /// The rules that applied, in order.
    pub matched: Vec<String>,
    /// The rule that requires human approval first, if any.
    pub approval: Option<String>,
    /// Model ids or aliases a model call is restricted to.
    pub route_to: Option<Vec<String>>,
    /// Detectors whose findings are redacted.
    pub redact: BTreeSet<String>,
    /// How much the audit trail records, if a rule says.
    pub log: Option<LogDetail>,
    /// (target, percent) of shadow traffic.
    pub shadow: Option<(String, f64)>,
}

impl Decision {
    fn allow() -> Decision {
        Decision {
            effect: Effect::Allow,
            decided_by: None,
            matched: Vec::new(),
            approval: None,
            route_to: None,
            redact: BTreeSet::new(),
            log: None,
            shadow: None,
        }
    }

    /// A decision denying by `rule` for `reason`.
    pub fn deny(rule: &str, reason: String) -> Decision {
        let mut d = Decision::allow();
        d.decided_by = Some(rule.to_string());
        d.effect = Effect::Deny {
            rule: rule.to_string(),
            reason,
        };
        d
    }

    /// Whether the operation may go ahead (possibly after approval).
    pub fn allowed(&self) -> bool {
        self.effect == Effect::Allow
    }
}

/// One rule, compiled.
struct Rule {
    name: String,
    when: Option<Program>,
    effect: Option<bool>,
    reason: Option<String>,
    approval: bool,
    route_to: Option<Vec<String>>,
    redact: Vec<String>,
    log: Option<LogDetail>,
    shadow: Option<(String, f64)>,
}

/// The compiled `policies:`.
#[derive(Default)]
pub struct PolicySet {
    rules: Vec<Rule>,
}

impl std::fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySet")
            .field(
                "rules",
                &self.rules.iter().map(|r| &r.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn detail_rank(d: LogDetail) -> u8 {
    match d {
        LogDetail::Minimal => 0,
        LogDetail::Metadata => 1,
        LogDetail::Full => 2,
    }
}

impl PolicySet {
    /// Compiles the rules (`at` is their key path, `policies`); a condition that does not parse
    /// is an error naming its key path.
    pub fn compile(specs: &[PolicySpec], at: &str) -> Result<PolicySet, PolicyError> {
        let mut rules = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            if spec.enabled == Some(false) {
                continue;
            }
            let when = match &spec.when {
                Some(source) => {
                    Some(Program::compile(source).map_err(|e| PolicyError::Compile {
                        path: format!("{at}[{i}].when"),
                        message: e.to_string(),
                    })?)
                }
                None => None,
            };
            let mut rule = Rule {
                name: spec.name.clone(),
                when,
                effect: None,
                reason: None,
                approval: false,
                route_to: None,
                redact: Vec::new(),
                log: None,
                shadow: None,
            };
            match &spec.then {
                PolicyThen::Action(PolicyAction::Allow) => rule.effect = Some(true),
                PolicyThen::Action(PolicyAction::Deny) => rule.effect = Some(false),
                PolicyThen::Action(PolicyAction::RequireApproval) => rule.approval = true,
                PolicyThen::Actions(a) => {
                    if a.deny == Some(true) {
                        rule.effect = Some(false);
                    } else if a.allow == Some(true) {
                        rule.effect = Some(true);
                    }
                    rule.reason = a.reason.clone();
                    rule.approval = a.require_approval == Some(true);
                    rule.route_to = a.route_to.clone();
                    rule.redact = a.redact.clone().unwrap_or_default();
                    rule.log = a.log;
                    rule.shadow = a.shadow.as_ref().map(|s| (s.to.clone(), s.percent));
                }
            }
            rules.push(rule);
        }
        Ok(PolicySet { rules })
    }

    /// Whether there are no rules (everything is allowed, nothing attached).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Decides about `operation` for `principal`.
    pub fn decide(
        &self,
        principal: &Principal,
        operation: &Operation,
        request: &RequestAttributes,
    ) -> Decision {
        let mut decision = Decision::allow();
        if self.rules.is_empty() {
            return decision;
        }
        let context = match self.context(principal, operation, request) {
            Ok(c) => c,
            Err(why) => {
                decision.effect = Effect::Deny {
                    rule: "(policy input)".into(),
                    reason: format!("the request could not be evaluated by policy: {why}"),
                };
                return decision;
            }
        };
        for rule in &self.rules {
            let applies = match &rule.when {
                None => true,
                Some(program) => match program.execute(&context) {
                    Ok(cel::Value::Bool(b)) => b,
                    Ok(other) => {
                        return deny_error(
                            decision,
                            rule,
                            &format!("its condition gave {other:?}, not a boolean"),
                        );
                    }
                    // Reading an attribute this operation does not have: not about it.
                    Err(ExecutionError::NoSuchKey(_)) => false,
                    Err(e) => return deny_error(decision, rule, &e.to_string()),
                },
            };
            if !applies {
                continue;
            }
            decision.matched.push(rule.name.clone());
            if decision.decided_by.is_none()
                && let Some(allow) = rule.effect
            {
                decision.decided_by = Some(rule.name.clone());
                if !allow {
                    decision.effect = Effect::Deny {
                        rule: rule.name.clone(),
                        reason: rule
                            .reason
                            .clone()
                            .unwrap_or_else(|| format!("denied by policy {}", rule.name)),
                    };
                }
            }
            if rule.approval && decision.approval.is_none() {
                decision.approval = Some(rule.name.clone());
            }
            if decision.route_to.is_none() {
                decision.route_to.clone_from(&rule.route_to);
            }
            decision.redact.extend(rule.redact.iter().cloned());
            if let Some(log) = rule.log
                && decision
                    .log
                    .is_none_or(|d| detail_rank(log) > detail_rank(d))
            {
                decision.log = Some(log);
            }
            if decision.shadow.is_none() {
                decision.shadow.clone_from(&rule.shadow);
            }
        }
        decision
    }

    fn context(
        &self,
        principal: &Principal,
        operation: &Operation,
        request: &RequestAttributes,
    ) -> Result<Context<'static, 'static>, String> {
        let mut context = Context::default();
        context.add_variable_from_value("principal", as_cel(principal)?);
        context.add_variable_from_value("operation", as_cel(&operation.to_json())?);
        context.add_variable_from_value("request", as_cel(request)?);
        let now = chrono::Utc::now().fixed_offset();
        context.add_variable_from_value("now", cel::Value::Timestamp(now));
        Ok(context)
    }
}

/// A value as CEL sees it, through its JSON form (optional fields `null`, maps as maps).
fn as_cel<T: Serialize>(value: &T) -> Result<cel::Value, String> {
    let json = serde_json::to_value(value).map_err(|e| e.to_string())?;
    cel::to_value(json).map_err(|e| e.to_string())
}

fn deny_error(mut decision: Decision, rule: &Rule, why: &str) -> Decision {
    tracing::warn!(policy = %rule.name, "policy condition failed; denying: {why}");
    decision.decided_by = Some(rule.name.clone());
    decision.effect = Effect::Deny {
        rule: rule.name.clone(),
        reason: format!(
            "policy {} could not be evaluated, so the operation is denied (fix the rule's condition)",
            rule.name
        ),
    };
    decision
}

/// A JSON rendering of a decision, for `mcplane policy test` and logs.
pub fn decision_json(d: &Decision) -> Value {
    let (effect, reason) = match &d.effect {
        Effect::Allow => ("allow", None),
        Effect::Deny { reason, .. } => ("deny", Some(reason.clone())),
    };
    serde_json::json!({
        "effect": effect,
        "deciding_rule": d.decided_by,
        "reason": reason,
        "matched": d.matched,
        "require_approval": d.approval,
        "route_to": d.route_to,
        "redact": d.redact,
        "log": d.log,
        "shadow": d.shadow.as_ref().map(|(to, pct)| serde_json::json!({"to": to, "percent": pct})),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcplane_types::operation::annotations_with_defaults;
    use mcplane_types::{AuthMethod, MicroUsd, PrincipalKind, Tenancy, ToolRef};
    use serde_json::json;

    fn rules(yaml: &str) -> PolicySet {
        let specs: Vec<PolicySpec> = serde_yaml_ng::from_str(yaml).unwrap();
        PolicySet::compile(&specs, "policies").unwrap()
    }

    fn who(roles: &[&str]) -> Principal {
        Principal {
            id: "ada".into(),
            kind: PrincipalKind::User,
            tenancy: Tenancy {
                org: Some("acme".into()),
                team: Some("payments".into()),
                project: Some("checkout-bot".into()),
            },
            roles: roles.iter().map(|r| r.to_string()).collect(),
            attributes: BTreeMap::new(),
            auth: AuthMethod::Jwt {
                issuer: "https://idp.example/".into(),
            },
        }
    }

    fn tool(name: &str, annotations: Value) -> Operation {
        Operation::CallTool {
            tool: ToolRef {
                server: "files".into(),
                name: name.into(),
                annotations: annotations_with_defaults(Some(&annotations)),
            },
            arguments: json!({"path": "/tmp/x"}),
        }
    }

    fn model(name: &str, cost_micros: i64) -> Operation {
        Operation::ModelCall {
            model: name.into(),
            estimated_tokens: 1000,
            estimated_cost: MicroUsd::from_micros(cost_micros),
        }
    }

    fn env(environment: &str, classification: Option<&str>) -> RequestAttributes {
        RequestAttributes {
            data_classification: classification.map(str::to_string),
            environment: Some(environment.into()),
            headers: BTreeMap::new(),
        }
    }

    #[test]
    fn no_rules_allow_everything() {
        let d =
            PolicySet::default().decide(&who(&[]), &model("m", 1), &RequestAttributes::default());
        assert!(d.allowed());
        assert!(d.matched.is_empty());
    }

    #[test]
    fn the_design_examples_route_pii_and_stop_interns_destroying_things() {
        let set = rules(
            r#"
- name: pii-to-private-models
  when: 'request.data_classification == "pii" && principal.roles.exists(r, r in ["analyst"])'
  then: { route_to: [private-llama], log: full, require_approval: false }
- name: no-destructive-tools-for-interns
  when: 'operation.tool.annotations.destructiveHint && "intern" in principal.roles'
  then: deny
"#,
        );
        let intern = who(&["intern"]);
        // A tool without annotations is destructive by the spec's defaults.
        let d = set.decide(&intern, &tool("rm", json!({})), &env("prod", None));
        assert_eq!(
            d.effect,
            Effect::Deny {
                rule: "no-destructive-tools-for-interns".into(),
                reason: "denied by policy no-destructive-tools-for-interns".into()
            }
        );
        let read_only = tool(
            "cat",
            json!({"readOnlyHint": true, "destructiveHint": false}),
        );
        assert!(
            set.decide(&intern, &read_only, &env("prod", None))
                .allowed()
        );
        // A model call has no `operation.tool`: the tool rule does not apply to it.
        let d = set.decide(&intern, &model("gpt-4o", 10), &env("prod", Some("pii")));
        assert!(d.allowed());
        assert_eq!(d.route_to, None, "interns are not analysts");
        let d = set.decide(
            &who(&["analyst"]),
            &model("gpt-4o", 10),
            &env("prod", Some("pii")),
        );
        assert!(d.allowed());
        assert_eq!(d.route_to, Some(vec!["private-llama".to_string()]));
        assert_eq!(d.log, Some(LogDetail::Full));
        assert_eq!(d.matched, vec!["pii-to-private-models".to_string()]);
    }

    #[test]
    fn the_seed_policies_are_expressible() {
        // The seed's access-control, cost-management and quality-assurance examples.
        let set = rules(
            r#"
- name: pii-sensitive-routing
  when: 'request.data_classification == "pii" && principal.roles.exists(r, r in ["data-scientist", "analyst"])'
  then: { route_to: [privacy-compliant-models], log: full, require_approval: true }
- name: development-budget-limits
  description: in dev, no single model call may be estimated above 5 cents
  when: 'request.environment == "dev" && operation.kind == "model_call" && operation.estimated_cost_usd > 0.05'
  then: { deny: true, reason: "dev calls are limited to $0.05 each; pick a cheaper model" }
- name: production-quality-gates
  when: 'request.environment == "prod" && operation.kind == "model_call"'
  then: { route_to: [quality-85], shadow: { to: candidate-model, percent: 10 } }
"#,
        );
        let ds = who(&["data-scientist"]);
        let d = set.decide(&ds, &model("gpt-4o", 10_000), &env("dev", Some("pii")));
        assert!(d.allowed());
        assert_eq!(d.approval.as_deref(), Some("pii-sensitive-routing"));
        assert_eq!(
            d.route_to,
            Some(vec!["privacy-compliant-models".to_string()])
        );
        let d = set.decide(&ds, &model("gpt-4o", 60_000), &env("dev", None));
        assert_eq!(
            d.effect,
            Effect::Deny {
                rule: "development-budget-limits".into(),
                reason: "dev calls are limited to $0.05 each; pick a cheaper model".into()
            }
        );
        let d = set.decide(&ds, &model("gpt-4o", 60_000), &env("prod", None));
        assert!(d.allowed());
        assert_eq!(d.route_to, Some(vec!["quality-85".to_string()]));
        assert_eq!(d.shadow, Some(("candidate-model".to_string(), 10.0)));
        // Tool calls are not model calls: no gate, no shadow.
        let d = set.decide(&ds, &tool("cat", json!({})), &env("prod", None));
        assert!(d.allowed() && d.shadow.is_none() && d.matched.is_empty());
    }

    #[test]
    fn the_first_deciding_rule_wins_and_a_final_deny_makes_an_allow_list() {
        let set = rules(
            r#"
- name: admins-anything
  when: '"admin" in principal.roles'
  then: allow
- name: log-everything
  then: { log: metadata }
- name: default-deny
  then: { deny: true, reason: "only admins may use this gateway" }
"#,
        );
        let d = set.decide(&who(&["admin"]), &tool("rm", json!({})), &env("prod", None));
        assert!(d.allowed());
        assert_eq!(d.decided_by.as_deref(), Some("admins-anything"));
        assert_eq!(
            d.log,
            Some(LogDetail::Metadata),
            "later obligations still attach"
        );
        let d = set.decide(&who(&["dev"]), &tool("rm", json!({})), &env("prod", None));
        assert!(matches!(d.effect, Effect::Deny { ref rule, .. } if rule == "default-deny"));
        assert_eq!(d.matched, vec!["log-everything", "default-deny"]);
    }

    #[test]
    fn broken_conditions_deny_and_bad_syntax_is_a_config_error() {
        let set = rules(
            r#"
- name: nonsense
  when: 'principal.id + 1 > 2'
  then: allow
"#,
        );
        let d = set.decide(&who(&[]), &model("m", 1), &env("prod", None));
        assert!(matches!(d.effect, Effect::Deny { ref rule, ref reason }
            if rule == "nonsense" && reason.contains("could not be evaluated")));
        let not_bool = rules("- { name: nb, when: '1 + 1', then: allow }");
        assert!(
            !not_bool
                .decide(&who(&[]), &model("m", 1), &env("prod", None))
                .allowed()
        );
        let specs: Vec<PolicySpec> = serde_yaml_ng::from_str(
            "- { name: x, then: allow }\n- { name: bad, when: 'a ==', then: deny }",
        )
        .unwrap();
        let err = PolicySet::compile(&specs, "policies").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("policies[1].when: not a valid CEL expression"),
            "{err}"
        );
    }

    #[test]
    fn disabled_rules_and_time_conditions() {
        let set = rules(
            r#"
- { name: off, then: deny, enabled: false }
- { name: future, when: 'now > timestamp("2999-01-01T00:00:00Z")', then: deny }
- { name: tenant, when: 'principal.org == "acme" && principal.team == "payments"', then: { redact: [pii] } }
"#,
        );
        let d = set.decide(&who(&[]), &model("m", 1), &env("prod", None));
        assert!(d.allowed());
        assert_eq!(d.matched, vec!["tenant"]);
        assert!(d.redact.contains("pii"));
        assert_eq!(decision_json(&d)["effect"], "allow");
    }
}
