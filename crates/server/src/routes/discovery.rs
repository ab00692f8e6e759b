//! OpenID Connect Discovery 1.0 and RFC 8414 metadata of a tenant issuer. Every value
//! states what this server does for this tenant: its endpoints, its key algorithms, its
//! scopes (built-in and the tenant's own) and the claims they can release. The document is
//! built once per version of the tenant and then served as it is.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::AppState;
use tenantry_controlplane::TenantEntry;
use tenantry_oidc::tokens::BUILTIN_SCOPES;
use tenantry_tenancy::TenantContext;
use uuid::Uuid;

/// Metadata below the issuer (`{issuer}/.well-known/...`); behind the issuer middleware.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/t/{slug}/.well-known/openid-configuration", get(openid_configuration))
        .route(
            "/t/{slug}/.well-known/oauth-authorization-server",
            get(openid_configuration),
        )
}

/// RFC 8414 3.1 places the well-known segment before the issuer's path; these routes
/// resolve the tenant themselves.
pub fn root_router() -> Router<AppState> {
    Router::new()
        .route(
            "/.well-known/oauth-authorization-server/t/{slug}",
            get(oauth_metadata_by_path),
        )
        .route(
            "/.well-known/openid-configuration/t/{slug}",
            get(oauth_metadata_by_path),
        )
        .route("/jwks.json", get(system_jwks))
        .route("/openapi.json", get(crate::openapi::serve_document))
}

/// The installation's own issuer's public keys (`{public_url}`, which signs admin access
/// tokens), so a service can check an admin token without calling back.
async fn system_jwks(State(state): State<AppState>) -> Result<Response, ApiError> {
    let keys = state.keystore.system(&state.control_plane.snapshot().system_keys)?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300")),
        ],
        keys.jwks().body.clone(),
    )
        .into_response())
}

async fn openid_configuration(ctx: TenantContext) -> Result<Response, ApiError> {
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300")),
        ],
        document(&ctx)?,
    )
        .into_response())
}

/// A tenant's metadata document, as built for one version of its entry.
struct Memo {
    /// Holds the entry's allocation, so an equal pointer is the same entry, never a new
    /// one at a freed address.
    entry: Weak<TenantEntry>,
    issuer: String,
    body: Bytes,
}

/// Documents by tenant id. Every change to a tenant (scopes, custom fields, keys) gives
/// it a new entry, so a document is rebuilt exactly when what it says may have changed.
static DOCUMENTS: LazyLock<Mutex<HashMap<Uuid, Memo>>> = LazyLock::new(Default::default);
/// Beyond this many remembered tenants, documents of deleted tenants are dropped first.
const MAX_DOCUMENTS: usize = 20_000;

fn document(ctx: &TenantContext) -> Result<Bytes, ApiError> {
    let id = ctx.entry.tenant.id;
    let remembered =
        |memo: &Memo| std::ptr::eq(memo.entry.as_ptr(), Arc::as_ptr(&ctx.entry)) && memo.issuer == ctx.issuer;
    if let Some(memo) = documents().get(&id).filter(|m| remembered(m)) {
        return Ok(memo.body.clone());
    }
    let body = Bytes::from(metadata(ctx)?.to_string());
    let mut memos = documents();
    if memos.len() >= MAX_DOCUMENTS {
        memos.retain(|_, m| m.entry.strong_count() > 0);
        if memos.len() >= MAX_DOCUMENTS {
            memos.clear();
        }
    }
    memos.insert(
        id,
        Memo {
            entry: Arc::downgrade(&ctx.entry),
            issuer: ctx.issuer.clone(),
            body: body.clone(),
        },
    );
    Ok(body)
}

fn documents() -> std::sync::MutexGuard<'static, HashMap<Uuid, Memo>> {
    // A memo is inserted whole or not at all, so a poisoned map is still consistent.
    DOCUMENTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn oauth_metadata_by_path(State(state): State<AppState>, Path(slug): Path<String>) -> Result<Response, ApiError> {
    openid_configuration(state.resolver.resolve_slug(&slug)?).await
}

fn metadata(ctx: &TenantContext) -> Result<Value, ApiError> {
    let iss = &ctx.issuer;
    let algs: Vec<&str> = ctx.keys()?.algorithms().iter().map(|a| a.as_str()).collect();
    let mut scopes: Vec<String> = BUILTIN_SCOPES.iter().map(|s| (*s).to_owned()).collect();
    scopes.extend(
        ctx.entry
            .scopes
            .keys()
            .filter(|s| !scopes.contains(s))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let mut claims: Vec<String> = [
        "sub",
        "iss",
        "aud",
        "exp",
        "iat",
        "auth_time",
        "nonce",
        "acr",
        "amr",
        "azp",
        "sid",
        "at_hash",
        "name",
        "given_name",
        "family_name",
        "preferred_username",
        "picture",
        "locale",
        "updated_at",
        "email",
        "email_verified",
        "phone_number",
        "phone_number_verified",
        "address",
        "tid",
    ]
    .map(String::from)
    .to_vec();
    for field in &ctx.entry.tenant.settings.custom_fields {
        if field.scope.is_some() && !claims.contains(&field.name) {
            claims.push(field.name.clone());
        }
    }
    let client_auth = ["client_secret_basic", "client_secret_post", "private_key_jwt"];
    let revocation_auth = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"];
    Ok(json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/authorize"),
        "token_endpoint": format!("{iss}/token"),
        "userinfo_endpoint": format!("{iss}/userinfo"),
        "jwks_uri": format!("{iss}/jwks.json"),
        "introspection_endpoint": format!("{iss}/introspect"),
        "revocation_endpoint": format!("{iss}/revoke"),
        "end_session_endpoint": format!("{iss}/logout"),
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "scopes_supported": scopes,
        "claims_supported": claims,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algs,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
        "introspection_endpoint_auth_methods_supported": client_auth,
        // Public clients revoke their own tokens naming only `client_id` (RFC 7009 2.1).
        "revocation_endpoint_auth_methods_supported": revocation_auth,
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login", "consent"],
        "ui_locales_supported": ["en", "es"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
    }))
}
