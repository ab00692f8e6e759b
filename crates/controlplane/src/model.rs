//! The control-plane model: what a tenant, its settings, clients, scopes, roles, admins
//! and signing-key ring slot look like on disk and in memory.
//!
//! Every type here is plain serde data. Secrets are held only as sealed envelopes
//! ([`SealedSecret`]); sealing and opening happen in the layer that owns the master key.
//! Validation lives in [`crate::validate`] and runs on every write.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

mod providers;
mod quotas;

pub use providers::{MAPPABLE_PROFILE_FIELDS, SocialProvider, SocialProviderKind, UpstreamClientAuth};
pub use quotas::{ClientQuotas, Quotas, TenantQuotas};

/// A secret sealed by the secretbox (`tsb1.<kid>.<payload>`). Never plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SealedSecret(pub String);

/// In the admin API a secret is written as plaintext (sealed on arrival) and read back as
/// `{"set": true}`: never the value, sealed or not.
impl utoipa::PartialSchema for SealedSecret {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        let written = ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("The secret, in plaintext; it is sealed on arrival"));
        let read = ObjectBuilder::new()
            .property("set", ObjectBuilder::new().schema_type(Type::Boolean))
            .required("set")
            .description(Some("A secret is set; its value is never shown"));
        OneOfBuilder::new().item(written).item(read).into()
    }
}

impl utoipa::ToSchema for SealedSecret {}

/// A tenant: one issuer, one database, one set of settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    pub id: Uuid,
    pub slug: String,
    pub display_name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub settings: TenantSettings,
}

/// Everything a tenant administrator can configure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TenantSettings {
    pub issuer: IssuerMode,
    pub branding: Branding,
    pub language: Language,
    pub token_lifetimes: TokenLifetimes,
    pub security: SecurityPolicy,
    pub signing: SigningSettings,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp: Option<SmtpSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_db: Option<UserDbSettings>,
    /// Mail template overrides by language, then by template name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub mail_templates: BTreeMap<Language, BTreeMap<MailTemplateKind, MailTemplate>>,
    pub consent: ConsentPolicy,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub social_providers: Vec<SocialProvider>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub custom_fields: Vec<CustomField>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cors_allowed_origins: Vec<String>,
    /// Request quotas of the protocol endpoints and APIs (none by default).
    #[serde(skip_serializing_if = "Quotas::is_default")]
    pub quotas: Quotas,
}

impl TenantSettings {
    /// What a tenant created now starts from (the API, `init`, `serve --dev`): the
    /// defaults, with the embedded SQLite user database. Settings given at creation are
    /// merged onto this (`"user_db": null` asks for no database).
    pub fn for_new_tenant() -> Self {
        Self {
            user_db: Some(UserDbSettings {
                driver: DbDriver::Sqlite,
                dsn: None,
            }),
            ..Self::default()
        }
    }
}

/// How the tenant's issuer URL is formed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum IssuerMode {
    /// `{public_url}/t/{slug}`.
    #[default]
    Path,
    /// A full issuer URL served on its own host.
    Custom { url: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Branding {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logo_url: Option<String>,
    /// `#rrggbb`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_color: Option<String>,
    /// `#rrggbb`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub background_color: Option<String>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    En,
    Es,
}

impl Language {
    /// The language code (`en`, `es`): as in settings, `ui_locales` and `<html lang>`.
    pub fn as_str(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Es => "es",
        }
    }
}

/// Lifetimes in seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TokenLifetimes {
    pub session_secs: u64,
    pub access_token_secs: u64,
    pub id_token_secs: u64,
    pub refresh_token_secs: u64,
}

impl Default for TokenLifetimes {
    fn default() -> Self {
        Self {
            session_secs: 8 * 3600,
            access_token_secs: 900,
            id_token_secs: 3600,
            refresh_token_secs: 30 * 24 * 3600,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityPolicy {
    pub password_min_length: u32,
    pub password_require_lowercase: bool,
    pub password_require_uppercase: bool,
    pub password_require_digit: bool,
    pub password_require_symbol: bool,
    pub max_login_attempts: u32,
    pub lockout_duration_secs: u64,
    /// Password attempts one IP address may make per minute (0: no per-address limit).
    pub login_attempts_per_ip_per_minute: u32,
    pub mfa_required: bool,
    /// New passwords are checked against the installation's deny-list file
    /// (`password_deny_list_file`); a tenant asking for it where none is configured cannot
    /// take new passwords (503 `password_deny_list_missing`).
    pub password_deny_list: bool,
    /// Login waits until the user has verified their email address.
    pub require_verified_email: bool,
    /// Anyone may create an account with `POST /v1/auth/register`.
    pub registration_enabled: bool,
    /// A registration answers tokens at once (unless the email must be verified first).
    pub registration_auto_login: bool,
    /// Days a device stays trusted after a second factor when the user asks to be
    /// remembered there (0: never offered).
    pub mfa_remember_device_days: u32,
    /// Argon2id cost of new password hashes. Older settings files have no such key and get
    /// the default; stored hashes made with other costs still verify and are upgraded at the
    /// next successful login.
    #[serde(default)]
    pub password_hash: PasswordHashParams,
    /// Confidential clients must use PKCE (S256) too, as OAuth 2.1 asks; public clients
    /// always must. On for tenants created now; a settings file written before the
    /// setting existed has no such key and keeps the old rule (off).
    #[serde(default)]
    pub require_pkce_for_confidential_clients: bool,
    /// Days the tenant's security events are kept (then purged).
    #[serde(default = "default_audit_retention_days")]
    pub audit_retention_days: u32,
    /// The authenticator models (AAGUIDs, lowercase UUIDs) whose new passkeys are
    /// accepted; empty: any. With a list, registrations ask for `direct` attestation so the
    /// browser passes the model on. The AAGUID is what the authenticator states: a
    /// statement with a certificate is checked for consistency, but no vendor root is
    /// configured, so the list keeps honest authenticators of other models out — it is
    /// not proof against a forged one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passkey_aaguids: Vec<String>,
}

fn default_audit_retention_days() -> u32 {
    90
}

impl Default for SecurityPolicy {
    fn default() -> Self {
        Self {
            password_min_length: 10,
            password_require_lowercase: false,
            password_require_uppercase: false,
            password_require_digit: false,
            password_require_symbol: false,
            max_login_attempts: 5,
            lockout_duration_secs: 900,
            login_attempts_per_ip_per_minute: 30,
            mfa_required: false,
            password_deny_list: false,
            require_verified_email: false,
            registration_enabled: false,
            registration_auto_login: false,
            mfa_remember_device_days: 0,
            password_hash: PasswordHashParams::default(),
            require_pkce_for_confidential_clients: true,
            audit_retention_days: default_audit_retention_days(),
            passkey_aaguids: Vec::new(),
        }
    }
}

/// Argon2id cost parameters for a tenant's password hashes.
///
/// The default is OWASP's recommendation (19 MiB, 2 passes, 1 lane). Tenants migrated from
/// elsewhere can match their old cost (Keycloak uses 7 MiB and 5 passes) so a login costs
/// the same as before. Bounds are checked in [`crate::validate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordHashParams {
    /// Memory per hash in KiB (`m`).
    pub memory_kib: u32,
    /// Passes over the memory (`t`).
    pub iterations: u32,
    /// Lanes (`p`).
    pub parallelism: u32,
}

impl Default for PasswordHashParams {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    #[serde(default)]
    pub tls: SmtpTls,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SealedSecret>,
    pub from_address: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    None,
    #[default]
    Starttls,
    Tls,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserDbSettings {
    pub driver: DbDriver,
    /// Required for `postgres` and `mysql`; absent for `sqlite` (a file in the tenant folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dsn: Option<SealedSecret>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DbDriver {
    Sqlite,
    Postgres,
    Mysql,
}

impl DbDriver {
    /// A database that lives on one node's disk, which the members of a cluster do not share.
    pub fn is_node_local(self) -> bool {
        matches!(self, DbDriver::Sqlite)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MailTemplateKind {
    VerifyEmail,
    ResetPassword,
    PasswordChanged,
    AccountLocked,
    /// The message `POST /v1/admin/tenants/{slug}/email/test` sends.
    Test,
}

impl MailTemplateKind {
    /// The stable name of a template kind (as in settings and logs).
    pub fn as_str(self) -> &'static str {
        match self {
            MailTemplateKind::VerifyEmail => "verify_email",
            MailTemplateKind::ResetPassword => "reset_password",
            MailTemplateKind::PasswordChanged => "password_changed",
            MailTemplateKind::AccountLocked => "account_locked",
            MailTemplateKind::Test => "test",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MailTemplate {
    pub subject: String,
    pub html: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ConsentPolicy {
    /// Ask for consent at all (first-party clients are always skipped).
    pub required: bool,
    /// How long a granted consent is remembered; 0 = until revoked.
    pub remember_secs: u64,
}

impl Default for ConsentPolicy {
    fn default() -> Self {
        Self {
            required: true,
            remember_secs: 0,
        }
    }
}

/// A tenant-declared user attribute, stored as a real column of the users table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomField {
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: CustomFieldType,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub unique: bool,
    #[serde(default)]
    pub indexed: bool,
    /// The scope that releases this field as a claim, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CustomFieldType {
    Text,
    Integer,
    Boolean,
    Date,
    Timestamp,
}

/// The client id of every tenant's built-in account page (`{issuer}/account`), which
/// signs its users in through the tenant's own code flow like any first-party app. No
/// registered client may take this id.
pub const ACCOUNT_CLIENT_ID: &str = "tenantry-account";

/// An OAuth client registered with a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Client {
    pub client_id: String,
    pub name: String,
    pub client_type: ClientType,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<String>,
    pub grant_types: Vec<GrantType>,
    pub scopes: Vec<String>,
    pub token_endpoint_auth_method: TokenEndpointAuthMethod,
    /// Keyed digest of the client secret (confidential clients), as made by
    /// `keyed_digest` with the installation's client-secret key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_hash: Option<String>,
    /// The secret a rotation replaced, still accepted until its `expires_at` (the overlap
    /// window, so a deployment can switch to the new secret without an outage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret: Option<PreviousSecret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_secs: Option<u64>,
    /// The client's public keys (a JWK Set) for `private_key_jwt` (RFC 7523).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    /// OIDC Back-Channel Logout: where logout tokens are POSTed when a session of this
    /// client ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
    /// Where the verification links of this first-party client's users point instead of
    /// the hosted page, when a headless call names the client (`{url}?token=…`): the app
    /// confirms the token through the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_email_url: Option<String>,
    /// As `verify_email_url`, for password-reset links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_password_url: Option<String>,
    /// Overrides the tenant's ID-token algorithm for this client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_signed_response_alg: Option<SigningAlg>,
    /// Overrides the tenant's access-token algorithm for this client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_signed_response_alg: Option<SigningAlg>,
    #[serde(default)]
    pub first_party: bool,
    /// This client's own limits, each replacing the tenant's `quotas.per_client` one.
    #[serde(default, skip_serializing_if = "ClientQuotas::is_unlimited")]
    pub quotas: ClientQuotas,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClientType {
    Public,
    Confidential,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenEndpointAuthMethod {
    None,
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
}

/// A replaced client secret (its keyed digest) and when it stops being accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviousSecret {
    pub hash: String,
    pub expires_at: DateTime<Utc>,
}

/// A tenant-defined scope and the claims it releases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub claims: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Role {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub permissions: Vec<String>,
}

/// An installation administrator. It signs in with its email, a password (Argon2id PHC
/// string) and a TOTP code, and gets short-lived admin access tokens; the development
/// bootstrap admin instead holds a bearer token stored hashed (`token_hash`). Its
/// `reach` and `access` bound what it may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    pub id: Uuid,
    pub name: String,
    /// The sign-in identifier, lowercase; unique among admins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// A one-time password (from `tenantry init` or an admin who set it): the first
    /// sign-in must choose a new one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub password_temporary: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp: Option<AdminTotp>,
    /// The last TOTP time step used to sign in: a code is accepted once, and never one
    /// from an earlier step. Only moves forward.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_totp_step: Option<i64>,
    #[serde(default)]
    pub reach: AdminReach,
    #[serde(default)]
    pub access: AdminAccess,
    pub created_at: DateTime<Utc>,
}

impl Admin {
    /// A global read-write admin with no credential yet.
    pub fn new(id: Uuid, name: String, created_at: DateTime<Utc>) -> Self {
        Self {
            id,
            name,
            email: None,
            token_hash: None,
            password_hash: None,
            password_temporary: false,
            totp: None,
            last_totp_step: None,
            reach: AdminReach::Global,
            access: AdminAccess::ReadWrite,
            created_at,
        }
    }
}

/// An admin's TOTP secret (base32), sealed for (`system`, `admin.<id>.totp`); unconfirmed
/// until the first sign-in with a code from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminTotp {
    pub secret: SealedSecret,
    pub confirmed: bool,
}

/// A signed-in admin: the refresh token's digest (current, and the one it replaced, to
/// recognise a replay), and an absolute end. Admin access tokens name it (`sid`), so
/// ending the session ends them too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSession {
    pub id: Uuid,
    pub admin_id: Uuid,
    pub refresh_digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_digest: Option<String>,
    pub created_at: DateTime<Utc>,
    pub refreshed_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Where an admin or an API key may act: the whole installation, or the listed tenants
/// only (`"global"` or `{"tenants": ["acme"]}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AdminReach {
    #[default]
    Global,
    Tenants(Vec<String>),
}

impl AdminReach {
    pub fn is_global(&self) -> bool {
        matches!(self, AdminReach::Global)
    }

    /// Whether the tenant `slug` is within reach.
    pub fn covers(&self, slug: &str) -> bool {
        match self {
            AdminReach::Global => true,
            AdminReach::Tenants(slugs) => slugs.iter().any(|s| s == slug),
        }
    }

    /// Whether everything `other` reaches is within this reach too (what an identity may
    /// hand on to a key it makes).
    pub fn includes(&self, other: &AdminReach) -> bool {
        match other {
            AdminReach::Global => self.is_global(),
            AdminReach::Tenants(slugs) => slugs.iter().all(|s| self.covers(s)),
        }
    }
}

/// Whether an admin or an API key may change things or only read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AdminAccess {
    ReadOnly,
    #[default]
    ReadWrite,
}

/// A key for automation: a bearer secret (`tnk_<id>_<secret>`, shown once) whose secret
/// part is stored only as a keyed digest. Scoped like an admin; revoked keys stay listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    /// Keyed digest of the secret part, under the installation's client-secret key.
    pub secret_digest: String,
    pub reach: AdminReach,
    pub access: AdminAccess,
    /// The admin or API key that made it.
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
    /// Coarse (a few minutes): recorded at most once per `ApiKey::TOUCH_INTERVAL_SECS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    /// How stale `last_used_at` may be before a use records it again.
    pub const TOUCH_INTERVAL_SECS: i64 = 300;

    /// Usable at `now`: neither revoked nor expired.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }
}

/// Installation-wide secrets that are not signing keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SystemSecrets {
    /// 32 random bytes (base64) keying the digests of client secrets, sealed for
    /// (`system`, `client_secret_key`). Made once at installation; resealed, never changed,
    /// so a master-key rotation leaves every client secret valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_key: Option<SealedSecret>,
}

/// A JWS algorithm an issuer signs with. RS256 is always available (OIDC requires it);
/// ES256 (P-256) and EdDSA (Ed25519) are faster and smaller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum SigningAlg {
    #[serde(rename = "RS256")]
    Rs256,
    #[serde(rename = "ES256")]
    Es256,
    #[serde(rename = "EdDSA")]
    EdDsa,
}

impl SigningAlg {
    /// Every algorithm a key ring holds one active key for.
    pub const ALL: [SigningAlg; 3] = [SigningAlg::Rs256, SigningAlg::Es256, SigningAlg::EdDsa];

    /// The JOSE name (`alg` header value).
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::Rs256 => "RS256",
            SigningAlg::Es256 => "ES256",
            SigningAlg::EdDsa => "EdDSA",
        }
    }
}

impl std::fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which keys sign a tenant's tokens and how often they rotate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SigningSettings {
    /// Algorithm of ID tokens (and logout tokens); a client may override it.
    pub id_token_alg: SigningAlg,
    /// Algorithm of JWT access tokens; a client may override it.
    pub access_token_alg: SigningAlg,
    /// Automatic rotation period in days; 0 turns automatic rotation off.
    pub rotation_days: u32,
}

impl Default for SigningSettings {
    fn default() -> Self {
        Self {
            id_token_alg: SigningAlg::Rs256,
            access_token_alg: SigningAlg::Rs256,
            rotation_days: 90,
        }
    }
}

/// A tenant's (or the system issuer's) signing keys: one active key per algorithm, plus
/// retiring keys that stay published until their grace period ends.
///
/// Keys are only ever made by control-plane commands (create tenant, rotate), never on a
/// read path, so every node publishes the same JWKS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct KeyRing {
    pub keys: Vec<SigningKey>,
}

/// Why a key-ring change cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRingError {
    #[error("key `{0}` does not exist")]
    UnknownKey(String),
    #[error("key `{0}` is active: rotate its algorithm before retiring it")]
    KeyActive(String),
    #[error("key `{0}` is already in the ring")]
    DuplicateKid(String),
    #[error("a rotation must bring at most one new active key per algorithm ({0} twice)")]
    DuplicateAlg(SigningAlg),
    #[error("new key `{0}` must be active")]
    NotActive(String),
    #[error("a rotation needs at least one new key")]
    Empty,
}

impl KeyRing {
    /// The newest active key for `alg`.
    pub fn active(&self, alg: SigningAlg) -> Option<&SigningKey> {
        self.keys
            .iter()
            .filter(|k| k.alg == alg && k.state == KeyState::Active)
            .max_by_key(|k| k.created_at)
    }

    /// Whether at least one key can sign.
    pub fn can_sign(&self) -> bool {
        self.keys.iter().any(|k| k.state == KeyState::Active)
    }

    /// The algorithms this ring has an active key for.
    pub fn algorithms(&self) -> Vec<SigningAlg> {
        SigningAlg::ALL
            .into_iter()
            .filter(|alg| self.active(*alg).is_some())
            .collect()
    }

    /// The ring after a rotation: `new_keys` become the active keys of their algorithms and
    /// the keys they replace turn retiring, to be removed after `retire_after`.
    pub fn rotated(&self, new_keys: &[SigningKey], retire_after: DateTime<Utc>) -> Result<KeyRing, KeyRingError> {
        if new_keys.is_empty() {
            return Err(KeyRingError::Empty);
        }
        let mut algs = Vec::new();
        for key in new_keys {
            if key.state != KeyState::Active {
                return Err(KeyRingError::NotActive(key.kid.clone()));
            }
            if algs.contains(&key.alg) {
                return Err(KeyRingError::DuplicateAlg(key.alg));
            }
            if self.keys.iter().any(|k| k.kid == key.kid) {
                return Err(KeyRingError::DuplicateKid(key.kid.clone()));
            }
            algs.push(key.alg);
        }
        let mut next = self.clone();
        for key in &mut next.keys {
            if key.state == KeyState::Active && algs.contains(&key.alg) {
                key.state = KeyState::Retiring;
                key.retire_after = Some(retire_after);
            }
        }
        next.keys.extend(new_keys.iter().cloned());
        Ok(next)
    }

    /// The ring without the retiring keys `kids` (an active key cannot be retired).
    pub fn retired(&self, kids: &[String]) -> Result<KeyRing, KeyRingError> {
        for kid in kids {
            match self.keys.iter().find(|k| &k.kid == kid) {
                None => return Err(KeyRingError::UnknownKey(kid.clone())),
                Some(k) if k.state == KeyState::Active => return Err(KeyRingError::KeyActive(kid.clone())),
                Some(_) => {}
            }
        }
        Ok(KeyRing {
            keys: self.keys.iter().filter(|k| !kids.contains(&k.kid)).cloned().collect(),
        })
    }

    /// Retiring keys whose grace period has ended at `now`.
    pub fn expired(&self, now: DateTime<Utc>) -> Vec<String> {
        self.keys
            .iter()
            .filter(|k| k.state == KeyState::Retiring && k.retire_after.is_none_or(|t| t <= now))
            .map(|k| k.kid.clone())
            .collect()
    }

    /// Algorithms whose active key is at least `period` old at `now`.
    pub fn due_for_rotation(&self, now: DateTime<Utc>, period: chrono::Duration) -> Vec<SigningAlg> {
        SigningAlg::ALL
            .into_iter()
            .filter(|alg| self.active(*alg).is_some_and(|k| k.created_at + period <= now))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKey {
    /// The RFC 7638 JWK thumbprint of the public key.
    pub kid: String,
    pub alg: SigningAlg,
    pub state: KeyState,
    /// Public key as a JWK (JSON object serialized to a string to keep it opaque here).
    pub public_jwk: String,
    /// Private key (PKCS#8), sealed for (owner, `keys.<kid>`).
    pub private_key: SealedSecret,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire_after: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    Active,
    Retiring,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_serde_names() {
        for lang in [Language::En, Language::Es] {
            assert_eq!(serde_json::to_value(lang).unwrap(), lang.as_str());
        }
        for kind in [
            MailTemplateKind::VerifyEmail,
            MailTemplateKind::ResetPassword,
            MailTemplateKind::PasswordChanged,
            MailTemplateKind::AccountLocked,
            MailTemplateKind::Test,
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
    }
}
