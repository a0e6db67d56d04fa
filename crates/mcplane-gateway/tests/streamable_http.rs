//! Streamable HTTP (`/mcp`) end to end: sessions, JSON and SSE answers, the media-type, size,
//! protocol-version, Origin and Host checks, malformed bodies, batches, and isolation between
//! sessions.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::{Value, json};
use support::{Gateway, SseReader, client, eventually, raw, raw_json, server_config, start};

const BOTH: &str = "application/json, text/event-stream";

fn init_body(version: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}})
}

async fn post(
    gw: &Gateway,
    session: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut req = client()
        .post(gw.url("/mcp"))
        .header(ACCEPT, BOTH)
        .header(CONTENT_TYPE, "application/json")
        .body(body);
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    req.send().await.unwrap()
}

async fn post_json(gw: &Gateway, session: Option<&str>, body: &Value) -> reqwest::Response {
    post(gw, session, body.to_string()).await
}

/// Initializes a session with `version`, sends `notifications/initialized`; returns its id.
async fn session(gw: &Gateway, version: &str) -> String {
    let r = post_json(gw, None, &init_body(version)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let id = r.headers()["mcp-session-id"].to_str().unwrap().to_string();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["result"]["protocolVersion"], version);
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let r = post_json(gw, Some(&id), &note).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    id
}

fn call(id: Value, tool: &str, args: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": args, "_meta": {"progressToken": "tok"}}})
}

async fn error_of(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["jsonrpc"], "2.0", "{v}");
    (status, v)
}

#[tokio::test]
async fn initialize_then_json_and_sse_answers() {
    let gw = start(server_config("")).await;
    let sid = session(&gw, "2025-06-18").await;
    assert_eq!(sid.len(), 48);
    assert!(gw.server.session(&sid, None).is_ok());

    let r = post_json(&gw, Some(&sid), &call(json!(1), "echo", json!({"x": 1}))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["id"], 1);
    assert_eq!(v["result"]["structuredContent"]["x"], 1);

    let r = post_json(
        &gw,
        Some(&sid),
        &call(json!("p"), "progress", json!({"y": 2})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[CONTENT_TYPE], "text/event-stream");
    let mut events = SseReader::new(r);
    let first = events.next().await.unwrap();
    assert_eq!(first.json()["method"], "notifications/progress");
    assert_eq!(first.json()["params"]["progressToken"], "tok");
    let last = events.next().await.unwrap();
    assert_eq!(last.json()["id"], "p");
    assert_eq!(last.json()["result"]["structuredContent"]["y"], 2);
    let (a, b) = (first.id.unwrap(), last.id.unwrap());
    assert_ne!(a, b);
    assert!(
        events.next().await.is_none(),
        "stream ends after the response"
    );

    let r = client().get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "ok");
}

#[tokio::test]
async fn notifications_and_responses_get_202() {
    let gw = start(server_config("")).await;
    let sid = session(&gw, "2025-11-25").await;
    let note = json!({"jsonrpc": "2.0", "method": "notifications/roots/list_changed"});
    let r = post_json(&gw, Some(&sid), &note).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert!(r.bytes().await.unwrap().is_empty());
    let reply = json!({"jsonrpc": "2.0", "id": "mcplane-99", "result": {}});
    assert_eq!(
        post_json(&gw, Some(&sid), &reply).await.status(),
        StatusCode::ACCEPTED
    );
}

#[tokio::test]
async fn sessions_are_required_and_checked() {
    let gw = start(server_config("")).await;
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    let (status, v) = error_of(post_json(&gw, None, &ping).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Mcp-Session-Id"),
        "{v}"
    );
    assert_eq!(v["id"], Value::Null);

    let (status, _) = error_of(post_json(&gw, Some("nope"), &ping).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A session created with one Authorization is invisible to another caller.
    let r = client()
        .post(gw.url("/mcp"))
        .header(ACCEPT, BOTH)
        .header(CONTENT_TYPE, "application/json")
        .header("authorization", "Bearer alice")
        .body(init_body("2025-06-18").to_string())
        .send()
        .await
        .unwrap();
    let sid = r.headers()["mcp-session-id"].to_str().unwrap().to_string();
    let as_bob = client()
        .post(gw.url("/mcp"))
        .header(ACCEPT, BOTH)
        .header(CONTENT_TYPE, "application/json")
        .header("authorization", "Bearer bob")
        .header("mcp-session-id", &sid)
        .body(ping.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(as_bob.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        post_json(&gw, Some(&sid), &ping).await.status(),
        StatusCode::NOT_FOUND
    );

    let r = client()
        .post(gw.url("/mcp"))
        .header(ACCEPT, BOTH)
        .header(CONTENT_TYPE, "application/json")
        .header("authorization", "Bearer alice")
        .header("mcp-session-id", &sid)
        .body(ping.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn delete_ends_the_session() {
    let gw = start(server_config("")).await;
    let sid = session(&gw, "2025-06-18").await;
    let del = |s: &str| {
        client()
            .delete(gw.url("/mcp"))
            .header("mcp-session-id", s.to_string())
            .send()
    };
    assert_eq!(del(&sid).await.unwrap().status(), StatusCode::NO_CONTENT);
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    assert_eq!(
        post_json(&gw, Some(&sid), &ping).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(del(&sid).await.unwrap().status(), StatusCode::NOT_FOUND);
    let r = client().delete(gw.url("/mcp")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(gw.server.session_count(), 0);
}

#[tokio::test]
async fn media_types_are_enforced() {
    let gw = start(server_config("")).await;
    let body = init_body("2025-06-18").to_string();
    let r = client()
        .post(gw.url("/mcp"))
        .header(ACCEPT, BOTH)
        .header(CONTENT_TYPE, "text/plain")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let (status, v) = error_of(r).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("application/json")
    );

    for accept in ["application/json", "text/event-stream", "text/html"] {
        let r = client()
            .post(gw.url("/mcp"))
            .header(ACCEPT, accept)
            .header(CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_ACCEPTABLE, "{accept}");
    }
    let r = client()
        .post(gw.url("/mcp"))
        .header(ACCEPT, "*/*")
        .header(CONTENT_TYPE, "application/json; charset=utf-8")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(gw.server.session_count(), 1);

    let sid = r.headers()["mcp-session-id"].to_str().unwrap().to_string();
    let get = client()
        .get(gw.url("/mcp"))
        .header(ACCEPT, "application/json")
        .header("mcp-session-id", sid)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::NOT_ACCEPTABLE);
}

#[tokio::test]
async fn protocol_version_header_is_checked() {
    let gw = start(server_config("")).await;
    let sid = session(&gw, "2025-06-18").await;
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    let with_version = |v: &'static str| {
        client()
            .post(gw.url("/mcp"))
            .header(ACCEPT, BOTH)
            .header(CONTENT_TYPE, "application/json")
            .header("mcp-session-id", sid.clone())
            .header("mcp-protocol-version", v)
            .body(ping.clone())
            .send()
    };
    assert_eq!(
        with_version("2025-06-18").await.unwrap().status(),
        StatusCode::OK
    );
    let (status, v) = error_of(with_version("2099-01-01").await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("MCP-Protocol-Version")
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused_before_reading() {
    let gw = start(server_config("server: { max_body_bytes: 65536 }")).await;
    // Declares 100 MB but sends 10 bytes: the answer must come without the rest being sent.
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: {BOTH}\r\n\
         Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n{{\"jsonrpc\"",
        gw.addr.port()
    );
    let (status, text) = raw(gw.addr, head.as_bytes()).await;
    assert_eq!(status, 413, "{text}");
    let v = raw_json(&text);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("65536"),
        "{v}"
    );

    // Just under the limit is fine (and still has to be valid JSON-RPC).
    let mut body = init_body("2025-06-18").to_string().into_bytes();
    body.resize(60_000, b' ');
    assert_eq!(post(&gw, None, body).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn malformed_bodies_get_clear_json_rpc_errors() {
    let gw = start(server_config("")).await;
    let sid = session(&gw, "2025-06-18").await;
    let deep = "[".repeat(100_000) + &"]".repeat(100_000);
    let cases: Vec<(Vec<u8>, i64, &str)> = vec![
        (b"hello".to_vec(), -32700, "not valid JSON"),
        (
            br#"{"jsonrpc":"2.0","id":1,"meth"#.to_vec(),
            -32700,
            "not valid JSON",
        ),
        (b"42".to_vec(), -32600, "JSON-RPC 2.0 object"),
        (
            br#"{"jsonrpc":"1.0","id":3,"method":"ping"}"#.to_vec(),
            -32600,
            "\"jsonrpc\"",
        ),
        (
            br#"{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}"#.to_vec(),
            -32600,
            "\"id\"",
        ),
        (
            br#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#.to_vec(),
            -32600,
            "\"id\"",
        ),
        (deep.into_bytes(), -32700, "too deep"),
        (
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\"}".to_vec(),
            -32700,
            "UTF-8",
        ),
    ];
    for (body, code, needle) in cases {
        let (status, v) = error_of(post(&gw, Some(&sid), body).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["error"]["code"], code, "{v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{needle:?} not in {message:?}");
    }
    // The request id is echoed when it could be read.
    let (_, v) = error_of(
        post(
            &gw,
            Some(&sid),
            br#"{"jsonrpc":"1.0","id":3,"method":"ping"}"#.to_vec(),
        )
        .await,
    )
    .await;
    assert_eq!(v["id"], 3);
    // Without a session, a parse error is still a JSON-RPC error.
    let (status, v) = error_of(post(&gw, None, b"{".to_vec()).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["id"], Value::Null);
}

#[tokio::test]
async fn batches_follow_the_protocol_version() {
    let gw = start(server_config("")).await;
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        call(json!(2), "echo", json!({"b": 1})),
        {"jsonrpc": "2.0", "method": "notifications/progress", "params": {}},
        {"jsonrpc": "1.0", "id": 4, "method": "ping"}
    ]);
    let new = session(&gw, "2025-06-18").await;
    let (status, v) = error_of(post_json(&gw, Some(&new), &batch).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], -32600);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2025-06-18")
    );

    let old = session(&gw, "2025-03-26").await;
    let r = post_json(&gw, Some(&old), &batch).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    let answers = v.as_array().unwrap();
    assert_eq!(answers.len(), 3, "{v}");
    let by_id = |id: i64| answers.iter().find(|a| a["id"] == id).unwrap();
    assert_eq!(by_id(1)["result"], json!({}));
    assert_eq!(by_id(2)["result"]["structuredContent"]["b"], 1);
    assert_eq!(by_id(4)["error"]["code"], -32600);

    let only_notes = json!([{"jsonrpc": "2.0", "method": "notifications/progress", "params": {}}]);
    let r = post_json(&gw, Some(&old), &only_notes).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn origin_and_host_are_validated() {
    let gw = start(server_config("")).await;
    let body = init_body("2025-06-18").to_string();
    let with_origin = |o: &'static str| {
        client()
            .post(gw.url("/mcp"))
            .header(ACCEPT, BOTH)
            .header(CONTENT_TYPE, "application/json")
            .header("origin", o)
            .body(body.clone())
            .send()
    };
    let (status, v) = error_of(with_origin("https://evil.example").await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(v["error"]["message"].as_str().unwrap().contains("Origin"));
    assert_eq!(
        with_origin("http://localhost:5173").await.unwrap().status(),
        StatusCode::OK
    );

    let request =
        |host: &str| format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let (status, text) = raw(gw.addr, request("evil.example").as_bytes()).await;
    assert_eq!(status, 403, "{text}");
    assert!(
        raw_json(&text)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Host")
    );
    let (status, _) = raw(
        gw.addr,
        request(&format!("localhost:{}", gw.addr.port())).as_bytes(),
    )
    .await;
    assert_eq!(status, 200);

    let open = start(server_config(
        "server: { allowed_hosts: [\"gw.example\"], allowed_origins: [\"https://app.example\"] }",
    ))
    .await;
    let (status, _) = raw(open.addr, request("gw.example:443").as_bytes()).await;
    assert_eq!(status, 200);
    let (status, _) = raw(open.addr, request("127.0.0.1").as_bytes()).await;
    assert_eq!(status, 403);
    let with_app_origin = "GET /healthz HTTP/1.1\r\nHost: gw.example\r\nOrigin: https://app.example\r\nConnection: close\r\n\r\n";
    assert_eq!(raw(open.addr, with_app_origin.as_bytes()).await.0, 200);
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let gw = start(server_config("server: { max_header_bytes: 2048 }")).await;
    let r = client()
        .get(gw.url("/healthz"))
        .header("x-padding", "a".repeat(4096))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("2048"));
}

#[tokio::test]
async fn same_ids_in_two_sessions_stay_apart() {
    let gw = start(server_config("")).await;
    let a = session(&gw, "2025-06-18").await;
    let b = session(&gw, "2025-06-18").await;
    // Both calls wait for each other inside the service, so they are in flight together.
    let call_a = call(json!(1), "rendezvous", json!({"who": "a"}));
    let call_b = call(json!(1), "rendezvous", json!({"who": "b"}));
    let (ra, rb) = tokio::join!(
        post_json(&gw, Some(&a), &call_a),
        post_json(&gw, Some(&b), &call_b),
    );
    let va: Value = ra.json().await.unwrap();
    let vb: Value = rb.json().await.unwrap();
    assert_eq!(va["id"], 1);
    assert_eq!(vb["id"], 1);
    assert_eq!(va["result"]["structuredContent"]["who"], "a");
    assert_eq!(vb["result"]["structuredContent"]["who"], "b");
}

#[tokio::test]
async fn get_streams_standalone_messages_once() {
    let gw = start(server_config("")).await;
    let sid = session(&gw, "2025-06-18").await;
    let open = || {
        client()
            .get(gw.url("/mcp"))
            .header(ACCEPT, "text/event-stream")
            .header("mcp-session-id", sid.clone())
            .send()
    };
    let stream = open().await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(stream.headers()[CONTENT_TYPE], "text/event-stream");
    assert_eq!(open().await.unwrap().status(), StatusCode::CONFLICT);
    let r = post_json(
        &gw,
        Some(&sid),
        &call(json!(5), "broadcast", json!({"n": 7})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let mut events = SseReader::new(stream);
    let e = events.next().await.unwrap();
    assert_eq!(e.json()["method"], "notifications/message");
    assert_eq!(e.json()["params"]["data"]["n"], 7);

    let no_session = client()
        .get(gw.url("/mcp"))
        .header(ACCEPT, "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(no_session.status(), StatusCode::BAD_REQUEST);
    let unknown = client()
        .get(gw.url("/mcp"))
        .header(ACCEPT, "text/event-stream")
        .header("mcp-session-id", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    // Closing the session ends the stream; shutting down ends the server promptly.
    assert!(gw.server.close_session(&sid));
    assert!(events.next().await.is_none());
    gw.stop.cancel();
    eventually(|| gw.task.is_finished()).await;
}

#[tokio::test]
async fn shutdown_ends_open_get_streams() {
    let gw = start(server_config("")).await;
    let sid = session(&gw, "2025-06-18").await;
    let stream = client()
        .get(gw.url("/mcp"))
        .header(ACCEPT, "text/event-stream")
        .header("mcp-session-id", sid)
        .send()
        .await
        .unwrap();
    let mut events = SseReader::new(stream);
    gw.stop.cancel();
    assert!(events.next().await.is_none());
    eventually(|| gw.task.is_finished()).await;
}

#[tokio::test]
async fn slow_answers_switch_to_sse_and_cancelled_requests_end_empty() {
    let server = mcplane_mcp::server::Server::new(support::TestService::new());
    let options = mcplane_gateway::mcp_http::McpHttpOptions {
        keep_alive: std::time::Duration::from_millis(50),
        ..Default::default()
    };
    let gw = support::start_app(
        server.clone(),
        mcplane_gateway::mcp_http::router(server, options),
    )
    .await;
    let a = session(&gw, "2025-06-18").await;
    let b = session(&gw, "2025-06-18").await;
    // The first rendezvous waits for a partner: after one keep-alive period the answer turns
    // into an SSE stream (headers sent, keep-alives flowing) before any message exists.
    let waiting = post_json(
        &gw,
        Some(&a),
        &call(json!(1), "rendezvous", json!({"who": "a"})),
    )
    .await;
    assert_eq!(waiting.status(), StatusCode::OK);
    assert_eq!(waiting.headers()[CONTENT_TYPE], "text/event-stream");
    let partner = post_json(
        &gw,
        Some(&b),
        &call(json!(1), "rendezvous", json!({"who": "b"})),
    )
    .await;
    let mut events = SseReader::new(waiting);
    let done = events.next().await.unwrap().json();
    assert_eq!(done["result"]["structuredContent"]["who"], "a");
    assert!(events.next().await.is_none());
    let partner: Value = match partner.headers()[CONTENT_TYPE].to_str().unwrap() {
        "text/event-stream" => SseReader::new(partner).next().await.unwrap().json(),
        _ => partner.json().await.unwrap(),
    };
    assert_eq!(partner["result"]["structuredContent"]["who"], "b");

    // A request cancelled by the client gets no response: its stream just ends.
    let hanging = post_json(&gw, Some(&a), &call(json!(2), "rendezvous", json!({}))).await;
    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                        "params": {"requestId": 2, "reason": "test"}});
    assert_eq!(
        post_json(&gw, Some(&a), &cancel).await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(hanging.headers()[CONTENT_TYPE], "text/event-stream");
    assert!(SseReader::new(hanging).next().await.is_none());
}
