//! The mock providers speak each wire format as the SDKs parse it: field presence and types,
//! event names and order, framing, token accounting, tool calls and keys.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcplane_testkit::mock_llm::sse::{self, SseEvent};
use mcplane_testkit::mock_llm::{MockConfig, MockHandle, MockProvider, Provider};
use serde_json::{Value, json};

const KEY: &str = "sk-mock-key";

async fn mock() -> MockHandle {
    MockProvider::start(MockConfig::default().with_api_key(KEY))
        .await
        .unwrap()
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn openai(m: &MockHandle, path: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}{path}", m.openai_base_url()))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn anthropic(m: &MockHandle, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1/messages", m.base_url()))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn gemini(m: &MockHandle, model_action: &str, query: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!(
            "{}/v1beta/models/{model_action}{query}",
            m.base_url()
        ))
        .header("x-goog-api-key", KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn events(r: reqwest::Response) -> Vec<SseEvent> {
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    sse::parse(&r.bytes().await.unwrap())
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]}}})
}

// ------------------------------------------------------------------------------------- OpenAI

#[tokio::test]
async fn openai_chat_completion_object() {
    let m = mock().await;
    let r = openai(
        &m,
        "/chat/completions",
        json!({"model": "gpt-4o", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hello big"}, {"type": "text", "text": "world"}]}
        ]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-request-id"));
    let v: Value = r.json().await.unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["object"], "chat.completion");
    assert!(v["created"].is_u64());
    assert_eq!(v["model"], "gpt-4o");
    assert!(v["system_fingerprint"].is_string());
    let c = &v["choices"][0];
    assert_eq!(c["index"], 0);
    assert_eq!(c["message"]["role"], "assistant");
    assert_eq!(c["message"]["content"], "echo: hello big\nworld");
    assert!(c["message"]["refusal"].is_null());
    assert!(c["message"].get("tool_calls").is_none());
    assert!(c["logprobs"].is_null());
    assert_eq!(c["finish_reason"], "stop");
    let u = &v["usage"];
    assert_eq!(
        (
            u["prompt_tokens"].as_u64(),
            u["completion_tokens"].as_u64(),
            u["total_tokens"].as_u64()
        ),
        (Some(5), Some(4), Some(9))
    );
    assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(u["completion_tokens_details"]["reasoning_tokens"], 0);
}

#[tokio::test]
async fn openai_stream_chunks_usage_and_done() {
    let m = mock().await;
    let r = openai(
        &m,
        "/chat/completions",
        json!({"model": "gpt-4o", "stream": true, "stream_options": {"include_usage": true},
               "messages": [{"role": "user", "content": "a b c"}]}),
    )
    .await;
    let evs = events(r).await;
    assert_eq!(evs.last().unwrap().data, "[DONE]");
    assert!(evs.iter().all(|e| e.event.is_none()));
    let chunks: Vec<Value> = evs[..evs.len() - 1]
        .iter()
        .map(|e| e.json().unwrap())
        .collect();
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["model"], "gpt-4o");
        assert_eq!(c["id"], chunks[0]["id"]);
        assert!(
            c.get("usage").is_some(),
            "usage (null or object) on every chunk"
        );
    }
    let first = &chunks[0]["choices"][0];
    assert_eq!(first["delta"]["role"], "assistant");
    assert_eq!(first["delta"]["content"], "");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0))
        .filter_map(|c| c["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "echo: a b c");
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    assert!(finish["usage"].is_null());
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["prompt_tokens"], 3);
    assert_eq!(usage["usage"]["completion_tokens"], 4);
    // one content delta per word
    assert_eq!(chunks.len(), 1 + 4 + 1 + 1);

    // without include_usage there is no usage field at all; obfuscation can be turned off
    let r = openai(
        &m,
        "/chat/completions",
        json!({"model": "gpt-4o", "stream": true, "stream_options": {"include_obfuscation": false},
               "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    let evs = events(r).await;
    assert!(evs[..evs.len() - 1].iter().all(|e| {
        let v = e.json().unwrap();
        v.get("usage").is_none() && v.get("obfuscation").is_none()
    }));
}

#[tokio::test]
async fn openai_tool_calls_plain_and_streamed() {
    let m = mock().await;
    let body = json!({"model": "gpt-4o", "tools": [weather_tool()],
        "messages": [{"role": "user", "content": "call get_weather {\"city\":\"Zürich\"} then call get_weather"}]});
    let v: Value = openai(&m, "/chat/completions", body.clone())
        .await
        .json()
        .await
        .unwrap();
    let c = &v["choices"][0];
    assert_eq!(c["finish_reason"], "tool_calls");
    assert!(c["message"]["content"].is_null());
    let calls = c["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["type"], "function");
    assert!(calls[0]["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Zürich"}));
    let args: Value =
        serde_json::from_str(calls[1]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "mock"}));

    let mut stream_body = body;
    stream_body["stream"] = json!(true);
    let evs = events(openai(&m, "/chat/completions", stream_body).await).await;
    let mut acc: Vec<(String, String, String)> = Vec::new();
    let mut finish = None;
    for e in &evs[..evs.len() - 1] {
        let v = e.json().unwrap();
        let c = &v["choices"][0];
        if let Some(f) = c["finish_reason"].as_str() {
            finish = Some(f.to_owned());
        }
        for tc in c["delta"]["tool_calls"].as_array().into_iter().flatten() {
            let i = tc["index"].as_u64().unwrap() as usize;
            if let Some(id) = tc["id"].as_str() {
                assert_eq!(i, acc.len(), "a new call starts with its id");
                assert_eq!(tc["type"], "function");
                assert_eq!(tc["function"]["arguments"], "");
                acc.push((
                    id.to_owned(),
                    tc["function"]["name"].as_str().unwrap().to_owned(),
                    String::new(),
                ));
            } else {
                assert!(tc["function"].get("name").is_none());
                acc[i].2 += tc["function"]["arguments"].as_str().unwrap();
            }
        }
    }
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    assert_eq!(acc.len(), 2);
    assert_eq!(
        serde_json::from_str::<Value>(&acc[0].2).unwrap(),
        json!({"city": "Zürich"})
    );
    assert_eq!(acc[1].1, "get_weather");

    // round trip: the tool result is answered
    let v: Value = openai(
        &m,
        "/chat/completions",
        json!({"model": "gpt-4o", "tools": [weather_tool()], "messages": [
            {"role": "user", "content": "call get_weather"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
        ]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "tool result: sunny");

    // tool_choice: none wins over a mention, required forces the first tool
    for (choice, expect_tool) in [(json!("none"), false), (json!("required"), true)] {
        let v: Value = openai(
            &m,
            "/chat/completions",
            json!({"model": "m", "tools": [weather_tool()], "tool_choice": choice,
                   "messages": [{"role": "user", "content": if expect_tool { "hi" } else { "call get_weather" }}]}),
        )
        .await
        .json()
        .await
        .unwrap();
        assert_eq!(
            v["choices"][0]["message"]["tool_calls"].is_array(),
            expect_tool
        );
    }
}

#[tokio::test]
async fn openai_n_choices_and_max_tokens() {
    let m = mock().await;
    let v: Value = openai(
        &m,
        "/chat/completions",
        json!({"model": "m", "n": 2, "max_completion_tokens": 2,
               "messages": [{"role": "user", "content": "one two three"}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    let choices = v["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 2);
    assert_eq!(choices[1]["index"], 1);
    assert_eq!(choices[1]["message"]["content"], "echo: one");
    assert_eq!(choices[0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 4);
}

#[tokio::test]
async fn openai_embeddings_float_base64_and_tokens() {
    use base64::Engine as _;
    let m = mock().await;
    let f: Value = openai(
        &m,
        "/embeddings",
        json!({"model": "text-embedding-3-small", "input": ["hello world", "hello there"]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(f["object"], "list");
    assert_eq!(f["model"], "text-embedding-3-small");
    assert_eq!(f["usage"], json!({"prompt_tokens": 4, "total_tokens": 4}));
    let data = f["data"].as_array().unwrap();
    assert_eq!(data[1]["object"], "embedding");
    assert_eq!(data[1]["index"], 1);
    let v0: Vec<f32> = serde_json::from_value(data[0]["embedding"].clone()).unwrap();
    assert_eq!(v0.len(), 1536);
    let norm: f32 = v0.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4);

    let b: Value = openai(
        &m,
        "/embeddings",
        json!({"model": "e", "input": "hello world", "encoding_format": "base64", "dimensions": 8}),
    )
    .await
    .json()
    .await
    .unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let f8: Value = openai(
        &m,
        "/embeddings",
        json!({"model": "e", "input": "hello world", "dimensions": 8}),
    )
    .await
    .json()
    .await
    .unwrap();
    let floats: Vec<f32> = serde_json::from_value(f8["data"][0]["embedding"].clone()).unwrap();
    assert_eq!(decoded, floats);

    let t = openai(
        &m,
        "/embeddings",
        json!({"model": "e", "input": [[1, 2, 3], [4]]}),
    )
    .await;
    assert_eq!(t.status(), 200);
    let bad = openai(&m, "/embeddings", json!({"model": "e", "input": ""})).await;
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn openai_models_and_errors() {
    let m = mock().await;
    let v: Value = client()
        .get(format!("{}/models", m.openai_base_url()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["object"], "list");
    assert!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "gpt-4o" && m["object"] == "model")
    );

    let chat = |key: Option<&'static str>, body: &'static str| {
        let mut rb = client()
            .post(format!("{}/chat/completions", m.openai_base_url()))
            .header("content-type", "application/json")
            .body(body);
        if let Some(k) = key {
            rb = rb.bearer_auth(k);
        }
        rb.send()
    };
    let ok_body = r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#;
    for (key, body, status, code) in [
        (None, ok_body, 401, Value::Null),
        (
            Some("sk-wrong-key-1234"),
            ok_body,
            401,
            json!("invalid_api_key"),
        ),
        (Some(KEY), "{not json", 400, Value::Null),
        (
            Some(KEY),
            r#"{"model":"m"}"#,
            400,
            json!("missing_required_parameter"),
        ),
        (
            Some(KEY),
            r#"{"model":"m","messages":[]}"#,
            400,
            json!("empty_array"),
        ),
    ] {
        let r = chat(key, body).await.unwrap();
        assert_eq!(r.status(), status, "{key:?} {body}");
        let v: Value = r.json().await.unwrap();
        let e = &v["error"];
        assert!(e["message"].is_string());
        assert_eq!(e["type"], "invalid_request_error");
        assert!(e.get("param").is_some());
        assert_eq!(e["code"], code);
    }
    // every request reached the log, with its headers
    let log = m.requests();
    assert_eq!(log.len(), 6);
    assert_eq!(
        log[2].header("authorization"),
        Some("Bearer sk-wrong-key-1234")
    );
    assert_eq!(log[2].status, Some(401));
    assert_eq!(log[2].provider, Some(Provider::OpenAi));
}

#[tokio::test]
async fn azure_deployments_key_version_and_filter_chunk() {
    let m = mock().await;
    let url = |q: &str| {
        format!(
            "{}/openai/deployments/dep-1/chat/completions{q}",
            m.base_url()
        )
    };
    let body = json!({"messages": [{"role": "user", "content": "hi"}]});
    let r = client()
        .post(url("?api-version=2024-10-21"))
        .header("api-key", KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["model"], "dep-1");
    assert_eq!(v["choices"][0]["message"]["content"], "echo: hi");
    assert!(v["prompt_filter_results"].is_array());

    let r = client()
        .post(url("?api-version=2024-10-21"))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "Azure wants api-key");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "401");
    let r = client()
        .post(url(""))
        .header("api-key", KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "api-version is required");

    let mut sbody = body;
    sbody["stream"] = json!(true);
    let r = client()
        .post(url("?api-version=2024-10-21"))
        .header("api-key", KEY)
        .json(&sbody)
        .send()
        .await
        .unwrap();
    let evs = events(r).await;
    let first = evs[0].json().unwrap();
    assert_eq!(first["choices"], json!([]));
    assert!(first["prompt_filter_results"].is_array());
    assert!(evs[1].json().unwrap().get("obfuscation").is_none());
    assert_eq!(evs.last().unwrap().data, "[DONE]");
    assert_eq!(m.requests().last().unwrap().provider, Some(Provider::Azure));
}

// ------------------------------------------------------------------------------------- Anthropic

#[tokio::test]
async fn anthropic_message_object() {
    let m = mock().await;
    let r = anthropic(
        &m,
        json!({"model": "claude-x", "max_tokens": 64, "system": [{"type": "text", "text": "be brief"}],
               "messages": [{"role": "user", "content": "hello world"}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("request-id"));
    let v: Value = r.json().await.unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "claude-x");
    assert_eq!(
        v["content"],
        json!([{"type": "text", "text": "echo: hello world"}])
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert!(v["stop_sequence"].is_null());
    let u = &v["usage"];
    assert_eq!(u["input_tokens"], 4);
    assert_eq!(u["output_tokens"], 3);
    assert_eq!(u["cache_creation_input_tokens"], 0);
    assert_eq!(u["cache_read_input_tokens"], 0);

    let v: Value = anthropic(
        &m,
        json!({"model": "c", "max_tokens": 2, "messages": [{"role": "user", "content": "one two three"}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v["stop_reason"], "max_tokens");
    assert_eq!(v["content"][0]["text"], "echo: one");
}

#[tokio::test]
async fn anthropic_stream_event_names_and_order() {
    let m = mock().await;
    let r = anthropic(
        &m,
        json!({"model": "claude-x", "max_tokens": 64, "stream": true,
               "messages": [{"role": "user", "content": "hi there"}]}),
    )
    .await;
    let evs = events(r).await;
    let names: Vec<&str> = evs.iter().map(|e| e.event.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    for e in &evs {
        assert_eq!(
            e.json().unwrap()["type"],
            e.event.as_deref().unwrap(),
            "data.type matches the event name"
        );
    }
    let start = evs[0].json().unwrap();
    assert_eq!(start["message"]["content"], json!([]));
    assert!(start["message"]["stop_reason"].is_null());
    assert_eq!(start["message"]["usage"]["input_tokens"], 2);
    let block = evs[1].json().unwrap();
    assert_eq!(block["content_block"], json!({"type": "text", "text": ""}));
    let text: String = evs[3..6]
        .iter()
        .map(|e| {
            let v = e.json().unwrap();
            assert_eq!(v["delta"]["type"], "text_delta");
            assert_eq!(v["index"], 0);
            v["delta"]["text"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(text, "echo: hi there");
    let delta = evs[7].json().unwrap();
    assert_eq!(
        delta["delta"],
        json!({"stop_reason": "end_turn", "stop_sequence": null})
    );
    assert_eq!(delta["usage"]["output_tokens"], 3);
}

#[tokio::test]
async fn anthropic_tool_use_streamed_and_round_trip() {
    let m = mock().await;
    let tools = json!([{"name": "get_weather", "input_schema": {"type": "object",
        "properties": {"city": {"type": "string"}}, "required": ["city"]}}]);
    let r = anthropic(
        &m,
        json!({"model": "c", "max_tokens": 64, "stream": true, "tools": tools,
               "messages": [{"role": "user", "content": "call get_weather {\"city\": \"Oslo\"}"}]}),
    )
    .await;
    let evs = events(r).await;
    let start = evs[1].json().unwrap();
    assert_eq!(start["content_block"]["type"], "tool_use");
    assert_eq!(start["content_block"]["name"], "get_weather");
    assert_eq!(start["content_block"]["input"], json!({}));
    assert!(
        start["content_block"]["id"]
            .as_str()
            .unwrap()
            .starts_with("toolu_")
    );
    let partial: Vec<String> = evs
        .iter()
        .filter_map(|e| e.json())
        .filter(|v| v["type"] == "content_block_delta")
        .map(|v| {
            assert_eq!(v["delta"]["type"], "input_json_delta");
            v["delta"]["partial_json"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(partial[0], "", "the first input_json_delta is empty");
    assert_eq!(
        serde_json::from_str::<Value>(&partial.concat()).unwrap(),
        json!({"city": "Oslo"})
    );
    let delta = evs[evs.len() - 2].json().unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");

    let v: Value = anthropic(
        &m,
        json!({"model": "c", "max_tokens": 64, "tools": tools, "messages": [
            {"role": "user", "content": "call get_weather"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "x"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                "content": [{"type": "text", "text": "rainy"}]}]}
        ]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v["content"][0]["text"], "tool result: rainy");

    let v: Value = anthropic(
        &m,
        json!({"model": "c", "max_tokens": 64, "tools": tools, "tool_choice": {"type": "any"},
               "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v["content"][0]["type"], "tool_use");
    assert_eq!(v["content"][0]["input"], json!({"city": "mock"}));
    assert_eq!(v["stop_reason"], "tool_use");
}

#[tokio::test]
async fn anthropic_keys_version_and_errors() {
    let m = mock().await;
    let body =
        json!({"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]});
    let send = |headers: Vec<(&'static str, String)>, body: Value| {
        let mut rb = client()
            .post(format!("{}/v1/messages", m.base_url()))
            .json(&body);
        for (k, v) in headers {
            rb = rb.header(k, v);
        }
        rb.send()
    };
    let version = ("anthropic-version", "2023-06-01".to_owned());
    for (headers, status, kind) in [
        (vec![version.clone()], 401, "authentication_error"),
        (
            vec![("x-api-key", "nope".into()), version.clone()],
            401,
            "authentication_error",
        ),
        (
            vec![("x-api-key", KEY.into())],
            400,
            "invalid_request_error",
        ),
    ] {
        let r = send(headers, body.clone()).await.unwrap();
        assert_eq!(r.status(), status);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], kind);
        assert!(v["error"]["message"].is_string());
    }
    // the Python SDK 2.x sends the key as a bearer token
    let r = send(
        vec![("authorization", format!("Bearer {KEY}")), version.clone()],
        body,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let r = send(
        vec![("x-api-key", KEY.into()), version.clone()],
        json!({"model": "c", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400, "max_tokens is required");

    let v: Value = client()
        .post(format!("{}/v1/messages/count_tokens", m.base_url()))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "c", "system": "a b", "messages": [{"role": "user", "content": "c d e"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v, json!({"input_tokens": 5}));
    let v: Value = client()
        .get(format!("{}/v1/models", m.base_url()))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"][0]["type"], "model");
    assert_eq!(v["has_more"], false);
}

// ------------------------------------------------------------------------------------- Gemini

#[tokio::test]
async fn gemini_generate_content() {
    let m = mock().await;
    let r = gemini(
        &m,
        "gemini-2.5-flash:generateContent",
        "",
        json!({"systemInstruction": {"parts": [{"text": "be brief"}]},
               "contents": [{"role": "user", "parts": [{"text": "hello world"}]}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let c = &v["candidates"][0];
    assert_eq!(c["content"]["role"], "model");
    assert_eq!(
        c["content"]["parts"],
        json!([{"text": "echo: hello world"}])
    );
    assert_eq!(c["finishReason"], "STOP");
    assert_eq!(c["index"], 0);
    assert_eq!(
        (
            v["usageMetadata"]["promptTokenCount"].as_u64(),
            v["usageMetadata"]["candidatesTokenCount"].as_u64(),
            v["usageMetadata"]["totalTokenCount"].as_u64()
        ),
        (Some(4), Some(3), Some(7))
    );
    assert_eq!(v["modelVersion"], "gemini-2.5-flash");
    assert!(v["responseId"].is_string());

    // function call, then its response
    let tools = json!([{"functionDeclarations": [{"name": "get_weather",
        "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}}]}]);
    let v: Value = gemini(
        &m,
        "g:generateContent",
        "",
        json!({"tools": tools, "contents": [{"role": "user", "parts": [{"text": "call get_weather"}]}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["functionCall"],
        json!({"name": "get_weather", "args": {"city": "mock"}})
    );
    let v: Value = gemini(
        &m,
        "g:generateContent",
        "",
        json!({"tools": tools, "contents": [
            {"role": "user", "parts": [{"text": "call get_weather"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "x"}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"t":1}}}]}
        ]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["text"],
        r#"tool result: {"t":1}"#
    );
    let v: Value = gemini(
        &m,
        "g:generateContent",
        "",
        json!({"generationConfig": {"maxOutputTokens": 1}, "contents": [{"parts": [{"text": "a b"}]}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v["candidates"][0]["finishReason"], "MAX_TOKENS");
}

#[tokio::test]
async fn gemini_streams_sse_crlf_and_json_array() {
    let m = mock().await;
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "a b"}]}]});
    let r = gemini(&m, "g:streamGenerateContent", "?alt=sse", body.clone()).await;
    assert_eq!(r.status(), 200);
    let raw = r.bytes().await.unwrap();
    assert!(raw.ends_with(b"\r\n\r\n"), "Gemini frames events with CRLF");
    let evs = sse::parse(&raw);
    assert_eq!(evs.len(), 3);
    let chunks: Vec<Value> = evs.iter().map(|e| e.json().unwrap()).collect();
    let text: String = chunks
        .iter()
        .map(|c| {
            c["candidates"][0]["content"]["parts"][0]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(text, "echo: a b");
    assert!(
        chunks[..2]
            .iter()
            .all(|c| c["candidates"][0].get("finishReason").is_none())
    );
    assert_eq!(chunks[2]["candidates"][0]["finishReason"], "STOP");
    assert_eq!(chunks[2]["usageMetadata"]["candidatesTokenCount"], 3);
    assert_eq!(chunks[0]["usageMetadata"]["candidatesTokenCount"], 1);

    // without alt=sse: a JSON array, key in the query
    let r = client()
        .post(format!(
            "{}/v1beta/models/g:streamGenerateContent?key={KEY}",
            m.base_url()
        ))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let arr: Vec<Value> = r.json().await.unwrap();
    assert_eq!(arr.len(), 3);
    assert_eq!(arr[2]["candidates"][0]["finishReason"], "STOP");
}

#[tokio::test]
async fn gemini_keys_embeddings_and_models() {
    let m = mock().await;
    let body = json!({"contents": [{"parts": [{"text": "x"}]}]});
    let r = client()
        .post(format!("{}/v1beta/models/g:generateContent", m.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["status"], "PERMISSION_DENIED");
    assert_eq!(v["error"]["code"], 403);
    let r = client()
        .post(format!(
            "{}/v1beta/models/g:generateContent?key=wrong",
            m.base_url()
        ))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let v: Value = gemini(
        &m,
        "text-embedding-004:embedContent",
        "",
        json!({"content": {"parts": [{"text": "hello"}]}, "outputDimensionality": 16}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v["embedding"]["values"].as_array().unwrap().len(), 16);
    let v: Value = gemini(
        &m,
        "text-embedding-004:batchEmbedContents",
        "",
        json!({"requests": [{"content": {"parts": [{"text": "a"}]}}, {"content": {"parts": [{"text": "b"}]}}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v["embeddings"].as_array().unwrap().len(), 2);
    let v: Value = client()
        .get(format!("{}/v1beta/models", m.base_url()))
        .header("x-goog-api-key", KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        v["models"][0]["name"]
            .as_str()
            .unwrap()
            .starts_with("models/")
    );
    // google-genai 3.x uses /v1/models/…
    let r = client()
        .post(format!("{}/v1/models/g:generateContent", m.base_url()))
        .header("x-goog-api-key", KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        m.requests().last().unwrap().provider,
        Some(Provider::Gemini)
    );
}
