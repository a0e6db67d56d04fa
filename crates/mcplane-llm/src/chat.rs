//! The canonical chat model every format decodes into and encodes from.
//!
//! Its shape follows OpenAI Chat Completions (the most common front door): a request is a list
//! of [`Message`]s with roles `system`/`developer`/`user`/`assistant`/`tool`; an assistant
//! message carries its [`ToolCall`]s beside its content; a tool result is a `tool` message
//! naming the call it answers. Anthropic's content blocks and Gemini's parts map onto it:
//! `tool_use` blocks and `functionCall` parts become tool calls, `tool_result` blocks and
//! `functionResponse` parts become tool messages, and a top-level `system` or
//! `systemInstruction` becomes leading system messages.
//!
//! ## Passthrough
//!
//! Every object keeps the fields this crate does not model in an `extra` map, and every value
//! records the [`Format`] it was decoded from (`source`). Encoding into that same format
//! re-emits the extras, so an OpenAI → OpenAI relay never drops a field it does not understand;
//! encoding into another format drops them (they would mean nothing there). A nested object
//! that is only partly modelled (OpenAI `stream_options`, Anthropic `metadata`, Gemini
//! `generationConfig`) keeps only its unmodelled keys in `extra`, and encoders merge the
//! modelled ones back in. Content parts this crate does not model (audio, documents, thinking
//! blocks, …) are kept whole as [`Part::Other`] and likewise only re-emitted in their format.

use crate::Format;
use crate::usage::Usage;
use serde_json::Value;

/// Fields of a JSON object this crate does not model.
pub type Extra = serde_json::Map<String, Value>;

/// A chat request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatRequest {
    /// The model asked for (a registry id or alias at the front door; the provider's name for
    /// it once routed).
    pub model: String,
    /// The conversation, system messages included.
    pub messages: Vec<Message>,
    /// Tools the model may call.
    pub tools: Vec<Tool>,
    /// Whether and which tool the model must call.
    pub tool_choice: Option<ToolChoice>,
    /// Whether the model may call several tools in one turn (OpenAI `parallel_tool_calls`,
    /// Anthropic `disable_parallel_tool_use` inverted).
    pub parallel_tool_calls: Option<bool>,
    /// Output format constraint.
    pub response_format: Option<ResponseFormat>,
    /// Sampling and length parameters.
    pub sampling: Sampling,
    /// Whether the client wants a stream.
    pub stream: bool,
    /// OpenAI `stream_options.include_usage`: end the stream with a usage chunk.
    pub include_usage: bool,
    /// End-user id (OpenAI `user`, Anthropic `metadata.user_id`).
    pub user: Option<String>,
    /// The format this request was decoded from (`None` when built in code).
    pub source: Option<Format>,
    /// Fields this crate does not model, re-emitted only into `source`.
    pub extra: Extra,
}

/// Sampling and length parameters.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sampling {
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Nucleus sampling mass.
    pub top_p: Option<f64>,
    /// Top-k sampling (Anthropic, Gemini).
    pub top_k: Option<u32>,
    /// Most tokens to generate (OpenAI `max_tokens`, Anthropic `max_tokens`, Gemini
    /// `maxOutputTokens`).
    pub max_tokens: Option<u32>,
    /// OpenAI `max_completion_tokens` (newer name of the same limit, kept apart so an OpenAI
    /// relay sends what the client sent). Use [`Sampling::max_output_tokens`] to read the limit.
    pub max_completion_tokens: Option<u32>,
    /// Stop sequences.
    pub stop: Option<Stop>,
    /// Seed for deterministic sampling (OpenAI, Gemini).
    pub seed: Option<i64>,
    /// Number of choices (OpenAI `n`, Gemini `candidateCount`).
    pub n: Option<u32>,
    /// Presence penalty (OpenAI, Gemini).
    pub presence_penalty: Option<f64>,
    /// Frequency penalty (OpenAI, Gemini).
    pub frequency_penalty: Option<f64>,
}

impl Sampling {
    /// The output-token limit, whichever field carried it.
    pub fn max_output_tokens(&self) -> Option<u32> {
        self.max_completion_tokens.or(self.max_tokens)
    }
}

/// Stop sequences; OpenAI accepts one string or a list, and a relay keeps the form.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    /// A single sequence given as a string.
    One(String),
    /// A list of sequences.
    Many(Vec<String>),
}

impl Stop {
    /// The sequences.
    pub fn sequences(&self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s.clone()],
            Stop::Many(v) => v.clone(),
        }
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Role {
    /// Instructions from the application.
    System,
    /// OpenAI's `developer` role (system instructions for reasoning models).
    Developer,
    /// The user.
    #[default]
    User,
    /// The model.
    Assistant,
    /// A tool's result.
    Tool,
}

impl Role {
    /// OpenAI's name for the role.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::Developer => "developer",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }

    /// Whether the role carries instructions (system or developer).
    pub fn is_instruction(self) -> bool {
        matches!(self, Role::System | Role::Developer)
    }
}

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Its content; `None` for an assistant turn that only calls tools.
    pub content: Option<Content>,
    /// OpenAI `name` on a message; for a tool message, the name of the tool that answered
    /// (Gemini `functionResponse.name`).
    pub name: Option<String>,
    /// Tool calls made by an assistant message.
    pub tool_calls: Vec<ToolCall>,
    /// For a tool message: the id of the call it answers.
    pub tool_call_id: Option<String>,
    /// For a tool message: the tool reported an error (Anthropic `is_error`).
    pub is_error: bool,
    /// Fields this crate does not model.
    pub extra: Extra,
}

impl Message {
    /// A message with plain text content.
    pub fn text(role: Role, text: impl Into<String>) -> Message {
        Message {
            role,
            content: Some(Content::Text(text.into())),
            ..Message::default()
        }
    }

    /// The text of the content (text parts joined with nothing between them).
    pub fn text_content(&self) -> String {
        self.content.as_ref().map(Content::text).unwrap_or_default()
    }
}

/// Message content: a plain string or a list of parts. The form is kept so a relay into the
/// same format sends what the client sent (some OpenAI-compatible servers only take strings).
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// A list of parts.
    Parts(Vec<Part>),
}

impl Content {
    /// All text, parts joined with nothing between them.
    pub fn text(&self) -> String {
        match self {
            Content::Text(t) => t.clone(),
            Content::Parts(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    Part::Text(t) => Some(t.text.as_str()),
                    _ => None,
                })
                .collect(),
        }
    }

    /// The content as parts (a plain string is one text part).
    pub fn parts(&self) -> Vec<Part> {
        match self {
            Content::Text(t) => vec![Part::text(t.clone())],
            Content::Parts(p) => p.clone(),
        }
    }

    /// Whether there is nothing in it (no parts, or only empty text).
    pub fn is_empty(&self) -> bool {
        match self {
            Content::Text(t) => t.is_empty(),
            Content::Parts(p) => p
                .iter()
                .all(|p| matches!(p, Part::Text(t) if t.text.is_empty())),
        }
    }
}

/// One part of a message's content.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// Text.
    Text(TextPart),
    /// An image.
    Image(ImagePart),
    /// A part this crate does not model (audio, file, document, thinking, …), kept whole and
    /// only re-emitted into the format it came from.
    Other(Value),
}

impl Part {
    /// A text part.
    pub fn text(text: impl Into<String>) -> Part {
        Part::Text(TextPart {
            text: text.into(),
            extra: Extra::new(),
        })
    }
}

/// A text part.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TextPart {
    /// The text.
    pub text: String,
    /// Fields this crate does not model (Anthropic `cache_control`, Gemini `thoughtSignature`…).
    pub extra: Extra,
}

/// An image part.
#[derive(Debug, Clone, PartialEq)]
pub struct ImagePart {
    /// Where the image is.
    pub source: ImageSource,
    /// OpenAI `detail` (`low`, `high`, `auto`).
    pub detail: Option<String>,
    /// Fields this crate does not model.
    pub extra: Extra,
}

/// Where an image is.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageSource {
    /// A URL (http(s), or a `data:` URL that is not plain base64).
    Url(String),
    /// Inline base64 data (OpenAI `data:<type>;base64,…` URLs, Anthropic `base64` sources,
    /// Gemini `inlineData`).
    Base64 {
        /// MIME type, e.g. `image/png`.
        media_type: String,
        /// Base64 data.
        data: String,
    },
}

impl ImageSource {
    /// Reads an OpenAI image URL: `data:<type>;base64,<data>` becomes [`ImageSource::Base64`].
    pub fn from_url(url: String) -> ImageSource {
        if let Some(rest) = url.strip_prefix("data:")
            && let Some((media_type, data)) = rest.split_once(";base64,")
            && !media_type.is_empty()
            && !media_type.contains([';', ','])
        {
            return ImageSource::Base64 {
                media_type: media_type.to_string(),
                data: data.to_string(),
            };
        }
        ImageSource::Url(url)
    }

    /// The image as a URL (base64 data as a `data:` URL).
    pub fn to_url(&self) -> String {
        match self {
            ImageSource::Url(u) => u.clone(),
            ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        }
    }
}

/// A tool call made by the model.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ToolCall {
    /// The call's id, echoed by the tool message that answers it. Gemini calls without an id
    /// get a synthetic one (see [`crate::gemini`]).
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments as JSON text (OpenAI keeps them as a string; Anthropic and Gemini objects
    /// are serialized).
    pub arguments: String,
    /// Fields this crate does not model (Gemini `thoughtSignature`, …).
    pub extra: Extra,
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq)]
pub enum Tool {
    /// A function tool.
    Function(FunctionTool),
    /// A tool this crate does not model (Anthropic server tools, Gemini `googleSearch`, …),
    /// kept whole and only re-emitted into the format it came from.
    Other(Value),
}

/// A function tool.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FunctionTool {
    /// The function's name.
    pub name: String,
    /// What it does.
    pub description: Option<String>,
    /// JSON Schema of its arguments.
    pub parameters: Option<Value>,
    /// OpenAI `strict` (structured outputs for arguments).
    pub strict: Option<bool>,
    /// Fields this crate does not model (Anthropic `cache_control`, …).
    pub extra: Extra,
}

/// Whether and which tool the model must call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    /// Never call a tool.
    None,
    /// The model decides.
    Auto,
    /// Call at least one tool (OpenAI `required`, Anthropic `any`, Gemini `ANY`).
    Required,
    /// Call this function.
    Function(String),
}

/// An output format constraint.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseFormat {
    /// Free text (the default).
    Text,
    /// Any JSON object (OpenAI JSON mode).
    JsonObject,
    /// JSON matching a schema (structured outputs).
    JsonSchema(JsonSchemaFormat),
}

/// A JSON Schema output constraint.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JsonSchemaFormat {
    /// Name of the schema (OpenAI requires one; other formats get `response`).
    pub name: String,
    /// What the output is.
    pub description: Option<String>,
    /// The schema.
    pub schema: Option<Value>,
    /// OpenAI `strict`.
    pub strict: Option<bool>,
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FinishReason {
    /// A natural end (OpenAI `stop`, Anthropic `end_turn`, Gemini `STOP`).
    Stop,
    /// A stop sequence matched (Anthropic `stop_sequence`; OpenAI says `stop`).
    StopSequence,
    /// The output-token limit (OpenAI `length`, Anthropic `max_tokens`, Gemini `MAX_TOKENS`).
    Length,
    /// The model called tools (OpenAI `tool_calls`, Anthropic `tool_use`; Gemini says `STOP`).
    ToolCalls,
    /// Output was filtered or refused (OpenAI `content_filter`, Anthropic `refusal`, Gemini
    /// `SAFETY`).
    ContentFilter,
    /// Any other reason, as the source format spelled it (Anthropic `pause_turn`, Gemini
    /// `RECITATION`, …). Encoders map the ones they know into their nearest equivalent.
    Other(String),
}

/// A chat response.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatResponse {
    /// The provider's response id.
    pub id: String,
    /// The model that answered.
    pub model: String,
    /// Unix time of creation (OpenAI `created`); set it before encoding into OpenAI when the
    /// source had none.
    pub created: Option<u64>,
    /// The choices (Anthropic always one).
    pub choices: Vec<Choice>,
    /// Token usage.
    pub usage: Option<Usage>,
    /// The format this response was decoded from.
    pub source: Option<Format>,
    /// Fields this crate does not model.
    pub extra: Extra,
}

/// One choice of a response.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Choice {
    /// Its index.
    pub index: u32,
    /// The assistant message.
    pub message: Message,
    /// Why generation stopped.
    pub finish_reason: Option<FinishReason>,
    /// The stop sequence that matched (Anthropic `stop_sequence`).
    pub stop_sequence: Option<String>,
    /// Fields this crate does not model (OpenAI `logprobs`, Gemini `safetyRatings`, …).
    pub extra: Extra,
}

impl ChatRequest {
    /// Whether the request needs tool support from the model.
    pub fn uses_tools(&self) -> bool {
        !self.tools.is_empty()
            || self
                .messages
                .iter()
                .any(|m| !m.tool_calls.is_empty() || m.role == Role::Tool)
    }

    /// Whether the request contains images.
    pub fn uses_images(&self) -> bool {
        self.messages.iter().any(|m| match &m.content {
            Some(Content::Parts(parts)) => parts.iter().any(|p| matches!(p, Part::Image(_))),
            _ => false,
        })
    }

    /// Whether the request asks for JSON output.
    pub fn uses_json_mode(&self) -> bool {
        matches!(
            self.response_format,
            Some(ResponseFormat::JsonObject | ResponseFormat::JsonSchema(_))
        )
    }
}
