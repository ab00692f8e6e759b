//! Tenant settings as a versioned resource: `ETag` on read, `If-Match` required on write
//! (428 without, 412 on a stale version, nothing written), secrets write-only
//! (`{"set": true}`), and request bodies with unknown fields refused naming the field.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{TestServer, start};

async fn send(
    server: &TestServer,
    method: Method,
    path: &str,
    if_match: Option<&str>,
    body: Option<Value>,
) -> (u16, Option<String>, Value) {
    let mut request = server
        .http
        .request(method, format!("{}{path}", server.base))
        .bearer_auth(&server.admin_token);
    if let Some(tag) = if_match {
        request = request.header("If-Match", tag);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let etag = response.headers().get("etag").map(|v| v.to_str().unwrap().to_owned());
    (status, etag, response.json().await.unwrap_or(Value::Null))
}

const SETTINGS: &str = "/v1/admin/tenants/acme/settings";

#[tokio::test]
async fn settings_writes_need_the_current_version_and_secrets_are_write_only() {
    let server = start().await;
    let smtp = json!({"host": "smtp.example.com", "port": 587, "username": "u",
        "password": "canary-secret", "from_address": "no-reply@example.com"});
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants",
            Some(json!({"slug": "acme", "settings": {"smtp": smtp}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let (status, etag, settings) = send(&server, Method::GET, SETTINGS, None, None).await;
    assert_eq!(status, 200, "{settings}");
    let etag = etag.expect("settings carry an ETag");
    assert!(etag.starts_with('"') && etag.ends_with('"'), "a strong tag: {etag}");
    assert_eq!(settings["smtp"]["password"], json!({"set": true}));
    assert!(!settings.to_string().contains("canary-secret"));
    let (_, tenant_etag, tenant) = send(&server, Method::GET, "/v1/admin/tenants/acme", None, None).await;
    assert_eq!(
        tenant_etag.as_deref(),
        Some(etag.as_str()),
        "one version for the tenant"
    );
    assert_eq!(tenant["settings"]["smtp"]["password"], json!({"set": true}));

    // Without If-Match: 428; with a stale or weak tag: 412. Nothing is written.
    let patch = json!({"language": "es"});
    for method in [Method::PUT, Method::PATCH] {
        let (status, _, body) = send(&server, method.clone(), SETTINGS, None, Some(patch.clone())).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (428, Some("precondition_required")),
            "{method}"
        );
        for stale in ["\"1\"", &format!("W/{etag}"), "\"x\", \"y\""] {
            let (status, _, body) = send(&server, method.clone(), SETTINGS, Some(stale), Some(patch.clone())).await;
            assert_eq!(
                (status, body["code"].as_str()),
                (412, Some("precondition_failed")),
                "{stale}"
            );
        }
    }
    let (_, unchanged_etag, unchanged) = send(&server, Method::GET, SETTINGS, None, None).await;
    assert_eq!(unchanged_etag.as_deref(), Some(etag.as_str()));
    assert_eq!(unchanged, settings);

    // With the current tag the merge patch lands; the secret marker keeps the secret.
    let (status, new_etag, patched) = send(&server, Method::PATCH, SETTINGS, Some(&etag), Some(patch)).await;
    assert_eq!(status, 200, "{patched}");
    let new_etag = new_etag.unwrap();
    assert_ne!(new_etag, etag, "a change makes a new version");
    assert_eq!(patched["language"], "es");
    assert_eq!(patched["smtp"]["password"], json!({"set": true}));
    let stored = server
        .state
        .control_plane
        .snapshot()
        .tenant("acme")
        .unwrap()
        .tenant
        .settings
        .clone();
    assert!(stored.smtp.as_ref().unwrap().password.is_some(), "the secret is kept");

    // The old tag is now stale; a list holding the new one matches.
    let (status, _, _) = send(&server, Method::PUT, SETTINGS, Some(&etag), Some(patched.clone())).await;
    assert_eq!(status, 412);
    let list = format!("\"old\", {new_etag}");
    let (status, _, replaced) = send(&server, Method::PUT, SETTINGS, Some(&list), Some(patched.clone())).await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["smtp"]["password"], json!({"set": true}));
    assert_eq!(
        server
            .state
            .control_plane
            .snapshot()
            .tenant("acme")
            .unwrap()
            .tenant
            .settings
            .smtp,
        stored.smtp,
        "sending the marker back keeps the sealed value as it was"
    );

    // A secret that is neither text, null nor the marker is refused, naming the field.
    let (_, current, _) = send(&server, Method::GET, SETTINGS, None, None).await;
    let (status, _, body) = send(
        &server,
        Method::PATCH,
        SETTINGS,
        current.as_deref(),
        Some(json!({"smtp": {"password": {"set": false}}})),
    )
    .await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (422, Some("settings.smtp.password")),
        "{body}"
    );
}

#[tokio::test]
async fn unknown_fields_are_refused_naming_the_field() {
    let server = start().await;
    // At the top level of a body, nested in the settings, and in a headless API body.
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants",
            Some(json!({"slug": "acme", "colour": "red"})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("validation_failed")),
        "{body}"
    );
    assert_eq!(body["errors"][0]["field"], "colour");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("unknown field"));
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants",
            Some(json!({"slug": "acme", "settings": {"token_lifetimes": {"acess_token_secs": 60}}})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "settings.token_lifetimes.acess_token_secs");
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/api-keys",
            Some(json!({"name": "ci", "reach": {"tenants": ["a"], "extra": 1}})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["errors"][0]["field"].as_str().unwrap().starts_with("reach"),
        "{body}"
    );
    // A wrong type names its field too; text that is not JSON stays 400.
    let (status, body) = server
        .admin(Method::POST, "/v1/admin/tenants", Some(json!({"slug": 7})))
        .await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (422, Some("slug")),
        "{body}"
    );
    let response = server
        .http
        .post(format!("{}/v1/admin/tenants", server.base))
        .bearer_auth(&server.admin_token)
        .header("content-type", "application/json")
        .body("{\"slug\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "invalid_json");
    // None of it created anything.
    assert!(server.state.control_plane.snapshot().tenant("acme").is_none());
}
