//! Admin endpoints for installation admins (`/v1/admin/admins`, `/v1/admin/me`). A
//! credential sees and manages only admins within its own reach, and grants no more than
//! it holds (`Principal::may_grant`): a global admin manages everyone, a tenant admin the
//! admins of its tenants. A new admin without a password gets a one-time password, shown
//! once; resetting an admin's credentials makes a new one and clears its TOTP.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::Serialize;
use serde_json::json;
use tenantry_admin::Audit;
use tenantry_admin::admins::{AdminView, NewAdmin, make_admin};
use tenantry_admin::api::AdminChange;
use tenantry_controlplane::Command;
use tenantry_controlplane::model::{Admin, AdminAccess, AdminReach};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::web::{AdminAuth, ApiJson, PageParams, PageQuery};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/me", get(me))
        .route("/v1/admin/admins", post(create).get(list))
        .route("/v1/admin/admins/{id}", get(show).patch(update).delete(remove))
        .route("/v1/admin/admins/{id}/reset-credentials", post(reset_credentials))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(me, create, list, show, update, remove, reset_credentials))]
pub struct Doc;

/// What kind of credential called.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    Admin,
    ApiKey,
}

/// The calling credential.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminMe {
    /// The admin's id, or the API key's.
    pub id: Uuid,
    pub kind: CredentialKind,
    pub reach: AdminReach,
    pub access: AdminAccess,
    /// The admin's profile; `null` for an API key (or an admin since deleted).
    pub admin: Option<AdminView>,
}

/// An admin just made, and its one-time password when none was given (shown this once).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedAdmin {
    #[serde(flatten)]
    pub admin: AdminView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub one_time_password: Option<String>,
}

/// A page of admins.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminList {
    pub admins: Vec<AdminView>,
    pub next_after: Option<String>,
}

/// A new one-time password, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct OneTimePassword {
    pub one_time_password: String,
}

/// The calling credential: the admin (or API key) and its reach and access.
#[utoipa::path(get, path = "/v1/admin/me", tag = "admins",
    responses((status = 200, body = AdminMe)))]
async fn me(admin: AdminAuth, State(state): State<AppState>) -> Json<AdminMe> {
    let principal = &admin.0;
    let snapshot = state.control_plane.snapshot();
    let profile = snapshot.admins.get(&principal.actor.admin_id).map(AdminView::from);
    Json(AdminMe {
        id: principal.actor.admin_id,
        kind: if principal.actor.api_key {
            CredentialKind::ApiKey
        } else {
            CredentialKind::Admin
        },
        reach: principal.reach.clone(),
        access: principal.access,
        admin: profile,
    })
}

/// Refuses (403, recorded) a grant beyond the caller's own reach or access.
async fn check_grant(
    admin: &AdminAuth,
    state: &AppState,
    what: &str,
    reach: &AdminReach,
    access: AdminAccess,
) -> Result<(), ApiError> {
    let snapshot = state.control_plane.snapshot();
    match admin.0.may_grant(reach, access, &snapshot) {
        Err(e) if e.code == ErrorCode::Forbidden => Err(admin.refuse(state, None, what, e.detail).await),
        other => other,
    }
}

/// A new admin; without a password, a one-time password is made and answered this once.
/// Its reach and access may not exceed the caller's.
#[utoipa::path(post, path = "/v1/admin/admins", tag = "admins",
    request_body = NewAdmin,
    responses((status = 201, body = CreatedAdmin, headers(("Location" = String, description = "The new admin's URL")))))]
async fn create(
    admin: AdminAuth,
    State(state): State<AppState>,
    ApiJson(input): ApiJson<NewAdmin>,
) -> Result<Response, ApiError> {
    check_grant(&admin, &state, "POST /v1/admin/admins", &input.reach, input.access).await?;
    let (made, one_time) = make_admin(input, Utc::now()).await?;
    let view = AdminView::from(&made);
    let audit = Audit::new("create_admin", None)
        .with_target(format!("admin:{}", made.id))
        .with_details(json!({
            "admin": made.id, "email": &made.email, "reach": &made.reach, "access": made.access,
        }));
    state
        .admin
        .command(admin.actor(), Command::PutAdmin { admin: made }, audit)
        .await?;
    let location = format!("/v1/admin/admins/{}", view.id);
    let body = CreatedAdmin {
        admin: view,
        one_time_password: one_time,
    };
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(body)).into_response())
}

/// The admins within the caller's reach, by id, in pages (`limit`, `after`).
#[utoipa::path(get, path = "/v1/admin/admins", tag = "admins",
    params(PageParams),
    responses((status = 200, body = AdminList)))]
async fn list(admin: AdminAuth, State(state): State<AppState>, page: PageQuery) -> Json<AdminList> {
    let snapshot = state.control_plane.snapshot();
    let admins = snapshot
        .admins
        .iter()
        .filter(|(_, a)| admin.0.reach.includes(&a.reach))
        .map(|(id, a)| (id.to_string(), AdminView::from(a)));
    let page = page.page(admins);
    Json(AdminList {
        admins: page.items,
        next_after: page.next_after,
    })
}

/// The admin `id` if it is within the caller's reach (404 otherwise: one out of reach is
/// not told apart from one that does not exist).
fn visible(admin: &AdminAuth, state: &AppState, id: &str) -> Result<Admin, ApiError> {
    let snapshot = state.control_plane.snapshot();
    admin.within_reach(&snapshot.admins, |a| &a.reach, "admin", id).cloned()
}

/// The admin `id`, if it is within the caller's reach.
#[utoipa::path(get, path = "/v1/admin/admins/{id}", tag = "admins",
    params(("id" = Uuid, Path, description = "The admin")),
    responses((status = 200, body = AdminView), (status = 404, description = "No such admin within the caller's reach")))]
async fn show(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<AdminView>, ApiError> {
    visible(&admin, &state, &id).map(|a| Json(AdminView::from(&a)))
}

/// Changes an admin's name, reach or access (no further than the caller's own; the last
/// global read-write admin stays one).
#[utoipa::path(patch, path = "/v1/admin/admins/{id}", tag = "admins",
    params(("id" = Uuid, Path, description = "The admin")),
    request_body = AdminChange,
    responses((status = 200, body = AdminView), (status = 404, description = "No such admin within the caller's reach"),
        (status = 409, description = "`last_global_admin`: no global read-write admin would be left")))]
async fn update(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(change): ApiJson<AdminChange>,
) -> Result<Json<AdminView>, ApiError> {
    let mut target = visible(&admin, &state, &id)?;
    if let Some(name) = change.name {
        target.name = name;
    }
    target.reach = change.reach.unwrap_or(target.reach);
    target.access = change.access.unwrap_or(target.access);
    check_grant(&admin, &state, "PATCH /v1/admin/admins", &target.reach, target.access).await?;
    keep_a_global_writer(&state, &target)?;
    let audit = Audit::new("update_admin", None)
        .with_target(format!("admin:{}", target.id))
        .with_details(json!({
            "admin": target.id, "reach": &target.reach, "access": target.access,
        }));
    let view = AdminView::from(&target);
    state
        .admin
        .command(admin.actor(), Command::PutAdmin { admin: target }, audit)
        .await?;
    Ok(Json(view))
}

/// 409 when the change would leave the installation without a global read-write admin
/// (`changed` is the admin as it would be stored; `None` when it is deleted).
fn keep_a_global_writer(state: &AppState, changed: &Admin) -> Result<(), ApiError> {
    let still = |a: &Admin| a.reach.is_global() && a.access == AdminAccess::ReadWrite;
    let snapshot = state.control_plane.snapshot();
    let remaining = snapshot
        .admins
        .values()
        .filter(|a| if a.id == changed.id { still(changed) } else { still(a) })
        .count();
    if remaining == 0 {
        return Err(ApiError::new(
            ErrorCode::LastGlobalAdmin,
            "the installation must keep at least one global read-write admin",
        ));
    }
    Ok(())
}

/// Deletes an admin (not the last global read-write one).
#[utoipa::path(delete, path = "/v1/admin/admins/{id}", tag = "admins",
    params(("id" = Uuid, Path, description = "The admin")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such admin within the caller's reach"),
        (status = 409, description = "`last_global_admin`: no global read-write admin would be left")))]
async fn remove(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let target = visible(&admin, &state, &id)?;
    let gone = Admin {
        access: AdminAccess::ReadOnly,
        ..target.clone()
    };
    keep_a_global_writer(&state, &gone)?;
    let audit = Audit::new("delete_admin", None)
        .with_target(format!("admin:{}", target.id))
        .with_details(json!({ "admin": target.id, "email": &target.email }));
    state
        .admin
        .command(admin.actor(), Command::DeleteAdmin { id: target.id }, audit)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new one-time password (answered once), TOTP cleared (set up again at the next
/// sign-in), every session ended. For an admin who lost a password or an authenticator.
#[utoipa::path(post, path = "/v1/admin/admins/{id}/reset-credentials", tag = "admins",
    params(("id" = Uuid, Path, description = "The admin")),
    responses((status = 200, body = OneTimePassword), (status = 404, description = "No such admin within the caller's reach"),
        (status = 409, description = "The admin signs in with a bootstrap token, not a password")))]
async fn reset_credentials(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<OneTimePassword>, ApiError> {
    let target = visible(&admin, &state, &id)?;
    if target.password_hash.is_none() {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "this admin signs in with a bootstrap token, not a password",
        ));
    }
    let password = tenantry_crypto::random_token(15);
    let reset = Admin {
        password_hash: Some(tenantry_accounts::passwords::hash(password.clone()).await?),
        password_temporary: true,
        totp: None,
        ..target.clone()
    };
    let audit = Audit::new("reset_admin_credentials", None)
        .with_target(format!("admin:{}", target.id))
        .with_details(json!({ "admin": target.id }));
    state
        .admin
        .command(admin.actor(), Command::PutAdmin { admin: reset }, audit)
        .await?;
    state
        .writer
        .write(Command::EndAdminSessions {
            session_id: None,
            admin_id: Some(target.id),
        })
        .await
        .map_err(ApiError::from)?;
    Ok(Json(OneTimePassword {
        one_time_password: password,
    }))
}
