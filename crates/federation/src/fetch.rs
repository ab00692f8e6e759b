//! An upstream's documents, fetched and kept: every outbound call of federation goes
//! through [`Upstreams::call`] under the installation's outbound policy (scheme and
//! addresses checked, no redirects, a timeout, answers cut at 256 KiB, at most 32 calls in
//! flight); discovery documents and their JWKS are cached per issuer as their
//! `Cache-Control` says, fetched again on an unknown signing key at most once a minute,
//! fetched by one caller at a time (the others wait and reuse it), and a failed discovery
//! is not tried again for a few seconds.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType, CoreJsonWebKey,
    CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreResponseMode,
    CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{AdditionalProviderMetadata, ProviderMetadata};
use serde::{Deserialize, Serialize};
use tenantry_oidc::outbound::OutboundPolicy;

use crate::upstream::{UpstreamError, tenant_template_matches};

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
/// Calls that may wait for a free slot when all are taken, and for how long: a burst of
/// sign-ins queues behind a slow upstream briefly instead of failing at once, while the
/// queue itself stays bounded in size and time.
const MAX_QUEUED: usize = 512;
const QUEUE_WAIT: Duration = Duration::from_secs(5);
/// The discovery fields `openidconnect` does not read that a relying party needs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UpstreamExtras {
    /// RFC 9207: the upstream sends `iss` with its authorization responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_response_iss_parameter_supported: Option<bool>,
}

impl AdditionalProviderMetadata for UpstreamExtras {}

pub(crate) type Metadata = ProviderMetadata<
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
pub(crate) enum Want {
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
    queued: tokio::sync::Semaphore,
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
            queued: tokio::sync::Semaphore::new(MAX_QUEUED),
            fetching: Mutex::new(HashMap::new()),
        })
    }

    /// A slot among the [`MAX_IN_FLIGHT`] calls, waiting up to [`QUEUE_WAIT`] in a queue of
    /// at most [`MAX_QUEUED`] when all are taken.
    async fn slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, FetchError> {
        let busy = || FetchError("too many calls to upstream providers are in flight; retry shortly".into());
        if let Ok(permit) = self.in_flight.try_acquire() {
            return Ok(permit);
        }
        let _place = self.queued.try_acquire().map_err(|_| busy())?;
        match tokio::time::timeout(QUEUE_WAIT, self.in_flight.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(busy()),
        }
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
        let _permit = self.slot().await?;
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
    pub(crate) async fn metadata(&self, issuer: &str, want: Want) -> Result<Arc<Metadata>, UpstreamError> {
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

    #[tokio::test(start_paused = true)]
    async fn calls_past_the_in_flight_cap_wait_their_turn_then_are_refused_without_connecting() {
        let upstreams = Upstreams::new(OutboundPolicy {
            allow_private_networks: true,
        })
        .unwrap();
        let all = upstreams.in_flight.acquire_many(MAX_IN_FLIGHT as u32).await.unwrap();
        let started = tokio::time::Instant::now();
        let refused = upstreams.metadata("http://127.0.0.1:9", Want::Live).await;
        assert!(
            matches!(&refused, Err(UpstreamError::Unreachable(why)) if why.contains("in flight")),
            "{refused:?}"
        );
        assert!(started.elapsed() >= QUEUE_WAIT);

        // A caller in the queue gets the slot freed before its wait ends.
        let waiting = upstreams.slot();
        drop(all);
        assert!(waiting.await.is_ok());
    }

    #[tokio::test]
    async fn past_a_full_queue_calls_are_refused_at_once() {
        let upstreams = Upstreams::new(OutboundPolicy::default()).unwrap();
        let _all = upstreams.in_flight.acquire_many(MAX_IN_FLIGHT as u32).await.unwrap();
        let _queue = upstreams.queued.acquire_many(MAX_QUEUED as u32).await.unwrap();
        let refused = tokio::time::timeout(Duration::from_secs(1), upstreams.slot()).await;
        assert!(matches!(refused, Ok(Err(_))), "{refused:?}");
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
