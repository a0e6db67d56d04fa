//! mcplane API keys: high-entropy bearer secrets issued by `mcplane keys create`, shown once,
//! stored only as a SHA-256 hash, checked in constant time.
//!
//! A key reads `mcp_<id>_<secret>`: `id` (10 lowercase letters and digits) names the key in
//! lists, logs and revocations; `secret` is 32 random bytes in base64url. The authenticator keeps
//! a [`KeySet`] snapshot in memory (the store is never asked on the request path; the binary
//! refreshes the snapshot, so a revocation takes effect within its refresh interval on every
//! replica). A key carries its principal (id, kind, tenant, roles) and may be narrowed to some
//! models and tools ([`KeyScope`]), which the governance enforces before policy.

use base64::Engine;
use mcplane_types::{AuthMethod, Principal};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The prefix every mcplane API key starts with.
pub const PREFIX: &str = "mcp_";
const ID_LEN: usize = 10;
const ID_ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyz23456789";

/// What a key may be used for beyond its principal's policy (`None`: no narrowing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyScope {
    /// Model ids or aliases it may call (exact names).
    pub models: Option<Vec<String>>,
    /// Tools it may call, as `SERVER/TOOL` globs (`*` matches any run of characters).
    pub tools: Option<Vec<String>>,
}

impl KeyScope {
    /// Whether model `model` is within the scope.
    pub fn allows_model(&self, model: &str) -> bool {
        self.models
            .as_ref()
            .is_none_or(|m| m.iter().any(|x| x == model))
    }

    /// Whether tool `server/tool` is within the scope.
    pub fn allows_tool(&self, server: &str, tool: &str) -> bool {
        let name = format!("{server}/{tool}");
        self.tools
            .as_ref()
            .is_none_or(|t| t.iter().any(|g| glob(g, &name)))
    }
}

/// `*`-only glob matching.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(tail) = text.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len())
                .filter(|i| tail.is_char_boundary(*i))
                .any(|i| glob(rest, &tail[i..]))
        }
    }
}

/// A key as the authenticator holds it.
#[derive(Debug, Clone)]
pub struct ApiKey {
    /// Its public id.
    pub id: String,
    /// SHA-256 of its secret.
    pub hash: [u8; 32],
    /// Who it authenticates as (`auth` is set to this key).
    pub principal: Principal,
    /// Expiry (milliseconds since the Unix epoch).
    pub expires_at_ms: Option<i64>,
    /// Narrowing.
    pub scope: KeyScope,
}

/// A freshly generated key: the token to hand out once, and what to store.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// `mcp_<id>_<secret>`: shown once, never stored.
    pub token: String,
    /// The public id.
    pub id: String,
    /// SHA-256 of the secret, hex.
    pub hash_hex: String,
}

/// Generates a key from the operating system's random source.
pub fn generate() -> NewKey {
    let mut rng = rand::rng();
    let id: String = (0..ID_LEN)
        .map(|_| ID_ALPHABET[(rng.next_u32() as usize) % ID_ALPHABET.len()] as char)
        .collect();
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut secret);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
    NewKey {
        token: format!("{PREFIX}{id}_{secret}"),
        hash_hex: hex::encode(Sha256::digest(secret.as_bytes())),
        id,
    }
}

/// Splits a presented token into (id, secret) when it has the key shape.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let id_ok = id.len() == ID_LEN && id.bytes().all(|b| ID_ALPHABET.contains(&b));
    let secret_ok = (32..=64).contains(&secret.len())
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (id_ok && secret_ok).then_some((id, secret))
}

/// Constant-time equality of two hashes.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The keys the authenticator accepts, by id.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, ApiKey>,
}

/// Why a key was refused (safe to show).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// Not an mcplane key shape.
    Malformed,
    /// No such key, revoked, or the secret does not match (one answer for all three).
    Unknown,
    /// Past its expiry.
    Expired,
}

impl KeySet {
    /// A set of `keys` (active ones; the store leaves revoked keys out).
    pub fn new(keys: impl IntoIterator<Item = ApiKey>) -> KeySet {
        KeySet {
            keys: keys.into_iter().map(|k| (k.id.clone(), k)).collect(),
        }
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The principal behind `token` at `now_ms`, with its scope.
    pub fn verify(&self, token: &str, now_ms: i64) -> Result<(Principal, KeyScope), KeyError> {
        let (id, secret) = parse(token).ok_or(KeyError::Malformed)?;
        let presented: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let key = self.keys.get(id).ok_or(KeyError::Unknown)?;
        if !same(&presented, &key.hash) {
            return Err(KeyError::Unknown);
        }
        if key.expires_at_ms.is_some_and(|e| e <= now_ms) {
            return Err(KeyError::Expired);
        }
        let mut principal = key.principal.clone();
        principal.auth = AuthMethod::ApiKey {
            key_id: key.id.clone(),
        };
        Ok((principal, key.scope.clone()))
    }
}

/// A stored hash (hex) as bytes; `None` when it is not 64 hex digits.
pub fn hash_from_hex(hex_hash: &str) -> Option<[u8; 32]> {
    hex::decode(hex_hash).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_with(new: &NewKey, expires_at_ms: Option<i64>) -> KeySet {
        let mut principal = Principal::anonymous();
        principal.id = "svc-billing".into();
        KeySet::new([ApiKey {
            id: new.id.clone(),
            hash: hash_from_hex(&new.hash_hex).unwrap(),
            principal,
            expires_at_ms,
            scope: KeyScope::default(),
        }])
    }

    #[test]
    fn a_generated_key_verifies_and_nothing_else_does() {
        let k = generate();
        assert!(k.token.starts_with("mcp_") && k.token.len() > 50);
        let set = set_with(&k, None);
        let (p, _) = set.verify(&k.token, 0).unwrap();
        assert_eq!(p.id, "svc-billing");
        assert_eq!(
            p.auth,
            AuthMethod::ApiKey {
                key_id: k.id.clone()
            }
        );
        // One character off, another key, another id: all the same answer.
        let mut wrong = k.token.clone();
        let last = wrong.pop().unwrap();
        wrong.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(set.verify(&wrong, 0).unwrap_err(), KeyError::Unknown);
        assert_eq!(
            set.verify(&generate().token, 0).unwrap_err(),
            KeyError::Unknown
        );
        for hostile in [
            "mcp_' OR 1=1 --_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "mcp_abcdefghij_short",
            "mcp_abcdefghij",
            "sk-openai-style",
            "",
            "mcp_abcdefghij_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa;DROP TABLE api_keys",
        ] {
            assert_eq!(
                set.verify(hostile, 0).unwrap_err(),
                KeyError::Malformed,
                "{hostile}"
            );
        }
    }

    #[test]
    fn expired_keys_are_refused() {
        let k = generate();
        let set = set_with(&k, Some(1_000));
        assert!(set.verify(&k.token, 999).is_ok());
        assert_eq!(set.verify(&k.token, 1_000).unwrap_err(), KeyError::Expired);
    }

    #[test]
    fn scopes_narrow_models_and_tools() {
        let s = KeyScope {
            models: Some(vec!["gpt-4o".into()]),
            tools: Some(vec!["github/list_*".into(), "files/read".into()]),
        };
        assert!(s.allows_model("gpt-4o") && !s.allows_model("gpt-4o-mini"));
        assert!(s.allows_tool("github", "list_issues"));
        assert!(!s.allows_tool("github", "create_issue"));
        assert!(s.allows_tool("files", "read") && !s.allows_tool("files", "read2"));
        assert!(KeyScope::default().allows_tool("any", "thing"));
    }
}
