//! MCP protocol versions mcplane speaks, their eras, and how one is chosen.
//!
//! Two eras share the wire (see the 2026-07-28 spec, *Versioning and Compatibility*):
//! - **legacy** (2024-11-05 … 2025-11-25): a session opened by `initialize`, which negotiates the
//!   version once ([`negotiate`]);
//! - **modern** (2026-07-28): stateless; every request names its version, capabilities and client in
//!   `params._meta` (the [`meta`] keys), and `server/discover` lists what a server speaks.

use crate::jsonrpc::RpcError;
use serde_json::Value;

/// Stateful-era versions with an `initialize` handshake, newest first.
pub const SUPPORTED_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// The stateless (per-request `_meta`) version mcplane serves.
pub const MODERN: &str = "2026-07-28";

/// Every version mcplane speaks, newest first: what `server/discover` and an
/// `UnsupportedProtocolVersion` error list.
pub const ALL_VERSIONS: [&str; 5] = [
    MODERN,
    "2025-11-25",
    "2025-06-18",
    "2025-03-26",
    "2024-11-05",
];

/// The version offered when a client asks for one mcplane does not know.
pub const LATEST: &str = SUPPORTED_VERSIONS[0];

/// Version assumed for HTTP requests that carry no `MCP-Protocol-Version` header (per spec).
pub const HTTP_DEFAULT: &str = "2025-03-26";

/// The two protocol eras.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// Session-based (`initialize`), 2024-11-05 … 2025-11-25.
    Legacy,
    /// Stateless, per-request `_meta`, 2026-07-28.
    Modern,
}

/// Reserved `_meta` keys of the modern era.
pub mod meta {
    /// Request: the protocol version of this request (required).
    pub const PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
    /// Request: the client's capabilities for this request (required).
    pub const CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
    /// Request: the client's name and version (optional).
    pub const CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
    /// Request: the minimum level of `notifications/message` wanted for this request (optional;
    /// without it the server sends none).
    pub const LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
    /// Result: the server's name and version.
    pub const SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
    /// Notification / result on a `subscriptions/listen` stream: the id of the listen request.
    pub const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
    /// The request-scoped keys above that describe the downstream leg only: mcplane consumes
    /// them and never relays them upstream.
    pub const PER_REQUEST: [&str; 4] = [
        PROTOCOL_VERSION,
        CLIENT_CAPABILITIES,
        CLIENT_INFO,
        LOG_LEVEL,
    ];
    /// mcplane's own hint, on a server→client request (`params._meta`), naming the key it should
    /// get in a 2026-07-28 `inputRequests` map (see the gateway's MRTR bridging). Without it the
    /// key is the request's JSON-RPC id.
    pub const INPUT_KEY: &str = "dev.mcplane/inputKey";
}

/// Whether `v` is a stateful-era version mcplane supports (one `initialize` can negotiate).
pub fn is_supported(v: &str) -> bool {
    SUPPORTED_VERSIONS.contains(&v)
}

/// The era of a version mcplane speaks; `None` for a version it does not know.
pub fn era(v: &str) -> Option<Era> {
    if v == MODERN {
        Some(Era::Modern)
    } else if is_supported(v) {
        Some(Era::Legacy)
    } else {
        None
    }
}

/// Picks the version to answer an `initialize` with: the client's if supported, else the latest.
pub fn negotiate(requested: Option<&str>) -> &'static str {
    requested
        .and_then(|r| SUPPORTED_VERSIONS.iter().find(|v| **v == r).copied())
        .unwrap_or(LATEST)
}

/// Whether JSON-RPC batches are allowed in this version (removed in 2025-06-18).
pub fn allows_batches(v: &str) -> bool {
    v < "2025-06-18"
}

/// Client→server methods of the legacy era that 2026-07-28 removed: a modern request naming one
/// is answered `-32601` (HTTP 404).
pub const REMOVED_IN_MODERN: [&str; 6] = [
    "initialize",
    "notifications/initialized",
    "ping",
    "logging/setLevel",
    "resources/subscribe",
    "resources/unsubscribe",
];

/// Results that carry caching hints (`ttlMs`, `cacheScope`) in 2026-07-28.
pub const CACHEABLE: [&str; 6] = [
    "server/discover",
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
];

/// Requests that may be answered with an `input_required` result (multi round-trip requests).
pub const INPUT_REQUIRED_METHODS: [&str; 3] = ["tools/call", "prompts/get", "resources/read"];

/// A Streamable HTTP header that mirrors a body value (`Mcp-Name`, `Mcp-Param-*`), as the body
/// value: surrounding spaces and tabs removed, and the `=?base64?…?=` sentinel decoded (standard
/// alphabet with padding, UTF-8). A value without both markers is literal.
pub fn decode_header_value(raw: &str) -> Result<String, String> {
    use base64::Engine as _;
    let v = raw.trim_matches(|c| c == ' ' || c == '\t');
    match v
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(encoded) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|_| format!("has invalid Base64 in {v:?}"))?;
            String::from_utf8(bytes).map_err(|_| "is not UTF-8 after Base64 decoding".into())
        }
        None => Ok(v.to_string()),
    }
}

/// A body value as a mirrored header value (`Mcp-Name`, `Mcp-Param-*`), the inverse of
/// [`decode_header_value`]: literal when it is visible ASCII (inner spaces and tabs allowed)
/// without surrounding whitespace and not shaped like the sentinel, else `=?base64?…?=`.
pub fn encode_header_value(v: &str) -> String {
    use base64::Engine as _;
    let visible = v.bytes().all(|b| (0x20..=0x7e).contains(&b) || b == b'\t');
    let padded = v.starts_with([' ', '\t']) || v.ends_with([' ', '\t']);
    let sentinel = v.starts_with("=?base64?") && v.ends_with("?=");
    let plain = visible && !v.is_empty() && !padded && !sentinel;
    if plain {
        v.to_string()
    } else {
        let encoded = base64::engine::general_purpose::STANDARD.encode(v.as_bytes());
        format!("=?base64?{encoded}?=")
    }
}

/// The client capability a server→client request needs (`sampling/createMessage` → `sampling`).
pub fn capability_for(method: &str) -> Option<&'static str> {
    match method {
        "sampling/createMessage" => Some("sampling"),
        "elicitation/create" => Some("elicitation"),
        "roots/list" => Some("roots"),
        _ => None,
    }
}

/// Syslog-style MCP logging levels, least severe first (so `Ord` compares severity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// `debug`
    Debug,
    /// `info`
    Info,
    /// `notice`
    Notice,
    /// `warning`
    Warning,
    /// `error`
    Error,
    /// `critical`
    Critical,
    /// `alert`
    Alert,
    /// `emergency`
    Emergency,
}

impl LogLevel {
    /// Every level, least severe first.
    pub const ALL: [LogLevel; 8] = [
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Notice,
        LogLevel::Warning,
        LogLevel::Error,
        LogLevel::Critical,
        LogLevel::Alert,
        LogLevel::Emergency,
    ];

    /// The wire name (`"warning"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Notice => "notice",
            LogLevel::Warning => "warning",
            LogLevel::Error => "error",
            LogLevel::Critical => "critical",
            LogLevel::Alert => "alert",
            LogLevel::Emergency => "emergency",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<LogLevel> {
        Self::ALL.into_iter().find(|l| l.as_str() == s)
    }

    /// Reads `logging/setLevel` params, with a `-32602` naming the problem.
    pub fn from_set_level_params(params: Option<&Value>) -> Result<LogLevel, RpcError> {
        let level = params.and_then(|p| p.get("level"));
        match level.and_then(Value::as_str) {
            Some(s) => Self::parse(s).ok_or_else(|| {
                RpcError::invalid_params(format!(
                    "unknown log level {s:?}: expected one of {}",
                    Self::ALL.map(LogLevel::as_str).join(", ")
                ))
            }),
            None => Err(RpcError::invalid_params(
                "logging/setLevel needs the string parameter `level`",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(Some("2025-03-26")), "2025-03-26");
        assert_eq!(negotiate(Some("1999-01-01")), LATEST);
        assert_eq!(negotiate(Some(MODERN)), LATEST);
        assert_eq!(negotiate(None), LATEST);
        assert!(allows_batches("2025-03-26"));
        assert!(!allows_batches("2025-06-18"));
    }

    #[test]
    fn eras() {
        assert_eq!(era(MODERN), Some(Era::Modern));
        assert_eq!(era("2025-11-25"), Some(Era::Legacy));
        assert_eq!(era("v999.0.0"), None);
        assert!(!is_supported(MODERN));
        for v in SUPPORTED_VERSIONS {
            assert!(ALL_VERSIONS.contains(&v));
        }
    }

    #[test]
    fn mirrored_header_values() {
        assert_eq!(
            decode_header_value("  get_weather \t").unwrap(),
            "get_weather"
        );
        assert_eq!(
            decode_header_value("=?base64?SGVsbG8sIOS4lueVjA==?=").unwrap(),
            "Hello, 世界"
        );
        assert_eq!(
            decode_header_value("=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?=").unwrap(),
            "=?base64?literal?="
        );
        assert!(
            decode_header_value("=?base64?SGVsbG8?=").is_err(),
            "padding"
        );
        assert!(decode_header_value("=?base64?SGVs!!!bG8=?=").is_err());
        assert_eq!(decode_header_value("SGVsbG8=").unwrap(), "SGVsbG8=");
        assert_eq!(
            decode_header_value("=?base64?SGVsbG8=").unwrap(),
            "=?base64?SGVsbG8="
        );
    }

    #[test]
    fn header_values_round_trip() {
        for (v, literal) in [
            ("get_weather", true),
            ("a b", true),
            ("Hello, 世界", false),
            (" padded ", false),
            ("line1\nline2", false),
            ("=?base64?literal?=", false),
            ("", false),
        ] {
            let h = encode_header_value(v);
            assert_eq!(h == v, literal, "{v:?} -> {h:?}");
            assert_eq!(decode_header_value(&h).unwrap(), v);
        }
        assert_eq!(
            encode_header_value("Hello, 世界"),
            "=?base64?SGVsbG8sIOS4lueVjA==?="
        );
    }

    #[test]
    fn log_levels_order_by_severity() {
        assert!(LogLevel::Debug < LogLevel::Info);
        assert!(LogLevel::Error > LogLevel::Warning);
        assert_eq!(LogLevel::parse("notice"), Some(LogLevel::Notice));
        assert_eq!(LogLevel::parse("loud"), None);
    }
}
