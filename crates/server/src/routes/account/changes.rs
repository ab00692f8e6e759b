//! The account page's forms: each posts to `{issuer}/account/…` with the CSRF token, makes
//! its change through the same `tenantry_accounts` call the headless API makes, and
//! answers a redirect to the page with a notice, the page with something to show once
//! (an authenticator to set up, recovery codes), or the page with the refusal.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use tenantry_accounts::account::{self, Proof};
use tenantry_accounts::{account_email, passkeys};
use tenantry_dataplane::UserRepository;
use tenantry_dataplane::model::{ProfileUpdate, Session};
use tenantry_oidc::logout::end_sessions_of;
use tenantry_oidc::params::Params;
use tenantry_tenancy::TenantContext;

use super::{ACCOUNT_COOKIE, Shown, SignedIn, base, render, signed_in};
use crate::error::{ApiError, ErrorCode};
use crate::pages::PageContext;
use crate::state::AppState;
use crate::web::csrf::{CsrfForm, CsrfRejection};
use crate::web::{SESSION_COOKIE, custom_fields, set_cookie};

pub(super) fn router() -> axum::Router<AppState> {
    Router::new()
        .route("/t/{slug}/account/profile", post(profile))
        .route("/t/{slug}/account/email", post(email))
        .route("/t/{slug}/account/password", post(password))
        .route("/t/{slug}/account/totp", post(totp_start))
        .route("/t/{slug}/account/totp/confirm", post(totp_confirm))
        .route("/t/{slug}/account/totp/disable", post(totp_disable))
        .route("/t/{slug}/account/recovery-codes", post(recovery_codes))
        .route("/t/{slug}/account/passkeys/options", post(passkey_options))
        .route("/t/{slug}/account/passkeys", post(passkey_add))
        .route("/t/{slug}/account/passkeys/{id}/rename", post(passkey_rename))
        .route("/t/{slug}/account/passkeys/{id}/remove", post(passkey_remove))
        .route("/t/{slug}/account/identities/{provider}/unlink", post(unlink))
        .route("/t/{slug}/account/sessions/{sid}/end", post(end_session))
        .route("/t/{slug}/account/sign-out", post(sign_out))
        .route("/t/{slug}/account/sign-out-everywhere", post(sign_out_everywhere))
}

/// How a change ends when it is made.
enum Done {
    /// Back to the page with the notice of this name (`super::NOTICES`).
    Notice(&'static str),
    /// The page, showing something once.
    Show(Shown),
}

/// A posted form of a signed-in user: the user and the form, or the answer already (not
/// signed in: to the page, which signs in; a CSRF mismatch: the page with the refusal).
async fn open(
    state: &AppState,
    ctx: &TenantContext,
    headers: &HeaderMap,
    form: Result<CsrfForm, CsrfRejection>,
) -> Result<(SignedIn, Params), Response> {
    let me = match signed_in(ctx, headers).await {
        Ok(Some(me)) => me,
        Ok(None) => return Err(Redirect::to(&base(ctx)).into_response()),
        Err(e) => return Err(e.into_response()),
    };
    match form {
        Ok(CsrfForm(params)) => Ok((me, params)),
        Err(CsrfRejection::Unreadable(rejection)) => Err(rejection.into_response()),
        Err(CsrfRejection::Refused(_)) => {
            let lang = me.lang;
            let expired = ApiError::new(ErrorCode::BadRequest, crate::pages::form_expired(lang));
            let shown = Shown {
                error: Some(expired),
                ..Default::default()
            };
            Err(render(state, ctx, &me, shown).await)
        }
    }
}

/// The answer to a change.
async fn answer(state: &AppState, ctx: &TenantContext, me: &SignedIn, done: Result<Done, ApiError>) -> Response {
    match done {
        Ok(Done::Notice(name)) => Redirect::to(&format!("{}?done={name}", base(ctx))).into_response(),
        Ok(Done::Show(shown)) => render(state, ctx, me, shown).await,
        Err(error) => {
            let shown = Shown {
                error: Some(error),
                ..Default::default()
            };
            render(state, ctx, me, shown).await
        }
    }
}

/// Declares a form handler: opens the form, runs `$work(state, ctx, me, params, path)`,
/// answers.
macro_rules! form_handler {
    ($name:ident, $work:ident) => {
        async fn $name(
            ctx: TenantContext,
            State(state): State<AppState>,
            headers: HeaderMap,
            Path(path): Path<Vec<(String, String)>>,
            form: Result<CsrfForm, CsrfRejection>,
        ) -> Response {
            let (me, params) = match open(&state, &ctx, &headers, form).await {
                Ok(opened) => opened,
                Err(response) => return response,
            };
            // The path's own item (a passkey, provider or session), beside the tenant's slug.
            let item = path
                .into_iter()
                .find(|(name, _)| name != "slug")
                .map(|(_, item)| item)
                .unwrap_or_default();
            let done = $work(&state, &ctx, &me, &params, &item).await;
            answer(&state, &ctx, &me, done).await
        }
    };
}

form_handler!(profile, change_profile);
form_handler!(email, change_email);
form_handler!(password, change_password);
form_handler!(totp_start, start_totp);
form_handler!(totp_confirm, confirm_totp);
form_handler!(totp_disable, disable_totp);
form_handler!(recovery_codes, new_recovery_codes);
form_handler!(passkey_add, add_passkey);
form_handler!(passkey_rename, rename_passkey);
form_handler!(passkey_remove, remove_passkey);
form_handler!(unlink, unlink_identity);
form_handler!(end_session, end_other_session);

/// A form field, trimmed (empty when absent).
fn field<'a>(params: &'a Params, name: &str) -> &'a str {
    params.get(name).map(str::trim).unwrap_or("")
}

/// The current password the form carries, if any (the re-authentication of a change).
fn password_proof(params: &Params) -> Proof<'_> {
    Proof {
        password: params.get("current_password").filter(|p| !p.is_empty()),
        code: None,
    }
}

async fn reauthenticate(state: &AppState, ctx: &TenantContext, me: &SignedIn, params: &Params) -> Result<(), ApiError> {
    account::reauthenticate(
        &state.accounts,
        ctx,
        &me.db,
        &me.user,
        &me.session,
        password_proof(params),
    )
    .await
}

async fn change_profile(
    _: &AppState,
    ctx: &TenantContext,
    me: &SignedIn,
    params: &Params,
    _: &str,
) -> Result<Done, ApiError> {
    let user = &me.user;
    // A value is sent when it changes; an emptied field is cleared.
    let changed = |name: &str, now: &Option<String>| {
        let new = field(params, name);
        (new != now.as_deref().unwrap_or("")).then(|| new.to_owned())
    };
    let update = ProfileUpdate {
        given_name: changed("given_name", &user.given_name),
        family_name: changed("family_name", &user.family_name),
        name: changed("name", &user.name),
        phone_number: changed("phone_number", &user.phone_number),
        locale: changed("locale", &user.locale),
        ..Default::default()
    };
    let custom = if ctx.entry.tenant.settings.custom_fields.is_empty() {
        None
    } else {
        Some(custom_fields::values(ctx, params)?)
    };
    account::update_own_profile(ctx, &me.db, user, update, custom.as_ref()).await?;
    Ok(Done::Notice("saved"))
}

async fn change_email(
    state: &AppState,
    ctx: &TenantContext,
    me: &SignedIn,
    params: &Params,
    _: &str,
) -> Result<Done, ApiError> {
    reauthenticate(state, ctx, me, params).await?;
    account_email::start_email_change(&state.accounts, ctx, &me.db, &me.user, field(params, "email")).await?;
    Ok(Done::Notice("email_sent"))
}

/// A password change (the current one is the proof), or a first password for an account
/// without one (after a fresh proof: a passkey sign-in, say).
async fn change_password(
    state: &AppState,
    ctx: &TenantContext,
    me: &SignedIn,
    params: &Params,
    _: &str,
) -> Result<Done, ApiError> {
    let new_password = params.get("new_password").unwrap_or("");
    if me.db.password(me.user.id).await?.is_some() {
        let current = params.get("current_password").unwrap_or("");
        account::change_password(
            &state.accounts,
            ctx,
            &me.db,
            &me.user,
            &me.session,
            current,
            new_password,
        )
        .await?;
    } else {
        account::reauthenticate(&state.accounts, ctx, &me.db, &me.user, &me.session, Proof::default()).await?;
        account::set_password(&state.accounts, ctx, &me.db, &me.user, new_password, "new_password").await?;
    }
    Ok(Done::Notice("password"))
}

async fn start_totp(
    state: &AppState,
    ctx: &TenantContext,
    me: &SignedIn,
    params: &Params,
    _: &str,
) -> Result<Done, ApiError> {
    let proof = password_proof(params);
    let enrolment = account::enrol_totp(&state.accounts, ctx, &me.db, &me.user, &me.session, proof).await?;
    Ok(Done::Show(Shown {
        enrolment: Some(enrolment),
        ..Default::default()
    }))
}

/// The first code of the authenticator being set up; a wrong one shows the set-up again.
async fn confirm_totp(
    state: &AppState,
    ctx: &TenantContext,
    me: &SignedIn,
    params: &Params,
    _: &str,
) -> Result<Done, ApiError> {
    let confirmed = account::confirm_totp(
        &state.accounts,
        ctx,
        &me.db,
        &me.user,
        &me.session,
        field(params, "code"),
        Proof::default(),
    )
    .await;
    match confirmed {
        Ok(codes) => Ok(Done::Show(Shown {
            notice: Some(tenantry_messages::Key::AccountTotpConfirmed),
            recovery_codes: Some(codes),
            ..Default::default()
        })),
        Err(error) if error.code == ErrorCode::InvalidMfaCode => {
            let enrolment = tenantry_accounts::mfa::pending_enrolment(
                &state.accounts.secrets,
                &me.db,
                ctx.entry.tenant.id,
                tenantry_accounts::mfa::issuer_name(ctx),
                me.user.id,
                &me.user.email,
            )
            .await?;
            Ok(Done::Show(Shown {
                error: Some(error),
                enrolment,
                ..Default::default()
            }))
        }
        Err(error) => Err(error),
    }
}

async fn disable_totp(
    state: &AppState,
    ctx: &TenantContext,
    me: &SignedIn,
    params: &Params,
    _: &str,
) -> Result<Done, ApiError> {
    account::disable_totp(
        &state.accounts,
        ctx,
        &me.db,
        &me.user,
        &me.session,
        params.get("current_password").unwrap_or(""),
        field(params, "code"),
    )
    .await?;
    Ok(Done::Notice("totp_off"))
}

async fn new_recovery_codes(
    state: &AppState,
    ctx: &TenantContext,
    me: &SignedIn,
    params: &Params,
    _: &str,
) -> Result<Done, ApiError> {
    let codes = account::regenerate_recovery_codes(
        &state.accounts,
        ctx,
        &me.db,
        &me.user,
        &me.session,
        field(params, "code"),
    )
    .await?;
    Ok(Done::Show(Shown {
        recovery_codes: Some(codes),
        ..Default::default()
    }))
}

/// `POST {issuer}/account/passkeys/options` (the page's script): creation options for a
/// new passkey, after the re-authentication; a problem otherwise.
async fn passkey_options(
    ctx: TenantContext,
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<CsrfForm, CsrfRejection>,
) -> Response {
    let me = match signed_in(&ctx, &headers).await {
        Ok(Some(me)) => me,
        Ok(None) => return ApiError::new(ErrorCode::Unauthorized, "sign in to the account page first").into_response(),
        Err(e) => return e.into_response(),
    };
    let Ok(CsrfForm(params)) = form else {
        return ApiError::new(ErrorCode::BadRequest, "the form's CSRF token does not match its cookie").into_response();
    };
    let options = async {
        reauthenticate(&state, &ctx, &me, &params).await?;
        passkeys::start_registration(&ctx, &me.db, &me.user).await
    };
    match options.await {
        Ok(options) => Json(options).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The new passkey the page's script made, in the `passkey` field. Without one (the
/// script could not get options, or the browser refused), the re-authentication says why
/// if it is the reason.
async fn add_passkey(
    state: &AppState,
    ctx: &TenantContext,
    me: &SignedIn,
    params: &Params,
    _: &str,
) -> Result<Done, ApiError> {
    let refused = || ApiError::new(ErrorCode::PasskeyInvalid, "no passkey was made");
    let credential = params.get("passkey").unwrap_or("");
    if credential.is_empty() {
        reauthenticate(state, ctx, me, params).await?;
        return Err(refused());
    }
    let credential: serde_json::Value = serde_json::from_str(credential).map_err(|_| refused())?;
    let name = Some(field(params, "name")).filter(|n| !n.is_empty());
    passkeys::finish_registration(ctx, &me.db, &me.user, &credential, name).await?;
    Ok(Done::Notice("passkey_added"))
}

fn passkey_id(id: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(id).map_err(|_| ApiError::new(ErrorCode::NotFound, "no passkey of this account has this id"))
}

async fn rename_passkey(
    _: &AppState,
    _: &TenantContext,
    me: &SignedIn,
    params: &Params,
    id: &str,
) -> Result<Done, ApiError> {
    passkeys::rename(&me.db, me.user.id, passkey_id(id)?, field(params, "name")).await?;
    Ok(Done::Notice("saved"))
}

async fn remove_passkey(
    state: &AppState,
    ctx: &TenantContext,
    me: &SignedIn,
    params: &Params,
    id: &str,
) -> Result<Done, ApiError> {
    let id = passkey_id(id)?;
    reauthenticate(state, ctx, me, params).await?;
    passkeys::remove(&me.db, me.user.id, id, false).await?;
    Ok(Done::Notice("passkey_removed"))
}

async fn unlink_identity(
    _: &AppState,
    _: &TenantContext,
    me: &SignedIn,
    _: &Params,
    provider: &str,
) -> Result<Done, ApiError> {
    tenantry_federation::account::unlink(&me.db, me.user.id, provider).await?;
    Ok(Done::Notice("unlinked"))
}

async fn end_other_session(
    state: &AppState,
    ctx: &TenantContext,
    me: &SignedIn,
    _: &Params,
    sid: &str,
) -> Result<Done, ApiError> {
    let this = |s: &Session| tenantry_oidc::tokens::sid(&s.id_hash) == sid;
    if end_sessions_of(ctx, &me.db, me.user.id, this, state.config.outbound).await? == 0 {
        return Err(ApiError::new(ErrorCode::NotFound, "no such session"));
    }
    Ok(Done::Notice("session_ended"))
}

/// `POST {issuer}/account/sign-out`: ends this login session (the page's and the hosted
/// login's: they are one; its apps are told by back-channel logout) and forgets its
/// cookies.
async fn sign_out(
    ctx: TenantContext,
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<CsrfForm, CsrfRejection>,
) -> Response {
    let (me, _) = match open(&state, &ctx, &headers, form).await {
        Ok(opened) => opened,
        Err(response) => return response,
    };
    match tenantry_oidc::logout::end_session(&ctx, &me.db, &me.session, state.config.outbound).await {
        Ok(()) => signed_out(&state, &ctx, &me),
        Err(e) => e.into_response(),
    }
}

/// `POST {issuer}/account/sign-out-everywhere`: ends every session of the account (each
/// one's apps told by back-channel logout), its refresh tokens and trusted devices.
async fn sign_out_everywhere(
    ctx: TenantContext,
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<CsrfForm, CsrfRejection>,
) -> Response {
    let (me, _) = match open(&state, &ctx, &headers, form).await {
        Ok(opened) => opened,
        Err(response) => return response,
    };
    let everywhere = async {
        end_sessions_of(&ctx, &me.db, me.user.id, |_| true, state.config.outbound).await?;
        tenantry_accounts::login::sign_out_everywhere(&me.db, me.user.id, Utc::now()).await
    };
    match everywhere.await {
        Ok(()) => signed_out(&state, &ctx, &me),
        Err(e) => e.into_response(),
    }
}

fn signed_out(state: &AppState, ctx: &TenantContext, me: &SignedIn) -> Response {
    let mut response = PageContext::of(ctx, me.lang).logged_out();
    set_cookie(&mut response, state, ctx, ACCOUNT_COOKIE, "", Some(0));
    set_cookie(&mut response, state, ctx, SESSION_COOKIE, "", Some(0));
    response
}
