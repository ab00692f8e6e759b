//! The real server over HTTP: operations endpoints, the resolver, the admin tenant API,
//! sealed secrets on disk, degraded tenants and the shared layers.

use crate::common::*;
use reqwest::Method;
use serde_json::{Value, json};

fn smtp(password: &str) -> Value {
    json!({"host": "smtp.example.com", "port": 587, "username": "mailer", "password": password, "from_address": "no-reply@example.com"})
}

#[tokio::test]
async fn operations_endpoints_and_unknown_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_dev(&dir.path().join("root"), &[]);
    let http = reqwest::Client::new();

    assert!(
        server
            .stdout_lines
            .iter()
            .any(|l| l.contains(&format!("{}/t/local", server.base))),
        "{:?}",
        server.stdout_lines
    );

    let health: Value = http
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "alive");
    let ready = http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["components"]["control_plane"]["status"], "ok");

    for path in [
        "/t/nope",
        "/t/nope/.well-known/openid-configuration",
        "/v1/tenant?tenant=nope",
    ] {
        let resp = http.get(server.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "tenant_not_found", "{path}");
        assert_eq!(body["status"], 404);
    }
    // A known tenant with an unknown route is a plain not_found.
    let body: Value = http
        .get(server.url("/t/local/nothing-here"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["code"], "not_found");
    let body: Value = http
        .get(server.url("/v1/tenant"))
        .header("x-tenant-slug", "ghost")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["code"], "tenant_not_found");
    // Default tenant, then ?tenant.
    let info: Value = http
        .get(server.url("/v1/tenant"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["slug"], "local");
    assert_eq!(info["issuer"], format!("{}/t/local", server.base));

    let resp = http.delete(server.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "method_not_allowed");

    let metrics = http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("http_requests_total{method=\"GET\",route=\"/t/{slug}/{*rest}\",status=\"404\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("http_request_duration_seconds_bucket"), "{metrics}");
    assert!(!metrics.contains("/t/nope/"), "raw paths never become labels");
}

#[tokio::test]
async fn request_ids_and_security_headers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_dev(&dir.path().join("root"), &[]);
    let http = reqwest::Client::new();
    let resp = http
        .get(server.url("/healthz"))
        .header("x-request-id", "trace-abc.123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-abc.123");
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    assert_eq!(resp.headers()["x-frame-options"], "DENY");
    assert!(resp.headers().contains_key("content-security-policy"));
    let resp = http
        .get(server.url("/healthz"))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    let generated = resp.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(generated, "bad id with spaces");
    assert_eq!(generated.len(), 36);
}

#[tokio::test]
async fn admin_tenant_lifecycle_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let server = Server::start_dev(&root, &[]);
    let admin = Admin::of(&server);

    let (status, body) = admin
        .send(
            Method::POST,
            "/v1/admin/tenants",
            Some(json!({"slug": "acme", "display_name": "Acme", "settings": {"smtp": smtp("pw-1"), "language": "es"}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["issuer"], format!("{}/t/acme", server.base));
    assert_eq!(body["settings"]["smtp"]["password"], serde_json::json!({"set": true}));
    assert_eq!(body["settings"]["language"], "es");

    // Duplicate, invalid slug, invalid URL, unknown driver, malformed DSN: 4xx, nothing saved.
    let (status, body) = admin
        .send(Method::POST, "/v1/admin/tenants", Some(json!({"slug": "acme"})))
        .await;
    assert_eq!((status, body["code"].as_str()), (409, Some("tenant_exists")));
    for bad in [
        json!({"slug": "Not_A_Slug"}),
        json!({"slug": "bad-url", "settings": {"branding": {"logo_url": "not a url"}}}),
        json!({"slug": "bad-driver", "settings": {"user_db": {"driver": "oracle"}}}),
        json!({"slug": "bad-dsn", "settings": {"user_db": {"driver": "postgres", "dsn": "::not-a-dsn with hunter2"}}}),
        json!({"slug": "bad-origin", "settings": {"cors_allowed_origins": ["https://app.example.com/path"]}}),
    ] {
        let (status, body) = admin.send(Method::POST, "/v1/admin/tenants", Some(bad.clone())).await;
        assert_eq!(status, 422, "{bad} → {body}");
        assert_eq!(body["code"], "validation_failed");
        assert!(body["errors"].as_array().is_some_and(|e| !e.is_empty()), "{body}");
        assert!(!body.to_string().contains("hunter2"), "a DSN is never echoed");
        let slug = bad["slug"].as_str().unwrap();
        assert!(!root.join("tenants").join(slug).exists(), "{slug} must not be stored");
    }
    let (status, body) = admin
        .send(
            Method::POST,
            "/v1/admin/tenants",
            Some(json!({"slug": "x", "extra": 1})),
        )
        .await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (422, Some("extra")),
        "{body}"
    );
    let resp = admin
        .http
        .post(format!("{}/v1/admin/tenants", server.base))
        .bearer_auth(&admin.token)
        .body("{\"slug\":")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = admin
        .http
        .post(format!("{}/v1/admin/tenants", server.base))
        .bearer_auth(&admin.token)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);

    // Read, list, patch (secret kept by the redaction marker), replace settings.
    let (status, body) = admin.send(Method::GET, "/v1/admin/tenants/acme", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["display_name"], "Acme");
    let before = std::fs::read_to_string(root.join("tenants/acme/tenant.json")).unwrap();
    let sealed_before: Value = serde_json::from_str(&before).unwrap();
    let (status, body) = admin
        .send(
            Method::PATCH,
            "/v1/admin/tenants/acme",
            Some(json!({"display_name": "Acme Inc", "settings": {"branding": {"primary_color": "#112233"}}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["settings"]["branding"]["primary_color"], "#112233");
    assert_eq!(body["settings"]["language"], "es");
    let after: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("tenants/acme/tenant.json")).unwrap()).unwrap();
    assert_eq!(
        after["settings"]["smtp"]["password"], sealed_before["settings"]["smtp"]["password"],
        "untouched secret is kept as sealed"
    );
    assert_eq!(after["display_name"], "Acme Inc");

    let (status, body) = admin
        .send(
            Method::PATCH,
            "/v1/admin/tenants/acme",
            Some(json!({"settings": {"token_lifetimes": {"access_token_secs": 0}}})),
        )
        .await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (422, Some("settings.token_lifetimes.access_token_secs"))
    );
    let unchanged: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("tenants/acme/tenant.json")).unwrap()).unwrap();
    assert_eq!(unchanged, after, "a refused update changes nothing");

    // Replacing the settings names the version read (ETag → If-Match).
    let read = admin
        .http
        .get(format!("{}/v1/admin/tenants/acme/settings", server.base))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    let etag = read.headers()["etag"].to_str().unwrap().to_owned();
    let replaced = admin
        .http
        .put(format!("{}/v1/admin/tenants/acme/settings", server.base))
        .bearer_auth(&admin.token)
        .header("if-match", etag)
        .json(&json!({"language": "en"}))
        .send()
        .await
        .unwrap();
    assert_eq!(replaced.status(), 200);
    let body: Value = replaced.json().await.unwrap();
    assert!(body.get("smtp").is_none(), "PUT replaces the whole settings: {body}");

    let (status, body) = admin.send(Method::GET, "/v1/admin/tenants?limit=1", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["tenants"].as_array().unwrap().len(), 1);
    assert_eq!(body["tenants"][0]["slug"], "acme");
    assert_eq!(body["next_after"], "acme");
    let (_, body) = admin.send(Method::GET, "/v1/admin/tenants?after=acme", None).await;
    assert_eq!(body["tenants"][0]["slug"], "local");
    assert!(body.get("next_after").is_none());
    let (status, _) = admin.send(Method::GET, "/v1/admin/tenants?limit=0", None).await;
    assert_eq!(status, 422);

    let (status, _) = admin.send(Method::DELETE, "/v1/admin/tenants/acme", None).await;
    assert_eq!(status, 204);
    assert!(!root.join("tenants/acme").exists());
    let (status, body) = admin.send(Method::GET, "/v1/admin/tenants/acme", None).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("tenant_not_found")));
    let (status, _) = admin.send(Method::DELETE, "/v1/admin/tenants/acme", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn admin_auth_and_body_limits() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_dev(&dir.path().join("root"), &[("TENANTRY_MAX_BODY_BYTES", "4096")]);
    let http = reqwest::Client::new();

    let resp = http.get(server.url("/v1/admin/tenants")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "unauthorized");
    let resp = http
        .get(server.url("/v1/admin/tenants"))
        .bearer_auth("tnt_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    let resp = http
        .post(server.url("/v1/admin/tenants"))
        .header("authorization", "Basic abc")
        .json(&json!({"slug": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(!server.fs_root.join("tenants/x").exists());

    let big = json!({"slug": "big", "display_name": "x".repeat(10_000)});
    let resp = http
        .post(server.url("/v1/admin/tenants"))
        .bearer_auth(server.admin_token())
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "payload_too_large");
    assert!(!server.fs_root.join("tenants/big").exists());
}

#[tokio::test]
async fn a_stalled_request_times_out_with_a_problem() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_dev(&dir.path().join("root"), &[("TENANTRY_REQUEST_TIMEOUT_SECS", "1")]);
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/admin/tenants HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"slug\":",
        server.admin_token()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
}

#[tokio::test]
async fn cors_follows_each_tenants_settings() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_dev(&dir.path().join("root"), &[]);
    let admin = Admin::of(&server);
    let (status, _) = admin
        .send(
            Method::POST,
            "/v1/admin/tenants",
            Some(json!({"slug": "shop", "settings": {"cors_allowed_origins": ["https://shop.example"]}})),
        )
        .await;
    assert_eq!(status, 201);
    let http = reqwest::Client::new();
    let preflight = |origin: &'static str, tenant: &'static str| {
        http.request(Method::OPTIONS, server.url(&format!("/v1/tenant?tenant={tenant}")))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "x-tenant-slug")
            .send()
    };
    let ok = preflight("https://shop.example", "shop").await.unwrap();
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://shop.example");
    let other = preflight("https://evil.example", "shop").await.unwrap();
    assert!(!other.headers().contains_key("access-control-allow-origin"));
    let wrong_tenant = preflight("https://shop.example", "local").await.unwrap();
    assert!(
        !wrong_tenant.headers().contains_key("access-control-allow-origin"),
        "origins are per tenant"
    );
    let get = http
        .get(server.url("/v1/tenant"))
        .header("x-tenant-slug", "shop")
        .header("origin", "https://shop.example")
        .send()
        .await
        .unwrap();
    assert_eq!(get.headers()["access-control-allow-origin"], "https://shop.example");
}

#[tokio::test]
async fn no_plaintext_secret_reaches_fs_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let server = Server::start_dev(&root, &[]);
    let admin = Admin::of(&server);
    let canary = "CANARY-9f1c2e7d";
    let settings = json!({
        "smtp": smtp(&format!("{canary}-smtp")),
        "user_db": {"driver": "postgres", "dsn": format!("postgres://app:{canary}-dsn@db.example/acme")},
        "social_providers": [{"id": "google", "kind": "google", "client_id": "cid", "client_secret": format!("{canary}-social")}],
    });
    let (status, body) = admin
        .send(
            Method::POST,
            "/v1/admin/tenants",
            Some(json!({"slug": "acme", "settings": settings})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(!body.to_string().contains(canary), "responses never carry secrets");
    let (_, body) = admin
        .send(
            Method::PATCH,
            "/v1/admin/tenants/acme",
            Some(json!({"settings": {"smtp": {"password": format!("{canary}-new")}}})),
        )
        .await;
    assert!(!body.to_string().contains(canary));
    let (_, body) = admin.send(Method::GET, "/v1/admin/tenants/acme", None).await;
    assert!(!body.to_string().contains(canary));

    let files = files_under(&root);
    assert!(files.iter().any(|f| f.ends_with("tenants/acme/tenant.json")));
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(canary),
            "plaintext secret in {}",
            file.display()
        );
    }
    assert!(!server.stderr().contains(canary), "secrets are never logged");
}

#[tokio::test]
async fn truncated_file_degrades_one_tenant_and_a_moved_secret_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let server = Server::start_dev(&root, &[]);
    let admin = Admin::of(&server);
    for slug in ["alpha", "beta", "gamma"] {
        let (status, _) = admin
            .send(
                Method::POST,
                "/v1/admin/tenants",
                Some(json!({"slug": slug, "settings": {"smtp": smtp(&format!("pw-{slug}"))}})),
            )
            .await;
        assert_eq!(status, 201);
    }
    server.terminate();

    // Truncate alpha; copy beta's sealed SMTP password into gamma.
    let alpha = root.join("tenants/alpha/tenant.json");
    let bytes = std::fs::read(&alpha).unwrap();
    std::fs::write(&alpha, &bytes[..bytes.len() / 3]).unwrap();
    let beta: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("tenants/beta/tenant.json")).unwrap()).unwrap();
    let gamma_path = root.join("tenants/gamma/tenant.json");
    let mut gamma: Value = serde_json::from_str(&std::fs::read_to_string(&gamma_path).unwrap()).unwrap();
    gamma["settings"]["smtp"]["password"] = beta["settings"]["smtp"]["password"].clone();
    std::fs::write(&gamma_path, serde_json::to_vec_pretty(&gamma).unwrap()).unwrap();

    let server = Server::start_dev(&root, &[]);
    let admin = Admin::of(&server);
    let http = reqwest::Client::new();
    let ready: Value = http
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "degraded", "{ready}");
    // Without an admin token only counts: no paths, errors or slugs.
    assert_eq!(ready["components"]["tenants"]["degraded_count"], 1, "{ready}");
    assert!(
        !ready.to_string().contains("alpha") && !ready.to_string().contains(&root.display().to_string()),
        "{ready}"
    );
    let ready: Value = http
        .get(server.url("/readyz"))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let degraded = &ready["components"]["tenants"]["degraded"][0];
    assert_eq!(degraded["slug"], "alpha");
    assert_eq!(degraded["path"], alpha.display().to_string());

    let resp = http.get(server.url("/v1/tenant?tenant=alpha")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "tenant_degraded");
    let resp = http.get(server.url("/v1/tenant?tenant=beta")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "other tenants are served");
    let (_, list) = admin.send(Method::GET, "/v1/admin/tenants", None).await;
    assert_eq!(list["degraded"][0]["slug"], "alpha");

    let (status, report) = admin.send(Method::POST, "/v1/admin/secrets/reseal", None).await;
    assert_eq!(status, 200);
    let failed = report["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{report}");
    assert_eq!(failed[0]["tenant"], "gamma");
    assert_eq!(failed[0]["field"], "smtp.password");
    assert_eq!(failed[0]["code"], "secret_unreadable");

    // Deleting the degraded tenant repairs the tree.
    let (status, _) = admin.send(Method::DELETE, "/v1/admin/tenants/alpha", None).await;
    assert_eq!(status, 204);
    let ready: Value = http
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
}

#[tokio::test]
async fn master_key_rotation_with_reseal() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let server = Server::start_dev(&root, &[("SECRETBOX_MASTER_KEY", KEY_A)]);
    let admin = Admin::of(&server);
    let (status, _) = admin
        .send(
            Method::POST,
            "/v1/admin/tenants",
            Some(json!({"slug": "acme", "settings": {"smtp": smtp("rotate-me")}})),
        )
        .await;
    assert_eq!(status, 201);
    let sealed_a: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("tenants/acme/tenant.json")).unwrap()).unwrap();
    server.terminate();

    let server = Server::start_dev(
        &root,
        &[("SECRETBOX_MASTER_KEY", KEY_B), ("SECRETBOX_PREVIOUS_KEYS", KEY_A)],
    );
    let admin = Admin::of(&server);
    let (status, report) = admin.send(Method::POST, "/v1/admin/secrets/reseal", None).await;
    assert_eq!(status, 200);
    // The SMTP password, three private keys each for acme, local and the system issuer,
    // and the installation's client-secret key.
    assert_eq!(report["resealed"], 11, "{report}");
    assert!(report["failed"].as_array().unwrap().is_empty());
    let sealed_b: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("tenants/acme/tenant.json")).unwrap()).unwrap();
    assert_ne!(
        sealed_a["settings"]["smtp"]["password"],
        sealed_b["settings"]["smtp"]["password"]
    );
    server.terminate();

    // With only the new key, everything still opens.
    let server = Server::start_dev(&root, &[("SECRETBOX_MASTER_KEY", KEY_B)]);
    let admin = Admin::of(&server);
    let (_, report) = admin.send(Method::POST, "/v1/admin/secrets/reseal", None).await;
    assert_eq!(report["resealed"], 0);
    assert!(report["failed"].as_array().unwrap().is_empty(), "{report}");
    let jwks = reqwest::get(format!("{}/t/acme/jwks.json", server.base)).await.unwrap();
    assert_eq!(jwks.status(), 200, "resealed keys open under the new master key");
    let ready: Value = reqwest::get(format!("{}/readyz", server.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["components"]["keystore"]["status"], "ok", "{ready}");
}

#[tokio::test]
async fn sigterm_stops_gracefully_and_a_second_start_reuses_everything() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let server = Server::start_dev(&root, &[]);
    let first_token = server.admin_token();
    assert!(
        server.stdout_lines.iter().any(|l| l.contains(&first_token)),
        "the token is printed once"
    );
    let key = std::fs::read_to_string(root.join("dev-master-key")).unwrap();
    let local_id = std::fs::read_to_string(root.join("tenants/local/tenant.json")).unwrap();
    assert!(server.stderr().contains("WARNING"), "the dev key is announced loudly");
    assert!(
        !server.stderr().contains('\x1b'),
        "no colour codes when stderr is a file, not a terminal"
    );
    let demo_line = server
        .stdout_lines
        .iter()
        .find(|l| l.contains("demo user (password shown once): demo@example.com / "))
        .expect("the demo user is announced with its password")
        .clone();
    let demo_password = demo_line.rsplit(" / ").next().unwrap().trim().to_owned();
    // The account page, where the demo user signs in: it sends the browser to the
    // tenant's login as its built-in client.
    let account_line = server
        .stdout_lines
        .iter()
        .find(|l| l.contains("account page (sign in as the demo user): "))
        .expect("the account page is announced")
        .clone();
    let account_url = account_line.rsplit(": ").next().unwrap().trim().to_owned();
    assert!(account_url.ends_with("/t/local/account"), "{account_line}");
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = no_redirects.get(&account_url).send().await.unwrap();
    assert_eq!(answer.status(), 303);
    let location = answer.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.contains("/t/local/authorize?") && location.contains("client_id=tenantry-account"),
        "{location}"
    );
    let login = no_redirects.get(&location).send().await.unwrap();
    assert_eq!(login.status(), 200);
    let admin = Admin::of(&server);
    let (_, users) = admin.send(Method::GET, "/v1/admin/tenants/local/users", None).await;
    assert_eq!(users["users"][0]["email"], "demo@example.com");
    assert!(!server.stderr().contains(&demo_password), "the password is not logged");
    let status = server.terminate();
    assert!(status.success(), "{status:?}");

    let server = Server::start_dev(&root, &[]);
    assert_eq!(server.admin_token(), first_token);
    assert!(
        !server
            .stdout_lines
            .iter()
            .any(|l| l.contains(&first_token) || l.contains(&demo_password)),
        "not printed again"
    );
    assert_eq!(std::fs::read_to_string(root.join("dev-master-key")).unwrap(), key);
    assert_eq!(
        std::fs::read_to_string(root.join("tenants/local/tenant.json")).unwrap(),
        local_id
    );
    assert!(root.join("tenants/local/clients/demo-spa.json").exists());
    let admin = Admin::of(&server);
    let (status, _) = admin.send(Method::GET, "/v1/admin/tenants/local", None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn tenant_databases_through_the_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let global = dir.path().join("global.db");
    let global_url = format!("sqlite:{}", global.display());
    let server = Server::start_dev(&root, &[("TENANTRY_GLOBAL_DB_URL", &global_url)]);
    let admin = Admin::of(&server);

    // The dev tenant has a SQLite database that opens and migrates on first use.
    let (status, body) = admin.send(Method::GET, "/v1/admin/tenants/local/database", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["driver"], "sqlite");
    assert!(body["schema"]["version"].as_i64().unwrap() >= 1);
    assert_eq!(body["schema"]["pending"], 0);
    let (status, body) = admin
        .send(Method::POST, "/v1/admin/tenants/local/database/migrate", None)
        .await;
    assert_eq!((status, body["pending"].as_u64()), (200, Some(0)));
    let local_id = body.clone();
    let _ = local_id;

    // A new tenant gets the embedded SQLite database; one explicitly configured without a
    // database → 409; an unreachable one → 503 with the kind, never the DSN.
    let (status, body) = admin
        .send(Method::POST, "/v1/admin/tenants", Some(json!({"slug": "plain"})))
        .await;
    assert_eq!(
        (status, body["settings"]["user_db"]["driver"].as_str()),
        (201, Some("sqlite"))
    );
    admin
        .send(
            Method::POST,
            "/v1/admin/tenants",
            Some(json!({"slug": "nodb", "settings": {"user_db": null}})),
        )
        .await;
    let (status, body) = admin.send(Method::GET, "/v1/admin/tenants/nodb/database", None).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("tenant_db_not_configured")));
    let secret = "pw-never-shown";
    let (status, _) = admin
        .send(Method::POST, "/v1/admin/tenants", Some(json!({"slug": "down", "settings": {"user_db": {"driver": "postgres", "dsn": format!("postgres://app:{secret}@127.0.0.1:1/app")}}})))
        .await;
    assert_eq!(status, 201);
    let (status, body) = admin.send(Method::GET, "/v1/admin/tenants/down/database", None).await;
    assert_eq!((status, body["code"].as_str()), (503, Some("tenant_db_unavailable")));
    assert!(body["detail"].as_str().unwrap().contains("unreachable"));
    assert!(!body.to_string().contains(secret));
    let ready: Value = reqwest::get(server.url("/readyz")).await.unwrap().json().await.unwrap();
    assert_eq!(ready["status"], "degraded");
    assert_eq!(ready["components"]["tenant_databases"]["failing_count"], 1);
    assert!(!ready.to_string().contains("down"), "slugs only for admins: {ready}");
    let ready: Value = admin
        .http
        .get(server.url("/readyz"))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["components"]["tenant_databases"]["failing"][0]["slug"], "down");
    assert_eq!(
        ready["components"]["tenant_databases"]["failing"][0]["error"],
        "unreachable"
    );
    assert!(!ready.to_string().contains(secret));
    assert!(!server.stderr().contains(secret), "the DSN never reaches the log");

    // Custom fields: added as columns, a type change refused, hidden, then dropped.
    let field = |t: &str| json!({"settings": {"custom_fields": [{"name": "team", "type": t, "indexed": true}]}});
    let (status, body) = admin
        .send(Method::PATCH, "/v1/admin/tenants/local", Some(field("text")))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = admin.send(Method::GET, "/v1/admin/tenants/local/database", None).await;
    assert_eq!(body["custom_fields"][0]["name"], "team");
    assert_eq!(body["custom_fields"][0]["active"], true);
    let (status, body) = admin
        .send(Method::PATCH, "/v1/admin/tenants/local", Some(field("integer")))
        .await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (422, Some("settings.custom_fields")),
        "{body}"
    );
    let (status, _) = admin
        .send(
            Method::PATCH,
            "/v1/admin/tenants/local",
            Some(json!({"settings": {"custom_fields": []}})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = admin
        .send(Method::PATCH, "/v1/admin/tenants/local", Some(field("integer")))
        .await;
    assert_eq!(status, 422, "the hidden column keeps its type: {body}");
    let (_, body) = admin.send(Method::GET, "/v1/admin/tenants/local/database", None).await;
    assert_eq!(body["custom_fields"][0]["active"], false);
    let (status, _) = admin
        .send(
            Method::DELETE,
            "/v1/admin/tenants/local/custom-fields/team/column",
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = admin
        .send(Method::PATCH, "/v1/admin/tenants/local", Some(field("integer")))
        .await;
    assert_eq!(status, 200, "after the drop the name is free again");
    let (status, body) = admin
        .send(
            Method::PATCH,
            "/v1/admin/tenants/local",
            Some(json!({"settings": {"custom_fields": [{"name": "bad name; drop table users", "type": "text"}]}})),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (422, Some("validation_failed")));

    let (status, _) = admin.send(Method::POST, "/v1/admin/secrets/reseal", None).await;
    assert_eq!(status, 200);

    // Admin actions are recorded in the global database (a reseal too).
    let (status, body) = admin.send(Method::GET, "/v1/admin/audit", None).await;
    assert_eq!(status, 200, "{body}");
    let actions: Vec<_> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        ["create_tenant", "drop_custom_column", "reseal_secrets"]
            .iter()
            .all(|a| actions.contains(&(*a).to_owned())),
        "{actions:?}"
    );
    let ready: Value = reqwest::get(server.url("/readyz")).await.unwrap().json().await.unwrap();
    assert_eq!(ready["components"]["global_db"]["status"], "ok");
}

#[tokio::test]
async fn without_a_global_database_its_features_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_dev(&dir.path().join("root"), &[]);
    let admin = Admin::of(&server);
    let (status, body) = admin.send(Method::GET, "/v1/admin/audit", None).await;
    assert_eq!((status, body["code"].as_str()), (501, Some("global_db_not_configured")));
}
