//! Admin user search on every driver: parts of email and names, custom fields, status,
//! pages continued after the last id.

use std::collections::BTreeMap;

use serde_json::json;
use tenantry_controlplane::model::CustomFieldType;
use tenantry_dataplane::custom_fields::CustomFieldSet;
use tenantry_dataplane::model::*;
use tenantry_dataplane::*;
use uuid::Uuid;

use crate::common::Fixture;
use crate::custom_fields::field;

/// custom fields by value, status, and pages continued after the last id.
async fn user_search(fx: &Fixture) {
    let db = &fx.db;
    let declared = vec![
        field("team", CustomFieldType::Text, false),
        field("level", CustomFieldType::Integer, false),
    ];
    db.sync_custom_fields(&declared).await.unwrap();
    let set = CustomFieldSet::new(&declared);
    let people = [
        ("ada.lovelace@example.com", "Ada Lovelace", "engines", 3),
        ("grace@navy.example", "Grace Hopper", "compilers", 5),
        ("alan_t@example.com", "Alan Turing", "engines", 5),
        ("edsger@example.org", "Edsger Dijkstra", "compilers", 4),
    ];
    let mut ids = Vec::new();
    for (email, name, team, level) in people {
        let user = db
            .create_user(
                NewUser {
                    email: email.into(),
                    name: Some(name.into()),
                    custom: BTreeMap::from([("team".to_owned(), json!(team)), ("level".to_owned(), json!(level))]),
                    ..Default::default()
                },
                &set,
            )
            .await
            .unwrap();
        ids.push(user.id);
    }
    let set = &set;
    let find = |search: UserSearch| async move {
        db.search_users(&UserSearch { limit: 100, ..search }, set)
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.email)
            .collect::<Vec<_>>()
    };
    let text = |t: &str| UserSearch {
        text: Some(t.into()),
        ..UserSearch::default()
    };
    assert_eq!(find(text("LOVELACE")).await, ["ada.lovelace@example.com"]);
    assert_eq!(
        find(text("example.com")).await,
        ["ada.lovelace@example.com", "alan_t@example.com"]
    );
    assert_eq!(find(text("_t@")).await, ["alan_t@example.com"], "`_` is literal");
    assert_eq!(find(text("%")).await, Vec::<String>::new(), "`%` is literal");
    let by_name = UserSearch {
        name: Some("hopper".into()),
        ..UserSearch::default()
    };
    assert_eq!(find(by_name).await, ["grace@navy.example"]);
    let by_email = UserSearch {
        email: Some("NAVY".into()),
        ..UserSearch::default()
    };
    assert_eq!(find(by_email).await, ["grace@navy.example"]);
    let by_fields = UserSearch {
        custom: vec![("team".into(), "engines".into()), ("level".into(), "5".into())],
        ..UserSearch::default()
    };
    assert_eq!(find(by_fields).await, ["alan_t@example.com"]);
    let bad = UserSearch {
        custom: vec![("level".into(), "high".into())],
        limit: 10,
        ..UserSearch::default()
    };
    assert!(matches!(db.search_users(&bad, set).await, Err(DbError::Invalid(_))));
    let unknown = UserSearch {
        custom: vec![("nope".into(), "x".into())],
        limit: 10,
        ..UserSearch::default()
    };
    assert!(matches!(db.search_users(&unknown, set).await, Err(DbError::Invalid(_))));

    db.disable_user(ids[1], Some("left"), None).await.unwrap();
    let disabled = UserSearch {
        status: Some(UserStatus::Disabled),
        ..UserSearch::default()
    };
    assert_eq!(find(disabled).await, ["grace@navy.example"]);

    // Pages of two, in creation order, continued after the last id.
    let first = db
        .search_users(
            &UserSearch {
                limit: 2,
                ..UserSearch::default()
            },
            set,
        )
        .await
        .unwrap();
    let second = db
        .search_users(
            &UserSearch {
                limit: 2,
                after: Some(first[1].id),
                ..UserSearch::default()
            },
            set,
        )
        .await
        .unwrap();
    let order: Vec<Uuid> = first.iter().chain(&second).map(|u| u.id).collect();
    assert_eq!(order, ids);
}
on_every_driver!(admins_search_users_by_text_fields_and_status, user_search);
