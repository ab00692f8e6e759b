//! The RFC 6749 error answer of the OAuth endpoints is `tenantry_errors::OAuthError`; this
//! module adds what only the HTTP edge knows: a request body that could not be read.

use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;

pub use tenantry_errors::OAuthError;

/// A body that could not be read: over the size limit (413) or broken off (400), still in
/// the RFC 6749 error shape.
pub fn unreadable_body(rejection: BytesRejection) -> OAuthError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return OAuthError::body_too_large();
    }
    OAuthError::new("invalid_request", rejection.body_text())
}
