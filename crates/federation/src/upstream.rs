//! The relying-party side of an upstream sign-in, on the `openidconnect` crate: the
//! authorization URL (code flow, PKCE S256, `state`, `nonce`), and the callback (RFC 9207
//! `iss`, the code exchange authenticated by a client secret or a JWT the tenant's own key
//! signs, the ID token's signature, `iss`, `aud`, `azp`, `exp`, `iat` and `nonce`, and
//! userinfo where configured). Microsoft's multi-tenant issuers (`{tenantid}` in the
//! discovered issuer) are checked against the token's `tid`. GitHub, which speaks plain
//! OAuth 2.0, is [`crate::github`]; fetching and caching the upstream's documents is
//! [`crate::fetch`].

use std::sync::Arc;

use base64::Engine;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreClientAuthMethod, CoreGenderClaim, CoreJwsSigningAlgorithm,
};
use openidconnect::{
    AdditionalClaims, AuthType, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, SignatureVerificationError,
    SubjectIdentifier, TokenResponse,
};
use serde::{Deserialize, Serialize};
use tenantry_controlplane::model::{SigningAlg, SocialProvider, SocialProviderKind, UpstreamClientAuth};
use tenantry_keys::IssuerKeys;
use tenantry_oidc::outbound::OutboundRefusal;

pub use crate::fetch::{FETCH_TIMEOUT, FetchError, UpstreamExtras, Upstreams};
use crate::fetch::{Fetcher, Metadata, Want, describe, printable};

/// How far an ID token's `iat` may be from our clock.
const IAT_SKEW: chrono::Duration = chrono::Duration::minutes(5);
/// How long a client assertion we sign for an upstream's token endpoint is valid.
const ASSERTION_SECS: i64 = 60;
/// Google's issuer, the `google` preset's default.
const GOOGLE_ISSUER: &str = "https://accounts.google.com";
/// Microsoft's issuer for work, school and personal accounts, the `microsoft` preset's
/// default.
const MICROSOFT_ISSUER: &str = "https://login.microsoftonline.com/common/v2.0";
/// Where Microsoft's multi-tenant discovery documents put the directory id in `issuer`.
const TENANT_PLACEHOLDER: &str = "{tenantid}";
/// GitHub's web and API addresses, the `github` preset's default.
const GITHUB_WEB: &str = "https://github.com";
const GITHUB_API: &str = "https://api.github.com";

/// What an upstream sign-in went wrong on. Each maps to a stable code in the HTTP crate.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("the provider's address is refused: {0}")]
    Refused(#[from] OutboundRefusal),
    #[error("the provider could not be reached: {0}")]
    Unreachable(String),
    #[error("the provider's answer is not usable: {0}")]
    BadAnswer(String),
    #[error("the provider refused the sign-in: {0}")]
    Denied(String),
    #[error("the answer did not come from the provider this sign-in went to")]
    Mixup,
    #[error("the answer of the provider is not valid: {0}")]
    Invalid(String),
}

/// How a provider is spoken to, from its kind and `issuer_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protocol {
    /// OpenID Connect, discovered at `issuer` (`oidc`, `google`, `microsoft`).
    Oidc { issuer: String },
    /// GitHub's OAuth 2.0 and REST API: github.com, or GitHub Enterprise Server at `web`
    /// (API under `{web}/api/v3`).
    GitHub { web: String, api: String },
}

impl Protocol {
    pub fn of(provider: &SocialProvider) -> Result<Self, UpstreamError> {
        let configured = provider.issuer_url.clone();
        Ok(match provider.kind {
            SocialProviderKind::Oidc => Self::Oidc {
                issuer: configured.ok_or_else(|| UpstreamError::BadAnswer("no issuer_url is configured".into()))?,
            },
            SocialProviderKind::Google => Self::Oidc {
                issuer: configured.unwrap_or_else(|| GOOGLE_ISSUER.to_owned()),
            },
            SocialProviderKind::Microsoft => Self::Oidc {
                issuer: configured.unwrap_or_else(|| MICROSOFT_ISSUER.to_owned()),
            },
            SocialProviderKind::Github => {
                let web = configured
                    .as_deref()
                    .unwrap_or(GITHUB_WEB)
                    .trim_end_matches('/')
                    .to_owned();
                let api = if web == GITHUB_WEB {
                    GITHUB_API.to_owned()
                } else {
                    format!("{web}/api/v3")
                };
                Self::GitHub { web, api }
            }
        })
    }

    /// The address a sign-in is pinned to from its start to its callback.
    pub fn origin(&self) -> &str {
        match self {
            Self::Oidc { issuer } => issuer,
            Self::GitHub { web, .. } => web,
        }
    }
}

/// How Tenantry authenticates at the provider's token endpoint, with what it needs.
pub enum ClientCredentials {
    /// A public client: PKCE only.
    Public,
    /// The provider's client secret (opened from its seal).
    Secret(String),
    /// A JWT signed with the tenant's key (`private_key_jwt`), preferring this algorithm.
    TenantKey(Arc<IssuerKeys>, SigningAlg),
}

/// What the sign-in's first leg leaves with the browser (sealed in a cookie by the HTTP
/// crate) for the callback to check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub provider: String,
    /// The issuer (or GitHub's address) the browser was sent to.
    pub issuer: String,
    pub state: String,
    /// Empty for a provider without ID tokens (GitHub).
    pub nonce: String,
    pub verifier: String,
}

/// The query of the callback.
#[derive(Debug, Default)]
pub struct Callback<'a> {
    pub code: Option<&'a str>,
    pub iss: Option<&'a str>,
    pub error: Option<&'a str>,
}

/// Who the upstream says signed in, from its validated ID token (and userinfo), or from
/// GitHub's user API.
#[derive(Debug, Clone)]
pub struct UpstreamIdentity {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    /// The upstream's `amr`, when it sent one.
    pub amr: Vec<String>,
    /// Every claim the upstream gave (for the tenant's claim mapping).
    pub claims: serde_json::Map<String, serde_json::Value>,
}

impl UpstreamIdentity {
    /// The identity `claims` describe (their `sub` already checked by the caller).
    pub(crate) fn from_claims(
        subject: String,
        kind: SocialProviderKind,
        claims: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Self, UpstreamError> {
        if subject.is_empty() || subject.len() > 255 {
            return Err(UpstreamError::Invalid(
                "the subject is empty or longer than 255 bytes".into(),
            ));
        }
        let truthy = |claim: &str| match claims.get(claim) {
            Some(serde_json::Value::Bool(b)) => *b,
            // Some providers send the string "true".
            Some(serde_json::Value::String(s)) => s == "true",
            _ => false,
        };
        let email_verified = match kind {
            // Entra ID's `email` is whatever the directory holds; it is proven only where
            // the token says the domain owner vouches for it (`xms_edov`, an optional
            // claim), unless it sends `email_verified` itself.
            SocialProviderKind::Microsoft if !claims.contains_key("email_verified") => truthy("xms_edov"),
            _ => truthy("email_verified"),
        };
        let email = claims.get("email").and_then(|v| v.as_str()).map(str::to_owned);
        let amr = claims
            .get("amr")
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .take(16)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            subject,
            email,
            email_verified,
            amr,
            claims,
        })
    }
}

/// Every claim of a userinfo answer beyond the standard ones, kept for the mapping.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct OtherClaims(serde_json::Map<String, serde_json::Value>);

impl AdditionalClaims for OtherClaims {}

impl Upstreams {
    /// Reaches the provider now (the admin's test): what is wrong, or its endpoints.
    pub async fn probe(&self, provider: &SocialProvider) -> Result<serde_json::Value, UpstreamError> {
        let issuer = match Protocol::of(provider)? {
            Protocol::Oidc { issuer } => issuer,
            Protocol::GitHub { web, api } => return crate::github::probe(self, &web, &api).await,
        };
        let metadata = self.metadata(&issuer, Want::Live).await?;
        Ok(serde_json::json!({
            "issuer": metadata.issuer().as_str(),
            "authorization_endpoint": metadata.authorization_endpoint().as_str(),
            "token_endpoint": metadata.token_endpoint().map(|u| u.as_str()),
            "userinfo_endpoint": metadata.userinfo_endpoint().map(|u| u.as_str()),
            "jwks_keys": metadata.jwks().keys().len(),
            "iss_parameter_supported": metadata.additional_metadata().authorization_response_iss_parameter_supported.unwrap_or(false),
            "multi_tenant": metadata.issuer().as_str().contains(TENANT_PLACEHOLDER),
        }))
    }

    /// The authorization URL to send the browser to, and what the callback will check.
    pub async fn begin(
        &self,
        provider: &SocialProvider,
        redirect_uri: &str,
    ) -> Result<(url::Url, Pending), UpstreamError> {
        let issuer = match Protocol::of(provider)? {
            Protocol::Oidc { issuer } => issuer,
            Protocol::GitHub { web, .. } => return crate::github::begin(provider, &web, redirect_uri),
        };
        let metadata = self.metadata(&issuer, Want::Cached).await?;
        let redirect =
            RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| UpstreamError::BadAnswer(e.to_string()))?;
        let client =
            CoreClient::from_provider_metadata((*metadata).clone(), ClientId::new(provider.client_id.clone()), None)
                .set_redirect_uri(redirect);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        let scopes: Vec<&str> = if provider.scopes.is_empty() {
            vec!["email", "profile"]
        } else {
            provider
                .scopes
                .iter()
                .map(String::as_str)
                .filter(|s| *s != "openid")
                .collect()
        };
        for scope in scopes {
            request = request.add_scope(Scope::new(scope.to_owned()));
        }
        let (url, state, nonce) = request.url();
        let pending = Pending {
            provider: provider.id.clone(),
            issuer,
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            verifier: verifier.secret().clone(),
        };
        Ok((url, pending))
    }

    /// Finishes a sign-in whose `state` the caller has matched to `pending` and spent.
    pub async fn finish(
        &self,
        provider: &SocialProvider,
        credentials: ClientCredentials,
        redirect_uri: &str,
        pending: &Pending,
        callback: &Callback<'_>,
    ) -> Result<UpstreamIdentity, UpstreamError> {
        if let Some(error) = callback.error {
            return Err(UpstreamError::Denied(printable(error, 64)));
        }
        let protocol = Protocol::of(provider)?;
        if protocol.origin() != pending.issuer {
            return Err(UpstreamError::Invalid(
                "the provider's address changed during the sign-in; start it again".into(),
            ));
        }
        let code = callback
            .code
            .filter(|c| !c.is_empty() && c.len() <= 2048)
            .ok_or_else(|| UpstreamError::Invalid("the answer carries no code".into()))?;
        match protocol {
            Protocol::Oidc { .. } => {
                self.finish_oidc(provider, credentials, redirect_uri, pending, callback, code)
                    .await
            }
            Protocol::GitHub { web, api } => {
                let ClientCredentials::Secret(secret) = credentials else {
                    return Err(UpstreamError::BadAnswer("GitHub needs the client secret".into()));
                };
                let github = crate::github::GitHub {
                    web: &web,
                    api: &api,
                    upstreams: self,
                };
                github.finish(provider, secret, redirect_uri, pending, code).await
            }
        }
    }

    /// The OpenID Connect callback: RFC 9207's `iss`, the code exchange with the PKCE
    /// verifier and the client's authentication, the ID token, and userinfo.
    async fn finish_oidc(
        &self,
        provider: &SocialProvider,
        credentials: ClientCredentials,
        redirect_uri: &str,
        pending: &Pending,
        callback: &Callback<'_>,
        code: &str,
    ) -> Result<UpstreamIdentity, UpstreamError> {
        let metadata = self.metadata(&pending.issuer, Want::Cached).await?;
        let declared = metadata.issuer().as_str();
        let iss_promised = metadata
            .additional_metadata()
            .authorization_response_iss_parameter_supported
            .unwrap_or(false);
        match callback.iss {
            Some(iss) if iss != declared && !tenant_template_matches(declared, iss) => {
                return Err(UpstreamError::Mixup);
            }
            None if iss_promised => return Err(UpstreamError::Mixup),
            _ => {}
        }
        let redirect =
            RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| UpstreamError::BadAnswer(e.to_string()))?;
        let (secret, assertion) = match credentials {
            ClientCredentials::Public => (None, None),
            ClientCredentials::Secret(secret) => (Some(ClientSecret::new(secret)), None),
            ClientCredentials::TenantKey(keys, preferred) => {
                (None, Some(client_assertion(&metadata, provider, &keys, preferred)?))
            }
        };
        let mut client =
            CoreClient::from_provider_metadata((*metadata).clone(), ClientId::new(provider.client_id.clone()), secret)
                .set_redirect_uri(redirect);
        let methods = metadata.token_endpoint_auth_methods_supported();
        let basic = match provider.client_auth {
            Some(UpstreamClientAuth::ClientSecretBasic) => true,
            Some(UpstreamClientAuth::ClientSecretPost | UpstreamClientAuth::PrivateKeyJwt) => false,
            None => assertion.is_none() && methods.is_none_or(|m| m.contains(&CoreClientAuthMethod::ClientSecretBasic)),
        };
        if !basic {
            client = client.set_auth_type(AuthType::RequestBody);
        }
        let http = Fetcher::new(self);
        let mut request = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| UpstreamError::BadAnswer(describe(&e)))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier.clone()));
        if let Some(assertion) = assertion {
            request = request
                .add_extra_param(
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                )
                .add_extra_param("client_assertion", assertion);
        }
        let response = request.request_async(&http).await.map_err(|e| match e {
            openidconnect::RequestTokenError::Request(e) => UpstreamError::Unreachable(e.0),
            openidconnect::RequestTokenError::ServerResponse(e) => UpstreamError::Invalid(format!(
                "the token endpoint answered {}{}",
                e.error(),
                e.error_description()
                    .map(|d| format!(" ({})", printable(d, 200)))
                    .unwrap_or_default()
            )),
            other => UpstreamError::Invalid(describe(&other)),
        })?;
        let id_token = response
            .id_token()
            .ok_or_else(|| UpstreamError::Invalid("the token answer carries no ID token".into()))?;
        let nonce = Nonce::new(pending.nonce.clone());
        let multi_tenant = declared.contains(TENANT_PLACEHOLDER);
        let verify = |metadata: &Metadata| {
            let algs = signing_algs(metadata);
            let now = chrono::Utc::now();
            let client =
                CoreClient::from_provider_metadata(metadata.clone(), ClientId::new(provider.client_id.clone()), None);
            let verifier = client
                .id_token_verifier()
                .set_allowed_algs(algs)
                // A multi-tenant issuer is a template: `iss` is checked below, with `tid`.
                .require_issuer_match(!multi_tenant)
                .set_issue_time_verifier_fn(move |iat| {
                    if (iat - now).abs() <= IAT_SKEW {
                        Ok(())
                    } else {
                        Err(format!("issued at {iat}, too far from now"))
                    }
                });
            id_token
                .claims(&verifier, &nonce)
                .map(|claims| claims.subject().to_string())
        };
        let subject = match verify(&metadata) {
            Ok(subject) => subject,
            Err(ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoMatchingKey)) => {
                // A rotated key: fetch the JWKS again (at most once a minute) and retry once.
                let fresh = self.metadata(&pending.issuer, Want::NewKey).await?;
                verify(&fresh).map_err(|e| UpstreamError::Invalid(describe(&e)))?
            }
            Err(e) => return Err(UpstreamError::Invalid(describe(&e))),
        };
        // The signature and claims are verified: read them all for the mapping.
        let mut claims = payload(&id_token.to_string())?;
        check_directory(provider, declared, &claims)?;
        if provider.fetch_userinfo {
            let more = self
                .userinfo(&metadata, provider, response.access_token().clone(), &subject)
                .await?;
            for (name, value) in more {
                if !matches!(name.as_str(), "sub" | "iss" | "aud" | "exp" | "iat" | "nonce" | "azp") {
                    claims.insert(name, value);
                }
            }
        }
        UpstreamIdentity::from_claims(subject, provider.kind, claims)
    }

    /// The claims of the provider's userinfo endpoint for the token of `subject` (the
    /// answer's `sub` must be the ID token's, OpenID Connect Core 5.3.2).
    async fn userinfo(
        &self,
        metadata: &Metadata,
        provider: &SocialProvider,
        token: openidconnect::AccessToken,
        subject: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, UpstreamError> {
        let client =
            CoreClient::from_provider_metadata(metadata.clone(), ClientId::new(provider.client_id.clone()), None);
        let http = Fetcher::new(self);
        let request = client
            .user_info(token, Some(SubjectIdentifier::new(subject.to_owned())))
            .map_err(|_| UpstreamError::BadAnswer("the provider has no userinfo endpoint".into()))?
            .require_issuer_match(!metadata.issuer().as_str().contains(TENANT_PLACEHOLDER));
        let claims = request
            .request_async::<OtherClaims, _, CoreGenderClaim>(&http)
            .await
            .map_err(|e| match e {
                openidconnect::UserInfoError::Request(e) => UpstreamError::Unreachable(e.0),
                other => UpstreamError::Invalid(format!("userinfo: {}", describe(&other))),
            })?;
        match serde_json::to_value(&claims) {
            Ok(serde_json::Value::Object(map)) => Ok(map),
            _ => Err(UpstreamError::Invalid("userinfo is not a JSON object".into())),
        }
    }
}

/// Whether `configured` is an address of Microsoft's multi-tenant issuer whose discovery
/// document declares the template `declared` (`https://login.microsoftonline.com/{tenantid}/v2.0`
/// for `…/common/v2.0` or `…/organizations/v2.0`): the same text around one path segment.
pub(crate) fn tenant_template_matches(declared: &str, configured: &str) -> bool {
    let Some((before, after)) = declared.split_once(TENANT_PLACEHOLDER) else {
        return false;
    };
    configured
        .strip_prefix(before)
        .and_then(|rest| rest.strip_suffix(after))
        .is_some_and(|segment| !segment.is_empty() && !segment.contains(['/', '?', '#', '{', '}']))
}

/// A multi-tenant issuer's token must name the issuer its `tid` fills in, and, where the
/// provider lists `allowed_tenants`, a directory on the list.
fn check_directory(
    provider: &SocialProvider,
    declared: &str,
    claims: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), UpstreamError> {
    let tid = claims.get("tid").and_then(|v| v.as_str());
    if declared.contains(TENANT_PLACEHOLDER) {
        let tid = tid
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
            .ok_or_else(|| UpstreamError::Invalid("a multi-tenant issuer's token names no directory (`tid`)".into()))?;
        let expected = declared.replace(TENANT_PLACEHOLDER, tid);
        if claims.get("iss").and_then(|v| v.as_str()) != Some(expected.as_str()) {
            return Err(UpstreamError::Invalid(
                "the token's issuer is not its directory's (`iss` and `tid` disagree)".into(),
            ));
        }
    }
    if !provider.allowed_tenants.is_empty() && !tid.is_some_and(|t| provider.allowed_tenants.iter().any(|a| a == t)) {
        return Err(UpstreamError::Denied(
            "accounts of this directory may not sign in here".into(),
        ));
    }
    Ok(())
}

/// The `private_key_jwt` assertion (RFC 7523 section 3): `iss` = `sub` = our client id,
/// audience the provider's issuer alone, single use (`jti`), a minute of validity, signed
/// with the tenant's active key of an algorithm the provider accepts (`preferred` first).
fn client_assertion(
    metadata: &Metadata,
    provider: &SocialProvider,
    keys: &IssuerKeys,
    preferred: SigningAlg,
) -> Result<String, UpstreamError> {
    let accepted: Option<Vec<String>> = metadata.token_endpoint_auth_signing_alg_values_supported().map(|algs| {
        algs.iter()
            .filter_map(|alg| serde_json::to_value(alg).ok()?.as_str().map(str::to_owned))
            .collect()
    });
    let ours = keys.algorithms();
    let usable = |alg: &SigningAlg| accepted.as_ref().is_none_or(|a| a.iter().any(|x| x == alg.as_str()));
    let alg = std::iter::once(preferred)
        .chain(ours.iter().copied())
        .find(|alg| ours.contains(alg) && usable(alg))
        .ok_or_else(|| {
            UpstreamError::BadAnswer(
                "the provider accepts none of the tenant's key algorithms for private_key_jwt".into(),
            )
        })?;
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({
        "iss": provider.client_id,
        "sub": provider.client_id,
        "aud": metadata.issuer().as_str(),
        "jti": uuid::Uuid::new_v4().to_string(),
        "iat": now,
        "exp": now + ASSERTION_SECS,
    });
    keys.sign(alg, "JWT", &claims)
        .map_err(|e| UpstreamError::BadAnswer(format!("the client assertion could not be signed: {e}")))
}

/// The algorithms an upstream's ID tokens may be signed with: what it declares, less
/// `none` and the symmetric ones (a client secret must not sign identities).
fn signing_algs(metadata: &Metadata) -> Vec<CoreJwsSigningAlgorithm> {
    metadata
        .id_token_signing_alg_values_supported()
        .iter()
        .filter(|alg| {
            !matches!(
                alg,
                CoreJwsSigningAlgorithm::None
                    | CoreJwsSigningAlgorithm::HmacSha256
                    | CoreJwsSigningAlgorithm::HmacSha384
                    | CoreJwsSigningAlgorithm::HmacSha512
            )
        })
        .cloned()
        .collect()
}

/// The claims of a compact JWS whose signature was verified.
fn payload(jwt: &str) -> Result<serde_json::Map<String, serde_json::Value>, UpstreamError> {
    let part = jwt
        .split('.')
        .nth(1)
        .ok_or_else(|| UpstreamError::Invalid("the ID token is not a compact JWS".into()))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| UpstreamError::Invalid("the ID token's payload is not base64url".into()))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| UpstreamError::Invalid("the ID token's payload is not a JSON object".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(id: &str, kind: SocialProviderKind) -> SocialProvider {
        SocialProvider {
            id: id.into(),
            kind,
            display_name: None,
            client_id: "c".into(),
            client_secret: None,
            issuer_url: None,
            scopes: vec![],
            enabled: true,
            icon_url: None,
            link_verified_email: false,
            trust_upstream_mfa: false,
            claim_mapping: Default::default(),
            client_auth: None,
            fetch_userinfo: false,
            allowed_tenants: vec![],
        }
    }

    #[test]
    fn presets_name_their_addresses() {
        let mut provider = provider("g", SocialProviderKind::Google);
        let issuer = |p: &SocialProvider| Protocol::of(p).unwrap().origin().to_owned();
        assert_eq!(issuer(&provider), GOOGLE_ISSUER);
        provider.kind = SocialProviderKind::Microsoft;
        assert_eq!(issuer(&provider), MICROSOFT_ISSUER);
        provider.kind = SocialProviderKind::Github;
        assert_eq!(
            Protocol::of(&provider).unwrap(),
            Protocol::GitHub {
                web: GITHUB_WEB.into(),
                api: GITHUB_API.into()
            }
        );
        provider.issuer_url = Some("https://git.corp.example/".into());
        assert_eq!(
            Protocol::of(&provider).unwrap(),
            Protocol::GitHub {
                web: "https://git.corp.example".into(),
                api: "https://git.corp.example/api/v3".into()
            }
        );
        provider.kind = SocialProviderKind::Oidc;
        provider.issuer_url = None;
        assert!(Protocol::of(&provider).is_err());
    }

    #[test]
    fn a_tenant_template_matches_one_path_segment_only() {
        let template = "https://login.microsoftonline.com/{tenantid}/v2.0";
        assert!(tenant_template_matches(template, MICROSOFT_ISSUER));
        assert!(tenant_template_matches(
            template,
            "https://login.microsoftonline.com/organizations/v2.0"
        ));
        assert!(!tenant_template_matches(
            template,
            "https://login.microsoftonline.com//v2.0"
        ));
        assert!(!tenant_template_matches(
            template,
            "https://login.microsoftonline.com/a/b/v2.0"
        ));
        assert!(!tenant_template_matches(template, "https://evil.example/common/v2.0"));
        assert!(!tenant_template_matches(
            "https://issuer.example",
            "https://issuer.example"
        ));
    }

    #[test]
    fn a_multi_tenant_token_must_name_its_own_directory() {
        let template = "https://login.example/{tenantid}/v2.0";
        let mut provider = provider("ms", SocialProviderKind::Microsoft);
        let claims = |iss: &str, tid: &str| serde_json::json!({"iss": iss, "tid": tid}).as_object().unwrap().clone();
        check_directory(&provider, template, &claims("https://login.example/t1/v2.0", "t1")).unwrap();
        assert!(check_directory(&provider, template, &claims("https://login.example/t1/v2.0", "t2")).is_err());
        assert!(check_directory(&provider, template, &claims("https://login.example/t1/v2.0", "")).is_err());
        provider.allowed_tenants = vec!["t2".into()];
        assert!(matches!(
            check_directory(&provider, template, &claims("https://login.example/t1/v2.0", "t1")),
            Err(UpstreamError::Denied(_))
        ));
        check_directory(&provider, template, &claims("https://login.example/t2/v2.0", "t2")).unwrap();
    }

    #[test]
    fn payload_reads_a_compact_jws() {
        let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"sub":"a","email":"x@y"}"#);
        let claims = payload(&format!("e30.{body}.sig")).unwrap();
        assert_eq!(claims["sub"], "a");
        assert!(payload("nodots").is_err());
        assert!(payload("a.!!!.c").is_err());
    }
}
