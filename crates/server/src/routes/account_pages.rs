//! The hosted pages behind the links of account mails: `/t/{slug}/verify-email` and
//! `/t/{slug}/reset-password` (see `account_email`, which does the work for these pages
//! and for the headless API alike).
//!
//! A GET only shows a form (checking the token without spending it), so mail scanners
//! and link previews that fetch the link change nothing. The form posts the token with a
//! CSRF token that must equal the tenant-scoped `tenantry_csrf` cookie set by the GET.
//! Bad, used or expired tokens show the error page. Language: `?ui_locales`, then the
//! account's locale, then the tenant's.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tenantry_controlplane::model::Language;
use tenantry_dataplane::model::User;

use crate::account_email::{self, RESET_PATH, VERIFY_PATH};
use crate::app::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::pages::{self, PageContext};
use crate::params::Params;
use crate::resolver::TenantContext;
use crate::routes::authorize::{CSRF_COOKIE, cookie, cookie_header};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/t/{slug}/verify-email", get(verify_get).post(verify_post))
        .route("/t/{slug}/reset-password", get(reset_get).post(reset_post))
}

fn page_context(ctx: &TenantContext, lang: Language) -> PageContext<'_> {
    PageContext {
        lang,
        branding: &ctx.entry.tenant.settings.branding,
        tenant_name: &ctx.entry.tenant.display_name,
    }
}

/// The parameters of a link (query) or of its form (body); `None` when a name repeats.
struct LinkParams {
    token: String,
    csrf: String,
    ui_locales: Option<String>,
    new_password: String,
}

fn link_params(raw: &[u8]) -> Option<LinkParams> {
    let params = Params::parse(raw, &[]).ok()?;
    let get = |name: &str| params.get(name).unwrap_or("").to_owned();
    Some(LinkParams {
        token: get("token"),
        csrf: get("csrf"),
        ui_locales: params.get("ui_locales").map(str::to_owned),
        new_password: get("new_password"),
    })
}

/// What went wrong before the work: shown on the error page.
fn link_error(ctx: &TenantContext, lang: Language, e: ApiError) -> Response {
    let page = page_context(ctx, lang);
    match e.code {
        ErrorCode::InvalidGrant => page.error(StatusCode::BAD_REQUEST, "invalid_grant", pages::link_invalid(lang)),
        _ => e.into_response(),
    }
}

/// A link opened with a GET.
struct OpenedLink {
    token: String,
    /// The account the token is for (the token is not spent).
    user: User,
    lang: Language,
    /// The browser's CSRF token, or a new one for the cookie.
    csrf: String,
}

/// The GET of a link: the token's account, the language, and a CSRF token.
async fn open_link(
    ctx: &TenantContext,
    headers: &HeaderMap,
    query: Option<String>,
    reset: bool,
) -> Result<OpenedLink, Box<Response>> {
    let tenant_lang = ctx.entry.tenant.settings.language;
    let Some(params) = link_params(query.unwrap_or_default().as_bytes()) else {
        return Err(Box::new(page_context(ctx, tenant_lang).error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "a parameter is repeated",
        )));
    };
    let lang = pages::language(params.ui_locales.as_deref(), tenant_lang);
    if params.token.is_empty() {
        return Err(Box::new(link_error(ctx, lang, account_email::invalid_token())));
    }
    let db = ctx.db().await.map_err(|e| Box::new(e.into_response()))?;
    let target = if reset {
        account_email::reset_target(ctx, &db, &params.token).await
    } else {
        account_email::verification_target(ctx, &db, &params.token).await
    };
    let user = target.map_err(|e| Box::new(link_error(ctx, lang, e)))?;
    // Without `ui_locales`, the account's own language.
    let lang = match params.ui_locales {
        Some(_) => lang,
        None => account_email::mail_language(ctx, Some(&user)),
    };
    let csrf = cookie(headers, CSRF_COOKIE).unwrap_or_else(|| tenantry_crypto::random_token(32));
    Ok(OpenedLink {
        token: params.token,
        user,
        lang,
        csrf,
    })
}

/// The POST of a link's form: its parameters and language once the CSRF token matches
/// the cookie.
fn open_form(ctx: &TenantContext, headers: &HeaderMap, body: &[u8]) -> Result<(LinkParams, Language), Box<Response>> {
    let tenant_lang = ctx.entry.tenant.settings.language;
    let params = link_params(body);
    let lang = pages::language(params.as_ref().and_then(|p| p.ui_locales.as_deref()), tenant_lang);
    let expired = || {
        Box::new(page_context(ctx, lang).error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            pages::link_page_expired(lang),
        ))
    };
    let Some(params) = params else {
        return Err(expired());
    };
    let cookie_csrf = cookie(headers, CSRF_COOKIE).unwrap_or_default();
    if params.csrf.is_empty() || !tenantry_crypto::constant_time_eq(params.csrf.as_bytes(), cookie_csrf.as_bytes()) {
        return Err(expired());
    }
    if params.token.is_empty() {
        return Err(Box::new(link_error(ctx, lang, account_email::invalid_token())));
    }
    Ok((params, lang))
}

fn with_csrf_cookie(state: &AppState, ctx: &TenantContext, mut response: Response, csrf: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(&cookie_header(state, ctx, CSRF_COOKIE, csrf, None)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

fn action(ctx: &TenantContext, path: &str) -> String {
    format!("{}/{path}", ctx.issuer)
}

/// `GET /t/{slug}/verify-email?token=…`: a button to confirm the address.
async fn verify_get(
    ctx: TenantContext,
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let link = match open_link(&ctx, &headers, query, false).await {
        Ok(opened) => opened,
        Err(page) => return *page,
    };
    let action = action(&ctx, VERIFY_PATH);
    let page = page_context(&ctx, link.lang).verify_email(&action, &link.token, &link.csrf, &link.user.email);
    with_csrf_cookie(&state, &ctx, page, &link.csrf)
}

/// `POST /t/{slug}/verify-email`: spends the token and marks the address verified.
async fn verify_post(ctx: TenantContext, headers: HeaderMap, body: Bytes) -> Response {
    let (form, lang) = match open_form(&ctx, &headers, &body) {
        Ok(opened) => opened,
        Err(page) => return *page,
    };
    let db = match ctx.db().await {
        Ok(db) => db,
        Err(e) => return e.into_response(),
    };
    match account_email::confirm_verification(&ctx, &db, &form.token).await {
        Ok(_) => page_context(&ctx, lang).email_verified(),
        Err(e) => link_error(&ctx, lang, e),
    }
}

/// `GET /t/{slug}/reset-password?token=…`: the new-password form.
async fn reset_get(
    ctx: TenantContext,
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let link = match open_link(&ctx, &headers, query, true).await {
        Ok(opened) => opened,
        Err(page) => return *page,
    };
    let action = action(&ctx, RESET_PATH);
    let page = page_context(&ctx, link.lang).reset_password(&action, &link.token, &link.csrf, &link.user.email, None);
    with_csrf_cookie(&state, &ctx, page, &link.csrf)
}

/// `POST /t/{slug}/reset-password`: sets the new password (the API's very reset: policy,
/// every session ended, notice sent); a password the policy refuses shows the form again
/// with the same, unspent link.
async fn reset_post(ctx: TenantContext, State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (form, lang) = match open_form(&ctx, &headers, &body) {
        Ok(opened) => opened,
        Err(page) => return *page,
    };
    let db = match ctx.db().await {
        Ok(db) => db,
        Err(e) => return e.into_response(),
    };
    let reset = account_email::reset_password(&state, &ctx, &db, &form.token, &form.new_password, "new_password");
    match reset.await {
        Ok(_) => page_context(&ctx, lang).password_changed(),
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
            page_context(&ctx, lang).reset_password(&action, &form.token, &form.csrf, &user.email, Some(&message))
        }
        Err(e) => link_error(&ctx, lang, e),
    }
}
