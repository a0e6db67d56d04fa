//! JWT authentication against the catalogue of bad tokens: expired, not yet valid, wrong `iss`
//! (trailing slash included), wrong `aud`, `alg: none`, HS256 signed with the RSA public key,
//! unknown `kid` (JWKS fetched again, at most every 30 s), string `exp`, no `exp`, oversized and
//! garbage tokens; claims mapped onto the principal; JWKS from a file or a URL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use async_trait::async_trait;
use jsonwebtoken::Algorithm;
use mcplane_config::AuthSpec;
use mcplane_core::authn::{
    AuthError, Authenticator, Credentials, JWKS_REFRESH_INTERVAL, JwksSource,
};
use mcplane_testkit::jwt::{self, AUDIENCE, ISSUER, claims, now, token};
use mcplane_types::{AuthMethod, PrincipalKind};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A JWKS URL whose document the test controls, counting fetches.
#[derive(Default)]
struct Idp {
    document: Mutex<Option<Value>>,
    fetches: AtomicUsize,
}

#[async_trait]
impl JwksSource for Idp {
    async fn fetch(&self, url: &str) -> Result<String, String> {
        assert_eq!(url, "https://idp.test/jwks");
        self.fetches.fetch_add(1, Ordering::SeqCst);
        match &*self.document.lock().unwrap() {
            Some(doc) => Ok(doc.to_string()),
            None => Err("connection refused".into()),
        }
    }
}

fn spec(yaml: &str) -> AuthSpec {
    serde_yaml_ng::from_str(yaml).unwrap()
}

fn file_spec() -> AuthSpec {
    spec(&format!(
        "jwt:\n  - issuer: \"{ISSUER}\"\n    audience: {AUDIENCE}\n    jwks_file: idp.json\n    algorithms: [ES256, RS256]\n    claims: {{ roles: groups, org: org, team: team }}\n"
    ))
}

fn from_file(spec: &AuthSpec) -> Authenticator {
    let read = |p: &Path| -> Result<String, String> {
        assert_eq!(p, Path::new("idp.json"));
        Ok(jwt::jwks().to_string())
    };
    Authenticator::new(Some(spec), &read, Arc::new(Idp::default())).unwrap()
}

async fn check(auth: &Authenticator, token: &str) -> Result<mcplane_types::Principal, AuthError> {
    auth.authenticate(Credentials::Bearer(token)).await
}

async fn rejected(auth: &Authenticator, token: &str, says: &str) {
    match check(auth, token).await {
        Err(AuthError::InvalidToken(m)) => assert!(m.contains(says), "{m:?} should say {says:?}"),
        other => panic!("expected a rejection saying {says:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_good_token_becomes_a_principal_with_its_claims_mapped() {
    let auth = from_file(&file_spec());
    let mut c = claims("ada");
    c["groups"] = json!(["analyst", "admin"]);
    c["org"] = json!("acme");
    c["team"] = json!("payments");
    for t in [
        token(&c),
        jwt::sign(Algorithm::RS256, Some(jwt::RSA_KID), &c),
    ] {
        let p = check(&auth, &t).await.unwrap();
        assert_eq!(p.id, "ada");
        assert_eq!(p.kind, PrincipalKind::User);
        assert!(p.has_role("analyst") && p.has_role("admin"));
        assert_eq!(p.tenancy.org.as_deref(), Some("acme"));
        assert_eq!(p.tenancy.team.as_deref(), Some("payments"));
        assert_eq!(p.tenancy.project, None);
        assert_eq!(
            p.auth,
            AuthMethod::Jwt {
                issuer: ISSUER.into()
            }
        );
        assert!(!p.attributes.contains_key("exp"));
    }
    // Roles as a space-separated string.
    c["groups"] = json!("reader writer");
    let p = check(&auth, &token(&c)).await.unwrap();
    assert!(p.has_role("reader") && p.has_role("writer"));
}

#[tokio::test]
async fn the_bad_token_catalogue_is_refused_with_a_reason() {
    let auth = from_file(&file_spec());
    let with = |k: &str, v: Value| {
        let mut c = claims("ada");
        c[k] = v;
        c
    };
    let without = |k: &str| {
        let mut c = claims("ada");
        c.as_object_mut().unwrap().remove(k);
        c
    };
    rejected(&auth, &token(&with("exp", json!(now() - 3600))), "expired").await;
    rejected(
        &auth,
        &token(&with("nbf", json!(now() + 3600))),
        "not valid yet",
    )
    .await;
    rejected(
        &auth,
        &token(&with("iss", json!("https://idp.test"))),
        "not trusted",
    )
    .await;
    rejected(
        &auth,
        &token(&with("iss", json!("https://evil.test/"))),
        "not trusted",
    )
    .await;
    rejected(
        &auth,
        &token(&with("aud", json!("someone-else"))),
        "not meant for this service",
    )
    .await;
    rejected(&auth, &token(&without("aud")), "`aud`").await;
    rejected(&auth, &token(&without("exp")), "`exp`").await;
    rejected(
        &auth,
        &token(&with("exp", json!((now() + 3600).to_string()))),
        "must be a number",
    )
    .await;
    rejected(&auth, &jwt::unsigned(&claims("ada")), "not a JWT").await;
    rejected(
        &auth,
        &jwt::hs256_with_rsa_public_key(&claims("ada")),
        "not accepted",
    )
    .await;
    rejected(
        &auth,
        &jwt::sign(Algorithm::ES256, Some("rotated-away"), &claims("ada")),
        "rotated-away",
    )
    .await;
    rejected(
        &auth,
        &jwt::sign(Algorithm::PS256, Some(jwt::RSA_KID), &claims("ada")),
        "not accepted",
    )
    .await;
    // A signature made with another key for the same kid.
    let mut forged = token(&claims("ada"));
    let other = token(&claims("eve"));
    forged.truncate(forged.rfind('.').unwrap());
    forged.push_str(&other[other.rfind('.').unwrap()..]);
    rejected(&auth, &forged, "bad signature").await;
    rejected(&auth, "garbage", "not a JWT").await;
    rejected(&auth, &"a".repeat(20_000), "16 KiB").await;
    // No credentials: refused unless anonymous callers are allowed.
    assert_eq!(
        auth.authenticate(Credentials::None).await.unwrap_err(),
        AuthError::Missing
    );
    let mut open = file_spec();
    open.allow_anonymous = Some(true);
    let p = from_file(&open)
        .authenticate(Credentials::None)
        .await
        .unwrap();
    assert_eq!(p.kind, PrincipalKind::Anonymous);
}

#[tokio::test]
async fn no_auth_section_means_anonymous_and_a_token_has_nowhere_to_go() {
    let auth = Authenticator::new(None, &|_| unreachable!(), Arc::new(Idp::default())).unwrap();
    assert!(auth.allows_anonymous());
    let p = auth.authenticate(Credentials::None).await.unwrap();
    assert_eq!(p.kind, PrincipalKind::Anonymous);
    rejected(&auth, &token(&claims("ada")), "no token issuer is trusted").await;
}

#[tokio::test(start_paused = true)]
async fn a_jwks_url_is_fetched_when_needed_and_again_for_an_unknown_key_not_too_often() {
    let idp = Arc::new(Idp::default());
    let spec = spec(&format!(
        "jwt:\n  - {{ issuer: \"{ISSUER}\", audience: {AUDIENCE}, jwks_url: \"https://idp.test/jwks\" }}\n"
    ));
    let auth = Authenticator::new(Some(&spec), &|_| unreachable!(), idp.clone()).unwrap();
    // The issuer is down: a clear, retryable error.
    match check(&auth, &token(&claims("ada"))).await {
        Err(AuthError::KeysUnavailable(why)) => assert!(why.contains("connection refused")),
        other => panic!("{other:?}"),
    }
    *idp.document.lock().unwrap() = Some(jwt::jwks());
    tokio::time::advance(JWKS_REFRESH_INTERVAL).await;
    check(&auth, &token(&claims("ada"))).await.unwrap();
    check(&auth, &token(&claims("bob"))).await.unwrap();
    assert_eq!(
        idp.fetches.load(Ordering::SeqCst),
        2,
        "fetched once more, then cached"
    );
    // Unknown keys: one more fetch, then none until the interval has passed.
    let unknown = jwt::sign(Algorithm::ES256, Some("new-key"), &claims("ada"));
    tokio::time::advance(JWKS_REFRESH_INTERVAL).await;
    for _ in 0..20 {
        rejected(&auth, &unknown, "new-key").await;
    }
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 3);
    tokio::time::advance(JWKS_REFRESH_INTERVAL).await;
    rejected(&auth, &unknown, "new-key").await;
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn an_unreadable_jwks_file_is_a_config_error_naming_the_key() {
    let read = |_: &Path| -> Result<String, String> { Err("No such file or directory".into()) };
    let err = Authenticator::new(Some(&file_spec()), &read, Arc::new(Idp::default())).unwrap_err();
    assert_eq!(err.path, "auth.jwt[0].jwks_file");
    assert!(err.message.contains("No such file"), "{err}");
    let read = |_: &Path| -> Result<String, String> { Ok("{not json".into()) };
    let err = Authenticator::new(Some(&file_spec()), &read, Arc::new(Idp::default())).unwrap_err();
    assert!(err.message.contains("not a JWKS document"), "{err}");
}
