//! OpenAI embeddings requests and responses.

use super::{usage_from_value, usage_to_value};
use crate::Format;
use crate::LlmError;
use crate::embeddings::{
    Embedding, EmbeddingInput, EmbeddingsRequest, EmbeddingsResponse, EncodingFormat, Vector,
};
use crate::json::{self, Obj, base, index, invalid, put, type_name};
use serde_json::Value;

/// Decodes an embeddings request body.
pub fn decode_embeddings_request(body: &[u8]) -> Result<EmbeddingsRequest, LlmError> {
    let mut o = Obj::new(json::parse(body)?, "")?;
    let model = o.req_string("model")?;
    let input = decode_input(o.required("input")?)?;
    let encoding_format = match o.string("encoding_format")?.as_deref() {
        None => None,
        Some("float") => Some(EncodingFormat::Float),
        Some("base64") => Some(EncodingFormat::Base64),
        Some(other) => {
            return Err(invalid(
                "encoding_format",
                format!("unknown encoding {other:?} (expected float or base64)"),
            ));
        }
    };
    Ok(EmbeddingsRequest {
        model,
        input,
        dimensions: o.u32("dimensions")?,
        encoding_format,
        user: o.string("user")?,
        source: Some(Format::OpenAi),
        extra: o.rest(),
    })
}

fn token(v: &Value, at: &str) -> Result<u32, LlmError> {
    v.as_u64()
        .and_then(|t| u32::try_from(t).ok())
        .ok_or_else(|| invalid(at, format!("expected a token id, got {}", type_name(v))))
}

fn decode_input(v: Value) -> Result<EmbeddingInput, LlmError> {
    let input = match v {
        Value::String(s) => EmbeddingInput::Text(s),
        Value::Array(items) => match items.first() {
            None => return Err(invalid("input", "must not be empty")),
            Some(Value::String(_)) => EmbeddingInput::Texts(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, s)| json::string(s, &index("input", i)))
                    .collect::<Result<_, _>>()?,
            ),
            Some(Value::Number(_)) => EmbeddingInput::Tokens(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, t)| token(t, &index("input", i)))
                    .collect::<Result<_, _>>()?,
            ),
            Some(Value::Array(_)) => EmbeddingInput::TokenBatches(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, batch)| {
                        let at = index("input", i);
                        json::array(batch, &at)?
                            .iter()
                            .enumerate()
                            .map(|(j, t)| token(t, &index(&at, j)))
                            .collect::<Result<Vec<_>, _>>()
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Some(other) => {
                return Err(invalid(
                    "input[0]",
                    format!(
                        "expected a string, a token id or an array of token ids, got {}",
                        type_name(other)
                    ),
                ));
            }
        },
        other => {
            return Err(invalid(
                "input",
                format!("expected a string or an array, got {}", type_name(&other)),
            ));
        }
    };
    Ok(input)
}

/// Encodes an embeddings request body.
pub fn encode_embeddings_request(req: &EmbeddingsRequest) -> Result<Vec<u8>, LlmError> {
    let native = req.source == Some(Format::OpenAi);
    let mut m = base(&req.extra, native);
    m.insert("model".into(), req.model.clone().into());
    let input: Value = match &req.input {
        EmbeddingInput::Text(t) => t.clone().into(),
        EmbeddingInput::Texts(t) => t.clone().into(),
        EmbeddingInput::Tokens(t) => t.clone().into(),
        EmbeddingInput::TokenBatches(b) => b.clone().into(),
    };
    m.insert("input".into(), input);
    put(&mut m, "dimensions", req.dimensions);
    put(
        &mut m,
        "encoding_format",
        req.encoding_format.map(|f| match f {
            EncodingFormat::Float => "float",
            EncodingFormat::Base64 => "base64",
        }),
    );
    put(&mut m, "user", req.user.clone());
    serde_json::to_vec(&Value::Object(m)).map_err(|e| LlmError::Json(e.to_string()))
}

/// Decodes an embeddings response body (an upstream answer).
pub fn decode_embeddings_response(body: &[u8]) -> Result<EmbeddingsResponse, LlmError> {
    decode_response_inner(body).map_err(|e| e.upstream("embeddings response"))
}

fn decode_response_inner(body: &[u8]) -> Result<EmbeddingsResponse, LlmError> {
    let mut o = Obj::new(json::parse(body)?, "")?;
    o.take("object");
    let model = o.string("model")?.unwrap_or_default();
    let raw = o
        .array("data")?
        .ok_or_else(|| invalid("data", "required"))?;
    let data = raw
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let mut e = Obj::new(e, &index("data", i))?;
            e.take("object");
            let index = e.u32("index")?.unwrap_or(i as u32);
            let vector = match e.required("embedding")? {
                Value::String(b) => Vector::Base64(b),
                Value::Array(nums) => Vector::Float(
                    nums.iter()
                        .enumerate()
                        .map(|(j, n)| {
                            n.as_f64().ok_or_else(|| {
                                invalid(
                                    &json::index(&e.at("embedding"), j),
                                    format!("expected a number, got {}", type_name(n)),
                                )
                            })
                        })
                        .collect::<Result<_, _>>()?,
                ),
                other => {
                    return Err(invalid(
                        &e.at("embedding"),
                        format!(
                            "expected an array or a base64 string, got {}",
                            type_name(&other)
                        ),
                    ));
                }
            };
            Ok(Embedding {
                index,
                vector,
                extra: e.rest(),
            })
        })
        .collect::<Result<Vec<_>, LlmError>>()?;
    let usage = o
        .take("usage")
        .map(|u| usage_from_value(u, "usage"))
        .transpose()?;
    Ok(EmbeddingsResponse {
        model,
        data,
        usage,
        source: Some(Format::OpenAi),
        extra: o.rest(),
    })
}

/// Encodes an embeddings response body. Vectors are written as they are; convert them with
/// [`Vector::to_base64`] first when the client asked for `encoding_format: base64` and the
/// upstream answered numbers.
pub fn encode_embeddings_response(resp: &EmbeddingsResponse) -> Result<Vec<u8>, LlmError> {
    let native = resp.source == Some(Format::OpenAi);
    let mut m = base(&resp.extra, native);
    m.insert("object".into(), "list".into());
    let data: Vec<Value> = resp
        .data
        .iter()
        .map(|e| {
            let mut em = base(&e.extra, native);
            em.insert("object".into(), "embedding".into());
            em.insert("index".into(), e.index.into());
            em.insert(
                "embedding".into(),
                match &e.vector {
                    Vector::Float(v) => v.clone().into(),
                    Vector::Base64(b) => b.clone().into(),
                },
            );
            Value::Object(em)
        })
        .collect();
    m.insert("data".into(), data.into());
    m.insert("model".into(), resp.model.clone().into());
    let usage = resp.usage.clone().unwrap_or_default();
    // OpenAI's embeddings usage has only prompt and total tokens.
    let mut u = match usage_to_value(&usage, native) {
        Value::Object(u) => u,
        _ => Default::default(),
    };
    u.remove("completion_tokens");
    m.insert("usage".into(), Value::Object(u));
    serde_json::to_vec(&Value::Object(m)).map_err(|e| LlmError::Json(e.to_string()))
}
