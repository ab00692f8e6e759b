//! Request quotas: how many requests of one kind a tenant as a whole, and each of its
//! clients, may make per window (settings `quotas`, client `quotas`). They keep one
//! tenant's flood from eating the capacity every other tenant shares.
//!
//! Quotas count on the [`RateLimiter`]'s store, so they are per node in memory and shared
//! by every node in Redis. A tenant quota is counted before any work is done (the HTTP
//! layer calls [`admit_tenant`] ahead of the handler), so refusing a flood costs one
//! counter increment; a client quota is counted once the client is known — after it has
//! authenticated, where it authenticates — so nobody can spend another client's quota by
//! naming it. A limit left out is no limit and costs nothing.
//!
//! As with the attempt limits, a store that cannot count never answers "allowed":
//! [`QuotaError::Unavailable`].

use std::time::Duration;

use tenantry_controlplane::model::{Client, ClientQuotas, Tenant, TenantQuotas};
use tenantry_errors::{ApiError, ErrorCode};

use crate::ratelimit::{Decision, LimiterError, RateLimiter};

/// A kind of request that has its own quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Token and revocation.
    Token,
    Introspection,
    /// The authorization endpoint and the hosted login steps.
    Authorize,
    Userinfo,
    /// The headless API (`/v1/auth`, `/v1/tenant`).
    AuthApi,
    /// Admin API routes below `/v1/admin/tenants/{slug}`.
    AdminApi,
}

impl Endpoint {
    /// The name used in settings, counter keys and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Token => "token",
            Endpoint::Introspection => "introspection",
            Endpoint::Authorize => "authorize",
            Endpoint::Userinfo => "userinfo",
            Endpoint::AuthApi => "auth_api",
            Endpoint::AdminApi => "admin_api",
        }
    }

    fn tenant_limit(self, q: &TenantQuotas) -> Option<u32> {
        match self {
            Endpoint::Token => q.token,
            Endpoint::Introspection => q.introspection,
            Endpoint::Authorize => q.authorize,
            Endpoint::Userinfo => q.userinfo,
            Endpoint::AuthApi => q.auth_api,
            Endpoint::AdminApi => q.admin_api,
        }
    }

    fn client_limit(self, q: &ClientQuotas) -> Option<u32> {
        match self {
            Endpoint::Token => q.token,
            Endpoint::Introspection => q.introspection,
            Endpoint::Authorize => q.authorize,
            Endpoint::Userinfo => q.userinfo,
            Endpoint::AuthApi | Endpoint::AdminApi => None,
        }
    }
}

/// Whose quota a count was made against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Tenant,
    Client,
}

/// Where a caller stands against one quota after a request was counted (what the
/// `RateLimit` response headers report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaState {
    pub scope: Scope,
    pub endpoint: Endpoint,
    /// Requests allowed per window.
    pub limit: u32,
    /// Requests left in the current window.
    pub remaining: u32,
    /// Until the current window closes.
    pub reset: Duration,
    pub window: Duration,
}

impl QuotaState {
    /// Of two quotas that both apply, the one closer to refusing (the one to report).
    pub fn tighter(a: Option<Self>, b: Option<Self>) -> Option<Self> {
        match (a, b) {
            (Some(a), Some(b)) => Some(if b.remaining < a.remaining { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    /// `Retry-After` seconds: the window's end, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        self.reset.as_millis().div_ceil(1000).max(1) as u64
    }
}

/// Why a request was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuotaError {
    /// The quota is used up until `state.reset` (`state.remaining` is 0).
    Exceeded(QuotaState),
    /// The counter store did not answer.
    Unavailable(LimiterError),
}

impl QuotaError {
    /// The problem+json answer: 429 `quota_exceeded` with `Retry-After`, or the
    /// limiter's 503.
    pub fn into_problem(self) -> ApiError {
        match self {
            QuotaError::Exceeded(state) => ApiError::new(ErrorCode::QuotaExceeded, self_description(&state))
                .with_retry_after(state.retry_after_secs()),
            QuotaError::Unavailable(e) => e.into(),
        }
    }

    /// What the refusal says, for answers in other shapes (RFC 6749 errors).
    pub fn description(&self) -> String {
        match self {
            QuotaError::Exceeded(state) => self_description(state),
            QuotaError::Unavailable(_) => "request quotas cannot be checked right now; retry later".into(),
        }
    }
}

fn self_description(state: &QuotaState) -> String {
    let whose = match state.scope {
        Scope::Tenant => "the tenant's",
        Scope::Client => "this client's",
    };
    format!(
        "{whose} {} quota of {} requests per {} s is used up; retry after {} s",
        state.endpoint.as_str(),
        state.limit,
        state.window.as_secs(),
        state.retry_after_secs()
    )
}

/// Counts one request of `endpoint` against the tenant's quota. `Ok(None)`: the tenant
/// sets no such quota (nothing was counted).
pub async fn admit_tenant(
    limiter: &RateLimiter,
    tenant: &Tenant,
    endpoint: Endpoint,
) -> Result<Option<QuotaState>, QuotaError> {
    let quotas = &tenant.settings.quotas;
    let Some(limit) = endpoint.tenant_limit(&quotas.tenant) else {
        return Ok(None);
    };
    let key = format!("quota:{}:{}", tenant.id, endpoint.as_str());
    count(limiter, &key, Scope::Tenant, endpoint, limit, quotas.window_secs).await
}

/// Counts one request of `endpoint` against `client`'s quota: the client's own limit,
/// else the tenant's `per_client` one. `Ok(None)`: neither sets one.
pub async fn admit_client(
    limiter: &RateLimiter,
    tenant: &Tenant,
    client: &Client,
    endpoint: Endpoint,
) -> Result<Option<QuotaState>, QuotaError> {
    let quotas = &tenant.settings.quotas;
    let Some(limit) = endpoint
        .client_limit(&client.quotas)
        .or_else(|| endpoint.client_limit(&quotas.per_client))
    else {
        return Ok(None);
    };
    // Client ids hold no ':' (validation), so keys cannot collide.
    let key = format!("quota:{}:{}:{}", tenant.id, endpoint.as_str(), client.client_id);
    count(limiter, &key, Scope::Client, endpoint, limit, quotas.window_secs).await
}

async fn count(
    limiter: &RateLimiter,
    key: &str,
    scope: Scope,
    endpoint: Endpoint,
    limit: u32,
    window_secs: u32,
) -> Result<Option<QuotaState>, QuotaError> {
    let window = Duration::from_secs(u64::from(window_secs.max(1)));
    let state = |remaining, reset| QuotaState {
        scope,
        endpoint,
        limit,
        remaining,
        reset,
        window,
    };
    match limiter.hit(key, limit, window).await {
        Ok(Decision::Allowed { remaining }) => Ok(Some(state(remaining, window))),
        Ok(Decision::Limited { retry_after }) => Err(QuotaError::Exceeded(state(0, retry_after))),
        Err(e) => Err(QuotaError::Unavailable(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenantry_controlplane::model::TenantSettings;

    fn tenant(quotas: tenantry_controlplane::model::Quotas) -> Tenant {
        let now = chrono::Utc::now();
        Tenant {
            id: uuid::Uuid::new_v4(),
            slug: "acme".into(),
            display_name: "Acme".into(),
            created_at: now,
            updated_at: now,
            settings: TenantSettings {
                quotas,
                ..TenantSettings::default()
            },
        }
    }

    fn client(id: &str, quotas: ClientQuotas) -> Client {
        let mut client: Client = serde_json::from_value(serde_json::json!({
            "client_id": id, "name": id, "client_type": "confidential",
            "grant_types": ["client_credentials"], "scopes": [],
            "token_endpoint_auth_method": "client_secret_basic",
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}))
        .unwrap();
        client.quotas = quotas;
        client
    }

    #[tokio::test]
    async fn a_tenant_quota_counts_down_then_refuses_until_the_window_ends() {
        let limiter = RateLimiter::in_memory();
        let mut quotas = tenantry_controlplane::model::Quotas::default();
        quotas.tenant.token = Some(3);
        let t = tenant(quotas);
        for left in [2, 1, 0] {
            let state = admit_tenant(&limiter, &t, Endpoint::Token).await.unwrap().unwrap();
            assert_eq!((state.limit, state.remaining, state.scope), (3, left, Scope::Tenant));
        }
        let QuotaError::Exceeded(state) = admit_tenant(&limiter, &t, Endpoint::Token).await.unwrap_err() else {
            panic!("expected a refusal")
        };
        assert_eq!(state.remaining, 0);
        assert!((1..=60).contains(&state.retry_after_secs()));
        let problem = QuotaError::Exceeded(state).into_problem();
        assert_eq!(problem.code, ErrorCode::QuotaExceeded);
        assert!(problem.retry_after.is_some());
        // Other kinds of request, and other tenants, count on their own.
        assert_eq!(admit_tenant(&limiter, &t, Endpoint::Userinfo).await.unwrap(), None);
        let other = tenant(t.settings.quotas.clone());
        assert!(admit_tenant(&limiter, &other, Endpoint::Token).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_client_uses_its_own_limit_else_the_tenants_per_client_one() {
        let limiter = RateLimiter::in_memory();
        let mut quotas = tenantry_controlplane::model::Quotas::default();
        quotas.per_client.introspection = Some(1);
        let t = tenant(quotas);
        let plain = client("plain", ClientQuotas::default());
        let generous = client(
            "generous",
            ClientQuotas {
                introspection: Some(5),
                ..ClientQuotas::default()
            },
        );
        assert_eq!(
            admit_client(&limiter, &t, &plain, Endpoint::Introspection)
                .await
                .unwrap()
                .unwrap()
                .remaining,
            0
        );
        assert!(
            admit_client(&limiter, &t, &plain, Endpoint::Introspection)
                .await
                .is_err()
        );
        for _ in 0..5 {
            admit_client(&limiter, &t, &generous, Endpoint::Introspection)
                .await
                .unwrap();
        }
        assert!(
            admit_client(&limiter, &t, &generous, Endpoint::Introspection)
                .await
                .is_err()
        );
        // No per-client limit for this kind: nothing counted.
        assert_eq!(admit_client(&limiter, &t, &plain, Endpoint::Token).await.unwrap(), None);
        assert_eq!(
            admit_client(&limiter, &t, &plain, Endpoint::AdminApi).await.unwrap(),
            None
        );
    }

    #[test]
    fn the_tighter_quota_is_the_one_with_fewer_requests_left() {
        let base = QuotaState {
            scope: Scope::Tenant,
            endpoint: Endpoint::Token,
            limit: 100,
            remaining: 40,
            reset: Duration::from_secs(10),
            window: Duration::from_secs(60),
        };
        let client = QuotaState {
            scope: Scope::Client,
            remaining: 3,
            limit: 5,
            ..base
        };
        assert_eq!(QuotaState::tighter(Some(base), Some(client)), Some(client));
        assert_eq!(QuotaState::tighter(Some(base), None), Some(base));
        assert_eq!(QuotaState::tighter(None, None), None);
    }
}
