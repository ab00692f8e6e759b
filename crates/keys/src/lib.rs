//! Signing keys per issuer: making them ([`generate`]), opening a ring into ready-to-use
//! signers and verifiers ([`IssuerKeys`]), the published JWKS document, compact JWS
//! signing, and the one token verifier every surface uses.
//!
//! Signing uses aws-lc-rs key pairs parsed once per ring (a JWT costs one signature and
//! two small JSON encodings). Verification goes through `jsonwebtoken`, with the key
//! chosen by `kid` and the algorithm pinned to that key's, so a token can never pick its
//! own algorithm (`none`, HS256 keyed with a public key, RS/ES confusion).

pub mod claims;
pub mod generate;
mod verify;

use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::Jwk;
use serde::Serialize;
use tenantry_controlplane::model::{KeyRing, KeyState, SigningAlg};
use tenantry_crypto::{SealContext, SecretBox};

pub use generate::{generate_key, generate_keys, generate_ring, seal_field, thumbprint};
pub use verify::{Expect, TokenType, Verified, VerifyError};

/// Why keys could not be made, opened or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
    #[error("key `{kid}` cannot be opened: {reason}")]
    Unusable { kid: String, reason: String },
    #[error("no active {0} key")]
    NoActiveKey(SigningAlg),
    #[error("claims do not serialize: {0}")]
    Claims(#[from] serde_json::Error),
}

/// The published key set of one issuer: body and strong validator, built once per ring.
#[derive(Debug, Clone)]
pub struct Jwks {
    /// `{"keys":[...]}` with the public JWKs of active and retiring keys; shared, not
    /// copied, by every answer.
    pub body: bytes::Bytes,
    /// Strong ETag (quoted), derived from the body.
    pub etag: Arc<str>,
}

enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

struct LoadedKey {
    kid: String,
    alg: SigningAlg,
    state: KeyState,
    signer: Signer,
    verifier: DecodingKey,
}

/// A key ring opened for use: signers for active keys, verifiers for every published key.
pub struct IssuerKeys {
    keys: Vec<LoadedKey>,
    jwks: Jwks,
    rng: SystemRandom,
    /// Tokens this ring has already verified (see [`verify`]): it lives and dies with the
    /// ring, so a rotated or retired key's results go with it.
    memo: verify::Memo,
}

impl std::fmt::Debug for IssuerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never prints key material: only which keys are loaded.
        let kids: Vec<_> = self.keys.iter().map(|k| (&k.kid, k.alg, k.state)).collect();
        f.debug_struct("IssuerKeys").field("keys", &kids).finish()
    }
}

impl IssuerKeys {
    /// Opens every key of `ring` (sealed for `owner`). A key that does not open makes the
    /// whole ring unusable: a half-loaded ring would publish keys it cannot sign with.
    pub fn open(ring: &KeyRing, secrets: &SecretBox, owner: &str) -> Result<Self, KeyError> {
        let mut keys = Vec::with_capacity(ring.keys.len());
        let mut public = Vec::with_capacity(ring.keys.len());
        for key in &ring.keys {
            let unusable = |reason: &str| KeyError::Unusable {
                kid: key.kid.clone(),
                reason: reason.to_owned(),
            };
            let encoded = secrets
                .open(SealContext::new(owner, &seal_field(&key.kid)), &key.private_key.0)
                .map_err(|e| unusable(&e.to_string()))?;
            let der = zeroize::Zeroizing::new(
                STANDARD
                    .decode(encoded.as_bytes())
                    .map_err(|_| unusable("private key is not base64"))?,
            );
            let signer = match key.alg {
                SigningAlg::Rs256 => Signer::Rsa(RsaKeyPair::from_pkcs8(&der).map_err(|e| unusable(&e.to_string()))?),
                SigningAlg::Es256 => Signer::Ec(
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                        .map_err(|e| unusable(&e.to_string()))?,
                ),
                SigningAlg::EdDsa => {
                    Signer::Ed(Ed25519KeyPair::from_pkcs8(&der).map_err(|e| unusable(&e.to_string()))?)
                }
            };
            let jwk: Jwk = serde_json::from_str(&key.public_jwk).map_err(|e| unusable(&e.to_string()))?;
            let verifier = DecodingKey::from_jwk(&jwk).map_err(|e| unusable(&e.to_string()))?;
            public.push(serde_json::from_str::<serde_json::Value>(&key.public_jwk)?);
            keys.push(LoadedKey {
                kid: key.kid.clone(),
                alg: key.alg,
                state: key.state,
                signer,
                verifier,
            });
        }
        let body = serde_json::json!({ "keys": public }).to_string();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body.as_bytes());
        let etag = format!("\"{}\"", URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]));
        Ok(Self {
            keys,
            jwks: Jwks {
                body: bytes::Bytes::from(body),
                etag: etag.into(),
            },
            rng: SystemRandom::new(),
            memo: verify::Memo::default(),
        })
    }

    /// The JWKS document to publish.
    pub fn jwks(&self) -> &Jwks {
        &self.jwks
    }

    /// The algorithms this issuer has an active key for.
    pub fn algorithms(&self) -> Vec<SigningAlg> {
        SigningAlg::ALL
            .into_iter()
            .filter(|alg| self.active(*alg).is_some())
            .collect()
    }

    /// The kid that signs with `alg` now.
    pub fn active_kid(&self, alg: SigningAlg) -> Option<&str> {
        self.active(alg).map(|k| k.kid.as_str())
    }

    fn active(&self, alg: SigningAlg) -> Option<&LoadedKey> {
        // The ring lists keys oldest first; the newest active key of an algorithm signs.
        self.keys
            .iter()
            .rev()
            .find(|k| k.alg == alg && k.state == KeyState::Active)
    }

    /// Signs `claims` as a compact JWS with the active key of `alg`; `typ` goes in the
    /// protected header (`at+jwt`, `JWT`, `logout+jwt`).
    pub fn sign<C: Serialize>(&self, alg: SigningAlg, typ: &str, claims: &C) -> Result<String, KeyError> {
        let key = self.active(alg).ok_or(KeyError::NoActiveKey(alg))?;
        let header = JwsHeader {
            alg: alg.as_str(),
            kid: &key.kid,
            typ,
        };
        let mut token = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(claims)?, &mut token);
        let signature = key.sign(token.as_bytes(), &self.rng)?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }
}

/// The protected header of a JWS we sign, serialised as it is (no map built per token).
#[derive(Serialize)]
struct JwsHeader<'a> {
    alg: &'a str,
    kid: &'a str,
    typ: &'a str,
}

impl LoadedKey {
    fn sign(&self, message: &[u8], rng: &SystemRandom) -> Result<Vec<u8>, KeyError> {
        match &self.signer {
            Signer::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, rng, message, &mut signature)
                    .map_err(|_| KeyError::Crypto("RS256 signature"))?;
                Ok(signature)
            }
            Signer::Ec(pair) => Ok(pair
                .sign(rng, message)
                .map_err(|_| KeyError::Crypto("ES256 signature"))?
                .as_ref()
                .to_vec()),
            Signer::Ed(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }
}
