//! A test identity provider: fixed signing keys (checked in under `keys/`, for tests only), the
//! JWKS that publishes them, and tokens with whatever claims, algorithm and key id a test needs
//! — including the malformed and hostile ones (`alg: none`, HS256 signed with the RSA public
//! key, string `exp`).

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

/// The issuer tests use.
pub const ISSUER: &str = "https://idp.test/";
/// The audience tests use.
pub const AUDIENCE: &str = "mcplane";
/// Key id of the P-256 key.
pub const EC_KID: &str = "ec-1";
/// Key id of the RSA key.
pub const RSA_KID: &str = "rsa-1";

const EC_PRIVATE: &str = include_str!("../keys/ec-p256.pem");
const RSA_PRIVATE: &str = include_str!("../keys/rsa-2048.pem");
/// The RSA public key as PEM (what an attacker would use as an HMAC secret).
pub const RSA_PUBLIC_PEM: &str = include_str!("../keys/rsa-2048.pub.pem");

/// The JWKS publishing both keys.
pub fn jwks() -> Value {
    json!({"keys": [
        {"kty": "EC", "crv": "P-256", "kid": EC_KID, "use": "sig", "alg": "ES256",
         "x": "S3oatkW-ooqjjNQclJP9fNvqX1GpDZ6YSKoDtRCXFzQ",
         "y": "Lniara7tb8P_67YS_TRa1CdDOk0aj6Qy-C2pxUPaZa0"},
        {"kty": "RSA", "kid": RSA_KID, "use": "sig", "alg": "RS256", "e": "AQAB",
         "n": "ltkXXOvd7roAUm1rU4w06vNllKncrH-MoSjXJvxHVlp2u75UExm7-BHwad7VHAqMHcP6YqQrdaFoFvT8Eo9HKIPrkFIDl2yuNzJoABOOy1YSujd8wPwxX56Mep-VLQSwqt_g_-_3iO9B4-aRmO3O4gSzCmmb3CJDgHYMqzzxVdgxZqghphF8rtjr5r4ZNQWnOWorLuA90qSkaw4V4znWALfNK7OmRpmyNkQdnwXqH6FQQvZcCRzUuPP01ilkCzTYTSbnn5DLaq1rRjIwkn9lnaMfCuaEhziz_xjoZQc_AfICiPz3MHxTGAFOG_JWWDkCtX20n81ZH5f8iZNko5O72w"},
    ]})
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Valid claims for `sub`: the test issuer and audience, expiring in an hour.
pub fn claims(sub: &str) -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "exp": now() + 3600, "iat": now()})
}

/// A token with `claims`, signed ES256 with the P-256 key (`kid` ec-1).
pub fn token(claims: &Value) -> String {
    sign(Algorithm::ES256, Some(EC_KID), claims)
}

/// A token signed with `alg` (ES256 with the P-256 key, RS256/PS256 with the RSA key), naming
/// `kid`.
pub fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()),
        _ => EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()),
    };
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    key.and_then(|key| jsonwebtoken::encode(&header, claims, &key))
        .unwrap_or_default()
}

/// An HS256 token whose HMAC secret is the RSA public key (the algorithm-confusion attack).
pub fn hs256_with_rsa_public_key(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(RSA_KID.into());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(RSA_PUBLIC_PEM.as_bytes()),
    )
    .unwrap_or_default()
}

/// An unsigned token (`alg: none`).
pub fn unsigned(claims: &Value) -> String {
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": EC_KID})),
        b64(claims)
    )
}
