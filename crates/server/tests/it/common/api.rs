//! A client of the headless REST API (`/v1/...`) for one tenant.

use reqwest::Method;
use serde_json::{Value, json};

use super::TestServer;

pub struct Api<'a> {
    pub server: &'a TestServer,
    pub slug: &'a str,
}

impl Api<'_> {
    /// Status and JSON body (`Null` when there is none) of one call.
    pub async fn call(&self, method: Method, path: &str, bearer: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .server
            .http
            .request(method, format!("{}{path}", self.server.base))
            .header("X-Tenant-Slug", self.slug);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, path, None, Some(body)).await
    }

    /// `POST /v1/auth/login` for the demo SPA client.
    pub async fn login(&self, email: &str, password: &str) -> (u16, Value) {
        self.post(
            "/v1/auth/login",
            json!({"email": email, "password": password, "client_id": "demo-spa", "scope": "openid email offline_access"}),
        )
        .await
    }
}
