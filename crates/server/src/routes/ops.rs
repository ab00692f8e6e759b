//! Operations endpoints: liveness, readiness and Prometheus metrics.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// The process is alive and answering.
async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "alive"}))
}

/// Whether this node can serve: `ready`, `degraded` (some tenants do not load; the others
/// are served) or `unavailable` (503: the control plane itself is not usable).
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let snapshot = state.control_plane.snapshot();
    let root = state.control_plane.store().root().to_owned();
    let root_ok = tokio::task::spawn_blocking(move || root.join("tenants").is_dir())
        .await
        .unwrap_or(false);

    let degraded: Vec<_> = snapshot
        .degraded
        .values()
        .map(|d| json!({"slug": d.slug, "path": d.path.display().to_string(), "error": d.error}))
        .collect();
    let pools = state.dbs.status();
    let global = match &state.global_db {
        None => "not_configured",
        Some(_) => "ok",
    };
    let keystore = check_system_keys(&state);
    let status = if !root_ok || keystore.is_err() {
        "unavailable"
    } else if !degraded.is_empty() || !pools.failing.is_empty() {
        "degraded"
    } else {
        "ready"
    };
    let body = json!({
        "status": status,
        "components": {
            "control_plane": {
                "status": if root_ok { "ok" } else { "failing" },
                "mode": "standalone",
                "revision": snapshot.revision,
                "tenants": snapshot.tenants.len(),
            },
            "tenants": {
                "status": if degraded.is_empty() { "ok" } else { "degraded" },
                "degraded": degraded,
            },
            "tenant_databases": {
                "status": if pools.failing.is_empty() { "ok" } else { "degraded" },
                "open_pools": pools.open,
                "max_pools": pools.max,
                "failing": pools.failing,
            },
            "global_db": { "status": global },
            "keystore": match &keystore {
                Ok(kid) => json!({"status": "ok", "system_kid": kid}),
                Err(error) => json!({"status": "failing", "error": error}),
            },
        },
    });
    let code = if root_ok && keystore.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

/// Signs a short token with the system issuer's active key and verifies it through the
/// same verifier every surface uses. Answers the kid that signed, or why it failed.
pub fn check_system_keys(state: &AppState) -> Result<String, String> {
    use tenantry_controlplane::model::SigningAlg;
    use tenantry_keys::{Expect, TokenType};

    let snapshot = state.control_plane.snapshot();
    if snapshot.system_keys.keys.is_empty() {
        return Err("the system issuer has no keys; run `tenantry init`".into());
    }
    let keys = state.keystore.system(&snapshot.system_keys).map_err(|e| e.detail)?;
    let alg = keys.algorithms().first().copied().unwrap_or(SigningAlg::Rs256);
    let issuer = state.public_url.as_str().trim_end_matches('/');
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"iss": issuer, "sub": "readiness", "aud": "tenantry", "iat": now, "exp": now + 60});
    let token = keys.sign(alg, "JWT", &claims).map_err(|e| e.to_string())?;
    let verified = keys
        .verify::<serde_json::Value>(&token, &Expect::new(issuer, TokenType::Id))
        .map_err(|e| format!("a freshly signed token does not verify: {e}"))?;
    Ok(verified.kid)
}

/// Runs the keystore self-check once at start, so a broken keystore is in the log at once.
pub fn self_check_keys(state: &AppState) {
    match check_system_keys(state) {
        Ok(kid) => tracing::info!(kid, "keystore self-check passed"),
        Err(error) => tracing::error!(error, "keystore self-check failed; /readyz reports unavailable"),
    }
}

/// Prometheus text exposition.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
