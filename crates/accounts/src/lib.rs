//! Tenantry's account logic, shared by both front doors (the hosted pages and the headless
//! API): the one password login with its lockout and the one second-factor step, whose
//! result is one [`login::Authentication`] ([`login`]), passwords and their policy ([`passwords`]: Argon2id under admission
//! control), attempt counters ([`ratelimit`]), the second factor itself ([`mfa`]: TOTP,
//! recovery codes, trusted devices), and the flows that go through the user's mailbox
//! ([`account_email`]: verification, password reset, notices), and what a user or an
//! administrator does to an account outside a login ([`account`]: registration, setting
//! and changing the password, re-authentication, TOTP enrolment and removal, sessions).
//! [`quotas`] counts requests against the tenant and client quotas on the same store.
//! [`events`] records the tenant's security events; [`housekeeping`] is the timer that
//! removes what expired.
//!
//! Functions take the narrow dependencies they use — one [`Accounts`] value, the tenant's
//! `TenantContext`, its `TenantDb` — and answer their own error enums or
//! `tenantry_errors::ApiError`. This crate never reads a request or writes a response
//! (no axum; the HTTP crate maps results to pages and problem+json), never writes to the
//! control plane, and never logs a password, token, code or email address.

pub mod account;
pub mod account_email;
pub mod events;
pub mod housekeeping;
pub mod login;
pub mod mfa;
pub mod passkeys;
pub mod passwords;
pub mod quotas;
pub mod ratelimit;

use std::sync::Arc;

use tenantry_crypto::SecretBox;
use tenantry_mail::Mailer;

use crate::passwords::{DenyList, PasswordHasher};
use crate::ratelimit::RateLimiter;

/// The services the account logic uses, built once at start-up and held by the server's
/// state. Cheap to clone (every field is shared).
#[derive(Clone)]
pub struct Accounts {
    /// Attempt counters for login, registration, reset, MFA and verification (in memory,
    /// or in Redis when `redis_url` is set).
    pub rate_limiter: RateLimiter,
    /// Admission-controlled Argon2id hashing: every password hash or verify on a request
    /// path goes through it, so a flood sheds load (503 `overloaded`) instead of queueing.
    pub hasher: PasswordHasher,
    /// Opens and seals TOTP secrets and SMTP passwords.
    pub secrets: Arc<SecretBox>,
    /// Per-tenant SMTP transports.
    pub mailer: Mailer,
    /// The installation's password deny-list (`password_deny_list_file`), if any.
    pub password_deny_list: Option<Arc<DenyList>>,
}
