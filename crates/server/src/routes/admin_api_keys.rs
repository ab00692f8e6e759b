//! Admin endpoints for API keys (`/v1/admin/api-keys`): automation credentials scoped like
//! admins. A key is shown once when it is made; afterwards only its record (never its
//! secret or digest). A credential sees and revokes only keys within its own reach, and
//! cannot make a key that reaches further or writes where it may only read
//! (`tenantry_admin::access::new_api_key`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::Serialize;
use serde_json::json;
use tenantry_admin::Audit;
use tenantry_admin::access::{ApiKeyView, NewApiKey, new_api_key};
use tenantry_controlplane::Command;
use tenantry_controlplane::model::ApiKey;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::web::{AdminAuth, ApiJson, PageParams, PageQuery};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/api-keys", post(create).get(list))
        .route("/v1/admin/api-keys/{id}", get(show).delete(revoke))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(create, list, show, revoke))]
pub struct Doc;

/// A key just made, with its token (shown this once).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub api_key: ApiKeyView,
    /// The bearer token (`tnk_…`).
    pub key: String,
}

/// A page of API keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    pub api_keys: Vec<ApiKeyView>,
    pub next_after: Option<String>,
}

/// A new API key, answered with its token (`key`, shown this once). Reach defaults to the
/// maker's, access to read-only; neither may exceed the maker's.
#[utoipa::path(post, path = "/v1/admin/api-keys", tag = "admins",
    request_body = NewApiKey,
    responses((status = 201, body = CreatedApiKey)))]
async fn create(
    admin: AdminAuth,
    State(state): State<AppState>,
    ApiJson(input): ApiJson<NewApiKey>,
) -> Result<Response, ApiError> {
    let snapshot = state.control_plane.snapshot();
    let digest_key = state.keystore.client_secret_key(&snapshot.system_secrets)?;
    let (key, token) = match new_api_key(&admin.0, input, &digest_key, &snapshot, Utc::now()) {
        Ok(made) => made,
        Err(e) if e.code == ErrorCode::Forbidden => {
            return Err(admin.refuse(&state, None, "POST /v1/admin/api-keys", e.detail).await);
        }
        Err(e) => return Err(e),
    };
    let view = ApiKeyView::from(&key);
    let audit = Audit::new("create_api_key", None).with_target(format!("api_key:{}", key.id)).with_details(json!({
        "api_key": key.id, "name": &key.name, "reach": &key.reach, "access": key.access, "expires_at": key.expires_at,
    }));
    state
        .admin
        .command(admin.actor(), Command::CreateApiKey { key }, audit)
        .await?;
    let body = CreatedApiKey {
        api_key: view,
        key: token,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// The keys within the caller's reach (revoked and expired ones too), by id, in pages
/// (`limit`, `after`).
#[utoipa::path(get, path = "/v1/admin/api-keys", tag = "admins",
    params(PageParams),
    responses((status = 200, body = ApiKeyList)))]
async fn list(admin: AdminAuth, State(state): State<AppState>, page: PageQuery) -> Json<ApiKeyList> {
    let snapshot = state.control_plane.snapshot();
    let keys = snapshot
        .api_keys
        .iter()
        .filter(|(_, k)| admin.0.reach.includes(&k.reach))
        .map(|(id, k)| (id.to_string(), ApiKeyView::from(k)));
    let page = page.page(keys);
    Json(ApiKeyList {
        api_keys: page.items,
        next_after: page.next_after,
    })
}

/// The key `id` if it is within the caller's reach (404 otherwise: a key out of reach is
/// not told apart from one that does not exist).
fn visible(admin: &AdminAuth, state: &AppState, id: &str) -> Result<ApiKey, ApiError> {
    let snapshot = state.control_plane.snapshot();
    admin
        .within_reach(&snapshot.api_keys, |k| &k.reach, "API key", id)
        .cloned()
}

/// The key `id` (never its secret), if it is within the caller's reach.
#[utoipa::path(get, path = "/v1/admin/api-keys/{id}", tag = "admins",
    params(("id" = Uuid, Path, description = "The API key")),
    responses((status = 200, body = ApiKeyView), (status = 404, description = "No such key within the caller's reach")))]
async fn show(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ApiKeyView>, ApiError> {
    visible(&admin, &state, &id).map(|k| Json(ApiKeyView::from(&k)))
}

/// Revokes the key at once (again: 204, the first revocation time kept). A revoked key
/// stays listed.
#[utoipa::path(delete, path = "/v1/admin/api-keys/{id}", tag = "admins",
    params(("id" = Uuid, Path, description = "The API key")),
    responses((status = 204, description = "Revoked"), (status = 404, description = "No such key within the caller's reach")))]
async fn revoke(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let key = visible(&admin, &state, &id)?;
    let audit = Audit::new("revoke_api_key", None)
        .with_target(format!("api_key:{}", key.id))
        .with_details(json!({ "api_key": key.id, "name": &key.name }));
    let command = Command::RevokeApiKey {
        id: key.id,
        at: Utc::now(),
    };
    state.admin.command(admin.actor(), command, audit).await?;
    Ok(StatusCode::NO_CONTENT)
}
