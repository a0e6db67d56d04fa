//! The legacy HTTP+SSE transport, driven through the supervisor against a Python fixture server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod upstream_support;

use mcplane_config::{Transport, UpstreamConfig};
use mcplane_mcp::upstream::{UpstreamError, UpstreamState};
use serde_json::json;
use std::collections::BTreeMap;
use upstream_support::{Running, Server, timeouts};

fn config(name: &str, server: &Server) -> UpstreamConfig {
    UpstreamConfig {
        name: name.into(),
        transport: Transport::Sse {
            url: server.url("/sse"),
            headers: BTreeMap::from([("X-Api-Key".to_string(), "k-456".to_string())]),
        },
        timeouts: timeouts(),
        protocol: mcplane_config::ProtocolMode::Stateful,
        list_ttl: None,
    }
}

#[tokio::test]
async fn call_round_trip() {
    let server = Server::start("sse_server.py", &[]).await;
    let run = Running::start(config("legacy", &server));
    run.ready().await;
    assert_eq!(
        run.up.init_result().unwrap()["serverInfo"]["name"],
        "sse-fixture"
    );
    assert_eq!(
        run.text("echo", json!({"text": "over sse"})).await,
        "over sse"
    );
    let headers: BTreeMap<String, String> =
        serde_json::from_str(&run.text("headers", json!({})).await).unwrap();
    assert!(
        headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("x-api-key") && v == "k-456")
    );
    run.stop().await;
}

#[tokio::test]
async fn stream_end_reconnects() {
    let server = Server::start("sse_server.py", &[]).await;
    let run = Running::start(config("hangs-up", &server));
    run.ready().await;
    // The server answers, then ends the event stream: the supervisor reconnects.
    assert_eq!(run.text("hangup", json!({})).await, "bye");
    run.generation(2).await;
    assert_eq!(run.text("echo", json!({"text": "again"})).await, "again");
    run.stop().await;
}

#[tokio::test]
async fn endpoint_on_another_origin_is_refused() {
    let server = Server::start("sse_server.py", &["--foreign-endpoint"]).await;
    let run = Running::start(config("foreign", &server));
    let err = run.call("echo", json!({})).await.unwrap_err();
    match &err {
        UpstreamError::Protocol { server, reason } => {
            assert_eq!(server, "foreign");
            assert!(reason.contains("origin"), "{reason}");
        }
        other => panic!("expected Protocol, got {other:?}"),
    }
    assert!(matches!(run.up.state(), UpstreamState::Down { .. }));
    run.stop().await;
}
