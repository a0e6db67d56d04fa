//! End-to-end: governance through the real binary, the same for both faces. JWTs from a test
//! identity provider (JWKS file) authenticate MCP sessions, stateless MCP requests and `/v1`
//! calls alike; without a token, or with a bad one, both faces answer 401 with a challenge in
//! their own format. One policy set filters `tools/list` (by tool annotations, the spec's defaults
//! filled in) and `/v1/models` by the caller's roles
//! and refuses the calls the lists hide (MCP `-32003`, `/v1` 403), reroutes with `route_to`, and
//! one team limit answers 429 with `Retry-After` on either face. With `auth.oauth`, each MCP
//! endpoint publishes RFC 9728 metadata and a token bound to one virtual server is refused at
//! another. Budgets refuse a model call that would exceed them (402 naming the budget) or move
//! it to the budget's cheaper fallback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Gateway, exe, http, tempdir};
use mcplane_testkit::jwt::{self, AUDIENCE, ISSUER, claims};
use mcplane_testkit::mock_llm::{MockConfig, MockHandle, MockProvider};
use serde_json::{Value, json};

const KEY: &str = "sk-upstream";

struct Stack {
    gw: Gateway,
    _mock: MockHandle,
    _jwks: tempdir::Dir,
}

async fn stack(extra: &str) -> Stack {
    let mock = MockProvider::start(MockConfig::default().with_api_key(KEY))
        .await
        .unwrap();
    let dir = tempdir::Dir::new();
    let jwks = dir.0.join("jwks.json");
    std::fs::write(&jwks, jwt::jwks().to_string()).unwrap();
    let yaml = format!(
        r#"
auth:
  api_keys: false
  oauth: {{ resource: "http://mcplane.test", authorization_servers: ["{ISSUER}"], scopes: [mcp] }}
  jwt:
    - issuer: "{ISSUER}"
      audience: {AUDIENCE}
      jwks_file: "{jwks}"
      claims: {{ roles: roles, org: org, team: team }}
mcp:
  naming: {{ prefix: never }}
  servers:
    demo: {{ transport: stdio, command: "{exe}", args: [demo-server] }}
  virtual_servers:
    a: {{ include: ["demo/echo"] }}
    b: {{ include: ["demo/add"] }}
models:
  - {{ id: cheap, provider: openai, cost: {{ input_per_1k: 0.001, output_per_1k: 0.002 }}, endpoints: [{{ url: "{base}/v1", api_key: "{KEY}" }}] }}
  - {{ id: premium, provider: openai, cost: {{ input_per_1k: 0.01, output_per_1k: 0.03 }}, endpoints: [{{ url: "{base}/v1", api_key: "{KEY}" }}] }}
  - {{ id: private, provider: openai, endpoints: [{{ url: "{base}/v1", api_key: "{KEY}" }}] }}
policies:
  - name: interns-idempotent-only
    when: '"intern" in principal.roles && operation.kind == "call_tool" && !operation.tool.annotations.idempotentHint'
    then: {{ deny: true, reason: "interns may only use idempotent tools" }}
  - name: premium-for-seniors
    when: 'operation.model == "premium" && !("senior" in principal.roles)'
    then: {{ deny: true, reason: "premium is for seniors" }}
  - name: pii-stays-private
    when: 'request.data_classification == "pii" && operation.face == "llm"'
    then: {{ route_to: [private] }}
{extra}"#,
        jwks = jwks.display(),
        exe = exe(),
        base = mock.base_url(),
    );
    let gw = Gateway::start(&yaml);
    gw.wait_ready().await;
    Stack {
        gw,
        _mock: mock,
        _jwks: dir,
    }
}

fn token(sub: &str, roles: &[&str]) -> String {
    let mut c = claims(sub);
    c["roles"] = json!(roles);
    c["org"] = json!("acme");
    c["team"] = json!("payments");
    jwt::token(&c)
}

/// A stateless (2026-07-28) MCP request.
async fn mcp(
    s: &Stack,
    bearer: Option<&str>,
    method: &str,
    params: Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let mut req = http()
        .post(s.gw.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method);
    if let Some(name) = params.get("name").and_then(Value::as_str) {
        req = req.header("mcp-name", name);
    }
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    let r = req
        .body(json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    let body = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .rfind(|m| m.get("id").is_some())
        .unwrap_or_else(|| serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")));
    (status, headers, body)
}

async fn v1(
    s: &Stack,
    bearer: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
    extra: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = match method {
        "GET" => http().get(s.gw.url(path)),
        _ => http().post(s.gw.url(path)).json(&body.unwrap_or_default()),
    };
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.json().await.unwrap())
}

fn names(list: &Value, field: &str, key: &str) -> Vec<String> {
    let mut n: Vec<String> = list[field]
        .as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .map(|t| t[key].as_str().unwrap().to_string())
        .collect();
    n.sort();
    n
}

#[tokio::test]
async fn both_faces_refuse_missing_and_bad_tokens_with_a_challenge() {
    let s = stack("").await;
    for bearer in [
        None,
        Some("not-a-jwt"),
        Some(jwt::unsigned(&claims("eve")).as_str()),
    ] {
        let (status, h, body) = mcp(&s, bearer, "tools/list", json!({})).await;
        assert_eq!(status, 401, "{body}");
        assert!(
            h["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
        assert_eq!(body["error"]["code"], -32040, "{body}");
        let (status, h, body) = v1(&s, bearer, "GET", "/v1/models", None, &[]).await;
        assert_eq!(status, 401);
        assert!(h.contains_key("www-authenticate"));
        assert_eq!(body["error"]["type"], "authentication_error", "{body}");
    }
    let mut expired = claims("ada");
    expired["exp"] = json!(jwt::now() - 600);
    let (status, h, body) = mcp(&s, Some(&jwt::token(&expired)), "tools/list", json!({})).await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );
    assert!(
        h["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    // Credentials in the URL are refused outright.
    let r = http()
        .get(s.gw.url("/v1/models?access_token=abc"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Health needs no credentials.
    assert_eq!(
        http()
            .get(s.gw.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // A session-based client is authenticated too, and its token works.
    let ok = token("ada", &["senior"]);
    let r = http()
        .post(s.gw.url("/mcp"))
        .bearer_auth(&ok)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("mcp-session-id"));
}

#[tokio::test]
async fn one_policy_filters_lists_and_guards_calls_on_both_faces() {
    let s = stack("").await;
    let (intern, senior) = (token("ian", &["intern"]), token("sam", &["senior"]));
    // MCP: the intern sees only the read-only tools and cannot call the others.
    let (_, _, all) = mcp(&s, Some(&senior), "tools/list", json!({})).await;
    let (_, _, some) = mcp(&s, Some(&intern), "tools/list", json!({})).await;
    let all = names(&all["result"], "tools", "name");
    let some = names(&some["result"], "tools", "name");
    assert!(all.contains(&"long_task".to_string()), "{all:?}");
    // long_task and current_time leave idempotentHint out: false, by the spec's default.
    assert_eq!(some, ["add", "echo"]);
    let (status, _, denied) = mcp(
        &s,
        Some(&intern),
        "tools/call",
        json!({"name": "long_task", "arguments": {}}),
    )
    .await;
    assert_eq!(denied["error"]["code"], -32003, "{status} {denied}");
    assert_eq!(
        denied["error"]["message"],
        "interns may only use idempotent tools"
    );
    assert_eq!(denied["error"]["data"]["policy"], "interns-idempotent-only");
    let (_, _, echoed) = mcp(
        &s,
        Some(&intern),
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "hi"}}),
    )
    .await;
    assert!(echoed.get("result").is_some(), "{echoed}");
    // Identity a client asserts in headers changes nothing: only the token speaks for it.
    let r = http()
        .get(s.gw.url("/v1/models"))
        .bearer_auth(&intern)
        .header("x-mcplane-principal", "sam")
        .header("x-user-roles", "senior")
        .header("x-forwarded-user", "sam")
        .header("x-remote-user", "sam")
        .send()
        .await
        .unwrap();
    let spoofed: Value = r.json().await.unwrap();
    assert_eq!(names(&spoofed, "data", "id"), ["cheap", "private"]);
    // Models: the same engine, the same roles.
    let (_, _, seniors) = v1(&s, Some(&senior), "GET", "/v1/models", None, &[]).await;
    let (_, _, interns) = v1(&s, Some(&intern), "GET", "/v1/models", None, &[]).await;
    assert_eq!(
        names(&seniors, "data", "id"),
        ["cheap", "premium", "private"]
    );
    assert_eq!(names(&interns, "data", "id"), ["cheap", "private"]);
    let (status, _, _) = v1(&s, Some(&intern), "GET", "/v1/models/premium", None, &[]).await;
    assert_eq!(status, 404, "a model the caller may not use is not shown");
    let chat =
        |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    let (status, _, body) = v1(
        &s,
        Some(&intern),
        "POST",
        "/v1/chat/completions",
        Some(chat("premium")),
        &[],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "policy_denied");
    assert_eq!(body["error"]["message"], "premium is for seniors");
    let (status, h, _) = v1(
        &s,
        Some(&senior),
        "POST",
        "/v1/chat/completions",
        Some(chat("premium")),
        &[],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(h["x-mcplane-model"], "premium");
    // route_to: PII goes to the private model whatever was asked.
    let (status, h, _) = v1(
        &s,
        Some(&senior),
        "POST",
        "/v1/chat/completions",
        Some(chat("cheap")),
        &[("x-mcplane-data-classification", "pii")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(h["x-mcplane-model"], "private");
}

#[tokio::test]
async fn a_team_limit_is_shared_by_both_faces() {
    let s = stack("tenants: { orgs: [{ id: acme, teams: [{ id: payments, limits: { requests_per_minute: 4 } }] }] }\n").await;
    let t = token("ada", &["senior"]);
    for _ in 0..2 {
        assert_eq!(mcp(&s, Some(&t), "tools/list", json!({})).await.0, 200);
        assert_eq!(
            v1(&s, Some(&t), "GET", "/v1/models", None, &[]).await.0,
            200
        );
    }
    let (status, h, body) = mcp(&s, Some(&t), "tools/list", json!({})).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], -32029);
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    let (status, h, body) = v1(&s, Some(&t), "GET", "/v1/models", None, &[]).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
    assert_eq!(h["x-ratelimit-limit-requests"], "4");
    assert_eq!(h["x-ratelimit-remaining-requests"], "0");
    // Another org's caller is not limited by this team's minute.
    let mut other = claims("zed");
    other["org"] = json!("globex");
    assert_eq!(
        v1(
            &s,
            Some(&jwt::token(&other)),
            "GET",
            "/v1/models",
            None,
            &[]
        )
        .await
        .0,
        200
    );
}

/// A stateless MCP request to `path` (tools/list).
async fn list_at(s: &Stack, path: &str, bearer: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = http()
        .post(s.gw.url(path))
        .bearer_auth(bearer)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/list")
        .body(
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}}}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn oauth_metadata_and_tokens_bound_to_one_virtual_server() {
    let s = stack("").await;
    // RFC 9728 metadata, per endpoint, without credentials.
    for (path, resource) in [
        (
            "/.well-known/oauth-protected-resource",
            "http://mcplane.test/mcp",
        ),
        (
            "/.well-known/oauth-protected-resource/mcp",
            "http://mcplane.test/mcp",
        ),
        (
            "/.well-known/oauth-protected-resource/mcp/a",
            "http://mcplane.test/mcp/a",
        ),
    ] {
        let r = http().get(s.gw.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let m: Value = r.json().await.unwrap();
        assert_eq!(m["resource"], resource);
        assert_eq!(m["authorization_servers"], json!([ISSUER]));
        assert_eq!(m["scopes_supported"], json!(["mcp"]));
    }
    let r = http()
        .get(s.gw.url("/.well-known/oauth-protected-resource/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // A 401 on an MCP endpoint points at that endpoint's metadata.
    let (status, h, _) = list_at(&s, "/mcp/a", "nope").await;
    assert_eq!(status, 401);
    assert!(
        h["www-authenticate"].to_str().unwrap().contains(
            "resource_metadata=\"http://mcplane.test/.well-known/oauth-protected-resource/mcp/a\""
        ),
        "{h:?}"
    );
    // A token issued for virtual server a works there, and is refused at b and at /mcp.
    let mut c = claims("ada");
    c["aud"] = json!("http://mcplane.test/mcp/a");
    let bound = jwt::token(&c);
    let (status, _, body) = list_at(&s, "/mcp/a", &bound).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["tools"][0]["name"], "echo");
    for elsewhere in ["/mcp/b", "/mcp"] {
        let (status, h, body) = list_at(&s, elsewhere, &bound).await;
        assert_eq!(status, 401, "{elsewhere}: {body}");
        assert!(
            h["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("invalid_token")
        );
    }
    // The model face has no resource audience: a bound token is not for it either.
    let (status, _, _) = v1(&s, Some(&bound), "GET", "/v1/models", None, &[]).await;
    assert_eq!(status, 401);
    // A token for mcplane as a whole (the issuer's audience) works everywhere.
    let general = token("ada", &["senior"]);
    assert_eq!(list_at(&s, "/mcp/b", &general).await.0, 200);
}

#[tokio::test]
async fn budgets_refuse_or_degrade_model_calls() {
    let s = stack(
        "budgets:\n  - { scope: 'team:payments', daily_usd: 0.001 }\n  - { scope: 'user:deg', daily_usd: 0.01, on_limit: degrade, degrade_to: cheap }\n",
    )
    .await;
    let chat = |model: &str| json!({"model": model, "max_tokens": 2000, "messages": [{"role": "user", "content": "hi"}]});
    // ada (team payments): the call is estimated at up to $0.004 against $0.001 a day.
    let (status, _, body) = v1(
        &s,
        Some(&token("ada", &["senior"])),
        "POST",
        "/v1/chat/completions",
        Some(chat("cheap")),
        &[],
    )
    .await;
    assert_eq!(status, 402, "{body}");
    assert_eq!(body["error"]["type"], "insufficient_quota");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("budget team:payments (day "), "{message}");
    assert!(message.contains("of 0.001000 USD"), "{message}");
    // deg (another org): premium ($0.06 estimated) is over its $0.01 budget, cheap is not.
    let mut c = claims("deg");
    c["roles"] = json!(["senior"]);
    c["org"] = json!("other");
    let (status, h, body) = v1(
        &s,
        Some(&jwt::token(&c)),
        "POST",
        "/v1/chat/completions",
        Some(chat("premium")),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        h["x-mcplane-model"], "cheap",
        "degraded to the budget's fallback"
    );
}
