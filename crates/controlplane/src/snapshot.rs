//! The immutable in-memory view of the control plane that every request reads.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use uuid::Uuid;

use crate::model::*;

/// One published state of the control plane. Readers hold an `Arc<Snapshot>`; a write
/// publishes a new one and never changes an old one.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Increases by one per applied command (since this process loaded the tree).
    pub revision: u64,
    pub tenants: BTreeMap<String, Arc<TenantEntry>>,
    /// Tenants whose files did not load; their slugs stay reserved.
    pub degraded: BTreeMap<String, DegradedTenant>,
    pub admins: BTreeMap<Uuid, Admin>,
    pub api_keys: BTreeMap<Uuid, ApiKey>,
    pub admin_sessions: BTreeMap<Uuid, AdminSession>,
    pub system_keys: KeyRing,
    pub system_secrets: SystemSecrets,
}

impl Snapshot {
    pub fn tenant(&self, slug: &str) -> Option<&Arc<TenantEntry>> {
        self.tenants.get(slug)
    }

    /// True when a slug is taken, by a loaded or a degraded tenant.
    pub fn slug_taken(&self, slug: &str) -> bool {
        self.tenants.contains_key(slug) || self.degraded.contains_key(slug)
    }
}

/// A tenant with everything registered under it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TenantEntry {
    pub tenant: Tenant,
    pub clients: BTreeMap<String, Client>,
    pub scopes: BTreeMap<String, Scope>,
    pub roles: BTreeMap<String, Role>,
    pub key_ring: KeyRing,
}

impl Default for Tenant {
    fn default() -> Self {
        let epoch = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
        Self {
            id: Uuid::nil(),
            slug: String::new(),
            display_name: String::new(),
            created_at: epoch,
            updated_at: epoch,
            settings: TenantSettings::default(),
        }
    }
}

/// A tenant whose control-plane files failed to load, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DegradedTenant {
    pub slug: String,
    /// The file that failed.
    pub path: PathBuf,
    /// The parse or read error (never file contents).
    pub error: String,
}
