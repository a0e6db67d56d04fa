//! The `server` section: where mcplane listens and the limits at its edge.

use crate::{ConfigError, HumanDuration};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

/// `server:` as written in YAML.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    /// Address to listen on (`IP:PORT`); the default is loopback only.
    #[schemars(extend("default" = "127.0.0.1:4000"))]
    pub listen: Option<String>,
    /// Origins allowed to call mcplane from a browser (exact `scheme://host[:port]`). Requests with
    /// an `Origin` header not in this list get 403. Default: loopback origins only.
    pub allowed_origins: Option<Vec<String>>,
    /// Host header values accepted (host or host:port). Default: loopback names only (DNS-rebinding
    /// protection). `"*"` accepts any host.
    pub allowed_hosts: Option<Vec<String>>,
    /// Largest request body accepted, in bytes (413 above).
    #[schemars(extend("default" = 4194304))]
    pub max_body_bytes: Option<usize>,
    /// Largest total size of request headers, in bytes (431 above).
    #[schemars(extend("default" = 16384))]
    pub max_header_bytes: Option<usize>,
    /// How long shutdown waits for in-flight requests before closing.
    #[schemars(extend("default" = "10s"))]
    pub shutdown_grace: Option<HumanDuration>,
    /// How long an idle downstream MCP session lives.
    #[schemars(extend("default" = "30m"))]
    pub session_idle_timeout: Option<HumanDuration>,
}

/// Validated `server` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// Allowed `Origin` values; empty means loopback origins only.
    pub allowed_origins: Vec<String>,
    /// Allowed `Host` values; empty means loopback names only; contains `*` to accept any.
    pub allowed_hosts: Vec<String>,
    /// Body limit in bytes.
    pub max_body_bytes: usize,
    /// Header limit in bytes.
    pub max_header_bytes: usize,
    /// Drain time on shutdown.
    pub shutdown_grace: Duration,
    /// Idle session lifetime.
    pub session_idle_timeout: Duration,
}

impl ServerSpec {
    pub(crate) fn lower(self) -> Result<ServerConfig, ConfigError> {
        let listen_text = self.listen.unwrap_or_else(|| "127.0.0.1:4000".into());
        let listen = listen_text.parse::<SocketAddr>().map_err(|_| {
            ConfigError::invalid(
                "server.listen",
                format!(
                    "{listen_text:?} is not an address; expected IP:PORT such as \"127.0.0.1:4000\""
                ),
            )
        })?;
        for (i, o) in self.allowed_origins.iter().flatten().enumerate() {
            if o != "*" && url::Url::parse(o).map(|u| u.origin().is_tuple()) != Ok(true) {
                return Err(ConfigError::invalid(
                    format!("server.allowed_origins[{i}]"),
                    format!("{o:?} is not an origin; expected scheme://host[:port] or \"*\""),
                ));
            }
        }
        let max_body_bytes = self.max_body_bytes.unwrap_or(4 * 1024 * 1024);
        if max_body_bytes < 1024 {
            return Err(ConfigError::invalid(
                "server.max_body_bytes",
                "must be at least 1024 bytes",
            ));
        }
        let max_header_bytes = self.max_header_bytes.unwrap_or(16 * 1024);
        if max_header_bytes < 1024 {
            return Err(ConfigError::invalid(
                "server.max_header_bytes",
                "must be at least 1024 bytes",
            ));
        }
        Ok(ServerConfig {
            listen,
            allowed_origins: self.allowed_origins.unwrap_or_default(),
            allowed_hosts: self.allowed_hosts.unwrap_or_default(),
            max_body_bytes,
            max_header_bytes,
            shutdown_grace: self.shutdown_grace.map_or(Duration::from_secs(10), |d| d.0),
            session_idle_timeout: self
                .session_idle_timeout
                .map_or(Duration::from_secs(1800), |d| d.0),
        })
    }
}
