//! End-to-end: the real binary aggregating real upstreams (the demo server over stdio and over
//! Streamable HTTP, a dead one), driven over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Client, Gateway, exe};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn demo_stdio(name: &str) -> String {
    format!(
        "    {name}:\n      transport: stdio\n      command: {}\n      args: [demo-server]\n",
        serde_json::to_string(exe()).unwrap()
    )
}

fn names(list: &Value, field: &str) -> Vec<String> {
    list[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

async fn all_tools(c: &mut Client) -> Vec<String> {
    let mut out = Vec::new();
    let mut params = json!({});
    loop {
        let page = c.ok("tools/list", params).await;
        out.extend(names(&page, "tools"));
        match page.get("nextCursor").and_then(Value::as_str) {
            Some(cur) => params = json!({"cursor": cur}),
            None => return out,
        }
    }
}

#[tokio::test]
async fn aggregates_stdio_and_http_upstreams() {
    let http = Gateway::demo_http();
    let yaml = format!(
        "mcp:\n  naming: {{ prefix: always }}\n  servers:\n{}    web:\n      transport: streamable_http\n      url: {}\n",
        demo_stdio("local"),
        http.url("/mcp")
    );
    let gw = Gateway::start(&yaml);
    let ready = gw.wait_ready().await;
    assert_eq!(ready["servers"].as_array().unwrap().len(), 2, "{ready}");
    let mut c = Client::new(gw.url("/mcp"));
    let init = c.initialize().await;
    assert!(init["capabilities"]["tools"].is_object(), "{init}");
    assert!(init["capabilities"]["prompts"].is_object(), "{init}");
    assert_eq!(init["protocolVersion"], "2025-11-25");

    let tools = all_tools(&mut c).await;
    for t in ["local__echo", "web__echo", "local__add", "web__long_task"] {
        assert!(tools.contains(&t.to_string()), "{t} missing from {tools:?}");
    }
    let r = c
        .ok(
            "tools/call",
            json!({"name": "web__add", "arguments": {"a": 2, "b": 3}}),
        )
        .await;
    assert_eq!(r["structuredContent"]["sum"], 5.0, "{r}");
    let r = c
        .ok(
            "tools/call",
            json!({"name": "local__echo", "arguments": {"text": "hi"}}),
        )
        .await;
    assert_eq!(r["content"][0]["text"], "hi", "{r}");

    let prompts = c.ok("prompts/list", json!({})).await;
    assert!(names(&prompts, "prompts").contains(&"local__greeting".to_string()));
    let p = c
        .ok(
            "prompts/get",
            json!({"name": "web__greeting", "arguments": {"name": "Ada"}}),
        )
        .await;
    assert!(p["messages"].to_string().contains("Ada"), "{p}");

    let read = c
        .ok("resources/read", json!({"uri": "demo://readme"}))
        .await;
    assert!(read["contents"][0]["text"].is_string(), "{read}");
    let note = c
        .ok("resources/read", json!({"uri": "demo://notes/alpha"}))
        .await;
    assert_eq!(note["contents"][0]["uri"], "demo://notes/alpha", "{note}");
    let done = c
        .ok(
            "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": "local__greeting"}, "argument": {"name": "name", "value": ""}}),
        )
        .await;
    assert!(
        done["completion"]["values"]
            .as_array()
            .is_some_and(|v| !v.is_empty()),
        "{done}"
    );

    // Unknown tool and bad cursor are clear JSON-RPC errors.
    let r = c
        .request("tools/call", json!({"name": "nope__x", "arguments": {}}))
        .await;
    assert_eq!(r.response()["error"]["code"], -32602);
    let r = c.request("tools/list", json!({"cursor": "garbage"})).await;
    assert_eq!(r.response()["error"]["code"], -32602);
}

#[tokio::test]
async fn when_needed_prefixes_only_collisions() {
    let yaml = format!(
        "mcp:\n  naming: {{ prefix: when_needed }}\n  servers:\n{}{}",
        demo_stdio("one"),
        demo_stdio("two")
    );
    let gw = Gateway::start(&yaml);
    gw.wait_ready().await;
    let mut c = Client::new(gw.url("/mcp"));
    c.initialize().await;
    let tools = all_tools(&mut c).await;
    assert!(tools.contains(&"one__echo".to_string()), "{tools:?}");
    assert!(tools.contains(&"two__echo".to_string()), "{tools:?}");
    assert!(!tools.contains(&"echo".to_string()), "{tools:?}");
}

#[tokio::test]
async fn progress_is_relayed_with_the_clients_token() {
    let gw = Gateway::start(&format!("mcp:\n  servers:\n{}", demo_stdio("demo")));
    gw.wait_ready().await;
    let mut c = Client::new(gw.url("/mcp"));
    c.initialize().await;
    let r = c
        .request(
            "tools/call",
            json!({"name": "demo__long_task", "arguments": {"steps": 3, "delay_ms": 10}, "_meta": {"progressToken": "tok-1"}}),
        )
        .await;
    assert!(
        r.content_type.starts_with("text/event-stream"),
        "{}",
        r.content_type
    );
    let progress: Vec<&Value> = r
        .messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 3, "{:?}", r.messages);
    assert!(
        progress
            .iter()
            .all(|m| m["params"]["progressToken"] == "tok-1")
    );
    assert!(r.response()["result"].is_object());
}

#[tokio::test]
async fn a_dead_upstream_never_blocks_the_others() {
    let yaml = format!(
        "mcp:\n  servers:\n{}    broken:\n      transport: stdio\n      command: mcplane-test-no-such-command\n    silent:\n      transport: streamable_http\n      url: http://127.0.0.1:9/mcp\n      timeouts: {{ connect: 1s }}\n",
        demo_stdio("demo")
    );
    let gw = Gateway::start(&yaml);
    let ready = gw.wait_ready().await;
    let states: Vec<(String, String)> = ready["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().into(),
                s["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(states.contains(&("demo".into(), "ready".into())), "{ready}");
    assert!(
        states.contains(&("broken".into(), "down".into())),
        "{ready}"
    );
    let mut c = Client::new(gw.url("/mcp"));
    c.initialize().await;
    let tools = all_tools(&mut c).await;
    assert!(tools.contains(&"demo__echo".to_string()), "{tools:?}");
    let r = c
        .request("tools/call", json!({"name": "broken__x", "arguments": {}}))
        .await;
    let err = &r.response()["error"];
    assert!(err["message"].as_str().unwrap().contains("broken"), "{err}");
}

#[tokio::test]
async fn fail_closed_lists_name_the_dead_upstream() {
    let yaml = format!(
        "mcp:\n  on_upstream_failure: fail_closed\n  servers:\n{}    broken:\n      transport: stdio\n      command: mcplane-test-no-such-command\n",
        demo_stdio("demo")
    );
    let gw = Gateway::start(&yaml);
    gw.wait_ready().await;
    let mut c = Client::new(gw.url("/mcp"));
    c.initialize().await;
    let r = c.request("tools/list", json!({})).await;
    let err = &r.response()["error"];
    assert!(err["message"].as_str().unwrap().contains("broken"), "{err}");
}

#[tokio::test]
async fn sigterm_drains_and_stops_children() {
    let marker = format!("mcplane-e2e-{}", std::process::id());
    let yaml = format!(
        "mcp:\n  servers:\n{}      env: {{ MCPLANE_E2E_MARK: {marker} }}\n",
        demo_stdio("demo")
    );
    let mut gw = Gateway::start(&yaml);
    gw.wait_ready().await;
    let mut c = Client::new(gw.url("/mcp"));
    c.initialize().await;
    assert_eq!(children_with(&marker), 1, "the demo child should run");
    let status = gw.terminate();
    assert!(status.success(), "{status:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while children_with(&marker) > 0 {
        assert!(Instant::now() < deadline, "the demo child outlived mcplane");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Processes whose environment carries `MCPLANE_E2E_MARK=marker`.
fn children_with(marker: &str) -> usize {
    let needle = format!("MCPLANE_E2E_MARK={marker}");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .filter(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            let zombie = stat
                .rsplit(')')
                .next()
                .is_some_and(|s| s.trim_start().starts_with('Z'));
            !zombie
                && std::fs::read(e.path().join("environ"))
                    .map(|env| env.split(|b| *b == 0).any(|v| v == needle.as_bytes()))
                    .unwrap_or(false)
        })
        .count()
}

#[test]
fn stdio_mode_serves_one_session() {
    use std::io::{BufRead, BufReader, Write};
    let dir = common::tempdir::Dir::new();
    let path = dir.0.join("m.yaml");
    std::fs::write(&path, format!("mcp:\n  servers:\n{}", demo_stdio("demo"))).unwrap();
    let mut child = std::process::Command::new(exe())
        .args(["stdio", "--config"])
        .arg(&path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    writeln!(stdin, r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocolVersion":"2025-06-18","capabilities":{{}},"clientInfo":{{"name":"t","version":"0"}}}}}}"#).unwrap();
    let init: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18");
    writeln!(
        stdin,
        r#"{{"jsonrpc":"2.0","method":"notifications/initialized"}}"#
    )
    .unwrap();
    writeln!(stdin, "not json").unwrap();
    let bad: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(bad["error"]["code"], -32700);
    writeln!(stdin, r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"demo__echo","arguments":{{"text":"x"}}}}}}"#).unwrap();
    let r: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(r["result"]["content"][0]["text"], "x", "{r}");
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn check_reports_key_paths() {
    let dir = common::tempdir::Dir::new();
    let bad = dir.0.join("bad.yaml");
    std::fs::write(
        &bad,
        "mcp:\n  servers:\n    x: { transport: stdio, comand: y }\n",
    )
    .unwrap();
    let out = std::process::Command::new(exe())
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mcp.servers.x"), "{err}");
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/design-example.yaml"
    );
    let out = std::process::Command::new(exe())
        .args(["check", "--config", example])
        .env("GITHUB_TOKEN", "t")
        .env("OPENAI_API_KEY", "k")
        .env("MCPLANE_AUDIT_KEY", "a")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("not active yet"), "{err}");
}

#[tokio::test]
async fn concurrent_clients_with_the_same_ids_get_their_own_answers() {
    let gw = Gateway::start(&format!("mcp:\n  servers:\n{}", demo_stdio("demo")));
    gw.wait_ready().await;
    let mut clients = Vec::new();
    for _ in 0..4 {
        let mut c = Client::new(gw.url("/mcp"));
        c.initialize().await;
        clients.push(c);
    }
    let runs = clients.into_iter().enumerate().map(|(n, mut c)| async move {
        for round in 0..20 {
            let text = format!("client-{n}-round-{round}");
            // Every client uses the same JSON-RPC id for every call.
            let r = c
                .post(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                    "params": {"name": "demo__long_task", "arguments": {"steps": 1, "delay_ms": 1}}}))
                .await;
            assert_eq!(r.response()["id"], 7);
            let r = c
                .post(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                    "params": {"name": "demo__echo", "arguments": {"text": text}}}))
                .await;
            assert_eq!(r.response()["result"]["content"][0]["text"], text);
        }
    });
    futures::future::join_all(runs).await;
}

#[tokio::test]
async fn sessions_share_an_upstream_subscription_until_the_last_one_leaves() {
    use mcplane_testkit::conformance::{WATCHED_URI, serve_conformance_fixture};
    let (fixture_http, fixture) = serve_conformance_fixture("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    // The session era: a subscription is mcplane's upstream session's (see
    // modern_upstream_e2e.rs for the same through a subscriptions/listen stream).
    let gw = Gateway::start(&format!(
        "mcp:\n  naming: {{ prefix: never }}\n  servers:\n    fx:\n      transport: streamable_http\n      url: {}\n      protocol: stateful\n",
        fixture_http.url()
    ));
    gw.wait_ready().await;
    let (mut a, mut b) = (Client::new(gw.url("/mcp")), Client::new(gw.url("/mcp")));
    a.initialize().await;
    b.initialize().await;
    a.ok("resources/subscribe", json!({"uri": WATCHED_URI}))
        .await;
    b.ok("resources/subscribe", json!({"uri": WATCHED_URI}))
        .await;
    // mcplane's one upstream session is subscribed.
    assert_eq!(fixture.update_resource(WATCHED_URI), 1);
    a.ok("resources/unsubscribe", json!({"uri": WATCHED_URI}))
        .await;
    assert_eq!(
        fixture.update_resource(WATCHED_URI),
        1,
        "b still needs the subscription"
    );
    b.ok("resources/unsubscribe", json!({"uri": WATCHED_URI}))
        .await;
    assert_eq!(
        fixture.update_resource(WATCHED_URI),
        0,
        "nobody needs it any more"
    );

    // A session that goes away releases its subscription too.
    a.ok("resources/subscribe", json!({"uri": WATCHED_URI}))
        .await;
    assert_eq!(fixture.update_resource(WATCHED_URI), 1);
    let r = a
        .http
        .delete(gw.url("/mcp"))
        .header("mcp-session-id", a.session.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let deadline = Instant::now() + Duration::from_secs(10);
    while fixture.update_resource(WATCHED_URI) != 0 {
        assert!(
            Instant::now() < deadline,
            "the upstream subscription outlived its last session"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
