//! Data-plane benchmark: 10,000 tenants in the control plane, 1,000 of them with SQLite
//! databases touched in a Zipf pattern through the pool manager.
//!
//! Reports resident memory per cold tenant, open pools (bounded), cold open + migrate
//! latency and warm single-row query latency.
//!
//!     cargo run --release -p tenantry-dataplane --example tenant_db_bench
//!
//! The control-plane tree goes under /dev/shm when it exists (the bench measures memory
//! and the data plane, not fsync), the SQLite files under a temp folder on disk.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use rand::Rng;
use tenantry_controlplane::model::*;
use tenantry_controlplane::{Command, ControlPlane, FsStore};
use tenantry_crypto::{MasterKey, SecretBox};
use tenantry_dataplane::model::NewUser;
use tenantry_dataplane::{CustomFieldSet, ManagerConfig, TenantDbManager, UserRepository};
use uuid::Uuid;

const TENANTS: usize = 10_000;
const ACTIVE: usize = 1_000;
const REQUESTS: usize = 50_000;
const MAX_POOLS: usize = 256;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "{name}: n={} mean={:?} p50={:?} p99={:?} max={:?}",
        samples.len(),
        mean,
        percentile(&samples, 0.50),
        percentile(&samples, 0.99),
        samples.last().unwrap()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let shm = std::path::Path::new("/dev/shm");
    let cp_dir = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let db_dir = tempfile::tempdir().unwrap();

    let before = rss_kib();
    let cp = ControlPlane::open(FsStore::new(cp_dir.path())).unwrap();
    let started = Instant::now();
    for i in 0..TENANTS {
        let now = Utc::now();
        let tenant = Tenant {
            id: Uuid::new_v4(),
            slug: format!("tenant-{i}"),
            display_name: format!("Tenant {i}"),
            created_at: now,
            updated_at: now,
            settings: TenantSettings {
                user_db: Some(UserDbSettings {
                    driver: DbDriver::Sqlite,
                    dsn: None,
                }),
                ..Default::default()
            },
        };
        cp.apply(&Command::CreateTenant {
            tenant,
            key_ring: KeyRing::default(),
        })
        .unwrap();
    }
    let created = started.elapsed();
    drop(cp);
    // Load the tree the way a starting process does and measure what it holds.
    let base = rss_kib();
    let started = Instant::now();
    let cp = Arc::new(ControlPlane::open(FsStore::new(cp_dir.path())).unwrap());
    let load_time = started.elapsed();
    let snapshot = cp.snapshot();
    let loaded = rss_kib();
    println!("control plane: {TENANTS} tenants written in {created:?}, loaded in {load_time:?}");
    // Upper bound: everything the process grew by since start, writing phase included.
    println!(
        "memory: {before} KiB RSS at start, {base} KiB after writing, {loaded} KiB with the snapshot of {TENANTS} cold tenants loaded \
         (at most {:.1} KiB per cold tenant)",
        loaded.saturating_sub(before) as f64 / TENANTS as f64
    );
    println!("snapshot holds {} tenants", snapshot.tenants.len());

    let secrets = Arc::new(SecretBox::new(MasterKey::generate(), vec![]));
    let mut config = ManagerConfig::new(db_dir.path());
    config.max_pools = MAX_POOLS;
    config.max_connections = 2;
    config.close_grace = Duration::from_millis(200);
    let manager = TenantDbManager::new(config, secrets);
    let entries: Vec<_> = (0..ACTIVE)
        .map(|i| snapshot.tenant(&format!("tenant-{i}")).unwrap().clone())
        .collect();
    let fields = CustomFieldSet::default();

    // Zipf(s = 1) over the active tenants.
    let weights: Vec<f64> = (1..=ACTIVE).map(|k| 1.0 / k as f64).collect();
    let total: f64 = weights.iter().sum();
    let mut cumulative = Vec::with_capacity(ACTIVE);
    let mut acc = 0.0;
    for w in &weights {
        acc += w / total;
        cumulative.push(acc);
    }
    let mut rng = rand::rng();
    let mut user_ids: Vec<Option<Uuid>> = vec![None; ACTIVE];
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    let mut max_open = 0;
    let run_started = Instant::now();
    for _ in 0..REQUESTS {
        let x: f64 = rng.random();
        let idx = cumulative.partition_point(|c| *c < x).min(ACTIVE - 1);
        let entry = &entries[idx];
        let t = Instant::now();
        let db = manager.get(entry).await.unwrap();
        let opened = t.elapsed();
        match user_ids[idx] {
            None => {
                let user = db
                    .create_user(
                        NewUser {
                            email: format!("user@{idx}.example"),
                            ..Default::default()
                        },
                        &fields,
                    )
                    .await
                    .unwrap();
                user_ids[idx] = Some(user.id);
                cold.push(opened);
            }
            Some(id) => {
                let t = Instant::now();
                let user = db.user_by_id(id, &fields).await.unwrap();
                assert!(user.is_some());
                // Warm = a pool that was already open; a reopen after eviction is counted cold.
                if opened < Duration::from_millis(1) {
                    warm.push(t.elapsed());
                } else {
                    cold.push(opened);
                }
            }
        }
        max_open = max_open.max(manager.open_pools());
    }
    let elapsed = run_started.elapsed();
    println!("workload: {REQUESTS} requests over {ACTIVE} SQLite tenants (Zipf s=1) in {elapsed:?}");
    println!(
        "open pools: max {max_open} (bound {MAX_POOLS}), now {}",
        manager.open_pools()
    );
    report("cold open + migrate (first use or reopen after eviction)", cold);
    report("warm single-row query (user by id)", warm);
    println!("memory after workload: {} KiB RSS", rss_kib());
}
