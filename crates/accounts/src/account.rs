//! What a user (or an administrator) does to an account outside a login: register, set
//! or change the password, prove it is them again before a factor changes
//! ([`reauthenticate`]), enrol, confirm and remove TOTP, mint new recovery codes, list and
//! end their sessions. Both front doors and the admin API call these, so each rule exists
//! once; the HTTP crate only reads the request and writes the answer.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use chrono::Utc;
use tenantry_controlplane::model::{Client, ClientType, MailTemplateKind};
use tenantry_dataplane::model::{EmailTokenPurpose, NewUser, Session, User};
use tenantry_dataplane::{
    EmailTokenRepository, MfaRepository, SessionRepository, TenantDb, TokenRepository, UserRepository,
};
use tenantry_errors::{ApiError, ErrorCode};
use tenantry_tenancy::{Capability, TenantContext};
use uuid::Uuid;

use crate::Accounts;

/// A password that passed the tenant's policy, hashed and ready to store. The one way a
/// password is set — registration, a change, a reset link, an administrator — is
/// [`NewPassword::prepare`] then [`NewPassword::store`] (or [`set_password`], both at once).
pub struct NewPassword {
    phc: String,
}

impl NewPassword {
    /// Checks `password` against the tenant policy for the account `email` (a refusal is
    /// 422 on `field`) and hashes it with the tenant's parameters (503 `overloaded` when
    /// hashing is saturated). Nothing is written.
    pub async fn prepare(
        accounts: &Accounts,
        ctx: &TenantContext,
        email: &str,
        password: &str,
        field: &str,
    ) -> Result<Self, ApiError> {
        let policy = &ctx.entry.tenant.settings.security;
        crate::passwords::check_policy(policy, accounts.password_deny_list.as_deref(), email, password, field)?;
        let phc = accounts
            .hasher
            .hash(&ctx.entry.tenant.id.to_string(), &policy.password_hash, password)
            .await?;
        Ok(NewPassword { phc })
    }

    /// Stores the password for `user`, after spending the user's pending reset links (a
    /// link mailed before must not undo what is set now).
    pub async fn store(self, db: &TenantDb, user: Uuid) -> Result<(), ApiError> {
        db.spend_email_tokens(user, EmailTokenPurpose::ResetPassword, Utc::now())
            .await?;
        db.set_password(user, &self.phc).await?;
        Ok(())
    }
}

/// [`NewPassword::prepare`] and [`NewPassword::store`] for an existing `user`.
pub async fn set_password(
    accounts: &Accounts,
    ctx: &TenantContext,
    db: &TenantDb,
    user: &User,
    password: &str,
    field: &str,
) -> Result<(), ApiError> {
    NewPassword::prepare(accounts, ctx, &user.email, password, field)
        .await?
        .store(db, user.id)
        .await
}

/// The public first-party client `client_id` names: the only clients that may log users
/// in (or register them) through the headless API, which asks for no client secret.
pub fn first_party_client<'a>(ctx: &'a TenantContext, client_id: &str) -> Result<&'a Client, ApiError> {
    ctx.client(client_id)
        .filter(|c| c.first_party && c.client_type == ClientType::Public)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidClient,
                "client_id must name a public first-party client of the tenant",
            )
        })
}

/// The scopes asked for, each allowed for the client; `openid` when none are named.
pub fn requested_scope(client: &Client, scope: Option<&str>) -> Result<String, ApiError> {
    let mut scopes: Vec<&str> = Vec::new();
    for s in scope.unwrap_or("openid").split(' ').filter(|s| !s.is_empty()) {
        if !client.scopes.iter().any(|c| c == s) {
            return Err(ApiError::new(
                ErrorCode::InvalidScope,
                format!(
                    "scope `{}` is not allowed for this client",
                    tenantry_errors::printable(s)
                ),
            ));
        }
        if !scopes.contains(&s) {
            scopes.push(s);
        }
    }
    Ok(scopes.join(" "))
}

/// A self-registration: the profile, the credential and, optionally, the first-party
/// client (and scope) to sign the new user in to.
pub struct Registration<'a> {
    pub email: String,
    pub credential: SignUpWith<'a>,
    pub client_id: Option<&'a str>,
    pub scope: Option<&'a str>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub name: Option<String>,
    pub locale: Option<String>,
    pub phone_number: Option<String>,
    pub custom: BTreeMap<String, serde_json::Value>,
}

/// The credential a new account signs in with.
pub enum SignUpWith<'a> {
    /// A password, under the tenant's policy.
    Password(&'a str),
    /// A passkey whose registration was verified (`passkeys::finish_signup`): a
    /// passkey-only account, with no password.
    Passkey(crate::passkeys::VerifiedSignup),
}

/// A new account, and the client and scope to issue its tokens for when the tenant signs
/// new users in at once (`registration_auto_login`, no verified email required, no
/// second factor owed).
#[derive(Debug)]
pub struct Registered<'a> {
    pub user: User,
    pub sign_in: Option<(&'a Client, String)>,
}

/// The checks a new account's profile must pass before anything is spent on it (a
/// password hash, a passkey ceremony): the profile's fields, and the tenant's custom
/// fields — known names, right types, required ones present.
pub fn check_new_account(ctx: &TenantContext, new: &NewUser) -> Result<(), ApiError> {
    tenantry_dataplane::users::profile::check_new_user(new)?;
    ctx.custom_fields().check_values(&new.custom, true)?;
    Ok(())
}

/// Whether the tenant takes self-registrations now: 403 `registration_disabled`; 501 when
/// the address must be verified and the tenant cannot mail.
pub fn registration_open(ctx: &TenantContext) -> Result<(), ApiError> {
    let policy = &ctx.entry.tenant.settings.security;
    if !policy.registration_enabled {
        return Err(ApiError::new(
            ErrorCode::RegistrationDisabled,
            "this tenant does not allow self-registration",
        ));
    }
    // An account that must verify its address but cannot be sent the link would be stuck.
    if policy.require_verified_email {
        ctx.require(Capability::Email)?;
    }
    Ok(())
}

/// Registers a new account under the tenant's policy: 403 `registration_disabled`; 501
/// when the address must be verified and the tenant cannot mail; the per-IP limit; the
/// client and scope; the profile (before the password costs a hash); the password
/// policy; 409 `email_taken`. When the tenant can mail, the verification link goes out
/// before the answer; a mail that does not leave undoes the account.
pub async fn register<'a>(
    accounts: &Accounts,
    ctx: &'a TenantContext,
    ip: Option<IpAddr>,
    registration: Registration<'_>,
) -> Result<Registered<'a>, ApiError> {
    let policy = &ctx.entry.tenant.settings.security;
    registration_open(ctx)?;
    crate::login::per_ip(accounts, ctx, "register", ip, crate::login::REGISTER_PER_IP)
        .await?
        .into_result()?;
    let client = registration
        .client_id
        .map(|id| first_party_client(ctx, id))
        .transpose()?;
    let scope = client.map(|c| requested_scope(c, registration.scope)).transpose()?;
    let new = NewUser {
        email: registration.email,
        email_verified: false,
        username: None,
        given_name: registration.given_name,
        family_name: registration.family_name,
        name: registration.name,
        picture: None,
        locale: registration.locale,
        phone_number: registration.phone_number,
        metadata: None,
        custom: registration.custom,
    };
    // The profile is refused before the password costs a hash.
    check_new_account(ctx, &new)?;
    let passkey_only = matches!(registration.credential, SignUpWith::Passkey(_));
    let password = match &registration.credential {
        SignUpWith::Password(password) => {
            Some(NewPassword::prepare(accounts, ctx, &new.email, password, "password").await?)
        }
        SignUpWith::Passkey(_) => None,
    };
    let db = ctx.db().await?;
    let user = match db.create_user(new, &ctx.custom_fields()).await {
        Ok(user) => user,
        Err(tenantry_dataplane::DbError::Conflict(_)) => {
            return Err(ApiError::new(
                ErrorCode::EmailTaken,
                "an account with this email already exists",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let stored = match (password, registration.credential) {
        (Some(password), _) => password.store(&db, user.id).await,
        (None, SignUpWith::Passkey(passkey)) => crate::passkeys::store_signup(&db, &user, passkey).await,
        (None, SignUpWith::Password(_)) => Err(ApiError::internal()),
    };
    if let Err(e) = stored {
        // No account without its credential: the half-made user goes.
        let _ = db.delete_user(user.id).await;
        return Err(e);
    }
    if ctx.capabilities.email {
        // A mail that does not leave undoes the account: registering again starts afresh.
        crate::account_email::verify_new_account(accounts, ctx, &db, &user, client).await?;
    }
    let sign_in = match (client, scope) {
        (Some(client), Some(scope))
            if policy.registration_auto_login
                && !policy.require_verified_email
                // A new account has no second factor yet: tokens only when none is owed
                // (a user-verified passkey is both factors).
                && (passkey_only
                    || crate::login::decide_second_factor(false, false, policy.mfa_required)
                        == crate::login::Owed::None) =>
        {
            Some((client, scope))
        }
        _ => None,
    };
    Ok(Registered { user, sign_in })
}

/// A signed-in user changes their password: the current one is checked (the
/// re-authentication, counted against the login lockout), the new one set
/// ([`NewPassword`]); every other session ends with its refresh tokens, no device skips
/// the second factor any more, and the `password_changed` notice goes out. The session
/// `current` stays.
pub async fn change_password(
    accounts: &Accounts,
    ctx: &TenantContext,
    db: &TenantDb,
    user: &User,
    current: &Session,
    current_password: &str,
    new_password: &str,
) -> Result<(), ApiError> {
    reauthenticate(accounts, ctx, db, user, current, Proof::password(current_password)).await?;
    set_password(accounts, ctx, db, user, new_password, "new_password").await?;
    let now = Utc::now();
    db.forget_devices(user.id, now).await?;
    for other in db.sessions_of(user.id, now).await? {
        if other.id_hash != current.id_hash {
            db.revoke_refresh_by_session(&other.id_hash, now).await?;
        }
    }
    db.revoke_user_sessions(user.id, Some(&current.id_hash), now).await?;
    crate::events::record(
        db,
        crate::events::Event::by_user("password_changed", tenantry_dataplane::Outcome::Success, user.id),
    )
    .await;
    crate::account_email::notify(
        accounts,
        ctx,
        &user.email,
        crate::account_email::mail_language(ctx, Some(user)),
        MailTemplateKind::PasswordChanged,
        None,
    );
    Ok(())
}

/// How long a re-authentication lets the same login session change the account's
/// factors without another proof.
pub const REAUTH_WINDOW: Duration = Duration::from_secs(300);

/// The proof a factor-changing request carries: the current password, a current
/// second-factor code (TOTP or recovery code), both, or neither.
#[derive(Debug, Default, Clone, Copy)]
pub struct Proof<'a> {
    pub password: Option<&'a str>,
    pub code: Option<&'a str>,
}

impl<'a> Proof<'a> {
    pub fn password(password: &'a str) -> Self {
        Proof {
            password: Some(password),
            code: None,
        }
    }

    pub fn code(code: &'a str) -> Self {
        Proof {
            password: None,
            code: Some(code),
        }
    }
}

fn reauth_key(ctx: &TenantContext, session: &Session) -> String {
    // The session's `sid` (as `tokens::sid` computes it).
    let sid: String = tenantry_crypto::hash_token(&session.id_hash)
        .trim_start_matches("sha256:")
        .chars()
        .take(32)
        .collect();
    format!("reauth:{}:{sid}", ctx.entry.tenant.id)
}

/// The one re-authentication behind every change of the account's factors (password
/// change, TOTP enrolment, confirmation and removal, recovery codes): a bearer token alone
/// never adds, replaces or removes a factor. A proof — the current password
/// (`login::recheck_password`: the admission-controlled hasher, counted against the login
/// lockout) or a current second-factor code (counted per account) — is checked and
/// remembered for this login session for [`REAUTH_WINDOW`]; without one, a proof made by
/// the same session within that window is needed, else 403 `reauthentication_required`.
/// The access token's `auth_time` is not enough: a token stolen minutes after a login
/// would pass.
pub async fn reauthenticate(
    accounts: &Accounts,
    ctx: &TenantContext,
    db: &TenantDb,
    user: &User,
    session: &Session,
    proof: Proof<'_>,
) -> Result<(), ApiError> {
    let key = reauth_key(ctx, session);
    if proof.password.is_none() && proof.code.is_none() {
        // A hit made by a proof leaves the key over a limit of 1 until the window ends.
        if accounts.rate_limiter.check(&key, 1).await?.is_allowed() {
            return Err(ApiError::new(
                ErrorCode::ReauthenticationRequired,
                "confirm it is you: send current_password with this request",
            ));
        }
        return Ok(());
    }
    if let Some(password) = proof.password {
        crate::login::recheck_password(accounts, ctx, db, user, password).await?;
    }
    if let Some(code) = proof.code {
        verify_second_factor(accounts, ctx, db, user, code).await?;
    }
    mark_reauthenticated(accounts, ctx, session).await
}

/// Records a proof for `session` now (the window of [`reauthenticate`] starts afresh):
/// after a check made there, or a sign-in with a user-verified passkey.
pub async fn mark_reauthenticated(accounts: &Accounts, ctx: &TenantContext, session: &Session) -> Result<(), ApiError> {
    let key = reauth_key(ctx, session);
    accounts.rate_limiter.reset(&key).await?;
    accounts.rate_limiter.hit(&key, 1, REAUTH_WINDOW).await?;
    Ok(())
}

/// A TOTP code (or recovery code) of the user's confirmed authenticator, counted against
/// the account's second-factor attempts.
async fn verify_second_factor(
    accounts: &Accounts,
    ctx: &TenantContext,
    db: &TenantDb,
    user: &User,
    code: &str,
) -> Result<(), ApiError> {
    crate::login::mfa_attempt(accounts, ctx, user.id).await?;
    if !crate::mfa::enrolled(db, user.id).await? {
        return Err(ApiError::new(
            ErrorCode::InvalidMfaCode,
            "TOTP is not enabled for this account",
        ));
    }
    let tenant = ctx.entry.tenant.id;
    if !crate::mfa::check_second_factor(&accounts.secrets, db, tenant, user.id, code).await? {
        return Err(ApiError::new(ErrorCode::InvalidMfaCode, "the code is not valid"));
    }
    crate::login::mfa_passed(accounts, ctx, user.id).await
}

/// Starts (or restarts) TOTP enrolment: 409 `mfa_already_enabled` when a confirmed
/// authenticator exists, then the re-authentication ([`reauthenticate`]).
pub async fn enrol_totp(
    accounts: &Accounts,
    ctx: &TenantContext,
    db: &TenantDb,
    user: &User,
    session: &Session,
    proof: Proof<'_>,
) -> Result<crate::mfa::Enrolment, ApiError> {
    if crate::mfa::enrolled(db, user.id).await? {
        return Err(ApiError::new(
            ErrorCode::MfaAlreadyEnabled,
            "TOTP is already enabled; disable it first to enrol a new authenticator",
        ));
    }
    reauthenticate(accounts, ctx, db, user, session, proof).await?;
    crate::mfa::enrol(
        &accounts.secrets,
        db,
        ctx.entry.tenant.id,
        crate::mfa::issuer_name(ctx),
        user.id,
        &user.email,
    )
    .await
}

/// Confirms the pending enrolment with its first `code` (counted against the account's
/// second-factor attempts) after the re-authentication; answers the recovery codes.
pub async fn confirm_totp(
    accounts: &Accounts,
    ctx: &TenantContext,
    db: &TenantDb,
    user: &User,
    session: &Session,
    code: &str,
    proof: Proof<'_>,
) -> Result<Vec<String>, ApiError> {
    reauthenticate(accounts, ctx, db, user, session, proof).await?;
    crate::login::mfa_attempt(accounts, ctx, user.id).await?;
    match crate::mfa::confirm(&accounts.secrets, db, ctx.entry.tenant.id, user.id, code).await? {
        Some(codes) => {
            crate::login::mfa_passed(accounts, ctx, user.id).await?;
            let enabled = crate::events::Event::by_user("mfa_enabled", tenantry_dataplane::Outcome::Success, user.id)
                .with_details(serde_json::json!({ "method": "totp" }));
            crate::events::record(db, enabled).await;
            Ok(codes)
        }
        None => {
            let refused = crate::events::Event::by_user("mfa_enabled", tenantry_dataplane::Outcome::Failure, user.id)
                .with_details(serde_json::json!({ "method": "totp", "reason": "invalid_code" }));
            crate::events::record(db, refused).await;
            Err(ApiError::new(
                ErrorCode::InvalidMfaCode,
                "the code is not valid for the pending enrolment",
            ))
        }
    }
}

/// Removes TOTP: needs both the password and a current code (or recovery code), whatever
/// re-authentication came before.
pub async fn disable_totp(
    accounts: &Accounts,
    ctx: &TenantContext,
    db: &TenantDb,
    user: &User,
    session: &Session,
    password: &str,
    code: &str,
) -> Result<(), ApiError> {
    reauthenticate(accounts, ctx, db, user, session, Proof::password(password)).await?;
    reauthenticate(accounts, ctx, db, user, session, Proof::code(code)).await?;
    crate::mfa::disable(db, user.id).await?;
    let disabled = crate::events::Event::by_user("mfa_disabled", tenantry_dataplane::Outcome::Success, user.id)
        .with_details(serde_json::json!({ "method": "totp" }));
    crate::events::record(db, disabled).await;
    Ok(())
}

/// New recovery codes (the old ones stop working), with a current second-factor code as
/// the re-authentication: a password alone must not mint codes that stand in for it.
pub async fn regenerate_recovery_codes(
    accounts: &Accounts,
    ctx: &TenantContext,
    db: &TenantDb,
    user: &User,
    session: &Session,
    code: &str,
) -> Result<Vec<String>, ApiError> {
    reauthenticate(accounts, ctx, db, user, session, Proof::code(code)).await?;
    crate::mfa::regenerate_recovery_codes(db, user.id).await
}

/// The user's live sessions.
pub async fn sessions(db: &TenantDb, user: Uuid) -> Result<Vec<Session>, ApiError> {
    Ok(db.sessions_of(user, Utc::now()).await?)
}

/// A user changes their own profile (`/v1/auth/me`): a phone number typed anew is not
/// verified; every value is checked before anything is written, then custom fields (the
/// part the database can still refuse: uniqueness), so a refusal changes nothing.
/// Answers the user as it is now.
pub async fn update_own_profile(
    ctx: &TenantContext,
    db: &TenantDb,
    user: &User,
    mut update: tenantry_dataplane::model::ProfileUpdate,
    custom: Option<&BTreeMap<String, serde_json::Value>>,
) -> Result<User, ApiError> {
    let phone_changed = update
        .phone_number
        .as_ref()
        .is_some_and(|n| user.phone_number.as_ref() != Some(n));
    update.phone_number_verified = phone_changed.then_some(false);
    tenantry_dataplane::users::profile::check_update(&update, custom)?;
    if let Some(custom) = custom {
        db.set_custom_fields(user.id, custom, &ctx.custom_fields()).await?;
    }
    db.update_profile(user.id, update).await?;
    tenantry_tenancy::users::active_user(ctx, db, user.id)
        .await?
        .ok_or_else(ApiError::internal)
}

/// How long a second-factor challenge (`mfa_token`) stays valid.
pub const MFA_TOKEN_TTL: Duration = Duration::from_secs(300);

/// A pending second factor, sealed for the tenant: who, for which client and scope, until when.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct MfaChallenge {
    /// Spent by the login it completes (`mfa_token:{tenant}:{jti}` in the rate limiter's store).
    jti: String,
    pub user: Uuid,
    pub client_id: String,
    pub scope: String,
    expires_at: i64,
}

fn challenge_seal(ctx: &TenantContext) -> String {
    ctx.entry.tenant.id.to_string()
}

fn invalid_challenge() -> ApiError {
    ApiError::new(ErrorCode::InvalidGrant, "the mfa_token is invalid or expired")
}

fn challenge_key(ctx: &TenantContext, challenge: &MfaChallenge) -> String {
    format!("mfa_token:{}:{}", ctx.entry.tenant.id, challenge.jti)
}

impl MfaChallenge {
    /// A new challenge for `user`, sealed as the `mfa_token` (valid for [`MFA_TOKEN_TTL`]).
    pub fn issue(accounts: &Accounts, ctx: &TenantContext, user: Uuid, client_id: &str, scope: String) -> String {
        let challenge = MfaChallenge {
            jti: tenantry_crypto::random_token(16),
            user,
            client_id: client_id.to_owned(),
            scope,
            expires_at: Utc::now().timestamp() + MFA_TOKEN_TTL.as_secs() as i64,
        };
        let owner = challenge_seal(ctx);
        let json = serde_json::to_string(&challenge).unwrap_or_default();
        accounts
            .secrets
            .seal(tenantry_crypto::SealContext::new(&owner, "mfa_challenge"), &json)
    }

    /// The challenge an `mfa_token` seals, if it is the tenant's, unexpired and not yet
    /// spent (400 `invalid_grant` otherwise).
    pub async fn open(accounts: &Accounts, ctx: &TenantContext, token: &str) -> Result<Self, ApiError> {
        let owner = challenge_seal(ctx);
        let json = accounts
            .secrets
            .open(tenantry_crypto::SealContext::new(&owner, "mfa_challenge"), token)
            .map_err(|_| invalid_challenge())?;
        let challenge: MfaChallenge = serde_json::from_str(&json).map_err(|_| invalid_challenge())?;
        if challenge.expires_at < Utc::now().timestamp() {
            return Err(invalid_challenge());
        }
        let key = challenge_key(ctx, &challenge);
        if !accounts.rate_limiter.check(&key, 1).await?.is_allowed() {
            return Err(ApiError::new(ErrorCode::InvalidGrant, "the mfa_token was already used"));
        }
        Ok(challenge)
    }

    /// Spends the challenge: the login it completed cannot be completed again.
    pub async fn spend(&self, accounts: &Accounts, ctx: &TenantContext) -> Result<(), ApiError> {
        accounts
            .rate_limiter
            .hit(&challenge_key(ctx, self), 1, MFA_TOKEN_TTL)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::login::tests::{PASSWORD, tenant_with};
    use crate::login::{Accepted, LoginError, SessionOrigin};

    const NEW_PASSWORD: &str = "a new and longer one";

    async fn session(ctx: &TenantContext, db: &TenantDb, user: &User) -> Session {
        let authentication = crate::login::Authentication::new(user.clone(), crate::login::Method::Password);
        crate::login::start_session(ctx, db, &authentication, &SessionOrigin::default())
            .await
            .unwrap()
            .0
    }

    async fn reset_link(db: &TenantDb, user: &User) -> String {
        let token = tenantry_crypto::random_token(32);
        let now = Utc::now();
        db.store_email_token(&tenantry_dataplane::model::EmailToken {
            token_hash: tenantry_crypto::hash_token(&token),
            user_id: user.id,
            purpose: EmailTokenPurpose::ResetPassword.as_str().to_owned(),
            email: user.email.clone(),
            created_at: now,
            expires_at: now + chrono::Duration::hours(1),
            used_at: None,
        })
        .await
        .unwrap();
        token
    }

    async fn logs_in(accounts: &Accounts, ctx: &TenantContext, db: &TenantDb, password: &str) -> bool {
        match crate::login::password_login(accounts, ctx, db, "ada@example.com", password, None, None).await {
            Ok(Accepted::Complete(_)) => true,
            Err(LoginError::BadCredentials) => false,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_password_change_refuses_a_policy_violating_password_and_changes_nothing() {
        let (_dir, accounts, ctx, db, user) = tenant_with(|_| {}).await;
        let current = session(&ctx, &db, &user).await;
        let other = session(&ctx, &db, &user).await;
        let refused = change_password(&accounts, &ctx, &db, &user, &current, PASSWORD, "short")
            .await
            .unwrap_err();
        assert_eq!(refused.code, ErrorCode::ValidationFailed);
        assert!(logs_in(&accounts, &ctx, &db, PASSWORD).await);
        let live = sessions(&db, user.id).await.unwrap();
        assert!(live.iter().any(|s| s.id_hash == other.id_hash), "no one was signed out");
    }

    #[tokio::test]
    async fn a_password_change_needs_the_current_password() {
        let (_dir, accounts, ctx, db, user) = tenant_with(|_| {}).await;
        let current = session(&ctx, &db, &user).await;
        let refused = change_password(&accounts, &ctx, &db, &user, &current, "wrong", NEW_PASSWORD)
            .await
            .unwrap_err();
        assert_eq!(refused.code, ErrorCode::InvalidCredentials);
        assert!(logs_in(&accounts, &ctx, &db, PASSWORD).await);
    }

    #[tokio::test]
    async fn a_password_change_signs_out_other_sessions_and_spends_reset_links() {
        let (_dir, accounts, ctx, db, user) = tenant_with(|_| {}).await;
        let current = session(&ctx, &db, &user).await;
        let other = session(&ctx, &db, &user).await;
        let link = reset_link(&db, &user).await;
        change_password(&accounts, &ctx, &db, &user, &current, PASSWORD, NEW_PASSWORD)
            .await
            .unwrap();
        let live: Vec<String> = sessions(&db, user.id)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.id_hash)
            .collect();
        assert_eq!(live.len(), 1, "only the session that changed it stays");
        assert_eq!(live[0], current.id_hash);
        assert_ne!(other.id_hash, current.id_hash);
        assert!(logs_in(&accounts, &ctx, &db, NEW_PASSWORD).await);
        assert!(!logs_in(&accounts, &ctx, &db, PASSWORD).await);
        // The link mailed before cannot undo the change.
        let reset = crate::account_email::reset_password(&accounts, &ctx, &db, &link, "yet another password", "p")
            .await
            .unwrap_err();
        assert_eq!(reset.code, ErrorCode::InvalidGrant);
    }

    #[tokio::test]
    async fn set_password_applies_the_policy_and_spends_reset_links() {
        let (_dir, accounts, ctx, db, user) = tenant_with(|_| {}).await;
        let link = reset_link(&db, &user).await;
        let refused = set_password(&accounts, &ctx, &db, &user, "short", "password")
            .await
            .unwrap_err();
        assert_eq!(refused.code, ErrorCode::ValidationFailed);
        // A refusal spends nothing.
        crate::account_email::reset_target(&ctx, &db, &link).await.unwrap();
        set_password(&accounts, &ctx, &db, &user, NEW_PASSWORD, "password")
            .await
            .unwrap();
        assert!(logs_in(&accounts, &ctx, &db, NEW_PASSWORD).await);
        let spent = crate::account_email::reset_target(&ctx, &db, &link).await.unwrap_err();
        assert_eq!(spent.code, ErrorCode::InvalidGrant);
    }

    fn registration<'a>(email: &str, password: &'a str) -> Registration<'a> {
        Registration {
            email: email.to_owned(),
            credential: SignUpWith::Password(password),
            client_id: None,
            scope: None,
            given_name: None,
            family_name: None,
            name: None,
            locale: None,
            phone_number: None,
            custom: BTreeMap::new(),
        }
    }

    #[tokio::test]
    async fn registration_refuses_a_taken_email_a_weak_password_and_a_closed_tenant() {
        let (_dir, accounts, ctx, db, _user) = tenant_with(|s| s.security.registration_enabled = true).await;
        let taken = register(&accounts, &ctx, None, registration("ada@example.com", NEW_PASSWORD))
            .await
            .unwrap_err();
        assert_eq!(taken.code, ErrorCode::EmailTaken);
        let weak = register(&accounts, &ctx, None, registration("bob@example.com", "short"))
            .await
            .unwrap_err();
        assert_eq!(weak.code, ErrorCode::ValidationFailed);
        let registered = register(&accounts, &ctx, None, registration("bob@example.com", NEW_PASSWORD))
            .await
            .unwrap();
        assert!(registered.sign_in.is_none(), "no client, no tokens");
        assert!(!registered.user.email_verified);
        let login = crate::login::password_login(&accounts, &ctx, &db, "bob@example.com", NEW_PASSWORD, None, None)
            .await
            .unwrap();
        assert!(matches!(login, Accepted::Complete(_)), "{login:?}");

        let (_dir, accounts, ctx, _db, _user) = tenant_with(|_| {}).await;
        let closed = register(&accounts, &ctx, None, registration("bob@example.com", NEW_PASSWORD))
            .await
            .unwrap_err();
        assert_eq!(closed.code, ErrorCode::RegistrationDisabled);
    }

    #[tokio::test]
    async fn a_factor_change_needs_a_recent_proof_from_the_same_session() {
        let (_dir, accounts, ctx, db, user) = tenant_with(|_| {}).await;
        let current = session(&ctx, &db, &user).await;
        let other = session(&ctx, &db, &user).await;
        let none = Proof::default();
        let refused = enrol_totp(&accounts, &ctx, &db, &user, &current, none)
            .await
            .unwrap_err();
        assert_eq!(refused.code, ErrorCode::ReauthenticationRequired);
        reauthenticate(&accounts, &ctx, &db, &user, &current, Proof::password(PASSWORD))
            .await
            .unwrap();
        // Within the window the same session needs no new proof; another session does.
        let enrolment = enrol_totp(&accounts, &ctx, &db, &user, &current, none).await.unwrap();
        let elsewhere = confirm_totp(&accounts, &ctx, &db, &user, &other, "000000", none)
            .await
            .unwrap_err();
        assert_eq!(elsewhere.code, ErrorCode::ReauthenticationRequired);
        let code = crate::mfa::code_now(&enrolment.secret);
        let codes = confirm_totp(&accounts, &ctx, &db, &user, &current, &code, none)
            .await
            .unwrap();
        assert_eq!(codes.len(), crate::mfa::RECOVERY_CODE_COUNT);
        let again = enrol_totp(&accounts, &ctx, &db, &user, &current, none)
            .await
            .unwrap_err();
        assert_eq!(again.code, ErrorCode::MfaAlreadyEnabled);
        // Recovery codes need a second factor, not the password window.
        let wrong = regenerate_recovery_codes(&accounts, &ctx, &db, &user, &current, "000000")
            .await
            .unwrap_err();
        assert_eq!(wrong.code, ErrorCode::InvalidMfaCode);
        // Removing TOTP needs the password and a code; a recovery code serves.
        disable_totp(&accounts, &ctx, &db, &user, &current, PASSWORD, &codes[0])
            .await
            .unwrap();
        assert!(!crate::mfa::enrolled(&db, user.id).await.unwrap());
    }

    #[tokio::test]
    async fn an_mfa_token_is_spent_once() {
        let (_dir, accounts, ctx, _db, user) = tenant_with(|_| {}).await;
        let token = MfaChallenge::issue(&accounts, &ctx, user.id, "app", "openid".into());
        let challenge = MfaChallenge::open(&accounts, &ctx, &token).await.unwrap();
        assert_eq!(challenge.user, user.id);
        assert_eq!(challenge.scope, "openid");
        challenge.spend(&accounts, &ctx).await.unwrap();
        let spent = MfaChallenge::open(&accounts, &ctx, &token).await.err().unwrap();
        assert_eq!(spent.code, ErrorCode::InvalidGrant);
        let forged = MfaChallenge::open(&accounts, &ctx, "nope").await.err().unwrap();
        assert_eq!(forged.code, ErrorCode::InvalidGrant);
    }
}
