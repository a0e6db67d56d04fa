//! Authentication: credentials → [`Principal`], the same for both faces.
//!
//! JWT/OIDC bearer tokens are accepted from the issuers under `auth.jwt`: the token's `iss`
//! picks the issuer (exact match, trailing slash included), its `alg` must be on that issuer's
//! allowlist (`none` and shared-secret `HS*` algorithms are never accepted, so an RSA public key
//! can never be used as an HMAC secret), its `kid` picks the key from the issuer's JWKS (a local
//! file, or a URL fetched through the [`JwksSource`] port, cached, and fetched again at most every
//! [`JWKS_REFRESH_INTERVAL`] when a token names an unknown key), and `exp` (required), `nbf`,
//! `iss` and `aud` are checked with the configured clock skew. Claims then map onto the
//! principal: subject, roles (a list or a space-separated string), org, team and project.
//!
//! mcplane API keys (`mcp_<id>_<secret>`, see [`crate::keys`]) are accepted too when `auth:`
//! does not say `api_keys: false`; they are checked against an in-memory snapshot.
//!
//! Errors ([`AuthError`]) say what was wrong without echoing the token.

use crate::keys::{self, KeyError, KeyScope, KeySet};
use arc_swap::ArcSwap;
use async_trait::async_trait;
use base64::Engine;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mcplane_config::{AuthSpec, JwtAlgorithm, JwtIssuerSpec, OAuthResourceSpec};
use mcplane_types::{AuthMethod, Principal, PrincipalKind, Tenancy};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Shortest time between two fetches of one issuer's JWKS (an unknown `kid` asks for one).
pub const JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// How long a fetched JWKS is used before it is fetched again.
pub const JWKS_TTL: Duration = Duration::from_secs(3600);
/// Longest accepted token (bytes); longer ones are refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Where JWKS documents come from (the binary fetches them over HTTP, through the egress rules).
#[async_trait]
pub trait JwksSource: Send + Sync {
    /// The JWKS document at `url`, as text; the error says why not (no secrets).
    async fn fetch(&self, url: &str) -> Result<String, String>;
}

/// Why a request is not authenticated. The message is safe to show the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credentials where they are required.
    #[error(
        "authentication required: send `Authorization: Bearer <token>` (a JWT from a trusted issuer)"
    )]
    Missing,
    /// The credentials could not be read.
    #[error("malformed credentials: {0}")]
    Malformed(String),
    /// The token was rejected.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// The issuer's keys could not be fetched.
    #[error("cannot verify the token now: the issuer's keys are unavailable ({0}); retry later")]
    KeysUnavailable(String),
}

/// A configuration that cannot be used to authenticate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct AuthConfigError {
    /// Key path (`auth.jwt[0].jwks_file`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// The credentials a request carries.
#[derive(Debug, Clone, Copy)]
pub enum Credentials<'a> {
    /// None at all.
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(&'a str),
}

struct Keys {
    set: JwkSet,
    fetched: Option<Instant>,
}

struct Issuer {
    spec: JwtIssuerSpec,
    algorithms: Vec<Algorithm>,
    leeway: u64,
    /// `None` for a `jwks_file` issuer (loaded once).
    url: Option<String>,
    keys: RwLock<Keys>,
    refreshing: Mutex<()>,
}

/// Turns credentials into principals; see the module docs.
pub struct Authenticator {
    issuers: Vec<Issuer>,
    /// `auth.oauth`: mcplane as an OAuth protected resource.
    oauth: Option<OAuthResourceSpec>,
    /// mcplane API keys accepted (`auth.api_keys`), from the latest snapshot.
    api_keys: bool,
    keys: ArcSwap<KeySet>,
    allow_anonymous: bool,
    /// No `auth:` section: nobody is authenticated, credentials are ignored.
    open: bool,
    source: Arc<dyn JwksSource>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field(
                "issuers",
                &self
                    .issuers
                    .iter()
                    .map(|i| &i.spec.issuer)
                    .collect::<Vec<_>>(),
            )
            .field("allow_anonymous", &self.allow_anonymous)
            .finish()
    }
}

fn algorithm(a: JwtAlgorithm) -> Algorithm {
    match a {
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::RS384 => Algorithm::RS384,
        JwtAlgorithm::RS512 => Algorithm::RS512,
        JwtAlgorithm::PS256 => Algorithm::PS256,
        JwtAlgorithm::PS384 => Algorithm::PS384,
        JwtAlgorithm::PS512 => Algorithm::PS512,
        JwtAlgorithm::ES256 => Algorithm::ES256,
        JwtAlgorithm::ES384 => Algorithm::ES384,
        JwtAlgorithm::EdDSA => Algorithm::EdDSA,
    }
}

impl Authenticator {
    /// Everyone is anonymous and credentials are ignored (no `auth:` section; clients such as
    /// the OpenAI SDK always send some key).
    pub fn open(source: Arc<dyn JwksSource>) -> Authenticator {
        Authenticator {
            issuers: Vec::new(),
            oauth: None,
            api_keys: false,
            keys: ArcSwap::default(),
            allow_anonymous: true,
            open: true,
            source,
        }
    }

    /// An authenticator for `spec` (`None`: no `auth:` section, everyone is anonymous).
    /// `read_file` reads `jwks_file`s; `source` fetches `jwks_url`s when first needed.
    pub fn new(
        spec: Option<&AuthSpec>,
        read_file: &dyn Fn(&Path) -> Result<String, String>,
        source: Arc<dyn JwksSource>,
    ) -> Result<Authenticator, AuthConfigError> {
        let Some(spec) = spec else {
            return Ok(Authenticator::open(source));
        };
        let mut issuers = Vec::new();
        for (i, j) in spec.jwt.iter().flatten().enumerate() {
            let at = format!("auth.jwt[{i}]");
            let algorithms = j
                .algorithms
                .clone()
                .unwrap_or_else(|| {
                    vec![
                        JwtAlgorithm::RS256,
                        JwtAlgorithm::ES256,
                        JwtAlgorithm::EdDSA,
                    ]
                })
                .into_iter()
                .map(algorithm)
                .collect();
            let (url, set, fetched) = match (&j.jwks_url, &j.jwks_file) {
                (Some(url), _) => (Some(url.clone()), JwkSet { keys: Vec::new() }, None),
                (None, Some(path)) => {
                    let text = read_file(path).map_err(|why| AuthConfigError {
                        path: format!("{at}.jwks_file"),
                        message: format!("cannot read {}: {why}", path.display()),
                    })?;
                    let set =
                        serde_json::from_str::<JwkSet>(&text).map_err(|e| AuthConfigError {
                            path: format!("{at}.jwks_file"),
                            message: format!("{} is not a JWKS document: {e}", path.display()),
                        })?;
                    (None, set, Some(Instant::now()))
                }
                (None, None) => {
                    return Err(AuthConfigError {
                        path: at,
                        message: "set jwks_url or jwks_file".into(),
                    });
                }
            };
            issuers.push(Issuer {
                leeway: j.leeway.map_or(60, |d| d.0.as_secs()),
                spec: j.clone(),
                algorithms,
                url,
                keys: RwLock::new(Keys { set, fetched }),
                refreshing: Mutex::new(()),
            });
        }
        Ok(Authenticator {
            issuers,
            oauth: spec.oauth.clone(),
            api_keys: spec.api_keys != Some(false),
            keys: ArcSwap::default(),
            allow_anonymous: spec.allow_anonymous.unwrap_or(false),
            open: false,
            source,
        })
    }

    /// `auth.oauth`, when mcplane presents itself as an OAuth protected resource (RFC 9728).
    pub fn oauth(&self) -> Option<&OAuthResourceSpec> {
        self.oauth.as_ref()
    }

    /// Whether mcplane API keys are accepted (an `auth:` section without `api_keys: false`).
    pub fn accepts_api_keys(&self) -> bool {
        self.api_keys
    }

    /// Replaces the API keys accepted (the binary refreshes them from the store).
    pub fn replace_keys(&self, keys: KeySet) {
        self.keys.store(Arc::new(keys));
    }

    /// Whether requests without credentials are let through as the anonymous principal.
    pub fn allows_anonymous(&self) -> bool {
        self.allow_anonymous
    }

    /// The principal behind `credentials`.
    pub async fn authenticate(&self, credentials: Credentials<'_>) -> Result<Principal, AuthError> {
        self.authenticate_for(credentials, None).await
    }

    /// [`Authenticator::authenticate`] for a protected resource: a JWT may also carry the
    /// resource's own URI as its audience (RFC 8707 audience binding: a token issued for one MCP
    /// endpoint is refused at another).
    pub async fn authenticate_for(
        &self,
        credentials: Credentials<'_>,
        resource: Option<&str>,
    ) -> Result<Principal, AuthError> {
        match credentials {
            _ if self.open => Ok(Principal::anonymous()),
            Credentials::None if self.allow_anonymous => Ok(Principal::anonymous()),
            Credentials::None => Err(AuthError::Missing),
            Credentials::Bearer(token) if self.api_keys && token.starts_with(keys::PREFIX) => {
                self.api_key(token)
            }
            Credentials::Bearer(token) => self.jwt(token, resource).await,
        }
    }

    fn api_key(&self, token: &str) -> Result<Principal, AuthError> {
        match self
            .keys
            .load()
            .verify(token, mcplane_types::clock::now_ms())
        {
            Ok((mut principal, scope)) => {
                scope_into(&mut principal, &scope);
                Ok(principal)
            }
            Err(KeyError::Malformed) => Err(AuthError::InvalidToken(
                "not an mcplane API key (they read mcp_<id>_<secret>)".into(),
            )),
            Err(KeyError::Unknown) => {
                Err(AuthError::InvalidToken("unknown or revoked API key".into()))
            }
            Err(KeyError::Expired) => {
                Err(AuthError::InvalidToken("the API key has expired".into()))
            }
        }
    }

    async fn jwt(&self, token: &str, resource: Option<&str>) -> Result<Principal, AuthError> {
        let invalid = |m: &str| AuthError::InvalidToken(m.to_string());
        if token.len() > MAX_TOKEN_LEN {
            return Err(invalid("longer than 16 KiB"));
        }
        if self.issuers.is_empty() {
            return Err(invalid(
                "no token issuer is trusted here (auth.jwt is empty)",
            ));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| invalid("not a JWT (expected three base64url parts)"))?;
        let unverified =
            unverified_claims(token).ok_or_else(|| invalid("its claims are not JSON"))?;
        for time in ["exp", "nbf", "iat"] {
            if unverified.get(time).is_some_and(|v| !v.is_number()) {
                return Err(AuthError::InvalidToken(format!(
                    "claim `{time}` must be a number (seconds since the epoch)"
                )));
            }
        }
        let iss = unverified
            .get("iss")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("it has no `iss` claim"))?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.spec.issuer == iss)
            .ok_or_else(|| AuthError::InvalidToken(format!("issuer {iss:?} is not trusted")))?;
        if !issuer.algorithms.contains(&header.alg) {
            return Err(AuthError::InvalidToken(format!(
                "algorithm {:?} is not accepted from this issuer",
                header.alg
            )));
        }
        let jwk = self.key(issuer, header.kid.as_deref(), header.alg).await?;
        let key =
            DecodingKey::from_jwk(&jwk).map_err(|_| invalid("the issuer's key is unusable"))?;
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.leeway = issuer.leeway;
        validation.validate_nbf = true;
        validation.set_issuer(&[&issuer.spec.issuer]);
        match resource {
            Some(r) => validation.set_audience(&[issuer.spec.audience.as_str(), r]),
            None => validation.set_audience(&[&issuer.spec.audience]),
        }
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key, &validation)
            .map_err(|e| AuthError::InvalidToken(describe(e.kind())))?;
        Ok(self.principal(issuer, &data.claims))
    }

    /// The key a token names, fetching the issuer's JWKS when needed. Lookups share a read
    /// lock; one refresh at a time per issuer.
    async fn key(
        &self,
        issuer: &Issuer,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Jwk, AuthError> {
        let look = || {
            let keys = issuer.keys.read().unwrap_or_else(PoisonError::into_inner);
            let stale = keys.fetched.is_none_or(|t| t.elapsed() >= JWKS_TTL);
            let due = keys
                .fetched
                .is_none_or(|t| t.elapsed() >= JWKS_REFRESH_INTERVAL);
            (pick(&keys.set, kid, alg), stale, due)
        };
        let (found, stale, _) = look();
        let Some(url) = issuer.url.as_deref() else {
            return found.ok_or_else(|| unknown_key(kid));
        };
        if let Some(k) = found
            && !stale
        {
            return Ok(k);
        }
        let _one_at_a_time = issuer.refreshing.lock().await;
        // Another request may have refreshed while this one waited.
        let (found, stale, due) = look();
        match found {
            Some(k) if !stale => return Ok(k),
            // An unknown key: the issuer may have rotated; look again, not too often.
            None if !stale && !due => return Err(unknown_key(kid)),
            _ => {}
        }
        let fetched = self.source.fetch(url).await;
        let mut keys = issuer.keys.write().unwrap_or_else(PoisonError::into_inner);
        keys.fetched = Some(Instant::now());
        let text = fetched.map_err(AuthError::KeysUnavailable)?;
        keys.set = serde_json::from_str::<JwkSet>(&text)
            .map_err(|_| AuthError::KeysUnavailable("the JWKS document is not valid".into()))?;
        pick(&keys.set, kid, alg).ok_or_else(|| unknown_key(kid))
    }

    fn principal(&self, issuer: &Issuer, claims: &serde_json::Map<String, Value>) -> Principal {
        let map = issuer.spec.claims.clone().unwrap_or_default();
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_string);
        let subject = text(map.subject.as_deref().unwrap_or("sub")).unwrap_or_default();
        let roles: BTreeSet<String> = match claims.get(map.roles.as_deref().unwrap_or("roles")) {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
            _ => BTreeSet::new(),
        };
        let level = |claim: &Option<String>| claim.as_deref().and_then(text);
        let attributes: BTreeMap<String, Value> = claims
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "exp" | "nbf" | "iat" | "jti"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Principal {
            id: subject,
            kind: PrincipalKind::User,
            tenancy: Tenancy {
                org: level(&map.org),
                team: level(&map.team),
                project: level(&map.project),
            },
            roles,
            attributes,
            auth: AuthMethod::Jwt {
                issuer: issuer.spec.issuer.clone(),
            },
        }
    }
}

/// The claims before verification: only to pick the issuer whose key then verifies the token,
/// and to explain malformed time claims.
fn unverified_claims(token: &str) -> Option<serde_json::Map<String, Value>> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn unknown_key(kid: Option<&str>) -> AuthError {
    AuthError::InvalidToken(match kid {
        Some(kid) => format!("signing key {kid:?} is not among the issuer's keys"),
        None => "it names no key (`kid`) and the issuer has several".into(),
    })
}

/// The key for `kid` (or the only key usable with `alg` when the token names none).
fn pick(set: &JwkSet, kid: Option<&str>, alg: Algorithm) -> Option<Jwk> {
    match kid {
        Some(kid) => set.find(kid).cloned(),
        None => {
            let usable: Vec<&Jwk> = set
                .keys
                .iter()
                .filter(|k| DecodingKey::from_jwk(k).is_ok_and(|_| family_matches(k, alg)))
                .collect();
            match usable.as_slice() {
                [only] => Some((*only).clone()),
                _ => None,
            }
        }
    }
}

fn family_matches(jwk: &Jwk, alg: Algorithm) -> bool {
    use jsonwebtoken::jwk::AlgorithmParameters as P;
    matches!(
        (&jwk.algorithm, alg),
        (
            P::RSA(_),
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        ) | (P::EllipticCurve(_), Algorithm::ES256 | Algorithm::ES384)
            | (P::OctetKeyPair(_), Algorithm::EdDSA)
    )
}

/// A caller-safe description of a rejection.
fn describe(kind: &jsonwebtoken::errors::ErrorKind) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::ExpiredSignature => "it has expired".into(),
        K::ImmatureSignature => "it is not valid yet (`nbf`)".into(),
        K::InvalidIssuer => "wrong issuer".into(),
        K::InvalidAudience => "it is not meant for this service (`aud`)".into(),
        K::InvalidSignature => "bad signature".into(),
        K::MissingRequiredClaim(c) => format!("it has no `{c}` claim"),
        K::InvalidClaimFormat(c) => format!("claim `{c}` has the wrong type"),
        K::InvalidAlgorithm | K::MissingAlgorithm => "its algorithm does not match its key".into(),
        _ => "it could not be verified".into(),
    }
}

/// Attribute names under which a key's scope travels with its principal (policy can read them).
pub const KEY_MODELS: &str = "mcplane.key.models";
/// See [`KEY_MODELS`].
pub const KEY_TOOLS: &str = "mcplane.key.tools";

fn scope_into(principal: &mut Principal, scope: &KeyScope) {
    if let Some(m) = &scope.models {
        principal
            .attributes
            .insert(KEY_MODELS.into(), serde_json::json!(m));
    }
    if let Some(t) = &scope.tools {
        principal
            .attributes
            .insert(KEY_TOOLS.into(), serde_json::json!(t));
    }
}

/// The scope of the API key `principal` authenticated with (none for other principals).
pub fn scope_of(principal: &Principal) -> KeyScope {
    let list = |name: &str| {
        principal
            .attributes
            .get(name)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
    };
    KeyScope {
        models: list(KEY_MODELS),
        tools: list(KEY_TOOLS),
    }
}
