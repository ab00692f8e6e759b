//! One member of the cluster: its Raft instance, its stores, membership operations, and
//! the status `/readyz` and `tenantry cluster status` show.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, ServerState};
use serde::{Deserialize, Serialize};
use tenantry_controlplane::ControlPlane;

use crate::log_store::LogStore;
use crate::network::{Network, PeerClient};
use crate::state_machine::{Outcomes, StateMachine};
use crate::types::{Member, NodeId, Raft};

/// Folder under FS_ROOT with the Raft log, vote, applied state and snapshots.
pub const RAFT_DIR: &str = "raft";

/// Deadline of one snapshot call to a member: sending a chunk (up to 3 MiB), and for the
/// last one also installing the whole tree there (3.8 s for 10,000 tenants on the
/// benchmark machine, more on a busy one). openraft's default, 200 ms, makes a large
/// snapshot — or any snapshot on a loaded machine — time out and start over forever.
const SNAPSHOT_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// How a member is set up (from `[cluster]` in the configuration).
#[derive(Debug, Clone)]
pub struct Settings {
    pub node_id: NodeId,
    pub fs_root: PathBuf,
    /// How the other members reach this node's cluster listener.
    pub cluster_url: String,
    /// This node's public API, for redirects and status.
    pub api_url: String,
    pub secret: String,
    /// Mutual TLS for calls to other members, when configured.
    pub tls: Option<crate::MutualTls>,
    /// The address outbound cluster calls leave from (the cluster listener's), if specific.
    pub bind_ip: Option<std::net::IpAddr>,
    pub heartbeat: Duration,
    pub election_timeout: (Duration, Duration),
    /// A snapshot is built after this many applied entries; older entries are then purged.
    pub snapshot_every: u64,
}

impl Settings {
    pub fn raft_dir(&self) -> PathBuf {
        self.fs_root.join(RAFT_DIR)
    }
}

/// Finishes whatever a crash interrupted under `FS_ROOT/raft` (a snapshot install). Call
/// before the control plane loads the tree.
pub fn recover(fs_root: &std::path::Path) -> std::io::Result<()> {
    let dir = fs_root.join(RAFT_DIR);
    if dir.exists() {
        crate::state_machine::recover(fs_root, &dir)?;
    }
    Ok(())
}

/// True when FS_ROOT belongs to a cluster member that has taken part in a cluster; offline
/// writes to its control plane would silently diverge from the others.
pub fn fs_root_is_clustered(fs_root: &std::path::Path) -> bool {
    let path = fs_root.join(RAFT_DIR).join(crate::state_machine::APPLIED_FILE);
    path.exists()
}

/// A member of the cluster.
pub struct Cluster {
    pub id: NodeId,
    pub raft: Raft,
    pub me: Member,
    pub(crate) outcomes: Arc<Outcomes>,
    pub(crate) log: LogStore,
    pub(crate) client: PeerClient,
    pub(crate) secret: Arc<str>,
    /// Mutual TLS for the cluster listener, when configured.
    pub tls: Option<crate::MutualTls>,
    pub control_plane: Arc<ControlPlane>,
    /// The highest commit index a leader has announced to this member (0: none yet). A
    /// follower's own committed index stops at the entries it holds, so this is what tells
    /// how far it trails the cluster.
    leader_commit: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Why a membership operation failed, with the code the cluster API answers.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ClusterError {
    pub code: String,
    pub message: String,
    #[serde(skip)]
    pub status: u16,
}

impl ClusterError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
            status,
        }
    }

    pub fn no_leader() -> Self {
        Self::new(503, "no_leader", "no leader is known yet; try again shortly")
    }
}

impl Cluster {
    /// Opens this member's stores and starts Raft. The control plane must already be open
    /// (after [`recover`]).
    pub async fn start(settings: Settings, control_plane: Arc<ControlPlane>) -> anyhow::Result<Arc<Self>> {
        let dir = settings.raft_dir();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let log = LogStore::open(&dir.join("log.redb"))
            .with_context(|| format!("opening the Raft log in {}", dir.display()))?;
        let outcomes = Arc::new(Outcomes::default());
        let state_machine = StateMachine::open(control_plane.clone(), &dir, outcomes.clone())
            .with_context(|| format!("reading the applied state in {}", dir.display()))?;
        let (min, max) = settings.election_timeout;
        let config = openraft::Config {
            cluster_name: "tenantry".to_owned(),
            heartbeat_interval: settings.heartbeat.as_millis() as u64,
            election_timeout_min: min.as_millis() as u64,
            election_timeout_max: max.as_millis() as u64,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(settings.snapshot_every),
            max_in_snapshot_log_to_keep: settings.snapshot_every.min(1000),
            install_snapshot_timeout: SNAPSHOT_CALL_TIMEOUT.as_millis() as u64,
            ..Default::default()
        }
        .validate()
        .context("Raft timing settings")?;
        let client = PeerClient::new(&settings.secret, settings.bind_ip, settings.tls.as_ref());
        let raft = Raft::new(
            settings.node_id,
            Arc::new(config),
            Network { client: client.clone() },
            log.clone(),
            state_machine,
        )
        .await
        .context("starting Raft")?;
        let me = Member {
            cluster_url: settings.cluster_url.clone(),
            api_url: settings.api_url.clone(),
        };
        let cluster = Arc::new(Self {
            id: settings.node_id,
            raft,
            me,
            outcomes,
            log,
            client,
            secret: settings.secret.as_str().into(),
            tls: settings.tls.clone(),
            control_plane,
            leader_commit: Default::default(),
        });
        crate::telemetry::spawn(cluster.clone());
        Ok(cluster)
    }

    /// Records the commit index a leader's append call carried (commits never go back).
    pub(crate) fn saw_leader_commit(&self, index: u64) {
        self.leader_commit
            .fetch_max(index, std::sync::atomic::Ordering::Relaxed);
    }

    /// True while this node is the leader.
    pub fn is_leader(&self) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.id)
    }

    /// True while this node knows a leader (cheap: no clone; asked on every tenant request
    /// for `Capability::Leader`).
    pub fn has_leader(&self) -> bool {
        self.raft.metrics().borrow().current_leader.is_some()
    }

    /// The leader as this node knows it.
    pub fn leader(&self) -> Option<(NodeId, Member)> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let id = m.current_leader?;
        let member = m.membership_config.membership().get_node(&id)?.clone();
        Some((id, member))
    }

    /// Makes this node a one-member cluster whose state is its current control plane, then
    /// snapshots that state and drops the log before it, so every member that joins starts
    /// from the snapshot (the tree as it was before the cluster existed included).
    pub async fn initialize(&self) -> Result<Status, ClusterError> {
        let members = BTreeMap::from([(self.id, self.me.clone())]);
        self.raft.initialize(members).await.map_err(|e| match e {
            RaftError::APIError(api) => ClusterError::new(409, "cluster_initialized", api.to_string()),
            RaftError::Fatal(f) => ClusterError::new(503, "cluster_unavailable", f.to_string()),
        })?;
        let metrics = self
            .raft
            .wait(Some(Duration::from_secs(10)))
            .state(ServerState::Leader, "become leader after init")
            .await
            .map_err(|e| ClusterError::new(503, "cluster_unavailable", e.to_string()))?;
        let applied = metrics.last_log_index.unwrap_or(0);
        self.raft
            .wait(Some(Duration::from_secs(10)))
            .applied_index_at_least(Some(applied), "apply the initial membership")
            .await
            .map_err(|e| ClusterError::new(503, "cluster_unavailable", e.to_string()))?;
        self.compact(applied).await?;
        Ok(self.status())
    }

    /// Builds a snapshot now and purges the log up to `upto`.
    async fn compact(&self, upto: u64) -> Result<(), ClusterError> {
        let unavailable =
            |e: openraft::error::Fatal<NodeId>| ClusterError::new(503, "cluster_unavailable", e.to_string());
        self.raft.trigger().snapshot().await.map_err(unavailable)?;
        self.raft
            .wait(Some(Duration::from_secs(60)))
            .metrics(|m| m.snapshot.is_some_and(|s| s.index >= upto), "snapshot built")
            .await
            .map_err(|e| ClusterError::new(503, "cluster_unavailable", e.to_string()))?;
        self.raft.trigger().purge_log(upto).await.map_err(unavailable)?;
        Ok(())
    }

    /// Adds a member: first as a learner that catches up, then as a voter. Leader only.
    pub async fn add_member(&self, id: NodeId, member: Member) -> Result<Status, ClusterError> {
        let current = self.raft.metrics().borrow().membership_config.clone();
        let already_voter = current.membership().voter_ids().any(|v| v == id);
        match current.membership().get_node(&id) {
            Some(existing) if *existing != member => {
                return Err(ClusterError::new(
                    409,
                    "member_exists",
                    format!(
                        "node id {id} is already a member at {}; remove it first",
                        existing.cluster_url
                    ),
                ));
            }
            _ => {}
        }
        if !already_voter {
            self.raft.add_learner(id, member, true).await.map_err(write_error)?;
            self.raft
                .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                .await
                .map_err(write_error)?;
        }
        Ok(self.status())
    }

    /// Removes a member (voter or learner). Leader only.
    pub async fn remove_member(&self, id: NodeId) -> Result<Status, ClusterError> {
        let current = self.raft.metrics().borrow().membership_config.clone();
        let is_voter = current.membership().voter_ids().any(|v| v == id);
        if current.membership().get_node(&id).is_none() {
            return Err(ClusterError::new(
                404,
                "member_not_found",
                format!("node id {id} is not a member"),
            ));
        }
        let change = if is_voter {
            if current.membership().voter_ids().count() == 1 {
                return Err(ClusterError::new(
                    409,
                    "last_voter",
                    "the last voter cannot be removed; the cluster would have no members",
                ));
            }
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        self.raft.change_membership(change, false).await.map_err(write_error)?;
        Ok(self.status())
    }

    /// What this node knows about the cluster right now.
    pub fn status(&self) -> Status {
        let metrics = self.raft.metrics();
        let m = metrics.borrow().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let last = m.last_log_index.unwrap_or(0);
        let members = membership
            .nodes()
            .map(|(id, node)| {
                let matched = if *id == self.id {
                    m.last_log_index
                } else {
                    m.replication
                        .as_ref()
                        .and_then(|r| r.get(id).cloned().flatten())
                        .map(|l| l.index)
                };
                MemberStatus {
                    id: *id,
                    cluster_url: node.cluster_url.clone(),
                    api_url: node.api_url.clone(),
                    voter: voters.contains(id),
                    matched_index: matched,
                    lag: if m.state == ServerState::Leader {
                        Some(last.saturating_sub(matched.unwrap_or(0)))
                    } else {
                        None
                    },
                }
            })
            .collect();
        Status {
            node_id: self.id,
            role: role_name(m.state).to_owned(),
            leader_id: m.current_leader,
            leader_api_url: m
                .current_leader
                .and_then(|l| membership.get_node(&l))
                .map(|n| n.api_url.clone()),
            term: m.current_term,
            last_log_index: m.last_log_index,
            committed_index: self.log.committed_index(),
            cluster_committed_index: if m.state == ServerState::Leader {
                self.log.committed_index()
            } else {
                Some(self.leader_commit.load(std::sync::atomic::Ordering::Relaxed))
                    .filter(|i| *i > 0)
                    .max(self.log.committed_index())
            },
            applied_index: m.last_applied.map(|l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            purged_index: m.purged.map(|l| l.index),
            log_entries: self.log.len(),
            millis_since_quorum_ack: m.millis_since_quorum_ack,
            initialized: membership.nodes().count() > 0,
            members,
        }
    }
}

fn role_name(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}

/// Turns a failed membership write into the cluster API's answer.
pub(crate) fn write_error(e: RaftError<NodeId, ClientWriteError<NodeId, Member>>) -> ClusterError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
            ClusterError::new(503, "not_leader", "this node stopped being the leader; try again")
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
            ClusterError::new(409, "membership_change_refused", c.to_string())
        }
        RaftError::Fatal(f) => ClusterError::new(503, "cluster_unavailable", f.to_string()),
    }
}

/// This node's view of the cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub node_id: NodeId,
    /// `leader`, `follower`, `candidate`, `learner` or `shutdown`.
    pub role: String,
    pub leader_id: Option<NodeId>,
    pub leader_api_url: Option<String>,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub committed_index: Option<u64>,
    /// The cluster's commit index as this member last heard it (its own on the leader);
    /// `applied_index` trailing it is this member's lag.
    pub cluster_committed_index: Option<u64>,
    pub applied_index: Option<u64>,
    pub snapshot_index: Option<u64>,
    pub purged_index: Option<u64>,
    /// Entries held in the log (after compaction).
    pub log_entries: u64,
    /// On the leader: how long since a quorum last acknowledged it.
    pub millis_since_quorum_ack: Option<u64>,
    /// False until `tenantry cluster init` (or a join) made this node part of a cluster.
    pub initialized: bool,
    pub members: Vec<MemberStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberStatus {
    pub id: NodeId,
    pub cluster_url: String,
    pub api_url: String,
    pub voter: bool,
    /// The last log index known to be on that member (the leader knows all of them).
    pub matched_index: Option<u64>,
    /// Entries the member is behind the leader's log (known on the leader only).
    pub lag: Option<u64>,
}
