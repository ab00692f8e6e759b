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
//! also need a fresh re-authentication ([`reauthenticate`]). Errors are RFC 9457 problems.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tenantry_controlplane::model::{Client, GrantType, MailTemplateKind};
use tenantry_crypto::{SealContext, hash_token, random_token};
use tenantry_dataplane::model::{NewUser, ProfileUpdate, Session, User};
use tenantry_dataplane::{
    EmailTokenRepository, MfaRepository, SessionRepository, TenantDb, TokenRepository, UserRepository,
};
use uuid::Uuid;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::web::bearer::{Bearer, challenge};
use crate::web::{ApiJson, ClientIp, SessionOrigin};
use tenantry_accounts::login::{Accepted, Authentication, CodeCheck, LoginError, Method, SecondFactor};
use tenantry_oidc::grants::{UserTokens, refresh_body, refresh_lifetime, user_token_body};
use tenantry_tenancy::users::active_user;
use tenantry_tenancy::{Capability, TenantContext};

/// How long a second-factor challenge (`mfa_token`) stays valid.
const MFA_TOKEN_TTL: Duration = Duration::minutes(5);

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

/// The first-party client a login is for.
fn first_party_client<'a>(ctx: &'a TenantContext, client_id: &str) -> Result<&'a Client, ApiError> {
    ctx.entry
        .clients
        .get(client_id)
        // A confidential client authenticates at the token endpoint; no client secret is
        // asked for here, so only public first-party apps may use these endpoints.
        .filter(|c| c.first_party && c.client_type == tenantry_controlplane::model::ClientType::Public)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidClient,
                "client_id must name a public first-party client of the tenant",
            )
        })
}

/// The scopes asked for, each allowed for the client; `openid` when none are named.
fn requested_scope(client: &Client, scope: Option<&str>) -> Result<String, ApiError> {
    let mut scopes: Vec<&str> = Vec::new();
    for s in scope.unwrap_or("openid").split(' ').filter(|s| !s.is_empty()) {
        if !client.scopes.iter().any(|c| c == s) {
            return Err(ApiError::new(
                ErrorCode::InvalidScope,
                format!("scope `{}` is not allowed for this client", crate::error::printable(s)),
            ));
        }
        if !scopes.contains(&s) {
            scopes.push(s);
        }
    }
    Ok(scopes.join(" "))
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
    let refresh_token = if client.grant_types.contains(&GrantType::RefreshToken) {
        let token = random_token(32);
        db.issue_refresh(
            tenantry_dataplane::NewRefreshToken {
                token_hash: hash_token(&token),
                client_id: client.client_id.clone(),
                user_id: user.id,
                session_id_hash: Some(session.id_hash.clone()),
                origin_code_hash: None,
                scope: scope.to_owned(),
                auth_time: Some(now),
                amr: session.amr.clone(),
                expires_at: now + refresh_lifetime(ctx, client),
            },
            now,
        )
        .await?;
        Some(token)
    } else {
        None
    };
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

/// A pending second factor, sealed for the tenant: who, for which client and scope, until when.
#[derive(Serialize, Deserialize)]
struct MfaChallenge {
    /// Spent by the login it completes (`mfa_token:{jti}` in the rate limiter's store).
    jti: String,
    user: Uuid,
    client_id: String,
    scope: String,
    expires_at: i64,
}

fn mfa_seal(ctx: &TenantContext) -> String {
    ctx.entry.tenant.id.to_string()
}

fn seal_challenge(state: &AppState, ctx: &TenantContext, challenge: &MfaChallenge) -> String {
    let owner = mfa_seal(ctx);
    let json = serde_json::to_string(challenge).unwrap_or_default();
    state.secrets.seal(SealContext::new(&owner, "mfa_challenge"), &json)
}

fn open_challenge(state: &AppState, ctx: &TenantContext, token: &str) -> Result<MfaChallenge, ApiError> {
    let owner = mfa_seal(ctx);
    let invalid = || ApiError::new(ErrorCode::InvalidGrant, "the mfa_token is invalid or expired");
    let json = state
        .secrets
        .open(SealContext::new(&owner, "mfa_challenge"), token)
        .map_err(|_| invalid())?;
    let challenge: MfaChallenge = serde_json::from_str(&json).map_err(|_| invalid())?;
    if challenge.expires_at < Utc::now().timestamp() {
        return Err(invalid());
    }
    Ok(challenge)
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
    let challenge = MfaChallenge {
        jti: random_token(16),
        user: user.id,
        client_id: client.client_id.clone(),
        scope,
        expires_at: (Utc::now() + MFA_TOKEN_TTL).timestamp(),
    };
    let mut answer = json!({
        "mfa_required": true,
        "mfa_token": seal_challenge(&state, &ctx, &challenge),
        "expires_in": MFA_TOKEN_TTL.num_seconds(),
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
    let challenge = open_challenge(&state, &ctx, &body.mfa_token)?;
    let spent_key = format!("mfa_token:{}:{}", ctx.entry.tenant.id, challenge.jti);
    if !state.accounts.rate_limiter.check(&spent_key, 1).await?.is_allowed() {
        return Err(ApiError::new(ErrorCode::InvalidGrant, "the mfa_token was already used"));
    }
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
    let ttl = std::time::Duration::from_secs(MFA_TOKEN_TTL.num_seconds() as u64);
    state.accounts.rate_limiter.hit(&spent_key, 1, ttl).await?;
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
    let ip = origin.ip;
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
    tenantry_accounts::login::per_ip(
        &state.accounts,
        &ctx,
        "register",
        ip,
        tenantry_accounts::login::REGISTER_PER_IP,
    )
    .await?
    .into_result()?;
    let client = body
        .client_id
        .as_deref()
        .map(|id| first_party_client(&ctx, id))
        .transpose()?;
    let scope = client.map(|c| requested_scope(c, body.scope.as_deref())).transpose()?;
    let new = NewUser {
        email: body.email,
        email_verified: false,
        username: None,
        given_name: body.given_name,
        family_name: body.family_name,
        name: body.name,
        picture: None,
        locale: body.locale,
        phone_number: body.phone_number,
        metadata: None,
        custom: body.custom,
    };
    // The profile is refused before the password costs a hash.
    tenantry_dataplane::users::profile::check_new_user(&new)?;
    tenantry_accounts::passwords::check_policy(
        policy,
        state.accounts.password_deny_list.as_deref(),
        &new.email,
        &body.password,
        "password",
    )?;
    let db = ctx.db().await?;
    let phc = state
        .accounts
        .hasher
        .hash(&ctx.entry.tenant.id.to_string(), &policy.password_hash, &body.password)
        .await?;
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
    if let Err(e) = db.set_password(user.id, &phc).await {
        // No account without its password: the half-made user goes.
        let _ = db.delete_user(user.id).await;
        return Err(e.into());
    }
    if ctx.capabilities.email {
        // A mail that does not leave undoes the account: registering again starts afresh.
        tenantry_accounts::account_email::verify_new_account(&state.accounts, &ctx, &db, &user, client).await?;
    }
    let mut answer = json!({ "user": user });
    if let (Some(client), Some(scope)) = (client, scope)
        && policy.registration_auto_login
        && !policy.require_verified_email
        // A new account has no second factor yet: tokens only when none is owed.
        && tenantry_accounts::login::decide_second_factor(false, false, policy.mfa_required) == tenantry_accounts::login::Owed::None
    {
        let authentication = Authentication::new(user.clone(), Method::Password);
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
    let now = Utc::now();
    caller.db.revoke_session(&caller.session.id_hash, now).await?;
    caller
        .db
        .revoke_refresh_by_session(&caller.session.id_hash, now)
        .await?;
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
    // A number the user types is not verified, whatever the old one was.
    let phone_changed = body
        .phone_number
        .as_ref()
        .is_some_and(|n| caller.user.phone_number.as_ref() != Some(n));
    let update = ProfileUpdate {
        given_name: body.given_name,
        family_name: body.family_name,
        name: body.name,
        picture: body.picture,
        locale: body.locale,
        phone_number: body.phone_number,
        phone_number_verified: phone_changed.then_some(false),
        ..Default::default()
    };
    // Every value is checked before anything is written; then custom fields, the part
    // the database can still refuse (uniqueness), so a refusal changes nothing.
    tenantry_dataplane::users::profile::check_update(&update, body.custom.as_ref())?;
    if let Some(custom) = &body.custom {
        caller
            .db
            .set_custom_fields(caller.user.id, custom, &ctx.custom_fields())
            .await?;
    }
    caller.db.update_profile(caller.user.id, update).await?;
    let user = active_user(&ctx, &caller.db, caller.user.id)
        .await?
        .ok_or_else(ApiError::internal)?;
    Ok(Json(serde_json::to_value(user).map_err(|_| ApiError::internal())?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// `POST /v1/auth/password`: needs the current password (always, as the re-authentication
/// of [`reauthenticate`]); ends every other session.
async fn change_password(
    ctx: TenantContext,
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    reauthenticate(&state, &ctx, &caller, Some(&body.current_password), None).await?;
    let policy = &ctx.entry.tenant.settings.security;
    tenantry_accounts::passwords::check_policy(
        policy,
        state.accounts.password_deny_list.as_deref(),
        &caller.user.email,
        &body.new_password,
        "new_password",
    )?;
    let phc = state
        .accounts
        .hasher
        .hash(
            &ctx.entry.tenant.id.to_string(),
            &policy.password_hash,
            &body.new_password,
        )
        .await?;
    let now = Utc::now();
    // A reset link mailed before the change must not undo it.
    caller
        .db
        .spend_email_tokens(
            caller.user.id,
            tenantry_dataplane::model::EmailTokenPurpose::ResetPassword,
            now,
        )
        .await?;
    caller.db.set_password(caller.user.id, &phc).await?;
    // Every other session ends, with the refresh tokens issued under it, and no device
    // skips the second factor any more.
    caller.db.forget_devices(caller.user.id, now).await?;
    for other in caller.db.sessions_of(caller.user.id, now).await? {
        if other.id_hash != caller.session.id_hash {
            caller.db.revoke_refresh_by_session(&other.id_hash, now).await?;
        }
    }
    caller
        .db
        .revoke_user_sessions(caller.user.id, Some(&caller.session.id_hash), now)
        .await?;
    tenantry_accounts::account_email::notify(
        &state.accounts,
        &ctx,
        &caller.user.email,
        tenantry_accounts::account_email::mail_language(&ctx, Some(&caller.user)),
        MailTemplateKind::PasswordChanged,
        None,
    );
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
    let list: Vec<Value> = caller
        .db
        .sessions_of(caller.user.id, Utc::now())
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
    let now = Utc::now();
    let session = caller
        .db
        .sessions_of(caller.user.id, now)
        .await?
        .into_iter()
        .find(|s| tenantry_oidc::tokens::sid(&s.id_hash) == id)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such session"))?;
    caller.db.revoke_session(&session.id_hash, now).await?;
    caller.db.revoke_refresh_by_session(&session.id_hash, now).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/auth/mfa/totp` `{"current_password"}`: starts (or restarts) TOTP enrolment.
/// A fresh re-authentication ([`reauthenticate`]): the body may be left out within
/// [`REAUTH_WINDOW`] of one.
async fn totp_enrol(
    ctx: TenantContext,
    State(state): State<AppState>,
    caller: Caller,
    body: axum::body::Bytes,
) -> Result<Json<tenantry_accounts::mfa::Enrolment>, ApiError> {
    let proof: Proof = if body.iter().all(u8::is_ascii_whitespace) {
        Proof::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::new(ErrorCode::InvalidJson, e.to_string()))?
    };
    if tenantry_accounts::mfa::enrolled(&caller.db, caller.user.id).await? {
        return Err(ApiError::new(
            ErrorCode::MfaAlreadyEnabled,
            "TOTP is already enabled; disable it first to enrol a new authenticator",
        ));
    }
    reauthenticate(&state, &ctx, &caller, proof.current_password.as_deref(), None).await?;
    let enrolment = tenantry_accounts::mfa::enrol(
        &state.secrets,
        &caller.db,
        ctx.entry.tenant.id,
        tenantry_accounts::mfa::issuer_name(&ctx),
        caller.user.id,
        &caller.user.email,
    )
    .await?;
    Ok(Json(enrolment))
}

/// The re-authentication a factor-changing call may carry.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Proof {
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
/// (the password here, or one within [`REAUTH_WINDOW`], e.g. the enrolment's).
async fn totp_confirm(
    ctx: TenantContext,
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ConfirmBody>,
) -> Result<Json<Value>, ApiError> {
    reauthenticate(&state, &ctx, &caller, body.current_password.as_deref(), None).await?;
    tenantry_accounts::login::mfa_attempt(&state.accounts, &ctx, caller.user.id).await?;
    match tenantry_accounts::mfa::confirm(
        &state.secrets,
        &caller.db,
        ctx.entry.tenant.id,
        caller.user.id,
        &body.code,
    )
    .await?
    {
        Some(codes) => {
            tenantry_accounts::login::mfa_passed(&state.accounts, &ctx, caller.user.id).await?;
            Ok(Json(json!({ "recovery_codes": codes })))
        }
        None => Err(ApiError::new(
            ErrorCode::InvalidMfaCode,
            "the code is not valid for the pending enrolment",
        )),
    }
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
    reauthenticate(&state, &ctx, &caller, Some(&body.current_password), None).await?;
    reauthenticate(&state, &ctx, &caller, None, Some(&body.code)).await?;
    tenantry_accounts::mfa::disable(&caller.db, caller.user.id).await?;
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
    reauthenticate(&state, &ctx, &caller, None, Some(&body.code)).await?;
    let codes = tenantry_accounts::mfa::regenerate_recovery_codes(&caller.db, caller.user.id).await?;
    Ok(Json(json!({ "recovery_codes": codes })))
}

/// How long a re-authentication lets the same login session change the account's
/// factors without another proof.
const REAUTH_WINDOW: std::time::Duration = std::time::Duration::from_secs(300);

fn reauth_key(ctx: &TenantContext, caller: &Caller) -> String {
    let sid = tenantry_oidc::tokens::sid(&caller.session.id_hash);
    format!("reauth:{}:{sid}", ctx.entry.tenant.id)
}

/// The one re-authentication behind every change of the account's factors (password
/// change, TOTP enrolment, confirmation and removal, recovery codes): a bearer token alone
/// never adds, replaces or removes a factor. A proof in the request — the current
/// password (`login::recheck_password`: the admission-controlled hasher, counted against
/// the login lockout) or a current second-factor code (counted per account) — is checked
/// and remembered for this login session for [`REAUTH_WINDOW`]; without one, a proof made
/// by the same session within that window is needed, else 403
/// `reauthentication_required`. The access token's `auth_time` is not enough: a token
/// stolen minutes after a login would pass.
async fn reauthenticate(
    state: &AppState,
    ctx: &TenantContext,
    caller: &Caller,
    password: Option<&str>,
    code: Option<&str>,
) -> Result<(), ApiError> {
    let key = reauth_key(ctx, caller);
    if password.is_none() && code.is_none() {
        // A hit made by a proof leaves the key over a limit of 1 until the window ends.
        if state.accounts.rate_limiter.check(&key, 1).await?.is_allowed() {
            return Err(ApiError::new(
                ErrorCode::ReauthenticationRequired,
                "confirm it is you: send current_password with this request",
            ));
        }
        return Ok(());
    }
    if let Some(password) = password {
        tenantry_accounts::login::recheck_password(&state.accounts, ctx, &caller.db, &caller.user, password).await?;
    }
    if let Some(code) = code {
        verify_second_factor(state, ctx, caller, code).await?;
    }
    // The window starts afresh at each proof.
    state.accounts.rate_limiter.reset(&key).await?;
    state.accounts.rate_limiter.hit(&key, 1, REAUTH_WINDOW).await?;
    Ok(())
}

/// A TOTP code (or recovery code) of the caller's confirmed authenticator.
async fn verify_second_factor(
    state: &AppState,
    ctx: &TenantContext,
    caller: &Caller,
    code: &str,
) -> Result<(), ApiError> {
    tenantry_accounts::login::mfa_attempt(&state.accounts, ctx, caller.user.id).await?;
    if !tenantry_accounts::mfa::enrolled(&caller.db, caller.user.id).await? {
        return Err(ApiError::new(
            ErrorCode::InvalidMfaCode,
            "TOTP is not enabled for this account",
        ));
    }
    let tenant = ctx.entry.tenant.id;
    let passed =
        tenantry_accounts::mfa::check_second_factor(&state.secrets, &caller.db, tenant, caller.user.id, code).await?;
    if !passed {
        return Err(ApiError::new(ErrorCode::InvalidMfaCode, "the code is not valid"));
    }
    tenantry_accounts::login::mfa_passed(&state.accounts, ctx, caller.user.id).await
}
