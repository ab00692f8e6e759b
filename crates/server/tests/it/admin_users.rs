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

/// Search with a cursor, a suspension that ends by itself, marking an email verified, and
/// a deletion that leaves nothing of the user in the tenant database.
#[tokio::test]
async fn admins_search_suspend_verify_and_delete_users() {
    let server = start().await;
    let mut ids = Vec::new();
    for (email, name) in [
        ("ada@example.com", "Ada Lovelace"),
        ("grace@example.com", "Grace Hopper"),
        ("alan@example.org", "Alan Turing"),
    ] {
        let (status, body) = server
            .admin(
                Method::POST,
                API,
                Some(json!({"email": email, "name": name, "password": "correct horse battery"})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    let emails = |page: &serde_json::Value| -> Vec<String> {
        page["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["email"].as_str().unwrap().to_owned())
            .collect()
    };
    // The `--dev` demo user was made first.
    let (status, page) = server
        .admin(Method::GET, &format!("{API}?q=EXAMPLE.COM&limit=2"), None)
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(emails(&page), ["demo@example.com", "ada@example.com"]);
    let after = page["next_after"].as_str().unwrap().to_owned();
    let (_, page) = server
        .admin(Method::GET, &format!("{API}?q=example.com&limit=2&after={after}"), None)
        .await;
    assert_eq!(emails(&page), ["grace@example.com"]);
    assert!(page["next_after"].is_null(), "the last page says so: {page}");
    let (_, page) = server.admin(Method::GET, &format!("{API}?name=turing"), None).await;
    assert_eq!(emails(&page), ["alan@example.org"]);
    for bad in ["limit=0", "status=gone", "after=x", "colour=red", "field.nope=1"] {
        let (status, body) = server.admin(Method::GET, &format!("{API}?{bad}"), None).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }

    // A suspension with an end: sign-in refused now, allowed again once it has passed.
    let login = |email: &'static str| {
        let server = &server;
        async move {
            server
                .http
                .post(format!("{}/v1/auth/login", server.base))
                .json(&json!({"email": email, "password": "correct horse battery", "client_id": "demo-spa"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(login("ada@example.com").await, 200);
    let (status, body) = server
        .admin(
            Method::POST,
            &format!("{API}/{}/disable", ids[0]),
            Some(json!({"reason": "holiday", "until": "2001-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (422, Some("until")),
        "the past is refused"
    );
    let until = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let (status, body) = server
        .admin(
            Method::POST,
            &format!("{API}/{}/disable", ids[0]),
            Some(json!({"reason": "holiday", "until": until})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["status"].as_str(), body["disabled_reason"].as_str()),
        (Some("disabled"), Some("holiday"))
    );
    assert_ne!(login("ada@example.com").await, 200);
    let (_, page) = server.admin(Method::GET, &format!("{API}?status=disabled"), None).await;
    assert_eq!(emails(&page), ["ada@example.com"]);
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    assert_eq!(login("ada@example.com").await, 200, "the suspension ended by itself");

    // Marking an address verified.
    let (status, body) = server
        .admin(
            Method::PATCH,
            &format!("{API}/{}", ids[1]),
            Some(json!({"email_verified": true})),
        )
        .await;
    assert_eq!((status, body["email_verified"].as_bool()), (200, Some(true)), "{body}");

    // Deleting a user who signed in, holds a role and a consent: nothing of it is left.
    let (status, _) = server
        .admin(Method::PUT, "/v1/admin/tenants/local/roles/staff", Some(json!({})))
        .await;
    assert_eq!(status, 200);
    let (status, _) = server
        .admin(Method::PUT, &format!("{API}/{}/roles/staff", ids[0]), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = server.admin(Method::DELETE, &format!("{API}/{}", ids[0]), None).await;
    assert_eq!(status, 204);
    let db = server.ctx("local").db().await.unwrap();
    let user_id = uuid::Uuid::parse_str(&ids[0]).unwrap();
    for table in [
        "users",
        "password_credentials",
        "sessions",
        "refresh_tokens",
        "authorization_codes",
        "consents",
        "user_roles",
        "totp_credentials",
        "trusted_devices",
        "email_tokens",
        "login_failures",
        "external_identities",
    ] {
        let column = if table == "users" { "id" } else { "user_id" };
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE {column} = ?");
        let tenantry_dataplane::db::Pool::Sqlite(pool) = db.pool() else {
            panic!("the default tenant is on SQLite");
        };
        let left: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(user_id)
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(left, 0, "{table} still holds the deleted user");
    }
    assert_eq!(login("ada@example.com").await, 401);
}
