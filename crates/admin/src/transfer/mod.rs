//! Tenant export and import: a versioned JSON document of a tenant's settings, clients,
//! scopes, roles and users (with their custom fields and role assignments), streamed both
//! ways so memory stays flat for any number of users.
//!
//! Credentials (password hashes, TOTP secrets, settings secrets) travel only when asked
//! for, and then sealed for the importing installation's transfer key
//! (`tenantry_crypto::transfer`), never in plaintext. Client secrets never travel: their
//! digests are keyed by the installation that made them, so an import makes new ones.
//!
//! * [`document`] — the format, its streaming reader, and what marks the values that
//!   differ between two exports of the same tenant.
//! * [`export`] — writing a tenant's document.
//! * [`import`] — reading one into a new or existing tenant (create, merge or replace,
//!   with a dry run), all or nothing.

pub mod document;
pub mod export;
pub mod import;

pub use document::{ChunkReader, FORMAT, Item, VERSION, parse};
pub use export::{Export, ExportOptions};
pub use import::{ImportEnv, ImportOptions, ImportReport, Mode, NewTenant};
