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
//! Beside this file: the second factor (`mfa`), passkeys (`passkeys`), upstream sign-ins
//! (`upstream`) and the answers' shapes (`answers`).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::Value;
use tenantry_controlplane::model::Client;
use tenantry_dataplane::TenantDb;
use tenantry_dataplane::model::{ProfileUpdate, Session, User};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::web::bearer::{Bearer, challenge};
use crate::web::{ApiJson, ClientIp, SessionOrigin};
use tenantry_accounts::account::{
    self, MFA_TOKEN_TTL, MfaChallenge, Registration, SignUpWith, first_party_client, requested_scope,
};
use tenantry_accounts::login::{Accepted, Authentication, LoginError, Method, SecondFactor};
use tenantry_oidc::grants::{RefreshGrant, UserTokens, issue_refresh_token, refresh_body, user_token_body};
use tenantry_tenancy::TenantContext;

mod answers;
mod mfa;
mod passkeys;
mod upstream;

pub use answers::*;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/register", post(register))
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/mfa", post(mfa::mfa))
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
        .route("/v1/auth/mfa/totp", post(mfa::totp_enrol).delete(mfa::totp_disable))
        .route("/v1/auth/mfa/totp/confirm", post(mfa::totp_confirm))
        .route("/v1/auth/mfa/recovery-codes", post(mfa::recovery_codes))
        .route("/v1/auth/passkeys", get(passkeys::list))
        .route("/v1/auth/passkeys/register/options", post(passkeys::register_options))
        .route("/v1/auth/passkeys/register", post(passkeys::register))
        .route(
            "/v1/auth/passkeys/{id}",
            patch(passkeys::rename).delete(passkeys::remove),
        )
        .route("/v1/auth/passkeys/login/options", post(passkeys::login_options))
        .route("/v1/auth/passkeys/login", post(passkeys::login))
        .route("/v1/auth/mfa/passkey/options", post(passkeys::mfa_options))
        .route("/v1/auth/mfa/passkey", post(passkeys::mfa))
        .route("/v1/auth/register/passkey/options", post(passkeys::signup_options))
        .route("/v1/auth/register/passkey", post(passkeys::signup))
        .route("/v1/auth/upstream/start", post(upstream::upstream_start))
        .route("/v1/auth/me/identities", get(upstream::identities))
        .route(
            "/v1/auth/me/identities/{provider}",
            post(upstream::link_identity).delete(upstream::unlink_identity),
        )
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    register,
    login,
    mfa::mfa,
    refresh,
    logout,
    logout_all,
    me,
    update_me,
    change_password,
    forgot_password,
    reset_password,
    resend_verification,
    confirm_verification,
    sessions,
    revoke_session,
    mfa::totp_enrol,
    mfa::totp_disable,
    mfa::totp_confirm,
    mfa::recovery_codes,
    passkeys::list,
    passkeys::register_options,
    passkeys::register,
    passkeys::rename,
    passkeys::remove,
    passkeys::login_options,
    passkeys::login,
    passkeys::mfa_options,
    passkeys::mfa,
    passkeys::signup_options,
    passkeys::signup,
    upstream::upstream_start,
    upstream::identities,
    upstream::link_identity,
    upstream::unlink_identity,
))]
pub struct Doc;

/// A login session for a completed login and the tokens for it (a refresh token when the
/// client may refresh).
async fn sign_in(
    ctx: &TenantContext,
    db: &TenantDb,
    client: &Client,
    authentication: &Authentication,
    scope: &str,
    origin: &SessionOrigin,
) -> Result<Tokens, ApiError> {
    Ok(sign_in_session(ctx, db, client, authentication, scope, origin).await?.0)
}

/// [`sign_in`], answering the new session too.
async fn sign_in_session(
    ctx: &TenantContext,
    db: &TenantDb,
    client: &Client,
    authentication: &Authentication,
    scope: &str,
    origin: &SessionOrigin,
) -> Result<(Tokens, Session), ApiError> {
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
    let body = user_token_body(
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
    .map_err(|e| e.into_problem())?;
    Ok((Tokens::from_body(body)?, session))
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

/// A password login through a first-party client of the tenant.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    email: String,
    password: String,
    client_id: String,
    /// Space-separated; default: the client's scopes.
    #[serde(default)]
    scope: Option<String>,
    /// A trusted-device token from an earlier `POST /v1/auth/mfa` with `remember_device`.
    #[serde(default)]
    device_token: Option<String>,
}

/// Tokens, or `{"mfa_required": true, "mfa_token": ..., "methods": [...]}` (with an
/// `enrolment` to set up when the tenant requires a second factor the user lacks): a
/// TOTP or recovery code completes it at `POST /v1/auth/mfa`, a passkey at
/// `POST /v1/auth/mfa/passkey`.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth",
    request_body = LoginBody,
    responses((status = 200, body = LoginAnswer),
        (status = 401, description = "`invalid_credentials`: the email or password is not correct"),
        (status = 403, description = "`email_not_verified`: the address must be verified first"),
        (status = 429, description = "`account_locked` or `rate_limited`; `Retry-After` says when to try again",
            headers(("Retry-After" = u64, description = "Seconds to wait")))))]
async fn login(
    ctx: TenantContext,
    State(state): State<AppState>,
    origin: SessionOrigin,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Json<LoginAnswer>, ApiError> {
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
            let tokens = sign_in(&ctx, &db, client, &authentication, &scope, &origin).await?;
            return Ok(Json(LoginAnswer::Tokens(tokens)));
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
    let mut methods = Vec::new();
    if enrolment.is_some() || tenantry_accounts::mfa::enrolled(&db, user.id).await? {
        methods.push(SecondFactorMethod::Totp);
    }
    if enrolment.is_none() && tenantry_accounts::passkeys::has_passkey(&db, user.id).await? {
        methods.push(SecondFactorMethod::Passkey);
    }
    let mfa_token = MfaChallenge::issue(&state.accounts, &ctx, user.id, &client.client_id, scope);
    Ok(Json(LoginAnswer::MfaRequired(MfaRequired {
        mfa_required: true,
        mfa_token,
        expires_in: MFA_TOKEN_TTL.as_secs(),
        methods,
        enrolment,
    })))
}

/// A refresh token to rotate.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
    client_id: String,
    /// No wider than the scope first granted.
    #[serde(default)]
    scope: Option<String>,
}

/// The token endpoint's rotation: new tokens; the refresh token sent is spent (its reuse
/// revokes the whole family).
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth",
    request_body = RefreshBody,
    responses((status = 200, body = Tokens),
        (status = 400, description = "`invalid_grant` or `invalid_scope`")))]
async fn refresh(ctx: TenantContext, ApiJson(body): ApiJson<RefreshBody>) -> Result<Json<Tokens>, ApiError> {
    let client = first_party_client(&ctx, &body.client_id)?;
    let body = refresh_body(&ctx, client, &body.refresh_token, body.scope.as_deref())
        .await
        .map_err(|e| e.into_problem())?;
    Tokens::from_body(body).map(Json)
}

/// A new account: the address and password, optionally a first-party client to log in
/// through, profile claims and the tenant's custom fields.
#[derive(Deserialize, ToSchema)]
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
    /// Values of the tenant's custom fields, by field name.
    #[serde(default)]
    custom: BTreeMap<String, Value>,
}

/// A new account under the tenant's password policy and custom fields; with
/// `registration_auto_login` and a `client_id`, tokens at once (unless the email must be
/// verified first). When the tenant has SMTP settings the verification mail goes out
/// before the answer; if it is not accepted, the account is removed again and the mail's
/// error answered. With `require_verified_email` and no SMTP: 501, nothing made.
#[utoipa::path(post, path = "/v1/auth/register", tag = "auth",
    request_body = RegisterBody,
    responses((status = 201, body = Registered),
        (status = 403, description = "`registration_disabled`: the tenant does not allow self-registration"),
        (status = 501, description = "`email_not_configured`: the address must be verified and the tenant cannot mail"),
        (status = 502, description = "`email_send_failed`: the mail server did not accept the verification mail; nothing was made")))]
async fn register(
    ctx: TenantContext,
    State(state): State<AppState>,
    origin: SessionOrigin,
    ApiJson(body): ApiJson<RegisterBody>,
) -> Result<Response, ApiError> {
    let registration = Registration {
        email: body.email,
        credential: SignUpWith::Password(&body.password),
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
    let user = registered.user;
    let tokens = match registered.sign_in {
        Some((client, scope)) => {
            let db = ctx.db().await?;
            let authentication = Authentication::new(user.clone(), Method::Password);
            Some(sign_in(&ctx, &db, client, &authentication, &scope, &origin).await?)
        }
        None => None,
    };
    Ok((StatusCode::CREATED, Json(Registered { user, tokens })).into_response())
}

/// The caller of a "me" endpoint: an access token of a first-party client that passes the
/// one token rule (`tokens::accept_access_token`) and names a login session.
struct Caller {
    user: User,
    session: Session,
    db: TenantDb,
    /// The first-party client the token was issued to.
    client_id: String,
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
        if !ctx.client(&good.claims.client_id).is_some_and(|c| c.first_party) {
            return Err(unauthorized("the token was not issued to a first-party client"));
        }
        let user = good.user.ok_or_else(|| unauthorized("the token is not a user's"))?;
        let session = good
            .session
            .ok_or_else(|| unauthorized("the token has no login session"))?;
        let db = ctx.db().await?;
        Ok(Caller {
            user,
            session,
            db,
            client_id: good.claims.client_id.clone(),
        })
    }
}

/// Ends this login session and its refresh tokens (and with them the access token); the
/// session's apps are told by back-channel logout.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth",
    security(("user_access_token" = [])),
    responses((status = 204, description = "The session ended")))]
async fn logout(ctx: TenantContext, State(state): State<AppState>, caller: Caller) -> Result<StatusCode, ApiError> {
    tenantry_oidc::logout::end_session(&ctx, &caller.db, &caller.session, state.config.outbound).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends every session and refresh token of the caller (each session's apps told by
/// back-channel logout), and forgets the devices trusted to skip the second factor.
#[utoipa::path(post, path = "/v1/auth/logout-all", tag = "auth",
    security(("user_access_token" = [])),
    responses((status = 204, description = "Every session ended")))]
async fn logout_all(ctx: TenantContext, State(state): State<AppState>, caller: Caller) -> Result<StatusCode, ApiError> {
    let (db, user) = (&caller.db, caller.user.id);
    tenantry_oidc::logout::end_sessions_of(&ctx, db, user, |_| true, state.config.outbound).await?;
    tenantry_accounts::login::sign_out_everywhere(db, user, Utc::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's profile.
#[utoipa::path(get, path = "/v1/auth/me", tag = "auth",
    security(("user_access_token" = [])),
    responses((status = 200, body = MeView)))]
async fn me(caller: Caller) -> Result<Json<MeView>, ApiError> {
    let mfa_enabled = tenantry_accounts::mfa::enrolled(&caller.db, caller.user.id).await?;
    Ok(Json(MeView {
        user: caller.user,
        mfa_enabled,
    }))
}

/// What a user may change about themselves (email changes go through verification,
/// which is not here); absent fields stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MeUpdate {
    given_name: Option<String>,
    family_name: Option<String>,
    name: Option<String>,
    picture: Option<String>,
    locale: Option<String>,
    phone_number: Option<String>,
    /// Values of the tenant's custom fields, by field name.
    #[serde(default)]
    custom: Option<BTreeMap<String, Value>>,
}

/// Changes the caller's profile; answers the user as it is now.
#[utoipa::path(patch, path = "/v1/auth/me", tag = "auth",
    security(("user_access_token" = [])),
    request_body = MeUpdate,
    responses((status = 200, body = User)))]
async fn update_me(
    ctx: TenantContext,
    caller: Caller,
    ApiJson(body): ApiJson<MeUpdate>,
) -> Result<Json<User>, ApiError> {
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
    Ok(Json(user))
}

/// A password change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// Changes the caller's password: needs the current one (always, as the
/// re-authentication); ends every other session.
#[utoipa::path(post, path = "/v1/auth/password", tag = "auth",
    security(("user_access_token" = [])),
    request_body = PasswordChange,
    responses((status = 204, description = "Changed")))]
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

/// An address to mail a link to, if it is an account that needs one.
#[derive(Deserialize, ToSchema)]
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
    let body = MailAccepted {
        status: MailStatus::Accepted,
        detail: "if this address belongs to an account that needs it, a message is on its way".to_owned(),
    };
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

/// 202 in every case (an unknown or already verified address is not told apart); a new
/// verification link goes out only to an active account whose address is not verified,
/// and not past the per-recipient limit.
#[utoipa::path(post, path = "/v1/auth/verify-email/resend", tag = "auth",
    request_body = EmailBody,
    responses((status = 202, body = MailAccepted),
        (status = 501, description = "`email_not_configured`: the tenant has no SMTP settings")))]
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

/// The token of a mailed link.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    token: String,
}

/// Spends the token of a verification link and marks the address verified.
#[utoipa::path(post, path = "/v1/auth/verify-email/confirm", tag = "auth",
    request_body = TokenBody,
    responses((status = 200, body = EmailVerified),
        (status = 400, description = "`invalid_grant`: the token is unknown, used, expired or for an older address")))]
async fn confirm_verification(
    ctx: TenantContext,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<TokenBody>,
) -> Result<Json<EmailVerified>, ApiError> {
    tenantry_accounts::account_email::count_token_check(&state.accounts, &ctx, ip).await?;
    let db = ctx.db().await?;
    let user = tenantry_accounts::account_email::confirm_verification(&ctx, &db, &body.token).await?;
    Ok(Json(EmailVerified {
        email_verified: user.email_verified,
    }))
}

/// 202 in every case; a password-reset link (1 h, single use) goes out only to an active
/// account, and not past the per-recipient limit.
#[utoipa::path(post, path = "/v1/auth/password/forgot", tag = "auth",
    request_body = EmailBody,
    responses((status = 202, body = MailAccepted),
        (status = 501, description = "`email_not_configured`: the tenant has no SMTP settings")))]
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

/// The token of a password-reset link and the new password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    token: String,
    new_password: String,
}

/// Sets a new password with the token of a reset link; every session and refresh token of
/// the account ends.
#[utoipa::path(post, path = "/v1/auth/password/reset", tag = "auth",
    request_body = ResetBody,
    responses((status = 204, description = "The password is changed"),
        (status = 400, description = "`invalid_grant`: the token is unknown, used or expired; nothing changed"),
        (status = 422, description = "The password policy refuses the password; the token stays usable")))]
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

/// The caller's live sessions; `id` is the session's `sid`.
#[utoipa::path(get, path = "/v1/auth/sessions", tag = "auth",
    security(("user_access_token" = [])),
    responses((status = 200, body = SessionList)))]
async fn sessions(caller: Caller) -> Result<Json<SessionList>, ApiError> {
    let sessions = account::sessions(&caller.db, caller.user.id)
        .await?
        .into_iter()
        .map(|s| SessionInfo {
            id: tenantry_oidc::tokens::sid(&s.id_hash),
            current: s.id_hash == caller.session.id_hash,
            auth_time: s.auth_time,
            amr: s.amr,
            ip: s.ip,
            user_agent: s.user_agent,
            created_at: s.created_at,
            expires_at: s.expires_at,
        })
        .collect();
    Ok(Json(SessionList { sessions }))
}

/// Ends one of the caller's sessions (and its refresh tokens; its apps are told by
/// back-channel logout).
#[utoipa::path(delete, path = "/v1/auth/sessions/{id}", tag = "auth",
    security(("user_access_token" = [])),
    params(("id" = String, Path, description = "The session's `sid`")),
    responses((status = 204, description = "The session ended"),
        (status = 404, description = "No live session of the caller has this id")))]
async fn revoke_session(
    ctx: TenantContext,
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let this = |s: &Session| tenantry_oidc::tokens::sid(&s.id_hash) == id;
    let ended = tenantry_oidc::logout::end_sessions_of(&ctx, &caller.db, caller.user.id, this, state.config.outbound);
    if ended.await? == 0 {
        return Err(ApiError::new(ErrorCode::NotFound, "no such session"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The re-authentication a factor-changing call may carry.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
struct ProofBody {
    #[serde(default)]
    current_password: Option<String>,
}
