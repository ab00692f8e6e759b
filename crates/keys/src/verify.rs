//! The one token verifier: key by `kid` from the issuer's own ring, algorithm pinned to
//! that key, issuer, audience, token type and time claims checked with a small skew.
//!
//! A resource server presents the same access token many times during its life, and a
//! signature check (36–87 µs) dwarfs everything else an introspection does. So each ring
//! remembers the tokens it has fully verified, keyed by a digest of the token and of every
//! expectation that does not depend on the clock. The clock can only turn a pass into a
//! refusal through `exp` (`nbf` and `iat` only ever become satisfied), so a remembered
//! token is re-checked against `exp` on every use. Only passes are remembered, and the
//! memo belongs to the opened ring: a rotation or retirement starts from an empty one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use jsonwebtoken::{Algorithm, Validation};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tenantry_controlplane::model::SigningAlg;

use crate::IssuerKeys;

/// Which kind of token the caller expects; the `typ` header must agree, so an ID token is
/// never accepted as an access token and the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    /// RFC 9068: `typ` is `at+jwt` (or `application/at+jwt`).
    Access,
    /// OIDC ID token: `typ` absent or `JWT`.
    Id,
    /// OIDC Back-Channel Logout token: `typ` is `logout+jwt`.
    Logout,
}

impl TokenType {
    fn accepts(self, typ: Option<&str>) -> bool {
        let typ = typ.map(|t| t.strip_prefix("application/").unwrap_or(t).to_ascii_lowercase());
        match self {
            TokenType::Access => typ.as_deref() == Some("at+jwt"),
            TokenType::Id => matches!(typ.as_deref(), None | Some("jwt")),
            TokenType::Logout => typ.as_deref() == Some("logout+jwt"),
        }
    }
}

/// What a token must satisfy besides its signature.
#[derive(Debug, Clone)]
pub struct Expect<'a> {
    /// The exact issuer (the tenant's issuer URL): a token of another tenant never passes.
    pub issuer: &'a str,
    pub token_type: TokenType,
    /// Required audience, if the caller has one.
    pub audience: Option<&'a str>,
    /// Whether an expired token still passes (an `id_token_hint` may be expired).
    pub allow_expired: bool,
    /// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
    pub leeway_secs: u64,
}

impl<'a> Expect<'a> {
    pub fn new(issuer: &'a str, token_type: TokenType) -> Self {
        Self {
            issuer,
            token_type,
            audience: None,
            allow_expired: false,
            leeway_secs: 30,
        }
    }
}

/// A token that passed every check.
#[derive(Debug, Clone)]
pub struct Verified<C> {
    pub kid: String,
    pub alg: SigningAlg,
    pub claims: C,
}

/// Why a token was refused. The caller maps all of these to `invalid_token`; the variant
/// is for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the token is not a well-formed JWS: {0}")]
    Malformed(String),
    #[error("the token has no `kid` or an unknown one")]
    UnknownKey,
    #[error("the token's `alg` is not the algorithm of its key")]
    AlgorithmMismatch,
    #[error("the token's `typ` does not match the expected token type")]
    WrongType,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued in the future")]
    IssuedInFuture,
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    #[error("the token is not meant for this audience")]
    WrongAudience,
    #[error("the token lacks the `{0}` claim")]
    MissingClaim(String),
}

fn jose_alg(alg: SigningAlg) -> Algorithm {
    match alg {
        SigningAlg::Rs256 => Algorithm::RS256,
        SigningAlg::Es256 => Algorithm::ES256,
        SigningAlg::EdDsa => Algorithm::EdDSA,
    }
}

/// How many verified tokens one ring remembers; past this, expired entries are dropped
/// and, if that is not enough, the memo starts over (a miss only costs a verification).
const MEMO_CAPACITY: usize = 16_384;

/// Tokens a ring has verified, by [`memo_key`].
#[derive(Default)]
pub(crate) struct Memo {
    entries: Mutex<HashMap<[u8; 32], Arc<Passed>>>,
}

/// What a full verification established about one token.
struct Passed {
    kid: String,
    alg: SigningAlg,
    exp: i64,
    claims: Value,
}

impl Memo {
    fn get(&self, key: &[u8; 32]) -> Option<Arc<Passed>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned()
    }

    fn put(&self, key: [u8; 32], passed: Arc<Passed>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MEMO_CAPACITY {
            let now = Utc::now().timestamp();
            entries.retain(|_, p| p.exp >= now);
            if entries.len() >= MEMO_CAPACITY {
                entries.clear();
            }
        }
        entries.insert(key, passed);
    }
}

/// SHA-256 over the token and every clock-independent expectation, each part
/// length-prefixed so no two different inputs share a digest.
fn memo_key(token: &str, expect: &Expect<'_>) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let token_type = match expect.token_type {
        TokenType::Access => "access",
        TokenType::Id => "id",
        TokenType::Logout => "logout",
    };
    let leeway = expect.leeway_secs.to_string();
    let parts = [
        Some(token),
        Some(expect.issuer),
        expect.audience,
        Some(token_type),
        Some(leeway.as_str()),
    ];
    for part in parts {
        match part {
            Some(text) => {
                ctx.update(&(text.len() as u64 + 1).to_be_bytes());
                ctx.update(text.as_bytes());
            }
            None => ctx.update(&0u64.to_be_bytes()),
        }
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

impl IssuerKeys {
    /// Verifies `token` against this issuer's published keys and `expect`.
    pub fn verify<C: DeserializeOwned>(&self, token: &str, expect: &Expect<'_>) -> Result<Verified<C>, VerifyError> {
        let key = memo_key(token, expect);
        let passed = match self.memo.get(&key) {
            Some(passed) => passed,
            None => {
                let passed = Arc::new(self.verify_fully(token, expect)?);
                self.memo.put(key, passed.clone());
                passed
            }
        };
        if !expect.allow_expired && passed.exp.saturating_add(expect.leeway_secs as i64) < Utc::now().timestamp() {
            return Err(VerifyError::Expired);
        }
        let claims = C::deserialize(&passed.claims).map_err(|e| VerifyError::Malformed(e.to_string()))?;
        Ok(Verified {
            kid: passed.kid.clone(),
            alg: passed.alg,
            claims,
        })
    }

    /// Signature, header and every claim check, through `jsonwebtoken`.
    fn verify_fully(&self, token: &str, expect: &Expect<'_>) -> Result<Passed, VerifyError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| VerifyError::Malformed(e.to_string()))?;
        let kid = header.kid.as_deref().ok_or(VerifyError::UnknownKey)?;
        let key = self.keys.iter().find(|k| k.kid == kid).ok_or(VerifyError::UnknownKey)?;
        let alg = jose_alg(key.alg);
        if header.alg != alg {
            return Err(VerifyError::AlgorithmMismatch);
        }
        if !expect.token_type.accepts(header.typ.as_deref()) {
            return Err(VerifyError::WrongType);
        }

        let mut validation = Validation::new(alg);
        validation.leeway = expect.leeway_secs;
        validation.validate_exp = !expect.allow_expired;
        validation.validate_nbf = true;
        validation.set_issuer(&[expect.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        match expect.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        let data = jsonwebtoken::decode::<Value>(token, &key.verifier, &validation).map_err(map_error)?;

        let iat = data
            .claims
            .get("iat")
            .and_then(Value::as_i64)
            .ok_or_else(|| VerifyError::MissingClaim("iat".into()))?;
        if iat > Utc::now().timestamp() + expect.leeway_secs as i64 {
            return Err(VerifyError::IssuedInFuture);
        }
        let exp = data
            .claims
            .get("exp")
            .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f.floor() as i64)))
            .ok_or_else(|| VerifyError::MissingClaim("exp".into()))?;
        Ok(Passed {
            kid: key.kid.clone(),
            alg: key.alg,
            exp,
            claims: data.claims,
        })
    }
}

fn map_error(e: jsonwebtoken::errors::Error) -> VerifyError {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.into_kind() {
        K::InvalidSignature => VerifyError::BadSignature,
        K::ExpiredSignature => VerifyError::Expired,
        K::ImmatureSignature => VerifyError::NotYetValid,
        K::InvalidIssuer => VerifyError::WrongIssuer,
        K::InvalidAudience => VerifyError::WrongAudience,
        K::MissingRequiredClaim(claim) => VerifyError::MissingClaim(claim),
        K::InvalidAlgorithm | K::MissingAlgorithm => VerifyError::AlgorithmMismatch,
        other => VerifyError::Malformed(format!("{other:?}")),
    }
}
