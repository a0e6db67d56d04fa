//! End-to-end: the real binary serving a stateless (2026-07-28) client and a session-based one
//! on the same `/mcp`, in front of a session-based upstream (the conformance fixture over
//! Streamable HTTP): discovery, caching hints, multi round-trip `input_required` bridging of the
//! upstream's elicitation/sampling/roots requests, a tampered `requestState`, a
//! `subscriptions/listen` stream fed by the upstream's list changes, and `Mcp-Param-*` headers
//! checked against a tool's `x-mcp-header` arguments.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Client, Gateway, http};
use futures::StreamExt;
use serde_json::{Value, json};
use std::time::Duration;

const MODERN: &str = "2026-07-28";

async fn start() -> (Gateway, mcplane_testkit::http::HttpFixture) {
    let (fixture, _) =
        mcplane_testkit::conformance::serve_conformance_fixture("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
    let yaml = format!(
        "mcp:\n  naming: {{ prefix: never }}\n  cache_ttl: 30s\n  servers:\n    fx:\n      transport: streamable_http\n      url: {}\n      protocol: stateful\n",
        fixture.url()
    );
    let gw = Gateway::start(&yaml);
    gw.wait_ready().await;
    (gw, fixture)
}

fn meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}, "sampling": {}, "roots": {}},
        "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1"},
    })
}

/// A stateless POST with the mirrored headers.
fn post(gw: &Gateway, id: Value, method: &str, mut params: Value) -> reqwest::RequestBuilder {
    if params.get("_meta").is_none() {
        params["_meta"] = meta();
    }
    let mut req = http()
        .post(gw.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", method);
    if let Some(name) = params
        .get("name")
        .or_else(|| params.get("uri"))
        .and_then(Value::as_str)
    {
        req = req.header("mcp-name", name);
    }
    req.body(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string())
}

/// The final response of a stateless request (JSON or the last SSE message).
async fn rpc(gw: &Gateway, id: i64, method: &str, params: Value) -> Value {
    let r = post(gw, json!(id), method, params).send().await.unwrap();
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    let text = r.text().await.unwrap();
    if ct.starts_with("text/event-stream") {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .rfind(|m| m.get("id").is_some())
            .expect("a response on the stream")
    } else {
        serde_json::from_str(&text).unwrap()
    }
}

#[tokio::test]
async fn stateless_clients_get_a_session_based_upstream_bridged() {
    let (gw, _fixture) = start().await;

    let d = rpc(&gw, 1, "server/discover", json!({})).await;
    let r = &d["result"];
    assert_eq!(r["supportedVersions"][0], MODERN, "{d}");
    assert_eq!(r["capabilities"]["tools"]["listChanged"], true);
    assert_eq!(
        r["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "mcplane"
    );
    assert_eq!(
        (r["ttlMs"].clone(), r["cacheScope"].clone()),
        (json!(30000), json!("public"))
    );

    let list = rpc(&gw, 2, "tools/list", json!({})).await;
    assert_eq!(list["result"]["resultType"], "complete");
    assert_eq!(list["result"]["ttlMs"], 30000);
    assert!(
        list["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "test_input_required_result_multi_round")
    );

    // Two rounds, each an elicitation the upstream sent as a server→client request.
    let name = "test_input_required_result_multi_round";
    let r1 = rpc(&gw, 3, "tools/call", json!({"name": name, "arguments": {}})).await;
    assert_eq!(r1["result"]["resultType"], "input_required", "{r1}");
    assert_eq!(
        r1["result"]["inputRequests"]["step1"]["method"],
        "elicitation/create"
    );
    let s1 = r1["result"]["requestState"].clone();
    let tampered = rpc(
        &gw,
        4,
        "tools/call",
        json!({"name": name, "arguments": {},
        "inputResponses": {"step1": {"action": "accept", "content": {"name": "Ada"}}},
        "requestState": format!("{}A", s1.as_str().unwrap())}),
    )
    .await;
    assert_eq!(tampered["error"]["code"], -32602, "{tampered}");
    let r2 = rpc(
        &gw,
        5,
        "tools/call",
        json!({"name": name, "arguments": {},
        "inputResponses": {"step1": {"action": "accept", "content": {"name": "Ada"}}},
        "requestState": s1}),
    )
    .await;
    assert!(r2["result"]["inputRequests"]["step2"].is_object(), "{r2}");
    let r3 = rpc(
        &gw,
        6,
        "tools/call",
        json!({"name": name, "arguments": {},
        "inputResponses": {"step2": {"action": "accept", "content": {"color": "blue"}}},
        "requestState": r2["result"]["requestState"]}),
    )
    .await;
    assert_eq!(r3["result"]["resultType"], "complete", "{r3}");
    assert_eq!(r3["result"]["content"][0]["text"], "Ada likes blue");

    // Three requests the upstream sends at once: one result with three input requests.
    let many = rpc(
        &gw,
        7,
        "tools/call",
        json!({"name": "test_input_required_result_multiple_inputs", "arguments": {}}),
    )
    .await;
    let keys: Vec<&String> = many["result"]["inputRequests"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(keys.len(), 3, "{many}");

    // Meanwhile a session-based client on the same endpoint is served as before.
    let mut legacy = Client::new(gw.url("/mcp"));
    let init = legacy.initialize().await;
    assert_eq!(init["protocolVersion"], "2025-11-25");
    let tools = legacy.ok("tools/list", json!({})).await;
    assert!(tools.get("resultType").is_none(), "{tools}");
}

#[tokio::test]
async fn a_listen_stream_gets_the_upstreams_list_changes() {
    let (gw, _fixture) = start().await;
    let r = post(
        &gw,
        json!("sub-1"),
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true}}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let mut body = r.bytes_stream();
    let mut buf = String::new();
    let mut next = async || -> Value {
        loop {
            if let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) {
                    return serde_json::from_str(data).unwrap();
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
                .await
                .expect("an event in time")
                .expect("the stream stays open")
                .unwrap();
            buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    };
    let ack = next().await;
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
    assert_eq!(ack["params"]["notifications"]["toolsListChanged"], true);
    let poke = rpc(
        &gw,
        1,
        "tools/call",
        json!({"name": "test_trigger_tool_change", "arguments": {}}),
    )
    .await;
    assert_eq!(poke["result"]["resultType"], "complete", "{poke}");
    let change = next().await;
    assert_eq!(change["method"], "notifications/tools/list_changed");
    assert_eq!(
        change["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "sub-1"
    );
}

#[tokio::test]
async fn mcp_param_headers_are_checked_against_the_arguments() {
    let (gw, _fixture) = start().await;
    let call = |args: Value, headers: &[(&str, &str)]| {
        let mut req = post(
            &gw,
            json!(1),
            "tools/call",
            json!({"name": "test_custom_header", "arguments": args}),
        );
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send()
    };
    // Matching headers, plain and Base64-encoded: the call goes through.
    for (args, headers) in [
        (
            json!({"region": "us-west1", "priority": 3, "dry_run": true}),
            vec![
                ("Mcp-Param-Region", "us-west1"),
                ("mcp-param-priority", "3"),
                ("Mcp-Param-Dry-Run", "true"),
            ],
        ),
        (
            json!({"region": "Hello, 世界", "note": "not mirrored"}),
            vec![("Mcp-Param-Region", "=?base64?SGVsbG8sIOS4lueVjA==?=")],
        ),
    ] {
        let r = call(args.clone(), &headers).await.unwrap();
        assert_eq!(r.status(), 200, "{args}");
        let v: Value = r.json().await.unwrap();
        let text = v["result"]["content"][0]["text"].as_str().unwrap();
        assert!(text.contains("Custom header tool called"), "{v}");
    }
    // Missing, different, undecodable, or without a body value: 400 HeaderMismatch, naming it.
    for (args, headers, says) in [
        (json!({"region": "eu"}), vec![], "missing Mcp-Param-Region"),
        (
            json!({"region": "eu"}),
            vec![("Mcp-Param-Region", "us")],
            "does not match",
        ),
        (
            json!({"region": "Hello"}),
            vec![("Mcp-Param-Region", "=?base64?SGVsbG8?=")],
            "Base64",
        ),
        (
            json!({"region": "eu", "priority": 2}),
            vec![("Mcp-Param-Region", "eu")],
            "missing Mcp-Param-Priority",
        ),
        (
            json!({"region": "eu"}),
            vec![("Mcp-Param-Region", "eu"), ("Mcp-Param-Dry-Run", "false")],
            "absent from the body",
        ),
    ] {
        let r = call(args.clone(), &headers).await.unwrap();
        assert_eq!(r.status(), 400, "{args} {headers:?}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], -32020, "{v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
    }
    // Headers no tool declares are left alone.
    let r = post(
        &gw,
        json!(2),
        "tools/call",
        json!({"name": "test_logging_tool", "arguments": {}}),
    )
    .header("Mcp-Param-Unrelated", "x")
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
}
