//! Server-sent events: a bounded incremental decoder (bytes in, events out) and the framing of
//! outgoing events.
//!
//! The decoder follows the WHATWG `text/event-stream` rules (a leading BOM is skipped; lines end
//! with `\n`, `\r\n` or `\r`; `:` lines are comments; `data` lines are joined with `\n`; a blank
//! line dispatches the event; an event with no `data` line is not dispatched) with two
//! deliberate differences for provider streams:
//!
//! - every line and every event is bounded ([`SseDecoder::new`]'s `max_event`), so a peer cannot
//!   grow memory without limit ([`LlmError::EventTooLarge`]);
//! - at the end of the body, [`SseDecoder::finish`] dispatches a last event that lacks its
//!   closing blank line (some OpenAI-compatible servers end with `data: [DONE]\n`), where the
//!   browser algorithm would drop it.
//!
//! `id` and `retry` fields are ignored: provider streams are not resumable.
//!
//! mcplane-mcp has its own decoder for MCP transports (`upstream::http::SseDecoder`, private to
//! that crate); the two crates must not depend on each other, so this one is separate.

use crate::LlmError;
use bytes::{BufMut, Bytes, BytesMut};

/// The default limit for one SSE line or event: 8 MiB (a Gemini chunk may carry an image).
pub const DEFAULT_MAX_EVENT: usize = 8 * 1024 * 1024;

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event` field; empty when not given (which means `message`).
    pub event: String,
    /// The `data` lines joined with `\n`.
    pub data: String,
}

impl SseEvent {
    /// An event with a name.
    pub fn named(event: impl Into<String>, data: impl Into<String>) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
        }
    }

    /// An unnamed (`message`) event.
    pub fn message(data: impl Into<String>) -> SseEvent {
        SseEvent {
            event: String::new(),
            data: data.into(),
        }
    }

    /// The event framed for the wire.
    pub fn to_bytes(&self) -> Bytes {
        frame(
            if self.event.is_empty() {
                None
            } else {
                Some(&self.event)
            },
            &self.data,
        )
    }
}

/// Frames one event: `event: <name>\n` (when named), one `data: ` line per line of `data`, and
/// the blank line that dispatches it.
pub fn frame(event: Option<&str>, data: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + 32);
    if let Some(name) = event {
        out.put_slice(b"event: ");
        out.put_slice(name.as_bytes());
        out.put_u8(b'\n');
    }
    for line in data.split('\n') {
        out.put_slice(b"data: ");
        out.put_slice(line.strip_suffix('\r').unwrap_or(line).as_bytes());
        out.put_u8(b'\n');
    }
    out.put_u8(b'\n');
    out.freeze()
}

/// An incremental, bounded `text/event-stream` decoder.
#[derive(Debug)]
pub struct SseDecoder {
    max_event: usize,
    line: Vec<u8>,
    /// The previous chunk ended with `\r`: a leading `\n` belongs to it.
    skip_lf: bool,
    started: bool,
    data: String,
    has_data: bool,
    event: String,
}

impl Default for SseDecoder {
    fn default() -> Self {
        SseDecoder::new(DEFAULT_MAX_EVENT)
    }
}

impl SseDecoder {
    /// A decoder refusing lines and events longer than `max_event` bytes.
    pub fn new(max_event: usize) -> SseDecoder {
        SseDecoder {
            max_event,
            line: Vec::new(),
            skip_lf: false,
            started: false,
            data: String::new(),
            has_data: false,
            event: String::new(),
        }
    }

    /// Decodes a chunk of the body, appending complete events to `out`.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), LlmError> {
        if !self.started && !bytes.is_empty() {
            // The BOM may be split across chunks; wait for three bytes or a non-BOM prefix.
            let mut head = std::mem::take(&mut self.line);
            head.extend_from_slice(bytes);
            if head.len() < 3 && b"\xEF\xBB\xBF".starts_with(&head) {
                self.line = head;
                return Ok(());
            }
            self.started = true;
            let rest = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&head);
            return self.feed_lines(rest, out);
        }
        if bytes.is_empty() {
            return Ok(());
        }
        if self.skip_lf {
            self.skip_lf = false;
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        self.feed_lines(bytes, out)
    }

    fn feed_lines(&mut self, mut bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), LlmError> {
        while !bytes.is_empty() {
            match bytes.iter().position(|b| *b == b'\n' || *b == b'\r') {
                Some(i) => {
                    self.push(&bytes[..i])?;
                    let cr = bytes[i] == b'\r';
                    bytes = &bytes[i + 1..];
                    if cr {
                        match bytes.first() {
                            Some(b'\n') => bytes = &bytes[1..],
                            None => self.skip_lf = true,
                            Some(_) => {}
                        }
                    }
                    let line = std::mem::take(&mut self.line);
                    self.line_done(&line, out)?;
                    self.line = line;
                    self.line.clear();
                }
                None => {
                    self.push(bytes)?;
                    break;
                }
            }
        }
        Ok(())
    }

    /// Decodes a chunk and returns the events it completed.
    pub fn decode(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, LlmError> {
        let mut out = Vec::new();
        self.feed(bytes, &mut out)?;
        Ok(out)
    }

    /// The body ended: a pending line is completed and a pending event dispatched.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<(), LlmError> {
        if !self.started {
            // Only (part of) a BOM was received.
            self.line.clear();
            self.started = true;
        }
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, out)?;
        }
        self.line_done(b"", out)
    }

    fn push(&mut self, part: &[u8]) -> Result<(), LlmError> {
        if self.line.len() + part.len() > self.max_event {
            self.line.clear();
            return Err(LlmError::EventTooLarge {
                limit: self.max_event,
            });
        }
        self.line.extend_from_slice(part);
        Ok(())
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), LlmError> {
        if line.is_empty() {
            if self.has_data {
                out.push(SseEvent {
                    event: std::mem::take(&mut self.event),
                    data: std::mem::take(&mut self.data),
                });
            }
            self.has_data = false;
            self.data.clear();
            self.event.clear();
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => {
                let extra = usize::from(self.has_data) + value.len();
                if self.data.len() + extra > self.max_event {
                    self.data.clear();
                    self.has_data = false;
                    return Err(LlmError::EventTooLarge {
                        limit: self.max_event,
                    });
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => {
                self.event.clear();
                self.event.push_str(value);
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut d = SseDecoder::default();
        let mut out = Vec::new();
        for c in chunks {
            d.feed(c, &mut out).unwrap();
        }
        d.finish(&mut out).unwrap();
        out
    }

    #[test]
    fn decodes_events_across_chunks_and_line_endings() {
        let events = decode_all(&[
            b"\xEF\xBB",
            b"\xBFevent: message_start\ndata: {\"a\"",
            b":1}\r",
            b"\n\r\n: comment\r\nevent: x\rdata: y\r\r",
            b"data: a\ndata:b\nid: 7\nretry: 5\n\n",
            b"data: [DONE]",
        ]);
        assert_eq!(
            events,
            vec![
                SseEvent::named("message_start", "{\"a\":1}"),
                SseEvent::named("x", "y"),
                SseEvent::message("a\nb"),
                SseEvent::message("[DONE]"),
            ]
        );
    }

    #[test]
    fn events_without_data_are_not_dispatched() {
        let events = decode_all(&[b"event: ping\n\ndata:\n\n"]);
        assert_eq!(events, vec![SseEvent::message("")]);
    }

    #[test]
    fn oversized_lines_and_events_are_errors() {
        let mut d = SseDecoder::new(16);
        let mut out = Vec::new();
        assert_eq!(
            d.feed(&[b'x'; 17], &mut out),
            Err(LlmError::EventTooLarge { limit: 16 })
        );
        let mut d = SseDecoder::new(16);
        let r = d.feed(b"data: 0123456789\ndata: 0123456789\n", &mut out);
        assert!(r.is_err());
    }

    #[test]
    fn frames_round_trip() {
        let ev = SseEvent::named("content_block_delta", "{\"x\":1}\nsecond");
        let bytes = ev.to_bytes();
        assert_eq!(
            &bytes[..],
            b"event: content_block_delta\ndata: {\"x\":1}\ndata: second\n\n"
        );
        assert_eq!(decode_all(&[&bytes]), vec![ev]);
        assert_eq!(
            &SseEvent::message("[DONE]").to_bytes()[..],
            b"data: [DONE]\n\n"
        );
    }
}
