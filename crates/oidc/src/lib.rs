//! The OpenID Connect and OAuth 2.0 protocol rules of a tenant issuer, without HTTP.
//!
//! What a request may ask and what it gets: the parameter parser of every form and query
//! ([`params`]), authorization-request validation ([`authorize`]), client authentication
//! ([`client_auth`]), the token endpoint's grants, introspection and revocation
//! ([`token_endpoint`], [`grants`]), token issuance and the one access-token check
//! ([`tokens`]), logout and back-channel logout ([`logout`]) under the policy for the
//! server's own outbound calls ([`outbound`]), and when signing keys rotate
//! ([`key_rotation`]). Each rule is written
//! once and unit-tested here (RFC 6749, 7009, 7636, 7662, 9700; OIDC Core).
//!
//! This crate never reads a request or writes a response: the HTTP crate turns bytes into
//! [`params::Params`] and answers what these functions return, including their
//! `tenantry_errors::OAuthError` (RFC 6749 error JSON) and `ApiError` (problem+json).

pub mod authorize;
pub mod client_auth;
pub mod grants;
pub mod key_rotation;
pub mod logout;
pub mod outbound;
pub mod params;
pub mod token_endpoint;
pub mod tokens;

#[cfg(test)]
mod rules_tests;
