//! Data-plane records as the domain code sees them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    Active,
    Disabled,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Self {
        if s == "disabled" {
            UserStatus::Disabled
        } else {
            UserStatus::Active
        }
    }
}

/// A user of one tenant.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub email_verified: bool,
    pub username: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub name: Option<String>,
    pub picture: Option<String>,
    pub locale: Option<String>,
    pub phone_number: Option<String>,
    pub phone_number_verified: bool,
    pub status: UserStatus,
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    pub disabled_until: Option<DateTime<Utc>>,
    pub metadata: Value,
    /// Values of the tenant's active custom fields, by field name.
    pub custom: BTreeMap<String, Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What is needed to create a user.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NewUser {
    pub email: String,
    #[serde(default)]
    pub email_verified: bool,
    pub username: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub name: Option<String>,
    pub picture: Option<String>,
    pub locale: Option<String>,
    pub phone_number: Option<String>,
    #[serde(default)]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub custom: BTreeMap<String, Value>,
}

/// Profile changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct ProfileUpdate {
    pub email: Option<String>,
    pub email_verified: Option<bool>,
    pub username: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub name: Option<String>,
    pub picture: Option<String>,
    pub locale: Option<String>,
    pub phone_number: Option<String>,
    pub phone_number_verified: Option<bool>,
    pub metadata: Option<Value>,
}

/// An account's identity at an upstream identity provider (federation).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ExternalIdentity {
    pub id: Uuid,
    pub user_id: Uuid,
    /// The provider's id in the tenant's settings.
    pub provider: String,
    /// The user's `sub` at the provider.
    pub subject: String,
    /// The email the provider gave when the identity was linked.
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Session {
    /// Hash of the session id (the id itself lives only in the cookie).
    pub id_hash: String,
    pub user_id: Uuid,
    pub auth_time: DateTime<Utc>,
    pub amr: Vec<String>,
    pub acr: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuthorizationCode {
    pub code_hash: String,
    pub client_id: String,
    pub user_id: Uuid,
    pub session_id_hash: Option<String>,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub auth_time: DateTime<Utc>,
    pub acr: Option<String>,
    pub amr: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

/// Result of redeeming an authorization code.
#[derive(Debug, Clone, PartialEq)]
pub enum CodeRedemption {
    /// First use: the code is now spent.
    Redeemed(AuthorizationCode),
    /// The code was already used: the caller must revoke what it issued.
    Replayed(AuthorizationCode),
    Expired,
    NotFound,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RefreshToken {
    pub token_hash: String,
    pub family_id: Uuid,
    pub parent_hash: Option<String>,
    pub client_id: String,
    pub user_id: Uuid,
    pub session_id_hash: Option<String>,
    pub origin_code_hash: Option<String>,
    pub scope: String,
    /// When the login the family started from happened (absent for tokens issued before
    /// this was recorded).
    pub auth_time: Option<DateTime<Utc>>,
    /// How that login authenticated the user (`pwd`, `otp`, ...).
    pub amr: Vec<String>,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub rotated_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoke_reason: Option<String>,
}

/// Result of rotating a refresh token.
#[derive(Debug, Clone, PartialEq)]
pub enum Rotation {
    /// The old token is spent; the new one was stored in the same atomic step.
    Rotated {
        old: Box<RefreshToken>,
        new: Box<RefreshToken>,
        /// The token's user, as read with the token (active or not: the caller decides).
        user: Box<User>,
    },
    /// The token was already rotated: reuse detected, the whole family is now revoked.
    ReuseDetected {
        family_id: Uuid,
        revoked: u64,
    },
    /// The token belongs to another client; nothing changed.
    WrongClient,
    /// The request asked for a scope the token was not granted; nothing changed.
    ScopeWidened,
    Revoked,
    Expired,
    NotFound,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Consent {
    pub user_id: Uuid,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub granted_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TotpCredential {
    pub user_id: Uuid,
    pub secret_sealed: String,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub last_used_step: Option<i64>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrustedDevice {
    pub token_hash: String,
    pub user_id: Uuid,
    pub user_agent: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailTokenPurpose {
    VerifyEmail,
    ResetPassword,
    /// A new address for an account: the token's `email` is the address to change to.
    ChangeEmail,
}

impl EmailTokenPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            EmailTokenPurpose::VerifyEmail => "verify_email",
            EmailTokenPurpose::ResetPassword => "reset_password",
            EmailTokenPurpose::ChangeEmail => "change_email",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmailToken {
    pub token_hash: String,
    pub user_id: Uuid,
    pub purpose: String,
    pub email: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}
