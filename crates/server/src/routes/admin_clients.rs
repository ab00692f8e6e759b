//! Admin endpoints for a tenant's OAuth clients: create, list, show, merge-patch, delete,
//! and rotate a confidential client's secret. The server makes client secrets and shows
//! each one once; only a keyed digest is stored.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tenantry_controlplane::Command;
use tenantry_controlplane::model::{Client, ClientType, GrantType, SigningAlg, TokenEndpointAuthMethod};
use tenantry_controlplane::validate::validate_client;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::web::{AdminAuth, ApiJson};
use tenantry_admin::{Actor, Audit};
use tenantry_tenancy::TenantContext;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/admin/tenants/{slug}/clients",
            get(list_clients).post(create_client),
        )
        .route(
            "/v1/admin/tenants/{slug}/clients/{client_id}",
            get(show_client).patch(patch_client).delete(delete_client),
        )
        .route(
            "/v1/admin/tenants/{slug}/clients/{client_id}/secret",
            post(rotate_secret),
        )
}

/// The writable fields of a client. Everything but `name` has a default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    name: String,
    #[serde(default = "default_client_type")]
    client_type: ClientType,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    allowed_origins: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    grant_types: Option<Vec<GrantType>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_endpoint_auth_method: Option<TokenEndpointAuthMethod>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access_token_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jwks: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    backchannel_logout_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    verify_email_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reset_password_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token_signed_response_alg: Option<SigningAlg>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access_token_signed_response_alg: Option<SigningAlg>,
    #[serde(default)]
    first_party: bool,
}

fn default_client_type() -> ClientType {
    ClientType::Confidential
}

impl ClientInput {
    fn from_client(c: &Client) -> Self {
        Self {
            client_id: Some(c.client_id.clone()),
            name: c.name.clone(),
            client_type: c.client_type,
            redirect_uris: c.redirect_uris.clone(),
            post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
            allowed_origins: c.allowed_origins.clone(),
            grant_types: Some(c.grant_types.clone()),
            scopes: Some(c.scopes.clone()),
            token_endpoint_auth_method: Some(c.token_endpoint_auth_method),
            access_token_secs: c.access_token_secs,
            id_token_secs: c.id_token_secs,
            refresh_token_secs: c.refresh_token_secs,
            jwks: c.jwks.clone(),
            backchannel_logout_uri: c.backchannel_logout_uri.clone(),
            verify_email_url: c.verify_email_url.clone(),
            reset_password_url: c.reset_password_url.clone(),
            id_token_signed_response_alg: c.id_token_signed_response_alg,
            access_token_signed_response_alg: c.access_token_signed_response_alg,
            first_party: c.first_party,
        }
    }

    /// The client this input describes (defaults filled), keeping `previous`'s secret and
    /// creation time when there is one.
    fn into_client(self, client_id: String, previous: Option<&Client>, now: DateTime<Utc>) -> Client {
        let confidential = self.client_type == ClientType::Confidential;
        Client {
            client_id,
            name: self.name,
            client_type: self.client_type,
            redirect_uris: self.redirect_uris,
            post_logout_redirect_uris: self.post_logout_redirect_uris,
            allowed_origins: self.allowed_origins,
            grant_types: self
                .grant_types
                .unwrap_or_else(|| vec![GrantType::AuthorizationCode, GrantType::RefreshToken]),
            scopes: self
                .scopes
                .unwrap_or_else(|| ["openid", "profile", "email"].map(String::from).to_vec()),
            token_endpoint_auth_method: self.token_endpoint_auth_method.unwrap_or(if confidential {
                TokenEndpointAuthMethod::ClientSecretBasic
            } else {
                TokenEndpointAuthMethod::None
            }),
            secret_hash: previous.and_then(|p| p.secret_hash.clone()).filter(|_| confidential),
            access_token_secs: self.access_token_secs,
            id_token_secs: self.id_token_secs,
            refresh_token_secs: self.refresh_token_secs,
            jwks: self.jwks,
            backchannel_logout_uri: self.backchannel_logout_uri,
            verify_email_url: self.verify_email_url,
            reset_password_url: self.reset_password_url,
            id_token_signed_response_alg: self.id_token_signed_response_alg,
            access_token_signed_response_alg: self.access_token_signed_response_alg,
            first_party: self.first_party,
            created_at: previous.map_or(now, |p| p.created_at),
            updated_at: now,
        }
    }
}

/// A client as the admin API shows it: no secret digest, only whether there is one.
#[derive(Debug, Serialize)]
struct ClientView {
    #[serde(flatten)]
    input: ClientInput,
    has_secret: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// Present only in the answer that created or rotated it.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
}

fn view(client: &Client, secret: Option<String>) -> ClientView {
    ClientView {
        input: ClientInput::from_client(client),
        has_secret: client.secret_hash.is_some(),
        created_at: client.created_at,
        updated_at: client.updated_at,
        client_secret: secret,
    }
}

/// Makes a secret for a confidential client that has none; returns it (once).
fn ensure_secret(state: &AppState, ctx: &TenantContext, client: &mut Client) -> Result<Option<String>, ApiError> {
    let uses_secret = matches!(
        client.token_endpoint_auth_method,
        TokenEndpointAuthMethod::ClientSecretBasic | TokenEndpointAuthMethod::ClientSecretPost
    );
    if client.client_type != ClientType::Confidential || client.secret_hash.is_some() || !uses_secret {
        return Ok(None);
    }
    let key = state.keystore.client_secret_key(&ctx.snapshot.system_secrets)?;
    let secret = tenantry_crypto::random_token(32);
    client.secret_hash = Some(tenantry_crypto::keyed_digest(&key, &secret));
    Ok(Some(secret))
}

/// How a client is written.
enum ClientWrite {
    /// A new client: refused with 409 `client_exists` when the id exists, even when a
    /// concurrent create got there first.
    Create,
    /// A replacement of the client as it was read (`updated_at`): refused with 409
    /// `client_changed` when another change was stored in between.
    Replace { read_at: chrono::DateTime<Utc> },
}

async fn store(
    state: &AppState,
    actor: Actor,
    action: &'static str,
    slug: &str,
    client: Client,
    write: ClientWrite,
) -> Result<(), ApiError> {
    validate_client(&client).map_err(ApiError::validation)?;
    let audit = Audit::new(action, Some(slug)).with_details(serde_json::json!({ "client_id": client.client_id }));
    let slug = slug.to_owned();
    let command = match write {
        ClientWrite::Create => Command::CreateClient { slug, client },
        ClientWrite::Replace { read_at } => Command::PutClient {
            slug,
            client,
            expected_updated_at: Some(read_at),
        },
    };
    state.admin.command(actor, command, audit).await?;
    Ok(())
}

fn existing<'a>(ctx: &'a TenantContext, client_id: &str) -> Result<&'a Client, ApiError> {
    ctx.entry.clients.get(client_id).ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            format!("no client `{}`", crate::error::printable(client_id)),
        )
    })
}

async fn create_client(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path(slug): Path<String>,
    ApiJson(input): ApiJson<ClientInput>,
) -> Result<Response, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let client_id = input
        .client_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    if ctx.entry.clients.contains_key(&client_id) {
        return Err(ApiError::new(
            ErrorCode::ClientExists,
            format!("client `{client_id}` already exists"),
        ));
    }
    let mut client = input.into_client(client_id.clone(), None, Utc::now());
    let secret = ensure_secret(&state, &ctx, &mut client)?;
    store(
        &state,
        admin.actor(),
        "create_client",
        &slug,
        client.clone(),
        ClientWrite::Create,
    )
    .await?;
    let location = format!("/v1/admin/tenants/{slug}/clients/{client_id}");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(view(&client, secret)),
    )
        .into_response())
}

async fn list_clients(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let clients: Vec<ClientView> = ctx.entry.clients.values().map(|c| view(c, None)).collect();
    Ok(Json(serde_json::json!({ "clients": clients })))
}

async fn show_client(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, client_id)): Path<(String, String)>,
) -> Result<Json<ClientView>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    Ok(Json(view(existing(&ctx, &client_id)?, None)))
}

/// JSON merge patch (RFC 7396) over the client's writable fields. Turning a public client
/// confidential makes its secret (answered once); `client_id` cannot change.
async fn patch_client(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, client_id)): Path<(String, String)>,
    ApiJson(patch): ApiJson<Value>,
) -> Result<Json<ClientView>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let previous = existing(&ctx, &client_id)?;
    let mut current = serde_json::to_value(ClientInput::from_client(previous)).map_err(|_| ApiError::internal())?;
    tenantry_admin::settings::merge_patch(&mut current, &patch);
    let input: ClientInput =
        serde_json::from_value(current).map_err(|e| ApiError::new(ErrorCode::InvalidJson, e.to_string()))?;
    if input.client_id.as_deref() != Some(client_id.as_str()) {
        return Err(ApiError::field("client_id", "cannot be changed"));
    }
    let mut client = input.into_client(client_id.clone(), Some(previous), Utc::now());
    let secret = ensure_secret(&state, &ctx, &mut client)?;
    store(
        &state,
        admin.actor(),
        "update_client",
        &slug,
        client.clone(),
        ClientWrite::Replace {
            read_at: previous.updated_at,
        },
    )
    .await?;
    Ok(Json(view(&client, secret)))
}

async fn delete_client(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, client_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let audit = Audit::new("delete_client", Some(&slug)).with_details(serde_json::json!({ "client_id": client_id }));
    let command = Command::DeleteClient { slug, client_id };
    state.admin.command(admin.actor(), command, audit).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces a confidential client's secret; the old one stops working at once.
async fn rotate_secret(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, client_id)): Path<(String, String)>,
) -> Result<Json<ClientView>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let mut client = existing(&ctx, &client_id)?.clone();
    let read_at = client.updated_at;
    if client.client_type != ClientType::Confidential {
        return Err(ApiError::field("client_type", "a public client has no secret"));
    }
    client.secret_hash = None;
    client.updated_at = Utc::now();
    let secret = ensure_secret(&state, &ctx, &mut client)?;
    let write = ClientWrite::Replace { read_at };
    store(
        &state,
        admin.actor(),
        "rotate_client_secret",
        &slug,
        client.clone(),
        write,
    )
    .await?;
    Ok(Json(view(&client, secret)))
}
