//! The admin API (`/v1/admin/...`) for tenants, their settings and databases, secret
//! re-sealing and the audit trail; clients, users, scopes, keys and mail have modules of
//! their own. Every route runs behind the admin gate (`web::admin::gate`: an admin token
//! or API key whose reach and access allow the request), and every write goes through the
//! one admin write path (`tenantry_admin::AdminService`).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tenantry_admin::api::{AdoptDatabase, CreateTenant, PatchTenant};
use tenantry_controlplane::model::{Tenant, TenantSettings};
use tenantry_controlplane::{Command, TenantEntry};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::web::{AdminAuth, ApiJson, OptionalApiJson};
use tenantry_admin::audit::{AuditPage, AuditQuery, EventPage, EventQuery};
use tenantry_admin::settings::{self, ResealFailure};
use tenantry_admin::tenants::AdoptReport;
use tenantry_admin::{Audit, tenants};
use tenantry_dataplane::{Schema, SchemaStatus};
use tenantry_tenancy::{Capability, TenantContext};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/tenants", get(list_tenants).post(create_tenant))
        .route(
            "/v1/admin/tenants/{slug}",
            get(get_tenant).patch(patch_tenant).delete(delete_tenant),
        )
        .route(
            "/v1/admin/tenants/{slug}/settings",
            get(get_settings).put(put_settings).patch(patch_settings),
        )
        .route("/v1/admin/secrets/reseal", post(reseal))
        .route("/v1/admin/tenants/{slug}/database", get(database_status))
        .route("/v1/admin/tenants/{slug}/database/migrate", post(migrate_database))
        .route("/v1/admin/tenants/{slug}/database/adopt", post(adopt_database))
        .route(
            "/v1/admin/tenants/{slug}/custom-fields/{name}/column",
            delete(drop_custom_column),
        )
        .route("/v1/admin/audit", get(admin_audit))
        .route("/v1/admin/tenants/{slug}/audit", get(tenant_audit))
        .merge(super::admin_admins::router())
        .merge(super::admin_api_keys::router())
        .merge(super::admin_keys::router())
        .merge(super::admin_providers::router())
        .merge(super::admin_clients::router())
        .merge(super::admin_users::router())
        .merge(super::admin_scopes::router())
        .merge(super::admin_roles::router())
        .merge(super::admin_sessions::router())
        .merge(super::admin_email::router())
        .merge(super::admin_transfer::router())
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list_tenants,
    create_tenant,
    get_tenant,
    patch_tenant,
    delete_tenant,
    get_settings,
    put_settings,
    patch_settings,
    reseal,
    database_status,
    migrate_database,
    adopt_database,
    drop_custom_column,
    admin_audit,
    tenant_audit
))]
pub struct Doc;

/// A tenant as the admin API shows it: settings with secrets redacted.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    pub id: Uuid,
    pub slug: String,
    pub display_name: String,
    pub issuer: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[schema(value_type = TenantSettings)]
    pub settings: Value,
}

fn view(state: &AppState, entry: &TenantEntry) -> TenantView {
    let t = &entry.tenant;
    TenantView {
        id: t.id,
        slug: t.slug.clone(),
        display_name: t.display_name.clone(),
        issuer: state.resolver.issuer_for(entry),
        created_at: t.created_at,
        updated_at: t.updated_at,
        settings: settings::redacted(&t.settings),
    }
}

/// Path of a tenant.
const SLUG: &str = "The tenant's slug";

/// Creates a tenant with its signing keys and database.
#[utoipa::path(post, path = "/v1/admin/tenants", tag = "tenants", request_body = CreateTenant,
    responses((status = 201, body = TenantView, headers(("Location" = String, description = "The new tenant")))))]
async fn create_tenant(
    admin: AdminAuth,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateTenant>,
) -> Result<Response, ApiError> {
    let tenant = tenants::new_tenant(body.slug, body.display_name, body.settings, &state.secrets, &state.dbs).await?;
    let slug = tenant.slug.clone();
    // The tenant's keys are made here, before the command, so applying it is deterministic.
    let key_ring = tenantry_oidc::key_rotation::new_ring(state.secrets.clone(), tenant.id.to_string()).await?;
    let snapshot = state
        .admin
        .command(
            admin.actor(),
            Command::CreateTenant { tenant, key_ring },
            Audit::new("create_tenant", Some(&slug)),
        )
        .await?;
    let entry = snapshot.tenant(&slug).ok_or_else(ApiError::internal)?;
    let location = format!("/v1/admin/tenants/{slug}");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(view(&state, entry)),
    )
        .into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Items per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// The `next_after` of the previous page.
    after: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct TenantSummary {
    id: Uuid,
    slug: String,
    display_name: String,
    issuer: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// A tenant whose control-plane files do not load.
#[derive(Serialize, ToSchema)]
struct DegradedSummary {
    slug: String,
    path: String,
    error: String,
}

#[derive(Serialize, ToSchema)]
struct TenantList {
    tenants: Vec<TenantSummary>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_after: Option<String>,
    degraded: Vec<DegradedSummary>,
}

/// The tenants the credential reaches, by slug, and those that do not load.
#[utoipa::path(get, path = "/v1/admin/tenants", tag = "tenants", params(ListQuery),
    responses((status = 200, body = TenantList)))]
async fn list_tenants(
    admin: AdminAuth,
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<TenantList>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::new(ErrorCode::BadRequest, e.body_text()))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 1000"));
    }
    let snapshot = state.control_plane.snapshot();
    let start = match &query.after {
        Some(after) => std::ops::Bound::Excluded(after.clone()),
        None => std::ops::Bound::Unbounded,
    };
    let mut page: Vec<_> = snapshot
        .tenants
        .range((start, std::ops::Bound::Unbounded))
        .filter(|(slug, _)| admin.0.covers(slug))
        .take(limit + 1)
        .map(|(_, entry)| {
            let t = &entry.tenant;
            TenantSummary {
                id: t.id,
                slug: t.slug.clone(),
                display_name: t.display_name.clone(),
                issuer: state.resolver.issuer_for(entry),
                created_at: t.created_at,
                updated_at: t.updated_at,
            }
        })
        .collect();
    let next_after = (page.len() > limit).then(|| {
        page.truncate(limit);
        page.last().map(|t| t.slug.clone()).unwrap_or_default()
    });
    let degraded = snapshot
        .degraded
        .values()
        .filter(|d| admin.0.covers(&d.slug))
        .map(|d| DegradedSummary {
            slug: d.slug.clone(),
            path: d.path.display().to_string(),
            error: d.error.clone(),
        })
        .collect();
    Ok(Json(TenantList {
        tenants: page,
        next_after,
        degraded,
    }))
}

/// The tenant, with its version as `ETag` (see [`get_settings`]).
#[utoipa::path(get, path = "/v1/admin/tenants/{slug}", tag = "tenants", params(("slug" = String, Path, description = SLUG)),
    responses((status = 200, body = TenantView, headers(("ETag" = String, description = "The tenant's version")))))]
async fn get_tenant(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Response, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    Ok(versioned(&ctx.entry.tenant, Json(view(&state, &ctx.entry))))
}

/// A tenant representation with the tenant's version as `ETag`.
fn versioned(tenant: &Tenant, body: impl IntoResponse) -> Response {
    ([(header::ETAG, tenants::etag(tenant))], body).into_response()
}

fn if_match_header(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    headers
        .get(header::IF_MATCH)
        .map(|v| {
            v.to_str()
                .map_err(|_| ApiError::new(ErrorCode::BadRequest, "If-Match is not valid text"))
        })
        .transpose()
}

/// The tenant's settings, secrets shown as `{"set": true}`, with the tenant's version as
/// `ETag`; a write to the settings must send it back in `If-Match`.
#[utoipa::path(get, path = "/v1/admin/tenants/{slug}/settings", tag = "tenants", params(("slug" = String, Path, description = SLUG)),
    responses((status = 200, body = TenantSettings, headers(("ETag" = String, description = "The tenant's version")))))]
async fn get_settings(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Response, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let tenant = &ctx.entry.tenant;
    Ok(versioned(tenant, Json(settings::redacted(&tenant.settings))))
}

/// Changes the display name and/or merge-patches the settings; conditional when
/// `If-Match` is sent (the settings resource requires it).
#[utoipa::path(patch, path = "/v1/admin/tenants/{slug}", tag = "tenants",
    params(("slug" = String, Path, description = SLUG),
        ("If-Match" = Option<String>, Header, description = "When sent, the ETag of the version this change is based on")),
    request_body = PatchTenant,
    responses((status = 200, body = TenantView, headers(("ETag" = String, description = "The new version"))),
        (status = 412, description = "The tenant changed since that version")))]
async fn patch_tenant(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PatchTenant>,
) -> Result<Response, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let expected = tenants::if_match(&ctx.entry.tenant, if_match_header(&headers)?, false)?;
    let mut tenant = ctx.entry.tenant.clone();
    if let Some(name) = body.display_name {
        tenant.display_name = name;
    }
    if let Some(patch) = body.settings {
        tenant.settings = tenants::patched_settings(&tenant, &patch, &state.secrets)?;
    }
    let entry = update(&state, &admin, &ctx, tenant, expected).await?;
    Ok(versioned(&entry.tenant, Json(view(&state, &entry))))
}

/// Replaces the settings (`If-Match` required); answers the new settings and version.
#[utoipa::path(put, path = "/v1/admin/tenants/{slug}/settings", tag = "tenants",
    params(("slug" = String, Path, description = SLUG), ("If-Match" = String, Header, description = "The ETag of the version this change is based on")),
    request_body = TenantSettings,
    responses((status = 200, body = TenantSettings, headers(("ETag" = String, description = "The new version"))),
        (status = 412, description = "The tenant changed since that version"),
        (status = 428, description = "If-Match is missing")))]
async fn put_settings(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    ApiJson(settings): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let expected = tenants::if_match(&ctx.entry.tenant, if_match_header(&headers)?, true)?;
    let mut tenant = ctx.entry.tenant.clone();
    tenant.settings = tenants::replacement_settings(&tenant, settings, &state.secrets)?;
    let entry = update(&state, &admin, &ctx, tenant, expected).await?;
    Ok(versioned(
        &entry.tenant,
        Json(settings::redacted(&entry.tenant.settings)),
    ))
}

/// Merge-patches the settings (RFC 7396, `If-Match` required); answers the new settings
/// and version.
#[utoipa::path(patch, path = "/v1/admin/tenants/{slug}/settings", tag = "tenants",
    params(("slug" = String, Path, description = SLUG), ("If-Match" = String, Header, description = "The ETag of the version this change is based on")),
    request_body(content = Object, description = "An RFC 7396 merge patch over the settings"),
    responses((status = 200, body = TenantSettings, headers(("ETag" = String, description = "The new version"))),
        (status = 412, description = "The tenant changed since that version"),
        (status = 428, description = "If-Match is missing")))]
async fn patch_settings(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    ApiJson(patch): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let expected = tenants::if_match(&ctx.entry.tenant, if_match_header(&headers)?, true)?;
    let mut tenant = ctx.entry.tenant.clone();
    tenant.settings = tenants::patched_settings(&tenant, &patch, &state.secrets)?;
    let entry = update(&state, &admin, &ctx, tenant, expected).await?;
    Ok(versioned(
        &entry.tenant,
        Json(settings::redacted(&entry.tenant.settings)),
    ))
}

/// Stores `tenant`, the new version of the one `before` resolved, refused when the stored
/// tenant is no longer the `expected` version; answers the stored entry.
async fn update(
    state: &AppState,
    admin: &AdminAuth,
    before: &TenantContext,
    mut tenant: Tenant,
    expected_updated_at: Option<DateTime<Utc>>,
) -> Result<std::sync::Arc<TenantEntry>, ApiError> {
    // Where a tenant's database lives is the installation's: a tenant credential that
    // could set it would make this server connect wherever it names (and learn from the
    // answer what is there).
    if tenant.settings.user_db != before.entry.tenant.settings.user_db && !admin.0.reach.is_global() {
        let why = "changing settings.user_db needs a credential that reaches the whole installation".to_owned();
        return Err(admin.refuse(state, Some(&tenant.slug), "settings.user_db", why).await);
    }
    tenants::check_update(before, &mut tenant, &state.dbs).await?;
    let slug = tenant.slug.clone();
    let snapshot = state
        .admin
        .command(
            admin.actor(),
            Command::UpdateTenant {
                tenant,
                expected_updated_at,
            },
            Audit::new("update_tenant", Some(&slug)),
        )
        .await?;
    snapshot.tenant(&slug).cloned().ok_or_else(ApiError::internal)
}

/// Deletes the tenant's configuration (its database is left for the operator).
#[utoipa::path(delete, path = "/v1/admin/tenants/{slug}", tag = "tenants", params(("slug" = String, Path, description = SLUG)),
    responses((status = 204, description = "Deleted")))]
async fn delete_tenant(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<StatusCode, ApiError> {
    let audit = Audit::new("delete_tenant", Some(&slug));
    state
        .admin
        .command(admin.actor(), Command::DeleteTenant { slug }, audit)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A tenant database as the admin API shows it.
#[derive(Serialize, ToSchema)]
struct DatabaseStatus {
    driver: Option<tenantry_controlplane::model::DbDriver>,
    schema: SchemaStatus,
    custom_fields: Vec<CustomColumn>,
}

/// A custom field's column in the tenant database.
#[derive(Serialize, ToSchema)]
struct CustomColumn {
    name: String,
    #[serde(rename = "type")]
    field_type: String,
    required: bool,
    unique: bool,
    indexed: bool,
    /// False once the field is no longer declared in the settings.
    active: bool,
}

/// The tenant database's driver, schema version and custom-field columns (opens it).
#[utoipa::path(get, path = "/v1/admin/tenants/{slug}/database", tag = "tenants", params(("slug" = String, Path, description = SLUG)),
    responses((status = 200, body = DatabaseStatus)))]
async fn database_status(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Json<DatabaseStatus>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let db = ctx.db().await?;
    let schema = db.schema_status(Schema::Tenant).await?;
    let custom_fields = db.stored_custom_fields().await?;
    Ok(Json(DatabaseStatus {
        driver: ctx.capabilities.tenant_db,
        schema,
        custom_fields: custom_fields
            .into_iter()
            .map(|f| CustomColumn {
                name: f.name,
                field_type: f.field_type,
                required: f.is_required,
                unique: f.is_unique,
                indexed: f.is_indexed,
                active: f.active,
            })
            .collect(),
    }))
}

/// Reopens the tenant database, applying pending migrations; reports the schema.
#[utoipa::path(post, path = "/v1/admin/tenants/{slug}/database/migrate", tag = "tenants", params(("slug" = String, Path, description = SLUG)),
    responses((status = 200, body = SchemaStatus)))]
async fn migrate_database(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Json<SchemaStatus>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    ctx.require(Capability::TenantDb)?;
    let status = state
        .admin
        .perform(admin.actor(), state.dbs.reopen(&ctx.entry), |status| {
            Audit::new("migrate_tenant_db", Some(&slug)).with_details(serde_json::json!({"version": status.version}))
        })
        .await?;
    Ok(Json(status))
}

/// Takes over a database stamped for another tenant (`AdminService::adopt_database`),
/// storing `user_db` first when given.
#[utoipa::path(post, path = "/v1/admin/tenants/{slug}/database/adopt", tag = "tenants", params(("slug" = String, Path, description = SLUG)),
    request_body(content = Option<AdoptDatabase>, description = "Optional"),
    responses((status = 200, body = AdoptReport)))]
async fn adopt_database(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path(slug): Path<String>,
    OptionalApiJson(body): OptionalApiJson<AdoptDatabase>,
) -> Result<Json<AdoptReport>, ApiError> {
    let (actor, resolver, dbs, secrets) = (admin.actor(), &state.resolver, &state.dbs, &state.secrets);
    let report = state
        .admin
        .adopt_database(actor, resolver, dbs, secrets, &slug, body.user_db)
        .await?;
    Ok(Json(report))
}

/// Drops the column of a custom field that is no longer declared (its data is lost).
#[utoipa::path(delete, path = "/v1/admin/tenants/{slug}/custom-fields/{name}/column", tag = "tenants",
    params(("slug" = String, Path, description = SLUG), ("name" = String, Path, description = "The custom field")),
    responses((status = 204, description = "Dropped")))]
async fn drop_custom_column(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let db = ctx.db().await?;
    let drop = db.drop_custom_column(&name, &ctx.entry.tenant.settings.custom_fields);
    state
        .admin
        .perform(admin.actor(), drop, |_| {
            Audit::new("drop_custom_column", Some(&slug)).with_details(serde_json::json!({"field": name}))
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Admin actions from the global database (501 without one), filtered by `actor`,
/// `action`, `tenant`, `since`, `until`, most recent first, in pages (`after`, `limit`).
/// A tenant credential reads only the events of a tenant it reaches, named in `tenant`.
#[utoipa::path(get, path = "/v1/admin/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditPage)))]
async fn admin_audit(
    admin: AdminAuth,
    State(state): State<AppState>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::new(ErrorCode::BadRequest, e.body_text()))?;
    if !admin.0.reach.is_global() && !query.tenant.as_deref().is_some_and(|t| admin.0.covers(t)) {
        let why = "a tenant credential reads the audit of a tenant it reaches: add ?tenant=<slug>".to_owned();
        return Err(admin
            .refuse(&state, query.tenant.as_deref(), "GET /v1/admin/audit", why)
            .await);
    }
    Ok(Json(tenantry_admin::audit::page(state.global_db()?, query).await?))
}

/// The tenant's security events (sign-ins and failures, lockouts, second factors,
/// password and email changes, refresh-token replays), filtered by `action`, `user`,
/// `actor`, `target`, `since`, `until`, most recent first, in pages (`after`, `limit`).
#[utoipa::path(get, path = "/v1/admin/tenants/{slug}/audit", tag = "audit",
    params(("slug" = String, Path, description = SLUG), EventQuery),
    responses((status = 200, body = EventPage)))]
async fn tenant_audit(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path(slug): Path<String>,
    query: Result<Query<EventQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<EventPage>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::new(ErrorCode::BadRequest, e.body_text()))?;
    let ctx = state.resolver.resolve_slug(&slug)?;
    Ok(Json(tenantry_admin::audit::tenant_page(&ctx.db().await?, query).await?))
}

#[derive(Serialize, ToSchema)]
struct ResealReport {
    key_id: String,
    resealed: usize,
    failed: Vec<ResealFailure>,
}

/// Re-seals every secret (tenant settings, tenant and system key rings) under the current
/// master key. Values that do not open (tampered, moved, or sealed under a key that is no
/// longer configured) are listed in `failed` and left untouched.
#[utoipa::path(post, path = "/v1/admin/secrets/reseal", tag = "tenants",
    responses((status = 200, body = ResealReport)))]
async fn reseal(admin: AdminAuth, State(state): State<AppState>) -> Result<Json<ResealReport>, ApiError> {
    let reseal = settings::reseal_all(&state.secrets, state.writer.as_ref(), || state.control_plane.snapshot());
    // Which key now seals everything, and what would not open: never the values.
    let outcome = state
        .admin
        .perform(admin.actor(), reseal, |outcome| {
            Audit::new("reseal_secrets", None).with_details(serde_json::json!({
                "key_id": state.secrets.current_key_id(),
                "resealed": outcome.resealed,
                "commands": outcome.commands,
                "failed": outcome.failures.len(),
            }))
        })
        .await?;
    Ok(Json(ResealReport {
        key_id: state.secrets.current_key_id().to_owned(),
        resealed: outcome.resealed,
        failed: outcome.failures,
    }))
}
