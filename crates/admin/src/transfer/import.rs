//! Reading an export document into a tenant, new or existing, as one change: the users go
//! into one database transaction, the configuration into one control-plane command, and
//! the transaction commits only after the command is stored. A document that fails
//! half-way (a bad user, a conflict, a cut connection) leaves the tenant as it was.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;
use serde::Serialize;
use serde_json::Value;
use tenantry_controlplane::model::{Client, KeyRing, Role, Scope, SystemSecrets, Tenant, TenantSettings};
use tenantry_controlplane::validate::{validate_client, validate_role, validate_scope};
use tenantry_controlplane::{Command, TenantEntry};
use tenantry_crypto::transfer::{Opener, TransferError};
use tenantry_crypto::{SealContext, SecretBox};
use tenantry_dataplane::Passkey;
use tenantry_dataplane::model::User;
use tenantry_dataplane::transfer::{
    Credentials, ImportMode, PasskeyCredentials, Placed, TotpRecord, UserImport, UserRecord,
};
use tenantry_dataplane::{CustomFieldSet, TenantDb, TenantDbManager};
use tenantry_errors::{ApiError, ErrorCode};
use tenantry_tenancy::TenantContextResolver;
use tenantry_tenancy::keystore::KeyStore;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::document::*;
use crate::{Actor, AdminService, Audit, clients, settings, tenants};

/// How the document meets the tenant it is imported into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Only into a tenant that does not exist yet (409 `tenant_exists` otherwise).
    #[default]
    Create,
    /// Adds to an existing tenant: the document's clients, scopes, roles and users are
    /// added or replace those with the same id, name or email; nothing is removed, and the
    /// settings are merge-patched.
    Merge,
    /// The tenant ends up exactly as the document: other clients, scopes, roles and users
    /// (with their sessions and tokens) are removed.
    Replace,
}

/// An import's request, besides the document.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    pub mode: Mode,
    /// Check everything, change nothing.
    pub dry_run: bool,
}

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    pub tenant: String,
    pub mode: Mode,
    pub dry_run: bool,
    /// Whether the tenant was made by this import.
    pub created_tenant: bool,
    pub users: Counts,
    pub clients: Counts,
    pub scopes: Counts,
    pub roles: Counts,
    /// Whether password hashes and TOTP secrets were imported.
    pub credentials: bool,
    /// New secrets of confidential clients (client secrets never leave an installation):
    /// shown this once.
    pub client_secrets: BTreeMap<String, String>,
}

/// Items made, changed and removed.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Counts {
    pub created: u64,
    pub updated: u64,
    pub removed: u64,
}

/// What an import reads and writes besides the admin service.
pub struct ImportEnv<'a> {
    pub resolver: &'a TenantContextResolver,
    pub dbs: &'a TenantDbManager,
    pub secrets: &'a SecretBox,
    pub keystore: &'a KeyStore,
    pub system_secrets: &'a SystemSecrets,
}

/// The tenant an import goes into when it does not exist yet: its id and key ring, made
/// by the caller (key generation belongs to the protocol crate).
pub struct NewTenant {
    pub id: Uuid,
    pub key_ring: KeyRing,
}

/// Where the users go while the document is read.
enum Users {
    /// A database transaction.
    Database { import: UserImport, db: TenantDb },
    /// A dry run into a tenant that does not exist: the records are only checked.
    Checked { emails: BTreeSet<String> },
}

impl AdminService {
    /// Imports the document whose items arrive on `items` into tenant `slug`. `new_tenant`
    /// is called once, only when the tenant does not exist.
    pub async fn import_tenant<F, Fut>(
        &self,
        actor: Actor,
        env: ImportEnv<'_>,
        slug: &str,
        options: ImportOptions,
        mut items: mpsc::Receiver<Result<Item, ApiError>>,
        new_tenant: F,
    ) -> Result<ImportReport, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<NewTenant, ApiError>>,
    {
        let Ok(_running) = self.import_running.try_lock() else {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                "another import is running on this server; retry when it ends",
            )
            .with_retry_after(10));
        };
        let header = match items.recv().await {
            Some(Ok(Item::Header(header))) => header,
            Some(Err(e)) => return Err(e),
            _ => return Err(ApiError::new(ErrorCode::ValidationFailed, "the document has no header")),
        };
        let existing = match env.resolver.resolve_slug(slug) {
            Ok(ctx) => Some(ctx),
            Err(e) if e.code == ErrorCode::TenantNotFound => None,
            Err(e) => return Err(e),
        };
        if existing.is_some() && options.mode == Mode::Create {
            return Err(ApiError::new(
                ErrorCode::TenantExists,
                format!("tenant `{slug}` already exists: import with mode=merge or mode=replace to change it"),
            ));
        }
        let opener = opener(&header, env.secrets)?;
        let mut report = ImportReport {
            tenant: slug.to_owned(),
            mode: options.mode,
            dry_run: options.dry_run,
            created_tenant: existing.is_none(),
            credentials: header.credentials,
            ..Default::default()
        };

        // The tenant as it will be, and its configuration.
        let now = Utc::now();
        let mut doc_settings = header.tenant.settings.clone();
        open_settings_secrets(&mut doc_settings, opener.as_ref())?;
        let (tenant, key_ring, before) = match &existing {
            Some(ctx) => {
                let mut tenant = ctx.entry.tenant.clone();
                tenant.display_name = header.tenant.display_name.clone();
                tenant.settings = match options.mode {
                    Mode::Merge => tenants::patched_settings(&tenant, &doc_settings, env.secrets)?,
                    _ => {
                        // The database stays where it is: it is the installation's, not the document's.
                        if let (Some(object), Some(user_db)) = (
                            doc_settings.as_object_mut(),
                            settings::redacted(&tenant.settings).get("user_db").cloned(),
                        ) {
                            object.insert("user_db".into(), user_db);
                        }
                        tenants::replacement_settings(&tenant, doc_settings, env.secrets)?
                    }
                };
                tenants::check_update(ctx, &mut tenant, env.dbs).await?;
                (tenant, None, Some(ctx.entry.clone()))
            }
            None => {
                tenantry_controlplane::validate::validate_slug(slug).map_err(ApiError::validation)?;
                let made = new_tenant().await?;
                let mut input = doc_settings;
                if let Some(object) = input.as_object_mut() {
                    let defaults =
                        serde_json::to_value(TenantSettings::for_new_tenant()).map_err(|_| ApiError::internal())?;
                    object.insert("user_db".into(), defaults["user_db"].clone());
                }
                let settings = settings::settings_from_input(input, None, &made.id.to_string(), env.secrets)?;
                let tenant = Tenant {
                    id: made.id,
                    slug: slug.to_owned(),
                    display_name: header.tenant.display_name.clone(),
                    created_at: now,
                    updated_at: now,
                    settings,
                };
                tenantry_controlplane::validate::validate_tenant(&tenant).map_err(ApiError::validation)?;
                tenants::check_user_db(env.dbs, &tenant).await?;
                (tenant, Some(made.key_ring), None)
            }
        };
        let clients = merged(
            before.as_ref().map(|b| &b.clients),
            header.clients.iter().map(|c| (c.client_id.clone(), c.clone())),
            options.mode,
            &mut report.clients,
            |old, new| {
                let old = Client {
                    secret_hash: None,
                    previous_secret: None,
                    ..old.clone()
                };
                old == *new
            },
        );
        let mut final_clients = Vec::with_capacity(clients.len());
        for (id, mut client) in clients {
            // A digest keyed by another installation means nothing here: keep this one's
            // secret for a client it already has, else make one.
            let kept = before.as_ref().and_then(|b| b.clients.get(&id));
            client.secret_hash = kept.and_then(|c| c.secret_hash.clone());
            client.previous_secret = kept.and_then(|c| c.previous_secret.clone());
            if let Some(secret) = clients::ensure_secret(env.keystore, env.system_secrets, &mut client)? {
                report.client_secrets.insert(id, secret);
            }
            final_clients.push(client);
        }
        let scopes: Vec<Scope> = merged(
            before.as_ref().map(|b| &b.scopes),
            header.scopes.iter().map(|s| (s.name.clone(), s.clone())),
            options.mode,
            &mut report.scopes,
            PartialEq::eq,
        )
        .into_values()
        .collect();
        let roles: Vec<Role> = merged(
            before.as_ref().map(|b| &b.roles),
            header.roles.iter().map(|r| (r.name.clone(), r.clone())),
            options.mode,
            &mut report.roles,
            PartialEq::eq,
        )
        .into_values()
        .collect();
        // Checked now, before any user is read: the command would refuse them at the end.
        for client in &final_clients {
            validate_client(client).map_err(|e| located_all(e, &format!("clients.{}", client.client_id)))?;
        }
        for scope in &scopes {
            validate_scope(scope).map_err(|e| located_all(e, &format!("scopes.{}", scope.name)))?;
        }
        for role in &roles {
            validate_role(role).map_err(|e| located_all(e, &format!("roles.{}", role.name)))?;
        }
        let role_names: BTreeSet<&str> = roles.iter().map(|r| r.name.as_str()).collect();

        // The users, into one transaction (or only checked, in a dry run of a new tenant).
        let fields = CustomFieldSet::new(&tenant.settings.custom_fields);
        let entry = TenantEntry {
            tenant: tenant.clone(),
            clients: final_clients.iter().map(|c| (c.client_id.clone(), c.clone())).collect(),
            scopes: scopes.iter().map(|s| (s.name.clone(), s.clone())).collect(),
            roles: roles.iter().map(|r| (r.name.clone(), r.clone())).collect(),
            key_ring: key_ring.clone().unwrap_or_default(),
        };
        // A dry run writes nothing, not even a column: when the document's custom fields
        // would need new ones (or there is no tenant yet), its users are only checked.
        let needs_columns = before.as_ref().is_none_or(|b| {
            let declared = &b.tenant.settings.custom_fields;
            tenant.settings.custom_fields.iter().any(|f| !declared.contains(f))
        });
        let mut users = if options.dry_run && needs_columns {
            Users::Checked {
                emails: BTreeSet::new(),
            }
        } else {
            let db = match &existing {
                Some(ctx) => ctx.db().await?,
                None => env.dbs.get(&entry).await?,
            };
            // Columns for custom fields the document declares (schema changes end a
            // transaction on MySQL, so they come first).
            db.sync_custom_fields(&tenant.settings.custom_fields).await?;
            let mode = match (existing.is_some(), options.mode) {
                (false, _) => ImportMode::Fresh,
                (true, Mode::Replace) => ImportMode::Replace,
                (true, _) => ImportMode::Merge,
            };
            if mode == ImportMode::Replace {
                report.users.removed = tenantry_dataplane::UserRepository::count_users(&db).await? as u64;
            }
            let import = db.begin_import(fields.clone(), mode).await?;
            Users::Database { import, db }
        };
        let written = async {
            let mut index = 0u64;
            loop {
                match items.recv().await {
                    Some(Ok(Item::User(doc))) => {
                        let at = format!("users[{index}]");
                        put_user(
                            &mut users,
                            *doc,
                            &fields,
                            &role_names,
                            opener.as_ref(),
                            env.secrets,
                            tenant.id,
                            &mut report.users,
                        )
                        .await
                        .map_err(|e| located(e, &at))?;
                        index += 1;
                    }
                    Some(Ok(Item::End { .. })) => return Ok(()),
                    Some(Ok(Item::Header(_))) => {
                        return Err(ApiError::new(
                            ErrorCode::ValidationFailed,
                            "the document has two headers",
                        ));
                    }
                    Some(Err(e)) => return Err(e),
                    None => return Err(ApiError::new(ErrorCode::BadRequest, "the document ended early")),
                }
            }
        }
        .await;
        if let Err(e) = written {
            abandon(users, existing.is_none(), &tenant, env.dbs).await;
            return Err(e);
        }
        if options.dry_run {
            abandon(users, existing.is_none(), &tenant, env.dbs).await;
            return Ok(report);
        }

        // The configuration, then the users: a transaction that cannot commit puts the
        // configuration back.
        let command = Command::ImportTenant {
            tenant: tenant.clone(),
            clients: final_clients,
            scopes,
            roles,
            key_ring,
            expected_updated_at: before.as_ref().map(|b| b.tenant.updated_at),
        };
        let audit = Audit::new("import_tenant", Some(slug)).with_details(serde_json::json!({
            "mode": options.mode,
            "created_tenant": report.created_tenant,
            "users": { "created": report.users.created, "updated": report.users.updated, "removed": report.users.removed },
            "clients": report.clients.created + report.clients.updated,
            "credentials": report.credentials,
            "source": header.source.issuer,
        }));
        let writer = self.writer.clone();
        let commit = async {
            if let Err(e) = writer.write(command).await {
                abandon(users, existing.is_none(), &tenant, env.dbs).await;
                return Err(ApiError::from(e));
            }
            let Users::Database { import, .. } = users else {
                return Err(ApiError::internal());
            };
            if let Err(e) = import.commit().await {
                let undo = match &before {
                    Some(b) => Command::ImportTenant {
                        tenant: b.tenant.clone(),
                        clients: b.clients.values().cloned().collect(),
                        scopes: b.scopes.values().cloned().collect(),
                        roles: b.roles.values().cloned().collect(),
                        key_ring: None,
                        expected_updated_at: None,
                    },
                    None => Command::DeleteTenant {
                        slug: tenant.slug.clone(),
                    },
                };
                if let Err(undo_error) = writer.write(undo).await {
                    tracing::error!(tenant = %tenant.slug, error = %undo_error, "an import's users did not commit and its configuration could not be put back");
                }
                return Err(ApiError::from(e));
            }
            Ok::<_, ApiError>(())
        };
        self.perform(actor, commit, |_| audit).await?;
        Ok(report)
    }
}

/// The opener of the document's sealed values, when it has any.
fn opener(header: &Header, secrets: &SecretBox) -> Result<Option<Opener>, ApiError> {
    match (&header.transfer, header.credentials) {
        (None, false) => Ok(None),
        (None, true) => Err(ApiError::field(
            "transfer",
            "a document with credentials names the key they are sealed for",
        )),
        (Some(transfer), _) => Opener::new(&secrets.transfer_keys(), &transfer.recipient, &transfer.ephemeral)
            .map(Some)
            .map_err(transfer_error),
    }
}

fn transfer_error(e: TransferError) -> ApiError {
    match e {
        TransferError::WrongRecipient => ApiError::new(
            ErrorCode::TransferKeyMismatch,
            "the document's credentials are sealed for another installation: export them for this one's transfer key",
        ),
        other => ApiError::new(
            ErrorCode::ValidationFailed,
            format!("a sealed value does not open: {other}"),
        ),
    }
}

/// Turns the document's `{"sealed": ...}` settings secrets into the plaintext the
/// settings input takes (it seals them again for this installation).
fn open_settings_secrets(settings: &mut Value, opener: Option<&Opener>) -> Result<(), ApiError> {
    if let Some(object) = settings.as_object_mut() {
        // Where the database lives is never the document's to say.
        object.remove("user_db");
    }
    let mut failure = None;
    settings::visit_secrets(settings, &mut |field, value| {
        if failure.is_some() || value.is_null() {
            return;
        }
        let Some(sealed) = value.get("sealed").and_then(Value::as_str) else {
            failure = Some(ApiError::field(
                &format!("tenant.settings.{field}"),
                "a secret in a document is `{\"sealed\": ...}`",
            ));
            return;
        };
        let Some(opener) = opener else {
            failure = Some(ApiError::field(
                "transfer",
                "the document has sealed values but no transfer key",
            ));
            return;
        };
        match opener.open(&format!("settings/{field}"), sealed) {
            Ok(plain) => match String::from_utf8(plain.to_vec()) {
                Ok(text) => *value = Value::String(text),
                Err(_) => failure = Some(ApiError::field(&format!("tenant.settings.{field}"), "is not text")),
            },
            Err(e) => failure = Some(transfer_error(e)),
        }
    });
    failure.map_or(Ok(()), Err)
}

/// The items the tenant keeps, counted: in merge the current ones with the document's
/// added or replacing them, in replace (and for a new tenant) the document's only.
fn merged<T: Clone>(
    current: Option<&BTreeMap<String, T>>,
    incoming: impl Iterator<Item = (String, T)>,
    mode: Mode,
    counts: &mut Counts,
    same: impl Fn(&T, &T) -> bool,
) -> BTreeMap<String, T> {
    let current = current.cloned().unwrap_or_default();
    let mut result = if mode == Mode::Merge {
        current.clone()
    } else {
        BTreeMap::new()
    };
    for (key, item) in incoming {
        match current.get(&key) {
            Some(old) if same(old, &item) => {}
            Some(_) => counts.updated += 1,
            None => counts.created += 1,
        }
        result.insert(key, item);
    }
    counts.removed = current.keys().filter(|k| !result.contains_key(*k)).count() as u64;
    result
}

#[allow(clippy::too_many_arguments)]
async fn put_user(
    users: &mut Users,
    doc: UserDoc,
    fields: &CustomFieldSet,
    role_names: &BTreeSet<&str>,
    opener: Option<&Opener>,
    secrets: &SecretBox,
    tenant_id: Uuid,
    counts: &mut Counts,
) -> Result<(), ApiError> {
    if let Some(unknown) = doc.roles.iter().find(|r| !role_names.contains(r.as_str())) {
        return Err(ApiError::field(
            "roles",
            format!("names `{unknown}`, which the tenant does not define"),
        ));
    }
    let open = |context: String, sealed: &Sealed| -> Result<zeroize::Zeroizing<Vec<u8>>, ApiError> {
        let opener =
            opener.ok_or_else(|| ApiError::field("transfer", "the document has sealed values but no transfer key"))?;
        opener.open(&context, &sealed.sealed).map_err(transfer_error)
    };
    let password = match &doc.password {
        Some(sealed) => {
            let phc = String::from_utf8(open(format!("users/{}/password", doc.id), sealed)?.to_vec())
                .map_err(|_| ApiError::field("password", "is not a password hash"))?;
            if !phc.starts_with("$argon2") {
                return Err(ApiError::field("password", "is not an Argon2 password hash"));
            }
            Some(phc)
        }
        None => None,
    };
    let totp = match &doc.totp {
        Some(totp) => {
            let secret = String::from_utf8(open(format!("users/{}/totp", doc.id), &totp.secret)?.to_vec())
                .map_err(|_| ApiError::field("totp", "is not a TOTP secret"))?;
            Some((zeroize::Zeroizing::new(secret), totp.confirmed, totp.last_used_step))
        }
        None => None,
    };
    let passkeys = doc.passkeys.as_ref().map(passkeys_of).transpose()?;
    let record = UserRecord {
        user: User {
            id: doc.id,
            email: doc.email,
            email_verified: doc.email_verified,
            username: doc.username,
            given_name: doc.given_name,
            family_name: doc.family_name,
            name: doc.name,
            picture: doc.picture,
            locale: doc.locale,
            phone_number: doc.phone_number,
            phone_number_verified: doc.phone_number_verified,
            status: doc.status,
            disabled_at: doc.disabled_at,
            disabled_reason: doc.disabled_reason,
            disabled_until: doc.disabled_until,
            metadata: doc.metadata,
            custom: doc.custom,
            created_at: doc.created_at,
            updated_at: doc.updated_at,
        },
        roles: doc.roles,
        credentials: password.map(|password| Credentials {
            password: Some(password),
            totp: None,
            passkeys: None,
        }),
    };
    match users {
        Users::Checked { emails } => {
            tenantry_dataplane::transfer::check_record(&record, fields)?;
            if !emails.insert(tenantry_dataplane::users::normalize_email(&record.user.email)) {
                return Err(ApiError::new(
                    ErrorCode::EmailTaken,
                    "the document holds this email twice",
                ));
            }
            counts.created += 1;
        }
        Users::Database { import, .. } => {
            let (placed, id) = import.put(&record).await?;
            if let Some(passkeys) = &passkeys {
                import.put_passkeys(id, passkeys).await?;
            }
            if let Some((secret, confirmed, last_used_step)) = totp {
                let (owner, field) = (tenant_id.to_string(), format!("totp.{id}"));
                let sealed = secrets.seal(SealContext::new(&owner, &field), &secret);
                let totp = TotpRecord {
                    sealed,
                    confirmed,
                    last_used_step,
                };
                import.put_totp(id, &totp).await?;
            }
            match placed {
                Placed::Created => counts.created += 1,
                Placed::Updated => counts.updated += 1,
            }
        }
    }
    Ok(())
}

/// Most passkeys one user may carry in a document.
const MAX_PASSKEYS: usize = 100;

/// A user's passkeys from the document, checked: base64url values of plausible sizes
/// (WebAuthn credential ids are at most 1023 bytes, AAGUIDs 16), a name as the account page
/// takes it, at most [`MAX_PASSKEYS`]. Their lookup digests are made here, not read.
fn passkeys_of(doc: &PasskeysDoc) -> Result<PasskeyCredentials, ApiError> {
    use base64::Engine;
    let bytes = |field: &str, value: &str, sizes: std::ops::RangeInclusive<usize>| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(value)
            .ok()
            .filter(|b| sizes.contains(&b.len()))
            .ok_or_else(|| {
                ApiError::field(
                    &format!("passkeys.{field}"),
                    format!("must be base64url of {} to {} bytes", sizes.start(), sizes.end()),
                )
            })
    };
    if doc.credentials.len() > MAX_PASSKEYS {
        return Err(ApiError::field(
            "passkeys.credentials",
            format!("holds more than {MAX_PASSKEYS} passkeys"),
        ));
    }
    let handle = bytes("handle", &doc.handle, 1..=64)?;
    let mut passkeys = Vec::with_capacity(doc.credentials.len());
    for k in &doc.credentials {
        let credential_id = bytes("credential_id", &k.credential_id, 1..=1023)?;
        let short = |field: &str, value: &str| {
            (!value.is_empty() && value.len() <= 32 && value.bytes().all(|b| b.is_ascii_graphic()))
                .then_some(())
                .ok_or_else(|| ApiError::field(&format!("passkeys.{field}"), "must be 1 to 32 printable characters"))
        };
        short("attestation", &k.attestation)?;
        for transport in &k.transports {
            short("transports", transport)?;
        }
        if k.transports.len() > 8 || k.sign_count < 0 {
            return Err(ApiError::field(
                "passkeys",
                "has a transport list or counter out of range",
            ));
        }
        passkeys.push(Passkey {
            id: k.id,
            user_id: Uuid::nil(),
            credential_id_hash: tenantry_accounts::passkeys::credential_id_hash(&credential_id),
            credential_id,
            public_key: bytes("public_key", &k.public_key, 1..=2048)?,
            algorithm: k.algorithm,
            sign_count: k.sign_count,
            backup_eligible: k.backup_eligible,
            backup_state: k.backup_state,
            user_verified: k.user_verified,
            discoverable: k.discoverable,
            transports: k.transports.clone(),
            aaguid: bytes("aaguid", &k.aaguid, 16..=16)?,
            attestation: k.attestation.clone(),
            name: tenantry_accounts::passkeys::check_name(&k.name).map_err(|e| located(e, "passkeys"))?,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
        });
    }
    Ok(PasskeyCredentials { handle, passkeys })
}

/// A validation failure of a header item, its fields named under `at`.
fn located_all(errors: tenantry_controlplane::ValidationErrors, at: &str) -> ApiError {
    located(ApiError::validation(errors), at)
}

/// Says which user an error is about.
fn located(mut e: ApiError, at: &str) -> ApiError {
    e.detail = format!("{at}: {}", e.detail);
    for field in &mut e.errors {
        field.field = format!("{at}.{}", field.field);
    }
    e
}

/// Undoes an import that will not be stored: the transaction rolls back, and a database
/// opened only for a new tenant is closed (and, when it is an embedded file, removed).
async fn abandon(users: Users, new: bool, tenant: &Tenant, dbs: &TenantDbManager) {
    if let Users::Database { import, db } = users {
        let _ = import.rollback().await;
        if new {
            dbs.forget(&tenant.slug);
            db.close().await;
            if tenant.settings.user_db.as_ref().is_some_and(|u| u.dsn.is_none()) {
                let path = dbs.sqlite_path(tenant.id);
                if let Some(folder) = path.parent() {
                    let _ = std::fs::remove_dir_all(folder);
                }
            }
        }
    }
}
