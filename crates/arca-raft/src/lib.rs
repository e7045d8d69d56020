//! Arca's glue to openraft: the type configuration, storage adapters over `arca-storage`, the tonic
//! network client, handlers for incoming Raft RPCs, and membership and read-index helpers.
//!
//! **Architecture Invariant:** no other crate names an openraft type. Openraft's alphas break APIs between
//! releases; keeping every use here means an upgrade touches one crate.
//!
//! **Architecture Invariant:** the transport is behind [`network::ChannelFactory`]. Production dials
//! real TLS sockets; the simulation supplies a factory over its own network.
#![forbid(unsafe_code)]

pub mod codec;
pub mod log_store;
pub mod network;
pub mod node;
pub mod rpc;
pub mod runtime;
pub mod state_machine;
pub mod wire;

use std::sync::Arc;

pub use arca_storage::proposal::{ApplyOutcome, Proposal};
pub use node::{ArcaNode, ClusterView, NodeView, RaftNode, WriteError};

openraft::declare_raft_types!(
    /// Arca's Raft type configuration: entries carry encrypted [`Proposal`]s, and leader ids are the
    /// Raft paper's (one leader per term; a log id is its term and index).
    pub TypeConfig:
        D = Proposal,
        R = ApplyOutcome,
        NodeId = u64,
        Node = ArcaNode,
        AsyncRuntime = runtime::ArcaRuntime,
        LeaderId = openraft::impls::leader_id_std::LeaderId<Self::Term, Self::NodeId>,
);

/// The format of what Raft stores (log entries, votes, log ids in the applied metadata and snapshots),
/// recorded in the log's metadata when a node first starts Raft. Data written in another format is
/// refused, never read: log ids of one format decode as wrong values in another.
pub const STORAGE_FORMAT: &str = "arca-raft-3 (leader_id_std, node regions)";

/// The openraft handle for Arca's state machine.
pub type Raft = openraft::Raft<TypeConfig, state_machine::StateMachine>;

/// Timing and retention settings for one node.
#[derive(Debug, Clone)]
pub struct RaftSettings {
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Build a snapshot once this many entries were applied since the last one.
    pub snapshot_every_entries: u64,
    /// Entries kept after a snapshot so slightly lagging followers need no snapshot.
    pub keep_after_snapshot_entries: u64,
    /// Shown in openraft's traces: `arca-<cluster id>` once the node knows its cluster.
    pub cluster_name: String,
    /// Appended entries are written at once and synced by a dedicated thread, one fsync for every
    /// append made meanwhile (group commit), so Raft replicates while the disk syncs. Off: each append
    /// is synced before it returns (the simulation, which runs every node on one thread).
    pub sync_on_thread: bool,
}

impl Default for RaftSettings {
    fn default() -> Self {
        Self {
            heartbeat_interval_ms: 100,
            election_timeout_min_ms: 500,
            election_timeout_max_ms: 1000,
            snapshot_every_entries: 2000,
            keep_after_snapshot_entries: 1000,
            cluster_name: "arca".to_owned(),
            sync_on_thread: true,
        }
    }
}

impl RaftSettings {
    pub(crate) fn to_config(&self) -> Result<Arc<openraft::Config>, String> {
        let config = openraft::Config {
            cluster_name: self.cluster_name.clone(),
            heartbeat_interval: self.heartbeat_interval_ms,
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            install_snapshot_timeout: 60_000,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every_entries),
            max_in_snapshot_log_to_keep: self.keep_after_snapshot_entries,
            ..Default::default()
        };
        config.validate().map(Arc::new).map_err(|e| e.to_string())
    }
}
