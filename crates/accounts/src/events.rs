//! Recording the tenant's security events (`tenantry_dataplane::audit`): sign-ins and
//! their failures, lockouts, second factors, password and email changes, refresh-token
//! replays.
//!
//! Where a request comes from (address, user agent, request id) is the same for every
//! event it records, so the HTTP crate sets it once per request ([`with_origin`], a task
//! local like a tracing span) and [`record`] reads it; no flow passes it along by hand.
//! Recording never fails the request: an event that cannot be written is logged.

use chrono::Utc;
use serde_json::Value;
use tenantry_dataplane::{AuditRepository, Outcome, SecurityEvent, TenantDb};
use uuid::Uuid;

use crate::login::SessionOrigin;

tokio::task_local! {
    static ORIGIN: SessionOrigin;
}

/// Runs `request` with `origin` as the origin of every event it records.
pub async fn with_origin<F: std::future::Future>(origin: SessionOrigin, request: F) -> F::Output {
    ORIGIN.scope(origin, request).await
}

/// The origin of the request being served (empty outside one).
pub fn current_origin() -> SessionOrigin {
    ORIGIN.try_with(Clone::clone).unwrap_or_default()
}

/// One event to record.
#[derive(Debug, Clone)]
pub struct Event {
    pub action: &'static str,
    pub outcome: Option<Outcome>,
    pub user: Option<Uuid>,
    pub actor: Option<String>,
    pub target: Option<String>,
    pub details: Value,
}

impl Event {
    /// An event about `user`, done by the user themself.
    pub fn by_user(action: &'static str, outcome: Outcome, user: Uuid) -> Self {
        Self {
            action,
            outcome: Some(outcome),
            user: Some(user),
            actor: Some(format!("user:{user}")),
            target: Some(format!("user:{user}")),
            details: Value::Object(Default::default()),
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

/// Writes `event` to the tenant's trail with the current request's origin.
pub async fn record(db: &TenantDb, event: Event) {
    let origin = current_origin();
    let stored = SecurityEvent {
        id: Uuid::now_v7(),
        occurred_at: Utc::now(),
        action: event.action.to_owned(),
        outcome: event.outcome,
        user_id: event.user,
        actor: event.actor,
        target: event.target,
        ip: origin.ip.map(|ip| ip.to_string()),
        user_agent: origin.user_agent,
        request_id: origin.request_id,
        details: event.details,
    };
    if let Err(e) = db.record_event(&stored).await {
        tracing::warn!(action = event.action, error = %e, "security event not recorded");
    }
}

/// Deletes the events of `db` older than `retention_days`; returns how many.
pub async fn purge_expired(db: &TenantDb, retention_days: u32, now: chrono::DateTime<Utc>) -> u64 {
    let cutoff = now - chrono::Duration::days(i64::from(retention_days));
    match db.purge_events_before(cutoff).await {
        Ok(purged) => purged,
        Err(e) => {
            tracing::warn!(error = %e, "security events not purged");
            0
        }
    }
}
