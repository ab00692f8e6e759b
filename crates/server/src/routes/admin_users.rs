//! Admin endpoints for a tenant's users: create (with an optional password under the
//! tenant's policy, optionally mailing a verification link), list, show, update the
//! profile, set a password, delete, and mail a user a verification or password-reset
//! link (what Keycloak calls "send verify email" / "execute actions email"), disable and
//! enable. The operations are `tenantry_admin::users`'; these handlers read the request
//! and answer.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Serialize;
use tenantry_admin::api::{DisableUser, SetPassword};
use tenantry_admin::users::{CreateUser, UpdateUser, UserLink, existing, has_password};
use tenantry_dataplane::UserSearch;
use tenantry_dataplane::model::{User, UserStatus};
use utoipa::ToSchema;
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
        .route("/v1/admin/tenants/{slug}/users/{id}/passkeys", get(list_passkeys))
        .route(
            "/v1/admin/tenants/{slug}/users/{id}/passkeys/{passkey}",
            delete(remove_passkey),
        )
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list_users,
    create_user,
    show_user,
    update_user,
    delete_user,
    set_password,
    send_verification_email,
    send_reset_email,
    disable_user,
    enable_user,
    list_passkeys,
    remove_passkey
))]
pub struct Doc;

/// A user, and whether it has a password (never the hash).
#[derive(Serialize, ToSchema)]
struct UserView {
    #[serde(flatten)]
    user: User,
    has_password: bool,
}

/// A page of users, and the `after` of the next page (`null` on the last).
#[derive(Serialize, ToSchema)]
struct UserList {
    users: Vec<User>,
    next_after: Option<Uuid>,
}

async fn view(ctx: &TenantContext, user: User) -> Result<Json<UserView>, ApiError> {
    let has_password = has_password(ctx, &user).await?;
    Ok(Json(UserView { user, has_password }))
}

/// Creates a user, with an optional password under the tenant's policy.
///
/// With `send_verification_email` (and `email_verified` false) the new user is mailed a
/// verification link; a mail that does not leave undoes the creation.
#[utoipa::path(post, path = "/v1/admin/tenants/{slug}/users", tag = "users",
    params(("slug" = String, Path, description = "The tenant")),
    request_body = CreateUser,
    responses(
        (status = 201, description = "Created", body = UserView,
            headers(("Location" = String, description = "The new user's URL"))),
        (status = 501, description = "A verification mail was asked for and the tenant has no SMTP settings"),
        (status = 502, description = "The mail server did not accept the verification mail"),
    ))]
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

/// Searches the tenant's users, in pages.
///
/// Besides the parameters below, `field.<custom field>=<value>` (at most 10) keeps the
/// users whose custom field equals the value (as text: `42`, `true`, `2024-01-31`).
/// Any other parameter is refused.
#[utoipa::path(get, path = "/v1/admin/tenants/{slug}/users", tag = "users",
    params(
        ("slug" = String, Path, description = "The tenant"),
        ("q" = Option<String>, Query, max_length = 320,
            description = "Part of the email, username, name, given or family name (case-insensitive)"),
        ("email" = Option<String>, Query, max_length = 320, description = "Part of the email (case-insensitive)"),
        ("name" = Option<String>, Query, max_length = 320,
            description = "Part of the name, given or family name (case-insensitive)"),
        ("status" = Option<UserStatus>, Query, description = "Only active or only disabled users"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Users per page, 1 to 500 (default 50)"),
        ("after" = Option<Uuid>, Query, description = "The `next_after` of the previous page"),
    ),
    responses((status = 200, description = "A page of users", body = UserList)))]
async fn list_users(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path(slug): Path<String>,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<UserList>, ApiError> {
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
    Ok(Json(UserList {
        users,
        next_after: next.flatten(),
    }))
}

/// One user.
#[utoipa::path(get, path = "/v1/admin/tenants/{slug}/users/{id}", tag = "users",
    params(("slug" = String, Path, description = "The tenant"), ("id" = Uuid, Path, description = "The user")),
    responses(
        (status = 200, description = "The user", body = UserView),
        (status = 404, description = "No such user"),
    ))]
async fn show_user(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Json<UserView>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    view(&ctx, existing(&ctx, &id).await?).await
}

/// Changes the fields present in the body (absent fields stay as they are).
#[utoipa::path(patch, path = "/v1/admin/tenants/{slug}/users/{id}", tag = "users",
    params(("slug" = String, Path, description = "The tenant"), ("id" = Uuid, Path, description = "The user")),
    request_body = UpdateUser,
    responses(
        (status = 200, description = "The user as it is now", body = UserView),
        (status = 404, description = "No such user"),
    ))]
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

/// The user's passkeys.
#[derive(Serialize, ToSchema)]
struct PasskeyList {
    passkeys: Vec<tenantry_dataplane::Passkey>,
}

/// The user's passkeys (no key material: names, kinds, dates).
#[utoipa::path(get, path = "/v1/admin/tenants/{slug}/users/{id}/passkeys", tag = "users",
    params(("slug" = String, Path, description = "The tenant"), ("id" = Uuid, Path, description = "The user")),
    responses(
        (status = 200, body = PasskeyList),
        (status = 404, description = "No such user"),
    ))]
async fn list_passkeys(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Json<PasskeyList>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let user = existing(&ctx, &id).await?;
    let passkeys = tenantry_accounts::passkeys::list(&ctx.db().await?, user.id).await?;
    Ok(Json(PasskeyList { passkeys }))
}

/// Removes one of the user's passkeys (the last one too).
#[utoipa::path(delete, path = "/v1/admin/tenants/{slug}/users/{id}/passkeys/{passkey}", tag = "users",
    params(("slug" = String, Path, description = "The tenant"), ("id" = Uuid, Path, description = "The user"),
        ("passkey" = Uuid, Path, description = "The passkey")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such user, or no such passkey of the user"),
    ))]
async fn remove_passkey(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id, passkey)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    state
        .admin
        .remove_user_passkey(admin.actor(), &ctx, &id, &passkey)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets the user's password (links mailed before for a reset stop working).
#[utoipa::path(put, path = "/v1/admin/tenants/{slug}/users/{id}/password", tag = "users",
    params(("slug" = String, Path, description = "The tenant"), ("id" = Uuid, Path, description = "The user")),
    request_body = SetPassword,
    responses(
        (status = 204, description = "The password is set"),
        (status = 404, description = "No such user"),
    ))]
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

/// Deletes the user.
#[utoipa::path(delete, path = "/v1/admin/tenants/{slug}/users/{id}", tag = "users",
    params(("slug" = String, Path, description = "The tenant"), ("id" = Uuid, Path, description = "The user")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such user"),
    ))]
async fn delete_user(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    state.admin.delete_user(admin.actor(), &ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Mails the user a new verification link (48 h) now.
#[utoipa::path(post, path = "/v1/admin/tenants/{slug}/users/{id}/send-verification-email", tag = "users",
    params(("slug" = String, Path, description = "The tenant"), ("id" = Uuid, Path, description = "The user")),
    responses(
        (status = 204, description = "The SMTP server took the mail"),
        (status = 404, description = "No such user"),
        (status = 409, description = "`email_already_verified` or `user_disabled`"),
        (status = 501, description = "The tenant has no SMTP settings"),
        (status = 502, description = "The mail server did not accept the mail"),
    ))]
async fn send_verification_email(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    send_link(admin, state, slug, id, UserLink::Verification).await
}

/// Mails the user a password-reset link (1 h) now.
///
/// E.g. for an account created without a password.
#[utoipa::path(post, path = "/v1/admin/tenants/{slug}/users/{id}/send-reset-email", tag = "users",
    params(("slug" = String, Path, description = "The tenant"), ("id" = Uuid, Path, description = "The user")),
    responses(
        (status = 204, description = "The SMTP server took the mail"),
        (status = 404, description = "No such user"),
        (status = 409, description = "`user_disabled`"),
        (status = 501, description = "The tenant has no SMTP settings"),
        (status = 502, description = "The mail server did not accept the mail"),
    ))]
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

/// Disables the user: it can no longer sign in (until `until`, when given).
///
/// Every session, refresh token and trusted device of the user ends now.
#[utoipa::path(post, path = "/v1/admin/tenants/{slug}/users/{id}/disable", tag = "users",
    params(("slug" = String, Path, description = "The tenant"), ("id" = Uuid, Path, description = "The user")),
    request_body = DisableUser,
    responses(
        (status = 200, description = "The user, disabled", body = UserView),
        (status = 404, description = "No such user"),
    ))]
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

/// Enables the user: a disabled user may sign in again.
#[utoipa::path(post, path = "/v1/admin/tenants/{slug}/users/{id}/enable", tag = "users",
    params(("slug" = String, Path, description = "The tenant"), ("id" = Uuid, Path, description = "The user")),
    responses(
        (status = 200, description = "The user, enabled", body = UserView),
        (status = 404, description = "No such user"),
    ))]
async fn enable_user(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Json<UserView>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let user = state.admin.enable_user(admin.actor(), &ctx, &id).await?;
    view(&ctx, user).await
}
