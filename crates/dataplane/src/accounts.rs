//! Role assignments, failed-login counters and audit events.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::db::{DbError, TenantDb, from_micros, query_err, to_micros};
use crate::model::*;
use crate::on_pool;

#[async_trait]
pub trait RoleRepository {
    async fn assign_role(&self, user_id: Uuid, role: &str, now: DateTime<Utc>) -> Result<(), DbError>;
    async fn unassign_role(&self, user_id: Uuid, role: &str) -> Result<bool, DbError>;
    async fn roles_of(&self, user_id: Uuid) -> Result<Vec<String>, DbError>;
}

#[async_trait]
pub trait LoginFailureRepository {
    /// Counts one failure inside a window of `window` (a new window starts when the old
    /// one has passed); locks the account until `now + lockout` at `max_failures`.
    async fn record_login_failure(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
        window: Duration,
        max_failures: i32,
        lockout: Duration,
    ) -> Result<LoginFailures, DbError>;
    async fn login_failures(&self, user_id: Uuid) -> Result<Option<LoginFailures>, DbError>;
    async fn clear_login_failures(&self, user_id: Uuid) -> Result<(), DbError>;
}

#[async_trait]
pub trait AuditRepository {
    async fn record_audit(
        &self,
        kind: &str,
        user_id: Option<Uuid>,
        actor: Option<&str>,
        ip: Option<&str>,
        details: Value,
        now: DateTime<Utc>,
    ) -> Result<Uuid, DbError>;
    /// Most recent first.
    async fn audit_events(&self, user_id: Option<Uuid>, limit: u32) -> Result<Vec<AuditEvent>, DbError>;
}

#[async_trait]
impl RoleRepository for TenantDb {
    async fn assign_role(&self, user_id: Uuid, role: &str, now: DateTime<Utc>) -> Result<(), DbError> {
        let sql = self.sql(match self.dialect() {
            crate::db::Dialect::MySql => "INSERT IGNORE INTO user_roles (user_id, role, assigned_at) VALUES (?, ?, ?)",
            _ => "INSERT INTO user_roles (user_id, role, assigned_at) VALUES (?, ?, ?) ON CONFLICT (user_id, role) DO NOTHING",
        });
        on_pool!(self, p => sqlx::query(sql).bind(user_id).bind(role).bind(to_micros(now)).execute(p).await.map(|_| ())).map_err(query_err)?;
        Ok(())
    }

    async fn unassign_role(&self, user_id: Uuid, role: &str) -> Result<bool, DbError> {
        let sql = self.sql("DELETE FROM user_roles WHERE user_id = ? AND role = ?");
        let n =
            on_pool!(self, p => sqlx::query(sql).bind(user_id).bind(role).execute(p).await.map(|r| r.rows_affected()))
                .map_err(query_err)?;
        Ok(n > 0)
    }

    async fn roles_of(&self, user_id: Uuid) -> Result<Vec<String>, DbError> {
        let sql = self.sql("SELECT role FROM user_roles WHERE user_id = ? ORDER BY role");
        on_pool!(self, p => sqlx::query_scalar::<_, String>(sql).bind(user_id).fetch_all(p).await).map_err(query_err)
    }
}

#[derive(sqlx::FromRow)]
struct FailureRow {
    failures: i32,
    window_started_at: i64,
    locked_until: Option<i64>,
}

impl From<FailureRow> for LoginFailures {
    fn from(r: FailureRow) -> Self {
        LoginFailures {
            failures: r.failures,
            window_started_at: from_micros(r.window_started_at),
            locked_until: r.locked_until.map(from_micros),
        }
    }
}

#[async_trait]
impl LoginFailureRepository for TenantDb {
    async fn record_login_failure(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
        window: Duration,
        max_failures: i32,
        lockout: Duration,
    ) -> Result<LoginFailures, DbError> {
        let now_us = to_micros(now);
        let window_start_min = to_micros(now - window);
        let lock_until = to_micros(now + lockout);
        // One statement per step keeps this correct under concurrency on every driver:
        // reset an expired window, count, then lock at the threshold.
        let insert = self.sql(match self.dialect() {
            crate::db::Dialect::MySql => "INSERT IGNORE INTO login_failures (user_id, failures, window_started_at, locked_until) VALUES (?, 0, ?, NULL)",
            _ => "INSERT INTO login_failures (user_id, failures, window_started_at, locked_until) VALUES (?, 0, ?, NULL) ON CONFLICT (user_id) DO NOTHING",
        });
        let reset = self.sql("UPDATE login_failures SET failures = 0, window_started_at = ? WHERE user_id = ? AND window_started_at < ? AND (locked_until IS NULL OR locked_until <= ?)");
        let count = self.sql("UPDATE login_failures SET failures = failures + 1 WHERE user_id = ?");
        let lock = self.sql("UPDATE login_failures SET locked_until = ? WHERE user_id = ? AND failures >= ? AND (locked_until IS NULL OR locked_until <= ?)");
        let fetch = self.sql("SELECT failures, window_started_at, locked_until FROM login_failures WHERE user_id = ?");
        let row: FailureRow = on_pool!(self, p => {
            let mut tx = p.begin().await.map_err(query_err)?;
            sqlx::query(insert).bind(user_id).bind(now_us).execute(&mut *tx).await.map_err(query_err)?;
            sqlx::query(reset).bind(now_us).bind(user_id).bind(window_start_min).bind(now_us).execute(&mut *tx).await.map_err(query_err)?;
            sqlx::query(count).bind(user_id).execute(&mut *tx).await.map_err(query_err)?;
            sqlx::query(lock).bind(lock_until).bind(user_id).bind(max_failures).bind(now_us).execute(&mut *tx).await.map_err(query_err)?;
            let row = sqlx::query_as(fetch).bind(user_id).fetch_one(&mut *tx).await.map_err(query_err)?;
            tx.commit().await.map_err(query_err)?;
            Ok::<_, DbError>(row)
        })?;
        Ok(row.into())
    }

    async fn login_failures(&self, user_id: Uuid) -> Result<Option<LoginFailures>, DbError> {
        let sql = self.sql("SELECT failures, window_started_at, locked_until FROM login_failures WHERE user_id = ?");
        let row: Option<FailureRow> =
            on_pool!(self, p => sqlx::query_as(sql).bind(user_id).fetch_optional(p).await).map_err(query_err)?;
        Ok(row.map(Into::into))
    }

    async fn clear_login_failures(&self, user_id: Uuid) -> Result<(), DbError> {
        let sql = self.sql("DELETE FROM login_failures WHERE user_id = ?");
        on_pool!(self, p => sqlx::query(sql).bind(user_id).execute(p).await.map(|_| ())).map_err(query_err)?;
        Ok(())
    }
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: Uuid,
    occurred_at: i64,
    kind: String,
    user_id: Option<Uuid>,
    actor: Option<String>,
    ip: Option<String>,
    details: String,
}

#[async_trait]
impl AuditRepository for TenantDb {
    async fn record_audit(
        &self,
        kind: &str,
        user_id: Option<Uuid>,
        actor: Option<&str>,
        ip: Option<&str>,
        details: Value,
        now: DateTime<Utc>,
    ) -> Result<Uuid, DbError> {
        let id = Uuid::now_v7();
        let sql = self.sql("INSERT INTO audit_events (id, occurred_at, kind, user_id, actor, ip, details) VALUES (?, ?, ?, ?, ?, ?, ?)");
        on_pool!(self, p => sqlx::query(sql).bind(id).bind(to_micros(now)).bind(kind).bind(user_id).bind(actor).bind(ip).bind(details.to_string()).execute(p).await.map(|_| ()))
            .map_err(query_err)?;
        Ok(id)
    }

    async fn audit_events(&self, user_id: Option<Uuid>, limit: u32) -> Result<Vec<AuditEvent>, DbError> {
        let limit = i64::from(limit.clamp(1, 1000));
        let rows: Vec<AuditRow> = match user_id {
            Some(uid) => {
                let sql = self.sql("SELECT id, occurred_at, kind, user_id, actor, ip, details FROM audit_events WHERE user_id = ? ORDER BY occurred_at DESC, id DESC LIMIT ?");
                on_pool!(self, p => sqlx::query_as(sql).bind(uid).bind(limit).fetch_all(p).await)
            }
            None => {
                let sql = self.sql("SELECT id, occurred_at, kind, user_id, actor, ip, details FROM audit_events ORDER BY occurred_at DESC, id DESC LIMIT ?");
                on_pool!(self, p => sqlx::query_as(sql).bind(limit).fetch_all(p).await)
            }
        }
        .map_err(query_err)?;
        Ok(rows
            .into_iter()
            .map(|r| AuditEvent {
                id: r.id,
                occurred_at: from_micros(r.occurred_at),
                kind: r.kind,
                user_id: r.user_id,
                actor: r.actor,
                ip: r.ip,
                details: serde_json::from_str(&r.details).unwrap_or(Value::Null),
            })
            .collect())
    }
}
