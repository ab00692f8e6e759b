//! Operations endpoints: liveness, readiness and Prometheus metrics.

use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;
use crate::web::AdminAuth;
use tenantry_config::resources;

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

/// How many open tenant pools one readiness check pings (the most recently used).
const PING_MAX_POOLS: usize = 32;
/// How long one ping (a tenant database, Redis) may take.
const PING_TIMEOUT: Duration = Duration::from_secs(1);
/// Readiness checks closer together than this reuse the last pings' outcome (a failing
/// pool stays marked failed in the manager), so frequent probes cost nothing extra.
const PING_INTERVAL: Duration = Duration::from_secs(2);

/// Whether this node can serve: `ready`, `degraded` (some tenants do not load, a tenant
/// database or Redis does not answer, a custom field is not applied, descriptors run
/// short; the rest is served) or `unavailable` (503: the control plane itself is not
/// usable). Everyone sees statuses and counts; paths, errors and tenant slugs only a
/// request with an admin token (`Authorization: Bearer <admin token>`).
async fn readyz(State(state): State<AppState>, admin: Result<AdminAuth, ApiError>) -> impl IntoResponse {
    // Slugs and paths of every tenant: only for a credential that reaches them all.
    let detailed = admin.is_ok_and(|a| a.0.reach.is_global());
    let snapshot = state.control_plane.snapshot();
    let root = state.control_plane.store().root().to_owned();
    let root_ok = tokio::task::spawn_blocking(move || root.join("tenants").is_dir())
        .await
        .unwrap_or(false);

    // Bounded and concurrent: the recently used pools and Redis, each within PING_TIMEOUT.
    let global_ping = async {
        match &state.global_db {
            None => None,
            Some(global) => Some(matches!(
                tokio::time::timeout(PING_TIMEOUT, global.ping()).await,
                Ok(Ok(()))
            )),
        }
    };
    let (_, limiter, global_ok) = tokio::join!(
        state.dbs.check_open_every(PING_INTERVAL, PING_MAX_POOLS, PING_TIMEOUT),
        tokio::time::timeout(PING_TIMEOUT * 2, state.accounts.rate_limiter.ping()),
        global_ping,
    );
    let limiter: Result<(), String> = match limiter {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer in time".into()),
    };
    let pools = state.dbs.status();
    let global = match global_ok {
        None => "not_configured",
        Some(true) => "ok",
        Some(false) => "failing",
    };
    let keystore = check_system_keys(&state);
    let fds = (resources::open_fds(), resources::max_fds());
    let fd_pressure = match fds {
        (Some(open), Some(limit)) => open * 100 >= limit * resources::PRESSURE_PERCENT,
        _ => false,
    };
    let cluster = cluster_view(&state, &snapshot, detailed);
    let cluster_ok = cluster.as_ref().is_none_or(|(ok, _)| *ok);
    let status = if !root_ok || keystore.is_err() {
        "unavailable"
    } else if !cluster_ok
        || !snapshot.degraded.is_empty()
        || !pools.failing.is_empty()
        || !pools.custom_field_failures.is_empty()
        || limiter.is_err()
        || global_ok == Some(false)
        || fd_pressure
    {
        "degraded"
    } else {
        "ready"
    };
    let ok_or = |ok: bool, bad: &str| if ok { "ok".to_owned() } else { bad.to_owned() };

    let mut tenants = json!({
        "status": ok_or(snapshot.degraded.is_empty(), "degraded"),
        "degraded_count": snapshot.degraded.len(),
    });
    let mut databases = json!({
        "status": ok_or(pools.failing.is_empty(), "degraded"),
        "open_pools": pools.open,
        "max_pools": pools.max,
        "failing_count": pools.failing.len(),
    });
    let mut custom_fields = json!({
        "status": ok_or(pools.custom_field_failures.is_empty(), "degraded"),
        "failing_count": pools.custom_field_failures.len(),
    });
    let mut rate_limiter = json!({
        "status": ok_or(limiter.is_ok(), "failing"),
        "backend": state.accounts.rate_limiter.backend_name(),
    });
    let mut keystore_view = json!({"status": ok_or(keystore.is_ok(), "failing")});
    // When expired rows were last removed (a failed tenant is retried next pass).
    let housekeeping = match state.housekeeping.last_run() {
        None => json!({"status": "pending"}),
        Some(run) => json!({
            "status": ok_or(run.failed == 0, "failing"),
            "last_run": run.at, "tenants": run.tenants, "removed": run.removed, "failed": run.failed, "took_ms": run.took_ms,
        }),
    };
    if let Ok(kid) = &keystore {
        keystore_view["system_kid"] = json!(kid);
    }
    if detailed {
        tenants["degraded"] = snapshot
            .degraded
            .values()
            .map(|d| json!({"slug": d.slug, "path": d.path.display().to_string(), "error": d.error}))
            .collect();
        databases["failing"] = json!(pools.failing);
        custom_fields["failing"] = json!(pools.custom_field_failures);
        if let Err(error) = &limiter {
            rate_limiter["error"] = json!(error);
        }
        if let Err(error) = &keystore {
            keystore_view["error"] = json!(error);
        }
    }
    let mut body = json!({
        "status": status,
        "detailed": detailed,
        "components": {
            "control_plane": {
                "status": ok_or(root_ok, "failing"),
                "mode": if cluster.is_some() { "cluster" } else { "standalone" },
                "revision": snapshot.revision,
                "tenants": snapshot.tenants.len(),
            },
            "tenants": tenants,
            "tenant_databases": databases,
            "custom_fields": custom_fields,
            "rate_limiter": rate_limiter,
            "file_descriptors": {
                "status": ok_or(!fd_pressure, "degraded"),
                "open": fds.0,
                "limit": fds.1,
            },
            "global_db": { "status": global },
            "keystore": keystore_view,
            "housekeeping": housekeeping,
        },
    });
    if let Some((_, view)) = cluster {
        body["components"]["cluster"] = view;
    }
    let code = if root_ok && keystore.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

/// Cluster mode: this member's role, leader, term and indexes, and whether it is healthy —
/// a known leader, a leader that still hears from a quorum, applies not lagging beyond
/// `cluster.max_lag`, no tenant on a node-local (SQLite) database. Token traffic is served
/// either way; a `degraded` member only cannot take writes or may serve stale settings.
fn cluster_view(
    state: &AppState,
    snapshot: &tenantry_controlplane::Snapshot,
    detailed: bool,
) -> Option<(bool, serde_json::Value)> {
    let cluster = state.cluster.as_ref()?;
    let settings = state.config.cluster.as_ref()?;
    let status = cluster.status();
    let lag = status
        .cluster_committed_index
        .unwrap_or(0)
        .saturating_sub(status.applied_index.unwrap_or(0));
    let quorum_lost = status.role == "leader"
        && status
            .millis_since_quorum_ack
            .is_none_or(|ms| u128::from(ms) > settings.election_timeout.as_millis() * 3);
    let local_db_tenants: Vec<&str> = snapshot
        .tenants
        .values()
        .filter(|t| {
            t.tenant
                .settings
                .user_db
                .as_ref()
                .is_some_and(|db| db.driver.is_node_local())
        })
        .map(|t| t.tenant.slug.as_str())
        .collect();
    let mut problems = Vec::new();
    if !status.initialized {
        problems.push("not part of a cluster yet: run `tenantry cluster init` or `tenantry cluster join`");
    } else if status.leader_id.is_none() {
        problems.push("no leader is known");
    }
    if quorum_lost {
        problems.push("the leader has not heard from a quorum recently");
    }
    if lag > settings.max_lag {
        problems.push("this member trails the cluster's committed log");
    }
    if !local_db_tenants.is_empty() {
        problems.push("some tenants use a node-local SQLite database, which members do not share");
    }
    let mut view = json!({
        "status": if problems.is_empty() { "ok" } else { "degraded" },
        "node_id": status.node_id,
        "role": status.role,
        "leader_id": status.leader_id,
        "term": status.term,
        "committed_index": status.committed_index,
        "cluster_committed_index": status.cluster_committed_index,
        "applied_index": status.applied_index,
        "lag": lag,
        "members": status.members.len(),
        "local_db_tenant_count": local_db_tenants.len(),
        "problems": problems,
    });
    if detailed {
        view["local_db_tenants"] = json!(local_db_tenants);
        view["member_status"] = json!(status.members);
    }
    Some((problems.is_empty(), view))
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

/// Prometheus text exposition, with the descriptor and pool gauges read now.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    if let Some(open) = resources::open_fds() {
        metrics::gauge!("process_open_fds").set(open as f64);
    }
    if let Some(limit) = resources::max_fds() {
        metrics::gauge!("process_max_fds").set(limit as f64);
    }
    metrics::gauge!("tenant_db_open_pools").set(state.dbs.open_pools() as f64);
    metrics::gauge!("tenant_db_max_pools").set(state.dbs.config().max_pools as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
