//! RP-Initiated Logout 1.0 (`end_session_endpoint`) and OIDC Back-Channel Logout 1.0.
//!
//! `post_logout_redirect_uri` is honoured only when it is registered, exactly, for the
//! client named by `client_id` or by the `id_token_hint`'s audience; anything else ends on
//! Tenantry's own page (no open redirect). Without a valid `id_token_hint` for the current
//! session the user confirms on a page first (a CSRF-protected form). Ending a session
//! revokes it and its refresh tokens, clears the cookie, and sends signed logout tokens to
//! every client of the session that registered a `backchannel_logout_uri`, in the
//! background with retries.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use chrono::Utc;
use serde_json::{Value, json};
use tenantry_controlplane::model::Client;
use tenantry_crypto::{hash_token, random_token};
use tenantry_dataplane::{SessionRepository, TokenRepository};
use tenantry_keys::claims::Audience;
use tenantry_keys::{Expect, TokenType};

use crate::app::AppState;
use crate::outbound::{OutboundPolicy, OutboundRefusal};
use crate::pages::{self, PageContext};
use crate::web::csrf;
use crate::web::{SESSION_COOKIE, cookie, set_cookie};
use tenantry_oidc::params::Params;
use tenantry_tenancy::TenantContext;

/// Attempts to deliver one logout token (then it is dropped and logged).
const DELIVERY_ATTEMPTS: u32 = 4;

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
    let page = |lang| PageContext {
        lang,
        branding: &ctx.entry.tenant.settings.branding,
        tenant_name: &ctx.entry.tenant.display_name,
    };
    let params = match Params::parse(raw, &[]) {
        Ok(params) => params,
        Err(e) => return page(lang).error(StatusCode::BAD_REQUEST, "invalid_request", &e.message()),
    };
    let lang = pages::language(params.get("ui_locales"), ctx.entry.tenant.settings.language);

    // The id_token_hint may be expired (OIDC RP-Initiated Logout 2), never forged or foreign.
    let hint = match params.get("id_token_hint") {
        None => None,
        Some(token) => {
            let keys = match ctx.keys() {
                Ok(keys) => keys,
                Err(e) => return e.into_response(),
            };
            let mut expect = Expect::new(&ctx.issuer, TokenType::Id);
            expect.allow_expired = true;
            match keys.verify::<Value>(token, &expect) {
                Ok(verified) => Some(verified.claims),
                Err(_) => {
                    return page(lang).error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "the id_token_hint is not valid",
                    );
                }
            }
        }
    };
    let hint_aud: Vec<String> = hint
        .as_ref()
        .and_then(|c| serde_json::from_value::<Audience>(c["aud"].clone()).ok())
        .map(|a| match a {
            Audience::One(one) => vec![one],
            Audience::Many(many) => many,
        })
        .unwrap_or_default();
    let client_id = params
        .get("client_id")
        .map(str::to_owned)
        .or_else(|| hint_aud.first().cloned());
    if let (Some(id), false) = (&client_id, hint_aud.is_empty())
        && !hint_aud.contains(id)
    {
        return page(lang).error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client_id does not match the id_token_hint",
        );
    }
    let client = client_id.as_deref().and_then(|id| ctx.entry.clients.get(id));
    let redirect = match params.get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => match client {
            Some(c) if c.post_logout_redirect_uris.iter().any(|r| r == uri) => Some(uri.to_owned()),
            _ => {
                return page(lang).error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "post_logout_redirect_uri is not registered for this client",
                );
            }
        },
    };
    let logout_state = params.get("state").map(str::to_owned);

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
    let hint_matches = match (&hint, &session) {
        (Some(claims), Some(s)) => {
            claims["sub"] == json!(s.user_id.to_string())
                && claims
                    .get("sid")
                    .is_none_or(|sid| *sid == json!(tenantry_oidc::tokens::sid(&s.id_hash)))
        }
        _ => false,
    };
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

    if let Some(session) = &session {
        let now = Utc::now();
        let clients = db.clients_of_session(&session.id_hash).await.unwrap_or_default();
        if let Err(e) = db.revoke_session(&session.id_hash, now).await {
            return crate::error::ApiError::from(e).into_response();
        }
        if let Err(e) = db.revoke_refresh_by_session(&session.id_hash, now).await {
            return crate::error::ApiError::from(e).into_response();
        }
        let targets: Vec<Client> = clients
            .iter()
            .filter_map(|id| ctx.entry.clients.get(id))
            .filter(|c| c.backchannel_logout_uri.is_some())
            .cloned()
            .collect();
        send_logout_tokens(
            &ctx,
            state.config.outbound,
            &targets,
            &session.user_id.to_string(),
            &tenantry_oidc::tokens::sid(&session.id_hash),
        );
    }

    let mut response = match redirect {
        Some(uri) => {
            let mut url = match url::Url::parse(&uri) {
                Ok(url) => url,
                Err(_) => return crate::error::ApiError::internal().into_response(),
            };
            if let Some(s) = &logout_state {
                url.query_pairs_mut().append_pair("state", s);
            }
            Redirect::to(url.as_str()).into_response()
        }
        None => page(lang).logged_out(),
    };
    set_cookie(&mut response, &state, &ctx, SESSION_COOKIE, "", Some(0));
    response
}

/// Signs one logout token per client (OIDC Back-Channel Logout 2.4) and delivers them in
/// the background with retries, under the installation's outbound policy (no redirects;
/// private and loopback targets only where allowed).
fn send_logout_tokens(ctx: &TenantContext, policy: OutboundPolicy, clients: &[Client], sub: &str, sid: &str) {
    let Ok(keys) = ctx.keys() else {
        tracing::warn!("no signing keys: back-channel logout tokens not sent");
        return;
    };
    let now = Utc::now().timestamp();
    for client in clients {
        let Some(uri) = client.backchannel_logout_uri.clone() else {
            continue;
        };
        if let Err(refusal) = url::Url::parse(&uri)
            .map_err(|_| OutboundRefusal::NotHttp)
            .and_then(|url| policy.check_url(&url))
        {
            tracing::warn!(client_id = %client.client_id, %refusal, "back-channel logout not sent: the URI is not allowed");
            continue;
        }
        let claims = json!({
            "iss": ctx.issuer,
            "sub": sub,
            "aud": client.client_id,
            "iat": now,
            "exp": now + 120,
            "jti": random_token(16),
            "sid": sid,
            "tid": ctx.slug(),
            "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
        });
        let alg = tenantry_oidc::tokens::id_token_alg(&ctx.entry, client);
        let token = match keys.sign(alg, "logout+jwt", &claims) {
            Ok(token) => token,
            Err(e) => {
                tracing::error!(error = %e, "logout token signing failed");
                continue;
            }
        };
        let client_id = client.client_id.clone();
        tokio::spawn(async move { deliver(policy, uri, client_id, token).await });
    }
}

/// A failure that retrying cannot cure: the name resolved only to refused addresses.
fn is_refused_target(e: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<OutboundRefusal>() {
            return true;
        }
        source = s.source();
    }
    false
}

async fn deliver(policy: OutboundPolicy, uri: String, client_id: String, token: String) {
    let http = match policy.client(Duration::from_secs(5)) {
        Ok(http) => http,
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client for back-channel logout");
            return;
        }
    };
    let mut delay = Duration::from_millis(500);
    for attempt in 1..=DELIVERY_ATTEMPTS {
        let result = http.post(&uri).form(&[("logout_token", token.as_str())]).send().await;
        match result {
            Ok(r) if r.status().is_success() => {
                tracing::info!(client_id, attempt, "back-channel logout delivered");
                return;
            }
            Ok(r) if r.status().is_redirection() => {
                // Redirects are never followed, and a retry would meet the same one.
                tracing::warn!(
                    client_id,
                    status = r.status().as_u16(),
                    "back-channel logout answered with a redirect; not followed, given up"
                );
                return;
            }
            Err(e) if is_refused_target(&e) => {
                tracing::warn!(client_id, error = %e, "back-channel logout not sent: the address is not allowed");
                return;
            }
            Ok(r) => tracing::warn!(
                client_id,
                attempt,
                status = r.status().as_u16(),
                "back-channel logout refused"
            ),
            Err(e) => tracing::warn!(client_id, attempt, error = %e, "back-channel logout not delivered"),
        }
        if attempt < DELIVERY_ATTEMPTS {
            tokio::time::sleep(delay).await;
            delay *= 4;
        }
    }
    tracing::error!(
        client_id,
        "back-channel logout given up after {DELIVERY_ATTEMPTS} attempts"
    );
}
