//! Admin endpoints for a tenant's roles and their assignment to users. A role (name,
//! description, permissions) is control-plane configuration; which user holds it is
//! operational data in the tenant database. The `roles` scope releases them in tokens
//! (`tenantry_oidc::tokens::RoleClaims`): roles no longer defined are left out, so
//! deleting a role takes it out of every token issued afterwards.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use chrono::Utc;
use serde::Serialize;
use serde_json::json;
use tenantry_admin::Audit;
use tenantry_admin::api::RoleInput;
use tenantry_admin::users::existing;
use tenantry_controlplane::Command;
use tenantry_controlplane::model::Role;
use tenantry_controlplane::validate::validate_role;
use tenantry_dataplane::RoleRepository;
use tenantry_oidc::tokens::RoleClaims;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::web::{AdminAuth, ApiJson, PageParams, PageQuery};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/tenants/{slug}/roles", get(list_roles))
        .route(
            "/v1/admin/tenants/{slug}/roles/{name}",
            get(show_role).put(put_role).delete(delete_role),
        )
        .route("/v1/admin/tenants/{slug}/users/{id}/roles", get(user_roles))
        .route(
            "/v1/admin/tenants/{slug}/users/{id}/roles/{name}",
            put(assign_role).delete(unassign_role),
        )
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(list_roles, show_role, put_role, delete_role, user_roles, assign_role, unassign_role))]
pub struct Doc;

/// A page of the tenant's roles.
#[derive(Debug, Serialize, ToSchema)]
struct RoleList {
    roles: Vec<Role>,
    next_after: Option<String>,
}

/// A user's roles (those still defined) and the permissions they carry.
#[derive(Debug, Serialize, ToSchema)]
struct UserRoles {
    roles: Vec<String>,
    permissions: Vec<String>,
}

fn no_role(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("no role `{}`", crate::error::printable(name)),
    )
}

/// The tenant's roles by name, in pages (`limit`, `after`).
#[utoipa::path(get, path = "/v1/admin/tenants/{slug}/roles", tag = "roles",
    params(("slug" = String, Path, description = "The tenant"), PageParams),
    responses((status = 200, description = "A page of roles", body = RoleList)))]
async fn list_roles(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path(slug): Path<String>,
    page: PageQuery,
) -> Result<Json<RoleList>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let page = page.page(ctx.entry.roles.iter().map(|(n, r)| (n.clone(), r.clone())));
    Ok(Json(RoleList {
        roles: page.items,
        next_after: page.next_after,
    }))
}

/// One role.
#[utoipa::path(get, path = "/v1/admin/tenants/{slug}/roles/{name}", tag = "roles",
    params(("slug" = String, Path, description = "The tenant"), ("name" = String, Path, description = "The role")),
    responses(
        (status = 200, description = "The role", body = Role),
        (status = 404, description = "No such role"),
    ))]
async fn show_role(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, name)): Path<(String, String)>,
) -> Result<Json<Role>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    ctx.entry
        .roles
        .get(&name)
        .cloned()
        .map(Json)
        .ok_or_else(|| no_role(&name))
}

/// Creates or replaces a role.
#[utoipa::path(put, path = "/v1/admin/tenants/{slug}/roles/{name}", tag = "roles",
    params(("slug" = String, Path, description = "The tenant"), ("name" = String, Path, description = "The role")),
    request_body = RoleInput,
    responses((status = 200, description = "The role as stored", body = Role)))]
async fn put_role(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, name)): Path<(String, String)>,
    ApiJson(input): ApiJson<RoleInput>,
) -> Result<Json<Role>, ApiError> {
    state.resolver.resolve_slug(&slug)?;
    let role = Role {
        name: name.clone(),
        description: input.description,
        permissions: input.permissions,
    };
    validate_role(&role).map_err(ApiError::validation)?;
    let audit = Audit::new("put_role", Some(&slug))
        .with_target(format!("role:{name}"))
        .with_details(json!({ "role": name, "permissions": &role.permissions }));
    let command = Command::PutRole {
        slug,
        role: role.clone(),
    };
    state.admin.command(admin.actor(), command, audit).await?;
    Ok(Json(role))
}

/// Deletes a role; users who held it no longer get it in tokens.
///
/// Their assignment rows stay, and come back to life if a role of that name is defined
/// again.
#[utoipa::path(delete, path = "/v1/admin/tenants/{slug}/roles/{name}", tag = "roles",
    params(("slug" = String, Path, description = "The tenant"), ("name" = String, Path, description = "The role")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such role"),
    ))]
async fn delete_role(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let audit = Audit::new("delete_role", Some(&slug))
        .with_target(format!("role:{name}"))
        .with_details(json!({ "role": name }));
    let command = Command::DeleteRole { slug, name };
    state.admin.command(admin.actor(), command, audit).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The user's roles (those still defined) and the permissions they carry.
#[utoipa::path(get, path = "/v1/admin/tenants/{slug}/users/{id}/roles", tag = "roles",
    params(("slug" = String, Path, description = "The tenant"), ("id" = uuid::Uuid, Path, description = "The user")),
    responses(
        (status = 200, description = "The user's roles and permissions", body = UserRoles),
        (status = 404, description = "No such user"),
    ))]
async fn user_roles(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Json<UserRoles>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let user = existing(&ctx, &id).await?;
    let assigned = ctx.db().await?.roles_of(user.id).await?;
    let claims = RoleClaims::of(&ctx.entry, &assigned);
    Ok(Json(UserRoles {
        roles: claims.roles,
        permissions: claims.permissions,
    }))
}

/// Gives the user a defined role (again: 204 too).
#[utoipa::path(put, path = "/v1/admin/tenants/{slug}/users/{id}/roles/{name}", tag = "roles",
    params(
        ("slug" = String, Path, description = "The tenant"),
        ("id" = uuid::Uuid, Path, description = "The user"),
        ("name" = String, Path, description = "The role"),
    ),
    responses(
        (status = 204, description = "The user holds the role"),
        (status = 404, description = "No such role or user"),
    ))]
async fn assign_role(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id, name)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    if !ctx.entry.roles.contains_key(&name) {
        return Err(no_role(&name));
    }
    let user = existing(&ctx, &id).await?;
    let db = ctx.db().await?;
    let audit = Audit::new("assign_role", Some(&slug))
        .with_target(format!("user:{}", user.id))
        .with_details(json!({ "user": user.id, "role": &name }));
    state
        .admin
        .perform(admin.actor(), db.assign_role(user.id, &name, Utc::now()), |_| audit)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Takes a role from the user.
#[utoipa::path(delete, path = "/v1/admin/tenants/{slug}/users/{id}/roles/{name}", tag = "roles",
    params(
        ("slug" = String, Path, description = "The tenant"),
        ("id" = uuid::Uuid, Path, description = "The user"),
        ("name" = String, Path, description = "The role"),
    ),
    responses(
        (status = 204, description = "The user no longer holds the role"),
        (status = 404, description = "No such user, or the user did not hold the role"),
    ))]
async fn unassign_role(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id, name)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let user = existing(&ctx, &id).await?;
    let db = ctx.db().await?;
    let held = state
        .admin
        .perform(admin.actor(), db.unassign_role(user.id, &name), |held| {
            Audit::new("unassign_role", Some(&slug))
                .with_target(format!("user:{}", user.id))
                .with_details(json!({ "user": user.id, "role": &name, "held": held }))
        })
        .await?;
    if !held {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("the user does not hold the role `{}`", crate::error::printable(&name)),
        ));
    }
    Ok(StatusCode::NO_CONTENT)
}
