//! The error catalogue lives in `tenantry-errors`; this module names it for the HTTP
//! crate, which answers it as RFC 9457 problem+json (that crate's `axum` feature).

pub use tenantry_errors::*;

#[cfg(test)]
mod tests {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;

    use super::*;

    #[tokio::test]
    async fn retry_after_is_a_header_on_429_and_503() {
        let response = ApiError::rate_limited(7).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
        let response = ApiError::overloaded(0).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1", "never 0");
        let body = axum::body::to_bytes(response.into_body(), 4096).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], "overloaded");
        assert_eq!(body["type"], "urn:tenantry:error:overloaded");
        let response = ApiError::internal().into_response();
        assert!(!response.headers().contains_key(header::RETRY_AFTER));
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/problem+json");
    }
}
