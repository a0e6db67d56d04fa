//! Governance at the edge, for both faces: [`layer`] puts every request (but health and
//! discovery routes) through authentication and the request-rate limits, hands the handlers a
//! [`Caller`] — the principal and the request attributes policy reads — and answers refusals
//! itself, in the face's format (an OpenAI or Anthropic error under `/v1`, a JSON-RPC error
//! elsewhere).
//!
//! The [`Authenticator`] (in `mcplane-core`) decides who the caller is; this module only finds the
//! credentials in HTTP (`Authorization: Bearer …`, or `x-api-key` as Anthropic's SDKs send
//! keys), refuses credentials in the URL (they end up in
//! logs and proxies), and renders a refusal: 401 with a `WWW-Authenticate` challenge (RFC 6750),
//! 429 with `Retry-After` and `x-ratelimit-*` headers, 503 when the keys or the counters are out
//! of reach. A request admitted under an in-flight limit holds its slot until its response body
//! ends (streams included); long-lived event streams (`GET` with `Accept: text/event-stream`)
//! are not counted.
//!
//! With `auth.oauth`, `/mcp` and each `/mcp/{virtual_server}` are OAuth protected resources
//! (RFC 9728): [`metadata_routes`] serves their metadata, a 401 there names it in its challenge
//! (`resource_metadata=…`), and a JWT may carry the endpoint's own URI as audience — so a token
//! issued for one virtual server is refused at another.
//!
//! Request attributes come from `x-mcplane-data-classification` and `x-mcplane-environment`
//! (`request.data_classification`, `request.environment` in policy conditions). They are the
//! client's own statements: rules that must not be bypassed should read the principal instead.

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use mcplane_core::authn::{AuthError, Authenticator, Credentials};
use mcplane_core::governance::Governance;
use mcplane_core::limits::{Admitted, LimitError};
use mcplane_core::policy::RequestAttributes;
use mcplane_llm::Format;
use mcplane_types::{ErrorKind, Principal};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Who is calling and what they say about the request; every handler behind [`layer`] finds one
/// in the request's extensions (without [`layer`]: the anonymous caller).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The authenticated principal.
    pub principal: Arc<Principal>,
    /// What policy reads as `request`.
    pub request: Arc<RequestAttributes>,
}

impl Default for Caller {
    fn default() -> Self {
        Caller {
            principal: Arc::new(Principal::anonymous()),
            request: Arc::default(),
        }
    }
}

/// The JSON-RPC error code of a request refused at authentication (an implementation-defined
/// server error; MCP clients act on the HTTP 401 and its challenge).
pub const UNAUTHENTICATED: i64 = -32040;
/// The JSON-RPC error code of a request refused by a rate limit (HTTP 429).
pub const RATE_LIMITED: i64 = -32029;

/// Routes answered without credentials: health and discovery.
fn exempt(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz") || path.starts_with("/.well-known/")
}

/// A long-lived event stream (MCP's standalone GET stream, legacy `/sse`): not a request in
/// flight for the limits.
fn long_lived(request: &Request) -> bool {
    request.method() == Method::GET
        && request
            .headers()
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/event-stream"))
}

/// The request attributes a caller states in headers.
fn attributes(headers: &HeaderMap) -> RequestAttributes {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty() && v.len() <= 128)
    };
    RequestAttributes {
        data_classification: text("x-mcplane-data-classification"),
        environment: text("x-mcplane-environment"),
        headers: Default::default(),
    }
}

/// An MCP endpoint as an OAuth protected resource: its URI and where its metadata is.
struct Protected {
    resource: String,
    metadata: String,
}

/// The MCP endpoint a path belongs to: `/mcp`, or `/mcp/{virtual_server}` (the legacy `/sse`
/// and `/messages` are `/mcp`'s). `None` for the model face and everything else.
fn endpoint_of(path: &str) -> Option<String> {
    if matches!(path, "/mcp" | "/sse" | "/messages") {
        return Some("/mcp".into());
    }
    let name = path.strip_prefix("/mcp/")?.split('/').next()?;
    (!name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
    .then(|| format!("/mcp/{name}"))
}

fn protected_resource(auth: &Authenticator, path: &str) -> Option<Protected> {
    let oauth = auth.oauth()?;
    let endpoint = endpoint_of(path)?;
    let base = oauth.resource.trim_end_matches('/');
    Some(Protected {
        resource: format!("{base}{endpoint}"),
        metadata: format!("{base}/.well-known/oauth-protected-resource{endpoint}"),
    })
}

/// RFC 9728 protected-resource metadata for `/mcp` and each `/mcp/{virtual_server}`, at
/// `/.well-known/oauth-protected-resource[/mcp[/NAME]]` (404 without `auth.oauth`).
pub fn metadata_routes(governance: Arc<Governance>) -> Router {
    async fn metadata(State(governance): State<Arc<Governance>>, request: Request) -> Response {
        let path = request
            .uri()
            .path()
            .strip_prefix("/.well-known/oauth-protected-resource")
            .unwrap_or_default();
        let endpoint = if path.is_empty() || path == "/" {
            Some("/mcp".to_string())
        } else {
            endpoint_of(path).filter(|e| e == path)
        };
        let (Some(oauth), Some(endpoint)) = (governance.authn.oauth(), endpoint) else {
            return StatusCode::NOT_FOUND.into_response();
        };
        let base = oauth.resource.trim_end_matches('/');
        let mut body = serde_json::json!({
            "resource": format!("{base}{endpoint}"),
            "authorization_servers": oauth.authorization_servers,
            "bearer_methods_supported": ["header"],
        });
        if let Some(scopes) = &oauth.scopes {
            body["scopes_supported"] = serde_json::json!(scopes);
        }
        (
            StatusCode::OK,
            [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            serde_json::to_vec(&body).unwrap_or_default(),
        )
            .into_response()
    }
    Router::new()
        .route(
            "/.well-known/oauth-protected-resource",
            axum::routing::get(metadata),
        )
        .route(
            "/.well-known/oauth-protected-resource/{*rest}",
            axum::routing::get(metadata),
        )
        .with_state(governance)
}

/// Puts `router`'s requests through authentication and the request-rate limits (see the module
/// docs).
pub fn layer(router: Router, governance: Arc<Governance>) -> Router {
    router.layer(axum::middleware::from_fn_with_state(governance, govern))
}

async fn govern(
    State(governance): State<Arc<Governance>>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    if exempt(&path) {
        return next.run(request).await;
    }
    let protected = protected_resource(&governance.authn, &path);
    let principal = match principal_for(
        &governance.authn,
        request.headers(),
        request.uri(),
        protected.as_ref().map(|p| p.resource.as_str()),
    )
    .await
    {
        Ok(p) => p,
        Err(mut failure) => {
            if let (Some(p), Some(c)) = (&protected, &failure.challenge) {
                // RFC 9728: tell the client where the resource's metadata is.
                let with = format!(
                    "{}, resource_metadata=\"{}\"",
                    c.to_str().unwrap_or("Bearer"),
                    p.metadata
                );
                failure.challenge = HeaderValue::from_str(&with).ok().or(failure.challenge);
            }
            tracing::info!(
                path,
                status = failure.status.as_u16(),
                "refused at authentication: {}",
                failure.message
            );
            return failure.render(&path, request.headers());
        }
    };
    let admitted = if long_lived(&request) {
        None
    } else {
        match governance.admit(&principal).await {
            Ok(a) => Some(a),
            Err(e) => {
                let failure = AuthFailure::from_limit(&e);
                tracing::info!(path, principal = %principal.id, "refused by a rate limit: {}", failure.message);
                return failure.render(&path, request.headers());
            }
        }
    };
    let caller = Caller {
        principal,
        request: Arc::new(attributes(request.headers())),
    };
    request.extensions_mut().insert(caller);
    let response = next.run(request).await;
    match admitted {
        Some(a) if a.holds_in_flight() => {
            response.map(|body| Body::new(Held { body, _admitted: a }))
        }
        _ => response,
    }
}

/// A response body that keeps its request's in-flight count until it ends.
struct Held {
    body: Body,
    _admitted: Admitted,
}

impl http_body::Body for Held {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Why a request was refused at the edge, ready to render.
#[derive(Debug, Clone)]
pub struct AuthFailure {
    /// 400 (credentials in the URL), 401 (no or bad credentials), 429 (a rate limit) or 503
    /// (keys or counters unavailable).
    pub status: StatusCode,
    /// For the LLM face's error types.
    pub kind: ErrorKind,
    /// For the caller.
    pub message: String,
    /// The `WWW-Authenticate` header value to send with a 401.
    pub challenge: Option<HeaderValue>,
    /// Further headers (`Retry-After`, `x-ratelimit-*`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl AuthFailure {
    /// The refusal in the format of the face at `path`.
    pub fn render(&self, path: &str, headers: &HeaderMap) -> Response {
        let body = if path.starts_with("/v1/") {
            let format = if path == "/v1/messages" || headers.contains_key("anthropic-version") {
                Format::Anthropic
            } else {
                Format::OpenAi
            };
            mcplane_llm::error::error_body(format, self.kind, &self.message)
        } else {
            let code = if self.status == StatusCode::TOO_MANY_REQUESTS {
                RATE_LIMITED
            } else {
                UNAUTHENTICATED
            };
            serde_json::json!({
                "jsonrpc": "2.0",
                "id": null,
                "error": {"code": code, "message": self.message},
            })
        };
        let mut response = (
            self.status,
            [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            serde_json::to_vec(&body).unwrap_or_default(),
        )
            .into_response();
        let h = response.headers_mut();
        if let Some(c) = &self.challenge {
            h.insert(WWW_AUTHENTICATE, c.clone());
        }
        for (name, value) in &self.headers {
            h.insert(name.clone(), value.clone());
        }
        response
    }

    /// A rate-limit refusal (429, or 503 when the counters are unavailable).
    pub fn from_limit(e: &LimitError) -> AuthFailure {
        match e {
            LimitError::Limited(l) => {
                let secs = l.retry_after.as_secs() + u64::from(l.retry_after.subsec_nanos() > 0);
                let secs = secs.max(1);
                let mut headers = vec![(RETRY_AFTER, HeaderValue::from(secs))];
                let dim = if l.dimension == "tokens" {
                    "tokens"
                } else {
                    "requests"
                };
                for (name, value) in [
                    (format!("x-ratelimit-limit-{dim}"), l.limit.to_string()),
                    (
                        format!("x-ratelimit-remaining-{dim}"),
                        l.remaining.to_string(),
                    ),
                    (format!("x-ratelimit-reset-{dim}"), format!("{secs}s")),
                ] {
                    if let (Ok(n), Ok(v)) =
                        (HeaderName::try_from(name), HeaderValue::try_from(value))
                    {
                        headers.push((n, v));
                    }
                }
                AuthFailure {
                    status: StatusCode::TOO_MANY_REQUESTS,
                    kind: ErrorKind::RateLimited,
                    message: e.to_string(),
                    challenge: None,
                    headers,
                }
            }
            LimitError::Unavailable(_) => AuthFailure {
                status: StatusCode::SERVICE_UNAVAILABLE,
                kind: ErrorKind::UpstreamUnavailable,
                message: format!("{e}; retry later"),
                challenge: None,
                headers: vec![(RETRY_AFTER, HeaderValue::from_static("1"))],
            },
        }
    }

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
            headers: Vec::new(),
        }
    }

    fn bad_request(message: String) -> AuthFailure {
        AuthFailure {
            status: StatusCode::BAD_REQUEST,
            kind: ErrorKind::InvalidRequest,
            message,
            challenge: None,
            headers: Vec::new(),
        }
    }
}

/// Query parameters that carry credentials in the wild; any of them is refused.
const URL_CREDENTIALS: [&str; 5] = ["access_token", "token", "api_key", "apikey", "key"];

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
        // Anthropic's SDKs send the key as `x-api-key`.
        return match headers.get("x-api-key").map(|v| v.to_str()) {
            None => Ok(Credentials::None),
            Some(Ok(key)) if !key.trim().is_empty() => Ok(Credentials::Bearer(key.trim())),
            Some(_) => Err(AuthFailure::unauthorized(
                Some("invalid_request"),
                "the x-api-key header is empty or not visible ASCII".into(),
            )),
        };
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
    principal_for(auth, headers, uri, None).await
}

/// [`principal`] at a protected resource (`resource`: its URI, an accepted token audience).
async fn principal_for(
    auth: &Authenticator,
    headers: &HeaderMap,
    uri: &Uri,
    resource: Option<&str>,
) -> Result<Arc<Principal>, AuthFailure> {
    let credentials = credentials(headers, uri)?;
    match auth.authenticate_for(credentials, resource).await {
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
            headers: vec![(RETRY_AFTER, HeaderValue::from_static("5"))],
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
        Authenticator::new(
            Some(&serde_json::from_value(serde_json::json!({"allow_anonymous": true})).unwrap()),
            &|_| Err("no files".into()),
            Arc::new(NoFetch),
        )
        .unwrap()
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
