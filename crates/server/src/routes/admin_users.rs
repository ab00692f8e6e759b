//! Admin endpoints for a tenant's users: create (with an optional password under the
//! tenant's policy, optionally mailing a verification link), list, show, update the
//! profile, set a password, delete, and mail a user a verification or password-reset
//! link (what Keycloak calls "send verify email" / "execute actions email"), disable and
//! enable. The operations are `tenantry_admin::users`'; these handlers read the request
//! and answer.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tenantry_admin::users::{CreateUser, UpdateUser, UserLink, existing, has_password};
use tenantry_dataplane::UserSearch;
use tenantry_dataplane::model::{User, UserStatus};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;
use crate::web::{AdminAuth, ApiJson};
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

#[derive(Serialize)]
struct UserView {
    #[serde(flatten)]
    user: User,
    has_password: bool,
}

async fn view(ctx: &TenantContext, user: User) -> Result<Json<UserView>, ApiError> {
    let has_password = has_password(ctx, &user).await?;
    Ok(Json(UserView { user, has_password }))
}

async fn create_user(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path(slug): Path<String>,
    ApiJson(body): ApiJson<CreateUser>,
) -> Result<Response, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let user = state
        .admin
        .create_user(admin.actor(), &state.accounts, &ctx, body)
        .await?;
    let location = format!("/v1/admin/tenants/{slug}/users/{}", user.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        view(&ctx, user).await?,
    )
        .into_response())
}

/// The search of `GET …/users`: `q` (part of email, username or a name), `email`, `name`,
/// `status` (`active` / `disabled`), `field.<custom field>=<value>` (equal), `limit`
/// (1–500, default 50) and `after` (the `next_after` of the previous page).
fn user_search(params: Vec<(String, String)>) -> Result<UserSearch, ApiError> {
    let mut search = UserSearch {
        limit: 50,
        ..UserSearch::default()
    };
    let part = |name: &str, value: String| -> Result<Option<String>, ApiError> {
        if value.chars().count() > 320 {
            return Err(ApiError::field(name, "must be at most 320 characters"));
        }
        Ok(Some(value))
    };
    for (name, value) in params {
        match name.as_str() {
            "q" => search.text = part("q", value)?,
            "email" => search.email = part("email", value)?,
            "name" => search.name = part("name", value)?,
            "status" => {
                search.status = Some(match value.as_str() {
                    "active" => UserStatus::Active,
                    "disabled" => UserStatus::Disabled,
                    _ => return Err(ApiError::field("status", "must be active or disabled")),
                })
            }
            "limit" => {
                search.limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=500).contains(n))
                    .ok_or_else(|| ApiError::field("limit", "must be a number from 1 to 500"))?
            }
            "after" => {
                search.after = Some(
                    Uuid::try_parse(&value)
                        .map_err(|_| ApiError::field("after", "must be the next_after of a page"))?,
                )
            }
            other => match other.strip_prefix("field.") {
                Some(field) if search.custom.len() < 10 => search.custom.push((field.to_owned(), value)),
                Some(_) => return Err(ApiError::field(other, "at most 10 custom fields per search")),
                None => {
                    return Err(ApiError::field(&crate::error::printable(other), "unknown parameter"));
                }
            },
        }
    }
    Ok(search)
}

async fn list_users(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path(slug): Path<String>,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    use tenantry_dataplane::UserRepository;
    let Query(params) = query.map_err(|e| ApiError::new(crate::error::ErrorCode::BadRequest, e.body_text()))?;
    let mut search = user_search(params)?;
    let ctx = state.resolver.resolve_slug(&slug)?;
    let limit = search.limit as usize;
    // One more than the page tells whether there is a next page.
    search.limit += 1;
    let mut users = ctx
        .db()
        .await?
        .search_users(&search, &ctx.custom_fields())
        .await
        .map_err(|e| match e {
            tenantry_dataplane::DbError::Invalid(why) => ApiError::field("field", why),
            other => other.into(),
        })?;
    let next = (users.len() > limit).then(|| {
        users.truncate(limit);
        users.last().map(|u| u.id)
    });
    Ok(Json(
        serde_json::json!({ "users": users, "next_after": next.flatten() }),
    ))
}

async fn show_user(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Json<UserView>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    view(&ctx, existing(&ctx, &id).await?).await
}

/// Changes the fields present in the body (absent fields stay as they are).
async fn update_user(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateUser>,
) -> Result<Json<UserView>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let user = state.admin.update_user(admin.actor(), &ctx, &id, body).await?;
    view(&ctx, user).await
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
    let (actor, accounts) = (admin.actor(), &state.accounts);
    state
        .admin
        .set_user_password(actor, accounts, &ctx, &id, &body.password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_user(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    state.admin.delete_user(admin.actor(), &ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST …/users/{id}/send-verification-email`: mails the user a new verification link
/// (48 h) now. 204 once the SMTP server took it; 409 `email_already_verified` or
/// `user_disabled`; 501 without SMTP settings; 502 when the mail does not leave.
async fn send_verification_email(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    send_link(admin, state, slug, id, UserLink::Verification).await
}

/// `POST …/users/{id}/send-reset-email`: mails the user a password-reset link (1 h) now,
/// e.g. for an account created without a password; answers as the verification mail.
async fn send_reset_email(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    send_link(admin, state, slug, id, UserLink::Reset).await
}

async fn send_link(
    admin: AdminAuth,
    state: AppState,
    slug: String,
    id: String,
    link: UserLink,
) -> Result<StatusCode, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    state
        .admin
        .send_user_link(admin.actor(), &state.accounts, &ctx, &id, link)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DisableUser {
    /// Why, for other administrators (at most 500 characters).
    #[serde(default)]
    reason: Option<String>,
    /// When the suspension ends by itself (RFC 3339, in the future); without it the user
    /// stays disabled until enabled.
    #[serde(default)]
    until: Option<chrono::DateTime<chrono::Utc>>,
}

/// `POST …/users/{id}/disable` `{"reason"?, "until"?}`: the user can no longer sign in
/// (until `until`, when given); every session, refresh token and trusted device ends now.
/// 200 with the user.
async fn disable_user(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<DisableUser>,
) -> Result<Json<UserView>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let user = state
        .admin
        .disable_user(admin.actor(), &ctx, &id, body.reason.as_deref(), body.until)
        .await?;
    view(&ctx, user).await
}

/// `POST …/users/{id}/enable`: a disabled user may sign in again. 200 with the user.
async fn enable_user(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Json<UserView>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let user = state.admin.enable_user(admin.actor(), &ctx, &id).await?;
    view(&ctx, user).await
}
