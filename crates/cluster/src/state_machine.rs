//! The Raft state machine: the control plane itself.
//!
//! Applying an entry is [`ControlPlane::apply`] — the same deterministic function a
//! standalone node calls — so every node's tree under FS_ROOT ends up byte-identical. The
//! last applied log id and membership are kept in `raft/applied.json`, written after each
//! batch. A crash between a command's files and that record replays the command on restart;
//! commands are complete values checked against the state they meet, so the replay either
//! rewrites the same files or is refused without writing (it cannot apply twice in effect).
//!
//! A snapshot is the packed tree ([`crate::tree`]); installing one swaps the replicated
//! folders and reloads the control plane, which tells every subscriber `Reloaded`.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, StorageIOError};
use serde::{Deserialize, Serialize};
use tenantry_controlplane::store::write_atomic;
use tenantry_controlplane::{ApplyError, ControlPlane, Rejection};

use crate::tree;
use crate::types::{Applied, Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig};

pub(crate) const APPLIED_FILE: &str = "applied.json";
/// The current snapshot's metadata; its data is in `snapshot-{id}.bin`, written first.
const SNAPSHOT_META: &str = "snapshot.json";
const RESTORE_DIR: &str = "restore";
const RETIRED_DIR: &str = "retired";
/// Written into the restore folder once it holds the whole snapshot: the install's point
/// of no return.
const RESTORE_COMPLETE: &str = "complete.json";
/// How many recent outcomes are kept for writers waiting on their entry.
const OUTCOMES_KEPT: usize = 10_000;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AppliedState {
    last_applied: Option<LogId>,
    membership: StoredMembership,
}

/// What each recently applied entry answered on this node, so a writer that proposed a
/// command (here or through the leader) reads its own node's verdict.
#[derive(Debug, Default)]
pub struct Outcomes {
    recent: Mutex<BTreeMap<u64, Result<(), Rejection>>>,
}

/// An entry's outcome as seen by a waiting writer.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Done(Result<(), Rejection>),
    /// The entry reached this node inside a snapshot, or long ago: its verdict is unknown.
    Unknown,
}

impl Outcomes {
    fn record(&self, index: u64, result: Result<(), Rejection>) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.insert(index, result);
        while recent.len() > OUTCOMES_KEPT {
            recent.pop_first();
        }
    }

    pub fn get(&self, index: u64) -> Outcome {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        match recent.get(&index) {
            Some(result) => Outcome::Done(result.clone()),
            None => Outcome::Unknown,
        }
    }
}

pub struct StateMachine {
    control_plane: Arc<ControlPlane>,
    fs_root: PathBuf,
    dir: PathBuf,
    state: AppliedState,
    outcomes: Arc<Outcomes>,
}

fn sm_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    StorageError::IO {
        source: StorageIOError::new(
            ErrorSubject::StateMachine,
            verb,
            openraft::AnyError::error(e.to_string()),
        ),
    }
}

fn snapshot_err(meta: Option<&SnapshotMeta>, verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    StorageError::IO {
        source: StorageIOError::new(
            ErrorSubject::Snapshot(meta.map(|m| m.signature())),
            verb,
            openraft::AnyError::error(e.to_string()),
        ),
    }
}

/// Finishes a snapshot install that a crash interrupted. Call before the control plane
/// loads the tree.
pub fn recover(fs_root: &Path, raft_dir: &Path) -> std::io::Result<()> {
    let staged = raft_dir.join(RESTORE_DIR);
    let retired = raft_dir.join(RETIRED_DIR);
    if !staged.exists() && !retired.exists() {
        return Ok(());
    }
    let marker = staged.join(RESTORE_COMPLETE);
    let complete = marker.exists();
    tree::finish_interrupted_swap(fs_root, &staged, &retired, complete)?;
    if complete {
        // The tree is the snapshot's now: so is the applied state.
        let meta: SnapshotMeta = serde_json::from_slice(&std::fs::read(&marker)?).map_err(std::io::Error::other)?;
        let state = AppliedState {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        write_atomic(&raft_dir.join(APPLIED_FILE), &serde_json::to_vec(&state)?)?;
        tracing::warn!(snapshot = %meta.snapshot_id, "finished a snapshot install interrupted by a crash");
    }
    if retired.exists() {
        std::fs::remove_dir_all(&retired)?;
    }
    if staged.exists() {
        std::fs::remove_dir_all(&staged)?;
    }
    Ok(())
}

impl StateMachine {
    pub fn open(control_plane: Arc<ControlPlane>, raft_dir: &Path, outcomes: Arc<Outcomes>) -> std::io::Result<Self> {
        let state = match std::fs::read(raft_dir.join(APPLIED_FILE)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => AppliedState::default(),
            Err(e) => return Err(e),
        };
        Ok(Self {
            fs_root: control_plane.store().root().to_owned(),
            control_plane,
            dir: raft_dir.to_owned(),
            state,
            outcomes,
        })
    }

    fn save_state(&self) -> std::io::Result<()> {
        write_atomic(&self.dir.join(APPLIED_FILE), &serde_json::to_vec(&self.state)?)
    }
}

fn snapshot_data_file(dir: &Path, meta: &SnapshotMeta) -> PathBuf {
    dir.join(format!("snapshot-{}.bin", meta.snapshot_id))
}

/// Keeps `data` as the current snapshot: its data file first, then the metadata that
/// names it (so a crash never pairs metadata with other data), then older data files go.
fn persist_snapshot(dir: &Path, meta: &SnapshotMeta, data: &[u8]) -> std::io::Result<()> {
    let current = snapshot_data_file(dir, meta);
    write_atomic(&current, data)?;
    write_atomic(&dir.join(SNAPSHOT_META), &serde_json::to_vec(meta)?)?;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with("snapshot-") && name.ends_with(".bin") && path != current {
            let _ = std::fs::remove_file(&path);
        }
    }
    Ok(())
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.state.last_applied, self.state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let cp = self.control_plane.clone();
        let outcomes = self.outcomes.clone();
        let mut state = self.state.clone();
        let (state, result) = tokio::task::spawn_blocking(move || {
            let mut answers = Vec::with_capacity(entries.len());
            for entry in entries {
                let index = entry.log_id.index;
                let answer = match entry.payload {
                    EntryPayload::Blank => Applied::default(),
                    EntryPayload::Membership(membership) => {
                        state.membership = StoredMembership::new(Some(entry.log_id), membership);
                        Applied::default()
                    }
                    EntryPayload::Normal(cmd) => {
                        let started = Instant::now();
                        let result = match cp.apply(&cmd) {
                            Ok(_) => Ok(()),
                            Err(ApplyError::Rejected(r)) => Err(r),
                            Err(ApplyError::Io(e)) => {
                                // The entry is committed: this node cannot go on without it.
                                return (
                                    state,
                                    Err(sm_err(ErrorVerb::Write, format!("applying {}: {e}", cmd.kind()))),
                                );
                            }
                        };
                        metrics::histogram!("cluster_apply_seconds").record(started.elapsed().as_secs_f64());
                        let answer = Applied {
                            rejected: result.as_ref().err().map(ToString::to_string),
                        };
                        outcomes.record(index, result);
                        answer
                    }
                };
                state.last_applied = Some(entry.log_id);
                answers.push(answer);
            }
            (state, Ok(answers))
        })
        .await
        .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        self.state = state;
        self.save_state().map_err(|e| sm_err(ErrorVerb::Write, e))?;
        result
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // Packed here, where no apply can run, so the tree matches `last_applied`.
        let packed = tree::pack(&self.fs_root).map_err(|e| snapshot_err(None, ErrorVerb::Read, e));
        let id = format!(
            "{}-{}-{}",
            self.state.last_applied.map(|l| l.leader_id.term).unwrap_or(0),
            self.state.last_applied.map(|l| l.index).unwrap_or(0),
            millis_now()
        );
        SnapshotBuilder {
            packed,
            meta: SnapshotMeta {
                last_log_id: self.state.last_applied,
                last_membership: self.state.membership.clone(),
                snapshot_id: id,
            },
            dir: self.dir.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let started = Instant::now();
        let data = snapshot.into_inner();
        let staged = self.dir.join(RESTORE_DIR);
        let retired = self.dir.join(RETIRED_DIR);
        let root = self.fs_root.clone();
        let meta_bytes = serde_json::to_vec(meta).map_err(|e| snapshot_err(Some(meta), ErrorVerb::Write, e))?;
        let data_for_disk = data.clone();
        let cp = self.control_plane.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if staged.exists() {
                std::fs::remove_dir_all(&staged)?;
            }
            if let Err(e) = tree::unpack(&data_for_disk, &staged) {
                let _ = std::fs::remove_dir_all(&staged);
                return Err(e);
            }
            write_atomic(&staged.join(RESTORE_COMPLETE), &meta_bytes)?;
            tree::swap_in(&root, &staged, &retired)?;
            cp.reload().map_err(|e| std::io::Error::other(e.to_string()))?;
            Ok(())
        })
        .await
        .map_err(|e| snapshot_err(Some(meta), ErrorVerb::Write, e))?
        .map_err(|e| snapshot_err(Some(meta), ErrorVerb::Write, e))?;
        self.state = AppliedState {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        self.save_state().map_err(|e| sm_err(ErrorVerb::Write, e))?;
        persist_snapshot(&self.dir, meta, &data).map_err(|e| snapshot_err(Some(meta), ErrorVerb::Write, e))?;
        metrics::counter!("cluster_snapshots_total", "kind" => "installed").increment(1);
        tracing::info!(
            snapshot = %meta.snapshot_id,
            bytes = data.len(),
            ms = started.elapsed().as_millis() as u64,
            "installed a control-plane snapshot"
        );
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let meta = match std::fs::read(self.dir.join(SNAPSHOT_META)) {
            Ok(bytes) => {
                serde_json::from_slice::<SnapshotMeta>(&bytes).map_err(|e| snapshot_err(None, ErrorVerb::Read, e))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(snapshot_err(None, ErrorVerb::Read, e)),
        };
        let data = std::fs::read(snapshot_data_file(&self.dir, &meta))
            .map_err(|e| snapshot_err(Some(&meta), ErrorVerb::Read, e))?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

/// Milliseconds since the epoch, to tell snapshots of one log position apart.
fn millis_now() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// Writes a snapshot packed by [`StateMachine::get_snapshot_builder`] to disk.
pub struct SnapshotBuilder {
    packed: Result<Vec<u8>, StorageError>,
    meta: SnapshotMeta,
    dir: PathBuf,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let data = std::mem::replace(&mut self.packed, Ok(Vec::new()))?;
        let (dir, meta, to_disk) = (self.dir.clone(), self.meta.clone(), data.clone());
        tokio::task::spawn_blocking(move || persist_snapshot(&dir, &meta, &to_disk))
            .await
            .map_err(|e| snapshot_err(Some(&self.meta), ErrorVerb::Write, e))?
            .map_err(|e| snapshot_err(Some(&self.meta), ErrorVerb::Write, e))?;
        metrics::counter!("cluster_snapshots_total", "kind" => "built").increment(1);
        Ok(Snapshot {
            meta: self.meta.clone(),
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}
