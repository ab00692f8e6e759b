//! Tenant creation and updates from admin input: building the tenant, checking it against
//! the current settings and the tenant database, before the one write (the caller's
//! [`AdminService::command`](crate::AdminService::command)).

use chrono::Utc;
use serde_json::Value;
use tenantry_controlplane::model::{Tenant, TenantSettings};
use tenantry_controlplane::validate::{validate_slug, validate_tenant};
use tenantry_crypto::SecretBox;
use tenantry_dataplane::TenantDbManager;
use tenantry_dataplane::custom_fields::type_changes;
use tenantry_errors::{ApiError, ErrorCode};
use tenantry_tenancy::TenantContext;
use uuid::Uuid;

use crate::settings;

/// A new tenant from admin input, checked: the slug, the settings (secrets sealed, merged
/// onto `TenantSettings::for_new_tenant` — the embedded SQLite database unless the settings
/// name another, or say `"user_db": null` for none), the tenant, and the ownership of the
/// database it names. Nothing is stored here.
pub async fn new_tenant(
    slug: String,
    display_name: Option<String>,
    settings_input: Option<Value>,
    secrets: &SecretBox,
    dbs: &TenantDbManager,
) -> Result<Tenant, ApiError> {
    validate_slug(&slug).map_err(ApiError::validation)?;
    let id = Uuid::new_v4();
    let input = settings_input.unwrap_or_else(|| serde_json::json!({}));
    let settings = settings::settings_from_input(input, None, &id.to_string(), secrets)?;
    let now = Utc::now();
    let tenant = Tenant {
        id,
        display_name: display_name.unwrap_or_else(|| slug.clone()),
        slug,
        created_at: now,
        updated_at: now,
        settings,
    };
    validate_tenant(&tenant).map_err(ApiError::validation)?;
    check_user_db(dbs, &tenant).await?;
    Ok(tenant)
}

/// The tenant's version as an HTTP entity tag: its `updated_at`, which every change
/// through the admin API stamps anew.
pub fn etag(tenant: &Tenant) -> String {
    format!("\"{}\"", tenant.updated_at.timestamp_micros())
}

/// Checks an `If-Match` header (RFC 9110 13.1.1, strong comparison) against the tenant's
/// [`etag`]: absent is 428 when `required`, a list naming no current tag (or only weak
/// tags) is 412. Answers the `updated_at` to hand the command, so a change stored between
/// this check and the write is refused as well.
pub fn if_match(
    tenant: &Tenant,
    header: Option<&str>,
    required: bool,
) -> Result<Option<chrono::DateTime<Utc>>, ApiError> {
    let Some(header) = header else {
        return if required {
            Err(ApiError::new(
                ErrorCode::PreconditionRequired,
                "send If-Match with the ETag of the settings you read",
            ))
        } else {
            Ok(None)
        };
    };
    let current = etag(tenant);
    let matches = header.trim() == "*" || header.split(',').map(str::trim).any(|tag| tag == current);
    if matches {
        Ok(Some(tenant.updated_at))
    } else {
        Err(ApiError::new(
            ErrorCode::PreconditionFailed,
            format!("the tenant's current version is {current}; read it again"),
        ))
    }
}

/// New settings for the existing `tenant` from admin input (secrets sealed, the
/// `{"set": true}` marker keeps a secret).
pub fn replacement_settings(tenant: &Tenant, input: Value, secrets: &SecretBox) -> Result<TenantSettings, ApiError> {
    settings::settings_from_input(input, Some(&tenant.settings), &tenant.id.to_string(), secrets)
}

/// New settings for the existing `tenant` from an RFC 7396 merge patch over its
/// (redacted) settings.
pub fn patched_settings(tenant: &Tenant, patch: &Value, secrets: &SecretBox) -> Result<TenantSettings, ApiError> {
    let mut merged = settings::redacted(&tenant.settings);
    settings::merge_patch(&mut merged, patch);
    replacement_settings(tenant, merged, secrets)
}

/// Checks `tenant`, the new version of the tenant `before` was resolved for, and stamps
/// its `updated_at`: the tenant itself, custom-field type changes and newly unique fields
/// against the tenant database, and the ownership of a newly named database.
pub async fn check_update(before: &TenantContext, tenant: &mut Tenant, dbs: &TenantDbManager) -> Result<(), ApiError> {
    tenant.updated_at = Utc::now();
    validate_tenant(tenant).map_err(ApiError::validation)?;
    check_custom_field_types(before, tenant).await?;
    check_unique_custom_fields(before, tenant).await?;
    if tenant.settings.user_db != before.entry.tenant.settings.user_db {
        check_user_db(dbs, tenant).await?;
    }
    Ok(())
}

/// Refuses a custom field whose type would change, against the current settings and,
/// when the tenant database can be reached, against the columns already there (a field
/// removed from the settings keeps its column and type).
pub async fn check_custom_field_types(before: &TenantContext, after: &Tenant) -> Result<(), ApiError> {
    let current = &before.entry.tenant.settings;
    let mut stored = Vec::new();
    if current.user_db.is_some()
        && current.user_db == after.settings.user_db
        && let Ok(db) = before.db().await
    {
        stored = db.stored_custom_fields().await.unwrap_or_default();
    }
    let problems = type_changes(&current.custom_fields, &after.settings.custom_fields, &stored);
    match problems.into_iter().next() {
        Some(problem) => Err(ApiError::field("settings.custom_fields", problem)),
        None => Ok(()),
    }
}

/// Refuses a custom field that turns `unique` on while existing values repeat (409
/// `custom_field_duplicates`, naming the field and the first repeated values): the index
/// could not be made, so nothing is stored. Skipped when the database cannot be reached
/// now (the sync then reports the field in `/readyz` instead).
pub async fn check_unique_custom_fields(before: &TenantContext, after: &Tenant) -> Result<(), ApiError> {
    let current = &before.entry.tenant.settings;
    let newly_unique: Vec<_> = after
        .settings
        .custom_fields
        .iter()
        .filter(|f| f.unique)
        .filter(|f| !current.custom_fields.iter().any(|c| c.name == f.name && c.unique))
        .collect();
    if newly_unique.is_empty() || current.user_db.is_none() || current.user_db != after.settings.user_db {
        return Ok(());
    }
    let Ok(db) = before.db().await else {
        return Ok(());
    };
    for field in newly_unique {
        let repeated = db.custom_field_duplicates(&field.name, 3).await?;
        if !repeated.is_empty() {
            let values: Vec<_> = repeated
                .iter()
                .map(|v| {
                    format!(
                        "\"{}\"",
                        tenantry_errors::printable(v).chars().take(40).collect::<String>()
                    )
                })
                .collect();
            return Err(ApiError::new(
                ErrorCode::CustomFieldDuplicates,
                format!(
                    "custom field `{}` cannot be unique: existing values repeat ({}); make them unique first. Nothing was changed",
                    field.name,
                    values.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Refuses settings whose `user_db` names a node-local (SQLite) database in cluster mode,
/// or a database stamped for another tenant (422 on `settings.user_db`), when it can be
/// reached now; an unreachable one is checked again when it opens.
pub async fn check_user_db(dbs: &TenantDbManager, tenant: &Tenant) -> Result<(), ApiError> {
    let Some(user_db) = &tenant.settings.user_db else {
        return Ok(());
    };
    if user_db.driver.is_node_local() && !dbs.node_local_allowed() {
        return Err(ApiError::field(
            "settings.user_db",
            "cluster mode: every member must reach the same tenant database, so name a postgres or mysql database \
             (a SQLite file would exist, and diverge, on each node)",
        ));
    }
    match dbs.owner_of(tenant.id, user_db).await {
        Ok(Some(owner)) if owner != tenant.id.to_string() => Err(ApiError::field(
            "settings.user_db",
            format!(
                "this database belongs to another tenant (id {owner}); use an empty database, or adopt this one \
                 explicitly with POST /v1/admin/tenants/{}/database/adopt",
                tenant.slug
            ),
        )),
        _ => Ok(()),
    }
}

impl crate::AdminService {
    /// The explicit admin action that lets a tenant take over a database stamped for
    /// another tenant (e.g. its own data after the tenant was deleted and re-created, which
    /// gives it a new id): stores `user_db` when given (skipping the ownership check the
    /// settings routes make), then re-stamps the database for this tenant. Sign-ins issued
    /// for the previous owner (sessions, refresh tokens, authorization codes) are ended;
    /// users, credentials and second factors stay. One audit event for the whole action;
    /// answers the report.
    pub async fn adopt_database(
        &self,
        actor: crate::Actor,
        resolver: &tenantry_tenancy::TenantContextResolver,
        dbs: &TenantDbManager,
        secrets: &SecretBox,
        slug: &str,
        user_db: Option<Value>,
    ) -> Result<AdoptReport, ApiError> {
        let adopt = async {
            let mut ctx = resolver.resolve_slug(slug)?;
            if let Some(user_db) = user_db {
                let mut tenant = ctx.entry.tenant.clone();
                let expected_updated_at = Some(tenant.updated_at);
                let patch = serde_json::json!({ "user_db": user_db });
                tenant.settings = patched_settings(&tenant, &patch, secrets)?;
                tenant.updated_at = Utc::now();
                validate_tenant(&tenant).map_err(ApiError::validation)?;
                self.writer
                    .write(tenantry_controlplane::Command::UpdateTenant {
                        tenant,
                        expected_updated_at,
                    })
                    .await?;
                ctx = resolver.resolve_slug(slug)?;
            }
            ctx.require(tenantry_tenancy::Capability::TenantDb)?;
            // Adopting from another tenant ends that tenant's sign-ins before the re-stamp
            // (`TenantDb::restamp`).
            let previous = dbs.adopt(&ctx.entry).await?;
            let ended = previous
                .as_deref()
                .is_some_and(|p| p != ctx.entry.tenant.id.to_string());
            let schema = ctx
                .db()
                .await?
                .schema_status(tenantry_dataplane::Schema::Tenant)
                .await?;
            Ok::<_, ApiError>(AdoptReport {
                tenant_id: ctx.entry.tenant.id,
                previous_owner: previous,
                sign_ins_ended: ended,
                schema,
            })
        };
        self.perform(actor, adopt, |report| {
            crate::Audit::new("adopt_tenant_db", Some(slug)).with_details(serde_json::json!({
                "previous_owner": report.previous_owner,
                "sign_ins_ended": report.sign_ins_ended,
            }))
        })
        .await
    }
}

/// What adopting a tenant database did.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AdoptReport {
    pub tenant_id: uuid::Uuid,
    /// The tenant id the database was stamped for before, if any.
    pub previous_owner: Option<String>,
    /// Whether the previous owner's sessions, refresh tokens and codes were ended.
    pub sign_ins_ended: bool,
    pub schema: tenantry_dataplane::SchemaStatus,
}
