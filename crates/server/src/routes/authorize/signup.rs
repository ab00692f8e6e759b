//! The hosted sign-up step (`POST {issuer}/signup`), reached from the login page's
//! "Create an account" button inside an authorization request, for tenants that allow
//! registration.
//!
//! The account is made by the headless API's very `account::register` (the tenant's
//! password policy and deny-list, its custom fields, the per-address limit, the
//! verification mail that undoes the account when it does not leave); then the new
//! account signs in through the one password login, so a required verified email or
//! second factor is asked exactly as at any login, and the flow goes on to consent and the
//! code. The form posts the interaction and CSRF token like every step; `create=1` marks
//! a filled form (the login page's button posts none).
//!
//! A sign-up with a passkey instead of a password (`with=passkey`, offered where the
//! browser can make one): the form is checked as the API's
//! `/v1/auth/register/passkey/options` checks it, a page makes the passkey with options
//! bound to the interaction and posts it as `passkey`, and the account is made from what
//! the options were made for — never from fields posted with the passkey.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tenantry_accounts::account::{Registration, SignUpWith};
use tenantry_accounts::login::LoginError;
use tenantry_controlplane::model::Language;
use tenantry_tenancy::TenantContext;

use super::{Interaction, StepForm, action, after_first_factor, open_step, provider_buttons, seal};
use crate::error::{ApiError, ErrorCode};
use crate::pages::PageContext;
use crate::pages::{self, SignUpForm};
use crate::state::AppState;
use crate::web::csrf::{CsrfForm, CsrfRejection};
use crate::web::custom_fields::{self, MAX_FIELD};
use crate::web::{DEVICE_COOKIE, SessionOrigin, cookie};

pub(super) async fn signup(
    ctx: TenantContext,
    State(state): State<AppState>,
    origin: SessionOrigin,
    headers: HeaderMap,
    form: Result<CsrfForm, CsrfRejection>,
) -> Response {
    let (form, interaction) = match open_step(&state, &ctx, form) {
        Ok(opened) => opened,
        Err(page) => return *page,
    };
    let lang = interaction.lang;
    let pages = PageContext::of(&ctx, lang);
    let Some(client) = ctx.client(&interaction.client_id) else {
        return pages.error(StatusCode::BAD_REQUEST, "invalid_client", "unknown client");
    };
    if !ctx.entry.tenant.settings.security.registration_enabled {
        let e = ApiError::new(
            ErrorCode::RegistrationDisabled,
            "this tenant does not allow self-registration",
        );
        return pages.error(e.code.status(), e.code.as_str(), &e.detail);
    }
    let show = |error: Option<&ApiError>| signup_page(&state, &ctx, &interaction, &client.name, &form, error);
    if form.params.get("create") != Some("1") {
        return show(None);
    }
    if let Some(credential) = form.params.get("passkey").filter(|p| !p.is_empty()) {
        return match finish_passkey_signup(&state, &ctx, &origin, &interaction, credential).await {
            Ok(accepted) => {
                let db = match ctx.db().await {
                    Ok(db) => db,
                    Err(e) => return e.into_response(),
                };
                after_first_factor(&state, &ctx, &db, &origin, client, interaction.clone(), accepted).await
            }
            Err(PasskeySignUpEnd::VerifyEmail) => pages.signup_sent(),
            Err(PasskeySignUpEnd::Refused(e)) if e.code == ErrorCode::PasskeyInvalid => show(Some(&ApiError::new(
                ErrorCode::PasskeyInvalid,
                pages::passkey_create_failed(lang),
            ))),
            Err(PasskeySignUpEnd::Refused(e)) if e.code.status().is_client_error() => show(Some(&e)),
            Err(PasskeySignUpEnd::Refused(e)) => e.into_response(),
        };
    }
    let custom = match custom_fields::values(&ctx, &form.params) {
        Ok(custom) => custom,
        Err(e) => return show(Some(&e)),
    };
    let text = |name: &str| {
        form.params
            .get(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| v.chars().take(MAX_FIELD).collect::<String>())
    };
    if form.params.get("with") == Some("passkey") && tenantry_accounts::passkeys::browsers_offer(&ctx) {
        let pending = PendingSignUp {
            email: form.email.trim().to_owned(),
            given_name: text("given_name"),
            family_name: text("family_name"),
            locale: Some(lang.as_str().to_owned()),
            custom,
        };
        return match start_passkey_signup(&state, &ctx, &origin, &interaction, &form, pending).await {
            Ok(page) => page,
            Err(e) if e.code.status().is_client_error() => show(Some(&e)),
            Err(e) => e.into_response(),
        };
    }
    let registration = Registration {
        email: form.email.trim().to_owned(),
        credential: SignUpWith::Password(&form.password),
        client_id: None,
        scope: None,
        given_name: text("given_name"),
        family_name: text("family_name"),
        name: None,
        locale: Some(lang.as_str().to_owned()),
        phone_number: None,
        custom,
    };
    if let Err(e) = tenantry_accounts::account::register(&state.accounts, &ctx, origin.ip, registration).await {
        return show(Some(&e));
    }
    if ctx.entry.tenant.settings.security.require_verified_email {
        return pages.signup_sent();
    }
    // The new account signs in like any: the tenant's rules for a login apply.
    let db = match ctx.db().await {
        Ok(db) => db,
        Err(e) => return e.into_response(),
    };
    let device = cookie(&headers, DEVICE_COOKIE);
    let login = tenantry_accounts::login::password_login(
        &state.accounts,
        &ctx,
        &db,
        form.email.trim(),
        &form.password,
        origin.ip,
        device.as_deref(),
    );
    match login.await {
        Ok(accepted) => after_first_factor(&state, &ctx, &db, &origin, client, interaction, accepted).await,
        Err(LoginError::Unavailable(e)) => e.into_response(),
        // Made a moment ago with this very password: only the server's own trouble
        // (hashing saturated, limits) lands here; the account exists, so sign in later.
        Err(_) => pages.error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            pages::try_later(lang, std::time::Duration::from_secs(60)).as_str(),
        ),
    }
}

/// The account a passkey sign-up makes, as its options were made for it (their context).
#[derive(Serialize, Deserialize)]
struct PendingSignUp {
    email: String,
    given_name: Option<String>,
    family_name: Option<String>,
    locale: Option<String>,
    custom: BTreeMap<String, Value>,
}

/// Checks a passkey sign-up as the API does (profile, address free, options per address)
/// and shows the page that makes the passkey.
async fn start_passkey_signup(
    state: &AppState,
    ctx: &TenantContext,
    origin: &SessionOrigin,
    interaction: &Interaction,
    form: &StepForm,
    pending: PendingSignUp,
) -> Result<Response, ApiError> {
    use tenantry_dataplane::UserRepository;
    let new = tenantry_dataplane::model::NewUser {
        email: pending.email.clone(),
        given_name: pending.given_name.clone(),
        family_name: pending.family_name.clone(),
        locale: pending.locale.clone(),
        custom: pending.custom.clone(),
        ..Default::default()
    };
    tenantry_accounts::account::check_new_account(ctx, &new)?;
    tenantry_accounts::passkeys::count_options(&state.accounts, ctx, origin.ip).await?;
    let db = ctx.db().await?;
    if db.user_by_email(&pending.email, &ctx.custom_fields()).await?.is_some() {
        return Err(ApiError::new(
            ErrorCode::EmailTaken,
            "an account with this email already exists",
        ));
    }
    let names: Vec<&str> = [&pending.given_name, &pending.family_name]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    let display = if names.is_empty() {
        pending.email.clone()
    } else {
        names.join(" ")
    };
    let email = pending.email.clone();
    let context = serde_json::to_value(&pending).map_err(|_| ApiError::internal())?;
    let options =
        tenantry_accounts::passkeys::start_signup(ctx, &db, &email, &display, context, Some(&interaction.csrf)).await?;
    let options = serde_json::to_value(options).map_err(|_| ApiError::internal())?;
    let custom_names = ctx
        .entry
        .tenant
        .settings
        .custom_fields
        .iter()
        .map(|f| format!("custom.{}", f.name));
    let kept = ["email", "given_name", "family_name"]
        .map(String::from)
        .into_iter()
        .chain(custom_names)
        .filter_map(|name| {
            let value = form.params.get(&name)?.chars().take(MAX_FIELD).collect();
            Some((name, value))
        })
        .collect();
    let sealed = seal(state, ctx, interaction);
    Ok(
        PageContext::of(ctx, interaction.lang).passkey_signup(pages::PasskeySignUpPage {
            action: &action(ctx, "signup"),
            interaction: &sealed,
            csrf: &interaction.csrf,
            email: &email,
            options: &options,
            kept,
        }),
    )
}

/// How a passkey sign-up ended, when it did not sign the new account in.
enum PasskeySignUpEnd {
    /// The account is made; its address must be verified before it signs in.
    VerifyEmail,
    Refused(ApiError),
}

impl From<ApiError> for PasskeySignUpEnd {
    fn from(e: ApiError) -> Self {
        PasskeySignUpEnd::Refused(e)
    }
}

/// Makes the account of a passkey sign-up from its verified passkey and the pending
/// sign-up its options carried; the new account then signs in through the one login
/// decision, a passkey as its first factor.
async fn finish_passkey_signup(
    state: &AppState,
    ctx: &TenantContext,
    origin: &SessionOrigin,
    interaction: &Interaction,
    credential: &str,
) -> Result<tenantry_accounts::login::Accepted, PasskeySignUpEnd> {
    let invalid = || ApiError::new(ErrorCode::PasskeyInvalid, "the passkey does not verify");
    let credential: Value = serde_json::from_str(credential).map_err(|_| invalid())?;
    let db = ctx.db().await?;
    let (verified, context) =
        tenantry_accounts::passkeys::finish_signup(ctx, &db, Some(&interaction.csrf), &credential).await?;
    let pending: PendingSignUp = serde_json::from_value(context).map_err(|_| ApiError::internal())?;
    let synced = verified.synced();
    let registration = Registration {
        email: pending.email,
        credential: SignUpWith::Passkey(verified),
        client_id: None,
        scope: None,
        given_name: pending.given_name,
        family_name: pending.family_name,
        name: None,
        locale: pending.locale,
        phone_number: None,
        custom: pending.custom,
    };
    let registered = tenantry_accounts::account::register(&state.accounts, ctx, origin.ip, registration).await?;
    if ctx.entry.tenant.settings.security.require_verified_email {
        return Err(PasskeySignUpEnd::VerifyEmail);
    }
    let first = tenantry_accounts::login::FirstFactor::Passkey { synced };
    Ok(
        tenantry_accounts::login::after_first_factor(&state.accounts, ctx, &db, registered.user, first, false, None)
            .await?,
    )
}

/// The sign-up form, with the values sent so far and, after a refusal, why.
fn signup_page(
    state: &AppState,
    ctx: &TenantContext,
    interaction: &Interaction,
    client_name: &str,
    form: &StepForm,
    error: Option<&ApiError>,
) -> Response {
    let sealed = seal(state, ctx, interaction);
    let signup_action = action(ctx, "signup");
    let kept = |name: &str| {
        form.params
            .get(name)
            .unwrap_or("")
            .chars()
            .take(MAX_FIELD)
            .collect::<String>()
    };
    let mut values = BTreeMap::new();
    for name in ["email", "given_name", "family_name"] {
        values.insert(name, kept(name));
    }
    if values["email"].is_empty()
        && let Some(hint) = &interaction.login_hint
    {
        values.insert("email", hint.clone());
    }
    let fields = custom_fields::inputs(ctx, |name| kept(&format!("custom.{name}")));
    let message = error.map(|e| refusal(interaction.lang, e));
    let problems = error
        .map(|e| e.errors.iter().map(|f| format!("{}: {}", f.field, f.message)).collect())
        .unwrap_or_default();
    let status = error.map_or(StatusCode::OK, |e| e.code.status());
    let mut page = PageContext::of(ctx, interaction.lang).signup(
        &SignUpForm {
            client_name,
            action: &signup_action,
            interaction: &sealed,
            csrf: &interaction.csrf,
            values,
            fields,
            min_length: ctx.entry.tenant.settings.security.password_min_length,
            error: message.as_deref(),
            problems,
            providers: provider_buttons(ctx),
            passkey: tenantry_accounts::passkeys::browsers_offer(ctx),
        },
        status,
    );
    if let Some(secs) = error.and_then(|e| e.retry_after) {
        page.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
    }
    page
}

/// What the page says about a refused sign-up.
fn refusal(lang: Language, e: &ApiError) -> String {
    match e.code {
        ErrorCode::RateLimited => pages::try_later(lang, std::time::Duration::from_secs(e.retry_after.unwrap_or(60))),
        _ => e.detail.clone(),
    }
}
