//! Installation admins signing in: email, password and a TOTP code, against the
//! installation's own issuer (the `system` key ring), for short-lived admin access tokens
//! (audience `tenantry-admin`, `typ` `at+jwt`, checked by the one verifier) and a refresh
//! token that rotates on every use.
//!
//! Everything a sign-in changes is a control-plane command: the TOTP secret and its
//! confirmation, the time step a code spent (so a code works once, on every node), a new
//! password, the session. A session keeps the digest of its current refresh token and of
//! the one it replaced: the replaced one presented again is a replay (the token leaked),
//! and ends the session.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantry_accounts::Accounts;
use tenantry_accounts::ratelimit::{Decision, address_bucket};
use tenantry_controlplane::model::{Admin, AdminSession, AdminTotp, PasswordHashParams, SealedSecret};
use tenantry_controlplane::{Command, Rejection, Snapshot, WriteError, Writer};
use tenantry_crypto::{SealContext, SecretBox, constant_time_eq, hash_token, random_token};
use tenantry_errors::{ApiError, ErrorCode};
use tenantry_keys::IssuerKeys;
use tenantry_keys::{Expect, TokenType};
use uuid::Uuid;

/// The `aud` of every admin access token; nothing else accepts them.
pub const ADMIN_AUDIENCE: &str = "tenantry-admin";
/// Admin access tokens are short-lived: the refresh token carries the session.
pub const ACCESS_TOKEN_SECS: i64 = 300;
/// A session ends this long after sign-in, however often it is refreshed.
pub const SESSION_SECS: i64 = 12 * 3600;
/// `tnr_<session id>_<secret>`.
pub const REFRESH_TOKEN_PREFIX: &str = "tnr_";
/// The shortest password an admin may choose.
pub const MIN_PASSWORD_CHARS: usize = 12;
const MAX_PASSWORD_BYTES: usize = 1024;
const SIGN_INS_PER_ADDRESS: u32 = 20;
const FAILURES_BEFORE_LOCK: u32 = 5;
const LOCK_WINDOW: Duration = Duration::from_secs(15 * 60);
/// The admission key of admin password hashing (`PasswordHasher`).
const HASHING_OWNER: &str = "system";

/// `POST /v1/admin/auth/login`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    pub email: String,
    pub password: String,
    /// A TOTP code (of the confirmed secret, or of the one being enrolled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Required when the password is a one-time password; replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_password: Option<String>,
}

/// `POST /v1/admin/auth/totp`: the password proves the admin before a secret is shown.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpEnrolment {
    pub email: String,
    pub password: String,
}

/// The token response of a sign-in or refresh.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AdminTokens {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: i64,
    pub refresh_token: String,
    pub refresh_expires_in: i64,
}

/// The claims of an admin access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminTokenClaims {
    pub iss: String,
    pub sub: Uuid,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    /// The session; ending it ends the token.
    pub sid: Uuid,
}

/// What a sign-in, refresh or enrolment needs from the running node.
pub struct SignInEnv<'a> {
    pub snapshot: Arc<Snapshot>,
    pub writer: &'a dyn Writer,
    pub secrets: &'a SecretBox,
    pub accounts: &'a Accounts,
    /// The system issuer's opened ring, and its URL.
    pub keys: Arc<IssuerKeys>,
    pub issuer: &'a str,
    pub client_ip: Option<IpAddr>,
}

/// A refused attempt: the answer, and what the audit trail records (the admin, when the
/// email named one, and a short reason).
#[derive(Debug)]
pub struct Refused {
    pub error: ApiError,
    pub admin_id: Option<Uuid>,
    pub reason: &'static str,
}

impl Refused {
    fn new(error: ApiError, admin_id: Option<Uuid>, reason: &'static str) -> Self {
        Self {
            error,
            admin_id,
            reason,
        }
    }
}

impl From<ApiError> for Refused {
    fn from(error: ApiError) -> Self {
        Self::new(error, None, "unavailable")
    }
}

/// A sign-in that succeeded: the tokens, the admin, and what it changed on the way
/// (`password_changed`, `totp_confirmed`).
#[derive(Debug)]
pub struct SignedIn {
    pub tokens: AdminTokens,
    pub admin_id: Uuid,
    pub changed: Vec<&'static str>,
}

fn seal_context(admin: Uuid) -> (String, String) {
    ("system".to_owned(), format!("admin.{admin}.totp"))
}

fn invalid_credentials() -> ApiError {
    ApiError::new(ErrorCode::InvalidCredentials, "the email or password is not correct")
}

fn normalized(email: &str) -> String {
    email.trim().to_lowercase()
}

/// The failure counter of one admin email (wrong passwords and wrong codes alike): five
/// failures lock it for 15 minutes. Keyed by a digest, so a key's size does not depend on
/// what a caller sends.
fn lock_key(email: &str) -> String {
    format!("admin-login:email:{}", hash_token(&normalized(email)))
}

/// Finds the admin by email and checks the password (a dummy hash is checked for an
/// unknown email, so timing does not tell); counts failures per email and attempts per
/// address. Answers the admin on success.
async fn check_password(env: &SignInEnv<'_>, email: &str, password: &str) -> Result<Admin, Refused> {
    let limiter = &env.accounts.rate_limiter;
    if let Some(ip) = env.client_ip {
        let key = format!("admin-login:ip:{}", address_bucket(ip));
        limiter
            .hit(&key, SIGN_INS_PER_ADDRESS, Duration::from_secs(60))
            .await
            .map_err(ApiError::from)?
            .into_result()?;
    }
    if email.len() > 320 || password.len() > MAX_PASSWORD_BYTES {
        return Err(Refused::new(invalid_credentials(), None, "bad_password"));
    }
    let email = normalized(email);
    let admin = env
        .snapshot
        .admins
        .values()
        .find(|a| a.email.as_deref() == Some(email.as_str()))
        .cloned();
    let admin_id = admin.as_ref().map(|a| a.id);
    let failures = lock_key(&email);
    if let Decision::Limited { retry_after } = limiter
        .check(&failures, FAILURES_BEFORE_LOCK)
        .await
        .map_err(ApiError::from)?
    {
        let error = ApiError::new(
            ErrorCode::AccountLocked,
            "too many failed sign-ins; wait before trying again",
        )
        .with_retry_after(retry_after.as_secs().max(1));
        return Err(Refused::new(error, admin_id, "locked"));
    }
    let stored = admin.as_ref().and_then(|a| a.password_hash.as_deref());
    let valid = env
        .accounts
        .hasher
        .verify_or_dummy(HASHING_OWNER, stored, &PasswordHashParams::default(), password)
        .await
        .map_err(ApiError::from)?;
    match admin {
        Some(admin) if valid && stored.is_some() => Ok(admin),
        _ => {
            limiter
                .hit(&failures, FAILURES_BEFORE_LOCK, LOCK_WINDOW)
                .await
                .map_err(ApiError::from)?;
            Err(Refused::new(invalid_credentials(), admin_id, "bad_password"))
        }
    }
}

/// Checks a password an admin chooses.
pub fn check_new_password(field: &str, password: &str) -> Result<(), ApiError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ApiError::field(
            field,
            format!("must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::field(
            field,
            format!("must be at most {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Starts (or shows again) TOTP enrolment for an admin without a confirmed secret: the
/// secret is stored sealed and unconfirmed; the first sign-in with a code from it confirms it.
pub async fn enrol_totp(
    env: &SignInEnv<'_>,
    input: TotpEnrolment,
) -> Result<(Uuid, tenantry_accounts::mfa::Enrolment), Refused> {
    let admin = check_password(env, &input.email, &input.password).await?;
    let account = admin.email.clone().unwrap_or_default();
    let (owner, field) = seal_context(admin.id);
    let encoded = match &admin.totp {
        Some(totp) if totp.confirmed => {
            let error = ApiError::new(
                ErrorCode::MfaAlreadyEnabled,
                "TOTP is already set up for this admin; an admin with global write access can reset it",
            );
            return Err(Refused::new(error, Some(admin.id), "totp_already_enabled"));
        }
        Some(pending) => open(env.secrets, admin.id, &pending.secret)?,
        None => {
            let encoded = tenantry_accounts::mfa::new_secret();
            let sealed = env.secrets.seal(SealContext::new(&owner, &field), &encoded);
            let admin = Admin {
                totp: Some(AdminTotp {
                    secret: SealedSecret(sealed),
                    confirmed: false,
                }),
                ..admin.clone()
            };
            env.writer
                .write(Command::PutAdmin { admin })
                .await
                .map_err(ApiError::from)?;
            encoded
        }
    };
    let enrolment = tenantry_accounts::mfa::enrolment_for(&encoded, "Tenantry admin", &account)?;
    Ok((admin.id, enrolment))
}

fn open(secrets: &SecretBox, admin: Uuid, sealed: &SealedSecret) -> Result<zeroize::Zeroizing<String>, ApiError> {
    let (owner, field) = seal_context(admin);
    secrets.open(SealContext::new(&owner, &field), &sealed.0).map_err(|e| {
        tracing::error!(%admin, error = %e, "admin TOTP secret does not open");
        ApiError::internal()
    })
}

/// Signs an admin in: password, then (for a one-time password) the new password, then a
/// TOTP code of the confirmed secret or of the one being enrolled; starts a session.
pub async fn sign_in(env: &SignInEnv<'_>, input: SignIn) -> Result<SignedIn, Refused> {
    let admin = check_password(env, &input.email, &input.password).await?;
    let admin_id = admin.id;
    let id = Some(admin_id);
    if let Some(new) = &input.new_password {
        check_new_password("new_password", new).map_err(|e| Refused::new(e, id, "weak_password"))?;
        if constant_time_eq(new.as_bytes(), input.password.as_bytes()) {
            let e = ApiError::field("new_password", "must differ from the current password");
            return Err(Refused::new(e, id, "weak_password"));
        }
    } else if admin.password_temporary {
        let e = ApiError::new(
            ErrorCode::PasswordChangeRequired,
            "this is a one-time password: send `new_password` to choose your own",
        );
        return Err(Refused::new(e, id, "password_change_required"));
    }
    let Some(totp) = admin.totp.clone() else {
        let e = ApiError::new(
            ErrorCode::MfaEnrollmentRequired,
            "set up TOTP first: POST /v1/admin/auth/totp with your email and password",
        );
        return Err(Refused::new(e, id, "totp_not_enrolled"));
    };
    let Some(code) = input.code.as_deref() else {
        let e = ApiError::new(
            ErrorCode::MfaRequired,
            "send the TOTP code of your authenticator as `code`",
        );
        return Err(Refused::new(e, id, "code_missing"));
    };
    let encoded = open(env.secrets, admin.id, &totp.secret)?;
    let wrong_code = |reason| {
        let e = ApiError::new(ErrorCode::InvalidMfaCode, "the TOTP code is not valid");
        Refused::new(e, id, reason)
    };
    let now = Utc::now();
    let Some(step) = tenantry_accounts::mfa::code_step(&encoded, code, now.timestamp())? else {
        env.accounts
            .rate_limiter
            .hit(&lock_key(&input.email), FAILURES_BEFORE_LOCK, LOCK_WINDOW)
            .await
            .map_err(ApiError::from)?;
        return Err(wrong_code("bad_code"));
    };
    let stored = match env.writer.write(Command::UseAdminTotpStep { id: admin.id, step }).await {
        Ok(snapshot) => snapshot,
        Err(WriteError::Rejected(Rejection::Spent(_))) => return Err(wrong_code("code_reused")),
        Err(e) => return Err(ApiError::from(e).into()),
    };
    env.accounts
        .rate_limiter
        .reset(&lock_key(&input.email))
        .await
        .map_err(ApiError::from)?;

    let mut changed = Vec::new();
    let mut updated = stored.admins.get(&admin.id).cloned().unwrap_or(admin);
    if !totp.confirmed {
        updated.totp = Some(AdminTotp {
            secret: totp.secret.clone(),
            confirmed: true,
        });
        changed.push("totp_confirmed");
    }
    if let Some(new) = &input.new_password {
        updated.password_hash = Some(
            env.accounts
                .hasher
                .hash(HASHING_OWNER, &PasswordHashParams::default(), new)
                .await
                .map_err(ApiError::from)?,
        );
        updated.password_temporary = false;
        changed.push("password_changed");
    }
    if !changed.is_empty() {
        env.writer
            .write(Command::PutAdmin { admin: updated })
            .await
            .map_err(ApiError::from)?;
        if changed.contains(&"password_changed") {
            // A new password ends every other session of the admin.
            end_sessions(env.writer, None, Some(admin_id)).await?;
        }
    }
    let tokens = start_session(env, admin_id, now).await?;
    Ok(SignedIn {
        tokens,
        admin_id,
        changed,
    })
}

async fn end_sessions(writer: &dyn Writer, session_id: Option<Uuid>, admin_id: Option<Uuid>) -> Result<(), ApiError> {
    writer
        .write(Command::EndAdminSessions { session_id, admin_id })
        .await
        .map_err(ApiError::from)?;
    Ok(())
}

fn new_refresh_token(session: Uuid) -> String {
    format!("{REFRESH_TOKEN_PREFIX}{}_{}", session.simple(), random_token(32))
}

/// `tnr_<32 hex>_<secret>` → session id.
fn refresh_session(token: &str) -> Option<Uuid> {
    let rest = token.strip_prefix(REFRESH_TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    if id.len() != 32 || secret.is_empty() || token.len() > 200 {
        return None;
    }
    Uuid::try_parse(id).ok()
}

async fn start_session(env: &SignInEnv<'_>, admin_id: Uuid, now: DateTime<Utc>) -> Result<AdminTokens, ApiError> {
    let session_id = Uuid::new_v4();
    let refresh_token = new_refresh_token(session_id);
    let session = AdminSession {
        id: session_id,
        admin_id,
        refresh_digest: hash_token(&refresh_token),
        previous_digest: None,
        created_at: now,
        refreshed_at: now,
        expires_at: now + chrono::Duration::seconds(SESSION_SECS),
    };
    let expires_at = session.expires_at;
    env.writer
        .write(Command::PutAdminSession {
            session,
            expected_digest: None,
        })
        .await
        .map_err(ApiError::from)?;
    tokens(env, admin_id, session_id, refresh_token, expires_at, now)
}

fn tokens(
    env: &SignInEnv<'_>,
    admin_id: Uuid,
    session_id: Uuid,
    refresh_token: String,
    session_ends: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<AdminTokens, ApiError> {
    let claims = AdminTokenClaims {
        iss: env.issuer.to_owned(),
        sub: admin_id,
        aud: ADMIN_AUDIENCE.to_owned(),
        iat: now.timestamp(),
        exp: (now.timestamp() + ACCESS_TOKEN_SECS).min(session_ends.timestamp()),
        jti: random_token(16),
        sid: session_id,
    };
    let alg = preferred_alg(&env.keys);
    let access_token = env.keys.sign(alg, "at+jwt", &claims).map_err(|e| {
        tracing::error!(error = %e, "the system issuer cannot sign");
        ApiError::new(
            ErrorCode::TenantKeysMissing,
            "the installation's signing keys are not usable",
        )
    })?;
    Ok(AdminTokens {
        access_token,
        token_type: "Bearer".into(),
        expires_in: claims.exp - claims.iat,
        refresh_token,
        refresh_expires_in: (session_ends - now).num_seconds(),
    })
}

fn preferred_alg(keys: &IssuerKeys) -> tenantry_controlplane::model::SigningAlg {
    use tenantry_controlplane::model::SigningAlg;
    [SigningAlg::Es256, SigningAlg::EdDsa, SigningAlg::Rs256]
        .into_iter()
        .find(|alg| keys.active_kid(*alg).is_some())
        .unwrap_or(SigningAlg::Rs256)
}

fn invalid_refresh() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidGrant,
        "the refresh token is invalid, expired or already used",
    )
}

/// Rotates a session's refresh token: the current one gives a new pair; the one it
/// replaced, presented again, ends the session (RFC 9700 4.14.2 reuse detection).
pub async fn refresh(env: &SignInEnv<'_>, refresh_token: &str) -> Result<SignedIn, Refused> {
    let now = Utc::now();
    let Some(session) = refresh_session(refresh_token).and_then(|id| env.snapshot.admin_sessions.get(&id)) else {
        return Err(Refused::new(invalid_refresh(), None, "unknown_refresh_token"));
    };
    let presented = hash_token(refresh_token);
    let admin_id = Some(session.admin_id);
    if session
        .previous_digest
        .as_deref()
        .is_some_and(|previous| constant_time_eq(previous.as_bytes(), presented.as_bytes()))
    {
        end_sessions(env.writer, Some(session.id), None).await?;
        return Err(Refused::new(invalid_refresh(), admin_id, "refresh_token_reused"));
    }
    if !constant_time_eq(session.refresh_digest.as_bytes(), presented.as_bytes()) {
        return Err(Refused::new(invalid_refresh(), None, "unknown_refresh_token"));
    }
    if session.expires_at <= now {
        return Err(Refused::new(invalid_refresh(), admin_id, "session_expired"));
    }
    let next_token = new_refresh_token(session.id);
    let rotated = AdminSession {
        refresh_digest: hash_token(&next_token),
        previous_digest: Some(presented.clone()),
        refreshed_at: now,
        ..session.clone()
    };
    match env
        .writer
        .write(Command::PutAdminSession {
            session: rotated,
            expected_digest: Some(presented),
        })
        .await
    {
        Ok(_) => {}
        // A concurrent refresh with the same token won: this one is the replay.
        Err(WriteError::Rejected(Rejection::Spent(_) | Rejection::NotFound { .. })) => {
            end_sessions(env.writer, Some(session.id), None).await?;
            return Err(Refused::new(invalid_refresh(), admin_id, "refresh_token_reused"));
        }
        Err(e) => return Err(ApiError::from(e).into()),
    }
    let tokens = tokens(env, session.admin_id, session.id, next_token, session.expires_at, now)?;
    Ok(SignedIn {
        tokens,
        admin_id: session.admin_id,
        changed: Vec::new(),
    })
}

/// Ends the session a refresh token belongs to (its current or its previous token).
/// Answers the admin whose session ended; an unknown token ends nothing.
pub async fn sign_out(env: &SignInEnv<'_>, refresh_token: &str) -> Result<Option<Uuid>, ApiError> {
    let Some(session) = refresh_session(refresh_token).and_then(|id| env.snapshot.admin_sessions.get(&id)) else {
        return Ok(None);
    };
    let presented = hash_token(refresh_token);
    let matches = |digest: &str| constant_time_eq(digest.as_bytes(), presented.as_bytes());
    if !matches(&session.refresh_digest) && !session.previous_digest.as_deref().is_some_and(matches) {
        return Ok(None);
    }
    end_sessions(env.writer, Some(session.id), None).await?;
    Ok(Some(session.admin_id))
}

/// The admin an access token speaks for at `now`: signed by the system issuer for the
/// admin audience, its session still open and its admin still there.
pub fn verify_access_token<'s>(
    snapshot: &'s Snapshot,
    keys: &IssuerKeys,
    issuer: &str,
    token: &str,
    now: DateTime<Utc>,
) -> Option<&'s Admin> {
    let expect = Expect {
        audience: Some(ADMIN_AUDIENCE),
        leeway_secs: 5,
        ..Expect::new(issuer, TokenType::Access)
    };
    let claims = keys.verify::<AdminTokenClaims>(token, &expect).ok()?.claims;
    let session = snapshot.admin_sessions.get(&claims.sid)?;
    if session.admin_id != claims.sub || session.expires_at <= now {
        return None;
    }
    snapshot.admins.get(&claims.sub)
}

/// Whether a bearer credential has the shape of a JWT (three base64url parts).
pub fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.split('.').count() == 3
}
