//! Role assignments: which of a tenant's roles each user holds (`user_roles`).
//!
//! No caller yet: this is the storage side of the admin issue's roles-and-permissions
//! management (CRUD of roles, assigning them to users), kept for it. The roles themselves
//! (names, permissions) are control-plane configuration; only the assignment of a role to
//! a user is operational data, in the tenant's own database.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::{DbError, TenantDb, query_err, to_micros};
use crate::on_pool;

#[async_trait]
pub trait RoleRepository {
    /// Gives `user_id` the role `role`; assigning a role the user already holds changes
    /// nothing. The role name is not checked here against the tenant's roles.
    async fn assign_role(&self, user_id: Uuid, role: &str, now: DateTime<Utc>) -> Result<(), DbError>;
    /// Takes the role away; answers whether the user held it.
    async fn unassign_role(&self, user_id: Uuid, role: &str) -> Result<bool, DbError>;
    /// The user's roles, by name. Deleting a user deletes its assignments.
    async fn roles_of(&self, user_id: Uuid) -> Result<Vec<String>, DbError>;
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
