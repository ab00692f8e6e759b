//! How long a member takes to install a snapshot of a large control plane: builds a tree
//! of N tenants (default 10,000; each with the full key ring of a new tenant) through
//! `ControlPlane::apply`, then times what a snapshot costs — packing it on the leader, and
//! on the receiver unpacking, swapping the folders in and reloading the control plane.
//!
//! `cargo run --release -p tenantry-cluster --example snapshot_install [-- N]`

use std::sync::Arc;
use std::time::Instant;

use tenantry_controlplane::model::{Tenant, TenantSettings};
use tenantry_controlplane::{Command, ControlPlane, FsStore};
use tenantry_crypto::{MasterKey, SecretBox};

fn main() {
    let tenants: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let source = tempfile::tempdir().unwrap();
    let secrets = SecretBox::new(MasterKey::generate(), vec![]);
    let cp = ControlPlane::open(FsStore::new(source.path())).unwrap();
    let now = chrono::Utc::now();
    let ring = tenantry_keys::generate_ring(&secrets, "bench", now).unwrap();
    let started = Instant::now();
    for i in 0..tenants {
        let mut settings = TenantSettings::for_new_tenant();
        settings.user_db = None;
        let tenant = Tenant {
            id: uuid::Uuid::new_v4(),
            slug: format!("tenant-{i}"),
            display_name: format!("Tenant {i}"),
            created_at: now,
            updated_at: now,
            settings,
        };
        cp.apply(&Command::CreateTenant {
            tenant,
            key_ring: ring.clone(),
        })
        .unwrap();
    }
    println!("built {tenants} tenants in {:.1} s", started.elapsed().as_secs_f64());

    let started = Instant::now();
    let packed = tenantry_cluster::tree::pack(source.path()).unwrap();
    let pack = started.elapsed();

    let target = tempfile::tempdir().unwrap();
    let receiver = Arc::new(ControlPlane::open(FsStore::new(target.path())).unwrap());
    let staged = target.path().join("raft/restore");
    let started = Instant::now();
    tenantry_cluster::tree::unpack(&packed, &staged).unwrap();
    let unpack = started.elapsed();
    let started = Instant::now();
    tenantry_cluster::tree::swap_in(target.path(), &staged, &target.path().join("raft/retired")).unwrap();
    let swap = started.elapsed();
    let started = Instant::now();
    let loaded = receiver.reload().unwrap();
    let reload = started.elapsed();
    assert_eq!(loaded.tenants.len(), tenants);
    println!(
        "snapshot of {tenants} tenants: {:.1} MiB; pack {:.0} ms; install {:.0} ms (unpack + fsync {:.0} ms, swap {:.0} ms, reload {:.0} ms)",
        packed.len() as f64 / (1024.0 * 1024.0),
        pack.as_secs_f64() * 1e3,
        (unpack + swap + reload).as_secs_f64() * 1e3,
        unpack.as_secs_f64() * 1e3,
        swap.as_secs_f64() * 1e3,
        reload.as_secs_f64() * 1e3,
    );
}
