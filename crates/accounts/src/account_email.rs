//! The account flows that go through the user's mailbox, behind both front doors (the
//! headless API and the hosted pages of the HTTP crate): verifying an email address, resetting a forgotten password, and the notices that a
//! password changed or an account was locked.
//!
//! - Tokens are 256-bit random values, stored only as `hash_token` digests in the tenant
//!   database (`email_tokens`) with their purpose, the user and the address they were
//!   sent to. They work once and expire: [`VERIFY_TTL`] (48 h) for a verification,
//!   [`RESET_TTL`] (1 h) for a reset. A token is only good while the account still has
//!   the address it was sent to.
//! - Links are `{issuer}/verify-email?token=…` and `{issuer}/reset-password?token=…`:
//!   hosted pages that show a form first (a GET never spends a token, so mail scanners
//!   that prefetch links do no harm), and the form posts with a CSRF token.
//! - Asking for a mail ([`request_link`]: the API and the hosted forgot-password page)
//!   answers the same whether or not the account exists: the
//!   lookup, the per-recipient limit and the send happen in the background, so neither the
//!   answer nor its timing tells accounts apart. Failures are logged (tenant and template,
//!   never the address, link or token).
//! - A password reset spends every other reset link of the account: a link from an older
//!   mail cannot undo it.
//! - Notices (`password_changed`, `account_locked`) are best effort: they never fail the
//!   action they report, which has already happened. They carry the link to the hosted
//!   forgot-password page, for a reader who did not do what they report.

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use chrono::Utc;
use tenantry_controlplane::model::{Client, Language, MailTemplateKind};
use tenantry_crypto::{hash_token, random_token};
use tenantry_dataplane::model::{EmailToken, EmailTokenPurpose, ProfileUpdate, User};
use tenantry_dataplane::{EmailTokenRepository, TenantDb, UserRepository};

use crate::Accounts;
use crate::ratelimit::Decision;
use tenantry_errors::{ApiError, ErrorCode};
use tenantry_mail::MailVars;
use tenantry_tenancy::users::{active_user, active_user_by_email};
use tenantry_tenancy::{Capability, TenantContext};

/// How long a verification link works.
pub const VERIFY_TTL: Duration = Duration::from_secs(48 * 3600);
/// How long a password-reset link works.
pub const RESET_TTL: Duration = Duration::from_secs(3600);

/// Path of the hosted verification page under the issuer.
pub const VERIFY_PATH: &str = "verify-email";
/// Path of the hosted password-reset page under the issuer.
pub const RESET_PATH: &str = "reset-password";
/// Path of the hosted "forgot password" page under the issuer.
pub const FORGOT_PATH: &str = "forgot-password";
/// Path of the hosted page that confirms a new address of an account.
pub const CHANGE_EMAIL_PATH: &str = "change-email";

/// Mails of one flow (verification resend, password reset) one address may be sent per
/// tenant and window. The per-IP limits do not stop many callers from flooding one inbox.
pub const MAILS_PER_RECIPIENT: (u32, Duration) = (3, Duration::from_secs(900));

/// Token checks (the link pages, `verify-email/confirm`, `password/reset`) one IP address
/// may make per tenant and window. A 256-bit token cannot be guessed; the limit keeps a
/// client from turning the checks into free database reads.
pub const TOKEN_CHECKS_PER_IP: (u32, Duration) = (30, Duration::from_secs(900));

/// Counts one token check from `ip` (429 `rate_limited` past [`TOKEN_CHECKS_PER_IP`]).
pub async fn count_token_check(accounts: &Accounts, ctx: &TenantContext, ip: Option<IpAddr>) -> Result<(), ApiError> {
    crate::login::per_ip(accounts, ctx, "email_token", ip, TOKEN_CHECKS_PER_IP)
        .await?
        .into_result()
}

/// The problem for a token that is unknown, used, expired or no longer fits the account.
pub fn invalid_token() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidGrant,
        "the link is invalid, has expired or was already used; ask for a new one",
    )
}

/// The link of a verification or reset mail: `{issuer}/verify-email?token=…` /
/// `{issuer}/reset-password?token=…` (the hosted pages), or, when the request named a
/// first-party `client` with its own page for the flow (`verify_email_url`,
/// `reset_password_url`), that page with `token` added to its query.
pub fn link(ctx: &TenantContext, client: Option<&Client>, purpose: EmailTokenPurpose, token: &str) -> String {
    let app_url = match purpose {
        EmailTokenPurpose::VerifyEmail => client.and_then(|c| c.verify_email_url.as_deref()),
        EmailTokenPurpose::ResetPassword => client.and_then(|c| c.reset_password_url.as_deref()),
        EmailTokenPurpose::ChangeEmail => None,
    };
    let path = page_path(purpose);
    // The client's page (validated as an absolute URI when the client was saved) keeps its
    // own query parameters; the token is one more.
    if let Some(mut url) = app_url.and_then(|u| url::Url::parse(u).ok()) {
        url.query_pairs_mut().append_pair("token", token);
        return url.into();
    }
    let encoded: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
    format!("{}/{path}?token={encoded}", ctx.issuer)
}

/// The hosted page of a link for `purpose`, under the issuer.
pub fn page_path(purpose: EmailTokenPurpose) -> &'static str {
    match purpose {
        EmailTokenPurpose::VerifyEmail => VERIFY_PATH,
        EmailTokenPurpose::ResetPassword => RESET_PATH,
        EmailTokenPurpose::ChangeEmail => CHANGE_EMAIL_PATH,
    }
}

/// `{issuer}/forgot-password?ui_locales={lang}`, the page in the language of the mail or
/// page that links to it.
pub fn forgot_link(ctx: &TenantContext, lang: Language) -> String {
    format!("{}/{FORGOT_PATH}?ui_locales={}", ctx.issuer, lang.as_str())
}

/// The language of a user's mail: the user's locale when we speak it, else the tenant's.
pub fn mail_language(ctx: &TenantContext, user: Option<&User>) -> Language {
    tenantry_mail::language(
        user.and_then(|u| u.locale.as_deref()),
        ctx.entry.tenant.settings.language,
    )
}

fn same_address(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// Stores a new token of `purpose` for `user`, bound to `address` (the account's own, or
/// the new one of an address change), and answers the token itself, which only the mail
/// will carry.
async fn issue_token(
    db: &TenantDb,
    user: &User,
    address: &str,
    purpose: EmailTokenPurpose,
    ttl: Duration,
) -> Result<String, ApiError> {
    let token = random_token(32);
    let now = Utc::now();
    let ttl = chrono::Duration::from_std(ttl).map_err(|_| ApiError::internal())?;
    db.store_email_token(&EmailToken {
        token_hash: hash_token(&token),
        user_id: user.id,
        purpose: purpose.as_str().to_owned(),
        email: address.to_owned(),
        created_at: now,
        expires_at: now + ttl,
        used_at: None,
    })
    .await?;
    Ok(token)
}

/// Sends `user` a verification link (48 h, single use; to `client`'s page when it has
/// one, see [`link`]) and waits for the SMTP server to take it: 501 without SMTP settings,
/// 502 when the mail is not accepted.
pub async fn start_verification(
    accounts: &Accounts,
    ctx: &TenantContext,
    db: &TenantDb,
    user: &User,
    client: Option<&Client>,
) -> Result<(), ApiError> {
    send_link(
        accounts,
        ctx,
        db,
        user,
        &user.email,
        client,
        EmailTokenPurpose::VerifyEmail,
    )
    .await
}

/// Issues a token for `purpose` and mails its link to `address` (the account's, or the
/// new one of an address change), waiting for the SMTP server.
async fn send_link(
    accounts: &Accounts,
    ctx: &TenantContext,
    db: &TenantDb,
    user: &User,
    address: &str,
    client: Option<&Client>,
    purpose: EmailTokenPurpose,
) -> Result<(), ApiError> {
    ctx.require(Capability::Email)?;
    let (ttl, kind) = match purpose {
        // An address change is a verification of the new address.
        EmailTokenPurpose::VerifyEmail | EmailTokenPurpose::ChangeEmail => (VERIFY_TTL, MailTemplateKind::VerifyEmail),
        EmailTokenPurpose::ResetPassword => (RESET_TTL, MailTemplateKind::ResetPassword),
    };
    let token = issue_token(db, user, address, purpose, ttl).await?;
    let vars = MailVars {
        user_email: address.to_owned(),
        link: Some(link(ctx, client, purpose, &token)),
        expires_in: Some(ttl),
    };
    let lang = mail_language(ctx, Some(user));
    accounts
        .mailer
        .send(&accounts.secrets, ctx, address, kind, lang, &vars)
        .await
}

/// Checks what every "mail me" request needs before anything is looked up: SMTP settings
/// (501), the per-IP limit of `action` (429), a well-formed address (422), the tenant
/// database.
async fn mail_request(
    accounts: &Accounts,
    ctx: &TenantContext,
    action: &str,
    ip: Option<std::net::IpAddr>,
    limit: (u32, Duration),
    email: &str,
) -> Result<TenantDb, ApiError> {
    ctx.require(Capability::Email)?;
    crate::login::per_ip(accounts, ctx, action, ip, limit)
        .await?
        .into_result()?;
    if tenantry_mail::parse_recipient(email.trim()).is_err() {
        return Err(ApiError::field("email", "must be an email address (local@domain)"));
    }
    ctx.db().await
}

/// Whether `user` may be sent one more mail of `flow` now (counted per tenant and digest
/// of the normalized address, never the address itself). Over the limit the mail is
/// skipped and logged without the address; the caller's answer was the same already.
async fn recipient_allowed(
    accounts: &Accounts,
    ctx: &TenantContext,
    flow: &str,
    kind: MailTemplateKind,
    user: &User,
) -> Result<bool, ApiError> {
    let key = format!(
        "{flow}:recipient:{}:{}",
        ctx.entry.tenant.id,
        crate::login::account_key(&user.email)
    );
    let (limit, window) = MAILS_PER_RECIPIENT;
    match accounts.rate_limiter.hit(&key, limit, window).await? {
        Decision::Allowed { .. } => Ok(true),
        Decision::Limited { .. } => {
            tracing::info!(
                tenant = %ctx.slug(),
                kind = kind.as_str(),
                "account mail skipped: the recipient's limit is reached"
            );
            Ok(false)
        }
    }
}

/// "Mail me a link", behind `POST /v1/auth/verify-email/resend`, `POST
/// /v1/auth/password/forgot` and the hosted forgot-password page: checks the request
/// (`mail_request`: SMTP, the flow's per-IP limit, the address), then, in the
/// background, mails a new link for `purpose` (to `client`'s page when it has one) if
/// `email` is an active account that needs it (a verification only while the address is
/// unverified) and is within [`MAILS_PER_RECIPIENT`]. `Ok` says nothing about the account.
pub async fn request_link(
    accounts: &Accounts,
    ctx: &TenantContext,
    ip: Option<std::net::IpAddr>,
    email: String,
    client: Option<Client>,
    purpose: EmailTokenPurpose,
) -> Result<(), ApiError> {
    let (flow, limit, kind) = match purpose {
        EmailTokenPurpose::VerifyEmail => (
            "verify_resend",
            crate::login::VERIFY_RESEND_PER_IP,
            MailTemplateKind::VerifyEmail,
        ),
        EmailTokenPurpose::ResetPassword => (
            "password_forgot",
            crate::login::FORGOT_PER_IP,
            MailTemplateKind::ResetPassword,
        ),
        EmailTokenPurpose::ChangeEmail => {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "an address change is asked for by its signed-in account",
            ));
        }
    };
    let db = mail_request(accounts, ctx, flow, ip, limit, &email).await?;
    let (accounts, task_ctx) = (accounts.clone(), ctx.clone());
    in_background(ctx, kind, async move {
        let ctx = task_ctx;
        let user = active_user_by_email(&ctx, &db, &email).await?;
        let needed = |u: &User| purpose == EmailTokenPurpose::ResetPassword || !u.email_verified;
        let Some(user) = user.filter(needed) else {
            return Ok(());
        };
        if !recipient_allowed(&accounts, &ctx, flow, kind, &user).await? {
            return Ok(());
        }
        send_link(&accounts, &ctx, &db, &user, &user.email, client.as_ref(), purpose).await
    });
    Ok(())
}

/// Spends a verification token and marks the address verified. The token must be
/// unused, unexpired and for the address the account still has; anything else is 400
/// `invalid_grant` and changes nothing (a token for an old address is spent regardless).
pub async fn confirm_verification(ctx: &TenantContext, db: &TenantDb, token: &str) -> Result<User, ApiError> {
    let spent = db
        .use_email_token(&hash_token(token), EmailTokenPurpose::VerifyEmail, Utc::now())
        .await?
        .ok_or_else(invalid_token)?;
    let user = active_user(ctx, db, spent.user_id)
        .await?
        .filter(|u| same_address(&u.email, &spent.email))
        .ok_or_else(invalid_token)?;
    if !user.email_verified {
        let update = ProfileUpdate {
            email_verified: Some(true),
            ..Default::default()
        };
        db.update_profile(user.id, update).await?;
        let verified = crate::events::Event::by_user("email_verified", tenantry_dataplane::Outcome::Success, user.id);
        crate::events::record(db, verified).await;
    }
    tracing::info!(tenant = %ctx.slug(), "email address verified");
    active_user(ctx, db, user.id).await?.ok_or_else(ApiError::internal)
}

/// [`start_verification`] for an account made by this very request: when the mail does
/// not leave, the account goes again (with its token) and the mail's error is answered, so
/// no account is left whose link never left. It runs in a task of its own, so a caller
/// who goes away mid-send cannot leave the account half made either.
pub async fn verify_new_account(
    accounts: &Accounts,
    ctx: &TenantContext,
    db: &TenantDb,
    user: &User,
    client: Option<&Client>,
) -> Result<(), ApiError> {
    let (accounts, ctx, db, user, client) = (accounts.clone(), ctx.clone(), db.clone(), user.clone(), client.cloned());
    let task = tokio::spawn(async move {
        let sent = start_verification(&accounts, &ctx, &db, &user, client.as_ref()).await;
        if sent.is_err()
            && let Err(e) = db.delete_user(user.id).await
        {
            tracing::error!(tenant = %ctx.slug(), error = %e, "a new account was not undone after a failed mail");
        }
        sent
    });
    task.await.map_err(|_| ApiError::internal())?
}

/// Mails `user` a password-reset link (1 h, single use) now: the second half of "forgot
/// password", and what an administrator sends to an account (one made without a password,
/// say). 501 without SMTP settings, the mail's error when it does not leave.
pub async fn send_reset(
    accounts: &Accounts,
    ctx: &TenantContext,
    db: &TenantDb,
    user: &User,
    client: Option<&Client>,
) -> Result<(), ApiError> {
    send_link(
        accounts,
        ctx,
        db,
        user,
        &user.email,
        client,
        EmailTokenPurpose::ResetPassword,
    )
    .await
}

/// Address changes one account may ask for per window: each mails a stranger's inbox
/// perhaps, so fewer than the other flows.
pub const EMAIL_CHANGES_PER_ACCOUNT: (u32, Duration) = (5, Duration::from_secs(3600));

/// A signed-in account asks to change its address to `new_email`: a link (48 h, single
/// use) goes to the new address, and the address changes only when it is opened there
/// ([`confirm_email_change`]). Checked first: SMTP (501), a well-formed address that is
/// not the current one (422 on `email`), the account's limit (429). Whether another
/// account has the address is not told here (only a confirmation can find out, and it
/// is refused then), so the form cannot be used to find accounts.
pub async fn start_email_change(
    accounts: &Accounts,
    ctx: &TenantContext,
    db: &TenantDb,
    user: &User,
    new_email: &str,
) -> Result<(), ApiError> {
    ctx.require(Capability::Email)?;
    let new_email = new_email.trim();
    if new_email.len() > 254 || tenantry_mail::parse_recipient(new_email).is_err() {
        return Err(ApiError::field("email", "must be an email address (local@domain)"));
    }
    if same_address(new_email, &user.email) {
        return Err(ApiError::field("email", "is the account's address already"));
    }
    let key = format!("email_change:{}:{}", ctx.entry.tenant.id, user.id);
    let (limit, window) = EMAIL_CHANGES_PER_ACCOUNT;
    if let Decision::Limited { retry_after } = accounts.rate_limiter.hit(&key, limit, window).await? {
        return Err(ApiError::rate_limited(retry_after.as_secs().max(1)));
    }
    send_link(accounts, ctx, db, user, new_email, None, EmailTokenPurpose::ChangeEmail).await
}

/// The account an address-change token is for and the new address, without spending it
/// (400 `invalid_grant` when it is unknown, used or expired).
pub async fn change_target(ctx: &TenantContext, db: &TenantDb, token: &str) -> Result<(User, String), ApiError> {
    let found = db
        .email_token(&hash_token(token), EmailTokenPurpose::ChangeEmail, Utc::now())
        .await?
        .ok_or_else(invalid_token)?;
    let user = active_user(ctx, db, found.user_id).await?.ok_or_else(invalid_token)?;
    Ok((user, found.email))
}

/// Spends an address-change token and gives the account its new address, verified (it
/// was opened from that inbox); the account's other address-change links are spent. 400 `invalid_grant` for a bad token; 409 `email_taken`
/// when another account has the address by now (the token is spent, nothing changed).
pub async fn confirm_email_change(ctx: &TenantContext, db: &TenantDb, token: &str) -> Result<User, ApiError> {
    let spent = db
        .use_email_token(&hash_token(token), EmailTokenPurpose::ChangeEmail, Utc::now())
        .await?
        .ok_or_else(invalid_token)?;
    let user = active_user(ctx, db, spent.user_id).await?.ok_or_else(invalid_token)?;
    let taken = ApiError::new(ErrorCode::EmailTaken, "another account has this address");
    if db
        .user_by_email(&spent.email, &ctx.custom_fields())
        .await?
        .is_some_and(|other| other.id != user.id)
    {
        return Err(taken);
    }
    let update = ProfileUpdate {
        email: Some(spent.email.clone()),
        email_verified: Some(true),
        ..Default::default()
    };
    match db.update_profile(user.id, update).await {
        Ok(()) => {}
        Err(tenantry_dataplane::DbError::Conflict(_)) => return Err(taken),
        Err(e) => return Err(e.into()),
    }
    // A link of an earlier request (to another address) cannot undo this one.
    db.spend_email_tokens(user.id, EmailTokenPurpose::ChangeEmail, Utc::now())
        .await?;
    let changed = crate::events::Event::by_user("email_changed", tenantry_dataplane::Outcome::Success, user.id);
    crate::events::record(db, changed).await;
    tracing::info!(tenant = %ctx.slug(), "account address changed");
    active_user(ctx, db, user.id).await?.ok_or_else(ApiError::internal)
}

/// The account a reset token is for, without spending it (400 `invalid_grant` when it is
/// unknown, used, expired, or for an address the account no longer has).
pub async fn reset_target(ctx: &TenantContext, db: &TenantDb, token: &str) -> Result<User, ApiError> {
    pending_target(ctx, db, token, EmailTokenPurpose::ResetPassword).await
}

/// The account a verification token is for, without spending it (as [`reset_target`]).
pub async fn verification_target(ctx: &TenantContext, db: &TenantDb, token: &str) -> Result<User, ApiError> {
    pending_target(ctx, db, token, EmailTokenPurpose::VerifyEmail).await
}

async fn pending_target(
    ctx: &TenantContext,
    db: &TenantDb,
    token: &str,
    purpose: EmailTokenPurpose,
) -> Result<User, ApiError> {
    let found = db
        .email_token(&hash_token(token), purpose, Utc::now())
        .await?
        .ok_or_else(invalid_token)?;
    active_user(ctx, db, found.user_id)
        .await?
        .filter(|u| same_address(&u.email, &found.email))
        .ok_or_else(invalid_token)
}

/// Sets a new password with a reset token. The token is checked first and spent only
/// once the new password passed the tenant policy and was hashed (so a refused password
/// can be corrected with the same link). Then the user's other reset links are spent,
/// every session and refresh token of the user ends, trusted devices are forgotten, the
/// lockout counter is cleared, and the `password_changed` notice goes out (best effort).
///
/// Errors: 400 `invalid_grant` (bad token; nothing changed), 422 `validation_failed` on
/// `field` (policy), 503 `overloaded` (hashing saturated).
pub async fn reset_password(
    accounts: &Accounts,
    ctx: &TenantContext,
    db: &TenantDb,
    token: &str,
    new_password: &str,
    field: &str,
) -> Result<User, ApiError> {
    let user = reset_target(ctx, db, token).await?;
    let password = crate::account::NewPassword::prepare(accounts, ctx, &user.email, new_password, field).await?;
    let now = Utc::now();
    let spent = db
        .use_email_token(&hash_token(token), EmailTokenPurpose::ResetPassword, now)
        .await?
        .ok_or_else(invalid_token)?;
    if spent.user_id != user.id {
        return Err(invalid_token());
    }
    // Before the password changes, the other reset links are spent: no older mail's link
    // may set another one afterwards.
    password.store(db, user.id).await?;
    // Whoever knew the old password is out.
    crate::login::sign_out_everywhere(db, user.id, now).await?;
    if let Err(e) = crate::login::clear_lockout(accounts, ctx, &user.email).await {
        // The password is changed; the lock ends with its window.
        tracing::warn!(tenant = %ctx.slug(), code = e.code.as_str(), "lockout not cleared after a password reset");
    }
    tracing::info!(tenant = %ctx.slug(), "password reset with an email link");
    let reset = crate::events::Event::by_user("password_reset", tenantry_dataplane::Outcome::Success, user.id)
        .with_details(serde_json::json!({ "method": "email_link" }));
    crate::events::record(db, reset).await;
    notify(
        accounts,
        ctx,
        &user.email,
        mail_language(ctx, Some(&user)),
        MailTemplateKind::PasswordChanged,
        None,
    );
    Ok(user)
}

/// Sends a notice about something that already happened, in the background, when the
/// tenant has SMTP settings. A failure is logged, never answered.
pub fn notify(
    accounts: &Accounts,
    ctx: &TenantContext,
    to: &str,
    lang: Language,
    kind: MailTemplateKind,
    expires_in: Option<Duration>,
) {
    if !ctx.capabilities.email {
        return;
    }
    let (accounts, ctx, to) = (accounts.clone(), ctx.clone(), to.to_owned());
    tokio::spawn(async move { send_notice(&accounts, &ctx, &to, lang, kind, expires_in).await });
}

/// Sends a notice now, with the link to the forgot-password page for a reader who did not
/// do what it reports; a failure is logged, never answered.
pub async fn send_notice(
    accounts: &Accounts,
    ctx: &TenantContext,
    to: &str,
    lang: Language,
    kind: MailTemplateKind,
    expires_in: Option<Duration>,
) {
    let vars = MailVars {
        user_email: to.to_owned(),
        link: Some(forgot_link(ctx, lang)),
        expires_in,
    };
    if let Err(e) = accounts
        .mailer
        .send(&accounts.secrets, ctx, to, kind, lang, &vars)
        .await
    {
        log_failure(ctx, kind, &e);
    }
}

fn log_failure(ctx: &TenantContext, kind: MailTemplateKind, e: &ApiError) {
    tracing::warn!(
        tenant = %ctx.slug(),
        kind = kind.as_str(),
        code = e.code.as_str(),
        detail = %e.detail,
        "account mail not sent"
    );
}

/// Runs `work` after the response; a failure is logged.
fn in_background<F>(ctx: &TenantContext, kind: MailTemplateKind, work: F)
where
    F: Future<Output = Result<(), ApiError>> + Send + 'static,
{
    let ctx = ctx.clone();
    tokio::spawn(async move {
        if let Err(e) = work.await {
            log_failure(&ctx, kind, &e);
        }
    });
}
