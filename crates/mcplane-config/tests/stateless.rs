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

#[test]
fn upstream_protocol_era_is_chosen_per_server() {
    use mcplane_config::ProtocolMode;
    let yaml = "mcp:\n  servers:\n    a: { transport: streamable_http, url: 'http://127.0.0.1:1/mcp' }\n    b: { transport: streamable_http, url: 'http://127.0.0.1:1/mcp', protocol: stateless }\n    c: { transport: streamable_http, url: 'http://127.0.0.1:1/mcp', protocol: stateful }\n    d: { transport: stdio, command: x, protocol: auto }\n";
    let servers = parse(yaml, &none).unwrap().config.mcp.servers;
    let modes: Vec<ProtocolMode> = servers.iter().map(|s| s.protocol).collect();
    assert_eq!(
        modes,
        [
            ProtocolMode::Auto,
            ProtocolMode::Stateless,
            ProtocolMode::Stateful,
            ProtocolMode::Auto
        ]
    );
    for (yaml, path, says) in [
        (
            "mcp: { servers: { s: { transport: stdio, command: x, protocol: stateless } } }",
            "mcp.servers.s.protocol",
            "streamable_http",
        ),
        (
            "mcp: { servers: { s: { transport: sse, url: 'http://127.0.0.1:1/sse', protocol: stateless } } }",
            "mcp.servers.s.protocol",
            "streamable_http",
        ),
        (
            "mcp: { servers: { s: { transport: stdio, command: x, protocol: modern } } }",
            "mcp.servers.s",
            "",
        ),
    ] {
        match parse(yaml, &none) {
            Err(ConfigError::Invalid {
                path: p, message, ..
            }) => {
                assert!(p.starts_with(path), "{yaml}: {p}");
                assert!(message.contains(says), "{yaml}: {message}");
            }
            other => panic!("{yaml}: {other:?}"),
        }
    }
}
