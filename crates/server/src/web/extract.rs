//! Request extractors shared by the API surfaces: JSON bodies with problem+json
//! rejections, and the client's address and user agent. (Admin authentication is
//! `web::admin`'s.)

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// A JSON body. Text that is not JSON answers `invalid_json` (400); JSON of the wrong
/// shape (an unknown or missing field, a wrong type) `validation_failed` (422) naming the
/// field; a wrong content type `unsupported_media_type` (415) and an oversized body
/// `payload_too_large` (413).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let body = json_body(request, state, false).await?;
        parse_json(&body).map(ApiJson)
    }
}

/// Like [`ApiJson`], for a body that may be left out: an empty body is `T::default()`.
pub struct OptionalApiJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let body = json_body(request, state, true).await?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalApiJson(T::default()));
        }
        parse_json(&body).map(OptionalApiJson)
    }
}

/// The body within the configured limit, after its content type is checked (an empty
/// body needs none when `may_be_empty`).
async fn json_body<S: Send + Sync>(request: Request, state: &S, may_be_empty: bool) -> Result<Bytes, ApiError> {
    let declared_json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| {
            m.type_() == "application" && (m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json"))
        });
    let body = Bytes::from_request(request, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                "the request body exceeds the configured limit",
            )
        } else {
            ApiError::new(ErrorCode::BadRequest, "the request body could not be read")
        }
    })?;
    let left_out = may_be_empty && body.iter().all(u8::is_ascii_whitespace);
    if !declared_json && !left_out {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the body as application/json",
        ));
    }
    Ok(body)
}

/// Parses a JSON body: syntax errors are 400 `invalid_json`, shape errors 422 naming the
/// field (`tenantry_errors::json_shape_error`).
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| match e.inner().classify() {
        serde_json::error::Category::Data => tenantry_errors::json_shape_error("", &e),
        _ => ApiError::new(
            ErrorCode::InvalidJson,
            tenantry_errors::printable(&e.inner().to_string()),
        ),
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::new(ErrorCode::InvalidJson, tenantry_errors::printable(&e.to_string())))?;
    Ok(value)
}

/// The client's address: the TCP peer, or what `X-Forwarded-For` says when the peer is
/// one of `trusted_proxies` ([`TrustedProxies::client`](tenantry_config::proxies::TrustedProxies::client)).
/// `None` when the server runs without connect info (it does in production; an in-process
/// test router may not).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<std::net::IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(
            &parts.extensions,
            &parts.headers,
            &state.config.trusted_proxies,
        )))
    }
}

/// The client address of [`ClientIp`], from the request's connect info and headers.
fn client_ip(
    extensions: &axum::http::Extensions,
    headers: &axum::http::HeaderMap,
    trusted_proxies: &tenantry_config::proxies::TrustedProxies,
) -> Option<std::net::IpAddr> {
    let peer = extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip());
    peer.map(|peer| trusted_proxies.client(peer, headers))
}

/// The request's id (`X-Request-Id`, set by `middleware::frame`), for the audit trail.
#[derive(Debug, Clone)]
pub struct RequestId(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestId(
            parts
                .headers
                .get(crate::middleware::REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        ))
    }
}

/// Where a login comes from (`tenantry_accounts::login::SessionOrigin`), read from the
/// request: the client address ([`ClientIp`]) and the `User-Agent` (its first 256
/// characters).
pub use tenantry_accounts::login::SessionOrigin;

impl FromRequestParts<AppState> for SessionOrigin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(session_origin(
            &parts.extensions,
            &parts.headers,
            &state.config.trusted_proxies,
        ))
    }
}

/// The [`SessionOrigin`] of a request: the client address (as [`ClientIp`] reads it), the
/// `User-Agent` (its first 256 characters) and the request id.
pub fn session_origin(
    extensions: &axum::http::Extensions,
    headers: &axum::http::HeaderMap,
    trusted_proxies: &tenantry_config::proxies::TrustedProxies,
) -> SessionOrigin {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &axum::http::HeaderValue| v.to_str().ok())
    };
    SessionOrigin {
        ip: client_ip(extensions, headers, trusted_proxies),
        user_agent: text(axum::http::header::USER_AGENT).map(|v| v.chars().take(256).collect()),
        request_id: text(crate::middleware::REQUEST_ID).map(str::to_owned),
    }
}
