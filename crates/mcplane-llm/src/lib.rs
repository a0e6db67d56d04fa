//! LLM face of mcplane: the OpenAI, Anthropic and Gemini formats, translation between them,
//! SSE, usage and cost (pure: no IO), and on top of them the model control plane — registry,
//! router, live health, provider adapters and the dispatcher (which does the HTTP).
//!
//! ## Shape
//!
//! Every format decodes into one canonical model ([`chat`], [`embeddings`]) and encodes from
//! it, so any front door can be served by any provider:
//!
//! ```text
//!   client body ──openai::decode_request──▶ ChatRequest ──anthropic::encode_request──▶ upstream body
//!   client body ◀──openai::encode_response── ChatResponse ◀──anthropic::decode_response── upstream body
//!   client SSE  ◀──────────── StreamTranslator(Anthropic → OpenAI) ◀──── SseDecoder ◀── upstream SSE
//! ```
//!
//! Values remember the [`Format`] they came from and keep the fields this crate does not model
//! in `extra` maps; encoding back into the same format re-emits them, so a same-format relay
//! never drops a field (see [`chat`] for the rules). Same-format streams are relayed event by
//! event, untouched.
//!
//! ## Modules
//!
//! - [`chat`], [`embeddings`], [`usage`]: the canonical model.
//! - [`openai`], [`anthropic`], [`gemini`]: each format's codecs for requests, responses,
//!   stream events and (OpenAI, Gemini) embeddings, with their finish-reason mappings.
//! - [`codec`]: the same codecs chosen by a [`Format`] value.
//! - [`stream`]: canonical stream events, per-format stream decoders/encoders, and
//!   [`StreamTranslator`], an incremental state machine from provider SSE events to client
//!   SSE frames, with terminal error events for failures mid-stream.
//! - [`sse`]: a bounded incremental SSE decoder and frame encoding.
//! - [`cost`]: prices per 1k tokens → integer micro-dollars ([`mcplane_types::MicroUsd`]).
//! - [`tokens`]: token estimates (`tiktoken` BPEs, offline) for routing, budgets, and streams
//!   without usage.
//! - [`error`]: [`LlmError`], its [`mcplane_types::ErrorKind`], and per-format error bodies.
//!
//! The control plane (these modules do IO or keep state):
//!
//! - [`registry`]: models (capabilities, prices, performance, residency, endpoints) and aliases
//!   from the validated config.
//! - [`router`]: eligibility, scoring and the alias strategies → an ordered plan with a reason.
//! - [`health`]: latency and error-rate EWMAs and a circuit breaker per endpoint.
//! - [`provider`]: URLs, auth headers and request encoding per provider.
//! - [`dispatch`]: the [`dispatch::Dispatcher`] — retries, fallback, timeouts, streaming with
//!   terminal error events, cancellation — and [`accounting`]: one request record per call.
//!
//! Errors from decoding a client's request name the offending field
//! (`messages[2].content: expected a string or an array of content parts, got a number`).

pub mod accounting;
pub mod anthropic;
pub mod chat;
pub mod codec;
pub mod cost;
pub mod dispatch;
pub mod embeddings;
pub mod error;
mod format;
pub mod gemini;
pub mod health;
mod json;
pub mod openai;
pub mod provider;
pub mod registry;
pub mod router;
pub mod sse;
pub mod stream;
pub mod tokens;
pub mod usage;

pub use chat::{
    ChatRequest, ChatResponse, Choice, Content, Extra, FinishReason, FunctionTool, ImagePart,
    ImageSource, JsonSchemaFormat, Message, Part, ResponseFormat, Role, Sampling, Stop, TextPart,
    Tool, ToolCall, ToolChoice,
};
pub use cost::Price;
pub use embeddings::{
    Embedding, EmbeddingInput, EmbeddingsRequest, EmbeddingsResponse, EncodingFormat, Vector,
};
pub use error::{LlmError, ProviderError};
pub use format::Format;
pub use sse::{SseDecoder, SseEvent};
pub use stream::{EncodeOptions, StreamEvent, StreamTranslator, UsageSource};
pub use usage::Usage;
