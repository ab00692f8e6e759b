//! The relying-party side of an upstream sign-in, on the `openidconnect` crate: the
//! upstream's discovery document and JWKS (fetched under the installation's outbound
//! policy, bounded, cached as their `Cache-Control` says and fetched again on an unknown
//! signing key, at most once a minute), the authorization URL (code flow, PKCE S256,
//! `state`, `nonce`), and the callback (RFC 9207 `iss`, the code exchange, the ID token's
//! signature, `iss`, `aud`, `azp`, `exp`, `iat` and `nonce`).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthenticationFlow, CoreClaimName, CoreClaimType, CoreClient, CoreClientAuthMethod,
    CoreGrantType, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm,
    CoreJwsSigningAlgorithm, CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalProviderMetadata, AuthType, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret,
    CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, ProviderMetadata, RedirectUrl, Scope,
    SignatureVerificationError, TokenResponse,
};
use serde::{Deserialize, Serialize};
use tenantry_controlplane::model::{SocialProvider, SocialProviderKind};
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
/// Google's issuer, the `google` preset's default.
const GOOGLE_ISSUER: &str = "https://accounts.google.com";

/// What an upstream sign-in went wrong on. Each maps to a stable code in the HTTP crate.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("{0} providers are not supported yet; use kind `oidc` with the provider's issuer URL")]
    Unsupported(&'static str),
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

/// What the sign-in's first leg leaves with the browser (sealed in a cookie by the HTTP
/// crate) for the callback to check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub provider: String,
    pub issuer: String,
    pub state: String,
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

/// Who the upstream says signed in, from its validated ID token.
#[derive(Debug, Clone)]
pub struct UpstreamIdentity {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    /// The upstream's `amr`, when it sent one.
    pub amr: Vec<String>,
    /// Every claim of the ID token (for the tenant's claim mapping).
    pub claims: serde_json::Map<String, serde_json::Value>,
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
}

/// An error of one outbound call, as `openidconnect` wants it (`std::error::Error`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FetchError(String);

impl Upstreams {
    pub fn new(policy: OutboundPolicy) -> reqwest::Result<Self> {
        Ok(Self {
            policy,
            http: policy.client(FETCH_TIMEOUT)?,
            cache: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            in_flight: tokio::sync::Semaphore::new(MAX_IN_FLIGHT),
        })
    }

    /// The issuer a provider signs in at: its `issuer_url`, or the preset's.
    pub fn issuer_of(provider: &SocialProvider) -> Result<String, UpstreamError> {
        match (provider.kind, &provider.issuer_url) {
            (SocialProviderKind::Oidc | SocialProviderKind::Google, Some(url)) => Ok(url.clone()),
            (SocialProviderKind::Google, None) => Ok(GOOGLE_ISSUER.to_owned()),
            (SocialProviderKind::Oidc, None) => Err(UpstreamError::BadAnswer("no issuer_url is configured".into())),
            (SocialProviderKind::Github, _) => Err(UpstreamError::Unsupported("GitHub")),
            (SocialProviderKind::Microsoft, _) => Err(UpstreamError::Unsupported("Microsoft")),
        }
    }

    /// One outbound call: the URL is checked against the policy (the scheme here, every
    /// resolved address in the client), the answer is cut at [`MAX_BODY`], and the
    /// shortest `max-age` seen is noted in `ttl`.
    async fn call(
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
        let now = Instant::now();
        if let Some(cached) = self.cache.lock().expect("cache lock").get(issuer) {
            let young = now.duration_since(cached.fetched) < REFETCH_AFTER;
            match want {
                Want::Cached if now < cached.fresh_until => return Ok(cached.metadata.clone()),
                Want::NewKey if young => return Ok(cached.metadata.clone()),
                _ => {}
            }
        }
        if want != Want::Live
            && let Some((failed, why)) = self.failures.lock().expect("failures lock").get(issuer)
            && now.duration_since(*failed) < FAILURE_BACKOFF
        {
            return Err(UpstreamError::Unreachable(format!(
                "{why} (a few seconds ago; not tried again yet)"
            )));
        }
        let issuer_url = url::Url::parse(issuer).map_err(|e| UpstreamError::BadAnswer(e.to_string()))?;
        self.policy.check_url(&issuer_url)?;
        let http = Fetcher::new(self);
        let issuer_id = IssuerUrl::new(issuer.to_owned()).map_err(|e| UpstreamError::BadAnswer(e.to_string()))?;
        let discovered = Metadata::discover_async(issuer_id, &http).await.map_err(|e| match e {
            openidconnect::DiscoveryError::Request(e) => UpstreamError::Unreachable(e.0),
            other => UpstreamError::BadAnswer(describe(&other)),
        });
        let mut failures = self.failures.lock().expect("failures lock");
        let metadata = match discovered {
            Ok(metadata) => {
                failures.remove(issuer);
                metadata
            }
            Err(e) => {
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

    /// Fetches the provider's discovery document and JWKS now (the admin's test): what is
    /// wrong, or the issuer's endpoints.
    pub async fn probe(&self, provider: &SocialProvider) -> Result<serde_json::Value, UpstreamError> {
        let issuer = Self::issuer_of(provider)?;
        let metadata = self.metadata(&issuer, Want::Live).await?;
        Ok(serde_json::json!({
            "issuer": metadata.issuer().as_str(),
            "authorization_endpoint": metadata.authorization_endpoint().as_str(),
            "token_endpoint": metadata.token_endpoint().map(|u| u.as_str()),
            "jwks_keys": metadata.jwks().keys().len(),
            "iss_parameter_supported": metadata.additional_metadata().authorization_response_iss_parameter_supported.unwrap_or(false),
        }))
    }

    /// The authorization URL to send the browser to, and what the callback will check.
    pub async fn begin(
        &self,
        provider: &SocialProvider,
        redirect_uri: &str,
    ) -> Result<(url::Url, Pending), UpstreamError> {
        let issuer = Self::issuer_of(provider)?;
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

    /// Finishes a sign-in whose `state` the caller has matched to `pending` and spent:
    /// RFC 9207's `iss`, the code exchange with the PKCE verifier, and the ID token.
    pub async fn finish(
        &self,
        provider: &SocialProvider,
        client_secret: Option<String>,
        redirect_uri: &str,
        pending: &Pending,
        callback: &Callback<'_>,
    ) -> Result<UpstreamIdentity, UpstreamError> {
        if let Some(error) = callback.error {
            return Err(UpstreamError::Denied(printable(error, 64)));
        }
        let metadata = self.metadata(&pending.issuer, Want::Cached).await?;
        let iss_promised = metadata
            .additional_metadata()
            .authorization_response_iss_parameter_supported
            .unwrap_or(false);
        match callback.iss {
            Some(iss) if iss != metadata.issuer().as_str() => return Err(UpstreamError::Mixup),
            None if iss_promised => return Err(UpstreamError::Mixup),
            _ => {}
        }
        let code = callback
            .code
            .filter(|c| !c.is_empty() && c.len() <= 2048)
            .ok_or_else(|| UpstreamError::Invalid("the answer carries no code".into()))?;
        let redirect =
            RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| UpstreamError::BadAnswer(e.to_string()))?;
        let mut client = CoreClient::from_provider_metadata(
            (*metadata).clone(),
            ClientId::new(provider.client_id.clone()),
            client_secret.map(ClientSecret::new),
        )
        .set_redirect_uri(redirect);
        let methods = metadata.token_endpoint_auth_methods_supported();
        let basic = methods.is_none_or(|m| m.contains(&CoreClientAuthMethod::ClientSecretBasic));
        if !basic {
            client = client.set_auth_type(AuthType::RequestBody);
        }
        let http = Fetcher::new(self);
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| UpstreamError::BadAnswer(describe(&e)))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier.clone()))
            .request_async(&http)
            .await
            .map_err(|e| match e {
                openidconnect::RequestTokenError::Request(e) => UpstreamError::Unreachable(e.0),
                openidconnect::RequestTokenError::ServerResponse(e) => {
                    UpstreamError::Invalid(format!("the token endpoint answered {}", e.error()))
                }
                other => UpstreamError::Invalid(describe(&other)),
            })?;
        let id_token = response
            .id_token()
            .ok_or_else(|| UpstreamError::Invalid("the token answer carries no ID token".into()))?;
        let nonce = Nonce::new(pending.nonce.clone());
        let verify = |metadata: &Metadata| {
            let algs = signing_algs(metadata);
            let now = chrono::Utc::now();
            let client =
                CoreClient::from_provider_metadata(metadata.clone(), ClientId::new(provider.client_id.clone()), None);
            let verifier = client
                .id_token_verifier()
                .set_allowed_algs(algs)
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
        let claims = payload(&id_token.to_string())?;
        let email = claims.get("email").and_then(|v| v.as_str()).map(str::to_owned);
        let email_verified = match claims.get("email_verified") {
            Some(serde_json::Value::Bool(b)) => *b,
            // Some providers send the string "true".
            Some(serde_json::Value::String(s)) => s == "true",
            _ => false,
        };
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
        if subject.is_empty() || subject.len() > 255 {
            return Err(UpstreamError::Invalid(
                "the subject is empty or longer than 255 bytes".into(),
            ));
        }
        Ok(UpstreamIdentity {
            subject,
            email,
            email_verified,
            amr,
            claims,
        })
    }
}

/// The HTTP client `openidconnect` calls: [`Upstreams::call`], noting the shortest
/// `max-age` of the answers it fetched.
struct Fetcher<'a> {
    upstreams: &'a Upstreams,
    ttl: Mutex<Duration>,
}

impl<'a> Fetcher<'a> {
    fn new(upstreams: &'a Upstreams) -> Self {
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
fn describe(error: &dyn std::error::Error) -> String {
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
fn printable(value: &str, max: usize) -> String {
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
    fn presets_name_their_issuer_and_unfinished_kinds_say_so() {
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
        };
        assert_eq!(Upstreams::issuer_of(&provider).unwrap(), GOOGLE_ISSUER);
        provider.kind = SocialProviderKind::Github;
        assert!(matches!(
            Upstreams::issuer_of(&provider),
            Err(UpstreamError::Unsupported(_))
        ));
        provider.kind = SocialProviderKind::Oidc;
        assert!(Upstreams::issuer_of(&provider).is_err());
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
