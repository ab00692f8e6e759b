//! The headless REST API for first-party apps (`/v1/...`). The tenant is resolved from
//! `X-Tenant-Slug`, then `?tenant`, then the default tenant. The authentication endpoints
//! live in [`super::auth_api`].

use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tenantry_controlplane::model::{Branding, Language};

use crate::state::AppState;
use tenantry_tenancy::TenantContext;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenant", get(tenant_info))
        .merge(super::auth_api::router())
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(tenant_info))]
pub struct Doc;

/// Public facts about a tenant that a first-party app needs to render its login UI.
#[derive(Serialize, utoipa::ToSchema)]
struct TenantInfo {
    slug: String,
    display_name: String,
    issuer: String,
    language: Language,
    branding: Branding,
}

/// The tenant's name, issuer, language and branding (public).
#[utoipa::path(get, path = "/v1/tenant", tag = "auth", responses((status = 200, body = TenantInfo)))]
async fn tenant_info(ctx: TenantContext) -> Json<TenantInfo> {
    let tenant = &ctx.entry.tenant;
    Json(TenantInfo {
        slug: tenant.slug.clone(),
        display_name: tenant.display_name.clone(),
        issuer: ctx.issuer.clone(),
        language: tenant.settings.language,
        branding: tenant.settings.branding.clone(),
    })
}
