//! `TenantDbManager`: one lazily opened pool per tenant, bounded, kept in step with the
//! control plane.
//!
//! * A pool opens on first use (connect, migrate under a lock, sync custom fields).
//! * At most `max_pools` are open; past that the least recently used one is closed as
//!   soon as no request holds it, at the latest after a grace period.
//! * A failed open is not cached as a pool: the slot remembers the error kind and the
//!   next attempt waits out an exponential backoff (1 s doubling to 60 s), failing fast
//!   with the same kind meanwhile.
//! * When a tenant's settings change or it is deleted (a control-plane command), its pool
//!   is dropped and closed; the next request opens one with the new settings.
//! * Every database is stamped with its tenant's id when first opened (`tenant_owner`);
//!   one stamped for another tenant is refused (`owned_by_other_tenant`) until an admin
//!   adopts it ([`TenantDbManager::adopt`]).
//! * An open PostgreSQL/MySQL pool that holds no connection is probed with one direct
//!   connection before use, so a server that went away answers at once instead of after
//!   the pool's acquire timeout; [`TenantDbManager::check_open`] pings open pools for
//!   readiness.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tenantry_controlplane::model::{DbDriver, UserDbSettings};
use tenantry_controlplane::{Change, Command, Snapshot, Subscriber, TenantEntry};
use tenantry_crypto::{SealContext, SecretBox};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::custom_fields::FieldProblem;
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
    /// How long a request waits for a connection from a busy pool.
    pub acquire_timeout: Duration,
    /// How long one connection attempt to PostgreSQL/MySQL may take.
    pub connect_timeout: Duration,
    /// Idle connections are closed after this long.
    pub idle_timeout: Duration,
    /// How long an evicted or replaced pool stays open for requests that still use it.
    pub close_grace: Duration,
    /// False in cluster mode: a tenant may not name a node-local (SQLite) database, whose
    /// copies on each member would silently diverge.
    pub node_local_allowed: bool,
}

impl ManagerConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            max_pools: 256,
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(30),
            close_grace: Duration::from_secs(5),
            node_local_allowed: true,
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
    /// Declared custom fields the last open could not apply (reported by `/readyz`).
    field_problems: Mutex<Vec<FieldProblem>>,
    /// The owner an adopt replaced, handed back to [`TenantDbManager::adopt`].
    adopted_from: Mutex<Option<String>>,
}

/// A tenant whose database could not be opened, for readiness reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FailingTenant {
    pub slug: String,
    pub error: ErrorKind,
}

/// A tenant custom field that is declared but not applied to its database.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldFailure {
    pub slug: String,
    pub field: String,
    pub problem: String,
}

/// What `/readyz` shows about tenant pools.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PoolsStatus {
    pub open: usize,
    pub max: usize,
    pub failing: Vec<FailingTenant>,
    pub custom_field_failures: Vec<FieldFailure>,
}

pub struct TenantDbManager {
    config: ManagerConfig,
    secrets: Arc<SecretBox>,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    tick: AtomicU64,
    /// When [`check_open_every`](TenantDbManager::check_open_every) last pinged.
    last_check: Mutex<Option<Instant>>,
    /// Open pools whose last ping got no answer in time (reported, not closed).
    last_slow: Mutex<Vec<FailingTenant>>,
}

impl TenantDbManager {
    /// See [`ManagerConfig::node_local_allowed`].
    pub fn node_local_allowed(&self) -> bool {
        self.config.node_local_allowed
    }

    pub fn new(config: ManagerConfig, secrets: Arc<SecretBox>) -> Arc<Self> {
        Arc::new(Self {
            config,
            secrets,
            slots: Mutex::new(HashMap::new()),
            tick: AtomicU64::new(0),
            last_check: Mutex::new(None),
            last_slow: Mutex::new(Vec::new()),
        })
    }

    pub fn config(&self) -> &ManagerConfig {
        &self.config
    }

    /// The tenant's database, opening (and migrating) it on first use.
    pub async fn get(&self, entry: &TenantEntry) -> Result<TenantDb, DbError> {
        let slot = self.slot(entry)?;
        self.get_in(&slot, entry, false).await
    }

    async fn get_in(&self, slot: &Slot, entry: &TenantEntry, adopt: bool) -> Result<TenantDb, DbError> {
        slot.last_used
            .store(self.tick.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        let mut state = slot.state.lock().await;
        match &*state {
            // A network pool that holds no connection would connect on the next query,
            // and sqlx retries a refused connection until the acquire timeout: one direct
            // connection answers now whether the server is there.
            State::Open(db) if db.dialect() != crate::Dialect::Sqlite && db.size() == 0 => {
                let db = db.clone();
                // Boxed, like `open` below: the cold paths' futures are large (sqlx's
                // connect), and inlined they would make every request's future as large.
                if let Err(e) = Box::pin(db.probe(self.config.connect_timeout)).await {
                    let kind = kind_of(&e);
                    *state = failed(kind, Duration::ZERO);
                    let closing = db.clone();
                    tokio::spawn(async move { closing.close().await });
                    return Err(DbError::Unavailable(kind));
                }
                return Ok(db);
            }
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
        match Box::pin(self.open(entry, slot, adopt)).await {
            Ok(db) => {
                *state = State::Open(db.clone());
                drop(state);
                self.evict_over_limit(&entry.tenant.slug);
                Ok(db)
            }
            Err(e) => {
                let kind = kind_of(&e);
                *state = failed(kind, previous_backoff);
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

    /// The admin's explicit adopt: opens the tenant's database and stamps it for this
    /// tenant whoever owned it before (answers that previous owner's id). Pools of other
    /// tenants open here on the same database are refused from then on.
    pub async fn adopt(&self, entry: &TenantEntry) -> Result<Option<String>, DbError> {
        self.forget(&entry.tenant.slug);
        let slot = self.slot(entry)?;
        self.get_in(&slot, entry, true).await?;
        let previous = slot.adopted_from.lock().expect("slot poisoned").take();
        // Other tenants' pools on this database (same node) learn of the new owner now.
        self.check_open(usize::MAX, self.config.connect_timeout).await;
        Ok(previous)
    }

    /// Who the database that `settings` name is stamped for, without migrating or stamping
    /// it (`None` when unstamped, empty or absent). Used to refuse settings that point a
    /// tenant at another tenant's database before they are saved.
    pub async fn owner_of(&self, tenant_id: Uuid, settings: &UserDbSettings) -> Result<Option<String>, DbError> {
        let owner = tenant_id.to_string();
        let dsn = match &settings.dsn {
            Some(sealed) => Some(
                self.secrets
                    .open(SealContext::new(&owner, "user_db.dsn"), &sealed.0)
                    .map(|s| Zeroizing::new(s.to_string()))
                    .map_err(|_| DbError::Unavailable(ErrorKind::SecretUnreadable))?,
            ),
            None => None,
        };
        let sqlite_path = (settings.driver == DbDriver::Sqlite).then(|| self.sqlite_path(tenant_id));
        if let Some(path) = &sqlite_path
            && !path.exists()
        {
            return Ok(None);
        }
        let spec = OpenSpec {
            driver: settings.driver,
            sqlite_path,
            dsn,
            max_connections: 1,
            acquire_timeout: self.config.connect_timeout,
            connect_timeout: self.config.connect_timeout,
            idle_timeout: self.config.idle_timeout,
        };
        let db = TenantDb::connect(&spec).await?;
        let found = db.owner().await;
        db.close().await;
        found
    }

    /// The pools open now, by tenant slug (none is opened for this).
    pub fn open_databases(&self) -> Vec<(String, TenantDb)> {
        let slots = self.slots.lock().expect("slot map poisoned");
        slots
            .iter()
            .filter_map(|(slug, slot)| match slot.state.try_lock().as_deref() {
                Ok(State::Open(db)) => Some((slug.clone(), db.clone())),
                _ => None,
            })
            .collect()
    }

    /// Pings the open pools (the most recently used `max` of them, concurrently, each
    /// within `timeout`) by reading their owner stamp. A pool that does not answer, or
    /// whose database now belongs to another tenant, is closed and its tenant fails fast
    /// (with a backoff) until it reopens. Answers the tenants that failed.
    pub async fn check_open(&self, max: usize, timeout: Duration) -> Vec<FailingTenant> {
        let mut open: Vec<(String, Arc<Slot>, TenantDb, u64)> = {
            let slots = self.slots.lock().expect("slot map poisoned");
            slots
                .iter()
                .filter_map(|(slug, slot)| match slot.state.try_lock().as_deref() {
                    Ok(State::Open(db)) => Some((
                        slug.clone(),
                        slot.clone(),
                        db.clone(),
                        slot.last_used.load(Ordering::Relaxed),
                    )),
                    _ => None,
                })
                .collect()
        };
        open.sort_by_key(|(_, _, _, used)| std::cmp::Reverse(*used));
        open.truncate(max);
        let mut checks = tokio::task::JoinSet::new();
        for (slug, slot, db, _) in open {
            checks.spawn(async move {
                // An empty network pool would retry a refused connection: probe it directly.
                // A probe that only ran out of time is "slow", like a slow query below: an
                // unauthenticated readiness poll must not close a busy tenant's pool.
                if db.dialect() != crate::Dialect::Sqlite && db.size() == 0 {
                    match tokio::time::timeout(timeout, db.probe(timeout * 2)).await {
                        Ok(Err(e)) => return (slug, slot, db, Err(Some(kind_of(&e)))),
                        Err(_) => return (slug, slot, db, Err(None)),
                        Ok(Ok(())) => {}
                    }
                }
                // `None`: no answer in time (maybe only busy): reported, pool left alone.
                let result = match tokio::time::timeout(timeout, db.owner()).await {
                    Ok(Ok(Some(owner))) if owner != slot.tenant_id.to_string() => {
                        Err(Some(ErrorKind::OwnedByOtherTenant))
                    }
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(Some(kind_of(&e))),
                    Err(_) => Err(None),
                };
                (slug, slot, db, result)
            });
        }
        let mut failing = Vec::new();
        let mut slow = Vec::new();
        while let Some(done) = checks.join_next().await {
            let Ok((slug, slot, db, Err(outcome))) = done else {
                continue;
            };
            let Some(kind) = outcome else {
                slow.push(FailingTenant {
                    slug,
                    error: ErrorKind::Unreachable,
                });
                continue;
            };
            let mut state = slot.state.lock().await;
            if matches!(&*state, State::Open(current) if current.same_pool(&db)) {
                *state = failed(kind, Duration::ZERO);
                tokio::spawn(async move { db.close().await });
            }
            failing.push(FailingTenant { slug, error: kind });
        }
        failing.extend(slow.iter().cloned());
        failing.sort_by(|a, b| a.slug.cmp(&b.slug));
        *self.last_slow.lock().expect("poisoned") = slow;
        failing
    }

    /// [`check_open`](Self::check_open), unless it ran less than `interval` ago (then the
    /// pools it found failing are still marked failed and nothing is pinged).
    pub async fn check_open_every(&self, interval: Duration, max: usize, timeout: Duration) {
        {
            let mut last = self.last_check.lock().expect("poisoned");
            if last.is_some_and(|at| at.elapsed() < interval) {
                return;
            }
            *last = Some(Instant::now());
        }
        self.check_open(max, timeout).await;
    }

    /// Seconds until a failing tenant's database is tried again (`None` when it is not
    /// failing), for `Retry-After`.
    pub fn retry_after(&self, slug: &str) -> Option<Duration> {
        let slot = self.slots.lock().expect("slot map poisoned").get(slug)?.clone();
        match slot.state.try_lock().as_deref() {
            Ok(State::Failed { retry_at, .. }) => Some(retry_at.saturating_duration_since(Instant::now())),
            _ => None,
        }
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
            field_problems: Mutex::new(Vec::new()),
            adopted_from: Mutex::new(None),
        });
        if let Some(old) = slots.insert(tenant.slug.clone(), slot.clone()) {
            self.close_later(old);
        }
        Ok(slot)
    }

    async fn open(&self, entry: &TenantEntry, slot: &Slot, adopt: bool) -> Result<TenantDb, DbError> {
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
            connect_timeout: self.config.connect_timeout,
            idle_timeout: self.config.idle_timeout,
        };
        let started = Instant::now();
        let db = TenantDb::connect(&spec).await?;
        if let Err(e) = db.migrate(Schema::Tenant, sqlite_path.as_deref()).await {
            db.close().await;
            return Err(e);
        }
        let stamped = if adopt {
            db.restamp(tenant.id).await.map(|previous| {
                tracing::warn!(tenant = %tenant.slug, previous = ?previous, "tenant database adopted");
                *slot.adopted_from.lock().expect("slot poisoned") = previous;
            })
        } else {
            db.claim_owner(tenant.id).await
        };
        if let Err(e) = stamped {
            if e == DbError::Unavailable(ErrorKind::OwnedByOtherTenant) {
                tracing::warn!(tenant = %tenant.slug, "tenant database is stamped for another tenant; refused (adopt it to take it over)");
            }
            db.close().await;
            return Err(e);
        }
        // A field that cannot be applied is reported, never a reason to refuse the tenant.
        let problems = match db.sync_custom_fields_report(&tenant.settings.custom_fields).await {
            Ok(problems) => problems,
            Err(e) => vec![FieldProblem {
                field: "*".into(),
                problem: format!("custom fields not synced: {e}"),
            }],
        };
        *slot.field_problems.lock().expect("slot poisoned") = problems;
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

    /// Drops a tenant's pool (closed once no request holds it, at most after the grace period).
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
                // Close as soon as no request holds the pool any more (its descriptors are
                // what the pool limit is for), and at the latest after the grace period.
                let deadline = Instant::now() + grace;
                loop {
                    let held = match &*slot.state.lock().await {
                        State::Open(db) => db.handles() > 1,
                        _ => return,
                    };
                    if !held || Instant::now() >= deadline {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
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
        let mut custom_field_failures = Vec::new();
        let mut open = 0;
        for (slug, slot) in slots.iter() {
            for p in slot.field_problems.lock().expect("slot poisoned").iter() {
                custom_field_failures.push(FieldFailure {
                    slug: slug.clone(),
                    field: p.field.clone(),
                    problem: p.problem.clone(),
                });
            }
            match slot.state.try_lock().as_deref() {
                Ok(State::Failed { kind, .. }) => failing.push(FailingTenant {
                    slug: slug.clone(),
                    error: *kind,
                }),
                Ok(State::Open(_)) => open += 1,
                _ => {}
            }
        }
        for slow in self.last_slow.lock().expect("poisoned").iter() {
            if slots.contains_key(&slow.slug) && !failing.iter().any(|f: &FailingTenant| f.slug == slow.slug) {
                failing.push(slow.clone());
            }
        }
        failing.sort_by(|a, b| a.slug.cmp(&b.slug));
        custom_field_failures.sort_by(|a, b| (&a.slug, &a.field).cmp(&(&b.slug, &b.field)));
        PoolsStatus {
            open,
            max: self.config.max_pools,
            failing,
            custom_field_failures,
        }
    }
}

fn kind_of(e: &DbError) -> ErrorKind {
    match e {
        DbError::Unavailable(kind) | DbError::Query(kind) => *kind,
        _ => ErrorKind::Other,
    }
}

/// The failed state after a failure, with the backoff doubled from `previous` (1 s to 60 s).
fn failed(kind: ErrorKind, previous: Duration) -> State {
    let backoff = (previous * 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
    State::Failed {
        kind,
        retry_at: Instant::now() + backoff,
        backoff,
    }
}

impl Subscriber for TenantDbManager {
    fn on_change(&self, change: &Change<'_>, _snapshot: &Arc<Snapshot>) {
        match change {
            Change::Applied(Command::UpdateTenant { tenant, .. }) => self.forget(&tenant.slug),
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
        assert_send(&m.adopt(e));
        assert_send(&m.check_open(1, Duration::from_secs(1)));
        assert_send(&db.stored_custom_fields());
        assert_send(&db.schema_status(Schema::Tenant));
        assert_send(&db.drop_custom_column("x", &[]));
        assert_send(&db.sync_custom_fields(&[]));
    }
}
