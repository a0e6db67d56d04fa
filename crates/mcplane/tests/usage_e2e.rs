//! End-to-end: model calls through the real binary are recorded in its store (SQLite next to the
//! config) without blocking them — streamed and not, failed and refused, with the caller, model,
//! tokens, cost, time to first token and route reason — and `mcplane usage recent` reads them
//! back (the gateway drains its buffer on shutdown, so nothing is lost when it stops).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Gateway, exe, http};
use mcplane_testkit::mock_llm::{MockConfig, MockProvider};
use serde_json::{Value, json};
use std::process::Command;

const KEY: &str = "sk-upstream";

fn recent(config: &std::path::Path, args: &[&str]) -> Value {
    let out = Command::new(exe())
        .args(["usage", "recent", "--config"])
        .arg(config)
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn every_model_call_is_recorded_in_the_store() {
    let mock = MockProvider::start(MockConfig::default().with_api_key(KEY))
        .await
        .unwrap();
    let yaml = format!(
        r#"
models:
  - {{ id: gpt-a, provider: openai, cost: {{ input_per_1k: 0.01, output_per_1k: 0.03 }}, endpoints: [{{ region: us, url: "{base}/v1", api_key: "{KEY}" }}] }}
  - {{ id: broken, provider: openai, endpoints: [{{ url: "http://127.0.0.1:9/v1", api_key: "{KEY}" }}] }}
routing: {{ retry: {{ max_attempts: 1 }}, timeouts: {{ request: 2s }} }}
"#,
        base = mock.base_url()
    );
    let mut gw = Gateway::start(&yaml);
    gw.wait_ready().await;
    let config = gw._dir.0.join("mcplane.yaml");
    let chat = |model: &str, stream: bool, rid: &str| {
        http()
            .post(gw.url("/v1/chat/completions"))
            .header("x-request-id", rid)
            .bearer_auth("sk-client-key-is-ignored-without-auth")
            .json(&json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hello there"}]}))
            .send()
    };
    let r = chat("gpt-a", false, "rec-json").await.unwrap();
    assert_eq!(r.status(), 200);
    let r = chat("gpt-a", true, "rec-stream").await.unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap();
    let r = chat("broken", false, "rec-fail").await.unwrap();
    assert_eq!(r.status(), 502);
    // Concurrent calls: every one recorded exactly once.
    let many: Vec<_> = (0..30)
        .map(|i| chat("gpt-a", false, &format!("rec-many-{i}")))
        .collect();
    for r in futures::future::join_all(many).await {
        assert_eq!(r.unwrap().status(), 200);
    }
    // Stopping the gateway drains the buffer.
    assert!(gw.terminate().success());
    let calls = recent(&config, &["--limit", "100"]);
    let calls = calls.as_array().unwrap();
    let by_id = |id: &str| {
        calls
            .iter()
            .find(|c| c["request_id"] == id)
            .unwrap_or_else(|| panic!("{id} not recorded: {calls:?}"))
    };
    let json_call = by_id("rec-json");
    assert_eq!(json_call["model"], "gpt-a");
    assert_eq!(json_call["principal"], "anonymous");
    assert_eq!(json_call["status"], 200);
    assert_eq!(json_call["outcome"], "ok");
    assert!(json_call["prompt_tokens"].as_i64().unwrap() > 0);
    assert!(json_call["cost_micros"].as_i64().unwrap() > 0);
    assert!(!json_call["route_reason"].as_str().unwrap().is_empty());
    let stream_call = by_id("rec-stream");
    assert_eq!(stream_call["stream"], true);
    assert!(stream_call["ttft_ms"].is_i64(), "{stream_call}");
    let failed = by_id("rec-fail");
    assert_eq!(failed["status"], 502);
    assert_eq!(failed["outcome"], "error");
    let many = calls
        .iter()
        .filter(|c| c["request_id"].as_str().unwrap().starts_with("rec-many-"))
        .count();
    assert_eq!(many, 30);
    assert_eq!(calls.len(), 33);
    // Filter by model; the table form too.
    assert_eq!(
        recent(&config, &["--model", "broken"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let table = Command::new(exe())
        .args(["usage", "recent", "--limit", "2", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(text.starts_with("REQUEST"), "{text}");
    assert_eq!(text.lines().count(), 3);
    // A bad --limit is refused by the command line.
    let bad = Command::new(exe())
        .args(["usage", "recent", "--limit", "0"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}

#[tokio::test]
async fn spend_is_reported_and_budgets_resume_from_the_store_after_a_restart() {
    let mock = MockProvider::start(MockConfig::default().with_api_key(KEY))
        .await
        .unwrap();
    let shared = common::tempdir::Dir::new();
    let db = shared.0.join("shared.db");
    let config = |budget: &str| {
        format!(
            r#"
store: {{ url: "sqlite://{db}" }}
models:
  - {{ id: gpt-a, provider: openai, cost: {{ input_per_1k: 0.01, output_per_1k: 0.03 }}, endpoints: [{{ url: "{base}/v1", api_key: "{KEY}" }}] }}
{budget}"#,
            db = db.display(),
            base = mock.base_url()
        )
    };
    let call = |gw: &Gateway| {
        http()
            .post(gw.url("/v1/chat/completions"))
            .json(&json!({"model": "gpt-a", "max_tokens": 100, "messages": [{"role": "user", "content": "hello there"}]}))
            .send()
    };
    let mut first = Gateway::start(&config(""));
    first.wait_ready().await;
    for _ in 0..3 {
        assert_eq!(call(&first).await.unwrap().status(), 200);
    }
    assert!(first.terminate().success());
    let spend = |by: &str| {
        let out = Command::new(exe())
            .args(["usage", "spend", "--by", by, "--json", "--config"])
            .arg(first._dir.0.join("mcplane.yaml"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let by_principal = spend("principal");
    assert_eq!(by_principal[0]["key"], "anonymous");
    assert_eq!(by_principal[0]["calls"], 3);
    let spent = by_principal[0]["cost_micros"].as_i64().unwrap();
    assert!(spent > 0);
    assert_eq!(spend("model")[0]["cost_micros"].as_i64().unwrap(), spent);
    // A restarted gateway whose daily budget leaves less than one big call's estimate once
    // today's spend is counted — but more than it if that spend were forgotten — refuses it:
    // its counters were rebuilt from the store. (Estimate: the prompt's few tokens plus
    // max_tokens 1000 at $0.03/1k = $0.03; budget: $0.03 + half of today's spend.)
    let budget = format!(
        "budgets: [{{ scope: 'user:anonymous', daily_usd: {} }}]\n",
        (30_000 + spent / 2) as f64 / 1e6
    );
    let second = Gateway::start(&config(&budget));
    second.wait_ready().await;
    let big = http()
        .post(second.url("/v1/chat/completions"))
        .json(&json!({"model": "gpt-a", "max_tokens": 1000, "messages": [{"role": "user", "content": "hello there"}]}))
        .send();
    let r = big.await.unwrap();
    assert_eq!(r.status(), 402);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("budget user:anonymous"),
        "{body}"
    );
}
