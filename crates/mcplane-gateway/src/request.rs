//! Checks on incoming MCP HTTP requests shared by the Streamable HTTP and legacy SSE transports:
//! media types (`Content-Type`, `Accept`), the body size limit, the `Mcp-Session-Id` and
//! `MCP-Protocol-Version` headers, and the caller binding a session is tied to.
//!
//! Each check returns the ready-made HTTP rejection (a JSON-RPC error body) on failure.

use crate::reply::Rejection;
use axum::body::Body;
use axum::http::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use mcplane_mcp::protocol;
use sha2::{Digest, Sha256};

/// `Mcp-Session-Id` (header names are case-insensitive).
pub(crate) const SESSION_HEADER: &str = "mcp-session-id";
/// `MCP-Protocol-Version`.
pub(crate) const PROTOCOL_HEADER: &str = "mcp-protocol-version";

/// The identity a session is bound to: the SHA-256 (hex) of the caller's `Authorization` header,
/// or `None` when the request carries none. The credential itself is never kept.
pub fn session_binding(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?;
    Some(hex::encode(Sha256::digest(value.as_bytes())))
}

/// The media type of a header value without parameters, lowercased (`Application/JSON; x=1` →
/// `application/json`).
fn media_type(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Whether `Content-Type` is `application/json` (parameters such as `charset` allowed).
pub(crate) fn is_json_content(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| media_type(v) == "application/json")
}

/// Whether `Accept` admits `media` (`type/subtype`), honouring `type/*`, `*/*` and `q=0`. A
/// request without `Accept` accepts anything (RFC 9110 §12.5.1).
pub(crate) fn accepts(headers: &HeaderMap, media: &str) -> bool {
    let mut values = headers.get_all(ACCEPT).iter().peekable();
    if values.peek().is_none() {
        return true;
    }
    let (kind, _) = media.split_once('/').unwrap_or((media, ""));
    values
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let mut parts = range.split(';');
            let name = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let refused = parts.any(|p| {
                p.split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("q")
                        && v.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
                })
            });
            !refused && (name == media || name == "*/*" || name == format!("{kind}/*").as_str())
        })
}

/// 415 unless the body is declared as JSON.
pub(crate) fn require_json_content(headers: &HeaderMap) -> Result<(), Rejection> {
    if is_json_content(headers) {
        return Ok(());
    }
    Err(Rejection::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported Content-Type: send the JSON-RPC message with Content-Type: application/json",
    ))
}

/// 406 unless the client accepts every media type in `needed`.
pub(crate) fn require_accept(headers: &HeaderMap, needed: &[&str]) -> Result<(), Rejection> {
    if needed.iter().all(|m| accepts(headers, m)) {
        return Ok(());
    }
    Err(Rejection::new(
        StatusCode::NOT_ACCEPTABLE,
        format!(
            "not acceptable: the Accept header must include {}",
            needed.join(" and ")
        ),
    ))
}

/// 400 when `MCP-Protocol-Version` is present but not a version mcplane speaks.
pub(crate) fn check_protocol_header(headers: &HeaderMap) -> Result<(), Rejection> {
    let Some(value) = headers.get(PROTOCOL_HEADER) else {
        return Ok(());
    };
    match value.to_str() {
        Ok(v) if protocol::is_supported(v.trim()) => Ok(()),
        _ => Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            format!(
                "unsupported MCP-Protocol-Version {:?}; supported versions: {}",
                String::from_utf8_lossy(value.as_bytes()),
                protocol::SUPPORTED_VERSIONS.join(", ")
            ),
        )),
    }
}

/// The `Mcp-Session-Id` header, if present. 400 when it is not visible ASCII.
pub(crate) fn session_header(headers: &HeaderMap) -> Result<Option<&str>, Rejection> {
    let Some(value) = headers.get(SESSION_HEADER) else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(v) if !v.is_empty() && v.bytes().all(|b| (0x21..=0x7e).contains(&b)) => Ok(Some(v)),
        _ => Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            "Mcp-Session-Id must be visible ASCII",
        )),
    }
}

/// 400 for a request that needs a session but names none.
pub(crate) fn missing_session() -> Rejection {
    Rejection::new(
        StatusCode::BAD_REQUEST,
        "missing Mcp-Session-Id header: send initialize (without the header) to start a \
         session, then send the session id it returns on every request",
    )
}

/// 404 for an unknown, expired or foreign session.
pub(crate) fn unknown_session() -> Rejection {
    Rejection::new(
        StatusCode::NOT_FOUND,
        "session not found (unknown, expired or closed): start a new session with initialize",
    )
}

fn too_large(limit: usize) -> Rejection {
    Rejection::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body exceeds the {limit}-byte limit; send a smaller message"),
    )
}

/// 413 before reading anything when `Content-Length` already exceeds `limit`.
pub(crate) fn check_content_length(headers: &HeaderMap, limit: usize) -> Result<(), Rejection> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(n) if n > limit as u64 => Err(too_large(limit)),
        _ => Ok(()),
    }
}

/// Reads the whole body, stopping with 413 as soon as more than `limit` bytes arrive (chunked
/// bodies without `Content-Length` included).
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, Rejection> {
    check_content_length(headers, limit)?;
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(too_large(limit)),
        Err(e) => {
            tracing::debug!(error = %e, "could not read a request body");
            Err(Rejection::new(
                StatusCode::BAD_REQUEST,
                "the request body could not be read completely",
            ))
        }
    }
}

/// Refuses a JSON-RPC batch on a session whose protocol version has no batches (2025-06-18 on).
pub(crate) fn batches_allowed(session: &mcplane_mcp::server::Session) -> Result<(), Rejection> {
    let version = session.protocol_version();
    if protocol::allows_batches(version) {
        return Ok(());
    }
    Err(Rejection::new(
        StatusCode::BAD_REQUEST,
        format!(
            "JSON-RPC batches are not supported in protocol version {version}; \
             send one message per request"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn accept_matching() {
        let both = ["application/json", "text/event-stream"];
        let ok = |v: &'static str| require_accept(&headers(&[("accept", v)]), &both).is_ok();
        assert!(ok("application/json, text/event-stream"));
        assert!(ok("text/event-stream;q=0.9, Application/JSON"));
        assert!(ok("*/*"));
        assert!(ok("application/*, text/*"));
        assert!(!ok("application/json"));
        assert!(!ok("text/event-stream"));
        assert!(!ok("text/html"));
        assert!(!ok("application/json, text/event-stream;q=0"));
        assert!(require_accept(&HeaderMap::new(), &both).is_ok());
        let split = headers(&[
            ("accept", "application/json"),
            ("accept", "text/event-stream"),
        ]);
        assert!(require_accept(&split, &both).is_ok());
    }

    #[test]
    fn content_type_matching() {
        assert!(is_json_content(&headers(&[(
            "content-type",
            "application/json; charset=utf-8"
        )])));
        assert!(!is_json_content(&headers(&[(
            "content-type",
            "text/plain"
        )])));
        assert!(!is_json_content(&HeaderMap::new()));
    }

    #[test]
    fn binding_is_a_hash_never_the_token() {
        let h = headers(&[("authorization", "Bearer secret")]);
        let b = session_binding(&h).unwrap();
        assert_eq!(b.len(), 64);
        assert!(!b.contains("secret"));
        assert_eq!(session_binding(&HeaderMap::new()), None);
    }

    #[test]
    fn protocol_header() {
        assert!(check_protocol_header(&HeaderMap::new()).is_ok());
        assert!(check_protocol_header(&headers(&[(PROTOCOL_HEADER, "2025-06-18")])).is_ok());
        assert!(check_protocol_header(&headers(&[(PROTOCOL_HEADER, "1999-01-01")])).is_err());
    }

    #[tokio::test]
    async fn body_limit() {
        let h = headers(&[("content-length", "5000")]);
        assert!(check_content_length(&h, 4096).is_err());
        let body = Body::from(vec![b'x'; 5000]);
        let r = read_body(&HeaderMap::new(), body, 4096).await.unwrap_err();
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
        let ok = read_body(&HeaderMap::new(), Body::from("{}"), 4096).await;
        assert_eq!(ok.unwrap(), Bytes::from_static(b"{}"));
    }
}
