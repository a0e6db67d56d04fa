//! Property tests: the SSE decoder gives the same events however the body is chunked, never
//! panics, and stays within its bound; a translated stream does not depend on chunking either.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{fixture, options};
use mcplane_llm::sse::{SseDecoder, frame};
use mcplane_llm::{Format, LlmError, SseEvent, StreamTranslator};
use proptest::prelude::*;

/// Splits `bytes` at the given cut points (taken modulo the length).
fn chunks(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    points.dedup();
    points
        .windows(2)
        .map(|w| bytes[w[0]..w[1]].to_vec())
        .collect()
}

fn decode_chunked(parts: &[Vec<u8>], max: usize) -> Result<Vec<SseEvent>, LlmError> {
    let mut d = SseDecoder::new(max);
    let mut out = Vec::new();
    for p in parts {
        d.feed(p, &mut out)?;
    }
    d.finish(&mut out)?;
    Ok(out)
}

fn event_strategy() -> impl Strategy<Value = SseEvent> {
    (
        prop::option::of("[a-z_]{1,12}"),
        prop::collection::vec("[^\r\n]{0,40}", 1..4),
    )
        .prop_map(|(name, lines)| SseEvent {
            event: name.unwrap_or_default(),
            data: lines.join("\n"),
        })
}

fn line_ending() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("\n"), Just("\r\n"), Just("\r")]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn events_survive_any_chunking_and_line_endings(
        evs in prop::collection::vec(event_strategy(), 0..12),
        eol in line_ending(),
        comments in any::<bool>(),
        bom in any::<bool>(),
        cuts in prop::collection::vec(any::<usize>(), 0..40),
    ) {
        let mut body = Vec::new();
        if bom {
            body.extend_from_slice(b"\xEF\xBB\xBF");
        }
        for e in &evs {
            if comments {
                body.extend_from_slice(format!(": keep-alive{eol}").as_bytes());
            }
            let framed = String::from_utf8(frame((!e.event.is_empty()).then_some(e.event.as_str()), &e.data).to_vec()).unwrap();
            body.extend_from_slice(framed.replace('\n', eol).as_bytes());
        }
        let whole = decode_chunked(&[body.clone()], 1 << 20).unwrap();
        prop_assert_eq!(&whole, &evs);
        let parts = chunks(&body, &cuts);
        prop_assert_eq!(decode_chunked(&parts, 1 << 20).unwrap(), evs);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded(
        body in prop::collection::vec(any::<u8>(), 0..2048),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
        max in 1usize..256,
    ) {
        let parts = chunks(&body, &cuts);
        match decode_chunked(&parts, max) {
            Ok(events) => {
                for e in events {
                    prop_assert!(e.data.len() <= max * 3, "lossy UTF-8 may triple bytes at most");
                }
            }
            Err(e) => prop_assert_eq!(e, LlmError::EventTooLarge { limit: max }),
        }
    }

    #[test]
    fn translations_do_not_depend_on_chunking(
        cuts in prop::collection::vec(any::<usize>(), 0..60),
        which in 0usize..3,
    ) {
        let (from, to, name) = [
            (Format::Anthropic, Format::OpenAi, "anthropic_stream_tool_use.sse"),
            (Format::OpenAi, Format::Anthropic, "openai_stream_tool_calls.sse"),
            (Format::Gemini, Format::OpenAi, "gemini_stream.sse"),
        ][which];
        let body = fixture(name);
        let run = |parts: &[Vec<u8>]| {
            let mut d = SseDecoder::default();
            let mut t = StreamTranslator::new(from, to, options(true));
            let mut out = Vec::new();
            let mut evs = Vec::new();
            for p in parts {
                d.feed(p, &mut evs).unwrap();
                for e in evs.drain(..) {
                    out.extend(t.feed(&e).unwrap());
                }
            }
            d.finish(&mut evs).unwrap();
            for e in evs.drain(..) {
                out.extend(t.feed(&e).unwrap());
            }
            out.extend(t.end().unwrap());
            out.concat()
        };
        prop_assert_eq!(run(&chunks(&body, &cuts)), run(std::slice::from_ref(&body)));
    }
}
