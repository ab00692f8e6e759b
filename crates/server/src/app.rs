//! The router: which surface lives at which path, behind which layers.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::any;
use tower::ServiceBuilder;
use tower_http::timeout::TimeoutLayer;

use crate::middleware::{self, CorsPolicy};
use crate::routes;
use crate::state::AppState;
use crate::web::quota::{self, QuotaLayer};
use crate::web::tenant::TenantLayer;
use tenantry_accounts::quotas::Endpoint;

/// Builds the whole HTTP application.
pub fn router(state: AppState) -> Router {
    let hsts = state.public_url.scheme() == "https";
    let limits = state.config.limits.clone();

    // Per-tenant issuer routes: `/t/{slug}/...`, grouped by who may read them from a
    // browser (`CorsPolicy`) and which request quota they count against. The catch-all
    // makes every other path below an unknown tenant answer `tenant_not_found` and below a
    // known one `not_found`. Quotas count inside the tenant layer (they need the tenant's
    // settings) and inside CORS (a preflight is not a request). Each group's layers are
    // one `ServiceBuilder` applied once: every `route_layer` wraps each route in another
    // boxed service, and each of those clones everything beneath it on every request.
    let quota = |endpoint| {
        let layer = QuotaLayer {
            limiter: state.accounts.rate_limiter.clone(),
            endpoint,
        };
        from_fn_with_state(layer, quota::tenant_quota)
    };
    let tenant_layers = |tenant: TenantLayer, cors: Option<CorsPolicy>, counted_as: Option<Endpoint>| {
        ServiceBuilder::new()
            .layer(tenant)
            .option_layer(cors.map(CorsPolicy::layer))
            .option_layer(counted_as.map(quota))
    };
    let issuer_layers = |cors, counted_as| tenant_layers(TenantLayer::issuer(state.resolver.clone()), cors, counted_as);
    let issuer = Router::new()
        .merge(
            routes::discovery::router()
                .merge(routes::issuer::documents_router())
                .route_layer(issuer_layers(Some(CorsPolicy::PublicDocument), None)),
        )
        .merge(
            routes::oauth::fetch_router()
                .route_layer(issuer_layers(Some(CorsPolicy::ClientFetch), Some(Endpoint::Token))),
        )
        .merge(
            routes::issuer::fetch_router()
                .route_layer(issuer_layers(Some(CorsPolicy::ClientFetch), Some(Endpoint::Userinfo))),
        )
        .merge(routes::oauth::server_router().route_layer(issuer_layers(None, Some(Endpoint::Introspection))))
        .merge(routes::authorize::router().route_layer(issuer_layers(None, Some(Endpoint::Authorize))))
        .merge(
            routes::logout::router()
                .merge(routes::account_pages::router())
                .merge(routes::account::router())
                .route("/t/{slug}", any(middleware::not_found))
                .route("/t/{slug}/{*rest}", any(middleware::not_found))
                .route_layer(issuer_layers(None, None)),
        );

    // Headless REST API for first-party apps (tenant from header → query → default).
    let api = routes::api::router().route_layer(tenant_layers(
        TenantLayer::api(state.resolver.clone()),
        Some(CorsPolicy::FirstPartyApi),
        Some(Endpoint::AuthApi),
    ));

    let frame = middleware::FrameSettings {
        hsts,
        trusted_proxies: Arc::new(state.config.trusted_proxies.clone()),
    };
    // An import streams a large document for a long time: its own timeout, not the one
    // every other request has (the body cap is the route's own, `IMPORT_MAX_BYTES`).
    let import = routes::admin_transfer::import_router()
        .route_layer(from_fn_with_state(state.clone(), crate::web::admin::gate))
        .with_state(state.clone());
    let import = with_common_layers(import, &limits, frame.clone(), routes::admin_transfer::IMPORT_TIMEOUT);
    let app = Router::new()
        .merge(routes::ops::router())
        .merge(routes::discovery::root_router().route_layer(CorsPolicy::PublicDocument.layer()))
        .merge(routes::admin::router().route_layer(from_fn_with_state(state.clone(), crate::web::admin::gate)))
        .merge(routes::admin_auth::router())
        .merge(api)
        .merge(issuer)
        .fallback(middleware::not_found)
        .with_state(state);
    with_common_layers(app, &limits, frame, limits.request_timeout).merge(import)
}

/// The layers every route shares, outermost first: [`middleware::frame`], the body cap
/// and the request timeout (408). They wrap each route (where the matched route is known,
/// for the span and the metrics), and each layer there clones every service beneath it
/// per request, so they are one `ServiceBuilder`: one boxed service per route, not three.
pub fn with_common_layers(
    app: Router,
    limits: &tenantry_config::Limits,
    frame: middleware::FrameSettings,
    timeout: std::time::Duration,
) -> Router {
    app.layer(
        ServiceBuilder::new()
            .layer(from_fn(move |req, next| middleware::frame(frame.clone(), req, next)))
            .layer(DefaultBodyLimit::max(limits.max_body_bytes))
            .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::get;
    use tower::ServiceExt;

    fn test_limits() -> tenantry_config::Limits {
        tenantry_config::Limits {
            max_body_bytes: 1024,
            request_timeout: std::time::Duration::from_secs(5),
            tenant_db_max_pools: Some(1),
            tenant_db_max_connections: Some(1),
            hash_workers: 1,
            hash_queue: 0,
            hash_tenant_share_percent: 100,
            hash_max_wait: std::time::Duration::from_secs(1),
            max_connections: Some(1),
            max_connections_per_ip: 1,
            header_read_timeout: std::time::Duration::from_secs(1),
            shutdown_grace: std::time::Duration::from_secs(1),
            smtp_timeout: std::time::Duration::from_secs(1),
        }
    }

    fn framed(app: Router) -> Router {
        let frame = middleware::FrameSettings {
            hsts: true,
            trusted_proxies: Default::default(),
        };
        with_common_layers(app, &test_limits(), frame, std::time::Duration::from_secs(5))
    }

    #[tokio::test]
    async fn a_panic_is_a_500_problem_without_internals() {
        async fn boom() -> &'static str {
            panic!("secret internal detail")
        }
        let app = framed(Router::new().route("/boom", get(boom)));
        let response = app
            .oneshot(Request::get("/boom").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()["content-type"], "application/problem+json");
        assert!(response.headers().contains_key("x-request-id"));
        // The panic's answer goes out like any other: with the security headers.
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert!(response.headers().contains_key("strict-transport-security"));
        let body = axum::body::to_bytes(response.into_body(), 4096).await.unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(
            text.contains("internal_error") && !text.contains("secret internal detail"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_handler_sees_its_request_id_as_the_origin_of_its_events() {
        async fn origin() -> String {
            let origin = tenantry_accounts::events::current_origin();
            format!("{:?}|{:?}", origin.request_id, origin.user_agent)
        }
        let app = framed(Router::new().route("/origin", get(origin)));
        let response = app
            .clone()
            .oneshot(
                Request::get("/origin")
                    .header("x-request-id", "given-1")
                    .header("user-agent", "probe/1")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.headers()["x-request-id"], "given-1");
        let body = axum::body::to_bytes(response.into_body(), 4096).await.unwrap();
        assert_eq!(&body[..], br#"Some("given-1")|Some("probe/1")"#);

        // A malformed id is replaced by a fresh one, and the handler sees the fresh one.
        let response = app
            .oneshot(
                Request::get("/origin")
                    .header("x-request-id", "has space")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        let body = axum::body::to_bytes(response.into_body(), 4096).await.unwrap();
        assert_eq!(String::from_utf8_lossy(&body), format!("Some({id:?})|None"));
    }
}
