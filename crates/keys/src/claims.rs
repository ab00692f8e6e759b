//! The claim sets Tenantry signs: JWT access tokens (RFC 9068) and ID tokens (OIDC Core),
//! and the `at_hash` / `c_hash` helper.

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tenantry_controlplane::model::SigningAlg;

/// `aud`: one string or several (RFC 7519 4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn contains(&self, aud: &str) -> bool {
        match self {
            Audience::One(one) => one == aud,
            Audience::Many(many) => many.iter().any(|a| a == aud),
        }
    }

    /// The single value when there is one, the list otherwise.
    pub fn from_list(mut list: Vec<String>) -> Self {
        if list.len() == 1 {
            Audience::One(list.remove(0))
        } else {
            Audience::Many(list)
        }
    }
}

/// A JWT access token (RFC 9068 section 2.2) with Tenantry's `tid` (tenant slug).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The upstream identity provider the user signed in with (federation), by its id in
    /// the tenant's settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp: Option<String>,
    pub tid: String,
    /// The user's roles in the tenant (the `roles` scope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// The permissions those roles carry, for APIs (the `roles` scope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
}

impl AccessTokenClaims {
    /// The granted scopes, split on spaces.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.as_deref().unwrap_or("").split(' ').filter(|s| !s.is_empty())
    }
}

/// An ID token (OIDC Core section 2) with user claims released by scope in `claims`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub exp: i64,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c_hash: Option<String>,
    /// The upstream identity provider the user signed in with (federation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp: Option<String>,
    pub tid: String,
    /// Profile, email, phone, address and custom claims released by the granted scopes.
    #[serde(flatten)]
    pub claims: Map<String, Value>,
}

/// `at_hash` / `c_hash` (OIDC Core 3.1.3.6 / 3.3.2.11): the left half of the hash of the
/// ASCII value, with the hash of the token's `alg`. For EdDSA over Ed25519 that hash is
/// SHA-512 (the curve's own hash), as the OpenID Foundation's errata settle it.
pub fn half_hash(alg: SigningAlg, value: &str) -> String {
    let algorithm = match alg {
        SigningAlg::Rs256 | SigningAlg::Es256 => &digest::SHA256,
        SigningAlg::EdDsa => &digest::SHA512,
    };
    let hash = digest::digest(algorithm, value.as_bytes());
    let bytes = hash.as_ref();
    URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_matches_the_oidc_core_example() {
        // OIDC Core A.3: access token and at_hash of the RS256 example.
        assert_eq!(
            half_hash(SigningAlg::Rs256, "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
        assert_eq!(half_hash(SigningAlg::EdDsa, "x").len(), 43);
    }

    #[test]
    fn audience_is_a_string_or_a_list() {
        let one: Audience = serde_json::from_str(r#""a""#).unwrap();
        let many: Audience = serde_json::from_str(r#"["a","b"]"#).unwrap();
        assert!(one.contains("a") && !one.contains("b"));
        assert!(many.contains("b"));
        assert_eq!(Audience::from_list(vec!["x".into()]), Audience::One("x".into()));
    }
}
