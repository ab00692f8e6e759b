//! The control plane on files.
//!
//! Layout under `FS_ROOT` (all JSON, one object per file):
//!
//! ```text
//! system/keys.json                      system issuer key ring
//! system/admins/<uuid>.json             one admin each
//! system/admin-sessions/<uuid>.json     one signed-in admin each
//! system/api-keys/<uuid>.json           one API key each (revoked ones too)
//! tenants/<slug>/tenant.json            tenant + settings
//! tenants/<slug>/keys.json              tenant key ring
//! tenants/<slug>/clients/<client_id>.json
//! tenants/<slug>/scopes/<name>.json
//! tenants/<slug>/roles/<name>.json
//! ```
//!
//! Every file is written atomically (temp file, fsync, rename, fsync of the directory).
//! A tenant folder is created whole by staging it under a dot-name and renaming it into
//! place, and deleted by renaming it to a dot-name before removing it, so a crash at any
//! moment leaves either the old tree or the new one. Dot-names are leftovers of such a
//! crash and are cleaned when the store loads.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::model::*;
use crate::snapshot::{DegradedTenant, Snapshot, TenantEntry};
use crate::validate::is_identifier;

pub const TENANT_FILE: &str = "tenant.json";
pub const KEYS_FILE: &str = "keys.json";
pub const SYSTEM_SECRETS_FILE: &str = "secrets.json";
pub const CLIENTS_DIR: &str = "clients";
pub const SCOPES_DIR: &str = "scopes";
pub const ROLES_DIR: &str = "roles";

/// Access to the control-plane tree under one root directory.
#[derive(Debug, Clone)]
pub struct FsStore {
    root: PathBuf,
}

impl FsStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn tenants_dir(&self) -> PathBuf {
        self.root.join("tenants")
    }

    pub fn tenant_dir(&self, slug: &str) -> PathBuf {
        self.tenants_dir().join(slug)
    }

    pub fn system_dir(&self) -> PathBuf {
        self.root.join("system")
    }

    pub fn admins_dir(&self) -> PathBuf {
        self.system_dir().join("admins")
    }

    pub fn admin_sessions_dir(&self) -> PathBuf {
        self.system_dir().join("admin-sessions")
    }

    pub fn api_keys_dir(&self) -> PathBuf {
        self.system_dir().join("api-keys")
    }

    /// Creates the top-level folders if they are missing.
    pub fn init(&self) -> io::Result<()> {
        for dir in [
            self.root.clone(),
            self.tenants_dir(),
            self.system_dir(),
            self.admins_dir(),
            self.api_keys_dir(),
            self.admin_sessions_dir(),
        ] {
            if !dir.exists() {
                fs::create_dir_all(&dir)?;
                if let Some(parent) = dir.parent() {
                    sync_dir(parent)?;
                }
            }
        }
        Ok(())
    }

    /// Writes one JSON file atomically.
    pub fn write_json<T: Serialize>(&self, path: &Path, value: &T) -> io::Result<()> {
        write_atomic(path, &to_json(value)?)
    }

    /// Removes one file and makes the removal durable; a missing file is not an error.
    pub fn remove_file(&self, path: &Path) -> io::Result<()> {
        match fs::remove_file(path) {
            Ok(()) => sync_dir(path.parent().unwrap_or(&self.root)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Writes a whole new tenant folder: staged under a dot-name, then renamed into place.
    pub fn create_tenant_dir(&self, entry: &TenantEntry) -> io::Result<()> {
        let tenants = self.tenants_dir();
        let target = tenants.join(&entry.tenant.slug);
        if target.exists() {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "tenant folder exists"));
        }
        let staging = tenants.join(format!(".staging-{}-{}", entry.tenant.slug, Uuid::new_v4()));
        fs::create_dir(&staging)?;
        let result = (|| {
            write_atomic(&staging.join(TENANT_FILE), &to_json(&entry.tenant)?)?;
            write_atomic(&staging.join(KEYS_FILE), &to_json(&entry.key_ring)?)?;
            for dir in [CLIENTS_DIR, SCOPES_DIR, ROLES_DIR] {
                fs::create_dir(staging.join(dir))?;
            }
            for (id, client) in &entry.clients {
                write_atomic(&staging.join(CLIENTS_DIR).join(json_name(id)), &to_json(client)?)?;
            }
            for (name, scope) in &entry.scopes {
                write_atomic(&staging.join(SCOPES_DIR).join(json_name(name)), &to_json(scope)?)?;
            }
            for (name, role) in &entry.roles {
                write_atomic(&staging.join(ROLES_DIR).join(json_name(name)), &to_json(role)?)?;
            }
            sync_dir(&staging)?;
            fs::rename(&staging, &target)?;
            sync_dir(&tenants)
        })();
        if result.is_err() {
            let _ = fs::remove_dir_all(&staging);
        }
        result
    }

    /// Replaces an existing tenant's folder with `entry` as a whole: the new folder is
    /// written aside, then the old one is renamed away and the new one into its place.
    pub fn replace_tenant_dir(&self, entry: &TenantEntry) -> io::Result<()> {
        let tenants = self.tenants_dir();
        let target = tenants.join(&entry.tenant.slug);
        let staging_entry = TenantEntry {
            tenant: Tenant {
                slug: format!(".import-{}-{}", entry.tenant.slug, Uuid::new_v4()),
                ..entry.tenant.clone()
            },
            ..entry.clone()
        };
        // The folder is written under a staging name, with the real tenant inside.
        let staging = tenants.join(&staging_entry.tenant.slug);
        self.create_tenant_dir(&staging_entry)?;
        let swap = (|| {
            write_atomic(&staging.join(TENANT_FILE), &to_json(&entry.tenant)?)?;
            let trash = tenants.join(format!(".trash-{}-{}", entry.tenant.slug, Uuid::new_v4()));
            fs::rename(&target, &trash)?;
            if let Err(e) = fs::rename(&staging, &target) {
                let _ = fs::rename(&trash, &target);
                return Err(e);
            }
            sync_dir(&tenants)?;
            let _ = fs::remove_dir_all(&trash);
            Ok(())
        })();
        if swap.is_err() {
            let _ = fs::remove_dir_all(&staging);
        }
        swap
    }

    /// Removes a tenant folder: renamed away in one step, then deleted.
    pub fn delete_tenant_dir(&self, slug: &str) -> io::Result<()> {
        let tenants = self.tenants_dir();
        let target = tenants.join(slug);
        if !target.exists() {
            return Ok(());
        }
        let trash = tenants.join(format!(".trash-{slug}-{}", Uuid::new_v4()));
        fs::rename(&target, &trash)?;
        sync_dir(&tenants)?;
        fs::remove_dir_all(&trash)
    }

    /// Loads the whole tree. A tenant whose files do not parse is reported as degraded
    /// and left out; the rest loads. Only an unreadable root or system file fails.
    pub fn load(&self) -> Result<Snapshot, LoadError> {
        self.init().map_err(|e| LoadError::io(&self.root, e))?;
        let mut snapshot = Snapshot::default();

        remove_leftovers(&self.system_dir())?;
        let system_keys = self.system_dir().join(KEYS_FILE);
        if system_keys.exists() {
            snapshot.system_keys = read_json(&system_keys)?;
        }
        let system_secrets = self.system_dir().join(SYSTEM_SECRETS_FILE);
        if system_secrets.exists() {
            snapshot.system_secrets = read_json(&system_secrets)?;
        }
        for (path, _) in list_json(&self.admins_dir())? {
            let admin: Admin = read_json(&path)?;
            snapshot.admins.insert(admin.id, admin);
        }
        for (path, _) in list_json(&self.api_keys_dir())? {
            let key: ApiKey = read_json(&path)?;
            snapshot.api_keys.insert(key.id, key);
        }
        for (path, _) in list_json(&self.admin_sessions_dir())? {
            let session: AdminSession = read_json(&path)?;
            snapshot.admin_sessions.insert(session.id, session);
        }

        let tenants_dir = self.tenants_dir();
        for dirent in fs::read_dir(&tenants_dir).map_err(|e| LoadError::io(&tenants_dir, e))? {
            let dirent = dirent.map_err(|e| LoadError::io(&tenants_dir, e))?;
            let name = dirent.file_name().to_string_lossy().into_owned();
            let path = dirent.path();
            if name.starts_with('.') {
                // Leftover of a crash during create or delete: never part of the tree.
                if path.is_dir() {
                    let _ = fs::remove_dir_all(&path);
                } else {
                    let _ = fs::remove_file(&path);
                }
                continue;
            }
            if !path.is_dir() {
                continue;
            }
            match load_tenant(&path, &name) {
                Ok(entry) => {
                    snapshot.tenants.insert(name, Arc::new(entry));
                }
                Err(e) => {
                    tracing::warn!(tenant = %name, path = %e.path.display(), error = %e.message, "tenant degraded: control-plane file does not load");
                    snapshot.degraded.insert(
                        name.clone(),
                        DegradedTenant {
                            slug: name,
                            path: e.path,
                            error: e.message,
                        },
                    );
                }
            }
        }
        Ok(snapshot)
    }
}

fn load_tenant(dir: &Path, slug: &str) -> Result<TenantEntry, LoadError> {
    remove_leftovers(dir)?;
    let tenant: Tenant = read_json(&dir.join(TENANT_FILE))?;
    if tenant.slug != slug {
        return Err(LoadError {
            path: dir.join(TENANT_FILE),
            message: format!("slug `{}` does not match its folder", tenant.slug),
        });
    }
    let keys_path = dir.join(KEYS_FILE);
    let key_ring = if keys_path.exists() {
        read_json(&keys_path)?
    } else {
        KeyRing::default()
    };
    let mut entry = TenantEntry {
        tenant,
        key_ring,
        ..Default::default()
    };
    for (path, id) in list_json(&dir.join(CLIENTS_DIR))? {
        let client: Client = read_json(&path)?;
        check_name(&path, &id, &client.client_id)?;
        entry.clients.insert(id, client);
    }
    for (path, id) in list_json(&dir.join(SCOPES_DIR))? {
        let scope: Scope = read_json(&path)?;
        check_name(&path, &id, &scope.name)?;
        entry.scopes.insert(id, scope);
    }
    for (path, id) in list_json(&dir.join(ROLES_DIR))? {
        let role: Role = read_json(&path)?;
        check_name(&path, &id, &role.name)?;
        entry.roles.insert(id, role);
    }
    Ok(entry)
}

fn check_name(path: &Path, file_id: &str, inner: &str) -> Result<(), LoadError> {
    if file_id == inner {
        Ok(())
    } else {
        Err(LoadError {
            path: path.to_owned(),
            message: format!("names `{inner}` but is stored as `{file_id}`"),
        })
    }
}

/// A file that could not be read or parsed, with its path (never its contents).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct LoadError {
    pub path: PathBuf,
    pub message: String,
}

impl LoadError {
    fn io(path: &Path, e: io::Error) -> Self {
        Self {
            path: path.to_owned(),
            message: e.to_string(),
        }
    }
}

/// The file name used for an identifier (identifiers are validated to be path-safe).
pub fn json_name(id: &str) -> String {
    debug_assert!(is_identifier(id) || id.parse::<Uuid>().is_ok());
    format!("{id}.json")
}

fn to_json<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, LoadError> {
    let bytes = fs::read(path).map_err(|e| LoadError::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| LoadError {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// The file names of a folder, after removing dot-files (temp files of an interrupted
/// write); a missing folder is empty.
fn remove_leftovers(dir: &Path) -> Result<Vec<(PathBuf, String)>, LoadError> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(LoadError::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| LoadError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && entry.path().is_file() {
            let _ = fs::remove_file(entry.path());
        } else {
            out.push((entry.path(), name));
        }
    }
    Ok(out)
}

/// Lists `*.json` files of a folder as (path, stem), sorted; leftovers are removed.
fn list_json(dir: &Path) -> Result<Vec<(PathBuf, String)>, LoadError> {
    let mut out: Vec<_> = remove_leftovers(dir)?
        .into_iter()
        .filter_map(|(path, name)| name.strip_suffix(".json").map(|stem| (path.clone(), stem.to_owned())))
        .collect();
    out.sort();
    Ok(out)
}

/// Temp file in the same folder, fsync, rename over the target, fsync the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().ok_or_else(|| io::Error::other("path has no parent"))?;
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::other("path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        file_name.to_string_lossy(),
        Uuid::new_v4().simple()
    ));
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Makes a folder's entries (renames, creations, removals) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
