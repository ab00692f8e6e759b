//! CSRF protection of the hosted pages' forms, by double submit: the page that shows a
//! form sets a random token in the tenant-scoped [`CSRF_COOKIE`] and puts the same token in
//! the form's hidden `csrf` field; a posted form counts only when its `csrf` equals the
//! cookie ([`form_matches`], compared in constant time). Another site can make a browser
//! post a form, but cannot read or set the cookie, so it cannot send the matching token.
//!
//! [`CsrfForm`] is the checked form body of the login, consent, MFA and account pages;
//! logout, whose confirmation may come as a query or a body, calls [`form_matches`].

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::cookies::{CSRF_COOKIE, cookie, set_cookie};
use crate::state::AppState;
use tenantry_oidc::params::Params;
use tenantry_tenancy::TenantContext;

/// The browser's CSRF token (its cookie), or a new one to set with [`with_cookie`].
pub fn token(headers: &HeaderMap) -> String {
    cookie(headers, CSRF_COOKIE).unwrap_or_else(|| tenantry_crypto::random_token(32))
}

/// `response` with the CSRF cookie set to `csrf`.
pub fn with_cookie(state: &AppState, ctx: &TenantContext, mut response: Response, csrf: &str) -> Response {
    set_cookie(&mut response, state, ctx, CSRF_COOKIE, csrf, None);
    response
}

/// Whether a presented CSRF token equals the expected one: both non-empty, compared in
/// constant time.
pub fn matches(expected: &str, presented: &str) -> bool {
    !expected.is_empty() && tenantry_crypto::constant_time_eq(expected.as_bytes(), presented.as_bytes())
}

/// Whether a form's `csrf` value equals the request's CSRF cookie.
pub fn form_matches(headers: &HeaderMap, presented: Option<&str>) -> bool {
    let cookie = cookie(headers, CSRF_COOKIE).unwrap_or_default();
    matches(&cookie, presented.unwrap_or(""))
}

/// A hosted page's form body (`application/x-www-form-urlencoded`, no repeated names)
/// whose `csrf` field equals the CSRF cookie.
#[derive(Debug)]
pub struct CsrfForm(pub Params);

/// Why a [`CsrfForm`] was not accepted.
#[derive(Debug)]
pub enum CsrfRejection {
    /// The body could not be read (too large, broken off).
    Unreadable(BytesRejection),
    /// The form does not parse, or its `csrf` does not match the cookie; the parameters
    /// when they parsed (the page may want `ui_locales` for its language).
    Refused(Option<Params>),
}

impl CsrfRejection {
    /// The answer: an unreadable body as axum answers it, a refused form as `refused`
    /// renders it.
    pub fn respond(self, refused: impl FnOnce(Option<Params>) -> Response) -> Response {
        match self {
            CsrfRejection::Unreadable(rejection) => rejection.into_response(),
            CsrfRejection::Refused(params) => refused(params),
        }
    }
}

/// Without a page of its own to show: the unreadable body as axum answers it, a refused
/// form as 400 `bad_request`.
impl IntoResponse for CsrfRejection {
    fn into_response(self) -> Response {
        self.respond(|_| {
            crate::error::ApiError::new(
                crate::error::ErrorCode::BadRequest,
                "the form's CSRF token does not match its cookie",
            )
            .into_response()
        })
    }
}

impl<S: Send + Sync> FromRequest<S> for CsrfForm {
    type Rejection = CsrfRejection;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let headers = parts.headers.clone();
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(CsrfRejection::Unreadable)?;
        let params = Params::parse(&bytes, &[]).map_err(|_| CsrfRejection::Refused(None))?;
        if !form_matches(&headers, params.get("csrf")) {
            return Err(CsrfRejection::Refused(Some(params)));
        }
        Ok(CsrfForm(params))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderValue, header};

    fn cookie_headers(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn a_form_matches_only_its_own_non_empty_cookie() {
        let headers = cookie_headers("tenantry_csrf=abc");
        assert!(form_matches(&headers, Some("abc")));
        assert!(!form_matches(&headers, Some("abd")));
        assert!(!form_matches(&headers, Some("ab")));
        assert!(!form_matches(&headers, None));
        assert!(!form_matches(&HeaderMap::new(), Some("")));
        assert!(!form_matches(&cookie_headers("tenantry_csrf="), Some("")));
        assert!(!matches("", ""));
    }

    #[tokio::test]
    async fn the_extractor_checks_the_field_against_the_cookie() {
        let request = |cookie: &'static str, body: &'static str| {
            Request::post("/")
                .header(header::COOKIE, cookie)
                .body(axum::body::Body::from(body))
                .unwrap()
        };
        let ok = CsrfForm::from_request(request("tenantry_csrf=t1", "csrf=t1&x=1"), &()).await;
        assert_eq!(ok.unwrap().0.get("x"), Some("1"));
        let wrong = CsrfForm::from_request(request("tenantry_csrf=t1", "csrf=t2&ui_locales=es"), &()).await;
        match wrong {
            Err(CsrfRejection::Refused(Some(params))) => assert_eq!(params.get("ui_locales"), Some("es")),
            other => panic!("{other:?}"),
        }
        let repeated = CsrfForm::from_request(request("tenantry_csrf=t1", "csrf=t1&csrf=t1"), &()).await;
        assert!(matches!(repeated, Err(CsrfRejection::Refused(None))));
    }
}
