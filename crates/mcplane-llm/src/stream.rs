//! Streaming: canonical stream events, per-format decoders and encoders, and the
//! [`StreamTranslator`] that relays a provider's SSE stream to a client in the client's format.
//!
//! A provider stream is decoded one [`SseEvent`] at a time into canonical [`StreamEvent`]s, in
//! this order: one [`StreamEvent::Start`]; text and tool-call deltas; a
//! [`StreamEvent::Finish`] per choice; at most one [`StreamEvent::Usage`]; [`StreamEvent::Done`].
//! An encoder turns that sequence into the target format's SSE frames — OpenAI
//! `chat.completion.chunk`s and `[DONE]`, Anthropic `message_start` … `message_stop`, or Gemini
//! `GenerateContentResponse` chunks — buffering only what the target needs whole (Anthropic's
//! stop reason waits for the usage that shares its `message_delta`; Gemini function calls are
//! sent complete).
//!
//! Failures are not events: a decoder returns an error ([`LlmError::Upstream`] for a provider's
//! error event, [`LlmError::Protocol`] for a malformed one, [`LlmError::Truncated`] when the
//! stream ends early) and the caller asks the translator for the terminal error frames
//! ([`StreamTranslator::fail`]): Anthropic's `event: error`, OpenAI's `{"error": …}` data line
//! and `[DONE]`, Gemini's error chunk. A stream is never silently truncated.

use crate::chat::{ChatResponse, Choice, Content, FinishReason, Message, Part, Role, ToolCall};
use crate::sse::SseEvent;
use crate::tokens;
use crate::usage::Usage;
use crate::{Format, LlmError, anthropic, gemini, openai};
use bytes::Bytes;
use mcplane_types::ErrorKind;

/// One canonical stream event.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The response began.
    Start(StreamStart),
    /// Text for a choice.
    Text {
        /// Choice index.
        choice: u32,
        /// The text delta.
        text: String,
    },
    /// A tool call began.
    ToolCallStart {
        /// Choice index.
        choice: u32,
        /// Index of the call within the choice (0, 1, …).
        index: u32,
        /// The call's id.
        id: String,
        /// The tool's name.
        name: String,
    },
    /// More of a tool call's JSON arguments.
    ToolCallArgs {
        /// Choice index.
        choice: u32,
        /// Index of the call within the choice.
        index: u32,
        /// The arguments delta (a fragment of JSON text).
        arguments: String,
    },
    /// A choice finished.
    Finish {
        /// Choice index.
        choice: u32,
        /// Why.
        reason: FinishReason,
        /// The stop sequence that matched (Anthropic).
        stop_sequence: Option<String>,
    },
    /// Token usage of the whole response.
    Usage(Usage),
    /// The stream completed.
    Done,
}

/// What is known when a response begins.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamStart {
    /// The provider's response id (may be empty: Gemini often sends none).
    pub id: String,
    /// The model that answers.
    pub model: String,
    /// Unix time of creation (OpenAI).
    pub created: Option<u64>,
    /// Usage known at the start (Anthropic reports input tokens in `message_start`).
    pub usage: Option<Usage>,
}

/// What an encoder needs that the source stream may not say.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EncodeOptions {
    /// OpenAI target: the client asked for `stream_options.include_usage` (send the usage chunk
    /// and `"usage": null` on the others).
    pub include_usage: bool,
    /// OpenAI target: `created` when the source has none (Unix seconds; the caller's clock).
    pub created: u64,
    /// Response id when the source has none.
    pub fallback_id: String,
    /// Anthropic target: `input_tokens` for `message_start` when the source reports none there
    /// (the request's estimate; the final `message_delta` carries the real count).
    pub prompt_tokens: Option<u64>,
}

/// A decoder of one format's stream.
#[derive(Debug)]
pub enum StreamDecoder {
    /// OpenAI chunks.
    OpenAi(openai::StreamDecoder),
    /// Anthropic events.
    Anthropic(anthropic::StreamDecoder),
    /// Gemini chunks.
    Gemini(gemini::StreamDecoder),
}

impl StreamDecoder {
    /// A decoder for `format` (`fallback_id` names the response when the source has no id).
    pub fn new(format: Format, fallback_id: &str) -> StreamDecoder {
        match format {
            Format::OpenAi => StreamDecoder::OpenAi(openai::StreamDecoder::default()),
            Format::Anthropic => StreamDecoder::Anthropic(anthropic::StreamDecoder::default()),
            Format::Gemini => StreamDecoder::Gemini(gemini::StreamDecoder::new(fallback_id)),
        }
    }

    /// Decodes one SSE event, appending canonical events to `out`.
    pub fn decode(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), LlmError> {
        match self {
            StreamDecoder::OpenAi(d) => d.decode(event, out),
            StreamDecoder::Anthropic(d) => d.decode(event, out),
            StreamDecoder::Gemini(d) => d.decode(event, out),
        }
    }

    /// The body ended: appends the closing events (Gemini has no terminal event of its own), or
    /// fails with [`LlmError::Truncated`] when the stream was not complete.
    pub fn end(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), LlmError> {
        match self {
            StreamDecoder::OpenAi(d) => d.end(out),
            StreamDecoder::Anthropic(d) => d.end(out),
            StreamDecoder::Gemini(d) => d.end(out),
        }
    }
}

/// An encoder of one format's stream.
#[derive(Debug)]
pub enum StreamEncoder {
    /// OpenAI chunks.
    OpenAi(openai::StreamEncoder),
    /// Anthropic events.
    Anthropic(anthropic::StreamEncoder),
    /// Gemini chunks.
    Gemini(gemini::StreamEncoder),
}

impl StreamEncoder {
    /// An encoder for `format`.
    pub fn new(format: Format, options: EncodeOptions) -> StreamEncoder {
        match format {
            Format::OpenAi => StreamEncoder::OpenAi(openai::StreamEncoder::new(options)),
            Format::Anthropic => StreamEncoder::Anthropic(anthropic::StreamEncoder::new(options)),
            Format::Gemini => StreamEncoder::Gemini(gemini::StreamEncoder::new(options)),
        }
    }

    /// Encodes one canonical event, appending SSE frames to `out`.
    pub fn encode(&mut self, event: &StreamEvent, out: &mut Vec<Bytes>) -> Result<(), LlmError> {
        match self {
            StreamEncoder::OpenAi(e) => {
                e.encode(event, out);
                Ok(())
            }
            StreamEncoder::Anthropic(e) => {
                e.encode(event, out);
                Ok(())
            }
            StreamEncoder::Gemini(e) => e.encode(event, out),
        }
    }

    /// The frames that end the stream with an error.
    pub fn error(&mut self, kind: ErrorKind, message: &str, out: &mut Vec<Bytes>) {
        match self {
            StreamEncoder::OpenAi(e) => e.error(kind, message, out),
            StreamEncoder::Anthropic(e) => e.error(kind, message, out),
            StreamEncoder::Gemini(e) => e.error(kind, message, out),
        }
    }

    /// Encodes a whole sequence (e.g. [`response_events`]) into frames.
    pub fn encode_all(&mut self, events: &[StreamEvent]) -> Result<Vec<Bytes>, LlmError> {
        let mut out = Vec::new();
        for e in events {
            self.encode(e, &mut out)?;
        }
        Ok(out)
    }
}

/// Where the usage of a finished stream came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageSource {
    /// The provider reported it.
    Reported,
    /// Counted here (the stream omitted usage or failed before reporting it).
    Estimated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Done,
    Failed,
}

/// Relays a provider stream to a client, translating between formats when they differ.
///
/// ```text
/// let mut t = StreamTranslator::new(Format::Anthropic, Format::OpenAi, options);
/// for event in upstream_events {                  // from an SseDecoder over the body
///     match t.feed(&event) {
///         Ok(frames) => send(frames),
///         Err(e) if !t.emitted() => return try_next_candidate(e),   // nothing sent yet
///         Err(e) => { send(t.fail(&e)); break }   // terminal error event, never truncation
///     }
/// }
/// match t.end() { Ok(frames) => send(frames), Err(e) => send(t.fail(&e)) }
/// let (usage, source) = t.final_usage(model, prompt_estimate);
/// ```
///
/// When source and target are the same format, events are relayed as they came (decoded only
/// to observe usage and completion), except that an OpenAI usage-only chunk is dropped when the
/// client did not ask for `include_usage` (the gateway asks upstream for it anyway).
#[derive(Debug)]
pub struct StreamTranslator {
    target: Format,
    decoder: StreamDecoder,
    encoder: StreamEncoder,
    passthrough: bool,
    include_usage: bool,
    scratch: Vec<StreamEvent>,
    state: State,
    emitted: bool,
    start_usage: Option<Usage>,
    usage: Option<Usage>,
    finish: Option<FinishReason>,
    output: String,
}

impl StreamTranslator {
    /// A translator from `source` (the provider) to `target` (the client).
    pub fn new(source: Format, target: Format, options: EncodeOptions) -> StreamTranslator {
        StreamTranslator {
            target,
            decoder: StreamDecoder::new(source, &options.fallback_id),
            include_usage: options.include_usage,
            encoder: StreamEncoder::new(target, options),
            passthrough: source == target,
            scratch: Vec::new(),
            state: State::Open,
            emitted: false,
            start_usage: None,
            usage: None,
            finish: None,
            output: String::new(),
        }
    }

    /// Translates one upstream event into frames for the client. After the stream completed or
    /// failed, further events are ignored.
    pub fn feed(&mut self, event: &SseEvent) -> Result<Vec<Bytes>, LlmError> {
        if self.state != State::Open {
            return Ok(Vec::new());
        }
        self.scratch.clear();
        self.decoder.decode(event, &mut self.scratch)?;
        let mut frames = Vec::new();
        if self.passthrough {
            if self.forward_as_is() {
                frames.push(event.to_bytes());
            }
            self.observe();
        } else {
            self.observe();
            for e in &self.scratch {
                self.encoder.encode(e, &mut frames)?;
            }
        }
        self.emitted |= !frames.is_empty();
        Ok(frames)
    }

    /// The upstream body ended. Returns the closing frames, or [`LlmError::Truncated`] when
    /// the stream had not completed (then send [`StreamTranslator::fail`]'s frames).
    pub fn end(&mut self) -> Result<Vec<Bytes>, LlmError> {
        if self.state != State::Open {
            return Ok(Vec::new());
        }
        self.scratch.clear();
        self.decoder.end(&mut self.scratch)?;
        self.observe();
        let mut frames = Vec::new();
        if !self.passthrough {
            for e in &self.scratch {
                self.encoder.encode(e, &mut frames)?;
            }
        }
        self.state = State::Done;
        self.emitted |= !frames.is_empty();
        Ok(frames)
    }

    /// Ends the stream with the target format's error event, for an upstream error, a malformed
    /// or truncated upstream stream, or a failure of mcplane's own (timeout, disconnect).
    /// Nothing once the stream has completed or already failed.
    pub fn fail(&mut self, error: &LlmError) -> Vec<Bytes> {
        let message = match error {
            LlmError::Upstream { message, .. } => message.clone(),
            other => other.to_string(),
        };
        self.fail_with(error.kind(), &message)
    }

    /// [`StreamTranslator::fail`] with an explicit classification and message.
    pub fn fail_with(&mut self, kind: ErrorKind, message: &str) -> Vec<Bytes> {
        if self.state != State::Open {
            return Vec::new();
        }
        self.state = State::Failed;
        let mut frames = Vec::new();
        self.encoder.error(kind, message, &mut frames);
        self.emitted = true;
        frames
    }

    /// Whether any frame has been produced for the client (after which a failure can no longer
    /// fall back to another candidate).
    pub fn emitted(&self) -> bool {
        self.emitted
    }

    /// Whether the stream completed normally.
    pub fn is_complete(&self) -> bool {
        self.state == State::Done
    }

    /// The target format.
    pub fn target(&self) -> Format {
        self.target
    }

    /// The usage the provider reported, if it did.
    pub fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }

    /// The finish reason of choice 0, once known.
    pub fn finish_reason(&self) -> Option<&FinishReason> {
        self.finish.as_ref()
    }

    /// The text and tool-call names and arguments produced so far (for counting tokens when the
    /// provider reports no usage).
    pub fn output_text(&self) -> &str {
        &self.output
    }

    /// The usage to account: the provider's when it reported it; otherwise input tokens from
    /// the stream's start (Anthropic) or `prompt_estimate`, and output counted on the text
    /// produced with `model`'s tokenizer.
    pub fn final_usage(&self, model: &str, prompt_estimate: u64) -> (Usage, UsageSource) {
        if let Some(u) = &self.usage {
            return (u.clone(), UsageSource::Reported);
        }
        let prompt = self
            .start_usage
            .as_ref()
            .map_or(prompt_estimate, |u| u.prompt_tokens);
        let completion = tokens::count_text(model, &self.output);
        (Usage::new(prompt, completion), UsageSource::Estimated)
    }

    fn observe(&mut self) {
        for e in &self.scratch {
            match e {
                StreamEvent::Start(s) => {
                    if s.usage.is_some() {
                        self.start_usage.clone_from(&s.usage);
                    }
                }
                StreamEvent::Text { text, .. } => self.output.push_str(text),
                StreamEvent::ToolCallStart { name, .. } => self.output.push_str(name),
                StreamEvent::ToolCallArgs { arguments, .. } => self.output.push_str(arguments),
                StreamEvent::Finish { choice, reason, .. } => {
                    if *choice == 0 {
                        self.finish = Some(reason.clone());
                    }
                }
                StreamEvent::Usage(u) => self.usage = Some(u.clone()),
                StreamEvent::Done => self.state = State::Done,
            }
        }
    }

    /// Passthrough: whether to relay this event unchanged.
    fn forward_as_is(&self) -> bool {
        if self.target != Format::OpenAi || self.include_usage {
            return true;
        }
        // A chunk that only carries usage (OpenAI's last chunk, with empty `choices`), which
        // the client did not ask for.
        let usage_only = !self.scratch.is_empty()
            && self
                .scratch
                .iter()
                .all(|e| matches!(e, StreamEvent::Usage(_)));
        !usage_only
    }
}

/// The canonical events of a whole response (for serving a non-streamed answer to a streaming
/// client, and for mock providers): start, each choice's text and tool calls, finishes, usage,
/// done. Only text parts are streamed.
pub fn response_events(resp: &ChatResponse) -> Vec<StreamEvent> {
    let mut out = vec![StreamEvent::Start(StreamStart {
        id: resp.id.clone(),
        model: resp.model.clone(),
        created: resp.created,
        usage: None,
    })];
    for c in &resp.choices {
        let text = c.message.text_content();
        if !text.is_empty() {
            out.push(StreamEvent::Text {
                choice: c.index,
                text,
            });
        }
        for (i, call) in c.message.tool_calls.iter().enumerate() {
            out.push(StreamEvent::ToolCallStart {
                choice: c.index,
                index: i as u32,
                id: call.id.clone(),
                name: call.name.clone(),
            });
            if !call.arguments.is_empty() {
                out.push(StreamEvent::ToolCallArgs {
                    choice: c.index,
                    index: i as u32,
                    arguments: call.arguments.clone(),
                });
            }
        }
        out.push(StreamEvent::Finish {
            choice: c.index,
            reason: c.finish_reason.clone().unwrap_or(FinishReason::Stop),
            stop_sequence: c.stop_sequence.clone(),
        });
    }
    if let Some(u) = &resp.usage {
        out.push(StreamEvent::Usage(u.clone()));
    }
    out.push(StreamEvent::Done);
    out
}

/// Collects canonical stream events into a response (for a non-streaming client served from a
/// streaming upstream, and for tests).
#[derive(Debug, Default)]
pub struct ResponseBuilder {
    resp: ChatResponse,
    done: bool,
}

impl ResponseBuilder {
    /// An empty builder.
    pub fn new() -> ResponseBuilder {
        ResponseBuilder::default()
    }

    fn choice(&mut self, index: u32) -> &mut Choice {
        let pos = match self.resp.choices.iter().position(|c| c.index == index) {
            Some(p) => p,
            None => {
                self.resp.choices.push(Choice {
                    index,
                    message: Message {
                        role: Role::Assistant,
                        ..Message::default()
                    },
                    ..Choice::default()
                });
                self.resp.choices.len() - 1
            }
        };
        &mut self.resp.choices[pos]
    }

    /// Adds an event.
    pub fn push(&mut self, event: &StreamEvent) {
        match event {
            StreamEvent::Start(s) => {
                self.resp.id.clone_from(&s.id);
                self.resp.model.clone_from(&s.model);
                self.resp.created = s.created;
                if s.usage.is_some() {
                    self.resp.usage.clone_from(&s.usage);
                }
            }
            StreamEvent::Text { choice, text } => {
                let c = self.choice(*choice);
                match &mut c.message.content {
                    Some(Content::Text(t)) => t.push_str(text),
                    Some(Content::Parts(p)) => p.push(Part::text(text.clone())),
                    None => c.message.content = Some(Content::Text(text.clone())),
                }
            }
            StreamEvent::ToolCallStart {
                choice,
                index,
                id,
                name,
            } => {
                let c = self.choice(*choice);
                let calls = &mut c.message.tool_calls;
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
                let c = self.choice(*choice);
                let calls = &mut c.message.tool_calls;
                let at = *index as usize;
                if calls.len() <= at {
                    calls.resize_with(at + 1, ToolCall::default);
                }
                calls[at].arguments.push_str(arguments);
            }
            StreamEvent::Finish {
                choice,
                reason,
                stop_sequence,
            } => {
                let c = self.choice(*choice);
                c.finish_reason = Some(reason.clone());
                c.stop_sequence.clone_from(stop_sequence);
            }
            StreamEvent::Usage(u) => self.resp.usage = Some(u.clone()),
            StreamEvent::Done => self.done = true,
        }
    }

    /// Whether [`StreamEvent::Done`] was seen.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The response (choices in index order).
    pub fn finish(mut self) -> ChatResponse {
        self.resp.choices.sort_by_key(|c| c.index);
        self.resp
    }
}
