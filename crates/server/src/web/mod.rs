//! The HTTP rules every surface shares, each written once: request extractors (JSON
//! bodies, admin authentication, the client's address), the `Authorization: Bearer`
//! parser (RFC 6750), the tenant middleware, the tenant-scoped cookies of the hosted
//! pages and their CSRF-checked forms and custom-field inputs, the RFC 6749 error answer of the OAuth
//! endpoints, and request quotas with their headers.
//! Route modules use these and never each other.

pub mod admin;
pub mod bearer;
pub mod cookies;
pub mod csrf;
pub mod custom_fields;
pub mod extract;
pub mod oauth_error;
pub mod page;
pub mod quota;
pub mod tenant;

pub use admin::AdminAuth;
pub use bearer::{Bearer, BearerRejection};
pub use cookies::{CSRF_COOKIE, DEVICE_COOKIE, SESSION_COOKIE, cookie, cookie_header, set_cookie};
pub use csrf::{CsrfForm, CsrfRejection};
pub use extract::{ApiJson, ClientIp, OptionalApiJson, RequestId, SessionOrigin};
pub use oauth_error::OAuthError;
pub use page::{Page, PageParams, PageQuery};
