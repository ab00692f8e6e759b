//! Authorization-request validation (OIDC Core 3.1.2, RFC 6749 4.1.1, RFC 7636, RFC 9700):
//! the request's parameters and its client in, a [`ValidRequest`] or the error and where
//! it may be told out.
//!
//! Until the client and its redirect URI are trusted an error is [`Refusal::Untrusted`]
//! (the HTTP crate shows it on a page, never redirects); after that it is
//! [`Refusal::ToClient`], sent back to the redirect URI. Once the user is signed in, the
//! consent decision ([`needs_consent`], [`grant_consent`]) and the single-use code
//! ([`issue_code`]) finish the request.

use serde::{Deserialize, Serialize};
use tenantry_controlplane::TenantEntry;
use tenantry_controlplane::model::{Client, ClientType, GrantType};
use tenantry_dataplane::model::{AuthorizationCode, Consent, Session};
use tenantry_dataplane::{ConsentRepository, TokenRepository};
use tenantry_errors::ApiError;
use tenantry_tenancy::TenantContext;

use crate::params::Params;

/// How the answer travels back to the client (OAuth 2.0 response modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    Query,
    FormPost,
}

/// Where a trusted request's answer goes: the registered redirect URI, with `state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnTo {
    pub redirect_uri: String,
    pub state: Option<String>,
    pub mode: ResponseMode,
}

/// A refused authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The client or redirect URI cannot be trusted: tell the user, not the client.
    Untrusted { error: &'static str, description: String },
    /// Told to the client at its redirect URI (RFC 6749 4.1.2.1).
    ToClient {
        to: ReturnTo,
        error: &'static str,
        description: String,
    },
}

impl Refusal {
    fn untrusted(error: &'static str, description: &str) -> Self {
        Refusal::Untrusted {
            error,
            description: description.to_owned(),
        }
    }
}

/// A request that passed every rule: what the login and consent steps carry on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidRequest<'a> {
    pub client: &'a Client,
    pub to: ReturnTo,
    /// The requested scopes, each allowed for the client, without repeats, in order.
    pub scopes: Vec<String>,
    pub nonce: Option<String>,
    /// An S256 `code_challenge` (RFC 7636), when one was sent.
    pub code_challenge: Option<String>,
    pub prompt: Prompt,
    /// `max_age` in seconds: an older sign-in must be repeated.
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
}

/// The `prompt` values (OIDC Core 3.1.2.1) this server acts on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prompt {
    /// `none`: never show a page; fail with `login_required` when there is no session.
    pub none: bool,
    /// `login`: sign in again even with a live session.
    pub login: bool,
    /// `consent`: ask for consent even when it was given before.
    pub consent: bool,
}

/// Validates an authorization request for the tenant of `ctx` (its clients as
/// `TenantContext::client` finds them).
pub fn validate<'a>(ctx: &'a TenantContext, params: &Params) -> Result<ValidRequest<'a>, Refusal> {
    validate_for(&ctx.entry, |id| ctx.client(id), params)
}

/// [`validate`] for the tenant `entry`, whose client `client_of` finds by id.
pub fn validate_for<'a>(
    entry: &'a TenantEntry,
    client_of: impl FnOnce(&str) -> Option<&'a Client>,
    params: &Params,
) -> Result<ValidRequest<'a>, Refusal> {
    let Some(client) = params.get("client_id").and_then(client_of) else {
        return Err(Refusal::untrusted("invalid_client", "unknown or missing client_id"));
    };
    let Some(redirect_uri) = params.get("redirect_uri") else {
        return Err(Refusal::untrusted("invalid_request", "redirect_uri is required"));
    };
    // Exact string match against the registered list (RFC 9700 2.1).
    if !client.redirect_uris.iter().any(|r| r == redirect_uri) {
        return Err(Refusal::untrusted(
            "invalid_request",
            "redirect_uri is not registered for this client",
        ));
    }
    let mode = match params.get("response_mode") {
        None | Some("query") => ResponseMode::Query,
        Some("form_post") => ResponseMode::FormPost,
        Some(_) => return Err(Refusal::untrusted("invalid_request", "unsupported response_mode")),
    };
    let to = ReturnTo {
        redirect_uri: redirect_uri.to_owned(),
        state: params.get("state").map(str::to_owned),
        mode,
    };
    let refuse = |error: &'static str, description: &str| Refusal::ToClient {
        to: to.clone(),
        error,
        description: description.to_owned(),
    };
    if params.get("request").is_some() || params.get("request_uri").is_some() {
        return Err(refuse("request_not_supported", "request objects are not supported"));
    }
    match params.get("response_type") {
        Some("code") => {}
        Some(_) => {
            return Err(refuse(
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
        None => return Err(refuse("invalid_request", "response_type is required")),
    }
    if !client.grant_types.contains(&GrantType::AuthorizationCode) {
        return Err(refuse(
            "unauthorized_client",
            "this client may not use the authorization code flow",
        ));
    }
    let mut scopes: Vec<String> = Vec::new();
    for scope in params.get("scope").unwrap_or("").split(' ').filter(|s| !s.is_empty()) {
        if !client.scopes.iter().any(|s| s == scope) {
            return Err(refuse(
                "invalid_scope",
                &format!("scope `{}` is not allowed", tenantry_errors::printable(scope)),
            ));
        }
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    }
    // PKCE (RFC 7636, RFC 9700): S256 only; required for public clients, and for
    // confidential ones too unless the tenant turned that off.
    let code_challenge = params.get("code_challenge").map(str::to_owned);
    let pkce_optional = client.client_type == ClientType::Confidential
        && !entry.tenant.settings.security.require_pkce_for_confidential_clients;
    match (params.get("code_challenge_method"), &code_challenge) {
        (Some("S256"), Some(c)) if is_pkce_value(c) => {}
        (None, None) if pkce_optional => {}
        (None, None) => return Err(refuse("invalid_request", "PKCE (code_challenge with S256) is required")),
        (Some("plain"), _) | (None, Some(_)) => {
            return Err(refuse(
                "invalid_request",
                "the plain PKCE method is not allowed; use S256",
            ));
        }
        _ => return Err(refuse("invalid_request", "malformed PKCE parameters")),
    }
    let prompts: Vec<&str> = params
        .get("prompt")
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect();
    if prompts.iter().any(|p| !matches!(*p, "none" | "login" | "consent"))
        || (prompts.contains(&"none") && prompts.len() > 1)
    {
        return Err(refuse("invalid_request", "invalid prompt value"));
    }
    let max_age = match params.get("max_age").map(str::parse::<i64>) {
        None => None,
        Some(Ok(v)) if v >= 0 => Some(v),
        Some(_) => return Err(refuse("invalid_request", "max_age must be a non-negative integer")),
    };
    Ok(ValidRequest {
        client,
        to,
        scopes,
        nonce: params.get("nonce").map(str::to_owned),
        code_challenge,
        prompt: Prompt {
            none: prompts.contains(&"none"),
            login: prompts.contains(&"login"),
            consent: prompts.contains(&"consent"),
        },
        max_age,
        login_hint: params.get("login_hint").map(str::to_owned),
    })
}

/// Whether a live sign-in made at `auth_time` may answer a request without a new login:
/// not when `prompt=login` asked for one, nor when it is older than `max_age`.
pub fn session_satisfies(
    force_login: bool,
    max_age: Option<i64>,
    auth_time: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    !force_login && max_age.is_none_or(|age| (now - auth_time).num_seconds() <= age)
}

/// A well-formed PKCE value (RFC 7636 4.1): 43 to 128 unreserved characters.
pub fn is_pkce_value(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Lifetime of an authorization code (RFC 6749 recommends at most 10 minutes).
pub const CODE_TTL: chrono::Duration = chrono::Duration::seconds(60);

/// Whether `user` must be asked before `client` gets `scopes`: never for a first-party
/// client or when the tenant does not require consent; always with `prompt=consent`;
/// otherwise unless a live consent covers every scope.
pub async fn needs_consent(
    ctx: &TenantContext,
    client: &Client,
    user: uuid::Uuid,
    scopes: &[String],
    force_consent: bool,
) -> Result<bool, ApiError> {
    let policy = &ctx.entry.tenant.settings.consent;
    if client.first_party || !policy.required {
        return Ok(false);
    }
    if force_consent {
        return Ok(true);
    }
    let db = ctx.db().await?;
    Ok(match db.consent(user, &client.client_id, chrono::Utc::now()).await? {
        Some(consent) => !scopes.iter().all(|s| consent.scopes.contains(s)),
        None => true,
    })
}

/// Records that `user` allowed `client` the `scopes`, for the tenant's remembering period
/// (`consent.remember_secs`; 0 keeps it until revoked).
pub async fn grant_consent(
    ctx: &TenantContext,
    client: &Client,
    user: uuid::Uuid,
    scopes: &[String],
) -> Result<(), ApiError> {
    let remember = ctx.entry.tenant.settings.consent.remember_secs;
    let now = chrono::Utc::now();
    let consent = Consent {
        user_id: user,
        client_id: client.client_id.clone(),
        scopes: scopes.to_vec(),
        granted_at: now,
        expires_at: (remember > 0).then(|| now + chrono::Duration::seconds(remember as i64)),
        revoked_at: None,
    };
    Ok(ctx.db().await?.grant_consent(&consent).await?)
}

/// What an authorization code is issued for: the validated request's parts it carries
/// to the token endpoint.
#[derive(Debug, Clone, Copy)]
pub struct CodeRequest<'a> {
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub scopes: &'a [String],
    pub nonce: Option<&'a str>,
    pub code_challenge: Option<&'a str>,
}

/// Issues a single-use authorization code (stored as its hash, [`CODE_TTL`]) for a
/// signed-in `session` of `user`, carrying the session's `auth_time`, `acr` and `amr`.
pub async fn issue_code(
    ctx: &TenantContext,
    request: CodeRequest<'_>,
    session: &Session,
    user: uuid::Uuid,
) -> Result<String, ApiError> {
    let code = tenantry_crypto::random_token(32);
    let now = chrono::Utc::now();
    let record = AuthorizationCode {
        code_hash: tenantry_crypto::hash_token(&code),
        client_id: request.client_id.to_owned(),
        user_id: user,
        session_id_hash: Some(session.id_hash.clone()),
        redirect_uri: request.redirect_uri.to_owned(),
        scope: request.scopes.join(" "),
        nonce: request.nonce.map(str::to_owned),
        code_challenge: request.code_challenge.map(str::to_owned),
        code_challenge_method: request.code_challenge.map(|_| "S256".to_owned()),
        auth_time: session.auth_time,
        acr: session.acr.clone(),
        amr: session.amr.clone(),
        created_at: now,
        expires_at: now + CODE_TTL,
        used_at: None,
    };
    ctx.db().await?.store_code(&record).await?;
    Ok(code)
}
