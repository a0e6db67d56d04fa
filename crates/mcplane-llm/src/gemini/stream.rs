//! Gemini `streamGenerateContent?alt=sse` streams: every event is a whole
//! `GenerateContentResponse`; there is no terminal event.

use super::{
    finish_reason_from_wire, finish_reason_to_wire, function_call_part, synthetic_id,
    usage_from_obj, usage_to_value,
};
use crate::chat::{FinishReason, ToolCall};
use crate::error::{decode_error_value, error_body};
use crate::json::{Extra, Obj, index, put};
use crate::sse::{SseEvent, frame};
use crate::stream::{EncodeOptions, StreamEvent, StreamStart};
use crate::usage::Usage;
use crate::{Format, LlmError};
use bytes::Bytes;
use mcplane_types::ErrorKind;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};

/// Decodes Gemini chunks into canonical events. Usage (repeated, cumulative, on many chunks) is
/// reported once, when the body ends after a finish reason ([`StreamDecoder::end`]).
#[derive(Debug)]
pub struct StreamDecoder {
    fallback_id: String,
    salt: String,
    started: bool,
    calls: HashMap<u32, u32>,
    next_id: usize,
    finished: bool,
    usage: Option<Usage>,
    done: bool,
}

impl StreamDecoder {
    /// A decoder; `fallback_id` names the response (and salts synthetic call ids) when the
    /// chunks carry no `responseId`.
    pub fn new(fallback_id: &str) -> StreamDecoder {
        StreamDecoder {
            fallback_id: fallback_id.to_string(),
            salt: fallback_id.to_string(),
            started: false,
            calls: HashMap::new(),
            next_id: 0,
            finished: false,
            usage: None,
            done: false,
        }
    }

    /// Decodes one chunk.
    pub fn decode(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), LlmError> {
        if self.done || event.data.trim().is_empty() {
            return Ok(());
        }
        let value: Value = serde_json::from_str(&event.data).map_err(|e| LlmError::Protocol {
            what: "stream chunk".into(),
            reason: format!("malformed JSON: {e}"),
        })?;
        if value.get("error").is_some()
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
        let id = o.string("responseId")?;
        let model = o.string("modelVersion")?;
        if !self.started {
            self.started = true;
            if let Some(id) = &id {
                self.salt.clone_from(id);
            }
            out.push(StreamEvent::Start(StreamStart {
                id: id.unwrap_or_else(|| self.fallback_id.clone()),
                model: model.unwrap_or_default(),
                created: None,
                usage: None,
            }));
        }
        for (i, c) in o
            .array("candidates")?
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let mut c = Obj::new(c, &index("candidates", i))?;
            let choice = c.u32("index")?.unwrap_or(i as u32);
            let mut parts = Vec::new();
            let mut calls: Vec<ToolCall> = Vec::new();
            if let Some(mut content) = c.object("content")? {
                let at = content.at("parts");
                let salt = self.salt.clone();
                let next_id = &mut self.next_id;
                let mut next = || {
                    let id = synthetic_id(&salt, *next_id);
                    *next_id += 1;
                    id
                };
                for (j, p) in content
                    .array("parts")?
                    .unwrap_or_default()
                    .into_iter()
                    .enumerate()
                {
                    super::decode_model_part(p, &index(&at, j), &mut parts, &mut calls, &mut next)?;
                }
            }
            for p in parts {
                if let crate::chat::Part::Text(t) = p
                    && !t.text.is_empty()
                {
                    out.push(StreamEvent::Text {
                        choice,
                        text: t.text,
                    });
                }
            }
            for call in calls {
                let n = self.calls.entry(choice).or_insert(0);
                let index = *n;
                *n += 1;
                out.push(StreamEvent::ToolCallStart {
                    choice,
                    index,
                    id: call.id,
                    name: call.name,
                });
                out.push(StreamEvent::ToolCallArgs {
                    choice,
                    index,
                    arguments: call.arguments,
                });
            }
            if let Some(reason) = c.string("finishReason")? {
                self.finished = true;
                let called = self.calls.get(&choice).is_some_and(|n| *n > 0);
                out.push(StreamEvent::Finish {
                    choice,
                    reason: finish_reason_from_wire(&reason, called),
                    stop_sequence: None,
                });
            }
        }
        // A blocked prompt has no candidates, only the reason.
        if let Some(mut pf) = o.object("promptFeedback")?
            && pf.string("blockReason")?.is_some()
            && !self.finished
        {
            self.finished = true;
            out.push(StreamEvent::Finish {
                choice: 0,
                reason: FinishReason::ContentFilter,
                stop_sequence: None,
            });
        }
        if let Some(u) = o.object("usageMetadata")? {
            self.usage = Some(usage_from_obj(u)?);
        }
        Ok(())
    }

    /// The body ended: complete when a finish reason was seen; emits the usage and `Done`.
    pub fn end(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), LlmError> {
        if self.done {
            return Ok(());
        }
        if !self.finished {
            return Err(LlmError::Truncated);
        }
        self.done = true;
        if let Some(u) = self.usage.take() {
            out.push(StreamEvent::Usage(u));
        }
        out.push(StreamEvent::Done);
        Ok(())
    }
}

/// Encodes canonical events as Gemini chunks. Text goes out as it comes; function calls, the
/// finish reasons and the usage go out together in the last chunk (Gemini sends calls whole).
#[derive(Debug)]
pub struct StreamEncoder {
    id: String,
    model: String,
    calls: BTreeMap<u32, Vec<ToolCall>>,
    finishes: BTreeMap<u32, FinishReason>,
    usage: Option<Usage>,
    done: bool,
}

impl StreamEncoder {
    /// An encoder.
    pub fn new(options: EncodeOptions) -> StreamEncoder {
        StreamEncoder {
            id: options.fallback_id,
            model: String::new(),
            calls: BTreeMap::new(),
            finishes: BTreeMap::new(),
            usage: None,
            done: false,
        }
    }

    fn chunk(&self, candidates: Vec<Value>, usage: Option<Value>) -> Bytes {
        let mut m = Extra::new();
        m.insert("candidates".into(), candidates.into());
        put(&mut m, "usageMetadata", usage);
        m.insert("modelVersion".into(), self.model.clone().into());
        if !self.id.is_empty() {
            m.insert("responseId".into(), self.id.clone().into());
        }
        frame(None, &Value::Object(m).to_string())
    }

    /// Encodes one event. Fails when buffered tool-call arguments are not a JSON object.
    pub fn encode(&mut self, ev: &StreamEvent, out: &mut Vec<Bytes>) -> Result<(), LlmError> {
        if self.done {
            return Ok(());
        }
        match ev {
            StreamEvent::Start(s) => {
                if !s.id.is_empty() {
                    self.id.clone_from(&s.id);
                }
                self.model.clone_from(&s.model);
            }
            StreamEvent::Text { choice, text } => {
                let c = json!({"content": {"parts": [{"text": text}], "role": "model"}, "index": choice});
                out.push(self.chunk(vec![c], None));
            }
            StreamEvent::ToolCallStart {
                choice,
                index,
                id,
                name,
            } => {
                let calls = self.calls.entry(*choice).or_default();
                let at = *index as usize;
                if calls.len() <= at {
                    calls.resize_with(at + 1, ToolCall::default);
                }
                calls[at].id.clone_from(id);
                calls[at].name.clone_from(name);
            }
            StreamEvent::ToolCallArgs {
                choice,
                index,
                arguments,
            } => {
                let calls = self.calls.entry(*choice).or_default();
                let at = *index as usize;
                if calls.len() <= at {
                    calls.resize_with(at + 1, ToolCall::default);
                }
                calls[at].arguments.push_str(arguments);
            }
            StreamEvent::Finish { choice, reason, .. } => {
                self.finishes.insert(*choice, reason.clone());
            }
            StreamEvent::Usage(u) => self.usage = Some(u.clone()),
            StreamEvent::Done => {
                self.done = true;
                let mut choices: Vec<u32> = self
                    .calls
                    .keys()
                    .chain(self.finishes.keys())
                    .copied()
                    .collect();
                choices.sort_unstable();
                choices.dedup();
                if choices.is_empty() {
                    choices.push(0);
                }
                let mut candidates = Vec::new();
                for choice in choices {
                    let mut parts = Vec::new();
                    for (j, call) in self.calls.get(&choice).into_iter().flatten().enumerate() {
                        let at = format!("choices[{choice}].tool_calls[{j}].arguments");
                        parts.push(
                            function_call_part(call, false, true, &at)
                                .map_err(|e| e.upstream("stream"))?,
                        );
                    }
                    let reason = self
                        .finishes
                        .get(&choice)
                        .map_or_else(|| "STOP".to_string(), finish_reason_to_wire);
                    candidates.push(json!({
                        "content": {"parts": parts, "role": "model"},
                        "finishReason": reason,
                        "index": choice,
                    }));
                }
                let usage = self.usage.as_ref().map(|u| usage_to_value(u, false));
                out.push(self.chunk(candidates, usage));
            }
        }
        Ok(())
    }

    /// Ends the stream with an error chunk (`{"error": {"code", "message", "status"}}`).
    pub fn error(&mut self, kind: ErrorKind, message: &str, out: &mut Vec<Bytes>) {
        if self.done {
            return;
        }
        self.done = true;
        out.push(frame(
            None,
            &error_body(Format::Gemini, kind, message).to_string(),
        ));
    }
}
