//! The hosted login and consent pages driven in headless Chromium (Debian `chromium`, npm
//! `playwright-core` in `e2e/`), in English and Spanish, against the real binary.
//!
//! Runs when `TENANTRY_TEST_BROWSER=1` (`.ci/run` installs the browser and sets it; unset,
//! a recorded skip); once configured, a missing browser or script fails the test.

use crate::common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn hosted_login_and_consent_in_chromium() {
    if tenantry_testkit::configured(tenantry_testkit::Service::Browser).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_dev(&dir.path().join("root"), &[]);
    let admin = Admin::of(&server);
    let (status, body) = admin
        .send(
            Method::POST,
            "/v1/admin/tenants/local/users",
            Some(json!({"email": "browser@example.com", "password": "a browser password"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // A third-party public client, so the consent page is shown too.
    let (status, body) = admin
        .send(
            Method::POST,
            "/v1/admin/tenants/local/clients",
            Some(
                json!({"client_id": "partner", "name": "Partner", "client_type": "public",
                "redirect_uris": ["https://partner.example/cb"], "scopes": ["openid", "email"]}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let output = std::process::Command::new("node")
        .arg("e2e/login.mjs")
        .current_dir(&workspace)
        .env("E2E_ISSUER", server.url("/t/local"))
        .env("E2E_CLIENT_ID", "partner")
        .env("E2E_REDIRECT_URI", "https://partner.example/cb")
        .env("E2E_EMAIL", "browser@example.com")
        .env("E2E_PASSWORD", "a browser password")
        .output()
        .expect("node runs (the browser test is configured)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "Chromium run failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("en: login and consent") && stdout.contains("es: login and consent"),
        "{stdout}"
    );
}

/// Sign-in through an upstream provider (a second tenant of the same binary) and the
/// hosted sign-up, in headless Chromium.
#[tokio::test]
async fn upstream_sign_in_and_sign_up_in_chromium() {
    if tenantry_testkit::configured(tenantry_testkit::Service::Browser).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_dev(
        &dir.path().join("root"),
        &[("TENANTRY_OUTBOUND_ALLOW_PRIVATE_NETWORKS", "true")],
    );
    let admin = Admin::of(&server);
    let created = |status: u16, body: &serde_json::Value| assert_eq!(status, 201, "{body}");
    let (status, body) = admin
        .send(Method::POST, "/v1/admin/tenants", Some(json!({"slug": "up"})))
        .await;
    created(status, &body);
    let (status, body) = admin
        .send(
            Method::POST,
            "/v1/admin/tenants/up/users",
            Some(json!({"email": "upstream@example.com", "password": "an upstream password", "email_verified": true})),
        )
        .await;
    created(status, &body);
    let (status, upstream_client) = admin
        .send(
            Method::POST,
            "/v1/admin/tenants/up/clients",
            Some(json!({"client_id": "rp", "name": "Relying tenant", "first_party": true,
                "grant_types": ["authorization_code"], "scopes": ["openid", "email", "profile"],
                "redirect_uris": [server.url("/t/rp/federation/callback")]})),
        )
        .await;
    created(status, &upstream_client);
    let settings = json!({
        "security": {"registration_enabled": true},
        "social_providers": [{"id": "up", "kind": "oidc", "display_name": "Upstream Co",
            "client_id": "rp", "client_secret": upstream_client["client_secret"],
            "issuer_url": server.url("/t/up"), "scopes": ["openid", "email", "profile"]}]});
    let (status, body) = admin
        .send(
            Method::POST,
            "/v1/admin/tenants",
            Some(json!({"slug": "rp", "settings": settings})),
        )
        .await;
    created(status, &body);
    // A third-party client, so the relying tenant's consent page is shown too.
    let (status, body) = admin
        .send(
            Method::POST,
            "/v1/admin/tenants/rp/clients",
            Some(
                json!({"client_id": "partner", "name": "Partner", "client_type": "public",
                "redirect_uris": ["https://partner.example/cb"], "scopes": ["openid", "email"]}),
            ),
        )
        .await;
    created(status, &body);

    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let output = std::process::Command::new("node")
        .arg("e2e/federation.mjs")
        .current_dir(&workspace)
        .env("E2E_ISSUER", server.url("/t/rp"))
        .env("E2E_CLIENT_ID", "partner")
        .env("E2E_REDIRECT_URI", "https://partner.example/cb")
        .env("E2E_PROVIDER_NAME", "Upstream Co")
        .env("E2E_EMAIL", "upstream@example.com")
        .env("E2E_PASSWORD", "an upstream password")
        .output()
        .expect("node runs (the browser test is configured)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "Chromium run failed:\n{stdout}\n{stderr}\n{}",
        server.stderr()
    );
    assert!(
        stdout.contains("upstream: signed in") && stdout.contains("signup: created an account"),
        "{stdout}"
    );
}
