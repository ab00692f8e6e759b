//! The hosted pages' cookies, each scoped to its tenant's path (`/t/{slug}`), so one
//! tenant's login never shows up at another: the login session, the trusted device and
//! the CSRF token. All are `HttpOnly` and `SameSite=Lax`, and `Secure` when the public
//! URL is https.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;

use crate::state::AppState;
use tenantry_tenancy::TenantContext;

/// Name of the login session cookie.
pub const SESSION_COOKIE: &str = "tenantry_session";
/// Name of the trusted-device cookie (after "don't ask again on this device").
pub const DEVICE_COOKIE: &str = "tenantry_device";
/// Name of the CSRF cookie ([`csrf`](super::csrf)).
pub const CSRF_COOKIE: &str = "tenantry_csrf";

/// A cookie value from the request (an empty value counts as absent).
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

/// `Set-Cookie` for a cookie of the request's tenant: its path, `HttpOnly`,
/// `SameSite=Lax`, `Secure` on https, and `Max-Age` when given (0 deletes it).
pub fn cookie_header(state: &AppState, ctx: &TenantContext, name: &str, value: &str, max_age: Option<i64>) -> String {
    let path = format!("/t/{}", ctx.slug());
    let mut cookie = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Lax");
    if state.public_url.scheme() == "https" {
        cookie.push_str("; Secure");
    }
    if let Some(age) = max_age {
        cookie.push_str(&format!("; Max-Age={age}"));
    }
    cookie
}

/// Adds a [`cookie_header`] to `response`.
pub fn set_cookie(
    response: &mut Response,
    state: &AppState,
    ctx: &TenantContext,
    name: &str,
    value: &str,
    max_age: Option<i64>,
) {
    if let Ok(value) = HeaderValue::from_str(&cookie_header(state, ctx, name, value, max_age)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name_and_empty_is_absent() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; tenantry_csrf=x"));
        headers.append(header::COOKIE, HeaderValue::from_static("tenantry_session=; b=2"));
        assert_eq!(cookie(&headers, CSRF_COOKIE).as_deref(), Some("x"));
        assert_eq!(cookie(&headers, "b").as_deref(), Some("2"));
        assert_eq!(cookie(&headers, SESSION_COOKIE), None);
        assert_eq!(cookie(&headers, "tenantry"), None);
    }
}
