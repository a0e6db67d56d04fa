//! The governance every request goes through, whichever face: who is calling
//! ([`Authenticator`]), whether it may ([`PolicySet`]) and how often ([`Limits`]). The faces hold
//! one [`Governance`] and ask it the same questions with the same [`Operation`]s, so a rule or a
//! limit written once applies to tools and models alike.

use crate::authn::{Authenticator, JwksSource, KEY_MODELS, KEY_TOOLS, scope_of};
use crate::budgets::Budgets;
use crate::limits::{Admitted, LimitError, Limits};
use crate::policy::{Decision, PolicySet, RequestAttributes};
use mcplane_types::{Operation, Principal};
use std::sync::Arc;

/// Authentication, policy and limits, built from the config by the binary.
#[derive(Debug)]
pub struct Governance {
    /// Credentials → principal.
    pub authn: Authenticator,
    /// `policies:`.
    pub policy: PolicySet,
    /// Rate limits per tenant level.
    pub limits: Limits,
    /// Spending limits.
    pub budgets: Budgets,
}

/// A JWKS source that has nothing (no `jwks_url` issuers configured).
struct NoJwks;

#[async_trait::async_trait]
impl JwksSource for NoJwks {
    async fn fetch(&self, _url: &str) -> Result<String, String> {
        Err("no JWKS source configured".into())
    }
}

impl Governance {
    /// No authentication (everyone is anonymous), no rules, no limits: what mcplane does
    /// without `auth:`, `policies:` and `tenants:` limits.
    pub fn open() -> Governance {
        let counters: Arc<dyn crate::limits::Counters> = Arc::new(NoCounters);
        Governance {
            authn: Authenticator::open(Arc::new(NoJwks)),
            policy: PolicySet::default(),
            limits: Limits::new(None, counters.clone(), false),
            budgets: Budgets::new(&[], counters),
        }
    }

    /// Whether anything could refuse an operation of `principal`: policies, or the scope of the
    /// API key it authenticated with. When not, callers may skip [`Governance::decide`].
    pub fn decides_for(&self, principal: &Principal) -> bool {
        !self.policy.is_empty()
            || principal.attributes.contains_key(KEY_MODELS)
            || principal.attributes.contains_key(KEY_TOOLS)
    }

    /// The decision for `operation`: first the scope of the caller's API key (rule
    /// `api-key-scope`), then the policies.
    pub fn decide(
        &self,
        principal: &Principal,
        operation: &Operation,
        request: &RequestAttributes,
    ) -> Decision {
        let scope = scope_of(principal);
        let outside = match operation {
            Operation::CallTool { tool, .. } => (!scope.allows_tool(&tool.server, &tool.name))
                .then(|| format!("tool {}/{}", tool.server, tool.name)),
            Operation::ModelCall { model, .. } | Operation::Embed { model, .. } => {
                (!scope.allows_model(model)).then(|| format!("model {model}"))
            }
            _ => None,
        };
        if let Some(what) = outside {
            return Decision::deny("api-key-scope", format!("this API key may not use {what}"));
        }
        self.policy.decide(principal, operation, request)
    }

    /// Admits one request under the request-rate and in-flight limits.
    pub async fn admit(&self, principal: &Principal) -> Result<Admitted, LimitError> {
        self.limits.admit(principal).await
    }

    /// Admits a model call's estimated tokens under the token-rate limits.
    pub async fn admit_tokens(
        &self,
        principal: &Principal,
        tokens: u64,
    ) -> Result<Admitted, LimitError> {
        self.limits.admit_tokens(principal, tokens).await
    }
}

/// Counters for a configuration without limits (never asked).
struct NoCounters;

#[async_trait::async_trait]
impl crate::limits::Counters for NoCounters {
    async fn admit(
        &self,
        charges: &[crate::limits::Charge],
    ) -> Result<crate::limits::Admission, crate::limits::CountersError> {
        Ok(crate::limits::Admission::Admitted(
            charges.iter().map(|c| c.amount).collect(),
        ))
    }
    async fn adjust(
        &self,
        _key: &str,
        _window: Option<std::time::Duration>,
        _delta: i64,
    ) -> Result<(), crate::limits::CountersError> {
        Ok(())
    }
    async fn release(&self, _key: &str) -> Result<(), crate::limits::CountersError> {
        Ok(())
    }
}
