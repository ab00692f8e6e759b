//! Admin endpoints for a tenant's users: create (with an optional password under the
//! tenant's policy, optionally mailing a verification link), list, show, update the
//! profile, set a password, delete, and mail a user a verification or password-reset
//! link (what Keycloak calls "send verify email" / "execute actions email"), disable and
//! enable.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tenantry_dataplane::UserRepository;
use tenantry_dataplane::model::{NewUser, ProfileUpdate, User};
use uuid::Uuid;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::web::{AdminAuth, ApiJson};
use tenantry_accounts::account::NewPassword;
use tenantry_admin::Audit;
use tenantry_tenancy::TenantContext;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/tenants/{slug}/users", get(list_users).post(create_user))
        .route(
            "/v1/admin/tenants/{slug}/users/{id}",
            get(show_user).patch(update_user).delete(delete_user),
        )
        .route("/v1/admin/tenants/{slug}/users/{id}/password", put(set_password))
        .route(
            "/v1/admin/tenants/{slug}/users/{id}/send-verification-email",
            post(send_verification_email),
        )
        .route(
            "/v1/admin/tenants/{slug}/users/{id}/send-reset-email",
            post(send_reset_email),
        )
        .route("/v1/admin/tenants/{slug}/users/{id}/disable", post(disable_user))
        .route("/v1/admin/tenants/{slug}/users/{id}/enable", post(enable_user))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    email: String,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    email_verified: bool,
    username: Option<String>,
    given_name: Option<String>,
    family_name: Option<String>,
    name: Option<String>,
    picture: Option<String>,
    locale: Option<String>,
    phone_number: Option<String>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    custom: BTreeMap<String, Value>,
    /// Mail the new user a verification link (when `email_verified` is false); a mail that
    /// does not leave undoes the creation, as at registration.
    #[serde(default)]
    send_verification_email: bool,
}

#[derive(Serialize)]
struct UserView {
    #[serde(flatten)]
    user: User,
    has_password: bool,
}

async fn view(ctx: &TenantContext, user: User) -> Result<UserView, ApiError> {
    let has_password = ctx.db().await?.password(user.id).await?.is_some();
    Ok(UserView { user, has_password })
}

fn user_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| not_found(id))
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("no user `{}`", crate::error::printable(id)),
    )
}

async fn existing(ctx: &TenantContext, id: &str) -> Result<User, ApiError> {
    let db = ctx.db().await?;
    db.user_by_id(user_id(id)?, &ctx.custom_fields())
        .await?
        .ok_or_else(|| not_found(id))
}

async fn create_user(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path(slug): Path<String>,
    ApiJson(body): ApiJson<CreateUser>,
) -> Result<Response, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let db = ctx.db().await?;
    let new = NewUser {
        email: body.email,
        email_verified: body.email_verified,
        username: body.username,
        given_name: body.given_name,
        family_name: body.family_name,
        name: body.name,
        picture: body.picture,
        locale: body.locale,
        phone_number: body.phone_number,
        metadata: body.metadata,
        custom: body.custom,
    };
    // The profile is refused before the password costs a hash.
    tenantry_dataplane::users::profile::check_new_user(&new)?;
    let password = match &body.password {
        Some(password) => Some(NewPassword::prepare(&state.accounts, &ctx, &new.email, password, "password").await?),
        None => None,
    };
    let mail = body.send_verification_email && !body.email_verified;
    if mail {
        // Refused before anything is made.
        ctx.require(tenantry_tenancy::Capability::Email)?;
    }
    let create = async {
        let user = db.create_user(new, &ctx.custom_fields()).await?;
        if let Some(password) = password {
            password.store(&db, user.id).await?;
        }
        if mail {
            tenantry_accounts::account_email::verify_new_account(&state.accounts, &ctx, &db, &user, None).await?;
        }
        Ok::<_, ApiError>(user)
    };
    let user = state
        .admin
        .perform(admin.actor(), create, |user| {
            Audit::new("create_user", Some(&slug)).with_details(serde_json::json!({ "user_id": user.id }))
        })
        .await?;
    let location = format!("/v1/admin/tenants/{slug}/users/{}", user.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(view(&ctx, user).await?),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    after: Option<Uuid>,
    limit: Option<u32>,
}

async fn list_users(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let users = ctx
        .db()
        .await?
        .list_users(query.after, limit, &ctx.custom_fields())
        .await?;
    let next = (users.len() as u32 == limit)
        .then(|| users.last().map(|u| u.id))
        .flatten();
    Ok(Json(serde_json::json!({ "users": users, "next_after": next })))
}

async fn show_user(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Json<UserView>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let user = existing(&ctx, &id).await?;
    Ok(Json(view(&ctx, user).await?))
}

/// A profile change (any of `ProfileUpdate`'s fields) and optional custom field values.
#[derive(Debug, Deserialize)]
struct UpdateUser {
    #[serde(flatten)]
    profile: ProfileUpdate,
    #[serde(default)]
    custom: Option<BTreeMap<String, Value>>,
}

/// Changes the fields present in the body (absent fields stay as they are).
async fn update_user(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateUser>,
) -> Result<Json<UserView>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let user = existing(&ctx, &id).await?;
    let db = ctx.db().await?;
    // Both parts are checked before either is written.
    tenantry_dataplane::users::profile::check_update(&body.profile, body.custom.as_ref())?;
    let update = async {
        db.update_profile(user.id, body.profile).await?;
        if let Some(custom) = &body.custom {
            db.set_custom_fields(user.id, custom, &ctx.custom_fields()).await?;
        }
        Ok::<_, ApiError>(())
    };
    state
        .admin
        .perform(admin.actor(), update, |_| {
            Audit::new("update_user", Some(&slug)).with_details(serde_json::json!({ "user_id": user.id }))
        })
        .await?;
    let user = existing(&ctx, &id).await?;
    Ok(Json(view(&ctx, user).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetPassword {
    password: String,
}

async fn set_password(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<SetPassword>,
) -> Result<StatusCode, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let user = existing(&ctx, &id).await?;
    // Checked and hashed before the audited write; a reset link mailed before must not
    // undo what the administrator set (`NewPassword::store` spends them).
    let password = NewPassword::prepare(&state.accounts, &ctx, &user.email, &body.password, "password").await?;
    let db = ctx.db().await?;
    let set = password.store(&db, user.id);
    state
        .admin
        .perform(admin.actor(), set, |_| {
            Audit::new("set_user_password", Some(&slug)).with_details(serde_json::json!({ "user_id": user.id }))
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_user(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let user = user_id(&id)?;
    let delete = async {
        match ctx.db().await?.delete_user(user).await? {
            true => Ok(()),
            false => Err(not_found(&id)),
        }
    };
    state
        .admin
        .perform(admin.actor(), delete, |_| {
            Audit::new("delete_user", Some(&slug)).with_details(serde_json::json!({ "user_id": id }))
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `user` if it may use a mailed link (a disabled account cannot).
fn active(user: User) -> Result<User, ApiError> {
    if !tenantry_tenancy::users::is_active(&user) {
        return Err(ApiError::new(
            ErrorCode::UserDisabled,
            "the user is disabled; enable it first",
        ));
    }
    Ok(user)
}

/// `POST …/users/{id}/send-verification-email`: mails the user a new verification link
/// (48 h) now. 204 once the SMTP server took it; 409 `email_already_verified`; 501
/// without SMTP settings; 502 when the mail does not leave.
async fn send_verification_email(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    ctx.require(tenantry_tenancy::Capability::Email)?;
    let user = active(existing(&ctx, &id).await?)?;
    if user.email_verified {
        return Err(ApiError::new(
            ErrorCode::EmailAlreadyVerified,
            "the user's email address is already verified",
        ));
    }
    let db = ctx.db().await?;
    let send = tenantry_accounts::account_email::start_verification(&state.accounts, &ctx, &db, &user, None);
    state
        .admin
        .perform(admin.actor(), send, |_| {
            Audit::new("send_verification_email", Some(&slug)).with_details(serde_json::json!({ "user_id": user.id }))
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST …/users/{id}/send-reset-email`: mails the user a password-reset link (1 h) now,
/// e.g. for an account created without a password. 204 once the SMTP server took it;
/// 501 without SMTP settings; 502 when the mail does not leave.
async fn send_reset_email(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    ctx.require(tenantry_tenancy::Capability::Email)?;
    let user = active(existing(&ctx, &id).await?)?;
    let db = ctx.db().await?;
    let send = tenantry_accounts::account_email::send_reset(&state.accounts, &ctx, &db, &user, None);
    state
        .admin
        .perform(admin.actor(), send, |_| {
            Audit::new("send_reset_email", Some(&slug)).with_details(serde_json::json!({ "user_id": user.id }))
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DisableUser {
    /// Why, for other administrators (at most 500 characters).
    #[serde(default)]
    reason: Option<String>,
}

/// `POST …/users/{id}/disable` `{"reason"?}`: the user can no longer sign in; every
/// session, refresh token and trusted device ends now (access tokens already issued live out their
/// short lifetime). 200 with the user.
async fn disable_user(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<DisableUser>,
) -> Result<Json<UserView>, ApiError> {
    let reason = body.reason;
    if reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
        return Err(ApiError::field("reason", "must be at most 500 characters"));
    }
    let ctx = state.resolver.resolve_slug(&slug)?;
    let user = existing(&ctx, &id).await?;
    let db = ctx.db().await?;
    let now = chrono::Utc::now();
    let disable = async {
        db.disable_user(user.id, reason.as_deref(), None).await?;
        tenantry_accounts::login::sign_out_everywhere(&db, user.id, now).await
    };
    state
        .admin
        .perform(admin.actor(), disable, |_| {
            Audit::new("disable_user", Some(&slug)).with_details(serde_json::json!({ "user_id": user.id }))
        })
        .await?;
    Ok(Json(view(&ctx, existing(&ctx, &id).await?).await?))
}

/// `POST …/users/{id}/enable`: a disabled user may sign in again. 200 with the user.
async fn enable_user(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Json<UserView>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let user = existing(&ctx, &id).await?;
    let db = ctx.db().await?;
    state
        .admin
        .perform(admin.actor(), db.enable_user(user.id), |_| {
            Audit::new("enable_user", Some(&slug)).with_details(serde_json::json!({ "user_id": user.id }))
        })
        .await?;
    Ok(Json(view(&ctx, existing(&ctx, &id).await?).await?))
}
