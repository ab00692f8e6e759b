//! Making signing keys: a fresh key pair per algorithm, its public JWK, its RFC 7638
//! thumbprint as `kid`, and its PKCS#8 private key sealed for its owner.
//!
//! Only the node that accepts a control-plane command calls this; the keys then travel
//! inside the command, so applying it is deterministic on every node.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use tenantry_controlplane::model::{KeyRing, KeyState, SealedSecret, SigningAlg, SigningKey};
use tenantry_crypto::{SealContext, SecretBox};
use zeroize::Zeroizing;

use crate::KeyError;

/// The secretbox field a private key is sealed under (with the owner as the other half of
/// the associated data).
pub fn seal_field(kid: &str) -> String {
    format!("keys.{kid}")
}

/// A fresh ring with one active key per algorithm.
pub fn generate_ring(secrets: &SecretBox, owner: &str, now: DateTime<Utc>) -> Result<KeyRing, KeyError> {
    Ok(KeyRing {
        keys: generate_keys(&SigningAlg::ALL, secrets, owner, now)?,
    })
}

/// One fresh active key for each of `algs`.
pub fn generate_keys(
    algs: &[SigningAlg],
    secrets: &SecretBox,
    owner: &str,
    now: DateTime<Utc>,
) -> Result<Vec<SigningKey>, KeyError> {
    algs.iter().map(|alg| generate_key(*alg, secrets, owner, now)).collect()
}

/// One fresh active key for `alg`, its private half sealed for (`owner`, `keys.<kid>`).
pub fn generate_key(
    alg: SigningAlg,
    secrets: &SecretBox,
    owner: &str,
    now: DateTime<Utc>,
) -> Result<SigningKey, KeyError> {
    let (pkcs8, public) = match alg {
        SigningAlg::Rs256 => {
            let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Crypto("RSA key generation"))?;
            let der = pair.as_der().map_err(|_| KeyError::Crypto("RSA PKCS#8 encoding"))?;
            let public = pair.public_key();
            let public = rsa_public_jwk(
                public.modulus().big_endian_without_leading_zero(),
                public.exponent().big_endian_without_leading_zero(),
            );
            (Zeroizing::new(der.as_ref().to_vec()), public)
        }
        SigningAlg::Es256 => {
            let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .map_err(|_| KeyError::Crypto("P-256 key generation"))?;
            let der = pair
                .to_pkcs8v1()
                .map_err(|_| KeyError::Crypto("P-256 PKCS#8 encoding"))?;
            let public = ec_public_jwk(pair.public_key().as_ref())?;
            (Zeroizing::new(der.as_ref().to_vec()), public)
        }
        SigningAlg::EdDsa => {
            let pair = Ed25519KeyPair::generate().map_err(|_| KeyError::Crypto("Ed25519 key generation"))?;
            let der = pair
                .to_pkcs8()
                .map_err(|_| KeyError::Crypto("Ed25519 PKCS#8 encoding"))?;
            let public = okp_public_jwk(pair.public_key().as_ref());
            (Zeroizing::new(der.as_ref().to_vec()), public)
        }
    };
    let kid = thumbprint(&public);
    let mut jwk = public;
    jwk.insert("kid".into(), Value::String(kid.clone()));
    jwk.insert("alg".into(), Value::String(alg.as_str().into()));
    jwk.insert("use".into(), Value::String("sig".into()));
    let encoded = Zeroizing::new(STANDARD.encode(&*pkcs8));
    let sealed = secrets.seal(SealContext::new(owner, &seal_field(&kid)), &encoded);
    Ok(SigningKey {
        kid,
        alg,
        state: KeyState::Active,
        public_jwk: Value::Object(jwk).to_string(),
        private_key: SealedSecret(sealed),
        created_at: now,
        retire_after: None,
    })
}

fn b64(bytes: &[u8]) -> Value {
    Value::String(URL_SAFE_NO_PAD.encode(bytes))
}

fn rsa_public_jwk(n: &[u8], e: &[u8]) -> Map<String, Value> {
    let Value::Object(map) = json!({"kty": "RSA", "n": b64(n), "e": b64(e)}) else {
        unreachable!("a JSON object literal")
    };
    map
}

fn ec_public_jwk(uncompressed_point: &[u8]) -> Result<Map<String, Value>, KeyError> {
    // SEC1 uncompressed: 0x04 || x (32 bytes) || y (32 bytes).
    if uncompressed_point.len() != 65 || uncompressed_point[0] != 4 {
        return Err(KeyError::Crypto("unexpected P-256 public key encoding"));
    }
    let Value::Object(map) = json!({
        "kty": "EC",
        "crv": "P-256",
        "x": b64(&uncompressed_point[1..33]),
        "y": b64(&uncompressed_point[33..]),
    }) else {
        unreachable!("a JSON object literal")
    };
    Ok(map)
}

fn okp_public_jwk(public: &[u8]) -> Map<String, Value> {
    let Value::Object(map) = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(public)}) else {
        unreachable!("a JSON object literal")
    };
    map
}

/// RFC 7638 thumbprint: SHA-256 over the required members in lexicographic order, no
/// whitespace (RFC 8037 gives the OKP members).
pub fn thumbprint(jwk: &Map<String, Value>) -> String {
    let members: &[&str] = match jwk.get("kty").and_then(Value::as_str) {
        Some("RSA") => &["e", "kty", "n"],
        Some("EC") => &["crv", "kty", "x", "y"],
        _ => &["crv", "kty", "x"],
    };
    // serde_json's map is ordered by key, so this serializes in the required order.
    let required: Map<String, Value> = members
        .iter()
        .filter_map(|m| jwk.get(*m).map(|v| ((*m).to_owned(), v.clone())))
        .collect();
    let canonical = Value::Object(required).to_string();
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        canonical.as_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenantry_crypto::MasterKey;

    #[test]
    fn thumbprint_matches_the_rfc_7638_example() {
        // The RSA key of RFC 7638, section 3.1.
        let jwk: Map<String, Value> = serde_json::from_str(
            r#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#,
        )
        .unwrap();
        assert_eq!(thumbprint(&jwk), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn generated_keys_are_sealed_for_their_owner_and_kid() {
        let secrets = SecretBox::new(MasterKey::generate(), vec![]);
        let ring = generate_ring(&secrets, "tenant-a", Utc::now()).unwrap();
        assert_eq!(ring.algorithms(), SigningAlg::ALL.to_vec());
        for key in &ring.keys {
            assert!(key.private_key.0.starts_with("tsb1."));
            let jwk: Value = serde_json::from_str(&key.public_jwk).unwrap();
            assert_eq!(jwk["kid"], key.kid.as_str());
            assert_eq!(jwk["alg"], key.alg.as_str());
            assert!(jwk.get("d").is_none(), "no private member in the public JWK");
            let field = seal_field(&key.kid);
            assert!(
                secrets
                    .open(SealContext::new("tenant-a", &field), &key.private_key.0)
                    .is_ok()
            );
            assert!(
                secrets
                    .open(SealContext::new("tenant-b", &field), &key.private_key.0)
                    .is_err()
            );
            assert!(
                secrets
                    .open(SealContext::new("tenant-a", "keys.other"), &key.private_key.0)
                    .is_err()
            );
        }
    }
}
