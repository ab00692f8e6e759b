//! Tenant export and import: export → import into a fresh tenant → export again gives the
//! same document except the values it marks volatile, on SQLite and on PostgreSQL;
//! credentials travel only sealed for the importer; a document that fails half-way, of a
//! newer version, or aimed at an existing tenant without merge/replace changes nothing.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::postgres::{postgres_tenant, spa_client};
use crate::common::{TestServer, start};

const PASSWORD: &str = "correct horse battery staple";

/// A tenant worth moving: a custom field, a role, a scope, a confidential and a public
/// client, and `users` users with profile, custom values, roles and passwords.
async fn populate(server: &TestServer, slug: &str, users: usize) {
    let settings = json!({"settings": {
        "branding": {"name": "Shop", "primary_color": "#123456"},
        "custom_fields": [{"name": "tier", "type": "text"}, {"name": "points", "type": "integer"}],
    }});
    let (status, body) = server
        .admin(Method::PATCH, &format!("/v1/admin/tenants/{slug}"), Some(settings))
        .await;
    assert_eq!(status, 200, "{body}");
    let role = json!({"description": "Buys things", "permissions": ["orders:read", "orders:write"]});
    let (status, body) = server
        .admin(
            Method::PUT,
            &format!("/v1/admin/tenants/{slug}/roles/buyer"),
            Some(role),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let scope = json!({"description": "Orders", "claims": ["tier"]});
    let (status, body) = server
        .admin(
            Method::PUT,
            &format!("/v1/admin/tenants/{slug}/scopes/orders"),
            Some(scope),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let confidential =
        json!({"client_id": "backend", "name": "Backend", "grant_types": ["client_credentials"], "scopes": ["orders"]});
    let (status, body) = server
        .admin(
            Method::POST,
            &format!("/v1/admin/tenants/{slug}/clients"),
            Some(confidential),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    if !server.ctx(slug).entry.clients.contains_key("demo-spa") {
        let (status, body) = server
            .admin(
                Method::POST,
                &format!("/v1/admin/tenants/{slug}/clients"),
                Some(spa_client(&["openid", "profile", "roles"])),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    for n in 0..users {
        let mut user = json!({"email": format!("user{n}@shop.test"), "email_verified": true, "given_name": format!("User {n}"),
            "custom": {"tier": if n % 2 == 0 { "gold" } else { "silver" }, "points": n}, "metadata": {"source": "test", "n": n}});
        if n < 3 {
            user["password"] = PASSWORD.into();
        }
        let (status, made) = server
            .admin(Method::POST, &format!("/v1/admin/tenants/{slug}/users"), Some(user))
            .await;
        assert_eq!(status, 201, "{made}");
        if n % 3 == 0 {
            let path = format!(
                "/v1/admin/tenants/{slug}/users/{}/roles/buyer",
                made["id"].as_str().unwrap()
            );
            let (status, body) = server.admin(Method::PUT, &path, None).await;
            assert_eq!(status, 204, "{body}");
        }
    }
}

async fn export(server: &TestServer, slug: &str, query: &str) -> String {
    let response = server
        .http
        .get(format!("{}/v1/admin/tenants/{slug}/export{query}", server.base))
        .bearer_auth(&server.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.text().await.unwrap()
}

async fn import(server: &TestServer, slug: &str, query: &str, document: String) -> (u16, Value) {
    let response = server
        .http
        .post(format!("{}/v1/admin/tenants/{slug}/import{query}", server.base))
        .bearer_auth(&server.admin_token)
        .header("content-type", "application/json")
        .body(document)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The document without what it marks volatile, and its users section as sent.
fn stable(document: &str) -> (Value, String) {
    let mut value: Value = serde_json::from_str(document).unwrap();
    let volatile: Vec<String> = serde_json::from_value(value["volatile"].clone()).unwrap();
    assert!(volatile.contains(&"exported_at".to_owned()) && volatile.contains(&"source".to_owned()));
    let object = value.as_object_mut().unwrap();
    for key in ["exported_at", "source", "transfer"] {
        object.remove(key);
    }
    let users_at = document.find("\"users\":[").unwrap();
    (value, document[users_at..].to_owned())
}

async fn round_trip(server: &TestServer, from: &str, to: &str, mode: &str, users: usize) {
    let first = export(server, from, "").await;
    assert_eq!(first.lines().count(), users + 2, "one line per user");
    let (status, report) = import(server, to, &format!("?mode={mode}"), first.clone()).await;
    assert!(status == 200 || status == 201, "{status} {report}");
    assert_eq!(report["users"]["created"], users as u64, "{report}");
    let again = export(server, to, "").await;
    let (first_value, first_users) = stable(&first);
    let (again_value, again_users) = stable(&again);
    assert_eq!(first_value, again_value, "the same tenant, but for the volatile values");
    assert_eq!(first_users, again_users, "the users, byte for byte");
    let first_source: Value = serde_json::from_str::<Value>(&first).unwrap()["source"].clone();
    assert_eq!(first_source["slug"], from);
}

#[tokio::test]
async fn export_import_export_round_trips_on_sqlite() {
    let server = start().await;
    let (status, body) = server
        .admin(Method::POST, "/v1/admin/tenants", Some(json!({"slug": "shop"})))
        .await;
    assert_eq!(status, 201, "{body}");
    populate(&server, "shop", 25).await;
    round_trip(&server, "shop", "shop-copy", "create", 25).await;

    // What moved works: custom values and roles, and the client secret is a new one.
    let copy = server.ctx("shop-copy");
    assert!(copy.entry.clients["backend"].secret_hash.is_some());
    assert_ne!(
        copy.entry.clients["backend"].secret_hash,
        server.ctx("shop").entry.clients["backend"].secret_hash
    );
    let (status, page) = server
        .admin(Method::GET, "/v1/admin/tenants/shop-copy/users?field.tier=gold", None)
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["users"].as_array().unwrap().len(), 13);
    // Without credentials nobody can sign in with the old password.
    let (status, _) = login(&server, "shop-copy", "user0@shop.test").await;
    assert_eq!(status, 401);
}

/// How many custom-field columns the tenant's database has.
async fn custom_columns(server: &TestServer, slug: &str) -> usize {
    let (status, db) = server
        .admin(Method::GET, &format!("/v1/admin/tenants/{slug}/database"), None)
        .await;
    assert_eq!(status, 200, "{db}");
    db["custom_fields"].as_array().unwrap().len()
}

async fn login(server: &TestServer, slug: &str, email: &str) -> (u16, Value) {
    let response = server
        .http
        .post(format!("{}/v1/auth/login", server.base))
        .header("x-tenant-slug", slug)
        .json(&json!({"email": email, "password": PASSWORD, "client_id": "demo-spa"}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn export_import_export_round_trips_on_postgres() {
    let server = start().await;
    let Some(source) = postgres_tenant(&server, "pgshop", spa_client(&["openid", "profile", "roles"])).await else {
        return;
    };
    let Some(target) = postgres_tenant(&server, "pgcopy", spa_client(&["openid"])).await else {
        return;
    };
    populate(&server, "pgshop", 25).await;
    round_trip(&server, "pgshop", "pgcopy", "replace", 25).await;
    let copy = server.ctx("pgcopy");
    assert_eq!(copy.entry.clients["demo-spa"].scopes, ["openid", "profile", "roles"]);
    drop(server);
    source.drop_database().await;
    target.drop_database().await;
}

#[tokio::test]
async fn credentials_travel_sealed_and_sign_in_after_the_move() {
    let server = start().await;
    let (status, body) = server
        .admin(Method::POST, "/v1/admin/tenants", Some(json!({"slug": "vault"})))
        .await;
    assert_eq!(status, 201, "{body}");
    populate(&server, "vault", 4).await;
    // user2 has a confirmed authenticator.
    let (status, tokens) = login(&server, "vault", "user2@shop.test").await;
    assert_eq!(status, 200, "{tokens}");
    let bearer = tokens["access_token"].as_str().unwrap().to_owned();
    let auth = |path: &str, body: Value| {
        server
            .http
            .post(format!("{}{path}", server.base))
            .header("x-tenant-slug", "vault")
            .bearer_auth(&bearer)
            .json(&body)
            .send()
    };
    let enrolment: Value = auth("/v1/auth/mfa/totp", json!({"current_password": PASSWORD}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = enrolment["secret"].as_str().unwrap().to_owned();
    let step = tenantry_testkit::totp::current_step();
    let confirmed = auth(
        "/v1/auth/mfa/totp/confirm",
        json!({"code": tenantry_testkit::totp::totp_at_step(&secret, step)}),
    )
    .await
    .unwrap();
    assert_eq!(confirmed.status(), 200);

    let document = export(&server, "vault", "?credentials=true").await;
    assert!(!document.contains(&secret), "no TOTP secret in the clear");
    assert!(!document.contains("$argon2"), "no password hash in the clear");
    assert!(!document.contains(PASSWORD));
    let parsed: Value = serde_json::from_str(&document).unwrap();
    assert_eq!(parsed["credentials"], true);
    assert!(
        parsed["users"][0]["password"]["sealed"]
            .as_str()
            .unwrap()
            .starts_with("tts1.")
    );

    let (status, report) = import(&server, "vault-copy", "", document.clone()).await;
    assert_eq!(status, 201, "{report}");
    assert_eq!(report["credentials"], true);
    let (status, body) = login(&server, "vault-copy", "user1@shop.test").await;
    assert_eq!(status, 200, "{body}");
    // The authenticator came along: the copy asks for its code, and the next one works.
    let (status, challenge) = login(&server, "vault-copy", "user2@shop.test").await;
    assert_eq!((status, &challenge["mfa_required"]), (200, &json!(true)), "{challenge}");
    let mfa = |code: String| {
        server
            .http
            .post(format!("{}/v1/auth/mfa", server.base))
            .header("x-tenant-slug", "vault-copy")
            .json(&json!({"mfa_token": challenge["mfa_token"], "code": code}))
            .send()
    };
    // The code spent confirming the authenticator at the source is spent in the copy too.
    let replay = mfa(tenantry_testkit::totp::totp_at_step(&secret, step)).await.unwrap();
    assert_eq!(replay.status(), 401);
    let response = mfa(tenantry_testkit::totp::totp_at_step(&secret, step + 1))
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].is_string());

    // Sealed for another installation's key: refused, nothing made.
    let other = tenantry_crypto::SecretBox::new(tenantry_crypto::MasterKey::generate(), vec![]);
    let recipient = other.transfer_key().public().to_text();
    let foreign = export(&server, "vault", &format!("?credentials=true&recipient={recipient}")).await;
    let (status, body) = import(&server, "vault-foreign", "", foreign).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "transfer_key_mismatch");
    assert!(server.state.resolver.resolve_slug("vault-foreign").is_err());
    let (status, body) = server.admin(Method::GET, "/v1/admin/transfer-key", None).await;
    assert_eq!(status, 200);
    assert!(body["public_key"].as_str().unwrap().starts_with("ttk1."), "{body}");
}

#[tokio::test]
async fn an_import_that_fails_half_way_or_may_not_happen_changes_nothing() {
    let server = start().await;
    let (status, body) = server
        .admin(Method::POST, "/v1/admin/tenants", Some(json!({"slug": "stable"})))
        .await;
    assert_eq!(status, 201, "{body}");
    populate(&server, "stable", 6).await;
    let document = export(&server, "stable", "").await;
    let before = export(&server, "stable", "").await;

    // An existing slug without merge or replace.
    let (status, body) = import(&server, "stable", "", document.clone()).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "tenant_exists");

    // A newer version.
    let newer = document.replacen("\"version\":1", "\"version\":2", 1);
    let (status, body) = import(&server, "fresh", "", newer).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "import_version_unsupported");
    assert!(server.state.resolver.resolve_slug("fresh").is_err());

    // The fifth user is bad: a replace that stops there leaves the tenant as it was.
    let mut lines: Vec<String> = document.lines().map(str::to_owned).collect();
    lines[5] = lines[5].replace("@shop.test", " at shop");
    let broken = lines.join("\n");
    let (status, body) = import(&server, "stable", "?mode=replace", broken.clone()).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("users[4]"), "{body}");
    assert_eq!(stable(&export(&server, "stable", "").await), stable(&before));
    // ... and a new tenant is not made at all.
    let (status, _) = import(&server, "half", "", broken).await;
    assert_eq!(status, 422);
    assert!(server.state.resolver.resolve_slug("half").is_err());
    // A client the installation would refuse: refused before any user is read.
    let bad_client = document.replacen("http://localhost:3000/callback", "not a uri", 1);
    let (status, body) = import(&server, "badclient", "", bad_client).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["detail"].as_str().unwrap().starts_with("clients.demo-spa"),
        "{body}"
    );
    assert!(server.state.resolver.resolve_slug("badclient").is_err());
    // A cut document.
    let (status, body) = import(&server, "cut", "", document[..document.len() / 2].to_owned()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "invalid_json");
    assert!(server.state.resolver.resolve_slug("cut").is_err());

    // A dry run reports and changes nothing.
    let (status, report) = import(&server, "stable", "?mode=replace&dry_run=true", document.clone()).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["users"]["created"], 6);
    // ... not even a column for a custom field the document adds.
    let before_columns = custom_columns(&server, "stable").await;
    let more_fields = document.replacen(
        "{\"indexed\":false,\"name\":\"points\"",
        "{\"name\":\"extra\",\"type\":\"text\"},{\"indexed\":false,\"name\":\"points\"",
        1,
    );
    assert_ne!(more_fields, document, "the document names its custom fields");
    let (status, report) = import(&server, "stable", "?mode=merge&dry_run=true", more_fields).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        custom_columns(&server, "stable").await,
        before_columns,
        "a dry run adds no column"
    );
    let (status, report) = import(&server, "dry", "?dry_run=true", document.clone()).await;
    assert_eq!(status, 200, "{report}");
    assert!(server.state.resolver.resolve_slug("dry").is_err());
    assert_eq!(stable(&export(&server, "stable", "").await), stable(&before));

    // Merge adds and updates, removes nothing.
    let (status, report) = import(&server, "stable", "?mode=merge", document).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["users"]["updated"], 6, "{report}");
    assert_eq!(report["users"]["created"], 0, "{report}");

    // Not JSON, and unknown query parameters.
    let response = server
        .http
        .post(format!("{}/v1/admin/tenants/stable/import?mode=merge", server.base))
        .bearer_auth(&server.admin_token)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    let (status, _) = import(&server, "stable", "?mode=wipe", "{}".into()).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_tenant_credential_imports_and_exports_only_within_its_reach() {
    let server = start().await;
    for slug in ["mine", "theirs"] {
        let (status, body) = server
            .admin(Method::POST, "/v1/admin/tenants", Some(json!({"slug": slug})))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, made) = server
        .admin(
            Method::POST,
            "/v1/admin/api-keys",
            Some(json!({"name": "mine", "reach": {"tenants": ["mine"]}, "access": "read_write"})),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    let key = made["key"].as_str().unwrap();
    let document = export(&server, "mine", "").await;
    let send = |slug: &str, query: &str| {
        server
            .http
            .post(format!("{}/v1/admin/tenants/{slug}/import{query}", server.base))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(document.clone())
            .send()
    };
    assert_eq!(send("theirs", "?mode=merge").await.unwrap().status(), 403);
    assert_eq!(send("brand-new", "").await.unwrap().status(), 403);
    assert_eq!(send("mine", "?mode=merge").await.unwrap().status(), 200);
    let response = server
        .http
        .get(format!("{}/v1/admin/tenants/theirs/export", server.base))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
}
