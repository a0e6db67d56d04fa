//! mcplane's configuration: one YAML file, typed.
//!
//! The file is read as text, `${ENV}` references are interpolated ([`interpolate`]), the result is
//! deserialized into raw `*Spec` types (every struct denies unknown keys, so a typo is an error
//! that names its key path), then lowered into one validated, immutable [`Config`]. Sections that
//! later features will implement are typed and validated just the same, kept in
//! [`Config::pending`] and reported as [`Notice`]s ("not active yet"), never silently ignored.
//! Secrets (API keys, signing keys, database URLs) are [`SecretString`]s that never print.
//! [`json_schema`] generates `docs/mcplane.schema.json` and [`reference_markdown`]
//! `docs/config-reference.md`; a test keeps both current (`MCPLANE_BLESS=1` rewrites them).

mod audit;
mod auth;
mod budget;
mod cache;
mod duration;
mod error;
mod guardrails;
mod interpolate;
mod mcp;
mod models;
mod policy;
mod reference;
mod routing;
mod secret;
mod server;
mod spec;
mod store;
mod tenants;
mod validate;
mod virtual_server;

pub use audit::{AuditDurability, AuditExportSpec, AuditSpec, CheckpointSpec};
pub use auth::{AuthSpec, ClaimsSpec, JwtAlgorithm, JwtIssuerSpec, OAuthResourceSpec};
pub use budget::{AlertAt, BudgetSpec, BudgetWindowSpec, OnLimit, SCOPE_KINDS};
pub use cache::{CacheBackend, CacheSpec, ExactCacheSpec, SemanticCacheSpec};
pub use duration::HumanDuration;
pub use error::ConfigError;
pub use guardrails::{
    ApprovalsSpec, ClassifierFailMode, ClassifierSpec, DetectorAction, EgressSpec, GuardrailsSpec,
    SandboxMode, SandboxSpec, ToolPinningSpec,
};
pub use interpolate::interpolate;
pub use mcp::{
    FailMode, InputRequiredSpec, McpConfig, McpSpec, NamingConfig, NamingSpec, PrefixMode,
    ProtocolMode, RestartPolicy, RestartSpec, StatelessConfig, Timeouts, TimeoutsSpec, Transport,
    TransportKind, UpstreamConfig, UpstreamSpec,
};
pub use models::{
    Capability, ComplianceSpec, CostSpec, EndpointConfig, EndpointSpec, ModelConfig, ModelSpec,
    PerformanceSpec, Provider,
};
pub use policy::{LogDetail, PolicyAction, PolicyActionsSpec, PolicySpec, PolicyThen, ShadowSpec};
pub use reference::reference_markdown;
pub use routing::{
    AliasConfig, AliasSpec, CircuitBreakerConfig, CircuitBreakerSpec, ModelTimeouts,
    ModelTimeoutsSpec, RetryConfig, RetrySpec, RouteStrategy, RoutingConfig, RoutingSpec,
    RoutingWeights, RoutingWeightsSpec,
};
pub use secret::SecretString;
pub use server::{ServerConfig, ServerSpec};
pub use spec::{ConfigSpec, PendingSections};
pub use store::{DEFAULT_STORE_URL, StoreConfig, StoreSpec};
pub use tenants::{OrgSpec, ProjectDetailsSpec, ProjectSpec, RateLimitSpec, TeamSpec, TenantsSpec};
pub use virtual_server::{
    ItemOverride, ItemOverrideSpec, ItemPattern, VirtualServerConfig, VirtualServerSpec,
};

use std::path::Path;

/// Something worth telling the operator about a valid config (e.g. a section not active yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Key path the notice is about, e.g. `models`.
    pub path: String,
    /// What the operator should know.
    pub message: String,
}

/// The validated, immutable configuration every other crate reads.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listener and edge limits.
    pub server: ServerConfig,
    /// The MCP gateway face.
    pub mcp: McpConfig,
    /// The model registry (empty when `models` is absent).
    pub models: Vec<ModelConfig>,
    /// Model routing (defaults when `routing` is absent).
    pub routing: RoutingConfig,
    /// Where state is kept.
    pub store: StoreConfig,
    /// Authentication (`None`: no `auth:` section, every caller is anonymous).
    pub auth: Option<AuthSpec>,
    /// The tenant tree and its rate limits.
    pub tenants: Option<TenantsSpec>,
    /// Policy rules, in order (validated; conditions are compiled by the policy engine).
    pub policies: Vec<PolicySpec>,
    /// Spending limits.
    pub budgets: Vec<BudgetSpec>,
    /// Sections validated but not active yet (each reported as a [`Notice`]).
    pub pending: PendingSections,
}

/// A loaded config plus what the operator should be told about it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated config.
    pub config: Config,
    /// Sections accepted but not active yet, and similar remarks.
    pub notices: Vec<Notice>,
}

/// Reads, interpolates, parses and validates a config file.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let mut loaded = parse(&text, &|name| std::env::var(name).ok())?;
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        loaded.config.store.resolve_relative_to(dir);
    }
    Ok(loaded)
}

/// Parses config text with a caller-supplied environment (tests pass a map).
pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Loaded, ConfigError> {
    let text = interpolate(text, env)?;
    let spec = spec::ConfigSpec::from_yaml(&text)?;
    spec.lower()
}

/// The JSON Schema of the config file, generated from the spec types.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(ConfigSpec)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn empty_file_gives_defaults() {
        let l = parse("", &no_env).unwrap();
        assert_eq!(l.config.server.listen.to_string(), "127.0.0.1:4000");
        assert!(l.config.mcp.servers.is_empty());
    }

    #[test]
    fn unknown_key_names_its_path() {
        let err = parse(
            "mcp:\n  servers:\n    a: { transport: stdio, command: x, comand: y }\n",
            &no_env,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("mcp.servers.a"), "{text}");
        assert!(text.contains("comand"), "{text}");
    }

    #[test]
    fn missing_command_names_its_path() {
        let err = parse("mcp:\n  servers:\n    a: { transport: stdio }\n", &no_env).unwrap_err();
        assert!(
            err.to_string().starts_with("mcp.servers.a.command:"),
            "{err}"
        );
    }

    #[test]
    fn bad_url_and_listen_are_rejected() {
        let err = parse(
            "mcp:\n  servers:\n    a: { transport: streamable_http, url: 'ftp://x' }\n",
            &no_env,
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("mcp.servers.a.url:"), "{err}");
        let err = parse("server: { listen: nope }\n", &no_env).unwrap_err();
        assert!(err.to_string().starts_with("server.listen:"), "{err}");
    }

    #[test]
    fn inactive_sections_are_reported() {
        let l = parse("models: []\nbudgets: []\ncache: {}\n", &no_env).unwrap();
        let paths: Vec<_> = l.notices.iter().map(|n| n.path.as_str()).collect();
        assert_eq!(paths, ["cache"], "budgets are active");
    }

    #[test]
    fn schema_has_the_top_level_sections() {
        let s = json_schema();
        let props = s["properties"].as_object().unwrap();
        for key in ["server", "mcp", "models", "audit"] {
            assert!(props.contains_key(key), "{key}");
        }
    }
}
