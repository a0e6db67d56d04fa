//! OpenAI `chat.completion.chunk` streams.

use super::{finish_reason_from_wire, finish_reason_to_wire, usage_from_value, usage_to_value};
use crate::LlmError;
use crate::error::{decode_error_value, error_body};
use crate::json::{Extra, Obj, index};
use crate::sse::{SseEvent, frame};
use crate::stream::{EncodeOptions, StreamEvent, StreamStart};
use crate::{FinishReason, Format};
use bytes::Bytes;
use mcplane_types::ErrorKind;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// Decodes OpenAI chunks into canonical events.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    tools: HashSet<(u32, u32)>,
    done: bool,
}

impl StreamDecoder {
    /// Decodes one event (`data: {chunk}`, `data: {"error": …}` or `data: [DONE]`).
    pub fn decode(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), LlmError> {
        if self.done {
            return Ok(());
        }
        let data = event.data.trim();
        if data == "[DONE]" {
            self.done = true;
            out.push(StreamEvent::Done);
            return Ok(());
        }
        if data.is_empty() {
            return Ok(());
        }
        let value: Value = serde_json::from_str(data).map_err(|e| LlmError::Protocol {
            what: "stream chunk".into(),
            reason: format!("malformed JSON: {e}"),
        })?;
        if value.get("error").is_some_and(|e| !e.is_null())
            && let Some(err) = decode_error_value(&value, None)
        {
            return Err(LlmError::Upstream {
                kind: err.kind,
                message: err.message,
                provider_type: err.provider_type,
            });
        }
        self.chunk(value, out)
            .map_err(|e| e.upstream("stream chunk"))
    }

    fn chunk(&mut self, value: Value, out: &mut Vec<StreamEvent>) -> Result<(), LlmError> {
        let mut o = Obj::new(value, "")?;
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start(StreamStart {
                id: o.string("id")?.unwrap_or_default(),
                model: o.string("model")?.unwrap_or_default(),
                created: o.u64("created")?,
                usage: None,
            }));
        }
        for (i, c) in o
            .array("choices")?
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let mut c = Obj::new(c, &index("choices", i))?;
            let choice = c.u32("index")?.unwrap_or(i as u32);
            if let Some(mut d) = c.object("delta")? {
                for key in ["content", "refusal"] {
                    if let Some(text) = d.string(key)?
                        && !text.is_empty()
                    {
                        out.push(StreamEvent::Text { choice, text });
                    }
                }
                let at = d.at("tool_calls");
                for (j, tc) in d
                    .array("tool_calls")?
                    .unwrap_or_default()
                    .into_iter()
                    .enumerate()
                {
                    let mut t = Obj::new(tc, &index(&at, j))?;
                    let idx = t.u32("index")?.unwrap_or(j as u32);
                    let id = t.string("id")?;
                    let (name, arguments) = match t.object("function")? {
                        Some(mut f) => (f.string("name")?, f.string("arguments")?),
                        None => (None, None),
                    };
                    if self.tools.insert((choice, idx)) {
                        out.push(StreamEvent::ToolCallStart {
                            choice,
                            index: idx,
                            id: id.unwrap_or_default(),
                            name: name.unwrap_or_default(),
                        });
                    }
                    if let Some(arguments) = arguments.filter(|a| !a.is_empty()) {
                        out.push(StreamEvent::ToolCallArgs {
                            choice,
                            index: idx,
                            arguments,
                        });
                    }
                }
            }
            if let Some(reason) = c.string("finish_reason")? {
                out.push(StreamEvent::Finish {
                    choice,
                    reason: finish_reason_from_wire(&reason),
                    stop_sequence: None,
                });
            }
        }
        if let Some(u) = o.take("usage") {
            out.push(StreamEvent::Usage(usage_from_value(u, "usage")?));
        }
        Ok(())
    }

    /// The body ended: complete only after `[DONE]`.
    pub fn end(&mut self, _out: &mut Vec<StreamEvent>) -> Result<(), LlmError> {
        if self.done {
            Ok(())
        } else {
            Err(LlmError::Truncated)
        }
    }
}

/// Encodes canonical events as OpenAI chunks.
#[derive(Debug)]
pub struct StreamEncoder {
    options: EncodeOptions,
    id: String,
    model: String,
    created: u64,
    started: bool,
    /// Choices that got their `role` delta.
    roles: BTreeSet<u32>,
    /// Tool calls per (choice, index): whether any arguments were sent.
    tool_args: BTreeMap<(u32, u32), bool>,
    finished: BTreeSet<u32>,
    done: bool,
}

impl StreamEncoder {
    /// An encoder.
    pub fn new(options: EncodeOptions) -> StreamEncoder {
        StreamEncoder {
            id: options.fallback_id.clone(),
            created: options.created,
            options,
            model: String::new(),
            started: false,
            roles: BTreeSet::new(),
            tool_args: BTreeMap::new(),
            finished: BTreeSet::new(),
            done: false,
        }
    }

    fn chunk(&self, choices: Value, usage: Option<Value>) -> Bytes {
        let mut m = Extra::new();
        m.insert("id".into(), self.id.clone().into());
        m.insert("object".into(), "chat.completion.chunk".into());
        m.insert("created".into(), self.created.into());
        m.insert("model".into(), self.model.clone().into());
        m.insert("choices".into(), choices);
        if self.options.include_usage {
            m.insert("usage".into(), usage.unwrap_or(Value::Null));
        }
        frame(None, &Value::Object(m).to_string())
    }

    fn delta(
        &mut self,
        choice: u32,
        mut delta: Extra,
        finish: Option<String>,
        out: &mut Vec<Bytes>,
    ) {
        if self.roles.insert(choice) {
            delta.insert("role".into(), "assistant".into());
        }
        let c = json!([{
            "index": choice,
            "delta": delta,
            "logprobs": null,
            "finish_reason": finish,
        }]);
        out.push(self.chunk(c, None));
    }

    fn ensure_started(&mut self, out: &mut Vec<Bytes>) {
        if !self.started {
            self.start(&StreamStart::default(), out);
        }
    }

    fn start(&mut self, s: &StreamStart, out: &mut Vec<Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        if !s.id.is_empty() {
            self.id.clone_from(&s.id);
        }
        self.model.clone_from(&s.model);
        if let Some(c) = s.created {
            self.created = c;
        }
        let mut d = Extra::new();
        d.insert("content".into(), "".into());
        self.delta(0, d, None, out);
    }

    /// Encodes one event.
    pub fn encode(&mut self, event: &StreamEvent, out: &mut Vec<Bytes>) {
        if self.done {
            return;
        }
        match event {
            StreamEvent::Start(s) => self.start(s, out),
            StreamEvent::Text { choice, text } => {
                self.ensure_started(out);
                let mut d = Extra::new();
                d.insert("content".into(), text.clone().into());
                self.delta(*choice, d, None, out);
            }
            StreamEvent::ToolCallStart {
                choice,
                index,
                id,
                name,
            } => {
                self.ensure_started(out);
                self.tool_args.insert((*choice, *index), false);
                let mut d = Extra::new();
                d.insert(
                    "tool_calls".into(),
                    json!([{"index": index, "id": id, "type": "function",
                            "function": {"name": name, "arguments": ""}}]),
                );
                self.delta(*choice, d, None, out);
            }
            StreamEvent::ToolCallArgs {
                choice,
                index,
                arguments,
            } => {
                if arguments.is_empty() {
                    return;
                }
                self.ensure_started(out);
                self.tool_args.insert((*choice, *index), true);
                let mut d = Extra::new();
                d.insert(
                    "tool_calls".into(),
                    json!([{"index": index, "function": {"arguments": arguments}}]),
                );
                self.delta(*choice, d, None, out);
            }
            StreamEvent::Finish { choice, reason, .. } => self.finish(*choice, reason, out),
            StreamEvent::Usage(u) => {
                if self.options.include_usage {
                    self.ensure_started(out);
                    let usage = usage_to_value(u, false);
                    out.push(self.chunk(json!([]), Some(usage)));
                }
            }
            StreamEvent::Done => {
                self.ensure_started(out);
                let open: Vec<u32> = self.roles.difference(&self.finished).copied().collect();
                for choice in open {
                    self.finish(choice, &FinishReason::Stop, out);
                }
                self.done = true;
                out.push(frame(None, "[DONE]"));
            }
        }
    }

    fn finish(&mut self, choice: u32, reason: &FinishReason, out: &mut Vec<Bytes>) {
        self.ensure_started(out);
        if !self.finished.insert(choice) {
            return;
        }
        // A client parses each call's accumulated arguments: never leave them empty.
        let empty: Vec<u32> = self
            .tool_args
            .iter()
            .filter(|((c, _), sent)| *c == choice && !**sent)
            .map(|((_, i), _)| *i)
            .collect();
        for index in empty {
            self.tool_args.insert((choice, index), true);
            let mut d = Extra::new();
            d.insert(
                "tool_calls".into(),
                json!([{"index": index, "function": {"arguments": "{}"}}]),
            );
            self.delta(choice, d, None, out);
        }
        self.delta(
            choice,
            Extra::new(),
            Some(finish_reason_to_wire(reason)),
            out,
        );
    }

    /// Ends the stream with an error object and `[DONE]`, as OpenAI does.
    pub fn error(&mut self, kind: ErrorKind, message: &str, out: &mut Vec<Bytes>) {
        if self.done {
            return;
        }
        self.done = true;
        out.push(frame(
            None,
            &error_body(Format::OpenAi, kind, message).to_string(),
        ));
        out.push(frame(None, "[DONE]"));
    }
}
