//! The server's integration tests, one binary (linked once): each module is one suite that
//! starts the real server in-process on an ephemeral port with a temporary FS_ROOT and
//! drives it over HTTP; `common` holds the shared helpers. One suite:
//! `cargo test -p tenantry-server --test it oidc_flow::`.
//!
//! All suites share this process, so no test may assume a fresh one: the log subscriber is
//! installed once by `common` (before any server's own), and what a server sets up
//! process-wide (the metrics recorder, the raised descriptor limit) is idempotent.

mod common;

mod account_email;
mod account_page;
mod admin_access;
mod admin_sessions;
mod admin_settings;
mod admin_signin;
mod admin_users;
mod auth_api;
mod client_ip;
mod email;
mod faults;
mod federation;
mod federation_presets;
#[path = "../../examples/support/standin.rs"]
mod federation_standin;
mod hardening;
mod housekeeping;
mod keys;
mod login_limits;
mod mfa;
mod oauth;
mod oidc_flow;
mod openapi;
mod passkeys;
mod quotas;
mod roles;
mod signup;
mod tenant_db;
mod transfer;
