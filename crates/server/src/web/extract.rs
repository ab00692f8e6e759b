//! Request extractors shared by the API surfaces: JSON bodies with problem+json
//! rejections, and the client's address and user agent. (Admin authentication is
//! `web::admin`'s.)

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// A JSON body; malformed input answers `invalid_json` (400), a wrong content type
/// `unsupported_media_type` (415) and an oversized body `payload_too_large` (413).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            ErrorCode::PayloadTooLarge,
            "the request body exceeds the configured limit",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::new(ErrorCode::UnsupportedMediaType, "send the body as application/json")
        }
        _ => ApiError::new(ErrorCode::InvalidJson, rejection.body_text()),
    }
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
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip());
        Ok(ClientIp(
            peer.map(|peer| state.config.trusted_proxies.client(peer, &parts.headers)),
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
        let ClientIp(ip) = ClientIp::from_request_parts(parts, state).await?;
        let user_agent = parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(256).collect());
        Ok(SessionOrigin { ip, user_agent })
    }
}
