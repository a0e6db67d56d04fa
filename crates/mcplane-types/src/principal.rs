//! Who is calling: a [`Principal`] (user, service account, agent or anonymous), its place in the
//! tenant tree (org → team → project), roles and attributes, and how it proved who it is.
//! Authentication produces one; policy, limits, budgets and audit read it.

use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// What kind of caller a principal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A person.
    User,
    /// A service account (a program calling on its own behalf).
    Service,
    /// An AI agent (its calls are governed like its owner's).
    Agent,
    /// Nobody authenticated (only when `auth.allow_anonymous` is set).
    Anonymous,
}

/// The principal's place in the tenant tree; unset levels are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Tenancy {
    /// The organization.
    pub org: Option<String>,
    /// The team within the org.
    pub team: Option<String>,
    /// The project within the team.
    pub project: Option<String>,
}

/// How the principal authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum AuthMethod {
    /// An mcplane API key (by its public id, never the secret).
    ApiKey {
        /// The key's id.
        key_id: String,
    },
    /// A JWT from a trusted issuer.
    Jwt {
        /// The token's `iss`.
        issuer: String,
    },
    /// No credentials.
    Anonymous,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Principal {
    /// Stable identifier (a JWT subject, a service account name, …).
    pub id: String,
    /// What kind of caller.
    pub kind: PrincipalKind,
    /// Org, team and project.
    #[serde(flatten)]
    pub tenancy: Tenancy,
    /// Roles (from the key or the token's claims).
    pub roles: BTreeSet<String>,
    /// Further attributes (claims an operator maps, key metadata), for policy.
    pub attributes: BTreeMap<String, Value>,
    /// How it authenticated.
    pub auth: AuthMethod,
}

impl Principal {
    /// The anonymous principal (no roles, no tenant).
    pub fn anonymous() -> Principal {
        Principal {
            id: "anonymous".into(),
            kind: PrincipalKind::Anonymous,
            tenancy: Tenancy::default(),
            roles: BTreeSet::new(),
            attributes: BTreeMap::new(),
            auth: AuthMethod::Anonymous,
        }
    }

    /// Whether it holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.contains(role)
    }
}
