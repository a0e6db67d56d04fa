//! The `mcp` section: upstream MCP servers and how their names are exposed.

use crate::{ConfigError, HumanDuration, VirtualServerConfig, VirtualServerSpec};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

/// How upstream names are prefixed with their server's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PrefixMode {
    /// Always `server__name`.
    #[default]
    Always,
    /// Only names that collide across servers get a prefix.
    WhenNeeded,
    /// Never prefix; a collision is reported (logs, `/readyz`) and the later server's item is hidden.
    Never,
}

/// What a list does when an upstream is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Return what the healthy upstreams give.
    #[default]
    FailOpen,
    /// Fail the whole list with an error naming the failed upstream.
    FailClosed,
}

/// `mcp.naming` as written.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NamingSpec {
    /// How item names are prefixed with their server's name.
    #[schemars(extend("default" = "always"))]
    pub prefix: Option<PrefixMode>,
    /// Between server and item name. Only `[A-Za-z0-9_.-]`.
    #[schemars(extend("default" = "__"))]
    pub delimiter: Option<String>,
    /// Longest exposed name (16 to 64); longer ones are shortened with a stable hash suffix.
    #[schemars(extend("default" = 64))]
    pub max_len: Option<usize>,
}

/// Per-upstream timeouts as written.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsSpec {
    /// Connecting (HTTP) or spawning (stdio).
    #[schemars(extend("default" = "10s"))]
    pub connect: Option<HumanDuration>,
    /// The `initialize` handshake.
    #[schemars(extend("default" = "30s"))]
    pub initialize: Option<HumanDuration>,
    /// Any single request.
    #[schemars(extend("default" = "60s"))]
    pub call: Option<HumanDuration>,
}

/// Restart back-off for stdio servers as written.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestartSpec {
    /// First delay after an exit.
    #[schemars(extend("default" = "500ms"))]
    pub initial_backoff: Option<HumanDuration>,
    /// Longest delay.
    #[schemars(extend("default" = "30s"))]
    pub max_backoff: Option<HumanDuration>,
}

/// One `mcp.servers.<name>` entry as written.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSpec {
    /// How mcplane reaches the server.
    pub transport: TransportKind,
    /// stdio: program to run (no shell; looked up on PATH).
    pub command: Option<String>,
    /// stdio: arguments.
    pub args: Option<Vec<String>>,
    /// stdio: environment variables set for the process.
    pub env: Option<BTreeMap<String, String>>,
    /// stdio: names of mcplane's own environment variables passed through. The environment is
    /// otherwise cleared except `PATH`, `HOME`, `LANG`, `LC_ALL`, `TZ`, `TMPDIR`.
    pub env_passthrough: Option<Vec<String>>,
    /// stdio: working directory.
    pub cwd: Option<PathBuf>,
    /// HTTP transports: the server's URL.
    pub url: Option<String>,
    /// HTTP transports: headers sent with every request (use `${ENV}` for secrets).
    pub headers: Option<BTreeMap<String, String>>,
    /// Longest time mcplane serves this upstream's tools, prompts and resources lists from its
    /// cache. By default lists are cached until the server announces a change (`list_changed`)
    /// or reconnects; set this for a server whose lists change without telling (`0s` = ask it
    /// on every list; concurrent lists still share one request).
    pub list_ttl: Option<HumanDuration>,
    /// Timeouts for this upstream.
    pub timeouts: Option<TimeoutsSpec>,
    /// stdio: restart back-off.
    pub restart: Option<RestartSpec>,
    /// Which protocol era mcplane speaks to this server: `auto` (streamable_http: try the
    /// stateless 2026-07-28 era with `server/discover` and fall back to the `initialize`
    /// handshake when the server does not speak it; stdio and sse: stateful), `stateful`
    /// (always `initialize`, 2024-11-05 … 2025-11-25) or `stateless` (2026-07-28 only;
    /// streamable_http only).
    #[schemars(extend("default" = "auto"))]
    pub protocol: Option<ProtocolMode>,
}

/// Which protocol era mcplane speaks to one upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProtocolMode {
    /// Probe: the stateless era if the server speaks it, else the session-based one.
    #[default]
    Auto,
    /// Session-based (`initialize`, `Mcp-Session-Id`): 2024-11-05 … 2025-11-25.
    Stateful,
    /// Stateless (per-request `_meta`, `server/discover`): 2026-07-28.
    Stateless,
}

/// Transport names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    /// A local subprocess speaking newline-delimited JSON-RPC.
    Stdio,
    /// Streamable HTTP (2025-03-26 and later).
    StreamableHttp,
    /// Legacy HTTP+SSE (2024-11-05).
    Sse,
}

/// `mcp:` as written.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct McpSpec {
    /// How exposed names are formed.
    pub naming: Option<NamingSpec>,
    /// What a list does when an upstream is down.
    #[schemars(extend("default" = "fail_open"))]
    pub on_upstream_failure: Option<FailMode>,
    /// Upstream MCP servers by name (`[A-Za-z0-9_-]`, the name used as prefix).
    pub servers: Option<BTreeMap<String, UpstreamSpec>>,
    /// Curated endpoints at `/mcp/{name}` (`[A-Za-z0-9_-]`): a subset of the upstreams' tools,
    /// prompts and resources, renamed as configured. Reloaded without a restart.
    pub virtual_servers: Option<BTreeMap<String, VirtualServerSpec>>,
    /// Stateless (2026-07-28) clients: how long they may cache `tools/list`, `prompts/list`,
    /// `resources/list`, `resources/templates/list` and `server/discover` (`ttlMs`; `0s` =
    /// re-fetch every time). A `subscriptions/listen` stream tells them of changes sooner.
    #[schemars(extend("default" = "60s"))]
    pub cache_ttl: Option<HumanDuration>,
    /// Stateless (2026-07-28) clients: requests answered `input_required` while an upstream
    /// waits for sampling, elicitation or roots.
    pub input_required: Option<InputRequiredSpec>,
}

/// `mcp.input_required` as written.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InputRequiredSpec {
    /// How long mcplane keeps the upstream call waiting for the client's retry with
    /// `inputResponses`; then the upstream's request fails and the call is cancelled.
    #[schemars(extend("default" = "60s"))]
    pub timeout: Option<HumanDuration>,
    /// Most requests waiting for a retry at once; beyond it new ones fail.
    #[schemars(extend("default" = 1024))]
    pub max_pending: Option<usize>,
}

/// Validated settings for stateless (2026-07-28) clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatelessConfig {
    /// `ttlMs` of lists and `server/discover`.
    pub cache_ttl: Duration,
    /// How long an `input_required` request waits for its retry.
    pub input_timeout: Duration,
    /// Most requests waiting for a retry.
    pub max_pending: usize,
}

impl Default for StatelessConfig {
    fn default() -> Self {
        StatelessConfig {
            cache_ttl: Duration::from_secs(60),
            input_timeout: Duration::from_secs(60),
            max_pending: 1024,
        }
    }
}

/// Validated naming rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamingConfig {
    /// Prefix mode.
    pub prefix: PrefixMode,
    /// Delimiter between server and item.
    pub delimiter: String,
    /// Longest exposed name.
    pub max_len: usize,
}

impl Default for NamingConfig {
    fn default() -> Self {
        NamingConfig {
            prefix: PrefixMode::Always,
            delimiter: "__".into(),
            max_len: 64,
        }
    }
}

/// Validated timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Connect / spawn.
    pub connect: Duration,
    /// Initialize handshake.
    pub initialize: Duration,
    /// One request.
    pub call: Duration,
}

/// Validated restart back-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// First delay.
    pub initial_backoff: Duration,
    /// Longest delay.
    pub max_backoff: Duration,
}

/// How to reach one upstream. Its `Debug` shows header and environment *names* only: their
/// values often carry tokens.
#[derive(Clone, PartialEq, Eq)]
pub enum Transport {
    /// A subprocess.
    Stdio {
        /// Program.
        command: String,
        /// Arguments.
        args: Vec<String>,
        /// Variables set.
        env: BTreeMap<String, String>,
        /// Variables passed through from mcplane's environment.
        env_passthrough: Vec<String>,
        /// Working directory.
        cwd: Option<PathBuf>,
        /// Restart back-off.
        restart: RestartPolicy,
    },
    /// Streamable HTTP.
    StreamableHttp {
        /// Endpoint.
        url: url::Url,
        /// Extra headers.
        headers: BTreeMap<String, String>,
    },
    /// Legacy HTTP+SSE.
    Sse {
        /// The SSE endpoint.
        url: url::Url,
        /// Extra headers.
        headers: BTreeMap<String, String>,
    },
}

/// Keys of a map whose values are secrets, for `Debug`.
struct RedactedMap<'a>(&'a BTreeMap<String, String>);

impl std::fmt::Debug for RedactedMap<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, crate::secret::REDACTED)))
            .finish()
    }
}

/// A URL without its password, for `Debug`.
fn url_for_debug(url: &url::Url) -> String {
    let mut u = url.clone();
    if u.password().is_some() {
        let _ = u.set_password(Some(crate::secret::REDACTED));
    }
    u.to_string()
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Stdio {
                command,
                args,
                env,
                env_passthrough,
                cwd,
                restart,
            } => f
                .debug_struct("Stdio")
                .field("command", command)
                .field("args", args)
                .field("env", &RedactedMap(env))
                .field("env_passthrough", env_passthrough)
                .field("cwd", cwd)
                .field("restart", restart)
                .finish(),
            Transport::StreamableHttp { url, headers } => f
                .debug_struct("StreamableHttp")
                .field("url", &url_for_debug(url))
                .field("headers", &RedactedMap(headers))
                .finish(),
            Transport::Sse { url, headers } => f
                .debug_struct("Sse")
                .field("url", &url_for_debug(url))
                .field("headers", &RedactedMap(headers))
                .finish(),
        }
    }
}

/// One validated upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// Its name (the prefix).
    pub name: String,
    /// How to reach it.
    pub transport: Transport,
    /// Its timeouts.
    pub timeouts: Timeouts,
    /// Which protocol era to speak (`stateless` only with Streamable HTTP).
    pub protocol: ProtocolMode,
    /// Longest a cached list is served (`None`: until a change is announced or it reconnects).
    pub list_ttl: Option<Duration>,
}

/// Validated `mcp` section.
#[derive(Debug, Clone, Default)]
pub struct McpConfig {
    /// Naming rules.
    pub naming: NamingConfig,
    /// List behaviour when an upstream is down.
    pub on_upstream_failure: FailMode,
    /// Upstreams in name order.
    pub servers: Vec<UpstreamConfig>,
    /// Virtual servers in name order.
    pub virtual_servers: Vec<VirtualServerConfig>,
    /// Settings for stateless (2026-07-28) clients.
    pub stateless: StatelessConfig,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn dur(d: &Option<HumanDuration>, default_secs: f64) -> Duration {
    d.map_or(Duration::from_secs_f64(default_secs), |d| d.0)
}

impl McpSpec {
    pub(crate) fn lower(self) -> Result<McpConfig, ConfigError> {
        let naming = self.naming.unwrap_or_default();
        let delimiter = naming.delimiter.unwrap_or_else(|| "__".into());
        if delimiter.is_empty()
            || !delimiter
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(ConfigError::invalid(
                "mcp.naming.delimiter",
                format!("{delimiter:?} is not allowed; expected one or more of [A-Za-z0-9_.-]"),
            ));
        }
        let max_len = naming.max_len.unwrap_or(64);
        if !(16..=64).contains(&max_len) {
            return Err(ConfigError::invalid(
                "mcp.naming.max_len",
                format!("{max_len} is out of range; expected 16..=64"),
            ));
        }
        let mut servers = Vec::new();
        for (name, s) in self.servers.unwrap_or_default() {
            let at = format!("mcp.servers.{name}");
            if !valid_name(&name) {
                return Err(ConfigError::invalid(
                    at,
                    "server names may only use [A-Za-z0-9_-]",
                ));
            }
            servers.push(s.lower(name, &at)?);
        }
        let naming = NamingConfig {
            prefix: naming.prefix.unwrap_or_default(),
            delimiter,
            max_len,
        };
        let names: BTreeSet<&str> = servers.iter().map(|s| s.name.as_str()).collect();
        let mut virtual_servers = Vec::new();
        for (name, vs) in self.virtual_servers.unwrap_or_default() {
            let at = format!("mcp.virtual_servers.{name}");
            if !valid_name(&name) {
                return Err(ConfigError::invalid(
                    at,
                    "virtual server names may only use [A-Za-z0-9_-] (they are URL path segments)",
                ));
            }
            virtual_servers.push(vs.lower(&name, &at, &names, &naming)?);
        }
        let input = self.input_required.unwrap_or_default();
        let defaults = StatelessConfig::default();
        let max_pending = input.max_pending.unwrap_or(defaults.max_pending);
        if max_pending == 0 {
            return Err(ConfigError::invalid(
                "mcp.input_required.max_pending",
                "must be at least 1",
            ));
        }
        let stateless = StatelessConfig {
            cache_ttl: self.cache_ttl.map_or(defaults.cache_ttl, |d| d.0),
            input_timeout: input.timeout.map_or(defaults.input_timeout, |d| d.0),
            max_pending,
        };
        if stateless.input_timeout.is_zero() {
            return Err(ConfigError::invalid(
                "mcp.input_required.timeout",
                "must be longer than 0s",
            ));
        }
        Ok(McpConfig {
            naming,
            on_upstream_failure: self.on_upstream_failure.unwrap_or_default(),
            servers,
            virtual_servers,
            stateless,
        })
    }
}

impl UpstreamSpec {
    fn lower(self, name: String, at: &str) -> Result<UpstreamConfig, ConfigError> {
        let t = self.timeouts.unwrap_or_default();
        let timeouts = Timeouts {
            connect: dur(&t.connect, 10.0),
            initialize: dur(&t.initialize, 30.0),
            call: dur(&t.call, 60.0),
        };
        let only = |key: &str, present: bool, transport: &str| {
            if present {
                Err(ConfigError::invalid(
                    format!("{at}.{key}"),
                    format!("not used by transport {transport}; remove it"),
                ))
            } else {
                Ok(())
            }
        };
        let transport = match self.transport {
            TransportKind::Stdio => {
                only("url", self.url.is_some(), "stdio")?;
                only("headers", self.headers.is_some(), "stdio")?;
                let command = self
                    .command
                    .filter(|c| !c.trim().is_empty())
                    .ok_or_else(|| {
                        ConfigError::invalid(
                            format!("{at}.command"),
                            "required for transport stdio: the program to run (no shell)",
                        )
                    })?;
                let r = self.restart.unwrap_or_default();
                let restart = RestartPolicy {
                    initial_backoff: dur(&r.initial_backoff, 0.5),
                    max_backoff: dur(&r.max_backoff, 30.0),
                };
                if restart.max_backoff < restart.initial_backoff {
                    return Err(ConfigError::invalid(
                        format!("{at}.restart.max_backoff"),
                        "must not be shorter than initial_backoff",
                    ));
                }
                Transport::Stdio {
                    command,
                    args: self.args.unwrap_or_default(),
                    env: self.env.unwrap_or_default(),
                    env_passthrough: self.env_passthrough.unwrap_or_default(),
                    cwd: self.cwd,
                    restart,
                }
            }
            kind @ (TransportKind::StreamableHttp | TransportKind::Sse) => {
                let tname = if kind == TransportKind::Sse {
                    "sse"
                } else {
                    "streamable_http"
                };
                for (key, present) in [
                    ("command", self.command.is_some()),
                    ("args", self.args.is_some()),
                    ("env", self.env.is_some()),
                    ("env_passthrough", self.env_passthrough.is_some()),
                    ("cwd", self.cwd.is_some()),
                    ("restart", self.restart.is_some()),
                ] {
                    only(key, present, tname)?;
                }
                let raw = self.url.ok_or_else(|| {
                    ConfigError::invalid(
                        format!("{at}.url"),
                        format!("required for transport {tname}: the server's http(s) URL"),
                    )
                })?;
                let url = url::Url::parse(&raw)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .ok_or_else(|| {
                        ConfigError::invalid(
                            format!("{at}.url"),
                            "not an http(s) URL; expected e.g. \"http://127.0.0.1:3001/mcp\"",
                        )
                    })?;
                let headers = self.headers.unwrap_or_default();
                if kind == TransportKind::Sse {
                    Transport::Sse { url, headers }
                } else {
                    Transport::StreamableHttp { url, headers }
                }
            }
        };
        let protocol = self.protocol.unwrap_or_default();
        if protocol == ProtocolMode::Stateless
            && !matches!(transport, Transport::StreamableHttp { .. })
        {
            return Err(ConfigError::invalid(
                format!("{at}.protocol"),
                "stateless (2026-07-28) needs transport streamable_http; use auto or stateful",
            ));
        }
        Ok(UpstreamConfig {
            name,
            transport,
            timeouts,
            protocol,
            list_ttl: self.list_ttl.map(|d| d.0),
        })
    }
}
