//! Tenantry's control plane: the configuration every node serves from.
//!
//! The control plane is small, read-mostly and identical on every node: tenants and
//! their settings, clients, scopes, roles, admins and signing-key rings. It lives as files
//! under `FS_ROOT` ([`store`]), changes only through typed [`Command`]s applied by one
//! deterministic [`apply()`] function, and is read through immutable [`Snapshot`]s that a
//! write replaces as a whole. Operational data (users, sessions, tokens) is not here: it
//! belongs to the data plane, one database per tenant.

pub mod apply;
pub mod command;
pub mod model;
pub mod snapshot;
pub mod store;
pub mod validate;
pub mod writer;

pub use apply::{ApplyError, Rejection, apply};
pub use command::Command;
pub use snapshot::{DegradedTenant, Snapshot, TenantEntry};
pub use store::{FsStore, LoadError};
pub use validate::{FieldError, ValidationErrors};
pub use writer::{Change, ControlPlane, StandaloneWriter, Subscriber, WriteError, Writer};
