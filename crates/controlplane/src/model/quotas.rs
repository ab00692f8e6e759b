//! Request quotas of a tenant and of its clients (`settings.quotas`, a client's
//! `quotas`); the counting is `tenantry_accounts::quotas`.

use serde::{Deserialize, Serialize};

/// Request quotas: how many requests of each kind the tenant as a whole, and each of its
/// clients, may make in one window. A limit left out is no limit. Counted in fixed windows
/// on the rate limiter's store (in memory per node, or shared in Redis); a request over a
/// quota is answered 429 with `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Quotas {
    /// Length of a counting window in seconds (1 to 3600).
    pub window_secs: u32,
    /// Requests per window of every caller of the tenant together.
    #[serde(skip_serializing_if = "TenantQuotas::is_unlimited")]
    pub tenant: TenantQuotas,
    /// Requests per window of each client, unless the client sets its own
    /// (`quotas` of the client).
    #[serde(skip_serializing_if = "ClientQuotas::is_unlimited")]
    pub per_client: ClientQuotas,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            window_secs: 60,
            tenant: TenantQuotas::default(),
            per_client: ClientQuotas::default(),
        }
    }
}

impl Quotas {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// Limits of a whole tenant, per kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TenantQuotas {
    /// The token and revocation endpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<u32>,
    /// The introspection endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub introspection: Option<u32>,
    /// The authorization endpoint (hosted login steps included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorize: Option<u32>,
    /// UserInfo.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userinfo: Option<u32>,
    /// The headless API (`/v1/auth`, `/v1/tenant`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_api: Option<u32>,
    /// The admin API's routes below `/v1/admin/tenants/{slug}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_api: Option<u32>,
}

impl TenantQuotas {
    pub fn is_unlimited(&self) -> bool {
        *self == Self::default()
    }
}

/// Limits of one client, per kind of request it makes as itself (after it has
/// authenticated, or for the authorization endpoint, once it is known).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ClientQuotas {
    /// The token and revocation endpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<u32>,
    /// The introspection endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub introspection: Option<u32>,
    /// The authorization endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorize: Option<u32>,
    /// UserInfo, counted for the client the access token was issued to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userinfo: Option<u32>,
}

impl ClientQuotas {
    pub fn is_unlimited(&self) -> bool {
        *self == Self::default()
    }
}
