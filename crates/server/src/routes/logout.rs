//! The end-session endpoint (RP-Initiated Logout 1.0) over HTTP; the rules and the
//! back-channel logout are `tenantry_oidc::logout`. A refused request ends on Tenantry's
//! own page (no open redirect). Without a valid `id_token_hint` for the current session
//! the user confirms on a page first (a CSRF-protected form). Ending a session clears the
//! cookie.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use chrono::Utc;
use tenantry_crypto::hash_token;
use tenantry_dataplane::SessionRepository;
use tenantry_oidc::logout::{self, EndSessionError};

use crate::pages::{self, PageContext};
use crate::state::AppState;
use crate::web::csrf;
use crate::web::{SESSION_COOKIE, cookie, set_cookie};
use tenantry_oidc::params::Params;
use tenantry_tenancy::TenantContext;

pub fn router() -> Router<AppState> {
    Router::new().route("/t/{slug}/logout", get(logout_get).post(logout_post))
}

async fn logout_get(
    ctx: TenantContext,
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    logout(ctx, state, headers, q.unwrap_or_default().as_bytes()).await
}

async fn logout_post(ctx: TenantContext, State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    logout(ctx, state, headers, &body).await
}

async fn logout(ctx: TenantContext, state: AppState, headers: HeaderMap, raw: &[u8]) -> Response {
    let lang = pages::language(None, ctx.entry.tenant.settings.language);
    let page = |lang| PageContext::of(&ctx, lang);
    let params = match Params::parse(raw, &[]) {
        Ok(params) => params,
        Err(e) => return page(lang).error(StatusCode::BAD_REQUEST, "invalid_request", &e.message()),
    };
    let lang = pages::language(params.get("ui_locales"), ctx.entry.tenant.settings.language);

    let request = match logout::end_session_request(&ctx, &params) {
        Ok(request) => request,
        Err(EndSessionError::Unavailable(e)) => return e.into_response(),
        Err(EndSessionError::Invalid(why)) => return page(lang).error(StatusCode::BAD_REQUEST, "invalid_request", why),
    };

    let session_id = cookie(&headers, SESSION_COOKIE);
    let db = match ctx.db().await {
        Ok(db) => db,
        Err(e) => return e.into_response(),
    };
    let session = match &session_id {
        Some(id) => match db.active_session(&hash_token(id), Utc::now()).await {
            Ok(s) => s,
            Err(e) => return crate::error::ApiError::from(e).into_response(),
        },
        None => None,
    };

    // Confirmation: required unless the hint proves the request comes from this session's
    // relying party (same user and session), or already confirmed with the CSRF token.
    let hint_matches = logout::hint_proves_session(request.hint.as_ref(), session.as_ref());
    let confirmed = params.get("confirm") == Some("yes") && csrf::form_matches(&headers, params.get("csrf"));
    if session.is_some() && !hint_matches && !confirmed {
        let csrf = csrf::token(&headers);
        let mut fields: Vec<(String, String)> = params
            .pairs()
            .iter()
            .filter(|(n, _)| n != "confirm" && n != "csrf")
            .cloned()
            .collect();
        fields.push(("csrf".into(), csrf.clone()));
        fields.push(("confirm".into(), "yes".into()));
        let response = page(lang).logout_confirm(&format!("{}/logout", ctx.issuer), &fields);
        return csrf::with_cookie(&state, &ctx, response, &csrf);
    }

    if let Some(session) = &session
        && let Err(e) = logout::end_session(&ctx, &db, session, state.config.outbound).await
    {
        return e.into_response();
    }

    let mut response = match request.redirect {
        Some(uri) => {
            let mut url = match url::Url::parse(&uri) {
                Ok(url) => url,
                Err(_) => return crate::error::ApiError::internal().into_response(),
            };
            if let Some(s) = &request.state {
                url.query_pairs_mut().append_pair("state", s);
            }
            Redirect::to(url.as_str()).into_response()
        }
        None => page(lang).logged_out(),
    };
    set_cookie(&mut response, &state, &ctx, SESSION_COOKIE, "", Some(0));
    response
}
