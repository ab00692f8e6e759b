//! A tenant on a fresh PostgreSQL database, for running a flow on PostgreSQL as well as
//! SQLite. The server is the one `TENANTRY_TEST_POSTGRES_URL` names (CI sets it; an
//! unreachable configured server fails the test, an unset one is a recorded skip).

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Connection;

use super::TestServer;

/// The database made for one test; [`PgTenant::drop_database`] removes it.
pub struct PgTenant {
    admin: sqlx::PgConnection,
    name: String,
}

/// Creates a database and the tenant `slug` on it, with the first-party public client
/// `client` (its admin JSON). `None` (a recorded skip) when PostgreSQL is not configured.
pub async fn postgres_tenant(server: &TestServer, slug: &str, client: Value) -> Option<PgTenant> {
    let admin_url = tenantry_testkit::configured(tenantry_testkit::Service::Postgres)?;
    let name = format!("tenantry_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("the configured PostgreSQL is reachable");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let mut dsn = url::Url::parse(&admin_url).unwrap();
    dsn.set_path(&format!("/{name}"));
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants",
            Some(json!({"slug": slug, "settings": {"user_db": {"driver": "postgres", "dsn": dsn.as_str()}}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = server
        .admin(Method::POST, &format!("/v1/admin/tenants/{slug}/clients"), Some(client))
        .await;
    assert_eq!(status, 201, "{body}");
    Some(PgTenant { admin, name })
}

/// The public first-party SPA client most flows use (code + refresh).
pub fn spa_client(scopes: &[&str]) -> Value {
    json!({"client_id": "demo-spa", "name": "SPA", "client_type": "public", "first_party": true,
        "grant_types": ["authorization_code", "refresh_token"],
        "redirect_uris": ["http://localhost:3000/callback"], "scopes": scopes})
}

impl PgTenant {
    /// Drops the database (after the server using it is gone).
    pub async fn drop_database(mut self) {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut self.admin)
        .await;
    }
}
