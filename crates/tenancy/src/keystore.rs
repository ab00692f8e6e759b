//! Opened key rings, cached per issuer.
//!
//! Opening a ring (unsealing private keys, parsing them, building the JWKS body) happens
//! once per ring version. Each lookup compares the cached ring with the one in the
//! current snapshot, so a rotation, a retirement, a reseal or a snapshot installed by the
//! cluster is seen on the next request without any invalidation message. Nothing here
//! ever makes a key: a ring with no active key is `tenant_keys_missing`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tenantry_controlplane::TenantEntry;
use tenantry_controlplane::model::{KeyRing, SealedSecret, SystemSecrets};
use tenantry_crypto::{DigestKey, SealContext, SecretBox};
use tenantry_keys::IssuerKeys;
use uuid::Uuid;
use zeroize::Zeroizing;

use tenantry_errors::{ApiError, ErrorCode};

/// The owner the system issuer's private keys are sealed for.
pub const SYSTEM_OWNER: &str = "system";

/// The secretbox field of the installation's client-secret key.
pub const CLIENT_SECRET_KEY_FIELD: &str = "client_secret_key";

/// The opened key of client-secret digests (and admin API keys' digests).
pub type ClientSecretKey = Arc<DigestKey>;

struct Opened {
    ring: KeyRing,
    keys: Arc<IssuerKeys>,
}

/// Cache of opened rings: one per tenant (by tenant id) and one for the system issuer.
pub struct KeyStore {
    secrets: Arc<SecretBox>,
    tenants: RwLock<HashMap<Uuid, Arc<Opened>>>,
    system: RwLock<Option<Arc<Opened>>>,
    client_secret_key: RwLock<Option<(SealedSecret, ClientSecretKey)>>,
}

/// More cached rings than this and the cache starts over (it only ever holds tenants that
/// were used; the bound keeps deleted tenants from accumulating).
const MAX_CACHED_RINGS: usize = 16_384;

impl KeyStore {
    pub fn new(secrets: Arc<SecretBox>) -> Self {
        Self {
            secrets,
            tenants: RwLock::new(HashMap::new()),
            system: RwLock::new(None),
            client_secret_key: RwLock::new(None),
        }
    }

    /// The opened ring of a tenant: 503 `tenant_keys_missing` when it has no active key
    /// or its keys cannot be opened (e.g. sealed under a master key no longer configured).
    pub fn tenant(&self, entry: &TenantEntry) -> Result<Arc<IssuerKeys>, ApiError> {
        let id = entry.tenant.id;
        let ring = &entry.key_ring;
        if let Some(hit) = read(&self.tenants).get(&id).filter(|o| o.ring == *ring) {
            return Ok(hit.keys.clone());
        }
        let opened = self.open(ring, &id.to_string(), &entry.tenant.slug)?;
        let mut map = write(&self.tenants);
        if map.len() >= MAX_CACHED_RINGS {
            map.clear();
        }
        map.insert(id, opened.clone());
        Ok(opened.keys.clone())
    }

    /// The opened ring of the system issuer (admin tokens, readiness self-check).
    pub fn system(&self, ring: &KeyRing) -> Result<Arc<IssuerKeys>, ApiError> {
        if let Some(hit) = read(&self.system).as_ref().filter(|o| o.ring == *ring) {
            return Ok(hit.keys.clone());
        }
        let opened = self.open(ring, SYSTEM_OWNER, SYSTEM_OWNER)?;
        *write(&self.system) = Some(opened.clone());
        Ok(opened.keys.clone())
    }

    /// The key of client-secret digests: 503 `tenant_keys_missing` when the installation
    /// has none (run `tenantry init`) or it does not open.
    pub fn client_secret_key(&self, secrets: &SystemSecrets) -> Result<ClientSecretKey, ApiError> {
        let unavailable = |detail: &str| ApiError::new(ErrorCode::TenantKeysMissing, detail.to_owned());
        let sealed = secrets
            .client_secret_key
            .as_ref()
            .ok_or_else(|| unavailable("the installation has no client-secret key; run `tenantry init`"))?;
        if let Some((cached, key)) = read(&self.client_secret_key).as_ref()
            && cached == sealed
        {
            return Ok(key.clone());
        }
        let encoded = self
            .secrets
            .open(SealContext::new(SYSTEM_OWNER, CLIENT_SECRET_KEY_FIELD), &sealed.0)
            .map_err(|e| {
                tracing::error!(error = %e, "the client-secret key cannot be opened");
                unavailable("the client-secret key cannot be opened; see the server log")
            })?;
        let raw = Zeroizing::new(
            STANDARD
                .decode(encoded.as_bytes())
                .map_err(|_| unavailable("the client-secret key is malformed"))?,
        );
        let key = Arc::new(DigestKey::new(&raw));
        *write(&self.client_secret_key) = Some((sealed.clone(), key.clone()));
        Ok(key)
    }

    fn open(&self, ring: &KeyRing, owner: &str, label: &str) -> Result<Arc<Opened>, ApiError> {
        if !ring.can_sign() {
            return Err(ApiError::new(
                ErrorCode::TenantKeysMissing,
                format!("`{label}` has no active signing key; rotate its keys"),
            ));
        }
        let keys = IssuerKeys::open(ring, &self.secrets, owner).map_err(|e| {
            tracing::error!(issuer = label, error = %e, "signing keys cannot be opened");
            ApiError::new(
                ErrorCode::TenantKeysMissing,
                format!("the signing keys of `{label}` cannot be opened; see the server log"),
            )
        })?;
        Ok(Arc::new(Opened {
            ring: ring.clone(),
            keys: Arc::new(keys),
        }))
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // A panic while holding the lock cannot leave the map inconsistent (single inserts).
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}
