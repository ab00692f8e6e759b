//! Request quotas over HTTP (the rules are `tenantry_accounts::quotas`): the route layer
//! that counts a request against its tenant's quota before the handler runs, the hook a
//! handler uses to count it against its client's quota, and the headers that report both.
//!
//! Every response of an endpoint under a quota says where the caller stands, in the
//! IETF draft's fields (draft-ietf-httpapi-ratelimit-headers: `RateLimit-Policy` and
//! `RateLimit`) and in the older `RateLimit-Limit` / `-Remaining` / `-Reset` triple most
//! clients read; with a tenant and a client quota both counting, the one closer to
//! refusing is reported. A refusal is 429 with `Retry-After`: an RFC 6749 error on the
//! token, revocation and introspection endpoints, problem+json elsewhere.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tenantry_accounts::quotas::{self, Endpoint, QuotaError, QuotaState, Scope};
use tenantry_accounts::ratelimit::RateLimiter;
use tenantry_controlplane::model::{Client, Tenant};
use tenantry_tenancy::TenantContext;

use crate::web::OAuthError;

/// What the route layer needs: the counters, and which quota its routes count against.
#[derive(Clone)]
pub struct QuotaLayer {
    pub limiter: RateLimiter,
    pub endpoint: Endpoint,
}

/// Route layer (inside the tenant middleware): counts the request against the tenant's
/// quota, refuses it when that is used up, and writes the quota headers on the answer.
pub async fn tenant_quota(State(layer): State<QuotaLayer>, request: Request, next: Next) -> Response {
    let Some(tenant) = request.extensions().get::<TenantContext>().map(|ctx| ctx.entry.clone()) else {
        return next.run(request).await;
    };
    guard(&layer.limiter, &tenant.tenant, layer.endpoint, request, next).await
}

/// Counts `request` against `tenant`'s quota for `endpoint`, then runs it (the admin gate
/// calls this once it knows the tenant a route is for).
pub async fn guard(
    limiter: &RateLimiter,
    tenant: &Tenant,
    endpoint: Endpoint,
    request: Request,
    next: Next,
) -> Response {
    let tenant_state = match quotas::admit_tenant(limiter, tenant, endpoint).await {
        Ok(state) => state,
        Err(e) => return refusal(endpoint, e),
    };
    let mut response = next.run(request).await;
    let client_state = response.extensions_mut().remove::<QuotaState>();
    if let Some(state) = QuotaState::tighter(tenant_state, client_state) {
        write_headers(response.headers_mut(), &state);
    }
    response
}

/// A handler's count against its client's quota. Hold one per request, call
/// [`admit`](Self::admit) once the client is known, and [`attach`](Self::attach) the
/// result to the answer so the route layer can report it.
#[derive(Debug, Default)]
pub struct ClientQuota {
    counted: Option<QuotaState>,
}

impl ClientQuota {
    /// Counts one request of `client`: `Ok` when admitted (or it has no quota), else the
    /// refusal. A refusal is remembered too, for its headers.
    pub async fn admit(
        &mut self,
        limiter: &RateLimiter,
        tenant: &Tenant,
        client: &Client,
        endpoint: Endpoint,
    ) -> Result<(), QuotaError> {
        match quotas::admit_client(limiter, tenant, client, endpoint).await {
            Ok(state) => {
                self.counted = state;
                Ok(())
            }
            Err(e) => {
                if let QuotaError::Exceeded(state) = &e {
                    self.counted = Some(*state);
                }
                Err(e)
            }
        }
    }

    /// [`admit`](Self::admit) for the OAuth endpoints, whose refusals are RFC 6749 errors.
    pub async fn admit_oauth(
        &mut self,
        limiter: &RateLimiter,
        tenant: &Tenant,
        client: &Client,
        endpoint: Endpoint,
    ) -> Result<(), OAuthError> {
        self.admit(limiter, tenant, client, endpoint)
            .await
            .map_err(oauth_refusal)
    }

    /// Hands the count to the route layer, which writes the headers.
    pub fn attach(self, mut response: Response) -> Response {
        if let Some(state) = self.counted {
            response.extensions_mut().insert(state);
        }
        response
    }
}

/// The OAuth endpoints' shape of a refusal.
fn oauth_refusal(e: QuotaError) -> OAuthError {
    match e {
        QuotaError::Exceeded(state) => {
            OAuthError::quota_exceeded(QuotaError::Exceeded(state).description(), state.retry_after_secs())
        }
        unavailable => OAuthError::from(unavailable.into_problem()),
    }
}

/// A refusal by the route layer, with its headers.
fn refusal(endpoint: Endpoint, e: QuotaError) -> Response {
    let exceeded = match &e {
        QuotaError::Exceeded(state) => Some(*state),
        QuotaError::Unavailable(_) => None,
    };
    let mut response = match endpoint {
        Endpoint::Token | Endpoint::Introspection => oauth_refusal(e).into_response(),
        _ => e.into_problem().into_response(),
    };
    if let Some(state) = exceeded {
        write_headers(response.headers_mut(), &state);
    }
    response
}

const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// The headers a quota answer carries, `Retry-After` included: what CORS must expose so a
/// browser app can read them.
pub const QUOTA_HEADERS: [HeaderName; 6] = [
    RATELIMIT,
    RATELIMIT_POLICY,
    RATELIMIT_LIMIT,
    RATELIMIT_REMAINING,
    RATELIMIT_RESET,
    axum::http::header::RETRY_AFTER,
];

fn write_headers(headers: &mut HeaderMap, state: &QuotaState) {
    let policy = match state.scope {
        Scope::Tenant => "tenant",
        Scope::Client => "client",
    };
    let window = state.window.as_secs();
    let reset = state.retry_after_secs();
    let mut put = |name: HeaderName, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    put(RATELIMIT_POLICY, format!("\"{policy}\";q={};w={window}", state.limit));
    put(RATELIMIT, format!("\"{policy}\";r={};t={reset}", state.remaining));
    put(RATELIMIT_LIMIT, state.limit.to_string());
    put(RATELIMIT_REMAINING, state.remaining.to_string());
    put(RATELIMIT_RESET, reset.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn headers_name_the_policy_and_what_is_left() {
        let mut headers = HeaderMap::new();
        let state = QuotaState {
            scope: Scope::Client,
            endpoint: Endpoint::Token,
            limit: 50,
            remaining: 7,
            reset: Duration::from_millis(12_300),
            window: Duration::from_secs(60),
        };
        write_headers(&mut headers, &state);
        assert_eq!(headers["ratelimit-policy"], "\"client\";q=50;w=60");
        assert_eq!(headers["ratelimit"], "\"client\";r=7;t=13");
        assert_eq!(headers["ratelimit-limit"], "50");
        assert_eq!(headers["ratelimit-remaining"], "7");
        assert_eq!(headers["ratelimit-reset"], "13");
    }
}
