//! The stable error catalogue and [`ApiError`], the one error value the services below the
//! HTTP crate return.
//!
//! Every error the REST and admin APIs can answer is an [`ErrorCode`] with its HTTP status
//! and title; the catalogue in `docs/errors.md` lists them all (a test keeps the two in
//! step). The HTTP crate turns an [`ApiError`] into RFC 9457 problem+json (the `axum`
//! feature, which no service enables). OAuth endpoints answer RFC 6749 error JSON instead:
//! [`OAuthError`].
//!
//! This crate owns codes and their meaning; it must never decide what a request may do.

mod oauth;

use http::StatusCode;

pub use oauth::OAuthError;
use tenantry_controlplane::{FieldError, Rejection, ValidationErrors, WriteError};

macro_rules! error_codes {
    ($($variant:ident = ($status:ident, $code:literal, $title:literal),)*) => {
        /// A stable error code, its HTTP status and its title.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorCode { $($variant,)* }

        impl ErrorCode {
            /// Every code, in catalogue order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            pub fn status(self) -> StatusCode {
                match self { $(ErrorCode::$variant => StatusCode::$status,)* }
            }

            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            pub fn title(self) -> &'static str {
                match self { $(ErrorCode::$variant => $title,)* }
            }
        }
    };
}

error_codes! {
    BadRequest = (BAD_REQUEST, "bad_request", "The request is malformed"),
    InvalidJson = (BAD_REQUEST, "invalid_json", "The body is not the JSON this endpoint expects"),
    TenantRequired = (BAD_REQUEST, "tenant_required", "No tenant was named and there is no default tenant"),
    Unauthorized = (UNAUTHORIZED, "unauthorized", "Authentication is required"),
    InvalidCredentials = (UNAUTHORIZED, "invalid_credentials", "The email or password is not correct"),
    InvalidMfaCode = (UNAUTHORIZED, "invalid_mfa_code", "The second-factor code is not valid"),
    PasskeyRefused = (UNAUTHORIZED, "passkey_refused", "The passkey was not accepted"),
    PasskeyInvalid = (BAD_REQUEST, "passkey_invalid", "The new passkey could not be verified"),
    InvalidGrant = (BAD_REQUEST, "invalid_grant", "The token or grant is invalid, expired or revoked"),
    InvalidScope = (BAD_REQUEST, "invalid_scope", "A requested scope is not allowed"),
    InvalidClient = (BAD_REQUEST, "invalid_client", "Unknown client, or one that may not use this endpoint"),
    Forbidden = (FORBIDDEN, "forbidden", "The credential may not do this"),
    EmailNotVerified = (FORBIDDEN, "email_not_verified", "The email address must be verified before login"),
    RegistrationDisabled = (FORBIDDEN, "registration_disabled", "The tenant does not allow self-registration"),
    PasswordChangeRequired = (FORBIDDEN, "password_change_required", "The password is a one-time password; choose a new one"),
    MfaEnrollmentRequired = (FORBIDDEN, "mfa_enrollment_required", "A second factor must be set up before signing in"),
    MfaRequired = (UNAUTHORIZED, "mfa_required", "A second-factor code is required"),
    ReauthenticationRequired = (FORBIDDEN, "reauthentication_required", "This change needs a fresh proof: the current password or a second-factor code"),
    AccountLocked = (TOO_MANY_REQUESTS, "account_locked", "Too many failed attempts; the account is locked for a while"),
    EmailTaken = (CONFLICT, "email_taken", "An account with this email already exists"),
    MfaAlreadyEnabled = (CONFLICT, "mfa_already_enabled", "A second factor is already enabled for this account"),
    EmailAlreadyVerified = (CONFLICT, "email_already_verified", "The account's email address is already verified"),
    UserDisabled = (CONFLICT, "user_disabled", "The user is disabled"),
    NotFound = (NOT_FOUND, "not_found", "No such resource"),
    TenantNotFound = (NOT_FOUND, "tenant_not_found", "Unknown tenant"),
    MethodNotAllowed = (METHOD_NOT_ALLOWED, "method_not_allowed", "Method not allowed on this resource"),
    RequestTimeout = (REQUEST_TIMEOUT, "request_timeout", "The request took too long"),
    TenantExists = (CONFLICT, "tenant_exists", "A tenant with this slug already exists"),
    AlreadyExists = (CONFLICT, "already_exists", "The resource already exists"),
    ClientExists = (CONFLICT, "client_exists", "A client with this id already exists in the tenant"),
    PreconditionRequired = (PRECONDITION_REQUIRED, "precondition_required", "This change needs an If-Match header with the resource's current ETag"),
    PreconditionFailed = (PRECONDITION_FAILED, "precondition_failed", "The resource changed since the version named in If-Match; read it again"),
    Conflict = (CONFLICT, "conflict", "The request does not fit the resource's current state"),
    LastGlobalAdmin = (CONFLICT, "last_global_admin", "The installation must keep at least one global read-write admin"),
    ClientChanged = (CONFLICT, "client_changed", "The client was changed by another request; read it again and retry"),
    KeyActive = (CONFLICT, "key_active", "An active signing key cannot be retired"),
    TenantDbNotConfigured = (CONFLICT, "tenant_db_not_configured", "The tenant has no user database configured"),
    ImportVersionUnsupported = (CONFLICT, "import_version_unsupported", "The document was written by a newer Tenantry than this installation reads"),
    CustomFieldDuplicates = (CONFLICT, "custom_field_duplicates", "Existing values of the custom field repeat, so it cannot be unique"),
    PayloadTooLarge = (PAYLOAD_TOO_LARGE, "payload_too_large", "The request body is too large"),
    UnsupportedMediaType = (UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "The body must be application/json"),
    ValidationFailed = (UNPROCESSABLE_ENTITY, "validation_failed", "The request has invalid values"),
    TransferKeyMismatch = (UNPROCESSABLE_ENTITY, "transfer_key_mismatch", "The document's credentials are sealed for another installation's transfer key"),
    RateLimited = (TOO_MANY_REQUESTS, "rate_limited", "Too many requests"),
    QuotaExceeded = (TOO_MANY_REQUESTS, "quota_exceeded", "The request quota of the tenant or client is used up for now"),
    InternalError = (INTERNAL_SERVER_ERROR, "internal_error", "Internal server error"),
    EmailNotConfigured = (NOT_IMPLEMENTED, "email_not_configured", "The tenant has no email (SMTP) settings"),
    GlobalDbNotConfigured = (NOT_IMPLEMENTED, "global_db_not_configured", "This installation has no global database"),
    EmailSendFailed = (BAD_GATEWAY, "email_send_failed", "The mail server did not accept the message"),
    TenantDegraded = (SERVICE_UNAVAILABLE, "tenant_degraded", "The tenant's configuration does not load"),
    TenantDbUnavailable = (SERVICE_UNAVAILABLE, "tenant_db_unavailable", "The tenant's user database is unreachable"),
    TenantDbOwnedByOtherTenant = (SERVICE_UNAVAILABLE, "tenant_db_owned_by_other_tenant", "The tenant's user database belongs to another tenant"),
    PasswordDenyListMissing = (SERVICE_UNAVAILABLE, "password_deny_list_missing", "The tenant's password deny-list is not configured on this installation"),
    TenantKeysMissing = (SERVICE_UNAVAILABLE, "tenant_keys_missing", "The tenant has no usable signing key"),
    NotLeader = (SERVICE_UNAVAILABLE, "not_leader", "This node cannot accept writes and could not forward them"),
    NoLeader = (SERVICE_UNAVAILABLE, "no_leader", "No cluster leader is known to take the change"),
    ControlPlaneUnavailable = (SERVICE_UNAVAILABLE, "control_plane_unavailable", "The configuration store could not be written"),
    Overloaded = (SERVICE_UNAVAILABLE, "overloaded", "The server is busy; retry later"),
    RateLimiterUnavailable = (SERVICE_UNAVAILABLE, "rate_limiter_unavailable", "The rate-limit store is unreachable"),
    UpstreamUnknown = (NOT_FOUND, "upstream_unknown", "No such upstream identity provider in this tenant, or it is disabled"),
    UpstreamUnavailable = (BAD_GATEWAY, "upstream_unavailable", "The upstream identity provider could not be reached or answered with something unusable"),
    UpstreamRefused = (FORBIDDEN, "upstream_refused", "The upstream identity provider did not sign the user in"),
    UpstreamInvalidResponse = (BAD_REQUEST, "upstream_invalid_response", "The answer from the upstream identity provider failed validation"),
    LastWayIn = (CONFLICT, "last_way_in", "The account's last way to sign in cannot be removed"),
}

/// An error answered as `application/problem+json`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub detail: String,
    pub errors: Vec<FieldError>,
    /// `WWW-Authenticate` challenge for 401 answers.
    pub challenge: Option<String>,
    /// `Retry-After` in seconds (429 and 503 answers that know when to come back).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            errors: Vec::new(),
            challenge: None,
            retry_after: None,
        }
    }

    /// Sets the `Retry-After` header (seconds; at least 1, so a client never retries at once).
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs.max(1));
        self
    }

    /// 429 `rate_limited`: the caller may try again after `retry_after_secs`.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self::new(ErrorCode::RateLimited, "too many attempts; wait before trying again")
            .with_retry_after(retry_after_secs)
    }

    /// 503 `overloaded`: shed before doing expensive work.
    pub fn overloaded(retry_after_secs: u64) -> Self {
        Self::new(ErrorCode::Overloaded, "the server is busy; retry later").with_retry_after(retry_after_secs)
    }

    pub fn validation(errors: ValidationErrors) -> Self {
        Self {
            errors: errors.0,
            ..Self::new(ErrorCode::ValidationFailed, "one or more fields are invalid")
        }
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::validation(ValidationErrors(vec![FieldError {
            field: field.into(),
            message: message.into(),
        }]))
    }

    pub fn internal() -> Self {
        Self::new(
            ErrorCode::InternalError,
            "an unexpected error occurred; see the server log with the request id",
        )
    }

    pub fn tenant_not_found(slug: &str) -> Self {
        Self::new(ErrorCode::TenantNotFound, format!("no tenant `{}`", printable(slug)))
    }
}

/// Keeps user-supplied text short and single-line inside error details.
pub fn printable(value: &str) -> String {
    value.chars().filter(|c| !c.is_control()).take(80).collect()
}

/// A body that is JSON but not of the expected shape, as 422 `validation_failed` naming
/// the field by its dotted path under `root` (`settings.smtp.from`, `redirect_uris[2]`).
/// For an unknown key serde's path ends at the object that holds it, so the key is added.
pub fn json_shape_error(root: &str, e: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let mut path = String::from(root);
    for segment in e.path().iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => path.push_str(&format!("[{index}]")),
            serde_path_to_error::Segment::Map { key } | serde_path_to_error::Segment::Enum { variant: key } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&printable(key));
            }
            serde_path_to_error::Segment::Unknown => {}
        }
    }
    let inner = e.inner().to_string();
    // serde_json appends " at line L column C" for text input; a Value has none.
    let message = inner.split(" at line ").next().unwrap_or(&inner).to_owned();
    if let Some(unknown) = message
        .strip_prefix("unknown field `")
        .and_then(|m| m.split('`').next())
        && !path.ends_with(&format!(".{unknown}"))
        && path != unknown
    {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(&printable(unknown));
    }
    if path.is_empty() {
        path.push_str("body");
    }
    ApiError::field(&path, printable_message(&message))
}

/// serde's message, bounded (it can quote input).
fn printable_message(message: &str) -> String {
    message.chars().filter(|c| !c.is_control()).take(300).collect()
}

/// RFC 9457 problem+json answers, for the HTTP crate.
#[cfg(feature = "axum")]
mod response {
    use axum::Json;
    use axum::http::{HeaderValue, header};
    use axum::response::{IntoResponse, Response};
    use tenantry_controlplane::FieldError;

    use super::ApiError;

    #[derive(serde::Serialize)]
    struct Problem<'a> {
        #[serde(rename = "type")]
        type_uri: String,
        title: &'a str,
        status: u16,
        detail: &'a str,
        code: &'a str,
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        errors: &'a [FieldError],
    }

    impl IntoResponse for ApiError {
        fn into_response(self) -> Response {
            let status = self.code.status();
            let body = Problem {
                type_uri: format!("urn:tenantry:error:{}", self.code.as_str()),
                title: self.code.title(),
                status: status.as_u16(),
                detail: &self.detail,
                code: self.code.as_str(),
                errors: &self.errors,
            };
            let mut response = (status, Json(body)).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            );
            if let Some(challenge) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
                headers.insert(header::WWW_AUTHENTICATE, challenge);
            }
            if let Some(secs) = self.retry_after {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            response
        }
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        match r {
            Rejection::TenantExists(slug) => {
                ApiError::new(ErrorCode::TenantExists, format!("tenant `{slug}` already exists"))
            }
            Rejection::TenantNotFound(slug) => ApiError::tenant_not_found(&slug),
            Rejection::TenantDegraded(slug) => ApiError::new(
                ErrorCode::TenantDegraded,
                format!("tenant `{slug}` is degraded: its control-plane files do not load"),
            ),
            Rejection::NotFound { kind, id } => {
                ApiError::new(ErrorCode::NotFound, format!("no {kind} `{}`", printable(&id)))
            }
            Rejection::ClientExists(id) => ApiError::new(
                ErrorCode::ClientExists,
                format!("client `{}` already exists", printable(&id)),
            ),
            Rejection::Exists { kind, id } => ApiError::new(
                ErrorCode::AlreadyExists,
                format!("{kind} `{}` already exists", printable(&id)),
            ),
            Rejection::ClientChanged(id) => ApiError::new(
                ErrorCode::ClientChanged,
                format!(
                    "client `{}` was changed by another request; read it again",
                    printable(&id)
                ),
            ),
            Rejection::TenantChanged(slug) => ApiError::new(
                ErrorCode::PreconditionFailed,
                format!("tenant `{slug}` changed since the version named in If-Match; read it again"),
            ),
            Rejection::RingChanged(owner) => ApiError::new(
                ErrorCode::Conflict,
                format!(
                    "the key ring of `{}` changed since it was read; try again",
                    printable(&owner)
                ),
            ),
            Rejection::Spent(what) => ApiError::new(ErrorCode::InvalidGrant, format!("{what} was already used")),
            Rejection::Immutable(field) => ApiError::field(field, "cannot be changed"),
            Rejection::Invalid(errors) => ApiError::validation(errors),
            Rejection::KeyRing(e) => {
                use tenantry_controlplane::model::KeyRingError;
                match e {
                    KeyRingError::UnknownKey(kid) => {
                        ApiError::new(ErrorCode::NotFound, format!("no key `{}`", printable(&kid)))
                    }
                    KeyRingError::KeyActive(_) => ApiError::new(ErrorCode::KeyActive, e.to_string()),
                    other => ApiError::field("keys", other.to_string()),
                }
            }
        }
    }
}

impl From<tenantry_dataplane::DbError> for ApiError {
    fn from(e: tenantry_dataplane::DbError) -> Self {
        use tenantry_dataplane::DbError;
        match e {
            DbError::NotConfigured => ApiError::new(
                ErrorCode::TenantDbNotConfigured,
                "configure settings.user_db for this tenant",
            ),
            DbError::Unavailable(tenantry_dataplane::ErrorKind::OwnedByOtherTenant) => ApiError::new(
                ErrorCode::TenantDbOwnedByOtherTenant,
                "the database named by settings.user_db is stamped for another tenant; an administrator can adopt it \
                 (POST /v1/admin/tenants/{slug}/database/adopt) or point settings.user_db at another database",
            ),
            // The manager retries after a backoff; TenantContext::db sets the exact wait.
            DbError::Unavailable(kind) => ApiError::new(
                ErrorCode::TenantDbUnavailable,
                format!("the tenant database is unavailable ({kind})"),
            )
            .with_retry_after(1),
            DbError::Conflict(what) => ApiError::field("database", format!("conflict: {what}")),
            DbError::Invalid(message) => ApiError::field("database", message),
            DbError::InvalidFields(errors) => ApiError::validation(ValidationErrors(errors)),
            DbError::Query(kind) => {
                static THROTTLE: crate::LogThrottle = crate::LogThrottle::new(std::time::Duration::from_secs(1));
                if let Some(suppressed) = THROTTLE.allow() {
                    tracing::error!(kind = kind.as_str(), suppressed, "tenant database query failed");
                }
                ApiError::new(
                    ErrorCode::TenantDbUnavailable,
                    format!("a tenant database query failed ({kind})"),
                )
                .with_retry_after(1)
            }
        }
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Rejected(r) => r.into(),
            WriteError::NoLeader => ApiError::new(
                ErrorCode::NoLeader,
                "no cluster leader is known to take this change; nothing was changed",
            )
            .with_retry_after(1),
            WriteError::Storage(message) => {
                tracing::error!(error = %message, "control-plane write failed");
                ApiError::new(
                    ErrorCode::ControlPlaneUnavailable,
                    "the change could not be stored; nothing was changed",
                )
            }
        }
    }
}

/// Lets a repeating log line through at most once per `every`, counting what it held
/// back, so a fault that repeats on every request (a dead database under load, accept
/// failing with EMFILE) is reported without flooding the log.
pub struct LogThrottle {
    every: std::time::Duration,
    state: std::sync::Mutex<(Option<std::time::Instant>, u64)>,
}

impl LogThrottle {
    pub const fn new(every: std::time::Duration) -> Self {
        Self {
            every,
            state: std::sync::Mutex::new((None, 0)),
        }
    }

    /// `Some(held back since the last line)` when a line may be written now.
    pub fn allow(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        if state.0.is_some_and(|last| now.duration_since(last) < self.every) {
            state.1 += 1;
            return None;
        }
        let suppressed = state.1;
        *state = (Some(now), 0);
        Some(suppressed)
    }
}

/// The problem that stands for a bare error status produced by a layer (timeouts, body
/// limits, unmatched methods) so every error body has the same shape.
pub fn for_status(status: StatusCode) -> ApiError {
    let code = ErrorCode::ALL
        .iter()
        .copied()
        // Codes that name one cause are never what a bare status from a layer means.
        .find(|c| {
            c.status() == status
                && !matches!(
                    c,
                    ErrorCode::EmailSendFailed
                        | ErrorCode::AccountLocked
                        | ErrorCode::UpstreamUnknown
                        | ErrorCode::UpstreamUnavailable
                )
        })
        .unwrap_or(if status.is_server_error() {
            ErrorCode::InternalError
        } else {
            ErrorCode::BadRequest
        });
    ApiError::new(code, code.title().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_documented_in_the_catalogue() {
        let doc = include_str!("../../../docs/errors.md");
        for code in ErrorCode::ALL {
            let row = format!("| `{}` | {} |", code.as_str(), code.status().as_u16());
            assert!(doc.contains(&row), "docs/errors.md lacks the row starting {row}");
        }
    }

    #[test]
    fn codes_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "{} twice", code.as_str());
        }
    }

    #[test]
    fn bare_statuses_map_to_their_codes() {
        assert_eq!(
            for_status(StatusCode::PAYLOAD_TOO_LARGE).code,
            ErrorCode::PayloadTooLarge
        );
        assert_eq!(
            for_status(StatusCode::METHOD_NOT_ALLOWED).code,
            ErrorCode::MethodNotAllowed
        );
        assert_eq!(for_status(StatusCode::IM_A_TEAPOT).code, ErrorCode::BadRequest);
        assert_eq!(for_status(StatusCode::TOO_MANY_REQUESTS).code, ErrorCode::RateLimited);
        // A bare 503 keeps meaning what it meant before `overloaded` existed.
        assert_eq!(
            for_status(StatusCode::SERVICE_UNAVAILABLE).code,
            ErrorCode::TenantDegraded
        );
        // A bare 502 from a layer is not a mail failure.
        assert_eq!(for_status(StatusCode::BAD_GATEWAY).code, ErrorCode::InternalError);
        // Nor is a bare 404 an unknown upstream provider.
        assert_eq!(for_status(StatusCode::NOT_FOUND).code, ErrorCode::NotFound);
    }

    #[test]
    fn database_unavailability_says_when_to_come_back() {
        // An unusable tenant database tells when to come back; one owned by another
        // tenant does not heal by waiting.
        use tenantry_dataplane::{DbError, ErrorKind};
        let unreachable = ApiError::from(DbError::Unavailable(ErrorKind::Unreachable));
        assert_eq!(
            (unreachable.code, unreachable.retry_after),
            (ErrorCode::TenantDbUnavailable, Some(1))
        );
        let owned = ApiError::from(DbError::Unavailable(ErrorKind::OwnedByOtherTenant));
        assert_eq!(
            (owned.code, owned.retry_after),
            (ErrorCode::TenantDbOwnedByOtherTenant, None)
        );
    }

    #[test]
    fn a_throttle_lets_one_line_through_per_period_and_counts_the_rest() {
        let throttle = LogThrottle::new(std::time::Duration::from_secs(3600));
        assert_eq!(throttle.allow(), Some(0));
        for _ in 0..1000 {
            assert_eq!(throttle.allow(), None);
        }
        let open = LogThrottle::new(std::time::Duration::ZERO);
        assert_eq!(open.allow(), Some(0));
        assert_eq!(open.allow(), Some(0));
    }
}
