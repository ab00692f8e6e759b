//! The housekeeping timer: every few minutes, for each open tenant database, a bounded
//! sweep of rows past their expiry (`TenantDb::sweep`: codes, refresh tokens, denied
//! access tokens, spent assertion ids, mailed links, remembered devices, sessions) and the
//! purge of security events past the tenant's retention. Metrics count what each table
//! lost; the last pass is shown by `/readyz`.
//!
//! A database that is not open is swept once it is open again (nothing new was written to
//! it meanwhile). With a cluster this runs on the leader only.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tenantry_controlplane::ControlPlane;
use tenantry_dataplane::TenantDbManager;
use tenantry_dataplane::housekeeping::SweepLimits;

/// How often a pass runs.
pub const INTERVAL: Duration = Duration::from_secs(300);

/// What the last pass did.
#[derive(Debug, Clone, Serialize)]
pub struct LastRun {
    pub at: DateTime<Utc>,
    /// Tenant databases swept.
    pub tenants: usize,
    /// Rows removed, all tables and tenants together (security events included).
    pub removed: u64,
    /// Tenant databases whose sweep failed (unreachable, say); they are tried next pass.
    pub failed: usize,
    pub took_ms: u64,
}

/// The timer's state: the last pass.
#[derive(Debug, Default)]
pub struct Housekeeping {
    last: Mutex<Option<LastRun>>,
}

impl Housekeeping {
    pub fn last_run(&self) -> Option<LastRun> {
        self.last.lock().expect("housekeeping state").clone()
    }

    /// One pass over the open tenant databases at `now`.
    pub async fn run_once(&self, control_plane: &ControlPlane, dbs: &TenantDbManager, now: DateTime<Utc>) -> LastRun {
        let started = Instant::now();
        let snapshot = control_plane.snapshot();
        let (mut tenants, mut removed, mut failed) = (0, 0, 0);
        for (slug, db) in dbs.open_databases() {
            let Some(entry) = snapshot.tenant(&slug) else { continue };
            tenants += 1;
            match db.sweep(now, SweepLimits::default()).await {
                Ok(tables) => {
                    for (table, rows) in tables {
                        if rows > 0 {
                            metrics::counter!("housekeeping_rows_removed_total", "table" => table).increment(rows);
                            removed += rows;
                        }
                    }
                }
                Err(e) => {
                    failed += 1;
                    tracing::warn!(tenant = %slug, error = %e, "housekeeping sweep failed; retried next pass");
                }
            }
            let days = entry.tenant.settings.security.audit_retention_days;
            let events = crate::events::purge_expired(&db, days, now).await;
            if events > 0 {
                metrics::counter!("housekeeping_rows_removed_total", "table" => "audit_events").increment(events);
                removed += events;
            }
        }
        let run = LastRun {
            at: now,
            tenants,
            removed,
            failed,
            took_ms: started.elapsed().as_millis() as u64,
        };
        if removed > 0 || failed > 0 {
            tracing::info!(tenants, removed, failed, took_ms = run.took_ms, "housekeeping pass");
        }
        *self.last.lock().expect("housekeeping state") = Some(run.clone());
        run
    }

    /// Runs a pass every `interval`, the first one at once.
    pub fn spawn(
        self: Arc<Self>,
        control_plane: Arc<ControlPlane>,
        dbs: Arc<TenantDbManager>,
        interval: Duration,
        is_leader: impl Fn() -> bool + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                // Cluster members share tenant databases: one pass, on the leader, is enough.
                if !is_leader() {
                    continue;
                }
                self.run_once(&control_plane, &dbs, Utc::now()).await;
            }
        })
    }
}
