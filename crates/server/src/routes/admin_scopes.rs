//! Admin endpoints for a tenant's own scopes: each names the claims it releases (standard
//! claims or custom user fields). The built-in scopes cannot be redefined.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tenantry_admin::api::ScopeInput;
use tenantry_controlplane::Command;
use tenantry_controlplane::model::Scope;
use tenantry_controlplane::validate::validate_scope;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::web::{AdminAuth, ApiJson, PageParams, PageQuery};
use tenantry_admin::Audit;
use tenantry_oidc::tokens::BUILTIN_SCOPES;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/tenants/{slug}/scopes", get(list_scopes))
        .route(
            "/v1/admin/tenants/{slug}/scopes/{name}",
            get(show_scope).put(put_scope).delete(delete_scope),
        )
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(list_scopes, show_scope, put_scope, delete_scope))]
pub struct Doc;

/// A page of a tenant's own scopes, and the built-in scopes every tenant has.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScopeList {
    pub scopes: Vec<Scope>,
    pub next_after: Option<String>,
    pub builtin: Vec<String>,
}

/// The built-in scopes, and the tenant's own by name in pages (`limit`, `after`).
#[utoipa::path(get, path = "/v1/admin/tenants/{slug}/scopes", tag = "scopes",
    params(("slug" = String, Path, description = "The tenant"), PageParams),
    responses((status = 200, body = ScopeList)))]
async fn list_scopes(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path(slug): Path<String>,
    page: PageQuery,
) -> Result<Json<ScopeList>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let page = page.page(ctx.entry.scopes.iter().map(|(n, s)| (n.clone(), s.clone())));
    Ok(Json(ScopeList {
        scopes: page.items,
        next_after: page.next_after,
        builtin: BUILTIN_SCOPES.iter().map(|s| s.to_string()).collect(),
    }))
}

#[utoipa::path(get, path = "/v1/admin/tenants/{slug}/scopes/{name}", tag = "scopes",
    params(("slug" = String, Path, description = "The tenant"), ("name" = String, Path, description = "The scope")),
    responses((status = 200, body = Scope)))]
async fn show_scope(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, name)): Path<(String, String)>,
) -> Result<Json<Scope>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    ctx.entry.scopes.get(&name).cloned().map(Json).ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            format!("no scope `{}`", crate::error::printable(&name)),
        )
    })
}

/// Creates or replaces a scope.
#[utoipa::path(put, path = "/v1/admin/tenants/{slug}/scopes/{name}", tag = "scopes",
    params(("slug" = String, Path, description = "The tenant"), ("name" = String, Path, description = "The scope")),
    request_body = ScopeInput,
    responses((status = 200, body = Scope)))]
async fn put_scope(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, name)): Path<(String, String)>,
    ApiJson(input): ApiJson<ScopeInput>,
) -> Result<Json<Scope>, ApiError> {
    state.resolver.resolve_slug(&slug)?;
    if BUILTIN_SCOPES.contains(&name.as_str()) {
        return Err(ApiError::field("name", "is a built-in scope"));
    }
    let scope = Scope {
        name: name.clone(),
        description: input.description,
        claims: input.claims,
    };
    validate_scope(&scope).map_err(ApiError::validation)?;
    let audit = Audit::new("put_scope", Some(&slug))
        .with_target(format!("scope:{name}"))
        .with_details(serde_json::json!({ "scope": name }));
    let command = Command::PutScope {
        slug,
        scope: scope.clone(),
    };
    state.admin.command(admin.actor(), command, audit).await?;
    Ok(Json(scope))
}

#[utoipa::path(delete, path = "/v1/admin/tenants/{slug}/scopes/{name}", tag = "scopes",
    params(("slug" = String, Path, description = "The tenant"), ("name" = String, Path, description = "The scope")),
    responses((status = 204, description = "Deleted")))]
async fn delete_scope(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let audit = Audit::new("delete_scope", Some(&slug))
        .with_target(format!("scope:{name}"))
        .with_details(serde_json::json!({ "scope": name }));
    let command = Command::DeleteScope { slug, name };
    state.admin.command(admin.actor(), command, audit).await?;
    Ok(StatusCode::NO_CONTENT)
}
