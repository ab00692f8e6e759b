//! Signing and verifying across the three algorithms, rotation, and the attacks the one
//! verifier must refuse. The signatures are checked against the published JWKS with
//! `jsonwebtoken`'s own JWK path, which shares no code with the signer.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Duration, Utc};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};
use tenantry_controlplane::model::{KeyRing, SigningAlg};
use tenantry_crypto::{MasterKey, SecretBox};
use tenantry_keys::{Expect, IssuerKeys, TokenType, VerifyError, generate_keys, generate_ring};

const ISS: &str = "https://id.example.com/t/acme";

fn secrets() -> SecretBox {
    SecretBox::new(MasterKey::generate(), vec![])
}

fn claims(iss: &str) -> Value {
    let now = Utc::now().timestamp();
    json!({"iss": iss, "sub": "user-1", "aud": "api", "client_id": "app", "jti": "j1",
           "iat": now, "exp": now + 300, "tid": "acme"})
}

fn access(iss: &str) -> Expect<'_> {
    Expect::new(iss, TokenType::Access)
}

#[test]
fn every_algorithm_verifies_with_an_independent_jwks_consumer() {
    let sb = secrets();
    let ring = generate_ring(&sb, "owner", Utc::now()).unwrap();
    let keys = IssuerKeys::open(&ring, &sb, "owner").unwrap();
    let set: JwkSet = serde_json::from_slice(&keys.jwks().body).unwrap();
    assert_eq!(set.keys.len(), 3);
    for (alg, jose) in [
        (SigningAlg::Rs256, Algorithm::RS256),
        (SigningAlg::Es256, Algorithm::ES256),
        (SigningAlg::EdDsa, Algorithm::EdDSA),
    ] {
        let token = keys.sign(alg, "at+jwt", &claims(ISS)).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, jose);
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        // The protected header exactly: these three members, nothing else.
        let protected = URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap();
        let expected = format!(
            r#"{{"alg":"{alg}","kid":"{}","typ":"at+jwt"}}"#,
            header.kid.as_deref().unwrap()
        );
        assert_eq!(String::from_utf8(protected).unwrap(), expected);
        let jwk = set.find(header.kid.as_deref().unwrap()).expect("kid is published");
        let mut validation = Validation::new(jose);
        validation.set_audience(&["api"]);
        validation.set_issuer(&[ISS]);
        let data = jsonwebtoken::decode::<Value>(&token, &DecodingKey::from_jwk(jwk).unwrap(), &validation).unwrap();
        assert_eq!(data.claims["sub"], "user-1");

        let ours = keys.verify::<Value>(&token, &access(ISS)).unwrap();
        assert_eq!(ours.alg, alg);
    }
}

#[test]
fn a_rotated_key_verifies_during_its_grace_and_not_after_retirement() {
    let sb = secrets();
    let now = Utc::now();
    let ring = generate_ring(&sb, "owner", now).unwrap();
    let before = IssuerKeys::open(&ring, &sb, "owner").unwrap();
    let old_token = before.sign(SigningAlg::Es256, "at+jwt", &claims(ISS)).unwrap();

    let new_keys = generate_keys(&[SigningAlg::Es256], &sb, "owner", now).unwrap();
    let rotated = ring.rotated(&new_keys, now + Duration::hours(1)).unwrap();
    let during = IssuerKeys::open(&rotated, &sb, "owner").unwrap();
    assert_eq!(during.active_kid(SigningAlg::Es256), Some(new_keys[0].kid.as_str()));
    assert!(during.verify::<Value>(&old_token, &access(ISS)).is_ok(), "grace period");
    let new_token = during.sign(SigningAlg::Es256, "at+jwt", &claims(ISS)).unwrap();
    assert_ne!(
        jsonwebtoken::decode_header(&new_token).unwrap().kid,
        jsonwebtoken::decode_header(&old_token).unwrap().kid
    );
    assert_ne!(before.jwks().etag, during.jwks().etag);

    let expired = rotated.expired(now + Duration::hours(2));
    assert_eq!(expired.len(), 1);
    let retired = rotated.retired(&expired).unwrap();
    let after = IssuerKeys::open(&retired, &sb, "owner").unwrap();
    assert_eq!(
        after.verify::<Value>(&old_token, &access(ISS)).unwrap_err(),
        VerifyError::UnknownKey
    );
    assert!(after.verify::<Value>(&new_token, &access(ISS)).is_ok());
    // An active key cannot be retired.
    assert!(retired.retired(&[new_keys[0].kid.clone()]).is_err());
}

fn forge(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

#[test]
fn the_verifier_refuses_forged_confused_and_mistimed_tokens() {
    let sb = secrets();
    let ring = generate_ring(&sb, "owner", Utc::now()).unwrap();
    let keys = IssuerKeys::open(&ring, &sb, "owner").unwrap();
    let rsa = ring.active(SigningAlg::Rs256).unwrap();
    let es = ring.active(SigningAlg::Es256).unwrap();

    // alg: none, with and without a signature.
    let none = forge(
        &json!({"alg": "none", "kid": rsa.kid, "typ": "at+jwt"}),
        &claims(ISS),
        b"",
    );
    assert!(matches!(
        keys.verify::<Value>(&none, &access(ISS)),
        Err(VerifyError::Malformed(_))
    ));

    // HS256 keyed with the RSA public key (the classic confusion attack).
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(rsa.kid.clone());
    header.typ = Some("at+jwt".into());
    let hs = jsonwebtoken::encode(
        &header,
        &claims(ISS),
        &EncodingKey::from_secret(rsa.public_jwk.as_bytes()),
    )
    .unwrap();
    assert_eq!(
        keys.verify::<Value>(&hs, &access(ISS)).unwrap_err(),
        VerifyError::AlgorithmMismatch
    );

    // An RS256 header on the ES256 key's kid.
    let es_token = keys.sign(SigningAlg::Es256, "at+jwt", &claims(ISS)).unwrap();
    let mut parts: Vec<&str> = es_token.split('.').collect();
    let relabelled = URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "kid": es.kid, "typ": "at+jwt"}).to_string());
    parts[0] = &relabelled;
    assert_eq!(
        keys.verify::<Value>(&parts.join("."), &access(ISS)).unwrap_err(),
        VerifyError::AlgorithmMismatch
    );

    // Unknown kid, missing kid.
    let other = generate_ring(&sb, "owner", Utc::now()).unwrap();
    let other_keys = IssuerKeys::open(&other, &sb, "owner").unwrap();
    let foreign = other_keys.sign(SigningAlg::Es256, "at+jwt", &claims(ISS)).unwrap();
    assert_eq!(
        keys.verify::<Value>(&foreign, &access(ISS)).unwrap_err(),
        VerifyError::UnknownKey
    );

    // A tampered payload.
    let mut parts: Vec<String> = es_token.split('.').map(str::to_owned).collect();
    let mut tampered = claims(ISS);
    tampered["sub"] = json!("admin");
    parts[1] = URL_SAFE_NO_PAD.encode(tampered.to_string());
    assert_eq!(
        keys.verify::<Value>(&parts.join("."), &access(ISS)).unwrap_err(),
        VerifyError::BadSignature
    );

    // Time: expired beyond the skew, not yet valid, issued in the future.
    let now = Utc::now().timestamp();
    let mut expired = claims(ISS);
    expired["exp"] = json!(now - 120);
    let t = keys.sign(SigningAlg::EdDsa, "at+jwt", &expired).unwrap();
    assert_eq!(
        keys.verify::<Value>(&t, &access(ISS)).unwrap_err(),
        VerifyError::Expired
    );
    let mut early = claims(ISS);
    early["nbf"] = json!(now + 600);
    let t = keys.sign(SigningAlg::EdDsa, "at+jwt", &early).unwrap();
    assert_eq!(
        keys.verify::<Value>(&t, &access(ISS)).unwrap_err(),
        VerifyError::NotYetValid
    );
    let mut future = claims(ISS);
    future["iat"] = json!(now + 600);
    let t = keys.sign(SigningAlg::EdDsa, "at+jwt", &future).unwrap();
    assert_eq!(
        keys.verify::<Value>(&t, &access(ISS)).unwrap_err(),
        VerifyError::IssuedInFuture
    );

    // Another issuer, another audience, another token type.
    let t = keys
        .sign(SigningAlg::EdDsa, "at+jwt", &claims("https://id.example.com/t/other"))
        .unwrap();
    assert_eq!(
        keys.verify::<Value>(&t, &access(ISS)).unwrap_err(),
        VerifyError::WrongIssuer
    );
    let t = keys.sign(SigningAlg::EdDsa, "at+jwt", &claims(ISS)).unwrap();
    let mut wants_other_aud = access(ISS);
    wants_other_aud.audience = Some("billing");
    assert_eq!(
        keys.verify::<Value>(&t, &wants_other_aud).unwrap_err(),
        VerifyError::WrongAudience
    );
    assert_eq!(
        keys.verify::<Value>(&t, &Expect::new(ISS, TokenType::Id)).unwrap_err(),
        VerifyError::WrongType
    );
    let id = keys.sign(SigningAlg::EdDsa, "JWT", &claims(ISS)).unwrap();
    assert_eq!(
        keys.verify::<Value>(&id, &access(ISS)).unwrap_err(),
        VerifyError::WrongType
    );

    // Garbage.
    for junk in ["", "a.b", "a.b.c", "....", "eyJhbGciOiJFUzI1NiJ9.e30."] {
        assert!(keys.verify::<Value>(junk, &access(ISS)).is_err(), "{junk}");
    }
}

#[test]
fn a_ring_sealed_for_another_owner_does_not_open() {
    let sb = secrets();
    let ring = generate_ring(&sb, "tenant-a", Utc::now()).unwrap();
    assert!(IssuerKeys::open(&ring, &sb, "tenant-b").is_err());
    assert!(IssuerKeys::open(&ring, &secrets(), "tenant-a").is_err());
    let empty = IssuerKeys::open(&KeyRing::default(), &sb, "tenant-a").unwrap();
    assert!(empty.algorithms().is_empty());
    assert!(empty.sign(SigningAlg::Rs256, "JWT", &json!({})).is_err());
}

#[test]
fn a_remembered_token_is_still_checked_against_the_clock_and_every_expectation() {
    let sb = secrets();
    let ring = generate_ring(&sb, "owner", Utc::now()).unwrap();
    let keys = IssuerKeys::open(&ring, &sb, "owner").unwrap();

    // Verified once (and remembered) as a valid access token for ISS and audience "api".
    let token = keys.sign(SigningAlg::Es256, "at+jwt", &claims(ISS)).unwrap();
    let mut for_api = access(ISS);
    for_api.audience = Some("api");
    keys.verify::<Value>(&token, &for_api).unwrap();
    keys.verify::<Value>(&token, &for_api).unwrap();
    // Any other expectation is its own verification, never the remembered pass.
    assert_eq!(
        keys.verify::<Value>(&token, &access("https://id.example.com/t/other"))
            .unwrap_err(),
        VerifyError::WrongIssuer
    );
    let mut for_other = access(ISS);
    for_other.audience = Some("other-api");
    assert_eq!(
        keys.verify::<Value>(&token, &for_other).unwrap_err(),
        VerifyError::WrongAudience
    );
    assert_eq!(
        keys.verify::<Value>(&token, &Expect::new(ISS, TokenType::Id))
            .unwrap_err(),
        VerifyError::WrongType
    );

    // An expired token remembered by a caller that accepts expiry is still refused to one
    // that does not.
    let now = Utc::now().timestamp();
    let mut old = claims(ISS);
    old["iat"] = json!(now - 600);
    old["exp"] = json!(now - 300);
    let expired = keys.sign(SigningAlg::EdDsa, "at+jwt", &old).unwrap();
    let mut lenient = access(ISS);
    lenient.allow_expired = true;
    keys.verify::<Value>(&expired, &lenient).unwrap();
    assert_eq!(
        keys.verify::<Value>(&expired, &access(ISS)).unwrap_err(),
        VerifyError::Expired
    );
    keys.verify::<Value>(&expired, &lenient).unwrap();

    // A refusal is never remembered as a pass: the tampered token fails every time.
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    for _ in 0..2 {
        assert!(keys.verify::<Value>(&tampered, &access(ISS)).is_err());
    }
}
