//! Edge checks applied to every HTTP request before any route runs: DNS-rebinding protection
//! (`Origin` and `Host` must be allowed, else 403) and the total header size limit (431).
//!
//! Empty allow-lists mean loopback only (`localhost`, `127.0.0.1`, `[::1]`, any port); `"*"`
//! allows anything. A request without `Origin` (not from a browser) passes the origin check.
//! Rejections carry a JSON-RPC error body (id null) that names the offending header.

use crate::reply::Rejection;
use axum::http::header::{HOST, ORIGIN};
use axum::http::{HeaderMap, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::future::{Either, Ready, ready};
use mcplane_config::ServerConfig;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

#[derive(Debug, Clone)]
enum Allow {
    /// Loopback names only, any port.
    Loopback,
    /// Anything.
    Any,
    /// Exact (normalized) entries.
    List(Vec<String>),
}

/// What the edge accepts: origins, hosts and the header size limit.
#[derive(Debug, Clone)]
pub struct EdgePolicy {
    origins: Allow,
    hosts: Allow,
    max_header_bytes: usize,
}

/// Normalizes an origin to `scheme://host[:port]` (default port dropped, host lowercased).
fn normalize_origin(origin: &str) -> Option<String> {
    let url = url::Url::parse(origin.trim()).ok()?;
    let origin = url.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// Splits `host[:port]` (IPv6 in brackets) into the lowercased host and the optional port.
fn split_host(authority: &str) -> (String, Option<&str>) {
    let authority = authority.trim();
    let (host, port) = if authority.starts_with('[') {
        match authority.find(']') {
            Some(end) => (&authority[..=end], authority[end + 1..].strip_prefix(':')),
            None => (authority, None),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    (host.to_ascii_lowercase(), port)
}

impl EdgePolicy {
    /// A policy from allow-lists (see the module docs) and a header size limit in bytes.
    pub fn new(
        allowed_origins: &[String],
        allowed_hosts: &[String],
        max_header_bytes: usize,
    ) -> EdgePolicy {
        let origins = if allowed_origins.iter().any(|o| o.trim() == "*") {
            Allow::Any
        } else if allowed_origins.is_empty() {
            Allow::Loopback
        } else {
            Allow::List(
                allowed_origins
                    .iter()
                    .filter_map(|o| normalize_origin(o))
                    .collect(),
            )
        };
        let hosts = if allowed_hosts.iter().any(|h| h.trim() == "*") {
            Allow::Any
        } else if allowed_hosts.is_empty() {
            Allow::Loopback
        } else {
            Allow::List(
                allowed_hosts
                    .iter()
                    .map(|h| h.trim().to_ascii_lowercase())
                    .collect(),
            )
        };
        EdgePolicy {
            origins,
            hosts,
            max_header_bytes,
        }
    }

    /// The policy configured in `server:`.
    pub fn from_config(config: &ServerConfig) -> EdgePolicy {
        EdgePolicy::new(
            &config.allowed_origins,
            &config.allowed_hosts,
            config.max_header_bytes,
        )
    }

    /// Whether a browser `Origin` may call mcplane.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        match &self.origins {
            Allow::Any => true,
            Allow::Loopback => url::Url::parse(origin.trim()).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some_and(|h| LOOPBACK_HOSTS.contains(&h))
            }),
            Allow::List(list) => normalize_origin(origin).is_some_and(|o| list.contains(&o)),
        }
    }

    /// Whether a `Host` (`host[:port]`) is one mcplane answers to. An entry without a port
    /// allows that host on any port.
    pub fn host_allowed(&self, authority: &str) -> bool {
        let (host, _) = split_host(authority);
        match &self.hosts {
            Allow::Any => true,
            Allow::Loopback => LOOPBACK_HOSTS.contains(&host.as_str()),
            Allow::List(list) => {
                let full = authority.trim().to_ascii_lowercase();
                list.iter().any(|entry| *entry == full || *entry == host)
            }
        }
    }

    /// Runs every check; the rejection to send on failure.
    fn check(&self, headers: &HeaderMap, uri: &Uri) -> Result<(), Rejection> {
        let header_bytes: usize = headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum();
        if header_bytes > self.max_header_bytes {
            return Err(Rejection::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!(
                    "request headers exceed the {}-byte limit",
                    self.max_header_bytes
                ),
            ));
        }
        let host = match headers.get(HOST) {
            Some(h) => h.to_str().ok(),
            None => uri.authority().map(|a| a.as_str()),
        };
        if !host.is_some_and(|h| self.host_allowed(h)) {
            return Err(Rejection::new(
                StatusCode::FORBIDDEN,
                "Host not allowed: add it to server.allowed_hosts to accept requests for it",
            ));
        }
        if let Some(origin) = headers.get(ORIGIN)
            && !origin.to_str().is_ok_and(|o| self.origin_allowed(o))
        {
            return Err(Rejection::new(
                StatusCode::FORBIDDEN,
                "Origin not allowed: add it to server.allowed_origins to accept browser \
                 requests from it",
            ));
        }
        Ok(())
    }
}

/// A tower layer enforcing an [`EdgePolicy`] on every request.
#[derive(Debug, Clone)]
pub struct EdgeLayer {
    policy: Arc<EdgePolicy>,
}

impl EdgeLayer {
    /// The layer for `policy`.
    pub fn new(policy: EdgePolicy) -> EdgeLayer {
        EdgeLayer {
            policy: Arc::new(policy),
        }
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// The service made by [`EdgeLayer`].
#[derive(Debug, Clone)]
pub struct Edge<S> {
    inner: S,
    policy: Arc<EdgePolicy>,
}

impl<S, B> Service<Request<B>> for Edge<S>
where
    S: Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match self.policy.check(req.headers(), req.uri()) {
            Ok(()) => Either::Right(self.inner.call(req)),
            Err(rejection) => {
                tracing::debug!(status = %rejection.status, uri = %req.uri(), "request rejected at the edge");
                Either::Left(ready(Ok(rejection.into_response())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn loopback_defaults() {
        let p = EdgePolicy::new(&[], &[], 16 * 1024);
        assert!(p.host_allowed("localhost"));
        assert!(p.host_allowed("127.0.0.1:4000"));
        assert!(p.host_allowed("[::1]:8080"));
        assert!(p.host_allowed("LOCALHOST:1"));
        assert!(!p.host_allowed("evil.example"));
        assert!(!p.host_allowed("127.0.0.1.evil.example:80"));
        assert!(p.origin_allowed("http://localhost:3000"));
        assert!(p.origin_allowed("https://127.0.0.1"));
        assert!(p.origin_allowed("http://[::1]:5173"));
        assert!(!p.origin_allowed("https://evil.example"));
        assert!(!p.origin_allowed("null"));
        assert!(!p.origin_allowed("file:///etc"));
    }

    #[test]
    fn explicit_lists_and_wildcards() {
        let p = EdgePolicy::new(
            &list(&["https://app.example", "http://tool.example:8080"]),
            &list(&["gw.example", "other.example:9000"]),
            16 * 1024,
        );
        assert!(p.origin_allowed("https://app.example"));
        assert!(p.origin_allowed("https://APP.example:443"));
        assert!(!p.origin_allowed("http://app.example"));
        assert!(p.origin_allowed("http://tool.example:8080"));
        assert!(!p.origin_allowed("http://tool.example"));
        assert!(!p.origin_allowed("http://localhost"));
        assert!(p.host_allowed("gw.example"));
        assert!(p.host_allowed("gw.example:443"));
        assert!(p.host_allowed("other.example:9000"));
        assert!(!p.host_allowed("other.example:9001"));
        assert!(!p.host_allowed("localhost"));
        let any = EdgePolicy::new(&list(&["*"]), &list(&["*"]), 1024);
        assert!(any.origin_allowed("null"));
        assert!(any.host_allowed("anything:1"));
    }

    #[test]
    fn header_limit() {
        let p = EdgePolicy::new(&[], &[], 1024);
        let mut h = HeaderMap::new();
        h.insert(HOST, "localhost".parse().unwrap());
        assert!(p.check(&h, &Uri::from_static("/")).is_ok());
        h.insert("x-big", "a".repeat(2000).parse().unwrap());
        let r = p.check(&h, &Uri::from_static("/")).unwrap_err();
        assert_eq!(r.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
}
