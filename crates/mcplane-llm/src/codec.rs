//! The format codecs chosen by a [`Format`] value, for code that holds the format as data (a
//! router encoding for whichever provider it picked).

use crate::{ChatRequest, ChatResponse, Format, LlmError, anthropic, gemini, openai};

/// Decodes a chat request body. Gemini takes the model from the URL: pass it as `model`
/// (ignored for the other formats, which carry it in the body).
pub fn decode_request(format: Format, body: &[u8], model: &str) -> Result<ChatRequest, LlmError> {
    match format {
        Format::OpenAi => openai::decode_request(body),
        Format::Anthropic => anthropic::decode_request(body),
        Format::Gemini => gemini::decode_request(body, model, false),
    }
}

/// Encodes a chat request body for `format` (for Gemini, send it to
/// [`gemini::generate_path`]).
pub fn encode_request(format: Format, req: &ChatRequest) -> Result<Vec<u8>, LlmError> {
    match format {
        Format::OpenAi => openai::encode_request(req),
        Format::Anthropic => anthropic::encode_request(req),
        Format::Gemini => gemini::encode_request(req),
    }
}

/// Decodes a provider's chat response body.
pub fn decode_response(format: Format, body: &[u8]) -> Result<ChatResponse, LlmError> {
    match format {
        Format::OpenAi => openai::decode_response(body),
        Format::Anthropic => anthropic::decode_response(body),
        Format::Gemini => gemini::decode_response(body),
    }
}

/// Encodes a chat response body for a client of `format`.
pub fn encode_response(format: Format, resp: &ChatResponse) -> Result<Vec<u8>, LlmError> {
    match format {
        Format::OpenAi => openai::encode_response(resp),
        Format::Anthropic => anthropic::encode_response(resp),
        Format::Gemini => gemini::encode_response(resp),
    }
}

/// Re-encodes a provider's response body for a client of another (or the same) format.
pub fn translate_response(from: Format, to: Format, body: &[u8]) -> Result<Vec<u8>, LlmError> {
    encode_response(to, &decode_response(from, body)?)
}
