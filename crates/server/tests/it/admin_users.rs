//! Admin user provisioning over HTTP: create with a policy-checked Argon2id password,
//! list, show, update, set a password, delete; bad input changes nothing.

use crate::common::start;
use reqwest::Method;
use serde_json::json;
use tenantry_dataplane::UserRepository;

const API: &str = "/v1/admin/tenants/local/users";

#[tokio::test]
async fn admins_manage_users_with_hashed_passwords() {
    let server = start().await;
    let (status, created) = server
        .admin(
            Method::POST,
            API,
            Some(json!({"email": "Ada@Example.com", "password": "correct horse battery", "given_name": "Ada"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["has_password"], true);
    assert!(created.get("password").is_none() && !created.to_string().contains("argon2"));
    let id = created["id"].as_str().unwrap().to_owned();

    let ctx = server.ctx("local");
    let phc = ctx
        .db()
        .await
        .unwrap()
        .password(id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(phc.starts_with("$argon2id$"));
    assert!(tenantry_accounts::passwords::verify(phc, "correct horse battery".into()).await);

    // Policy, duplicates and unknown fields are refused and change nothing.
    let (status, body) = server
        .admin(
            Method::POST,
            API,
            Some(json!({"email": "bob@example.com", "password": "short"})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("validation_failed")),
        "{body}"
    );
    let (status, _) = server
        .admin(Method::POST, API, Some(json!({"email": "ada@example.com"})))
        .await;
    assert_eq!(status, 422, "email taken, case-insensitively");
    let (status, _) = server
        .admin(Method::POST, API, Some(json!({"email": "x@y.z", "role": "admin"})))
        .await;
    assert_eq!(status, 422, "an unknown field is named");
    let (_, list) = server.admin(Method::GET, API, None).await;
    let emails: Vec<&str> = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails.len(), 2, "the demo user and ada: {emails:?}");
    assert!(!emails.contains(&"bob@example.com"));

    let (status, updated) = server
        .admin(
            Method::PATCH,
            &format!("{API}/{id}"),
            Some(json!({"family_name": "Lovelace"})),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(
        (updated["given_name"].as_str(), updated["family_name"].as_str()),
        (Some("Ada"), Some("Lovelace"))
    );
    let (status, _) = server
        .admin(
            Method::PUT,
            &format!("{API}/{id}/password"),
            Some(json!({"password": "another long secret"})),
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = server
        .admin(
            Method::PUT,
            &format!("{API}/{id}/password"),
            Some(json!({"password": "ada@example.com"})),
        )
        .await;
    assert_eq!(status, 422);

    assert_eq!(
        server.admin(Method::GET, &format!("{API}/not-a-uuid"), None).await.0,
        404
    );
    assert_eq!(server.admin(Method::DELETE, &format!("{API}/{id}"), None).await.0, 204);
    assert_eq!(server.admin(Method::GET, &format!("{API}/{id}"), None).await.0, 404);
    assert_eq!(server.admin(Method::DELETE, &format!("{API}/{id}"), None).await.0, 404);
}
