//! The Streamable HTTP transport, driven through the supervisor against a Python fixture server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod upstream_support;

use mcplane_config::{Transport, UpstreamConfig};
use mcplane_mcp::upstream::UpstreamError;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use upstream_support::{Running, Server, stats, timeouts};

fn config(name: &str, server: &Server) -> UpstreamConfig {
    UpstreamConfig {
        name: name.into(),
        transport: Transport::StreamableHttp {
            url: server.url("/mcp"),
            headers: BTreeMap::from([("X-Api-Key".to_string(), "k-123".to_string())]),
        },
        timeouts: timeouts(),
        protocol: mcplane_config::ProtocolMode::Stateful,
        list_ttl: None,
    }
}

#[tokio::test]
async fn json_and_sse_round_trips() {
    let server = Server::start("http_server.py", &[]).await;
    let run = Running::start(config("web", &server));
    run.ready().await;
    assert_eq!(
        run.up.init_result().unwrap()["serverInfo"]["name"],
        "http-fixture"
    );
    // application/json response.
    assert_eq!(run.text("echo", json!({"text": "plain"})).await, "plain");
    // text/event-stream response: the progress notification goes to the request's sink.
    let (sink, mut related) = mpsc::channel(8);
    let response = run
        .up
        .request(
            "tools/call",
            Some(json!({
                "name": "stream_echo",
                "arguments": {"text": "streamed"},
                "_meta": {"progressToken": "tok"}
            })),
            Some(sink),
        )
        .await
        .unwrap()
        .into_outcome()
        .unwrap();
    assert_eq!(response["content"][0]["text"], "streamed");
    let progress = related.try_recv().expect("progress routed to the request");
    assert_eq!(progress["method"], "notifications/progress");
    assert_eq!(progress["params"]["progressToken"], "tok");
    run.stop().await;
}

#[tokio::test]
async fn headers_session_and_version_are_sent() {
    let server = Server::start("http_server.py", &[]).await;
    let run = Running::start(config("hdr", &server));
    run.ready().await;
    let headers: BTreeMap<String, String> =
        serde_json::from_str(&run.text("headers", json!({})).await).unwrap();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("x-api-key"), Some("k-123"));
    assert_eq!(get("mcp-protocol-version"), Some("2025-11-25"));
    assert!(get("mcp-session-id").is_some_and(|s| !s.is_empty()));
    assert_eq!(get("content-type"), Some("application/json"));
    assert!(
        get("accept")
            .is_some_and(|a| a.contains("application/json") && a.contains("text/event-stream"))
    );
    run.stop().await;
    // The session was ended with DELETE on shutdown.
    assert!(stats(&server).await["deletes"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn expired_session_reinitializes_and_the_call_succeeds() {
    let server = Server::start("http_server.py", &[]).await;
    let run = Running::start(config("expiring", &server));
    run.ready().await;
    assert_eq!(run.text("expire", json!({})).await, "expired");
    // The next call gets 404 for its session; the supervisor re-initializes and retries.
    assert_eq!(run.text("echo", json!({"text": "again"})).await, "again");
    assert!(run.up.generation() >= 2);
    assert_eq!(stats(&server).await["initializes"], 2);
    run.stop().await;
}

#[tokio::test]
async fn server_messages_arrive_on_the_get_stream() {
    let server = Server::start("http_server.py", &[]).await;
    let mut run = Running::start(config("pushy", &server));
    run.ready().await;
    // Wait until the GET stream is open, then have the server push on it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while stats(&server).await["gets"].as_u64().unwrap() == 0 {
        assert!(Instant::now() < deadline, "the GET stream opens");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(run.text("notify", json!({"text": "hello"})).await, "queued");
    let event = tokio::time::timeout(Duration::from_secs(10), run.events.recv())
        .await
        .expect("the pushed message arrives")
        .unwrap();
    assert_eq!(event.server, "pushy");
    assert_eq!(event.message["method"], "notifications/message");
    assert_eq!(event.message["params"]["data"], "hello");
    run.stop().await;
}

#[tokio::test]
async fn a_dropped_response_stream_is_resumed() {
    let server = Server::start("http_server.py", &[]).await;
    let run = Running::start(config("resumer", &server));
    run.ready().await;
    // The POST's SSE stream closes after a priming event; the answer comes on the resumed stream.
    assert_eq!(
        run.text("drop_stream", json!({"text": "resumed"})).await,
        "resumed"
    );
    assert_eq!(stats(&server).await["resumes"], 1);
    run.stop().await;
}

#[tokio::test]
async fn a_slow_call_does_not_block_others() {
    let server = Server::start("http_server.py", &[]).await;
    let run = Running::start(config("slowpoke", &server));
    run.ready().await;
    let started = Instant::now();
    let slow = run.text("slow", json!({"secs": 1.5}));
    let fast = async {
        let text = run.text("echo", json!({"text": "quick"})).await;
        (text, started.elapsed())
    };
    let (slow, (fast, fast_took)) = tokio::join!(slow, fast);
    assert_eq!(slow, "slow done");
    assert_eq!(fast, "quick");
    assert!(fast_took < Duration::from_millis(1200), "{fast_took:?}");
    run.stop().await;
}

#[tokio::test]
async fn unreachable_server_is_unavailable_naming_it() {
    // A port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = UpstreamConfig {
        name: "nowhere".into(),
        transport: Transport::StreamableHttp {
            url: url::Url::parse(&format!("http://127.0.0.1:{port}/mcp")).unwrap(),
            headers: BTreeMap::from([("Authorization".to_string(), "Bearer s3cr3t".to_string())]),
        },
        timeouts: timeouts(),
        protocol: mcplane_config::ProtocolMode::Stateful,
        list_ttl: None,
    };
    let run = Running::start(config);
    let err = run.call("echo", json!({})).await.unwrap_err();
    assert!(
        matches!(&err, UpstreamError::Unavailable { server, .. } if server == "nowhere"),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("connect"), "{text}");
    assert!(!text.contains("s3cr3t"), "{text}");
    run.stop().await;
}

#[tokio::test]
async fn protocol_auto_probes_and_falls_back_to_the_session_era() {
    let server = Server::start("http_server.py", &[]).await;
    let mut auto = config("auto", &server);
    auto.protocol = mcplane_config::ProtocolMode::Auto;
    let run = Running::start(auto);
    run.ready().await;
    // The probe (`server/discover`, refused with a 400 that is no modern error) led to initialize.
    let init = run.up.init_result().unwrap();
    assert_eq!(init["serverInfo"]["name"], "http-fixture");
    assert_eq!(init["protocolVersion"], "2025-11-25");
    assert_eq!(
        run.text("echo", json!({"text": "after probe"})).await,
        "after probe"
    );
    let headers: BTreeMap<String, String> =
        serde_json::from_str(&run.text("headers", json!({})).await).unwrap();
    let has = |name: &str| headers.keys().any(|k| k.eq_ignore_ascii_case(name));
    assert!(has("mcp-session-id"), "{headers:?}");
    assert!(!has("mcp-method"), "session-era requests: {headers:?}");
    run.stop().await;

    // `stateless` against the same server: down, saying why.
    let mut strict = config("strict", &server);
    strict.protocol = mcplane_config::ProtocolMode::Stateless;
    let run = Running::start(strict);
    run.up.wait_settled().await;
    match run.up.state() {
        mcplane_mcp::upstream::UpstreamState::Down { reason } => {
            assert!(reason.contains("does not speak 2026-07-28"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    run.stop().await;
}
