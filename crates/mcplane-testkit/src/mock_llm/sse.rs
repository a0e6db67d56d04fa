//! A small Server-Sent Events parser for tests that read streams (the mock's, or mcplane's relay
//! of them): lines end in `\n`, `\r\n` or `\r`; `event:` and `data:` fields (one optional space
//! after the colon; several `data:` lines join with `\n`); comments (`:`) ignored; a blank line
//! ends an event, and an event without data is not dispatched — as browsers and the SDKs do.

use serde_json::Value;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` name, when present.
    pub event: Option<String>,
    /// The data lines, joined with `\n`.
    pub data: String,
}

impl SseEvent {
    /// The data parsed as JSON, when it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.data).ok()
    }
}

/// Parses a whole body; an unterminated last event is dropped (see [`SseParser::rest`]).
pub fn parse(body: &[u8]) -> Vec<SseEvent> {
    let mut parser = SseParser::default();
    parser.push(body)
}

/// An incremental parser: feed it chunks as they arrive.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    event: Option<String>,
    data: Option<String>,
    /// A `\r` ended the last line; a `\n` right after it belongs to it.
    after_cr: bool,
}

impl SseParser {
    /// Adds `chunk` and returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for &b in chunk {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.buf);
                    self.line(&line, &mut out);
                }
                _ => self.buf.push(b),
            }
        }
        out
    }

    /// Bytes of an unfinished line, and whether an unfinished event has fields: what a
    /// truncated stream left behind.
    pub fn rest(&self) -> (&[u8], bool) {
        (&self.buf, self.event.is_some() || self.data.is_some())
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            let event = self.event.take();
            if let Some(data) = self.data.take() {
                out.push(SseEvent { event, data });
            }
            return;
        }
        if line[0] == b':' {
            return;
        }
        let text = String::from_utf8_lossy(line);
        let (field, value) = match text.find(':') {
            Some(i) => {
                let v = &text[i + 1..];
                (&text[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (text.as_ref(), ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lf_crlf_and_split_chunks() {
        let body = b"event: a\ndata: {\"x\":1}\n\n: comment\ndata: one\r\ndata: two\r\n\r\ndata: [DONE]\n\n";
        let all = parse(body);
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].event.as_deref(), Some("a"));
        assert_eq!(all[0].json().unwrap()["x"], 1);
        assert_eq!(all[1].data, "one\ntwo");
        assert_eq!(all[2].data, "[DONE]");
        let mut p = SseParser::default();
        let mut got = Vec::new();
        for chunk in body.chunks(3) {
            got.extend(p.push(chunk));
        }
        assert_eq!(got, all);
        let mut p = SseParser::default();
        assert!(p.push(b"data: x\n").is_empty());
        assert_eq!(p.rest(), (&b""[..], true));
    }
}
