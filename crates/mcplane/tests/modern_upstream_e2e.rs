//! End-to-end: the real binary as a stateless (2026-07-28) client of a modern-only upstream
//! (the conformance fixture refusing `initialize`), next to a session-based one (the demo server
//! over stdio), behind `/mcp` and a virtual server, for clients of both eras: the legacy
//! client's `initialize` comes from the upstream's `server/discover`; the upstream's
//! `input_required` results become server→client requests on the legacy client's stream (and
//! stay `input_required` for a modern client, under mcplane's own `requestState`); progress and
//! logs are relayed; list changes and resource updates arrive through the `subscriptions/listen`
//! stream mcplane holds, including after the upstream died and came back; an unanswered question
//! times out; a modern client's disconnect cancels the upstream's work.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Gateway, exe, http};
use futures::StreamExt;
use futures::stream::BoxStream;
use mcplane_testkit::conformance::{ConformanceFixture, WATCHED_URI, serve_fixture};
use mcplane_testkit::http::HttpFixture;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const MODERN: &str = "2026-07-28";
const WAIT: Duration = Duration::from_secs(15);

async fn modern_fixture(addr: SocketAddr) -> (HttpFixture, Arc<ConformanceFixture>) {
    serve_fixture(ConformanceFixture::modern_only(), addr)
        .await
        .unwrap()
}

/// mcplane in front of `fx` (the modern fixture, era probed) and `demo` (stdio, session era),
/// with the virtual server `vs` over both.
async fn start(fixture: &HttpFixture, call_timeout: &str) -> Gateway {
    let yaml = format!(
        "mcp:\n  naming: {{ prefix: always }}\n  servers:\n    fx:\n      transport: streamable_http\n      url: {}\n      timeouts: {{ call: {call_timeout} }}\n    demo:\n      transport: stdio\n      command: {}\n      args: [demo-server]\n  virtual_servers:\n    vs:\n      include: [\"fx/*\", \"demo/echo\"]\n",
        fixture.url(),
        serde_json::to_string(exe()).unwrap()
    );
    let gw = Gateway::start(&yaml);
    // /readyz says 200 once every upstream settled; its detail may be a moment older.
    let deadline = Instant::now() + WAIT;
    loop {
        let ready = gw.wait_ready().await;
        let servers = ready["servers"].as_array().unwrap();
        if servers.iter().all(|s| s["state"] == "ready") {
            break;
        }
        assert!(Instant::now() < deadline, "{ready}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw
}

/// The JSON-RPC messages of an SSE body, one at a time.
struct Events {
    body: BoxStream<'static, reqwest::Result<Vec<u8>>>,
    buf: String,
}

impl Events {
    fn new(r: reqwest::Response) -> Events {
        Events {
            body: r.bytes_stream().map(|c| c.map(|b| b.to_vec())).boxed(),
            buf: String::new(),
        }
    }

    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let data: Vec<&str> = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim)
                    .collect();
                if data.is_empty() || data.concat().is_empty() {
                    continue;
                }
                return Some(serde_json::from_str(&data.join("\n")).unwrap());
            }
            let chunk = tokio::time::timeout(WAIT, self.body.next())
                .await
                .expect("an event in time")?;
            self.buf
                .push_str(std::str::from_utf8(&chunk.ok()?).unwrap());
        }
    }

    /// The next message with this method, skipping others.
    async fn until(&mut self, method: &str) -> Value {
        loop {
            let m = self.next().await.expect("stream open");
            if m["method"] == method {
                return m;
            }
        }
    }
}

/// A session-based (2025-11-25) client that reads each response stream as it arrives and
/// answers the server→client requests on it.
struct Legacy {
    url: String,
    session: String,
}

impl Legacy {
    async fn connect(url: String, capabilities: Value) -> (Legacy, Value) {
        let r = http()
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(
                json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": capabilities,
                "clientInfo": {"name": "legacy-e2e", "version": "1"}}})
                .to_string(),
            )
            .send()
            .await
            .unwrap();
        let session = r.headers()["mcp-session-id"].to_str().unwrap().to_string();
        let init: Value = r.json().await.unwrap();
        let c = Legacy { url, session };
        c.post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        (c, init["result"].clone())
    }

    async fn post(&self, body: Value) -> reqwest::Response {
        http()
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &self.session)
            .header("mcp-protocol-version", "2025-11-25")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    /// Calls `method`; `answer` gives the result for each server→client request (`None`: leave
    /// it unanswered). Returns what came before the response, and the response.
    async fn call(
        &self,
        id: u64,
        method: &str,
        params: Value,
        answer: impl Fn(&Value) -> Option<Value>,
    ) -> (Vec<Value>, Value) {
        let r = self
            .post(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        if !r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
        {
            return (Vec::new(), r.json().await.unwrap());
        }
        let mut events = Events::new(r);
        let mut before = Vec::new();
        while let Some(m) = events.next().await {
            if m.get("method").is_some() && m.get("id").is_some() {
                if let Some(result) = answer(&m) {
                    let reply = json!({"jsonrpc": "2.0", "id": m["id"], "result": result});
                    assert_eq!(self.post(reply).await.status(), 202);
                }
                before.push(m);
            } else if m.get("method").is_some() {
                before.push(m);
            } else {
                assert_eq!(m["id"], id, "{m}");
                return (before, m);
            }
        }
        panic!("the stream ended without a response");
    }

    /// `tools/call` of `name` with `params` (`name` added), nothing answered.
    async fn tool(&self, id: u64, name: &str, mut params: Value) -> (Vec<Value>, Value) {
        self.tool_answering(id, name, params.take(), |_| None).await
    }

    /// `tools/call` of `name` with `params` (`name` added), questions answered by `answer`.
    async fn tool_answering(
        &self,
        id: u64,
        name: &str,
        mut params: Value,
        answer: impl Fn(&Value) -> Option<Value>,
    ) -> (Vec<Value>, Value) {
        if !params.is_object() {
            params = json!({});
        }
        params["name"] = json!(name);
        self.call(id, "tools/call", params, answer).await
    }

    /// The standalone GET stream of the session.
    async fn standalone(&self) -> Events {
        let r = http()
            .get(&self.url)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &self.session)
            .header("mcp-protocol-version", "2025-11-25")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        Events::new(r)
    }
}

/// The client side of sampling, elicitation and roots.
fn client_answers(request: &Value) -> Option<Value> {
    match request["method"].as_str()? {
        "sampling/createMessage" => {
            let asked = request["params"]["messages"][0]["content"]["text"].clone();
            Some(
                json!({"role": "assistant", "model": "m", "stopReason": "endTurn",
                "content": {"type": "text", "text": format!("sampled {}", asked.as_str().unwrap_or(""))}}),
            )
        }
        "elicitation/create" => Some(json!({"action": "accept",
            "content": {"username": "ada", "email": "ada@example.com", "name": "Ada"}})),
        "roots/list" => Some(json!({"roots": [{"uri": "file:///work", "name": "work"}]})),
        _ => None,
    }
}

fn text(response: &Value) -> String {
    response["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

const ALL_CAPS: &str = r#"{"sampling": {}, "elicitation": {"form": {}}, "roots": {}}"#;

#[tokio::test]
async fn a_legacy_client_gets_a_modern_upstream_bridged() {
    let (fixture, fx) = modern_fixture("127.0.0.1:0".parse().unwrap()).await;
    let gw = start(&fixture, "10s").await;
    for path in ["/mcp", "/mcp/vs"] {
        let caps: Value = serde_json::from_str(ALL_CAPS).unwrap();
        let (c, init) = Legacy::connect(gw.url(path), caps).await;
        // initialize is mcplane's, with what the modern upstream's server/discover declared.
        assert!(
            init["serverInfo"]["name"]
                .as_str()
                .unwrap()
                .starts_with("mcplane"),
            "{init}"
        );
        assert_eq!(init["capabilities"]["tools"]["listChanged"], true, "{init}");
        assert_eq!(
            init["capabilities"]["resources"]["subscribe"], true,
            "{init}"
        );

        let (_, list) = c.call(1, "tools/list", json!({}), |_| None).await;
        let names: Vec<&str> = list["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"fx__test_sampling"), "{names:?}");
        assert!(names.contains(&"demo__echo"), "{names:?}");
        if path == "/mcp/vs" {
            assert!(!names.contains(&"demo__add"), "{names:?}");
        }

        // Progress with the client's own token.
        let (before, done) = c
            .tool(
                2,
                "fx__test_tool_with_progress",
                json!({"_meta": {"progressToken": "mine"}}),
            )
            .await;
        assert!(done["result"].is_object(), "{done}");
        let progress: Vec<&Value> = before
            .iter()
            .filter(|m| m["method"] == "notifications/progress")
            .collect();
        assert_eq!(progress.len(), 3, "{before:?}");
        assert!(
            progress
                .iter()
                .all(|p| p["params"]["progressToken"] == "mine")
        );

        // Logging.
        let (before, _) = c.tool(3, "fx__test_tool_with_logging", json!({})).await;
        let logs = before
            .iter()
            .filter(|m| m["method"] == "notifications/message")
            .count();
        assert_eq!(logs, 3, "{before:?}");

        // Sampling, elicitation and roots: input_required upstream, requests on our stream.
        let (before, done) = c
            .tool_answering(
                4,
                "fx__test_sampling",
                json!({"arguments": {"prompt": "capital?"}}),
                client_answers,
            )
            .await;
        assert_eq!(before[0]["method"], "sampling/createMessage", "{before:?}");
        assert!(text(&done).contains("sampled capital?"), "{done}");
        let (_, done) = c
            .tool_answering(
                5,
                "fx__test_elicitation",
                json!({"arguments": {"message": "who?"}}),
                client_answers,
            )
            .await;
        assert!(text(&done).contains("ada@example.com"), "{done}");
        let (_, done) = c
            .tool_answering(
                6,
                "fx__test_input_required_result_list_roots",
                json!({}),
                client_answers,
            )
            .await;
        assert!(text(&done).contains("file:///work"), "{done}");
        // Two rounds of input.
        let (before, done) = c
            .tool_answering(7, "fx__test_input_required_result_multi_round", json!({}), |r| {
                    Some(json!({"action": "accept", "content": if r["params"]["requestedSchema"]["properties"].get("color").is_some() {
                        json!({"color": "blue"})
                    } else {
                        json!({"name": "Ada"})
                    }}))
                })
            .await;
        assert_eq!(before.len(), 2, "{before:?}");
        assert_eq!(text(&done), "Ada likes blue", "{done}");
        // The session-based upstream is still there.
        let (_, echoed) = c
            .tool(8, "demo__echo", json!({"arguments": {"text": "hi"}}))
            .await;
        assert!(echoed["result"].is_object(), "{echoed}");
    }

    // List changes and resource updates reach the session through the listen stream.
    let caps: Value = serde_json::from_str(ALL_CAPS).unwrap();
    let (c, _) = Legacy::connect(gw.url("/mcp"), caps).await;
    let mut standalone = c.standalone().await;
    let (_, sub) = c
        .call(
            1,
            "resources/subscribe",
            json!({"uri": WATCHED_URI}),
            |_| None,
        )
        .await;
    assert!(sub["result"].is_object(), "{sub}");
    // The listen stream is reopened with the new URI: poll the trigger until it is heard.
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, r) = c
            .tool(2, "fx__test_trigger_resource_update", json!({}))
            .await;
        if !text(&r).contains("to 0 subscriber") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the upstream never saw the subscription"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let updated = standalone.until("notifications/resources/updated").await;
    assert_eq!(updated["params"]["uri"], WATCHED_URI, "{updated}");
    assert!(
        updated["params"].get("_meta").is_none(),
        "the upstream's subscription id stays on its leg: {updated}"
    );
    c.tool(3, "fx__test_trigger_tool_change", json!({})).await;
    standalone.until("notifications/tools/list_changed").await;

    // The last unsubscribe reaches the upstream too (the listen stream is reopened without it).
    let (_, unsub) = c
        .call(
            4,
            "resources/unsubscribe",
            json!({"uri": WATCHED_URI}),
            |_| None,
        )
        .await;
    assert!(unsub["result"].is_object(), "{unsub}");
    let deadline = Instant::now() + WAIT;
    while fx.update_resource(WATCHED_URI) != 0 {
        assert!(
            Instant::now() < deadline,
            "the upstream subscription outlived its last session"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn missing_capabilities_and_unanswered_questions_fail_clearly() {
    let (fixture, _fx) = modern_fixture("127.0.0.1:0".parse().unwrap()).await;
    let gw = start(&fixture, "2s").await;
    let (bare, _) = Legacy::connect(gw.url("/mcp"), json!({})).await;
    let (before, r) = bare
        .tool_answering(
            1,
            "fx__test_sampling",
            json!({"arguments": {"prompt": "x"}}),
            client_answers,
        )
        .await;
    assert!(
        before.is_empty(),
        "nothing is asked of a client without sampling: {before:?}"
    );
    let message = r["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("sampling"), "{r}");
    assert!(
        r["error"]["data"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("does not support sampling"),
        "{r}"
    );

    let caps: Value = serde_json::from_str(ALL_CAPS).unwrap();
    let (c, _) = Legacy::connect(gw.url("/mcp"), caps).await;
    let started = Instant::now();
    let (before, r) = c
        .tool(
            1,
            "fx__test_sampling",
            json!({"arguments": {"prompt": "x"}}),
        )
        .await;
    assert_eq!(before[0]["method"], "sampling/createMessage");
    assert!(r.get("error").is_some(), "{r}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // The session still works afterwards.
    let (_, ok) = c.tool(2, "fx__test_simple_text", json!({})).await;
    assert!(ok["result"].is_object(), "{ok}");
}

fn modern_meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}, "sampling": {}, "roots": {}},
        "io.modelcontextprotocol/clientInfo": {"name": "modern-e2e", "version": "1"},
    })
}

fn modern_post(url: &str, id: Value, method: &str, mut params: Value) -> reqwest::RequestBuilder {
    let mut m = modern_meta();
    if let Some(Value::Object(given)) = params.get("_meta") {
        m.as_object_mut().unwrap().extend(given.clone());
    }
    params["_meta"] = m;
    let mut req = http()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", method);
    if let Some(name) = params.get("name").and_then(Value::as_str) {
        req = req.header("mcp-name", name);
    }
    req.body(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string())
}

async fn modern_rpc(url: &str, id: i64, method: &str, params: Value) -> Value {
    let r = modern_post(url, json!(id), method, params)
        .send()
        .await
        .unwrap();
    let sse = r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream");
    if !sse {
        return r.json().await.unwrap();
    }
    let mut events = Events::new(r);
    while let Some(m) = events.next().await {
        if m.get("id").is_some() && m.get("method").is_none() {
            return m;
        }
    }
    panic!("no response");
}

#[tokio::test]
async fn a_modern_client_gets_input_required_relayed_under_mcplanes_own_state() {
    let (fixture, fx) = modern_fixture("127.0.0.1:0".parse().unwrap()).await;
    let gw = start(&fixture, "10s").await;
    for path in ["/mcp", "/mcp/vs"] {
        let url = gw.url(path);
        let name = "fx__test_input_required_result_multi_round";
        let r1 = modern_rpc(&url, 1, "tools/call", json!({"name": name})).await;
        assert_eq!(r1["result"]["resultType"], "input_required", "{r1}");
        // The upstream's own input key survives the bridge.
        assert_eq!(
            r1["result"]["inputRequests"]["step1"]["method"], "elicitation/create",
            "{r1}"
        );
        let s1 = r1["result"]["requestState"].as_str().unwrap().to_string();
        let forged = modern_rpc(
            &url,
            2,
            "tools/call",
            json!({"name": name, "inputResponses": {"step1": {"action": "accept", "content": {"name": "Eve"}}},
                "requestState": format!("{s1}x")}),
        )
        .await;
        assert_eq!(forged["error"]["code"], -32602, "{forged}");
        let r2 = modern_rpc(
            &url,
            3,
            "tools/call",
            json!({"name": name, "inputResponses": {"step1": {"action": "accept", "content": {"name": "Ada"}}},
                "requestState": s1}),
        )
        .await;
        assert!(r2["result"]["inputRequests"]["step2"].is_object(), "{r2}");
        let r3 = modern_rpc(
            &url,
            4,
            "tools/call",
            json!({"name": name, "inputResponses": {"step2": {"action": "accept", "content": {"color": "blue"}}},
                "requestState": r2["result"]["requestState"]}),
        )
        .await;
        assert_eq!(r3["result"]["resultType"], "complete", "{r3}");
        assert_eq!(text(&r3), "Ada likes blue");
        assert!(
            r3["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"]
                .as_str()
                .unwrap()
                .starts_with("mcplane"),
            "the upstream's serverInfo stays on its leg: {r3}"
        );
    }
    // Nothing was left waiting upstream.
    let deadline = Instant::now() + WAIT;
    while fixture.server().parked_count() != 0 {
        assert!(Instant::now() < deadline, "the upstream still holds work");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A modern client's disconnect stops the upstream's work.
    let before = fx.cancellations();
    let url = gw.url("/mcp");
    let pending = modern_post(
        &url,
        json!(9),
        "tools/call",
        json!({"name": "fx__test_wait_for_cancel", "_meta": {"progressToken": "w"}}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(pending.status(), 200);
    let mut events = Events::new(pending);
    let progress = events.next().await.unwrap();
    assert_eq!(progress["method"], "notifications/progress", "{progress}");
    assert_eq!(fx.cancellations(), before, "still working");
    drop(events);
    let deadline = Instant::now() + WAIT;
    while fx.cancellations() == before {
        assert!(
            Instant::now() < deadline,
            "the upstream never saw the cancel"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Lists and listen streams of a modern client.
    let l = modern_post(
        &gw.url("/mcp"),
        json!("l1"),
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true}}),
    )
    .send()
    .await
    .unwrap();
    let mut stream = Events::new(l);
    stream
        .until("notifications/subscriptions/acknowledged")
        .await;
    modern_rpc(
        &gw.url("/mcp"),
        10,
        "tools/call",
        json!({"name": "fx__test_trigger_tool_change"}),
    )
    .await;
    let changed = stream.until("notifications/tools/list_changed").await;
    assert_eq!(
        changed["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], "l1",
        "{changed}"
    );
}

#[tokio::test]
async fn a_modern_upstream_that_dies_mid_listen_is_heard_again_after_it_returns() {
    let (fixture, _fx) = modern_fixture("127.0.0.1:0".parse().unwrap()).await;
    let addr = fixture.addr();
    let gw = start(&fixture, "5s").await;
    let caps: Value = serde_json::from_str(ALL_CAPS).unwrap();
    let (c, _) = Legacy::connect(gw.url("/mcp"), caps).await;
    let mut standalone = c.standalone().await;
    let (_, ok) = c.tool(1, "fx__test_simple_text", json!({})).await;
    assert!(ok["result"].is_object(), "{ok}");

    fixture.shutdown().await.unwrap();
    let (_, down) = c.tool(2, "fx__test_simple_text", json!({})).await;
    assert!(down.get("error").is_some(), "{down}");

    let (again, _fx2) = modern_fixture(addr).await;
    // Whatever changed while the stream was down is unknown: caches are refreshed and clients
    // are told the lists changed.
    standalone.until("notifications/tools/list_changed").await;
    let (_, ok) = c.tool(3, "fx__test_simple_text", json!({})).await;
    assert!(ok["result"].is_object(), "{ok}");
    drop(again);
}

#[tokio::test]
async fn protocol_stateful_against_a_modern_only_upstream_says_why_it_is_down() {
    let (fixture, _fx) = modern_fixture("127.0.0.1:0".parse().unwrap()).await;
    let yaml = format!(
        "mcp:\n  servers:\n    fx:\n      transport: streamable_http\n      url: {}\n      protocol: stateful\n",
        fixture.url()
    );
    let gw = Gateway::start(&yaml);
    gw.wait_ready().await;
    // Between retries the upstream is "connecting" again: poll until it reads "down".
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let ready = loop {
        let r: Value = http()
            .get(gw.url("/readyz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if r["servers"][0]["state"] == "down" {
            break r;
        }
        assert!(std::time::Instant::now() < deadline, "never down: {r}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let fx = &ready["servers"][0];
    assert!(
        fx["reason"].as_str().unwrap_or_default().contains(MODERN),
        "the upstream's refusal names the version it speaks: {ready}"
    );
}

#[tokio::test]
async fn concurrent_legacy_clients_get_their_own_questions_and_answers() {
    let (fixture, _fx) = modern_fixture("127.0.0.1:0".parse().unwrap()).await;
    let gw = start(&fixture, "10s").await;
    let url = gw.url("/mcp/vs");
    let runs = (0..8).map(|i| {
        let url = url.clone();
        async move {
            let caps: Value = serde_json::from_str(ALL_CAPS).unwrap();
            let (c, _) = Legacy::connect(url, caps).await;
            let prompt = format!("question {i}");
            let (before, done) = c
                .tool_answering(
                    1,
                    "fx__test_sampling",
                    json!({"arguments": {"prompt": prompt}}),
                    client_answers,
                )
                .await;
            assert_eq!(
                before.len(),
                1,
                "one question for this client only: {before:?}"
            );
            assert!(
                text(&done).contains(&format!("sampled question {i}")),
                "{i}: {done}"
            );
        }
    });
    futures::future::join_all(runs).await;
}

#[tokio::test]
async fn a_legacy_session_id_on_a_modern_request_is_refused() {
    let (fixture, _fx) = modern_fixture("127.0.0.1:0".parse().unwrap()).await;
    let gw = start(&fixture, "10s").await;
    let caps: Value = serde_json::from_str(ALL_CAPS).unwrap();
    let (c, _) = Legacy::connect(gw.url("/mcp/vs"), caps).await;
    for path in ["/mcp", "/mcp/vs"] {
        let r = modern_post(&gw.url(path), json!(1), "tools/list", json!({}))
            .header("mcp-session-id", &c.session)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{path}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("Mcp-Session-Id"),
            "{body}"
        );
    }
    // The session itself is unharmed.
    let (_, ok) = c.tool(2, "fx__test_simple_text", json!({})).await;
    assert!(ok["result"].is_object(), "{ok}");
}

#[tokio::test]
async fn a_legacy_clients_cancel_stops_the_modern_upstreams_work() {
    let (fixture, fx) = modern_fixture("127.0.0.1:0".parse().unwrap()).await;
    let gw = start(&fixture, "20s").await;
    let caps: Value = serde_json::from_str(ALL_CAPS).unwrap();
    let (c, _) = Legacy::connect(gw.url("/mcp"), caps).await;
    let r = c
        .post(
            json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {
            "name": "fx__test_wait_for_cancel", "_meta": {"progressToken": "p"}}}),
        )
        .await;
    let mut events = Events::new(r);
    let progress = events.until("notifications/progress").await;
    assert_eq!(progress["params"]["progressToken"], "p");
    assert_eq!(fx.cancellations(), 0);
    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": 5, "reason": "changed my mind"}});
    assert_eq!(c.post(cancel).await.status(), 202);
    let deadline = Instant::now() + WAIT;
    while fx.cancellations() == 0 {
        assert!(
            Instant::now() < deadline,
            "the upstream never saw the cancel"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
