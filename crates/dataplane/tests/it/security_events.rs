//! A tenant's security events on every driver: recorded with their origin, read newest
//! first with filters and a cursor, purged by age.

use chrono::{Duration, Utc};
use serde_json::json;
use tenantry_dataplane::audit::{EventFilter, Outcome, SecurityEvent};
use tenantry_dataplane::*;
use uuid::Uuid;

use crate::common::Fixture;

/// The tenant's security events: recorded with their origin, read newest first with
/// filters and a cursor, purged by age; a caller's control characters never stop a record.
async fn security_events(fx: &Fixture) {
    let db = &fx.db;
    let now = Utc::now();
    let user = Uuid::new_v4();
    for (n, (action, outcome)) in [
        ("login", Outcome::Failure),
        ("login", Outcome::Success),
        ("mfa_enabled", Outcome::Success),
    ]
    .into_iter()
    .enumerate()
    {
        let event = SecurityEvent {
            id: Uuid::now_v7(),
            occurred_at: now - Duration::days(2 - n as i64),
            action: action.into(),
            outcome: Some(outcome),
            user_id: Some(user),
            actor: Some("ada\u{0}@example.com".into()),
            target: Some(format!("user:{user}")),
            ip: Some("198.51.100.7".into()),
            user_agent: Some("agent".into()),
            request_id: Some(format!("req-{n}")),
            details: json!({ "n": n }),
        };
        db.record_event(&event).await.unwrap();
    }
    let all = db
        .events(&EventFilter {
            limit: 10,
            ..EventFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].action, "mfa_enabled", "newest first");
    assert_eq!(
        all[2].actor.as_deref(),
        Some("ada@example.com"),
        "the NUL is dropped, the event kept"
    );
    assert_eq!(all[2].outcome, Some(Outcome::Failure));
    assert_eq!(all[1].request_id.as_deref(), Some("req-1"));
    let logins = db
        .events(&EventFilter {
            action: Some("login".into()),
            user_id: Some(user),
            limit: 1,
            ..EventFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(logins.len(), 1);
    let older = db
        .events(&EventFilter {
            action: Some("login".into()),
            after: Some((logins[0].occurred_at, logins[0].id)),
            limit: 10,
            ..EventFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(older.len(), 1);
    assert_eq!(older[0].details, json!({ "n": 0 }));
    assert_eq!(db.purge_events_before(now - Duration::hours(36)).await.unwrap(), 1);
    assert_eq!(
        db.events(&EventFilter {
            limit: 10,
            ..EventFilter::default()
        })
        .await
        .unwrap()
        .len(),
        2
    );
}
on_every_driver!(security_events_are_recorded_read_and_purged, security_events);
