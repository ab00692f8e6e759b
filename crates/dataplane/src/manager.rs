//! `TenantDbManager`: one lazily opened pool per tenant, bounded, kept in step with the
//! control plane.
//!
//! * A pool opens on first use (connect, migrate under a lock, sync custom fields).
//! * At most `max_pools` are open; past that the least recently used one is closed after
//!   a grace period (requests that still hold it finish first).
//! * A failed open is not cached as a pool: the slot remembers the error kind and the
//!   next attempt waits out an exponential backoff (1 s doubling to 60 s), failing fast
//!   with the same kind meanwhile.
//! * When a tenant's settings change or it is deleted (a control-plane command), its pool
//!   is dropped and closed; the next request opens one with the new settings.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tenantry_controlplane::model::DbDriver;
use tenantry_controlplane::{Change, Command, Snapshot, Subscriber, TenantEntry};
use tenantry_crypto::{SealContext, SecretBox};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::db::{DbError, ErrorKind, OpenSpec, Schema, SchemaStatus, TenantDb};

/// Limits of the manager.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// Where SQLite tenant databases live: `<data_dir>/<tenant id>/tenant.db`.
    pub data_dir: PathBuf,
    /// Most pools open at once (LRU beyond).
    pub max_pools: usize,
    /// Connections per pool.
    pub max_connections: u32,
    /// How long a request waits for a connection (also the connect timeout).
    pub acquire_timeout: Duration,
    /// How long an evicted or replaced pool stays open for requests that still use it.
    pub close_grace: Duration,
}

impl ManagerConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            max_pools: 256,
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            close_grace: Duration::from_secs(5),
        }
    }
}

enum State {
    Empty,
    Open(TenantDb),
    Failed {
        kind: ErrorKind,
        retry_at: Instant,
        backoff: Duration,
    },
}

struct Slot {
    tenant_id: Uuid,
    /// The tenant's `updated_at` when the slot was made; a newer one means new settings.
    version: i64,
    last_used: AtomicU64,
    state: tokio::sync::Mutex<State>,
}

/// A tenant whose database could not be opened, for readiness reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FailingTenant {
    pub slug: String,
    pub error: ErrorKind,
}

/// What `/readyz` shows about tenant pools.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PoolsStatus {
    pub open: usize,
    pub max: usize,
    pub failing: Vec<FailingTenant>,
}

pub struct TenantDbManager {
    config: ManagerConfig,
    secrets: Arc<SecretBox>,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    tick: AtomicU64,
}

impl TenantDbManager {
    pub fn new(config: ManagerConfig, secrets: Arc<SecretBox>) -> Arc<Self> {
        Arc::new(Self {
            config,
            secrets,
            slots: Mutex::new(HashMap::new()),
            tick: AtomicU64::new(0),
        })
    }

    pub fn config(&self) -> &ManagerConfig {
        &self.config
    }

    /// The tenant's database, opening (and migrating) it on first use.
    pub async fn get(&self, entry: &TenantEntry) -> Result<TenantDb, DbError> {
        let slot = self.slot(entry)?;
        slot.last_used
            .store(self.tick.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        let mut state = slot.state.lock().await;
        match &*state {
            State::Open(db) => return Ok(db.clone()),
            State::Failed { kind, retry_at, .. } if Instant::now() < *retry_at => {
                return Err(DbError::Unavailable(*kind));
            }
            _ => {}
        }
        let previous_backoff = match &*state {
            State::Failed { backoff, .. } => *backoff,
            _ => Duration::ZERO,
        };
        match self.open(entry).await {
            Ok(db) => {
                *state = State::Open(db.clone());
                drop(state);
                self.evict_over_limit(&entry.tenant.slug);
                Ok(db)
            }
            Err(e) => {
                let kind = match &e {
                    DbError::Unavailable(kind) | DbError::Query(kind) => *kind,
                    _ => ErrorKind::Other,
                };
                let backoff = (previous_backoff * 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
                *state = State::Failed {
                    kind,
                    retry_at: Instant::now() + backoff,
                    backoff,
                };
                Err(DbError::Unavailable(kind))
            }
        }
    }

    /// Closes the current pool (if any) and opens a fresh one, applying any pending
    /// migrations; reports the schema afterwards.
    pub async fn reopen(&self, entry: &TenantEntry) -> Result<SchemaStatus, DbError> {
        self.forget(&entry.tenant.slug);
        let db = self.get(entry).await?;
        db.schema_status(Schema::Tenant).await
    }

    fn slot(&self, entry: &TenantEntry) -> Result<Arc<Slot>, DbError> {
        let tenant = &entry.tenant;
        if tenant.settings.user_db.is_none() {
            return Err(DbError::NotConfigured);
        }
        let version = tenant.updated_at.timestamp_micros();
        let mut slots = self.slots.lock().expect("slot map poisoned");
        if let Some(slot) = slots.get(&tenant.slug)
            && slot.tenant_id == tenant.id
            && slot.version >= version
        {
            return Ok(slot.clone());
        }
        let slot = Arc::new(Slot {
            tenant_id: tenant.id,
            version,
            last_used: AtomicU64::new(0),
            state: tokio::sync::Mutex::new(State::Empty),
        });
        if let Some(old) = slots.insert(tenant.slug.clone(), slot.clone()) {
            self.close_later(old);
        }
        Ok(slot)
    }

    async fn open(&self, entry: &TenantEntry) -> Result<TenantDb, DbError> {
        let tenant = &entry.tenant;
        let settings = tenant.settings.user_db.as_ref().ok_or(DbError::NotConfigured)?;
        let owner = tenant.id.to_string();
        let dsn = match &settings.dsn {
            Some(sealed) => Some(
                self.secrets
                    .open(SealContext::new(&owner, "user_db.dsn"), &sealed.0)
                    .map(|s| Zeroizing::new(s.to_string()))
                    .map_err(|_| DbError::Unavailable(ErrorKind::SecretUnreadable))?,
            ),
            None => None,
        };
        let sqlite_path = (settings.driver == DbDriver::Sqlite).then(|| self.sqlite_path(tenant.id));
        let spec = OpenSpec {
            driver: settings.driver,
            sqlite_path: sqlite_path.clone(),
            dsn,
            max_connections: self.config.max_connections,
            acquire_timeout: self.config.acquire_timeout,
        };
        let started = Instant::now();
        let db = TenantDb::connect(&spec).await?;
        if let Err(e) = db.migrate(Schema::Tenant, sqlite_path.as_deref()).await {
            db.close().await;
            return Err(e);
        }
        if let Err(e) = db.sync_custom_fields(&tenant.settings.custom_fields).await {
            tracing::warn!(tenant = %tenant.slug, error = %e, "custom fields not synced");
        }
        tracing::info!(tenant = %tenant.slug, driver = ?settings.driver, ms = started.elapsed().as_millis() as u64, "tenant database opened");
        Ok(db)
    }

    /// The SQLite file of a tenant (keyed by id, so a re-created slug starts empty).
    pub fn sqlite_path(&self, tenant_id: Uuid) -> PathBuf {
        self.config.data_dir.join(tenant_id.to_string()).join("tenant.db")
    }

    fn evict_over_limit(&self, keep: &str) {
        let mut slots = self.slots.lock().expect("slot map poisoned");
        loop {
            let open: Vec<(String, u64)> = slots
                .iter()
                .filter(|(_, s)| matches!(s.state.try_lock().as_deref(), Ok(State::Open(_)) | Err(_)))
                .map(|(k, s)| (k.clone(), s.last_used.load(Ordering::Relaxed)))
                .collect();
            if open.len() <= self.config.max_pools {
                break;
            }
            let Some((victim, _)) = open
                .into_iter()
                .filter(|(k, _)| k != keep)
                .min_by_key(|(_, used)| *used)
            else {
                break;
            };
            if let Some(slot) = slots.remove(&victim) {
                tracing::debug!(tenant = %victim, "closing least recently used tenant pool");
                self.close_later(slot);
            }
        }
    }

    /// Drops a tenant's pool (closed after the grace period).
    pub fn forget(&self, slug: &str) {
        if let Some(slot) = self.slots.lock().expect("slot map poisoned").remove(slug) {
            self.close_later(slot);
        }
    }

    fn forget_all(&self) {
        let drained: Vec<_> = self
            .slots
            .lock()
            .expect("slot map poisoned")
            .drain()
            .map(|(_, s)| s)
            .collect();
        for slot in drained {
            self.close_later(slot);
        }
    }

    fn close_later(&self, slot: Arc<Slot>) {
        let grace = self.config.close_grace;
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                tokio::time::sleep(grace).await;
                if let State::Open(db) = &*slot.state.lock().await {
                    db.close().await;
                }
            });
        }
    }

    /// Number of open pools.
    pub fn open_pools(&self) -> usize {
        self.slots
            .lock()
            .expect("slot map poisoned")
            .values()
            .filter(|s| matches!(s.state.try_lock().as_deref(), Ok(State::Open(_)) | Err(_)))
            .count()
    }

    /// Open pools and tenants whose last open failed.
    pub fn status(&self) -> PoolsStatus {
        let slots = self.slots.lock().expect("slot map poisoned");
        let mut failing = Vec::new();
        let mut open = 0;
        for (slug, slot) in slots.iter() {
            match slot.state.try_lock().as_deref() {
                Ok(State::Failed { kind, .. }) => failing.push(FailingTenant {
                    slug: slug.clone(),
                    error: *kind,
                }),
                Ok(State::Open(_)) => open += 1,
                _ => {}
            }
        }
        failing.sort_by(|a, b| a.slug.cmp(&b.slug));
        PoolsStatus {
            open,
            max: self.config.max_pools,
            failing,
        }
    }
}

impl Subscriber for TenantDbManager {
    fn on_change(&self, change: &Change<'_>, _snapshot: &Arc<Snapshot>) {
        match change {
            Change::Applied(Command::UpdateTenant { tenant }) => self.forget(&tenant.slug),
            Change::Applied(Command::DeleteTenant { slug }) => self.forget(slug),
            Change::Applied(_) => {}
            Change::Reloaded => self.forget_all(),
        }
    }
}

#[cfg(test)]
mod send_checks {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    #[allow(dead_code)]
    fn futures_are_send(m: &TenantDbManager, e: &TenantEntry, db: &TenantDb) {
        assert_send(&m.get(e));
        assert_send(&m.reopen(e));
        assert_send(&db.stored_custom_fields());
        assert_send(&db.schema_status(Schema::Tenant));
        assert_send(&db.drop_custom_column("x", &[]));
        assert_send(&db.sync_custom_fields(&[]));
    }
}
