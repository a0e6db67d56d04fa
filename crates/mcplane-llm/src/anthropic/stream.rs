//! Anthropic Messages streams.

use super::{RawUsage, finish_reason_from_wire, finish_reason_to_wire, usage_to_value};
use crate::LlmError;
use crate::error::{decode_error_value, error_body};
use crate::json::{Extra, Obj, put};
use crate::sse::{SseEvent, frame};
use crate::stream::{EncodeOptions, StreamEvent, StreamStart};
use crate::usage::Usage;
use crate::{FinishReason, Format};
use bytes::Bytes;
use mcplane_types::ErrorKind;
use serde_json::{Value, json};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    /// A tool call, with its index among the message's calls.
    Tool(u32),
    Other,
}

/// Decodes Anthropic events into canonical events. The stop reason and usage of
/// `message_delta` are held until `message_stop`, so they come out once, in order.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    blocks: HashMap<u32, Block>,
    tools: u32,
    usage: RawUsage,
    has_usage: bool,
    finish: Option<(FinishReason, Option<String>)>,
    done: bool,
}

impl StreamDecoder {
    /// Decodes one event.
    pub fn decode(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), LlmError> {
        if self.done || event.data.trim().is_empty() {
            return Ok(());
        }
        let value: Value = serde_json::from_str(&event.data).map_err(|e| LlmError::Protocol {
            what: "stream event".into(),
            reason: format!("malformed JSON: {e}"),
        })?;
        let ty = value
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or(&event.event)
            .to_string();
        if ty == "error" {
            let err = decode_error_value(&value, None);
            return Err(LlmError::Upstream {
                kind: err
                    .as_ref()
                    .map_or(ErrorKind::UpstreamUnavailable, |e| e.kind),
                message: err
                    .as_ref()
                    .map_or_else(|| value.to_string(), |e| e.message.clone()),
                provider_type: err.and_then(|e| e.provider_type),
            });
        }
        self.event(&ty, value, out)
            .map_err(|e| e.upstream(&format!("{ty} event")))
    }

    fn event(
        &mut self,
        ty: &str,
        value: Value,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), LlmError> {
        let mut o = Obj::new(value, "")?;
        match ty {
            "message_start" => {
                let mut msg = o.req_object("message")?;
                if let Some(u) = msg.object("usage")? {
                    self.usage.update(u)?;
                    self.has_usage = true;
                }
                self.started = true;
                out.push(StreamEvent::Start(StreamStart {
                    id: msg.string("id")?.unwrap_or_default(),
                    model: msg.string("model")?.unwrap_or_default(),
                    created: None,
                    usage: self.has_usage.then(|| self.usage.to_usage()),
                }));
            }
            "content_block_start" => {
                let idx = o.u32("index")?.unwrap_or(0);
                let mut block = o.req_object("content_block")?;
                match block.peek_str("type") {
                    Some("text") => {
                        self.blocks.insert(idx, Block::Text);
                        if let Some(text) = block.string("text")?.filter(|t| !t.is_empty()) {
                            out.push(StreamEvent::Text { choice: 0, text });
                        }
                    }
                    Some("tool_use") => {
                        let tool = self.tools;
                        self.tools += 1;
                        self.blocks.insert(idx, Block::Tool(tool));
                        out.push(StreamEvent::ToolCallStart {
                            choice: 0,
                            index: tool,
                            id: block.string("id")?.unwrap_or_default(),
                            name: block.string("name")?.unwrap_or_default(),
                        });
                        if let Some(input) = block.take("input")
                            && input.as_object().is_some_and(|i| !i.is_empty())
                        {
                            out.push(StreamEvent::ToolCallArgs {
                                choice: 0,
                                index: tool,
                                arguments: input.to_string(),
                            });
                        }
                    }
                    _ => {
                        self.blocks.insert(idx, Block::Other);
                    }
                }
            }
            "content_block_delta" => {
                let idx = o.u32("index")?.unwrap_or(0);
                let mut delta = o.req_object("delta")?;
                match (delta.peek_str("type"), self.blocks.get(&idx)) {
                    (Some("text_delta"), _) => {
                        if let Some(text) = delta.string("text")?.filter(|t| !t.is_empty()) {
                            out.push(StreamEvent::Text { choice: 0, text });
                        }
                    }
                    (Some("input_json_delta"), Some(Block::Tool(tool))) => {
                        let tool = *tool;
                        if let Some(arguments) =
                            delta.string("partial_json")?.filter(|a| !a.is_empty())
                        {
                            out.push(StreamEvent::ToolCallArgs {
                                choice: 0,
                                index: tool,
                                arguments,
                            });
                        }
                    }
                    // Thinking, signatures, citations: nothing canonical.
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(mut d) = o.object("delta")?
                    && let Some(reason) = d.string("stop_reason")?
                {
                    self.finish =
                        Some((finish_reason_from_wire(&reason), d.string("stop_sequence")?));
                }
                if let Some(u) = o.object("usage")? {
                    self.usage.update(u)?;
                    self.has_usage = true;
                }
            }
            "message_stop" => {
                self.done = true;
                let (reason, stop_sequence) =
                    self.finish.take().unwrap_or((FinishReason::Stop, None));
                out.push(StreamEvent::Finish {
                    choice: 0,
                    reason,
                    stop_sequence,
                });
                if self.has_usage {
                    out.push(StreamEvent::Usage(self.usage.to_usage()));
                }
                out.push(StreamEvent::Done);
            }
            // `ping`, `content_block_stop`, and event types added later.
            _ => {}
        }
        Ok(())
    }

    /// The body ended: complete only after `message_stop`.
    pub fn end(&mut self, _out: &mut Vec<StreamEvent>) -> Result<(), LlmError> {
        if self.done {
            Ok(())
        } else {
            Err(LlmError::Truncated)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text(u32),
    Tool(u32),
}

/// Encodes canonical events as Anthropic events (choice 0 only).
#[derive(Debug)]
pub struct StreamEncoder {
    options: EncodeOptions,
    started: bool,
    open: Option<Open>,
    next_block: u32,
    tool_blocks: HashMap<u32, u32>,
    finish: Option<(FinishReason, Option<String>)>,
    start_usage: Option<Usage>,
    usage: Option<Usage>,
    done: bool,
}

fn event(name: &str, data: &Value) -> Bytes {
    frame(Some(name), &data.to_string())
}

impl StreamEncoder {
    /// An encoder.
    pub fn new(options: EncodeOptions) -> StreamEncoder {
        StreamEncoder {
            options,
            started: false,
            open: None,
            next_block: 0,
            tool_blocks: HashMap::new(),
            finish: None,
            start_usage: None,
            usage: None,
            done: false,
        }
    }

    fn start(&mut self, s: &StreamStart, out: &mut Vec<Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        self.start_usage.clone_from(&s.usage);
        let id = if s.id.is_empty() {
            self.options.fallback_id.clone()
        } else {
            s.id.clone()
        };
        let mut usage = match &s.usage {
            Some(u) => usage_to_value(
                &Usage {
                    completion_tokens: 0,
                    ..u.clone()
                },
                false,
            ),
            None => {
                json!({"input_tokens": self.options.prompt_tokens.unwrap_or(0), "output_tokens": 0})
            }
        };
        if let Value::Object(u) = &mut usage {
            u.insert("output_tokens".into(), 0.into());
        }
        out.push(event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": id,
                "type": "message",
                "role": "assistant",
                "model": s.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": usage,
            }}),
        ));
    }

    fn ensure_started(&mut self, out: &mut Vec<Bytes>) {
        if !self.started {
            self.start(&StreamStart::default(), out);
        }
    }

    fn close(&mut self, out: &mut Vec<Bytes>) {
        if let Some(Open::Text(i) | Open::Tool(i)) = self.open.take() {
            out.push(event(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": i}),
            ));
        }
    }

    /// Encodes one event.
    pub fn encode(&mut self, ev: &StreamEvent, out: &mut Vec<Bytes>) {
        if self.done {
            return;
        }
        match ev {
            StreamEvent::Start(s) => self.start(s, out),
            StreamEvent::Text { choice: 0, text } => {
                self.ensure_started(out);
                let idx = match self.open {
                    Some(Open::Text(i)) => i,
                    _ => {
                        self.close(out);
                        let i = self.next_block;
                        self.next_block += 1;
                        out.push(event(
                            "content_block_start",
                            &json!({"type": "content_block_start", "index": i,
                                    "content_block": {"type": "text", "text": ""}}),
                        ));
                        self.open = Some(Open::Text(i));
                        i
                    }
                };
                out.push(event(
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": idx,
                            "delta": {"type": "text_delta", "text": text}}),
                ));
            }
            StreamEvent::ToolCallStart {
                choice: 0,
                index,
                id,
                name,
            } => {
                self.ensure_started(out);
                self.close(out);
                let i = self.next_block;
                self.next_block += 1;
                self.tool_blocks.insert(*index, i);
                out.push(event(
                    "content_block_start",
                    &json!({"type": "content_block_start", "index": i,
                            "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}),
                ));
                self.open = Some(Open::Tool(i));
            }
            StreamEvent::ToolCallArgs {
                choice: 0,
                index,
                arguments,
            } => {
                if let Some(&i) = self.tool_blocks.get(index)
                    && !arguments.is_empty()
                {
                    out.push(event(
                        "content_block_delta",
                        &json!({"type": "content_block_delta", "index": i,
                                "delta": {"type": "input_json_delta", "partial_json": arguments}}),
                    ));
                }
            }
            StreamEvent::Finish {
                choice: 0,
                reason,
                stop_sequence,
            } => {
                self.ensure_started(out);
                self.close(out);
                self.finish = Some((reason.clone(), stop_sequence.clone()));
            }
            StreamEvent::Usage(u) => self.usage = Some(u.clone()),
            StreamEvent::Done => {
                self.ensure_started(out);
                self.close(out);
                let (reason, stop_sequence) =
                    self.finish.take().unwrap_or((FinishReason::Stop, None));
                let mut usage = Extra::new();
                match self.usage.as_ref().or(self.start_usage.as_ref()) {
                    Some(u) => {
                        if let Value::Object(m) = usage_to_value(u, false) {
                            usage = m;
                        }
                    }
                    None => {
                        usage.insert("output_tokens".into(), 0.into());
                    }
                }
                let mut delta = Extra::new();
                delta.insert("stop_reason".into(), finish_reason_to_wire(&reason).into());
                delta.insert("stop_sequence".into(), Value::Null);
                put(&mut delta, "stop_sequence", stop_sequence);
                out.push(event(
                    "message_delta",
                    &json!({"type": "message_delta", "delta": delta, "usage": usage}),
                ));
                out.push(event("message_stop", &json!({"type": "message_stop"})));
                self.done = true;
            }
            // Other choices: Anthropic has one.
            _ => {}
        }
    }

    /// Ends the stream with an `error` event.
    pub fn error(&mut self, kind: ErrorKind, message: &str, out: &mut Vec<Bytes>) {
        if self.done {
            return;
        }
        self.done = true;
        out.push(event(
            "error",
            &error_body(Format::Anthropic, kind, message),
        ));
    }
}
