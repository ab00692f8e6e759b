//! Removing what no request can use any more: rows past their expiry (plus a grace period
//! for clock skew) in the tables that only grow otherwise. Batched and bounded, so a pass
//! never holds a table for long and never runs away on a tenant with a large backlog.

use chrono::{DateTime, Utc};

use crate::db::{DbError, Dialect, TenantDb, query_err, to_micros};
use crate::on_pool;

/// A table a sweep keeps small: its key (what a batch selects) and its expiry column.
/// A row past `expires_at` is refused by every reader already, so removing it changes no
/// answer: codes, refresh tokens, denied access tokens, spent assertion ids, mailed links,
/// remembered devices, sessions and WebAuthn challenges.
const SWEPT: &[(&str, &str)] = &[
    ("authorization_codes", "code_hash"),
    ("refresh_tokens", "token_hash"),
    ("revoked_access_tokens", "jti"),
    ("client_assertion_jtis", "client_id, jti"),
    ("spent_upstream_states", "state_hash"),
    ("email_tokens", "token_hash"),
    ("trusted_devices", "token_hash"),
    ("sessions", "id_hash"),
    ("webauthn_challenges", "challenge_hash"),
];

/// How much a sweep may do.
#[derive(Debug, Clone, Copy)]
pub struct SweepLimits {
    /// Rows removed by one statement.
    pub batch: u32,
    /// Statements per table in one pass; what is left waits for the next pass.
    pub max_batches: u32,
    /// How long past its expiry a row stays (clock skew between nodes and databases).
    pub grace: chrono::Duration,
}

impl Default for SweepLimits {
    fn default() -> Self {
        Self {
            batch: 1000,
            max_batches: 20,
            grace: chrono::Duration::minutes(10),
        }
    }
}

impl TenantDb {
    /// One pass over the swept tables at `now`: how many rows each lost.
    pub async fn sweep(&self, now: DateTime<Utc>, limits: SweepLimits) -> Result<Vec<(&'static str, u64)>, DbError> {
        let cutoff = to_micros(now - limits.grace);
        let batch = i64::from(limits.batch.max(1));
        let mut removed = Vec::with_capacity(SWEPT.len());
        for (table, key) in SWEPT {
            let text = match self.dialect() {
                // MySQL refuses LIMIT in an IN subquery but takes it on DELETE itself.
                Dialect::MySql => format!("DELETE FROM {table} WHERE expires_at < ? LIMIT ?"),
                Dialect::Sqlite | Dialect::Postgres => format!(
                    "DELETE FROM {table} WHERE ({key}) IN (SELECT {key} FROM {table} WHERE expires_at < ? LIMIT ?)"
                ),
            };
            let mut total = 0u64;
            for _ in 0..limits.max_batches {
                let sql = self.sql(&text);
                let gate = self.write_gate().await;
                let n = on_pool!(self, p => sqlx::query(sql).bind(cutoff).bind(batch).execute(p).await.map(|r| r.rows_affected()))
                    .map_err(query_err)?;
                drop(gate);
                total += n;
                if n < batch as u64 {
                    break;
                }
            }
            removed.push((*table, total));
        }
        Ok(removed)
    }
}
