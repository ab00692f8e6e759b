//! The hosted pages behind the links of account mails: `/t/{slug}/verify-email`,
//! `/t/{slug}/change-email` (a new address of an account) and `/t/{slug}/reset-password`, and the form that asks for a reset link,
//! `/t/{slug}/forgot-password` (see `account_email`, which does the work for these pages
//! and for the headless API alike).
//!
//! A GET only shows a form (checking the token without spending it), so mail scanners
//! and link previews that fetch the link change nothing. The form posts the token with a
//! CSRF token that must equal the tenant-scoped `tenantry_csrf` cookie set by the GET.
//! Bad, used or expired tokens show the error page. Language: `?ui_locales`, then the
//! account's locale, then the tenant's.
//!
//! The forgot-password form posts an address with the same CSRF token and then runs the
//! API's very `account_email::request_link`: one page for every well-formed address.

use std::net::IpAddr;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tenantry_controlplane::model::Language;
use tenantry_dataplane::TenantDb;
use tenantry_dataplane::model::{EmailTokenPurpose, User};

use crate::error::{ApiError, ErrorCode};
use crate::pages::{self, PageContext};
use crate::state::AppState;
use crate::web::ClientIp;
use crate::web::csrf::{self, CsrfForm, CsrfRejection};
use tenantry_accounts::account_email::{self, FORGOT_PATH, RESET_PATH};
use tenantry_messages::Key;
use tenantry_oidc::params::Params;
use tenantry_tenancy::TenantContext;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/t/{slug}/verify-email", get(verify_get).post(verify_post))
        .route("/t/{slug}/reset-password", get(reset_get).post(reset_post))
        .route("/t/{slug}/forgot-password", get(forgot_get).post(forgot_post))
        .route("/t/{slug}/change-email", get(change_get).post(change_post))
}

/// The parameters of a link (query) or of its form (body).
struct LinkParams {
    token: String,
    csrf: String,
    ui_locales: Option<String>,
    new_password: String,
}

fn link_params(params: &Params) -> LinkParams {
    let get = |name: &str| params.get(name).unwrap_or("").to_owned();
    LinkParams {
        token: get("token"),
        csrf: get("csrf"),
        ui_locales: params.get("ui_locales").map(str::to_owned),
        new_password: get("new_password"),
    }
}

/// What went wrong before the work: shown on the error page.
fn link_error(ctx: &TenantContext, lang: Language, e: ApiError) -> Response {
    let page = PageContext::of(ctx, lang);
    match (e.code, e.retry_after) {
        (ErrorCode::InvalidGrant, _) => page.error(StatusCode::BAD_REQUEST, "invalid_grant", pages::link_invalid(lang)),
        (ErrorCode::EmailTaken, _) => page.error(
            StatusCode::CONFLICT,
            ErrorCode::EmailTaken.as_str(),
            pages::text(lang, Key::EmailTaken),
        ),
        (ErrorCode::RateLimited, Some(secs)) => rate_limited(
            page.error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                &pages::try_later(lang, std::time::Duration::from_secs(secs)),
            ),
            secs,
        ),
        _ => e.into_response(),
    }
}

/// `response` with `Retry-After: secs`.
fn rate_limited(mut response: Response, secs: u64) -> Response {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

/// A link opened with a GET.
struct OpenedLink {
    token: String,
    /// The account the token is for (the token is not spent).
    user: User,
    /// The address the link is for: the account's, or the new one of an address change.
    email: String,
    lang: Language,
    /// The browser's CSRF token, or a new one for the cookie.
    csrf: String,
}

/// The GET of a link: the token's account, the language, and a CSRF token.
async fn open_link(
    state: &AppState,
    ctx: &TenantContext,
    ip: Option<IpAddr>,
    headers: &HeaderMap,
    query: Option<String>,
    purpose: EmailTokenPurpose,
) -> Result<OpenedLink, Box<Response>> {
    let tenant_lang = ctx.entry.tenant.settings.language;
    let Ok(params) = Params::parse(query.unwrap_or_default().as_bytes(), &[]).map(|p| link_params(&p)) else {
        return Err(Box::new(PageContext::of(ctx, tenant_lang).error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "a parameter is repeated",
        )));
    };
    let lang = pages::language(params.ui_locales.as_deref(), tenant_lang);
    if params.token.is_empty() {
        return Err(Box::new(link_error(ctx, lang, account_email::invalid_token())));
    }
    account_email::count_token_check(&state.accounts, ctx, ip)
        .await
        .map_err(|e| Box::new(link_error(ctx, lang, e)))?;
    let db = ctx.db().await.map_err(|e| Box::new(e.into_response()))?;
    let own_address = |user: User| (user.email.clone(), user);
    let target = match purpose {
        EmailTokenPurpose::ResetPassword => account_email::reset_target(ctx, &db, &params.token)
            .await
            .map(own_address),
        EmailTokenPurpose::VerifyEmail => account_email::verification_target(ctx, &db, &params.token)
            .await
            .map(own_address),
        EmailTokenPurpose::ChangeEmail => account_email::change_target(ctx, &db, &params.token)
            .await
            .map(|(user, new)| (new, user)),
    };
    let (email, user) = target.map_err(|e| Box::new(link_error(ctx, lang, e)))?;
    // Without `ui_locales`, the account's own language.
    let lang = match params.ui_locales {
        Some(_) => lang,
        None => account_email::mail_language(ctx, Some(&user)),
    };
    let csrf = csrf::token(headers);
    Ok(OpenedLink {
        token: params.token,
        user,
        email,
        lang,
        csrf,
    })
}

/// The POST of a link's form: its parameters and language once the CSRF token matches
/// the cookie ([`CsrfForm`]).
async fn open_form(
    state: &AppState,
    ctx: &TenantContext,
    ip: Option<IpAddr>,
    form: Result<CsrfForm, CsrfRejection>,
) -> Result<(LinkParams, Language), Box<Response>> {
    let tenant_lang = ctx.entry.tenant.settings.language;
    let expired = |params: Option<&Params>| {
        let lang = pages::language(params.and_then(|p| p.get("ui_locales")), tenant_lang);
        PageContext::of(ctx, lang).error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            pages::link_page_expired(lang),
        )
    };
    let CsrfForm(params) = form.map_err(|rejection| Box::new(rejection.respond(|params| expired(params.as_ref()))))?;
    let form = link_params(&params);
    let lang = pages::language(form.ui_locales.as_deref(), tenant_lang);
    if form.token.is_empty() {
        return Err(Box::new(link_error(ctx, lang, account_email::invalid_token())));
    }
    account_email::count_token_check(&state.accounts, ctx, ip)
        .await
        .map_err(|e| Box::new(link_error(ctx, lang, e)))?;
    Ok((form, lang))
}

fn action(ctx: &TenantContext, path: &str) -> String {
    format!("{}/{path}", ctx.issuer)
}

/// `GET /t/{slug}/verify-email?token=…`: a button to confirm the address.
async fn verify_get(
    ctx: TenantContext,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    confirm_get(&state, &ctx, ip, &headers, query, EmailTokenPurpose::VerifyEmail).await
}

/// `GET /t/{slug}/change-email?token=…`: a button that confirms the new address of an
/// account (the verification page, showing the new address).
async fn change_get(
    ctx: TenantContext,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    confirm_get(&state, &ctx, ip, &headers, query, EmailTokenPurpose::ChangeEmail).await
}

/// The page of a link that confirms an address (`purpose`): the address and a button
/// that posts the token back to the link's path.
async fn confirm_get(
    state: &AppState,
    ctx: &TenantContext,
    ip: Option<IpAddr>,
    headers: &HeaderMap,
    query: Option<String>,
    purpose: EmailTokenPurpose,
) -> Response {
    let link = match open_link(state, ctx, ip, headers, query, purpose).await {
        Ok(opened) => opened,
        Err(page) => return *page,
    };
    let action = action(ctx, account_email::page_path(purpose));
    let page = PageContext::of(ctx, link.lang).verify_email(&action, &link.token, &link.csrf, &link.email);
    csrf::with_cookie(state, ctx, page, &link.csrf)
}

/// `POST /t/{slug}/verify-email`: spends the token and marks the address verified.
async fn verify_post(
    ctx: TenantContext,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    form: Result<CsrfForm, CsrfRejection>,
) -> Response {
    let (form, lang, db) = match open_confirmation(&state, &ctx, ip, form).await {
        Ok(opened) => opened,
        Err(page) => return *page,
    };
    match account_email::confirm_verification(&ctx, &db, &form.token).await {
        Ok(_) => PageContext::of(&ctx, lang).email_verified(),
        Err(e) => link_error(&ctx, lang, e),
    }
}

/// `POST /t/{slug}/change-email`: spends the token and gives the account its new,
/// verified address.
async fn change_post(
    ctx: TenantContext,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    form: Result<CsrfForm, CsrfRejection>,
) -> Response {
    let (form, lang, db) = match open_confirmation(&state, &ctx, ip, form).await {
        Ok(opened) => opened,
        Err(page) => return *page,
    };
    match account_email::confirm_email_change(&ctx, &db, &form.token).await {
        Ok(_) => PageContext::of(&ctx, lang).email_changed(),
        Err(e) => link_error(&ctx, lang, e),
    }
}

/// [`open_form`] and the tenant database the confirmation writes to.
async fn open_confirmation(
    state: &AppState,
    ctx: &TenantContext,
    ip: Option<IpAddr>,
    form: Result<CsrfForm, CsrfRejection>,
) -> Result<(LinkParams, Language, TenantDb), Box<Response>> {
    let (form, lang) = open_form(state, ctx, ip, form).await?;
    let db = ctx.db().await.map_err(|e| Box::new(e.into_response()))?;
    Ok((form, lang, db))
}

/// `GET /t/{slug}/reset-password?token=…`: the new-password form.
async fn reset_get(
    ctx: TenantContext,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let link = match open_link(&state, &ctx, ip, &headers, query, EmailTokenPurpose::ResetPassword).await {
        Ok(opened) => opened,
        Err(page) => return *page,
    };
    let action = action(&ctx, RESET_PATH);
    let page =
        PageContext::of(&ctx, link.lang).reset_password(&action, &link.token, &link.csrf, &link.user.email, None);
    csrf::with_cookie(&state, &ctx, page, &link.csrf)
}

/// `POST /t/{slug}/reset-password`: sets the new password (the API's very reset: policy,
/// every session ended, notice sent); a password the policy refuses shows the form again
/// with the same, unspent link.
async fn reset_post(
    ctx: TenantContext,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    form: Result<CsrfForm, CsrfRejection>,
) -> Response {
    let (form, lang) = match open_form(&state, &ctx, ip, form).await {
        Ok(opened) => opened,
        Err(page) => return *page,
    };
    let db = match ctx.db().await {
        Ok(db) => db,
        Err(e) => return e.into_response(),
    };
    let reset = account_email::reset_password(
        &state.accounts,
        &ctx,
        &db,
        &form.token,
        &form.new_password,
        "new_password",
    );
    match reset.await {
        Ok(_) => PageContext::of(&ctx, lang).password_changed(),
        Err(e) if e.code == ErrorCode::ValidationFailed => {
            let user = match account_email::reset_target(&ctx, &db, &form.token).await {
                Ok(user) => user,
                Err(e) => return link_error(&ctx, lang, e),
            };
            let reasons = e
                .errors
                .iter()
                .map(|f| f.message.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            let message = pages::password_refused(lang, &reasons);
            let action = action(&ctx, RESET_PATH);
            PageContext::of(&ctx, lang).reset_password(&action, &form.token, &form.csrf, &user.email, Some(&message))
        }
        Err(e) => link_error(&ctx, lang, e),
    }
}

/// The hosted error page of a tenant that cannot send mail: 501 `email_not_configured`,
/// as the API answers.
fn email_not_configured(ctx: &TenantContext, lang: Language) -> Response {
    PageContext::of(ctx, lang).error(
        StatusCode::NOT_IMPLEMENTED,
        ErrorCode::EmailNotConfigured.as_str(),
        pages::email_not_configured(lang),
    )
}

/// `GET /t/{slug}/forgot-password`: a form that asks for the account's address.
async fn forgot_get(
    ctx: TenantContext,
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let tenant_lang = ctx.entry.tenant.settings.language;
    let params = match Params::parse(query.unwrap_or_default().as_bytes(), &[]) {
        Ok(params) => params,
        Err(e) => {
            let page = PageContext::of(&ctx, tenant_lang);
            return page.error(StatusCode::BAD_REQUEST, "invalid_request", &e.message());
        }
    };
    let lang = pages::language(params.get("ui_locales"), tenant_lang);
    if !ctx.capabilities.email {
        return email_not_configured(&ctx, lang);
    }
    let csrf = csrf::token(&headers);
    let page = PageContext::of(&ctx, lang).forgot_password(&action(&ctx, FORGOT_PATH), &csrf, "", None);
    csrf::with_cookie(&state, &ctx, page, &csrf)
}

/// `POST /t/{slug}/forgot-password`: once the CSRF token matches the cookie, the API's
/// `request_link` (per-IP limit, the lookup and the mail in the background), and the
/// same page for every well-formed address.
async fn forgot_post(
    ctx: TenantContext,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    form: Result<CsrfForm, CsrfRejection>,
) -> Response {
    let tenant_lang = ctx.entry.tenant.settings.language;
    let page_in = |params: Option<&Params>| {
        let lang = pages::language(params.and_then(|p| p.get("ui_locales")), tenant_lang);
        (PageContext::of(&ctx, lang), lang)
    };
    let params = match form {
        Ok(CsrfForm(params)) => params,
        Err(rejection) => {
            return rejection.respond(|params| {
                let (page, lang) = page_in(params.as_ref());
                page.error(StatusCode::BAD_REQUEST, "invalid_request", pages::form_expired(lang))
            });
        }
    };
    let (page, lang) = page_in(Some(&params));
    let csrf = params.get("csrf").unwrap_or("");
    let email = params.get("email").unwrap_or("").to_owned();
    match account_email::request_link(
        &state.accounts,
        &ctx,
        ip,
        email.clone(),
        None,
        EmailTokenPurpose::ResetPassword,
    )
    .await
    {
        Ok(()) => page.forgot_sent(),
        Err(e) => {
            let again = |status: StatusCode, message: &str| {
                page.forgot_password(&action(&ctx, FORGOT_PATH), csrf, &email, Some((status, message)))
            };
            match (e.code, e.retry_after) {
                (ErrorCode::EmailNotConfigured, _) => email_not_configured(&ctx, lang),
                (ErrorCode::ValidationFailed, _) => again(StatusCode::UNPROCESSABLE_ENTITY, pages::bad_email(lang)),
                (ErrorCode::RateLimited, Some(secs)) => {
                    let wait = std::time::Duration::from_secs(secs);
                    rate_limited(
                        again(StatusCode::TOO_MANY_REQUESTS, &pages::try_later(lang, wait)),
                        secs,
                    )
                }
                _ => e.into_response(),
            }
        }
    }
}
