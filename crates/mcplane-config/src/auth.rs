//! The `auth` section: how callers prove who they are (mcplane API keys, JWT/OIDC issuers) and
//! how mcplane presents itself as an OAuth protected resource to MCP clients.

use crate::validate::{field, http_url, index, non_empty, unique};
use crate::{ConfigError, HumanDuration};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// `auth:` as written. Not active yet.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthSpec {
    /// Accept API keys issued by mcplane's admin API/CLI (stored hashed, shown once).
    #[schemars(extend("default" = true))]
    pub api_keys: Option<bool>,
    /// Trusted JWT/OIDC issuers; a bearer token signed by any of them is accepted.
    pub jwt: Option<Vec<JwtIssuerSpec>>,
    /// OAuth protected-resource metadata served to MCP clients (2025-06-18 and later).
    pub oauth: Option<OAuthResourceSpec>,
    /// Let requests without credentials through as an anonymous principal (local development).
    #[schemars(extend("default" = false))]
    pub allow_anonymous: Option<bool>,
}

/// Signature algorithms a JWT may use. `none` and shared-secret (HS*) algorithms are never
/// accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum JwtAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// ECDSA P-384 with SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
}

/// One trusted issuer under `auth.jwt`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtIssuerSpec {
    /// The exact `iss` claim (compared byte for byte, trailing slash included).
    pub issuer: String,
    /// The `aud` claim tokens must carry.
    pub audience: String,
    /// Where the issuer's JWKS is fetched (cached; refreshed on an unknown `kid`).
    pub jwks_url: Option<String>,
    /// A local JWKS file instead of `jwks_url` (offline and air-gapped setups).
    pub jwks_file: Option<PathBuf>,
    /// Algorithms accepted from this issuer.
    #[schemars(extend("default" = ["RS256", "ES256", "EdDSA"]))]
    pub algorithms: Option<Vec<JwtAlgorithm>>,
    /// Clock skew tolerated on `exp` and `nbf`.
    #[schemars(extend("default" = "60s"))]
    pub leeway: Option<HumanDuration>,
    /// How claims map onto the principal.
    pub claims: Option<ClaimsSpec>,
}

/// Which claims carry the principal's identity and place in the tenant tree.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimsSpec {
    /// Claim naming the user or service.
    #[schemars(extend("default" = "sub"))]
    pub subject: Option<String>,
    /// Claim holding a list of roles.
    #[schemars(extend("default" = "roles"))]
    pub roles: Option<String>,
    /// Claim naming the org.
    pub org: Option<String>,
    /// Claim naming the team.
    pub team: Option<String>,
    /// Claim naming the project.
    pub project: Option<String>,
}

/// `auth.oauth`: mcplane as an OAuth 2.1 resource server (RFC 9728 metadata).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuthResourceSpec {
    /// The canonical URL clients use to reach mcplane; the resource (and token audience) of
    /// `/mcp` and of each `/mcp/{virtual_server}` is derived from it.
    pub resource: String,
    /// Authorization servers that issue tokens for mcplane.
    pub authorization_servers: Vec<String>,
    /// Scopes advertised in the metadata.
    pub scopes: Option<Vec<String>>,
}

impl AuthSpec {
    pub(crate) fn validate(&self, at: &str) -> Result<(), ConfigError> {
        let mut issuers = BTreeSet::new();
        for (i, j) in self.jwt.iter().flatten().enumerate() {
            let at = index(&field(at, "jwt"), i);
            non_empty(&field(&at, "issuer"), &j.issuer)?;
            unique(&mut issuers, &field(&at, "issuer"), &j.issuer, "issuer")?;
            non_empty(&field(&at, "audience"), &j.audience)?;
            match (&j.jwks_url, &j.jwks_file) {
                (Some(u), None) => {
                    http_url(&field(&at, "jwks_url"), u)?;
                }
                (None, Some(_)) => {}
                (Some(_), Some(_)) => {
                    return Err(ConfigError::invalid(
                        field(&at, "jwks_file"),
                        "set either jwks_url or jwks_file, not both",
                    ));
                }
                (None, None) => {
                    return Err(ConfigError::invalid(
                        at,
                        "missing field `jwks_url` (or `jwks_file`): where the issuer's keys come from",
                    ));
                }
            }
            if j.algorithms.as_ref().is_some_and(Vec::is_empty) {
                return Err(ConfigError::invalid(
                    field(&at, "algorithms"),
                    "must list at least one algorithm",
                ));
            }
        }
        if let Some(o) = &self.oauth {
            let at = field(at, "oauth");
            http_url(&field(&at, "resource"), &o.resource)?;
            if o.authorization_servers.is_empty() {
                return Err(ConfigError::invalid(
                    field(&at, "authorization_servers"),
                    "must list at least one authorization server",
                ));
            }
            for (i, s) in o.authorization_servers.iter().enumerate() {
                http_url(&index(&field(&at, "authorization_servers"), i), s)?;
            }
        }
        Ok(())
    }
}
