//! The second-factor step of the hosted login: enrolment forced by the tenant policy,
//! recovery codes shown once, TOTP codes computed here by an independent RFC 6238
//! implementation (HMAC-SHA1 from RustCrypto), replay refusal and single-use recovery
//! codes — then the authorization code flow finishes with `amr` saying so.

use crate::common::browser::{Browser, code_elements, form_action, hidden, query_param};
use crate::common::{TestServer, start};
use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};
use tenantry_testkit::totp::{current_step, totp_at_step};

const REDIRECT: &str = "http://localhost:3000/callback";
const PASSWORD: &str = "correct horse battery";
const VERIFIER: &str = "mfa-test-verifier-0123456789-0123456789-0123456789";

pub(crate) fn authorize_url(server: &TestServer) -> String {
    authorize_url_at(server, "local")
}

/// [`authorize_url`] at tenant `slug` (whose `demo-spa` has the same redirect URI).
pub(crate) fn authorize_url_at(server: &TestServer, slug: &str) -> String {
    use aws_lc_rs::digest::{SHA256, digest};
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest(&SHA256, VERIFIER.as_bytes()));
    let mut url = url::Url::parse(&format!("{}/t/{slug}/authorize", server.base)).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", "demo-spa")
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid email")
        .append_pair("state", "st-1")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    url.to_string()
}

/// Opens the login page and submits the password; answers the page that follows.
pub(crate) async fn password_step(server: &TestServer, browser: &mut Browser) -> (u16, String) {
    let (status, _, page) = browser.send(Method::GET, &authorize_url(server), None).await;
    assert_eq!(status, 200, "{page}");
    let form = [("email", "ada@example.com"), ("password", PASSWORD)];
    let (status, _, page) = browser.submit(&page, &form).await;
    (status, page)
}

/// Submits a code on the MFA page; answers status, Location and body.
async fn submit_code(browser: &mut Browser, page: &str, code: &str) -> (u16, String, String) {
    let (status, headers, body) = browser.submit(page, &[("code", code)]).await;
    (status, headers.get("location").cloned().unwrap_or_default(), body)
}

/// Exchanges a code from a redirect; answers the ID token's claims.
pub(crate) async fn id_token_claims(server: &TestServer, location: &str) -> Value {
    id_token_claims_at(server, "local", location).await
}

/// [`id_token_claims`] of a code from tenant `slug`.
pub(crate) async fn id_token_claims_at(server: &TestServer, slug: &str, location: &str) -> Value {
    assert!(location.starts_with(REDIRECT), "{location}");
    assert_eq!(query_param(location, "state").as_deref(), Some("st-1"));
    let code = query_param(location, "code").expect("a code");
    let response = server
        .http
        .post(format!("{}/t/{slug}/token", server.base))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("client_id", "demo-spa"),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let id_token = body["id_token"].as_str().unwrap();
    let payload = id_token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn mfa_enrolment_challenge_replay_and_recovery_codes_in_the_hosted_login() {
    let server = start().await;
    let (status, body) = server
        .admin(
            Method::PATCH,
            "/v1/admin/tenants/local",
            Some(json!({"settings": {"security": {"mfa_required": true}}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/local/users",
            Some(json!({"email": "ada@example.com", "password": PASSWORD, "email_verified": true})),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    // First login: the tenant requires a second factor, so it is set up now.
    let mut browser = Browser::new();
    let (status, page) = password_step(&server, &mut browser).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("data:image/svg+xml;base64,"), "a QR code: {page}");
    assert!(page.contains("<label for=\"code\">"), "a labelled code field");
    assert!(
        !browser.cookies.contains_key("tenantry_session"),
        "no session before the second factor"
    );
    let secret = code_elements(&page)
        .into_iter()
        .next()
        .expect("the key for manual entry");
    let step = current_step();
    let good = totp_at_step(&secret, step);
    let wrong = format!("{:06}", (good.parse::<u32>().unwrap() + 1) % 1_000_000);
    let (status, _, retry) = submit_code(&mut browser, &page, &wrong).await;
    assert_eq!(status, 401, "a wrong code is refused: {retry}");
    assert_eq!(
        code_elements(&retry).first(),
        Some(&secret),
        "the same key is shown again"
    );

    let (status, _, recovery_page) = submit_code(&mut browser, &retry, &good).await;
    assert_eq!(status, 200, "{recovery_page}");
    let recovery: Vec<String> = code_elements(&recovery_page);
    assert_eq!(recovery.len(), 10, "{recovery_page}");
    assert!(browser.cookies.contains_key("tenantry_session"));
    let continue_form = [
        ("interaction", hidden(&recovery_page, "interaction")),
        ("csrf", hidden(&recovery_page, "csrf")),
    ];
    let continue_form: Vec<(&str, &str)> = continue_form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, headers, body) = browser
        .send(Method::POST, &form_action(&recovery_page), Some(&continue_form))
        .await;
    assert_eq!(status, 303, "{body}");
    let claims = id_token_claims(&server, &headers["location"]).await;
    let amr: Vec<&str> = claims["amr"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(amr.contains(&"pwd") && amr.contains(&"otp"), "{claims}");

    // The continue form belongs to that session only.
    let mut stranger = Browser::new();
    stranger.cookies = browser.cookies.clone();
    stranger.cookies.remove("tenantry_session");
    let (status, _, _) = stranger
        .send(Method::POST, &form_action(&recovery_page), Some(&continue_form))
        .await;
    assert_eq!(status, 400);

    // Next login: a challenge, no QR code. The code already used cannot be replayed.
    let mut browser = Browser::new();
    let (status, page) = password_step(&server, &mut browser).await;
    assert_eq!(status, 200);
    assert!(!page.contains("data:image/svg+xml"), "no new enrolment");
    let (status, _, page) = submit_code(&mut browser, &page, &good).await;
    assert_eq!(status, 401, "replayed code: {page}");
    // A later step inside the window is fresh.
    let (status, location, body) = submit_code(&mut browser, &page, &totp_at_step(&secret, step + 1)).await;
    assert_eq!(status, 303, "{body}");
    id_token_claims(&server, &location).await;

    // "Don't ask again on this device", when the tenant offers it.
    let (status, _) = server
        .admin(
            Method::PATCH,
            "/v1/admin/tenants/local",
            Some(json!({"settings": {"security": {"mfa_remember_device_days": 30}}})),
        )
        .await;
    assert_eq!(status, 200);
    let mut browser = Browser::new();
    let (_, page) = password_step(&server, &mut browser).await;
    assert!(page.contains("name=\"remember\""), "the option is offered");
    let form = [
        ("interaction", hidden(&page, "interaction")),
        ("csrf", hidden(&page, "csrf")),
        ("code", recovery[7].clone()),
        ("remember", "1".to_owned()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, headers, body) = browser.send(Method::POST, &form_action(&page), Some(&form)).await;
    assert_eq!(status, 303, "{body}");
    id_token_claims(&server, &headers["location"]).await;
    assert!(browser.cookies.contains_key("tenantry_device"));
    browser.cookies.remove("tenantry_session");
    let (status, page) = password_step(&server, &mut browser).await;
    assert_eq!(status, 303, "no code asked on a remembered device: {page}");

    // A recovery code works once, typed in any case.
    let mut browser = Browser::new();
    let (_, page) = password_step(&server, &mut browser).await;
    let (status, location, body) = submit_code(&mut browser, &page, &recovery[3].to_uppercase()).await;
    assert_eq!(status, 303, "{body}");
    id_token_claims(&server, &location).await;
    let mut browser = Browser::new();
    let (_, page) = password_step(&server, &mut browser).await;
    let (status, _, _) = submit_code(&mut browser, &page, &recovery[3]).await;
    assert_eq!(status, 401, "a spent recovery code");

    // The secret is sealed at rest: the base32 key appears in no stored file.
    let root = server.state.config.fs_root.clone();
    for entry in walk(&root) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&secret),
            "{} holds the TOTP key",
            entry.display()
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test]
async fn wrong_codes_are_limited_per_account() {
    let server = start().await;
    let (status, _) = server
        .admin(
            Method::PATCH,
            "/v1/admin/tenants/local",
            Some(json!({"settings": {"security": {"mfa_required": true}}})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/local/users",
            Some(json!({"email": "ada@example.com", "password": PASSWORD, "email_verified": true})),
        )
        .await;
    assert_eq!(status, 201);
    let mut browser = Browser::new();
    let (_, mut page) = password_step(&server, &mut browser).await;
    let secret = code_elements(&page).into_iter().next().unwrap();
    let good = totp_at_step(&secret, current_step());
    let wrong = format!("{:06}", (good.parse::<u32>().unwrap() + 7) % 1_000_000);
    for _ in 0..5 {
        let (status, _, next) = submit_code(&mut browser, &page, &wrong).await;
        assert_eq!(status, 401);
        page = next;
    }
    // Even the right code now waits for the window to pass.
    let (status, _, body) = submit_code(&mut browser, &page, &good).await;
    assert_eq!(status, 429, "{body}");
}
