//! HTTP handlers, one module per surface. Route modules never import each other: what
//! two surfaces share lives in `web` (HTTP rules) or in a service module; the only
//! cross-module use is merging routers (`api`, `admin`, and `app` for the whole tree).

pub mod account;
pub mod account_pages;
pub mod admin;
pub mod admin_admins;
pub mod admin_api_keys;
pub mod admin_auth;
pub mod admin_clients;
pub mod admin_email;
pub mod admin_keys;
pub mod admin_providers;
pub mod admin_roles;
pub mod admin_scopes;
pub mod admin_sessions;
pub mod admin_transfer;
pub mod admin_users;
pub mod api;
pub mod auth_api;
pub mod authorize;
pub mod discovery;
pub mod issuer;
pub mod logout;
pub mod oauth;
pub mod ops;
