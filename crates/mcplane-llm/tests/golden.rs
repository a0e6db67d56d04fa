//! Golden round trips: decoding a provider's document and encoding it back into the same
//! format gives the same JSON, unknown fields included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{fixture, fixture_json, json};
use mcplane_llm::{
    Content, FinishReason, Format, ImageSource, Part, ResponseFormat, Role, Tool, ToolChoice,
    anthropic, gemini, openai,
};

#[test]
fn openai_request_round_trips_with_unknown_fields() {
    let req = openai::decode_request(&fixture("openai_request.json")).unwrap();
    assert_eq!(req.source, Some(Format::OpenAi));
    assert_eq!(req.messages.len(), 6);
    assert_eq!(req.messages[1].name.as_deref(), Some("ann"));
    let Some(Content::Parts(parts)) = &req.messages[1].content else {
        panic!("parts expected")
    };
    assert!(
        matches!(&parts[1], Part::Image(i) if matches!(&i.source, ImageSource::Base64 { media_type, .. } if media_type == "image/png"))
    );
    assert!(matches!(&parts[2], Part::Other(_)));
    assert_eq!(
        req.messages[2].tool_calls[0].arguments,
        r#"{"city":"Paris"}"#
    );
    assert_eq!(req.messages[3].role, Role::Tool);
    assert_eq!(req.tool_choice, Some(ToolChoice::Auto));
    assert_eq!(req.parallel_tool_calls, Some(false));
    assert_eq!(req.sampling.max_output_tokens(), Some(512));
    assert!(req.stream && req.include_usage);
    assert!(
        matches!(req.response_format, Some(ResponseFormat::JsonSchema(ref s)) if s.name == "forecast")
    );
    for key in ["logprobs", "top_logprobs", "service_tier", "metadata"] {
        assert!(req.extra.contains_key(key), "{key} kept");
    }
    let back = openai::request_to_value(&req).unwrap();
    assert_eq!(back, fixture_json("openai_request.json"));
}

#[test]
fn openai_response_round_trips() {
    let resp = openai::decode_response(&fixture("openai_response.json")).unwrap();
    assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(resp.choices[0].message.tool_calls.len(), 2);
    let u = resp.usage.as_ref().unwrap();
    assert_eq!(
        (u.prompt_tokens, u.completion_tokens, u.total_tokens),
        (1117, 46, 1163)
    );
    assert_eq!(u.cached_tokens, Some(1024));
    assert_eq!(
        json(&openai::encode_response(&resp).unwrap()),
        fixture_json("openai_response.json")
    );
}

#[test]
fn anthropic_request_round_trips_with_unknown_fields() {
    let req = anthropic::decode_request(&fixture("anthropic_request.json")).unwrap();
    let roles: Vec<Role> = req.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [
            Role::System,
            Role::User,
            Role::Assistant,
            Role::Tool,
            Role::User,
            Role::Assistant,
            Role::Tool,
            Role::Assistant,
            Role::User
        ]
    );
    assert_eq!(req.messages[2].tool_calls[0].id, "toolu_01A");
    assert_eq!(
        req.messages[2].tool_calls[0].arguments,
        r#"{"city":"Paris"}"#
    );
    assert_eq!(req.messages[3].tool_call_id.as_deref(), Some("toolu_01A"));
    assert!(req.messages[6].is_error);
    assert!(matches!(req.tools[1], Tool::Other(_)));
    assert_eq!(req.parallel_tool_calls, Some(false));
    assert_eq!(req.user.as_deref(), Some("user-123"));
    assert_eq!(req.sampling.top_k, Some(40));
    assert!(req.extra.contains_key("thinking"));
    let back = anthropic::request_to_value(&req).unwrap();
    assert_eq!(back, fixture_json("anthropic_request.json"));
}

#[test]
fn anthropic_response_round_trips() {
    let resp = anthropic::decode_response(&fixture("anthropic_response.json")).unwrap();
    let u = resp.usage.as_ref().unwrap();
    // input 2095 + cache writes 100 + cache reads 1000
    assert_eq!(u.prompt_tokens, 3195);
    assert_eq!(u.cached_tokens, Some(1000));
    assert_eq!(u.cache_creation_tokens, Some(100));
    assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(
        json(&anthropic::encode_response(&resp).unwrap()),
        fixture_json("anthropic_response.json")
    );
}

#[test]
fn gemini_request_round_trips_with_unknown_fields() {
    let req = gemini::decode_request(
        &fixture("gemini_request.json"),
        "models/gemini-2.5-flash",
        false,
    )
    .unwrap();
    assert_eq!(req.model, "gemini-2.5-flash");
    let call = &req.messages[2].tool_calls[0];
    assert!(call.id.starts_with(gemini::SYNTHETIC_ID_PREFIX));
    assert!(call.extra.contains_key("thoughtSignature"));
    // The function response answers that call, matched by name.
    assert_eq!(
        req.messages[3].tool_call_id.as_deref(),
        Some(call.id.as_str())
    );
    assert_eq!(req.messages[3].text_content(), "18°C, cloudy");
    assert_eq!(req.sampling.n, Some(1));
    let back = gemini::request_to_value(&req).unwrap();
    assert_eq!(back, fixture_json("gemini_request.json"));
}

#[test]
fn gemini_response_round_trips() {
    let resp = gemini::decode_response(&fixture("gemini_response.json")).unwrap();
    let c = &resp.choices[0];
    assert_eq!(c.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(c.message.tool_calls[0].name, "get_weather");
    assert!(
        c.message.tool_calls[0]
            .id
            .starts_with("call_gemini_mAitaLmkHPPlz7IPvtfUqQ4_")
    );
    let u = resp.usage.as_ref().unwrap();
    assert_eq!(
        (u.prompt_tokens, u.completion_tokens, u.reasoning_tokens),
        (120, 50, Some(20))
    );
    assert_eq!(
        json(&gemini::encode_response(&resp).unwrap()),
        fixture_json("gemini_response.json")
    );
}

#[test]
fn embeddings_round_trip() {
    let body = br#"{"model":"text-embedding-3-small","input":["a","b"],"dimensions":256,"encoding_format":"float","user":"u","extra_field":1}"#;
    let req = openai::decode_embeddings_request(body).unwrap();
    assert_eq!(
        json(&openai::encode_embeddings_request(&req).unwrap()),
        json(body)
    );
    for input in [r#""x""#, "[1,2,3]", "[[1,2],[3]]"] {
        let body = format!(r#"{{"model":"m","input":{input}}}"#);
        let req = openai::decode_embeddings_request(body.as_bytes()).unwrap();
        assert_eq!(
            json(&openai::encode_embeddings_request(&req).unwrap()),
            json(body.as_bytes())
        );
    }
    let resp = br#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.0023064255,-0.009327292]},{"object":"embedding","index":1,"embedding":"AAAAPw=="}],"model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}}"#;
    let r = openai::decode_embeddings_response(resp).unwrap();
    assert_eq!(r.data.len(), 2);
    assert_eq!(
        json(&openai::encode_embeddings_response(&r).unwrap()),
        json(resp)
    );

    let single = br#"{"content":{"parts":[{"text":"hello"}]},"taskType":"RETRIEVAL_QUERY","outputDimensionality":8}"#;
    let req = gemini::decode_embeddings_request(single, "text-embedding-004").unwrap();
    let (path, body) = gemini::encode_embeddings_request(&req).unwrap();
    assert_eq!(path, "models/text-embedding-004:embedContent");
    let mut expected = json(single);
    expected["model"] = "models/text-embedding-004".into();
    assert_eq!(json(&body), expected);
    let gresp = br#"{"embeddings":[{"values":[0.1,0.2]},{"values":[0.3]}]}"#;
    let r = gemini::decode_embeddings_response(gresp).unwrap();
    assert_eq!(
        json(&gemini::encode_embeddings_response(&r, true).unwrap()),
        json(gresp)
    );
}
