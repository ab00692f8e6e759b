//! Client authentication on the token endpoint (`tenantry_oidc::client_auth`), above all
//! `private_key_jwt` assertions (RFC 7523): the input is split at 0xFF bytes into a JWT's
//! header, claims and signature (each base64url-encoded here, so the fuzzer works on the
//! JSON the server decodes), or taken whole as a form body. Nothing the fuzzer makes was
//! signed by the client's key, so every attempt must be refused, never a panic.
#![no_main]

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use tenantry_controlplane::Command;
use tenantry_controlplane::model::Client;
use tenantry_oidc::client_auth::authenticate_client;
use tenantry_oidc::params::Params;
use tenantry_tenancy::TenantContext;
use tenantry_tenancy::testing::Installation;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

struct World {
    installation: Installation,
    ctx: TenantContext,
    runtime: tokio::runtime::Runtime,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let installation = Installation::new();
        let ctx = installation.add_tenant("acme", true, |_| {});
        // The client's registered keys: real public keys (the tenant's own), so a matching
        // `kid` reaches the signature check.
        let jwks: serde_json::Value = serde_json::from_slice(&ctx.keys().unwrap().jwks().body).unwrap();
        let client: Client = serde_json::from_value(serde_json::json!({
            "client_id": "jwt", "name": "JWT", "client_type": "confidential",
            "grant_types": ["client_credentials"], "scopes": ["api"],
            "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks,
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}))
        .unwrap();
        installation
            .control_plane
            .apply(&Command::CreateClient {
                slug: "acme".into(),
                client,
            })
            .unwrap();
        let ctx = installation.resolver.resolve_slug("acme").unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        World {
            installation,
            ctx,
            runtime,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let world = world();
    let form = match data.split_first() {
        // A whole form body, with or without an Authorization header made of its tail.
        Some((0, rest)) => rest.to_vec(),
        _ => {
            let parts: Vec<String> = data
                .splitn(3, |b| *b == 0xFF)
                .map(|p| URL_SAFE_NO_PAD.encode(p))
                .collect();
            let assertion = parts.join(".");
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("client_assertion_type", JWT_BEARER)
                .append_pair("client_assertion", &assertion)
                .finish()
                .into_bytes()
        }
    };
    let Ok(params) = Params::parse(&form, &["resource"]) else {
        return;
    };
    let authorization = data.strip_prefix(b"\0Basic ").map(|_| &data[1..]);
    let outcome = world.runtime.block_on(authenticate_client(
        &world.installation.keystore,
        &world.ctx,
        authorization,
        &params,
    ));
    // The tenant's only client authenticates with its key alone.
    assert!(
        outcome.is_err(),
        "a client authenticated without a signature of its key"
    );
});
