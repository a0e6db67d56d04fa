//! `mcp.cache_ttl` and `mcp.input_required`: the settings for stateless (2026-07-28) clients.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcplane_config::{ConfigError, StatelessConfig, parse};
use std::time::Duration;

fn none(_: &str) -> Option<String> {
    None
}

#[test]
fn defaults_and_overrides() {
    let c = parse("", &none).unwrap().config;
    assert_eq!(c.mcp.stateless, StatelessConfig::default());
    assert_eq!(c.mcp.stateless.cache_ttl, Duration::from_secs(60));
    let yaml = "mcp:\n  cache_ttl: 0s\n  input_required: { timeout: 5m, max_pending: 10 }\n";
    let s = parse(yaml, &none).unwrap().config.mcp.stateless;
    assert_eq!(s.cache_ttl, Duration::ZERO);
    assert_eq!(s.input_timeout, Duration::from_secs(300));
    assert_eq!(s.max_pending, 10);
}

#[test]
fn bad_values_name_their_path() {
    for (yaml, path) in [
        (
            "mcp: { input_required: { max_pending: 0 } }",
            "mcp.input_required.max_pending",
        ),
        (
            "mcp: { input_required: { timeout: 0s } }",
            "mcp.input_required.timeout",
        ),
        (
            "mcp: { input_required: { wait: 1s } }",
            "mcp.input_required",
        ),
    ] {
        match parse(yaml, &none) {
            Err(ConfigError::Invalid { path: p, .. }) => assert!(p.starts_with(path), "{p}"),
            other => panic!("{yaml}: {other:?}"),
        }
    }
}
