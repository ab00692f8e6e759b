//! The second step of a login behind both front doors: a TOTP code (or a recovery code,
//! or the first code of a pending enrolment), counted per account so guesses are capped.
//! A passkey as second factor is `passkeys::finish_second_factor` (nothing to guess, so
//! nothing counted here).

use tenantry_dataplane::model::User;
use tenantry_dataplane::{Outcome, TenantDb};
use tenantry_errors::ApiError;
use tenantry_tenancy::TenantContext;

use super::{Authentication, MFA_ATTEMPTS, completed};
use crate::Accounts;
use crate::events;

fn mfa_key(ctx: &TenantContext, user: uuid::Uuid) -> String {
    format!("mfa:account:{}:{user}", ctx.entry.tenant.id)
}

/// Counts one second-factor attempt and refuses it once the account has used up its
/// attempts for the window (429 with `Retry-After`).
pub async fn mfa_attempt(accounts: &Accounts, ctx: &TenantContext, user: uuid::Uuid) -> Result<(), ApiError> {
    // Counted before the code is checked, so a burst of parallel guesses cannot all pass
    // a read-only check first.
    let (limit, window) = MFA_ATTEMPTS;
    accounts
        .rate_limiter
        .hit(&mfa_key(ctx, user), limit, window)
        .await?
        .into_result()
}

/// A correct second factor: the account's attempts start over.
pub async fn mfa_passed(accounts: &Accounts, ctx: &TenantContext, user: uuid::Uuid) -> Result<(), ApiError> {
    Ok(accounts.rate_limiter.reset(&mfa_key(ctx, user)).await?)
}

/// What a code submitted for a login's second factor did.
#[derive(Debug)]
pub enum CodeCheck {
    /// The login is complete.
    Passed(Authentication),
    /// The first code of a new enrolment: it is confirmed, the login is complete, and these
    /// recovery codes are shown once.
    Enrolled {
        authentication: Authentication,
        recovery_codes: Vec<String>,
    },
    /// Wrong, stale or replayed; `enrolling` when the user was confirming a new enrolment
    /// (a page shows it again).
    Refused { enrolling: bool },
}

/// The second step of a login, behind both front doors: counts the attempt against the
/// account ([`MFA_ATTEMPTS`], 429 past it), checks `code` — against the confirmed
/// authenticator (or as a recovery code), or, while an enrolment is pending, as its first
/// code (which confirms it) — and forgets the count once it passed. A passed code
/// completes the login ([`Method::PasswordAndSecondFactor`](super::Method::PasswordAndSecondFactor)).
pub async fn second_factor_step(
    accounts: &Accounts,
    ctx: &TenantContext,
    db: &TenantDb,
    user: &User,
    code: &str,
) -> Result<CodeCheck, ApiError> {
    use tenantry_dataplane::MfaRepository;
    mfa_attempt(accounts, ctx, user.id).await?;
    let tenant = ctx.entry.tenant.id;
    let secrets = &accounts.secrets;
    let checked = match db.totp(user.id).await? {
        Some(credential) if credential.confirmed_at.is_some() => {
            if crate::mfa::check_second_factor(secrets, db, tenant, user.id, code).await? {
                CodeCheck::Passed(completed(user))
            } else {
                CodeCheck::Refused { enrolling: false }
            }
        }
        Some(_) => match crate::mfa::confirm(secrets, db, tenant, user.id, code).await? {
            Some(recovery_codes) => CodeCheck::Enrolled {
                authentication: completed(user),
                recovery_codes,
            },
            None => CodeCheck::Refused { enrolling: true },
        },
        None => CodeCheck::Refused { enrolling: false },
    };
    if !matches!(checked, CodeCheck::Refused { .. }) {
        mfa_passed(accounts, ctx, user.id).await?;
    }
    let recovery_code = code.trim().len() != 6;
    let event = match &checked {
        CodeCheck::Passed(_) if recovery_code => {
            events::Event::by_user("recovery_code_used", Outcome::Success, user.id)
        }
        CodeCheck::Passed(_) => events::Event::by_user("second_factor", Outcome::Success, user.id)
            .with_details(serde_json::json!({ "method": "totp" })),
        CodeCheck::Enrolled { .. } => events::Event::by_user("mfa_enabled", Outcome::Success, user.id)
            .with_details(serde_json::json!({ "method": "totp", "at_login": true })),
        CodeCheck::Refused { enrolling } => events::Event::by_user("second_factor", Outcome::Failure, user.id)
            .with_details(serde_json::json!({ "enrolling": enrolling })),
    };
    events::record(db, event).await;
    Ok(checked)
}
