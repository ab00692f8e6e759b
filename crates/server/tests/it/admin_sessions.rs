//! Admins over users' sign-ins: sessions, refresh tokens and consents listed per user and
//! revoked one at a time, per user or per client, with the effect on the tokens checked.

use reqwest::Method;
use serde_json::{Value, json};
use tenantry_dataplane::ConsentRepository;

use crate::common::api::Api;
use crate::common::start;

const USERS: &str = "/v1/admin/tenants/local/users";

#[tokio::test]
async fn admins_list_and_revoke_sessions_refresh_tokens_and_consents() {
    let server = start().await;
    let api = Api {
        server: &server,
        slug: "local",
    };
    let (status, made) = server
        .admin(
            Method::POST,
            USERS,
            Some(json!({"email": "ada@example.com", "password": "correct horse battery", "email_verified": true})),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    let id = made["id"].as_str().unwrap().to_owned();
    let mut logins = Vec::new();
    for _ in 0..3 {
        let (status, tokens) = api.login("ada@example.com", "correct horse battery").await;
        assert_eq!(status, 200, "{tokens}");
        logins.push(tokens);
    }
    let access = |tokens: &Value| tokens["access_token"].as_str().unwrap().to_owned();
    let me = |token: String| {
        let api = &api;
        async move { api.call(Method::GET, "/v1/auth/me", Some(&token), None).await.0 }
    };

    // Sessions: three, each named by the sid its tokens carry.
    let (status, list) = server.admin(Method::GET, &format!("{USERS}/{id}/sessions"), None).await;
    assert_eq!(status, 200, "{list}");
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3);
    let claims = |token: &str| -> Value {
        let part = token.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, part).unwrap(),
        )
        .unwrap()
    };
    let first_sid = claims(&access(&logins[0]))["sid"].as_str().unwrap().to_owned();
    assert!(sessions.iter().any(|s| s["id"] == first_sid.as_str()));
    let (status, _) = server
        .admin(Method::DELETE, &format!("{USERS}/{id}/sessions/{first_sid}"), None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        me(access(&logins[0])).await,
        401,
        "the session's access token ends with it"
    );
    assert_eq!(me(access(&logins[1])).await, 200, "other sessions go on");
    let (status, _) = server
        .admin(Method::DELETE, &format!("{USERS}/{id}/sessions/{first_sid}"), None)
        .await;
    assert_eq!(status, 404, "already ended");
    let refresh = |tokens: &Value| {
        let api = &api;
        let token = tokens["refresh_token"].as_str().unwrap().to_owned();
        async move {
            api.post(
                "/v1/auth/refresh",
                json!({"refresh_token": token, "client_id": "demo-spa"}),
            )
            .await
            .0
        }
    };
    assert_ne!(refresh(&logins[0]).await, 200, "and its refresh token");

    // Refresh tokens: one family per live login; revoking one ends only that one.
    let (_, list) = server
        .admin(Method::GET, &format!("{USERS}/{id}/refresh-tokens"), None)
        .await;
    let families = list["refresh_tokens"].as_array().unwrap();
    assert_eq!(families.len(), 2, "{list}");
    assert!(families.iter().all(|f| f["client_id"] == "demo-spa"));
    assert!(
        list.to_string().find("token_hash").is_none(),
        "no token material is shown"
    );
    let second_sid = claims(&access(&logins[1]))["sid"].as_str().unwrap().to_owned();
    let family = families.iter().find(|f| f["session"] == second_sid.as_str()).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = server
        .admin(Method::DELETE, &format!("{USERS}/{id}/refresh-tokens/{family}"), None)
        .await;
    assert_eq!(status, 204);
    assert_ne!(refresh(&logins[1]).await, 200);
    assert_eq!(refresh(&logins[2]).await, 200, "the third login's family still works");
    let (status, _) = server
        .admin(
            Method::DELETE,
            &format!("{USERS}/{id}/refresh-tokens/not-a-family"),
            None,
        )
        .await;
    assert_eq!(status, 404);

    // By client, for every user.
    let (status, body) = server
        .admin(
            Method::DELETE,
            "/v1/admin/tenants/local/clients/demo-spa/refresh-tokens",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["refresh_tokens_revoked"].as_u64().unwrap() >= 1);
    let (_, list) = server
        .admin(Method::GET, &format!("{USERS}/{id}/refresh-tokens"), None)
        .await;
    assert_eq!(list["refresh_tokens"], json!([]));

    // All of the user's sessions at once.
    let (status, body) = server
        .admin(Method::DELETE, &format!("{USERS}/{id}/sessions"), None)
        .await;
    assert_eq!((status, body["sessions_revoked"].as_u64()), (200, Some(2)), "{body}");
    assert_eq!(me(access(&logins[2])).await, 401);

    // Consents: listed, withdrawn one at a time or for a whole client.
    let db = server.ctx("local").db().await.unwrap();
    let user_id = uuid::Uuid::parse_str(&id).unwrap();
    for client in ["partner", "reports"] {
        let consent = tenantry_dataplane::model::Consent {
            user_id,
            client_id: client.into(),
            scopes: vec!["openid".into(), "email".into()],
            granted_at: chrono::Utc::now(),
            expires_at: None,
            revoked_at: None,
        };
        db.grant_consent(&consent).await.unwrap();
    }
    let (_, list) = server.admin(Method::GET, &format!("{USERS}/{id}/consents"), None).await;
    let clients: Vec<&str> = list["consents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(clients, ["partner", "reports"]);
    assert_eq!(list["consents"][0]["scopes"], json!(["openid", "email"]));
    let (status, _) = server
        .admin(Method::DELETE, &format!("{USERS}/{id}/consents/partner"), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = server
        .admin(Method::DELETE, &format!("{USERS}/{id}/consents/partner"), None)
        .await;
    assert_eq!(status, 404);
    let (status, body) = server
        .admin(Method::DELETE, "/v1/admin/tenants/local/clients/reports/consents", None)
        .await;
    assert_eq!((status, body["consents_revoked"].as_u64()), (200, Some(1)));
    let (_, list) = server.admin(Method::GET, &format!("{USERS}/{id}/consents"), None).await;
    assert_eq!(list["consents"], json!([]));

    // An unknown user is 404 everywhere.
    let nobody = uuid::Uuid::new_v4();
    for path in ["sessions", "refresh-tokens", "consents"] {
        let (status, _) = server
            .admin(Method::GET, &format!("{USERS}/{nobody}/{path}"), None)
            .await;
        assert_eq!(status, 404, "{path}");
    }
}

/// Text an admin sends into a query of a PostgreSQL tenant (search parts, audit filters,
/// client ids and role names in the path) never reaches the database as something it
/// cannot read: a NUL or another control character is refused as bad input, not a 5xx.
#[tokio::test]
async fn control_characters_in_admin_text_are_refused_before_the_database() {
    let server = start().await;
    let client = crate::common::postgres::spa_client(&["openid"]);
    let Some(database) = crate::common::postgres::postgres_tenant(&server, "pgtext", client).await else {
        return;
    };
    let nobody = uuid::Uuid::new_v4();
    for (method, path) in [
        (Method::GET, "/v1/admin/tenants/pgtext/users?q=a%00b".to_owned()),
        (Method::GET, "/v1/admin/tenants/pgtext/users?email=%01".to_owned()),
        (Method::GET, "/v1/admin/tenants/pgtext/users?field.x=%00".to_owned()),
        (Method::GET, "/v1/admin/tenants/pgtext/audit?action=a%00".to_owned()),
        (Method::GET, "/v1/admin/tenants/pgtext/audit?actor=%00".to_owned()),
        (
            Method::DELETE,
            "/v1/admin/tenants/pgtext/clients/a%00b/refresh-tokens".to_owned(),
        ),
        (
            Method::DELETE,
            "/v1/admin/tenants/pgtext/clients/a%00b/consents".to_owned(),
        ),
        (
            Method::DELETE,
            format!("/v1/admin/tenants/pgtext/users/{nobody}/consents/a%00b"),
        ),
        (
            Method::DELETE,
            format!("/v1/admin/tenants/pgtext/users/{nobody}/roles/a%00b"),
        ),
        (
            Method::DELETE,
            format!("/v1/admin/tenants/pgtext/users/{nobody}/refresh-tokens?client_id=%00"),
        ),
    ] {
        let (status, body) = server.admin(method.clone(), &path, None).await;
        assert!((400..500).contains(&status), "{method} {path}: {status} {body}");
    }
    drop(server);
    database.drop_database().await;
}
