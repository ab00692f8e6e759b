//! The `TenantContextResolver`: the one place that decides which tenant a request is
//! for, and what that tenant can do; and what a request reaches through its tenant (the
//! opened key rings in [`keystore`], the access-token deny-list in [`revocations`], the
//! one active-user rule in [`users`]).
//!
//! Issuer routes carry the tenant in the path (`/t/{slug}/...`). The headless REST API
//! names it with the `X-Tenant-Slug` header, then the `?tenant` query parameter, then the
//! configured default tenant. Handlers receive a [`TenantContext`] and state the
//! [`Capability`]s they need; a missing one is a typed error, never a silent fallback.

pub mod keystore;
pub mod revocations;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod users;

use std::sync::{Arc, OnceLock};

use tenantry_controlplane::model::{Client, ClientType, DbDriver, GrantType, IssuerMode, TokenEndpointAuthMethod};
use tenantry_controlplane::{ControlPlane, Snapshot, TenantEntry};
use tenantry_dataplane::{CustomFieldSet, TenantDb, TenantDbManager};

use tenantry_errors::{ApiError, ErrorCode};
use tenantry_keys::IssuerKeys;

use crate::keystore::KeyStore;
use crate::revocations::Revocations;

/// Header that names the tenant on the REST API.
pub const TENANT_HEADER: &str = "x-tenant-slug";

pub use tenantry_controlplane::model::ACCOUNT_CLIENT_ID;

/// Path of the account page under the issuer, and of its sign-in callback.
pub const ACCOUNT_PATH: &str = "account";
pub const ACCOUNT_CALLBACK_PATH: &str = "account/callback";

/// The built-in account page as a client of the tenant `issuer`: public, first party,
/// PKCE, the code flow only, back to its own callback (and to the page itself, where a
/// linked upstream identity returns).
fn account_client(issuer: &str) -> Client {
    let epoch = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
    Client {
        client_id: ACCOUNT_CLIENT_ID.to_owned(),
        name: "Account".to_owned(),
        client_type: ClientType::Public,
        redirect_uris: vec![
            format!("{issuer}/{ACCOUNT_CALLBACK_PATH}"),
            format!("{issuer}/{ACCOUNT_PATH}"),
        ],
        post_logout_redirect_uris: Vec::new(),
        allowed_origins: Vec::new(),
        grant_types: vec![GrantType::AuthorizationCode],
        scopes: ["openid", "profile", "email"].map(str::to_owned).to_vec(),
        token_endpoint_auth_method: TokenEndpointAuthMethod::None,
        secret_hash: None,
        previous_secret: None,
        access_token_secs: None,
        id_token_secs: None,
        refresh_token_secs: None,
        jwks: None,
        backchannel_logout_uri: None,
        verify_email_url: None,
        reset_password_url: None,
        id_token_signed_response_alg: None,
        access_token_signed_response_alg: None,
        first_party: true,
        quotas: Default::default(),
        created_at: epoch,
        updated_at: epoch,
    }
}

/// Something a handler may need from its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// A user database is configured for the tenant.
    TenantDb,
    /// SMTP settings are present, so the tenant can send mail.
    Email,
    /// The tenant has at least one active signing key.
    Keys,
    /// This node may write to the control plane.
    Leader,
}

/// What a tenant can do right now, as seen by this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// The configured user-database driver, if any.
    pub tenant_db: Option<DbDriver>,
    pub email: bool,
    pub keys: bool,
    pub leader: bool,
}

/// Everything a request knows about its tenant.
#[derive(Clone)]
pub struct TenantContext {
    /// The snapshot the tenant was read from; use it for the whole request.
    pub snapshot: Arc<Snapshot>,
    pub entry: Arc<TenantEntry>,
    pub capabilities: Capabilities,
    /// `{public_url}/t/{slug}` or the tenant's custom issuer URL.
    pub issuer: String,
    /// The built-in account client, made on first use ([`TenantContext::client`]).
    account_client: OnceLock<Client>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for TenantContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantContext")
            .field("slug", &self.slug())
            .field("capabilities", &self.capabilities)
            .finish_non_exhaustive()
    }
}

impl TenantContext {
    pub fn slug(&self) -> &str {
        &self.entry.tenant.slug
    }

    /// The tenant's client `id`: the built-in account page ([`ACCOUNT_CLIENT_ID`]) or one
    /// of its registered clients. Every lookup of a client by id goes through here.
    pub fn client(&self, id: &str) -> Option<&Client> {
        if id == ACCOUNT_CLIENT_ID {
            return Some(self.account_client.get_or_init(|| account_client(&self.issuer)));
        }
        self.entry.clients.get(id)
    }

    /// The tenant's own database, opened on first use: 409 `tenant_db_not_configured`
    /// when it has none, 503 `tenant_db_unavailable` when it cannot be used.
    pub async fn db(&self) -> Result<TenantDb, ApiError> {
        self.require(Capability::TenantDb)?;
        self.shared.dbs.get(&self.entry).await.map_err(|e| {
            let mut error = ApiError::from(e);
            if error.retry_after.is_some()
                && let Some(wait) = self.shared.dbs.retry_after(self.slug())
            {
                error = error.with_retry_after(wait.as_secs_f64().ceil() as u64);
            }
            error
        })
    }

    /// The tenant's opened signing keys: 503 `tenant_keys_missing` when it has no active
    /// key or its keys cannot be opened. Never makes a key.
    pub fn keys(&self) -> Result<Arc<IssuerKeys>, ApiError> {
        self.require(Capability::Keys)?;
        self.shared.keystore.tenant(&self.entry)
    }

    /// What this process knows of the tenant's access-token deny-list.
    pub fn revocations(&self) -> &Revocations {
        &self.shared.revocations
    }

    /// The custom user fields the tenant declares.
    pub fn custom_fields(&self) -> CustomFieldSet {
        CustomFieldSet::new(&self.entry.tenant.settings.custom_fields)
    }

    /// Succeeds when the tenant has `capability`, else the stable error for its absence.
    pub fn require(&self, capability: Capability) -> Result<(), ApiError> {
        let caps = &self.capabilities;
        let (present, code, detail) = match capability {
            Capability::TenantDb => (
                caps.tenant_db.is_some(),
                ErrorCode::TenantDbNotConfigured,
                "configure settings.user_db for this tenant",
            ),
            Capability::Email => (
                caps.email,
                ErrorCode::EmailNotConfigured,
                "configure settings.smtp for this tenant; there is no global fallback",
            ),
            Capability::Keys => (
                caps.keys,
                ErrorCode::TenantKeysMissing,
                "the tenant has no active signing key; rotate its keys",
            ),
            Capability::Leader => (
                caps.leader,
                ErrorCode::NotLeader,
                "this node cannot accept control-plane writes now",
            ),
        };
        if present {
            Ok(())
        } else {
            Err(ApiError::new(code, format!("tenant `{}`: {detail}", self.slug())))
        }
    }
}

/// Resolves tenants from the current control-plane snapshot. Cloned for every request,
/// so everything it holds sits behind one `Arc`.
#[derive(Clone)]
pub struct TenantContextResolver {
    shared: Arc<Shared>,
}

/// What the resolver and every context it hands out share.
struct Shared {
    control_plane: Arc<ControlPlane>,
    dbs: Arc<TenantDbManager>,
    keystore: Arc<KeyStore>,
    revocations: Revocations,
    default_tenant: Option<String>,
    public_base: String,
    /// The node's writer, asked whether a write can reach a leader (`Capability::Leader`);
    /// `None`: a standalone node, always.
    writer: Option<Arc<dyn tenantry_controlplane::Writer>>,
}

impl TenantContextResolver {
    pub fn new(
        control_plane: Arc<ControlPlane>,
        dbs: Arc<TenantDbManager>,
        keystore: Arc<KeyStore>,
        default_tenant: Option<String>,
        public_url: &url::Url,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                control_plane,
                dbs,
                keystore,
                revocations: Revocations::default(),
                default_tenant,
                public_base: public_url.as_str().trim_end_matches('/').to_owned(),
                writer: None,
            }),
        }
    }

    /// Takes `Capability::Leader` from `writer` (cluster mode). Call before the resolver is
    /// cloned.
    pub fn with_writer(mut self, writer: Arc<dyn tenantry_controlplane::Writer>) -> Self {
        Arc::get_mut(&mut self.shared)
            .expect("with_writer is called before the resolver is shared")
            .writer = Some(writer);
        self
    }

    /// The issuer URL of a tenant on this installation.
    pub fn issuer_for(&self, entry: &TenantEntry) -> String {
        match &entry.tenant.settings.issuer {
            IssuerMode::Path => format!("{}/t/{}", self.shared.public_base, entry.tenant.slug),
            IssuerMode::Custom { url } => url.trim_end_matches('/').to_owned(),
        }
    }

    /// Resolves a tenant by slug: unknown → 404 `tenant_not_found`, unloadable → 503.
    pub fn resolve_slug(&self, slug: &str) -> Result<TenantContext, ApiError> {
        let snapshot = self.shared.control_plane.snapshot();
        let Some(entry) = snapshot.tenant(slug).cloned() else {
            if snapshot.degraded.contains_key(slug) {
                return Err(tenantry_controlplane::Rejection::TenantDegraded(slug.to_owned()).into());
            }
            return Err(ApiError::tenant_not_found(slug));
        };
        let settings = &entry.tenant.settings;
        let capabilities = Capabilities {
            tenant_db: settings.user_db.as_ref().map(|db| db.driver),
            email: settings.smtp.is_some(),
            keys: entry.key_ring.can_sign(),
            leader: self.shared.writer.as_ref().is_none_or(|w| w.accepts_writes()),
        };
        let issuer = self.issuer_for(&entry);
        tracing::Span::current().record("tenant", slug);
        Ok(TenantContext {
            snapshot,
            entry,
            capabilities,
            issuer,
            account_client: OnceLock::new(),
            shared: self.shared.clone(),
        })
    }

    /// Resolves the tenant of a REST API request: header → `?tenant` → default.
    pub fn resolve_api<B>(&self, request: &http::Request<B>) -> Result<TenantContext, ApiError> {
        if let Some(value) = request.headers().get(TENANT_HEADER) {
            let slug = value
                .to_str()
                .map_err(|_| ApiError::new(ErrorCode::BadRequest, "X-Tenant-Slug is not valid text"))?;
            return self.resolve_slug(slug.trim());
        }
        if let Some(slug) = query_param(request.uri().query().unwrap_or(""), "tenant") {
            return self.resolve_slug(&slug);
        }
        match &self.shared.default_tenant {
            Some(slug) => self.resolve_slug(slug),
            None => Err(ApiError::new(
                ErrorCode::TenantRequired,
                "name the tenant with the X-Tenant-Slug header or the ?tenant query parameter",
            )),
        }
    }
}

fn query_param(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The slug of an issuer path (`/t/{slug}` or `/t/{slug}/...`).
pub fn slug_from_issuer_path(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/t/")?;
    let slug = rest.split('/').next().unwrap_or("");
    (!slug.is_empty()).then_some(slug)
}

/// Extracts the context the HTTP crate's tenant middleware stored in the request.
#[cfg(feature = "axum")]
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for TenantContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut http::request::Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<TenantContext>().cloned().ok_or_else(|| {
            tracing::error!("TenantContext requested on a route without a tenant middleware");
            ApiError::internal()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `acme` without a user database, `beta` with one; resolved with `default`.
    fn resolver(default: Option<&str>) -> (crate::testing::Installation, TenantContextResolver) {
        let installation = crate::testing::Installation::new();
        installation.add_tenant("acme", false, |s| s.user_db = None);
        installation.add_tenant("beta", false, |_| {});
        let url = url::Url::parse("https://id.example.com/").unwrap();
        let dbs = TenantDbManager::new(
            tenantry_dataplane::ManagerConfig::new(installation.dir.path().join("db")),
            installation.secrets.clone(),
        );
        let resolver = TenantContextResolver::new(
            installation.control_plane.clone(),
            dbs,
            installation.keystore.clone(),
            default.map(str::to_owned),
            &url,
        );
        (installation, resolver)
    }

    fn request(uri: &str, header: Option<&str>) -> http::Request<()> {
        let mut builder = http::Request::builder().uri(uri);
        if let Some(h) = header {
            builder = builder.header(TENANT_HEADER, h);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn api_resolution_order_is_header_query_default() {
        let (_d, r) = resolver(Some("acme"));
        assert_eq!(
            r.resolve_api(&request("/v1/x?tenant=acme", Some("beta")))
                .unwrap()
                .slug(),
            "beta"
        );
        assert_eq!(
            r.resolve_api(&request("/v1/x?tenant=beta", None)).unwrap().slug(),
            "beta"
        );
        assert_eq!(r.resolve_api(&request("/v1/x", None)).unwrap().slug(), "acme");
        assert_eq!(
            r.resolve_api(&request("/v1/x", Some("ghost"))).unwrap_err().code,
            ErrorCode::TenantNotFound
        );
        let (_d, r) = resolver(None);
        assert_eq!(
            r.resolve_api(&request("/v1/x", None)).unwrap_err().code,
            ErrorCode::TenantRequired
        );
    }

    #[tokio::test]
    async fn the_tenant_database_opens_through_the_context() {
        let (_d, r) = resolver(None);
        assert_eq!(
            r.resolve_slug("acme").unwrap().db().await.unwrap_err().code,
            ErrorCode::TenantDbNotConfigured
        );
        let beta = r.resolve_slug("beta").unwrap();
        // Every handler that uses its database holds this future inline, and axum moves
        // each handler's future into a box per request: the cold open (sqlx's connect,
        // about 19 KB of state) is boxed so the common path stays small.
        let opening = beta.db();
        let size = std::mem::size_of_val(&opening);
        assert!(size < 4096, "TenantContext::db's future is {size} bytes");
        let db = opening.await.unwrap();
        use tenantry_dataplane::UserRepository;
        assert_eq!(db.count_users().await.unwrap(), 0);
    }

    #[test]
    fn capabilities_and_issuers() {
        let (_d, r) = resolver(None);
        let acme = r.resolve_slug("acme").unwrap();
        assert_eq!(acme.issuer, "https://id.example.com/t/acme");
        assert_eq!(
            acme.require(Capability::TenantDb).unwrap_err().code,
            ErrorCode::TenantDbNotConfigured
        );
        assert_eq!(
            acme.require(Capability::Email).unwrap_err().code,
            ErrorCode::EmailNotConfigured
        );
        assert_eq!(
            acme.require(Capability::Keys).unwrap_err().code,
            ErrorCode::TenantKeysMissing
        );
        assert!(acme.require(Capability::Leader).is_ok());
        let beta = r.resolve_slug("beta").unwrap();
        assert!(beta.require(Capability::TenantDb).is_ok());
        assert_eq!(beta.issuer, "https://id.example.com/t/beta");
    }

    #[test]
    fn issuer_path_slugs() {
        assert_eq!(slug_from_issuer_path("/t/acme"), Some("acme"));
        assert_eq!(slug_from_issuer_path("/t/acme/jwks.json"), Some("acme"));
        assert_eq!(slug_from_issuer_path("/t/"), None);
        assert_eq!(slug_from_issuer_path("/v1/t/acme"), None);
    }
}
