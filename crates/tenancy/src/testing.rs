//! A real installation in a temp directory for other crates' unit tests (the `testing`
//! feature): a control plane on files, a secret box, the key store and the resolver, as a
//! running server has them, so protocol and account rules are tested without HTTP on a
//! real SQLite tenant.

use std::sync::Arc;

use tenantry_controlplane::model::{KeyRing, Tenant, TenantSettings};
use tenantry_controlplane::{Command, ControlPlane, FsStore};
use tenantry_crypto::{MasterKey, SecretBox};

use crate::keystore::KeyStore;
use crate::{TenantContext, TenantContextResolver};

/// The pieces of a test installation; the directory lives as long as this value.
pub struct Installation {
    pub dir: tempfile::TempDir,
    pub control_plane: Arc<ControlPlane>,
    pub secrets: Arc<SecretBox>,
    pub keystore: Arc<KeyStore>,
    pub resolver: TenantContextResolver,
}

impl Installation {
    /// An empty installation at `https://id.example.com/`.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let secrets = Arc::new(SecretBox::new(MasterKey::generate(), vec![]));
        let control_plane = Arc::new(ControlPlane::open(FsStore::new(dir.path())).unwrap());
        let dbs = tenantry_dataplane::TenantDbManager::new(
            tenantry_dataplane::ManagerConfig::new(dir.path().join("db")),
            secrets.clone(),
        );
        let keystore = Arc::new(KeyStore::new(secrets.clone()));
        let url = url::Url::parse("https://id.example.com/").unwrap();
        let resolver = TenantContextResolver::new(control_plane.clone(), dbs, keystore.clone(), None, &url);
        Self {
            dir,
            control_plane,
            secrets,
            keystore,
            resolver,
        }
    }

    /// Adds tenant `slug` with a new tenant's settings (an embedded SQLite user database),
    /// changed by `configure`, with
    /// signing keys when `keys` is set, and answers its context.
    pub fn add_tenant(&self, slug: &str, keys: bool, configure: impl FnOnce(&mut TenantSettings)) -> TenantContext {
        let mut settings = TenantSettings::for_new_tenant();
        configure(&mut settings);
        let now = chrono::Utc::now();
        let tenant = Tenant {
            id: uuid::Uuid::new_v4(),
            slug: slug.into(),
            display_name: slug.into(),
            created_at: now,
            updated_at: now,
            settings,
        };
        let key_ring = match keys {
            true => tenantry_keys::generate_ring(&self.secrets, &tenant.id.to_string(), now).unwrap(),
            false => KeyRing::default(),
        };
        self.control_plane
            .apply(&Command::CreateTenant { tenant, key_ring })
            .unwrap();
        self.resolver.resolve_slug(slug).unwrap()
    }
}

impl Default for Installation {
    fn default() -> Self {
        Self::new()
    }
}
