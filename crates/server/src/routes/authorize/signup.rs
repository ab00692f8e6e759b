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

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tenantry_accounts::account::{Registration, SignUpWith};
use tenantry_accounts::login::LoginError;
use tenantry_controlplane::model::{CustomFieldType, Language};
use tenantry_tenancy::TenantContext;

use super::{Interaction, StepForm, action, after_first_factor, open_step, page_context, provider_buttons, seal};
use crate::error::{ApiError, ErrorCode};
use crate::pages::{self, SignUpField, SignUpForm};
use crate::state::AppState;
use crate::web::csrf::{CsrfForm, CsrfRejection};
use crate::web::{DEVICE_COOKIE, SessionOrigin, cookie};

/// Longest value taken from one sign-up field (the store checks each field's own rules).
const MAX_FIELD: usize = 1024;

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
    let pages = page_context(&ctx, lang);
    let Some(client) = ctx.entry.clients.get(&interaction.client_id) else {
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
    let custom = match custom_values(&ctx, &form) {
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
    let fields = ctx
        .entry
        .tenant
        .settings
        .custom_fields
        .iter()
        .map(|f| SignUpField {
            name: f.name.clone(),
            label: label(&f.name),
            input: match f.field_type {
                CustomFieldType::Text => "text",
                CustomFieldType::Integer => "number",
                CustomFieldType::Boolean => "checkbox",
                CustomFieldType::Date => "date",
                CustomFieldType::Timestamp => "datetime-local",
            },
            required: f.required,
            value: kept(&format!("custom.{}", f.name)),
        })
        .collect();
    let message = error.map(|e| refusal(interaction.lang, e));
    let problems = error
        .map(|e| e.errors.iter().map(|f| format!("{}: {}", f.field, f.message)).collect())
        .unwrap_or_default();
    let status = error.map_or(StatusCode::OK, |e| e.code.status());
    let mut page = page_context(ctx, interaction.lang).signup(
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

/// A custom field's label: its name with spaces, capitalised (`cost_center` → "Cost center").
fn label(name: &str) -> String {
    let spaced = name.replace('_', " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => spaced,
    }
}

/// The tenant's custom fields from the form, as the values the store takes: text and
/// dates as sent, integers parsed, booleans from checkboxes, `datetime-local` as UTC.
/// Empty inputs are left out (the store refuses a missing required field).
fn custom_values(ctx: &TenantContext, form: &StepForm) -> Result<BTreeMap<String, Value>, ApiError> {
    let mut values = BTreeMap::new();
    for field in &ctx.entry.tenant.settings.custom_fields {
        let key = format!("custom.{}", field.name);
        let raw = form.params.get(&key).map(str::trim).unwrap_or("");
        let value = match field.field_type {
            CustomFieldType::Boolean => Value::Bool(raw == "1"),
            _ if raw.is_empty() => continue,
            CustomFieldType::Integer => match raw.parse::<i64>() {
                Ok(n) => Value::from(n),
                Err(_) => {
                    return Err(ApiError::field(
                        &format!("custom.{}", field.name),
                        "must be a whole number",
                    ));
                }
            },
            CustomFieldType::Timestamp if raw.len() == 16 => Value::String(format!("{raw}:00Z")),
            CustomFieldType::Timestamp if raw.len() == 19 => Value::String(format!("{raw}Z")),
            _ => Value::String(raw.chars().take(MAX_FIELD).collect()),
        };
        values.insert(field.name.clone(), value);
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_read_as_words() {
        assert_eq!(label("cost_center"), "Cost center");
        assert_eq!(label("x"), "X");
        assert_eq!(label(""), "");
    }
}
