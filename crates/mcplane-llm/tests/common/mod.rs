//! Helpers shared by the integration tests.
#![allow(dead_code)]

use mcplane_llm::sse::SseDecoder;
use mcplane_llm::stream::{ResponseBuilder, StreamDecoder};
use mcplane_llm::{ChatResponse, EncodeOptions, Format, SseEvent, StreamTranslator};
use serde_json::Value;

/// A fixture's bytes.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A fixture as JSON.
pub fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

/// Bytes as JSON.
pub fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

/// SSE text as events.
pub fn events(bytes: &[u8]) -> Vec<SseEvent> {
    let mut d = SseDecoder::default();
    let mut out = Vec::new();
    d.feed(bytes, &mut out).unwrap();
    d.finish(&mut out).unwrap();
    out
}

/// Frames joined into one body.
pub fn join(frames: &[bytes::Bytes]) -> Vec<u8> {
    frames.iter().flat_map(|f| f.iter().copied()).collect()
}

/// Options with fixed clock and ids.
pub fn options(include_usage: bool) -> EncodeOptions {
    EncodeOptions {
        include_usage,
        created: 1_700_000_000,
        fallback_id: "resp_fallback".into(),
        prompt_tokens: None,
    }
}

/// Runs a whole upstream stream through a translator; panics on errors.
pub fn translate(from: Format, to: Format, body: &[u8], include_usage: bool) -> Vec<u8> {
    let mut t = StreamTranslator::new(from, to, options(include_usage));
    let mut out = Vec::new();
    for e in events(body) {
        out.extend(t.feed(&e).unwrap());
    }
    out.extend(t.end().unwrap());
    assert!(t.is_complete());
    join(&out)
}

/// Decodes a stream body of `format` into a response.
pub fn collect(format: Format, body: &[u8]) -> ChatResponse {
    let mut d = StreamDecoder::new(format, "collected");
    let mut b = ResponseBuilder::new();
    let mut evs = Vec::new();
    for e in events(body) {
        d.decode(&e, &mut evs).unwrap();
    }
    d.end(&mut evs).unwrap();
    for e in &evs {
        b.push(e);
    }
    assert!(b.is_done());
    b.finish()
}

/// The data of each event as JSON (`[DONE]` as the string "[DONE]"), with its event name.
pub fn datas(body: &[u8]) -> Vec<(String, Value)> {
    events(body)
        .into_iter()
        .map(|e| {
            let v = serde_json::from_str(&e.data).unwrap_or(Value::String(e.data.clone()));
            (e.event, v)
        })
        .collect()
}
