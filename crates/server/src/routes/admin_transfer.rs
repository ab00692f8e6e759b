//! Tenant export and import over the admin API: the document streams out of
//! `GET .../export` and into `POST .../import` (`tenantry_admin::transfer`), so neither
//! side holds a whole tenant in memory; `GET /v1/admin/transfer-key` names the key an
//! exporting installation seals credentials for.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tenantry_admin::transfer::{
    self, ChunkReader, Export, ExportOptions, ImportEnv, ImportOptions, ImportReport, Mode, NewTenant,
};
use tenantry_controlplane::model::AdminAccess;
use tenantry_crypto::TransferPublicKey;
use tokio::sync::mpsc;
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::web::AdminAuth;

/// The largest import document this installation reads (the admin API's other bodies are
/// held to `limits.max_body_bytes`; this one streams).
pub const IMPORT_MAX_BYTES: u64 = 1 << 30;
/// How long an import may run (the other requests' timeout is `limits.request_timeout`).
pub const IMPORT_TIMEOUT: Duration = Duration::from_secs(3600);

/// Export and the transfer key: requests like any other.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/transfer-key", get(transfer_key))
        .route("/v1/admin/tenants/{slug}/export", get(export))
}

/// Import: a long request with a large body, under its own limits.
pub fn import_router() -> Router<AppState> {
    Router::new().route("/v1/admin/tenants/{slug}/import", post(import))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(transfer_key, export, import))]
pub struct Doc;

/// This installation's transfer key.
#[derive(Debug, Serialize, ToSchema)]
struct TransferKeyView {
    /// Pass as `recipient` when exporting credentials for this installation.
    public_key: String,
    /// The master key it derives from; a new master key makes a new transfer key.
    key_id: String,
}

/// The key another installation seals credentials for when it exports a tenant to be
/// imported here.
#[utoipa::path(get, path = "/v1/admin/transfer-key", tag = "tenants",
    responses((status = 200, body = TransferKeyView)))]
async fn transfer_key(_admin: AdminAuth, State(state): State<AppState>) -> Json<TransferKeyView> {
    let key = state.secrets.transfer_key();
    Json(TransferKeyView {
        public_key: key.public().to_text(),
        key_id: key.id().to_owned(),
    })
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    /// Include password hashes, TOTP secrets and settings secrets, sealed for `recipient`.
    #[serde(default)]
    credentials: bool,
    /// The importing installation's transfer key (`ttk1.…`, from its
    /// `GET /v1/admin/transfer-key`); this installation's own by default.
    recipient: Option<String>,
}

/// The tenant as an export document (`application/json`, streamed): settings, clients,
/// scopes, roles and users with their custom fields and roles; credentials only when
/// asked for (read-write credentials only), sealed for the importing installation.
#[utoipa::path(get, path = "/v1/admin/tenants/{slug}/export", tag = "tenants",
    params(("slug" = String, Path, description = "The tenant's slug"), ExportQuery),
    responses((status = 200, description = "The export document", content_type = "application/json",
        body = Object)))]
async fn export(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path(slug): Path<String>,
    query: Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::new(ErrorCode::BadRequest, e.body_text()))?;
    let ctx = state.resolver.resolve_slug(&slug)?;
    if query.credentials && admin.0.access != AdminAccess::ReadWrite {
        let why = "exporting credentials needs a read-write credential".to_owned();
        return Err(admin.refuse(&state, Some(&slug), "export credentials", why).await);
    }
    let recipient = query
        .recipient
        .as_deref()
        .map(TransferPublicKey::parse)
        .transpose()
        .map_err(|_| {
            ApiError::field(
                "recipient",
                "must be a transfer key (`ttk1.…`) from GET /v1/admin/transfer-key",
            )
        })?;
    if recipient.is_some() && !query.credentials {
        return Err(ApiError::field(
            "recipient",
            "only means something with credentials=true",
        ));
    }
    let options = ExportOptions {
        credentials: query.credentials,
        recipient,
    };
    let export = Export::begin(&ctx, &state.secrets, options).await?;
    let audit = tenantry_admin::Audit::new("export_tenant", Some(&slug))
        .with_details(serde_json::json!({ "credentials": query.credentials }));
    state.admin.event(admin.actor(), audit).await;
    let (out, chunks) = mpsc::channel::<std::io::Result<Vec<u8>>>(4);
    let secrets = state.secrets.clone();
    tokio::spawn(async move {
        if let Err(e) = export.write(&secrets, &out).await {
            // The status is sent: cutting the body is how the client learns.
            tracing::error!(code = e.code.as_str(), detail = %e.detail, "export stopped");
            let _ = out.send(Err(std::io::Error::other("export stopped"))).await;
        }
    });
    let stream = futures_util::stream::unfold(chunks, |mut chunks| async move {
        chunks.recv().await.map(|chunk| (chunk, chunks))
    });
    let file_name = format!("attachment; filename=\"{slug}.tenantry.json\"");
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&file_name).map_err(|_| ApiError::internal())?,
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ImportQuery {
    /// `create` (the default: only a new tenant), `merge` or `replace`.
    #[serde(default)]
    mode: Mode,
    /// Check the whole document and report, changing nothing.
    #[serde(default)]
    dry_run: bool,
}

/// Imports an export document into tenant `{slug}`: a new one (made with the document's
/// settings and the embedded database; global credentials only), or with `mode=merge` or
/// `mode=replace` an existing one. All or nothing: a document that fails half-way
/// changes nothing. Credentials in the document must be sealed for this installation.
#[utoipa::path(post, path = "/v1/admin/tenants/{slug}/import", tag = "tenants",
    params(("slug" = String, Path, description = "The tenant's slug"), ImportQuery),
    request_body(content = Object, description = "An export document (`GET .../export`)", content_type = "application/json"),
    responses((status = 200, body = ImportReport, description = "Imported into an existing tenant, or a dry run"),
        (status = 201, body = ImportReport, description = "A new tenant was made",
            headers(("Location" = String, description = "The new tenant"))),
        (status = 409, description = "The tenant exists (mode=create) or the document is of a newer version"),
        (status = 413, description = "The document is larger than the installation accepts")))]
async fn import(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path(slug): Path<String>,
    query: Result<Query<ImportQuery>, axum::extract::rejection::QueryRejection>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::new(ErrorCode::BadRequest, e.body_text()))?;
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| {
            m.type_() == mime::APPLICATION && (m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON))
        });
    if !json {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "the document is sent as application/json",
        ));
    }
    let creating = state.resolver.resolve_slug(&slug).is_err();
    if creating && !admin.0.reach.is_global() {
        let why = "importing into a new tenant needs a credential that reaches the whole installation".to_owned();
        return Err(admin.refuse(&state, Some(&slug), "import into a new tenant", why).await);
    }

    // Network → chunks → a blocking JSON reader → items → the import.
    let (chunk_tx, chunk_rx) = mpsc::channel::<std::io::Result<Vec<u8>>>(8);
    let (item_tx, item_rx) = mpsc::channel(64);
    let pump = tokio::spawn(async move {
        let mut stream = body.into_data_stream();
        while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
            let chunk = chunk.map(|bytes| bytes.to_vec()).map_err(std::io::Error::other);
            if chunk_tx.send(chunk).await.is_err() {
                break;
            }
        }
    });
    let reader = tokio::task::spawn_blocking(move || {
        let mut sink = item_tx;
        let reader = ChunkReader::new(chunk_rx, IMPORT_MAX_BYTES);
        if let Err(e) = transfer::parse(reader, &mut sink) {
            let _ = sink.blocking_send(Err(e));
        }
    });
    let snapshot = state.control_plane.snapshot();
    let env = ImportEnv {
        resolver: &state.resolver,
        dbs: &state.dbs,
        secrets: &state.secrets,
        keystore: &state.keystore,
        system_secrets: &snapshot.system_secrets,
    };
    let options = ImportOptions {
        mode: query.mode,
        dry_run: query.dry_run,
    };
    let secrets = state.secrets.clone();
    let new_tenant = || async move {
        let id = uuid::Uuid::new_v4();
        let key_ring = tenantry_oidc::key_rotation::new_ring(secrets, id.to_string()).await?;
        Ok(NewTenant { id, key_ring })
    };
    let result = state
        .admin
        .import_tenant(admin.actor(), env, &slug, options, item_rx, new_tenant)
        .await;
    pump.abort();
    let _ = reader.await;
    let report: ImportReport = result?;
    if report.created_tenant && !report.dry_run {
        let location = format!("/v1/admin/tenants/{slug}");
        return Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(report)).into_response());
    }
    Ok(Json(report).into_response())
}
