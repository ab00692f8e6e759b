//! The hosted login's upstream sign-in ("continue with …", `tenantry_federation`): the
//! login page's provider button posts the interaction here, the browser goes to the
//! upstream with PKCE, `state` and `nonce`, and comes back to the tenant's one callback,
//! `{issuer}/federation/callback`, which finishes into the same session, second factor,
//! consent and code as a password login.
//!
//! What the callback checks travels in a sealed, short-lived cookie (`tenantry_upstream`,
//! path of the tenant, `SameSite=Lax` so the upstream's top-level redirect carries it):
//! the PKCE verifier, `state`, `nonce`, the issuer and the sealed interaction. So the
//! answer must come back to the browser that started the sign-in, its `state` must match
//! (compared in constant time) and is spent in the tenant database (a replay is refused),
//! and nothing an upstream or an attacker sends can name another interaction.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};
use tenantry_controlplane::model::{Language, SocialProvider};
use tenantry_crypto::{SealContext, hash_token};
use tenantry_dataplane::TokenRepository;
use tenantry_federation::account::{self, Resolved};
use tenantry_federation::{Callback, Pending};
use tenantry_oidc::params::Params;
use tenantry_tenancy::TenantContext;

use super::{PendingLink, action, after_first_factor, login_page, open_step, page_context, unseal};
use crate::error::{ApiError, ErrorCode};
use crate::pages;
use crate::state::AppState;
use crate::web::csrf::{CsrfForm, CsrfRejection};
use crate::web::{DEVICE_COOKIE, SessionOrigin, cookie, cookie_header};

/// The cookie that carries an upstream sign-in from its start to its callback.
const UPSTREAM_COOKIE: &str = "tenantry_upstream";
/// How long an upstream sign-in may take.
const UPSTREAM_TTL: Duration = Duration::minutes(10);

/// The callback path under the tenant's issuer: the redirect URI to register at the
/// upstream.
pub const CALLBACK: &str = "federation/callback";

/// What the cookie holds.
#[derive(Serialize, Deserialize)]
struct Started {
    pending: Pending,
    /// The interaction, sealed as the login form had it.
    interaction: String,
    expires_at: i64,
}

fn seal_started(state: &AppState, ctx: &TenantContext, started: &Started) -> String {
    let owner = ctx.entry.tenant.id.to_string();
    let json = serde_json::to_string(started).expect("serializable");
    state.secrets.seal(SealContext::new(&owner, UPSTREAM_COOKIE), &json)
}

fn open_started(state: &AppState, ctx: &TenantContext, sealed: &str) -> Option<Started> {
    let owner = ctx.entry.tenant.id.to_string();
    let json = state
        .secrets
        .open(SealContext::new(&owner, UPSTREAM_COOKIE), sealed)
        .ok()?;
    let started: Started = serde_json::from_str(&json).ok()?;
    (started.expires_at > Utc::now().timestamp()).then_some(started)
}

/// The enabled provider `id` of the tenant.
pub(super) fn provider<'a>(ctx: &'a TenantContext, id: &str) -> Result<&'a SocialProvider, ApiError> {
    ctx.entry
        .tenant
        .settings
        .social_providers
        .iter()
        .find(|p| p.id == id && p.enabled)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::UpstreamUnknown,
                format!("no enabled provider `{}`", printable(id)),
            )
        })
}

fn printable(value: &str) -> String {
    value.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// An error on the hosted error page, with the status of its code.
fn error_page(ctx: &TenantContext, lang: Language, e: &ApiError) -> Response {
    let message = format!("{} {}", pages::upstream_failed(lang), e.detail);
    let mut page = page_context(ctx, lang).error(e.code.status(), e.code.as_str(), &message);
    if let Some(secs) = e.retry_after {
        page.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    page
}

fn redirect_uri(ctx: &TenantContext) -> String {
    action(ctx, CALLBACK)
}

/// `POST {issuer}/federation/{provider}/start`: the login page's provider button.
pub(super) async fn start(
    ctx: TenantContext,
    State(state): State<AppState>,
    Path((_, provider_id)): Path<(String, String)>,
    form: Result<CsrfForm, CsrfRejection>,
) -> Response {
    let (form, interaction) = match open_step(&state, &ctx, form) {
        Ok(opened) => opened,
        Err(page) => return *page,
    };
    let lang = interaction.lang;
    let provider = match provider(&ctx, &provider_id) {
        Ok(provider) => provider,
        Err(e) => return error_page(&ctx, lang, &e),
    };
    go_upstream(&state, &ctx, provider, form.interaction, lang).await
}

/// Sends the browser to `provider` for the interaction `sealed`, with what the callback
/// will check in the sealed cookie: the login page's button, and an authorization
/// request's `idp_hint`.
pub(super) async fn go_upstream(
    state: &AppState,
    ctx: &TenantContext,
    provider: &SocialProvider,
    sealed: String,
    lang: Language,
) -> Response {
    let (url, pending) = match state.upstreams.begin(provider, &redirect_uri(ctx)).await {
        Ok(begun) => begun,
        Err(e) => {
            tracing::warn!(provider = %provider.id, error = %e, "upstream sign-in could not start");
            return error_page(ctx, lang, &e.into());
        }
    };
    let started = Started {
        pending,
        interaction: sealed,
        expires_at: (Utc::now() + UPSTREAM_TTL).timestamp(),
    };
    let sealed = seal_started(state, ctx, &started);
    let cookie = cookie_header(state, ctx, UPSTREAM_COOKIE, &sealed, Some(UPSTREAM_TTL.num_seconds()));
    let mut response = Redirect::to(url.as_str()).into_response();
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// `GET {issuer}/federation/callback`: the upstream's answer.
pub(super) async fn callback(
    ctx: TenantContext,
    State(state): State<AppState>,
    origin: SessionOrigin,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let mut response = finish(&ctx, &state, &origin, &headers, query.as_deref().unwrap_or("")).await;
    // Whatever happened, this sign-in is over.
    let expired = cookie_header(&state, &ctx, UPSTREAM_COOKIE, "", Some(0));
    if let Ok(expired) = HeaderValue::from_str(&expired) {
        response.headers_mut().append(header::SET_COOKIE, expired);
    }
    response
}

async fn finish(
    ctx: &TenantContext,
    state: &AppState,
    origin: &SessionOrigin,
    headers: &HeaderMap,
    query: &str,
) -> Response {
    let tenant_lang = ctx.entry.tenant.settings.language;
    let invalid =
        |lang, detail: &str| error_page(ctx, lang, &ApiError::new(ErrorCode::UpstreamInvalidResponse, detail));
    let params = match Params::parse(query.as_bytes(), &[]) {
        Ok(params) => params,
        Err(e) => return invalid(tenant_lang, &e.message()),
    };
    let Some(started) = cookie(headers, UPSTREAM_COOKIE).and_then(|c| open_started(state, ctx, &c)) else {
        return invalid(
            tenant_lang,
            "this sign-in was not started in this browser, or it has expired; start it again",
        );
    };
    let Some(interaction) = unseal(state, ctx, &started.interaction) else {
        return page_context(ctx, tenant_lang).error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            pages::expired(tenant_lang),
        );
    };
    let lang = interaction.lang;
    let state_param = params.get("state").unwrap_or("");
    if !tenantry_crypto::constant_time_eq(state_param.as_bytes(), started.pending.state.as_bytes()) {
        return invalid(lang, "the answer's state is not this sign-in's");
    }
    let db = match ctx.db().await {
        Ok(db) => db,
        Err(e) => return e.into_response(),
    };
    let expires_at = chrono::DateTime::from_timestamp(started.expires_at, 0).unwrap_or_else(Utc::now);
    match db.spend_upstream_state(&hash_token(state_param), expires_at).await {
        Ok(true) => {}
        Ok(false) => return invalid(lang, "this answer was already used"),
        Err(e) => return ApiError::from(e).into_response(),
    }
    let provider = match provider(ctx, &started.pending.provider) {
        Ok(provider) => provider,
        Err(e) => return error_page(ctx, lang, &e),
    };
    let client_secret = match &provider.client_secret {
        Some(sealed) => {
            let field = format!("social_providers.{}.client_secret", provider.id);
            let owner = ctx.entry.tenant.id.to_string();
            match state.secrets.open(SealContext::new(&owner, &field), &sealed.0) {
                Ok(secret) => Some(secret.to_string()),
                Err(_) => {
                    tracing::error!(provider = %provider.id, "the provider's client secret does not open");
                    return ApiError::internal().into_response();
                }
            }
        }
        None => None,
    };
    let callback = Callback {
        code: params.get("code"),
        iss: params.get("iss"),
        error: params.get("error"),
    };
    let finished = state
        .upstreams
        .finish(provider, client_secret, &redirect_uri(ctx), &started.pending, &callback)
        .await;
    let identity = match finished {
        Ok(identity) => identity,
        Err(e) => {
            tracing::info!(provider = %provider.id, error = %e, "upstream sign-in refused");
            return error_page(ctx, lang, &e.into());
        }
    };
    let Some(client) = ctx.entry.clients.get(&interaction.client_id) else {
        return page_context(ctx, lang).error(StatusCode::BAD_REQUEST, "invalid_client", "unknown client");
    };
    let user = match account::resolve(ctx, &db, provider, &identity).await {
        Ok(Resolved::Account(user)) => user,
        Ok(Resolved::ProveExisting(user)) => {
            let mut interaction = interaction;
            interaction.link = Some(PendingLink {
                provider: provider.id.clone(),
                subject: identity.subject.clone(),
                email: identity.email.clone(),
                user: user.id,
            });
            let name = provider.display_name.as_deref().unwrap_or(&provider.id);
            let notice = pages::link_prove_account(lang, name);
            let mut page = login_page(state, ctx, &interaction, &client.name, &user.email, None, Some(&notice));
            *page.status_mut() = StatusCode::OK;
            return page;
        }
        Err(e) => return error_page(ctx, lang, &e),
    };
    let device = cookie(headers, DEVICE_COOKIE);
    let accepted = account::sign_in(&state.accounts, ctx, &db, user, provider, &identity, device.as_deref()).await;
    let accepted = match accepted {
        Ok(accepted) => accepted,
        Err(e) => return error_page(ctx, lang, &e),
    };
    let mut interaction = interaction;
    // What the second-factor step records as the first factor, if one is owed.
    interaction.upstream = Some(provider.id.clone());
    after_first_factor(state, ctx, &db, origin, client, interaction, accepted).await
}
