//! Typed control-plane changes.
//!
//! A [`Command`] is complete and deterministic: the node that accepts a write fills in
//! ids, timestamps, hashed or sealed secrets and key material before it builds the
//! command, so applying the same command on any node writes the same files.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    /// Creates a tenant together with its signing-key ring.
    CreateTenant {
        tenant: Tenant,
        key_ring: KeyRing,
    },
    /// Replaces a tenant's display name and settings (id, slug and creation time are kept);
    /// when `expected_updated_at` is given, refused if the stored tenant's `updated_at`
    /// differs (the admin API's `If-Match`: a change made since the caller read it wins).
    UpdateTenant {
        tenant: Tenant,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected_updated_at: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Puts a whole tenant as an import made it: its settings, clients, scopes and roles
    /// exactly as given, in one step (the folder is written aside and swapped in). A new
    /// tenant needs `key_ring`; an existing one keeps its ring, id and creation time, and
    /// `expected_updated_at` refuses the import when the tenant changed meanwhile.
    ImportTenant {
        tenant: Tenant,
        clients: Vec<Client>,
        scopes: Vec<Scope>,
        roles: Vec<Role>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_ring: Option<KeyRing>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected_updated_at: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Removes a tenant and all of its control-plane files (also a degraded one).
    DeleteTenant {
        slug: String,
    },
    /// Adds a client; refused when the tenant already has one with its id, so of
    /// concurrent creates of one id exactly one succeeds.
    CreateClient {
        slug: String,
        client: Client,
    },
    /// Replaces an existing client; refused when it does not exist (a write racing a
    /// delete must not bring the client back), and, when `expected_updated_at` is given,
    /// when the stored client's `updated_at` differs (another change got there first: a
    /// read-modify-write such as a merge patch or a secret rotation must not undo it).
    PutClient {
        slug: String,
        client: Client,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected_updated_at: Option<chrono::DateTime<chrono::Utc>>,
    },
    DeleteClient {
        slug: String,
        client_id: String,
    },
    PutScope {
        slug: String,
        scope: Scope,
    },
    DeleteScope {
        slug: String,
        name: String,
    },
    PutRole {
        slug: String,
        role: Role,
    },
    DeleteRole {
        slug: String,
        name: String,
    },
    /// Replaces a key ring: a tenant's (`slug`) or the system issuer's (`slug: None`).
    /// Used to reseal and to install the system ring once. With `expected` (the ring as the
    /// writer read it) it is a compare-and-set: refused when the ring changed meanwhile, so
    /// a re-seal never undoes a rotation accepted between its read and its write.
    PutKeyRing {
        slug: Option<String>,
        ring: KeyRing,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected: Option<KeyRing>,
    },
    /// Adds new active keys (made by the accepting node) to a ring; the active keys they
    /// replace turn retiring and stay published until `retire_after`.
    RotateKeys {
        slug: Option<String>,
        keys: Vec<SigningKey>,
        retire_after: chrono::DateTime<chrono::Utc>,
    },
    /// Removes retiring keys from a ring (their grace period is over, or an operator
    /// withdraws a key early).
    RetireKeys {
        slug: Option<String>,
        kids: Vec<String>,
    },
    /// Replaces the installation-wide secrets (made once; resealed later).
    PutSystemSecrets {
        secrets: SystemSecrets,
    },
    /// Creates or replaces an admin; refused when another admin has its email. The
    /// stored `last_totp_step` never moves back.
    PutAdmin {
        admin: Admin,
    },
    /// Removes an admin and its sessions.
    DeleteAdmin {
        id: Uuid,
    },
    /// Spends a TOTP time step of an admin: refused unless later than the last one spent.
    UseAdminTotpStep {
        id: Uuid,
        step: i64,
    },
    /// Starts (`expected_digest` absent; refused when the id exists) or rotates an admin
    /// session (refused unless the stored refresh digest is `expected_digest`). Sessions
    /// that ended before `session.refreshed_at` are dropped.
    PutAdminSession {
        session: AdminSession,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected_digest: Option<String>,
    },
    /// Ends one admin session, or all of an admin's (`admin_id`).
    EndAdminSessions {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_id: Option<Uuid>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        admin_id: Option<Uuid>,
    },
    /// A new API key; refused when the id exists.
    CreateApiKey {
        key: ApiKey,
    },
    /// Revokes a key for good (a revoked key stays listed; revoking twice keeps the first time).
    RevokeApiKey {
        id: Uuid,
        at: DateTime<Utc>,
    },
    /// Records a key's use (only moves `last_used_at` forward).
    TouchApiKey {
        id: Uuid,
        at: DateTime<Utc>,
    },
}

impl Command {
    /// The tenant this command touches, if any (used for logs and cache invalidation).
    pub fn tenant_slug(&self) -> Option<&str> {
        match self {
            Command::CreateTenant { tenant, .. }
            | Command::UpdateTenant { tenant, .. }
            | Command::ImportTenant { tenant, .. } => Some(&tenant.slug),
            Command::DeleteTenant { slug }
            | Command::CreateClient { slug, .. }
            | Command::PutClient { slug, .. }
            | Command::DeleteClient { slug, .. }
            | Command::PutScope { slug, .. }
            | Command::DeleteScope { slug, .. }
            | Command::PutRole { slug, .. }
            | Command::DeleteRole { slug, .. } => Some(slug),
            Command::PutKeyRing { slug, .. } | Command::RotateKeys { slug, .. } | Command::RetireKeys { slug, .. } => {
                slug.as_deref()
            }
            Command::PutAdmin { .. }
            | Command::DeleteAdmin { .. }
            | Command::PutSystemSecrets { .. }
            | Command::CreateApiKey { .. }
            | Command::RevokeApiKey { .. }
            | Command::TouchApiKey { .. }
            | Command::UseAdminTotpStep { .. }
            | Command::PutAdminSession { .. }
            | Command::EndAdminSessions { .. } => None,
        }
    }

    /// A short, secret-free name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::CreateTenant { .. } => "create_tenant",
            Command::UpdateTenant { .. } => "update_tenant",
            Command::ImportTenant { .. } => "import_tenant",
            Command::DeleteTenant { .. } => "delete_tenant",
            Command::CreateClient { .. } => "create_client",
            Command::PutClient { .. } => "put_client",
            Command::DeleteClient { .. } => "delete_client",
            Command::PutScope { .. } => "put_scope",
            Command::DeleteScope { .. } => "delete_scope",
            Command::PutRole { .. } => "put_role",
            Command::DeleteRole { .. } => "delete_role",
            Command::PutKeyRing { .. } => "put_key_ring",
            Command::RotateKeys { .. } => "rotate_keys",
            Command::RetireKeys { .. } => "retire_keys",
            Command::PutSystemSecrets { .. } => "put_system_secrets",
            Command::PutAdmin { .. } => "put_admin",
            Command::DeleteAdmin { .. } => "delete_admin",
            Command::CreateApiKey { .. } => "create_api_key",
            Command::RevokeApiKey { .. } => "revoke_api_key",
            Command::TouchApiKey { .. } => "touch_api_key",
            Command::UseAdminTotpStep { .. } => "use_admin_totp_step",
            Command::PutAdminSession { .. } => "put_admin_session",
            Command::EndAdminSessions { .. } => "end_admin_sessions",
        }
    }
}
