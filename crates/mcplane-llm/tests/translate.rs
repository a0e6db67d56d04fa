//! Cross-format translation of requests and responses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{fixture, json};
use mcplane_llm::{
    ChatResponse, FinishReason, Format, LlmError, Role, anthropic, codec, gemini, openai,
};
use serde_json::json;

fn openai_tools_request() -> serde_json::Value {
    json!({
        "model": "claude-sonnet-4-5",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
            {"role": "user", "content": "Weather in Paris and Lyon?"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Lyon\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "21C"}]},
            {"role": "user", "content": "Thanks, which is warmer?"}
        ],
        "tools": [{"type": "function", "function": {
            "name": "get_weather", "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
        }}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "temperature": 1.4,
        "max_tokens": 300,
        "stop": "STOP",
        "seed": 1,
        "user": "u-1",
        "logit_bias": {"50256": -100},
        "stream": true,
        "stream_options": {"include_usage": true}
    })
}

#[test]
fn openai_request_with_tools_becomes_anthropic() {
    let req = openai::request_from_value(openai_tools_request()).unwrap();
    let a = anthropic::request_to_value(&req).unwrap();
    assert_eq!(
        a,
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 300,
            "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use tools."}],
            "messages": [
                {"role": "user", "content": "Weather in Paris and Lyon?"},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Lyon"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "21C"}]},
                    {"type": "text", "text": "Thanks, which is warmer?"}
                ]}
            ],
            "tools": [{"name": "get_weather", "description": "Weather for a city",
                       "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
            "tool_choice": {"type": "tool", "name": "get_weather"},
            "temperature": 1.0,
            "stop_sequences": ["STOP"],
            "metadata": {"user_id": "u-1"},
            "stream": true
        })
    );
}

#[test]
fn openai_request_with_tools_becomes_gemini() {
    let req = openai::request_from_value(openai_tools_request()).unwrap();
    let g = gemini::request_to_value(&req).unwrap();
    assert_eq!(
        g,
        json!({
            "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Use tools."}]},
            "contents": [
                {"role": "user", "parts": [{"text": "Weather in Paris and Lyon?"}]},
                {"role": "model", "parts": [
                    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                    {"functionCall": {"name": "get_weather", "args": {"city": "Lyon"}}}
                ]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"output": "18C"}}},
                    {"functionResponse": {"name": "get_weather", "response": {"output": "21C"}}},
                    {"text": "Thanks, which is warmer?"}
                ]}
            ],
            "tools": [{"functionDeclarations": [{"name": "get_weather", "description": "Weather for a city",
                "parametersJsonSchema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}},
            "generationConfig": {"temperature": 1.4, "maxOutputTokens": 300, "stopSequences": ["STOP"], "seed": 1}
        })
    );
    assert_eq!(
        gemini::generate_path(&req.model, req.stream),
        "models/claude-sonnet-4-5:streamGenerateContent?alt=sse"
    );
}

#[test]
fn anthropic_request_becomes_openai() {
    let req = anthropic::decode_request(&fixture("anthropic_request.json")).unwrap();
    let o = openai::request_to_value(&req).unwrap();
    let messages = o["messages"].as_array().unwrap();
    assert_eq!(
        messages[0],
        json!({"role": "system", "content": "You are a weather bot."})
    );
    assert_eq!(
        messages[1]["content"][1],
        json!({"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}})
    );
    // The thinking block is Anthropic's own; the text and the call remain.
    assert_eq!(
        messages[2],
        json!({"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": "toolu_01A", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
        ]})
    );
    assert_eq!(
        messages[3],
        json!({"role": "tool", "tool_call_id": "toolu_01A", "content": "18°C, cloudy"})
    );
    assert_eq!(
        messages[4],
        json!({"role": "user", "content": "And tomorrow?"})
    );
    assert_eq!(
        messages[6],
        json!({"role": "tool", "tool_call_id": "toolu_01B", "content": "Error: not available"})
    );
    // The server tool and Anthropic-only fields are not sent to OpenAI.
    assert_eq!(o["tools"].as_array().unwrap().len(), 1);
    for key in ["thinking", "service_tier", "top_k", "metadata"] {
        assert!(o.get(key).is_none(), "{key}");
    }
    assert_eq!(o["tool_choice"], "auto");
    assert_eq!(o["parallel_tool_calls"], false);
    assert_eq!(o["user"], "user-123");
    assert_eq!(o["max_tokens"], 1024);
    assert_eq!(o["stop"], json!(["END"]));
}

#[test]
fn gemini_request_becomes_openai_with_json_schema_types() {
    let req =
        gemini::decode_request(&fixture("gemini_request.json"), "gemini-2.5-flash", false).unwrap();
    let o = openai::request_to_value(&req).unwrap();
    assert_eq!(
        o["tools"][0]["function"]["parameters"],
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
    );
    let call_id = o["messages"][2]["tool_calls"][0]["id"].as_str().unwrap();
    assert_eq!(o["messages"][3]["tool_call_id"], call_id);
    assert_eq!(o["messages"][3]["content"], "18°C, cloudy");
    assert!(o.get("safetySettings").is_none());
    // And back to Gemini from OpenAI: the synthetic id is not sent, the name is found.
    let back = openai::request_from_value(o).unwrap();
    let g = gemini::request_to_value(&back).unwrap();
    assert_eq!(
        g["contents"][2],
        json!({"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"output": "18°C, cloudy"}}}]})
    );
}

#[test]
fn json_modes_map_to_each_format() {
    let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                          "response_format": {"type": "json_object"}});
    let req = openai::request_from_value(body.clone()).unwrap();
    let a = anthropic::request_to_value(&req).unwrap();
    assert!(a["system"].as_str().unwrap().contains("JSON object"));
    let g = gemini::request_to_value(&req).unwrap();
    assert_eq!(
        g["generationConfig"],
        json!({"responseMimeType": "application/json"})
    );

    body["response_format"] =
        json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}});
    let req = openai::request_from_value(body).unwrap();
    let a = anthropic::request_to_value(&req).unwrap();
    assert_eq!(
        a["output_config"],
        json!({"format": {"type": "json_schema", "schema": {"type": "object"}}})
    );
    assert!(a.get("system").is_none());
    let g = gemini::request_to_value(&req).unwrap();
    assert_eq!(
        g["generationConfig"],
        json!({"responseMimeType": "application/json", "responseJsonSchema": {"type": "object"}})
    );
}

#[test]
fn anthropic_response_becomes_openai() {
    let resp = anthropic::decode_response(&fixture("anthropic_response.json")).unwrap();
    let mut resp = ChatResponse {
        created: Some(1_700_000_000),
        ..resp
    };
    resp.usage.as_mut().unwrap().extra.clear();
    let o = json(&openai::encode_response(&resp).unwrap());
    assert_eq!(
        o,
        json!({
            "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "claude-sonnet-4-5-20250929",
            "choices": [{
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "I'll check the weather in Paris.",
                    "tool_calls": [{"id": "toolu_01A09q90qw90lq917835lq9", "type": "function",
                                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"celsius\"}"}}]
                },
                "logprobs": null,
                "finish_reason": "tool_calls"
            }],
            "usage": {"prompt_tokens": 3195, "completion_tokens": 503, "total_tokens": 3698,
                      "prompt_tokens_details": {"cached_tokens": 1000}}
        })
    );
}

#[test]
fn openai_response_becomes_anthropic_and_gemini() {
    let resp = openai::decode_response(&fixture("openai_response.json")).unwrap();
    let a = anthropic::response_to_value(&resp).unwrap();
    assert_eq!(
        a,
        json!({
            "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
            "type": "message",
            "role": "assistant",
            "model": "gpt-4o-2024-08-06",
            "content": [
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Lyon"}}
            ],
            "stop_reason": "tool_use",
            "stop_sequence": null,
            "usage": {"input_tokens": 93, "output_tokens": 46, "cache_read_input_tokens": 1024}
        })
    );
    let g = gemini::response_to_value(&resp).unwrap();
    assert_eq!(g["candidates"][0]["finishReason"], "STOP");
    assert_eq!(
        g["candidates"][0]["content"]["parts"][1],
        json!({"functionCall": {"name": "get_weather", "args": {"city": "Lyon"}, "id": "call_2"}})
    );
    assert_eq!(g["usageMetadata"]["promptTokenCount"], 1117);
    assert_eq!(g["usageMetadata"]["candidatesTokenCount"], 46);
}

#[test]
fn gemini_response_becomes_openai_and_anthropic() {
    let body = codec::translate_response(
        Format::Gemini,
        Format::OpenAi,
        &fixture("gemini_response.json"),
    )
    .unwrap();
    let o = json(&body);
    assert_eq!(o["id"], "mAitaLmkHPPlz7IPvtfUqQ4");
    assert_eq!(o["model"], "gemini-2.5-flash");
    assert_eq!(
        o["choices"][0]["message"]["content"],
        "Let me look that up."
    );
    assert_eq!(o["choices"][0]["finish_reason"], "tool_calls");
    let call = &o["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["arguments"], "{\"city\":\"Paris\"}");
    assert!(call["id"].as_str().unwrap().starts_with("call_gemini_"));
    assert_eq!(
        o["usage"],
        json!({"prompt_tokens": 120, "completion_tokens": 50, "total_tokens": 170,
               "prompt_tokens_details": {"cached_tokens": 64},
               "completion_tokens_details": {"reasoning_tokens": 20}})
    );
    let a = json(
        &codec::translate_response(
            Format::Gemini,
            Format::Anthropic,
            &fixture("gemini_response.json"),
        )
        .unwrap(),
    );
    assert_eq!(a["stop_reason"], "tool_use");
    assert_eq!(a["content"][1]["input"], json!({"city": "Paris"}));
    assert_eq!(
        a["usage"],
        json!({"input_tokens": 56, "output_tokens": 50, "cache_read_input_tokens": 64})
    );
}

#[test]
fn finish_reasons_map_between_formats() {
    use FinishReason::*;
    let cases = [
        (Stop, "stop", "end_turn", "STOP"),
        (StopSequence, "stop", "stop_sequence", "STOP"),
        (Length, "length", "max_tokens", "MAX_TOKENS"),
        (ToolCalls, "tool_calls", "tool_use", "STOP"),
        (ContentFilter, "content_filter", "refusal", "SAFETY"),
        (
            Other("RECITATION".into()),
            "content_filter",
            "refusal",
            "RECITATION",
        ),
        (Other("pause_turn".into()), "stop", "pause_turn", "STOP"),
        (
            Other("MALFORMED_FUNCTION_CALL".into()),
            "stop",
            "end_turn",
            "MALFORMED_FUNCTION_CALL",
        ),
        (
            Other("model_context_window_exceeded".into()),
            "length",
            "model_context_window_exceeded",
            "MAX_TOKENS",
        ),
    ];
    for (reason, o, a, g) in cases {
        assert_eq!(openai::finish_reason_to_wire(&reason), o, "{reason:?}");
        assert_eq!(anthropic::finish_reason_to_wire(&reason), a, "{reason:?}");
        assert_eq!(gemini::finish_reason_to_wire(&reason), g, "{reason:?}");
    }
    assert_eq!(openai::finish_reason_from_wire("length"), Length);
    assert_eq!(
        anthropic::finish_reason_from_wire("stop_sequence"),
        StopSequence
    );
    assert_eq!(gemini::finish_reason_from_wire("STOP", true), ToolCalls);
    assert_eq!(
        gemini::finish_reason_from_wire("SAFETY", false),
        ContentFilter
    );
}

#[test]
fn several_choices_cannot_go_to_anthropic() {
    let mut body = openai_tools_request();
    body["n"] = json!(2);
    let req = openai::request_from_value(body).unwrap();
    let e = anthropic::request_to_value(&req).unwrap_err();
    assert!(
        matches!(
            e,
            LlmError::Unsupported {
                format: Format::Anthropic,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.kind(), mcplane_types::ErrorKind::InvalidRequest);
    // Gemini can (candidateCount).
    assert_eq!(
        gemini::request_to_value(&req).unwrap()["generationConfig"]["candidateCount"],
        2
    );
}

#[test]
fn roles_and_helpers() {
    let req = openai::request_from_value(openai_tools_request()).unwrap();
    assert!(req.uses_tools());
    assert!(!req.uses_images());
    assert_eq!(req.messages[1].role, Role::Developer);
}
