//! Custom fields as real columns on every driver: declared, typed, unique over existing
//! values, dropped; names checked before they reach SQL.

use std::collections::BTreeMap;

use serde_json::json;
use tenantry_controlplane::model::{CustomField, CustomFieldType};
use tenantry_dataplane::custom_fields::CustomFieldSet;
use tenantry_dataplane::model::*;
use tenantry_dataplane::*;
use uuid::Uuid;

use crate::common::Fixture;
use crate::repositories::new_user;

pub(crate) fn field(name: &str, field_type: CustomFieldType, unique: bool) -> CustomField {
    CustomField {
        name: name.into(),
        field_type,
        required: false,
        unique,
        indexed: !unique,
        scope: None,
    }
}

async fn custom_fields(fx: &Fixture) {
    let db = &fx.db;
    let declared = vec![
        field("employee_no", CustomFieldType::Text, true),
        field("level", CustomFieldType::Integer, false),
        field("vip", CustomFieldType::Boolean, false),
        field("birthday", CustomFieldType::Date, false),
        field("hired_at", CustomFieldType::Timestamp, false),
    ];
    db.sync_custom_fields(&declared).await.unwrap();
    db.sync_custom_fields(&declared).await.unwrap(); // idempotent
    let set = CustomFieldSet::new(&declared);

    let mut values = BTreeMap::new();
    values.insert("employee_no".to_owned(), json!("E-1"));
    values.insert("level".to_owned(), json!(7));
    values.insert("vip".to_owned(), json!(true));
    values.insert("birthday".to_owned(), json!("1990-12-10"));
    values.insert("hired_at".to_owned(), json!("2024-01-02T03:04:05.123456Z"));
    let user = db
        .create_user(
            NewUser {
                custom: values.clone(),
                ..new_user("c@example.com")
            },
            &set,
        )
        .await
        .unwrap();
    assert_eq!(user.custom, values);

    // Type checks and uniqueness.
    let wrong = BTreeMap::from([("level".to_owned(), json!("seven"))]);
    assert!(matches!(
        db.set_custom_fields(user.id, &wrong, &set).await,
        Err(DbError::Invalid(_))
    ));
    let unknown = BTreeMap::from([("nope".to_owned(), json!(1))]);
    assert!(matches!(
        db.set_custom_fields(user.id, &unknown, &set).await,
        Err(DbError::Invalid(_))
    ));
    let dup = BTreeMap::from([("employee_no".to_owned(), json!("E-1"))]);
    assert_eq!(
        db.create_user(
            NewUser {
                custom: dup,
                ..new_user("d@example.com")
            },
            &set
        )
        .await
        .unwrap_err(),
        DbError::Conflict("duplicate")
    );
    db.set_custom_fields(user.id, &BTreeMap::from([("level".to_owned(), json!(8))]), &set)
        .await
        .unwrap();
    assert_eq!(
        db.user_by_id(user.id, &set).await.unwrap().unwrap().custom["level"],
        json!(8)
    );

    // A refresh rotation reads the token's user, custom fields included, with the token.
    let now = chrono::Utc::now();
    let (first, second) = (format!("cf-rt-{}-1", user.id), format!("cf-rt-{}-2", user.id));
    let token = NewRefreshToken {
        token_hash: first.clone(),
        client_id: "app".into(),
        user_id: user.id,
        session_id_hash: None,
        origin_code_hash: None,
        scope: "openid".into(),
        auth_time: None,
        amr: vec![],
        expires_at: now + chrono::Duration::days(1),
    };
    db.issue_refresh(token, now).await.unwrap();
    let rotation = RotationRequest {
        client_id: "app".into(),
        new_hash: second,
        scope: None,
        expires_at: now + chrono::Duration::days(1),
        user_fields: set.clone(),
    };
    let Rotation::Rotated { user: owner, .. } = db.rotate_refresh(&first, rotation, now).await.unwrap() else {
        panic!("the rotation was refused")
    };
    assert_eq!(*owner, db.user_by_id(user.id, &set).await.unwrap().unwrap());

    // Removing a field hides it; its data stays and comes back with it.
    let fewer: Vec<_> = declared.iter().filter(|f| f.name != "level").cloned().collect();
    db.sync_custom_fields(&fewer).await.unwrap();
    let stored = db.stored_custom_fields().await.unwrap();
    assert!(!stored.iter().find(|s| s.name == "level").unwrap().active);
    let hidden_view = db
        .user_by_id(user.id, &CustomFieldSet::new(&fewer))
        .await
        .unwrap()
        .unwrap();
    assert!(!hidden_view.custom.contains_key("level"));
    db.sync_custom_fields(&declared).await.unwrap();
    assert_eq!(
        db.user_by_id(user.id, &set).await.unwrap().unwrap().custom["level"],
        json!(8)
    );

    // A type change is refused and changes nothing.
    let mut retyped = declared.clone();
    retyped[1].field_type = CustomFieldType::Text;
    assert!(matches!(db.sync_custom_fields(&retyped).await, Err(DbError::Invalid(m)) if m.contains("level")));
    assert_eq!(
        db.stored_custom_fields()
            .await
            .unwrap()
            .iter()
            .find(|s| s.name == "level")
            .unwrap()
            .field_type,
        "integer"
    );

    // Dropping a column is explicit and only for hidden fields.
    assert!(db.drop_custom_column("employee_no", &declared).await.is_err());
    db.sync_custom_fields(&fewer).await.unwrap();
    db.drop_custom_column("level", &fewer).await.unwrap();
    assert!(
        db.stored_custom_fields()
            .await
            .unwrap()
            .iter()
            .all(|s| s.name != "level")
    );
    let fewer_set = CustomFieldSet::new(&fewer);
    assert_eq!(
        db.user_by_id(user.id, &fewer_set).await.unwrap().unwrap().custom["employee_no"],
        json!("E-1")
    );
}
on_every_driver!(custom_fields_are_real_columns, custom_fields);

#[test]
fn injection_in_a_field_name_is_refused_by_validation() {
    use tenantry_controlplane::model::TenantSettings;
    let settings = TenantSettings {
        custom_fields: vec![field("x\" TEXT); DROP TABLE users; --", CustomFieldType::Text, false)],
        ..Default::default()
    };
    assert!(tenantry_controlplane::validate::validate_settings(&settings).is_err());
    let too_long = TenantSettings {
        custom_fields: vec![field(&"a".repeat(61), CustomFieldType::Text, false)],
        ..Default::default()
    };
    assert!(tenantry_controlplane::validate::validate_settings(&too_long).is_err());
}

#[test]
fn type_changes_are_detected_against_settings_and_storage() {
    use tenantry_dataplane::custom_fields::{StoredField, type_changes};
    let old = vec![field("a", CustomFieldType::Text, false)];
    let new = vec![
        field("a", CustomFieldType::Integer, false),
        field("b", CustomFieldType::Date, false),
    ];
    assert_eq!(type_changes(&old, &new, &[]).len(), 1);
    let stored = vec![StoredField {
        name: "b".into(),
        field_type: "text".into(),
        is_required: false,
        is_unique: false,
        is_indexed: false,
        active: false,
    }];
    assert_eq!(type_changes(&[], &new, &stored).len(), 1);
    let _ = Uuid::nil();
}

/// A unique field over repeating values is reported, not applied, and takes nothing else
/// down: a field added beside it still gets its column, and user queries keep working.
async fn unique_over_duplicates(fx: &Fixture) {
    let db = &fx.db;
    let team = field("team", CustomFieldType::Text, false);
    db.sync_custom_fields(std::slice::from_ref(&team)).await.unwrap();
    let set = CustomFieldSet::new(std::slice::from_ref(&team));
    for email in ["a@example.com", "b@example.com", "c@example.com"] {
        db.create_user(
            NewUser {
                custom: BTreeMap::from([("team".to_owned(), json!("red"))]),
                ..new_user(email)
            },
            &set,
        )
        .await
        .unwrap();
    }
    assert_eq!(
        db.custom_field_duplicates("team", 3).await.unwrap(),
        vec!["red".to_owned()]
    );
    assert!(db.custom_field_duplicates("absent", 3).await.unwrap().is_empty());

    let declared = vec![
        field("team", CustomFieldType::Text, true),
        field("badge", CustomFieldType::Integer, false),
    ];
    let problems = db.sync_custom_fields_report(&declared).await.unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].field, "team");
    let stored = db.stored_custom_fields().await.unwrap();
    assert!(!stored.iter().find(|s| s.name == "team").unwrap().is_unique);
    assert!(stored.iter().any(|s| s.name == "badge" && s.active), "{stored:?}");
    // Every user query of the tenant still works with the declared fields.
    let all = CustomFieldSet::new(&declared);
    let user = db.user_by_email("a@example.com", &all).await.unwrap().unwrap();
    assert_eq!(user.custom["team"], json!("red"));
    assert_eq!(user.custom["badge"], json!(null));
    db.create_user(new_user("d@example.com"), &all).await.unwrap();

    // Once the values are unique, the next sync applies the index.
    for (email, team) in [("b@example.com", "blue"), ("c@example.com", "green")] {
        let id = db.user_by_email(email, &all).await.unwrap().unwrap().id;
        db.set_custom_fields(id, &BTreeMap::from([("team".to_owned(), json!(team))]), &all)
            .await
            .unwrap();
    }
    assert!(db.sync_custom_fields_report(&declared).await.unwrap().is_empty());
    assert!(
        db.stored_custom_fields()
            .await
            .unwrap()
            .iter()
            .any(|s| s.name == "team" && s.is_unique)
    );
}
on_every_driver!(
    a_unique_field_over_duplicates_takes_nothing_down,
    unique_over_duplicates
);
