//! The application state: what every handler can reach, as one cheap-to-clone value.
//! Services below the HTTP crate never see it; handlers pass them the narrow part they
//! use (the accounts services, the admin write path, the key store, ...).

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use tenantry_controlplane::{ControlPlane, Writer};
use tenantry_crypto::SecretBox;
use tenantry_dataplane::{GlobalDb, TenantDbManager};
use tenantry_tenancy::TenantContextResolver;
use tenantry_tenancy::keystore::KeyStore;

use tenantry_config::Config;

/// Everything a handler can reach. Cloned for every request (axum's `State`), so it is
/// one `Arc` around [`Shared`]; fields are reached through `Deref`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Shared {
    pub config: Arc<Config>,
    /// The public base URL actually in use (configured or derived from the bound address).
    pub public_url: url::Url,
    pub control_plane: Arc<ControlPlane>,
    pub writer: Arc<dyn Writer>,
    pub secrets: Arc<SecretBox>,
    pub resolver: TenantContextResolver,
    pub metrics: PrometheusHandle,
    /// Tenant database pools (also reachable through `TenantContext::db`).
    pub dbs: Arc<TenantDbManager>,
    /// The optional installation-wide database.
    pub global_db: Option<GlobalDb>,
    /// Opened signing-key rings (also reachable through `TenantContext::keys`).
    pub keystore: Arc<KeyStore>,
    /// The account services: password hashing, attempt counters, the mailer, the
    /// password deny-list.
    pub accounts: tenantry_accounts::Accounts,
    /// The one admin write path: writes through `writer` and records the audit event.
    pub admin: tenantry_admin::AdminService,
    /// The timer that removes expired rows (its last pass is in `/readyz`).
    pub housekeeping: Arc<tenantry_accounts::housekeeping::Housekeeping>,
    /// Upstream identity providers' client: outbound calls and their metadata cache.
    pub upstreams: Arc<tenantry_federation::Upstreams>,
    /// Cluster mode: this node's Raft member (status, leadership); `None` when standalone.
    pub cluster: Option<Arc<tenantry_cluster::Cluster>>,
}

impl AppState {
    /// The installation's own issuer (admin access tokens): the public base URL.
    pub fn system_issuer(&self) -> String {
        self.public_url.as_str().trim_end_matches('/').to_owned()
    }

    /// The global database, or 501 `global_db_not_configured`.
    pub fn global_db(&self) -> Result<&GlobalDb, crate::error::ApiError> {
        self.global_db.as_ref().ok_or_else(|| {
            crate::error::ApiError::new(
                crate::error::ErrorCode::GlobalDbNotConfigured,
                "set global_db_url (TENANTRY_GLOBAL_DB_URL) to enable this",
            )
        })
    }
}

impl axum::extract::FromRef<AppState> for TenantContextResolver {
    fn from_ref(state: &AppState) -> Self {
        state.resolver.clone()
    }
}
