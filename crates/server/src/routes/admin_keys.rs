//! Admin endpoints for a tenant's signing keys: list (public facts only), rotate, retire.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tenantry_controlplane::model::{KeyState, SigningAlg, SigningSettings};
use tenantry_controlplane::{Command, TenantEntry};

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

/// One key as the admin API shows it: never the private half.
#[derive(Debug, Serialize)]
struct KeyView {
    kid: String,
    alg: SigningAlg,
    state: KeyState,
    #[serde(rename = "use")]
    key_use: &'static str,
    created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retire_after: Option<DateTime<Utc>>,
    public_jwk: Value,
}

#[derive(Debug, Serialize)]
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
                key_use: "sig",
                created_at: k.created_at,
                retire_after: k.retire_after,
                public_jwk: serde_json::from_str(&k.public_jwk).unwrap_or(Value::Null),
            })
            .collect(),
        signing: entry.tenant.settings.signing.clone(),
    }
}

async fn list_keys(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Json<KeysView>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    Ok(Json(keys_view(&ctx.entry)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateRequest {
    /// Algorithms to rotate; all when absent or empty.
    #[serde(default)]
    algorithms: Vec<SigningAlg>,
}

/// Makes a new active key for each requested algorithm (all by default); the keys they
/// replace stay published until their grace period ends. The body is optional.
async fn rotate_keys(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path(slug): Path<String>,
    OptionalApiJson(request): OptionalApiJson<RotateRequest>,
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

/// Withdraws a retiring key before its grace period ends (e.g. a suspected compromise):
/// tokens it signed stop verifying at once. An active key must be rotated out first.
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
