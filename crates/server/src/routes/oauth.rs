//! OAuth 2.0 endpoints of a tenant issuer over HTTP: token (RFC 6749), introspection
//! (RFC 7662) and revocation (RFC 7009). The rules live in `tenantry_oidc`; this module
//! reads the form body and the `Authorization` header and answers JSON with
//! `Pragma: no-cache`, or the RFC 6749 error.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;
use tenantry_oidc::params::Params;
use tenantry_oidc::token_endpoint;
use tenantry_tenancy::TenantContext;

use tenantry_accounts::quotas::Endpoint;
use tenantry_controlplane::model::Client;

use crate::state::AppState;
use crate::web::OAuthError;
use crate::web::oauth_error::unreadable_body;
use crate::web::quota::ClientQuota;

/// The endpoints a browser app calls with `fetch`: token and revocation (both under the
/// token quota).
pub fn fetch_router() -> Router<AppState> {
    Router::new()
        .route("/t/{slug}/token", post(token))
        .route("/t/{slug}/revoke", post(revoke))
}

/// Introspection, for resource servers (confidential clients), never from a browser.
pub fn server_router() -> Router<AppState> {
    Router::new().route("/t/{slug}/introspect", post(introspect))
}

/// Reads an OAuth endpoint's form body and `Authorization` header.
fn read(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<(Params, Option<&[u8]>), OAuthError> {
    let body = body.map_err(unreadable_body)?;
    let content_type = headers.get(header::CONTENT_TYPE).map(HeaderValue::as_bytes);
    let form = token_endpoint::form_body(content_type, &body)?;
    Ok((form, headers.get(header::AUTHORIZATION).map(HeaderValue::as_bytes)))
}

fn no_store(body: Value) -> Response {
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// `POST /t/{slug}/token`.
async fn token(
    ctx: TenantContext,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut quota = ClientQuota::default();
    let answer = async {
        let (form, authorization) = read(&headers, body)?;
        let admit = async |client: &Client| {
            quota
                .admit_oauth(&state.accounts.rate_limiter, &ctx.entry.tenant, client, Endpoint::Token)
                .await
        };
        let body = token_endpoint::token(&state.keystore, &ctx, authorization, &form, admit).await?;
        Ok::<_, OAuthError>(no_store(body))
    }
    .await;
    quota.attach(answer.into_response())
}

/// `POST /t/{slug}/introspect`.
async fn introspect(
    ctx: TenantContext,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut quota = ClientQuota::default();
    let answer = async {
        let (form, authorization) = read(&headers, body)?;
        let admit = async |client: &Client| {
            let limiter = &state.accounts.rate_limiter;
            quota
                .admit_oauth(limiter, &ctx.entry.tenant, client, Endpoint::Introspection)
                .await
        };
        let body = token_endpoint::introspect(&state.keystore, &ctx, authorization, &form, admit).await?;
        Ok::<_, OAuthError>(no_store(body))
    }
    .await;
    quota.attach(answer.into_response())
}

/// `POST /t/{slug}/revoke`: 200 with an empty body, also for unknown tokens. Counted as
/// a token-endpoint request.
async fn revoke(
    ctx: TenantContext,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut quota = ClientQuota::default();
    let answer = async {
        let (form, authorization) = read(&headers, body)?;
        let admit = async |client: &Client| {
            quota
                .admit_oauth(&state.accounts.rate_limiter, &ctx.entry.tenant, client, Endpoint::Token)
                .await
        };
        token_endpoint::revoke(&state.keystore, &ctx, authorization, &form, admit).await?;
        Ok::<_, OAuthError>(StatusCode::OK.into_response())
    }
    .await;
    quota.attach(answer.into_response())
}
