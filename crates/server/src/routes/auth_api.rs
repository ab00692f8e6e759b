//! The headless authentication API for first-party apps (`/v1/auth/...`): register,
//! login (tokens, or a second-factor challenge), the MFA step, refresh, logout, the
//! caller's profile, password and sessions, TOTP enrolment, and the mail flows (verify an
//! email address, forgot / reset a password; the work is `tenantry_accounts::account_email`'s).
//!
//! It is the hosted login's other front door: the password check is
//! `tenantry_accounts::login::password_login`, the second factor its `second_factor_step`,
//! and a completed login's `Authentication` opens the session; the tokens are the very JWTs the token endpoint
//! issues (`grants::user_token_body`). Only first-party clients of the tenant may log users
//! in here. Calls for "me" take the access token as a bearer and need its login session
//! (`sid`) not to have ended, so logging out ends them at once; calls that change a factor
//! also need a fresh re-authentication (`account::reauthenticate`). Errors are RFC 9457 problems.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use tenantry_controlplane::model::Client;
use tenantry_dataplane::TenantDb;
use tenantry_dataplane::model::{ProfileUpdate, Session, User};

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::web::bearer::{Bearer, challenge};
use crate::web::{ApiJson, ClientIp, OptionalApiJson, SessionOrigin};
use tenantry_accounts::account::{
    self, MFA_TOKEN_TTL, MfaChallenge, Proof, Registration, first_party_client, requested_scope,
};
use tenantry_accounts::login::{Accepted, Authentication, CodeCheck, LoginError, Method, SecondFactor};
use tenantry_oidc::grants::{RefreshGrant, UserTokens, issue_refresh_token, refresh_body, user_token_body};
use tenantry_tenancy::TenantContext;
use tenantry_tenancy::users::active_user;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/register", post(register))
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/mfa", post(mfa))
        .route("/v1/auth/refresh", post(refresh))
        .route("/v1/auth/logout", post(logout))
        .route("/v1/auth/logout-all", post(logout_all))
        .route("/v1/auth/me", get(me).patch(update_me))
        .route("/v1/auth/password", post(change_password))
        .route("/v1/auth/password/forgot", post(forgot_password))
        .route("/v1/auth/password/reset", post(reset_password))
        .route("/v1/auth/verify-email/resend", post(resend_verification))
        .route("/v1/auth/verify-email/confirm", post(confirm_verification))
        .route("/v1/auth/sessions", get(sessions))
        .route("/v1/auth/sessions/{id}", delete(revoke_session))
        .route("/v1/auth/mfa/totp", post(totp_enrol).delete(totp_disable))
        .route("/v1/auth/mfa/totp/confirm", post(totp_confirm))
        .route("/v1/auth/mfa/recovery-codes", post(recovery_codes))
}

/// A login session for a completed login and the tokens for it (a refresh token when the
/// client may refresh).
async fn sign_in(
    ctx: &TenantContext,
    db: &TenantDb,
    client: &Client,
    authentication: &Authentication,
    scope: &str,
    origin: &SessionOrigin,
) -> Result<Value, ApiError> {
    let (session, _) = tenantry_accounts::login::start_session(ctx, db, authentication, origin).await?;
    let user = &authentication.user;
    let now = session.auth_time;
    let refresh = RefreshGrant {
        client,
        user_id: user.id,
        scope,
        session_id_hash: Some(&session.id_hash),
        origin_code_hash: None,
        auth_time: now,
        amr: &session.amr,
    };
    let refresh_token = issue_refresh_token(ctx, db, refresh).await?;
    user_token_body(
        ctx,
        UserTokens {
            client,
            user,
            scope,
            session_id_hash: Some(&session.id_hash),
            nonce: None,
            auth_time: now,
            acr: None,
            amr: &session.amr,
            refresh_token,
            access_jti: None,
        },
    )
    .await
    .map_err(|e| e.into_problem())
}

fn login_problem(e: LoginError) -> ApiError {
    let secs = |d: std::time::Duration| d.as_secs().max(1);
    match e {
        LoginError::BadCredentials => {
            ApiError::new(ErrorCode::InvalidCredentials, "the email or password is not correct")
        }
        LoginError::Locked { retry_after } => {
            ApiError::new(ErrorCode::AccountLocked, "too many failed attempts; try again later")
                .with_retry_after(secs(retry_after))
        }
        LoginError::RateLimited { retry_after } => ApiError::rate_limited(secs(retry_after)),
        LoginError::EmailNotVerified => ApiError::new(
            ErrorCode::EmailNotVerified,
            "verify the email address before logging in",
        ),
        LoginError::Unavailable(e) => e,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    email: String,
    password: String,
    client_id: String,
    #[serde(default)]
    scope: Option<String>,
    /// A trusted-device token from an earlier `POST /v1/auth/mfa` with `remember_device`.
    #[serde(default)]
    device_token: Option<String>,
}

/// `POST /v1/auth/login`: tokens, or `{"mfa_required": true, "mfa_token": ...}` (with an
/// `enrolment` to set up when the tenant requires a second factor the user lacks).
async fn login(
    ctx: TenantContext,
    State(state): State<AppState>,
    origin: SessionOrigin,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Response, ApiError> {
    let ip = origin.ip;
    let client = first_party_client(&ctx, &body.client_id)?;
    let scope = requested_scope(client, body.scope.as_deref())?;
    let db = ctx.db().await?;
    let device = body.device_token.as_deref();
    let accepted =
        tenantry_accounts::login::password_login(&state.accounts, &ctx, &db, &body.email, &body.password, ip, device)
            .await
            .map_err(login_problem)?;
    let (user, enrolment) = match accepted {
        Accepted::Complete(authentication) => {
            return Ok(Json(sign_in(&ctx, &db, client, &authentication, &scope, &origin).await?).into_response());
        }
        Accepted::SecondFactor {
            user,
            owed: SecondFactor::Challenge,
        } => (user, None),
        Accepted::SecondFactor {
            user,
            owed: SecondFactor::Enrol(enrolment),
        } => (user, Some(enrolment)),
    };
    let mfa_token = MfaChallenge::issue(&state.accounts, &ctx, user.id, &client.client_id, scope);
    let mut answer = json!({
        "mfa_required": true,
        "mfa_token": mfa_token,
        "expires_in": MFA_TOKEN_TTL.as_secs(),
    });
    if let Some(enrolment) = enrolment {
        answer["enrolment"] =
            json!({"secret": enrolment.secret, "otpauth_uri": enrolment.otpauth_uri, "qr_svg": enrolment.qr_svg});
    }
    Ok(Json(answer).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MfaBody {
    mfa_token: String,
    code: String,
    /// Ask for a `device_token` that skips the second factor on later logins (when the
    /// tenant offers it: `mfa_remember_device_days`).
    #[serde(default)]
    remember_device: bool,
}

/// `POST /v1/auth/mfa`: completes a login with a TOTP code or a recovery code (for an
/// enrolment, the first TOTP code, and the answer carries the recovery codes once).
async fn mfa(
    ctx: TenantContext,
    State(state): State<AppState>,
    origin: SessionOrigin,
    ApiJson(body): ApiJson<MfaBody>,
) -> Result<Json<Value>, ApiError> {
    let challenge = MfaChallenge::open(&state.accounts, &ctx, &body.mfa_token).await?;
    let client = first_party_client(&ctx, &challenge.client_id)?;
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
    challenge.spend(&state.accounts, &ctx).await?;
    let mut tokens = sign_in(&ctx, &db, client, &authentication, &challenge.scope, &origin).await?;
    if let Some(codes) = recovery_codes {
        tokens["recovery_codes"] = json!(codes);
    }
    let days = ctx.entry.tenant.settings.security.mfa_remember_device_days;
    if body.remember_device && days > 0 {
        tokens["device_token"] = json!(tenantry_accounts::mfa::remember_device(&db, user.id, days, None).await?);
    }
    Ok(Json(tokens))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
    client_id: String,
    #[serde(default)]
    scope: Option<String>,
}

/// `POST /v1/auth/refresh`: the token endpoint's rotation (reuse revokes the family).
async fn refresh(ctx: TenantContext, ApiJson(body): ApiJson<RefreshBody>) -> Result<Json<Value>, ApiError> {
    let client = first_party_client(&ctx, &body.client_id)?;
    refresh_body(&ctx, client, &body.refresh_token, body.scope.as_deref())
        .await
        .map(Json)
        .map_err(|e| e.into_problem())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    email: String,
    password: String,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    given_name: Option<String>,
    family_name: Option<String>,
    name: Option<String>,
    locale: Option<String>,
    phone_number: Option<String>,
    #[serde(default)]
    custom: BTreeMap<String, Value>,
}

/// `POST /v1/auth/register`: a new account under the tenant's password policy and custom
/// fields; with `registration_auto_login` and a `client_id`, tokens at once (unless the
/// email must be verified first). When the tenant has SMTP settings the verification mail
/// goes out before the answer; if it is not accepted, the account is removed again and the
/// mail's error answered. With `require_verified_email` and no SMTP: 501, nothing made.
async fn register(
    ctx: TenantContext,
    State(state): State<AppState>,
    origin: SessionOrigin,
    ApiJson(body): ApiJson<RegisterBody>,
) -> Result<Response, ApiError> {
    let registration = Registration {
        email: body.email,
        password: &body.password,
        client_id: body.client_id.as_deref(),
        scope: body.scope.as_deref(),
        given_name: body.given_name,
        family_name: body.family_name,
        name: body.name,
        locale: body.locale,
        phone_number: body.phone_number,
        custom: body.custom,
    };
    let registered = tenantry_accounts::account::register(&state.accounts, &ctx, origin.ip, registration).await?;
    let mut answer = json!({ "user": registered.user });
    if let Some((client, scope)) = registered.sign_in {
        let db = ctx.db().await?;
        let authentication = Authentication::new(registered.user, Method::Password);
        answer["tokens"] = sign_in(&ctx, &db, client, &authentication, &scope, &origin).await?;
    }
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// The caller of a "me" endpoint: an access token of a first-party client that passes the
/// one token rule (`tokens::accept_access_token`) and names a login session.
struct Caller {
    user: User,
    session: Session,
    db: TenantDb,
}

impl axum::extract::FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        let unauthorized = |why: &str| {
            let mut e = ApiError::new(ErrorCode::Unauthorized, why.to_owned());
            e.challenge = Some(challenge(None, Some("invalid_token")));
            e
        };
        let ctx = parts
            .extensions
            .get::<TenantContext>()
            .cloned()
            .ok_or_else(ApiError::internal)?;
        let Bearer(token) = Bearer::required(&parts.headers)
            .map_err(|r| r.into_problem(None, "send the access token as a Bearer token"))?;
        let good = match tenantry_oidc::tokens::accept_access_token(&ctx, &token).await {
            Ok(good) => good,
            Err(tenantry_oidc::tokens::BearerError::InvalidToken(why)) => return Err(unauthorized(&why)),
            Err(tenantry_oidc::tokens::BearerError::Unavailable(e)) => return Err(e),
        };
        // Only tokens issued to the tenant's own first-party apps act on the account; a
        // token a third-party client (or a resource server it was sent to) holds does not.
        if !ctx
            .entry
            .clients
            .get(&good.claims.client_id)
            .is_some_and(|c| c.first_party)
        {
            return Err(unauthorized("the token was not issued to a first-party client"));
        }
        let user = good.user.ok_or_else(|| unauthorized("the token is not a user's"))?;
        let session = good
            .session
            .ok_or_else(|| unauthorized("the token has no login session"))?;
        let db = ctx.db().await?;
        Ok(Caller { user, session, db })
    }
}

/// `POST /v1/auth/logout`: ends this login session and its refresh tokens.
async fn logout(caller: Caller) -> Result<StatusCode, ApiError> {
    account::end_this_session(&caller.db, &caller.session.id_hash).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/auth/logout-all`: ends every session and refresh token of the caller, and
/// forgets the devices trusted to skip the second factor.
async fn logout_all(caller: Caller) -> Result<StatusCode, ApiError> {
    let now = Utc::now();
    tenantry_accounts::login::sign_out_everywhere(&caller.db, caller.user.id, now).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(caller: Caller) -> Result<Json<Value>, ApiError> {
    let mfa = tenantry_accounts::mfa::enrolled(&caller.db, caller.user.id).await?;
    let mut body = serde_json::to_value(&caller.user).map_err(|_| ApiError::internal())?;
    body["mfa_enabled"] = json!(mfa);
    Ok(Json(body))
}

/// What a user may change about themselves (email changes go through verification,
/// which is not here).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MeUpdate {
    given_name: Option<String>,
    family_name: Option<String>,
    name: Option<String>,
    picture: Option<String>,
    locale: Option<String>,
    phone_number: Option<String>,
    #[serde(default)]
    custom: Option<BTreeMap<String, Value>>,
}

async fn update_me(
    ctx: TenantContext,
    caller: Caller,
    ApiJson(body): ApiJson<MeUpdate>,
) -> Result<Json<Value>, ApiError> {
    let update = ProfileUpdate {
        given_name: body.given_name,
        family_name: body.family_name,
        name: body.name,
        picture: body.picture,
        locale: body.locale,
        phone_number: body.phone_number,
        ..Default::default()
    };
    let user = account::update_own_profile(&ctx, &caller.db, &caller.user, update, body.custom.as_ref()).await?;
    Ok(Json(serde_json::to_value(user).map_err(|_| ApiError::internal())?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// `POST /v1/auth/password`: needs the current password (always, as the re-authentication
/// of `account::reauthenticate`); ends every other session.
async fn change_password(
    ctx: TenantContext,
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    account::change_password(
        &state.accounts,
        &ctx,
        &caller.db,
        &caller.user,
        &caller.session,
        &body.current_password,
        &body.new_password,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailBody {
    email: String,
    /// A public first-party client whose own page (`verify_email_url`,
    /// `reset_password_url`) the link should open instead of the hosted one.
    #[serde(default)]
    client_id: Option<String>,
}

impl EmailBody {
    fn client(&self, ctx: &TenantContext) -> Result<Option<Client>, ApiError> {
        self.client_id
            .as_deref()
            .map(|id| first_party_client(ctx, id).cloned())
            .transpose()
    }
}

/// The one answer of the endpoints that mail an address if it is an account: the same
/// whether or not it is one.
fn mail_accepted() -> Response {
    let body = json!({
        "status": "accepted",
        "detail": "if this address belongs to an account that needs it, a message is on its way",
    });
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

/// `POST /v1/auth/verify-email/resend` `{"email"}`: 202 in every case (an unknown or
/// already verified address is not told apart); a new link goes out only to an active
/// account whose address is not verified, and not past the per-recipient limit.
async fn resend_verification(
    ctx: TenantContext,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<EmailBody>,
) -> Result<Response, ApiError> {
    let client = body.client(&ctx)?;
    let purpose = tenantry_dataplane::model::EmailTokenPurpose::VerifyEmail;
    tenantry_accounts::account_email::request_link(&state.accounts, &ctx, ip, body.email, client, purpose).await?;
    Ok(mail_accepted())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    token: String,
}

/// `POST /v1/auth/verify-email/confirm` `{"token"}`: `{"email_verified": true}`, or 400
/// `invalid_grant` for a token that is unknown, used, expired or for an older address.
async fn confirm_verification(
    ctx: TenantContext,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<TokenBody>,
) -> Result<Json<Value>, ApiError> {
    tenantry_accounts::account_email::count_token_check(&state.accounts, &ctx, ip).await?;
    let db = ctx.db().await?;
    let user = tenantry_accounts::account_email::confirm_verification(&ctx, &db, &body.token).await?;
    Ok(Json(json!({ "email_verified": user.email_verified })))
}

/// `POST /v1/auth/password/forgot` `{"email"}`: 202 in every case; a reset link (1 h,
/// single use) goes out only to an active account, and not past the per-recipient limit.
/// The hosted `forgot-password` page runs the same `account_email::request_link`.
async fn forgot_password(
    ctx: TenantContext,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<EmailBody>,
) -> Result<Response, ApiError> {
    let client = body.client(&ctx)?;
    let purpose = tenantry_dataplane::model::EmailTokenPurpose::ResetPassword;
    tenantry_accounts::account_email::request_link(&state.accounts, &ctx, ip, body.email, client, purpose).await?;
    Ok(mail_accepted())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    token: String,
    new_password: String,
}

/// `POST /v1/auth/password/reset` `{"token", "new_password"}`: 204; every session and
/// refresh token of the account ends. 400 `invalid_grant` (nothing changed), 422 when the
/// policy refuses the password (the token stays usable).
async fn reset_password(
    ctx: TenantContext,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<ResetBody>,
) -> Result<StatusCode, ApiError> {
    tenantry_accounts::account_email::count_token_check(&state.accounts, &ctx, ip).await?;
    let db = ctx.db().await?;
    tenantry_accounts::account_email::reset_password(
        &state.accounts,
        &ctx,
        &db,
        &body.token,
        &body.new_password,
        "new_password",
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/auth/sessions`: the caller's live sessions; `id` is the session's `sid`.
async fn sessions(caller: Caller) -> Result<Json<Value>, ApiError> {
    let list: Vec<Value> = account::sessions(&caller.db, caller.user.id)
        .await?
        .into_iter()
        .map(|s| {
            json!({
                "id": tenantry_oidc::tokens::sid(&s.id_hash),
                "current": s.id_hash == caller.session.id_hash,
                "auth_time": s.auth_time,
                "amr": s.amr,
                "ip": s.ip,
                "user_agent": s.user_agent,
                "created_at": s.created_at,
                "expires_at": s.expires_at,
            })
        })
        .collect();
    Ok(Json(json!({ "sessions": list })))
}

/// `DELETE /v1/auth/sessions/{id}`: ends one of the caller's sessions.
async fn revoke_session(caller: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    account::end_session(&caller.db, caller.user.id, |s| {
        tenantry_oidc::tokens::sid(&s.id_hash) == id
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/auth/mfa/totp` `{"current_password"}`: starts (or restarts) TOTP enrolment.
/// A fresh re-authentication (`account::reauthenticate`): the body may be left out within
/// `account::REAUTH_WINDOW` of one.
async fn totp_enrol(
    ctx: TenantContext,
    State(state): State<AppState>,
    caller: Caller,
    OptionalApiJson(proof): OptionalApiJson<ProofBody>,
) -> Result<Json<tenantry_accounts::mfa::Enrolment>, ApiError> {
    let proof = Proof {
        password: proof.current_password.as_deref(),
        code: None,
    };
    let enrolment =
        account::enrol_totp(&state.accounts, &ctx, &caller.db, &caller.user, &caller.session, proof).await?;
    Ok(Json(enrolment))
}

/// The re-authentication a factor-changing call may carry.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ProofBody {
    #[serde(default)]
    current_password: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfirmBody {
    /// A code of the authenticator being enrolled (not a proof of the caller).
    code: String,
    #[serde(default)]
    current_password: Option<String>,
}

/// `POST /v1/auth/mfa/totp/confirm` `{"code", "current_password"?}`: the first code of the
/// pending enrolment; answers the recovery codes once. Needs a fresh re-authentication
/// (the password here, or one within `account::REAUTH_WINDOW`, e.g. the enrolment's).
async fn totp_confirm(
    ctx: TenantContext,
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ConfirmBody>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({ "recovery_codes": codes })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DisableBody {
    #[serde(alias = "password")]
    current_password: String,
    code: String,
}

/// `DELETE /v1/auth/mfa/totp` `{"current_password", "code"}`: needs both the password and
/// a current code (or recovery code), whatever re-authentication came before.
async fn totp_disable(
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecoveryBody {
    code: String,
}

/// `POST /v1/auth/mfa/recovery-codes` `{"code"}`: new recovery codes (the old ones stop
/// working), with a current TOTP code as the re-authentication: a password alone must not
/// mint codes that stand in for the second factor.
async fn recovery_codes(
    ctx: TenantContext,
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<RecoveryBody>,
) -> Result<Json<Value>, ApiError> {
    let codes = account::regenerate_recovery_codes(
        &state.accounts,
        &ctx,
        &caller.db,
        &caller.user,
        &caller.session,
        &body.code,
    )
    .await?;
    Ok(Json(json!({ "recovery_codes": codes })))
}
