//! Passkey rows on every driver: handles made once per user, credentials found by their
//! digest, the counter moved only forward (0 stays 0 for authenticators that do not
//! count), names, removal with the user, and challenges spent once and only while live.

use chrono::{Duration, Utc};
use tenantry_dataplane::custom_fields::CustomFieldSet;
use tenantry_dataplane::model::*;
use tenantry_dataplane::*;
use uuid::Uuid;

use crate::common::Fixture;

fn passkey(user_id: Uuid, credential: &[u8], sign_count: i64) -> Passkey {
    Passkey {
        id: Uuid::now_v7(),
        user_id,
        credential_id: credential.to_vec(),
        credential_id_hash: format!("sha256:{}", hex(&credential[..credential.len().min(32)])),
        public_key: vec![0xa5; 77],
        algorithm: -7,
        sign_count,
        backup_eligible: true,
        backup_state: false,
        user_verified: true,
        discoverable: Some(true),
        transports: vec!["internal".into(), "hybrid".into()],
        aaguid: vec![0; 16],
        attestation: "none".into(),
        name: "Laptop".into(),
        created_at: Utc::now(),
        last_used_at: None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn passkeys(fx: &Fixture) {
    let db = &fx.db;
    let now = Utc::now();
    let new_user = |email: &str| NewUser {
        email: email.into(),
        ..Default::default()
    };
    let ada = db
        .create_user(new_user("ada@example.com"), &CustomFieldSet::default())
        .await
        .unwrap();
    let grace = db
        .create_user(new_user("grace@example.com"), &CustomFieldSet::default())
        .await
        .unwrap();

    // The first handle stays; a later offer gets it back.
    let handle = db.passkey_handle(ada.id, &[1; 32], now).await.unwrap();
    assert_eq!(handle, vec![1; 32]);
    assert_eq!(db.passkey_handle(ada.id, &[2; 32], now).await.unwrap(), vec![1; 32]);
    assert_eq!(db.user_by_passkey_handle(&[1; 32]).await.unwrap(), Some(ada.id));
    assert_eq!(db.user_by_passkey_handle(&[2; 32]).await.unwrap(), None);

    let counted = passkey(ada.id, &[0xc1; 64], 5);
    let uncounted = passkey(ada.id, &[0xc2; 16], 0);
    db.add_passkey(&counted).await.unwrap();
    db.add_passkey(&uncounted).await.unwrap();
    // One credential id, one row in the tenant.
    let copy = Passkey {
        id: Uuid::now_v7(),
        user_id: grace.id,
        ..counted.clone()
    };
    assert!(matches!(db.add_passkey(&copy).await, Err(DbError::Conflict(_))));

    let found = db
        .passkey_by_credential(&counted.credential_id_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.credential_id, counted.credential_id);
    assert_eq!(found.public_key, counted.public_key);
    assert_eq!(found.transports, counted.transports);
    assert_eq!((found.backup_eligible, found.discoverable), (true, Some(true)));
    assert!(db.passkey_by_credential("sha256:none").await.unwrap().is_none());
    assert_eq!(db.count_passkeys(ada.id).await.unwrap(), 2);
    assert_eq!(db.count_passkeys(grace.id).await.unwrap(), 0);

    // The counter only moves forward.
    let used = |sign_count| PasskeyUse {
        sign_count,
        backup_state: true,
        at: now,
    };
    assert!(db.record_passkey_use(counted.id, used(6)).await.unwrap());
    assert!(!db.record_passkey_use(counted.id, used(6)).await.unwrap());
    assert!(!db.record_passkey_use(counted.id, used(2)).await.unwrap());
    assert!(!db.record_passkey_use(counted.id, used(0)).await.unwrap());
    // An authenticator that never counts stays at 0, and may not start counting down.
    assert!(db.record_passkey_use(uncounted.id, used(0)).await.unwrap());
    assert!(db.record_passkey_use(uncounted.id, used(0)).await.unwrap());
    let keys = db.passkeys(ada.id).await.unwrap();
    let stored = keys.iter().find(|k| k.id == counted.id).unwrap();
    assert_eq!((stored.sign_count, stored.backup_state), (6, true));
    assert!(stored.last_used_at.is_some());

    // Renames and removals only by the owner.
    assert!(db.rename_passkey(ada.id, counted.id, "Phone").await.unwrap());
    assert!(db.rename_passkey(ada.id, counted.id, "Phone").await.unwrap());
    assert!(!db.rename_passkey(grace.id, counted.id, "Mine").await.unwrap());
    assert!(!db.delete_passkey(grace.id, counted.id).await.unwrap());
    assert!(db.delete_passkey(ada.id, counted.id).await.unwrap());
    assert!(!db.delete_passkey(ada.id, counted.id).await.unwrap());
    // A user's passkeys and handle go with the user.
    assert!(db.delete_user(ada.id).await.unwrap());
    assert!(
        db.passkey_by_credential(&uncounted.credential_id_hash)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(db.user_by_passkey_handle(&[1; 32]).await.unwrap(), None);

    // Challenges: spent once, never after they expire.
    let challenge = |hash: &str, expires_at| WebauthnChallenge {
        challenge_hash: hash.into(),
        purpose: "login".into(),
        user_id: None,
        binding_hash: Some("sha256:binding".into()),
        state: "{\"kind\":\"x\"}".into(),
        created_at: now,
        expires_at,
    };
    db.store_webauthn_challenge(&challenge("live", now + Duration::minutes(5)))
        .await
        .unwrap();
    db.store_webauthn_challenge(&challenge("old", now - Duration::seconds(1)))
        .await
        .unwrap();
    let spent = db.spend_webauthn_challenge("live", now).await.unwrap().unwrap();
    assert_eq!(spent.binding_hash.as_deref(), Some("sha256:binding"));
    assert_eq!(spent.state, "{\"kind\":\"x\"}");
    assert!(db.spend_webauthn_challenge("live", now).await.unwrap().is_none());
    assert!(db.spend_webauthn_challenge("old", now).await.unwrap().is_none());
    assert!(db.spend_webauthn_challenge("unknown", now).await.unwrap().is_none());
}

on_every_driver!(passkey_rows_on_every_driver, passkeys);
