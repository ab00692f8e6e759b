//! The client address behind a reverse proxy, over HTTP: with `trusted_proxies` each
//! `X-Forwarded-For` client has its own per-IP login budget (IPv6 per /64); without it the
//! header is ignored and every client shares the peer's budget.

use crate::common;
use crate::common::TestServer;
use reqwest::Method;
use serde_json::{Value, json};

/// A wrong-password login through the headless API as if forwarded for `forwarded_for`:
/// status and problem code.
async fn login_from(server: &TestServer, forwarded_for: &str) -> (u16, String) {
    let response = server
        .http
        .post(format!("{}/v1/auth/login", server.base))
        .header("X-Tenant-Slug", "local")
        .header("X-Forwarded-For", forwarded_for)
        .json(&json!({"email": "ada@example.com", "password": "not the password", "client_id": "demo-spa"}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

/// A server whose `local` tenant allows two logins per IP and minute (and no lockout in
/// the way), with one user.
async fn two_logins_per_ip(config: Option<&str>) -> TestServer {
    let server = common::start_with_config(config).await;
    let security = json!({"login_attempts_per_ip_per_minute": 2, "max_login_attempts": 100});
    let (status, body) = server
        .admin(
            Method::PATCH,
            "/v1/admin/tenants/local",
            Some(json!({"settings": {"security": security}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/local/users",
            Some(json!({"email": "ada@example.com", "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    server
}

fn wrong_password() -> (u16, String) {
    (401, "invalid_credentials".to_owned())
}

fn limited() -> (u16, String) {
    (429, "rate_limited".to_owned())
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() {
    let server = two_logins_per_ip(Some("trusted_proxies = [\"127.0.0.1\"]\n")).await;
    let (a, b) = ("198.51.100.7", "203.0.113.9");
    for _ in 0..2 {
        assert_eq!(login_from(&server, a).await, wrong_password());
    }
    assert_eq!(login_from(&server, a).await, limited());
    assert_eq!(
        login_from(&server, b).await,
        wrong_password(),
        "b has a budget of its own"
    );
    // Prepending an address does not buy a fresh budget: only what our proxy appended counts.
    assert_eq!(login_from(&server, &format!("192.0.2.1, {a}")).await, limited());

    // IPv6 clients of one /64 share a budget; the next /64 has its own.
    for _ in 0..2 {
        assert_eq!(login_from(&server, "2001:db8:0:1::1").await, wrong_password());
    }
    assert_eq!(login_from(&server, "2001:db8:0:1::2").await, limited());
    assert_eq!(login_from(&server, "2001:db8:0:2::1").await, wrong_password());
}

#[tokio::test]
async fn without_trusted_proxies_the_header_is_ignored() {
    let server = two_logins_per_ip(None).await;
    assert_eq!(login_from(&server, "198.51.100.7").await, wrong_password());
    assert_eq!(login_from(&server, "203.0.113.9").await, wrong_password());
    assert_eq!(
        login_from(&server, "192.0.2.44").await,
        limited(),
        "every client shares the peer's budget"
    );
}
