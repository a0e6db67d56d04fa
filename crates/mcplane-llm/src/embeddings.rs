//! The canonical embeddings model (OpenAI `/v1/embeddings` shape; Gemini `embedContent` and
//! `batchEmbedContents` map onto it).

use crate::Format;
use crate::json::Extra;
use crate::usage::Usage;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// An embeddings request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EmbeddingsRequest {
    /// The model asked for.
    pub model: String,
    /// What to embed.
    pub input: EmbeddingInput,
    /// Output dimensions (OpenAI `dimensions`, Gemini `outputDimensionality`).
    pub dimensions: Option<u32>,
    /// OpenAI `encoding_format`.
    pub encoding_format: Option<EncodingFormat>,
    /// End-user id (OpenAI `user`).
    pub user: Option<String>,
    /// The format this request was decoded from.
    pub source: Option<Format>,
    /// Fields this crate does not model, re-emitted only into `source`.
    pub extra: Extra,
}

/// What to embed. OpenAI accepts all four forms; Gemini only text.
#[derive(Debug, Clone, PartialEq)]
pub enum EmbeddingInput {
    /// One text.
    Text(String),
    /// Several texts.
    Texts(Vec<String>),
    /// One text as token ids.
    Tokens(Vec<u32>),
    /// Several texts as token ids.
    TokenBatches(Vec<Vec<u32>>),
}

impl Default for EmbeddingInput {
    fn default() -> Self {
        EmbeddingInput::Text(String::new())
    }
}

impl EmbeddingInput {
    /// How many embeddings the input asks for.
    pub fn count(&self) -> usize {
        match self {
            EmbeddingInput::Text(_) | EmbeddingInput::Tokens(_) => 1,
            EmbeddingInput::Texts(t) => t.len(),
            EmbeddingInput::TokenBatches(b) => b.len(),
        }
    }
}

/// How vectors are encoded in an OpenAI response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodingFormat {
    /// JSON numbers.
    Float,
    /// Base64 of little-endian `f32`s.
    Base64,
}

/// An embeddings response.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EmbeddingsResponse {
    /// The model that answered.
    pub model: String,
    /// One embedding per input, in input order.
    pub data: Vec<Embedding>,
    /// Token usage (Gemini reports none).
    pub usage: Option<Usage>,
    /// The format this response was decoded from.
    pub source: Option<Format>,
    /// Fields this crate does not model.
    pub extra: Extra,
}

/// One embedding.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Embedding {
    /// Index of the input it embeds.
    pub index: u32,
    /// The vector.
    pub vector: Vector,
    /// Fields this crate does not model.
    pub extra: Extra,
}

/// An embedding vector.
#[derive(Debug, Clone, PartialEq)]
pub enum Vector {
    /// Numbers.
    Float(Vec<f64>),
    /// Base64 of little-endian `f32`s, as OpenAI sends with `encoding_format: base64`.
    Base64(String),
}

impl Default for Vector {
    fn default() -> Self {
        Vector::Float(Vec::new())
    }
}

impl Vector {
    /// The vector as base64 of little-endian `f32`s (numbers are narrowed to `f32`).
    pub fn to_base64(&self) -> String {
        match self {
            Vector::Base64(b) => b.clone(),
            Vector::Float(v) => {
                let bytes: Vec<u8> = v.iter().flat_map(|f| (*f as f32).to_le_bytes()).collect();
                STANDARD.encode(bytes)
            }
        }
    }

    /// The vector as numbers; `None` when base64 data is not a whole number of `f32`s.
    pub fn to_floats(&self) -> Option<Vec<f64>> {
        match self {
            Vector::Float(v) => Some(v.clone()),
            Vector::Base64(b) => {
                let bytes = STANDARD.decode(b).ok()?;
                if bytes.len() % 4 != 0 {
                    return None;
                }
                Some(
                    bytes
                        .chunks_exact(4)
                        .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                        .collect(),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_convert_between_floats_and_base64() {
        let v = Vector::Float(vec![0.5, -1.0, 0.25]);
        let b = Vector::Base64(v.to_base64());
        assert_eq!(b.to_floats(), Some(vec![0.5, -1.0, 0.25]));
        assert_eq!(Vector::Base64("AAA=".into()).to_floats(), None);
    }
}
