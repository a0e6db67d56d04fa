//! End-to-end: virtual servers (`/mcp/{name}`) and capability-accurate aggregation, with the
//! real binary in front of the demo server (stdio) and two "MCP Apps" fixtures (Streamable HTTP,
//! in this process) whose tools carry annotations, outputSchema, icons, title, `_meta` and a
//! `ui://` app with the same URI on both.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use async_trait::async_trait;
use common::{Client, Gateway, exe, http};
use futures::StreamExt;
use mcplane_mcp::jsonrpc::{RESOURCE_NOT_FOUND, RpcError};
use mcplane_mcp::server::{RequestContext, Service, Session};
use mcplane_testkit::http::HttpFixture;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The `ui://` URI both app fixtures use for their app.
const APP_URI: &str = "ui://widget/app.html";

/// An upstream with one MCP App tool (`weather`), a `secret` tool and the app's `ui://`
/// resource. Everything it returns names its label, so a test can tell the upstreams apart.
struct AppsFixture {
    label: &'static str,
}

impl AppsFixture {
    fn weather_tool(&self) -> Value {
        json!({
            "name": "weather",
            "title": "Weather",
            "description": "Current weather, with an interactive view.",
            "inputSchema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            "outputSchema": {"type": "object", "properties": {"label": {"type": "string"}, "city": {"type": "string"}}, "required": ["label"]},
            "annotations": {"title": "Weather", "readOnlyHint": true, "destructiveHint": false, "idempotentHint": true, "openWorldHint": true},
            "icons": [{"src": "https://example.com/weather.png", "mimeType": "image/png", "sizes": ["48x48"]}],
            "_meta": {
                "ui": {"resourceUri": APP_URI, "visibility": ["model", "app"]},
                "openai/outputTemplate": APP_URI,
                "com.example/owner": {"label": self.label},
            },
            "x-unknown-field": {"kept": true},
        })
    }
}

#[async_trait]
impl Service for AppsFixture {
    async fn initialize(&self, _: &Arc<Session>) -> Result<Value, RpcError> {
        Ok(json!({
            "capabilities": {"tools": {}, "resources": {}},
            "serverInfo": {"name": format!("apps-{}", self.label), "version": "0"},
        }))
    }

    async fn request(
        &self,
        _: &RequestContext,
        method: &str,
        params: Option<Value>,
    ) -> Result<Value, RpcError> {
        let params = params.unwrap_or_default();
        match method {
            "tools/list" => Ok(json!({"tools": [
                self.weather_tool(),
                {"name": "secret", "description": "Never exposed by the support virtual server.", "inputSchema": {"type": "object"}},
            ]})),
            "tools/call" => match params["name"].as_str() {
                Some("weather") => Ok(json!({
                    "content": [{"type": "text", "text": format!("sunny ({})", self.label)}],
                    "structuredContent": {"label": self.label, "city": params["arguments"]["city"]},
                    "_meta": {"ui": {"resourceUri": APP_URI}},
                })),
                Some("secret") => Ok(json!({"content": [{"type": "text", "text": "the secret"}]})),
                other => Err(RpcError::invalid_params(format!("Unknown tool: {other:?}"))),
            },
            "resources/list" => Ok(json!({"resources": [
                {"uri": APP_URI, "name": "weather-app", "mimeType": "text/html;profile=mcp-app",
                 "_meta": {"ui": {"prefersBorder": true}}},
            ]})),
            "resources/templates/list" => Ok(json!({"resourceTemplates": []})),
            "resources/read" if params["uri"] == APP_URI => Ok(json!({"contents": [
                {"uri": APP_URI, "mimeType": "text/html;profile=mcp-app", "text": format!("<html>{}</html>", self.label)},
            ]})),
            "resources/read" => Err(RpcError::new(RESOURCE_NOT_FOUND, "no such resource")),
            other => Err(RpcError::method_not_found(other)),
        }
    }
}

async fn apps_fixture(label: &'static str) -> HttpFixture {
    mcplane_testkit::http::serve(
        Arc::new(AppsFixture { label }),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap()
}

fn demo_stdio(name: &str) -> String {
    format!(
        "    {name}:\n      transport: stdio\n      command: {}\n      args: [demo-server]\n",
        serde_json::to_string(exe()).unwrap()
    )
}

fn http_upstream(name: &str, fixture: &HttpFixture) -> String {
    format!(
        "    {name}:\n      transport: streamable_http\n      url: {}\n",
        fixture.url()
    )
}

fn names(list: &Value, field: &str, key: &str) -> Vec<String> {
    let mut v: Vec<String> = list[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t[key].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// Every page of a list.
async fn all(c: &mut Client, method: &str, field: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut params = json!({});
    loop {
        let page = c.ok(method, params).await;
        out.extend(page[field].as_array().unwrap().iter().cloned());
        match page.get("nextCursor").and_then(Value::as_str) {
            Some(cur) => params = json!({"cursor": cur}),
            None => return out,
        }
    }
}

async fn tool_names(c: &mut Client) -> Vec<String> {
    let tools = all(c, "tools/list", "tools").await;
    names(&json!({ "tools": tools }), "tools", "name")
}

fn find<'a>(items: &'a [Value], key: &str, value: &str) -> &'a Value {
    items
        .iter()
        .find(|t| t[key] == value)
        .unwrap_or_else(|| panic!("{value} not in {items:?}"))
}

fn support_yaml(alpha: &HttpFixture, beta: &HttpFixture) -> String {
    format!(
        "mcp:
  naming: {{ prefix: always }}
  servers:
{}{}{}  virtual_servers:
    support:
      description: Support desk tools
      include: [demo/echo, demo/add, demo/greeting, 'demo/demo://readme', 'alpha/*']
      exclude: [alpha/secret]
      overrides:
        demo/echo: {{ name: say, title: Say, description: Repeats what you say. }}
    plain:
      prefix: never
      include: ['beta/*']
",
        http_upstream("alpha", alpha),
        http_upstream("beta", beta),
        demo_stdio("demo"),
    )
}

#[tokio::test]
async fn virtual_server_lists_and_calls_only_its_curated_items() {
    let (alpha, beta) = (apps_fixture("alpha").await, apps_fixture("beta").await);
    let gw = Gateway::start(&support_yaml(&alpha, &beta));
    let ready = gw.wait_ready().await;
    let vs = ready["virtual_servers"].as_array().unwrap();
    assert_eq!(vs.len(), 2, "{ready}");

    let mut c = Client::new(gw.url("/mcp/support"));
    let init = c.initialize().await;
    assert_eq!(init["serverInfo"]["name"], "mcplane/support", "{init}");
    assert_eq!(init["instructions"], "Support desk tools", "{init}");
    assert_eq!(init["capabilities"]["tools"]["listChanged"], true, "{init}");

    assert_eq!(
        tool_names(&mut c).await,
        ["alpha__weather", "demo__add", "say"]
    );
    let tools = all(&mut c, "tools/list", "tools").await;
    let say = find(&tools, "name", "say");
    assert_eq!(say["title"], "Say");
    assert_eq!(say["description"], "Repeats what you say.");
    // What the override does not touch is the upstream's.
    assert_eq!(say["annotations"]["readOnlyHint"], true, "{say}");
    assert_eq!(say["inputSchema"]["required"], json!(["text"]), "{say}");
    let add = find(&tools, "name", "demo__add");
    assert_eq!(add["outputSchema"]["required"], json!(["sum"]), "{add}");

    let r = c
        .ok(
            "tools/call",
            json!({"name": "say", "arguments": {"text": "hi"}}),
        )
        .await;
    assert_eq!(r["content"][0]["text"], "hi", "{r}");
    let r = c
        .ok(
            "tools/call",
            json!({"name": "demo__add", "arguments": {"a": 2, "b": 3}}),
        )
        .await;
    assert_eq!(r["structuredContent"]["sum"], 5.0, "{r}");

    // A hidden tool is not callable by any name: every attempt is the same "unknown tool".
    let unknown = c
        .request(
            "tools/call",
            json!({"name": "no_such_tool", "arguments": {}}),
        )
        .await
        .response()["error"]
        .clone();
    assert_eq!(unknown["code"], -32602, "{unknown}");
    for name in [
        "echo",
        "demo__echo",
        "demo__long_task",
        "long_task",
        "alpha__secret",
        "secret",
        "beta__weather",
        "weather",
        "demo/echo",
    ] {
        let r = c
            .request(
                "tools/call",
                json!({"name": name, "arguments": {"text": "x"}}),
            )
            .await;
        let err = &r.response()["error"];
        assert_eq!(err["code"], unknown["code"], "{name}: {err}");
        assert_eq!(
            err["message"],
            format!("Unknown tool: {name}"),
            "{name}: {err}"
        );
        assert!(err.get("data").is_none(), "{name}: {err}");
    }

    // Prompts, completion, resources and templates are curated the same way.
    let prompts = c.ok("prompts/list", json!({})).await;
    assert_eq!(names(&prompts, "prompts", "name"), ["demo__greeting"]);
    let p = c
        .ok(
            "prompts/get",
            json!({"name": "demo__greeting", "arguments": {"name": "Ada"}}),
        )
        .await;
    assert!(p["messages"].to_string().contains("Ada"), "{p}");
    let done = c
        .ok(
            "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": "demo__greeting"}, "argument": {"name": "name", "value": ""}}),
        )
        .await;
    assert!(done["completion"]["values"].is_array(), "{done}");
    let resources = c.ok("resources/list", json!({})).await;
    assert_eq!(
        names(&resources, "resources", "uri"),
        ["demo://readme", APP_URI]
    );
    let templates = c.ok("resources/templates/list", json!({})).await;
    assert_eq!(templates["resourceTemplates"], json!([]), "{templates}");
    let readme = c
        .ok("resources/read", json!({"uri": "demo://readme"}))
        .await;
    assert!(readme["contents"][0]["text"].is_string(), "{readme}");
    let app = c.ok("resources/read", json!({"uri": APP_URI})).await;
    assert_eq!(app["contents"][0]["text"], "<html>alpha</html>", "{app}");
    for hidden in ["demo://notes/alpha", "ui://beta/widget/app.html"] {
        let r = c.request("resources/read", json!({"uri": hidden})).await;
        assert_eq!(
            r.response()["error"]["code"],
            RESOURCE_NOT_FOUND,
            "{hidden}: {:?}",
            r.messages
        );
    }
    let r = c
        .request(
            "completion/complete",
            json!({"ref": {"type": "ref/resource", "uri": "demo://notes/{name}"}, "argument": {"name": "name", "value": ""}}),
        )
        .await;
    assert!(r.response().get("error").is_some(), "{:?}", r.messages);

    // The default endpoint is still the full catalogue.
    let mut full = Client::new(gw.url("/mcp"));
    full.initialize().await;
    let tools = tool_names(&mut full).await;
    for t in [
        "demo__echo",
        "demo__long_task",
        "alpha__secret",
        "beta__weather",
    ] {
        assert!(tools.contains(&t.to_string()), "{t} missing from {tools:?}");
    }
    assert!(!tools.contains(&"say".to_string()));

    // A session of one endpoint is unknown to the others.
    let mut other = Client::new(gw.url("/mcp/plain"));
    other.session = c.session.clone();
    let r = other.request("tools/list", json!({})).await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn an_unknown_virtual_server_is_a_404_with_a_json_body() {
    let gw = Gateway::start(&format!(
        "mcp:\n  servers:\n{}  virtual_servers:\n    support: {{ include: [demo/echo] }}\n",
        demo_stdio("demo")
    ));
    gw.wait_ready().await;
    let client = http();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}});
    for (method, path) in [
        ("POST", "/mcp/nope"),
        ("GET", "/mcp/nope/sse"),
        ("POST", "/mcp/nope/messages?sessionId=x"),
        ("POST", "/mcp/support/elsewhere"),
    ] {
        let r = client
            .request(method.parse().unwrap(), gw.url(path))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(init.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{method} {path}");
        assert_eq!(
            r.headers()["content-type"],
            "application/json",
            "{method} {path}"
        );
        let body: Value = r.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("nope") || message.contains("elsewhere"),
            "{message}"
        );
        assert!(!message.contains("echo"), "{message}");
    }
    // The real one answers.
    let mut c = Client::new(gw.url("/mcp/support"));
    c.initialize().await;
    assert_eq!(tool_names(&mut c).await, ["demo__echo"]);
}

#[tokio::test]
async fn legacy_sse_serves_virtual_servers_too() {
    let gw = Gateway::start(&format!(
        "mcp:\n  servers:\n{}  virtual_servers:\n    support: {{ include: [demo/add] }}\n",
        demo_stdio("demo")
    ));
    gw.wait_ready().await;
    let client = http();
    let stream = client
        .get(gw.url("/mcp/support/sse"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut events = SseEvents::new(stream);
    let endpoint = events.next_data().await;
    assert!(
        endpoint.starts_with("/mcp/support/messages?sessionId="),
        "{endpoint}"
    );
    let post = |body: Value| {
        let client = client.clone();
        let url = gw.url(&endpoint);
        async move {
            let r = client
                .post(url)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
        }
    };
    post(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}})).await;
    let init: Value = serde_json::from_str(&events.next_data().await).unwrap();
    assert_eq!(
        init["result"]["serverInfo"]["name"], "mcplane/support",
        "{init}"
    );
    post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
    post(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})).await;
    let list: Value = serde_json::from_str(&events.next_data().await).unwrap();
    assert_eq!(names(&list["result"], "tools", "name"), ["demo__add"]);
}

#[tokio::test]
async fn tool_metadata_and_apps_survive_namespacing_and_curation() {
    let (alpha, beta) = (apps_fixture("alpha").await, apps_fixture("beta").await);
    let gw = Gateway::start(&support_yaml(&alpha, &beta));
    gw.wait_ready().await;
    let mut c = Client::new(gw.url("/mcp"));
    c.initialize().await;
    let tools = all(&mut c, "tools/list", "tools").await;
    let fixture = AppsFixture { label: "x" };
    for (name, label, app) in [
        ("alpha__weather", "alpha", APP_URI),
        ("beta__weather", "beta", "ui://beta/widget/app.html"),
    ] {
        let tool = find(&tools, "name", name);
        // Exactly the upstream's definition: only the name and a colliding ui:// URI differ.
        let mut expected = AppsFixture { label }.weather_tool();
        expected["name"] = name.into();
        expected["_meta"]["ui"]["resourceUri"] = app.into();
        expected["_meta"]["openai/outputTemplate"] = app.into();
        assert_eq!(tool, &expected, "{name}");
        for field in [
            "annotations",
            "outputSchema",
            "icons",
            "title",
            "inputSchema",
        ] {
            assert_eq!(tool[field], fixture.weather_tool()[field], "{name}.{field}");
        }
    }
    // Both apps are listed, each under the URI its tool names, and read from their own server.
    let resources = all(&mut c, "resources/list", "resources").await;
    let beta_app = find(&resources, "uri", "ui://beta/widget/app.html");
    assert_eq!(beta_app["_meta"]["ui"]["prefersBorder"], true, "{beta_app}");
    find(&resources, "uri", APP_URI);
    for (uri, html) in [
        (APP_URI, "<html>alpha</html>"),
        ("ui://beta/widget/app.html", "<html>beta</html>"),
    ] {
        let r = c.ok("resources/read", json!({"uri": uri})).await;
        assert_eq!(r["contents"][0]["text"], html, "{uri}: {r}");
        assert_eq!(r["contents"][0]["uri"], uri, "{uri}: {r}");
    }
    let r = c
        .ok(
            "tools/call",
            json!({"name": "beta__weather", "arguments": {"city": "Oslo"}}),
        )
        .await;
    assert_eq!(
        r["structuredContent"],
        json!({"label": "beta", "city": "Oslo"})
    );
    assert_eq!(r["_meta"]["ui"]["resourceUri"], "ui://beta/widget/app.html");

    // Through a virtual server with the prefix hidden: the upstream's own name, same metadata,
    // the same app URI, which reads from its own server.
    let mut plain = Client::new(gw.url("/mcp/plain"));
    plain.initialize().await;
    let tools = all(&mut plain, "tools/list", "tools").await;
    assert_eq!(
        names(&json!({ "tools": tools }), "tools", "name"),
        ["secret", "weather"]
    );
    let mut expected = AppsFixture { label: "beta" }.weather_tool();
    expected["_meta"]["ui"]["resourceUri"] = "ui://beta/widget/app.html".into();
    expected["_meta"]["openai/outputTemplate"] = "ui://beta/widget/app.html".into();
    assert_eq!(find(&tools, "name", "weather"), &expected);
    let r = plain
        .ok(
            "resources/read",
            json!({"uri": "ui://beta/widget/app.html"}),
        )
        .await;
    assert_eq!(r["contents"][0]["text"], "<html>beta</html>");
    let r = plain
        .request("resources/read", json!({"uri": APP_URI}))
        .await;
    assert_eq!(r.response()["error"]["code"], RESOURCE_NOT_FOUND);
    let r = plain
        .ok(
            "tools/call",
            json!({"name": "weather", "arguments": {"city": "Rome"}}),
        )
        .await;
    assert_eq!(r["structuredContent"]["label"], "beta");
}

/// Reads `data:` payloads off an SSE response.
struct SseEvents {
    body: futures::stream::BoxStream<'static, reqwest::Result<Vec<u8>>>,
    buffer: String,
}

impl SseEvents {
    fn new(response: reqwest::Response) -> SseEvents {
        SseEvents {
            body: response
                .bytes_stream()
                .map(|r| r.map(|b| b.to_vec()))
                .boxed(),
            buffer: String::new(),
        }
    }

    /// The next event's data (waits at most 20 s).
    async fn next_data(&mut self) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                if !data.is_empty() {
                    return data.join("\n");
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .expect("no SSE event within 20 s")
                .expect("SSE stream ended")
                .unwrap();
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

/// Writes the config file the way editors do: a new file renamed over the old one.
fn rewrite(gw: &Gateway, yaml: &str) {
    let path = gw._dir.0.join("mcplane.yaml");
    let tmp = gw._dir.0.join(".mcplane.yaml.tmp");
    std::fs::write(&tmp, yaml).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}

/// Waits until a log line contains every one of `needles` (after `skip` lines).
async fn wait_log(gw: &Gateway, skip: usize, needles: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(line) = gw
            .logs
            .lock()
            .unwrap()
            .iter()
            .skip(skip)
            .find(|l| needles.iter().all(|n| l.contains(n)))
        {
            return line.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {needles:?}: {:?}",
            gw.logs.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn log_len(gw: &Gateway) -> usize {
    gw.logs.lock().unwrap().len()
}

#[tokio::test]
async fn reload_swaps_virtual_servers_in_place_and_keeps_sessions() {
    let config = |support: &str, extra: &str| {
        format!(
            "mcp:\n  servers:\n{}  virtual_servers:\n    support: {support}\n{extra}",
            demo_stdio("demo")
        )
    };
    let gw = Gateway::start(&config("{ include: [demo/echo] }", ""));
    gw.wait_ready().await;
    let mut c = Client::new(gw.url("/mcp/support"));
    c.initialize().await;
    let session = c.session.clone().unwrap();
    assert_eq!(tool_names(&mut c).await, ["demo__echo"]);
    // The session's standalone stream, where list changes arrive.
    let stream = http()
        .get(gw.url("/mcp/support"))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut events = SseEvents::new(stream);

    // A valid change: applied in place, the session is told and keeps working.
    let mark = log_len(&gw);
    rewrite(
        &gw,
        &config(
            "{ include: [demo/echo, demo/add], overrides: { demo/add: { name: plus } } }",
            "",
        ),
    );
    let changed: Value = serde_json::from_str(&events.next_data().await).unwrap();
    assert_eq!(changed["method"], "notifications/tools/list_changed");
    wait_log(&gw, mark, &["config reloaded"]).await;
    assert_eq!(tool_names(&mut c).await, ["demo__echo", "plus"]);
    assert_eq!(c.session.as_deref(), Some(session.as_str()));
    let r = c
        .ok(
            "tools/call",
            json!({"name": "plus", "arguments": {"a": 1, "b": 2}}),
        )
        .await;
    assert_eq!(r["structuredContent"]["sum"], 3.0, "{r}");

    // An invalid change: logged with its key path, nothing changes.
    let mark = log_len(&gw);
    rewrite(
        &gw,
        &config(
            "{ include: [demo/echo], overrides: { demo/echo: { name: 'not valid' } } }",
            "",
        ),
    );
    let line = wait_log(&gw, mark, &["config reload failed"]).await;
    assert!(
        line.contains("mcp.virtual_servers.support.overrides.demo/echo.name"),
        "{line}"
    );
    assert_eq!(tool_names(&mut c).await, ["demo__echo", "plus"]);

    // Virtual servers come and go; an upstream change is reported as needing a restart.
    let mark = log_len(&gw);
    rewrite(
        &gw,
        &format!(
            "mcp:\n  naming: {{ prefix: when_needed }}\n  servers:\n{}  virtual_servers:\n    extra: {{ include: ['demo/*'], prefix: never }}\n",
            demo_stdio("demo")
        ),
    );
    wait_log(&gw, mark, &["config reloaded"]).await;
    wait_log(&gw, mark, &["mcp.naming", "restart"]).await;
    let mut extra = Client::new(gw.url("/mcp/extra"));
    extra.initialize().await;
    let tools = tool_names(&mut extra).await;
    assert!(tools.contains(&"echo".to_string()), "{tools:?}");
    let r = c.request("tools/list", json!({})).await;
    assert_eq!(
        r.status, 404,
        "a removed virtual server's sessions are gone"
    );

    // SIGHUP reloads even when the file did not change.
    let mark = log_len(&gw);
    let pid = gw.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    wait_log(&gw, mark, &["config reloaded"]).await;
    let r = extra.request("tools/list", json!({})).await;
    assert!(r.response().get("result").is_some(), "{:?}", r.messages);
}

/// A stateless (2026-07-28) request with the headers a conforming client derives from it.
fn modern(url: String, id: u64, method: &str, mut params: Value) -> reqwest::RequestBuilder {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "0"},
    });
    let name = params["name"]
        .as_str()
        .or(params["uri"].as_str())
        .filter(|_| matches!(method, "tools/call" | "prompts/get" | "resources/read"))
        .map(str::to_string);
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let mut req = http()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method)
        .body(body.to_string());
    if let Some(n) = name {
        req = req.header("mcp-name", n);
    }
    req
}

async fn modern_json(url: String, id: u64, method: &str, params: Value) -> Value {
    let r = modern(url, id, method, params).send().await.unwrap();
    r.json().await.unwrap()
}

#[tokio::test]
async fn stateless_clients_get_the_curation_and_its_reloads() {
    let config = |include: &str| {
        format!(
            "mcp:\n  servers:\n{}  virtual_servers:\n    support: {{ description: Desk, include: {include} }}\n",
            demo_stdio("demo")
        )
    };
    let gw = Gateway::start(&config("[demo/echo]"));
    gw.wait_ready().await;
    let url = gw.url("/mcp/support");

    let d = modern_json(url.clone(), 1, "server/discover", json!({})).await;
    let result = &d["result"];
    assert_eq!(result["instructions"], "Desk", "{d}");
    assert_eq!(result["capabilities"]["tools"]["listChanged"], true, "{d}");
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "mcplane/support",
        "{d}"
    );
    let list = modern_json(url.clone(), 2, "tools/list", json!({})).await;
    assert_eq!(
        names(&list["result"], "tools", "name"),
        ["demo__echo"],
        "{list}"
    );
    let hidden = modern_json(
        url.clone(),
        3,
        "tools/call",
        json!({"name": "demo__add", "arguments": {"a": 1, "b": 1}}),
    )
    .await;
    assert_eq!(hidden["error"]["code"], -32602, "{hidden}");
    assert_eq!(
        hidden["error"]["message"], "Unknown tool: demo__add",
        "{hidden}"
    );

    // A listener hears the list change a reload makes.
    let stream = modern(
        url.clone(),
        4,
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true}}),
    )
    .send()
    .await
    .unwrap();
    let mut events = SseEvents::new(stream);
    let ack: Value = serde_json::from_str(&events.next_data().await).unwrap();
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    assert_eq!(
        ack["params"]["notifications"]["toolsListChanged"], true,
        "{ack}"
    );
    rewrite(&gw, &config("[demo/echo, demo/add]"));
    let change: Value = serde_json::from_str(&events.next_data().await).unwrap();
    assert_eq!(
        change["method"], "notifications/tools/list_changed",
        "{change}"
    );
    let list = modern_json(url.clone(), 5, "tools/list", json!({})).await;
    assert_eq!(
        names(&list["result"], "tools", "name"),
        ["demo__add", "demo__echo"],
        "{list}"
    );
}

#[tokio::test]
async fn unprefixed_collisions_inside_a_virtual_server_are_reported() {
    let gw = Gateway::start(&format!(
        "mcp:\n  servers:\n{}{}  virtual_servers:\n    both: {{ prefix: never, include: ['*/echo', one/add] }}\n",
        demo_stdio("one"),
        demo_stdio("two")
    ));
    gw.wait_ready().await;
    let mut c = Client::new(gw.url("/mcp/both"));
    c.initialize().await;
    assert_eq!(tool_names(&mut c).await, ["add", "echo"]);
    let r = c
        .ok(
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "first wins"}}),
        )
        .await;
    assert_eq!(r["content"][0]["text"], "first wins");
    let ready = gw.wait_ready().await;
    let both = &ready["virtual_servers"][0];
    assert_eq!(both["name"], "both", "{ready}");
    assert_eq!(both["sessions"], 1, "{ready}");
    let collisions = both["collisions"].as_array().unwrap();
    assert_eq!(collisions.len(), 1, "{ready}");
    let text = collisions[0].as_str().unwrap();
    assert!(
        text.contains("\"echo\"") && text.contains("server two") && text.contains("server one"),
        "{text}"
    );
}
