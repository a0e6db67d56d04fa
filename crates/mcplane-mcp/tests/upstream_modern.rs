//! The stateless (2026-07-28) client side, driven through the supervisor against a strict fake
//! modern server (tests/fixtures/modern_server.py) that checks the mirrored headers and `_meta`
//! of every request and misbehaves on cue: `input_required` rounds (answered through the
//! request's related sink), endless rounds, malformed input requests, a stray response id,
//! removed methods answered locally, concurrent calls.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod upstream_support;

use mcplane_config::{ProtocolMode, Transport, UpstreamConfig};
use mcplane_mcp::jsonrpc::Message;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::mpsc;
use upstream_support::{Running, Server, stats, timeouts};

fn config(server: &Server, protocol: ProtocolMode) -> UpstreamConfig {
    UpstreamConfig {
        name: "fake".into(),
        transport: Transport::StreamableHttp {
            url: server.url("/mcp"),
            headers: BTreeMap::from([("X-Api-Key".to_string(), "k-1".to_string())]),
        },
        timeouts: timeouts(),
        protocol,
        list_ttl: None,
    }
}

async fn call(run: &Running, tool: &str) -> Result<Value, String> {
    match run.call(tool, json!({})).await {
        Ok(m) => m.into_outcome().map_err(|e| e.message),
        Err(e) => Err(e.to_string()),
    }
}

/// Calls `state_check`, answering the roots question that arrives on the related sink.
async fn state_check(up: Arc<mcplane_mcp::upstream::Upstream>, root: String) -> String {
    let (sink, mut related) = mpsc::channel(8);
    let call = up.request(
        "tools/call",
        Some(json!({"name": "state_check", "arguments": {}})),
        Some(sink),
    );
    tokio::pin!(call);
    loop {
        tokio::select! {
            r = &mut call => {
                let result = r.unwrap().into_outcome().unwrap();
                return result["content"][0]["text"].as_str().unwrap().to_string();
            }
            Some(q) = related.recv() => {
                assert_eq!(q["method"], "roots/list", "{q}");
                assert_eq!(q["params"]["_meta"]["dev.mcplane/inputKey"], "q", "{q}");
                let reply = Message::response(q["id"].clone(), json!({"roots": [{"uri": root.clone()}]}));
                up.send(reply.into_value()).await.unwrap();
            }
        }
    }
}

#[tokio::test]
async fn a_modern_upstream_is_spoken_to_statelessly_and_survives_its_misbehaviour() {
    let server = Server::start("modern_server.py", &[]).await;
    let run = Running::start(config(&server, ProtocolMode::Auto));
    run.ready().await;
    let init = run.up.init_result().unwrap();
    assert_eq!(init["protocolVersion"], "2026-07-28");
    assert_eq!(init["serverInfo"]["name"], "fake-modern");
    assert_eq!(init["instructions"], "a fake modern server");
    assert_eq!(init["capabilities"]["resources"]["subscribe"], true);

    // Per-request _meta and headers; leg-only result fields are not relayed.
    let r = run
        .up
        .request(
            "tools/call",
            Some(json!({"name": "echo_meta", "arguments": {}, "_meta": {"progressToken": "t"}})),
            None,
        )
        .await
        .unwrap()
        .into_outcome()
        .unwrap();
    assert!(
        r.get("resultType").is_none() && r.get("_meta").is_none(),
        "{r}"
    );
    let seen: Value = serde_json::from_str(r["content"][0]["text"].as_str().unwrap()).unwrap();
    let meta = &seen["meta"];
    assert_eq!(
        meta["io.modelcontextprotocol/clientInfo"]["name"],
        "mcplane"
    );
    assert!(meta["io.modelcontextprotocol/clientCapabilities"]["sampling"].is_object());
    assert_eq!(meta["io.modelcontextprotocol/logLevel"], "debug");
    assert_eq!(meta["progressToken"], "t", "the caller's _meta is kept");
    let header = |name: &str| {
        seen["headers"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str().unwrap().to_string())
    };
    assert_eq!(header("x-api-key").as_deref(), Some("k-1"));
    assert_eq!(header("mcp-name").as_deref(), Some("echo_meta"));
    assert_eq!(header("mcp-session-id"), None);

    // Removed methods are answered here; the log level goes into later requests.
    let posts = stats(&server).await["posts"].as_u64().unwrap();
    for (method, params) in [
        ("ping", json!({})),
        ("logging/setLevel", json!({"level": "warning"})),
        ("resources/unsubscribe", json!({"uri": "file:///nothing"})),
    ] {
        let r = run.up.request(method, Some(params), None).await.unwrap();
        assert_eq!(r.into_outcome().unwrap(), json!({}), "{method}");
    }
    assert_eq!(stats(&server).await["posts"].as_u64().unwrap(), posts);
    let r = call(&run, "echo_meta").await.unwrap();
    assert!(
        r["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("\"warning\""),
        "{r}"
    );

    // A name outside the header-safe set travels Base64-encoded (the server checks it).
    let r = call(&run, "héllo").await.unwrap();
    assert_eq!(r["content"][0]["text"], "hello");

    // input_required: the question comes out related to the call, the answer goes back with
    // the upstream's requestState; concurrent calls keep their own questions and answers.
    let answers = futures::future::join_all(
        (0..12).map(|i| state_check(run.up.clone(), format!("file:///r{i}"))),
    )
    .await;
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(a, &format!("ok file:///r{i}"));
    }

    // x-mcp-header: an invalid annotation leaves its tool out; valid ones become headers.
    let list = run.up.request("tools/list", None, None).await.unwrap();
    let list = list.into_outcome().unwrap();
    let names: Vec<&str> = list["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"sql") && !names.contains(&"bad_header"),
        "{names:?}"
    );
    for (args, expected) in [
        (
            json!({"region": "Zürich", "opts": {"limit": 7}, "query": "select 1"}),
            json!({"Mcp-Param-Limit": "7", "Mcp-Param-Region": "Zürich"}),
        ),
        (
            json!({"region": "us-west1"}),
            json!({"Mcp-Param-Region": "us-west1"}),
        ),
        (json!({"query": "no headers"}), json!({})),
    ] {
        let r = run.call("sql", args.clone()).await.unwrap().into_outcome();
        let r = r.unwrap_or_else(|e| panic!("{args}: {}", e.message));
        let seen: Value = serde_json::from_str(r["content"][0]["text"].as_str().unwrap()).unwrap();
        assert_eq!(seen, expected, "{args}");
    }

    // Misbehaviour fails the one call, with a reason, and nothing else.
    let e = call(&run, "endless").await.unwrap_err();
    assert!(e.contains("more than 16"), "{e}");
    let e = call(&run, "bad_inputs").await.unwrap_err();
    assert!(e.contains("inputRequests"), "{e}");
    let e = call(&run, "bad_method").await.unwrap_err();
    assert!(e.contains("not sampling, elicitation or roots"), "{e}");
    let e = call(&run, "stray").await.unwrap_err();
    assert!(e.contains("without a response"), "{e}");
    let e = call(&run, "missing").await.unwrap_err();
    assert!(e.contains("Unknown tool"), "{e}");
    assert_eq!(
        call(&run, "héllo").await.unwrap()["content"][0]["text"],
        "hello"
    );

    let s = stats(&server).await;
    assert_eq!(
        s["mismatches"], 0,
        "every request had matching headers: {s}"
    );
    assert_eq!(s["session_ids"], 0, "{s}");
    assert!(
        s["listens"].as_u64().unwrap() >= 1,
        "a listen stream was opened: {s}"
    );
    assert!(
        !s["methods"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "initialize"),
        "{s}"
    );
    run.stop().await;
}

#[tokio::test]
async fn stateful_against_a_modern_only_server_is_down_with_its_reason() {
    let server = Server::start("modern_server.py", &[]).await;
    let run = Running::start(config(&server, ProtocolMode::Stateful));
    run.up.wait_settled().await;
    match run.up.state() {
        mcplane_mcp::upstream::UpstreamState::Down { reason } => {
            assert!(reason.contains("2026-07-28"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    run.stop().await;
}

#[tokio::test]
async fn a_header_mismatch_on_an_unlisted_tool_relists_and_retries_once() {
    let server = Server::start("modern_server.py", &[]).await;
    let run = Running::start(config(&server, ProtocolMode::Stateless));
    run.ready().await;
    // No tools/list yet: the first attempt lacks Mcp-Param-Region, the server says -32020,
    // mcplane re-lists and the retry carries the header.
    let r = run
        .call("sql", json!({"region": "eu-north1"}))
        .await
        .unwrap()
        .into_outcome()
        .unwrap();
    let seen: Value = serde_json::from_str(r["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(seen, json!({"Mcp-Param-Region": "eu-north1"}));
    let s = stats(&server).await;
    assert_eq!(s["mismatches"], 1, "{s}");
    // A mismatch that re-listing cannot fix is the call's error, once.
    let e = run.call("sql", json!({"region": 1.5})).await.unwrap();
    assert_eq!(e.rpc_error().unwrap().code, -32020);
    let s = stats(&server).await;
    assert_eq!(s["mismatches"], 3, "one retry, no more: {s}");
    run.stop().await;
}
