//! Admin endpoints for what users' sign-ins left behind: login sessions (by their `sid`),
//! refresh-token families and consents. List per user; revoke one, all of a user's, or
//! all of a client's. A revoked session takes its refresh tokens with it, and the access
//! tokens that name it stop working at once (`tokens::accept_access_token`); a revoked
//! refresh token ends its family.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tenantry_accounts::account;
use tenantry_admin::Audit;
use tenantry_admin::users::existing;
use tenantry_dataplane::{ConsentRepository, SessionRepository, TokenRepository};
use tenantry_oidc::tokens::sid;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::web::AdminAuth;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/admin/tenants/{slug}/users/{id}/sessions",
            get(list_sessions).delete(revoke_sessions),
        )
        .route(
            "/v1/admin/tenants/{slug}/users/{id}/sessions/{sid}",
            delete(revoke_session),
        )
        .route(
            "/v1/admin/tenants/{slug}/users/{id}/refresh-tokens",
            get(list_refresh_tokens).delete(revoke_refresh_tokens),
        )
        .route(
            "/v1/admin/tenants/{slug}/users/{id}/refresh-tokens/{family}",
            delete(revoke_refresh_family),
        )
        .route("/v1/admin/tenants/{slug}/users/{id}/consents", get(list_consents))
        .route(
            "/v1/admin/tenants/{slug}/users/{id}/consents/{client_id}",
            delete(revoke_consent),
        )
        .route(
            "/v1/admin/tenants/{slug}/clients/{client_id}/refresh-tokens",
            delete(revoke_client_refresh_tokens),
        )
        .route(
            "/v1/admin/tenants/{slug}/clients/{client_id}/consents",
            delete(revoke_client_consents),
        )
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list_sessions,
    revoke_sessions,
    revoke_session,
    list_refresh_tokens,
    revoke_refresh_tokens,
    revoke_refresh_family,
    list_consents,
    revoke_consent,
    revoke_client_refresh_tokens,
    revoke_client_consents
))]
pub struct Doc;

/// A live login session of a user.
#[derive(Debug, Serialize, ToSchema)]
struct UserSession {
    /// The session's `sid` (as in ID tokens).
    id: String,
    auth_time: DateTime<Utc>,
    /// How the user authenticated (`pwd`, `otp`, ...).
    amr: Vec<String>,
    acr: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    created_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

/// A user's live sessions.
#[derive(Debug, Serialize, ToSchema)]
struct UserSessionList {
    sessions: Vec<UserSession>,
}

/// A usable refresh token of a user: the current token of its family.
#[derive(Debug, Serialize, ToSchema)]
struct UserRefreshToken {
    /// The family.
    id: Uuid,
    client_id: String,
    scope: String,
    /// The `sid` of the session it came from, if any.
    session: Option<String>,
    /// When the login the family started from happened (absent for old tokens).
    auth_time: Option<DateTime<Utc>>,
    issued_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

/// A user's usable refresh tokens, one per family.
#[derive(Debug, Serialize, ToSchema)]
struct UserRefreshTokenList {
    refresh_tokens: Vec<UserRefreshToken>,
}

/// A user's grant to a client.
#[derive(Debug, Serialize, ToSchema)]
struct UserConsent {
    client_id: String,
    scopes: Vec<String>,
    granted_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
}

/// The clients a user granted access to.
#[derive(Debug, Serialize, ToSchema)]
struct UserConsentList {
    consents: Vec<UserConsent>,
}

/// How many sessions and refresh tokens were revoked.
#[derive(Debug, Serialize, ToSchema)]
struct UserSessionsRevoked {
    sessions_revoked: u64,
    refresh_tokens_revoked: u64,
}

/// How many refresh tokens were revoked.
#[derive(Debug, Serialize, ToSchema)]
struct RefreshTokensRevoked {
    refresh_tokens_revoked: u64,
}

/// How many consents were withdrawn.
#[derive(Debug, Serialize, ToSchema)]
struct ConsentsRevoked {
    consents_revoked: u64,
}

/// The event of a revocation: its target is the user it was for, else the client.
fn audit(action: &'static str, slug: &str, details: Value) -> Audit {
    let target = match (details["user_id"].as_str(), details["client_id"].as_str()) {
        (Some(user), _) => Some(format!("user:{user}")),
        (None, Some(client)) => Some(format!("client:{client}")),
        _ => None,
    };
    let audit = Audit::new(action, Some(slug)).with_details(details);
    match target {
        Some(target) => audit.with_target(target),
        None => audit,
    }
}

/// The user's live sessions; `id` is the session's `sid` (as in ID tokens).
#[utoipa::path(get, path = "/v1/admin/tenants/{slug}/users/{id}/sessions", tag = "sessions",
    params(("slug" = String, Path, description = "The tenant"), ("id" = Uuid, Path, description = "The user")),
    responses(
        (status = 200, description = "The user's live sessions", body = UserSessionList),
        (status = 404, description = "No such user"),
    ))]
async fn list_sessions(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Json<UserSessionList>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let user = existing(&ctx, &id).await?;
    let sessions = account::sessions(&ctx.db().await?, user.id)
        .await?
        .into_iter()
        .map(|s| UserSession {
            id: sid(&s.id_hash),
            auth_time: s.auth_time,
            amr: s.amr,
            acr: s.acr,
            ip: s.ip,
            user_agent: s.user_agent,
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
            expires_at: s.expires_at,
        })
        .collect();
    Ok(Json(UserSessionList { sessions }))
}

/// Ends one session and its refresh tokens (its apps told by back-channel logout).
#[utoipa::path(delete, path = "/v1/admin/tenants/{slug}/users/{id}/sessions/{sid}", tag = "sessions",
    operation_id = "revoke_user_session",
    params(
        ("slug" = String, Path, description = "The tenant"),
        ("id" = Uuid, Path, description = "The user"),
        ("sid" = String, Path, description = "The session's `sid`"),
    ),
    responses(
        (status = 204, description = "The session ended"),
        (status = 404, description = "No such user, or the user has no such live session"),
    ))]
async fn revoke_session(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id, session)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let user = existing(&ctx, &id).await?;
    let db = ctx.db().await?;
    let policy = state.config.outbound;
    let end = async {
        let this = |s: &tenantry_dataplane::model::Session| sid(&s.id_hash) == session;
        match tenantry_oidc::logout::end_sessions_of(&ctx, &db, user.id, this, policy).await? {
            0 => Err(ApiError::new(ErrorCode::NotFound, "no such session")),
            _ => Ok(()),
        }
    };
    let details = json!({ "user_id": user.id, "session": &session });
    state
        .admin
        .perform(admin.actor(), end, |_| audit("revoke_session", &slug, details))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends every session of the user, with their refresh tokens (each session's apps told
/// by back-channel logout).
#[utoipa::path(delete, path = "/v1/admin/tenants/{slug}/users/{id}/sessions", tag = "sessions",
    params(("slug" = String, Path, description = "The tenant"), ("id" = Uuid, Path, description = "The user")),
    responses(
        (status = 200, description = "How many were revoked", body = UserSessionsRevoked),
        (status = 404, description = "No such user"),
    ))]
async fn revoke_sessions(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Json<UserSessionsRevoked>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let user = existing(&ctx, &id).await?;
    let db = ctx.db().await?;
    let now = Utc::now();
    let policy = state.config.outbound;
    let end = async {
        // Each session's apps are told by back-channel logout.
        let ended = tenantry_oidc::logout::end_sessions_of(&ctx, &db, user.id, |_| true, policy).await?;
        let sessions = db.revoke_user_sessions(user.id, None, now).await? + ended as u64;
        let tokens = db.revoke_refresh_by_user(user.id, now).await?;
        Ok::<_, ApiError>((sessions, tokens))
    };
    let (sessions, tokens) = state
        .admin
        .perform(admin.actor(), end, |(sessions, tokens)| {
            audit(
                "revoke_user_sessions",
                &slug,
                json!({ "user_id": user.id, "sessions": sessions, "refresh_tokens": tokens }),
            )
        })
        .await?;
    Ok(Json(UserSessionsRevoked {
        sessions_revoked: sessions,
        refresh_tokens_revoked: tokens,
    }))
}

/// The user's usable refresh tokens, one per family (`id` is the family).
#[utoipa::path(get, path = "/v1/admin/tenants/{slug}/users/{id}/refresh-tokens", tag = "sessions",
    params(("slug" = String, Path, description = "The tenant"), ("id" = Uuid, Path, description = "The user")),
    responses(
        (status = 200, description = "The user's usable refresh tokens", body = UserRefreshTokenList),
        (status = 404, description = "No such user"),
    ))]
async fn list_refresh_tokens(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Json<UserRefreshTokenList>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let user = existing(&ctx, &id).await?;
    let refresh_tokens = ctx
        .db()
        .await?
        .live_refresh_tokens_of(user.id, Utc::now())
        .await?
        .into_iter()
        .map(|t| UserRefreshToken {
            id: t.family_id,
            client_id: t.client_id,
            scope: t.scope,
            session: t.session_id_hash.as_deref().map(sid),
            auth_time: t.auth_time,
            issued_at: t.issued_at,
            expires_at: t.expires_at,
        })
        .collect();
    Ok(Json(UserRefreshTokenList { refresh_tokens }))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ByClient {
    /// Only the refresh tokens of this client.
    client_id: Option<String>,
}

/// Revokes the user's refresh tokens: all, or those of `?client_id=`.
#[utoipa::path(delete, path = "/v1/admin/tenants/{slug}/users/{id}/refresh-tokens", tag = "sessions",
    params(("slug" = String, Path, description = "The tenant"), ("id" = Uuid, Path, description = "The user"), ByClient),
    responses(
        (status = 200, description = "How many were revoked", body = RefreshTokensRevoked),
        (status = 404, description = "No such user"),
    ))]
async fn revoke_refresh_tokens(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
    query: Result<Query<ByClient>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RefreshTokensRevoked>, ApiError> {
    let Query(by) = query.map_err(|e| ApiError::field("query", e.body_text()))?;
    let ctx = state.resolver.resolve_slug(&slug)?;
    let user = existing(&ctx, &id).await?;
    let db = ctx.db().await?;
    let now = Utc::now();
    let revoke = async {
        match &by.client_id {
            Some(client) => db.revoke_refresh_by_client(client, Some(user.id), now).await,
            None => db.revoke_refresh_by_user(user.id, now).await,
        }
    };
    let revoked = state
        .admin
        .perform(admin.actor(), revoke, |n| {
            audit(
                "revoke_refresh_tokens",
                &slug,
                json!({ "user_id": user.id, "client_id": &by.client_id, "revoked": n }),
            )
        })
        .await?;
    Ok(Json(RefreshTokensRevoked {
        refresh_tokens_revoked: revoked,
    }))
}

/// Ends one refresh-token family of the user.
#[utoipa::path(delete, path = "/v1/admin/tenants/{slug}/users/{id}/refresh-tokens/{family}", tag = "sessions",
    params(
        ("slug" = String, Path, description = "The tenant"),
        ("id" = Uuid, Path, description = "The user"),
        ("family" = Uuid, Path, description = "The refresh-token family (the `id` of the list)"),
    ),
    responses(
        (status = 204, description = "The family is revoked"),
        (status = 404, description = "No such user, or the family is not one of the user's live ones"),
    ))]
async fn revoke_refresh_family(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id, family)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let user = existing(&ctx, &id).await?;
    let db = ctx.db().await?;
    let now = Utc::now();
    let not_found = || ApiError::new(ErrorCode::NotFound, "no such live refresh token for this user");
    let family = Uuid::try_parse(&family).map_err(|_| not_found())?;
    let live = db.live_refresh_tokens_of(user.id, now).await?;
    if !live.iter().any(|t| t.family_id == family) {
        return Err(not_found());
    }
    state
        .admin
        .perform(admin.actor(), db.revoke_family(family, "admin_revoked", now), |_| {
            audit(
                "revoke_refresh_token",
                &slug,
                json!({ "user_id": user.id, "family": family }),
            )
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The clients the user granted access to, with the scopes.
#[utoipa::path(get, path = "/v1/admin/tenants/{slug}/users/{id}/consents", tag = "sessions",
    params(("slug" = String, Path, description = "The tenant"), ("id" = Uuid, Path, description = "The user")),
    responses(
        (status = 200, description = "The user's live grants", body = UserConsentList),
        (status = 404, description = "No such user"),
    ))]
async fn list_consents(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Json<UserConsentList>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let user = existing(&ctx, &id).await?;
    let consents = ctx
        .db()
        .await?
        .consents_of(user.id, Utc::now())
        .await?
        .into_iter()
        .map(|c| UserConsent {
            client_id: c.client_id,
            scopes: c.scopes,
            granted_at: c.granted_at,
            expires_at: c.expires_at,
        })
        .collect();
    Ok(Json(UserConsentList { consents }))
}

/// Withdraws the user's grant to one client (the next authorization asks again).
///
/// The client's refresh tokens for the user end with it.
#[utoipa::path(delete, path = "/v1/admin/tenants/{slug}/users/{id}/consents/{client_id}", tag = "sessions",
    params(
        ("slug" = String, Path, description = "The tenant"),
        ("id" = Uuid, Path, description = "The user"),
        ("client_id" = String, Path, description = "The client"),
    ),
    responses(
        (status = 204, description = "The grant is withdrawn"),
        (status = 404, description = "No such user, or the user has no live grant to the client"),
    ))]
async fn revoke_consent(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id, client_id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let user = existing(&ctx, &id).await?;
    let db = ctx.db().await?;
    let now = Utc::now();
    let revoke = async {
        let had = db.revoke_consent(user.id, &client_id, now).await?;
        if had {
            db.revoke_refresh_by_client(&client_id, Some(user.id), now).await?;
        }
        Ok::<_, tenantry_dataplane::DbError>(had)
    };
    let had = state
        .admin
        .perform(admin.actor(), revoke, |had| {
            audit(
                "revoke_consent",
                &slug,
                json!({ "user_id": user.id, "client_id": &client_id, "had": had }),
            )
        })
        .await?;
    if !had {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "the user has no live grant to this client",
        ));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes every refresh token of a client (all users).
#[utoipa::path(delete, path = "/v1/admin/tenants/{slug}/clients/{client_id}/refresh-tokens", tag = "sessions",
    params(("slug" = String, Path, description = "The tenant"), ("client_id" = String, Path, description = "The client")),
    responses((status = 200, description = "How many were revoked", body = RefreshTokensRevoked)))]
async fn revoke_client_refresh_tokens(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, client_id)): Path<(String, String)>,
) -> Result<Json<RefreshTokensRevoked>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let db = ctx.db().await?;
    let revoke = db.revoke_refresh_by_client(&client_id, None, Utc::now());
    let revoked = state
        .admin
        .perform(admin.actor(), revoke, |n| {
            audit(
                "revoke_client_refresh_tokens",
                &slug,
                json!({ "client_id": &client_id, "revoked": n }),
            )
        })
        .await?;
    Ok(Json(RefreshTokensRevoked {
        refresh_tokens_revoked: revoked,
    }))
}

/// Withdraws every user's grant to a client (each user is asked again).
#[utoipa::path(delete, path = "/v1/admin/tenants/{slug}/clients/{client_id}/consents", tag = "sessions",
    params(("slug" = String, Path, description = "The tenant"), ("client_id" = String, Path, description = "The client")),
    responses((status = 200, description = "How many were withdrawn", body = ConsentsRevoked)))]
async fn revoke_client_consents(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, client_id)): Path<(String, String)>,
) -> Result<Json<ConsentsRevoked>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let db = ctx.db().await?;
    let revoke = db.revoke_consents_by_client(&client_id, Utc::now());
    let revoked = state
        .admin
        .perform(admin.actor(), revoke, |n| {
            audit(
                "revoke_client_consents",
                &slug,
                json!({ "client_id": &client_id, "revoked": n }),
            )
        })
        .await?;
    Ok(Json(ConsentsRevoked {
        consents_revoked: revoked,
    }))
}
