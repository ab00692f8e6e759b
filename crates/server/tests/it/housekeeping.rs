//! The housekeeping pass through the running server: expired rows of an open tenant
//! database go, the pass is counted in `/metrics` and shown in `/readyz`.

use chrono::{Duration, Utc};
use serde_json::Value;
use tenantry_dataplane::model::{NewUser, Session};
use tenantry_dataplane::{SessionRepository, TokenRepository, UserRepository};

use crate::common::start;

#[tokio::test]
async fn a_pass_removes_expired_rows_and_readyz_shows_it() {
    let server = start().await;
    let readyz = || async {
        let body: Value = server
            .http
            .get(format!("{}/readyz", server.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["components"]["housekeeping"].clone()
    };
    assert_eq!(
        readyz().await["status"],
        "pending",
        "no pass yet (tests run none by themselves)"
    );

    let ctx = server.ctx("local");
    let db = ctx.db().await.unwrap();
    let user = db
        .create_user(
            NewUser {
                email: "old@example.com".into(),
                ..Default::default()
            },
            &Default::default(),
        )
        .await
        .unwrap();
    let long_ago = Utc::now() - Duration::days(2);
    db.create_session(&Session {
        id_hash: "expired-session".into(),
        user_id: user.id,
        auth_time: long_ago,
        amr: vec!["pwd".into()],
        acr: None,
        ip: None,
        user_agent: None,
        created_at: long_ago,
        last_seen_at: long_ago,
        expires_at: long_ago + Duration::hours(8),
        revoked_at: None,
    })
    .await
    .unwrap();
    db.deny_access_token("expired-jti", long_ago).await.unwrap();

    let run = server
        .state
        .housekeeping
        .run_once(&server.state.control_plane, &server.state.dbs, Utc::now())
        .await;
    assert!(run.removed >= 2 && run.failed == 0 && run.tenants >= 1, "{run:?}");
    let shown = readyz().await;
    assert_eq!(shown["status"], "ok", "{shown}");
    assert_eq!(shown["removed"], run.removed);
    assert!(shown["last_run"].is_string());
    let metrics = server
        .http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("housekeeping_rows_removed_total{table=\"sessions\"}"),
        "{metrics}"
    );
}
