//! One tenant database handle over the three drivers, error kinds, and migrations.
//!
//! `TenantDb` wraps a typed sqlx pool per driver (never `Any`). Repository code is written
//! once with `?` placeholders and run through [`on_pool!`], which expands the body for each
//! concrete pool type; [`TenantDb::sql`] rewrites placeholders to `$n` for PostgreSQL.
//!
//! Stored types are chosen to behave the same on every driver: ids are UUIDs (native on
//! PostgreSQL, 16 bytes elsewhere), timestamps are unix microseconds in a BIGINT, JSON is
//! TEXT, and emails are compared through a lower-cased `*_normalized` column.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, migrate::Migrator};
use tenantry_controlplane::model::DbDriver;
use zeroize::Zeroizing;

/// Expands `$body` once per driver with `$pool` bound to the concrete pool.
#[macro_export]
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db.pool() {
            $crate::db::Pool::Sqlite($pool) => $body,
            $crate::db::Pool::Postgres($pool) => $body,
            $crate::db::Pool::MySql($pool) => $body,
        }
    };
}

/// SQL dialect of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
    MySql,
}

/// A typed pool for one driver.
#[derive(Debug, Clone)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
    MySql(MySqlPool),
}

/// Why a database operation failed, without driver text that could carry a DSN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Connection refused, host unknown, network error or pool timeout.
    Unreachable,
    /// Wrong user or password.
    AuthFailed,
    /// The named database does not exist.
    DatabaseMissing,
    /// The database holds migrations this binary does not know (written by a newer one).
    SchemaTooNew,
    /// A migration failed to apply.
    MigrationFailed,
    /// The sealed DSN does not open.
    SecretUnreadable,
    /// The DSN is not a valid connection URL for its driver.
    InvalidDsn,
    /// A TLS handshake failed.
    Tls,
    /// The database is stamped for another tenant (see `tenant_owner`): two tenants may not
    /// share one database, and a re-created tenant does not inherit an old one's data
    /// without an explicit adopt.
    OwnedByOtherTenant,
    /// Any other driver or query error.
    Other,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::AuthFailed => "auth_failed",
            ErrorKind::DatabaseMissing => "database_missing",
            ErrorKind::SchemaTooNew => "schema_too_new",
            ErrorKind::MigrationFailed => "migration_failed",
            ErrorKind::SecretUnreadable => "secret_unreadable",
            ErrorKind::InvalidDsn => "invalid_dsn",
            ErrorKind::Tls => "tls",
            ErrorKind::OwnedByOtherTenant => "owned_by_other_tenant",
            ErrorKind::Other => "other",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors of the data plane.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DbError {
    /// The database cannot be used at all (open, auth, schema).
    #[error("the tenant database is unavailable ({0})")]
    Unavailable(ErrorKind),
    /// A uniqueness rule was broken, e.g. `email_taken`.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// Input the database layer refuses (e.g. a custom field value of the wrong type).
    #[error("invalid: {0}")]
    Invalid(String),
    /// Values of named fields refused before the database (`users::profile`).
    #[error("invalid fields: {0:?}")]
    InvalidFields(Vec<tenantry_controlplane::FieldError>),
    /// A query failed.
    #[error("database query failed ({0})")]
    Query(ErrorKind),
    /// The tenant has no user database in its settings.
    #[error("the tenant has no user database configured")]
    NotConfigured,
}

/// Which schema a database carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// A tenant's data plane.
    Tenant,
    /// The optional global database.
    Global,
}

/// Classifies a driver error. The driver's message is logged for operators at `warn`
/// (it names hosts and users, never passwords); callers only see the kind.
pub fn classify(e: &sqlx::Error) -> ErrorKind {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
            ErrorKind::Unreachable
        }
        sqlx::Error::Tls(_) => ErrorKind::Tls,
        sqlx::Error::Configuration(_) => ErrorKind::InvalidDsn,
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            match code.as_str() {
                "28P01" | "28000" | "1045" | "1044" | "1698" => ErrorKind::AuthFailed,
                "3D000" | "1049" => ErrorKind::DatabaseMissing,
                _ => ErrorKind::Other,
            }
        }
        _ => ErrorKind::Other,
    }
}

/// Maps a query error: unique violations become conflicts, the rest a kind.
pub(crate) fn query_err(e: sqlx::Error) -> DbError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        let text = format!("{} {}", db.constraint().unwrap_or(""), db.message());
        if text.contains("email_normalized") {
            return DbError::Conflict("email_taken");
        }
        if text.contains("username_normalized") {
            return DbError::Conflict("username_taken");
        }
        if text.contains("provider") || text.contains("external_identities") {
            return DbError::Conflict("identity_linked");
        }
        return DbError::Conflict("duplicate");
    }
    if let sqlx::Error::Database(db) = &e
        && is_bad_value(db.as_ref())
    {
        // The request's data, not the database, is at fault: the caller's 4xx.
        tracing::info!(error = %e, "the tenant database refused a value");
        return DbError::Invalid("a value is too long, malformed or not allowed here".into());
    }
    let kind = classify(&e);
    tracing::warn!(kind = kind.as_str(), error = %e, "tenant database query failed");
    match kind {
        ErrorKind::Unreachable | ErrorKind::AuthFailed | ErrorKind::DatabaseMissing | ErrorKind::Tls => {
            DbError::Unavailable(kind)
        }
        other => DbError::Query(other),
    }
}

/// A statement refused for the values it carries rather than for the database's state:
/// SQLSTATE class 22 (data exception: too long, out of range, invalid byte sequence such as
/// NUL in PostgreSQL text) and integrity violations other than uniqueness (NOT NULL,
/// CHECK, foreign key) on every driver; MariaDB's own numbers for values it will not
/// store (1366 incorrect string value, 1406 data too long, 1265 truncated, 1264 out of
/// range, 1292 incorrect value, 1367 illegal value); SQLite's TOOBIG and MISMATCH.
fn is_bad_value(db: &dyn sqlx::error::DatabaseError) -> bool {
    use sqlx::error::ErrorKind as Kind;
    if matches!(
        db.kind(),
        Kind::NotNullViolation | Kind::CheckViolation | Kind::ForeignKeyViolation
    ) {
        return true;
    }
    if let Some(mysql) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return matches!(mysql.number(), 1264 | 1265 | 1292 | 1366 | 1367 | 1406)
            || mysql.code().is_some_and(|c| c.starts_with("22"));
    }
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        // Primary result codes: SQLITE_TOOBIG (18), SQLITE_MISMATCH (20).
        let code = db.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or(0);
        return matches!(code & 0xff, 18 | 20);
    }
    db.code().is_some_and(|c| c.starts_with("22"))
}

/// Unix microseconds: the stored form of every timestamp.
pub fn to_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// Reads a stored timestamp back.
pub fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// What to open, from a tenant's settings.
pub struct OpenSpec {
    pub driver: DbDriver,
    /// SQLite file (created if missing).
    pub sqlite_path: Option<PathBuf>,
    /// Opened DSN for PostgreSQL/MySQL.
    pub dsn: Option<Zeroizing<String>>,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// How long one connection attempt may take (PostgreSQL/MySQL). A refused connection
    /// fails at once: it is not retried until `acquire_timeout` like sqlx's pool would.
    pub connect_timeout: Duration,
    /// Idle connections are closed after this long (the pool keeps none open for nothing).
    pub idle_timeout: Duration,
}

/// A connected tenant database (cheap to clone: it is a pool handle).
#[derive(Debug, Clone)]
pub struct TenantDb {
    /// On SQLite, one connection: every write, and every read not sent to `readers`. Its
    /// page cache stays valid, since no other connection writes; the pool's other
    /// connections would each reread their pages after every commit.
    pool: Pool,
    /// On SQLite, the pool for long reads (exports, searches, event listings) and imports,
    /// so they never hold the connection the token traffic needs. `None` elsewhere.
    readers: Option<Pool>,
    /// Serialises write transactions on SQLite, which allows one writer at a time: waiting
    /// here is a cheap async wait, where a second writer inside SQLite would meet
    /// `SQLITE_BUSY` and sleep in the busy handler.
    write_gate: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl TenantDb {
    /// Connects (one connection is made now, so a bad DSN or host fails here).
    pub async fn connect(spec: &OpenSpec) -> Result<Self, DbError> {
        let unavailable = |e: sqlx::Error| {
            let kind = classify(&e);
            tracing::warn!(kind = kind.as_str(), error = %e, "tenant database did not open");
            DbError::Unavailable(kind)
        };
        let pool = match spec.driver {
            DbDriver::Sqlite => {
                let path = spec
                    .sqlite_path
                    .clone()
                    .ok_or(DbError::Unavailable(ErrorKind::InvalidDsn))?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|_| DbError::Unavailable(ErrorKind::Unreachable))?;
                }
                let options = SqliteConnectOptions::new()
                    .filename(&path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(5))
                    .foreign_keys(true);
                let sqlite_options = |max_connections: u32| {
                    SqlitePoolOptions::new()
                        // A connection to a local file does not go stale; the health ping
                        // sqlx sends on every checkout would be one more round trip to the
                        // connection's worker thread per statement.
                        .test_before_acquire(false)
                        .max_connections(max_connections)
                        // Every SQLite connection holds three descriptors (file, WAL, shm):
                        // close the ones nobody uses.
                        .min_connections(0)
                        .idle_timeout(spec.idle_timeout)
                        .acquire_timeout(spec.acquire_timeout)
                };
                // One connection for the traffic, the rest of the budget for long reads;
                // the readers connect when one is first needed (most tenants never export).
                let main = sqlite_options(1)
                    .connect_with(options.clone())
                    .await
                    .map_err(unavailable)?;
                let readers = sqlite_options(spec.max_connections.saturating_sub(1).max(1)).connect_lazy_with(options);
                return Ok(Self {
                    pool: Pool::Sqlite(main),
                    readers: Some(Pool::Sqlite(readers)),
                    write_gate: Default::default(),
                });
            }
            DbDriver::Postgres => {
                let dsn = spec.dsn.as_ref().ok_or(DbError::Unavailable(ErrorKind::InvalidDsn))?;
                let options = PgConnectOptions::from_str(dsn.as_str())
                    .map_err(|_| DbError::Unavailable(ErrorKind::InvalidDsn))?;
                probe::<sqlx::PgConnection>(&options, spec.connect_timeout).await?;
                Pool::Postgres(
                    PgPoolOptions::new()
                        .max_connections(spec.max_connections)
                        .min_connections(0)
                        .idle_timeout(spec.idle_timeout)
                        // An idle connection to a server that went away fails its query at
                        // once (and is dropped on release); with the ping sqlx would instead
                        // retry refused reconnects until `acquire_timeout`.
                        .test_before_acquire(false)
                        .acquire_timeout(spec.acquire_timeout)
                        .connect_with(options)
                        .await
                        .map_err(unavailable)?,
                )
            }
            DbDriver::Mysql => {
                let dsn = spec.dsn.as_ref().ok_or(DbError::Unavailable(ErrorKind::InvalidDsn))?;
                let options = MySqlConnectOptions::from_str(dsn.as_str())
                    .map_err(|_| DbError::Unavailable(ErrorKind::InvalidDsn))?;
                probe::<sqlx::MySqlConnection>(&options, spec.connect_timeout).await?;
                Pool::MySql(
                    MySqlPoolOptions::new()
                        .max_connections(spec.max_connections)
                        .min_connections(0)
                        .idle_timeout(spec.idle_timeout)
                        .test_before_acquire(false)
                        .acquire_timeout(spec.acquire_timeout)
                        .connect_with(options)
                        .await
                        .map_err(unavailable)?,
                )
            }
        };
        Ok(Self {
            pool,
            readers: None,
            write_gate: Default::default(),
        })
    }

    /// This database as seen through its pool for long reads (on SQLite; the same handle
    /// elsewhere): what an export, a search or an import runs on, so it never holds the
    /// connection that serves the token traffic.
    pub fn readers(&self) -> TenantDb {
        TenantDb {
            pool: self.readers.clone().unwrap_or_else(|| self.pool.clone()),
            readers: None,
            write_gate: self.write_gate.clone(),
        }
    }

    /// Held for the length of a write transaction; only SQLite needs it.
    pub async fn write_gate(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.pool {
            Pool::Sqlite(_) => Some(self.write_gate.lock().await),
            _ => None,
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Whether two handles share one pool.
    pub fn same_pool(&self, other: &TenantDb) -> bool {
        std::sync::Arc::ptr_eq(&self.write_gate, &other.write_gate)
    }

    /// How many handles (clones) of this pool exist: 1 means only its owner holds it.
    pub fn handles(&self) -> usize {
        std::sync::Arc::strong_count(&self.write_gate)
    }

    /// Connections the pool holds now (idle and in use).
    pub fn size(&self) -> u32 {
        let readers = match self.readers {
            Some(_) => on_pool!(self.readers(), p => p.size()),
            None => 0,
        };
        on_pool!(self, p => p.size()) + readers
    }

    /// For PostgreSQL/MySQL: one fresh connection to the server, made and closed, within
    /// `timeout` (a refused connection fails at once). SQLite always answers `Ok`.
    pub async fn probe(&self, timeout: Duration) -> Result<(), DbError> {
        match &self.pool {
            Pool::Sqlite(_) => Ok(()),
            Pool::Postgres(p) => probe::<sqlx::PgConnection>(&p.connect_options(), timeout).await,
            Pool::MySql(p) => probe::<sqlx::MySqlConnection>(&p.connect_options(), timeout).await,
        }
    }

    /// One round trip (`SELECT 1`) through the pool: whether the database answers now.
    pub async fn ping(&self) -> Result<(), DbError> {
        let sql = self.sql("SELECT 1");
        on_pool!(self, p => sqlx::query(sql).execute(p).await.map(|_| ())).map_err(query_err)
    }

    /// The tenant id this database is stamped for, if any. A database whose schema
    /// predates the stamp (no `tenant_owner` table) has none.
    pub async fn owner(&self) -> Result<Option<String>, DbError> {
        let sql = self.sql("SELECT tenant_id FROM tenant_owner WHERE singleton = 1");
        match on_pool!(self, p => sqlx::query_scalar::<_, String>(sql).fetch_optional(p).await) {
            Ok(owner) => Ok(owner),
            Err(sqlx::Error::Database(_)) => Ok(None),
            Err(e) => Err(query_err(e)),
        }
    }

    /// Stamps an unstamped database for `tenant_id` and refuses one stamped for another
    /// tenant (`owned_by_other_tenant`). Two nodes stamping at once: one insert wins, the
    /// other reads the winner.
    pub async fn claim_owner(&self, tenant_id: uuid::Uuid) -> Result<(), DbError> {
        let ours = tenant_id.to_string();
        for _ in 0..2 {
            match self.owner().await? {
                Some(owner) if owner == ours => return Ok(()),
                Some(_) => return Err(DbError::Unavailable(ErrorKind::OwnedByOtherTenant)),
                None => {}
            }
            let sql = self.sql("INSERT INTO tenant_owner (singleton, tenant_id, stamped_at) VALUES (1, ?, ?)");
            let now = to_micros(Utc::now());
            match on_pool!(self, p => sqlx::query(sql).bind(&ours).bind(now).execute(p).await.map(|_| ())) {
                Ok(_) => return Ok(()),
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => continue,
                Err(e) => return Err(query_err(e)),
            }
        }
        Err(DbError::Unavailable(ErrorKind::OwnedByOtherTenant))
    }

    /// Ends every sign-in the database holds (sessions, refresh tokens, authorization
    /// codes, trusted devices, emailed links): used when a tenant adopts a database that
    /// another tenant issued them for. Users, credentials and second factors stay.
    /// Answers the sessions and refresh tokens removed.
    pub async fn end_all_sign_ins(&self) -> Result<u64, DbError> {
        let _gate = self.write_gate().await;
        let mut ended = 0;
        for table in [
            "refresh_tokens",
            "sessions",
            "authorization_codes",
            "trusted_devices",
            "email_tokens",
        ] {
            let sql = self.sql(&format!("DELETE FROM {table}"));
            let done =
                on_pool!(self, p => sqlx::query(sql).execute(p).await.map(|r| r.rows_affected())).map_err(query_err)?;
            if matches!(table, "refresh_tokens" | "sessions") {
                ended += done;
            }
        }
        Ok(ended)
    }

    /// Re-stamps the database for `tenant_id` (the admin's explicit adopt); answers the
    /// previous owner. When that was another tenant, its sign-ins (sessions, refresh
    /// tokens, codes, trusted devices, mailed links) end first: before the new owner can
    /// use the database, and so that a failure leaves the old stamp for a retried adopt
    /// to finish, never a database adopted with the old tokens still good.
    pub async fn restamp(&self, tenant_id: uuid::Uuid) -> Result<Option<String>, DbError> {
        let previous = self.owner().await?;
        let now = to_micros(Utc::now());
        let id = tenant_id.to_string();
        if previous.as_deref().is_some_and(|p| p != id) {
            self.end_all_sign_ins().await?;
        }
        let sql = match previous {
            Some(_) => self.sql("UPDATE tenant_owner SET tenant_id = ?, stamped_at = ? WHERE singleton = 1"),
            None => self.sql("INSERT INTO tenant_owner (tenant_id, stamped_at, singleton) VALUES (?, ?, 1)"),
        };
        on_pool!(self, p => sqlx::query(sql).bind(&id).bind(now).execute(p).await.map(|_| ())).map_err(query_err)?;
        Ok(previous)
    }

    pub fn dialect(&self) -> Dialect {
        match self.pool {
            Pool::Sqlite(_) => Dialect::Sqlite,
            Pool::Postgres(_) => Dialect::Postgres,
            Pool::MySql(_) => Dialect::MySql,
        }
    }

    /// The query text for this dialect: `?` placeholders become `$1..$n` on PostgreSQL.
    pub fn sql(&self, text: &str) -> AssertSqlSafe<String> {
        AssertSqlSafe(placeholders(self.dialect(), text))
    }

    /// Quotes an identifier for this dialect. Callers pass validated names only; quoting is
    /// a second line of defence.
    pub fn quote(&self, ident: &str) -> String {
        match self.dialect() {
            // SQLite takes grave accents too, and unlike double quotes they never fall
            // back to a string literal: a connection whose schema predates a new column
            // must fail to prepare (and reload its schema) rather than read the text
            // "cf_x" under a column named `"cf_x"`.
            Dialect::MySql | Dialect::Sqlite => format!("`{}`", ident.replace('`', "``")),
            Dialect::Postgres => format!("\"{}\"", ident.replace('"', "\"\"")),
        }
    }

    /// Closes every connection (waits for checked-out ones to come back).
    pub async fn close(&self) {
        if self.readers.is_some() {
            on_pool!(self.readers(), p => p.close().await)
        }
        on_pool!(self, p => p.close().await)
    }

    /// Applies pending migrations under the driver's lock: `pg_advisory_lock` on
    /// PostgreSQL, `GET_LOCK` on MySQL, an exclusive file lock beside the SQLite file.
    /// A database with migrations this binary does not know is refused (`schema_too_new`).
    pub async fn migrate(
        &self,
        schema: Schema,
        sqlite_path: Option<&std::path::Path>,
    ) -> Result<SchemaStatus, DbError> {
        let migrator = migrator(schema, self.dialect());
        let result = match &self.pool {
            Pool::Sqlite(p) => {
                let lock_path = sqlite_path.map(|path| path.with_extension("migrate-lock"));
                let guard = match lock_path {
                    Some(lock_path) => Some(
                        tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
                            let file = std::fs::OpenOptions::new()
                                .create(true)
                                .truncate(false)
                                .write(true)
                                .open(lock_path)?;
                            file.lock()?;
                            Ok(file)
                        })
                        .await
                        .map_err(|_| DbError::Unavailable(ErrorKind::MigrationFailed))?
                        .map_err(|_| DbError::Unavailable(ErrorKind::MigrationFailed))?,
                    ),
                    None => None,
                };
                let result = migrator.run(p).await;
                drop(guard);
                result
            }
            Pool::Postgres(p) => migrator.run(p).await,
            Pool::MySql(p) => {
                // MariaDB reads sqlx's `GET_LOCK(name, -1)` as "do not wait", so take a
                // waiting lock of our own on the same connection first.
                let mut conn = p.acquire().await.map_err(|e| DbError::Unavailable(classify(&e)))?;
                sqlx::query("SELECT GET_LOCK('tenantry_migrate', 120)")
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| DbError::Unavailable(classify(&e)))?;
                let result = match finish_interrupted_mysql_migration(&mut conn, migrator).await {
                    Ok(()) => migrator.run_direct(None, &mut *conn, false).await,
                    Err(e) => Err(sqlx::migrate::MigrateError::Execute(e)),
                };
                let _ = sqlx::query("SELECT RELEASE_LOCK('tenantry_migrate')")
                    .execute(&mut *conn)
                    .await;
                result
            }
        };
        result.map_err(|e| {
            let kind = match &e {
                sqlx::migrate::MigrateError::VersionMissing(_) => ErrorKind::SchemaTooNew,
                sqlx::migrate::MigrateError::Execute(inner) => match classify(inner) {
                    ErrorKind::Other => ErrorKind::MigrationFailed,
                    kind => kind,
                },
                _ => ErrorKind::MigrationFailed,
            };
            tracing::warn!(kind = kind.as_str(), error = %e, "tenant database migration refused or failed");
            DbError::Unavailable(kind)
        })?;
        self.schema_status(schema).await
    }

    /// The applied schema version and what this binary would apply.
    pub async fn schema_status(&self, schema: Schema) -> Result<SchemaStatus, DbError> {
        let sql = self.sql("SELECT version FROM _sqlx_migrations WHERE success = ? ORDER BY version");
        let applied: Vec<i64> =
            on_pool!(self, p => sqlx::query_scalar(sql).bind(true).fetch_all(p).await).unwrap_or_default();
        let known: Vec<i64> = migrator(schema, self.dialect()).iter().map(|m| m.version).collect();
        let latest_known = known.iter().copied().max().unwrap_or(0);
        Ok(SchemaStatus {
            version: applied.iter().copied().max().unwrap_or(0),
            latest_known,
            pending: known.iter().filter(|v| !applied.contains(v)).count(),
            unknown_applied: applied.iter().filter(|v| !known.contains(v)).count(),
        })
    }
}

/// One direct connection within `timeout`, closed again: a refused connection or an
/// unknown host fails now instead of being retried by the pool.
async fn probe<C: sqlx::Connection>(options: &C::Options, timeout: Duration) -> Result<(), DbError> {
    match tokio::time::timeout(timeout, C::connect_with(options)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(e)) => {
            let kind = classify(&e);
            tracing::warn!(kind = kind.as_str(), error = %e, "tenant database did not answer");
            Err(DbError::Unavailable(kind))
        }
        Err(_) => Err(DbError::Unavailable(ErrorKind::Unreachable)),
    }
}

/// The schema version of one database.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct SchemaStatus {
    /// Highest applied migration (0 = empty database).
    pub version: i64,
    /// Highest migration this binary carries.
    pub latest_known: i64,
    /// Migrations this binary would still apply.
    pub pending: usize,
    /// Applied migrations this binary does not know (> 0 means a newer binary wrote it).
    pub unknown_applied: usize,
}

static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");
/// MySQL commits every DDL statement by itself, so a migration stopped midway (a killed
/// process, a lost connection) leaves some of its statements applied and its row in
/// `_sqlx_migrations` unfinished (`success = FALSE`), which sqlx then refuses for good.
/// This finishes it: its statements run again in order, a refusal that says the change is
/// already there (the column, index or table exists, or is already gone) counts as done,
/// and the row is marked finished. Our MySQL migrations are plain DDL and inserts, one
/// statement per `;` line end, so re-running a statement that took effect changes nothing.
async fn finish_interrupted_mysql_migration(
    conn: &mut sqlx::MySqlConnection,
    migrator: &Migrator,
) -> Result<(), sqlx::Error> {
    let unfinished = sqlx::query_scalar::<_, i64>(
        "SELECT version FROM _sqlx_migrations WHERE success = FALSE ORDER BY version LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await;
    let version = match unfinished {
        Ok(Some(version)) => version,
        Ok(None) => return Ok(()),
        // No bookkeeping table yet: nothing ever ran.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42S02") => return Ok(()),
        Err(e) => return Err(e),
    };
    // A version this build does not know: sqlx reports it.
    let Some(migration) = migrator.iter().find(|m| m.version == version) else {
        return Ok(());
    };
    tracing::warn!(version, "finishing a tenant database migration that was interrupted");
    for statement in sql_statements(migration.sql.as_str()) {
        match sqlx::raw_sql(AssertSqlSafe(statement)).execute(&mut *conn).await {
            Ok(_) => {}
            Err(sqlx::Error::Database(e))
                if e.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                    .is_some_and(|m| ALREADY_APPLIED.contains(&m.number())) => {}
            Err(e) => return Err(e),
        }
    }
    sqlx::query("UPDATE _sqlx_migrations SET success = TRUE WHERE version = ?")
        .bind(version)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// MySQL errors that mean a statement's change is already there: duplicate column, key or
/// entry, table exists, nothing to drop.
const ALREADY_APPLIED: [u16; 5] = [1060, 1061, 1062, 1050, 1091];

/// The statements of a migration script: split at `;` ending a line, comment lines and
/// empty statements left out.
fn sql_statements(sql: &str) -> Vec<String> {
    let text: String = sql
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .map(|line| format!("{line}\n"))
        .collect();
    text.split(";\n")
        .map(|statement| statement.trim().to_owned())
        .filter(|statement| !statement.is_empty())
        .collect()
}

static MYSQL: Migrator = sqlx::migrate!("migrations/mysql");
static GLOBAL_SQLITE: Migrator = sqlx::migrate!("migrations/global/sqlite");
static GLOBAL_POSTGRES: Migrator = sqlx::migrate!("migrations/global/postgres");
static GLOBAL_MYSQL: Migrator = sqlx::migrate!("migrations/global/mysql");

fn migrator(schema: Schema, dialect: Dialect) -> &'static Migrator {
    match (schema, dialect) {
        (Schema::Tenant, Dialect::Sqlite) => &SQLITE,
        (Schema::Tenant, Dialect::Postgres) => &POSTGRES,
        (Schema::Tenant, Dialect::MySql) => &MYSQL,
        (Schema::Global, Dialect::Sqlite) => &GLOBAL_SQLITE,
        (Schema::Global, Dialect::Postgres) => &GLOBAL_POSTGRES,
        (Schema::Global, Dialect::MySql) => &GLOBAL_MYSQL,
    }
}

/// Rewrites `?` placeholders to `$1..$n` for PostgreSQL (our SQL has no `?` in literals).
pub fn placeholders(dialect: Dialect, text: &str) -> String {
    if dialect != Dialect::Postgres {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut n = 0;
    for c in text.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres_only() {
        assert_eq!(placeholders(Dialect::Postgres, "a = ? AND b = ?"), "a = $1 AND b = $2");
        assert_eq!(placeholders(Dialect::MySql, "a = ?"), "a = ?");
    }

    #[test]
    fn mysql_migrations_split_into_their_statements() {
        let statements = sql_statements(
            "-- note; with a semicolon\nALTER TABLE t ADD COLUMN a INT;\n\nCREATE INDEX i\n  ON t (a);\n",
        );
        assert_eq!(
            statements,
            ["ALTER TABLE t ADD COLUMN a INT", "CREATE INDEX i\n  ON t (a)"]
        );
        for migration in MYSQL.iter() {
            let statements = sql_statements(migration.sql.as_str());
            assert!(!statements.is_empty(), "{}", migration.description);
            // One statement each: a `;` inside one would mean the split is wrong.
            assert!(statements.iter().all(|s| !s.contains(';')), "{}", migration.description);
        }
    }

    #[test]
    fn micros_round_trip() {
        let t = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        assert_eq!(from_micros(to_micros(t)), t);
    }
}
