//! The authorization endpoint and the hosted login and consent steps (OIDC Core 3.1,
//! RFC 6749 4.1, RFC 7636, RFC 9207).
//!
//! Errors found before the client and its redirect URI are trusted are shown on an error
//! page, never redirected. Later errors go back to the redirect URI with `error`,
//! `error_description`, `state` and `iss`. The validated request travels between the
//! steps as a sealed, expiring "interaction" in a hidden field; every form also carries
//! a CSRF token that must equal the tenant-scoped CSRF cookie (`web::csrf`).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};
use tenantry_controlplane::model::{Client, Language};
use tenantry_crypto::{SealContext, hash_token};
use tenantry_dataplane::SessionRepository;
use tenantry_dataplane::model::{Session, User};

use crate::error::ApiError;
use crate::pages::{self, MfaPage, PageContext};
use crate::state::AppState;
use crate::web::csrf::{self, CsrfForm, CsrfRejection};
use crate::web::quota::ClientQuota;
use crate::web::{DEVICE_COOKIE, SESSION_COOKIE, SessionOrigin, cookie, cookie_header};
use tenantry_accounts::login::{Accepted, Authentication, CodeCheck, LoginError, SecondFactor};
use tenantry_accounts::quotas::{Endpoint, QuotaError};
use tenantry_oidc::authorize::{self, CodeRequest, Refusal, ResponseMode, ReturnTo};
use tenantry_oidc::params::Params;
use tenantry_tenancy::TenantContext;
use tenantry_tenancy::users::active_user;

mod passkey;
mod signup;
pub(crate) mod upstream;

/// How long an interaction (authorize → login → consent) may take.
const INTERACTION_TTL: Duration = Duration::minutes(15);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/t/{slug}/authorize", get(authorize_get).post(authorize_post))
        .route("/t/{slug}/login", post(login))
        .route("/t/{slug}/login/passkey", post(passkey::login_options))
        .route("/t/{slug}/signup", post(signup::signup))
        .route("/t/{slug}/consent", post(consent))
        .route("/t/{slug}/mfa", post(mfa_step))
        .route("/t/{slug}/continue", post(continue_step))
        .route("/t/{slug}/federation/{provider}/start", post(upstream::start))
        .route("/t/{slug}/federation/callback", get(upstream::callback))
        .route("/t/{slug}/federation/{provider}/link", get(upstream::link))
}

/// A validated authorization request, sealed into the login and consent forms.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Interaction {
    client_id: String,
    redirect_uri: String,
    scopes: Vec<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    response_mode: ResponseMode,
    force_login: bool,
    force_consent: bool,
    max_age: Option<i64>,
    login_hint: Option<String>,
    lang: Language,
    csrf: String,
    expires_at: i64,
    /// Set once the password step passed for a user who still owes a second factor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mfa_user: Option<uuid::Uuid>,
    /// The login session this interaction may continue with (after the recovery codes
    /// of a new enrolment were shown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    session: Option<String>,
    /// The upstream provider whose sign-in was the first factor (federation), while a
    /// second factor is owed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    upstream: Option<String>,
    /// An upstream identity to link once the user has signed in to the existing account
    /// with its email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    link: Option<PendingLink>,
}

/// An upstream identity waiting for its owner to prove the account it will join.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingLink {
    provider: String,
    subject: String,
    email: Option<String>,
    /// The account the upstream's email belongs to: only a sign-in to it makes the link.
    user: uuid::Uuid,
}

fn seal_context(ctx: &TenantContext) -> (String, &'static str) {
    (ctx.entry.tenant.id.to_string(), "interaction")
}

fn seal(state: &AppState, ctx: &TenantContext, interaction: &Interaction) -> String {
    let (owner, field) = seal_context(ctx);
    let json = serde_json::to_string(interaction).expect("serializable");
    state.secrets.seal(SealContext::new(&owner, field), &json)
}

fn unseal(state: &AppState, ctx: &TenantContext, sealed: &str) -> Option<Interaction> {
    let (owner, field) = seal_context(ctx);
    let json = state.secrets.open(SealContext::new(&owner, field), sealed).ok()?;
    let interaction: Interaction = serde_json::from_str(&json).ok()?;
    (interaction.expires_at > Utc::now().timestamp()).then_some(interaction)
}

async fn authorize_get(
    ctx: TenantContext,
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    authorize(ctx, state, headers, query.unwrap_or_default().as_bytes()).await
}

async fn authorize_post(
    ctx: TenantContext,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    authorize(ctx, state, headers, &body).await
}

/// Where an error goes once the client and redirect URI are trusted.
struct Redirector<'a> {
    ctx: &'a TenantContext,
    redirect_uri: String,
    state: Option<String>,
    mode: ResponseMode,
    lang: Language,
}

impl<'a> Redirector<'a> {
    fn new(ctx: &'a TenantContext, to: ReturnTo, lang: Language) -> Self {
        Redirector {
            ctx,
            redirect_uri: to.redirect_uri,
            state: to.state,
            mode: to.mode,
            lang,
        }
    }

    fn respond(&self, mut fields: Vec<(String, String)>) -> Response {
        if let Some(state) = &self.state {
            fields.push(("state".into(), state.clone()));
        }
        fields.push(("iss".into(), self.ctx.issuer.clone()));
        match self.mode {
            ResponseMode::FormPost => PageContext::of(self.ctx, self.lang).form_post(&self.redirect_uri, &fields),
            ResponseMode::Query => {
                let mut url = match url::Url::parse(&self.redirect_uri) {
                    Ok(url) => url,
                    Err(_) => return ApiError::internal().into_response(),
                };
                url.query_pairs_mut().extend_pairs(fields.iter());
                Redirect::to(url.as_str()).into_response()
            }
        }
    }

    fn error(&self, error: &str, description: &str) -> Response {
        self.respond(vec![
            ("error".into(), error.into()),
            ("error_description".into(), description.into()),
        ])
    }
}

async fn authorize(ctx: TenantContext, state: AppState, headers: HeaderMap, raw: &[u8]) -> Response {
    let tenant_lang = ctx.entry.tenant.settings.language;
    let early_error =
        |code: &str, message: &str| PageContext::of(&ctx, tenant_lang).error(StatusCode::BAD_REQUEST, code, message);
    let params = match Params::parse(raw, &[]) {
        Ok(p) => p,
        Err(e) => return early_error("invalid_request", &e.message()),
    };
    let lang = pages::language(params.get("ui_locales"), tenant_lang);
    let request = match authorize::validate(&ctx, &params) {
        Ok(request) => request,
        Err(Refusal::Untrusted { error, description }) => return early_error(error, &description),
        Err(Refusal::ToClient { to, error, description }) => {
            return Redirector::new(&ctx, to, lang).error(error, &description);
        }
    };
    let client = request.client;
    let back = Redirector::new(&ctx, request.to.clone(), lang);
    // The client's quota, once the client and its redirect URI are known: a refusal goes
    // back to the client as RFC 6749's `temporarily_unavailable`.
    let mut quota = ClientQuota::default();
    let limiter = &state.accounts.rate_limiter;
    if let Err(e) = quota
        .admit(limiter, &ctx.entry.tenant, client, Endpoint::Authorize)
        .await
    {
        let response = match e {
            QuotaError::Exceeded(_) => back.error("temporarily_unavailable", &e.description()),
            QuotaError::Unavailable(_) => e.into_problem().into_response(),
        };
        return quota.attach(response);
    }
    let csrf = csrf::token(&headers);
    let interaction = Interaction {
        client_id: client.client_id.clone(),
        redirect_uri: request.to.redirect_uri,
        scopes: request.scopes,
        state: request.to.state,
        nonce: request.nonce,
        code_challenge: request.code_challenge,
        response_mode: request.to.mode,
        force_login: request.prompt.login,
        force_consent: request.prompt.consent,
        max_age: request.max_age,
        login_hint: request.login_hint,
        lang,
        csrf: csrf.clone(),
        expires_at: (Utc::now() + INTERACTION_TTL).timestamp(),
        mfa_user: None,
        session: None,
        upstream: None,
        link: None,
    };

    let session = match current_session(&ctx, &headers).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let now = Utc::now();
    let usable = session
        .filter(|(s, _)| authorize::session_satisfies(interaction.force_login, interaction.max_age, s.auth_time, now));
    let response = match usable {
        Some((session, user)) => {
            let mut interaction = interaction;
            interaction.force_login = false;
            continue_after_login(&state, &ctx, client, interaction, &session, &user, request.prompt.none).await
        }
        None if request.prompt.none => back.error("login_required", "the user is not signed in"),
        // The client names the upstream provider to sign in with: straight there.
        None if params.get("idp_hint").is_some() => {
            let hint = params.get("idp_hint").unwrap_or_default();
            match upstream::provider(&ctx, hint) {
                Ok(provider) => {
                    let sealed = seal(&state, &ctx, &interaction);
                    upstream::go_upstream(&state, &ctx, provider, sealed, lang).await
                }
                Err(e) => back.error("invalid_request", &e.detail),
            }
        }
        None => {
            let email = interaction.login_hint.clone().unwrap_or_default();
            login_page(&state, &ctx, &interaction, &client.name, &email, None, None)
        }
    };
    quota.attach(csrf::with_cookie(&state, &ctx, response, &csrf))
}

/// The login page for `interaction`: the password form, and a button per enabled
/// upstream identity provider.
fn login_page(
    state: &AppState,
    ctx: &TenantContext,
    interaction: &Interaction,
    client_name: &str,
    email: &str,
    error: Option<&str>,
    notice: Option<&str>,
) -> Response {
    let sealed = seal(state, ctx, interaction);
    let forgot = forgot_link(ctx, interaction.lang);
    let login_action = action(ctx, "login");
    let providers = provider_buttons(ctx);
    let signup = ctx
        .entry
        .tenant
        .settings
        .security
        .registration_enabled
        .then(|| action(ctx, "signup"));
    PageContext::of(ctx, interaction.lang).login(&pages::LoginForm {
        client_name,
        action: &login_action,
        interaction: &sealed,
        csrf: &interaction.csrf,
        email,
        error,
        notice,
        forgot: forgot.as_deref(),
        signup: signup.as_deref(),
        providers,
        passkey_options: tenantry_accounts::passkeys::browsers_offer(ctx)
            .then(|| action(ctx, "login/passkey"))
            .as_deref(),
    })
}

/// A button per enabled upstream identity provider of the tenant.
fn provider_buttons(ctx: &TenantContext) -> Vec<pages::ProviderButton> {
    ctx.entry
        .tenant
        .settings
        .social_providers
        .iter()
        .filter(|p| p.enabled)
        .map(|p| pages::ProviderButton {
            action: action(ctx, &format!("federation/{}/start", p.id)),
            name: p.display_name.clone().unwrap_or_else(|| p.id.clone()),
            icon: p.icon_url.clone(),
        })
        .collect()
}

fn action(ctx: &TenantContext, step: &str) -> String {
    format!("{}/{step}", ctx.issuer)
}

/// The login page's link to the forgot-password page, shown only when the tenant can send
/// the reset mail.
fn forgot_link(ctx: &TenantContext, lang: Language) -> Option<String> {
    ctx.capabilities
        .email
        .then(|| tenantry_accounts::account_email::forgot_link(ctx, lang))
}

/// The request's live login session and its active user, if any.
async fn current_session(ctx: &TenantContext, headers: &HeaderMap) -> Result<Option<(Session, User)>, ApiError> {
    let Some(id) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let db = ctx.db().await?;
    let Some(session) = db.active_session(&hash_token(&id), Utc::now()).await? else {
        return Ok(None);
    };
    let user = active_user(ctx, &db, session.user_id).await?;
    Ok(user.map(|u| (session, u)))
}

/// After a login (or with a live session): consent if needed, then the code.
async fn continue_after_login(
    state: &AppState,
    ctx: &TenantContext,
    client: &Client,
    interaction: Interaction,
    session: &Session,
    user: &User,
    prompt_none: bool,
) -> Response {
    let back = Redirector {
        ctx,
        redirect_uri: interaction.redirect_uri.clone(),
        state: interaction.state.clone(),
        mode: interaction.response_mode,
        lang: interaction.lang,
    };
    let needs_consent =
        match authorize::needs_consent(ctx, client, user.id, &interaction.scopes, interaction.force_consent).await {
            Ok(needs) => needs,
            Err(e) => return e.into_response(),
        };
    if needs_consent {
        if prompt_none {
            return back.error("consent_required", "the user has not consented to this client");
        }
        let sealed = seal(state, ctx, &interaction);
        return PageContext::of(ctx, interaction.lang).consent(
            &client.name,
            &action(ctx, "consent"),
            &sealed,
            &interaction.csrf,
            &interaction.scopes,
        );
    }
    issue_code(ctx, &back, &interaction, session, user).await
}

async fn issue_code(
    ctx: &TenantContext,
    back: &Redirector<'_>,
    interaction: &Interaction,
    session: &Session,
    user: &User,
) -> Response {
    let request = CodeRequest {
        client_id: &interaction.client_id,
        redirect_uri: &interaction.redirect_uri,
        scopes: &interaction.scopes,
        nonce: interaction.nonce.as_deref(),
        code_challenge: interaction.code_challenge.as_deref(),
    };
    match authorize::issue_code(ctx, request, session, user.id).await {
        Ok(code) => back.respond(vec![("code".into(), code)]),
        Err(e) => e.into_response(),
    }
}

/// The fields of a step's form (absent ones empty), and the whole form for steps that
/// read more (the sign-up's custom fields).
struct StepForm {
    interaction: String,
    csrf: String,
    email: String,
    password: String,
    decision: String,
    code: String,
    remember: bool,
    params: Params,
}

/// Opens a step's form: its CSRF field must equal the CSRF cookie ([`CsrfForm`]), and the
/// interaction must unseal, not be expired, and belong to this browser (carry the same
/// CSRF token).
fn open_step(
    state: &AppState,
    ctx: &TenantContext,
    form: Result<CsrfForm, CsrfRejection>,
) -> Result<(StepForm, Interaction), Box<Response>> {
    let lang = ctx.entry.tenant.settings.language;
    let broken = || PageContext::of(ctx, lang).error(StatusCode::BAD_REQUEST, "invalid_request", pages::expired(lang));
    let CsrfForm(params) = form.map_err(|rejection| Box::new(rejection.respond(|_| broken())))?;
    let form = step_form(params).ok_or_else(|| Box::new(broken()))?;
    let interaction = unseal(state, ctx, &form.interaction).ok_or_else(|| Box::new(broken()))?;
    if !csrf::matches(&interaction.csrf, &form.csrf) {
        return Err(Box::new(broken()));
    }
    Ok((form, interaction))
}

fn step_form(params: Params) -> Option<StepForm> {
    Some(StepForm {
        interaction: params.get("interaction")?.to_owned(),
        csrf: params.get("csrf")?.to_owned(),
        email: params.get("email").unwrap_or("").to_owned(),
        password: params.get("password").unwrap_or("").to_owned(),
        decision: params.get("decision").unwrap_or("").to_owned(),
        code: params.get("code").unwrap_or("").to_owned(),
        remember: params.get("remember") == Some("1"),
        params,
    })
}

async fn login(
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
    let Some(client) = ctx.client(&interaction.client_id) else {
        return PageContext::of(&ctx, lang).error(StatusCode::BAD_REQUEST, "invalid_client", "unknown client");
    };
    let db = match ctx.db().await {
        Ok(db) => db,
        Err(e) => return e.into_response(),
    };
    let refused = |status: StatusCode, message: String, retry_after: Option<std::time::Duration>| {
        let mut page = login_page(
            &state,
            &ctx,
            &interaction,
            &client.name,
            &form.email,
            Some(&message),
            None,
        );
        *page.status_mut() = status;
        if let Some(wait) = retry_after
            && let Ok(value) = HeaderValue::from_str(&wait.as_secs().max(1).to_string())
        {
            page.headers_mut().insert(header::RETRY_AFTER, value);
        }
        page
    };
    if let Some(credential) = form.params.get("passkey").filter(|p| !p.is_empty()) {
        let authentication = match passkey::sign_in(&state, &ctx, &db, &interaction, credential).await {
            Ok(authentication) => authentication,
            Err(e) if e.code == crate::error::ErrorCode::PasskeyRefused => {
                return refused(
                    StatusCode::UNAUTHORIZED,
                    pages::passkey_login_refused(lang).to_owned(),
                    None,
                );
            }
            Err(e) if e.code == crate::error::ErrorCode::EmailNotVerified => {
                return refused(StatusCode::FORBIDDEN, pages::email_not_verified(lang).to_owned(), None);
            }
            Err(e) => return e.into_response(),
        };
        let accepted = Accepted::Complete(authentication);
        return after_first_factor(&state, &ctx, &db, &origin, client, interaction, accepted).await;
    }
    let device = cookie(&headers, DEVICE_COOKIE);
    let login = tenantry_accounts::login::password_login(
        &state.accounts,
        &ctx,
        &db,
        &form.email,
        &form.password,
        origin.ip,
        device.as_deref(),
    );
    let accepted = match login.await {
        Ok(accepted) => accepted,
        Err(LoginError::BadCredentials) => {
            return refused(StatusCode::UNAUTHORIZED, pages::bad_credentials(lang).to_owned(), None);
        }
        Err(LoginError::Locked { retry_after } | LoginError::RateLimited { retry_after }) => {
            return refused(
                StatusCode::TOO_MANY_REQUESTS,
                pages::try_later(lang, retry_after),
                Some(retry_after),
            );
        }
        Err(LoginError::EmailNotVerified) => {
            return refused(StatusCode::FORBIDDEN, pages::email_not_verified(lang).to_owned(), None);
        }
        Err(LoginError::Unavailable(e)) => return e.into_response(),
    };
    after_first_factor(&state, &ctx, &db, &origin, client, interaction, accepted).await
}

/// After a first factor passed (a password, an upstream sign-in): a complete login opens
/// the session (making a link the interaction left waiting) and goes on to consent and
/// the code; an owed second factor shows its page.
async fn after_first_factor(
    state: &AppState,
    ctx: &TenantContext,
    db: &tenantry_dataplane::TenantDb,
    origin: &SessionOrigin,
    client: &Client,
    interaction: Interaction,
    accepted: Accepted,
) -> Response {
    let (user, owed) = match accepted {
        Accepted::Complete(authentication) => {
            if let Err(e) = link_pending(db, &interaction, authentication.user.id).await {
                return e.into_response();
            }
            let (session, cookie) = match start_session(state, ctx, db, origin, &authentication).await {
                Ok(started) => started,
                Err(e) => return e.into_response(),
            };
            let user = &authentication.user;
            let mut response = continue_after_login(state, ctx, client, interaction, &session, user, false).await;
            response.headers_mut().append(header::SET_COOKIE, cookie);
            return response;
        }
        Accepted::SecondFactor { user, owed } => (user, owed),
    };
    let enrolment = match owed {
        SecondFactor::Challenge => None,
        SecondFactor::Enrol(enrolment) => Some(enrolment),
    };
    let mut pending = interaction;
    pending.mfa_user = Some(user.id);
    let sealed = seal(state, ctx, &pending);
    let passkey = match enrolment {
        None => passkey::second_factor_options(ctx, db, &user, &pending.csrf).await,
        Some(_) => None,
    };
    let totp = match tenantry_accounts::mfa::enrolled(db, user.id).await {
        Ok(totp) => totp,
        Err(e) => return e.into_response(),
    };
    let page = MfaPage {
        action: &action(ctx, "mfa"),
        interaction: &sealed,
        csrf: &pending.csrf,
        enrolment: enrolment.as_ref(),
        remember_days: remember_days(ctx),
        passkey: passkey.as_ref(),
        code: enrolment.is_some() || totp || passkey.is_none(),
    };
    PageContext::of(ctx, pending.lang).mfa(page, None)
}

/// Creates a login session for a completed login, and its cookie.
async fn start_session(
    state: &AppState,
    ctx: &TenantContext,
    db: &tenantry_dataplane::TenantDb,
    origin: &SessionOrigin,
    authentication: &Authentication,
) -> Result<(Session, HeaderValue), ApiError> {
    let (session, session_id) = tenantry_accounts::login::start_session(ctx, db, authentication, origin).await?;
    let lifetime = ctx.entry.tenant.settings.token_lifetimes.session_secs as i64;
    let cookie = HeaderValue::from_str(&cookie_header(state, ctx, SESSION_COOKIE, &session_id, Some(lifetime)))
        .map_err(|_| ApiError::internal())?;
    Ok((session, cookie))
}

/// The second-factor step: a TOTP code or a recovery code from an enrolled user, or the
/// first code of a new enrolment (whose recovery codes are then shown once).
async fn mfa_step(
    ctx: TenantContext,
    State(state): State<AppState>,
    origin: SessionOrigin,
    form: Result<CsrfForm, CsrfRejection>,
) -> Response {
    let (form, mut interaction) = match open_step(&state, &ctx, form) {
        Ok(opened) => opened,
        Err(page) => return *page,
    };
    let lang = interaction.lang;
    let pages = PageContext::of(&ctx, lang);
    let expired = || pages.error(StatusCode::BAD_REQUEST, "invalid_request", pages::expired(lang));
    let (Some(user_id), Some(client)) = (interaction.mfa_user, ctx.client(&interaction.client_id)) else {
        return expired();
    };
    let db = match ctx.db().await {
        Ok(db) => db,
        Err(e) => return e.into_response(),
    };
    let user = match active_user(&ctx, &db, user_id).await {
        Ok(Some(user)) => user,
        Ok(None) => return expired(),
        Err(e) => return e.into_response(),
    };
    let (totp, enrolling) = match totp_state(&db, &user).await {
        Ok(state) => state,
        Err(e) => return e.into_response(),
    };
    // The page again, with fresh passkey options (a challenge row) only when shown.
    let refused = async |enrolment: Option<&tenantry_accounts::mfa::Enrolment>, message: &str| {
        let passkey = match enrolling || enrolment.is_some() {
            false => passkey::second_factor_options(&ctx, &db, &user, &interaction.csrf).await,
            true => None,
        };
        let sealed = seal(&state, &ctx, &interaction);
        let page = MfaPage {
            action: &action(&ctx, "mfa"),
            interaction: &sealed,
            csrf: &interaction.csrf,
            enrolment,
            remember_days: remember_days(&ctx),
            passkey: passkey.as_ref(),
            code: enrolment.is_some() || totp || passkey.is_none(),
        };
        pages.mfa(page, Some(message))
    };
    let checked = match form.params.get("passkey").filter(|p| !p.is_empty()) {
        Some(credential) => passkey::second_factor(&ctx, &db, &user, &interaction.csrf, credential).await,
        None => tenantry_accounts::login::second_factor_step(&state.accounts, &ctx, &db, &user, &form.code).await,
    };
    let refused_message = if form.params.get("passkey").is_some_and(|p| !p.is_empty()) {
        pages::passkey_refused(lang)
    } else {
        pages::bad_code(lang)
    };
    let (mut authentication, recovery_codes) = match checked {
        Ok(CodeCheck::Passed(authentication)) => (authentication, None),
        Ok(CodeCheck::Enrolled {
            authentication,
            recovery_codes,
        }) => (authentication, Some(recovery_codes)),
        Ok(CodeCheck::Refused { enrolling }) => {
            // An enrolment in progress is shown again.
            let enrolment = if enrolling {
                let (tenant, issuer) = (ctx.entry.tenant.id, tenantry_accounts::mfa::issuer_name(&ctx));
                match tenantry_accounts::mfa::pending_enrolment(
                    &state.secrets,
                    &db,
                    tenant,
                    issuer,
                    user.id,
                    &user.email,
                )
                .await
                {
                    Ok(enrolment) => enrolment,
                    Err(e) => return e.into_response(),
                }
            } else {
                None
            };
            return refused(enrolment.as_ref(), refused_message).await;
        }
        Err(e) => {
            let Some(secs) = e.retry_after.filter(|_| e.code == crate::error::ErrorCode::RateLimited) else {
                return e.into_response();
            };
            let mut page = refused(None, &pages::try_later(lang, std::time::Duration::from_secs(secs))).await;
            *page.status_mut() = e.code.status();
            page.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            return page;
        }
    };
    if let Some(provider) = interaction.upstream.take() {
        // The first factor was an upstream sign-in, not a password.
        let key = authentication.amr.iter().find(|m| *m == "hwk" || *m == "swk").cloned();
        authentication = Authentication::upstream(authentication.user, &provider, false, true);
        if let Some(key) = key {
            // The second factor was a passkey, not a code.
            for m in authentication.amr.iter_mut().filter(|m| *m == "otp") {
                *m = key.clone();
            }
        }
    }
    if let Err(e) = link_pending(&db, &interaction, user.id).await {
        return e.into_response();
    }
    interaction.link = None;
    let (session, cookie) = match start_session(&state, &ctx, &db, &origin, &authentication).await {
        Ok(started) => started,
        Err(e) => return e.into_response(),
    };
    let device_cookie = match remember_days(&ctx) {
        days if days > 0 && form.remember => {
            match tenantry_accounts::mfa::remember_device(&db, user.id, days, origin.user_agent.clone()).await {
                Ok(token) => {
                    let age = Some(i64::from(days) * 86_400);
                    HeaderValue::from_str(&cookie_header(&state, &ctx, DEVICE_COOKIE, &token, age)).ok()
                }
                Err(e) => return e.into_response(),
            }
        }
        _ => None,
    };
    interaction.mfa_user = None;
    let mut response = match recovery_codes {
        Some(codes) => {
            interaction.session = Some(session.id_hash.clone());
            let sealed = seal(&state, &ctx, &interaction);
            pages.recovery_codes(&action(&ctx, "continue"), &sealed, &interaction.csrf, &codes)
        }
        None => continue_after_login(&state, &ctx, client, interaction, &session, &user, false).await,
    };
    response.headers_mut().append(header::SET_COOKIE, cookie);
    if let Some(device) = device_cookie {
        response.headers_mut().append(header::SET_COOKIE, device);
    }
    response
}

/// The user's TOTP authenticator: (confirmed, being set up). While one is set up the page
/// shows its QR code, not the passkey button; without a confirmed one there is no code to
/// ask for when a passkey can be.
async fn totp_state(db: &tenantry_dataplane::TenantDb, user: &User) -> Result<(bool, bool), ApiError> {
    use tenantry_dataplane::MfaRepository;
    Ok(match db.totp(user.id).await? {
        Some(t) => (t.confirmed_at.is_some(), t.confirmed_at.is_none()),
        None => (false, false),
    })
}

/// Makes the link an upstream sign-in left waiting in `interaction`, once the account it
/// named (`user`) has signed in; a sign-in to another account links nothing.
async fn link_pending(
    db: &tenantry_dataplane::TenantDb,
    interaction: &Interaction,
    user: uuid::Uuid,
) -> Result<(), ApiError> {
    match &interaction.link {
        Some(link) if link.user == user => {
            let email = link.email.as_deref();
            tenantry_federation::account::link(db, user, &link.provider, &link.subject, email, "proven_account").await
        }
        _ => Ok(()),
    }
}

/// Days a second factor may be remembered on a device (0: not offered).
fn remember_days(ctx: &TenantContext) -> u32 {
    ctx.entry.tenant.settings.security.mfa_remember_device_days
}

/// Goes on from a page shown inside the flow after login (the recovery codes): only with
/// the very session that login created.
async fn continue_step(
    ctx: TenantContext,
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<CsrfForm, CsrfRejection>,
) -> Response {
    let (_, interaction) = match open_step(&state, &ctx, form) {
        Ok(opened) => opened,
        Err(page) => return *page,
    };
    let lang = interaction.lang;
    let pages = PageContext::of(&ctx, lang);
    let expired = || pages.error(StatusCode::BAD_REQUEST, "invalid_request", pages::expired(lang));
    let Some(client) = ctx.client(&interaction.client_id) else {
        return expired();
    };
    let (session, user) = match current_session(&ctx, &headers).await {
        Ok(Some(found)) => found,
        Ok(None) => return expired(),
        Err(e) => return e.into_response(),
    };
    if interaction.session.as_deref() != Some(session.id_hash.as_str()) {
        return expired();
    }
    continue_after_login(&state, &ctx, client, interaction, &session, &user, false).await
}

async fn consent(
    ctx: TenantContext,
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<CsrfForm, CsrfRejection>,
) -> Response {
    let (form, interaction) = match open_step(&state, &ctx, form) {
        Ok(opened) => opened,
        Err(page) => return *page,
    };
    let lang = interaction.lang;
    let Some(client) = ctx.client(&interaction.client_id) else {
        return PageContext::of(&ctx, lang).error(StatusCode::BAD_REQUEST, "invalid_client", "unknown client");
    };
    let back = Redirector {
        ctx: &ctx,
        redirect_uri: interaction.redirect_uri.clone(),
        state: interaction.state.clone(),
        mode: interaction.response_mode,
        lang,
    };
    let (session, user) = match current_session(&ctx, &headers).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            return PageContext::of(&ctx, lang).error(StatusCode::BAD_REQUEST, "login_required", pages::expired(lang));
        }
        Err(e) => return e.into_response(),
    };
    match form.decision.as_str() {
        "allow" => {}
        "deny" => return back.error("access_denied", "the user denied access"),
        _ => {
            return PageContext::of(&ctx, lang).error(StatusCode::BAD_REQUEST, "invalid_request", pages::expired(lang));
        }
    }
    if let Err(e) = authorize::grant_consent(&ctx, client, user.id, &interaction.scopes).await {
        return e.into_response();
    }
    issue_code(&ctx, &back, &interaction, &session, &user).await
}
