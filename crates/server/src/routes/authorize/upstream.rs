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
//!
//! The same round trip links an identity to a signed-in account
//! (`GET {issuer}/federation/{provider}/link?ticket=…`, the URL `POST
//! /v1/auth/me/identities/{provider}` answers): the ticket is sealed, single use, five
//! minutes long and names one login session, which the browser that opens it must hold
//! (its session cookie). So a leaked ticket links nothing in another browser, and nobody
//! can make a victim's browser link an identity to someone else's account. The browser
//! goes back to the app's registered `redirect_uri` with `linked` or `error`.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};
use tenantry_controlplane::model::{Language, SocialProvider, UpstreamClientAuth};
use tenantry_crypto::{SealContext, hash_token};
use tenantry_dataplane::{SessionRepository, TenantDb, TokenRepository, UserRepository};
use tenantry_federation::account::{self, Resolved};
use tenantry_federation::{Callback, ClientCredentials, Pending, UpstreamIdentity};
use tenantry_oidc::params::Params;
use tenantry_tenancy::TenantContext;

use super::{PendingLink, action, after_first_factor, login_page, open_step, unseal};
use crate::error::{ApiError, ErrorCode};
use crate::pages;
use crate::pages::PageContext;
use crate::state::AppState;
use crate::web::csrf::{CsrfForm, CsrfRejection};
use crate::web::{DEVICE_COOKIE, SESSION_COOKIE, SessionOrigin, cookie, cookie_header};

/// The cookie that carries an upstream sign-in from its start to its callback.
const UPSTREAM_COOKIE: &str = "tenantry_upstream";
/// How long an upstream sign-in may take.
const UPSTREAM_TTL: Duration = Duration::minutes(10);

/// The callback path under the tenant's issuer: the redirect URI to register at the
/// upstream.
pub const CALLBACK: &str = "federation/callback";

/// How long a link ticket may wait before the browser opens it.
const LINK_TTL: Duration = Duration::minutes(5);
/// What seals a link ticket (per tenant).
const LINK_TICKET: &str = "tenantry_link";

/// What the cookie holds.
#[derive(Serialize, Deserialize)]
struct Started {
    pending: Pending,
    purpose: Purpose,
    expires_at: i64,
}

/// What the upstream's answer is for.
#[derive(Serialize, Deserialize)]
enum Purpose {
    /// A sign-in: the interaction, sealed as the login form had it.
    SignIn(String),
    /// An identity to link to the signed-in account of the ticket.
    Link(LinkTicket),
}

/// A signed-in account's request to link an upstream identity, from the API to the
/// browser (sealed in the link URL).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LinkTicket {
    /// Random: spent when the browser opens the ticket.
    pub id: String,
    pub user: uuid::Uuid,
    /// The hash of the login session the browser must hold.
    pub session: String,
    pub provider: String,
    /// Where the browser goes back to: a redirect URI registered for `client_id`.
    pub client_id: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub expires_at: i64,
}

/// The URL that starts linking `provider` for the ticket's account.
pub(crate) fn link_url(state: &AppState, ctx: &TenantContext, ticket: &LinkTicket) -> String {
    let owner = ctx.entry.tenant.id.to_string();
    let json = serde_json::to_string(ticket).expect("serializable");
    let sealed = state.secrets.seal(SealContext::new(&owner, LINK_TICKET), &json);
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("ticket", &sealed)
        .finish();
    action(ctx, &format!("federation/{}/link?{query}", ticket.provider))
}

/// The link ticket `sealed` while it is valid.
fn open_ticket(state: &AppState, ctx: &TenantContext, sealed: &str) -> Option<LinkTicket> {
    let owner = ctx.entry.tenant.id.to_string();
    let json = state.secrets.open(SealContext::new(&owner, LINK_TICKET), sealed).ok()?;
    let ticket: LinkTicket = serde_json::from_str(&json).ok()?;
    (ticket.expires_at > Utc::now().timestamp()).then_some(ticket)
}

/// A new link ticket's expiry.
pub(crate) fn link_expiry() -> i64 {
    (Utc::now() + LINK_TTL).timestamp()
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
pub(crate) fn provider<'a>(ctx: &'a TenantContext, id: &str) -> Result<&'a SocialProvider, ApiError> {
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
    let mut page = PageContext::of(ctx, lang).error(e.code.status(), e.code.as_str(), &message);
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

#[derive(Deserialize)]
pub(super) struct LinkQuery {
    ticket: String,
}

/// `GET {issuer}/federation/{provider}/link?ticket=…`: the browser of a signed-in
/// account, sent by its app to link `provider` (see the module's notes).
pub(super) async fn link(
    ctx: TenantContext,
    State(state): State<AppState>,
    Path((_, provider_id)): Path<(String, String)>,
    headers: HeaderMap,
    query: Result<axum::extract::Query<LinkQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let lang = ctx.entry.tenant.settings.language;
    let refused = |code: ErrorCode, detail: &str| error_page(&ctx, lang, &ApiError::new(code, detail));
    let Some(ticket) = query
        .ok()
        .and_then(|q| open_ticket(&state, &ctx, &q.ticket))
        .filter(|t| t.provider == provider_id)
    else {
        return refused(
            ErrorCode::BadRequest,
            "this link is not valid or has expired; start linking again from the app",
        );
    };
    let session = cookie(&headers, SESSION_COOKIE).map(|c| hash_token(&c));
    let db = match ctx.db().await {
        Ok(db) => db,
        Err(e) => return e.into_response(),
    };
    let signed_in = match &session {
        Some(hash) if tenantry_crypto::constant_time_eq(hash.as_bytes(), ticket.session.as_bytes()) => {
            match db.active_session(hash, Utc::now()).await {
                Ok(found) => found.is_some_and(|s| s.user_id == ticket.user),
                Err(e) => return ApiError::from(e).into_response(),
            }
        }
        _ => false,
    };
    if !signed_in {
        return refused(
            ErrorCode::Unauthorized,
            "linking needs this browser to be signed in to the account that asked for it",
        );
    }
    let expires_at = chrono::DateTime::from_timestamp(ticket.expires_at, 0).unwrap_or_else(Utc::now);
    match db.spend_upstream_state(&hash_token(&ticket.id), expires_at).await {
        Ok(true) => {}
        Ok(false) => return refused(ErrorCode::BadRequest, "this link was already used"),
        Err(e) => return ApiError::from(e).into_response(),
    }
    let provider = match provider(&ctx, &provider_id) {
        Ok(provider) => provider,
        Err(e) => return error_page(&ctx, lang, &e),
    };
    send_upstream(&state, &ctx, provider, Purpose::Link(ticket), lang).await
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
    send_upstream(state, ctx, provider, Purpose::SignIn(sealed), lang).await
}

/// Sends the browser to `provider` for `purpose`.
async fn send_upstream(
    state: &AppState,
    ctx: &TenantContext,
    provider: &SocialProvider,
    purpose: Purpose,
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
        purpose,
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
    match started.purpose {
        Purpose::SignIn(ref sealed) => {
            let Some(interaction) = unseal(state, ctx, sealed) else {
                return PageContext::of(ctx, tenant_lang).error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    pages::expired(tenant_lang),
                );
            };
            let lang = interaction.lang;
            let (db, provider, identity) = match verified(ctx, state, &params, &started.pending).await {
                Ok(verified) => verified,
                Err(e) => return error_page(ctx, lang, &e),
            };
            sign_in(ctx, state, origin, headers, interaction, &db, provider, identity).await
        }
        Purpose::Link(ticket) => {
            let linked = async {
                let (db, provider, identity) = verified(ctx, state, &params, &started.pending).await?;
                link_identity(&db, headers, &ticket, provider, &identity).await
            }
            .await;
            let mut back = match url::Url::parse(&ticket.redirect_uri) {
                Ok(url) => url,
                Err(_) => return ApiError::internal().into_response(),
            };
            {
                let mut pairs = back.query_pairs_mut();
                match linked {
                    Ok(()) => pairs.append_pair("linked", &ticket.provider),
                    Err(e) => pairs
                        .append_pair("error", e.code.as_str())
                        .append_pair("error_description", &e.detail),
                };
                if let Some(app_state) = &ticket.state {
                    pairs.append_pair("state", app_state);
                }
            }
            Redirect::to(back.as_str()).into_response()
        }
    }
}

/// The checks every upstream answer passes: its `state` is the cookie's (compared in
/// constant time) and spent, the provider is still enabled, and the upstream's answer
/// verifies (code exchange, ID token or user API).
async fn verified<'c>(
    ctx: &'c TenantContext,
    state: &AppState,
    params: &Params,
    pending: &Pending,
) -> Result<(TenantDb, &'c SocialProvider, UpstreamIdentity), ApiError> {
    let invalid = |detail: &str| ApiError::new(ErrorCode::UpstreamInvalidResponse, detail);
    let state_param = params.get("state").unwrap_or("");
    if !tenantry_crypto::constant_time_eq(state_param.as_bytes(), pending.state.as_bytes()) {
        return Err(invalid("the answer's state is not this sign-in's"));
    }
    let db = ctx.db().await?;
    let expires_at = Utc::now() + UPSTREAM_TTL;
    if !db.spend_upstream_state(&hash_token(state_param), expires_at).await? {
        return Err(invalid("this answer was already used"));
    }
    let provider = provider(ctx, &pending.provider)?;
    let credentials = credentials(state, ctx, provider)?;
    let callback = Callback {
        code: params.get("code"),
        iss: params.get("iss"),
        error: params.get("error"),
    };
    let finished = state
        .upstreams
        .finish(provider, credentials, &redirect_uri(ctx), pending, &callback)
        .await;
    match finished {
        Ok(identity) => Ok((db, provider, identity)),
        Err(e) => {
            tracing::info!(provider = %provider.id, error = %e, "upstream sign-in refused");
            Err(e.into())
        }
    }
}

/// How the tenant authenticates at `provider`'s token endpoint: its own signing key
/// (`private_key_jwt`), the provider's client secret, or nothing (a public client).
fn credentials(
    state: &AppState,
    ctx: &TenantContext,
    provider: &SocialProvider,
) -> Result<ClientCredentials, ApiError> {
    if provider.client_auth == Some(UpstreamClientAuth::PrivateKeyJwt) {
        let preferred = ctx.entry.tenant.settings.signing.id_token_alg;
        return Ok(ClientCredentials::TenantKey(ctx.keys()?, preferred));
    }
    let Some(sealed) = &provider.client_secret else {
        return Ok(ClientCredentials::Public);
    };
    let field = format!("social_providers.{}.client_secret", provider.id);
    let owner = ctx.entry.tenant.id.to_string();
    match state.secrets.open(SealContext::new(&owner, &field), &sealed.0) {
        Ok(secret) => Ok(ClientCredentials::Secret(secret.to_string())),
        Err(_) => {
            tracing::error!(provider = %provider.id, "the provider's client secret does not open");
            Err(ApiError::internal())
        }
    }
}

/// Links the upstream identity to the ticket's account, if the browser still holds the
/// ticket's login session; an identity already linked to this account is fine, one
/// linked to another account is refused.
async fn link_identity(
    db: &TenantDb,
    headers: &HeaderMap,
    ticket: &LinkTicket,
    provider: &SocialProvider,
    identity: &UpstreamIdentity,
) -> Result<(), ApiError> {
    let session = cookie(headers, SESSION_COOKIE).map(|c| hash_token(&c));
    let still_signed_in = match session.filter(|s| *s == ticket.session) {
        Some(hash) => db
            .active_session(&hash, Utc::now())
            .await?
            .is_some_and(|s| s.user_id == ticket.user),
        None => false,
    };
    if !still_signed_in {
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            "the account was signed out before the link was made",
        ));
    }
    match db.identity(&provider.id, &identity.subject).await? {
        Some(linked) if linked.user_id == ticket.user => Ok(()),
        Some(_) => Err(ApiError::new(
            ErrorCode::AlreadyExists,
            "this upstream identity is already linked to another account",
        )),
        None => {
            let email = identity.email.as_deref();
            account::link(db, ticket.user, &provider.id, &identity.subject, email, "signed_in").await
        }
    }
}

/// A sign-in's verified upstream identity: its account (or the proof an existing account
/// owes first), then what the tenant still asks, as after a password.
#[allow(clippy::too_many_arguments)]
async fn sign_in(
    ctx: &TenantContext,
    state: &AppState,
    origin: &SessionOrigin,
    headers: &HeaderMap,
    interaction: super::Interaction,
    db: &TenantDb,
    provider: &SocialProvider,
    identity: UpstreamIdentity,
) -> Response {
    let lang = interaction.lang;
    let Some(client) = ctx.client(&interaction.client_id) else {
        return PageContext::of(ctx, lang).error(StatusCode::BAD_REQUEST, "invalid_client", "unknown client");
    };
    let user = match account::resolve(ctx, db, provider, &identity).await {
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
    let accepted = account::sign_in(&state.accounts, ctx, db, user, provider, &identity, device.as_deref()).await;
    let accepted = match accepted {
        Ok(accepted) => accepted,
        Err(e) => return error_page(ctx, lang, &e),
    };
    let mut interaction = interaction;
    // What the second-factor step records as the first factor, if one is owed.
    interaction.upstream = Some(provider.id.clone());
    after_first_factor(state, ctx, db, origin, client, interaction, accepted).await
}
