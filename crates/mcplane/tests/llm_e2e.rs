//! End-to-end: the model face of the real binary in front of the testkit's mock providers
//! (OpenAI, Azure OpenAI, Anthropic and Gemini wire formats from one mock), with a registry of
//! several models and aliases: routing (weights, weighted split, capability and residency
//! filters, the cost optimizer), cross-format translation, failure handling (retries honouring
//! Retry-After, fallback, timeouts, mid-stream failures, circuit breaking, all-fail 502), bad
//! input, and client disconnects.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Gateway, http};
use futures::StreamExt;
use mcplane_testkit::mock_llm::{Delivery, Fault, MockConfig, MockHandle, MockProvider, sse};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const UPSTREAM_KEY: &str = "sk-upstream-secret";

/// The registry every test uses; `{B}` is the mock's base URL.
const MODELS: &str = r#"
models:
  - id: gpt-a
    provider: openai
    capabilities: [chat, tools, vision, json_mode]
    cost: { input_per_1k: 0.01, output_per_1k: 0.03 }
    performance: { latency_p95_ms: 200, max_tokens: 128000, max_output_tokens: 4096, quality: 0.95 }
    compliance: { data_residency: [us, eu] }
    endpoints: [{ region: us-east-1, url: "{B}/v1", api_key: "{K}" }]
  - id: gpt-b
    provider: openai
    capabilities: [chat, tools]
    cost: { input_per_1k: 0.001, output_per_1k: 0.002 }
    performance: { latency_p95_ms: 1000, quality: 0.8 }
    compliance: { data_residency: [us] }
    endpoints: [{ region: us, url: "{B}/v1", api_key: "{K}" }]
  - id: claude
    provider: anthropic
    capabilities: [chat, tools, vision]
    cost: { input_per_1k: 0.003, output_per_1k: 0.015 }
    performance: { latency_p95_ms: 600, max_output_tokens: 8192, quality: 0.9 }
    compliance: { data_residency: [eu, us] }
    endpoints: [{ region: eu-west-1, url: "{B}", api_key: "{K}", model: claude-sonnet-4-5 }]
  - id: gem
    provider: gemini
    capabilities: [chat, tools, embeddings]
    cost: { input_per_1k: 0.0005, output_per_1k: 0.0015 }
    performance: { latency_p95_ms: 400, quality: 0.7 }
    compliance: { data_residency: [eu] }
    endpoints: [{ region: eu, url: "{B}", api_key: "{K}", model: gemini-2.5-flash }]
  - id: az
    provider: azure_openai
    capabilities: [chat, tools, embeddings]
    cost: { input_per_1k: 0.002, output_per_1k: 0.008 }
    endpoints: [{ url: "{B}", api_key: "{K}", deployment: az-dep, api_version: "2024-10-21" }]
  - id: emb
    provider: openai
    capabilities: [embeddings]
    cost: { input_per_1k: 0.00002, output_per_1k: 0 }
    endpoints: [{ url: "{B}/v1", api_key: "{K}", model: text-embedding-3-small }]
"#;

/// Default `routing` (aliases and fast failure settings); tests may replace it.
const ROUTING: &str = r#"
routing:
  retry: { max_attempts: 2, initial_backoff: 50ms, max_backoff: 2s }
  circuit_breaker: { consecutive_failures: 3, cooldown: 1s }
  timeouts: { request: 5s, first_token: 1s }
  aliases:
    all: { candidates: [gpt-a, gpt-b, claude, gem], fallbacks: 3 }
    ab: { candidates: [gpt-a, gpt-b], strategy: weighted, split: { gpt-a: 0.7, gpt-b: 0.3 } }
    cheap: { candidates: [gpt-a, gpt-b, claude, gem], strategy: cheapest, quality_threshold: 0.85, fallbacks: 3 }
    ha: { candidates: [gpt-a, claude], strategy: weighted, split: { gpt-a: 1 }, fallbacks: 1 }
"#;

struct Stack {
    mock: MockHandle,
    gw: Gateway,
    http: reqwest::Client,
}

/// A mock and mcplane in front of it, with `routing` (the `routing:` section) and `extra`
/// appended to the config.
async fn stack_with(routing: &str, extra: &str) -> Stack {
    let mock = MockProvider::start(MockConfig::default().with_api_key(UPSTREAM_KEY))
        .await
        .unwrap();
    let yaml = format!("{}{routing}{extra}", MODELS)
        .replace("{B}", &mock.base_url())
        .replace("{K}", UPSTREAM_KEY);
    let gw = Gateway::start(&yaml);
    gw.wait_ready().await;
    Stack {
        mock,
        gw,
        http: http(),
    }
}

async fn stack() -> Stack {
    stack_with(ROUTING, "").await
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_default()
    }
    fn events(&self) -> Vec<sse::SseEvent> {
        sse::parse(self.body.as_bytes())
    }
    /// OpenAI stream: the concatenated content deltas.
    fn openai_text(&self) -> String {
        self.events()
            .iter()
            .filter_map(|e| e.json())
            .filter_map(|v| {
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(String::from)
            })
            .collect()
    }
    /// Anthropic stream: the concatenated text deltas.
    fn anthropic_text(&self) -> String {
        self.events()
            .iter()
            .filter_map(|e| e.json())
            .filter_map(|v| v["delta"]["text"].as_str().map(String::from))
            .collect()
    }
}

impl Stack {
    async fn post(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Answer {
        let mut req = self
            .http
            .post(self.gw.url(path))
            .header("content-type", "application/json")
            .header("authorization", "Bearer client-key-never-forwarded")
            .body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap();
        Answer {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            body: r.text().await.unwrap(),
        }
    }

    async fn chat(&self, body: Value) -> Answer {
        self.post("/v1/chat/completions", &body, &[]).await
    }

    async fn messages(&self, body: Value) -> Answer {
        self.post(
            "/v1/messages",
            &body,
            &[("anthropic-version", "2023-06-01")],
        )
        .await
    }

    /// The mock's requests for one upstream model name.
    fn upstream(&self, model: &str) -> Vec<mcplane_testkit::mock_llm::RecordedRequest> {
        self.mock
            .requests()
            .into_iter()
            .filter(|r| r.model.as_deref() == Some(model))
            .collect()
    }

    /// Waits for a log line containing every needle.
    async fn log_line(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(l) = self
                .gw
                .logs
                .lock()
                .unwrap()
                .iter()
                .find(|l| needles.iter().all(|n| l.contains(n)))
            {
                return l.clone();
            }
            assert!(Instant::now() < deadline, "no log line with {needles:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
}

fn weather_tool_anthropic() -> Value {
    json!([{"name": "get_weather", "description": "Weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}])
}

// ------------------------------------------------------------------------------ front doors

#[tokio::test]
async fn chat_headers_cost_and_provider_credentials() {
    let s = stack().await;
    let a = s
        .chat(json!({"model": "gpt-a", "messages": user("hello big world")}))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let v = a.json();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "echo: hello big world"
    );
    assert_eq!(a.header("x-mcplane-model"), "gpt-a");
    assert_eq!(a.header("x-mcplane-endpoint"), "gpt-a@us-east-1");
    assert_eq!(a.header("x-mcplane-route-reason"), "direct: gpt-a");
    // Mock usage: 3 prompt words, 4 completion words → 3 × 10 µ$ + 4 × 30 µ$.
    assert_eq!(v["usage"]["prompt_tokens"], 3);
    assert_eq!(a.header("x-mcplane-cost-usd"), "0.000150");
    assert!(!a.header("x-request-id").is_empty());
    // The provider got the configured key, never the client's.
    let seen = s.upstream("gpt-a");
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].header("authorization"),
        Some(&*format!("Bearer {UPSTREAM_KEY}"))
    );
    assert!(
        s.mock
            .requests()
            .iter()
            .all(|r| !format!("{:?}", r.headers).contains("client-key"))
    );

    // A client request id is kept.
    let a = s
        .post(
            "/v1/chat/completions",
            &json!({"model": "gpt-a", "messages": user("hi")}),
            &[("x-request-id", "my-request-1")],
        )
        .await;
    assert_eq!(a.header("x-request-id"), "my-request-1");
    s.log_line(&["model request", "request_id=my-request-1", "outcome=\"ok\""])
        .await;

    // Azure: deployment path, api-version, api-key header.
    let a = s.chat(json!({"model": "az", "messages": user("hi")})).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let az = s
        .mock
        .requests()
        .into_iter()
        .find(|r| r.path().starts_with("/openai/deployments/"))
        .unwrap();
    assert_eq!(az.path(), "/openai/deployments/az-dep/chat/completions");
    assert_eq!(az.uri.query(), Some("api-version=2024-10-21"));
    assert_eq!(az.header("api-key"), Some(UPSTREAM_KEY));
    assert!(az.header("authorization").is_none());
}

#[tokio::test]
async fn streaming_with_usage_and_json_mode() {
    let s = stack().await;
    let a = s
        .chat(
            json!({"model": "gpt-a", "messages": user("one two three"), "stream": true,
            "stream_options": {"include_usage": true}}),
        )
        .await;
    assert_eq!(a.status, 200);
    assert!(a.header("content-type").starts_with("text/event-stream"));
    assert_eq!(a.header("x-mcplane-cost-estimated"), "true");
    assert_eq!(a.openai_text(), "echo: one two three");
    let events = a.events();
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let usage = events
        .iter()
        .filter_map(|e| e.json())
        .find(|v| v["usage"].is_object())
        .unwrap();
    assert_eq!(usage["usage"]["completion_tokens"], 4);
    // Without include_usage the client gets no usage chunk, though mcplane asked upstream.
    let a = s
        .chat(json!({"model": "gpt-a", "messages": user("x"), "stream": true}))
        .await;
    assert!(
        a.events()
            .iter()
            .filter_map(|e| e.json())
            .all(|v| !v["usage"].is_object())
    );
    let sent = s.upstream("gpt-a");
    let body = sent.last().unwrap().json().unwrap();
    assert_eq!(body["stream_options"]["include_usage"], true);
    // JSON mode is passed on; a model without json_mode is not eligible.
    let a = s
        .chat(json!({"model": "all", "messages": user("x"),
            "response_format": {"type": "json_object"}}))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("x-mcplane-model"), "gpt-a");
    assert!(
        a.header("x-mcplane-route-reason")
            .contains("gpt-b (no JSON mode")
    );
    // The usage of the stream is in the request record.
    s.log_line(&[
        "model request",
        "stream=true",
        "completion_tokens=4",
        "usage_source=\"reported\"",
    ])
    .await;
}

#[tokio::test]
async fn embeddings_float_and_base64_across_providers() {
    let s = stack().await;
    for model in ["emb", "gem", "az"] {
        for fmt in ["float", "base64"] {
            let a = s
                .post(
                    "/v1/embeddings",
                    &json!({"model": model, "input": ["red apple", "green apple"], "encoding_format": fmt}),
                    &[],
                )
                .await;
            assert_eq!(a.status, 200, "{model} {fmt}: {}", a.body);
            let v = a.json();
            assert_eq!(v["object"], "list");
            assert_eq!(v["data"].as_array().unwrap().len(), 2);
            let e = &v["data"][1]["embedding"];
            if fmt == "base64" {
                assert!(e.is_string(), "{model}: {e}");
            } else {
                assert!(e.is_array(), "{model}: {e}");
            }
            assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0, "{v}");
        }
    }
    // Gemini was called with its batch endpoint and key header.
    let g = s.upstream("gemini-2.5-flash");
    assert!(
        g[0].path().ends_with(":batchEmbedContents"),
        "{}",
        g[0].path()
    );
    assert_eq!(g[0].header("x-goog-api-key"), Some(UPSTREAM_KEY));
    // A chat model is not an embeddings model.
    let a = s
        .post(
            "/v1/embeddings",
            &json!({"model": "gpt-a", "input": "x"}),
            &[],
        )
        .await;
    assert_eq!(a.status, 400);
    assert!(a.body.contains("not an embeddings model"), "{}", a.body);
}

#[tokio::test]
async fn models_are_listed_in_both_shapes() {
    let s = stack().await;
    let v: Value = s
        .http
        .get(s.gw.url("/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "gpt-a", "gpt-b", "claude", "gem", "az", "emb", "ab", "all", "cheap", "ha"
        ]
    );
    assert_eq!(v["data"][2]["owned_by"], "anthropic");
    let v: Value = s
        .http
        .get(s.gw.url("/v1/models"))
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"][0]["type"], "model");
    assert_eq!(v["has_more"], false);
    let r = s
        .http
        .get(s.gw.url("/v1/models/cheap"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .http
        .get(s.gw.url("/v1/models/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn cross_format_chat_streams_and_tool_calls() {
    let s = stack().await;
    // OpenAI client → Anthropic upstream, streamed, with a tool call.
    let a = s
        .chat(json!({"model": "claude", "stream": true, "messages": user("call get_weather {\"city\":\"Paris\"}"),
            "tools": weather_tool()}))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let chunks: Vec<Value> = a.events().iter().filter_map(|e| e.json()).collect();
    let name = chunks
        .iter()
        .find_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["name"].as_str())
        .unwrap();
    assert_eq!(name, "get_weather");
    let args: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"city": "Paris"})
    );
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "tool_calls")
    );
    let upstream = s.upstream("claude-sonnet-4-5");
    assert_eq!(upstream[0].path(), "/v1/messages");
    assert_eq!(upstream[0].header("x-api-key"), Some(UPSTREAM_KEY));
    assert_eq!(upstream[0].header("anthropic-version"), Some("2023-06-01"));

    // The tool round trip: the tool's result goes back through the Anthropic upstream.
    let call_id = chunks
        .iter()
        .find_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["id"].as_str())
        .unwrap()
        .to_string();
    let a = s
        .chat(json!({"model": "claude", "tools": weather_tool(), "messages": [
            {"role": "user", "content": "call get_weather"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": call_id, "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": call_id, "content": "sunny, 21 C"},
        ]}))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.json()["choices"][0]["message"]["content"],
        "tool result: sunny, 21 C"
    );

    // Anthropic client → OpenAI upstream, streamed, with a tool call.
    let a = s
        .messages(json!({"model": "gpt-a", "max_tokens": 200, "stream": true,
            "messages": user("call get_weather"), "tools": weather_tool_anthropic()}))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let names: Vec<String> = a.events().iter().filter_map(|e| e.event.clone()).collect();
    assert_eq!(names.first().map(String::as_str), Some("message_start"));
    assert_eq!(names.last().map(String::as_str), Some("message_stop"));
    let events: Vec<Value> = a.events().iter().filter_map(|e| e.json()).collect();
    assert!(
        events
            .iter()
            .any(|e| e["content_block"]["type"] == "tool_use"
                && e["content_block"]["name"] == "get_weather")
    );
    assert!(
        events
            .iter()
            .any(|e| e["delta"]["stop_reason"] == "tool_use")
    );
    // Anthropic client → Gemini upstream, plain.
    let a = s
        .messages(json!({"model": "gem", "max_tokens": 50, "messages": user("ciao mondo")}))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let v = a.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["content"][0]["text"], "echo: ciao mondo");
    // Anthropic client → Anthropic upstream, streamed: events relayed as they came.
    let a = s
        .messages(
            json!({"model": "claude", "max_tokens": 50, "stream": true, "messages": user("a b")}),
        )
        .await;
    assert_eq!(a.anthropic_text(), "echo: a b");
}

// ------------------------------------------------------------------------------ routing

#[tokio::test]
async fn weighted_split_follows_shares_and_is_sticky_per_request_id() {
    let s = stack().await;
    let n = 200;
    let mut got_a = 0;
    for i in 0..n {
        let id = format!("split-{i}");
        let a = s
            .post(
                "/v1/chat/completions",
                &json!({"model": "ab", "messages": user("x")}),
                &[("x-request-id", &id)],
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        let model = a.header("x-mcplane-model").to_string();
        // The draw is the documented function of the request id.
        let expected = if mcplane_llm::router::score::bucket(&id) < 0.7 {
            "gpt-a"
        } else {
            "gpt-b"
        };
        assert_eq!(model, expected, "{id}");
        if model == "gpt-a" {
            got_a += 1;
        }
    }
    // 70% of 200 within ±10 points (4.4 standard deviations).
    assert!((120..=160).contains(&got_a), "gpt-a served {got_a} of {n}");
    let a = s
        .post(
            "/v1/chat/completions",
            &json!({"model": "ab", "messages": user("x")}),
            &[("x-request-id", "split-0")],
        )
        .await;
    assert!(
        a.header("x-mcplane-route-reason")
            .starts_with("alias ab (weighted): draw ")
    );
}

#[tokio::test]
async fn capability_and_residency_filters() {
    let s = stack().await;
    let image = json!([{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]);
    // Vision: gpt-b and gem cannot.
    let a = s.chat(json!({"model": "all", "messages": image})).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let reason = a.header("x-mcplane-route-reason");
    assert!(["gpt-a", "claude"].contains(&a.header("x-mcplane-model")));
    assert!(reason.contains("gpt-b (no image input"), "{reason}");
    assert!(reason.contains("gem (no image input"), "{reason}");
    // Tools: every candidate can; vision + tools: gpt-a or claude.
    // Residency eu: gpt-a lists eu but has no EU endpoint; gpt-b is us only.
    let a = s
        .post(
            "/v1/chat/completions",
            &json!({"model": "all", "messages": user("x")}),
            &[("x-mcplane-data-residency", "eu")],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(["claude", "gem"].contains(&a.header("x-mcplane-model")));
    let reason = a.header("x-mcplane-route-reason");
    assert!(
        reason.contains("gpt-a (no endpoint in region eu)"),
        "{reason}"
    );
    assert!(
        reason.contains("gpt-b (data residency eu required"),
        "{reason}"
    );
    // Nothing satisfies vision in the EU except claude.
    let a = s
        .post(
            "/v1/chat/completions",
            &json!({"model": "all", "messages": image}),
            &[("x-mcplane-data-residency", "eu")],
        )
        .await;
    assert_eq!(a.header("x-mcplane-model"), "claude");
    // A residency nobody has: 400 with every reason.
    let a = s
        .post(
            "/v1/chat/completions",
            &json!({"model": "all", "messages": user("x")}),
            &[("x-mcplane-data-residency", "apac")],
        )
        .await;
    assert_eq!(a.status, 400);
    let msg = a.json()["error"]["message"].as_str().unwrap().to_string();
    for m in ["gpt-a", "gpt-b", "claude", "gem"] {
        assert!(
            msg.contains(&format!("{m}: data residency apac required")),
            "{msg}"
        );
    }
}

#[tokio::test]
async fn config_residency_applies_to_every_request() {
    let routing = ROUTING.replace("routing:\n", "routing:\n  data_residency: [eu]\n");
    let s = stack_with(&routing, "").await;
    let a = s
        .chat(json!({"model": "gpt-b", "messages": user("x")}))
        .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("data residency eu required"), "{}", a.body);
    let a = s
        .chat(json!({"model": "claude", "messages": user("x")}))
        .await;
    assert_eq!(a.status, 200);
    // The header narrows, it cannot widen.
    let a = s
        .post(
            "/v1/chat/completions",
            &json!({"model": "gpt-b", "messages": user("x")}),
            &[("x-mcplane-data-residency", "us")],
        )
        .await;
    assert_eq!(a.status, 400);
}

#[tokio::test]
async fn cost_optimizer_maximizes_quality_per_dollar_above_the_threshold() {
    let s = stack().await;
    let a = s
        .chat(json!({"model": "cheap", "messages": user("x")}))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    // gpt-b (0.8) and gem (0.7) are below 0.85; claude (0.9, ~$0.0039) beats gpt-a (0.95,
    // ~$0.0078) on quality per dollar.
    assert_eq!(a.header("x-mcplane-model"), "claude");
    let reason = a.header("x-mcplane-route-reason");
    assert!(
        reason.starts_with("alias cheap (cheapest): quality >= 0.85"),
        "{reason}"
    );
    assert!(
        reason.contains("gpt-b (quality 0.8 < threshold 0.85)"),
        "{reason}"
    );
    // The routing decision is logged with its inputs.
    s.log_line(&[
        "route decision",
        "requested=\"cheap\"",
        "predicted_cost_usd",
    ])
    .await;
}

#[tokio::test]
async fn weights_change_the_choice() {
    let perf = ROUTING.replace(
        "routing:\n",
        "routing:\n  weights: { performance: 1, cost: 0, availability: 0 }\n",
    );
    let s = stack_with(&perf, "").await;
    let a = s.chat(json!({"model": "all", "messages": user("x")})).await;
    assert_eq!(
        a.header("x-mcplane-model"),
        "gpt-a",
        "fastest prior: 200 ms"
    );
    drop(s);
    let cost = ROUTING.replace(
        "routing:\n",
        "routing:\n  weights: { performance: 0, cost: 1, availability: 0 }\n",
    );
    let s = stack_with(&cost, "").await;
    let a = s.chat(json!({"model": "all", "messages": user("x")})).await;
    assert_eq!(a.header("x-mcplane-model"), "gem", "cheapest");
    assert!(
        a.header("x-mcplane-route-reason")
            .contains("[weights perf 0 cost 1 avail 0]")
    );
}

// ------------------------------------------------------------------------------ failures

#[tokio::test]
async fn primary_500_falls_back_to_the_next_candidate() {
    let s = stack().await;
    s.mock
        .set_faults(vec![Fault::status(500).for_model("gpt-a")]);
    let a = s.chat(json!({"model": "ha", "messages": user("x")})).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("x-mcplane-model"), "claude");
    assert_eq!(a.header("x-mcplane-attempts"), "3");
    let reason = a.header("x-mcplane-route-reason");
    assert!(
        reason
            .contains("served by claude@eu-west-1 after gpt-a@us-east-1 500, gpt-a@us-east-1 500"),
        "{reason}"
    );
    assert_eq!(s.upstream("gpt-a").len(), 2, "retried once");
    // Streams fall back the same way before their first event.
    let a = s
        .chat(json!({"model": "ha", "messages": user("x y"), "stream": true}))
        .await;
    assert_eq!(a.header("x-mcplane-model"), "claude");
    assert_eq!(a.openai_text(), "echo: x y");
}

#[tokio::test]
async fn rate_limits_honour_retry_after_or_move_on() {
    let s = stack().await;
    // 429 with Retry-After: 1 (within max_backoff 2s): retried on the same endpoint after ≥ 1 s.
    s.mock.set_faults(vec![
        Fault::status(429)
            .retry_after(1)
            .times(1)
            .for_model("gpt-a"),
    ]);
    let t = Instant::now();
    let a = s.chat(json!({"model": "ha", "messages": user("x")})).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("x-mcplane-model"), "gpt-a");
    assert_eq!(a.header("x-mcplane-attempts"), "2");
    assert!(t.elapsed() >= Duration::from_secs(1), "{:?}", t.elapsed());
    // Retry-After: 30 is longer than max_backoff: the next candidate at once.
    s.mock.set_faults(vec![
        Fault::status(429)
            .retry_after(30)
            .times(1)
            .for_model("gpt-a"),
    ]);
    let t = Instant::now();
    let a = s.chat(json!({"model": "ha", "messages": user("x")})).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("x-mcplane-model"), "claude");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
}

#[tokio::test]
async fn timeouts_fall_back_and_headers_that_never_come_time_out() {
    let s = stack().await;
    // The primary never sends headers: the stream's first-token limit (1 s) per attempt.
    s.mock.set_faults(vec![Fault::hang().for_model("gpt-a")]);
    let t = Instant::now();
    let a = s
        .chat(json!({"model": "ha", "messages": user("x"), "stream": true}))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("x-mcplane-model"), "claude");
    assert!(t.elapsed() >= Duration::from_secs(2), "two attempts of 1 s");
    // A slow first event (headers sent) counts too.
    s.mock.set_faults(vec![
        Fault::first_token_delay(Duration::from_secs(3)).for_model("claude-sonnet-4-5"),
    ]);
    let a = s
        .chat(json!({"model": "claude", "messages": user("x"), "stream": true}))
        .await;
    assert_eq!(a.status, 502, "{}", a.body);
    let v = a.json();
    assert_eq!(v["error"]["attempts"][0]["kind"], "upstream_timeout");
    assert!(
        v["error"]["attempts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("first-token limit")
    );
    // Non-streaming: the request limit (5 s).
    s.mock.set_faults(vec![Fault::hang().for_model("gpt-b")]);
    let t = Instant::now();
    let a = s
        .chat(json!({"model": "gpt-b", "messages": user("x")}))
        .await;
    assert_eq!(a.status, 502);
    assert!(a.body.contains("no response headers in time"), "{}", a.body);
    assert!(
        t.elapsed() >= Duration::from_secs(10),
        "two attempts of 5 s"
    );
}

#[tokio::test]
async fn failures_after_the_first_event_end_with_an_error_event() {
    let s = stack().await;
    // A connection reset mid-stream, OpenAI client.
    s.mock
        .set_faults(vec![Fault::drop_after(3).for_model("gpt-a")]);
    let a = s
        .chat(
            json!({"model": "gpt-a", "messages": user("one two three four five"), "stream": true}),
        )
        .await;
    assert_eq!(a.status, 200);
    let events = a.events();
    let err = events
        .iter()
        .filter_map(|e| e.json())
        .find(|v| v.get("error").is_some())
        .expect("an error chunk");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("mid-stream"),
        "{err}"
    );
    assert_eq!(events.last().unwrap().data, "[DONE]");
    s.log_line(&["model request", "outcome=\"stream_error\""])
        .await;
    // Same fault, Anthropic client: `event: error`.
    let a = s
        .messages(json!({"model": "gpt-a", "max_tokens": 50, "stream": true, "messages": user("a b c d e")}))
        .await;
    let last = a.events().last().unwrap().clone();
    assert_eq!(last.event.as_deref(), Some("error"));
    assert_eq!(last.json().unwrap()["type"], "error");
    // A stream that ends cleanly without its terminal events is truncated, not complete.
    s.mock
        .set_faults(vec![Fault::truncate().for_model("claude-sonnet-4-5")]);
    let a = s
        .chat(json!({"model": "claude", "messages": user("a b c"), "stream": true}))
        .await;
    let last_json = a
        .events()
        .iter()
        .filter_map(|e| e.json())
        .next_back()
        .unwrap();
    assert!(
        last_json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ended before it was complete"),
        "{last_json}"
    );
    // A malformed event mid-stream (paced, so the first events reach the client first; a
    // failure before anything was sent falls back or fails cleanly instead).
    s.mock.set_faults(vec![
        Fault::malformed_event(2)
            .with_event_delay(Duration::from_millis(30))
            .for_model("gemini-2.5-flash"),
    ]);
    let a = s
        .messages(
            json!({"model": "gem", "max_tokens": 50, "stream": true, "messages": user("a b c d")}),
        )
        .await;
    let last = a.events().last().unwrap().clone();
    assert_eq!(last.event.as_deref(), Some("error"), "{}", a.body);
    // A reset before any event falls back instead.
    s.mock
        .set_faults(vec![Fault::drop_after(0).for_model("gpt-a")]);
    let a = s
        .chat(json!({"model": "ha", "messages": user("x"), "stream": true}))
        .await;
    assert_eq!(a.header("x-mcplane-model"), "claude", "{}", a.body);
    assert_eq!(a.openai_text(), "echo: x");
}

#[tokio::test]
async fn upstream_invalid_json_falls_back_then_fails_clearly() {
    let s = stack().await;
    s.mock
        .set_faults(vec![Fault::invalid_json().for_model("gpt-a")]);
    let a = s.chat(json!({"model": "ha", "messages": user("x")})).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("x-mcplane-model"), "claude");
    assert_eq!(
        a.header("x-mcplane-attempts"),
        "2",
        "no retry of a protocol error"
    );
    let a = s
        .chat(json!({"model": "gpt-a", "messages": user("x")}))
        .await;
    assert_eq!(a.status, 502);
    let v = a.json();
    assert_eq!(v["error"]["attempts"][0]["kind"], "upstream_protocol");
    assert!(a.body.contains("malformed JSON"), "{}", a.body);
}

#[tokio::test]
async fn all_fail_is_a_502_listing_every_attempt() {
    let s = stack().await;
    s.mock.set_faults(vec![Fault::status(503)]);
    let a = s.chat(json!({"model": "ha", "messages": user("x")})).await;
    assert_eq!(a.status, 502);
    let v = a.json();
    assert_eq!(v["error"]["type"], "server_error");
    assert_eq!(v["error"]["code"], "upstream_unavailable");
    let attempts = v["error"]["attempts"].as_array().unwrap();
    let listed: Vec<(&str, &str, u64)> = attempts
        .iter()
        .map(|a| {
            (
                a["model"].as_str().unwrap(),
                a["endpoint"].as_str().unwrap(),
                a["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("gpt-a", "gpt-a@us-east-1", 503),
            ("gpt-a", "gpt-a@us-east-1", 503),
            ("claude", "claude@eu-west-1", 503),
            ("claude", "claude@eu-west-1", 503),
        ]
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("every upstream attempt failed")
    );
    // The Anthropic front door answers in its format.
    let a = s
        .messages(json!({"model": "ha", "max_tokens": 5, "messages": user("x")}))
        .await;
    assert_eq!(a.status, 502);
    let v = a.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "overloaded_error");
    assert_eq!(v["error"]["attempts"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn circuit_opens_and_recovers() {
    let s = stack().await;
    s.mock
        .set_faults(vec![Fault::status(500).for_model("gpt-b")]);
    // Two attempts, then one more: three consecutive failures open the circuit.
    for _ in 0..2 {
        let a = s
            .chat(json!({"model": "gpt-b", "messages": user("x")}))
            .await;
        assert_eq!(a.status, 502);
    }
    let calls = s.upstream("gpt-b").len();
    assert_eq!(calls, 3, "the circuit opened at the third failure");
    let a = s
        .chat(json!({"model": "gpt-b", "messages": user("x")}))
        .await;
    assert_eq!(a.status, 502);
    assert!(a.body.contains("circuit open"), "{}", a.body);
    assert_eq!(s.upstream("gpt-b").len(), calls, "refused without a call");
    let ready: Value = s
        .http
        .get(s.gw.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ep = ready["models"]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["endpoint"] == "gpt-b@us")
        .unwrap()
        .clone();
    assert_eq!(ep["circuit"], "open", "{ready}");
    // An alias skips the open endpoint and serves from the next candidate.
    // After the cooldown (1 s) one trial goes through; it succeeds and closes the circuit.
    s.mock.clear_faults();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let a = s
        .chat(json!({"model": "gpt-b", "messages": user("x")}))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let a = s
        .chat(json!({"model": "gpt-b", "messages": user("x")}))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let ready: Value = s
        .http
        .get(s.gw.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ep = ready["models"]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["endpoint"] == "gpt-b@us")
        .unwrap()
        .clone();
    assert_eq!(ep["circuit"], "closed", "{ready}");
}

#[tokio::test]
async fn an_open_circuit_sends_an_alias_straight_to_its_fallback() {
    // A long cooldown, so the circuit stays open however slow this machine is.
    let s = stack_with(&ROUTING.replace("cooldown: 1s", "cooldown: 60s"), "").await;
    s.mock
        .set_faults(vec![Fault::status(500).for_model("gpt-a")]);
    // ha: 2 failed attempts on gpt-a, then claude; the second request 1 more (3 → open).
    for _ in 0..2 {
        let a = s.chat(json!({"model": "ha", "messages": user("x")})).await;
        assert_eq!(a.header("x-mcplane-model"), "claude");
    }
    let before = s.upstream("gpt-a").len();
    let a = s.chat(json!({"model": "ha", "messages": user("x")})).await;
    assert_eq!(a.header("x-mcplane-model"), "claude");
    assert_eq!(
        s.upstream("gpt-a").len(),
        before,
        "gpt-a not called while open"
    );
    assert!(
        a.header("x-mcplane-route-reason")
            .contains("gpt-a@us-east-1 unavailable"),
        "{}",
        a.header("x-mcplane-route-reason")
    );
}

// ------------------------------------------------------------------------------ bad input

#[tokio::test]
async fn bad_input_gets_clear_errors_in_the_front_doors_format() {
    let s = stack_with(ROUTING, "server: { max_body_bytes: 4096 }\n").await;
    let raw = |path: &'static str, body: &'static str| {
        let s = &s;
        async move {
            let r = s
                .http
                .post(s.gw.url(path))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (st, v) = raw("/v1/chat/completions", "{\"model\": \"gpt-a\", ").await;
    assert_eq!(st, 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("malformed JSON")
    );
    let (st, v) = raw("/v1/messages", "not json").await;
    assert_eq!(st, 400);
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let (st, v) = raw("/v1/chat/completions", "{\"model\": \"gpt-a\"}").await;
    assert_eq!(st, 400);
    assert_eq!(v["error"]["message"], "messages: required");
    let (st, v) = raw("/v1/messages", "{\"model\": \"gpt-a\", \"messages\": []}").await;
    assert_eq!(st, 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_tokens"),
        "{v}"
    );

    let a = s
        .chat(json!({"model": "gpt-z", "messages": user("x")}))
        .await;
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["error"]["code"], "model_not_found");
    let a = s
        .messages(json!({"model": "gpt-z", "max_tokens": 5, "messages": user("x")}))
        .await;
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["error"]["type"], "not_found_error");

    let a = s
        .chat(json!({"model": "claude", "n": 2, "messages": user("x")}))
        .await;
    assert_eq!(a.status, 400);
    assert!(
        a.body
            .contains("n = 2 is not possible with the Anthropic API"),
        "{}",
        a.body
    );
    // n > 1 through an alias goes to a model that can.
    let a = s
        .chat(json!({"model": "ha", "n": 2, "messages": user("x")}))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["choices"].as_array().unwrap().len(), 2);

    let a = s
        .chat(json!({"model": "gpt-a", "max_tokens": 10_000_000, "messages": user("x")}))
        .await;
    assert_eq!(a.status, 400);
    assert!(
        a.body
            .contains("max tokens 10000000 exceeds its max_output_tokens 4096"),
        "{}",
        a.body
    );

    let big = json!({"model": "gpt-a", "messages": user(&"word ".repeat(2000))});
    let a = s.chat(big).await;
    assert_eq!(a.status, 413);
    assert!(
        a.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("4096-byte limit")
    );

    let a = s
        .post(
            "/v1/chat/completions",
            &json!({"model": "gpt-a", "messages": user("x")}),
            &[("x-mcplane-data-residency", " , ")],
        )
        .await;
    assert_eq!(a.status, 400);
    // The provider's own 400 is relayed with its status, and nothing else is tried.
    s.mock
        .set_faults(vec![Fault::status(400).with_message("bad temperature")]);
    let a = s.chat(json!({"model": "ha", "messages": user("x")})).await;
    assert_eq!(a.status, 400);
    assert!(a.body.contains("bad temperature"), "{}", a.body);
    assert_eq!(a.header("x-mcplane-attempts"), "1");
}

// ------------------------------------------------------------------------------ disconnects

#[tokio::test]
async fn a_client_disconnect_cancels_the_upstream_and_is_accounted() {
    let s = stack().await;
    s.mock.set_faults(vec![
        Fault {
            event_delay_ms: Some(100),
            ..Fault::default()
        }
        .for_model("gpt-a"),
    ]);
    let words = (0..50)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    let r = s
        .http
        .post(s.gw.url("/v1/chat/completions"))
        .header("x-request-id", "disconnect-1")
        .json(&json!({"model": "gpt-a", "stream": true, "messages": user(&words)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    let mut received = 0;
    while received < 5 {
        let chunk = body.next().await.unwrap().unwrap();
        received += sse::parse(&chunk).len();
    }
    drop(body);
    // The mock sees the connection go away before the end.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let req = s.upstream("gpt-a").pop().unwrap();
        if req.delivery() == Delivery::Aborted {
            assert!(req.events_sent() < 50, "{}", req.events_sent());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "upstream not cancelled: {:?}",
            req.delivery()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The request is accounted with the output produced so far (counted, not reported).
    let line = s
        .log_line(&["request_id=disconnect-1", "outcome=\"client_closed\""])
        .await;
    assert!(line.contains("usage_source=\"estimated\""), "{line}");
    let completion: u64 = line
        .split("completion_tokens=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((2..50).contains(&completion), "{line}");
    assert!(!line.contains("cost_usd=0.000000"), "{line}");
}
