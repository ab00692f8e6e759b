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
    /// Seconds for `Retry-After` (a quota refusal).
    retry_after: Option<u64>,
    /// The tenant cannot serve (no keys, database down): answered as a problem document.
    unavailable: Option<Box<ApiError>>,
}

impl OAuthError {
    /// The RFC 6749 `error` code.
    pub fn error(&self) -> &'static str {
        self.error
    }

    /// The problem to answer when the tenant cannot serve (no keys, database down), not a
    /// client mistake.
    pub fn unavailable(&self) -> Option<&ApiError> {
        self.unavailable.as_deref()
    }

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
            retry_after: None,
            unavailable: None,
        }
    }

    /// 429 `quota_exceeded` with `Retry-After` (an extension error code, RFC 6749 8.5): a
    /// request quota of the tenant or client is used up until the window closes.
    pub fn quota_exceeded(description: impl Into<String>, retry_after_secs: u64) -> Self {
        let mut e = OAuthError::new("quota_exceeded", description);
        e.status = StatusCode::TOO_MANY_REQUESTS;
        e.retry_after = Some(retry_after_secs.max(1));
        e
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
            "quota_exceeded" => ErrorCode::QuotaExceeded,
            _ => ErrorCode::BadRequest,
        };
        let problem = ApiError::new(code, self.description);
        match self.retry_after {
            Some(secs) => problem.with_retry_after(secs),
            None => problem,
        }
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
            if let Some(secs) = self.retry_after {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            response
        }
    }
}
