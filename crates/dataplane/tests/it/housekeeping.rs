//! Housekeeping sweeps on every driver: rows past their expiry (and the grace period) go,
//! live ones stay, and a pass removes no more than its batches allow.

use chrono::{Duration, Utc};
use tenantry_dataplane::custom_fields::CustomFieldSet;
use tenantry_dataplane::housekeeping::SweepLimits;
use tenantry_dataplane::model::*;
use tenantry_dataplane::*;

use crate::common::Fixture;

fn session(hash: &str, user: uuid::Uuid, expires_at: chrono::DateTime<Utc>) -> Session {
    let now = Utc::now();
    Session {
        id_hash: hash.into(),
        user_id: user,
        auth_time: now,
        amr: vec!["pwd".into()],
        acr: None,
        ip: None,
        user_agent: None,
        created_at: now,
        last_seen_at: now,
        expires_at,
        revoked_at: None,
    }
}

async fn expired_rows_go_in_bounded_batches(fx: &Fixture) {
    let db = &fx.db;
    let now = Utc::now();
    let (past, future) = (now - Duration::hours(1), now + Duration::hours(1));
    let user = db
        .create_user(
            NewUser {
                email: "ada@example.com".into(),
                ..Default::default()
            },
            &CustomFieldSet::default(),
        )
        .await
        .unwrap();
    for n in 0..5 {
        db.create_session(&session(&format!("old-{n}"), user.id, past))
            .await
            .unwrap();
        db.deny_access_token(&format!("old-jti-{n}"), past).await.unwrap();
    }
    db.create_session(&session("live", user.id, future)).await.unwrap();
    // Just expired: within the grace period, so it stays for now.
    db.create_session(&session("just-expired", user.id, now - Duration::minutes(1)))
        .await
        .unwrap();
    db.deny_access_token("live-jti", future).await.unwrap();
    assert!(db.spend_assertion_jti("client", "old", past).await.unwrap());
    assert!(db.spend_assertion_jti("client", "live", future).await.unwrap());
    assert!(db.spend_upstream_state("old-state", past).await.unwrap());
    assert!(db.spend_upstream_state("live-state", future).await.unwrap());
    assert!(
        !db.spend_upstream_state("live-state", future).await.unwrap(),
        "a state comes back once"
    );
    for (hash, expires_at) in [("old-challenge", past), ("live-challenge", future)] {
        let challenge = WebauthnChallenge {
            challenge_hash: hash.into(),
            purpose: "login".into(),
            user_id: None,
            binding_hash: None,
            state: "{}".into(),
            created_at: now,
            expires_at,
        };
        db.store_webauthn_challenge(&challenge).await.unwrap();
    }

    let limits = SweepLimits {
        batch: 2,
        max_batches: 2,
        grace: Duration::minutes(10),
    };
    let removed: std::collections::BTreeMap<_, _> = db.sweep(now, limits).await.unwrap().into_iter().collect();
    assert_eq!(removed["sessions"], 4, "two batches of two: the fifth waits");
    assert_eq!(removed["revoked_access_tokens"], 4);
    assert_eq!(removed["client_assertion_jtis"], 1);
    assert_eq!(removed["spent_upstream_states"], 1);
    assert_eq!(removed["webauthn_challenges"], 1);
    let removed: std::collections::BTreeMap<_, _> = db.sweep(now, limits).await.unwrap().into_iter().collect();
    assert_eq!((removed["sessions"], removed["revoked_access_tokens"]), (1, 1));
    let removed = db.sweep(now, limits).await.unwrap();
    assert!(removed.iter().all(|(_, n)| *n == 0), "{removed:?}");

    assert!(db.active_session("live", now).await.unwrap().is_some());
    assert!(db.access_token_denied("live-jti").await.unwrap());
    assert!(
        !db.spend_assertion_jti("client", "live", future).await.unwrap(),
        "still spent"
    );
    assert!(
        !db.spend_upstream_state("live-state", future).await.unwrap(),
        "still spent"
    );
    assert!(
        db.spend_webauthn_challenge("live-challenge", now)
            .await
            .unwrap()
            .is_some()
    );
    // Past the grace period, the just-expired one goes too.
    let removed: std::collections::BTreeMap<_, _> = db
        .sweep(now + Duration::minutes(20), limits)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(removed["sessions"], 1);
}
on_every_driver!(
    expired_rows_go_in_bounded_batches_on_every_driver,
    expired_rows_go_in_bounded_batches
);
