//! `Authorization: Bearer <token>` (RFC 6750 2.1): the one parser for every caller that
//! takes a bearer token (the admin API, the `/v1/auth` calls for "me", UserInfo).
//!
//! The scheme is matched case-insensitively (RFC 9110 11.1: `Bearer`, `bearer`, `BEARER`),
//! then one or more spaces, then the token, which must be a `b64token` (RFC 6750 2.1).
//! What a request presents is one of three things, and every caller answers them alike:
//! - no `Authorization` header, or one of another scheme: no bearer credentials — 401
//!   with a bare challenge, no error code (RFC 6750 3.1);
//! - a `Bearer` header whose token is missing or not a `b64token`, or a header that is not
//!   text: a malformed request — 400 with `error="invalid_request"`;
//! - a well-formed token, which the caller then checks (401 `invalid_token` when it is not
//!   good).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ErrorCode};

/// A well-formed bearer token from the `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bearer(pub String);

/// Why a request has no usable bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerRejection {
    /// No `Authorization` header, or one of another scheme.
    Missing,
    /// A malformed `Authorization` header; the text says what is wrong.
    Malformed(&'static str),
}

impl Bearer {
    /// The request's bearer token: `Ok(None)` without one (no header, or another scheme).
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Bearer>, BearerRejection> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Ok(None);
        };
        let value = value
            .to_str()
            .map_err(|_| BearerRejection::Malformed("the Authorization header is not valid text"))?;
        parse(value).map(|token| token.map(|t| Bearer(t.to_owned())))
    }

    /// The request's bearer token, which it must have.
    pub fn required(headers: &HeaderMap) -> Result<Bearer, BearerRejection> {
        Bearer::from_headers(headers)?.ok_or(BearerRejection::Missing)
    }
}

/// Parses one `Authorization` header value: the token of a `Bearer` credential, `None` for
/// another scheme.
fn parse(value: &str) -> Result<Option<&str>, BearerRejection> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    let token = rest.trim_start_matches(' ');
    if token.is_empty() {
        return Err(BearerRejection::Malformed("the Bearer token is empty"));
    }
    if !is_b64token(token) {
        return Err(BearerRejection::Malformed("the Bearer token is malformed"));
    }
    Ok(Some(token))
}

/// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
}

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = BearerRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Bearer::required(&parts.headers)
    }
}

/// A `WWW-Authenticate` challenge: `Bearer`, with the realm and error code when given.
pub fn challenge(realm: Option<&str>, error: Option<&str>) -> String {
    let params: Vec<String> = realm
        .map(|r| format!("realm=\"{r}\""))
        .into_iter()
        .chain(error.map(|e| format!("error=\"{e}\"")))
        .collect();
    if params.is_empty() {
        "Bearer".to_owned()
    } else {
        format!("Bearer {}", params.join(", "))
    }
}

impl BearerRejection {
    /// The REST and admin APIs' answer (problem+json): 401 `unauthorized` with a bare
    /// challenge and `missing` as the detail, or 400 `bad_request` with
    /// `error="invalid_request"`.
    pub fn into_problem(self, realm: Option<&str>, missing: &str) -> ApiError {
        let (mut problem, error) = match self {
            BearerRejection::Missing => (ApiError::new(ErrorCode::Unauthorized, missing), None),
            BearerRejection::Malformed(why) => (ApiError::new(ErrorCode::BadRequest, why), Some("invalid_request")),
        };
        problem.challenge = Some(challenge(realm, error));
        problem
    }
}

/// Without a surface of its own: the REST answer without a realm.
impl IntoResponse for BearerRejection {
    fn into_response(self) -> Response {
        self.into_problem(None, "send the token as `Authorization: Bearer <token>`")
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_is_case_insensitive() {
        for value in [
            "Bearer abc",
            "bearer abc",
            "BEARER abc",
            "bEaReR abc",
            "Bearer   abc ",
            " Bearer abc",
        ] {
            assert_eq!(parse(value), Ok(Some("abc")), "{value:?}");
        }
    }

    #[test]
    fn other_schemes_are_no_bearer_token() {
        for value in ["Basic YTpi", "Bearerabc", "Token abc", "", "Digest x=y"] {
            assert_eq!(parse(value), Ok(None), "{value:?}");
        }
    }

    #[test]
    fn a_bearer_without_a_well_formed_token_is_malformed() {
        for value in [
            "Bearer",
            "Bearer ",
            "bearer   ",
            "Bearer a b",
            "Bearer a\"b",
            "Bearer ===",
            "Bearer a,b",
        ] {
            assert!(matches!(parse(value), Err(BearerRejection::Malformed(_))), "{value:?}");
        }
    }

    #[test]
    fn b64token_characters_and_padding_are_accepted() {
        for token in ["eyJhbGciOi.eyJzdWIi.c2ln", "a-b_c~d+e/f", "abc==", "tnt_AbC-123"] {
            assert_eq!(parse(&format!("Bearer {token}")), Ok(Some(token)), "{token}");
        }
    }

    #[test]
    fn challenges_carry_realm_and_error_when_given() {
        assert_eq!(challenge(None, None), "Bearer");
        assert_eq!(challenge(None, Some("invalid_token")), "Bearer error=\"invalid_token\"");
        assert_eq!(
            challenge(Some("tenantry-admin"), Some("invalid_request")),
            "Bearer realm=\"tenantry-admin\", error=\"invalid_request\""
        );
        let problem = BearerRejection::Malformed("x").into_problem(None, "send a token");
        assert_eq!(problem.code, ErrorCode::BadRequest);
        let problem = BearerRejection::Missing.into_problem(Some("r"), "send a token");
        assert_eq!(
            (problem.code, problem.challenge.as_deref()),
            (ErrorCode::Unauthorized, Some("Bearer realm=\"r\""))
        );
    }
}
