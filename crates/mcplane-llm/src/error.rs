//! The crate's error type, its classification, and the error bodies each format renders.
//!
//! Decoding a *request* (from a client) fails with [`LlmError::Json`] or [`LlmError::Invalid`],
//! naming the field (`messages[2].content: expected a string or an array of content parts`);
//! both classify as [`ErrorKind::InvalidRequest`]. Decoding an *upstream* answer (a response
//! body or a stream event) fails with [`LlmError::Protocol`] ([`ErrorKind::UpstreamProtocol`]),
//! whose reason carries the same path. A provider reporting an error inside a stream is
//! [`LlmError::Upstream`]; a stream that ends before its terminal event is
//! [`LlmError::Truncated`].

use crate::Format;
use mcplane_types::ErrorKind;
use serde_json::{Value, json};

/// Everything that can go wrong in this crate.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// The body is not JSON (or not UTF-8).
    #[error("malformed JSON: {0}")]
    Json(String),
    /// A field is missing or has the wrong shape or value. `at` is its path
    /// (`messages[2].content`; `body` for the whole document).
    #[error("{at}: {reason}")]
    Invalid {
        /// Path of the offending field.
        at: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The request uses something the target format cannot express (e.g. `n > 1` for Anthropic).
    #[error("{what} is not supported by the {format} format")]
    Unsupported {
        /// The target format.
        format: Format,
        /// What cannot be expressed.
        what: String,
    },
    /// An upstream answer (response body or stream event) is malformed.
    #[error("upstream sent a malformed {what}: {reason}")]
    Protocol {
        /// What was being decoded (`response`, `stream event`, …).
        what: String,
        /// What is wrong, with the field path.
        reason: String,
    },
    /// The upstream reported an error inside a stream (Anthropic `error` event, OpenAI error
    /// object, Gemini error chunk).
    #[error("upstream error ({kind:?}): {message}")]
    Upstream {
        /// The error's classification.
        kind: ErrorKind,
        /// The provider's message.
        message: String,
        /// The provider's own error type or status (`overloaded_error`, `server_error`, …).
        provider_type: Option<String>,
    },
    /// The upstream stream ended before its terminal event (`[DONE]`, `message_stop`, a finish
    /// reason).
    #[error("the upstream stream ended before it was complete")]
    Truncated,
    /// An SSE line or event exceeds the decoder's size limit.
    #[error("an SSE event exceeds {limit} bytes")]
    EventTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

impl LlmError {
    /// The error's classification.
    pub fn kind(&self) -> ErrorKind {
        match self {
            LlmError::Json(_) | LlmError::Invalid { .. } | LlmError::Unsupported { .. } => {
                ErrorKind::InvalidRequest
            }
            LlmError::Protocol { .. } | LlmError::Truncated | LlmError::EventTooLarge { .. } => {
                ErrorKind::UpstreamProtocol
            }
            LlmError::Upstream { kind, .. } => *kind,
        }
    }

    /// Re-labels a decoding error as an upstream protocol error (used by response and stream
    /// decoders, which read what a provider sent).
    pub(crate) fn upstream(self, what: &str) -> LlmError {
        match self {
            LlmError::Json(reason) => LlmError::Protocol {
                what: what.into(),
                reason: format!("malformed JSON: {reason}"),
            },
            LlmError::Invalid { at, reason } => LlmError::Protocol {
                what: what.into(),
                reason: format!("{at}: {reason}"),
            },
            other => other,
        }
    }
}

/// The HTTP status a `/v1` front door answers for an error of this kind.
pub fn http_status(kind: ErrorKind) -> u16 {
    match kind {
        ErrorKind::Unauthenticated => 401,
        ErrorKind::Forbidden => 403,
        ErrorKind::BudgetExceeded => 402,
        ErrorKind::RateLimited => 429,
        ErrorKind::NotFound => 404,
        ErrorKind::InvalidRequest => 400,
        ErrorKind::UpstreamUnavailable | ErrorKind::UpstreamProtocol => 502,
        ErrorKind::UpstreamTimeout => 504,
        ErrorKind::Internal => 500,
    }
}

/// The snake_case name of an error kind (`upstream_timeout`), used as OpenAI's `code`.
pub fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Unauthenticated => "unauthenticated",
        ErrorKind::Forbidden => "forbidden",
        ErrorKind::BudgetExceeded => "budget_exceeded",
        ErrorKind::RateLimited => "rate_limited",
        ErrorKind::NotFound => "not_found",
        ErrorKind::InvalidRequest => "invalid_request",
        ErrorKind::UpstreamUnavailable => "upstream_unavailable",
        ErrorKind::UpstreamTimeout => "upstream_timeout",
        ErrorKind::UpstreamProtocol => "upstream_protocol",
        ErrorKind::Internal => "internal",
    }
}

/// The error body a front door of `format` answers with:
///
/// - OpenAI: `{"error": {"message", "type", "param": null, "code": "<kind>"}}`
/// - Anthropic: `{"type": "error", "error": {"type", "message"}}`
/// - Gemini: `{"error": {"code": <http status>, "message", "status"}}`
pub fn error_body(format: Format, kind: ErrorKind, message: &str) -> Value {
    match format {
        Format::OpenAi => json!({"error": {
            "message": message,
            "type": openai_error_type(kind),
            "param": null,
            "code": kind_name(kind),
        }}),
        Format::Anthropic => json!({"type": "error", "error": {
            "type": anthropic_error_type(kind),
            "message": message,
        }}),
        Format::Gemini => json!({"error": {
            "code": http_status(kind),
            "message": message,
            "status": gemini_status(kind),
        }}),
    }
}

fn openai_error_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest | ErrorKind::NotFound => "invalid_request_error",
        ErrorKind::Unauthenticated => "authentication_error",
        ErrorKind::Forbidden => "permission_error",
        ErrorKind::BudgetExceeded => "insufficient_quota",
        ErrorKind::RateLimited => "rate_limit_error",
        ErrorKind::UpstreamUnavailable
        | ErrorKind::UpstreamTimeout
        | ErrorKind::UpstreamProtocol
        | ErrorKind::Internal => "server_error",
    }
}

fn anthropic_error_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest => "invalid_request_error",
        ErrorKind::NotFound => "not_found_error",
        ErrorKind::Unauthenticated => "authentication_error",
        ErrorKind::Forbidden => "permission_error",
        ErrorKind::BudgetExceeded => "billing_error",
        ErrorKind::RateLimited => "rate_limit_error",
        ErrorKind::UpstreamUnavailable => "overloaded_error",
        ErrorKind::UpstreamTimeout => "timeout_error",
        ErrorKind::UpstreamProtocol | ErrorKind::Internal => "api_error",
    }
}

fn gemini_status(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest => "INVALID_ARGUMENT",
        ErrorKind::NotFound => "NOT_FOUND",
        ErrorKind::Unauthenticated => "UNAUTHENTICATED",
        ErrorKind::Forbidden => "PERMISSION_DENIED",
        ErrorKind::BudgetExceeded | ErrorKind::RateLimited => "RESOURCE_EXHAUSTED",
        ErrorKind::UpstreamUnavailable => "UNAVAILABLE",
        ErrorKind::UpstreamTimeout => "DEADLINE_EXCEEDED",
        ErrorKind::UpstreamProtocol | ErrorKind::Internal => "INTERNAL",
    }
}

/// An error a provider reported, read from its error body (any of the three formats).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderError {
    /// The classification derived from the provider's type or status.
    pub kind: ErrorKind,
    /// The provider's message.
    pub message: String,
    /// The provider's own type or status string, when given.
    pub provider_type: Option<String>,
}

/// Reads a provider's error body — OpenAI `{"error": {"message", "type", "code"}}`, Anthropic
/// `{"type": "error", "error": {"type", "message"}}` or Gemini `{"error": {"code", "message",
/// "status"}}` — classifying it from its type, or from `http_status` when the type says
/// nothing. `None` when the body is none of these.
pub fn decode_error_body(body: &[u8], http_status: Option<u16>) -> Option<ProviderError> {
    let value: Value = serde_json::from_slice(body).ok()?;
    decode_error_value(&value, http_status)
}

pub(crate) fn decode_error_value(value: &Value, http_status: Option<u16>) -> Option<ProviderError> {
    let error = value.get("error")?;
    let (message, provider_type) = match error {
        Value::String(s) => (s.clone(), None),
        Value::Object(o) => {
            let message = o
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let ty = o
                .get("type")
                .or_else(|| o.get("status"))
                .or_else(|| o.get("code"))
                .and_then(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                });
            (message, ty)
        }
        _ => return None,
    };
    let status = http_status.or_else(|| {
        error
            .get("code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
    });
    let kind = provider_type
        .as_deref()
        .and_then(kind_of_provider_type)
        .or_else(|| status.map(kind_of_status))
        .unwrap_or(ErrorKind::UpstreamUnavailable);
    Some(ProviderError {
        kind,
        message,
        provider_type,
    })
}

/// Classifies a provider's error type or status string, when it is one we know.
fn kind_of_provider_type(ty: &str) -> Option<ErrorKind> {
    Some(match ty {
        "invalid_request_error"
        | "INVALID_ARGUMENT"
        | "FAILED_PRECONDITION"
        | "request_too_large" => ErrorKind::InvalidRequest,
        "authentication_error" | "UNAUTHENTICATED" | "invalid_api_key" => {
            ErrorKind::Unauthenticated
        }
        "permission_error" | "PERMISSION_DENIED" => ErrorKind::Forbidden,
        "not_found_error" | "NOT_FOUND" => ErrorKind::NotFound,
        "rate_limit_error"
        | "rate_limit_exceeded"
        | "RESOURCE_EXHAUSTED"
        | "tokens"
        | "requests" => ErrorKind::RateLimited,
        "insufficient_quota" | "billing_error" => ErrorKind::BudgetExceeded,
        "overloaded_error" | "UNAVAILABLE" | "server_error" | "api_error" | "INTERNAL" => {
            ErrorKind::UpstreamUnavailable
        }
        "timeout_error" | "DEADLINE_EXCEEDED" => ErrorKind::UpstreamTimeout,
        _ => return None,
    })
}

/// Classifies an upstream HTTP status.
pub fn kind_of_status(status: u16) -> ErrorKind {
    match status {
        401 => ErrorKind::Unauthenticated,
        403 => ErrorKind::Forbidden,
        404 => ErrorKind::NotFound,
        408 | 504 => ErrorKind::UpstreamTimeout,
        429 => ErrorKind::RateLimited,
        400..=499 => ErrorKind::InvalidRequest,
        _ => ErrorKind::UpstreamUnavailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_have_each_formats_shape() {
        let o = error_body(Format::OpenAi, ErrorKind::UpstreamTimeout, "slow");
        assert_eq!(o["error"]["type"], "server_error");
        assert_eq!(o["error"]["code"], "upstream_timeout");
        assert_eq!(o["error"]["param"], Value::Null);
        let a = error_body(Format::Anthropic, ErrorKind::UpstreamUnavailable, "busy");
        assert_eq!(
            a,
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})
        );
        let g = error_body(Format::Gemini, ErrorKind::InvalidRequest, "bad");
        assert_eq!(g["error"]["code"], 400);
        assert_eq!(g["error"]["status"], "INVALID_ARGUMENT");
    }

    #[test]
    fn provider_error_bodies_are_read_and_classified() {
        let e = decode_error_body(
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            Some(529),
        )
        .unwrap();
        assert_eq!(e.kind, ErrorKind::UpstreamUnavailable);
        assert_eq!(e.message, "Overloaded");
        let e = decode_error_body(
            br#"{"error":{"message":"Rate limit","type":"requests","code":"rate_limit_exceeded"}}"#,
            None,
        )
        .unwrap();
        assert_eq!(e.kind, ErrorKind::RateLimited);
        let e = decode_error_body(
            br#"{"error":{"code":400,"message":"bad","status":"INVALID_ARGUMENT"}}"#,
            None,
        )
        .unwrap();
        assert_eq!(e.kind, ErrorKind::InvalidRequest);
        let e = decode_error_body(br#"{"error":{"message":"?"}}"#, Some(503)).unwrap();
        assert_eq!(e.kind, ErrorKind::UpstreamUnavailable);
        assert!(decode_error_body(b"not json", Some(500)).is_none());
        assert!(decode_error_body(br#"{"ok":1}"#, Some(500)).is_none());
    }

    #[test]
    fn decoding_errors_become_protocol_errors_upstream() {
        let e = LlmError::Invalid {
            at: "choices[0]".into(),
            reason: "expected an object".into(),
        }
        .upstream("response");
        assert_eq!(e.kind(), ErrorKind::UpstreamProtocol);
        assert!(
            e.to_string().contains("choices[0]: expected an object"),
            "{e}"
        );
    }
}
