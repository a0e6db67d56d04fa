//! The three wire formats this crate speaks.

use mcplane_config::Provider;
use std::fmt;

/// A wire format: how requests, responses and streams are shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// OpenAI Chat Completions (also Azure OpenAI and every OpenAI-compatible server).
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Google Gemini `generateContent`.
    Gemini,
}

impl Format {
    /// The format a configured provider speaks.
    pub fn of(provider: Provider) -> Format {
        match provider {
            Provider::Openai | Provider::AzureOpenai | Provider::OpenaiCompatible => Format::OpenAi,
            Provider::Anthropic => Format::Anthropic,
            Provider::Gemini => Format::Gemini,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::OpenAi => "OpenAI",
            Format::Anthropic => "Anthropic",
            Format::Gemini => "Gemini",
        })
    }
}
