//! Who may do what on the admin API: API keys scoped to tenants and to read-only access,
//! refused (403, recorded in the audit trail) on every route they try to go beyond, and
//! refused (401) once revoked or expired.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{TestServer, start_with_config};

/// Every admin route (method, path; `{slug}` is the tenant the request names).
pub(crate) const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/admin/tenants"),
    ("POST", "/v1/admin/tenants"),
    ("GET", "/v1/admin/tenants/{slug}"),
    ("PATCH", "/v1/admin/tenants/{slug}"),
    ("DELETE", "/v1/admin/tenants/{slug}"),
    ("GET", "/v1/admin/tenants/{slug}/settings"),
    ("PUT", "/v1/admin/tenants/{slug}/settings"),
    ("PATCH", "/v1/admin/tenants/{slug}/settings"),
    ("POST", "/v1/admin/secrets/reseal"),
    ("GET", "/v1/admin/tenants/{slug}/database"),
    ("POST", "/v1/admin/tenants/{slug}/database/migrate"),
    ("POST", "/v1/admin/tenants/{slug}/database/adopt"),
    ("DELETE", "/v1/admin/tenants/{slug}/custom-fields/{name}/column"),
    ("GET", "/v1/admin/audit"),
    ("GET", "/v1/admin/tenants/{slug}/audit"),
    ("GET", "/v1/admin/me"),
    ("GET", "/v1/admin/admins"),
    ("POST", "/v1/admin/admins"),
    ("GET", "/v1/admin/admins/{id}"),
    ("PATCH", "/v1/admin/admins/{id}"),
    ("DELETE", "/v1/admin/admins/{id}"),
    ("POST", "/v1/admin/admins/{id}/reset-credentials"),
    ("GET", "/v1/admin/api-keys"),
    ("POST", "/v1/admin/api-keys"),
    ("GET", "/v1/admin/api-keys/{id}"),
    ("DELETE", "/v1/admin/api-keys/{id}"),
    ("GET", "/v1/admin/tenants/{slug}/keys"),
    ("POST", "/v1/admin/tenants/{slug}/keys/rotate"),
    ("POST", "/v1/admin/tenants/{slug}/keys/{kid}/retire"),
    ("POST", "/v1/admin/tenants/{slug}/providers/{id}/test"),
    ("GET", "/v1/admin/tenants/{slug}/identities/{provider}/{subject}"),
    ("GET", "/v1/admin/tenants/{slug}/users/{id}/identities"),
    ("GET", "/v1/admin/tenants/{slug}/clients"),
    ("POST", "/v1/admin/tenants/{slug}/clients"),
    ("GET", "/v1/admin/tenants/{slug}/clients/{client_id}"),
    ("PATCH", "/v1/admin/tenants/{slug}/clients/{client_id}"),
    ("DELETE", "/v1/admin/tenants/{slug}/clients/{client_id}"),
    ("POST", "/v1/admin/tenants/{slug}/clients/{client_id}/secret"),
    ("POST", "/v1/admin/tenants/{slug}/email/test"),
    ("GET", "/v1/admin/tenants/{slug}/scopes"),
    ("GET", "/v1/admin/tenants/{slug}/scopes/{name}"),
    ("PUT", "/v1/admin/tenants/{slug}/scopes/{name}"),
    ("DELETE", "/v1/admin/tenants/{slug}/scopes/{name}"),
    ("GET", "/v1/admin/tenants/{slug}/roles"),
    ("GET", "/v1/admin/tenants/{slug}/roles/{name}"),
    ("PUT", "/v1/admin/tenants/{slug}/roles/{name}"),
    ("DELETE", "/v1/admin/tenants/{slug}/roles/{name}"),
    ("GET", "/v1/admin/tenants/{slug}/users/{id}/roles"),
    ("PUT", "/v1/admin/tenants/{slug}/users/{id}/roles/{name}"),
    ("DELETE", "/v1/admin/tenants/{slug}/users/{id}/roles/{name}"),
    ("GET", "/v1/admin/tenants/{slug}/users/{id}/sessions"),
    ("DELETE", "/v1/admin/tenants/{slug}/users/{id}/sessions"),
    ("DELETE", "/v1/admin/tenants/{slug}/users/{id}/sessions/{sid}"),
    ("GET", "/v1/admin/tenants/{slug}/users/{id}/refresh-tokens"),
    ("DELETE", "/v1/admin/tenants/{slug}/users/{id}/refresh-tokens"),
    ("DELETE", "/v1/admin/tenants/{slug}/users/{id}/refresh-tokens/{family}"),
    ("GET", "/v1/admin/tenants/{slug}/users/{id}/consents"),
    ("DELETE", "/v1/admin/tenants/{slug}/users/{id}/consents/{client_id}"),
    ("DELETE", "/v1/admin/tenants/{slug}/clients/{client_id}/refresh-tokens"),
    ("DELETE", "/v1/admin/tenants/{slug}/clients/{client_id}/consents"),
    ("GET", "/v1/admin/tenants/{slug}/users"),
    ("POST", "/v1/admin/tenants/{slug}/users"),
    ("GET", "/v1/admin/tenants/{slug}/users/{id}"),
    ("PATCH", "/v1/admin/tenants/{slug}/users/{id}"),
    ("DELETE", "/v1/admin/tenants/{slug}/users/{id}"),
    ("PUT", "/v1/admin/tenants/{slug}/users/{id}/password"),
    ("POST", "/v1/admin/tenants/{slug}/users/{id}/send-verification-email"),
    ("POST", "/v1/admin/tenants/{slug}/users/{id}/send-reset-email"),
    ("POST", "/v1/admin/tenants/{slug}/users/{id}/disable"),
    ("POST", "/v1/admin/tenants/{slug}/users/{id}/enable"),
    ("GET", "/v1/admin/tenants/{slug}/users/{id}/passkeys"),
    ("DELETE", "/v1/admin/tenants/{slug}/users/{id}/passkeys/{passkey}"),
    ("GET", "/v1/admin/transfer-key"),
    ("GET", "/v1/admin/tenants/{slug}/export"),
    ("POST", "/v1/admin/tenants/{slug}/import"),
];

/// The admin route modules: a route added there without a row above fails the test.
const ROUTE_SOURCES: &[&str] = &[
    include_str!("../../src/routes/admin.rs"),
    include_str!("../../src/routes/admin_admins.rs"),
    include_str!("../../src/routes/admin_api_keys.rs"),
    include_str!("../../src/routes/admin_clients.rs"),
    include_str!("../../src/routes/admin_email.rs"),
    include_str!("../../src/routes/admin_keys.rs"),
    include_str!("../../src/routes/admin_providers.rs"),
    include_str!("../../src/routes/admin_roles.rs"),
    include_str!("../../src/routes/admin_scopes.rs"),
    include_str!("../../src/routes/admin_sessions.rs"),
    include_str!("../../src/routes/admin_transfer.rs"),
    include_str!("../../src/routes/admin_users.rs"),
];

#[test]
fn the_route_table_names_every_admin_route() {
    let mut found = 0;
    for source in ROUTE_SOURCES {
        for (at, _) in source.match_indices(".route(") {
            let rest = &source[at..];
            let path = &rest[rest.find('"').unwrap() + 1..];
            let path = &path[..path.find('"').unwrap()];
            assert!(ROUTES.iter().any(|(_, p)| *p == path), "{path} has no row in ROUTES");
            found += 1;
        }
    }
    assert!(found >= 25, "the scan finds the routes ({found})");
}

fn concrete(path: &str, slug: &str, key_id: &str) -> String {
    path.replace("{slug}", slug)
        .replace("{id}", key_id)
        .replace("{name}", "x")
        .replace("{client_id}", "x")
        .replace("{kid}", "x")
        .replace("{sid}", "x")
        .replace("{family}", "x")
        .replace("{provider}", "x")
        .replace("{subject}", "x")
        .replace("{passkey}", "x")
}

async fn call(server: &TestServer, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = server
        .http
        .request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", server.base),
        )
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn make_key(server: &TestServer, maker: &str, body: Value) -> (String, String) {
    let (status, made) = call(server, maker, "POST", "/v1/admin/api-keys", Some(body)).await;
    assert_eq!(status, 201, "{made}");
    assert!(made.get("secret_digest").is_none());
    (
        made["key"].as_str().unwrap().to_owned(),
        made["id"].as_str().unwrap().to_owned(),
    )
}

/// A server with a global database, so the audit trail is kept (the directory lives as
/// long as the first value).
async fn start_with_audit() -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "global_db_url = \"sqlite://{}\"\n",
        dir.path().join("global.db").display()
    );
    let server = start_with_config(Some(&config)).await;
    (dir, server)
}

#[tokio::test]
async fn api_keys_reach_only_their_tenants_and_read_only_keys_only_read() {
    let (_global_db, server) = start_with_audit().await;
    let root = server.admin_token.clone();
    for slug in ["alpha", "beta"] {
        let (status, body) = server
            .admin(Method::POST, "/v1/admin/tenants", Some(json!({ "slug": slug })))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (alpha_rw, alpha_rw_id) = make_key(
        &server,
        &root,
        json!({"name": "alpha automation", "reach": {"tenants": ["alpha"]}, "access": "read_write"}),
    )
    .await;
    let (viewer, viewer_id) = make_key(&server, &root, json!({"name": "auditor", "reach": "global"})).await;

    // Within reach, the tenant key works: reads, writes, and a tenant list of its own.
    let (status, body) = call(&server, &alpha_rw, "GET", "/v1/admin/tenants/alpha", None).await;
    assert_eq!(status, 200, "{body}");
    let client = json!({"client_id": "svc", "name": "svc", "grant_types": ["client_credentials"], "scopes": ["api"]});
    let (status, body) = call(
        &server,
        &alpha_rw,
        "POST",
        "/v1/admin/tenants/alpha/clients",
        Some(client),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, list) = call(&server, &alpha_rw, "GET", "/v1/admin/tenants", None).await;
    assert_eq!(status, 200);
    let slugs: Vec<&str> = list["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["alpha"]);
    let (status, _) = call(&server, &viewer, "GET", "/v1/admin/tenants/beta/clients", None).await;
    assert_eq!(status, 200, "a global read-only key reads every tenant");

    // Every route: the tenant key on another tenant, or on the installation, and the
    // read-only key on anything that writes, are refused before anything runs.
    let mut refusals = 0;
    for (method, path) in ROUTES {
        let writes = !matches!(*method, "GET" | "HEAD");
        let tenant_route = path.contains("{slug}");
        let within_reach = !tenant_route
            && (path.starts_with("/v1/admin/api-keys")
                || path.starts_with("/v1/admin/admins")
                || *path == "/v1/admin/me"
                || (*path, *method) == ("/v1/admin/tenants", "GET"));
        let beta = concrete(path, "beta", &viewer_id);
        let (status, body) = call(&server, &alpha_rw, method, &beta, Some(json!({}))).await;
        if tenant_route || !within_reach {
            assert_eq!(status, 403, "{method} {beta} with a key for alpha: {body}");
            assert_eq!(body["code"], "forbidden");
            refusals += 1;
        } else {
            assert_ne!(status, 403, "{method} {beta} narrows to the key's reach: {body}");
        }
        if writes {
            let alpha = concrete(path, "alpha", &alpha_rw_id);
            let (status, body) = call(&server, &viewer, method, &alpha, Some(json!({}))).await;
            assert_eq!(status, 403, "{method} {alpha} with a read-only key: {body}");
            refusals += 1;
        }
    }
    // Deleting a tenant and adopting another tenant's database are the installation's,
    // even for a key that reaches the tenant.
    for (method, path) in [
        ("DELETE", "/v1/admin/tenants/alpha"),
        ("POST", "/v1/admin/tenants/alpha/database/adopt"),
    ] {
        let (status, body) = call(&server, &alpha_rw, method, path, None).await;
        assert_eq!(status, 403, "{method} {path}: {body}");
        refusals += 1;
    }

    // A tenant key changes its tenant's settings, but not where its database lives.
    let (status, body) = call(
        &server,
        &alpha_rw,
        "PATCH",
        "/v1/admin/tenants/alpha",
        Some(json!({"settings": {"language": "es"}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let probe = json!({"settings": {"user_db": {"driver": "postgres", "dsn": "postgres://u:p@10.0.0.1:5432/x"}}});
    let (status, body) = call(&server, &alpha_rw, "PATCH", "/v1/admin/tenants/alpha", Some(probe)).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")), "{body}");
    refusals += 1;
    let stored = server.state.control_plane.snapshot();
    let user_db = &stored.tenant("alpha").unwrap().tenant.settings.user_db;
    assert!(
        user_db.as_ref().is_none_or(|db| db.dsn.is_none()),
        "the database stays where it was"
    );

    // Nothing was changed by the refused calls.
    let (status, _) = call(&server, &root, "GET", "/v1/admin/tenants/beta", None).await;
    assert_eq!(status, 200, "beta still exists");
    let (_, key) = call(&server, &root, "GET", &format!("/v1/admin/api-keys/{viewer_id}"), None).await;
    assert_eq!(key["active"], true, "the viewer key was not revoked: {key}");
    assert_eq!(key["revoked_at"], Value::Null);

    // A key cannot mint a key that reaches further or writes more than itself.
    for body in [
        json!({"name": "escalate", "reach": "global"}),
        json!({"name": "escalate", "reach": {"tenants": ["alpha", "beta"]}}),
    ] {
        let (status, refused) = call(&server, &alpha_rw, "POST", "/v1/admin/api-keys", Some(body)).await;
        assert_eq!(status, 403, "{refused}");
        refusals += 1;
    }
    let (status, _) = call(
        &server,
        &viewer,
        "POST",
        "/v1/admin/api-keys",
        Some(json!({"name": "escalate", "access": "read_write"})),
    )
    .await;
    assert_eq!(status, 403);

    // Every refusal is in the audit trail, with the key as the actor.
    let (status, audit) = call(&server, &root, "GET", "/v1/admin/audit?limit=1000", None).await;
    assert_eq!(status, 200, "{audit}");
    let events = audit["events"].as_array().unwrap();
    let forbidden: Vec<&Value> = events.iter().filter(|e| e["action"] == "forbidden").collect();
    assert!(
        forbidden.len() > refusals,
        "{} recorded, {refusals} refused",
        forbidden.len()
    );
    assert!(forbidden.iter().any(|e| e["admin_id"] == alpha_rw_id.as_str()
        && e["tenant"] == "beta"
        && e["details"]["credential"] == "api_key"));
    assert!(
        events
            .iter()
            .all(|e| e["request_id"].as_str().is_some_and(|id| !id.is_empty())),
        "every event names its request"
    );
    assert!(events.iter().any(|e| e["action"] == "create_api_key"));
}

#[tokio::test]
async fn a_revoked_or_expired_key_is_refused_and_a_key_is_shown_once() {
    let (_global_db, server) = start_with_audit().await;
    let root = server.admin_token.clone();
    let (key, id) = make_key(&server, &root, json!({"name": "ci", "access": "read_write"})).await;
    let (status, _) = call(&server, &key, "GET", "/v1/admin/tenants", None).await;
    assert_eq!(status, 200);
    let mut shown = Value::Null;
    for _ in 0..50 {
        shown = call(&server, &root, "GET", &format!("/v1/admin/api-keys/{id}"), None)
            .await
            .1;
        if !shown["last_used_at"].is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!shown["last_used_at"].is_null(), "the use is recorded: {shown}");
    assert!(
        shown.get("key").is_none() && shown.get("secret_digest").is_none(),
        "{shown}"
    );
    let (_, list) = call(&server, &root, "GET", "/v1/admin/api-keys", None).await;
    assert!(!list.to_string().contains(&key), "the list never shows a key");

    // A key with a wrong secret, or no key at all, is 401.
    // Another last character (never the one it had, or the "wrong" key is the key).
    let other = if key.ends_with('A') { 'B' } else { 'A' };
    let wrong = format!("{}{other}", &key[..key.len() - 1]);
    for token in [
        wrong.as_str(),
        "tnk_not-a-key",
        "tnk_00000000000000000000000000000000_x",
    ] {
        let (status, body) = call(&server, token, "GET", "/v1/admin/tenants", None).await;
        assert_eq!(status, 401, "{token}: {body}");
    }

    let (status, _) = call(&server, &root, "DELETE", &format!("/v1/admin/api-keys/{id}"), None).await;
    assert_eq!(status, 204);
    let (status, body) = call(&server, &key, "GET", "/v1/admin/tenants", None).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")), "{body}");
    assert!(body["detail"].as_str().unwrap().contains("revoked"));
    let (status, _) = call(&server, &root, "DELETE", &format!("/v1/admin/api-keys/{id}"), None).await;
    assert_eq!(status, 204, "revoking again changes nothing");

    // An expired key (written with a past expiry, as a key made long ago would be).
    let (expired, expired_id) = make_key(&server, &root, json!({"name": "short", "expires_in_days": 1})).await;
    let snapshot = server.state.control_plane.snapshot();
    let mut record = snapshot.api_keys[&expired_id.parse().unwrap()].clone();
    let past = chrono::Utc::now() - chrono::Duration::days(3);
    record.id = uuid::Uuid::new_v4();
    record.created_at = past;
    record.expires_at = Some(past + chrono::Duration::days(1));
    let old_id = record.id;
    server
        .state
        .writer
        .write(tenantry_controlplane::Command::CreateApiKey { key: record })
        .await
        .unwrap();
    // The same secret under the expired record's id.
    let secret = &expired["tnk_".len() + 32 + 1..];
    let old_token = format!("tnk_{}_{secret}", old_id.simple());
    let (status, body) = call(&server, &old_token, "GET", "/v1/admin/tenants", None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("expired"), "{body}");
    let (status, _) = call(&server, &expired, "GET", "/v1/admin/tenants", None).await;
    assert_eq!(status, 200, "the live one still works");

    // On every route, the revoked and the expired key are 401 before anything runs.
    for (method, path) in ROUTES {
        let concrete = concrete(path, "local", &id);
        for dead in [key.as_str(), old_token.as_str()] {
            let (status, body) = call(&server, dead, method, &concrete, Some(json!({}))).await;
            assert_eq!(
                (status, body["code"].as_str()),
                (401, Some("unauthorized")),
                "{method} {concrete}"
            );
        }
    }

    // Each use of the dead keys is recorded against the key.
    let mut recorded = Vec::new();
    for _ in 0..50 {
        let (_, audit) = call(&server, &root, "GET", "/v1/admin/audit?limit=1000", None).await;
        recorded = audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "api_key_refused")
            .map(|e| e["admin_id"].as_str().unwrap().to_owned())
            .collect();
        if recorded.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        recorded.contains(&id) && recorded.contains(&old_id.to_string()),
        "{recorded:?}"
    );

    // Bad input: unknown fields, a reach naming no tenant, a lifetime out of range.
    for body in [
        json!({"name": "x", "admin": true}),
        json!({"name": "x", "reach": {"tenants": ["nope"]}}),
        json!({"name": "x", "expires_in_days": 0}),
        json!({"name": "", "reach": "global"}),
    ] {
        let (status, problem) = call(&server, &root, "POST", "/v1/admin/api-keys", Some(body.clone())).await;
        assert!(matches!(status, 400 | 422), "{body}: {status} {problem}");
    }
}
