//! The hosted login and consent pages (and passkeys, with the DevTools virtual
//! authenticator) driven in headless Chromium (Debian `chromium`, npm
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

/// Passkeys in headless Chromium with the DevTools virtual authenticator: one registered
/// from the issuer's origin, then the hosted login with it by autofill (conditional
/// mediation), by the button, and as the second factor after a password; and a passkey-only
/// sign-up on the hosted page. Each sign-in's
/// code is redeemed here and its `amr` checked. The issuer is `http://localhost:{port}`:
/// a browser takes no IP address as RP ID. Screenshots of the login and second-factor
/// pages are kept in `{CARGO_TARGET_TMPDIR}/e2e-artifacts/passkeys`.
#[tokio::test]
async fn passkeys_in_chromium() {
    if tenantry_testkit::configured(tenantry_testkit::Service::Browser).is_none() {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let public_url = format!("http://localhost:{port}");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_at(
        &dir.path().join("root"),
        &format!("127.0.0.1:{port}"),
        &["--dev"],
        &[("TENANTRY_PUBLIC_URL", public_url.as_str())],
    );
    let admin = Admin::of(&server);
    let (status, body) = admin
        .send(
            Method::POST,
            "/v1/admin/tenants/local/users",
            Some(json!({"email": "passkey@example.com", "password": "a passkey password", "email_verified": true})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = admin
        .send(
            Method::PATCH,
            "/v1/admin/tenants/local",
            Some(json!({"settings": {"security": {"registration_enabled": true}}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The client's redirect URI is a page of the server itself (`/healthz`), so every
    // return to the client is a navigation that completes (a name that does not resolve
    // would end in an error page racing the script's next navigation).
    let redirect = format!("{public_url}/healthz");
    let redirect = redirect.as_str();
    let (status, body) = admin
        .send(
            Method::POST,
            "/v1/admin/tenants/local/clients",
            Some(
                json!({"client_id": "passkey-app", "name": "Passkey App", "client_type": "public",
                "first_party": true, "grant_types": ["authorization_code"],
                "redirect_uris": [redirect], "scopes": ["openid", "email"]}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let artifacts = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-artifacts/passkeys");
    let output = std::process::Command::new("node")
        .arg("e2e/passkeys.mjs")
        .current_dir(&workspace)
        .env("E2E_ISSUER", format!("{public_url}/t/local"))
        .env("E2E_SLUG", "local")
        .env("E2E_CLIENT_ID", "passkey-app")
        .env("E2E_REDIRECT_URI", redirect)
        .env("E2E_EMAIL", "passkey@example.com")
        .env("E2E_PASSWORD", "a passkey password")
        .env("E2E_ARTIFACTS", &artifacts)
        .env("E2E_SIGNUP_EMAIL", "newcomer@example.com")
        .output()
        .expect("node runs (the browser test is configured)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "Chromium run failed:\n{stdout}\n{stderr}\n{}",
        server.stderr()
    );
    for screenshot in ["login.png", "account.png", "second-factor.png", "passkey-signup.png"] {
        assert!(artifacts.join(screenshot).is_file(), "{screenshot} kept");
    }

    let codes: Vec<(&str, &str)> = stdout
        .lines()
        .filter_map(|line| line.strip_prefix("code "))
        .filter_map(|rest| rest.split_once(' '))
        .collect();
    let modes: Vec<&str> = codes.iter().map(|(mode, _)| *mode).collect();
    assert!(
        modes.contains(&"button") && modes.contains(&"second-factor") && modes.contains(&"signup"),
        "{stdout}"
    );
    // Chromium offers conditional mediation; the autofill sign-in is then required.
    assert!(
        modes.contains(&"autofill") || stdout.contains("conditional mediation not available"),
        "{stdout}"
    );
    let http = reqwest::Client::new();
    for (mode, code) in codes {
        let answer: serde_json::Value = http
            .post(server.url("/t/local/token"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect),
                ("client_id", "passkey-app"),
                // RFC 7636 appendix B: the verifier of the challenge the script sent.
                ("code_verifier", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id_token = answer["id_token"]
            .as_str()
            .unwrap_or_else(|| panic!("{mode}: {answer}"));
        let payload = id_token.split('.').nth(1).unwrap();
        use base64::Engine;
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        let amr: Vec<String> = serde_json::from_value(claims["amr"].clone()).unwrap();
        let key = amr.iter().any(|m| m == "hwk" || m == "swk");
        let password = amr.iter().any(|m| m == "pwd");
        assert!(key && amr.contains(&"mfa".to_owned()), "{mode}: {amr:?}");
        assert_eq!(password, mode == "second-factor", "{mode}: {amr:?}");
    }
}
