//! The `audit` section: the tamper-evident audit trail (hash chain, signed checkpoints), its
//! durability, redaction, retention and export.

use crate::validate::{field, index, non_empty, url_with_scheme};
use crate::{ConfigError, HumanDuration, SecretString};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `audit:` as written. Not active yet.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditSpec {
    /// Ed25519 private key (base64 of the 32-byte seed) that signs checkpoints. Write it as
    /// `${ENV}`. Unset: a key is generated and kept in the store.
    pub signing_key: Option<SecretString>,
    /// When a request's audit event must be durable.
    #[schemars(extend("default" = "buffered"))]
    pub durability: Option<AuditDurability>,
    /// `buffered`: events held in memory before requests wait.
    #[schemars(extend("default" = 10000))]
    pub buffer: Option<u32>,
    /// When checkpoints are signed.
    pub checkpoint: Option<CheckpointSpec>,
    /// How long events are kept; only whole signed segments are deleted. Unset: forever.
    pub retention: Option<HumanDuration>,
    /// Argument and header keys whose values are always replaced by `[redacted]`.
    #[schemars(extend("default" = ["password", "token", "secret", "api_key", "authorization"]))]
    pub redact_keys: Option<Vec<String>>,
    /// Arguments larger than this are truncated in events, with the hash of the whole.
    #[schemars(extend("default" = 4096))]
    pub max_argument_bytes: Option<u64>,
    /// Streams of events to other systems.
    pub export: Option<AuditExportSpec>,
}

/// Audit durability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditDurability {
    /// A response is sent only after its event is durable; if the store fails, requests fail
    /// with 503.
    Strict,
    /// Events go through a bounded buffer with backpressure; never silent loss.
    #[default]
    Buffered,
}

/// When checkpoints are signed: whichever comes first.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSpec {
    /// Every this many events.
    #[schemars(extend("default" = 1000))]
    pub every_events: Option<u32>,
    /// At least this often while events arrive.
    #[schemars(extend("default" = "60s"))]
    pub interval: Option<HumanDuration>,
}

/// Audit export.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditExportSpec {
    /// OTLP logs endpoint (`http(s)://…`).
    pub otlp: Option<String>,
    /// Syslog destination (`udp://host:514`, `tcp://host:514`).
    pub syslog: Option<String>,
}

impl AuditSpec {
    pub(crate) fn validate(&self, at: &str) -> Result<(), ConfigError> {
        if let Some(k) = &self.signing_key {
            non_empty(&field(at, "signing_key"), k.expose())?;
        }
        if self.buffer == Some(0) {
            return Err(ConfigError::invalid(
                field(at, "buffer"),
                "must be at least 1",
            ));
        }
        if self.checkpoint.as_ref().and_then(|c| c.every_events) == Some(0) {
            return Err(ConfigError::invalid(
                field(&field(at, "checkpoint"), "every_events"),
                "must be at least 1",
            ));
        }
        for (i, k) in self.redact_keys.iter().flatten().enumerate() {
            non_empty(&index(&field(at, "redact_keys"), i), k)?;
        }
        if let Some(e) = &self.export {
            let at = field(at, "export");
            if let Some(u) = &e.otlp {
                url_with_scheme(&field(&at, "otlp"), u, &["http", "https"])?;
            }
            if let Some(u) = &e.syslog {
                url_with_scheme(&field(&at, "syslog"), u, &["udp", "tcp"])?;
            }
        }
        Ok(())
    }
}
