//! What the headless authentication API answers: tokens, a second-factor challenge, the
//! caller's profile and sessions, recovery codes; each with the schema the API description
//! publishes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tenantry_accounts::mfa::Enrolment;
use tenantry_dataplane::model::User;
use utoipa::ToSchema;

use crate::error::ApiError;

/// A user's tokens (the token endpoint's response, RFC 6749 5.1).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Tokens {
    pub access_token: String,
    /// `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The scope granted, space-separated.
    pub scope: String,
    /// When `openid` was granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// When the client may refresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

impl Tokens {
    /// The tokens of a token response body (`tenantry_oidc::grants`).
    pub(super) fn from_body(body: Value) -> Result<Self, ApiError> {
        serde_json::from_value(body).map_err(|_| ApiError::internal())
    }
}

/// A login that needs a second factor: `POST /v1/auth/mfa` completes it with the
/// `mfa_token`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaRequired {
    /// Always `true`.
    pub mfa_required: bool,
    pub mfa_token: String,
    /// Seconds the `mfa_token` is valid.
    pub expires_in: u64,
    /// The second factors the user can give: `totp` (a code of the authenticator app or
    /// a recovery code, `POST /v1/auth/mfa`), `passkey` (`POST /v1/auth/mfa/passkey`).
    pub methods: Vec<SecondFactorMethod>,
    /// When the tenant requires a second factor the user lacks: the authenticator to set
    /// up now; its first code completes the login.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enrolment: Option<Enrolment>,
}

/// A second factor a login may be completed with.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecondFactorMethod {
    Totp,
    Passkey,
}

/// The answer of a login: tokens, or a second-factor challenge.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum LoginAnswer {
    Tokens(Tokens),
    MfaRequired(MfaRequired),
}

/// The tokens of a login completed with a second factor.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaAnswer {
    #[serde(flatten)]
    pub tokens: Tokens,
    /// After an enrolment: the recovery codes, shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_codes: Option<Vec<String>>,
    /// With `remember_device` (when the tenant offers it): a token that skips the second
    /// factor on later logins (`device_token` of `POST /v1/auth/login`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
}

/// A new account, and its tokens when the tenant logs new users in at once.
#[derive(Debug, Serialize, ToSchema)]
pub struct Registered {
    pub user: User,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Tokens>,
}

/// The caller's profile.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeView {
    #[serde(flatten)]
    pub user: User,
    /// A confirmed TOTP authenticator.
    pub mfa_enabled: bool,
}

/// `accepted`.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MailStatus {
    Accepted,
}

/// The same answer whether or not the address belongs to an account.
#[derive(Debug, Serialize, ToSchema)]
pub struct MailAccepted {
    pub status: MailStatus,
    pub detail: String,
}

/// The address is verified.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmailVerified {
    pub email_verified: bool,
}

/// One of the caller's live login sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionInfo {
    /// The session's `sid`.
    pub id: String,
    /// The session of the access token that asked.
    pub current: bool,
    pub auth_time: DateTime<Utc>,
    /// The authentication methods (`pwd`, `otp`, ...).
    pub amr: Vec<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// The caller's live sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionInfo>,
}

/// The upstream identities linked to the caller's account.
#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityList {
    pub identities: Vec<tenantry_dataplane::model::ExternalIdentity>,
}

/// Recovery codes, shown this once; each stands in for a TOTP code once.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}
