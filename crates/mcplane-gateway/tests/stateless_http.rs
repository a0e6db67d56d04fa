//! Stateless (2026-07-28) clients on `/mcp`, next to session-based ones: mirrored-header
//! validation, per-request `_meta`, removed methods, `server/discover`, HTTP statuses, a legacy
//! session id on a modern request, multi round-trip `input_required` over HTTP, cancellation by
//! closing the response stream, and `subscriptions/listen`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use async_trait::async_trait;
use mcplane_mcp::jsonrpc::RpcError;
use mcplane_mcp::server::{Listening, RequestContext, Server, Service, Session};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{Gateway, SseReader, client, eventually, server_config, start, start_app};
use tokio::sync::mpsc;

const MODERN: &str = "2026-07-28";

/// Header changes: `(name, Some(value))` sets, `(name, None)` removes.
type Edit<'a> = Vec<(&'a str, Option<&'a str>)>;

struct Flag(Arc<AtomicBool>);
impl Drop for Flag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Tools: `echo`, `ask` (elicits `user_name`), `hang` (progress, then waits forever),
/// `poke` (a tools list change to every listener).
#[derive(Default)]
struct Modern {
    hung_dropped: Arc<AtomicBool>,
    listeners: Mutex<Vec<mpsc::Sender<Value>>>,
}

#[async_trait]
impl Service for Modern {
    async fn initialize(&self, _: &Arc<Session>) -> Result<Value, RpcError> {
        Ok(json!({
            "capabilities": {"tools": {"listChanged": true}},
            "serverInfo": {"name": "modern-test", "version": "1"},
        }))
    }

    async fn request(
        &self,
        cx: &RequestContext,
        method: &str,
        params: Option<Value>,
    ) -> Result<Value, RpcError> {
        let params = params.unwrap_or_default();
        match (method, params["name"].as_str()) {
            ("tools/list", _) => {
                Ok(json!({"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]}))
            }
            ("tools/call", Some("echo")) => {
                Ok(json!({"content": [{"type": "text", "text": params["arguments"].to_string()}]}))
            }
            ("tools/call", Some("ask")) => {
                let p = json!({"message": "name?", "requestedSchema": {"type": "object"},
                               "_meta": {"dev.mcplane/inputKey": "user_name"}});
                let a = cx
                    .request("elicitation/create", Some(p), Duration::from_secs(30))
                    .await?;
                Ok(
                    json!({"content": [{"type": "text", "text": format!("Hello, {}!", a["content"]["name"])}]}),
                )
            }
            ("tools/call", Some("hang")) => {
                let _flag = Flag(self.hung_dropped.clone());
                if let Some(t) = cx.progress_token().cloned() {
                    cx.notify(
                        "notifications/progress",
                        Some(json!({"progressToken": t, "progress": 1})),
                    )
                    .await;
                }
                std::future::pending::<()>().await;
                Ok(Value::Null)
            }
            ("tools/call", Some("poke")) => {
                let note = json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"});
                for l in self.listeners.lock().unwrap().iter() {
                    let _ = l.try_send(note.clone());
                }
                Ok(json!({"content": []}))
            }
            _ => Err(RpcError::method_not_found(method)),
        }
    }

    async fn listen(&self, _: &RequestContext, filter: &Value) -> Result<Listening, RpcError> {
        let (tx, rx) = mpsc::channel(8);
        if filter["toolsListChanged"] == true {
            self.listeners.lock().unwrap().push(tx);
        }
        Ok(Listening {
            acknowledged: json!({"toolsListChanged": filter["toolsListChanged"] == true}),
            notifications: rx,
        })
    }
}

async fn start_modern() -> (Gateway, Arc<Modern>) {
    let service = Arc::new(Modern::default());
    let server = Server::new(service.clone());
    let app = mcplane_gateway::http::app(server.clone(), &server_config(""), axum::Router::new());
    (start_app(server, app).await, service)
}

fn meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}},
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
    })
}

fn request(id: i64, method: &str, mut params: Value) -> Value {
    if params.get("_meta").is_none() {
        params["_meta"] = meta();
    }
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// POSTs `body` with the headers a conforming client derives from it, then applies `edit`
/// (`(name, None)` removes a header).
async fn send(gw: &Gateway, body: &Value, edit: &[(&str, Option<&str>)]) -> reqwest::Response {
    let mut headers = vec![
        (
            "accept".to_string(),
            "application/json, text/event-stream".to_string(),
        ),
        ("content-type".to_string(), "application/json".to_string()),
        ("mcp-protocol-version".to_string(), MODERN.to_string()),
    ];
    if let Some(m) = body["method"].as_str() {
        headers.push(("mcp-method".into(), m.into()));
        let name = body["params"]["name"]
            .as_str()
            .or(body["params"]["uri"].as_str());
        if let Some(n) =
            name.filter(|_| matches!(m, "tools/call" | "prompts/get" | "resources/read"))
        {
            headers.push(("mcp-name".into(), n.into()));
        }
    }
    for (k, v) in edit {
        headers.retain(|(h, _)| !h.eq_ignore_ascii_case(k));
        if let Some(v) = v {
            headers.push((k.to_string(), v.to_string()));
        }
    }
    let mut req = client().post(gw.url("/mcp")).body(body.to_string());
    for (k, v) in headers {
        req = req.header(k, v);
    }
    req.send().await.unwrap()
}

async fn json_of(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    let ct = r.headers()[CONTENT_TYPE].to_str().unwrap().to_string();
    assert!(ct.starts_with("application/json"), "{ct}");
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn mirrored_headers_must_match_the_body() {
    let (gw, _) = start_modern().await;
    let list = request(1, "tools/list", json!({}));
    let call = request(2, "tools/call", json!({"name": "echo", "arguments": {}}));
    let mismatches: Vec<(&Value, Edit)> = vec![
        (&list, vec![("mcp-method", Some("prompts/list"))]),
        (&list, vec![("mcp-method", None)]),
        (&list, vec![("mcp-method", Some("TOOLS/LIST"))]),
        (&call, vec![("mcp-name", Some("wrong_tool_name"))]),
        (&call, vec![("mcp-name", None)]),
        (&call, vec![("mcp-name", Some("=?base64?ZWNobw?="))]),
        (&list, vec![("mcp-protocol-version", Some("2099-01-01"))]),
    ];
    for (body, edit) in mismatches {
        let (status, v) = json_of(send(&gw, body, &edit).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{edit:?}: {v}");
        assert_eq!(v["error"]["code"], -32020, "{edit:?}: {v}");
        assert_eq!(v["id"], body["id"]);
    }
    let accepted: Vec<(&Value, Edit)> = vec![
        (&list, vec![]),
        (
            &list,
            vec![("mcp-method", None), ("MCP-METHOD", Some("tools/list"))],
        ),
        (&call, vec![("mcp-name", Some("  echo  "))]),
        (&call, vec![("mcp-name", Some("=?base64?ZWNobw==?="))]),
    ];
    for (body, edit) in accepted {
        let (status, v) = json_of(send(&gw, body, &edit).await).await;
        assert_eq!(status, StatusCode::OK, "{edit:?}: {v}");
        assert_eq!(v["result"]["resultType"], "complete", "{v}");
    }
    // Without the version header but with modern _meta: still stateless, and refused.
    let (status, v) = json_of(send(&gw, &list, &[("mcp-protocol-version", None)]).await).await;
    assert_eq!(
        (status, v["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!(-32020))
    );
}

#[tokio::test]
async fn meta_versions_and_methods() {
    let (gw, _) = start_modern().await;
    let (status, v) = json_of(
        send(
            &gw,
            &request(1, "server/discover", json!({"_meta": {}})),
            &[],
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, v["error"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!(-32602))
    );
    let future = json!({"io.modelcontextprotocol/protocolVersion": "v999.0.0",
                        "io.modelcontextprotocol/clientCapabilities": {}});
    let (status, v) = json_of(
        send(
            &gw,
            &request(2, "server/discover", json!({"_meta": future})),
            &[("mcp-protocol-version", Some("v999.0.0"))],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], -32022);
    assert_eq!(v["error"]["data"]["requested"], "v999.0.0");
    assert!(
        v["error"]["data"]["supported"]
            .as_array()
            .unwrap()
            .contains(&json!(MODERN))
    );
    for m in [
        "initialize",
        "ping",
        "logging/setLevel",
        "resources/subscribe",
        "unknown/method",
    ] {
        let (status, v) = json_of(send(&gw, &request(3, m, json!({})), &[]).await).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{m}: {v}");
        assert_eq!(v["error"]["code"], -32601, "{m}");
        assert_eq!(v["id"], 3);
    }
    let (status, v) =
        json_of(send(&gw, &request(4, "server/discover", json!({})), &[]).await).await;
    assert_eq!(status, StatusCode::OK);
    let r = &v["result"];
    assert_eq!(r["resultType"], "complete");
    assert_eq!(r["supportedVersions"][0], MODERN);
    assert!(
        r["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!("2025-11-25"))
    );
    assert_eq!(r["capabilities"]["tools"]["listChanged"], true);
    assert_eq!(
        r["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "modern-test"
    );
    assert!(r["ttlMs"].is_u64() && r["cacheScope"].is_string(), "{r}");
}

#[tokio::test]
async fn sessions_and_stateless_requests_do_not_mix() {
    let gw = start(server_config("")).await;
    // A legacy session on the same endpoint still works.
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}});
    let r = client()
        .post(gw.url("/mcp"))
        .header(ACCEPT, "application/json, text/event-stream")
        .header(CONTENT_TYPE, "application/json")
        .body(init.to_string())
        .send()
        .await
        .unwrap();
    let sid = r.headers()["mcp-session-id"].to_str().unwrap().to_string();
    // …but its id on a modern request is refused, clearly.
    let (status, v) = json_of(
        send(
            &gw,
            &request(1, "tools/list", json!({})),
            &[("mcp-session-id", Some(&sid))],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Mcp-Session-Id"),
        "{v}"
    );
    // No GET stream or DELETE for modern clients.
    for verb in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let r = client()
            .request(verb.clone(), gw.url("/mcp"))
            .header(ACCEPT, "text/event-stream")
            .header("mcp-protocol-version", MODERN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{verb}");
        assert_eq!(r.headers()["allow"], "POST");
    }
    // Modern responses carry no session id.
    let r = send(&gw, &request(2, "tools/list", json!({})), &[]).await;
    assert!(r.headers().get("mcp-session-id").is_none());
    assert_eq!(gw.server.session_count(), 1);
}

#[tokio::test]
async fn input_required_over_http() {
    let (gw, _) = start_modern().await;
    let first = request(1, "tools/call", json!({"name": "ask", "arguments": {}}));
    let (status, v) = json_of(send(&gw, &first, &[]).await).await;
    assert_eq!(status, StatusCode::OK);
    let r = &v["result"];
    assert_eq!(r["resultType"], "input_required", "{v}");
    assert_eq!(
        r["inputRequests"]["user_name"]["method"],
        "elicitation/create"
    );
    let state = r["requestState"].as_str().unwrap().to_string();
    assert_eq!(gw.server.parked_count(), 1);

    let tampered = request(
        2,
        "tools/call",
        json!({"name": "ask", "arguments": {}, "requestState": format!("{state}x"),
               "inputResponses": {"user_name": {"action": "accept", "content": {"name": "Ada"}}}}),
    );
    let (_, v) = json_of(send(&gw, &tampered, &[]).await).await;
    assert_eq!(v["error"]["code"], -32602, "{v}");

    let retry = request(
        3,
        "tools/call",
        json!({"name": "ask", "arguments": {}, "requestState": state,
               "inputResponses": {"user_name": {"action": "accept", "content": {"name": "Ada"}}}}),
    );
    let (_, v) = json_of(send(&gw, &retry, &[]).await).await;
    assert_eq!(v["id"], 3);
    assert_eq!(v["result"]["content"][0]["text"], "Hello, \"Ada\"!", "{v}");
    assert_eq!(gw.server.parked_count(), 0);

    // A capability the client did not declare: -32021, HTTP 400.
    let mut m = meta();
    m["io.modelcontextprotocol/clientCapabilities"] = json!({});
    let (status, v) = json_of(
        send(
            &gw,
            &request(
                4,
                "tools/call",
                json!({"name": "ask", "arguments": {}, "_meta": m}),
            ),
            &[],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], -32021);
    assert_eq!(
        v["error"]["data"]["requiredCapabilities"],
        json!({"elicitation": {}})
    );
}

#[tokio::test]
async fn closing_the_response_stream_cancels_the_request() {
    let (gw, service) = start_modern().await;
    let mut m = meta();
    m["progressToken"] = json!("p");
    let body = request(
        1,
        "tools/call",
        json!({"name": "hang", "arguments": {}, "_meta": m}),
    );
    let r = send(&gw, &body, &[]).await;
    assert_eq!(r.headers()[CONTENT_TYPE], "text/event-stream");
    let mut events = SseReader::new(r);
    let progress = events.next().await.unwrap();
    assert!(progress.id.is_none(), "no SSE event ids in 2026-07-28");
    assert_eq!(progress.json()["params"]["progressToken"], "p");
    assert!(!service.hung_dropped.load(Ordering::SeqCst));
    drop(events);
    eventually(|| service.hung_dropped.load(Ordering::SeqCst)).await;
}

#[tokio::test]
async fn listen_streams_acknowledge_then_deliver() {
    let (gw, service) = start_modern().await;
    let body = request(
        "9".parse().unwrap(),
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true}}),
    );
    let r = send(&gw, &body, &[]).await;
    assert_eq!(r.headers()[CONTENT_TYPE], "text/event-stream");
    let mut events = SseReader::new(r);
    let ack = events.next().await.unwrap().json();
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        9
    );
    eventually(|| !service.listeners.lock().unwrap().is_empty()).await;
    let (_, v) = json_of(
        send(
            &gw,
            &request(10, "tools/call", json!({"name": "poke", "arguments": {}})),
            &[],
        )
        .await,
    )
    .await;
    assert_eq!(v["result"]["resultType"], "complete");
    let change = events.next().await.unwrap().json();
    assert_eq!(change["method"], "notifications/tools/list_changed");
    assert_eq!(
        change["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        9
    );
}
