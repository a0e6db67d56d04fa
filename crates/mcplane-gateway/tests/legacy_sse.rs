//! The legacy HTTP+SSE transport end to end: the `endpoint` event, posting messages, replies
//! and standalone messages on the stream, unknown sessions, and session cleanup on disconnect.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::{Value, json};
use support::{SseReader, client, eventually, server_config, start};

#[tokio::test]
async fn round_trip_over_sse() {
    let gw = start(server_config("")).await;
    let stream = client()
        .get(gw.url("/sse"))
        .header(ACCEPT, "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(stream.headers()[CONTENT_TYPE], "text/event-stream");
    let mut events = SseReader::new(stream);
    let endpoint = events.next().await.unwrap();
    assert_eq!(endpoint.event.as_deref(), Some("endpoint"));
    assert!(
        endpoint.data.starts_with("/messages?sessionId="),
        "{}",
        endpoint.data
    );
    assert_eq!(gw.server.session_count(), 1);
    let url = gw.url(&endpoint.data);

    let send = |body: Value| {
        client()
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
    };
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "old", "version": "0"}}});
    assert_eq!(send(init).await.unwrap().status(), StatusCode::ACCEPTED);
    let e = events.next().await.unwrap();
    assert_eq!(e.event.as_deref(), Some("message"));
    assert_eq!(e.json()["id"], 1);
    assert_eq!(e.json()["result"]["protocolVersion"], "2024-11-05");

    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(
        send(initialized).await.unwrap().status(),
        StatusCode::ACCEPTED
    );

    let progress = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "progress", "arguments": {"z": 3}, "_meta": {"progressToken": 9}}});
    assert_eq!(send(progress).await.unwrap().status(), StatusCode::ACCEPTED);
    let note = events.next().await.unwrap().json();
    assert_eq!(note["method"], "notifications/progress");
    assert_eq!(note["params"]["progressToken"], 9);
    let done = events.next().await.unwrap().json();
    assert_eq!(done["id"], 2);
    assert_eq!(done["result"]["structuredContent"]["z"], 3);

    let broadcast = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "broadcast", "arguments": {"n": 1}}});
    assert_eq!(
        send(broadcast).await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    let mut seen: Vec<Value> = Vec::new();
    for _ in 0..2 {
        seen.push(events.next().await.unwrap().json());
    }
    assert!(
        seen.iter().any(|v| v["method"] == "notifications/message"),
        "{seen:?}"
    );
    assert!(seen.iter().any(|v| v["id"] == 3), "{seen:?}");

    // Batches are allowed in 2024-11-05; bad items are answered on the stream too.
    let batch = json!([{"jsonrpc": "2.0", "id": 4, "method": "ping"}, 7]);
    assert_eq!(send(batch).await.unwrap().status(), StatusCode::ACCEPTED);
    let mut seen: Vec<Value> = Vec::new();
    for _ in 0..2 {
        seen.push(events.next().await.unwrap().json());
    }
    assert!(
        seen.iter()
            .any(|v| v["id"] == 4 && v["result"] == json!({})),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|v| v["error"]["code"] == -32600),
        "{seen:?}"
    );

    let bad = client()
        .post(url.clone())
        .header(CONTENT_TYPE, "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let v: Value = bad.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32700);

    // Disconnecting closes the session; its URL then answers 404.
    drop(events);
    eventually(|| gw.server.session_count() == 0).await;
    let ping = json!({"jsonrpc": "2.0", "id": 5, "method": "ping"});
    assert_eq!(send(ping).await.unwrap().status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn unknown_or_missing_sessions_are_refused() {
    let gw = start(server_config("")).await;
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    let post = |path: &'static str| {
        client()
            .post(gw.url(path))
            .header(CONTENT_TYPE, "application/json")
            .body(ping.clone())
            .send()
    };
    assert_eq!(
        post("/messages?sessionId=nope").await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        post("/messages").await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );

    // A Streamable HTTP session is not a legacy one.
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}}});
    let r = client()
        .post(gw.url("/mcp"))
        .header(ACCEPT, "application/json, text/event-stream")
        .header(CONTENT_TYPE, "application/json")
        .body(init.to_string())
        .send()
        .await
        .unwrap();
    let sid = r.headers()["mcp-session-id"].to_str().unwrap().to_string();
    let r = client()
        .post(gw.url(&format!("/messages?sessionId={sid}")))
        .header(CONTENT_TYPE, "application/json")
        .body(ping.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let wrong_type = client()
        .get(gw.url("/sse"))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), StatusCode::NOT_ACCEPTABLE);
}
