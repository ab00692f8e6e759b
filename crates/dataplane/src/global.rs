//! The optional global database (`global_db_url`): installation-wide data only — admin
//! audit events and admin sessions. It never holds a tenant's users, and no tenant route
//! falls back to it.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tenantry_controlplane::model::DbDriver;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::db::{DbError, ErrorKind, OpenSpec, Schema, TenantDb, from_micros, query_err, to_micros};
use crate::on_pool;

/// One admin audit event.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AdminAuditEvent {
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub admin_id: Option<Uuid>,
    pub action: String,
    pub tenant: Option<String>,
    pub request_id: Option<String>,
    pub details: Value,
}

#[derive(Debug, Clone)]
pub struct GlobalDb {
    db: TenantDb,
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: Uuid,
    occurred_at: i64,
    admin_id: Option<Uuid>,
    action: String,
    tenant: Option<String>,
    request_id: Option<String>,
    details: String,
}

impl GlobalDb {
    /// Connects to `url` (`sqlite:PATH`, `postgres://…` or `mysql://…`) and migrates it.
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        let scheme = url.split(':').next().unwrap_or("");
        let (driver, sqlite_path, dsn) = match scheme {
            "sqlite" => {
                let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
                (DbDriver::Sqlite, Some(std::path::PathBuf::from(path)), None)
            }
            "postgres" | "postgresql" => (DbDriver::Postgres, None, Some(Zeroizing::new(url.to_owned()))),
            "mysql" | "mariadb" => (
                DbDriver::Mysql,
                None,
                Some(Zeroizing::new(url.replacen("mariadb:", "mysql:", 1))),
            ),
            _ => return Err(DbError::Unavailable(ErrorKind::InvalidDsn)),
        };
        let _ = url::Url::from_str(url).map_err(|_| DbError::Unavailable(ErrorKind::InvalidDsn))?;
        let spec = OpenSpec {
            driver,
            sqlite_path: sqlite_path.clone(),
            dsn,
            max_connections: 4,
            acquire_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
        };
        let db = TenantDb::connect(&spec).await?;
        db.migrate(Schema::Global, sqlite_path.as_deref()).await?;
        Ok(Self { db })
    }

    /// One round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), DbError> {
        self.db.ping().await
    }

    pub async fn record_admin_event(
        &self,
        admin_id: Option<Uuid>,
        action: &str,
        tenant: Option<&str>,
        request_id: Option<&str>,
        details: Value,
    ) -> Result<Uuid, DbError> {
        let id = Uuid::now_v7();
        let db = &self.db;
        let sql = db.sql("INSERT INTO admin_audit_events (id, occurred_at, admin_id, action, tenant, request_id, details) VALUES (?, ?, ?, ?, ?, ?, ?)");
        on_pool!(db, p => sqlx::query(sql).bind(id).bind(to_micros(Utc::now())).bind(admin_id).bind(action).bind(tenant).bind(request_id).bind(details.to_string()).execute(p).await.map(|_| ()))
            .map_err(query_err)?;
        Ok(id)
    }

    /// Stores an admin session (by the hash of its id) until `expires_at`.
    pub async fn create_admin_session(
        &self,
        id_hash: &str,
        admin_id: Uuid,
        expires_at: DateTime<Utc>,
    ) -> Result<(), DbError> {
        let db = &self.db;
        let sql = db.sql("INSERT INTO admin_sessions (id_hash, admin_id, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, NULL)");
        on_pool!(db, p => sqlx::query(sql).bind(id_hash).bind(admin_id).bind(to_micros(Utc::now())).bind(to_micros(expires_at)).execute(p).await.map(|_| ()))
            .map_err(query_err)
    }

    /// The admin of a live (not revoked, not expired) session.
    pub async fn admin_session(&self, id_hash: &str, now: DateTime<Utc>) -> Result<Option<Uuid>, DbError> {
        let db = &self.db;
        let sql =
            db.sql("SELECT admin_id FROM admin_sessions WHERE id_hash = ? AND revoked_at IS NULL AND expires_at > ?");
        on_pool!(db, p => sqlx::query_scalar::<_, Uuid>(sql).bind(id_hash).bind(to_micros(now)).fetch_optional(p).await)
            .map_err(query_err)
    }

    pub async fn revoke_admin_session(&self, id_hash: &str) -> Result<bool, DbError> {
        let db = &self.db;
        let sql = db.sql("UPDATE admin_sessions SET revoked_at = ? WHERE id_hash = ? AND revoked_at IS NULL");
        let n = on_pool!(db, p => sqlx::query(sql).bind(to_micros(Utc::now())).bind(id_hash).execute(p).await.map(|r| r.rows_affected())).map_err(query_err)?;
        Ok(n > 0)
    }

    /// Most recent first.
    pub async fn admin_events(&self, limit: u32) -> Result<Vec<AdminAuditEvent>, DbError> {
        let db = &self.db;
        let sql = db.sql("SELECT id, occurred_at, admin_id, action, tenant, request_id, details FROM admin_audit_events ORDER BY occurred_at DESC, id DESC LIMIT ?");
        let rows: Vec<AuditRow> =
            on_pool!(db, p => sqlx::query_as(sql).bind(i64::from(limit.clamp(1, 1000))).fetch_all(p).await)
                .map_err(query_err)?;
        Ok(rows
            .into_iter()
            .map(|r| AdminAuditEvent {
                id: r.id,
                occurred_at: from_micros(r.occurred_at),
                admin_id: r.admin_id,
                action: r.action,
                tenant: r.tenant,
                request_id: r.request_id,
                details: serde_json::from_str(&r.details).unwrap_or(Value::Null),
            })
            .collect())
    }
}
