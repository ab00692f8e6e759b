//! Admin endpoints for a tenant's OAuth clients: create, list, show, merge-patch, delete,
//! and rotate a confidential client's secret. The server makes client secrets and shows
//! each one once; only a keyed digest is stored.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tenantry_admin::api::SecretRotation;
use tenantry_controlplane::Command;
use tenantry_controlplane::model::{Client, ClientType, PreviousSecret};
use tenantry_controlplane::validate::validate_client;

use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::web::{AdminAuth, ApiJson, OptionalApiJson, PageParams, PageQuery};
use tenantry_admin::clients::{self, ClientInput};
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

#[derive(utoipa::OpenApi)]
#[openapi(paths(create_client, list_clients, show_client, patch_client, delete_client, rotate_secret))]
pub struct Doc;

/// A client as the admin API shows it: no secret digest, only whether there is one.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientView {
    #[serde(flatten)]
    #[schema(schema_with = client_fields)]
    input: ClientInput,
    has_secret: bool,
    /// Until when the secret a rotation replaced is still accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_secret_expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// Present only in the answer that created or rotated it.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
}

/// `ClientInput`'s schema as a part of the view: open, where the input's is closed
/// (`deny_unknown_fields`), since the view adds fields of its own. (Its enums are in
/// `components` through `ClientInput`, the body of `create_client`.)
fn client_fields() -> RefOr<Schema> {
    let mut schema = ClientInput::schema();
    if let RefOr::T(Schema::Object(object)) = &mut schema {
        object.additional_properties = None;
    }
    schema
}

/// A page of clients.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientList {
    pub clients: Vec<ClientView>,
    pub next_after: Option<String>,
}

fn view(client: &Client, secret: Option<String>) -> ClientView {
    ClientView {
        input: ClientInput::from_client(client),
        has_secret: client.secret_hash.is_some(),
        previous_secret_expires_at: client.previous_secret.as_ref().map(|p| p.expires_at),
        created_at: client.created_at,
        updated_at: client.updated_at,
        client_secret: secret,
    }
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
    let audit = Audit::new(action, Some(slug))
        .with_target(format!("client:{}", client.client_id))
        .with_details(serde_json::json!({ "client_id": client.client_id }));
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

/// A new client (`client_id` made when left out); a confidential client's secret is
/// answered this once (`client_secret`).
#[utoipa::path(post, path = "/v1/admin/tenants/{slug}/clients", tag = "clients",
    params(("slug" = String, Path, description = "The tenant")),
    request_body = ClientInput,
    responses((status = 201, body = ClientView, headers(("Location" = String, description = "The new client's URL"))),
        (status = 409, description = "`client_exists`: the client id is taken")))]
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
    let secret = clients::ensure_secret(&state.keystore, &ctx.snapshot.system_secrets, &mut client)?;
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

/// The tenant's clients by client id, in pages (`limit`, `after`).
#[utoipa::path(get, path = "/v1/admin/tenants/{slug}/clients", tag = "clients",
    params(("slug" = String, Path, description = "The tenant"), PageParams),
    responses((status = 200, body = ClientList)))]
async fn list_clients(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path(slug): Path<String>,
    page: PageQuery,
) -> Result<Json<ClientList>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let page = page.page(ctx.entry.clients.iter().map(|(id, c)| (id.clone(), view(c, None))));
    Ok(Json(ClientList {
        clients: page.items,
        next_after: page.next_after,
    }))
}

#[utoipa::path(get, path = "/v1/admin/tenants/{slug}/clients/{client_id}", tag = "clients",
    params(("slug" = String, Path, description = "The tenant"), ("client_id" = String, Path, description = "The client")),
    responses((status = 200, body = ClientView)))]
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
#[utoipa::path(patch, path = "/v1/admin/tenants/{slug}/clients/{client_id}", tag = "clients",
    params(("slug" = String, Path, description = "The tenant"), ("client_id" = String, Path, description = "The client")),
    request_body(content = Object, description = "An RFC 7396 merge patch over the client's writable fields (those of `ClientInput`)"),
    responses((status = 200, body = ClientView),
        (status = 409, description = "`client_changed`: another change was stored meanwhile")))]
async fn patch_client(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, client_id)): Path<(String, String)>,
    ApiJson(patch): ApiJson<Value>,
) -> Result<Json<ClientView>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let previous = existing(&ctx, &client_id)?;
    let input = clients::patched_input(previous, &patch)?;
    let mut client = input.into_client(client_id.clone(), Some(previous), Utc::now());
    let secret = clients::ensure_secret(&state.keystore, &ctx.snapshot.system_secrets, &mut client)?;
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

#[utoipa::path(delete, path = "/v1/admin/tenants/{slug}/clients/{client_id}", tag = "clients",
    params(("slug" = String, Path, description = "The tenant"), ("client_id" = String, Path, description = "The client")),
    responses((status = 204, description = "Deleted")))]
async fn delete_client(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, client_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let audit = Audit::new("delete_client", Some(&slug))
        .with_target(format!("client:{client_id}"))
        .with_details(serde_json::json!({ "client_id": client_id }));
    let command = Command::DeleteClient { slug, client_id };
    state.admin.command(admin.actor(), command, audit).await?;
    Ok(StatusCode::NO_CONTENT)
}

const MAX_SECRET_OVERLAP_SECS: u32 = 30 * 24 * 3600;

/// Replaces a confidential client's secret with a new one, answered this once
/// (`client_secret`). The replaced one keeps working for `overlap_secs`, so a deployment
/// can switch over without an outage.
#[utoipa::path(post, path = "/v1/admin/tenants/{slug}/clients/{client_id}/secret", tag = "clients",
    params(("slug" = String, Path, description = "The tenant"), ("client_id" = String, Path, description = "The client")),
    request_body(content = Option<SecretRotation>, description = "Optional; an empty body is `{}`"),
    responses((status = 200, body = ClientView)))]
async fn rotate_secret(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, client_id)): Path<(String, String)>,
    OptionalApiJson(rotation): OptionalApiJson<SecretRotation>,
) -> Result<Json<ClientView>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let mut client = existing(&ctx, &client_id)?.clone();
    let read_at = client.updated_at;
    if client.client_type != ClientType::Confidential {
        return Err(ApiError::field("client_type", "a public client has no secret"));
    }
    if rotation.overlap_secs > MAX_SECRET_OVERLAP_SECS {
        return Err(ApiError::field(
            "overlap_secs",
            format!("must be at most {MAX_SECRET_OVERLAP_SECS} (30 days)"),
        ));
    }
    let now = Utc::now();
    client.previous_secret = client
        .secret_hash
        .take()
        .filter(|_| rotation.overlap_secs > 0)
        .map(|hash| PreviousSecret {
            hash,
            expires_at: now + chrono::Duration::seconds(i64::from(rotation.overlap_secs)),
        });
    client.updated_at = now;
    let secret = clients::ensure_secret(&state.keystore, &ctx.snapshot.system_secrets, &mut client)?;
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
