//! The one deterministic function that turns a [`Command`] into file writes and a new
//! [`Snapshot`]. Standalone mode calls it directly; a Raft state machine calls the same
//! function in log order on every node.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::command::Command;
use crate::model::{AdminReach, KeyRing, KeyRingError};
use crate::snapshot::{Snapshot, TenantEntry};
use crate::store::{self, FsStore, json_name};
use crate::validate::{self, ValidationErrors};

/// Why a command was refused. Deterministic: every node refuses the same command the
/// same way, and nothing has been written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    #[error("tenant `{0}` already exists")]
    TenantExists(String),
    #[error("tenant `{0}` does not exist")]
    TenantNotFound(String),
    #[error("tenant `{0}` is degraded: its control-plane files do not load")]
    TenantDegraded(String),
    #[error("{kind} `{id}` does not exist")]
    NotFound { kind: &'static str, id: String },
    #[error("client `{0}` already exists")]
    ClientExists(String),
    #[error("{kind} `{id}` already exists")]
    Exists { kind: &'static str, id: String },
    #[error("client `{0}` was changed by another request")]
    ClientChanged(String),
    #[error("tenant `{0}` was changed since the version the request names")]
    TenantChanged(String),
    /// A compare-and-set of a key ring (`{0}`: a tenant's slug, or `system`) read an older ring.
    #[error("the key ring of `{0}` changed since it was read")]
    RingChanged(String),
    /// A single-use value (a TOTP step, a refresh token) was already spent.
    #[error("{0} was already used")]
    Spent(&'static str),
    #[error("`{0}` cannot be changed")]
    Immutable(&'static str),
    #[error("invalid: {0}")]
    Invalid(ValidationErrors),
    #[error(transparent)]
    KeyRing(#[from] KeyRingError),
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error("control-plane storage failed: {0}")]
    Io(#[from] io::Error),
}

fn invalid(result: Result<(), ValidationErrors>) -> Result<(), Rejection> {
    result.map_err(Rejection::Invalid)
}

fn existing<'a>(snapshot: &'a Snapshot, slug: &str) -> Result<&'a Arc<TenantEntry>, Rejection> {
    match snapshot.tenants.get(slug) {
        Some(entry) => Ok(entry),
        None if snapshot.degraded.contains_key(slug) => Err(Rejection::TenantDegraded(slug.into())),
        None => Err(Rejection::TenantNotFound(slug.into())),
    }
}

/// Applies `cmd` to `current`: writes the files, returns the next snapshot.
pub fn apply(store: &FsStore, current: &Snapshot, cmd: &Command) -> Result<Snapshot, ApplyError> {
    let mut next = current.clone();
    next.revision = current.revision + 1;
    match cmd {
        Command::CreateTenant { tenant, key_ring } => {
            invalid(validate::validate_tenant(tenant))?;
            if current.degraded.contains_key(&tenant.slug) {
                return Err(Rejection::TenantDegraded(tenant.slug.clone()).into());
            }
            if current.tenants.contains_key(&tenant.slug) {
                return Err(Rejection::TenantExists(tenant.slug.clone()).into());
            }
            invalid(validate::validate_key_ring(key_ring))?;
            let entry = TenantEntry {
                tenant: tenant.clone(),
                key_ring: key_ring.clone(),
                ..Default::default()
            };
            store.create_tenant_dir(&entry)?;
            next.tenants.insert(tenant.slug.clone(), Arc::new(entry));
        }
        Command::UpdateTenant {
            tenant,
            expected_updated_at,
        } => {
            invalid(validate::validate_tenant(tenant))?;
            let old = existing(current, &tenant.slug)?;
            if expected_updated_at.is_some_and(|expected| expected != old.tenant.updated_at) {
                return Err(Rejection::TenantChanged(tenant.slug.clone()).into());
            }
            if old.tenant.id != tenant.id {
                return Err(Rejection::Immutable("id").into());
            }
            if old.tenant.created_at != tenant.created_at {
                return Err(Rejection::Immutable("created_at").into());
            }
            store.write_json(&store.tenant_dir(&tenant.slug).join(store::TENANT_FILE), tenant)?;
            entry_mut(&mut next, &tenant.slug)?.tenant = tenant.clone();
        }
        Command::ImportTenant {
            tenant,
            clients,
            scopes,
            roles,
            key_ring,
            expected_updated_at,
        } => {
            invalid(validate::validate_tenant(tenant))?;
            for client in clients {
                invalid(validate::validate_client(client))?;
            }
            for scope in scopes {
                invalid(validate::validate_scope(scope))?;
            }
            for role in roles {
                invalid(validate::validate_role(role))?;
            }
            if current.degraded.contains_key(&tenant.slug) {
                return Err(Rejection::TenantDegraded(tenant.slug.clone()).into());
            }
            let key_ring = match (current.tenants.get(&tenant.slug), key_ring) {
                (Some(old), None) => {
                    if expected_updated_at.is_some_and(|expected| expected != old.tenant.updated_at) {
                        return Err(Rejection::TenantChanged(tenant.slug.clone()).into());
                    }
                    if old.tenant.id != tenant.id {
                        return Err(Rejection::Immutable("id").into());
                    }
                    if old.tenant.created_at != tenant.created_at {
                        return Err(Rejection::Immutable("created_at").into());
                    }
                    old.key_ring.clone()
                }
                (Some(_), Some(_)) => return Err(Rejection::TenantExists(tenant.slug.clone()).into()),
                (None, Some(ring)) => {
                    invalid(validate::validate_key_ring(ring))?;
                    ring.clone()
                }
                (None, None) => return Err(Rejection::TenantNotFound(tenant.slug.clone()).into()),
            };
            let entry = TenantEntry {
                tenant: tenant.clone(),
                clients: clients.iter().map(|c| (c.client_id.clone(), c.clone())).collect(),
                scopes: scopes.iter().map(|s| (s.name.clone(), s.clone())).collect(),
                roles: roles.iter().map(|r| (r.name.clone(), r.clone())).collect(),
                key_ring,
            };
            if current.tenants.contains_key(&tenant.slug) {
                store.replace_tenant_dir(&entry)?;
            } else {
                store.create_tenant_dir(&entry)?;
            }
            next.tenants.insert(tenant.slug.clone(), Arc::new(entry));
        }
        Command::DeleteTenant { slug } => {
            if !current.slug_taken(slug) {
                return Err(Rejection::TenantNotFound(slug.clone()).into());
            }
            store.delete_tenant_dir(slug)?;
            next.tenants.remove(slug);
            next.degraded.remove(slug);
            // A credential reached this tenant, not its slug: a tenant made later under the
            // same slug is out of its reach.
            let narrowed = |reach: &AdminReach| match reach {
                AdminReach::Tenants(slugs) if slugs.contains(slug) => Some(AdminReach::Tenants(
                    slugs.iter().filter(|s| *s != slug).cloned().collect(),
                )),
                _ => None,
            };
            for admin in current.admins.values() {
                if let Some(reach) = narrowed(&admin.reach) {
                    put_admin(store, &mut next, crate::model::Admin { reach, ..admin.clone() })?;
                }
            }
            for key in current.api_keys.values() {
                if let Some(reach) = narrowed(&key.reach) {
                    put_api_key(store, &mut next, crate::model::ApiKey { reach, ..key.clone() })?;
                }
            }
        }
        Command::CreateClient { slug, client } | Command::PutClient { slug, client, .. } => {
            let stored = existing(current, slug)?.clients.get(&client.client_id);
            let exists = stored.is_some();
            if let (
                Command::PutClient {
                    expected_updated_at: Some(expected),
                    ..
                },
                Some(stored),
            ) = (cmd, stored)
                && stored.updated_at != *expected
            {
                return Err(Rejection::ClientChanged(client.client_id.clone()).into());
            }
            match (cmd, exists) {
                (Command::CreateClient { .. }, true) => {
                    return Err(Rejection::ClientExists(client.client_id.clone()).into());
                }
                (Command::PutClient { .. }, false) => {
                    return Err(Rejection::NotFound {
                        kind: "client",
                        id: client.client_id.clone(),
                    }
                    .into());
                }
                _ => {}
            }
            invalid(validate::validate_client(client))?;
            put_item(
                store,
                &mut next,
                (slug, store::CLIENTS_DIR),
                &client.client_id,
                client,
                |e| &mut e.clients,
            )?;
        }
        Command::DeleteClient { slug, client_id } => {
            delete_item(
                store,
                &mut next,
                (slug, store::CLIENTS_DIR),
                ("client", client_id),
                |e| &mut e.clients,
            )?;
        }
        Command::PutScope { slug, scope } => {
            invalid(validate::validate_scope(scope))?;
            put_item(store, &mut next, (slug, store::SCOPES_DIR), &scope.name, scope, |e| {
                &mut e.scopes
            })?;
        }
        Command::DeleteScope { slug, name } => {
            delete_item(store, &mut next, (slug, store::SCOPES_DIR), ("scope", name), |e| {
                &mut e.scopes
            })?;
        }
        Command::PutRole { slug, role } => {
            invalid(validate::validate_role(role))?;
            put_item(store, &mut next, (slug, store::ROLES_DIR), &role.name, role, |e| {
                &mut e.roles
            })?;
        }
        Command::DeleteRole { slug, name } => {
            delete_item(store, &mut next, (slug, store::ROLES_DIR), ("role", name), |e| {
                &mut e.roles
            })?;
        }
        Command::PutKeyRing { slug, ring, expected } => {
            invalid(validate::validate_key_ring(ring))?;
            if let Some(expected) = expected
                && current_ring(current, slug.as_deref())? != expected
            {
                return Err(Rejection::RingChanged(slug.clone().unwrap_or_else(|| "system".into())).into());
            }
            put_ring(store, &mut next, slug.as_deref(), ring.clone())?;
        }
        Command::RotateKeys {
            slug,
            keys,
            retire_after,
        } => {
            let ring = current_ring(current, slug.as_deref())?
                .rotated(keys, *retire_after)
                .map_err(Rejection::from)?;
            invalid(validate::validate_key_ring(&ring))?;
            put_ring(store, &mut next, slug.as_deref(), ring)?;
        }
        Command::RetireKeys { slug, kids } => {
            let ring = current_ring(current, slug.as_deref())?
                .retired(kids)
                .map_err(Rejection::from)?;
            put_ring(store, &mut next, slug.as_deref(), ring)?;
        }
        Command::PutSystemSecrets { secrets } => {
            store.write_json(&store.system_dir().join(store::SYSTEM_SECRETS_FILE), secrets)?;
            next.system_secrets = secrets.clone();
        }
        Command::PutAdmin { admin } => {
            invalid(validate::validate_admin(admin))?;
            if let Some(email) = &admin.email
                && current
                    .admins
                    .values()
                    .any(|other| other.id != admin.id && other.email.as_ref() == Some(email))
            {
                return Err(Rejection::Exists {
                    kind: "admin",
                    id: email.clone(),
                }
                .into());
            }
            let mut admin = admin.clone();
            if let Some(stored) = current.admins.get(&admin.id) {
                admin.last_totp_step = admin.last_totp_step.max(stored.last_totp_step);
            }
            put_admin(store, &mut next, admin)?;
        }
        Command::DeleteAdmin { id } => {
            existing_admin(current, *id)?;
            store.remove_file(&admin_path(store, *id))?;
            next.admins.remove(id);
            end_sessions(store, &mut next, |s| s.admin_id == *id)?;
        }
        Command::UseAdminTotpStep { id, step } => {
            let mut admin = existing_admin(current, *id)?.clone();
            if admin.last_totp_step.is_some_and(|last| last >= *step) {
                return Err(Rejection::Spent("the TOTP code").into());
            }
            admin.last_totp_step = Some(*step);
            put_admin(store, &mut next, admin)?;
        }
        Command::PutAdminSession {
            session,
            expected_digest,
        } => {
            existing_admin(current, session.admin_id)?;
            match (current.admin_sessions.get(&session.id), expected_digest) {
                (None, None) => {}
                (Some(stored), Some(expected))
                    if stored.refresh_digest == *expected && stored.admin_id == session.admin_id => {}
                (Some(_), None) => {
                    return Err(Rejection::Exists {
                        kind: "admin session",
                        id: session.id.to_string(),
                    }
                    .into());
                }
                (None, Some(_)) => {
                    return Err(Rejection::NotFound {
                        kind: "admin session",
                        id: session.id.to_string(),
                    }
                    .into());
                }
                (Some(_), Some(_)) => return Err(Rejection::Spent("the refresh token").into()),
            }
            let now = session.refreshed_at;
            end_sessions(store, &mut next, |s| s.expires_at <= now)?;
            store.write_json(&admin_session_path(store, session.id), session)?;
            next.admin_sessions.insert(session.id, session.clone());
        }
        Command::EndAdminSessions { session_id, admin_id } => {
            end_sessions(store, &mut next, |s| {
                Some(s.id) == *session_id || Some(s.admin_id) == *admin_id
            })?;
        }
        Command::CreateApiKey { key } => {
            invalid(validate::validate_api_key(key))?;
            if current.api_keys.contains_key(&key.id) {
                return Err(Rejection::Exists {
                    kind: "API key",
                    id: key.id.to_string(),
                }
                .into());
            }
            put_api_key(store, &mut next, key.clone())?;
        }
        Command::RevokeApiKey { id, at } | Command::TouchApiKey { id, at } => {
            let Some(stored) = current.api_keys.get(id) else {
                return Err(Rejection::NotFound {
                    kind: "API key",
                    id: id.to_string(),
                }
                .into());
            };
            let mut key = stored.clone();
            match cmd {
                Command::RevokeApiKey { .. } => {
                    key.revoked_at.get_or_insert(*at);
                }
                _ => key.last_used_at = key.last_used_at.max(Some(*at)),
            }
            if key != *stored {
                put_api_key(store, &mut next, key)?;
            }
        }
    }
    Ok(next)
}

/// The key ring of a tenant (`Some(slug)`) or of the system issuer (`None`).
fn current_ring<'a>(current: &'a Snapshot, slug: Option<&str>) -> Result<&'a KeyRing, Rejection> {
    match slug {
        Some(slug) => Ok(&existing(current, slug)?.key_ring),
        None => Ok(&current.system_keys),
    }
}

fn put_ring(store: &FsStore, next: &mut Snapshot, slug: Option<&str>, ring: KeyRing) -> Result<(), ApplyError> {
    match slug {
        Some(slug) => {
            let entry = entry_mut(next, slug)?;
            store.write_json(&store.tenant_dir(slug).join(store::KEYS_FILE), &ring)?;
            entry.key_ring = ring;
        }
        None => {
            store.write_json(&store.system_dir().join(store::KEYS_FILE), &ring)?;
            next.system_keys = ring;
        }
    }
    Ok(())
}

fn put_api_key(store: &FsStore, next: &mut Snapshot, key: crate::model::ApiKey) -> Result<(), ApplyError> {
    store.write_json(&store.api_keys_dir().join(json_name(&key.id.to_string())), &key)?;
    next.api_keys.insert(key.id, key);
    Ok(())
}

fn admin_path(store: &FsStore, id: uuid::Uuid) -> PathBuf {
    store.admins_dir().join(json_name(&id.to_string()))
}

fn admin_session_path(store: &FsStore, id: uuid::Uuid) -> PathBuf {
    store.admin_sessions_dir().join(json_name(&id.to_string()))
}

fn existing_admin(current: &Snapshot, id: uuid::Uuid) -> Result<&crate::model::Admin, Rejection> {
    current.admins.get(&id).ok_or_else(|| Rejection::NotFound {
        kind: "admin",
        id: id.to_string(),
    })
}

fn put_admin(store: &FsStore, next: &mut Snapshot, admin: crate::model::Admin) -> Result<(), ApplyError> {
    store.write_json(&admin_path(store, admin.id), &admin)?;
    next.admins.insert(admin.id, admin);
    Ok(())
}

/// Removes the admin sessions `ends` picks.
fn end_sessions(
    store: &FsStore,
    next: &mut Snapshot,
    ends: impl Fn(&crate::model::AdminSession) -> bool,
) -> Result<(), ApplyError> {
    let ended: Vec<uuid::Uuid> = next.admin_sessions.values().filter(|s| ends(s)).map(|s| s.id).collect();
    for id in ended {
        store.remove_file(&admin_session_path(store, id))?;
        next.admin_sessions.remove(&id);
    }
    Ok(())
}

/// The tenant entry of `next`, ready to change (copied on write from the old snapshot).
fn entry_mut<'a>(next: &'a mut Snapshot, slug: &str) -> Result<&'a mut TenantEntry, Rejection> {
    existing(next, slug)?;
    Ok(Arc::make_mut(next.tenants.get_mut(slug).expect("checked above")))
}

type ItemMap<T> = fn(&mut TenantEntry) -> &mut BTreeMap<String, T>;

fn put_item<T: Serialize + Clone>(
    store: &FsStore,
    next: &mut Snapshot,
    (slug, dir): (&str, &str),
    id: &str,
    item: &T,
    map: ItemMap<T>,
) -> Result<(), ApplyError> {
    let entry = entry_mut(next, slug)?;
    store.write_json(&store.tenant_dir(slug).join(dir).join(json_name(id)), item)?;
    map(entry).insert(id.to_owned(), item.clone());
    Ok(())
}

fn delete_item<T>(
    store: &FsStore,
    next: &mut Snapshot,
    (slug, dir): (&str, &str),
    (kind, id): (&'static str, &str),
    map: ItemMap<T>,
) -> Result<(), ApplyError> {
    let entry = entry_mut(next, slug)?;
    if !map(entry).contains_key(id) {
        return Err(Rejection::NotFound {
            kind,
            id: id.to_owned(),
        }
        .into());
    }
    store.remove_file(&store.tenant_dir(slug).join(dir).join(json_name(id)))?;
    map(entry).remove(id);
    Ok(())
}
