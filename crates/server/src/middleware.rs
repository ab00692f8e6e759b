//! Cross-cutting HTTP layers: request ids, tracing spans, metrics, security headers,
//! uniform problem+json bodies for bare error statuses, panics and per-tenant CORS.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, Response, header};
use axum::middleware::Next;
use axum::response::IntoResponse;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::error::{ApiError, for_status};
use crate::resolver::TenantContext;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request id of the current request (accepted from the client or generated).
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

fn acceptable_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty() && bytes.len() <= 128 && bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
}

/// Accepts a well-formed `X-Request-ID` or makes one, and echoes it on the response.
pub async fn request_id(mut request: Request, next: Next) -> Response<Body> {
    let id = match request.headers().get(&REQUEST_ID) {
        Some(v) if acceptable_request_id(v) => v.clone(),
        _ => HeaderValue::from_str(&uuid::Uuid::now_v7().to_string()).expect("uuid is a header value"),
    };
    request.headers_mut().insert(REQUEST_ID, id.clone());
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).await;
    response.headers_mut().insert(REQUEST_ID, id);
    response
}

/// The span every request runs in; the resolver records `tenant` into it.
pub fn make_span(request: &Request) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
        .unwrap_or("unmatched");
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!("request", method = %request.method(), route, request_id, tenant = tracing::field::Empty)
}

/// What every response gets on its way out, in one layer (each layer costs a boxed
/// future and a service clone per request): a problem+json body for bare error
/// statuses, the security headers, and the request metrics.
pub async fn finish_response(hsts: bool, request: Request, next: Next) -> Response<Body> {
    let start = Instant::now();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = method_label(request.method());
    let response = security_headers(problem_body(next.run(request).await), hsts);
    let route = route.as_ref().map(MatchedPath::as_str).unwrap_or("unmatched");
    record_metrics(method, route, response.status().as_u16(), start);
    response
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

/// Gives a problem+json body to error statuses that layers or the router produced with
/// no body of their own (405, 408, 413, ...), so clients always see one error shape.
fn problem_body(response: Response<Body>) -> Response<Body> {
    let status = response.status();
    if (status.is_client_error() || status.is_server_error()) && !response.headers().contains_key(header::CONTENT_TYPE)
    {
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

/// CORS for tenant routes: an origin is allowed when the tenant's settings list it.
/// The tenant comes from the context the resolver middleware stored in the request.
pub fn tenant_cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(|origin, parts| {
            let Some(ctx) = parts.extensions.get::<TenantContext>() else {
                return false;
            };
            let Ok(origin) = origin.to_str() else { return false };
            // The tenant's own list, plus each client's web origins (so a registered SPA
            // can call the token and userinfo endpoints from the browser).
            let entry = &ctx.entry;
            entry.tenant.settings.cors_allowed_origins.iter().any(|o| o == origin)
                || entry
                    .clients
                    .values()
                    .any(|c| c.allowed_origins.iter().any(|o| o == origin))
        }))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("x-tenant-slug"),
            REQUEST_ID,
        ])
        .expose_headers([REQUEST_ID])
        .allow_credentials(true)
        .max_age(std::time::Duration::from_secs(600))
}

/// Answer for routes that do not exist.
pub async fn not_found() -> ApiError {
    ApiError::new(crate::error::ErrorCode::NotFound, "no such resource")
}

#[cfg(test)]
mod tests {
    use super::*;

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
