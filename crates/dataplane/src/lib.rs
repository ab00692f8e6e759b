//! Tenantry's data plane: every tenant's operational data in its own database.
//!
//! * [`db::TenantDb`] — a typed pool for SQLite, PostgreSQL or MySQL/MariaDB, with
//!   embedded per-dialect migrations applied under a lock.
//! * [`manager::TenantDbManager`] — opens pools lazily from tenant settings, bounds how
//!   many are open (LRU), reopens on settings changes and backs off after failures.
//! * Repositories — traits implemented by `TenantDb`, one per concern:
//!   [`UserRepository`], [`SessionRepository`], [`TokenRepository`],
//!   [`ConsentRepository`], [`MfaRepository`], [`EmailTokenRepository`],
//!   [`RoleRepository`], [`AuditRepository`] (the tenant's security events).
//! * [`custom_fields`] — tenant-declared user fields as real columns.
//! * [`housekeeping`] — batched, bounded removal of rows past their expiry.
//! * [`transfer`] — users in bulk for tenant export (pages) and import (one transaction).
//! * [`global::GlobalDb`] — the optional installation-wide database (the audit trail of
//!   admin actions); never a tenant's data.
//!
//! Tables no code reads or writes any more. Their migrations have run on real installs,
//! so they stay as they are (no migration is edited) and nothing drops the tables:
//! * `login_failures` (tenant schema 0001) — failed logins and lockouts are counted by
//!   the rate limiter of `tenantry-accounts` (`ratelimit`), in memory or Redis.
//! * `admin_sessions` (global schema 0001) — see [`global`].

pub mod audit;
pub mod custom_fields;
pub mod db;
pub mod global;
pub mod housekeeping;
pub mod manager;
pub mod mfa;
pub mod model;
pub mod passkeys;
pub mod roles;
pub mod sessions;
pub mod transfer;
pub mod users;

pub use audit::{AuditRepository, EventFilter, Outcome, SecurityEvent};
pub use custom_fields::CustomFieldSet;
pub use db::{DbError, Dialect, ErrorKind, Schema, SchemaStatus, TenantDb};
pub use global::{AuditFilter, GlobalDb};
pub use manager::{ManagerConfig, TenantDbManager};
pub use mfa::{EmailTokenRepository, MfaRepository};
pub use passkeys::{Passkey, PasskeyRepository, PasskeyUse, WebauthnChallenge};
pub use roles::RoleRepository;
pub use sessions::{ConsentRepository, NewRefreshToken, RotationRequest, SessionRepository, TokenRepository};
pub use users::{UserRepository, UserSearch};
