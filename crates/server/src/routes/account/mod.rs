//! The hosted account page (`{issuer}/account`): where a signed-in user manages their own
//! account — profile and custom fields, email address, password, authenticator app and
//! recovery codes, passkeys, linked upstream sign-ins, sessions and devices.
//!
//! The page is a first-party client of its tenant like any app (`ACCOUNT_CLIENT_ID`, built
//! in): a visit without a good account cookie goes through the tenant's own authorization
//! endpoint (code flow, PKCE S256, `state` in a short-lived cookie), so signing in — the
//! password, second factor, passkeys, upstream providers, an existing login session — is
//! the hosted login's. The callback redeems the code at the token endpoint's own rules and
//! keeps the access token in an `HttpOnly` cookie of the tenant; every request checks it
//! with the one token rule (`tokens::accept_access_token`), so a session ended anywhere
//! ends the page's sign-in too, and an expired token just signs in again (silently, while
//! the login session lives). A login made during the page's own sign-in counts as the
//! re-authentication that changes of sign-in methods need (`account::mark_reauthenticated`);
//! otherwise those forms take the current password, and "sign in again" (`prompt=login`)
//! serves accounts without one.
//!
//! Changes are forms posted with the CSRF token (`web::csrf`) and answered with a
//! redirect back to the page and a notice (post/redirect/get); a refused change shows the
//! page again with the reason. Only adding a passkey needs JavaScript (the WebAuthn call).

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use tenantry_accounts::mfa::Enrolment;
use tenantry_controlplane::model::Language;
use tenantry_dataplane::model::{Session, User};
use tenantry_dataplane::{TenantDb, UserRepository};
use tenantry_messages::Key;
use tenantry_oidc::params::Params;
use tenantry_oidc::tokens::BearerError;
use tenantry_tenancy::{ACCOUNT_CALLBACK_PATH, ACCOUNT_CLIENT_ID, ACCOUNT_PATH, TenantContext};

use crate::error::{ApiError, ErrorCode};
use crate::pages::{self, AccountPage, AccountRow, PageContext};
use crate::state::AppState;
use crate::web::{cookie, csrf, custom_fields, set_cookie};

mod changes;

/// The access token of the page's sign-in.
const ACCOUNT_COOKIE: &str = "tenantry_account";
/// A sign-in under way: `{state}.{PKCE verifier}.{start, Unix seconds}`.
const FLOW_COOKIE: &str = "tenantry_account_flow";
/// How long a sign-in may take.
const FLOW_SECS: i64 = 900;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/t/{slug}/account", get(page))
        .route("/t/{slug}/account/callback", get(callback))
        .route("/t/{slug}/account/reauth", get(reauth))
        .merge(changes::router())
}

/// The signed-in user of an account page request.
struct SignedIn {
    user: User,
    session: Session,
    db: TenantDb,
    lang: Language,
    /// The browser's CSRF token (or a new one, set with the page).
    csrf: String,
}

/// The page's sign-in from its cookie: `None` when there is none or it is no longer good.
async fn signed_in(ctx: &TenantContext, headers: &HeaderMap) -> Result<Option<SignedIn>, ApiError> {
    let Some(token) = cookie(headers, ACCOUNT_COOKIE) else {
        return Ok(None);
    };
    let good = match tenantry_oidc::tokens::accept_access_token(ctx, &token).await {
        Ok(good) => good,
        Err(BearerError::InvalidToken(_)) => return Ok(None),
        Err(BearerError::Unavailable(e)) => return Err(e),
    };
    let (Some(user), Some(session)) = (good.user, good.session) else {
        return Ok(None);
    };
    if good.claims.client_id != ACCOUNT_CLIENT_ID {
        return Ok(None);
    }
    let db = ctx.db().await?;
    Ok(Some(SignedIn {
        lang: tenantry_accounts::account_email::mail_language(ctx, Some(&user)),
        user,
        session,
        db,
        csrf: csrf::token(headers),
    }))
}

fn base(ctx: &TenantContext) -> String {
    format!("{}/{ACCOUNT_PATH}", ctx.issuer)
}

/// `GET {issuer}/account`: the page, or the sign-in that leads to it.
async fn page(
    ctx: TenantContext,
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes(), &[]).ok();
    let param = |name: &str| params.as_ref().and_then(|p| p.get(name));
    let me = match signed_in(&ctx, &headers).await {
        Ok(Some(me)) => me,
        Ok(None) => return start_sign_in(&state, &ctx, false, param("ui_locales")),
        Err(e) => return e.into_response(),
    };
    let notice = param("done").and_then(notice_of);
    let shown = Shown {
        notice,
        ..Default::default()
    };
    render(&state, &ctx, &me, shown).await
}

/// `GET {issuer}/account/reauth`: sign in again (`prompt=login`), for a change that asks
/// for a fresh proof from an account that has no password to type.
async fn reauth(ctx: TenantContext, State(state): State<AppState>) -> Response {
    start_sign_in(&state, &ctx, true, None)
}

/// Sends the browser to the tenant's authorization endpoint as the account client.
fn start_sign_in(state: &AppState, ctx: &TenantContext, again: bool, ui_locales: Option<&str>) -> Response {
    let flow_state = tenantry_crypto::random_token(32);
    let verifier = tenantry_crypto::random_token(32);
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("response_type", "code")
        .append_pair("client_id", ACCOUNT_CLIENT_ID)
        .append_pair("redirect_uri", &format!("{}/{ACCOUNT_CALLBACK_PATH}", ctx.issuer))
        .append_pair("scope", "openid profile email")
        .append_pair("state", &flow_state)
        .append_pair(
            "code_challenge",
            &tenantry_oidc::token_endpoint::pkce_challenge(&verifier),
        )
        .append_pair("code_challenge_method", "S256");
    if again {
        query.append_pair("prompt", "login");
    }
    if let Some(locales) = ui_locales {
        query.append_pair("ui_locales", locales);
    }
    let url = format!("{}/authorize?{}", ctx.issuer, query.finish());
    let mut response = Redirect::to(&url).into_response();
    let flow = format!("{flow_state}.{verifier}.{}", Utc::now().timestamp());
    set_cookie(&mut response, state, ctx, FLOW_COOKIE, &flow, Some(FLOW_SECS));
    response
}

/// `GET {issuer}/account/callback`: the end of the page's sign-in. The `state` must be
/// the one of this browser's sign-in; the code is redeemed with its PKCE verifier.
async fn callback(
    ctx: TenantContext,
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let lang = ctx.entry.tenant.settings.language;
    let refused = |code: &str| PageContext::of(&ctx, lang).error(StatusCode::BAD_REQUEST, code, pages::expired(lang));
    let Ok(params) = Params::parse(query.unwrap_or_default().as_bytes(), &[]) else {
        return refused("invalid_request");
    };
    let flow = cookie(&headers, FLOW_COOKIE).unwrap_or_default();
    let mut parts = flow.splitn(3, '.');
    let (Some(expected), Some(verifier), Some(started)) = (parts.next(), parts.next(), parts.next()) else {
        return refused("invalid_request");
    };
    let state_matches = csrf::matches(expected, params.get("state").unwrap_or(""));
    if !state_matches || params.get("iss").is_some_and(|iss| iss != ctx.issuer) {
        return refused("invalid_request");
    }
    if let Some(error) = params.get("error") {
        // The user cancelled, or the login could not finish: the page cannot be shown.
        let error = tenantry_errors::printable(error);
        return PageContext::of(&ctx, lang).error(StatusCode::FORBIDDEN, &error, pages::expired(lang));
    }
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", params.get("code").unwrap_or(""))
        .append_pair("redirect_uri", &format!("{}/{ACCOUNT_CALLBACK_PATH}", ctx.issuer))
        .append_pair("client_id", ACCOUNT_CLIENT_ID)
        .append_pair("code_verifier", verifier)
        .finish();
    let Ok(form) = Params::parse(form.as_bytes(), &[]) else {
        return refused("invalid_request");
    };
    let admit = async |_: &tenantry_controlplane::model::Client| Ok(());
    let body = match tenantry_oidc::token_endpoint::token(&state.keystore, &ctx, None, &form, admit).await {
        Ok(body) => body,
        Err(e) => match e.unavailable() {
            Some(problem) => return problem.clone().into_response(),
            None => return refused(e.error()),
        },
    };
    let (Some(token), Some(lifetime)) = (body["access_token"].as_str(), body["expires_in"].as_i64()) else {
        return ApiError::internal().into_response();
    };
    // A login made during this very sign-in is a fresh proof of the user.
    let started = started.parse::<i64>().unwrap_or(i64::MAX);
    if let Ok(good) = tenantry_oidc::tokens::accept_access_token(&ctx, token).await
        && let Some(session) = good.session
        && session.auth_time.timestamp() >= started
        && let Err(e) = tenantry_accounts::account::mark_reauthenticated(&state.accounts, &ctx, &session).await
    {
        return e.into_response();
    }
    let mut response = Redirect::to(&base(&ctx)).into_response();
    set_cookie(&mut response, &state, &ctx, ACCOUNT_COOKIE, token, Some(lifetime));
    set_cookie(&mut response, &state, &ctx, FLOW_COOKIE, "", Some(0));
    response
}

/// What a page shows beside the account itself.
#[derive(Default)]
struct Shown {
    notice: Option<Key>,
    error: Option<ApiError>,
    enrolment: Option<Enrolment>,
    recovery_codes: Option<Vec<String>>,
}

/// The notices a change redirects with (`?done=…`), by name.
const NOTICES: [(&str, Key); 8] = [
    ("saved", Key::AccountSaved),
    ("email_sent", Key::AccountEmailSent),
    ("password", Key::AccountPasswordChanged),
    ("totp_off", Key::AccountTotpDisabled),
    ("passkey_added", Key::AccountPasskeyAdded),
    ("passkey_removed", Key::AccountPasskeyRemoved),
    ("unlinked", Key::AccountUnlinked),
    ("session_ended", Key::AccountSessionEnded),
];

fn notice_of(name: &str) -> Option<Key> {
    NOTICES.iter().find(|(n, _)| *n == name).map(|(_, key)| *key)
}

fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// The account page for `me`, with what `shown` adds.
async fn render(state: &AppState, ctx: &TenantContext, me: &SignedIn, shown: Shown) -> Response {
    match page_of(ctx, me, &shown).await {
        Ok(response) => csrf::with_cookie(state, ctx, response, &me.csrf),
        Err(e) => e.into_response(),
    }
}

async fn page_of(ctx: &TenantContext, me: &SignedIn, shown: &Shown) -> Result<Response, ApiError> {
    let (db, user, lang) = (&me.db, &me.user, me.lang);
    let text = |key: Key| pages::text(lang, key);
    let has_password = db.password(user.id).await?.is_some();
    let totp = tenantry_accounts::mfa::enrolled(db, user.id).await?;
    let passkeys = tenantry_accounts::passkeys::list(db, user.id)
        .await?
        .into_iter()
        .map(|p| {
            let mut detail = vec![text(Key::AccountAdded).replace("{date}", &when(p.created_at))];
            if let Some(used) = p.last_used_at {
                detail.push(text(Key::AccountLastUsed).replace("{date}", &when(used)));
            }
            if p.backup_state {
                detail.push(text(Key::AccountSynced).to_owned());
            }
            AccountRow {
                id: p.id.to_string(),
                title: p.name,
                detail: detail.join(" · "),
                current: false,
            }
        })
        .collect();
    let providers = &ctx.entry.tenant.settings.social_providers;
    let identities = db
        .identities_of(user.id)
        .await?
        .into_iter()
        .map(|i| {
            let title = providers
                .iter()
                .find(|p| p.id == i.provider)
                .and_then(|p| p.display_name.clone())
                .unwrap_or_else(|| i.provider.clone());
            let mut detail: Vec<String> = i.email.into_iter().collect();
            detail.push(text(Key::AccountLinked).replace("{date}", &when(i.created_at)));
            AccountRow {
                id: i.provider,
                title,
                detail: detail.join(" · "),
                current: false,
            }
        })
        .collect();
    let sessions = tenantry_accounts::account::sessions(db, user.id)
        .await?
        .into_iter()
        .map(|s| {
            let mut detail = vec![text(Key::AccountSignedIn).replace("{date}", &when(s.auth_time))];
            detail.extend(s.ip.clone());
            if !s.amr.is_empty() {
                detail.push(s.amr.join(", "));
            }
            AccountRow {
                id: tenantry_oidc::tokens::sid(&s.id_hash),
                title: s
                    .user_agent
                    .as_deref()
                    .map(|agent| agent.chars().take(120).collect())
                    .unwrap_or_else(|| "—".to_owned()),
                detail: detail.join(" · "),
                current: s.id_hash == me.session.id_hash,
            }
        })
        .collect();
    let profile = vec![
        ("given_name", user.given_name.as_deref().unwrap_or("")),
        ("family_name", user.family_name.as_deref().unwrap_or("")),
        ("name", user.name.as_deref().unwrap_or("")),
        ("phone_number", user.phone_number.as_deref().unwrap_or("")),
    ];
    let base = base(ctx);
    let error = shown.error.as_ref().map(|e| refusal(lang, e));
    let reauth = format!("{base}/reauth");
    let needs_reauth = shown
        .error
        .as_ref()
        .is_some_and(|e| e.code == ErrorCode::ReauthenticationRequired);
    let page = AccountPage {
        base: &base,
        csrf: &me.csrf,
        email: &user.email,
        email_verified: user.email_verified,
        profile,
        locale: user.locale.as_deref().unwrap_or(""),
        fields: custom_fields::inputs(ctx, |name| custom_fields::shown(user.custom.get(name))),
        can_mail: ctx.capabilities.email,
        has_password,
        min_length: ctx.entry.tenant.settings.security.password_min_length,
        totp,
        enrolment: shown.enrolment.as_ref(),
        recovery_codes: shown.recovery_codes.as_deref(),
        passkeys,
        passkeys_offered: tenantry_accounts::passkeys::browsers_offer(ctx),
        identities,
        sessions,
        notice: shown.notice.map(text),
        error: error.as_deref(),
        reauth: needs_reauth.then_some(reauth.as_str()),
    };
    let status = shown.error.as_ref().map_or(StatusCode::OK, |e| e.code.status());
    let mut response = PageContext::of(ctx, lang).account(&page, status);
    if let Some(secs) = shown.error.as_ref().and_then(|e| e.retry_after) {
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, secs.into());
    }
    Ok(response)
}

/// What the page says about a refused change, in `lang`.
fn refusal(lang: Language, e: &ApiError) -> String {
    let text = |key: Key| pages::text(lang, key).to_owned();
    match e.code {
        ErrorCode::ReauthenticationRequired => text(Key::AccountReauthNeeded),
        ErrorCode::InvalidCredentials => text(Key::AccountWrongPassword),
        ErrorCode::InvalidMfaCode => text(Key::BadCode),
        ErrorCode::LastWayIn => text(Key::AccountLastWayIn),
        ErrorCode::EmailTaken => text(Key::EmailTaken),
        ErrorCode::PasskeyInvalid => text(Key::PasskeyCreateFailed),
        ErrorCode::RateLimited | ErrorCode::AccountLocked => {
            pages::try_later(lang, std::time::Duration::from_secs(e.retry_after.unwrap_or(60)))
        }
        _ if e.errors.is_empty() => e.detail.clone(),
        _ => {
            let fields: Vec<String> = e.errors.iter().map(|f| format!("{}: {}", f.field, f.message)).collect();
            format!("{} ({})", e.detail, fields.join("; "))
        }
    }
}
