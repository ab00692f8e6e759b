//! Admin endpoints for a tenant's signing keys: list (public facts only), rotate, retire.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tenantry_admin::api::RotateKeysRequest;
use tenantry_controlplane::model::{KeyState, SigningAlg, SigningSettings};
use tenantry_controlplane::{Command, TenantEntry};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::state::AppState;
use crate::web::{AdminAuth, OptionalApiJson};
use tenantry_admin::Audit;
use tenantry_oidc::key_rotation::{RingOwner, rotate_command};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/tenants/{slug}/keys", get(list_keys))
        .route("/v1/admin/tenants/{slug}/keys/rotate", post(rotate_keys))
        .route("/v1/admin/tenants/{slug}/keys/{kid}/retire", post(retire_key))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(list_keys, rotate_keys, retire_key), components(schemas(RotateKeysRequest)))]
pub struct Doc;

/// What a key is for: always `sig`.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum KeyUse {
    Sig,
}

/// One signing key as the admin API shows it: never the private half.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SigningKeyView)]
struct KeyView {
    kid: String,
    alg: SigningAlg,
    state: KeyState,
    #[serde(rename = "use")]
    #[schema(inline)]
    key_use: KeyUse,
    created_at: DateTime<Utc>,
    /// When a retiring key stops being published (absent for an active key).
    #[serde(skip_serializing_if = "Option::is_none")]
    retire_after: Option<DateTime<Utc>>,
    /// The public key as a JWK (RFC 7517).
    public_jwk: Value,
}

/// A tenant's signing keys and its signing settings.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SigningKeys)]
struct KeysView {
    keys: Vec<KeyView>,
    signing: SigningSettings,
}

fn keys_view(entry: &TenantEntry) -> KeysView {
    KeysView {
        keys: entry
            .key_ring
            .keys
            .iter()
            .map(|k| KeyView {
                kid: k.kid.clone(),
                alg: k.alg,
                state: k.state,
                key_use: KeyUse::Sig,
                created_at: k.created_at,
                retire_after: k.retire_after,
                public_jwk: serde_json::from_str(&k.public_jwk).unwrap_or(Value::Null),
            })
            .collect(),
        signing: entry.tenant.settings.signing.clone(),
    }
}

/// The tenant's signing keys (public facts only) and signing settings.
#[utoipa::path(get, path = "/v1/admin/tenants/{slug}/keys", tag = "keys",
    params(("slug" = String, Path, description = "The tenant")),
    responses((status = 200, description = "The tenant's keys", body = KeysView)))]
async fn list_keys(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Json<KeysView>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    Ok(Json(keys_view(&ctx.entry)))
}

/// Makes a new active key for each requested algorithm (all by default).
///
/// The keys they replace stay published until their grace period ends. The body is
/// optional.
#[utoipa::path(post, path = "/v1/admin/tenants/{slug}/keys/rotate", tag = "keys",
    params(("slug" = String, Path, description = "The tenant")),
    // A reference, not the type: the body may be left out (and `null` is not one).
    request_body(content = ref("#/components/schemas/RotateKeysRequest"),
        description = "Optional; without it every algorithm rotates"),
    responses((status = 200, description = "The keys after the rotation", body = KeysView)))]
async fn rotate_keys(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path(slug): Path<String>,
    OptionalApiJson(request): OptionalApiJson<RotateKeysRequest>,
) -> Result<Json<KeysView>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let command = rotate_command(
        state.secrets.clone(),
        RingOwner::Tenant(&ctx.entry),
        &request.algorithms,
        Utc::now(),
    )
    .await?;
    let kids: Vec<String> = match &command {
        Command::RotateKeys { keys, .. } => keys.iter().map(|k| k.kid.clone()).collect(),
        _ => Vec::new(),
    };
    apply_and_view(
        &state,
        &admin,
        &slug,
        command,
        "rotate_keys",
        serde_json::json!({ "new_kids": kids }),
    )
    .await
}

/// Withdraws a retiring key before its grace period ends (e.g. a suspected compromise).
///
/// Tokens it signed stop verifying at once. An active key must be rotated out first.
#[utoipa::path(post, path = "/v1/admin/tenants/{slug}/keys/{kid}/retire", tag = "keys",
    params(("slug" = String, Path, description = "The tenant"), ("kid" = String, Path, description = "The key")),
    responses(
        (status = 200, description = "The keys after the retirement", body = KeysView),
        (status = 404, description = "No such key"),
        (status = 409, description = "`key_active`: the key is active; rotate its algorithm first"),
    ))]
async fn retire_key(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, kid)): Path<(String, String)>,
) -> Result<Json<KeysView>, ApiError> {
    state.resolver.resolve_slug(&slug)?;
    let command = Command::RetireKeys {
        slug: Some(slug.clone()),
        kids: vec![kid.clone()],
    };
    apply_and_view(
        &state,
        &admin,
        &slug,
        command,
        "retire_key",
        serde_json::json!({ "kid": kid }),
    )
    .await
}

/// Writes a key command, records the admin action and answers the tenant's keys.
async fn apply_and_view(
    state: &AppState,
    admin: &AdminAuth,
    slug: &str,
    command: Command,
    action: &'static str,
    details: Value,
) -> Result<Json<KeysView>, ApiError> {
    let audit = Audit::new(action, Some(slug)).with_details(details);
    let snapshot = state.admin.command(admin.actor(), command, audit).await?;
    let entry = snapshot.tenant(slug).ok_or_else(|| ApiError::tenant_not_found(slug))?;
    Ok(Json(keys_view(entry)))
}
