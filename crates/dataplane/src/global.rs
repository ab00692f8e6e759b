//! The optional global database (`global_db_url`): installation-wide data only — the
//! audit trail of admin actions. It never holds a tenant's users, and no tenant route
//! falls back to it.
//!
//! Its `admin_sessions` table (global schema 0001) is unused: admin sessions are
//! control-plane state (`AdminSession`, replicated like the admins they belong to). The
//! migration has run on real installs, so it stays as it is and nothing drops the table.

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
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct AdminAuditEvent {
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub admin_id: Option<Uuid>,
    pub action: String,
    pub tenant: Option<String>,
    /// What the action was done to: `user:<id>`, `client:<id>`, `admin:<id>`, ...
    pub target: Option<String>,
    pub request_id: Option<String>,
    #[schema(value_type = Object)]
    pub details: Value,
}

/// Which admin audit events to list; every field that is set narrows the list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    pub admin_id: Option<Uuid>,
    pub action: Option<String>,
    pub tenant: Option<String>,
    pub target: Option<String>,
    /// Events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Events before this time.
    pub until: Option<DateTime<Utc>>,
    /// The time and id of the last event of the previous page.
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: u32,
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
    target: Option<String>,
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
        target: Option<&str>,
        request_id: Option<&str>,
        details: Value,
    ) -> Result<Uuid, DbError> {
        let id = Uuid::now_v7();
        let db = &self.db;
        let target: Option<String> = target.map(|t| t.chars().take(255).collect());
        let sql = db.sql("INSERT INTO admin_audit_events (id, occurred_at, admin_id, action, tenant, target, request_id, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
        on_pool!(db, p => sqlx::query(sql).bind(id).bind(to_micros(Utc::now())).bind(admin_id).bind(action).bind(tenant).bind(&target).bind(request_id).bind(details.to_string()).execute(p).await.map(|_| ()))
            .map_err(query_err)?;
        Ok(id)
    }

    /// The most recent `limit` events, most recent first.
    pub async fn admin_events(&self, limit: u32) -> Result<Vec<AdminAuditEvent>, DbError> {
        self.admin_event_page(&AuditFilter {
            limit,
            ..AuditFilter::default()
        })
        .await
    }

    /// One page of the events `filter` selects, most recent first (`limit` clamped to
    /// 1–1000). The next page starts after the last event of this one (`AuditFilter::after`).
    pub async fn admin_event_page(&self, filter: &AuditFilter) -> Result<Vec<AdminAuditEvent>, DbError> {
        let db = &self.db;
        let mut sql = String::from(
            "SELECT id, occurred_at, admin_id, action, tenant, target, request_id, details FROM admin_audit_events WHERE 1 = 1",
        );
        for (present, condition) in [
            (filter.admin_id.is_some(), " AND admin_id = ?"),
            (filter.action.is_some(), " AND action = ?"),
            (filter.tenant.is_some(), " AND tenant = ?"),
            (filter.target.is_some(), " AND target = ?"),
            (filter.since.is_some(), " AND occurred_at >= ?"),
            (filter.until.is_some(), " AND occurred_at < ?"),
            (
                filter.after.is_some(),
                " AND (occurred_at < ? OR (occurred_at = ? AND id < ?))",
            ),
        ] {
            if present {
                sql.push_str(condition);
            }
        }
        sql.push_str(" ORDER BY occurred_at DESC, id DESC LIMIT ?");
        let sql = db.sql(&sql);
        let limit = i64::from(filter.limit.clamp(1, 1000));
        let rows: Vec<AuditRow> = on_pool!(db, p => {
            let mut query = sqlx::query_as(sql);
            if let Some(admin_id) = filter.admin_id {
                query = query.bind(admin_id);
            }
            if let Some(action) = &filter.action {
                query = query.bind(action);
            }
            if let Some(tenant) = &filter.tenant {
                query = query.bind(tenant);
            }
            if let Some(target) = &filter.target {
                query = query.bind(target);
            }
            if let Some(since) = filter.since {
                query = query.bind(to_micros(since));
            }
            if let Some(until) = filter.until {
                query = query.bind(to_micros(until));
            }
            if let Some((at, id)) = filter.after {
                query = query.bind(to_micros(at)).bind(to_micros(at)).bind(id);
            }
            query.bind(limit).fetch_all(p).await
        })
        .map_err(query_err)?;
        Ok(rows
            .into_iter()
            .map(|r| AdminAuditEvent {
                id: r.id,
                occurred_at: from_micros(r.occurred_at),
                admin_id: r.admin_id,
                action: r.action,
                tenant: r.tenant,
                target: r.target,
                request_id: r.request_id,
                details: serde_json::from_str(&r.details).unwrap_or(Value::Null),
            })
            .collect())
    }
}
