//! The error of the OAuth endpoints (token, introspection, revocation): RFC 6749 section
//! 5.2 (`error`, `error_description`), answered with `Pragma: no-cache`; 401 for
//! `invalid_client`, with a `Basic` challenge when the client tried HTTP Basic. A tenant
//! that cannot serve (no keys, database down) is answered as a problem document, and the
//! headless API turns the same refusal into a problem ([`OAuthError::into_problem`]).

use http::StatusCode;

use crate::{ApiError, ErrorCode};

/// An RFC 6749 section 5.2 error answer.
#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    basic_challenge: Option<String>,
    /// The tenant cannot serve (no keys, database down): answered as a problem document.
    unavailable: Option<Box<ApiError>>,
}

impl OAuthError {
    pub fn new(error: &'static str, description: impl Into<String>) -> Self {
        let status = match error {
            "invalid_client" => StatusCode::UNAUTHORIZED,
            _ => StatusCode::BAD_REQUEST,
        };
        Self {
            status,
            error,
            description: description.into(),
            basic_challenge: None,
            unavailable: None,
        }
    }
}

impl OAuthError {
    /// The same error with a `WWW-Authenticate: Basic` challenge (a failed HTTP Basic
    /// client authentication).
    pub fn with_basic_challenge(mut self, challenge: String) -> Self {
        self.basic_challenge = Some(challenge);
        self
    }

    /// A body over the configured size limit (413), still in the RFC 6749 error shape.
    pub fn body_too_large() -> Self {
        let mut e = OAuthError::new("invalid_request", "the request body exceeds the configured limit");
        e.status = StatusCode::PAYLOAD_TOO_LARGE;
        e
    }

    /// The same refusal as an RFC 9457 problem, for the headless REST API.
    pub fn into_problem(self) -> ApiError {
        if let Some(e) = self.unavailable {
            return *e;
        }
        let code = match self.error {
            "invalid_grant" => ErrorCode::InvalidGrant,
            "invalid_scope" => ErrorCode::InvalidScope,
            "invalid_client" | "unauthorized_client" => ErrorCode::InvalidClient,
            _ => ErrorCode::BadRequest,
        };
        ApiError::new(code, self.description)
    }
}

impl From<ApiError> for OAuthError {
    fn from(e: ApiError) -> Self {
        Self {
            unavailable: Some(Box::new(e)),
            ..Self::new("server_error", "")
        }
    }
}

#[cfg(feature = "axum")]
mod response {
    use axum::Json;
    use axum::http::{HeaderValue, header};
    use axum::response::{IntoResponse, Response};
    use serde_json::json;

    use super::OAuthError;

    impl IntoResponse for OAuthError {
        fn into_response(self) -> Response {
            if let Some(api) = self.unavailable {
                return (*api).into_response();
            }
            let body = json!({"error": self.error, "error_description": self.description});
            let mut response = (self.status, Json(body)).into_response();
            let headers = response.headers_mut();
            headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            if let Some(challenge) = self.basic_challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
                headers.insert(header::WWW_AUTHENTICATE, challenge);
            }
            response
        }
    }
}
