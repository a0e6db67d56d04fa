//! Provider adapters: how a call to one endpoint is addressed, authenticated and encoded.
//!
//! | provider | chat URL (from the endpoint's `url`) | auth header |
//! |---|---|---|
//! | `openai`, `openai_compatible` | `{url}/chat/completions`, `{url}/embeddings` | `Authorization: Bearer KEY` |
//! | `azure_openai` | `{url}/openai/deployments/{deployment}/chat/completions?api-version=V` (and `/embeddings`) | `api-key: KEY` |
//! | `anthropic` | `{url}/v1/messages` (`{url}/messages` when `url` ends in `/v1`) | `x-api-key: KEY`, `anthropic-version: 2023-06-01` |
//! | `gemini` | `{url}/v1beta/models/{model}:generateContent`, `:streamGenerateContent?alt=sse`, `:embedContent`, `:batchEmbedContents` (`{url}/models/…` when `url` ends in `/v1beta` or `/v1`) | `x-goog-api-key: KEY` |
//!
//! So the natural base URLs work: `https://api.openai.com/v1`, `https://api.anthropic.com`,
//! `https://generativelanguage.googleapis.com`, `https://RESOURCE.openai.azure.com`,
//! `http://localhost:11434/v1` (Ollama). An endpoint's `headers` are added last and override the
//! defaults (e.g. a newer `anthropic-version`). Secrets are marked sensitive, so they never
//! appear in a debug print of a request.
//!
//! Requests are encoded with this crate's codecs ([`crate::codec`]); OpenAI-format streams are
//! always asked for `stream_options.include_usage`, so usage is known at the end of every
//! stream (the translator drops the usage chunk again when the client did not ask for it).
//! The client's own credentials and headers are never forwarded.

use crate::chat::ChatRequest;
use crate::embeddings::EmbeddingsRequest;
use crate::registry::{Endpoint, Model};
use crate::{Format, LlmError, anthropic, codec, gemini, openai};
use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use mcplane_config::Provider;
use std::time::Duration;

/// The `anthropic-version` sent unless an endpoint's headers say otherwise.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// One HTTP request to a provider.
#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    /// Full URL.
    pub url: String,
    /// Headers (auth included, marked sensitive).
    pub headers: HeaderMap,
    /// JSON body.
    pub body: Bytes,
}

/// An endpoint's addresses and headers, prepared once at start-up.
#[derive(Debug, Clone)]
pub struct Prepared {
    provider: Provider,
    chat_url: String,
    chat_stream_url: String,
    embeddings_url: String,
    gemini_base: String,
    upstream_model: String,
    headers: HeaderMap,
    stream_headers: HeaderMap,
}

/// A problem with an endpoint's configuration that only shows when building its requests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("endpoint {endpoint}: {reason}")]
pub struct EndpointError {
    /// The endpoint's label.
    pub endpoint: String,
    /// What is wrong (never a secret's value).
    pub reason: String,
}

impl Prepared {
    /// Prepares `endpoint` of `model`.
    pub fn new(model: &Model, endpoint: &Endpoint) -> Result<Prepared, EndpointError> {
        let err = |reason: String| EndpointError {
            endpoint: endpoint.label.clone(),
            reason,
        };
        let url = endpoint.url.trim_end_matches('/');
        let m = &endpoint.upstream_model;
        let (chat_url, chat_stream_url, embeddings_url, gemini_base) = match model.provider {
            Provider::Openai | Provider::OpenaiCompatible => {
                let chat = format!("{url}/chat/completions");
                (
                    chat.clone(),
                    chat,
                    format!("{url}/embeddings"),
                    String::new(),
                )
            }
            Provider::AzureOpenai => {
                let base = url.strip_suffix("/openai").unwrap_or(url);
                let d = path_segment(&endpoint.deployment);
                let v = query_value(endpoint.api_version.as_deref().unwrap_or_default());
                let chat =
                    format!("{base}/openai/deployments/{d}/chat/completions?api-version={v}");
                (
                    chat.clone(),
                    chat,
                    format!("{base}/openai/deployments/{d}/embeddings?api-version={v}"),
                    String::new(),
                )
            }
            Provider::Anthropic => {
                let chat = if url.ends_with("/v1") {
                    format!("{url}/messages")
                } else {
                    format!("{url}/v1/messages")
                };
                (chat.clone(), chat, String::new(), String::new())
            }
            Provider::Gemini => {
                let base = if url.ends_with("/v1beta") || url.ends_with("/v1") {
                    url.to_string()
                } else {
                    format!("{url}/v1beta")
                };
                let model = path_segment(m.strip_prefix("models/").unwrap_or(m));
                (
                    format!("{base}/{}", gemini::generate_path(&model, false)),
                    format!("{base}/{}", gemini::generate_path(&model, true)),
                    String::new(),
                    base,
                )
            }
        };
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let key = endpoint.api_key.as_ref().map(|k| k.expose());
        let secret = |name: &str, value: String| -> Result<HeaderValue, EndpointError> {
            let mut v = HeaderValue::from_str(&value).map_err(|_| {
                err(format!(
                    "the {name} contains characters a header cannot carry"
                ))
            })?;
            v.set_sensitive(true);
            Ok(v)
        };
        match model.provider {
            Provider::Openai | Provider::OpenaiCompatible => {
                if let Some(k) = key {
                    headers.insert(
                        http::header::AUTHORIZATION,
                        secret("api_key", format!("Bearer {k}"))?,
                    );
                }
            }
            Provider::AzureOpenai => {
                if let Some(k) = key {
                    headers.insert(
                        HeaderName::from_static("api-key"),
                        secret("api_key", k.to_string())?,
                    );
                }
            }
            Provider::Anthropic => {
                if let Some(k) = key {
                    headers.insert(
                        HeaderName::from_static("x-api-key"),
                        secret("api_key", k.to_string())?,
                    );
                }
                headers.insert(
                    HeaderName::from_static("anthropic-version"),
                    HeaderValue::from_static(ANTHROPIC_VERSION),
                );
            }
            Provider::Gemini => {
                if let Some(k) = key {
                    headers.insert(
                        HeaderName::from_static("x-goog-api-key"),
                        secret("api_key", k.to_string())?,
                    );
                }
            }
        }
        for (name, value) in &endpoint.headers {
            let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map_err(|_| err(format!("header name {name:?} is invalid")))?;
            headers.insert(
                name.clone(),
                secret(&format!("header {name}"), value.expose().to_string())?,
            );
        }
        let mut stream_headers = headers.clone();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        stream_headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        Ok(Prepared {
            provider: model.provider,
            chat_url,
            chat_stream_url,
            embeddings_url,
            gemini_base,
            upstream_model: m.clone(),
            headers,
            stream_headers,
        })
    }

    /// The request for a chat call. `req` is adjusted for the provider (model name, output limit
    /// for Anthropic, `include_usage` for OpenAI-format streams) and restored afterwards, so the
    /// same request can go to the next candidate.
    pub fn chat(
        &self,
        model: &Model,
        req: &mut ChatRequest,
        stream: bool,
    ) -> Result<UpstreamRequest, LlmError> {
        let saved_model = std::mem::replace(&mut req.model, self.upstream_model.clone());
        let saved_stream = std::mem::replace(&mut req.stream, stream);
        let saved_usage = req.include_usage;
        let saved_max = req.sampling.max_tokens;
        let format = model.format;
        if format == Format::OpenAi && stream {
            req.include_usage = true;
        }
        if format == Format::Anthropic && req.sampling.max_output_tokens().is_none() {
            req.sampling.max_tokens = Some(
                model
                    .max_output_tokens
                    .unwrap_or(anthropic::DEFAULT_MAX_TOKENS),
            );
        }
        let body = codec::encode_request(format, req);
        req.model = saved_model;
        req.stream = saved_stream;
        req.include_usage = saved_usage;
        req.sampling.max_tokens = saved_max;
        Ok(UpstreamRequest {
            url: if stream {
                self.chat_stream_url.clone()
            } else {
                self.chat_url.clone()
            },
            headers: if stream {
                self.stream_headers.clone()
            } else {
                self.headers.clone()
            },
            body: Bytes::from(body?),
        })
    }

    /// The request for an embeddings call (`req.model` is set to the provider's name and
    /// restored).
    pub fn embeddings(
        &self,
        model: &Model,
        req: &mut EmbeddingsRequest,
    ) -> Result<UpstreamRequest, LlmError> {
        let saved = std::mem::replace(&mut req.model, self.upstream_model.clone());
        let out = match model.format {
            Format::OpenAi => openai::encode_embeddings_request(req).map(|body| UpstreamRequest {
                url: self.embeddings_url.clone(),
                headers: self.headers.clone(),
                body: Bytes::from(body),
            }),
            Format::Gemini => {
                gemini::encode_embeddings_request(req).map(|(path, body)| UpstreamRequest {
                    url: format!("{}/{path}", self.gemini_base),
                    headers: self.headers.clone(),
                    body: Bytes::from(body),
                })
            }
            Format::Anthropic => Err(LlmError::Unsupported {
                format: Format::Anthropic,
                what: "embeddings".into(),
            }),
        };
        req.model = saved;
        out
    }

    /// The provider.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// The provider's name for the model.
    pub fn upstream_model(&self) -> &str {
        &self.upstream_model
    }
}

/// How long a provider asks to wait: `retry-after-ms` (OpenAI), or `Retry-After` in seconds or
/// as an HTTP date (RFC 9110; a date in the past means now). The caller bounds it by the
/// configured back-off.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    retry_after_at(headers, std::time::SystemTime::now())
}

/// [`retry_after`] as seen at `now`.
pub fn retry_after_at(headers: &HeaderMap, now: std::time::SystemTime) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = text("retry-after")?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (0.0..1e9)
            .contains(&secs)
            .then(|| Duration::from_secs_f64(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Percent-encodes a URL path segment (everything but unreserved characters and `:@`).
fn path_segment(s: &str) -> String {
    encode(s, b"-._~:@")
}

/// Percent-encodes a query value.
fn query_value(s: &str) -> String {
    encode(s, b"-._~")
}

fn encode(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{Message, Role};
    use crate::registry::Registry;
    use serde_json::Value;

    fn registry() -> Registry {
        let yaml = "models:
  - id: oa
    provider: openai
    endpoints: [{ url: 'https://api.openai.com/v1/', api_key: sk-1 }]
  - id: az
    provider: azure_openai
    endpoints: [{ url: 'https://r.openai.azure.com', api_key: az-1, deployment: 'my dep', api_version: 2024-10-21 }]
  - id: an
    provider: anthropic
    performance: { max_output_tokens: 8192 }
    endpoints: [{ url: 'https://api.anthropic.com', api_key: ak, headers: { anthropic-version: '2024-01-01', x-extra: e } }]
  - id: ge
    provider: gemini
    capabilities: [chat, embeddings]
    endpoints: [{ url: 'https://generativelanguage.googleapis.com', api_key: gk, model: models/gemini-2.5-flash }]
  - id: local
    provider: openai_compatible
    endpoints: [{ url: 'http://localhost:11434/v1', model: 'llama3.2' }]
";
        let c = mcplane_config::parse(yaml, &|_| None).unwrap().config;
        Registry::new(&c.models, &c.routing).unwrap()
    }

    fn prepared(r: &Registry, i: usize) -> Prepared {
        let m = r.model_at(i);
        Prepared::new(m, &m.endpoints[0]).unwrap()
    }

    fn request() -> ChatRequest {
        ChatRequest {
            model: "alias".into(),
            messages: vec![Message::text(Role::User, "hi")],
            source: Some(Format::OpenAi),
            ..ChatRequest::default()
        }
    }

    #[test]
    fn each_provider_is_addressed_and_authenticated_its_way() {
        let r = registry();
        let mut req = request();
        let oa = prepared(&r, 0).chat(r.model_at(0), &mut req, true).unwrap();
        assert_eq!(oa.url, "https://api.openai.com/v1/chat/completions");
        assert_eq!(oa.headers["authorization"], "Bearer sk-1");
        assert!(oa.headers["authorization"].is_sensitive());
        assert_eq!(oa.headers["accept"], "text/event-stream");
        let body: Value = serde_json::from_slice(&oa.body).unwrap();
        assert_eq!(body["model"], "oa");
        assert_eq!(body["stream_options"]["include_usage"], true);
        // The request is restored for the next candidate.
        assert_eq!(req.model, "alias");
        assert!(!req.include_usage && !req.stream);

        let az = prepared(&r, 1)
            .chat(r.model_at(1), &mut req, false)
            .unwrap();
        assert_eq!(
            az.url,
            "https://r.openai.azure.com/openai/deployments/my%20dep/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(az.headers["api-key"], "az-1");
        assert!(az.headers.get("authorization").is_none());

        let an = prepared(&r, 2).chat(r.model_at(2), &mut req, true).unwrap();
        assert_eq!(an.url, "https://api.anthropic.com/v1/messages");
        assert_eq!(an.headers["x-api-key"], "ak");
        assert_eq!(an.headers["anthropic-version"], "2024-01-01");
        assert_eq!(an.headers["x-extra"], "e");
        let body: Value = serde_json::from_slice(&an.body).unwrap();
        assert_eq!(body["max_tokens"], 8192);
        assert_eq!(body["stream"], true);
        assert_eq!(req.sampling.max_tokens, None);

        let ge = prepared(&r, 3);
        let g = ge.chat(r.model_at(3), &mut req, true).unwrap();
        assert_eq!(
            g.url,
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        assert_eq!(g.headers["x-goog-api-key"], "gk");
        let g = ge.chat(r.model_at(3), &mut req, false).unwrap();
        assert!(
            g.url
                .ends_with("/v1beta/models/gemini-2.5-flash:generateContent")
        );
        let mut e = EmbeddingsRequest {
            model: "ge".into(),
            input: crate::EmbeddingInput::Texts(vec!["a".into(), "b".into()]),
            source: Some(Format::OpenAi),
            ..EmbeddingsRequest::default()
        };
        let g = ge.embeddings(r.model_at(3), &mut e).unwrap();
        assert!(
            g.url
                .ends_with("/v1beta/models/gemini-2.5-flash:batchEmbedContents"),
            "{}",
            g.url
        );
        assert_eq!(e.model, "ge");

        let local = prepared(&r, 4)
            .chat(r.model_at(4), &mut req, false)
            .unwrap();
        assert_eq!(local.url, "http://localhost:11434/v1/chat/completions");
        assert!(local.headers.get("authorization").is_none());
        let body: Value = serde_json::from_slice(&local.body).unwrap();
        assert_eq!(body["model"], "llama3.2");
    }

    #[test]
    fn retry_after_reads_both_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", HeaderValue::from_static("150"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
        // An HTTP date: the time until then (none when it has passed); garbage: none.
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        let at = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        let before = at - Duration::from_secs(90);
        assert_eq!(retry_after_at(&h, before), Some(Duration::from_secs(90)));
        assert_eq!(
            retry_after_at(&h, at + Duration::from_secs(5)),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("-3"));
        assert_eq!(retry_after(&h), None);
    }
}
