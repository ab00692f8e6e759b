//! Cross-cutting HTTP layers: request ids, tracing spans, metrics, security headers,
//! uniform problem+json bodies for bare error statuses, panics and per-tenant CORS.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, Response, header};
use axum::middleware::Next;
use axum::response::IntoResponse;
use futures_util::FutureExt;
use tenantry_config::proxies::TrustedProxies;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::Instrument;

use crate::error::{ApiError, for_status};
use tenantry_tenancy::TenantContext;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

fn acceptable_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty() && bytes.len() <= 128 && bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
}

/// What [`frame`] needs besides the request: set once when the router is built.
#[derive(Debug, Clone)]
pub struct FrameSettings {
    /// Whether answers carry `Strict-Transport-Security` (the public URL is HTTPS).
    pub hsts: bool,
    /// Whose `X-Forwarded-For` names the client of the security events a request records.
    pub trusted_proxies: Arc<TrustedProxies>,
}

/// Everything every request gets, in one layer: each layer costs a boxed future and a
/// clone of every service beneath it per request, so the cross-cutting work shares one.
///
/// In order: the request id (a well-formed `X-Request-ID` is kept, else one is made; it is
/// echoed on the answer), the request's span (the resolver records `tenant` into it), the
/// origin of the security events it records (`tenantry_accounts::events`), a panic turned
/// into a 500 problem without internals, then on the way out a problem+json body for bare
/// error statuses, the security headers, the request metrics and the answer's log line.
pub async fn frame(settings: FrameSettings, mut request: Request, next: Next) -> Response<Body> {
    let start = Instant::now();
    let id = match request.headers().get(&REQUEST_ID) {
        Some(v) if acceptable_request_id(v) => v.clone(),
        _ => new_request_id(),
    };
    request.headers_mut().insert(REQUEST_ID, id.clone());
    let route = request.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map(MatchedPath::as_str).unwrap_or("unmatched");
    let method = method_label(request.method());
    let span = tracing::info_span!("request", method = %method, route, request_id = id.to_str().unwrap_or(""), tenant = tracing::field::Empty);
    let origin =
        crate::web::extract::session_origin(request.extensions(), request.headers(), &settings.trusted_proxies);
    let answer = tenantry_accounts::events::with_origin(origin, next.run(request));
    let answer = std::panic::AssertUnwindSafe(answer)
        .catch_unwind()
        .instrument(span.clone())
        .await;
    let mut response = answer.unwrap_or_else(|panic| span.in_scope(|| panic_response(panic)));
    response = security_headers(problem_body(response), settings.hsts);
    response.headers_mut().insert(REQUEST_ID, id);
    let status = response.status();
    record_metrics(method, route, status.as_u16(), start);
    span.in_scope(|| log_answer(status, start));
    response
}

/// A fresh request id: a UUIDv7, so ids sort by time.
fn new_request_id() -> HeaderValue {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = uuid::Uuid::now_v7().hyphenated().encode_lower(&mut text);
    HeaderValue::from_str(text).expect("a uuid is a header value")
}

/// Logs an error answer by what it means. A 500 is a fault (ERROR; its cause was logged
/// where it happened). 501/502/503/504 are expected refusals (overload, an unreachable
/// dependency, an unconfigured capability): each at debug, plus an INFO summary at most
/// every [`REFUSAL_SUMMARY_EVERY`], so a flood cannot flood the log. Client errors are
/// debug only (tower-http's span already carries them).
fn log_answer(status: axum::http::StatusCode, start: Instant) {
    if status == axum::http::StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(status = status.as_u16(), "answered with an internal error");
    } else if status.is_server_error() {
        tracing::debug!(status = status.as_u16(), "request refused");
        REFUSALS.record(status.as_u16());
    } else {
        tracing::debug!(
            status = status.as_u16(),
            latency_us = start.elapsed().as_micros() as u64,
            "answered"
        );
    }
}

/// How often refused requests are summarised in the log.
const REFUSAL_SUMMARY_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

static REFUSALS: LazyLock<RefusalSummary> = LazyLock::new(RefusalSummary::default);

/// Counts of refusals by status since the last summary line.
#[derive(Default)]
struct RefusalSummary {
    window: Mutex<(Option<Instant>, std::collections::BTreeMap<u16, u64>)>,
}

impl RefusalSummary {
    fn record(&self, status: u16) {
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let first_ever = window.0.is_none();
        let started = *window.0.get_or_insert(now);
        *window.1.entry(status).or_default() += 1;
        if first_ever || now.duration_since(started) >= REFUSAL_SUMMARY_EVERY {
            let counts: Vec<String> = window.1.iter().map(|(s, n)| format!("{s}×{n}")).collect();
            tracing::info!(
                refused = counts.join(" "),
                seconds = now.duration_since(started).as_secs(),
                "requests refused (summary; each one is logged at debug)"
            );
            *window = (Some(now), Default::default());
        }
    }
}

/// Prometheus counters and latency histograms labelled by route template (never raw
/// paths, so label cardinality stays bounded).
fn record_metrics(method: &'static str, route: &str, status: u16, start: Instant) {
    let (requests, duration) = request_metrics(method, route, status);
    requests.increment(1);
    duration.record(start.elapsed().as_secs_f64());
}

type RouteMetrics = HashMap<(&'static str, u16), (metrics::Counter, metrics::Histogram)>;

/// The metric handles of one (method, route, status), registered once: a labelled key
/// costs several allocations to build, a handle costs none to use.
fn request_metrics(method: &'static str, route: &str, status: u16) -> (metrics::Counter, metrics::Histogram) {
    static HANDLES: LazyLock<Mutex<HashMap<String, RouteMetrics>>> = LazyLock::new(Default::default);
    let mut handles = HANDLES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(found) = handles
        .get(route)
        .and_then(|by_status| by_status.get(&(method, status)))
    {
        return found.clone();
    }
    let made = (
        metrics::counter!("http_requests_total", "method" => method, "route" => route.to_owned(), "status" => status.to_string()),
        metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route.to_owned()),
    );
    handles
        .entry(route.to_owned())
        .or_default()
        .insert((method, status), made.clone());
    made
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Security headers on every response (kept if a handler set its own).
fn security_headers(mut response: Response<Body>, hsts: bool) -> Response<Body> {
    let headers = response.headers_mut();
    let defaults = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in defaults {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    }
    if hsts {
        headers
            .entry(header::STRICT_TRANSPORT_SECURITY)
            .or_insert(HeaderValue::from_static("max-age=31536000; includeSubDomains"));
    }
    response
}

/// Gives a problem+json body to error statuses that layers, the router or axum's own
/// extractors produced (405, 408, an oversized body's 413: no body or a `text/plain`
/// one), so clients always see one error shape. Our handlers never answer an error as
/// plain text.
fn problem_body(response: Response<Body>) -> Response<Body> {
    let status = response.status();
    let bare = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|t| t.as_bytes().starts_with(b"text/plain"));
    if (status.is_client_error() || status.is_server_error()) && bare {
        let (parts, _) = response.into_parts();
        let mut fresh = for_status(status).into_response();
        for (name, value) in parts.headers.iter() {
            if name != header::CONTENT_LENGTH {
                fresh.headers_mut().entry(name).or_insert(value.clone());
            }
        }
        *fresh.status_mut() = status;
        return fresh;
    }
    response
}

/// Turns a panic into a 500 problem without internals; the panic is logged.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("non-string panic");
    tracing::error!(panic = message, "handler panicked");
    ApiError::internal().into_response()
}

/// Which browser origins may read a tenant route's answers with `fetch`.
///
/// CORS goes only on endpoints a browser app calls with `fetch`; the interactive pages
/// (authorize, login, consent, logout, account links) get none, so no other origin can
/// read what they answer with the user's cookies. No policy allows credentials: these
/// endpoints authenticate with bearer tokens and form parameters, never cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorsPolicy {
    /// Discovery and JWKS: public documents, readable from any origin.
    PublicDocument,
    /// Token, revocation and UserInfo: the tenant's `cors_allowed_origins` and the web
    /// origins of every client of the tenant (a registered SPA redeems its own codes).
    ClientFetch,
    /// The headless `/v1` API, which only first-party apps may use: the tenant's list and
    /// the origins of first-party clients. A third-party client's origins never widen it.
    FirstPartyApi,
}

impl CorsPolicy {
    /// Whether `origin` may read answers of this tenant under this policy.
    pub fn allows(self, ctx: &TenantContext, origin: &str) -> bool {
        let entry = &ctx.entry;
        let client_origin = |first_party_only: bool| {
            entry
                .clients
                .values()
                .filter(|c| c.first_party || !first_party_only)
                .any(|c| c.allowed_origins.iter().any(|o| o == origin))
        };
        match self {
            CorsPolicy::PublicDocument => true,
            CorsPolicy::ClientFetch => {
                entry.tenant.settings.cors_allowed_origins.iter().any(|o| o == origin) || client_origin(false)
            }
            CorsPolicy::FirstPartyApi => {
                entry.tenant.settings.cors_allowed_origins.iter().any(|o| o == origin) || client_origin(true)
            }
        }
    }

    /// The layer for routes behind the resolver middleware (which stores the tenant).
    pub fn layer(self) -> CorsLayer {
        let methods = match self {
            CorsPolicy::PublicDocument => vec![Method::GET, Method::HEAD],
            CorsPolicy::ClientFetch => vec![Method::GET, Method::POST],
            CorsPolicy::FirstPartyApi => vec![Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE],
        };
        let origin = match self {
            CorsPolicy::PublicDocument => AllowOrigin::any(),
            _ => AllowOrigin::predicate(move |origin, parts| {
                let (Some(ctx), Ok(origin)) = (parts.extensions.get::<TenantContext>(), origin.to_str()) else {
                    return false;
                };
                self.allows(ctx, origin)
            }),
        };
        CorsLayer::new()
            .allow_origin(origin)
            .allow_methods(methods)
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::IF_NONE_MATCH,
                HeaderName::from_static("x-tenant-slug"),
                REQUEST_ID,
            ])
            .expose_headers(
                [REQUEST_ID, header::ETAG, header::WWW_AUTHENTICATE]
                    .into_iter()
                    .chain(crate::web::quota::QUOTA_HEADERS)
                    .collect::<Vec<_>>(),
            )
            .allow_credentials(false)
            .max_age(std::time::Duration::from_secs(600))
    }
}

/// Answer for routes that do not exist.
pub async fn not_found() -> ApiError {
    ApiError::new(crate::error::ErrorCode::NotFound, "no such resource")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_refusals_is_summarised_not_logged_line_by_line() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tracing_subscriber::layer::SubscriberExt;

        /// Counts events at INFO and above.
        struct Count(Arc<AtomicUsize>);
        impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Count {
            fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
                if *event.metadata().level() <= tracing::Level::INFO {
                    self.0.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let count = Arc::new(AtomicUsize::new(0));
        let subscriber = tracing_subscriber::registry().with(Count(count.clone()));
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..10_000 {
                log_answer(axum::http::StatusCode::SERVICE_UNAVAILABLE, Instant::now());
                log_answer(axum::http::StatusCode::TOO_MANY_REQUESTS, Instant::now());
            }
        });
        assert!(count.load(Ordering::Relaxed) <= 2, "{count:?}");
        let errors = Arc::new(AtomicUsize::new(0));
        let subscriber = tracing_subscriber::registry().with(Count(errors.clone()));
        tracing::subscriber::with_default(subscriber, || {
            log_answer(axum::http::StatusCode::INTERNAL_SERVER_ERROR, Instant::now())
        });
        assert_eq!(errors.load(Ordering::Relaxed), 1, "a fault is always logged");
    }

    #[test]
    fn request_ids_are_checked() {
        assert!(acceptable_request_id(&HeaderValue::from_static("abc-123_x.y:z")));
        assert!(!acceptable_request_id(&HeaderValue::from_static("has space")));
        assert!(!acceptable_request_id(&HeaderValue::from_static("")));
        assert!(!acceptable_request_id(
            &HeaderValue::from_str(&"a".repeat(129)).unwrap()
        ));
    }
}
