//! Admin endpoints for what users' sign-ins left behind: login sessions (by their `sid`),
//! refresh-token families and consents. List per user; revoke one, all of a user's, or
//! all of a client's. A revoked session takes its refresh tokens with it, and the access
//! tokens that name it stop working at once (`tokens::accept_access_token`); a revoked
//! refresh token ends its family.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use tenantry_accounts::account;
use tenantry_admin::Audit;
use tenantry_admin::users::existing;
use tenantry_dataplane::{ConsentRepository, SessionRepository, TokenRepository};
use tenantry_oidc::tokens::sid;
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
async fn list_sessions(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let user = existing(&ctx, &id).await?;
    let sessions: Vec<Value> = account::sessions(&ctx.db().await?, user.id)
        .await?
        .into_iter()
        .map(|s| {
            json!({
                "id": sid(&s.id_hash), "auth_time": s.auth_time, "amr": s.amr, "acr": s.acr, "ip": s.ip,
                "user_agent": s.user_agent, "created_at": s.created_at, "last_seen_at": s.last_seen_at,
                "expires_at": s.expires_at,
            })
        })
        .collect();
    Ok(Json(json!({ "sessions": sessions })))
}

/// Ends one session and its refresh tokens (404 when the user has no such live session).
async fn revoke_session(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id, session)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let user = existing(&ctx, &id).await?;
    let db = ctx.db().await?;
    let end = account::end_session(&db, user.id, |s| sid(&s.id_hash) == session);
    let details = json!({ "user_id": user.id, "session": &session });
    state
        .admin
        .perform(admin.actor(), end, |_| audit("revoke_session", &slug, details))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends every session of the user, with their refresh tokens.
async fn revoke_sessions(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let user = existing(&ctx, &id).await?;
    let db = ctx.db().await?;
    let now = Utc::now();
    let end = async {
        let sessions = db.revoke_user_sessions(user.id, None, now).await?;
        let tokens = db.revoke_refresh_by_user(user.id, now).await?;
        Ok::<_, tenantry_dataplane::DbError>((sessions, tokens))
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
    Ok(Json(
        json!({ "sessions_revoked": sessions, "refresh_tokens_revoked": tokens }),
    ))
}

/// The user's usable refresh tokens, one per family (`id` is the family).
async fn list_refresh_tokens(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let user = existing(&ctx, &id).await?;
    let tokens: Vec<Value> = ctx
        .db()
        .await?
        .live_refresh_tokens_of(user.id, Utc::now())
        .await?
        .into_iter()
        .map(|t| {
            json!({
                "id": t.family_id, "client_id": t.client_id, "scope": t.scope,
                "session": t.session_id_hash.as_deref().map(sid), "auth_time": t.auth_time,
                "issued_at": t.issued_at, "expires_at": t.expires_at,
            })
        })
        .collect();
    Ok(Json(json!({ "refresh_tokens": tokens })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ByClient {
    client_id: Option<String>,
}

/// Revokes the user's refresh tokens: all, or those of `?client_id=`.
async fn revoke_refresh_tokens(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
    query: Result<Query<ByClient>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({ "refresh_tokens_revoked": revoked })))
}

/// Ends one refresh-token family of the user (404 when it is not one of the user's live ones).
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
async fn list_consents(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let user = existing(&ctx, &id).await?;
    let consents: Vec<Value> = ctx
        .db()
        .await?
        .consents_of(user.id, Utc::now())
        .await?
        .into_iter()
        .map(|c| json!({ "client_id": c.client_id, "scopes": c.scopes, "granted_at": c.granted_at, "expires_at": c.expires_at }))
        .collect();
    Ok(Json(json!({ "consents": consents })))
}

/// Withdraws the user's grant to one client (the next authorization asks again); the
/// client's refresh tokens for the user end with it. 404 when there is no live grant.
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
async fn revoke_client_refresh_tokens(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, client_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({ "refresh_tokens_revoked": revoked })))
}

/// Withdraws every user's grant to a client (each user is asked again).
async fn revoke_client_consents(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, client_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({ "consents_revoked": revoked })))
}
