//! Reading a request's credentials at the edge, for both faces, and what to answer when they do
//! not hold. The [`Authenticator`] (in `mcplane-core`) decides who the caller is; this module
//! only finds the credentials in HTTP (`Authorization: Bearer …`), refuses credentials in the URL
//! (they end up in logs and proxies), and turns a refusal into an HTTP status, a
//! `WWW-Authenticate` challenge (RFC 6750) and a message each face renders in its own format.

use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use mcplane_core::authn::{AuthError, Authenticator, Credentials};
use mcplane_types::{ErrorKind, Principal};
use std::sync::Arc;

/// Query parameters that carry credentials in the wild; any of them is refused.
const URL_CREDENTIALS: [&str; 5] = ["access_token", "token", "api_key", "apikey", "key"];

/// Why a request was refused at authentication, ready to render.
#[derive(Debug, Clone)]
pub struct AuthFailure {
    /// 400 (credentials in the URL), 401 (no or bad credentials) or 503 (keys unavailable).
    pub status: StatusCode,
    /// For the LLM face's error types.
    pub kind: ErrorKind,
    /// For the caller.
    pub message: String,
    /// The `WWW-Authenticate` header value to send with a 401.
    pub challenge: Option<HeaderValue>,
}

impl AuthFailure {
    fn unauthorized(error: Option<&str>, message: String) -> AuthFailure {
        let challenge = match error {
            None => "Bearer".to_string(),
            Some(e) => {
                let description: String = message
                    .chars()
                    .filter(|c| *c != '"' && *c != '\\' && (' '..='~').contains(c))
                    .collect();
                format!("Bearer error=\"{e}\", error_description=\"{description}\"")
            }
        };
        AuthFailure {
            status: StatusCode::UNAUTHORIZED,
            kind: ErrorKind::Unauthenticated,
            message,
            challenge: HeaderValue::from_str(&challenge).ok(),
        }
    }

    fn bad_request(message: String) -> AuthFailure {
        AuthFailure {
            status: StatusCode::BAD_REQUEST,
            kind: ErrorKind::InvalidRequest,
            message,
            challenge: None,
        }
    }
}

/// The credentials in `headers`, or why they cannot be read.
fn credentials<'a>(headers: &'a HeaderMap, uri: &Uri) -> Result<Credentials<'a>, AuthFailure> {
    if let Some(query) = uri.query()
        && let Some(name) = query
            .split('&')
            .filter_map(|pair| pair.split('=').next())
            .find(|name| URL_CREDENTIALS.iter().any(|c| name.eq_ignore_ascii_case(c)))
    {
        return Err(AuthFailure::bad_request(format!(
            "credentials in the URL (query parameter `{name}`) are refused because URLs end up in \
             logs; send them in the Authorization header instead"
        )));
    }
    let mut values = headers.get_all(axum::http::header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(Credentials::None);
    };
    if values.next().is_some() {
        return Err(AuthFailure::unauthorized(
            Some("invalid_request"),
            "more than one Authorization header".into(),
        ));
    }
    let text = value.to_str().map_err(|_| {
        AuthFailure::unauthorized(
            Some("invalid_request"),
            "the Authorization header is not visible ASCII".into(),
        )
    })?;
    match text.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Credentials::Bearer(token.trim()))
        }
        _ => Err(AuthFailure::unauthorized(
            Some("invalid_request"),
            "the Authorization header must be `Bearer <token>`".into(),
        )),
    }
}

/// Who is calling: the principal behind the request's credentials, or the refusal to send.
pub async fn principal(
    auth: &Authenticator,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<Arc<Principal>, AuthFailure> {
    let credentials = credentials(headers, uri)?;
    match auth.authenticate(credentials).await {
        Ok(p) => Ok(Arc::new(p)),
        Err(AuthError::Missing) => Err(AuthFailure::unauthorized(
            None,
            AuthError::Missing.to_string(),
        )),
        Err(e @ (AuthError::Malformed(_) | AuthError::InvalidToken(_))) => Err(
            AuthFailure::unauthorized(Some("invalid_token"), e.to_string()),
        ),
        Err(e @ AuthError::KeysUnavailable(_)) => Err(AuthFailure {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: ErrorKind::UpstreamUnavailable,
            message: e.to_string(),
            challenge: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcplane_core::authn::JwksSource;

    struct NoFetch;

    #[async_trait::async_trait]
    impl JwksSource for NoFetch {
        async fn fetch(&self, _url: &str) -> Result<String, String> {
            Err("offline".into())
        }
    }

    fn open() -> Authenticator {
        Authenticator::new(None, &|_| Err("no files".into()), Arc::new(NoFetch)).unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[tokio::test]
    async fn credentials_in_the_url_are_refused_whatever_else() {
        for q in [
            "/mcp?access_token=abc",
            "/v1/models?x=1&API_KEY=k",
            "/mcp?token",
        ] {
            let err = principal(&open(), &headers(&[]), &q.parse().unwrap())
                .await
                .unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{q}");
            assert!(
                err.message.contains("Authorization header"),
                "{}",
                err.message
            );
        }
        let ok = principal(
            &open(),
            &headers(&[]),
            &"/mcp?tokens_used=1".parse().unwrap(),
        )
        .await;
        assert!(
            ok.is_ok(),
            "a parameter that merely starts like one is fine"
        );
    }

    #[tokio::test]
    async fn malformed_authorization_headers_get_a_challenge_naming_the_problem() {
        for (h, says) in [
            (
                vec![("authorization", "Basic dXNlcjpwYXNz")],
                "must be `Bearer <token>`",
            ),
            (
                vec![("authorization", "Bearer ")],
                "must be `Bearer <token>`",
            ),
            (
                vec![("authorization", "Bearer a"), ("authorization", "Bearer b")],
                "more than one",
            ),
        ] {
            let err = principal(&open(), &headers(&h), &"/mcp".parse().unwrap())
                .await
                .unwrap_err();
            assert_eq!(err.status, StatusCode::UNAUTHORIZED);
            assert!(err.message.contains(says), "{}", err.message);
            let challenge = err.challenge.unwrap();
            assert!(
                challenge
                    .to_str()
                    .unwrap()
                    .starts_with("Bearer error=\"invalid_request\"")
            );
        }
    }

    #[tokio::test]
    async fn a_bearer_token_with_no_trusted_issuer_is_an_invalid_token() {
        let err = principal(
            &open(),
            &headers(&[("authorization", "bearer abc.def.ghi")]),
            &"/mcp".parse().unwrap(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.status, StatusCode::UNAUTHORIZED);
        assert!(
            err.challenge
                .unwrap()
                .to_str()
                .unwrap()
                .contains("error=\"invalid_token\"")
        );
    }
}
