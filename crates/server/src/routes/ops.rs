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
    let status = if !root_ok {
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
        },
    });
    let code = if root_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

/// Prometheus text exposition.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
