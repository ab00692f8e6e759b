//! The second factor through the headless API: the login's second step
//! (`POST /v1/auth/mfa`, and `complete_mfa`, the end of it for every factor) and the
//! caller's TOTP authenticator and recovery codes (`/v1/auth/mfa/totp`,
//! `/v1/auth/mfa/recovery-codes`), each change behind the one re-authentication.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use tenantry_accounts::account::{self, MfaChallenge, Proof};
use tenantry_accounts::login::{Authentication, CodeCheck};
use tenantry_accounts::mfa::Enrolment;
use tenantry_dataplane::TenantDb;
use tenantry_tenancy::TenantContext;
use tenantry_tenancy::users::active_user;
use utoipa::ToSchema;

use super::{Caller, MfaAnswer, ProofBody, RecoveryCodes, sign_in};
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::web::{ApiJson, OptionalApiJson, SessionOrigin};
use tenantry_accounts::account::first_party_client;

/// The second step of a login.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MfaBody {
    mfa_token: String,
    code: String,
    /// Ask for a `device_token` that skips the second factor on later logins (when the
    /// tenant offers it: `mfa_remember_device_days`).
    #[serde(default)]
    remember_device: bool,
}

/// Completes a login with a TOTP code or a recovery code (for an enrolment, the first TOTP
/// code, and the answer carries the recovery codes once).
#[utoipa::path(post, path = "/v1/auth/mfa", tag = "auth",
    request_body = MfaBody,
    responses((status = 200, body = MfaAnswer),
        (status = 400, description = "`invalid_grant`: the `mfa_token` is invalid, expired or spent"),
        (status = 401, description = "`invalid_mfa_code`: the code is not valid")))]
pub(super) async fn mfa(
    ctx: TenantContext,
    State(state): State<AppState>,
    origin: SessionOrigin,
    ApiJson(body): ApiJson<MfaBody>,
) -> Result<Json<MfaAnswer>, ApiError> {
    let challenge = MfaChallenge::open(&state.accounts, &ctx, &body.mfa_token).await?;
    // Checked before the code, so a caller whose client is gone uses up no attempt.
    first_party_client(&ctx, &challenge.client_id)?;
    let db = ctx.db().await?;
    let user = active_user(&ctx, &db, challenge.user)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidGrant, "the mfa_token is invalid or expired"))?;
    let (authentication, recovery_codes) =
        match tenantry_accounts::login::second_factor_step(&state.accounts, &ctx, &db, &user, &body.code).await? {
            CodeCheck::Passed(authentication) => (authentication, None),
            CodeCheck::Enrolled {
                authentication,
                recovery_codes,
            } => (authentication, Some(recovery_codes)),
            CodeCheck::Refused { .. } => {
                return Err(ApiError::new(ErrorCode::InvalidMfaCode, "the code is not valid"));
            }
        };
    let finished = FinishedSecondFactor {
        authentication,
        recovery_codes,
        remember_device: body.remember_device,
    };
    complete_mfa(&state, &ctx, &db, challenge, &origin, finished)
        .await
        .map(Json)
}

/// A second factor that passed, with what the caller asked for beside it.
pub(super) struct FinishedSecondFactor {
    pub(super) authentication: Authentication,
    pub(super) recovery_codes: Option<Vec<String>>,
    pub(super) remember_device: bool,
}

/// The end of a login's second step, whatever the factor: the `mfa_token` is spent, the
/// session and its tokens are made, and the device is remembered when asked.
pub(super) async fn complete_mfa(
    state: &AppState,
    ctx: &TenantContext,
    db: &TenantDb,
    challenge: MfaChallenge,
    origin: &SessionOrigin,
    finished: FinishedSecondFactor,
) -> Result<MfaAnswer, ApiError> {
    let client = first_party_client(ctx, &challenge.client_id)?;
    challenge.spend(&state.accounts, ctx).await?;
    let user = finished.authentication.user.id;
    let tokens = sign_in(ctx, db, client, &finished.authentication, &challenge.scope, origin).await?;
    let days = ctx.entry.tenant.settings.security.mfa_remember_device_days;
    let device_token = if finished.remember_device && days > 0 {
        Some(tenantry_accounts::mfa::remember_device(db, user, days, None).await?)
    } else {
        None
    };
    Ok(MfaAnswer {
        tokens,
        recovery_codes: finished.recovery_codes,
        device_token,
    })
}

/// Starts (or restarts) TOTP enrolment: the authenticator to set up; its first code
/// (`POST /v1/auth/mfa/totp/confirm`) confirms it. Needs a fresh re-authentication: the
/// body may be left out shortly after one.
#[utoipa::path(post, path = "/v1/auth/mfa/totp", tag = "auth",
    security(("user_access_token" = [])),
    request_body(content = Option<ProofBody>, description = "Optional: the current password"),
    responses((status = 200, body = Enrolment),
        (status = 403, description = "`reauthentication_required`: send the current password")))]
pub(super) async fn totp_enrol(
    ctx: TenantContext,
    State(state): State<AppState>,
    caller: Caller,
    OptionalApiJson(proof): OptionalApiJson<ProofBody>,
) -> Result<Json<Enrolment>, ApiError> {
    let proof = Proof {
        password: proof.current_password.as_deref(),
        code: None,
    };
    let enrolment =
        account::enrol_totp(&state.accounts, &ctx, &caller.db, &caller.user, &caller.session, proof).await?;
    Ok(Json(enrolment))
}

/// The first code of a pending TOTP enrolment.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfirmBody {
    /// A code of the authenticator being enrolled (not a proof of the caller).
    code: String,
    #[serde(default)]
    current_password: Option<String>,
}

/// Confirms the pending enrolment with its first code; answers the recovery codes once.
/// Needs a fresh re-authentication (the password here, or a recent one such as the
/// enrolment's).
#[utoipa::path(post, path = "/v1/auth/mfa/totp/confirm", tag = "auth",
    security(("user_access_token" = [])),
    request_body = ConfirmBody,
    responses((status = 200, body = RecoveryCodes),
        (status = 403, description = "`reauthentication_required`: send the current password")))]
pub(super) async fn totp_confirm(
    ctx: TenantContext,
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ConfirmBody>,
) -> Result<Json<RecoveryCodes>, ApiError> {
    let proof = Proof {
        password: body.current_password.as_deref(),
        code: None,
    };
    let codes = account::confirm_totp(
        &state.accounts,
        &ctx,
        &caller.db,
        &caller.user,
        &caller.session,
        &body.code,
        proof,
    )
    .await?;
    Ok(Json(RecoveryCodes { recovery_codes: codes }))
}

/// The password and a current code (or a recovery code).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DisableBody {
    /// Also accepted as `password`.
    #[serde(alias = "password")]
    current_password: String,
    code: String,
}

/// Removes the caller's TOTP authenticator and recovery codes: needs both the password and
/// a current code (or recovery code), whatever re-authentication came before.
#[utoipa::path(delete, path = "/v1/auth/mfa/totp", tag = "auth",
    security(("user_access_token" = [])),
    request_body = DisableBody,
    responses((status = 204, description = "TOTP is off")))]
pub(super) async fn totp_disable(
    ctx: TenantContext,
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<DisableBody>,
) -> Result<StatusCode, ApiError> {
    account::disable_totp(
        &state.accounts,
        &ctx,
        &caller.db,
        &caller.user,
        &caller.session,
        &body.current_password,
        &body.code,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A current TOTP code.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RecoveryBody {
    code: String,
}

/// New recovery codes (the old ones stop working), with a current TOTP code as the
/// re-authentication: a password alone must not mint codes that stand in for the second
/// factor.
#[utoipa::path(post, path = "/v1/auth/mfa/recovery-codes", tag = "auth",
    security(("user_access_token" = [])),
    request_body = RecoveryBody,
    responses((status = 200, body = RecoveryCodes)))]
pub(super) async fn recovery_codes(
    ctx: TenantContext,
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<RecoveryBody>,
) -> Result<Json<RecoveryCodes>, ApiError> {
    let codes = account::regenerate_recovery_codes(
        &state.accounts,
        &ctx,
        &caller.db,
        &caller.user,
        &caller.session,
        &body.code,
    )
    .await?;
    Ok(Json(RecoveryCodes { recovery_codes: codes }))
}
