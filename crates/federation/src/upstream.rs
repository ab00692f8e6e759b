//! The relying-party side of an upstream sign-in, on the `openidconnect` crate: the
//! upstream's discovery document and JWKS (fetched under the installation's outbound
//! policy, bounded, cached as their `Cache-Control` says and fetched again on an unknown
//! signing key, at most once a minute), the authorization URL (code flow, PKCE S256,
//! `state`, `nonce`), and the callback (RFC 9207 `iss`, the code exchange authenticated
//! by a client secret or a JWT the tenant's own key signs, the ID token's signature,
//! `iss`, `aud`, `azp`, `exp`, `iat` and `nonce`, and userinfo where configured).
//! Microsoft's multi-tenant issuers (`{tenantid}` in the discovered issuer) are checked
//! against the token's `tid`. GitHub, which speaks plain OAuth 2.0, is [`crate::github`].

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthenticationFlow, CoreClaimName, CoreClaimType, CoreClient, CoreClientAuthMethod,
    CoreGenderClaim, CoreGrantType, CoreJsonWebKey, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm, CoreResponseMode, CoreResponseType,
    CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalClaims, AdditionalProviderMetadata, AuthType, AuthorizationCode, ClaimsVerificationError, ClientId,
    ClientSecret, CsrfToken, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, ProviderMetadata,
    RedirectUrl, Scope, SignatureVerificationError, SubjectIdentifier, TokenResponse,
};
use serde::{Deserialize, Serialize};
use tenantry_controlplane::model::{SigningAlg, SocialProvider, SocialProviderKind, UpstreamClientAuth};
use tenantry_keys::IssuerKeys;
use tenantry_oidc::outbound::{OutboundPolicy, OutboundRefusal};

/// How long one call to an upstream may take, connection included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read from an upstream (discovery, JWKS, token response).
const MAX_BODY: usize = 256 * 1024;
/// Bounds of how long a discovery document and JWKS stay cached.
const MIN_TTL: Duration = Duration::from_secs(60);
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// An unknown `kid` fetches the JWKS again only when the cached copy is older than this.
const REFETCH_AFTER: Duration = Duration::from_secs(60);
/// Upstream issuers cached at once (a tenant admin names them, so the count is bounded).
const MAX_CACHED: usize = 1024;
/// After a failed discovery, sign-ins through that issuer fail at once for this long
/// instead of each trying again (and holding a connection for up to the timeout).
const FAILURE_BACKOFF: Duration = Duration::from_secs(15);
/// Calls to upstreams in flight at once, over all tenants: what unauthenticated sign-in
/// traffic can make the server open is capped.
const MAX_IN_FLIGHT: usize = 32;
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

/// The discovery fields `openidconnect` does not read that a relying party needs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UpstreamExtras {
    /// RFC 9207: the upstream sends `iss` with its authorization responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_response_iss_parameter_supported: Option<bool>,
}

impl AdditionalProviderMetadata for UpstreamExtras {}

type Metadata = ProviderMetadata<
    UpstreamExtras,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// Every claim of a userinfo answer beyond the standard ones, kept for the mapping.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct OtherClaims(serde_json::Map<String, serde_json::Value>);

impl AdditionalClaims for OtherClaims {}

struct Cached {
    metadata: Arc<Metadata>,
    fetched: Instant,
    fresh_until: Instant,
}

/// How fresh the metadata must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// The cached copy while it is fresh.
    Cached,
    /// A signing key the cached JWKS lacks: fetch again unless the copy is very young.
    NewKey,
    /// Fetch now (the admin's test), whatever the cache or a recent failure says.
    Live,
}

/// The installation's upstream client: one HTTP client under the outbound policy and the
/// cache of upstream metadata, shared by every tenant (an issuer's documents are the same
/// whoever asks).
pub struct Upstreams {
    policy: OutboundPolicy,
    http: reqwest::Client,
    cache: Mutex<HashMap<String, Cached>>,
    /// The last failed discovery per issuer: when, and why.
    failures: Mutex<HashMap<String, (Instant, String)>>,
    in_flight: tokio::sync::Semaphore,
    /// One discovery at a time per issuer: concurrent sign-ins that find the cache empty
    /// wait for the one fetch instead of each fetching (and using up the in-flight cap).
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// An error of one outbound call, as `openidconnect` wants it (`std::error::Error`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FetchError(pub(crate) String);

impl Upstreams {
    pub fn new(policy: OutboundPolicy) -> reqwest::Result<Self> {
        Ok(Self {
            policy,
            http: policy.client(FETCH_TIMEOUT)?,
            cache: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            in_flight: tokio::sync::Semaphore::new(MAX_IN_FLIGHT),
            fetching: Mutex::new(HashMap::new()),
        })
    }

    /// One outbound call: the URL is checked against the policy (the scheme here, every
    /// resolved address in the client), the answer is cut at [`MAX_BODY`], and the
    /// shortest `max-age` seen is noted in `ttl`.
    pub(crate) async fn call(
        &self,
        request: openidconnect::HttpRequest,
        ttl: &Mutex<Duration>,
    ) -> Result<openidconnect::HttpResponse, FetchError> {
        let url = url::Url::parse(&request.uri().to_string()).map_err(|e| FetchError(e.to_string()))?;
        self.policy.check_url(&url).map_err(|e| FetchError(e.to_string()))?;
        let _permit = self
            .in_flight
            .try_acquire()
            .map_err(|_| FetchError("too many calls to upstream providers are in flight; retry shortly".into()))?;
        let (parts, body) = request.into_parts();
        let mut response = self
            .http
            .request(parts.method, url)
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .map_err(|e| FetchError(describe(&e)))?;
        let max_age = response
            .headers()
            .get(http::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .map(cache_lifetime);
        if let Some(max_age) = max_age {
            let mut ttl = ttl.lock().expect("ttl lock");
            *ttl = (*ttl).min(max_age);
        }
        let mut builder = http::Response::builder().status(response.status());
        for (name, value) in response.headers() {
            builder = builder.header(name, value);
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| FetchError(describe(&e)))? {
            if bytes.len() + chunk.len() > MAX_BODY {
                return Err(FetchError(format!("the answer is larger than {MAX_BODY} bytes")));
            }
            bytes.extend_from_slice(&chunk);
        }
        builder.body(bytes).map_err(|e| FetchError(e.to_string()))
    }

    /// The issuer's discovery document and JWKS: see [`Want`]. A discovery that failed
    /// less than [`FAILURE_BACKOFF`] ago fails again at once (except [`Want::Live`]).
    async fn metadata(&self, issuer: &str, want: Want) -> Result<Arc<Metadata>, UpstreamError> {
        let asked = Instant::now();
        if let Some(cached) = self.cached(issuer, want, asked) {
            return Ok(cached);
        }
        let turn = {
            let mut fetching = self.fetching.lock().expect("fetching lock");
            if fetching.len() >= MAX_CACHED {
                fetching.retain(|_, turn| Arc::strong_count(turn) > 1);
            }
            fetching.entry(issuer.to_owned()).or_default().clone()
        };
        let _turn = turn.lock().await;
        // Whoever held the turn may have fetched it meanwhile.
        if let Some(cached) = self.cached(issuer, want, asked) {
            return Ok(cached);
        }
        let now = Instant::now();
        if want != Want::Live
            && let Some((failed, why)) = self.failures.lock().expect("failures lock").get(issuer)
            && now.duration_since(*failed) < FAILURE_BACKOFF
        {
            return Err(UpstreamError::Unreachable(format!(
                "{why} (a few seconds ago; not tried again yet)"
            )));
        }
        let http = Fetcher::new(self);
        let discovered = self.discover(issuer, &http).await;
        let mut failures = self.failures.lock().expect("failures lock");
        let metadata = match discovered {
            Ok(metadata) => {
                failures.remove(issuer);
                metrics::counter!("upstream_discoveries_total", "outcome" => "fetched").increment(1);
                metadata
            }
            Err(e) => {
                metrics::counter!("upstream_discoveries_total", "outcome" => "failed").increment(1);
                if failures.len() >= MAX_CACHED {
                    failures.clear();
                }
                failures.insert(issuer.to_owned(), (Instant::now(), e.to_string()));
                return Err(e);
            }
        };
        drop(failures);
        let metadata = Arc::new(metadata);
        let ttl = http.ttl.into_inner().expect("ttl lock").clamp(MIN_TTL, MAX_TTL);
        let mut cache = self.cache.lock().expect("cache lock");
        if cache.len() >= MAX_CACHED && !cache.contains_key(issuer) {
            let oldest = cache.iter().min_by_key(|(_, c)| c.fetched).map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                cache.remove(&oldest);
            }
        }
        cache.insert(
            issuer.to_owned(),
            Cached {
                metadata: metadata.clone(),
                fetched: now,
                fresh_until: now + ttl,
            },
        );
        Ok(metadata)
    }

    /// The cached metadata of `issuer` if it serves `want` for a caller that asked at
    /// `asked` (a copy fetched after that is fresh enough for anything).
    fn cached(&self, issuer: &str, want: Want, asked: Instant) -> Option<Arc<Metadata>> {
        let now = Instant::now();
        let cache = self.cache.lock().expect("cache lock");
        let cached = cache.get(issuer)?;
        let usable = cached.fetched >= asked
            || match want {
                Want::Cached => now < cached.fresh_until,
                Want::NewKey => now.duration_since(cached.fetched) < REFETCH_AFTER,
                Want::Live => false,
            };
        usable.then(|| cached.metadata.clone())
    }

    /// OpenID Connect Discovery at `issuer`, then its JWKS. The document's `issuer` must
    /// be `issuer` exactly, or Microsoft's multi-tenant template of it (see
    /// [`tenant_template_matches`]), which each ID token's `tid` then fills in.
    async fn discover(&self, issuer: &str, http: &Fetcher<'_>) -> Result<Metadata, UpstreamError> {
        let issuer_url = url::Url::parse(issuer).map_err(|e| UpstreamError::BadAnswer(e.to_string()))?;
        self.policy.check_url(&issuer_url)?;
        let location = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
        let request = http::Request::get(location)
            .header(http::header::ACCEPT, "application/json")
            .body(Vec::new())
            .map_err(|e| UpstreamError::BadAnswer(e.to_string()))?;
        let response = openidconnect::AsyncHttpClient::call(http, request)
            .await
            .map_err(|e| UpstreamError::Unreachable(e.0))?;
        if !response.status().is_success() {
            return Err(UpstreamError::BadAnswer(format!(
                "the discovery document answered HTTP {}",
                response.status().as_u16()
            )));
        }
        let metadata: Metadata = serde_json::from_slice(response.body())
            .map_err(|e| UpstreamError::BadAnswer(format!("the discovery document is not valid: {e}")))?;
        let declared = metadata.issuer().as_str();
        if declared != issuer && !tenant_template_matches(declared, issuer) {
            return Err(UpstreamError::BadAnswer(format!(
                "the discovery document names another issuer ({})",
                printable(declared, 200)
            )));
        }
        let jwks = CoreJsonWebKeySet::fetch_async(metadata.jwks_uri(), http)
            .await
            .map_err(|e| match e {
                openidconnect::DiscoveryError::Request(e) => UpstreamError::Unreachable(e.0),
                other => UpstreamError::BadAnswer(format!("the JWKS: {}", describe(&other))),
            })?;
        Ok(metadata.set_jwks(jwks))
    }

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
fn tenant_template_matches(declared: &str, configured: &str) -> bool {
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

/// The HTTP client `openidconnect` calls: [`Upstreams::call`], noting the shortest
/// `max-age` of the answers it fetched.
pub(crate) struct Fetcher<'a> {
    upstreams: &'a Upstreams,
    ttl: Mutex<Duration>,
}

impl<'a> Fetcher<'a> {
    pub(crate) fn new(upstreams: &'a Upstreams) -> Self {
        Self {
            upstreams,
            ttl: Mutex::new(DEFAULT_TTL),
        }
    }
}

type Fetching<'c> = Pin<Box<dyn Future<Output = Result<openidconnect::HttpResponse, FetchError>> + Send + 'c>>;

impl<'c> openidconnect::AsyncHttpClient<'c> for Fetcher<'_> {
    type Error = FetchError;
    type Future = Fetching<'c>;

    fn call(&'c self, request: openidconnect::HttpRequest) -> Self::Future {
        Box::pin(self.upstreams.call(request, &self.ttl))
    }
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

/// How long an answer may be cached by its `Cache-Control` value: `max-age`, or the
/// shortest time for `no-store`/`no-cache` (the bounds are applied by the caller).
fn cache_lifetime(value: &str) -> Duration {
    let mut lifetime = DEFAULT_TTL;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Duration::ZERO;
        }
        if let Some(secs) = lower.strip_prefix("max-age=")
            && let Ok(secs) = secs.trim_matches('"').parse::<u64>()
        {
            lifetime = Duration::from_secs(secs);
        }
    }
    lifetime
}

/// An error's text with its sources, as one line.
pub(crate) fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    printable(&text, 300)
}

/// `value` cut to `max` characters with control characters dropped (it may come from the
/// upstream and ends on a page and in the log).
pub(crate) fn printable(value: &str, max: usize) -> String {
    value.chars().filter(|c| !c.is_control()).take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_lifetime_follows_max_age_and_refuses_to_cache_no_store() {
        assert_eq!(cache_lifetime("public, max-age=300"), Duration::from_secs(300));
        assert_eq!(cache_lifetime("no-store"), Duration::ZERO);
        assert_eq!(cache_lifetime("max-age=\"abc\""), DEFAULT_TTL);
        assert_eq!(cache_lifetime(""), DEFAULT_TTL);
    }

    #[test]
    fn presets_name_their_addresses() {
        let mut provider = SocialProvider {
            id: "g".into(),
            kind: SocialProviderKind::Google,
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
        };
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
        let mut provider = SocialProvider {
            id: "ms".into(),
            kind: SocialProviderKind::Microsoft,
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
        };
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

    #[tokio::test]
    async fn a_failed_discovery_is_not_retried_at_once_but_a_live_test_retries() {
        let upstreams = Upstreams::new(OutboundPolicy {
            allow_private_networks: true,
        })
        .unwrap();
        // Nothing listens on port 9 (discard) here: the connection is refused at once.
        let issuer = "http://127.0.0.1:9";
        let first = upstreams.metadata(issuer, Want::Cached).await;
        assert!(matches!(first, Err(UpstreamError::Unreachable(_))), "{first:?}");
        let again = upstreams.metadata(issuer, Want::Cached).await;
        assert!(
            matches!(&again, Err(UpstreamError::Unreachable(why)) if why.contains("not tried again")),
            "{again:?}"
        );
        let live = upstreams.metadata(issuer, Want::Live).await;
        assert!(
            matches!(&live, Err(UpstreamError::Unreachable(why)) if !why.contains("not tried again")),
            "{live:?}"
        );
    }

    #[tokio::test]
    async fn calls_past_the_in_flight_cap_are_refused_without_connecting() {
        let upstreams = Upstreams::new(OutboundPolicy {
            allow_private_networks: true,
        })
        .unwrap();
        let _all = upstreams.in_flight.acquire_many(MAX_IN_FLIGHT as u32).await.unwrap();
        let refused = upstreams.metadata("http://127.0.0.1:9", Want::Live).await;
        assert!(
            matches!(&refused, Err(UpstreamError::Unreachable(why)) if why.contains("in flight")),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn a_private_issuer_is_refused_before_any_call() {
        let upstreams = Upstreams::new(OutboundPolicy::default()).unwrap();
        let refused = upstreams.metadata("http://127.0.0.1:9/", Want::Cached).await;
        assert!(matches!(refused, Err(UpstreamError::Refused(_))), "{refused:?}");
        let refused = upstreams.metadata("https://10.0.0.1/", Want::Cached).await;
        assert!(matches!(refused, Err(UpstreamError::Refused(_))), "{refused:?}");
    }
}
