//! Passkeys in the hosted login: the first and only factor on the login page (a button,
//! and conditional mediation — the browser offers the user's passkeys in the email
//! field's autofill), and the second factor after a password on the MFA page.
//!
//! The login page's script asks for its options (`POST {issuer}/login/passkey`, the step's
//! form with its CSRF token), so only a browser that can use a passkey makes a challenge
//! row, and each address may ask [`OPTIONS_PER_IP`](passkeys::OPTIONS_PER_IP) times a minute. Every challenge is
//! bound to the interaction's CSRF value, which only this browser holds, and the
//! assertion comes back in the step's form as `passkey`. The ceremonies themselves are
//! `tenantry_accounts::passkeys`, the same as behind the headless API.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tenantry_accounts::login::{Authentication, CodeCheck};
use tenantry_accounts::passkeys::{self, Purpose};
use tenantry_dataplane::TenantDb;
use tenantry_dataplane::model::User;
use tenantry_tenancy::TenantContext;

use super::{Interaction, open_step};
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::web::SessionOrigin;
use crate::web::csrf::{CsrfForm, CsrfRejection};

/// Sign-in options for the login page's passkey button and autofill: no allowed
/// credentials (the authenticator offers its discoverable ones), user verification
/// required, bound to the interaction.
pub(super) async fn login_options(
    ctx: TenantContext,
    State(state): State<AppState>,
    origin: SessionOrigin,
    form: Result<CsrfForm, CsrfRejection>,
) -> Response {
    let (_, interaction) = match open_step(&state, &ctx, form) {
        Ok(opened) => opened,
        Err(page) => return *page,
    };
    let started = async {
        passkeys::count_options(&state.accounts, &ctx, origin.ip).await?;
        let db = ctx.db().await?;
        passkeys::start_authentication(&ctx, &db, Purpose::Login, None, Some(&interaction.csrf), Value::Null).await
    };
    match started.await {
        Ok(options) => Json(options).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The login form posted with a passkey's assertion for [`login_options`]: the complete
/// login, or `passkey_refused` (a credential that is not even JSON included) or
/// `email_not_verified`.
pub(super) async fn sign_in(
    state: &AppState,
    ctx: &TenantContext,
    db: &TenantDb,
    interaction: &Interaction,
    credential: &str,
) -> Result<Authentication, ApiError> {
    let credential: Value = serde_json::from_str(credential)
        .map_err(|_| ApiError::new(ErrorCode::PasskeyRefused, "the passkey was not accepted"))?;
    let binding = Some(interaction.csrf.as_str());
    let (authentication, _) = passkeys::finish_sign_in(&state.accounts, ctx, db, binding, &credential).await?;
    Ok(authentication)
}

/// WebAuthn options for the second-factor page of a user with passkeys, bound to this
/// login's interaction (its CSRF value, which only this browser holds); `None` without
/// passkeys, or when the options cannot be made (the code form still works).
pub(super) async fn second_factor_options(
    ctx: &TenantContext,
    db: &TenantDb,
    user: &User,
    binding: &str,
) -> Option<Value> {
    if !passkeys::has_passkey(db, user.id).await.ok()? {
        return None;
    }
    let started =
        passkeys::start_authentication(ctx, db, Purpose::SecondFactor, Some(user), Some(binding), Value::Null);
    match started.await {
        Ok(options) => serde_json::to_value(options).ok(),
        Err(e) => {
            tracing::warn!(code = e.code.as_str(), "passkey options for the second factor not made");
            None
        }
    }
}

/// The second factor given with a passkey: the assertion posted with the MFA form, bound
/// to the login's CSRF value. Every refusal shows the page again.
pub(super) async fn second_factor(
    ctx: &TenantContext,
    db: &TenantDb,
    user: &User,
    binding: &str,
    credential: &str,
) -> Result<CodeCheck, ApiError> {
    let Ok(credential) = serde_json::from_str::<Value>(credential) else {
        return Ok(CodeCheck::Refused { enrolling: false });
    };
    match passkeys::finish_second_factor(ctx, db, user, binding, &credential).await {
        Ok(authentication) => Ok(CodeCheck::Passed(authentication)),
        Err(e) if e.code == ErrorCode::PasskeyRefused => Ok(CodeCheck::Refused { enrolling: false }),
        Err(e) => Err(e),
    }
}
