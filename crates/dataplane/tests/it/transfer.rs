//! Users in bulk (`tenantry_dataplane::transfer`) on every driver: export pages carry
//! profile, custom values, roles and credentials; an import writes them in one transaction
//! that a rollback (or a drop) undoes whole; merge matches by id, then email; replace
//! starts from an empty user table.

use chrono::{TimeZone, Utc};
use serde_json::json;
use tenantry_controlplane::model::{CustomField, CustomFieldType};
use tenantry_dataplane::custom_fields::CustomFieldSet;
use tenantry_dataplane::model::*;
use tenantry_dataplane::transfer::{ImportMode, Placed, UserRecord};
use tenantry_dataplane::*;

use crate::common::Fixture;

fn fields() -> (Vec<CustomField>, CustomFieldSet) {
    let declared = vec![CustomField {
        name: "tier".into(),
        field_type: CustomFieldType::Text,
        required: false,
        unique: false,
        indexed: false,
        scope: None,
    }];
    let set = CustomFieldSet::new(&declared);
    (declared, set)
}

/// Every user of `db`, page by page (pages of 2, so paging is exercised).
async fn everyone(db: &TenantDb, fields: &CustomFieldSet) -> Vec<UserRecord> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = db.export_page(after, 2, fields, true).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.user.id);
        all.extend(page);
    }
    all
}

async fn users_move_in_bulk(fx: &Fixture) {
    let (declared, fields) = fields();
    let source = &fx.db;
    source.sync_custom_fields(&declared).await.unwrap();
    let mut made = Vec::new();
    for n in 0..5 {
        let new = NewUser {
            email: format!("user{n}@example.com"),
            name: Some(format!("User {n}")),
            metadata: Some(json!({"n": n})),
            custom: [("tier".to_owned(), json!(if n % 2 == 0 { "gold" } else { "silver" }))].into(),
            ..Default::default()
        };
        made.push(source.create_user(new, &fields).await.unwrap());
    }
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    source.assign_role(made[0].id, "buyer", now).await.unwrap();
    source.assign_role(made[0].id, "admin", now).await.unwrap();
    source
        .set_password(made[1].id, "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA")
        .await
        .unwrap();
    source.put_totp(made[2].id, "sealed-secret", now).await.unwrap();
    source.confirm_totp(made[2].id, "sealed-secret", now).await.unwrap();

    let exported = everyone(source, &fields).await;
    assert_eq!(exported.len(), 5);
    assert_eq!(exported[0].roles, ["admin", "buyer"], "sorted");
    let credentials = |i: usize| exported[i].credentials.clone().unwrap();
    assert!(credentials(1).password.unwrap().starts_with("$argon2id$"));
    source.use_totp_step(made[2].id, 12345).await.unwrap();
    let exported = everyone(source, &fields).await;
    let credentials = |i: usize| exported[i].credentials.clone().unwrap();
    let totp = credentials(2).totp.unwrap();
    assert_eq!(
        (totp.sealed.as_str(), totp.confirmed, totp.last_used_step),
        ("sealed-secret", true, Some(12345))
    );
    assert_eq!(credentials(3), Default::default());
    assert_eq!(exported[4].user.custom["tier"], "gold");

    // Into an empty database: a rollback leaves nothing, a commit everything.
    let Some(target) = Fixture::new(fx.driver).await else {
        return;
    };
    target.db.sync_custom_fields(&declared).await.unwrap();
    let mut import = target.db.begin_import(fields.clone(), ImportMode::Fresh).await.unwrap();
    for record in &exported {
        let (placed, id) = import.put(record).await.unwrap();
        assert_eq!((placed, id), (Placed::Created, record.user.id));
    }
    import.rollback().await.unwrap();
    assert_eq!(target.db.count_users().await.unwrap(), 0);
    let mut import = target.db.begin_import(fields.clone(), ImportMode::Fresh).await.unwrap();
    for record in &exported {
        import.put(record).await.unwrap();
    }
    import.put_totp(exported[2].user.id, &totp).await.unwrap();
    // While the import's transaction is open, the database still answers reads: the
    // import runs on the long-read pool, not on the connection the traffic uses.
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        target.db.user_by_id(uuid::Uuid::now_v7(), &fields),
    );
    assert_eq!(read.await.expect("a read waited for the import").unwrap(), None);
    // Dropped without a commit: nothing either.
    drop(import);
    assert_eq!(target.db.count_users().await.unwrap(), 0);
    let mut import = target.db.begin_import(fields.clone(), ImportMode::Fresh).await.unwrap();
    for record in &exported {
        import.put(record).await.unwrap();
    }
    import.put_totp(exported[2].user.id, &totp).await.unwrap();
    import.commit().await.unwrap();
    let copied = everyone(&target.db, &fields).await;
    assert_eq!(copied, exported, "the same users, ids, times, roles and credentials");

    // Merge: the same id updates, the same email (another id) updates that user, a new one
    // is created, and nobody is removed.
    let mut renamed = exported[3].clone();
    renamed.user.name = Some("Renamed".into());
    let mut same_email = exported[4].clone();
    same_email.user.id = uuid::Uuid::now_v7();
    let mut newcomer = exported[0].clone();
    newcomer.user.id = uuid::Uuid::now_v7();
    newcomer.user.email = "new@example.com".into();
    let mut import = target.db.begin_import(fields.clone(), ImportMode::Merge).await.unwrap();
    assert_eq!(
        import.put(&renamed).await.unwrap(),
        (Placed::Updated, exported[3].user.id)
    );
    assert_eq!(
        import.put(&same_email).await.unwrap(),
        (Placed::Updated, exported[4].user.id)
    );
    assert_eq!(import.put(&newcomer).await.unwrap().0, Placed::Created);
    import.commit().await.unwrap();
    assert_eq!(target.db.count_users().await.unwrap(), 6);
    let renamed_now = target
        .db
        .user_by_id(exported[3].user.id, &fields)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renamed_now.name.as_deref(), Some("Renamed"));

    // A bad record fails alone; replace empties the table first.
    let mut bad = exported[0].clone();
    bad.user.email = "not an address".into();
    let mut import = target
        .db
        .begin_import(fields.clone(), ImportMode::Replace)
        .await
        .unwrap();
    assert!(import.put(&bad).await.is_err());
    import.put(&exported[1]).await.unwrap();
    import.commit().await.unwrap();
    assert_eq!(target.db.count_users().await.unwrap(), 1);
    target.cleanup().await;
}
on_every_driver!(users_move_in_bulk_with_one_transaction, users_move_in_bulk);
