//! Gemini embeddings: `embedContent` (one text) and `batchEmbedContents` (several).

use crate::embeddings::{Embedding, EmbeddingInput, EmbeddingsRequest, EmbeddingsResponse, Vector};
use crate::json::{self, Extra, Obj, base, index, invalid, put, type_name};
use crate::{Format, LlmError};
use serde_json::{Value, json};

/// Decodes an `embedContent` or `batchEmbedContents` body (`model` comes from the URL).
pub fn decode_embeddings_request(body: &[u8], model: &str) -> Result<EmbeddingsRequest, LlmError> {
    let mut o = Obj::new(json::parse(body)?, "")?;
    let model = model.strip_prefix("models/").unwrap_or(model).to_string();
    if let Some(requests) = o.array("requests")? {
        if requests.is_empty() {
            return Err(invalid("requests", "must not be empty"));
        }
        let mut texts = Vec::new();
        let mut dimensions = None;
        for (i, r) in requests.into_iter().enumerate() {
            let mut r = Obj::new(r, &index("requests", i))?;
            r.take("model");
            texts.push(content_text(&mut r)?);
            dimensions = dimensions.or(r.u32("outputDimensionality")?);
        }
        return Ok(EmbeddingsRequest {
            model,
            input: EmbeddingInput::Texts(texts),
            dimensions,
            encoding_format: None,
            user: None,
            source: Some(Format::Gemini),
            extra: o.rest(),
        });
    }
    o.take("model");
    let text = content_text(&mut o)?;
    Ok(EmbeddingsRequest {
        model,
        input: EmbeddingInput::Text(text),
        dimensions: o.u32("outputDimensionality")?,
        encoding_format: None,
        user: None,
        source: Some(Format::Gemini),
        extra: o.rest(),
    })
}

/// The text of a request's `content` (its text parts joined).
fn content_text(o: &mut Obj) -> Result<String, LlmError> {
    let mut content = o.req_object("content")?;
    let at = content.at("parts");
    let parts = content
        .array("parts")?
        .ok_or_else(|| invalid(&at, "required"))?;
    let mut text = String::new();
    for (i, p) in parts.into_iter().enumerate() {
        match p.get("text") {
            Some(Value::String(s)) => text.push_str(s),
            _ => {
                return Err(invalid(
                    &json::join(&index(&at, i), "text"),
                    format!("expected a text part, got {}", type_name(&p)),
                ));
            }
        }
    }
    Ok(text)
}

/// Encodes a request: the path to call ([`super::embed_path`]) and the body. Token-id inputs
/// are [`LlmError::Unsupported`].
pub fn encode_embeddings_request(req: &EmbeddingsRequest) -> Result<(String, Vec<u8>), LlmError> {
    let native = req.source == Some(Format::Gemini);
    let model = req.model.strip_prefix("models/").unwrap_or(&req.model);
    let one = |text: &str, extra: Extra| {
        let mut m = extra;
        m.insert("model".into(), format!("models/{model}").into());
        m.insert("content".into(), json!({"parts": [{"text": text}]}));
        put(&mut m, "outputDimensionality", req.dimensions);
        Value::Object(m)
    };
    let (batch, body) = match &req.input {
        EmbeddingInput::Text(t) => (false, one(t, base(&req.extra, native))),
        EmbeddingInput::Texts(ts) => {
            let mut m = base(&req.extra, native);
            let requests: Vec<Value> = ts.iter().map(|t| one(t, Extra::new())).collect();
            m.insert("requests".into(), requests.into());
            (true, Value::Object(m))
        }
        EmbeddingInput::Tokens(_) | EmbeddingInput::TokenBatches(_) => {
            return Err(LlmError::Unsupported {
                format: Format::Gemini,
                what: "token-id embedding input".into(),
            });
        }
    };
    let bytes = serde_json::to_vec(&body).map_err(|e| LlmError::Json(e.to_string()))?;
    Ok((super::embed_path(model, batch), bytes))
}

/// Decodes an `embedContent` (`{"embedding": {"values"}}`) or `batchEmbedContents`
/// (`{"embeddings": [...]}`) response. Gemini names no model: set it from the request.
pub fn decode_embeddings_response(body: &[u8]) -> Result<EmbeddingsResponse, LlmError> {
    decode_inner(body).map_err(|e| e.upstream("embeddings response"))
}

fn decode_inner(body: &[u8]) -> Result<EmbeddingsResponse, LlmError> {
    let mut o = Obj::new(json::parse(body)?, "")?;
    let raw: Vec<(Value, String)> = if let Some(e) = o.take("embedding") {
        vec![(e, "embedding".to_string())]
    } else if let Some(list) = o.array("embeddings")? {
        list.into_iter()
            .enumerate()
            .map(|(i, e)| (e, index("embeddings", i)))
            .collect()
    } else {
        return Err(invalid("embedding", "required"));
    };
    let data = raw
        .into_iter()
        .enumerate()
        .map(|(i, (e, at))| {
            let mut e = Obj::new(e, &at)?;
            let values_at = e.at("values");
            let values = e
                .array("values")?
                .ok_or_else(|| invalid(&values_at, "required"))?
                .iter()
                .enumerate()
                .map(|(j, n)| {
                    n.as_f64().ok_or_else(|| {
                        invalid(
                            &index(&values_at, j),
                            format!("expected a number, got {}", type_name(n)),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Embedding {
                index: i as u32,
                vector: Vector::Float(values),
                extra: e.rest(),
            })
        })
        .collect::<Result<Vec<_>, LlmError>>()?;
    Ok(EmbeddingsResponse {
        model: String::new(),
        data,
        usage: None,
        source: Some(Format::Gemini),
        extra: o.rest(),
    })
}

/// Encodes a response: `{"embedding": …}` for one `embedContent` input, `{"embeddings": […]}`
/// when `batch`. Base64 vectors are decoded to numbers (Gemini has no base64 form).
pub fn encode_embeddings_response(
    resp: &EmbeddingsResponse,
    batch: bool,
) -> Result<Vec<u8>, LlmError> {
    let native = resp.source == Some(Format::Gemini);
    let mut m = base(&resp.extra, native);
    let vectors = resp
        .data
        .iter()
        .map(|e| {
            let values = e.vector.to_floats().ok_or_else(|| LlmError::Protocol {
                what: "embeddings response".into(),
                reason: format!("data[{}].embedding is not valid base64 f32 data", e.index),
            })?;
            let mut em = base(&e.extra, native);
            em.insert("values".into(), values.into());
            Ok(Value::Object(em))
        })
        .collect::<Result<Vec<_>, LlmError>>()?;
    if batch {
        m.insert("embeddings".into(), vectors.into());
    } else {
        m.insert(
            "embedding".into(),
            vectors
                .into_iter()
                .next()
                .unwrap_or_else(|| json!({"values": []})),
        );
    }
    serde_json::to_vec(&Value::Object(m)).map_err(|e| LlmError::Json(e.to_string()))
}
