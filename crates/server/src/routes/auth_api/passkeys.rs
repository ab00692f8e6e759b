//! The headless API's passkeys (`tenantry_accounts::passkeys` does the ceremonies):
//! sign-in with a passkey as the only factor, a passkey as the second factor of a login,
//! sign-up with a passkey and no password, and the caller's own passkeys (add, list,
//! rename, remove).
//!
//! Every ceremony is two calls: `…/options` answers WebAuthn options as JSON
//! (`{"publicKey": …}`, for `PublicKeyCredential.parseCreationOptionsFromJSON` /
//! `parseRequestOptionsFromJSON`), and the next call takes the browser's
//! `credential.toJSON()` as `credential`. Options calls anyone can make are counted per
//! client address, since each stores a challenge.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tenantry_accounts::account::{self, MfaChallenge, Proof, first_party_client, requested_scope};
use tenantry_accounts::login::{Authentication, Method};
use tenantry_accounts::passkeys::{self, CeremonyOptions, Purpose};
use tenantry_dataplane::Passkey;
use tenantry_tenancy::TenantContext;
use tenantry_tenancy::users::active_user;
use utoipa::ToSchema;

use super::mfa::{FinishedSecondFactor, complete_mfa};
use super::{Caller, LoginAnswer, MfaAnswer, ProofBody, sign_in_session};
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::web::{ApiJson, OptionalApiJson, SessionOrigin};

async fn count_options(state: &AppState, ctx: &TenantContext, origin: &SessionOrigin) -> Result<(), ApiError> {
    passkeys::count_options(&state.accounts, ctx, origin.ip).await
}

/// One of the caller's passkeys.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct PasskeyView {
    id: uuid::Uuid,
    name: String,
    /// May be synced between the user's devices (`swk` in `amr`), or bound to one
    /// authenticator (`hwk`).
    synced: bool,
    /// A discoverable credential (signs in without a username), when the browser said.
    discoverable: Option<bool>,
    transports: Vec<String>,
    created_at: chrono::DateTime<chrono::Utc>,
    last_used_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<Passkey> for PasskeyView {
    fn from(k: Passkey) -> Self {
        PasskeyView {
            id: k.id,
            name: k.name,
            synced: k.backup_eligible,
            discoverable: k.discoverable,
            transports: k.transports,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
        }
    }
}

/// The caller's passkeys.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct PasskeyList {
    passkeys: Vec<PasskeyView>,
}

/// The caller's passkeys, oldest first.
#[utoipa::path(get, path = "/v1/auth/passkeys", tag = "auth",
    security(("user_access_token" = [])),
    responses((status = 200, body = PasskeyList)))]
pub(super) async fn list(caller: Caller) -> Result<Json<PasskeyList>, ApiError> {
    let passkeys = passkeys::list(&caller.db, caller.user.id).await?;
    Ok(Json(PasskeyList {
        passkeys: passkeys.into_iter().map(PasskeyView::from).collect(),
    }))
}

/// Starts adding a passkey: needs a fresh re-authentication (the current password here,
/// or a recent proof of this session, such as its passkey sign-in).
#[utoipa::path(post, path = "/v1/auth/passkeys/register/options", tag = "auth",
    security(("user_access_token" = [])),
    request_body(content = Option<ProofBody>, description = "Optional: the current password"),
    responses((status = 200, body = CeremonyOptions),
        (status = 403, description = "`reauthentication_required`: send the current password"),
        (status = 409, description = "`conflict`: the account holds the most passkeys it may")))]
pub(super) async fn register_options(
    ctx: TenantContext,
    State(state): State<AppState>,
    caller: Caller,
    OptionalApiJson(proof): OptionalApiJson<ProofBody>,
) -> Result<Json<CeremonyOptions>, ApiError> {
    let proof = Proof {
        password: proof.current_password.as_deref(),
        code: None,
    };
    account::reauthenticate(&state.accounts, &ctx, &caller.db, &caller.user, &caller.session, proof).await?;
    Ok(Json(
        passkeys::start_registration(&ctx, &caller.db, &caller.user).await?,
    ))
}

/// A browser's answer to registration options.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RegisterPasskeyBody {
    /// `PublicKeyCredential.toJSON()` of the new credential.
    #[schema(value_type = Object)]
    credential: Value,
    /// Default: the kind of passkey and the date.
    #[serde(default)]
    name: Option<String>,
}

/// Completes adding a passkey.
#[utoipa::path(post, path = "/v1/auth/passkeys/register", tag = "auth",
    security(("user_access_token" = [])),
    request_body = RegisterPasskeyBody,
    responses((status = 201, body = PasskeyView),
        (status = 400, description = "`passkey_invalid`: the response does not verify; the detail says why"),
        (status = 409, description = "`already_exists`: this passkey is registered already")))]
pub(super) async fn register(
    ctx: TenantContext,
    caller: Caller,
    ApiJson(body): ApiJson<RegisterPasskeyBody>,
) -> Result<Response, ApiError> {
    let passkey =
        passkeys::finish_registration(&ctx, &caller.db, &caller.user, &body.credential, body.name.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(PasskeyView::from(passkey))).into_response())
}

/// A new name.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RenameBody {
    /// 1 to 64 characters.
    name: String,
}

/// Renames one of the caller's passkeys.
#[utoipa::path(patch, path = "/v1/auth/passkeys/{id}", tag = "auth",
    security(("user_access_token" = [])),
    params(("id" = uuid::Uuid, Path, description = "The passkey's id")),
    request_body = RenameBody,
    responses((status = 200, body = PasskeyView),
        (status = 404, description = "No passkey of the caller has this id")))]
pub(super) async fn rename(
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RenameBody>,
) -> Result<Json<PasskeyView>, ApiError> {
    let id = passkey_id(&id)?;
    let passkey = passkeys::rename(&caller.db, caller.user.id, id, &body.name).await?;
    Ok(Json(passkey.into()))
}

fn passkey_id(id: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(id).map_err(|_| ApiError::new(ErrorCode::NotFound, "no passkey of this account has this id"))
}

/// Removes one of the caller's passkeys: needs a fresh re-authentication; refused when it
/// is the account's last way to sign in.
#[utoipa::path(delete, path = "/v1/auth/passkeys/{id}", tag = "auth",
    security(("user_access_token" = [])),
    params(("id" = uuid::Uuid, Path, description = "The passkey's id")),
    request_body(content = Option<ProofBody>, description = "Optional: the current password"),
    responses((status = 204, description = "Removed"),
        (status = 403, description = "`reauthentication_required`: send the current password"),
        (status = 404, description = "No passkey of the caller has this id"),
        (status = 409, description = "`last_way_in`: the account has no other way to sign in")))]
pub(super) async fn remove(
    ctx: TenantContext,
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    OptionalApiJson(proof): OptionalApiJson<ProofBody>,
) -> Result<StatusCode, ApiError> {
    let id = passkey_id(&id)?;
    let proof = Proof {
        password: proof.current_password.as_deref(),
        code: None,
    };
    account::reauthenticate(&state.accounts, &ctx, &caller.db, &caller.user, &caller.session, proof).await?;
    passkeys::remove(&caller.db, caller.user.id, id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The first-party client to sign in through.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct LoginOptionsBody {
    client_id: String,
    /// Space-separated; default: `openid`.
    #[serde(default)]
    scope: Option<String>,
}

/// What a passkey sign-in remembers from its options call.
#[derive(Serialize, Deserialize)]
struct LoginContext {
    client_id: String,
    scope: String,
}

/// Starts a sign-in with a passkey as the only factor: options with no allowed
/// credentials (the authenticator offers the user its passkeys for this site) and user
/// verification required.
#[utoipa::path(post, path = "/v1/auth/passkeys/login/options", tag = "auth",
    request_body = LoginOptionsBody,
    responses((status = 200, body = CeremonyOptions),
        (status = 400, description = "`invalid_client` or `invalid_scope`"),
        (status = 429, description = "`rate_limited`: too many options from this address")))]
pub(super) async fn login_options(
    ctx: TenantContext,
    State(state): State<AppState>,
    origin: SessionOrigin,
    ApiJson(body): ApiJson<LoginOptionsBody>,
) -> Result<Json<CeremonyOptions>, ApiError> {
    let client = first_party_client(&ctx, &body.client_id)?;
    let scope = requested_scope(client, body.scope.as_deref())?;
    count_options(&state, &ctx, &origin).await?;
    let db = ctx.db().await?;
    let context = serde_json::to_value(LoginContext {
        client_id: client.client_id.clone(),
        scope,
    })
    .map_err(|_| ApiError::internal())?;
    Ok(Json(
        passkeys::start_authentication(&ctx, &db, Purpose::Login, None, None, context).await?,
    ))
}

/// A browser's answer to sign-in options.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AssertionBody {
    /// `PublicKeyCredential.toJSON()` of the assertion.
    #[schema(value_type = Object)]
    credential: Value,
}

/// Completes a sign-in with a passkey: tokens for the client named in the options. No
/// second factor is owed (the passkey verified the user: `amr` holds `hwk` or `swk`,
/// `user` and `mfa`).
#[utoipa::path(post, path = "/v1/auth/passkeys/login", tag = "auth",
    request_body = AssertionBody,
    responses((status = 200, body = LoginAnswer),
        (status = 401, description = "`passkey_refused`: one answer for every refusal"),
        (status = 403, description = "`email_not_verified`: the address must be verified first")))]
pub(super) async fn login(
    ctx: TenantContext,
    State(state): State<AppState>,
    origin: SessionOrigin,
    ApiJson(body): ApiJson<AssertionBody>,
) -> Result<Json<LoginAnswer>, ApiError> {
    let db = ctx.db().await?;
    let (authentication, context) =
        passkeys::finish_sign_in(&state.accounts, &ctx, &db, None, &body.credential).await?;
    let asked: LoginContext = serde_json::from_value(context).map_err(|_| ApiError::internal())?;
    // The client may have been removed or changed since the options.
    let client = first_party_client(&ctx, &asked.client_id)?;
    let scope = requested_scope(client, Some(&asked.scope))?;
    let tokens = sign_in_proven(&state, &ctx, &db, client, &authentication, &scope, &origin).await?;
    Ok(Json(LoginAnswer::Tokens(tokens)))
}

/// [`sign_in`], and the new session counts as freshly re-authenticated: a passkey is a
/// stronger proof than the password the re-authentication otherwise asks for (and a
/// passkey-only account has none).
async fn sign_in_proven(
    state: &AppState,
    ctx: &TenantContext,
    db: &tenantry_dataplane::TenantDb,
    client: &tenantry_controlplane::model::Client,
    authentication: &Authentication,
    scope: &str,
    origin: &SessionOrigin,
) -> Result<super::Tokens, ApiError> {
    let (tokens, session) = sign_in_session(ctx, db, client, authentication, scope, origin).await?;
    account::mark_reauthenticated(&state.accounts, ctx, &session).await?;
    Ok(tokens)
}

/// The `mfa_token` of a login that owes a second factor.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MfaOptionsBody {
    mfa_token: String,
}

/// Starts the second factor of a login with a passkey: options that allow the user's
/// passkeys, bound to the `mfa_token`.
#[utoipa::path(post, path = "/v1/auth/mfa/passkey/options", tag = "auth",
    request_body = MfaOptionsBody,
    responses((status = 200, body = CeremonyOptions),
        (status = 400, description = "`invalid_grant`: the `mfa_token` is invalid, expired or spent, or its user has no passkey")))]
pub(super) async fn mfa_options(
    ctx: TenantContext,
    State(state): State<AppState>,
    origin: SessionOrigin,
    ApiJson(body): ApiJson<MfaOptionsBody>,
) -> Result<Json<CeremonyOptions>, ApiError> {
    let challenge = MfaChallenge::open(&state.accounts, &ctx, &body.mfa_token).await?;
    count_options(&state, &ctx, &origin).await?;
    let db = ctx.db().await?;
    let user = active_user(&ctx, &db, challenge.user)
        .await?
        .ok_or_else(bad_mfa_token)?;
    if !passkeys::has_passkey(&db, user.id).await? {
        return Err(ApiError::new(ErrorCode::InvalidGrant, "this account has no passkey"));
    }
    Ok(Json(
        passkeys::start_authentication(
            &ctx,
            &db,
            Purpose::SecondFactor,
            Some(&user),
            Some(&body.mfa_token),
            Value::Null,
        )
        .await?,
    ))
}

fn bad_mfa_token() -> ApiError {
    ApiError::new(ErrorCode::InvalidGrant, "the mfa_token is invalid or expired")
}

/// The second step of a login with a passkey.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MfaPasskeyBody {
    mfa_token: String,
    #[schema(value_type = Object)]
    credential: Value,
    /// As for `POST /v1/auth/mfa`.
    #[serde(default)]
    remember_device: bool,
}

/// Completes a login with a passkey as the second factor (`amr`: `pwd`, `hwk` or `swk`,
/// `user`, `mfa`).
#[utoipa::path(post, path = "/v1/auth/mfa/passkey", tag = "auth",
    request_body = MfaPasskeyBody,
    responses((status = 200, body = MfaAnswer),
        (status = 400, description = "`invalid_grant`: the `mfa_token` is invalid, expired or spent"),
        (status = 401, description = "`passkey_refused`: the passkey was not accepted")))]
pub(super) async fn mfa(
    ctx: TenantContext,
    State(state): State<AppState>,
    origin: SessionOrigin,
    ApiJson(body): ApiJson<MfaPasskeyBody>,
) -> Result<Json<MfaAnswer>, ApiError> {
    let challenge = MfaChallenge::open(&state.accounts, &ctx, &body.mfa_token).await?;
    // Checked before the ceremony, so a caller whose client is gone spends no challenge.
    first_party_client(&ctx, &challenge.client_id)?;
    let db = ctx.db().await?;
    let user = active_user(&ctx, &db, challenge.user)
        .await?
        .ok_or_else(bad_mfa_token)?;
    let authentication = passkeys::finish_second_factor(&ctx, &db, &user, &body.mfa_token, &body.credential).await?;
    let finished = FinishedSecondFactor {
        authentication,
        recovery_codes: None,
        remember_device: body.remember_device,
    };
    complete_mfa(&state, &ctx, &db, challenge, &origin, finished)
        .await
        .map(Json)
}

/// A new account that signs in with a passkey and has no password: the profile, and
/// optionally the first-party client to sign the new user in to.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SignupOptionsBody {
    email: String,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    given_name: Option<String>,
    #[serde(default)]
    family_name: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    locale: Option<String>,
    #[serde(default)]
    phone_number: Option<String>,
    /// Values of the tenant's custom fields, by field name.
    #[serde(default)]
    #[schema(value_type = Object)]
    custom: std::collections::BTreeMap<String, Value>,
}

impl SignupOptionsBody {
    fn registration(self, credential: account::SignUpWith<'_>) -> account::Registration<'_> {
        account::Registration {
            email: self.email,
            credential,
            client_id: None,
            scope: None,
            given_name: self.given_name,
            family_name: self.family_name,
            name: self.name,
            locale: self.locale,
            phone_number: self.phone_number,
            custom: self.custom,
        }
    }
}

/// Starts a sign-up with a passkey: everything a registration checks (the tenant allows
/// it, the client and scope, the profile, the address is free), then options for a new
/// discoverable passkey with user verification.
#[utoipa::path(post, path = "/v1/auth/register/passkey/options", tag = "auth",
    request_body = SignupOptionsBody,
    responses((status = 200, body = CeremonyOptions),
        (status = 403, description = "`registration_disabled`: the tenant does not allow self-registration"),
        (status = 409, description = "`email_taken`: an account with this email exists"),
        (status = 429, description = "`rate_limited`: too many options from this address")))]
pub(super) async fn signup_options(
    ctx: TenantContext,
    State(state): State<AppState>,
    origin: SessionOrigin,
    ApiJson(body): ApiJson<SignupOptionsBody>,
) -> Result<Json<CeremonyOptions>, ApiError> {
    use tenantry_dataplane::UserRepository;
    account::registration_open(&ctx)?;
    if let Some(client_id) = &body.client_id {
        requested_scope(first_party_client(&ctx, client_id)?, body.scope.as_deref())?;
    }
    let new = tenantry_dataplane::model::NewUser {
        email: body.email.clone(),
        given_name: body.given_name.clone(),
        family_name: body.family_name.clone(),
        name: body.name.clone(),
        locale: body.locale.clone(),
        phone_number: body.phone_number.clone(),
        custom: body.custom.clone(),
        ..Default::default()
    };
    account::check_new_account(&ctx, &new)?;
    count_options(&state, &ctx, &origin).await?;
    let db = ctx.db().await?;
    if db.user_by_email(&body.email, &ctx.custom_fields()).await?.is_some() {
        return Err(ApiError::new(
            ErrorCode::EmailTaken,
            "an account with this email already exists",
        ));
    }
    let display = body.name.clone().unwrap_or_else(|| body.email.clone());
    let email = body.email.clone();
    let context = serde_json::to_value(&body).map_err(|_| ApiError::internal())?;
    Ok(Json(
        passkeys::start_signup(&ctx, &db, &email, &display, context, None).await?,
    ))
}

/// Completes a sign-up with a passkey: the account is made with the passkey as its only
/// credential (a verification link goes out when the tenant can mail); with
/// `registration_auto_login` and a `client_id`, tokens at once unless the email must be
/// verified first.
#[utoipa::path(post, path = "/v1/auth/register/passkey", tag = "auth",
    request_body = AssertionBody,
    responses((status = 201, body = super::Registered),
        (status = 400, description = "`passkey_invalid`: the new passkey does not verify"),
        (status = 403, description = "`registration_disabled`"),
        (status = 409, description = "`email_taken`: an account with this email was made meanwhile")))]
pub(super) async fn signup(
    ctx: TenantContext,
    State(state): State<AppState>,
    origin: SessionOrigin,
    ApiJson(body): ApiJson<AssertionBody>,
) -> Result<Response, ApiError> {
    let db = ctx.db().await?;
    let (verified, context) = passkeys::finish_signup(&ctx, &db, None, &body.credential).await?;
    let asked: SignupOptionsBody = serde_json::from_value(context).map_err(|_| ApiError::internal())?;
    let (client_id, scope) = (asked.client_id.clone(), asked.scope.clone());
    let mut registration = asked.registration(account::SignUpWith::Passkey(verified));
    registration.client_id = client_id.as_deref();
    registration.scope = scope.as_deref();
    let synced = match &registration.credential {
        account::SignUpWith::Passkey(verified) => verified.synced(),
        account::SignUpWith::Password(_) => false,
    };
    let registered = account::register(&state.accounts, &ctx, origin.ip, registration).await?;
    let user = registered.user;
    let tokens = match registered.sign_in {
        Some((client, scope)) => {
            let authentication = Authentication::passkey(user.clone(), Method::Passkey, synced);
            Some(sign_in_proven(&state, &ctx, &db, client, &authentication, &scope, &origin).await?)
        }
        None => None,
    };
    Ok((StatusCode::CREATED, Json(super::Registered { user, tokens })).into_response())
}
