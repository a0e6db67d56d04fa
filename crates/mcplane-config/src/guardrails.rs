//! The `guardrails` section: argument validation, content detectors (prompt injection, secrets,
//! PII), tool pinning, human approval, egress and sandboxing of upstreams.

use crate::validate::{field, fraction, http_url, index, non_empty};
use crate::{ConfigError, HumanDuration, SecretString};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `guardrails:` as written. Not active yet.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GuardrailsSpec {
    /// Prompt-injection detector (patterns, heuristics, invisible characters).
    #[schemars(extend("default" = "block"))]
    pub injection: Option<DetectorAction>,
    /// Secret detector (cloud keys, tokens, JWTs, private keys, connection strings).
    #[schemars(extend("default" = "redact"))]
    pub secrets: Option<DetectorAction>,
    /// PII detector (email, phone, SSN, credit cards, IBAN).
    #[schemars(extend("default" = "warn"))]
    pub pii: Option<DetectorAction>,
    /// Deepest nesting of JSON arguments accepted.
    #[schemars(extend("default" = 32))]
    pub max_depth: Option<u32>,
    /// Longest string in arguments, in characters.
    #[schemars(extend("default" = 100000))]
    pub max_string: Option<u64>,
    /// Longest array in arguments.
    #[schemars(extend("default" = 10000))]
    pub max_array: Option<u64>,
    /// Validate tool arguments against the tool's `inputSchema`.
    #[schemars(extend("default" = true))]
    pub validate_arguments: Option<bool>,
    /// Replace upstream error details with a generic message toward clients.
    #[schemars(extend("default" = true))]
    pub sanitize_errors: Option<bool>,
    /// An external classifier consulted over HTTP.
    pub classifier: Option<ClassifierSpec>,
    /// Fingerprinting of tool, prompt and resource definitions; changes are quarantined.
    pub tool_pinning: Option<ToolPinningSpec>,
    /// Human approval of parked operations (policy action `require_approval`).
    pub approvals: Option<ApprovalsSpec>,
    /// Which outbound addresses mcplane may connect to.
    pub egress: Option<EgressSpec>,
    /// Limits and sandboxing of stdio upstream processes.
    pub sandbox: Option<SandboxSpec>,
}

/// What a detector does with a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DetectorAction {
    /// Refuse the request or response.
    Block,
    /// Replace the finding with a placeholder and go on.
    Redact,
    /// Record the finding (log, metric, audit) and go on.
    Warn,
    /// Do not run the detector.
    Off,
}

/// What happens when the external classifier fails or times out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClassifierFailMode {
    /// Treat the content as flagged.
    #[default]
    Block,
    /// Treat the content as clean.
    Allow,
}

/// An external content classifier.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassifierSpec {
    /// Endpoint receiving the content.
    pub url: String,
    /// Bearer token sent to it.
    pub api_key: Option<SecretString>,
    /// Longest wait for a verdict.
    #[schemars(extend("default" = "2s"))]
    pub timeout: Option<HumanDuration>,
    /// What a failure or timeout means.
    #[schemars(extend("default" = "block"))]
    pub on_error: Option<ClassifierFailMode>,
    /// What a flagged verdict does.
    #[schemars(extend("default" = "block"))]
    pub action: Option<DetectorAction>,
}

/// Tool pinning (rug-pull and poisoning protection).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolPinningSpec {
    /// Fingerprint definitions and quarantine changed ones until approved.
    #[schemars(extend("default" = true))]
    pub enabled: Option<bool>,
    /// Poisoning risk score (0 to 1) above which a new definition starts quarantined.
    #[schemars(extend("default" = 0.7))]
    pub quarantine_above: Option<f64>,
}

/// Human approvals.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalsSpec {
    /// How long a parked operation waits before it is denied.
    #[schemars(extend("default" = "10m"))]
    pub timeout: Option<HumanDuration>,
    /// Ask the user through MCP elicitation when the client supports it.
    #[schemars(extend("default" = true))]
    pub elicitation: Option<bool>,
}

/// The egress guard for every outbound URL.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EgressSpec {
    /// Allow private, loopback and link-local addresses (never the cloud metadata address).
    #[schemars(extend("default" = false))]
    pub allow_private: Option<bool>,
    /// Hosts or CIDR ranges allowed even though private (e.g. `10.0.0.0/8`, `vllm.internal`).
    pub allow: Option<Vec<String>>,
}

/// Whether stdio upstreams run in a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SandboxMode {
    /// No sandbox, resource limits only.
    Off,
    /// Sandbox where the host supports it (bubblewrap, Landlock).
    #[default]
    Auto,
    /// Refuse to start a stdio upstream without a sandbox.
    Required,
}

/// Limits and sandboxing of stdio upstreams.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxSpec {
    /// Sandbox mode.
    #[schemars(extend("default" = "auto"))]
    pub mode: Option<SandboxMode>,
    /// Address-space limit per process, in MiB.
    pub memory_mb: Option<u64>,
    /// CPU time limit per process, in seconds.
    pub cpu_seconds: Option<u64>,
    /// Open files per process.
    pub open_files: Option<u64>,
    /// Processes (and threads) per upstream.
    pub processes: Option<u64>,
    /// Paths the process may read (besides its command and libraries).
    pub read_paths: Option<Vec<String>>,
    /// Paths the process may write.
    pub write_paths: Option<Vec<String>>,
}

impl GuardrailsSpec {
    pub(crate) fn validate(&self, at: &str) -> Result<(), ConfigError> {
        if self.max_depth == Some(0) {
            return Err(ConfigError::invalid(
                field(at, "max_depth"),
                "must be at least 1",
            ));
        }
        if let Some(c) = &self.classifier {
            http_url(&field(&field(at, "classifier"), "url"), &c.url)?;
        }
        if let Some(q) = self.tool_pinning.as_ref().and_then(|p| p.quarantine_above) {
            fraction(&field(&field(at, "tool_pinning"), "quarantine_above"), q)?;
        }
        for (i, a) in self
            .egress
            .iter()
            .flat_map(|e| e.allow.iter().flatten())
            .enumerate()
        {
            non_empty(&index(&field(&field(at, "egress"), "allow"), i), a)?;
        }
        Ok(())
    }
}
