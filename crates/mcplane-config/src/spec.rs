//! The whole file as written (`ConfigSpec`) and its lowering into [`Config`].

use crate::audit::AuditSpec;
use crate::auth::AuthSpec;
use crate::budget::BudgetSpec;
use crate::cache::CacheSpec;
use crate::error::humanize;
use crate::guardrails::GuardrailsSpec;
use crate::mcp::McpSpec;
use crate::models::ModelSpec;
use crate::policy::PolicySpec;
use crate::routing::RoutingSpec;
use crate::server::ServerSpec;
use crate::store::StoreSpec;
use crate::tenants::TenantsSpec;
use crate::{Config, ConfigError, Loaded, Notice};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The root of `mcplane.yaml`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigSpec {
    /// Listener and edge limits.
    pub server: Option<ServerSpec>,
    /// Persistence (`sqlite://…`, `postgres://…`) and `redis` for replicas.
    pub store: Option<StoreSpec>,
    /// API keys, JWT/OIDC issuers and OAuth resource metadata.
    pub auth: Option<AuthSpec>,
    /// Org → team → project tree, with rate limits per level.
    pub tenants: Option<TenantsSpec>,
    /// The MCP gateway face.
    pub mcp: Option<McpSpec>,
    /// The model registry: the models `/v1/…` serves and the provider endpoints behind them.
    pub models: Option<Vec<ModelSpec>>,
    /// Model routing: score weights, aliases, retries, circuit breaking, time limits.
    pub routing: Option<RoutingSpec>,
    /// Policy rules, evaluated for every operation of both faces.
    pub policies: Option<Vec<PolicySpec>>,
    /// Spending limits per org, team, project or user.
    pub budgets: Option<Vec<BudgetSpec>>,
    /// Exact and semantic caching of model calls. Not active yet.
    pub cache: Option<CacheSpec>,
    /// Guardrails on requests and responses of both faces. Not active yet.
    pub guardrails: Option<GuardrailsSpec>,
    /// The tamper-evident audit trail. Not active yet.
    pub audit: Option<AuditSpec>,
}

/// Sections that are parsed and validated but not acted on by this build. Later features lower
/// them further; until then they are reported as [`Notice`]s.
#[derive(Debug, Clone, Default)]
pub struct PendingSections {
    /// `cache`.
    pub cache: Option<CacheSpec>,
    /// `guardrails`.
    pub guardrails: Option<GuardrailsSpec>,
    /// `audit`.
    pub audit: Option<AuditSpec>,
}

impl ConfigSpec {
    /// Parses YAML, naming the key path of the first error.
    pub fn from_yaml(text: &str) -> Result<ConfigSpec, ConfigError> {
        if text.trim().is_empty() {
            return Ok(ConfigSpec::default());
        }
        let de = serde_yaml_ng::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            let path = if path == "." {
                "(root)".to_string()
            } else {
                path
            };
            // serde_yaml_ng prefixes its own (shorter) path; the full one is in front already.
            // It also appends " at line L column C"; keep that, it helps find the key.
            let message = match message.split_once(": ") {
                Some((prefix, rest)) if path.starts_with(prefix) => rest.to_string(),
                _ => message,
            };
            ConfigError::invalid(path, humanize(&message))
        })
    }

    pub(crate) fn lower(self) -> Result<Loaded, ConfigError> {
        let ConfigSpec {
            server,
            store,
            auth,
            tenants,
            mcp,
            models,
            routing,
            policies,
            budgets,
            cache,
            guardrails,
            audit,
        } = self;
        let server = server.unwrap_or_default().lower()?;
        let mcp = mcp.unwrap_or_default().lower()?;
        let mut notices = Vec::new();
        let models = match models {
            Some(m) => ModelSpec::lower_all(m, "models", &mut notices)?,
            None => Vec::new(),
        };
        let routing = routing
            .unwrap_or_default()
            .lower("routing", &models, &mut notices)?;

        if let Some(a) = &auth {
            a.validate("auth")?;
        }
        if let Some(t) = &tenants {
            t.validate("tenants")?;
        }
        if let Some(p) = &policies {
            PolicySpec::validate_all(p, "policies")?;
        }
        if let Some(b) = &budgets {
            BudgetSpec::validate_all(b, "budgets")?;
        }
        if let Some(c) = &cache {
            c.validate("cache")?;
        }
        if let Some(g) = &guardrails {
            g.validate("guardrails")?;
        }
        if let Some(a) = &audit {
            a.validate("audit")?;
        }
        let mut inactive_notices = Vec::new();
        let inactive = [
            ("cache", cache.is_some(), "caching"),
            ("guardrails", guardrails.is_some(), "guardrails"),
            ("audit", audit.is_some(), "the audit trail"),
        ];
        for (key, present, what) in inactive {
            if present {
                inactive_notices.push(Notice {
                    path: key.into(),
                    message: format!(
                        "accepted but not active yet: this build of mcplane does not implement {what}"
                    ),
                });
            }
        }
        for (i, b) in budgets.iter().flatten().enumerate() {
            if b.alert_webhook.is_some() {
                inactive_notices.push(Notice {
                    path: format!("budgets[{i}].alert_webhook"),
                    message: "accepted but not active yet: budget alerts are logged (target \
                              mcplane::budget); webhooks come with the audit issue"
                        .into(),
                });
            }
        }
        notices.splice(0..0, inactive_notices);
        for vs in &mcp.virtual_servers {
            for ((server, item), _) in vs.overrides.iter() {
                if !vs.shows(server, item) {
                    notices.push(Notice {
                        path: format!("mcp.virtual_servers.{}.overrides.{server}/{item}", vs.name),
                        message: "has no effect: include/exclude hide this item".into(),
                    });
                }
            }
        }
        let config = Config {
            server,
            mcp,
            models,
            routing,
            store: store.unwrap_or_default().lower("store")?,
            auth,
            tenants,
            policies: policies.unwrap_or_default(),
            budgets: budgets.unwrap_or_default(),
            pending: PendingSections {
                cache,
                guardrails,
                audit,
            },
        };
        Ok(Loaded { config, notices })
    }
}
