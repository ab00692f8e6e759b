//! Publishing applied commands: the shared [`ControlPlane`] state, change
//! [`Subscriber`]s, and the [`Writer`] trait through which every write goes.

use std::sync::{Arc, Mutex, RwLock};

use arc_swap::ArcSwap;

use crate::apply::{ApplyError, Rejection, apply};
use crate::command::Command;
use crate::snapshot::Snapshot;
use crate::store::{FsStore, LoadError};

/// What changed, as told to subscribers.
#[derive(Debug)]
pub enum Change<'a> {
    /// One command was applied.
    Applied(&'a Command),
    /// The whole tree was reloaded (start-up of a subscriber's view, or a snapshot restore).
    Reloaded,
}

/// Something that keeps derived state (a cache, a pool) in step with the control plane.
/// Called synchronously after each publish, before the write returns to its caller.
pub trait Subscriber: Send + Sync {
    fn on_change(&self, change: &Change<'_>, snapshot: &Arc<Snapshot>);
}

/// The control-plane state of one node: the file store and the published snapshot.
pub struct ControlPlane {
    store: FsStore,
    current: ArcSwap<Snapshot>,
    apply_lock: Mutex<()>,
    subscribers: RwLock<Vec<Arc<dyn Subscriber>>>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("root", &self.store.root())
            .finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// Loads the tree under `store` (creating the top folders if needed).
    pub fn open(store: FsStore) -> Result<Self, LoadError> {
        let snapshot = store.load()?;
        Ok(Self {
            store,
            current: ArcSwap::from_pointee(snapshot),
            apply_lock: Mutex::new(()),
            subscribers: RwLock::new(Vec::new()),
        })
    }

    pub fn store(&self) -> &FsStore {
        &self.store
    }

    /// The current snapshot; cheap (an `Arc` clone).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    pub fn subscribe(&self, subscriber: Arc<dyn Subscriber>) {
        self.subscribers
            .write()
            .expect("subscriber list poisoned")
            .push(subscriber);
    }

    /// Applies one command, publishes the new snapshot and notifies subscribers.
    /// Commands are applied one at a time, in the order they take the lock.
    pub fn apply(&self, cmd: &Command) -> Result<Arc<Snapshot>, ApplyError> {
        let _serial = self.apply_lock.lock().unwrap_or_else(|p| p.into_inner());
        let next = Arc::new(apply(&self.store, &self.current.load(), cmd)?);
        self.current.store(next.clone());
        tracing::info!(
            command = cmd.kind(),
            tenant = cmd.tenant_slug(),
            revision = next.revision,
            "control plane changed"
        );
        self.notify(&Change::Applied(cmd), &next);
        Ok(next)
    }

    /// Reads the whole tree again from disk and publishes it.
    pub fn reload(&self) -> Result<Arc<Snapshot>, LoadError> {
        let _serial = self.apply_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut loaded = self.store.load()?;
        loaded.revision = self.current.load().revision + 1;
        let next = Arc::new(loaded);
        self.current.store(next.clone());
        self.notify(&Change::Reloaded, &next);
        Ok(next)
    }

    fn notify(&self, change: &Change<'_>, snapshot: &Arc<Snapshot>) {
        for subscriber in self.subscribers.read().expect("subscriber list poisoned").iter() {
            subscriber.on_change(change, snapshot);
        }
    }
}

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// The files could not be written; the message names the operation, never secrets.
    #[error("control-plane storage failed: {0}")]
    Storage(String),
    /// Cluster mode: no leader is known to take the write (an election is under way, or
    /// this node is cut off from a quorum). Nothing was proposed.
    #[error("no leader is known to take the write")]
    NoLeader,
}

impl From<ApplyError> for WriteError {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::Rejected(r) => WriteError::Rejected(r),
            ApplyError::Io(io) => WriteError::Storage(io.to_string()),
        }
    }
}

/// The way every control-plane change is submitted. Standalone mode applies locally; the
/// cluster mode proposes the command to Raft, whose state machine calls the same `apply`.
#[async_trait::async_trait]
pub trait Writer: Send + Sync {
    async fn write(&self, cmd: Command) -> Result<Arc<Snapshot>, WriteError>;

    /// True on the one node whose timers may propose commands (key rotation, purges): the
    /// leader in cluster mode, always in standalone mode.
    fn is_leader(&self) -> bool {
        true
    }

    /// True when a write submitted here can reach a leader now.
    fn accepts_writes(&self) -> bool {
        true
    }

    /// Brings this node's snapshot up to every write committed before the call, so a
    /// request validated against it sees the writes it follows (a follower in cluster mode
    /// asks the leader how far the log is committed and waits for its own apply). Best
    /// effort and bounded: without a leader it returns at once.
    async fn catch_up(&self) {}
}

/// Applies commands on this node directly (no cluster).
#[derive(Debug, Clone)]
pub struct StandaloneWriter {
    control_plane: Arc<ControlPlane>,
}

impl StandaloneWriter {
    pub fn new(control_plane: Arc<ControlPlane>) -> Self {
        Self { control_plane }
    }
}

#[async_trait::async_trait]
impl Writer for StandaloneWriter {
    async fn write(&self, cmd: Command) -> Result<Arc<Snapshot>, WriteError> {
        let cp = self.control_plane.clone();
        tokio::task::spawn_blocking(move || cp.apply(&cmd))
            .await
            .map_err(|e| WriteError::Storage(format!("apply task failed: {e}")))?
            .map_err(WriteError::from)
    }
}
