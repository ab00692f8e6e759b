//! The one password login, behind both front doors: the hosted login page and
//! `POST /v1/auth/login`.
//!
//! In order: the per-IP rate limit, the account lockout (the attempt is counted before the
//! password is checked, so parallel guesses cannot exceed it), the password (through the
//! admission-controlled hasher; an unknown email is verified against a dummy hash, so
//! both answers take the same time and say the same thing), then the upgrade of a hash
//! made with older parameters, and what the tenant asks next (a verified email, a second
//! factor). Lockout counts failures per tenant and normalized email, known or not, so it
//! cannot be used to find out which accounts exist either. The failure that locks an
//! existing account sends its owner the `account_locked` notice (once per lock, in the
//! background, when the tenant has SMTP settings).
//!
//! A completed login — the password alone, or the password and then
//! [`second_factor_step`] — is one [`Authentication`] (the user, `amr`, `acr` and the
//! [`Method`]), which [`start_session`] opens the session for. What a login owes after
//! its first factor — a password here, an upstream sign-in in `tenantry-federation` — is
//! decided once, by [`after_first_factor`].

use std::net::IpAddr;
use std::time::Duration;

use tenantry_controlplane::model::MailTemplateKind;
use tenantry_dataplane::model::User;
use tenantry_dataplane::{Outcome, TenantDb, UserRepository};

use crate::Accounts;
use crate::events;
use crate::ratelimit::Decision;
use tenantry_errors::{ApiError, ErrorCode};
use tenantry_tenancy::TenantContext;

mod second_factor;
pub use second_factor::{CodeCheck, mfa_attempt, mfa_passed, second_factor_step};

/// Registrations one IP address may make per tenant and window.
pub const REGISTER_PER_IP: (u32, Duration) = (10, Duration::from_secs(3600));
/// Verification mails one IP address may ask for per tenant and window
/// (`POST /v1/auth/verify-email/resend`).
pub const VERIFY_RESEND_PER_IP: (u32, Duration) = (5, Duration::from_secs(900));
/// Password-reset mails one IP address may ask for per tenant and window
/// (`POST /v1/auth/password/forgot`).
pub const FORGOT_PER_IP: (u32, Duration) = (5, Duration::from_secs(900));
/// Second-factor attempts per account and window, counted before the code is checked
/// and forgotten after a correct one (6 digits with 3 valid codes at a time: 5 guesses in
/// 5 minutes is a 1.5e-5 chance).
pub const MFA_ATTEMPTS: (u32, Duration) = (5, Duration::from_secs(300));

/// Why a login did not go through.
#[derive(Debug)]
pub enum LoginError {
    /// Unknown email, wrong password or a disabled account: one answer for all.
    BadCredentials,
    /// Too many failures for this account; it unlocks after `retry_after`.
    Locked { retry_after: Duration },
    /// Too many attempts from this address.
    RateLimited { retry_after: Duration },
    /// The tenant requires a verified email before login.
    EmailNotVerified,
    /// Hashing saturated, rate-limit store or database unavailable, ...
    Unavailable(ApiError),
}

impl From<ApiError> for LoginError {
    fn from(e: ApiError) -> Self {
        LoginError::Unavailable(e)
    }
}

/// How a user proved who they are (passkeys and upstream federation will add theirs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The password alone.
    Password,
    /// The password, then a code from the authenticator (or a recovery code).
    PasswordAndSecondFactor,
    /// A sign-in at an upstream identity provider (federation).
    Upstream,
    /// A sign-in at an upstream identity provider, then a code.
    UpstreamAndSecondFactor,
    /// A passkey with user verification, first and only factor: possession of the
    /// authenticator and the PIN or biometric that unlocked it.
    Passkey,
    /// The password, then a passkey as the second factor.
    PasswordAndPasskey,
}

impl Method {
    /// The RFC 8176 `amr` values a session opened this way records.
    pub fn amr(self) -> &'static [&'static str] {
        match self {
            Method::Password => &["pwd"],
            Method::PasswordAndSecondFactor => &["pwd", "otp", "mfa"],
            Method::Upstream => &["fed"],
            Method::UpstreamAndSecondFactor => &["fed", "otp", "mfa"],
            Method::Passkey => &["hwk", "user", "mfa"],
            Method::PasswordAndPasskey => &["pwd", "hwk", "user", "mfa"],
        }
    }
}

/// How a session records the upstream provider of a federated sign-in: an
/// `idp:<provider id>` entry among its authentication methods, which codes and refresh
/// tokens carry with the rest; the tokens publish it as the `idp` claim and keep it out of
/// `amr` (RFC 8176 values hold no colon).
pub const IDP_METHOD_PREFIX: &str = "idp:";

/// A completed login, whichever front door and method it took: who signed in, and how
/// (`amr`, `acr` as the session and the tokens record them). What [`start_session`] opens
/// a session for.
#[derive(Debug, Clone)]
pub struct Authentication {
    pub user: User,
    pub amr: Vec<String>,
    pub acr: Option<String>,
    pub method: Method,
}

impl Authentication {
    /// `user` signed in with `method` (its `amr`, no `acr`).
    pub fn new(user: User, method: Method) -> Self {
        Self {
            user,
            amr: method.amr().iter().map(|m| (*m).to_owned()).collect(),
            acr: None,
            method,
        }
    }

    /// `user` signed in with a passkey (`method`: [`Method::Passkey`] or
    /// [`Method::PasswordAndPasskey`]). RFC 8176: `hwk` for a device-bound key, `swk` for
    /// one that may be synced between devices (the authenticator's BE flag: without
    /// trusted attestation, its own word); `user` for the presence test every assertion
    /// passes.
    pub fn passkey(user: User, method: Method, synced: bool) -> Self {
        let mut authentication = Self::new(user, method);
        if synced {
            for m in authentication.amr.iter_mut().filter(|m| *m == "hwk") {
                *m = "swk".to_owned();
            }
        }
        authentication
    }

    /// `user` signed in at the upstream `provider`, then (`second_factor`) with a code of
    /// ours. `upstream_mfa`: the tenant trusts the upstream's word that it did
    /// multi-factor authentication, which the session records as `mfa`.
    pub fn upstream(user: User, provider: &str, upstream_mfa: bool, second_factor: bool) -> Self {
        let method = if second_factor {
            Method::UpstreamAndSecondFactor
        } else {
            Method::Upstream
        };
        let mut authentication = Self::new(user, method);
        if upstream_mfa && !second_factor {
            authentication.amr.push("mfa".to_owned());
        }
        authentication.amr.push(format!("{IDP_METHOD_PREFIX}{provider}"));
        authentication
    }
}

/// What the user owes after a correct password, when anything ([`decide_second_factor`]
/// decides).
#[derive(Debug)]
pub enum SecondFactor {
    /// A code from the enrolled authenticator (or a recovery code).
    Challenge,
    /// The tenant requires a second factor and the user has none: set one up now with
    /// this new (pending) enrolment; its first code completes the login.
    Enrol(crate::mfa::Enrolment),
}

/// Which second factor a login owes, if any: a code from a confirmed authenticator unless
/// this device is trusted to skip it; else, when the tenant requires one, a new
/// enrolment; else none. The one decision behind both front doors.
pub fn decide_second_factor(totp_enrolled: bool, device_trusted: bool, mfa_required: bool) -> Owed {
    match (totp_enrolled, device_trusted, mfa_required) {
        (true, true, _) => Owed::None,
        (true, false, _) => Owed::Challenge,
        (false, _, true) => Owed::Enrol,
        (false, _, false) => Owed::None,
    }
}

/// [`decide_second_factor`]'s answer, before an enrolment is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owed {
    None,
    Challenge,
    Enrol,
}

/// A correct password.
#[derive(Debug)]
pub enum Accepted {
    /// Nothing more is owed: the login is complete.
    Complete(Authentication),
    /// A second factor is owed; [`second_factor_step`] completes the login.
    SecondFactor { user: User, owed: SecondFactor },
}

/// Where a request comes from: the client address and the `User-Agent` (the HTTP crate
/// reads both from the request, the agent cut to its first 256 characters), recorded on
/// the session a login opens, and with the request id on every security event
/// (`events`).
#[derive(Debug, Clone, Default)]
pub struct SessionOrigin {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

/// Longest email a login looks at (RFC 5321's path limit); longer ones are unknown
/// accounts without being looked up or counted.
const MAX_EMAIL_BYTES: usize = 320;

/// The account part of a counter key: a digest of the normalized email, so a key's size
/// does not depend on what a client sends (and no key holds an address).
pub fn account_key(email: &str) -> String {
    tenantry_crypto::hash_token(&tenantry_dataplane::users::normalize_email(email))
}

fn lock_key(ctx: &TenantContext, email: &str) -> String {
    format!("login:account:{}:{}", ctx.entry.tenant.id, account_key(email))
}

/// Marks that the owner of a lock was told about it (one notice per lock).
fn lock_notice_key(ctx: &TenantContext, email: &str) -> String {
    format!("login:locked-notice:{}:{}", ctx.entry.tenant.id, account_key(email))
}

/// Forgets the failed logins of `email` (and so its lock), e.g. after a password reset.
pub async fn clear_lockout(accounts: &Accounts, ctx: &TenantContext, email: &str) -> Result<(), ApiError> {
    accounts.rate_limiter.reset(&lock_key(ctx, email)).await?;
    accounts.rate_limiter.reset(&lock_notice_key(ctx, email)).await?;
    Ok(())
}

/// A password attempt counted against the lockout of one email *before* the password is
/// checked, so parallel guesses cannot all pass a check made before any of them failed:
/// at most `max_login_attempts` passwords are ever tried per window.
struct Counted {
    key: String,
    limit: u32,
    /// Attempts left in the window after this one.
    remaining: u32,
}

/// Counts one attempt for `email`; `Err(retry_after)` when the email is locked (nothing is
/// checked then).
async fn count_attempt(
    accounts: &Accounts,
    ctx: &TenantContext,
    email: &str,
) -> Result<Result<Counted, Duration>, ApiError> {
    let policy = &ctx.entry.tenant.settings.security;
    let key = lock_key(ctx, email);
    let limit = policy.max_login_attempts.max(1);
    let window = Duration::from_secs(policy.lockout_duration_secs.max(1));
    Ok(match accounts.rate_limiter.hit(&key, limit, window).await? {
        Decision::Allowed { remaining } => Ok(Counted { key, limit, remaining }),
        Decision::Limited { retry_after } => Err(retry_after),
    })
}

/// Gives back a counted attempt that ended without a verdict (hashing saturated, the
/// database failed): the server's trouble must not lock anyone out. Answers `error`.
async fn abandon(accounts: &Accounts, attempt: Counted, error: ApiError) -> ApiError {
    if let Err(e) = accounts.rate_limiter.forgive(&attempt.key).await {
        tracing::warn!(error = %e, "a login attempt without a verdict could not be given back");
    }
    error
}

/// Settles a counted attempt: a correct password forgets the count; a wrong one that used
/// the last attempt answers how long the lock it starts lasts.
async fn settle_attempt(accounts: &Accounts, attempt: Counted, passed: bool) -> Result<Option<Duration>, ApiError> {
    if passed {
        accounts.rate_limiter.reset(&attempt.key).await?;
        return Ok(None);
    }
    if attempt.remaining > 0 {
        return Ok(None);
    }
    Ok(match accounts.rate_limiter.check(&attempt.key, attempt.limit).await? {
        Decision::Limited { retry_after } => Some(retry_after),
        // The window closed (or a correct password cleared it) meanwhile.
        Decision::Allowed { .. } => None,
    })
}

/// Tells the owner of an account that it was just locked: in the background (the login
/// answers at once, the same for every account), best effort, only when the tenant has
/// SMTP settings, and once per lock even when several failures race past the limit.
fn lock_notice(accounts: &Accounts, ctx: &TenantContext, user: &User, retry_after: Duration) {
    if !ctx.capabilities.email {
        return;
    }
    let (accounts, ctx) = (accounts.clone(), ctx.clone());
    let email = user.email.clone();
    let lang = crate::account_email::mail_language(&ctx, Some(user));
    tokio::spawn(async move {
        // The marker lives exactly as long as the lock: the next lock gets its own notice.
        let window = retry_after.max(Duration::from_millis(1));
        match accounts
            .rate_limiter
            .hit(&lock_notice_key(&ctx, &email), 1, window)
            .await
        {
            Ok(Decision::Allowed { .. }) => {
                let kind = MailTemplateKind::AccountLocked;
                crate::account_email::send_notice(&accounts, &ctx, &email, lang, kind, Some(retry_after)).await;
            }
            Ok(Decision::Limited { .. }) => {}
            Err(e) => tracing::warn!(tenant = %ctx.slug(), error = %e, "account-locked notice skipped"),
        }
    });
}

/// Checks an email and password for the tenant. `device` is a trusted-device token the
/// client kept from an earlier second factor: while it is live (and the tenant offers
/// remembering), an enrolled user is not asked for a code again.
pub async fn password_login(
    accounts: &Accounts,
    ctx: &TenantContext,
    db: &TenantDb,
    email: &str,
    password: &str,
    ip: Option<IpAddr>,
    device: Option<&str>,
) -> Result<Accepted, LoginError> {
    let tenant = ctx.entry.tenant.id.to_string();
    let policy = &ctx.entry.tenant.settings.security;
    // Password attempts per address and minute (tenant setting; 0 turns the limit off).
    let per_minute = policy.login_attempts_per_ip_per_minute;
    if per_minute > 0
        && let Decision::Limited { retry_after } =
            per_ip(accounts, ctx, "login", ip, (per_minute, Duration::from_secs(60))).await?
    {
        return Err(LoginError::RateLimited { retry_after });
    }
    if email.len() > MAX_EMAIL_BYTES {
        return Err(LoginError::BadCredentials);
    }
    let attempt = match count_attempt(accounts, ctx, email).await? {
        Ok(attempt) => attempt,
        Err(retry_after) => {
            login_failed(db, None, email, "locked").await;
            return Err(LoginError::Locked { retry_after });
        }
    };

    let checked = async {
        // The user, the password hash and the second-factor state in one statement.
        let account = match db.login_account(email, &ctx.custom_fields()).await {
            Ok(account) => account.filter(|(u, _)| tenantry_tenancy::users::is_active(u)),
            // A malformed email is simply not a known user.
            Err(tenantry_dataplane::DbError::Invalid(_)) => None,
            Err(e) => return Err(ApiError::from(e)),
        };
        let (user, stored, totp_enrolled) = match account {
            Some((user, login)) => (Some(user), login.password, login.totp_enrolled),
            None => (None, None, false),
        };
        let valid = accounts
            .hasher
            .verify_or_dummy(&tenant, stored.as_deref(), &policy.password_hash, password)
            .await?;
        Ok((valid, user, stored, totp_enrolled))
    };
    let (valid, user, stored, totp_enrolled) = match checked.await {
        Ok(checked) => checked,
        Err(e) => return Err(abandon(accounts, attempt, e).await.into()),
    };
    let passed = valid && user.is_some();
    let locked_now = settle_attempt(accounts, attempt, passed).await?;
    let user = match (passed, user) {
        (true, Some(user)) => user,
        (_, user) => {
            let user_id = user.as_ref().map(|u| u.id);
            login_failed(db, user_id, email, "bad_credentials").await;
            if let Some(retry_after) = locked_now {
                tracing::info!(tenant = %ctx.slug(), "account locked after repeated login failures");
                let locked = events::Event {
                    action: "account_locked",
                    outcome: None,
                    user: user_id,
                    actor: Some(email_actor(email)),
                    target: user_id.map(|id| format!("user:{id}")),
                    details: serde_json::json!({ "seconds": retry_after.as_secs() }),
                };
                events::record(db, locked).await;
                if let Some(user) = &user {
                    lock_notice(accounts, ctx, user, retry_after);
                }
                return Err(LoginError::Locked { retry_after });
            }
            return Err(LoginError::BadCredentials);
        }
    };

    // A hash made with other parameters is replaced now that the password is known.
    if let Some(phc) = &stored
        && crate::passwords::needs_rehash(phc, &policy.password_hash)
    {
        match accounts.hasher.hash(&tenant, &policy.password_hash, password).await {
            Ok(fresh) => {
                if let Err(e) = db.set_password(user.id, &fresh).await {
                    tracing::warn!(error = %e, "password hash upgrade not stored");
                }
            }
            // The login itself succeeded; the upgrade waits for a quieter moment.
            Err(e) => tracing::info!(error = %e, "password hash upgrade postponed"),
        }
    }
    if policy.require_verified_email && !user.email_verified {
        login_failed(db, Some(user.id), email, "email_not_verified").await;
        return Err(LoginError::EmailNotVerified);
    }
    after_first_factor(accounts, ctx, db, user, FirstFactor::Password, totp_enrolled, device)
        .await
        .map_err(LoginError::from)
}

/// The first factor a login passed.
#[derive(Debug, Clone, Copy)]
pub enum FirstFactor<'a> {
    Password,
    /// A sign-in at the upstream `provider`; `mfa`: the tenant trusts the upstream's word
    /// that it did multi-factor authentication (which then counts as the second factor).
    Upstream {
        provider: &'a str,
        mfa: bool,
    },
    /// A passkey with user verification: both factors at once, so nothing more is owed.
    Passkey {
        synced: bool,
    },
}

/// What a login owes once its first factor passed — the one decision for every first
/// factor ([`decide_second_factor`]: an enrolled second factor — a TOTP authenticator
/// (`totp_enrolled`) or a passkey — unless this `device` is trusted, an enrolment where
/// the tenant requires one), recorded as the `login` event, and the enrolment started
/// when one is owed.
pub async fn after_first_factor(
    accounts: &Accounts,
    ctx: &TenantContext,
    db: &TenantDb,
    user: User,
    first: FirstFactor<'_>,
    totp_enrolled: bool,
    device: Option<&str>,
) -> Result<Accepted, ApiError> {
    let policy = &ctx.entry.tenant.settings.security;
    let remembered = match device {
        Some(token) if policy.mfa_remember_device_days > 0 => crate::mfa::device_trusted(db, user.id, token).await?,
        _ => false,
    };
    let upstream_mfa = matches!(first, FirstFactor::Upstream { mfa: true, .. });
    let multi_factor = upstream_mfa || matches!(first, FirstFactor::Passkey { .. });
    let enrolled = totp_enrolled || (!multi_factor && crate::passkeys::has_passkey(db, user.id).await?);
    let owed = match decide_second_factor(enrolled, remembered || multi_factor, policy.mfa_required) {
        // A tenant that requires a second factor takes a trusted upstream's as one, and a
        // user-verified passkey as both.
        Owed::Enrol if multi_factor => Owed::None,
        owed => owed,
    };
    let step = match owed {
        Owed::None => "complete",
        Owed::Challenge => "second_factor_required",
        Owed::Enrol => "second_factor_enrolment_required",
    };
    let mut details = serde_json::json!({ "step": step, "remembered_device": remembered });
    match first {
        FirstFactor::Password => details["method"] = "password".into(),
        FirstFactor::Upstream { provider, mfa } => {
            details["method"] = "upstream".into();
            details["provider"] = provider.into();
            details["upstream_mfa"] = mfa.into();
        }
        FirstFactor::Passkey { synced } => {
            details["method"] = "passkey".into();
            details["synced"] = synced.into();
        }
    }
    let passed = events::Event::by_user("login", Outcome::Success, user.id).with_details(details);
    events::record(db, passed).await;
    let owed = match owed {
        Owed::None => {
            let authentication = match first {
                FirstFactor::Password => Authentication::new(user, Method::Password),
                FirstFactor::Upstream { provider, mfa } => Authentication::upstream(user, provider, mfa, false),
                FirstFactor::Passkey { synced } => Authentication::passkey(user, Method::Passkey, synced),
            };
            return Ok(Accepted::Complete(authentication));
        }
        Owed::Challenge => SecondFactor::Challenge,
        Owed::Enrol => SecondFactor::Enrol(
            crate::mfa::enrol(
                &accounts.secrets,
                db,
                ctx.entry.tenant.id,
                crate::mfa::issuer_name(ctx),
                user.id,
                &user.email,
            )
            .await?,
        ),
    };
    Ok(Accepted::SecondFactor { user, owed })
}

/// Counts one `action` from `ip` against `(limit, window)` per tenant (nothing to count
/// when the client address is unknown).
pub async fn per_ip(
    accounts: &Accounts,
    ctx: &TenantContext,
    action: &str,
    ip: Option<IpAddr>,
    (limit, window): (u32, Duration),
) -> Result<Decision, ApiError> {
    let Some(ip) = ip else {
        return Ok(Decision::Allowed { remaining: limit });
    };
    let key = per_ip_key(action, ctx.entry.tenant.id, ip);
    Ok(accounts.rate_limiter.hit(&key, limit, window).await?)
}

/// The counter key of [`per_ip`]: per [`crate::ratelimit::address_bucket`] (IPv6 per /64).
fn per_ip_key(action: &str, tenant: uuid::Uuid, ip: IpAddr) -> String {
    match crate::ratelimit::address_bucket(ip) {
        IpAddr::V4(v4) => format!("{action}:ip:{tenant}:{v4}"),
        IpAddr::V6(v6) => format!("{action}:ip:{tenant}:{v6}/64"),
    }
}

/// The current password of a signed-in user (changing the password, turning MFA off),
/// counted against the same lockout as logins, so a stolen access token cannot be used to
/// guess the password without limit.
pub async fn recheck_password(
    accounts: &Accounts,
    ctx: &TenantContext,
    db: &TenantDb,
    user: &User,
    password: &str,
) -> Result<(), ApiError> {
    let policy = &ctx.entry.tenant.settings.security;
    let locked = |retry_after: Duration| {
        ApiError::new(ErrorCode::AccountLocked, "too many failed attempts; try again later")
            .with_retry_after(retry_after.as_secs().max(1))
    };
    let attempt = count_attempt(accounts, ctx, &user.email).await?.map_err(locked)?;
    let checked = async {
        let stored = db.password(user.id).await?;
        let tenant = ctx.entry.tenant.id.to_string();
        Ok::<_, ApiError>(
            accounts
                .hasher
                .verify_or_dummy(&tenant, stored.as_deref(), &policy.password_hash, password)
                .await?,
        )
    };
    let passed = match checked.await {
        Ok(passed) => passed,
        Err(e) => return Err(abandon(accounts, attempt, e).await),
    };
    if let Some(retry_after) = settle_attempt(accounts, attempt, passed).await? {
        return Err(locked(retry_after));
    }
    if passed {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::InvalidCredentials,
        "the current password is not correct",
    ))
}

/// The actor of a sign-in attempt before it is known to be a user: the email it named
/// (normalized, at most 255 characters).
fn email_actor(email: &str) -> String {
    tenantry_dataplane::users::normalize_email(email)
        .chars()
        .take(255)
        .collect()
}

/// Records a failed sign-in (`reason`: `bad_credentials`, `locked`, `email_not_verified`).
async fn login_failed(db: &TenantDb, user: Option<uuid::Uuid>, email: &str, reason: &str) {
    let event = events::Event {
        action: "login",
        outcome: Some(Outcome::Failure),
        user,
        actor: Some(email_actor(email)),
        target: user.map(|id| format!("user:{id}")),
        details: serde_json::json!({ "method": "password", "reason": reason }),
    };
    events::record(db, event).await;
}

fn completed(user: &User) -> Authentication {
    Authentication::new(user.clone(), Method::PasswordAndSecondFactor)
}

/// Opens a login session (the row in the tenant database) for a completed
/// [`Authentication`]; answers it and the session id the browser keeps (only its hash is
/// stored). Shared by the hosted pages and the headless API.
pub async fn start_session(
    ctx: &TenantContext,
    db: &TenantDb,
    authentication: &Authentication,
    origin: &SessionOrigin,
) -> Result<(tenantry_dataplane::model::Session, String), ApiError> {
    use tenantry_dataplane::SessionRepository;
    let now = chrono::Utc::now();
    let session_id = tenantry_crypto::random_token(32);
    let lifetime = ctx.entry.tenant.settings.token_lifetimes.session_secs as i64;
    let session = tenantry_dataplane::model::Session {
        id_hash: tenantry_crypto::hash_token(&session_id),
        user_id: authentication.user.id,
        auth_time: now,
        amr: authentication.amr.clone(),
        acr: authentication.acr.clone(),
        ip: origin.ip.map(|ip| ip.to_string()),
        user_agent: origin.user_agent.clone(),
        created_at: now,
        last_seen_at: now,
        expires_at: now + chrono::Duration::seconds(lifetime),
        revoked_at: None,
    };
    db.create_session(&session).await?;
    Ok((session, session_id))
}

/// Signs `user` out everywhere: every session and every refresh token end, and no device
/// skips the second factor any more (logout-all, a password reset, a disabled account).
pub async fn sign_out_everywhere(
    db: &TenantDb,
    user: uuid::Uuid,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), ApiError> {
    use tenantry_dataplane::{MfaRepository, SessionRepository, TokenRepository};
    db.revoke_user_sessions(user, None, now).await?;
    db.revoke_refresh_by_user(user, now).await?;
    db.forget_devices(user, now).await?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use tenantry_controlplane::model::{PasswordHashParams, TenantSettings};
    use tenantry_tenancy::testing::Installation;

    const ATTEMPTS: u32 = 3;
    pub(crate) const PASSWORD: &str = "correct horse battery";

    /// A tenant with a SQLite database in a temp dir (locking after [`ATTEMPTS`] failures
    /// for a minute, no per-IP limit, the cheapest hash), one user with [`PASSWORD`], and
    /// the account services with an in-memory limiter.
    async fn tenant(mfa_required: bool) -> (Installation, Accounts, TenantContext, TenantDb, User) {
        tenant_with(|settings| settings.security.mfa_required = mfa_required).await
    }

    /// [`tenant`], with the tenant's settings changed by `configure` before it is made.
    pub(crate) async fn tenant_with(
        configure: impl FnOnce(&mut TenantSettings),
    ) -> (Installation, Accounts, TenantContext, TenantDb, User) {
        let installation = Installation::new();
        let ctx = installation.add_tenant("acme", false, |settings| {
            settings.security.max_login_attempts = ATTEMPTS;
            settings.security.lockout_duration_secs = 60;
            settings.security.login_attempts_per_ip_per_minute = 0;
            settings.security.password_hash = PasswordHashParams {
                memory_kib: 1024,
                iterations: 1,
                parallelism: 1,
            };
            configure(settings);
        });
        let secrets = installation.secrets.clone();
        let db = ctx.db().await.unwrap();
        let accounts = Accounts {
            rate_limiter: crate::ratelimit::RateLimiter::in_memory(),
            hasher: crate::passwords::PasswordHasher::new(crate::passwords::HashingLimits::default()),
            secrets,
            mailer: tenantry_mail::Mailer::new(),
            password_deny_list: None,
        };
        let new = tenantry_dataplane::model::NewUser {
            email: "ada@example.com".into(),
            email_verified: true,
            ..Default::default()
        };
        let user = db.create_user(new, &ctx.custom_fields()).await.unwrap();
        let policy = &ctx.entry.tenant.settings.security.password_hash;
        let phc = accounts.hasher.hash("acme", policy, PASSWORD).await.unwrap();
        db.set_password(user.id, &phc).await.unwrap();
        (installation, accounts, ctx, db, user)
    }

    async fn login(
        accounts: &Accounts,
        ctx: &TenantContext,
        db: &TenantDb,
        email: &str,
        password: &str,
    ) -> Result<Accepted, LoginError> {
        password_login(accounts, ctx, db, email, password, None, None).await
    }

    #[tokio::test]
    async fn n_wrong_passwords_lock_the_account_and_then_the_right_one_is_refused() {
        let (_dir, accounts, ctx, db, user) = tenant(false).await;
        for attempt in 1..ATTEMPTS {
            let refused = login(&accounts, &ctx, &db, "ada@example.com", "wrong").await;
            assert!(
                matches!(refused, Err(LoginError::BadCredentials)),
                "attempt {attempt}: {refused:?}"
            );
        }
        // The failure that uses the last attempt starts the lock and says so.
        let locking = login(&accounts, &ctx, &db, "ada@example.com", "wrong").await;
        let Err(LoginError::Locked { retry_after }) = locking else {
            panic!("the {ATTEMPTS}th failure locks: {locking:?}");
        };
        assert!(retry_after > Duration::from_secs(50) && retry_after <= Duration::from_secs(60));
        // Locked: even the right password is not checked, whatever the case of the address.
        let right = login(&accounts, &ctx, &db, "ADA@example.com", PASSWORD).await;
        assert!(matches!(right, Err(LoginError::Locked { .. })), "{right:?}");
        // A signed-in user's password check counts against the same lock.
        let recheck = recheck_password(&accounts, &ctx, &db, &user, PASSWORD)
            .await
            .unwrap_err();
        assert_eq!(recheck.code, ErrorCode::AccountLocked);
        // Clearing the lock (a password reset does) lets the right password in again.
        clear_lockout(&accounts, &ctx, "ada@example.com").await.unwrap();
        let accepted = login(&accounts, &ctx, &db, "ada@example.com", PASSWORD).await.unwrap();
        let Accepted::Complete(authentication) = accepted else {
            panic!("no second factor is owed: {accepted:?}");
        };
        assert_eq!(authentication.user.id, user.id);
        assert_eq!(authentication.method, Method::Password);
        assert_eq!(authentication.amr, ["pwd"]);
        assert_eq!(authentication.acr, None);
    }

    #[tokio::test]
    async fn a_right_password_forgets_earlier_failures() {
        let (_dir, accounts, ctx, db, _user) = tenant(false).await;
        for _ in 1..ATTEMPTS {
            assert!(matches!(
                login(&accounts, &ctx, &db, "ada@example.com", "wrong").await,
                Err(LoginError::BadCredentials)
            ));
        }
        assert!(matches!(
            login(&accounts, &ctx, &db, "ada@example.com", PASSWORD).await,
            Ok(Accepted::Complete(_))
        ));
        // The count starts over: as many failures as before still do not lock.
        for _ in 1..ATTEMPTS {
            assert!(matches!(
                login(&accounts, &ctx, &db, "ada@example.com", "wrong").await,
                Err(LoginError::BadCredentials)
            ));
        }
    }

    #[tokio::test]
    async fn unknown_accounts_lock_like_known_ones() {
        let (_dir, accounts, ctx, db, _user) = tenant(false).await;
        for _ in 1..ATTEMPTS {
            assert!(matches!(
                login(&accounts, &ctx, &db, "nobody@example.com", PASSWORD).await,
                Err(LoginError::BadCredentials)
            ));
        }
        assert!(matches!(
            login(&accounts, &ctx, &db, "nobody@example.com", PASSWORD).await,
            Err(LoginError::Locked { .. })
        ));
        // Another account of the tenant is not affected.
        assert!(matches!(
            login(&accounts, &ctx, &db, "ada@example.com", PASSWORD).await,
            Ok(Accepted::Complete(_))
        ));
    }

    #[tokio::test]
    async fn a_password_and_a_second_factor_complete_one_authentication_and_its_session() {
        let (_dir, accounts, ctx, db, user) = tenant(true).await;
        let accepted = login(&accounts, &ctx, &db, "ada@example.com", PASSWORD).await.unwrap();
        let Accepted::SecondFactor {
            user: pending,
            owed: SecondFactor::Enrol(enrolment),
        } = accepted
        else {
            panic!("the tenant requires a second factor the user lacks: {accepted:?}");
        };
        assert_eq!(pending.id, user.id);
        let code = crate::mfa::code_now(&enrolment.secret);
        let checked = second_factor_step(&accounts, &ctx, &db, &pending, &code).await.unwrap();
        let CodeCheck::Enrolled {
            authentication,
            recovery_codes,
        } = checked
        else {
            panic!("the first code confirms the enrolment: {checked:?}");
        };
        assert_eq!(recovery_codes.len(), crate::mfa::RECOVERY_CODE_COUNT);
        assert_eq!(authentication.method, Method::PasswordAndSecondFactor);
        assert_eq!(authentication.amr, ["pwd", "otp", "mfa"]);
        let origin = SessionOrigin {
            ip: Some("198.51.100.7".parse().unwrap()),
            user_agent: Some("test".into()),
            request_id: None,
        };
        let (session, id) = start_session(&ctx, &db, &authentication, &origin).await.unwrap();
        assert_eq!(session.user_id, user.id);
        assert_eq!(session.amr, authentication.amr);
        assert_eq!(session.acr, None);
        assert_eq!(session.ip.as_deref(), Some("198.51.100.7"));
        assert_eq!(session.id_hash, tenantry_crypto::hash_token(&id));
        // The same code cannot complete a second login.
        let again = second_factor_step(&accounts, &ctx, &db, &pending, &code).await.unwrap();
        assert!(matches!(again, CodeCheck::Refused { enrolling: false }), "{again:?}");
    }

    #[test]
    fn each_method_has_its_amr() {
        assert_eq!(Method::Password.amr(), ["pwd"]);
        assert_eq!(Method::PasswordAndSecondFactor.amr(), ["pwd", "otp", "mfa"]);
        assert_eq!(Method::Upstream.amr(), ["fed"]);
        assert_eq!(Method::UpstreamAndSecondFactor.amr(), ["fed", "otp", "mfa"]);
    }

    #[test]
    fn the_second_factor_decision() {
        // An enrolled user owes a code unless the device is trusted, whatever the policy.
        assert_eq!(decide_second_factor(true, false, false), Owed::Challenge);
        assert_eq!(decide_second_factor(true, false, true), Owed::Challenge);
        assert_eq!(decide_second_factor(true, true, true), Owed::None);
        // A user without one enrols when the tenant requires it; a device cannot skip that.
        assert_eq!(decide_second_factor(false, false, true), Owed::Enrol);
        assert_eq!(decide_second_factor(false, true, true), Owed::Enrol);
        assert_eq!(decide_second_factor(false, false, false), Owed::None);
    }

    #[test]
    fn per_ip_keys_group_ipv6_by_64_and_keep_ipv4_per_address() {
        let tenant = uuid::Uuid::nil();
        let key = |ip: &str| per_ip_key("login", tenant, ip.parse().unwrap());
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        assert_eq!(key("2001:db8:1:2::1"), format!("login:ip:{tenant}:2001:db8:1:2::/64"));
        assert_ne!(
            key("2001:db8:1:2::1"),
            key("2001:db8:1:3::1"),
            "the next /64 is someone else"
        );
        assert_eq!(key("198.51.100.7"), format!("login:ip:{tenant}:198.51.100.7"));
        assert_ne!(key("198.51.100.7"), key("198.51.100.8"));
        // Mapped IPv4 is IPv4, not one /64 shared by every IPv4 client.
        assert_eq!(key("::ffff:198.51.100.7"), key("198.51.100.7"));
        assert_ne!(key("::ffff:198.51.100.7"), key("::ffff:198.51.100.8"));
        assert_ne!(
            per_ip_key("register", tenant, "198.51.100.7".parse().unwrap()),
            key("198.51.100.7")
        );
    }
}
