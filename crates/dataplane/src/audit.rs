//! The tenant's audit trail of security events (`audit_events`): sign-ins and their
//! failures, lockouts, second factors enrolled, removed or replaced by a recovery code,
//! password changes and resets, email verification, refresh-token replays. Each event
//! says who acted, on what, from which address and browser, in which request, and with
//! which outcome. Kept in the tenant's own database (it is the tenant's data); purged
//! after the tenant's retention period.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::db::{DbError, TenantDb, from_micros, query_err, to_micros};
use crate::on_pool;

/// Whether the attempt an event records succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

/// One security event.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SecurityEvent {
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    /// A stable verb: `login`, `account_locked`, `mfa_enabled`, `password_reset`, ...
    pub action: String,
    pub outcome: Option<Outcome>,
    /// The user the event is about, when known.
    pub user_id: Option<Uuid>,
    /// Who acted: `user:<id>`, `client:<id>`, `admin:<id>`, or the email a failed sign-in
    /// named.
    pub actor: Option<String>,
    /// What was acted on (a user, a client, a session).
    pub target: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    #[schema(value_type = Object)]
    pub details: Value,
}

/// Which events a page holds; every part optional.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub action: Option<String>,
    pub user_id: Option<Uuid>,
    pub actor: Option<String>,
    pub target: Option<String>,
    /// Events at or after it.
    pub since: Option<DateTime<Utc>>,
    /// Events before it.
    pub until: Option<DateTime<Utc>>,
    /// The last event of the previous page (time, id): the page continues after it.
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: u32,
}

#[async_trait]
pub trait AuditRepository {
    async fn record_event(&self, event: &SecurityEvent) -> Result<(), DbError>;
    /// One page, most recent first (`limit` clamped to 1–1000).
    async fn events(&self, filter: &EventFilter) -> Result<Vec<SecurityEvent>, DbError>;
    /// Deletes the events older than `cutoff`; returns how many.
    async fn purge_events_before(&self, cutoff: DateTime<Utc>) -> Result<u64, DbError>;
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: Uuid,
    occurred_at: i64,
    kind: String,
    outcome: Option<String>,
    user_id: Option<Uuid>,
    actor: Option<String>,
    target: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    request_id: Option<String>,
    details: String,
}

impl From<EventRow> for SecurityEvent {
    fn from(r: EventRow) -> Self {
        SecurityEvent {
            id: r.id,
            occurred_at: from_micros(r.occurred_at),
            action: r.kind,
            outcome: match r.outcome.as_deref() {
                Some("success") => Some(Outcome::Success),
                Some("failure") => Some(Outcome::Failure),
                _ => None,
            },
            user_id: r.user_id,
            actor: r.actor,
            target: r.target,
            ip: r.ip,
            user_agent: r.user_agent,
            request_id: r.request_id,
            details: serde_json::from_str(&r.details).unwrap_or(Value::Null),
        }
    }
}

/// Text cut to what its column holds, without control characters (a caller's text such
/// as a sign-in's email may hold a NUL, which PostgreSQL cannot store; the event must be
/// recorded all the same).
fn bounded(text: &Option<String>, max: usize) -> Option<String> {
    text.as_ref()
        .map(|t| t.chars().filter(|c| !c.is_control()).take(max).collect())
}

#[async_trait]
impl AuditRepository for TenantDb {
    async fn record_event(&self, e: &SecurityEvent) -> Result<(), DbError> {
        let sql = self.sql(
            "INSERT INTO audit_events (id, occurred_at, kind, outcome, user_id, actor, target, ip, user_agent, request_id, details) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        );
        let action: String = e.action.chars().take(64).collect();
        on_pool!(self, p => sqlx::query(sql)
            .bind(e.id).bind(to_micros(e.occurred_at)).bind(&action).bind(e.outcome.map(Outcome::as_str))
            .bind(e.user_id).bind(bounded(&e.actor, 255)).bind(bounded(&e.target, 255)).bind(bounded(&e.ip, 64))
            .bind(bounded(&e.user_agent, 512)).bind(bounded(&e.request_id, 64)).bind(e.details.to_string())
            .execute(p).await.map(|_| ()))
        .map_err(query_err)
    }

    async fn events(&self, filter: &EventFilter) -> Result<Vec<SecurityEvent>, DbError> {
        let mut sql = String::from(
            "SELECT id, occurred_at, kind, outcome, user_id, actor, target, ip, user_agent, request_id, details \
             FROM audit_events WHERE 1 = 1",
        );
        for (present, condition) in [
            (filter.action.is_some(), " AND kind = ?"),
            (filter.user_id.is_some(), " AND user_id = ?"),
            (filter.actor.is_some(), " AND actor = ?"),
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
        let sql = self.sql(&sql);
        let limit = i64::from(filter.limit.clamp(1, 1000));
        let rows: Vec<EventRow> = on_pool!(self.readers(), p => {
            let mut query = sqlx::query_as(sql);
            if let Some(action) = &filter.action {
                query = query.bind(action);
            }
            if let Some(user_id) = filter.user_id {
                query = query.bind(user_id);
            }
            if let Some(actor) = &filter.actor {
                query = query.bind(actor);
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
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn purge_events_before(&self, cutoff: DateTime<Utc>) -> Result<u64, DbError> {
        let sql = self.sql("DELETE FROM audit_events WHERE occurred_at < ?");
        on_pool!(self, p => sqlx::query(sql).bind(to_micros(cutoff)).execute(p).await.map(|r| r.rows_affected()))
            .map_err(query_err)
    }
}
