//! The headless API's part of upstream sign-in (federation, `tenantry_federation`): an
//! SPA's start through a provider, and the caller's linked identities.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tenantry_tenancy::TenantContext;
use utoipa::ToSchema;

use super::{Caller, IdentityList};
use crate::error::{ApiError, ErrorCode};
use crate::routes::authorize::upstream::{LinkTicket, link_expiry, link_url, provider};
use crate::state::AppState;
use crate::web::ApiJson;

/// An SPA's sign-in through an upstream provider: its authorization request (code flow
/// with PKCE) and the provider.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UpstreamStartBody {
    /// The provider's id in the tenant's settings.
    provider: String,
    client_id: String,
    redirect_uri: String,
    /// Space-separated; `openid` is added when missing.
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
    code_challenge: String,
    /// Only `S256`.
    code_challenge_method: String,
    #[serde(default)]
    ui_locales: Option<String>,
}

/// Where to send the browser.
#[derive(Serialize, ToSchema)]
pub(super) struct UpstreamStart {
    /// The tenant's authorization URL for this request with `idp_hint`: it goes straight
    /// on to the provider, and the provider's answer comes back to the tenant, which
    /// finishes into the normal code flow (a code at `redirect_uri`). The SPA never sees
    /// the provider's tokens. The browser must open it as a top-level navigation, so the
    /// sign-in is bound to it by a first-party cookie.
    authorization_url: String,
}

/// Starts a sign-in through an upstream provider for an SPA: checks the authorization
/// request and the provider up front (problem+json, not a redirect), and answers the URL
/// to navigate to.
#[utoipa::path(post, path = "/v1/auth/upstream/start", tag = "auth",
    request_body = UpstreamStartBody,
    responses((status = 200, body = UpstreamStart),
        (status = 400, description = "The authorization request is refused (`invalid_request`, `invalid_client`, `invalid_scope`)"),
        (status = 404, description = "`upstream_unknown`: no enabled provider with this id")))]
pub(super) async fn upstream_start(
    ctx: TenantContext,
    ApiJson(body): ApiJson<UpstreamStartBody>,
) -> Result<Json<UpstreamStart>, ApiError> {
    provider(&ctx, &body.provider)?;
    let scope = match body.scope.as_deref().map(str::trim) {
        Some(scope) if scope.split(' ').any(|s| s == "openid") => scope.to_owned(),
        Some(scope) if !scope.is_empty() => format!("openid {scope}"),
        _ => "openid".to_owned(),
    };
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", body.client_id.as_str()),
        ("redirect_uri", body.redirect_uri.as_str()),
        ("scope", scope.as_str()),
        ("code_challenge", body.code_challenge.as_str()),
        ("code_challenge_method", body.code_challenge_method.as_str()),
        ("idp_hint", body.provider.as_str()),
    ];
    for (name, value) in [
        ("state", &body.state),
        ("nonce", &body.nonce),
        ("ui_locales", &body.ui_locales),
    ] {
        if let Some(value) = value {
            pairs.push((name, value.as_str()));
        }
    }
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&pairs)
        .finish();
    let params = tenantry_oidc::params::Params::parse(query.as_bytes(), &[])
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, e.message()))?;
    if let Err(refusal) = tenantry_oidc::authorize::validate(&ctx, &params) {
        let (error, description) = match refusal {
            tenantry_oidc::authorize::Refusal::Untrusted { error, description } => (error, description),
            tenantry_oidc::authorize::Refusal::ToClient { error, description, .. } => (error, description),
        };
        let code = match error {
            "invalid_client" => ErrorCode::InvalidClient,
            "invalid_scope" => ErrorCode::InvalidScope,
            _ => ErrorCode::BadRequest,
        };
        return Err(ApiError::new(code, format!("{error}: {description}")));
    }
    Ok(Json(UpstreamStart {
        authorization_url: format!("{}/authorize?{query}", ctx.issuer),
    }))
}

/// The upstream identities (federation) linked to the caller's account.
#[utoipa::path(get, path = "/v1/auth/me/identities", tag = "auth",
    security(("user_access_token" = [])),
    responses((status = 200, body = IdentityList)))]
pub(super) async fn identities(caller: Caller) -> Result<Json<IdentityList>, ApiError> {
    use tenantry_dataplane::UserRepository;
    let identities = caller.db.identities_of(caller.user.id).await?;
    Ok(Json(IdentityList { identities }))
}

/// Where the browser comes back to after linking.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct LinkBody {
    /// A redirect URI registered for the client the access token was issued to; the
    /// browser comes back to it with `linked={provider}` or `error` and
    /// `error_description`, and `state`.
    redirect_uri: String,
    #[serde(default)]
    state: Option<String>,
}

/// Where to send the browser to link.
#[derive(Serialize, ToSchema)]
pub(super) struct LinkStart {
    /// Single use, valid for five minutes, and only in a browser that holds the login
    /// session of the access token (the session cookie of the tenant's hosted login): open
    /// it there as a top-level navigation.
    link_url: String,
}

/// Starts linking an upstream identity to the caller's account: answers the URL the
/// caller's browser opens; after the provider's sign-in the identity is linked (or the
/// browser comes back with an error: `already_exists` when it belongs to another account).
#[utoipa::path(post, path = "/v1/auth/me/identities/{provider}", tag = "auth",
    security(("user_access_token" = [])),
    params(("provider" = String, Path, description = "The provider's id in the tenant's settings")),
    request_body = LinkBody,
    responses((status = 200, body = LinkStart),
        (status = 400, description = "`redirect_uri` is not registered for the token's client"),
        (status = 404, description = "`upstream_unknown`: no enabled provider with this id")))]
pub(super) async fn link_identity(
    ctx: TenantContext,
    State(state): State<AppState>,
    caller: Caller,
    Path(provider_id): Path<String>,
    ApiJson(body): ApiJson<LinkBody>,
) -> Result<Json<LinkStart>, ApiError> {
    let provider = provider(&ctx, &provider_id)?.id.clone();
    let registered = ctx
        .client(&caller.client_id)
        .is_some_and(|c| c.redirect_uris.contains(&body.redirect_uri));
    if !registered {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            "redirect_uri is not registered for the client of this token",
        ));
    }
    if body.state.as_ref().is_some_and(|s| s.len() > 512) {
        return Err(ApiError::new(ErrorCode::BadRequest, "state is longer than 512 bytes"));
    }
    let ticket = LinkTicket {
        id: tenantry_crypto::random_token(32),
        user: caller.user.id,
        session: caller.session.id_hash.clone(),
        provider,
        client_id: caller.client_id.clone(),
        redirect_uri: body.redirect_uri,
        state: body.state,
        expires_at: link_expiry(),
    };
    Ok(Json(LinkStart {
        link_url: link_url(&state, &ctx, &ticket),
    }))
}

/// Unlinks the caller's identity at an upstream provider. The account must keep a way in:
/// without a password and any other linked identity, the last one stays (409
/// `last_way_in`).
#[utoipa::path(delete, path = "/v1/auth/me/identities/{provider}", tag = "auth",
    security(("user_access_token" = [])),
    params(("provider" = String, Path, description = "The provider's id in the tenant's settings")),
    responses((status = 204, description = "Unlinked"),
        (status = 404, description = "No identity of the caller at this provider"),
        (status = 409, description = "`last_way_in`: it is the account's only way to sign in")))]
pub(super) async fn unlink_identity(caller: Caller, Path(provider): Path<String>) -> Result<StatusCode, ApiError> {
    tenantry_federation::account::unlink(&caller.db, caller.user.id, &provider).await?;
    Ok(StatusCode::NO_CONTENT)
}
