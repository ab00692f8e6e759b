//! An in-process server on an ephemeral port with a temporary FS_ROOT, and HTTP helpers.

#![allow(dead_code)]

pub mod api;
pub mod browser;
pub mod logs;
pub mod postgres;
pub mod smtp;

use std::collections::BTreeMap;

use jsonwebtoken::jwk::JwkSet;
use serde_json::{Value, json};
use tenantry_dataplane::UserRepository;
use tenantry_dataplane::model::{NewUser, User};
use tenantry_server::{AppState, Overrides, ServeOptions};
use tenantry_tenancy::TenantContext;

pub struct TestServer {
    pub state: AppState,
    pub base: String,
    pub admin_token: String,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

pub async fn start() -> TestServer {
    start_with_config(None).await
}

/// A server whose configuration file holds `config` (TOML), when given.
pub async fn start_with_config(config: Option<&str>) -> TestServer {
    start_in(config, None).await
}

/// A server whose public URL is `http://localhost:{port}` (a host browsers take as a
/// WebAuthn RP ID, which an IP address is not), listening on `127.0.0.1:{port}`.
pub async fn start_on_localhost() -> TestServer {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!("public_url = \"http://localhost:{port}\"\n");
    start_listening(Some(&config), None, &format!("127.0.0.1:{port}")).await
}

/// A server whose FS_ROOT is `fs_root` (default: a folder of its own temporary directory).
pub async fn start_in(config: Option<&str>, fs_root: Option<std::path::PathBuf>) -> TestServer {
    start_listening(config, fs_root, "127.0.0.1:0").await
}

async fn start_listening(config: Option<&str>, fs_root: Option<std::path::PathBuf>, listen: &str) -> TestServer {
    // Before `prepare`, whose `telemetry::init` would install a subscriber of its own.
    logs::install();
    let dir = tempfile::tempdir().unwrap();
    let config_file = config.map(|text| {
        let path = dir.path().join("tenantry.toml");
        std::fs::write(&path, text).unwrap();
        path
    });
    let options = ServeOptions {
        overrides: Overrides {
            config_file,
            listen: Some(listen.into()),
            fs_root: Some(fs_root.unwrap_or_else(|| dir.path().join("root"))),
        },
        dev: true,
    };
    let prepared = tenantry_server::prepare(&options).await.unwrap();
    let base = format!("http://{}", prepared.listener.local_addr().unwrap());
    let app = tenantry_server::router(prepared.state.clone());
    let limits = tenantry_server::http_server::ConnectionLimits::from_config(&prepared.state.config);
    // The listener the binary runs, so connection limits are tested as served.
    tokio::spawn(tenantry_server::http_server::run(
        prepared.listener,
        app,
        limits,
        std::future::pending(),
    ));
    TestServer {
        state: prepared.state,
        base,
        admin_token: prepared.installed.admin_token.unwrap(),
        http: reqwest::Client::new(),
        _dir: dir,
    }
}

impl TestServer {
    pub fn ctx(&self, slug: &str) -> TenantContext {
        self.state.resolver.resolve_slug(slug).unwrap()
    }

    pub async fn user(&self, slug: &str, email: &str) -> User {
        let ctx = self.ctx(slug);
        let new = NewUser {
            email: email.into(),
            email_verified: true,
            given_name: Some("Ada".into()),
            family_name: Some("Lovelace".into()),
            phone_number: Some("+34600000000".into()),
            metadata: Some(json!({"address": {"country": "ES"}})),
            custom: BTreeMap::new(),
            ..Default::default()
        };
        ctx.db()
            .await
            .unwrap()
            .create_user(new, &ctx.custom_fields())
            .await
            .unwrap()
    }

    pub async fn jwks(&self, slug: &str) -> (JwkSet, String) {
        let response = self
            .http
            .get(format!("{}/t/{slug}/jwks.json", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let etag = response.headers()["etag"].to_str().unwrap().to_owned();
        (response.json().await.unwrap(), etag)
    }

    pub async fn userinfo(&self, slug: &str, token: &str) -> (u16, Option<String>, Value) {
        let response = self
            .http
            .get(format!("{}/t/{slug}/userinfo", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, challenge, response.json().await.unwrap_or(Value::Null))
    }

    /// A tenant `slug` created with `settings`, and the public first-party SPA client
    /// (`demo-spa`, code flow with PKCE to `http://localhost:3000/callback`).
    pub async fn tenant_with_spa(&self, slug: &str, settings: Value) {
        let tenant = serde_json::json!({"slug": slug, "settings": settings});
        let (status, body) = self
            .admin(reqwest::Method::POST, "/v1/admin/tenants", Some(tenant))
            .await;
        assert_eq!(status, 201, "{body}");
        let client = postgres::spa_client(&["openid", "profile", "email"]);
        let path = format!("/v1/admin/tenants/{slug}/clients");
        let (status, body) = self.admin(reqwest::Method::POST, &path, Some(client)).await;
        assert_eq!(status, 201, "{body}");
    }

    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.admin_token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}
