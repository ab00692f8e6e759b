//! Role assignments and audit events.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
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
