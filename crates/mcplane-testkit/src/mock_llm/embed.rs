//! Deterministic embeddings: a feature-hashed bag of words, normalised to unit length.
//!
//! Each word (ASCII letters lowercased, non-alphanumeric ASCII bytes ignored) adds ±1 to one
//! dimension and ±0.5 to another, both chosen by a hash of the word. Equal texts give equal
//! vectors; texts that share most words are close in cosine similarity, which is what semantic
//! cache tests need. An empty text maps to the first unit vector.

use base64::Engine as _;

/// The embedding of `text` with `dims` dimensions (at least 1).
pub(crate) fn embed(text: &str, dims: usize) -> Vec<f32> {
    let dims = dims.max(1);
    let mut v = vec![0f32; dims];
    let mut any = false;
    for word in text.split_whitespace() {
        let Some(h) = word_hash(word) else { continue };
        any = true;
        let d = dims as u64;
        let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
        v[(h % d) as usize] += sign;
        let h2 = super::fault::splitmix64(h);
        let sign2 = if h2 >> 63 == 0 { 0.5 } else { -0.5 };
        v[(h2 % d) as usize] += sign2;
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if !any || norm == 0.0 {
        v.iter_mut().for_each(|x| *x = 0.0);
        v[0] = 1.0;
        return v;
    }
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// FNV-1a over the word's alphanumeric bytes, ASCII lowercased; `None` when there are none.
fn word_hash(word: &str) -> Option<u64> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut any = false;
    for b in word.bytes() {
        if b.is_ascii() && !b.is_ascii_alphanumeric() {
            continue;
        }
        any = true;
        h ^= u64::from(b.to_ascii_lowercase());
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    any.then(|| super::fault::splitmix64(h))
}

/// Little-endian `f32` bytes in standard base64: OpenAI's `encoding_format: "base64"`.
pub(crate) fn to_base64(v: &[f32]) -> String {
    let mut bytes = Vec::with_capacity(v.len() * 4);
    for x in v {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn deterministic_unit_vectors_with_meaningful_similarity() {
        let a = embed("The quick brown fox jumps over the lazy dog", 256);
        let b = embed("the quick brown fox jumps over the lazy dog!", 256);
        let c = embed("the quick brown fox jumped over a lazy dog", 256);
        let d = embed("completely unrelated sentence about databases", 256);
        assert_eq!(a, b);
        assert!((cos(&a, &a) - 1.0).abs() < 1e-5);
        assert!(cos(&a, &c) > 0.6, "{}", cos(&a, &c));
        assert!(cos(&a, &d).abs() < 0.3, "{}", cos(&a, &d));
        assert_eq!(embed("", 4), vec![1.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn base64_is_little_endian_f32() {
        assert_eq!(to_base64(&[1.0]), "AACAPw==");
    }
}
