//! Key-ring changes: the commands that create, rotate and retire keys, and the timer that
//! proposes them.
//!
//! Keys are generated here, on the node that accepts the change, before the command is
//! written; applying the command only copies them, so every node ends with the same ring.
//! Generation (RSA-2048 especially) is CPU work and runs on the blocking pool.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tenantry_controlplane::model::{KeyRing, SigningAlg};
use tenantry_controlplane::{Command, Snapshot, TenantEntry, Writer};
use tenantry_crypto::SecretBox;

use tenantry_errors::{ApiError, ErrorCode};
use tenantry_tenancy::keystore::SYSTEM_OWNER;

/// How long a replaced system key stays published (system tokens are short-lived).
const SYSTEM_GRACE: chrono::Duration = chrono::Duration::hours(24);
/// Rotation period of the system issuer's keys.
const SYSTEM_ROTATION: chrono::Duration = chrono::Duration::days(90);
/// How long clients and proxies may cache a JWKS response (`Cache-Control` of the
/// published key set). Rotation keeps a replaced key published for longer than this, so a
/// cached set never lacks a key still in use.
pub const JWKS_MAX_AGE_SECS: u64 = 300;
/// Margin on top of the longest token lifetime: clock skew plus JWKS caching.
const GRACE_MARGIN_SECS: u64 = JWKS_MAX_AGE_SECS + 300;

/// Which ring a change is for.
#[derive(Debug, Clone, Copy)]
pub enum RingOwner<'a> {
    Tenant(&'a TenantEntry),
    System,
}

impl RingOwner<'_> {
    fn seal_owner(&self) -> String {
        match self {
            RingOwner::Tenant(entry) => entry.tenant.id.to_string(),
            RingOwner::System => SYSTEM_OWNER.to_owned(),
        }
    }

    fn slug(&self) -> Option<String> {
        match self {
            RingOwner::Tenant(entry) => Some(entry.tenant.slug.clone()),
            RingOwner::System => None,
        }
    }

    fn ring<'s>(&'s self, snapshot: &'s Snapshot) -> &'s KeyRing {
        match self {
            RingOwner::Tenant(entry) => &entry.key_ring,
            RingOwner::System => &snapshot.system_keys,
        }
    }

    /// How long a key replaced now must stay published: at least the longest lifetime of a
    /// token it may have signed, plus skew and JWKS caching.
    pub fn grace(&self) -> chrono::Duration {
        match self {
            RingOwner::Tenant(entry) => {
                chrono::Duration::seconds((crate::tokens::longest_jwt_secs(entry) + GRACE_MARGIN_SECS) as i64)
            }
            RingOwner::System => SYSTEM_GRACE,
        }
    }
}

/// A fresh ring (one key per algorithm) sealed for `owner` (a tenant id or `system`).
pub async fn new_ring(secrets: Arc<SecretBox>, owner: String) -> Result<KeyRing, ApiError> {
    let now = Utc::now();
    blocking(move || tenantry_keys::generate_ring(&secrets, &owner, now)).await
}

/// The command that rotates `algs` (all algorithms when empty) of a ring: new active
/// keys, the replaced ones retiring after the grace period.
pub async fn rotate_command(
    secrets: Arc<SecretBox>,
    owner: RingOwner<'_>,
    algs: &[SigningAlg],
    now: DateTime<Utc>,
) -> Result<Command, ApiError> {
    let algs = if algs.is_empty() {
        SigningAlg::ALL.to_vec()
    } else {
        algs.to_vec()
    };
    let seal_owner = owner.seal_owner();
    let keys = blocking(move || tenantry_keys::generate_keys(&algs, &secrets, &seal_owner, now)).await?;
    Ok(Command::RotateKeys {
        slug: owner.slug(),
        keys,
        retire_after: now + owner.grace(),
    })
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, tenantry_keys::KeyError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(|e| {
            tracing::error!(error = %e, "key generation failed");
            ApiError::new(ErrorCode::InternalError, "key generation failed; see the server log")
        })
}

/// What the timer would do to one ring at `now`.
fn due_commands_for(
    owner: RingOwner<'_>,
    snapshot: &Snapshot,
    period: Option<chrono::Duration>,
    now: DateTime<Utc>,
) -> (Vec<SigningAlg>, Vec<String>) {
    let ring = owner.ring(snapshot);
    let rotate = period.map(|p| ring.due_for_rotation(now, p)).unwrap_or_default();
    (rotate, ring.expired(now))
}

/// One pass of automatic maintenance over every ring: rotates keys older than their
/// tenant's period, retires keys whose grace has ended. Returns how many commands ran.
pub async fn maintain_once(
    snapshot: Arc<Snapshot>,
    writer: &dyn Writer,
    secrets: &Arc<SecretBox>,
    now: DateTime<Utc>,
) -> usize {
    let mut work = Vec::new();
    for entry in snapshot.tenants.values() {
        let days = entry.tenant.settings.signing.rotation_days;
        let period = (days > 0).then(|| chrono::Duration::days(days.into()));
        work.push((RingOwner::Tenant(entry), period));
    }
    if !snapshot.system_keys.keys.is_empty() {
        work.push((RingOwner::System, Some(SYSTEM_ROTATION)));
    }
    let mut done = 0;
    for (owner, period) in work {
        let (rotate, retire) = due_commands_for(owner, &snapshot, period, now);
        let label = owner.slug().unwrap_or_else(|| SYSTEM_OWNER.to_owned());
        if !retire.is_empty() {
            let command = Command::RetireKeys {
                slug: owner.slug(),
                kids: retire,
            };
            match writer.write(command).await {
                Ok(_) => done += 1,
                Err(e) => tracing::warn!(issuer = label, error = %e, "retiring expired keys failed"),
            }
        }
        if !rotate.is_empty() {
            let result = match rotate_command(secrets.clone(), owner, &rotate, now).await {
                Ok(command) => writer.write(command).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.detail),
            };
            match result {
                Ok(_) => {
                    done += 1;
                    tracing::info!(issuer = label, algorithms = ?rotate, "signing keys rotated on schedule");
                }
                Err(e) => tracing::warn!(issuer = label, error = %e, "scheduled key rotation failed"),
            }
        }
    }
    done
}

/// Runs [`maintain_once`] every `interval` while this node may write.
pub fn spawn_maintenance(
    control_plane: Arc<tenantry_controlplane::ControlPlane>,
    writer: Arc<dyn Writer>,
    secrets: Arc<SecretBox>,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            // Only the leader proposes rotations (and so generates their key material); on
            // a standalone node the writer is always the leader.
            if writer.is_leader() {
                maintain_once(control_plane.snapshot(), writer.as_ref(), &secrets, Utc::now()).await;
            }
        }
    })
}
