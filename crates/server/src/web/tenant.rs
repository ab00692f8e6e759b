//! The tenant middleware: puts the request's [`TenantContext`] (from the one resolver in
//! `tenantry-tenancy`) into the request, or answers the resolver's error.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tenantry_tenancy::{TenantContextResolver, slug_from_issuer_path};

use crate::error::{ApiError, ErrorCode};

/// Middleware for issuer routes: resolves the tenant from the path and stores the
/// context in the request, so every route below `/t/{slug}` (even an unknown one) answers
/// `tenant_not_found` for an unknown tenant.
pub async fn issuer_tenant(
    State(resolver): State<TenantContextResolver>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(slug) = slug_from_issuer_path(request.uri().path()) else {
        return ApiError::new(ErrorCode::NotFound, "no such resource").into_response();
    };
    match resolver.resolve_slug(slug) {
        Ok(ctx) => {
            request.extensions_mut().insert(ctx);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

/// Middleware for REST API routes: resolves header → query → default tenant.
pub async fn api_tenant(State(resolver): State<TenantContextResolver>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    match resolver.resolve_api(&parts) {
        Ok(ctx) => {
            parts.extensions.insert(ctx);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(e) => e.into_response(),
    }
}
