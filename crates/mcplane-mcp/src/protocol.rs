//! MCP protocol versions mcplane speaks and how one is chosen.

/// Stateful-era versions with an `initialize` handshake, newest first.
pub const SUPPORTED_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// The version offered when a client asks for one mcplane does not know.
pub const LATEST: &str = SUPPORTED_VERSIONS[0];

/// Version assumed for HTTP requests that carry no `MCP-Protocol-Version` header (per spec).
pub const HTTP_DEFAULT: &str = "2025-03-26";

/// Whether `v` is a version mcplane supports.
pub fn is_supported(v: &str) -> bool {
    SUPPORTED_VERSIONS.contains(&v)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(Some("2025-03-26")), "2025-03-26");
        assert_eq!(negotiate(Some("1999-01-01")), LATEST);
        assert_eq!(negotiate(None), LATEST);
        assert!(allows_batches("2025-03-26"));
        assert!(!allows_batches("2025-06-18"));
    }
}
