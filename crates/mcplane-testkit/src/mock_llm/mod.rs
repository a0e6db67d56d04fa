//! Mock model providers that speak each provider's wire format exactly, streaming included, with
//! scriptable faults — the upstreams of mcplane's model-face end-to-end tests and benchmarks.
//!
//! One server answers every format at once:
//!
//! | format | routes | key |
//! |---|---|---|
//! | OpenAI | `POST /v1/chat/completions`, `POST /v1/embeddings`, `GET /v1/models[/{id}]` | `Authorization: Bearer K` |
//! | Azure OpenAI | `POST /openai/deployments/{d}/chat/completions?api-version=…`, `…/embeddings` | `api-key: K` |
//! | Anthropic | `POST /v1/messages`, `POST /v1/messages/count_tokens`, `GET /v1/models` (with `anthropic-version`) | `x-api-key: K` or `Authorization: Bearer K`, + `anthropic-version` |
//! | Gemini | `POST /v1beta/models/{m}:generateContent`, `:streamGenerateContent[?alt=sse]`, `:embedContent`, `:batchEmbedContents`, `GET /v1beta/models` (also under `/v1`) | `x-goog-api-key: K` or `?key=K` |
//!
//! `GET /v1/models[/{id}]` answers in Anthropic's shape when the request has `anthropic-version`
//! and in Gemini's with a Google key. Base URLs for the SDKs: OpenAI `{root}/v1`
//! ([`MockHandle::openai_base_url`]), Anthropic and Gemini `{root}` ([`MockHandle::base_url`]),
//! Azure `azure_endpoint={root}`. The `mcplane-mock-llm` binary serves the same.
//!
//! ```no_run
//! use mcplane_testkit::mock_llm::{Fault, MockConfig, MockProvider};
//! # async fn demo() -> std::io::Result<()> {
//! let mock = MockProvider::start(MockConfig::default().with_api_key("sk-upstream")).await?;
//! // point mcplane's provider endpoint at mock.openai_base_url() (or mock.base_url()), then:
//! mock.set_faults(vec![Fault::status(429).retry_after(1).times(2)]);
//! // ... drive mcplane ...
//! let seen = mock.requests();
//! assert!(seen.iter().all(|r| r.header("authorization") == Some("Bearer sk-upstream")));
//! mock.shutdown().await
//! # }
//! ```
//!
//! # Behaviour (deterministic, so tests can assert on it)
//!
//! - **Text**: the reply is `echo: <text of the last user message>`; after tool results it is
//!   `tool result: <result texts joined by "; ">`.
//! - **Tool calls**: when the request declares tools and the last user message contains
//!   `call <tool_name>` (several mentions give parallel calls, in order), or the tool choice
//!   forces a tool (OpenAI `required`/named, Anthropic `any`/`tool`, Gemini mode `ANY`), the mock
//!   calls it. Arguments: a JSON object written right after the name
//!   (`call get_weather {"city":"Paris"}`), else one synthesized from the tool's JSON schema
//!   (required properties, or all: strings `"mock"`, integers/numbers `1`, booleans `true`,
//!   arrays `[]`, objects recursively, enums their first value).
//! - **Tokens** are whitespace-separated words: prompt tokens count the words of every message's
//!   text (system and tool results included, tool definitions not); completion tokens count the
//!   words of the reply, or for each tool call `1 + words(arguments JSON)`. A `max_tokens` below
//!   the reply's word count truncates the reply (`length` / `max_tokens` / `MAX_TOKENS`).
//! - **Streams** send one content delta per word (with its leading space); tool arguments are
//!   streamed in pieces of at most 8 bytes. Event order and framing are each provider's own.
//! - **Embeddings** are feature-hashed bags of words, normalised to unit length: identical texts
//!   give identical vectors and texts sharing words have a high cosine similarity. OpenAI's
//!   `encoding_format: "base64"` (what the Python SDK asks for by default) gives little-endian
//!   `f32` bytes in base64.
//!
//! # Faults and observation
//!
//! [`Fault`] rules, set from Rust ([`MockHandle::set_faults`]) or over HTTP
//! (`POST /__mock/faults`), make matching requests fail in scripted ways; every request that
//! reaches the mock is recorded ([`MockHandle::requests`], `GET /__mock/requests`). See
//! [`fault`] and [`control`] for the details. [`sse`] parses event streams for assertions.

// A rejection is the response itself, built on the cold path; boxing it would buy nothing.
#![allow(clippy::result_large_err)]

mod anthropic;
pub mod control;
mod deliver;
mod embed;
pub mod fault;
mod gemini;
mod openai;
pub mod record;
mod reply;
mod server;
pub mod sse;

pub use fault::{Endpoint, Fault, FaultStatus, Provider};
pub use record::{Delivery, RecordedRequest};
pub use server::{MockConfig, MockHandle, MockProvider};
