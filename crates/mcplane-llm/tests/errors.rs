//! Malformed inputs give clear errors naming the field.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcplane_llm::{LlmError, anthropic, gemini, openai};
use mcplane_types::ErrorKind;
use serde_json::{Value, json};

fn openai_err(body: Value) -> String {
    let e = openai::request_from_value(body).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    e.to_string()
}

fn msgs(messages: Value) -> Value {
    json!({"model": "gpt-4o", "messages": messages})
}

#[test]
fn openai_request_errors_name_the_field() {
    let cases = [
        (
            json!({"messages": [{"role": "user", "content": "hi"}]}),
            "model: required",
        ),
        (json!({"model": "m"}), "messages: required"),
        (
            json!({"model": "m", "messages": []}),
            "messages: must contain at least one message",
        ),
        (
            json!({"model": 5, "messages": []}),
            "model: expected a string, got a number",
        ),
        (json!([1, 2]), "body: expected an object, got an array"),
        (
            msgs(
                json!([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": 7}]),
            ),
            "messages[2].content: expected a string or an array of content parts, got a number",
        ),
        (
            msgs(json!([{"role": "wizard", "content": "a"}])),
            "messages[0].role: unknown role \"wizard\"",
        ),
        (
            msgs(json!([{"content": "a"}])),
            "messages[0].role: required",
        ),
        (
            msgs(json!([{"role": "user"}])),
            "messages[0].content: required",
        ),
        (
            msgs(json!(["hi"])),
            "messages[0]: expected an object, got a string",
        ),
        (
            msgs(json!([{"role": "tool", "content": "x"}])),
            "messages[0].tool_call_id: required for a tool message",
        ),
        (
            msgs(json!([{"role": "user", "content": [{"type": "text"}]}])),
            "messages[0].content[0].text: required",
        ),
        (
            msgs(json!([{"role": "user", "content": [{"text": "x"}]}])),
            "messages[0].content[0].type: required",
        ),
        (
            msgs(
                json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"detail": "low"}}]}]),
            ),
            "messages[0].content[0].image_url.url: required",
        ),
        (
            msgs(
                json!([{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {}}]}]),
            ),
            "messages[0].tool_calls[0].function.name: required",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}),
            "temperature: expected a number, got a string",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": -5}),
            "max_tokens: expected a non-negative integer, got -5",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 99999999999u64}),
            "max_tokens: 99999999999 is too large",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 0}),
            "n: must be at least 1",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": [1]}),
            "stop[0]: expected a string, got a number",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "sometimes"}),
            "tool_choice: unknown tool choice \"sometimes\"",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{"function": {"name": "f"}}]}),
            "tools[0].type: required",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream_options": {"include_usage": "yes"}}),
            "stream_options.include_usage: expected a boolean, got a string",
        ),
    ];
    for (body, expected) in cases {
        let got = openai_err(body);
        assert!(
            got.starts_with(expected),
            "expected {expected:?}, got {got:?}"
        );
    }
}

#[test]
fn malformed_json_is_reported_as_such() {
    let e = openai::decode_request(b"{\"model\": ").unwrap_err();
    assert!(matches!(e, LlmError::Json(_)), "{e}");
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    let e = anthropic::decode_request(&[0xff, 0xfe]).unwrap_err();
    assert!(matches!(e, LlmError::Json(_)), "{e}");
}

#[test]
fn anthropic_request_errors_name_the_field() {
    let base = |extra: Value| {
        let mut b = json!({"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let cases = [
        (
            json!({"model": "c", "messages": [{"role": "user", "content": "hi"}]}),
            "max_tokens: required",
        ),
        (
            base(json!({"messages": [{"role": "system", "content": "x"}]})),
            "messages[0].role: unknown role \"system\"",
        ),
        (
            base(json!({"system": 3})),
            "system: expected a string or an array of text blocks, got a number",
        ),
        (
            base(json!({"messages": [{"role": "user", "content": [{"type": "tool_result"}]}]})),
            "messages[0].content[0].tool_use_id: required",
        ),
        (
            base(
                json!({"messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "input": {}}]}]}),
            ),
            "messages[0].content[0].name: required",
        ),
        (
            base(
                json!({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": "x"}}]}]}),
            ),
            "messages[0].content[0].source.media_type: required",
        ),
        (
            base(json!({"stop_sequences": "END"})),
            "stop_sequences: expected an array, got a string",
        ),
        (
            base(json!({"top_k": 1.5})),
            "top_k: expected a non-negative integer, got 1.5",
        ),
    ];
    for (body, expected) in cases {
        let e = anthropic::request_from_value(body).unwrap_err();
        let got = e.to_string();
        assert!(
            got.starts_with(expected),
            "expected {expected:?}, got {got:?}"
        );
    }
}

#[test]
fn gemini_request_errors_name_the_field() {
    let e = gemini::request_from_value(json!({}), "g", false).unwrap_err();
    assert_eq!(e.to_string(), "contents: required");
    let e = gemini::request_from_value(
        json!({"contents": [{"role": "robot", "parts": []}]}),
        "g",
        false,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("contents[0].role: unknown role \"robot\""),
        "{e}"
    );
    let e = gemini::request_from_value(
        json!({"contents": [{"role": "model", "parts": [{"functionCall": {"args": {}}}]}]}),
        "g",
        false,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "contents[0].parts[0].functionCall.name: required"
    );
}

#[test]
fn untranslatable_history_names_the_field() {
    // Arguments Anthropic cannot take as an object.
    let req = openai::request_from_value(msgs(json!([
        {"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "r"}
    ])))
    .unwrap();
    let e = anthropic::request_to_value(&req).unwrap_err();
    assert!(
        e.to_string().starts_with(
            "messages[1].tool_calls[0].function.arguments: tool arguments are not valid JSON"
        ),
        "{e}"
    );
    // A tool result Gemini cannot name.
    let req = openai::request_from_value(msgs(json!([
        {"role": "user", "content": "x"},
        {"role": "tool", "tool_call_id": "nowhere", "content": "r"}
    ])))
    .unwrap();
    let e = gemini::request_to_value(&req).unwrap_err();
    assert_eq!(
        e.to_string(),
        "messages[1].tool_call_id: no earlier assistant message has a tool call with id \"nowhere\""
    );
}

#[test]
fn malformed_upstream_answers_are_protocol_errors() {
    let e = openai::decode_response(
        br#"{"id":"x","choices":[{"message":{"role":"assistant","content":3}}]}"#,
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamProtocol);
    assert_eq!(
        e.to_string(),
        "upstream sent a malformed response: choices[0].message.content: expected a string or an array of content parts, got a number"
    );
    let e = openai::decode_response(b"<html>502</html>").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamProtocol);
    assert!(
        e.to_string()
            .starts_with("upstream sent a malformed response: malformed JSON"),
        "{e}"
    );
    let e = anthropic::decode_response(
        br#"{"type":"message","content":[{"type":"tool_use","id":"t"}]}"#,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "upstream sent a malformed response: content[0].name: required"
    );
    let e = gemini::decode_response(br#"{"candidates":[{"content":{"parts":[{"text":1}]}}]}"#)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "upstream sent a malformed response: candidates[0].content.parts[0].text: expected a string, got a number"
    );
    let e = openai::decode_embeddings_response(br#"{"data":[{"embedding":["x"]}]}"#).unwrap_err();
    assert!(
        e.to_string()
            .contains("data[0].embedding[0]: expected a number"),
        "{e}"
    );
}

#[test]
fn embeddings_requests_are_checked() {
    let e = openai::decode_embeddings_request(br#"{"model":"m","input":{"a":1}}"#).unwrap_err();
    assert_eq!(
        e.to_string(),
        "input: expected a string or an array, got an object"
    );
    let e = openai::decode_embeddings_request(br#"{"model":"m","input":["a",2]}"#).unwrap_err();
    assert_eq!(e.to_string(), "input[1]: expected a string, got a number");
    let e = openai::decode_embeddings_request(br#"{"model":"m","input":[]}"#).unwrap_err();
    assert_eq!(e.to_string(), "input: must not be empty");
    let e =
        openai::decode_embeddings_request(br#"{"model":"m","input":"x","encoding_format":"int8"}"#)
            .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("encoding_format: unknown encoding"),
        "{e}"
    );
    let req = openai::decode_embeddings_request(br#"{"model":"m","input":[1,2]}"#).unwrap();
    let e = gemini::encode_embeddings_request(&req).unwrap_err();
    assert!(matches!(e, LlmError::Unsupported { .. }), "{e}");
}
