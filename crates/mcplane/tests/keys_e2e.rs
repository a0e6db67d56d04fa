//! End-to-end: mcplane API keys, from `mcplane keys create` to both faces of a running gateway:
//! accepted as `Authorization: Bearer` and as Anthropic's `x-api-key`, the principal's tenant and
//! roles applied, a key's model and tool scopes narrowing what it sees and calls, revocation
//! picked up by the running gateway within seconds, and hostile or malformed keys refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Gateway, exe, http};
use mcplane_testkit::mock_llm::{MockConfig, MockHandle, MockProvider};
use serde_json::{Value, json};
use std::process::Command;
use std::time::{Duration, Instant};

const KEY: &str = "sk-upstream";

async fn stack() -> (Gateway, MockHandle) {
    let mock = MockProvider::start(MockConfig::default().with_api_key(KEY))
        .await
        .unwrap();
    let yaml = format!(
        r#"
auth: {{ api_keys: true }}
mcp:
  naming: {{ prefix: never }}
  servers:
    demo: {{ transport: stdio, command: "{exe}", args: [demo-server] }}
models:
  - {{ id: cheap, provider: openai, endpoints: [{{ url: "{base}/v1", api_key: "{KEY}" }}] }}
  - {{ id: premium, provider: openai, endpoints: [{{ url: "{base}/v1", api_key: "{KEY}" }}] }}
policies:
  - name: ops-only-premium
    when: 'operation.model == "premium" && !("ops" in principal.roles)'
    then: {{ deny: true, reason: "premium is for ops" }}
"#,
        exe = exe(),
        base = mock.base_url()
    );
    let gw = Gateway::start(&yaml);
    gw.wait_ready().await;
    (gw, mock)
}

fn keys(gw: &Gateway, args: &[&str]) -> (bool, String) {
    let out = Command::new(exe())
        .arg("keys")
        .args(args)
        .arg("--config")
        .arg(gw._dir.0.join("mcplane.yaml"))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string()
            + &String::from_utf8_lossy(&out.stderr),
    )
}

fn create(gw: &Gateway, extra: &[&str]) -> (String, String) {
    let mut args = vec!["create", "--json"];
    args.extend_from_slice(extra);
    let (ok, out) = keys(gw, &args);
    assert!(ok, "{out}");
    let v: Value = serde_json::from_str(
        out.lines()
            .take_while(|l| !l.starts_with("key "))
            .collect::<Vec<_>>()
            .join("\n")
            .as_str(),
    )
    .unwrap_or_else(|e| panic!("{e}: {out}"));
    (
        v["key"].as_str().unwrap().to_string(),
        v["id"].as_str().unwrap().to_string(),
    )
}

async fn models(gw: &Gateway, auth: (&str, &str)) -> (u16, Value) {
    let r = http()
        .get(gw.url("/v1/models"))
        .header(auth.0, auth.1)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn ids(v: &Value) -> Vec<String> {
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

/// Polls until the running gateway accepts (or refuses) `key`.
async fn until(gw: &Gateway, key: &str, status: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (got, _) = models(gw, ("authorization", &format!("Bearer {key}"))).await;
        if got == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still {got}, waiting for {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn keys_work_on_both_faces_and_revocation_takes_effect() {
    let (gw, _mock) = stack().await;
    let (ops, ops_id) = create(
        &gw,
        &[
            "--name",
            "ops-bot",
            "--principal",
            "svc-ops",
            "--role",
            "ops",
            "--org",
            "acme",
        ],
    );
    assert!(ops.starts_with("mcp_"));
    until(&gw, &ops, 200).await;
    // OpenAI style and Anthropic style.
    let (status, all) = models(&gw, ("authorization", &format!("Bearer {ops}"))).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&all), ["cheap", "premium"]);
    let (status, _) = models(&gw, ("x-api-key", &ops)).await;
    assert_eq!(status, 200);
    // The MCP face, the same key.
    let r = http()
        .post(gw.url("/mcp"))
        .bearer_auth(&ops)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Roles come from the key: a key without `ops` does not see premium.
    let (plain, _) = create(&gw, &["--name", "plain", "--principal", "svc-plain"]);
    until(&gw, &plain, 200).await;
    let (_, some) = models(&gw, ("authorization", &format!("Bearer {plain}"))).await;
    assert_eq!(ids(&some), ["cheap"]);
    // Listed, never with secrets.
    let (ok, listing) = keys(&gw, &["list", "--json"]);
    assert!(ok);
    assert!(
        !listing.contains(&ops) && listing.contains(&ops_id),
        "{listing}"
    );
    // Revoked: refused by the running gateway within seconds.
    let (ok, said) = keys(&gw, &["revoke", &ops_id]);
    assert!(ok, "{said}");
    until(&gw, &ops, 401).await;
    let (_, body) = models(&gw, ("authorization", &format!("Bearer {ops}"))).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown or revoked"),
        "{body}"
    );
    let (ok, said) = keys(&gw, &["revoke", &ops_id]);
    assert!(!ok && said.contains("no active key"), "{said}");
}

#[tokio::test]
async fn scopes_narrow_a_key_and_bad_keys_are_refused() {
    let (gw, _mock) = stack().await;
    let (scoped, _) = create(
        &gw,
        &[
            "--name",
            "scoped",
            "--principal",
            "svc-s",
            "--role",
            "ops",
            "--model",
            "cheap",
            "--tool",
            "demo/ec*",
        ],
    );
    until(&gw, &scoped, 200).await;
    let (_, listed) = models(&gw, ("authorization", &format!("Bearer {scoped}"))).await;
    assert_eq!(
        ids(&listed),
        ["cheap"],
        "the key may only use cheap, whatever its roles"
    );
    let chat = |model: &str| {
        http()
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(&scoped)
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    assert_eq!(chat("cheap").await.unwrap().status(), 200);
    let r = chat("premium").await.unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "this API key may not use model premium"
    );
    // Tools: only echo matches demo/ec*.
    let list = http()
        .post(gw.url("/mcp"))
        .bearer_auth(&scoped)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/list")
        .body(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}}).to_string())
        .send()
        .await
        .unwrap();
    let v: Value = list.json().await.unwrap();
    let names: Vec<_> = v["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["echo"], "{v}");
    // Expired, malformed, hostile: 401 with a reason, never a 500.
    let (expired, _) = create(
        &gw,
        &[
            "--name",
            "short",
            "--principal",
            "svc-x",
            "--expires-in",
            "1ms",
        ],
    );
    for bad in [
        expired.as_str(),
        "mcp_' OR '1'='1_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "mcp_abcdefghij_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "sk-not-ours",
    ] {
        let (status, body) = models(&gw, ("authorization", &format!("Bearer {bad}"))).await;
        assert_eq!(status, 401, "{bad}: {body}");
    }
    // Bad command lines say what to fix.
    let (ok, said) = keys(
        &gw,
        &[
            "create",
            "--name",
            "x",
            "--principal",
            "p",
            "--expires-in",
            "soon",
        ],
    );
    assert!(!ok && said.contains("--expires-in"), "{said}");
}
