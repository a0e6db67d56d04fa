//! The whole file as written (`ConfigSpec`) and its lowering into [`Config`].

use crate::mcp::McpSpec;
use crate::server::ServerSpec;
use crate::{Config, ConfigError, Loaded, Notice};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The root of `mcplane.yaml`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigSpec {
    /// Listener and edge limits.
    pub server: Option<ServerSpec>,
    /// Persistence (`sqlite://…`, `postgres://…`) and `redis` for replicas. Not active yet.
    pub store: Option<serde_json::Value>,
    /// API keys and JWT/OIDC issuers. Not active yet.
    pub auth: Option<serde_json::Value>,
    /// Org → team → project tree. Not active yet.
    pub tenants: Option<serde_json::Value>,
    /// The MCP gateway face.
    pub mcp: Option<McpSpec>,
    /// The model registry. Not active yet.
    pub models: Option<serde_json::Value>,
    /// Model routing weights and aliases. Not active yet.
    pub routing: Option<serde_json::Value>,
    /// Policy rules. Not active yet.
    pub policies: Option<serde_json::Value>,
    /// Budgets. Not active yet.
    pub budgets: Option<serde_json::Value>,
    /// Exact and semantic caching. Not active yet.
    pub cache: Option<serde_json::Value>,
    /// Guardrails. Not active yet.
    pub guardrails: Option<serde_json::Value>,
    /// Audit trail. Not active yet.
    pub audit: Option<serde_json::Value>,
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
            let inner = e.into_inner();
            let message = inner.to_string();
            // serde_yaml_ng appends " at line L column C"; keep it, it helps find the key.
            ConfigError::invalid(if path == "." { "(root)".into() } else { path }, message)
        })
    }

    pub(crate) fn lower(self) -> Result<Loaded, ConfigError> {
        let mut notices = Vec::new();
        let inactive = [
            ("store", self.store.is_some(), "persistence"),
            ("auth", self.auth.is_some(), "authentication"),
            ("tenants", self.tenants.is_some(), "tenancy"),
            ("models", self.models.is_some(), "the model registry"),
            ("routing", self.routing.is_some(), "model routing"),
            ("policies", self.policies.is_some(), "policy"),
            ("budgets", self.budgets.is_some(), "budgets"),
            ("cache", self.cache.is_some(), "caching"),
            ("guardrails", self.guardrails.is_some(), "guardrails"),
            ("audit", self.audit.is_some(), "the audit trail"),
        ];
        for (key, present, what) in inactive {
            if present {
                notices.push(Notice {
                    path: key.into(),
                    message: format!(
                        "accepted but not active yet: this build of mcplane does not implement {what}"
                    ),
                });
            }
        }
        let mcp_spec = self.mcp.unwrap_or_default();
        if mcp_spec.virtual_servers.is_some() {
            notices.push(Notice {
                path: "mcp.virtual_servers".into(),
                message:
                    "accepted but not active yet: virtual servers are not implemented in this build"
                        .into(),
            });
        }
        let config = Config {
            server: self.server.unwrap_or_default().lower()?,
            mcp: mcp_spec.lower()?,
        };
        Ok(Loaded { config, notices })
    }
}
