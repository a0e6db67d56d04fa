//! The `tenants` section: the org → team → project tree that principals, keys and budgets hang
//! from, with optional rate limits at each level.

use crate::ConfigError;
use crate::validate::{field, ident, index, unique};
use schemars::JsonSchema;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// `tenants:` as written. Not active yet.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantsSpec {
    /// Top-level organisations.
    pub orgs: Option<Vec<OrgSpec>>,
}

/// One organisation.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgSpec {
    /// Unique id (`[A-Za-z0-9_.-]`), used in scopes such as `org:acme`.
    pub id: String,
    /// Display name.
    pub name: Option<String>,
    /// Teams of this org.
    pub teams: Option<Vec<TeamSpec>>,
    /// Rate limits for everything under this org together.
    pub limits: Option<RateLimitSpec>,
}

/// One team.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamSpec {
    /// Unique id, used in scopes such as `team:payments`.
    pub id: String,
    /// Display name.
    pub name: Option<String>,
    /// Projects of this team: ids, or mappings with `id`, `name` and `limits`.
    pub projects: Option<Vec<ProjectSpec>>,
    /// Rate limits for everything under this team together.
    pub limits: Option<RateLimitSpec>,
}

/// One project: written as its id (`checkout-bot`) or as a mapping.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ProjectSpec {
    /// Just the project's id.
    Id(String),
    /// A project with settings.
    Full(ProjectDetailsSpec),
}

/// A project written as a mapping.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectDetailsSpec {
    /// Unique id, used in scopes such as `project:checkout-bot`.
    pub id: String,
    /// Display name.
    pub name: Option<String>,
    /// Rate limits for this project.
    pub limits: Option<RateLimitSpec>,
}

impl ProjectSpec {
    /// The project's id.
    pub fn id(&self) -> &str {
        match self {
            ProjectSpec::Id(id) => id,
            ProjectSpec::Full(p) => &p.id,
        }
    }
}

impl<'de> Deserialize<'de> for ProjectSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ProjectSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a project id or a mapping with `id`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ProjectSpec, E> {
                Ok(ProjectSpec::Id(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<ProjectSpec, A::Error> {
                ProjectDetailsSpec::deserialize(de::value::MapAccessDeserializer::new(m))
                    .map(ProjectSpec::Full)
            }
        }
        d.deserialize_any(V)
    }
}

/// Rate limits at one level of the tenant tree (or for one key).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    /// Requests per minute.
    pub requests_per_minute: Option<u32>,
    /// Model tokens (prompt + completion) per minute.
    pub tokens_per_minute: Option<u64>,
    /// Requests in flight at once.
    pub concurrent: Option<u32>,
}

impl TenantsSpec {
    pub(crate) fn validate(&self, at: &str) -> Result<(), ConfigError> {
        let (mut orgs, mut teams, mut projects) =
            (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for (i, org) in self.orgs.iter().flatten().enumerate() {
            let at = index(&field(at, "orgs"), i);
            ident(&field(&at, "id"), &org.id)?;
            unique(&mut orgs, &field(&at, "id"), &org.id, "org id")?;
            for (j, team) in org.teams.iter().flatten().enumerate() {
                let at = index(&field(&at, "teams"), j);
                ident(&field(&at, "id"), &team.id)?;
                unique(&mut teams, &field(&at, "id"), &team.id, "team id")?;
                for (k, p) in team.projects.iter().flatten().enumerate() {
                    let at = index(&field(&at, "projects"), k);
                    let at = match p {
                        ProjectSpec::Id(_) => at,
                        ProjectSpec::Full(_) => field(&at, "id"),
                    };
                    ident(&at, p.id())?;
                    unique(&mut projects, &at, p.id(), "project id")?;
                }
            }
        }
        Ok(())
    }
}
