//! Tenantry's sign-in through upstream identity providers (federation): "sign in with
//! Google / our corporate IdP" for a tenant's users.
//!
//! [`upstream`] is the relying-party side of the code flow on the `openidconnect` crate
//! (discovery and JWKS under the installation's outbound policy, PKCE S256, `state`,
//! `nonce`, RFC 9207 `iss`, client secret or `private_key_jwt`, ID token validation,
//! userinfo, Microsoft's multi-tenant issuers); `github` is GitHub's plain OAuth 2.0 and
//! user API on the `oauth2` crate. [`account`] maps the upstream identity
//! that comes back to one account of the tenant (linked, linked by a verified email,
//! created just in time, or to be proven first). The result is the accounts crate's one
//! `Authentication` (method `Upstream`), which the HTTP crate opens a session for like any
//! other login. This crate reads no request and writes no response.

pub mod account;
mod fetch;
mod github;
pub mod upstream;

pub use upstream::{Callback, ClientCredentials, Pending, Protocol, UpstreamError, UpstreamIdentity, Upstreams};

use tenantry_errors::{ApiError, ErrorCode};

impl From<UpstreamError> for ApiError {
    fn from(e: UpstreamError) -> Self {
        let code = match &e {
            UpstreamError::Refused(_) | UpstreamError::Unreachable(_) | UpstreamError::BadAnswer(_) => {
                ErrorCode::UpstreamUnavailable
            }
            UpstreamError::Denied(_) => ErrorCode::UpstreamRefused,
            UpstreamError::Mixup | UpstreamError::Invalid(_) => ErrorCode::UpstreamInvalidResponse,
        };
        ApiError::new(code, e.to_string())
    }
}
