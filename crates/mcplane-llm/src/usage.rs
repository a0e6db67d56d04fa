//! Token usage in one shape for every format.
//!
//! Counts follow OpenAI's meaning: `prompt_tokens` are *all* input tokens, cached ones included,
//! and `completion_tokens` all output tokens, reasoning included. Anthropic reports cache reads
//! and writes beside `input_tokens` (which excludes them), so its decoder adds them up, and its
//! encoder subtracts them again; Gemini reports `thoughtsTokenCount` beside
//! `candidatesTokenCount`, so thoughts are added to the completion.

use crate::json::Extra;

/// Token usage of one call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Usage {
    /// Input tokens, cached and cache-written ones included.
    pub prompt_tokens: u64,
    /// Output tokens, reasoning included.
    pub completion_tokens: u64,
    /// Total as the provider reported it (normally prompt + completion).
    pub total_tokens: u64,
    /// Input tokens read from the provider's prompt cache (part of `prompt_tokens`).
    pub cached_tokens: Option<u64>,
    /// Input tokens written to the prompt cache (Anthropic; part of `prompt_tokens`).
    pub cache_creation_tokens: Option<u64>,
    /// Reasoning tokens (part of `completion_tokens`).
    pub reasoning_tokens: Option<u64>,
    /// Fields this crate does not model, re-emitted only into the format they came from.
    pub extra: Extra,
}

impl Usage {
    /// Usage from the two counts, total their sum.
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Usage {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
            ..Usage::default()
        }
    }
}
