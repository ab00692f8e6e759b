//! The data plane's integration tests, one binary (linked once): each module is one suite
//! run on SQLite and, when configured, on real PostgreSQL and MariaDB servers (see
//! `common`). One suite: `cargo test -p tenantry-dataplane --test it repositories::`.

#[macro_use]
mod common;

mod custom_fields;
mod global;
mod housekeeping;
mod manager;
mod passkeys;
mod repositories;
mod security_events;
mod transfer;
mod user_search;
