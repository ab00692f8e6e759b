//! The tenant layer: puts the request's [`TenantContext`] (from the one resolver in
//! `tenantry-tenancy`) into the request, or answers the resolver's error.
//!
//! Resolving a tenant is synchronous (a lookup in the control plane's snapshot), so the
//! layer is a plain service that calls the route beneath it directly. A `from_fn`
//! middleware would clone and box every service beneath it on every request, which is
//! what most of the per-request cost of a route's layers was.

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures_util::future::{Either, Ready, ready};
use tenantry_tenancy::{TenantContext, TenantContextResolver, slug_from_issuer_path};
use tower::{Layer, Service};

use crate::error::{ApiError, ErrorCode};

/// Where a route group takes its tenant from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// Issuer routes: the `{slug}` of `/t/{slug}/...`, so every route below it (even an
    /// unknown one) answers `tenant_not_found` for an unknown tenant.
    IssuerPath,
    /// REST API routes: the `X-Tenant-Slug` header, then the query, then the default.
    Api,
}

/// Route layer that resolves the request's tenant.
#[derive(Clone)]
pub struct TenantLayer {
    resolver: TenantContextResolver,
    source: Source,
}

impl TenantLayer {
    /// For issuer routes (`/t/{slug}/...`).
    pub fn issuer(resolver: TenantContextResolver) -> Self {
        Self {
            resolver,
            source: Source::IssuerPath,
        }
    }

    /// For the headless REST API (header → query → default tenant).
    pub fn api(resolver: TenantContextResolver) -> Self {
        Self {
            resolver,
            source: Source::Api,
        }
    }

    fn context(&self, request: &Request) -> Result<TenantContext, ApiError> {
        match self.source {
            Source::IssuerPath => match slug_from_issuer_path(request.uri().path()) {
                Some(slug) => self.resolver.resolve_slug(slug),
                None => Err(ApiError::new(ErrorCode::NotFound, "no such resource")),
            },
            Source::Api => self.resolver.resolve_api(request),
        }
    }
}

impl<S> Layer<S> for TenantLayer {
    type Service = TenantService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TenantService {
            layer: self.clone(),
            inner,
        }
    }
}

/// The service [`TenantLayer`] wraps a route in.
#[derive(Clone)]
pub struct TenantService<S> {
    layer: TenantLayer,
    inner: S,
}

impl<S> Service<Request> for TenantService<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        match self.layer.context(&request) {
            Ok(ctx) => {
                request.extensions_mut().insert(ctx);
                Either::Right(self.inner.call(request))
            }
            Err(refusal) => Either::Left(ready(Ok(refusal.into_response()))),
        }
    }
}
