//! Per-tenant issuer endpoints below `/t/{slug}`: the published key set and UserInfo.
//!
//! These are protocol endpoints: errors follow RFC 6750 (bearer token errors with
//! `WWW-Authenticate`) rather than the REST API's problem documents, except where the
//! tenant itself cannot serve (unknown tenant, no keys, database down).

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use axum::extract::State;
use tenantry_accounts::quotas::Endpoint;

use crate::state::AppState;
use crate::web::quota::ClientQuota;
use crate::web::{Bearer, BearerRejection};
use tenantry_oidc::key_rotation::JWKS_MAX_AGE_SECS;
use tenantry_oidc::tokens::{self, BearerError};
use tenantry_tenancy::TenantContext;

/// The tenant's published keys: a public document.
pub fn documents_router() -> Router<AppState> {
    Router::new().route("/t/{slug}/jwks.json", get(jwks))
}

/// UserInfo, which browser apps call with their access token.
pub fn fetch_router() -> Router<AppState> {
    Router::new().route("/t/{slug}/userinfo", get(userinfo_get).post(userinfo_post))
}

static JWKS_CACHE_CONTROL: std::sync::LazyLock<HeaderValue> =
    std::sync::LazyLock::new(|| HeaderValue::from_str(&format!("public, max-age={JWKS_MAX_AGE_SECS}")).expect("ascii"));

/// `GET /t/{slug}/jwks.json`: the tenant's active and retiring public keys (RFC 7517),
/// with a strong ETag and `304 Not Modified` for a matching `If-None-Match`.
async fn jwks(ctx: TenantContext, headers: HeaderMap) -> Result<Response, crate::error::ApiError> {
    let keys = ctx.keys()?;
    let jwks = keys.jwks();
    let etag = HeaderValue::from_str(&jwks.etag).expect("base64url in quotes is a valid header value");
    let not_modified = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| etag_matches(v, &jwks.etag));
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            jwks.body.clone(),
        )
            .into_response()
    };
    response.headers_mut().insert(header::ETAG, etag);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, JWKS_CACHE_CONTROL.clone());
    Ok(response)
}

/// `If-None-Match` uses the weak comparison (RFC 9110 13.1.2): `*`, or any listed tag
/// equal to ours once a `W/` prefix is ignored.
fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match.trim() == "*"
        || if_none_match
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == etag)
}

async fn userinfo_get(ctx: TenantContext, State(state): State<AppState>, headers: HeaderMap) -> Response {
    match bearer_from_header(&headers) {
        Ok(token) => userinfo(&ctx, &state, token.as_deref()).await,
        Err(e) => e.into_response(&ctx),
    }
}

/// POST accepts the token in the header or, with a form body, as `access_token`
/// (RFC 6750 2.2) — never both.
async fn userinfo_post(ctx: TenantContext, State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let from_header = match bearer_from_header(&headers) {
        Ok(token) => token,
        Err(e) => return e.into_response(&ctx),
    };
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/x-www-form-urlencoded"));
    let from_body = if is_form {
        let mut values = url::form_urlencoded::parse(&body).filter(|(k, _)| k == "access_token");
        let first = values.next().map(|(_, v)| v.into_owned());
        if values.next().is_some() {
            return UserinfoError::InvalidRequest("access_token appears more than once").into_response(&ctx);
        }
        first
    } else {
        None
    };
    match (from_header, from_body) {
        (Some(_), Some(_)) => {
            UserinfoError::InvalidRequest("send the access token in one place only").into_response(&ctx)
        }
        (token, None) | (None, token) => userinfo(&ctx, &state, token.as_deref()).await,
    }
}

async fn userinfo(ctx: &TenantContext, state: &AppState, token: Option<&str>) -> Response {
    let mut quota = ClientQuota::default();
    let response = match userinfo_claims(ctx, state, &mut quota, token).await {
        Ok(claims) => Json(Value::Object(claims)).into_response(),
        Err(e) => e.into_response(ctx),
    };
    quota.attach(response)
}

async fn userinfo_claims(
    ctx: &TenantContext,
    state: &AppState,
    quota: &mut ClientQuota,
    token: Option<&str>,
) -> Result<Map<String, Value>, UserinfoError> {
    let token = token.ok_or(UserinfoError::NoToken)?;
    let good = tokens::accept_access_token(ctx, token).await.map_err(|e| match e {
        BearerError::InvalidToken(reason) => UserinfoError::InvalidToken(reason),
        BearerError::Unavailable(api) => UserinfoError::Unavailable(api),
    })?;
    // Counted for the client the token was issued to, once the token is known good.
    if let Some(client) = ctx.client(&good.claims.client_id) {
        quota
            .admit(
                &state.accounts.rate_limiter,
                &ctx.entry.tenant,
                client,
                Endpoint::Userinfo,
            )
            .await
            .map_err(|e| UserinfoError::Unavailable(e.into_problem()))?;
    }
    let scopes: Vec<&str> = good.claims.scopes().collect();
    if !scopes.contains(&"openid") {
        return Err(UserinfoError::InsufficientScope);
    }
    let user = good
        .user
        .ok_or_else(|| UserinfoError::InvalidToken("the token was not issued to a user".into()))?;
    let mut body = Map::new();
    body.insert("sub".into(), Value::String(user.id.to_string()));
    body.extend(tokens::released_claims(&ctx.entry, &user, &scopes));
    let db = ctx.db().await.map_err(UserinfoError::Unavailable)?;
    if let Some(roles) = tokens::RoleClaims::when_granted(ctx, &db, user.id, &scopes)
        .await
        .map_err(UserinfoError::Unavailable)?
    {
        body.insert("roles".into(), Value::from(roles.roles));
    }
    Ok(body)
}

/// RFC 6750 section 3 answers.
#[derive(Debug)]
enum UserinfoError {
    /// No credentials: 401 with a bare challenge, no error code (3.1).
    NoToken,
    InvalidRequest(&'static str),
    InvalidToken(String),
    InsufficientScope,
    Unavailable(crate::error::ApiError),
}

impl UserinfoError {
    fn into_response(self, ctx: &TenantContext) -> Response {
        let realm = format!("Bearer realm=\"{}\"", ctx.issuer);
        let (status, code, description) = match self {
            UserinfoError::NoToken => {
                let mut response = StatusCode::UNAUTHORIZED.into_response();
                set_challenge(&mut response, &realm);
                // A JSON body keeps the error shape uniform for clients that parse one.
                *response.body_mut() = json!({"error": "invalid_token", "error_description": "no access token"})
                    .to_string()
                    .into();
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                return response;
            }
            UserinfoError::InvalidRequest(d) => (StatusCode::BAD_REQUEST, "invalid_request", d.to_owned()),
            UserinfoError::InvalidToken(d) => (StatusCode::UNAUTHORIZED, "invalid_token", d),
            UserinfoError::InsufficientScope => (
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                "the token was not granted the openid scope".to_owned(),
            ),
            UserinfoError::Unavailable(api) => return api.into_response(),
        };
        if status == StatusCode::UNAUTHORIZED {
            tracing::debug!(reason = %description, "userinfo refused a token");
        }
        let mut challenge = format!(
            "{realm}, error=\"{code}\", error_description=\"{}\"",
            quoted(&description)
        );
        if code == "insufficient_scope" {
            challenge.push_str(", scope=\"openid\"");
        }
        let mut response = (status, Json(json!({"error": code, "error_description": description}))).into_response();
        set_challenge(&mut response, &challenge);
        response
    }
}

fn set_challenge(response: &mut Response, challenge: &str) {
    if let Ok(value) = HeaderValue::from_str(challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
}

/// Text safe inside a quoted-string of a challenge (RFC 6750 limits error_description to
/// printable ASCII without `"` and `\`).
fn quoted(text: &str) -> String {
    text.chars()
        .filter(|c| (' '..='~').contains(c) && *c != '"' && *c != '\\')
        .collect()
}

/// The token of an `Authorization: Bearer` header, if any ([`Bearer`]: the one parser).
fn bearer_from_header(headers: &HeaderMap) -> Result<Option<String>, UserinfoError> {
    match Bearer::from_headers(headers) {
        Ok(token) => Ok(token.map(|Bearer(token)| token)),
        Err(BearerRejection::Malformed(why)) => Err(UserinfoError::InvalidRequest(why)),
        Err(BearerRejection::Missing) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_uses_weak_comparison() {
        assert!(etag_matches("\"abc\"", "\"abc\""));
        assert!(etag_matches("W/\"abc\"", "\"abc\""));
        assert!(etag_matches("\"x\", \"abc\"", "\"abc\""));
        assert!(etag_matches("*", "\"abc\""));
        assert!(!etag_matches("\"abd\"", "\"abc\""));
        assert!(!etag_matches("", "\"abc\""));
    }

    #[test]
    fn challenge_text_is_sanitized() {
        assert_eq!(quoted("bad \"token\"\n\\x"), "bad tokenx");
    }
}
