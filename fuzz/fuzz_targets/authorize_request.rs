//! Authorization-request validation (`tenantry_oidc::authorize::validate_for`) for a tenant
//! with a public and a confidential client: any query is a valid request or a refusal,
//! never a panic; what passes returns only to a registered redirect URI, asks only for the
//! client's scopes, and carries PKCE S256 for the public client.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tenantry_controlplane::TenantEntry;
use tenantry_controlplane::model::Client;
use tenantry_oidc::authorize::validate_for;
use tenantry_oidc::params::Params;

fn entry() -> &'static TenantEntry {
    static ENTRY: OnceLock<TenantEntry> = OnceLock::new();
    ENTRY.get_or_init(|| {
        let client = |json: serde_json::Value| -> Client { serde_json::from_value(json).unwrap() };
        let spa = client(serde_json::json!({
            "client_id": "spa", "name": "SPA", "client_type": "public",
            "redirect_uris": ["https://app.example/cb", "http://127.0.0.1/cb"],
            "grant_types": ["authorization_code", "refresh_token"], "scopes": ["openid", "profile", "email"],
            "token_endpoint_auth_method": "none",
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}));
        let web = client(serde_json::json!({
            "client_id": "web", "name": "Web", "client_type": "confidential",
            "redirect_uris": ["https://web.example/callback"],
            "grant_types": ["authorization_code"], "scopes": ["openid"],
            "token_endpoint_auth_method": "client_secret_basic",
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}));
        let mut entry = TenantEntry::default();
        entry.tenant.slug = "acme".into();
        entry.clients.insert("spa".into(), spa);
        entry.clients.insert("web".into(), web);
        entry
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(params) = Params::parse(data, &["resource"]) else {
        return;
    };
    let Ok(request) = validate_for(entry(), |id| entry().clients.get(id), &params) else {
        return;
    };
    let client = request.client;
    assert!(
        client.redirect_uris.contains(&request.to.redirect_uri),
        "{:?}",
        request.to
    );
    assert!(
        request.scopes.iter().all(|s| client.scopes.contains(s)),
        "{:?}",
        request.scopes
    );
    if client.client_id == "spa" {
        assert!(request.code_challenge.is_some(), "a public client without PKCE");
    }
});
