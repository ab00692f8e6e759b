//! Tenantry's cluster mode: the control plane replicated with embedded Raft (openraft).
//!
//! Every node keeps the whole control plane under its own FS_ROOT. Writes become Raft log
//! entries ([`writer::ClusterWriter`]) that each node applies with the same deterministic
//! `apply` a standalone node uses ([`state_machine`]); the log and vote live in redb
//! ([`log_store`]), snapshots are the packed tree ([`tree`]). Members talk over their own
//! listener ([`rpc`], [`network`]), authenticated by a shared secret and, when certificates
//! are configured, mutual TLS ([`tls`]). Tenant data is not
//! here: in cluster mode it lives in database servers every node shares.
//!
//! All openraft code stays in this crate, so a later openraft upgrade stays contained.

pub mod log_store;
pub mod network;
pub mod node;
pub mod rpc;
pub mod state_machine;
mod telemetry;
pub mod tls;
pub mod tree;
pub mod types;
pub mod writer;

pub use node::{Cluster, ClusterError, MemberStatus, RAFT_DIR, Settings, Status, fs_root_is_clustered, recover};
pub use tls::MutualTls;
pub use writer::ClusterWriter;
