//! The Raft type configuration: what a log entry carries, what a member is.

use std::io::Cursor;

use serde::{Deserialize, Serialize};
use tenantry_controlplane::Command;

/// A member's id, chosen by the operator (`cluster.node_id`), unique in the cluster.
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// Tenantry's Raft: log entries are control-plane [`Command`]s.
    pub TypeConfig:
        D = Command,
        R = Applied,
        NodeId = NodeId,
        Node = Member,
);

/// How other nodes reach a member: its cluster listener (Raft and cluster calls) and its
/// public API (where a follower may redirect an admin write).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub cluster_url: String,
    pub api_url: String,
}

/// What applying one entry answered, as returned to the proposer. A refused command is
/// not an error of the log: every node refuses it the same way and writes nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The refusal's message, when the command was refused.
    pub rejected: Option<String>,
}

pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, Member>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Member>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
