//! Streaming translation between formats, passthrough, and failures mid-stream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{collect, datas, events, fixture, join, options, translate};
use mcplane_llm::stream::{StreamEncoder, response_events};
use mcplane_llm::{
    ChatResponse, Choice, Content, FinishReason, Format, LlmError, Message, Role, StreamTranslator,
    ToolCall, Usage, UsageSource,
};
use mcplane_types::ErrorKind;
use serde_json::{Value, json};

/// The events of an OpenAI stream body, `[DONE]` included.
fn openai_chunks(body: &[u8]) -> Vec<Value> {
    datas(body)
        .into_iter()
        .map(|(name, v)| {
            assert_eq!(name, "", "OpenAI events are unnamed");
            v
        })
        .collect()
}

#[test]
fn anthropic_tool_use_stream_becomes_openai_chunks() {
    let out = translate(
        Format::Anthropic,
        Format::OpenAi,
        &fixture("anthropic_stream_tool_use.sse"),
        true,
    );
    let chunks = openai_chunks(&out);
    let deltas: Vec<Value> = chunks
        .iter()
        .filter_map(|c| c.get("choices").and_then(|c| c.get(0)).cloned())
        .collect();
    for c in &chunks[..chunks.len() - 1] {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["id"], "msg_014p7gG3wDgGV9EUtLvnow3U");
        assert_eq!(c["model"], "claude-sonnet-4-5-20250929");
        assert_eq!(c["created"], 1_700_000_000);
    }
    assert_eq!(
        deltas[0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(deltas[1]["delta"], json!({"content": "Okay"}));
    assert_eq!(
        deltas[2]["delta"],
        json!({"content": ", let's check the weather for San Francisco, CA:"})
    );
    assert_eq!(
        deltas[3]["delta"],
        json!({"tool_calls": [{"index": 0, "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "type": "function",
                               "function": {"name": "get_weather", "arguments": ""}}]})
    );
    assert_eq!(
        deltas[4]["delta"],
        json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"location\":"}}]})
    );
    assert_eq!(
        deltas[5]["delta"],
        json!({"tool_calls": [{"index": 0, "function": {"arguments": " \"San Francisco, CA\", \"unit\": \"fahrenheit\"}"}}]})
    );
    assert_eq!(deltas[6]["finish_reason"], "tool_calls");
    assert_eq!(deltas[6]["delta"], json!({}));
    for d in &deltas[..6] {
        assert_eq!(d["finish_reason"], Value::Null);
    }
    // Every chunk but the last has "usage": null; the usage chunk has no choices.
    let usage_chunk = &chunks[chunks.len() - 2];
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(
        usage_chunk["usage"],
        json!({"prompt_tokens": 472, "completion_tokens": 89, "total_tokens": 561})
    );
    assert!(
        chunks[..chunks.len() - 2]
            .iter()
            .all(|c| c["usage"].is_null() && c.get("usage").is_some())
    );
    assert_eq!(chunks.last().unwrap(), "[DONE]");

    // Both sides describe the same response.
    let a = collect(Format::Anthropic, &fixture("anthropic_stream_tool_use.sse"));
    let o = collect(Format::OpenAi, &out);
    assert_eq!(o.choices, a.choices);
    assert_eq!(o.usage, a.usage);
    assert_eq!(
        o.choices[0].message.tool_calls[0].arguments,
        r#"{"location": "San Francisco, CA", "unit": "fahrenheit"}"#
    );
}

#[test]
fn openai_tool_call_stream_becomes_anthropic_events() {
    let out = translate(
        Format::OpenAi,
        Format::Anthropic,
        &fixture("openai_stream_tool_calls.sse"),
        false,
    );
    let evs = datas(&out);
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    for (name, data) in &evs {
        assert_eq!(
            data["type"], *name,
            "the data's type repeats the event name"
        );
    }
    assert_eq!(
        evs[0].1,
        json!({"type": "message_start", "message": {"id": "chatcmpl-9x", "type": "message", "role": "assistant",
               "model": "gpt-4o-2024-08-06", "content": [], "stop_reason": null, "stop_sequence": null,
               "usage": {"input_tokens": 0, "output_tokens": 0}}})
    );
    assert_eq!(
        evs[1].1["content_block"],
        json!({"type": "text", "text": ""})
    );
    assert_eq!(
        evs[2].1["delta"],
        json!({"type": "text_delta", "text": "Checking"})
    );
    assert_eq!(
        evs[5].1,
        json!({"type": "content_block_start", "index": 1,
               "content_block": {"type": "tool_use", "id": "call_P1", "name": "get_weather", "input": {}}})
    );
    assert_eq!(
        evs[6].1["delta"],
        json!({"type": "input_json_delta", "partial_json": "{\"city\""})
    );
    assert_eq!(evs[9].1["index"], 2);
    assert_eq!(evs[10].1["delta"]["partial_json"], "{\"city\": \"Lyon\"}");
    assert_eq!(
        evs[12].1,
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
               "usage": {"input_tokens": 80, "output_tokens": 37, "cache_read_input_tokens": 0}})
    );
    let o = collect(Format::OpenAi, &fixture("openai_stream_tool_calls.sse"));
    let a = collect(Format::Anthropic, &out);
    assert_eq!(a.choices, o.choices);
    assert_eq!(a.choices[0].message.tool_calls.len(), 2);
}

#[test]
fn gemini_stream_becomes_openai_and_back() {
    let out = translate(
        Format::Gemini,
        Format::OpenAi,
        &fixture("gemini_stream.sse"),
        true,
    );
    let chunks = openai_chunks(&out);
    assert_eq!(chunks[0]["id"], "Xy12abc");
    assert_eq!(
        chunks[1]["choices"][0]["delta"],
        json!({"content": "The weather"})
    );
    let start = &chunks[3]["choices"][0]["delta"]["tool_calls"][0];
    assert!(
        start["id"]
            .as_str()
            .unwrap()
            .starts_with("call_gemini_Xy12abc_")
    );
    assert_eq!(
        chunks[4]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Paris\"}"
    );
    assert_eq!(chunks[5]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        chunks[6]["usage"],
        json!({"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21})
    );
    assert_eq!(chunks[7], "[DONE]");

    let back = translate(Format::OpenAi, Format::Gemini, &out, false);
    let g: Vec<Value> = datas(&back).into_iter().map(|(_, v)| v).collect();
    assert_eq!(g.len(), 3);
    assert_eq!(
        g[0]["candidates"][0]["content"]["parts"],
        json!([{"text": "The weather"}])
    );
    assert_eq!(
        g[2]["candidates"][0],
        json!({"content": {"parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}], "role": "model"},
               "finishReason": "STOP", "index": 0})
    );
    assert_eq!(
        g[2]["usageMetadata"],
        json!({"promptTokenCount": 9, "candidatesTokenCount": 12, "totalTokenCount": 21})
    );
    assert_eq!(g[2]["modelVersion"], "gemini-2.5-flash");
}

#[test]
fn anthropic_stream_becomes_gemini() {
    let out = translate(
        Format::Anthropic,
        Format::Gemini,
        &fixture("anthropic_stream_tool_use.sse"),
        false,
    );
    let g = collect(Format::Gemini, &out);
    let a = collect(Format::Anthropic, &fixture("anthropic_stream_tool_use.sse"));
    assert_eq!(
        g.choices[0].message.text_content(),
        a.choices[0].message.text_content()
    );
    assert_eq!(g.choices[0].finish_reason, Some(FinishReason::ToolCalls));
    let args: Value = serde_json::from_str(&g.choices[0].message.tool_calls[0].arguments).unwrap();
    assert_eq!(
        args,
        json!({"location": "San Francisco, CA", "unit": "fahrenheit"})
    );
}

#[test]
fn same_format_streams_pass_through_untouched() {
    for (format, name) in [
        (Format::OpenAi, "openai_stream_tool_calls.sse"),
        (Format::Anthropic, "anthropic_stream_tool_use.sse"),
        (Format::Gemini, "gemini_stream.sse"),
    ] {
        let body = fixture(name);
        let out = translate(format, format, &body, true);
        assert_eq!(events(&out), events(&body), "{name}");
    }
    // Without include_usage, the usage-only chunk the gateway asked for is not relayed…
    let body = fixture("openai_stream_tool_calls.sse");
    let mut t = StreamTranslator::new(Format::OpenAi, Format::OpenAi, options(false));
    let mut out = Vec::new();
    for e in events(&body) {
        out.extend(t.feed(&e).unwrap());
    }
    out.extend(t.end().unwrap());
    assert_eq!(events(&join(&out)).len(), events(&body).len() - 1);
    // …but it is still accounted.
    assert_eq!(t.usage().unwrap().total_tokens, 117);
    assert_eq!(t.final_usage("gpt-4o", 0).1, UsageSource::Reported);
}

#[test]
fn an_upstream_error_mid_stream_ends_with_the_targets_error_event() {
    let mut body = String::from_utf8(fixture("anthropic_stream_tool_use.sse")).unwrap();
    let cut = body.find("event: content_block_stop").unwrap();
    body.truncate(cut);
    body.push_str("event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n");

    for target in [Format::OpenAi, Format::Anthropic, Format::Gemini] {
        let mut t = StreamTranslator::new(Format::Anthropic, target, options(true));
        let mut out = Vec::new();
        let mut failed = None;
        for e in events(body.as_bytes()) {
            match t.feed(&e) {
                Ok(f) => out.extend(f),
                Err(e) => {
                    assert!(t.emitted(), "text was already sent");
                    failed = Some(e);
                    break;
                }
            }
        }
        let err = failed.unwrap();
        assert!(
            matches!(&err, LlmError::Upstream { kind: ErrorKind::UpstreamUnavailable, message, .. } if message == "Overloaded")
        );
        out.extend(t.fail(&err));
        assert!(t.fail(&err).is_empty(), "only one terminal event");
        assert!(t.end().unwrap().is_empty());
        let evs = datas(&join(&out));
        match target {
            Format::OpenAi => {
                let n = evs.len();
                assert_eq!(evs[n - 2].1["error"]["message"], "Overloaded");
                assert_eq!(evs[n - 2].1["error"]["type"], "server_error");
                assert_eq!(evs[n - 1].1, "[DONE]");
            }
            Format::Anthropic => {
                let (name, data) = evs.last().unwrap();
                assert_eq!(name, "error");
                assert_eq!(
                    data,
                    &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
                );
            }
            Format::Gemini => {
                let (_, data) = evs.last().unwrap();
                assert_eq!(data["error"]["status"], "UNAVAILABLE");
            }
        }
        // What was produced is still accounted: input from message_start, output counted.
        let (usage, source) = t.final_usage("claude-sonnet-4-5", 999);
        assert_eq!(source, UsageSource::Estimated);
        assert_eq!(usage.prompt_tokens, 472);
        assert!(usage.completion_tokens > 5, "{usage:?}");
    }
}

#[test]
fn a_truncated_stream_is_never_silently_complete() {
    let body = fixture("openai_stream_tool_calls.sse");
    let text = String::from_utf8(body).unwrap();
    let cut = &text[..text.find("\"finish_reason\":\"tool_calls\"").unwrap()];
    let cut = &cut[..cut.rfind("data:").unwrap()];
    for target in [Format::OpenAi, Format::Anthropic] {
        let mut t = StreamTranslator::new(Format::OpenAi, target, options(false));
        for e in events(cut.as_bytes()) {
            t.feed(&e).unwrap();
        }
        let err = t.end().unwrap_err();
        assert_eq!(err, LlmError::Truncated);
        assert_eq!(err.kind(), ErrorKind::UpstreamProtocol);
        let frames = join(&t.fail(&err));
        let evs = datas(&frames);
        match target {
            Format::OpenAi => {
                assert!(
                    evs[0].1["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("ended before")
                );
                assert_eq!(evs[1].1, "[DONE]");
            }
            _ => assert_eq!(evs[0].0, "error"),
        }
        assert!(!t.is_complete());
    }
    // Gemini: a stream without a finish reason is truncated too.
    let g = fixture("gemini_stream.sse");
    let first = events(&g).into_iter().next().unwrap();
    let mut t = StreamTranslator::new(Format::Gemini, Format::OpenAi, options(false));
    t.feed(&first).unwrap();
    assert_eq!(t.end().unwrap_err(), LlmError::Truncated);
}

#[test]
fn a_failure_before_anything_was_sent_can_fall_back() {
    let body = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow down\"}}\n\n";
    let mut t = StreamTranslator::new(Format::Anthropic, Format::OpenAi, options(false));
    let e = events(body.as_bytes());
    let err = t.feed(&e[0]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert!(
        !t.emitted(),
        "nothing was sent: the router may try the next candidate"
    );
}

#[test]
fn malformed_chunks_are_protocol_errors_with_paths() {
    let mut t = StreamTranslator::new(Format::OpenAi, Format::Anthropic, options(false));
    let e = t
        .feed(&mcplane_llm::SseEvent::message("{not json"))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamProtocol);
    let e = t
        .feed(&mcplane_llm::SseEvent::message(
            r#"{"id":"x","choices":[{"index":0,"delta":{"content":5}}]}"#,
        ))
        .unwrap_err();
    assert!(e.to_string().contains("choices[0].delta.content"), "{e}");
}

fn sample_response() -> ChatResponse {
    ChatResponse {
        id: "resp_1".into(),
        model: "m-1".into(),
        created: Some(1_700_000_000),
        choices: vec![Choice {
            index: 0,
            message: Message {
                role: Role::Assistant,
                content: Some(Content::Text("Hello there.".into())),
                tool_calls: vec![ToolCall {
                    id: "call_9".into(),
                    name: "lookup".into(),
                    arguments: r#"{"q":"x"}"#.into(),
                    ..ToolCall::default()
                }],
                ..Message::default()
            },
            finish_reason: Some(FinishReason::ToolCalls),
            ..Choice::default()
        }],
        usage: Some(Usage::new(10, 5)),
        ..ChatResponse::default()
    }
}

#[test]
fn whole_responses_stream_in_every_format_and_collect_back() {
    let resp = sample_response();
    for format in [Format::OpenAi, Format::Anthropic, Format::Gemini] {
        let mut enc = StreamEncoder::new(format, options(true));
        let body = join(&enc.encode_all(&response_events(&resp)).unwrap());
        let got = collect(format, &body);
        assert_eq!(
            got.choices[0].message.text_content(),
            "Hello there.",
            "{format}"
        );
        assert_eq!(
            got.choices[0].message.tool_calls[0].name, "lookup",
            "{format}"
        );
        let args: Value =
            serde_json::from_str(&got.choices[0].message.tool_calls[0].arguments).unwrap();
        assert_eq!(args, json!({"q": "x"}), "{format}");
        assert_eq!(
            got.choices[0].finish_reason,
            Some(FinishReason::ToolCalls),
            "{format}"
        );
        let u = got.usage.unwrap();
        assert_eq!((u.prompt_tokens, u.completion_tokens), (10, 5), "{format}");
    }
}

#[test]
fn tool_calls_without_arguments_get_an_empty_object_for_openai_clients() {
    let body = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n\
        event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"now\",\"input\":{}}}\n\n\
        event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n\
        event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
        event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":5}}\n\n\
        event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    let out = translate(Format::Anthropic, Format::OpenAi, body.as_bytes(), false);
    let o = collect(Format::OpenAi, &out);
    assert_eq!(o.choices[0].message.tool_calls[0].arguments, "{}");
}

#[test]
fn streams_without_usage_are_estimated() {
    let body = fixture("openai_stream_tool_calls.sse");
    let text = String::from_utf8(body).unwrap();
    let without: String = text
        .split("\n\n")
        .filter(|e| !e.contains("\"choices\":[]"))
        .map(|e| format!("{e}\n\n"))
        .collect();
    let mut t = StreamTranslator::new(Format::OpenAi, Format::Anthropic, options(false));
    for e in events(without.as_bytes()) {
        t.feed(&e).unwrap();
    }
    t.end().unwrap();
    assert!(t.usage().is_none());
    let (u, source) = t.final_usage("gpt-4o", 42);
    assert_eq!(source, UsageSource::Estimated);
    assert_eq!(u.prompt_tokens, 42);
    assert!(
        u.completion_tokens >= 10 && u.completion_tokens <= 30,
        "{u:?}"
    );
    assert!(t.output_text().starts_with("Checking now.get_weather"));
}

#[test]
fn a_blocked_gemini_prompt_finishes_with_content_filter() {
    let body = b"data: {\"promptFeedback\": {\"blockReason\": \"SAFETY\"}, \"usageMetadata\": {\"promptTokenCount\": 7, \"totalTokenCount\": 7}, \"modelVersion\": \"gemini-2.5-flash\"}\n\n";
    let out = translate(Format::Gemini, Format::OpenAi, body, true);
    let chunks = openai_chunks(&out);
    assert_eq!(chunks[1]["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(chunks[2]["usage"]["prompt_tokens"], 7);
    assert_eq!(chunks[3], "[DONE]");
}

#[test]
fn usage_only_chunks_are_recognized_whatever_their_spacing() {
    let body = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}]}\n\n\
        data: {\"id\": \"c\", \"choices\": [ ], \"usage\": {\"prompt_tokens\": 1, \"completion_tokens\": 1, \"total_tokens\": 2}}\n\n\
        data: [DONE]\n\n";
    let out = translate(Format::OpenAi, Format::OpenAi, body.as_bytes(), false);
    assert_eq!(events(&out).len(), 2);
    let out = translate(Format::OpenAi, Format::OpenAi, body.as_bytes(), true);
    assert_eq!(events(&out).len(), 3);
}
