//! The optional global database on every configured driver.

use crate::common;

use serde_json::json;
use tenantry_controlplane::model::DbDriver;
use tenantry_dataplane::{AuditFilter, DbError, ErrorKind, GlobalDb};
use uuid::Uuid;

async fn exercise(global: &GlobalDb) {
    let admin = Uuid::new_v4();
    global
        .record_admin_event(
            Some(admin),
            "create_tenant",
            Some("acme"),
            None,
            Some("req-1"),
            json!({"x": 1}),
        )
        .await
        .unwrap();
    global
        .record_admin_event(
            Some(admin),
            "delete_tenant",
            Some("acme"),
            Some("tenant:acme"),
            None,
            json!({}),
        )
        .await
        .unwrap();
    let events = global.admin_events(10).await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].action, "delete_tenant");
    assert_eq!(events[1].details, json!({"x": 1}));

    // Filters and the cursor, in SQL on every driver.
    let page = |filter: AuditFilter| async move { global.admin_event_page(&filter).await.unwrap() };
    let created = page(AuditFilter {
        action: Some("create_tenant".into()),
        limit: 10,
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].request_id.as_deref(), Some("req-1"));
    let first = page(AuditFilter {
        limit: 1,
        ..AuditFilter::default()
    })
    .await;
    let rest = page(AuditFilter {
        after: Some((first[0].occurred_at, first[0].id)),
        admin_id: Some(admin),
        tenant: Some("acme".into()),
        limit: 10,
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(
        rest.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["create_tenant"]
    );
    let by_target = page(AuditFilter {
        target: Some("tenant:acme".into()),
        limit: 10,
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(by_target.len(), 1);
    assert_eq!(by_target[0].target.as_deref(), Some("tenant:acme"));
    let none = page(AuditFilter {
        admin_id: Some(Uuid::new_v4()),
        limit: 10,
        ..AuditFilter::default()
    })
    .await;
    assert!(none.is_empty());
}

#[tokio::test]
async fn global_database_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let global = GlobalDb::connect(&format!("sqlite:{}", dir.path().join("global.db").display()))
        .await
        .unwrap();
    exercise(&global).await;
}

#[tokio::test]
async fn global_database_on_servers() {
    for driver in [DbDriver::Postgres, DbDriver::Mysql] {
        let Some((admin, name, dsn)) = common::create_database(driver).await else {
            continue;
        };
        let global = GlobalDb::connect(&dsn).await.unwrap();
        exercise(&global).await;
        drop(global);
        common::drop_database(driver, &admin, &name).await;
    }
}

#[tokio::test]
async fn a_bad_global_url_is_refused() {
    assert_eq!(
        GlobalDb::connect("oracle://x").await.unwrap_err(),
        DbError::Unavailable(ErrorKind::InvalidDsn)
    );
    assert_eq!(
        GlobalDb::connect("postgres://u:p@127.0.0.1:1/x").await.unwrap_err(),
        DbError::Unavailable(ErrorKind::Unreachable)
    );
}
