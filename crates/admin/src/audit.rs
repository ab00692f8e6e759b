//! Reading the audit trails: the installation's admin trail (`GET /v1/admin/audit`: who,
//! what, which tenant, a time range) and a tenant's security events
//! (`GET /v1/admin/tenants/{slug}/audit`: sign-ins, lockouts, second factors, password
//! and email changes, refresh-token replays), both most recent first with one cursor, an
//! opaque `<microseconds>.<event id>` of the last event of a page.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use tenantry_dataplane::global::AdminAuditEvent;
use tenantry_dataplane::{AuditFilter, GlobalDb};
use tenantry_errors::ApiError;
use uuid::Uuid;

/// The query string of the audit list; every field is optional.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// The admin or API key that acted.
    pub actor: Option<Uuid>,
    pub action: Option<String>,
    pub tenant: Option<String>,
    /// What the action was done to: `user:<id>`, `client:<id>`, `admin:<id>`, ...
    pub target: Option<String>,
    /// RFC 3339; events at or after it.
    pub since: Option<DateTime<Utc>>,
    /// RFC 3339; events before it.
    pub until: Option<DateTime<Utc>>,
    /// The `next_after` of the previous page.
    pub after: Option<String>,
    /// 1–1000, default 100.
    pub limit: Option<u32>,
}

/// One page, most recent first, and the cursor of the next one (`null` on the last page).
pub async fn page(global: &GlobalDb, query: AuditQuery) -> Result<AuditPage, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 1000"));
    }
    let after = query.after.as_deref().map(parse_cursor).transpose()?;
    let filter = AuditFilter {
        admin_id: query.actor,
        action: query.action,
        tenant: query.tenant,
        target: query.target,
        since: query.since,
        until: query.until,
        after,
        limit: limit + 1,
    };
    let mut events = global.admin_event_page(&filter).await?;
    let next_after = (events.len() > limit as usize).then(|| {
        events.truncate(limit as usize);
        events.last().map(cursor)
    });
    Ok(AuditPage {
        events,
        next_after: next_after.flatten(),
    })
}

/// A page of the installation's audit trail.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub events: Vec<AdminAuditEvent>,
    /// Pass as `after` for the next page; `null` on the last page.
    pub next_after: Option<String>,
}

/// A page of a tenant's security events.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct EventPage {
    pub events: Vec<tenantry_dataplane::SecurityEvent>,
    /// Pass as `after` for the next page; `null` on the last page.
    pub next_after: Option<String>,
}

fn cursor(event: &AdminAuditEvent) -> String {
    cursor_of(event.occurred_at, event.id)
}

fn cursor_of(at: DateTime<Utc>, id: Uuid) -> String {
    format!("{}.{}", at.timestamp_micros(), id.simple())
}

/// The query string of a tenant's security-event list; every field is optional.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// `login`, `account_locked`, `second_factor`, `mfa_enabled`, `password_reset`, ...
    pub action: Option<String>,
    /// The user the events are about.
    pub user: Option<Uuid>,
    /// `user:<id>`, `client:<id>`, or the email a failed sign-in named.
    pub actor: Option<String>,
    pub target: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub after: Option<String>,
    pub limit: Option<u32>,
}

/// One page of a tenant's security events, most recent first, and the next cursor.
pub async fn tenant_page(db: &tenantry_dataplane::TenantDb, query: EventQuery) -> Result<EventPage, ApiError> {
    use tenantry_dataplane::AuditRepository;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 1000"));
    }
    let filter = tenantry_dataplane::EventFilter {
        action: query.action,
        user_id: query.user,
        actor: query.actor,
        target: query.target,
        since: query.since,
        until: query.until,
        after: query.after.as_deref().map(parse_cursor).transpose()?,
        limit: limit + 1,
    };
    let mut events = db.events(&filter).await?;
    let next_after = (events.len() > limit as usize).then(|| {
        events.truncate(limit as usize);
        events.last().map(|e| cursor_of(e.occurred_at, e.id))
    });
    Ok(EventPage {
        events,
        next_after: next_after.flatten(),
    })
}

fn parse_cursor(text: &str) -> Result<(DateTime<Utc>, Uuid), ApiError> {
    let bad = || ApiError::field("after", "must be the next_after of a previous page");
    let (micros, id) = text.split_once('.').ok_or_else(bad)?;
    let at = micros
        .parse()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(bad)?;
    Ok((at, Uuid::try_parse(id).map_err(|_| bad())?))
}

/// The installation's audit trail without a global database: one JSON object per line,
/// appended under FS_ROOT. A file past [`EventFile::MAX_BYTES`] is renamed to `.1` (the
/// previous `.1` is dropped), so events an unauthenticated caller can cause (failed admin
/// sign-ins) never fill the disk.
pub struct EventFile {
    path: std::path::PathBuf,
    lock: tokio::sync::Mutex<()>,
}

impl EventFile {
    pub const MAX_BYTES: u64 = 64 * 1024 * 1024;

    pub fn new(path: std::path::PathBuf) -> Self {
        Self {
            path,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Appends one event (a whole line in one write).
    pub async fn append(&self, event: Value) -> std::io::Result<()> {
        let mut line = event.to_string();
        line.push('\n');
        let _one_writer = self.lock.lock().await;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            if std::fs::metadata(&path).is_ok_and(|m| m.len() > Self::MAX_BYTES) {
                std::fs::rename(&path, path.with_extension("jsonl.1"))?;
            }
            let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
            file.write_all(line.as_bytes())
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn the_event_file_gets_one_json_line_per_event() {
        let dir = tempfile::tempdir().unwrap();
        let file = EventFile::new(dir.path().join("audit/admin-events.jsonl"));
        let admin = Uuid::new_v4();
        for n in 0..3 {
            let event = json!({"admin_id": admin, "action": "admin_sign_in_failed", "request_id": "req", "details": { "n": n }});
            file.append(event).await.unwrap();
        }
        let text = std::fs::read_to_string(file.path()).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2]["details"]["n"], 2);
        assert_eq!(lines[0]["admin_id"], json!(admin));
        assert_eq!(lines[0]["request_id"], "req");
    }

    #[tokio::test]
    async fn pages_follow_each_other_and_filters_narrow() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("global.db").display());
        let global = GlobalDb::connect(&url).await.unwrap();
        let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
        for n in 0..5 {
            let who = if n % 2 == 0 { alice } else { bob };
            let tenant = if n < 3 { "acme" } else { "beta" };
            global
                .record_admin_event(Some(who), "update_tenant", Some(tenant), None, None, json!({ "n": n }))
                .await
                .unwrap();
        }
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let query = AuditQuery {
                limit: Some(2),
                after: after.clone(),
                ..AuditQuery::default()
            };
            let page = page(&global, query).await.unwrap();
            seen.extend(page.events.iter().map(|e| e.details["n"].clone()));
            match page.next_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(
            seen,
            [4, 3, 2, 1, 0].map(|n| json!(n)),
            "every event once, newest first"
        );

        let by = |actor, tenant: Option<&str>| AuditQuery {
            actor: Some(actor),
            tenant: tenant.map(str::to_owned),
            ..AuditQuery::default()
        };
        let alice_acme = page(&global, by(alice, Some("acme"))).await.unwrap();
        assert_eq!(alice_acme.events.len(), 2);
        let future = AuditQuery {
            since: Some(Utc::now() + chrono::Duration::hours(1)),
            ..AuditQuery::default()
        };
        assert!(page(&global, future).await.unwrap().events.is_empty());
        for bad in ["x", "12.nope", "nope.0190f0f0f0f0f0f0f0f0f0f0f0f0f0f0"] {
            let query = AuditQuery {
                after: Some(bad.into()),
                ..AuditQuery::default()
            };
            assert!(page(&global, query).await.is_err(), "{bad}");
        }
        let too_many = AuditQuery {
            limit: Some(1001),
            ..AuditQuery::default()
        };
        assert!(page(&global, too_many).await.is_err());
    }
}
