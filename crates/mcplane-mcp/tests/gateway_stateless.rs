//! The gateway between stateless (2026-07-28) clients and a session-based upstream, over an
//! in-memory upstream: server→client requests bridged to `input_required` rounds (keys, answers
//! in the upstream's own ids, several at once), undeclared capabilities refused with -32021,
//! a closed response stream cancelling the upstream call, an expired round failing the
//! upstream's request, `server/discover` and cache hints, and `subscriptions/listen` fed by the
//! upstream (with the upstream subscription it needs), a `list_changed` storm coalesced and the
//! re-listing after it served by one upstream fetch.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use async_trait::async_trait;
use mcplane_mcp::gateway::Gateway;
use mcplane_mcp::jsonrpc::Message;
use mcplane_mcp::server::{ModernDispatch, Server, ServerOptions};
use mcplane_mcp::upstream::{Incoming, Opener, Pipe, Upstream, UpstreamError};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Everything the gateway sent the upstream.
type Log = Arc<Mutex<Vec<Value>>>;

/// A session-based upstream: `ask` elicits (request id "u1"), `ask_two` samples (id 41) and
/// lists roots (id "roots") at once, `needs_sampling` fails if sampling is refused, `hang`
/// never answers; `resources/subscribe` works.
struct FakeUpstream {
    tx: mpsc::Sender<Incoming>,
    log: Log,
    /// Server→client request id → the tools/call it belongs to.
    waiting: Mutex<HashMap<String, (u64, usize)>>,
    answers: Mutex<HashMap<u64, Vec<Value>>>,
}

fn send(tx: &mpsc::Sender<Incoming>, message: Value) {
    tx.try_send(Incoming {
        message,
        related_to: None,
    })
    .unwrap();
}

impl FakeUpstream {
    fn ask(&self, call: u64, expect: usize, id: Value, method: &str, params: Value) {
        let key = match &id {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        self.waiting.lock().unwrap().insert(key, (call, expect));
        send(
            &self.tx,
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
        );
    }
}

#[async_trait]
impl Pipe for FakeUpstream {
    async fn send(&self, message: Value, request_id: Option<u64>) -> Result<(), UpstreamError> {
        self.log.lock().unwrap().push(message.clone());
        let method = message["method"].as_str().unwrap_or_default();
        if let Some(id) = request_id {
            let result = match method {
                "initialize" => json!({
                    "protocolVersion": "2025-11-25",
                    "capabilities": {"tools": {"listChanged": true}, "resources": {"subscribe": true}},
                    "serverInfo": {"name": "fake", "version": "1"},
                }),
                "tools/list" => json!({"tools": [
                    {"name": "ask", "inputSchema": {"type": "object"}},
                    {"name": "ask_two", "inputSchema": {"type": "object"}},
                    {"name": "needs_sampling", "inputSchema": {"type": "object"}},
                    {"name": "hang", "inputSchema": {"type": "object"}},
                ]}),
                "resources/list" => json!({"resources": [{"uri": "test://r", "name": "r"}]}),
                "resources/templates/list" => json!({"resourceTemplates": []}),
                "resources/subscribe" | "resources/unsubscribe" => json!({}),
                "tools/call" => {
                    match message["params"]["name"].as_str().unwrap_or_default() {
                        "ask" => self.ask(
                            id,
                            1,
                            json!("u1"),
                            "elicitation/create",
                            json!({"message": "name?", "requestedSchema": {"type": "object"}}),
                        ),
                        "ask_two" => {
                            self.ask(
                                id,
                                2,
                                json!(41),
                                "sampling/createMessage",
                                json!({"messages": [], "maxTokens": 5}),
                            );
                            self.ask(id, 2, json!("roots"), "roots/list", json!({}));
                        }
                        "needs_sampling" => self.ask(
                            id,
                            1,
                            json!(7),
                            "sampling/createMessage",
                            json!({"messages": [], "maxTokens": 5}),
                        ),
                        _ => {}
                    }
                    return Ok(());
                }
                _ => {
                    send(
                        &self.tx,
                        json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "no"}}),
                    );
                    return Ok(());
                }
            };
            send(
                &self.tx,
                json!({"jsonrpc": "2.0", "id": id, "result": result}),
            );
            return Ok(());
        }
        // A reply to one of our server→client requests.
        if let Some(reply_id) = message.get("id") {
            let key = match reply_id {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let Some((call, expect)) = self.waiting.lock().unwrap().remove(&key) else {
                return Ok(());
            };
            let done = {
                let mut answers = self.answers.lock().unwrap();
                let got = answers.entry(call).or_default();
                got.push(message.clone());
                (got.len() == expect).then(|| got.clone())
            };
            if let Some(got) = done {
                let failed = got.iter().find(|m| m.get("error").is_some());
                let out = match failed {
                    Some(f) => json!({"jsonrpc": "2.0", "id": call, "error": {
                        "code": -32603, "message": format!("the client refused: {}", f["error"]["message"])}}),
                    None => json!({"jsonrpc": "2.0", "id": call, "result": {
                        "content": [{"type": "text", "text": "answered"}],
                        "structuredContent": {"answers": got.iter().map(|m| m["result"].clone()).collect::<Vec<_>>()},
                    }}),
                };
                send(&self.tx, out);
            }
        }
        Ok(())
    }

    async fn close(&self) {}
}

struct Rig {
    server: Arc<Server>,
    log: Log,
    upstream_tx: mpsc::Sender<Incoming>,
    shutdown: CancellationToken,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn rig(options: ServerOptions) -> Rig {
    let log: Log = Arc::default();
    let (upstream_tx, upstream_rx) = mpsc::channel(64);
    let slot = Arc::new(Mutex::new(Some((upstream_tx.clone(), upstream_rx))));
    let pipe_log = log.clone();
    let opener: Opener = Arc::new(move |_config| {
        let (tx, rx) = slot.lock().unwrap().take().expect("opened once");
        let pipe = FakeUpstream {
            tx,
            log: pipe_log.clone(),
            waiting: Mutex::default(),
            answers: Mutex::default(),
        };
        Box::pin(async move { Ok((Box::new(pipe) as Box<dyn Pipe>, rx)) })
    });
    let yaml = "mcp:\n  naming: { prefix: never }\n  cache_ttl: 5s\n  servers:\n    fake: { transport: stdio, command: unused }\n";
    let config = mcplane_config::parse(yaml, &|_| None).unwrap().config;
    let (events_tx, events_rx) = mpsc::channel(64);
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let up = Upstream::spawn(
        config.mcp.servers[0].clone(),
        opener,
        events_tx,
        shutdown.clone(),
        &tasks,
    );
    let gateway = Gateway::new(&config.mcp, vec![up]);
    tokio::spawn(gateway.clone().route_events(events_rx));
    gateway.wait_ready().await;
    Rig {
        server: Server::with_options(gateway, options),
        log,
        upstream_tx,
        shutdown,
    }
}

fn meta(capabilities: Value) -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": capabilities,
    })
}

fn all_caps() -> Value {
    json!({"sampling": {}, "elicitation": {}, "roots": {}})
}

fn call(id: i64, tool: &str, extra: Value) -> Message {
    let mut params = json!({"name": tool, "arguments": {}, "_meta": meta(all_caps())});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        params[k] = v;
    }
    Message::request(json!(id), "tools/call", Some(params))
}

impl Rig {
    async fn stream(&self, msg: Message) -> mpsc::Receiver<Value> {
        match self.server.dispatch_modern(msg, None).await {
            ModernDispatch::Reply(rx) => rx,
            ModernDispatch::Rejected { error, .. } => panic!("rejected: {error}"),
            ModernDispatch::Accepted => panic!("accepted"),
        }
    }

    async fn last(&self, msg: Message) -> Value {
        let mut rx = self.stream(msg).await;
        let mut last = None;
        while let Some(v) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("an answer in time")
        {
            last = Some(v);
        }
        last.expect("a response")
    }

    fn sent(&self) -> Vec<Value> {
        self.log.lock().unwrap().clone()
    }

    async fn eventually(&self, what: &str, check: impl Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !check(&self.sent()) {
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test]
async fn an_upstream_question_becomes_an_input_required_round() {
    let rig = rig(ServerOptions::default()).await;
    let v = rig.last(call(1, "ask", json!({}))).await;
    let r = &v["result"];
    assert_eq!(r["resultType"], "input_required", "{v}");
    assert_eq!(r["inputRequests"]["u1"]["method"], "elicitation/create");
    assert_eq!(r["inputRequests"]["u1"]["params"]["message"], "name?");
    assert!(
        r["inputRequests"]["u1"]["params"].get("_meta").is_none(),
        "mcplane's key hint is not shown: {r}"
    );
    let state = r["requestState"].clone();
    let answer = json!({"action": "accept", "content": {"name": "Ada"}});
    let v = rig
        .last(call(
            2,
            "ask",
            json!({"inputResponses": {"u1": answer}, "requestState": state}),
        ))
        .await;
    assert_eq!(v["id"], 2);
    assert_eq!(v["result"]["resultType"], "complete", "{v}");
    assert_eq!(v["result"]["structuredContent"]["answers"][0], answer);
    // The answer reached the upstream under its own id; the call was relayed without the
    // client's protocol _meta, inputResponses or requestState.
    let sent = rig.sent();
    assert!(
        sent.iter()
            .any(|m| m["id"] == "u1" && m["result"] == answer)
    );
    let relayed = sent.iter().find(|m| m["method"] == "tools/call").unwrap();
    assert_eq!(relayed["params"], json!({"name": "ask", "arguments": {}}));
    assert_eq!(rig.server.parked_count(), 0);
}

#[tokio::test]
async fn questions_sent_together_come_in_one_result() {
    let rig = rig(ServerOptions::default()).await;
    let v = rig.last(call(1, "ask_two", json!({}))).await;
    let requests = v["result"]["inputRequests"].as_object().unwrap();
    let mut keys: Vec<&String> = requests.keys().collect();
    keys.sort();
    assert_eq!(keys, ["41", "roots"], "{v}");
    let state = v["result"]["requestState"].clone();
    let responses = json!({
        "41": {"role": "assistant", "content": {"type": "text", "text": "hi"}, "model": "m"},
        "roots": {"roots": [{"uri": "file:///x"}]},
    });
    let v = rig
        .last(call(
            2,
            "ask_two",
            json!({"inputResponses": responses, "requestState": state}),
        ))
        .await;
    assert_eq!(v["result"]["resultType"], "complete", "{v}");
    let sent = rig.sent();
    assert!(
        sent.iter()
            .any(|m| m["id"] == 41 && m["result"]["model"] == "m")
    );
    assert!(
        sent.iter()
            .any(|m| m["id"] == "roots" && m.get("result").is_some())
    );
}

#[tokio::test]
async fn an_undeclared_capability_is_refused_upstream_and_reported() {
    let rig = rig(ServerOptions::default()).await;
    let mut msg = call(1, "needs_sampling", json!({}));
    msg.params_mut().unwrap()["_meta"] = meta(json!({"elicitation": {}}));
    let v = rig.last(msg).await;
    assert_eq!(v["error"]["code"], -32021, "{v}");
    assert_eq!(
        v["error"]["data"]["requiredCapabilities"],
        json!({"sampling": {}})
    );
    let refusal = rig.sent().into_iter().find(|m| m["id"] == 7).unwrap();
    assert_eq!(refusal["error"]["code"], -32021, "{refusal}");
}

#[tokio::test]
async fn closing_the_stream_cancels_the_upstream_call() {
    let rig = rig(ServerOptions::default()).await;
    let rx = rig.stream(call(1, "hang", json!({}))).await;
    rig.eventually("the call upstream", |s| {
        s.iter().any(|m| m["params"]["name"] == "hang")
    })
    .await;
    let upstream_id = rig
        .sent()
        .into_iter()
        .find(|m| m["params"]["name"] == "hang")
        .unwrap()["id"]
        .clone();
    drop(rx);
    rig.eventually("notifications/cancelled upstream", |s| {
        s.iter().any(|m| {
            m["method"] == "notifications/cancelled" && m["params"]["requestId"] == upstream_id
        })
    })
    .await;
}

#[tokio::test]
async fn an_expired_round_fails_the_upstream_request() {
    let rig = rig(ServerOptions {
        input_timeout: Duration::from_millis(200),
        ..ServerOptions::default()
    })
    .await;
    let v = rig.last(call(1, "ask", json!({}))).await;
    let state = v["result"]["requestState"].clone();
    assert_eq!(rig.server.parked_count(), 1);
    rig.eventually("an error reply for u1", |s| {
        s.iter()
            .any(|m| m["id"] == "u1" && m.get("error").is_some())
    })
    .await;
    assert_eq!(rig.server.parked_count(), 0);
    // The upstream gave up with an error once refused; a late retry finds nothing.
    let late = rig
        .last(call(
            2,
            "ask",
            json!({"inputResponses": {"u1": {"action": "accept"}}, "requestState": state}),
        ))
        .await;
    assert_eq!(late["error"]["code"], -32602, "{late}");
}

#[tokio::test]
async fn discover_and_cache_hints() {
    let rig = rig(ServerOptions::default()).await;
    let discover = Message::request(
        json!(1),
        "server/discover",
        Some(json!({"_meta": meta(json!({}))})),
    );
    let v = rig.last(discover).await;
    let r = &v["result"];
    assert_eq!(r["capabilities"]["tools"]["listChanged"], true, "{v}");
    assert_eq!(
        r["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "mcplane"
    );
    assert_eq!(
        (r["ttlMs"].clone(), r["cacheScope"].clone()),
        (json!(5000), json!("public"))
    );
    let list = Message::request(
        json!(2),
        "tools/list",
        Some(json!({"_meta": meta(json!({}))})),
    );
    let v = rig.last(list).await;
    assert_eq!(v["result"]["ttlMs"], 5000);
    assert_eq!(v["result"]["cacheScope"], "public");
    assert_eq!(v["result"]["tools"].as_array().unwrap().len(), 4);
    // Nobody serves prompts: the method does not exist for a stateless client.
    let prompts = Message::request(
        json!(3),
        "prompts/list",
        Some(json!({"_meta": meta(json!({}))})),
    );
    assert_eq!(rig.last(prompts).await["error"]["code"], -32601);
}

#[tokio::test]
async fn listeners_get_what_they_asked_for_and_hold_the_upstream_subscription() {
    let rig = rig(ServerOptions::default()).await;
    let listen = Message::request(
        json!("L"),
        "subscriptions/listen",
        Some(json!({"_meta": meta(json!({})), "notifications": {
            "toolsListChanged": true, "promptsListChanged": true,
            "resourceSubscriptions": ["test://r", "test://unknown"],
        }})),
    );
    let mut rx = rig.stream(listen).await;
    let ack = rx.recv().await.unwrap();
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
    assert_eq!(
        ack["params"]["notifications"],
        json!({"toolsListChanged": true, "resourceSubscriptions": ["test://r", "test://unknown"]}),
        "prompts are not served; an unlisted URI goes to the only upstream serving resources"
    );
    assert!(
        rig.sent()
            .iter()
            .any(|m| m["method"] == "resources/subscribe" && m["params"]["uri"] == "test://r")
    );
    for note in [
        json!({"jsonrpc": "2.0", "method": "notifications/prompts/list_changed"}),
        json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}),
        json!({"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {"uri": "test://r"}}),
    ] {
        send(&rig.upstream_tx, note);
    }
    let first = rx.recv().await.unwrap();
    assert_eq!(
        first["method"], "notifications/tools/list_changed",
        "{first}"
    );
    assert_eq!(
        first["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "L"
    );
    let second = rx.recv().await.unwrap();
    assert_eq!(second["method"], "notifications/resources/updated");
    assert_eq!(second["params"]["uri"], "test://r");
    assert_eq!(
        second["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "L"
    );
    drop(rx);
    rig.eventually("resources/unsubscribe upstream", |s| {
        s.iter()
            .any(|m| m["method"] == "resources/unsubscribe" && m["params"]["uri"] == "test://r")
    })
    .await;
}

#[tokio::test]
async fn a_list_changed_storm_is_coalesced_and_re_listing_fetches_once() {
    let rig = rig(ServerOptions::default()).await;
    let tools_lists = |rig: &Rig| {
        rig.sent()
            .iter()
            .filter(|m| m["method"] == "tools/list")
            .count()
    };
    let listen = Message::request(
        json!("L"),
        "subscriptions/listen",
        Some(json!({"_meta": meta(json!({})), "notifications": {"toolsListChanged": true}})),
    );
    let mut rx = rig.stream(listen).await;
    assert_eq!(
        rx.recv().await.unwrap()["method"],
        "notifications/subscriptions/acknowledged"
    );
    let list = || {
        Message::request(
            json!(1),
            "tools/list",
            Some(json!({"_meta": meta(json!({}))})),
        )
    };
    rig.last(list()).await;
    let before = tools_lists(&rig);
    for _ in 0..500 {
        rig.upstream_tx
            .send(Incoming {
                message: json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}),
                related_to: None,
            })
            .await
            .unwrap();
    }
    // The storm reaches the listener as a handful of notifications: the first at once, the
    // rest folded into one per window; then it goes quiet.
    let mut announced = 0;
    while let Ok(Some(n)) = tokio::time::timeout(
        mcplane_mcp::gateway::list_cache::COALESCE_WINDOW * 3,
        rx.recv(),
    )
    .await
    {
        assert_eq!(n["method"], "notifications/tools/list_changed");
        announced += 1;
    }
    assert!(
        (1..=5).contains(&announced),
        "500 changes became {announced} notifications"
    );
    // Every client re-lists at once: the upstream is asked once, and the list is current.
    let lists: Vec<_> = (0..40).map(|_| rig.last(list())).collect();
    for v in futures::future::join_all(lists).await {
        assert_eq!(v["result"]["tools"].as_array().unwrap().len(), 4, "{v}");
    }
    assert_eq!(
        tools_lists(&rig),
        before + 1,
        "one upstream fetch serves every client after a change"
    );
}
