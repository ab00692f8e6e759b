//! The cluster's [`Writer`]: every control-plane write becomes a Raft entry.
//!
//! On the leader a command is proposed directly. On a follower it is sent to the leader,
//! which proposes it and answers the entry's index; the follower then waits until its own
//! state machine has applied that index, so the caller reads its write back from this node
//! at once, and takes the verdict its own apply reached (apply is deterministic, so every
//! node refuses a command the same way). A write whose fate cannot be known — the leader
//! changed while it was in flight — is reported as such and never retried blindly: a
//! retry could apply it twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use serde::{Deserialize, Serialize};
use tenantry_controlplane::{Command, Snapshot, WriteError, Writer};

use crate::node::Cluster;
use crate::state_machine::Outcome;

/// How long a write may wait for a leader to be known.
const LEADER_WAIT: Duration = Duration::from_secs(3);
/// How long a proposal may wait to be committed. A leader cut off from its quorum keeps
/// its entry uncommitted; the caller hears "unknown" rather than waiting for the partition
/// to heal (the entry is discarded by the next leader or committed after the heal).
const COMMIT_WAIT: Duration = Duration::from_secs(5);
/// How long a follower waits for its own apply of an entry the leader committed.
const APPLY_WAIT: Duration = Duration::from_secs(10);
pub const WRITE_PATH: &str = "/cluster/write";
pub const READ_INDEX_PATH: &str = "/cluster/read-index";
/// How long a follower waits to catch up before it validates a write anyway.
const CATCH_UP_WAIT: Duration = Duration::from_secs(3);

/// The leader's answer to a read-index request.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReadIndex {
    pub index: u64,
}

/// What the leader answers a forwarded write.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ForwardReply {
    /// Committed at `index`; `refused` tells whether applying it refused the command.
    Committed {
        index: u64,
        refused: Option<String>,
    },
    /// The receiver is not the leader (any more).
    NotLeader,
    /// Proposed, but its fate is unknown (the leader changed while it was in flight).
    Unknown {
        message: String,
    },
    Failed {
        message: String,
    },
}

#[derive(Clone, Debug)]
pub struct ClusterWriter {
    cluster: Arc<Cluster>,
}

impl ClusterWriter {
    pub fn new(cluster: Arc<Cluster>) -> Self {
        Self { cluster }
    }
}

fn ambiguous() -> WriteError {
    WriteError::Storage(
        "the leader changed while the write was in flight; it may or may not have been applied — read it back before retrying"
            .to_owned(),
    )
}

impl Cluster {
    /// Proposes `cmd` on this node, which must be the leader. Used by the leader itself and
    /// by the handler of forwarded writes.
    pub(crate) async fn propose(&self, cmd: Command) -> ForwardReply {
        metrics::counter!("cluster_proposals_total").increment(1);
        let Ok(written) = tokio::time::timeout(COMMIT_WAIT, self.raft.client_write(cmd)).await else {
            return ForwardReply::Unknown {
                message: "no quorum acknowledged the write in time".to_owned(),
            };
        };
        match written {
            Ok(response) => ForwardReply::Committed {
                index: response.log_id.index,
                refused: response.data.rejected,
            },
            // Callers check leadership just before proposing, so this is almost always a
            // leader that stepped down with the entry in flight: it may still commit.
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => ForwardReply::Unknown {
                message: "leadership changed during the write".to_owned(),
            },
            Err(e) => ForwardReply::Failed { message: e.to_string() },
        }
    }

    /// The leader's committed index, confirmed by a quorum (the read index), on the leader.
    pub(crate) async fn read_index(&self) -> Option<u64> {
        match self.raft.ensure_linearizable().await {
            Ok(log_id) => Some(log_id.map(|l| l.index).unwrap_or(0)),
            Err(_) => None,
        }
    }

    /// See [`Writer::catch_up`]: on a follower, waits (up to [`CATCH_UP_WAIT`]) until this
    /// node has applied what the leader had committed when asked.
    pub async fn catch_up(&self) {
        let index = match self.leader() {
            Some((id, _)) if id == self.id => return,
            Some((_, leader)) => {
                let answer = self
                    .client
                    .post(&leader.cluster_url, READ_INDEX_PATH, &())
                    .timeout(CATCH_UP_WAIT)
                    .send()
                    .await;
                match answer {
                    Ok(response) if response.status().is_success() => match response.json::<ReadIndex>().await {
                        Ok(read) => read.index,
                        Err(_) => return,
                    },
                    _ => return,
                }
            }
            None => return,
        };
        let _ = self
            .raft
            .wait(Some(CATCH_UP_WAIT))
            .applied_index_at_least(Some(index), "catch up with the leader")
            .await;
    }

    /// Waits until this node has applied `index`, then answers the write with this node's
    /// own verdict (or the leader's, when the entry arrived here inside a snapshot).
    async fn settle(&self, index: u64, refused_on_leader: Option<String>) -> Result<Arc<Snapshot>, WriteError> {
        self.raft
            .wait(Some(APPLY_WAIT))
            .applied_index_at_least(Some(index), "apply a committed write")
            .await
            .map_err(|_| {
                WriteError::Storage(
                    "the write was committed but this node has not applied it yet; read it back shortly".to_owned(),
                )
            })?;
        match self.outcomes.get(index) {
            Outcome::Done(Ok(())) => Ok(self.control_plane.snapshot()),
            Outcome::Done(Err(rejection)) => Err(WriteError::Rejected(rejection)),
            Outcome::Unknown => match refused_on_leader {
                None => Ok(self.control_plane.snapshot()),
                Some(message) => Err(WriteError::Storage(format!("the leader refused the change: {message}"))),
            },
        }
    }
}

#[async_trait::async_trait]
impl Writer for ClusterWriter {
    async fn write(&self, cmd: Command) -> Result<Arc<Snapshot>, WriteError> {
        let cluster = &self.cluster;
        let deadline = Instant::now() + LEADER_WAIT;
        loop {
            let reply = match cluster.leader() {
                Some((id, _)) if id == cluster.id => cluster.propose(cmd.clone()).await,
                Some((_, leader)) => match cluster.client.post(&leader.cluster_url, WRITE_PATH, &cmd).send().await {
                    Ok(response) if response.status().is_success() => match response.json::<ForwardReply>().await {
                        Ok(reply) => reply,
                        Err(_) => return Err(ambiguous()),
                    },
                    // The leader's listener answered without taking the write.
                    Ok(_) => ForwardReply::NotLeader,
                    // Never reached the leader: nothing was proposed.
                    Err(e) if e.is_connect() => ForwardReply::NotLeader,
                    Err(_) => return Err(ambiguous()),
                },
                None => ForwardReply::NotLeader,
            };
            match reply {
                ForwardReply::Committed { index, refused } => return cluster.settle(index, refused).await,
                ForwardReply::Unknown { .. } => return Err(ambiguous()),
                ForwardReply::Failed { message } => return Err(WriteError::Storage(message)),
                ForwardReply::NotLeader => {
                    if Instant::now() >= deadline {
                        return Err(WriteError::NoLeader);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn is_leader(&self) -> bool {
        self.cluster.is_leader()
    }

    fn accepts_writes(&self) -> bool {
        self.cluster.has_leader()
    }

    async fn catch_up(&self) {
        self.cluster.catch_up().await;
    }
}
