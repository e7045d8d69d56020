//! A running Raft node: start-up, writes, linearizable read points, membership and status.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use arca_storage::proposal::{ApplyOutcome, Proposal};
use arca_storage::snapshot::SnapshotFiles;
use arca_storage::{LogStore as ByteLog, StateStore};
use openraft::errors::{ClientWriteError, LinearizableReadError, RaftError};
use openraft::{ChangeMembers, ReadPolicy, ServerState};
use serde::{Deserialize, Serialize};

use crate::log_store::LogStore;
use crate::network::{Channels, Network};
use crate::state_machine::StateMachine;
use crate::{Raft, RaftSettings, TypeConfig};

/// How long the leader waits for a membership change adding a node to commit before it answers
/// `UNAVAILABLE` (the joining node retries), in milliseconds.
pub const MEMBERSHIP_COMMIT_WAIT_MS: u64 = 10_000;

/// What the cluster knows about a node: where to reach its public API and its cluster listener, and
/// the region (failure domain) it runs in. Voters are all in the primary region; a node of any other
/// region is a learner, an asynchronous replica off the commit path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArcaNode {
    pub api_addr: String,
    pub cluster_addr: String,
    pub region: String,
}

/// Why a write or read point could not be had here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// This node is not the leader; the leader is named when known.
    #[error("this node is not the leader")]
    ForwardToLeader { leader_id: Option<u64>, leader: Option<ArcaNode> },
    /// No quorum, shutting down, or a leader change made the outcome unknown.
    #[error("{0}")]
    Unavailable(String),
}

/// One node's view of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub node_id: u64,
    pub node: ArcaNode,
    pub voter: bool,
    /// Highest index the leader knows is on this node (leader's view only).
    pub matched_index: Option<u64>,
}

/// A snapshot of the cluster as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterView {
    pub node_id: u64,
    pub leader_id: Option<u64>,
    pub term: u64,
    pub state: &'static str,
    pub last_log_index: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub nodes: Vec<NodeView>,
}

/// A started Raft node. Cheap to clone; every clone follows the node into a new lineage
/// ([`RaftNode::found_lineage`]).
#[derive(Clone)]
pub struct RaftNode {
    raft: Arc<std::sync::RwLock<Raft>>,
    pub node_id: u64,
    pub channels: Channels,
    removed: crate::state_machine::RemovedNodes,
    /// Where snapshots are built, received and kept.
    snapshots: SnapshotFiles,
    /// One snapshot received at a time.
    installs: Arc<tokio::sync::Semaphore>,
    /// What Raft runs over, to start it again in a new lineage.
    log: Arc<dyn ByteLog>,
    state: Arc<dyn StateStore>,
    settings: RaftSettings,
}

fn unavailable(e: impl std::fmt::Display) -> WriteError {
    WriteError::Unavailable(e.to_string())
}

impl RaftNode {
    /// Starts Raft over the given stores. Reads must wait for [`RaftNode::wait_recovered`].
    pub async fn start(
        node_id: u64,
        settings: &RaftSettings,
        log: Arc<dyn ByteLog>,
        state: Arc<dyn StateStore>,
        snapshots: SnapshotFiles,
        channels: Channels,
    ) -> Result<Self, String> {
        crate::log_store::check_format(&*log, &*state)?;
        let removed = crate::state_machine::RemovedNodes::default();
        let raft = Self::open(node_id, settings, &log, &state, &snapshots, &channels, &removed).await?;
        let installs = Arc::new(tokio::sync::Semaphore::new(arca_types::limits::SNAPSHOT_INSTALLS_IN_FLIGHT_MAX));
        Ok(Self {
            raft: Arc::new(std::sync::RwLock::new(raft)),
            node_id,
            channels,
            removed,
            snapshots,
            installs,
            log,
            state,
            settings: settings.clone(),
        })
    }

    async fn open(
        node_id: u64,
        settings: &RaftSettings,
        log: &Arc<dyn ByteLog>,
        state: &Arc<dyn StateStore>,
        snapshots: &SnapshotFiles,
        channels: &Channels,
        removed: &crate::state_machine::RemovedNodes,
    ) -> Result<Raft, String> {
        let config = settings.to_config()?;
        let machine = StateMachine::sharing_removed(state.clone(), snapshots.clone(), removed.clone());
        let log = log.clone();
        let log_store = if settings.sync_on_thread { LogStore::syncing_on_thread(log) } else { LogStore::new(log) };
        Raft::new(node_id, config, Network::new(channels.clone()), log_store, machine)
            .await
            .map_err(|e| format!("failed to start raft: {e}"))
    }

    /// openraft's handle of the lineage this node runs now.
    pub fn handle(&self) -> Raft {
        self.raft.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Founds a new lineage on this node, for a region taking over after the voters it replicated
    /// were lost (Raft cannot promote learners without a leader): stops Raft, writes after this
    /// node's log a membership of `voters` and `proposals` under a higher term ([`
    /// crate::log_store::found_lineage`]), and starts Raft again, standing for election. The
    /// members left out of `voters` are removed for good once that membership applies. Calls made
    /// meanwhile fail as `UNAVAILABLE`.
    pub async fn found_lineage(
        &self,
        voters: BTreeMap<u64, ArcaNode>,
        term_floor: u64,
        proposals: impl FnOnce(&crate::log_store::Fork) -> Vec<Proposal>,
    ) -> Result<crate::log_store::Founded, String> {
        let applied_index = self.applied_index();
        let old = self.handle();
        // Two openraft cores must never write one log: a core that did not stop ends the attempt.
        old.shutdown().await.map_err(|e| format!("failed to stop Raft before founding a lineage: {e}"))?;
        drop(old);
        let founded =
            crate::log_store::found_lineage(&*self.log, self.node_id, voters, term_floor, applied_index, proposals)
                .map_err(|e| format!("failed to write the new lineage: {e}"))?;
        let raft = Self::open(
            self.node_id,
            &self.settings,
            &self.log,
            &self.state,
            &self.snapshots,
            &self.channels,
            &self.removed,
        )
        .await?;
        *self.raft.write().unwrap_or_else(|p| p.into_inner()) = raft;
        tracing::info!(term = founded.term, first_index = founded.first_index, "founded a new lineage");
        Ok(founded)
    }

    /// Stops Raft on this node for good (a node its lineage displaced), then returns what its log
    /// holds that a lineage forked at `fork` lacks ([`crate::log_store::divergent_entries`]).
    pub async fn stop_and_diverge(
        &self,
        fork: &crate::log_store::Fork,
        entries_max: usize,
        bytes_max: usize,
    ) -> Result<(Vec<crate::log_store::HeldEntry>, u64), String> {
        let raft = self.handle();
        // Stopped already (an earlier attempt failed after it) is as good.
        if let Err(e) = raft.shutdown().await {
            tracing::warn!("stopping Raft for good: {e}");
        }
        drop(raft);
        crate::log_store::divergent_entries(&*self.log, fork, entries_max, bytes_max)
            .map_err(|e| format!("failed to read the Raft log: {e}"))
    }

    /// Waits until the state machine has applied at least what was committed before a restart.
    pub async fn wait_recovered(&self, timeout: Duration) -> Result<(), String> {
        self.handle().wait_for_recovery(Some(timeout)).await.map(|_| ()).map_err(|e| e.to_string())
    }

    /// Makes this node the single voter of a brand-new cluster. Harmless if already initialized.
    pub async fn bootstrap(&self, me: ArcaNode) -> Result<(), String> {
        if self.handle().is_initialized().await.map_err(|e| e.to_string())? {
            return Ok(());
        }
        let members: BTreeMap<u64, ArcaNode> = [(self.node_id, me)].into();
        self.handle().initialize(members).await.map_err(|e| e.to_string())
    }

    pub async fn is_initialized(&self) -> bool {
        self.handle().is_initialized().await.unwrap_or(false)
    }

    /// Whether this node has ever stored a membership (from the log or a snapshot). A node that only
    /// holds a vote, granted to a leader that was adding it when that leader lost office, has not.
    pub fn has_seen_membership(&self) -> bool {
        self.metrics().membership_config.membership().nodes().next().is_some()
    }

    /// Proposes `proposal` on this node, which must be the leader. Returns once it is committed on a
    /// quorum and applied here.
    pub async fn write(&self, proposal: Proposal) -> Result<(u64, ApplyOutcome), WriteError> {
        match self.handle().client_write(proposal).await {
            Ok(resp) => Ok((resp.log_id.index, resp.data)),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(WriteError::ForwardToLeader { leader_id: f.leader_id, leader: f.leader_node })
            }
            Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(_))) => Err(unavailable(
                "leadership changed while the write was in flight; its outcome is unknown, read before retrying",
            )),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// On the leader: confirms leadership with a quorum (ReadIndex) and returns the index a reader must
    /// have applied to observe every write acknowledged so far.
    pub async fn read_index(&self) -> Result<u64, WriteError> {
        match self.handle().ensure_linearizable(ReadPolicy::ReadIndex).await {
            Ok(read_log_id) => Ok(read_log_id.index()),
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f))) => {
                Err(WriteError::ForwardToLeader { leader_id: f.leader_id, leader: f.leader_node })
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Waits until this node has applied `index`.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<(), WriteError> {
        self.handle()
            .wait(Some(timeout))
            .applied_index_at_least(Some(index), "read index")
            .await
            .map(|_| ())
            .map_err(|e| unavailable(format!("this node did not catch up to the read index in time: {e}")))
    }

    /// The latest Raft metrics of this node.
    pub fn metrics(&self) -> openraft::RaftMetrics<TypeConfig> {
        use openraft::async_runtime::WatchReceiver;
        self.handle().metrics().borrow_watched().clone()
    }

    /// This node's current vote as (term, voted-for node, committed), for checks from outside openraft.
    pub fn current_vote(&self) -> (u64, u64, bool) {
        use openraft::vote::RaftLeaderId;
        let vote = self.metrics().vote;
        (vote.leader_id().term(), *vote.leader_id().node_id(), vote.is_committed())
    }

    /// On the leader: how long ago it sent the last heartbeat a quorum acknowledged, and its commit
    /// index; `None` until an entry of the leader's own term is committed. (A new leader's commit
    /// index can be behind entries its predecessor committed and acknowledged: it learns they are
    /// committed only when an entry of its own term commits after them, Raft §5.4.2 and §8. A
    /// quorum's acknowledgement of its heartbeats says it leads, not that its commit index is
    /// current.)
    pub fn last_quorum_ack(&self) -> Option<(Duration, u64)> {
        use openraft::Instant as _;
        let m = self.metrics();
        if m.current_leader != Some(self.node_id) {
            return None;
        }
        let acked = m.last_quorum_acked?.into_inner().elapsed();
        let commit = m.cluster_committed.or(m.local_committed)?;
        if commit.leader_id.term != m.current_term {
            return None;
        }
        Some((acked, commit.index))
    }

    /// The (term, index) of the last entry applied here; (0, 0) before any.
    pub fn applied_log_id(&self) -> (u64, u64) {
        self.metrics().last_applied.map_or((0, 0), |l| (l.leader_id.term, l.index))
    }

    /// The (term, index) of the last entry in this node's log (or of the purge point when the log is
    /// empty); (0, 0) before any.
    pub fn last_log_id(&self) -> Result<(u64, u64), String> {
        crate::log_store::last_log_id(&*self.log).map_err(|e| format!("failed to read the Raft log: {e}"))
    }

    pub fn applied_index(&self) -> u64 {
        self.metrics().last_applied.map_or(0, |l| l.index)
    }

    /// The current leader and its addresses, if known.
    pub fn leader(&self) -> Option<(u64, ArcaNode)> {
        let metrics = self.metrics();
        let id = metrics.current_leader?;
        let node = metrics.membership_config.membership().get_node(&id).cloned()?;
        Some((id, node))
    }

    pub fn is_leader(&self) -> bool {
        self.metrics().current_leader == Some(self.node_id)
    }

    /// Receives and installs a snapshot streamed by node `caller` (one at a time).
    pub async fn install_snapshot(
        &self,
        chunks: impl futures::Stream<Item = Result<arca_proto::cluster::v1::SnapshotChunk, tonic::Status>> + Unpin,
        caller: u64,
    ) -> Result<Vec<u8>, tonic::Status> {
        let _one = self
            .installs
            .try_acquire()
            .map_err(|_| tonic::Status::unavailable("this node is receiving another snapshot; retry"))?;
        crate::rpc::install_snapshot(&self.handle(), chunks, caller, &self.snapshots).await
    }

    /// Whether `node_id` left a membership this node applied (it is removed for good).
    pub fn is_removed(&self, node_id: u64) -> bool {
        self.removed.read().unwrap_or_else(|p| p.into_inner()).contains(&node_id)
    }

    /// The voters and learners of the latest membership this node holds (committed or not).
    pub fn member_ids(&self) -> BTreeSet<u64> {
        let metrics = self.metrics();
        metrics.membership_config.membership().nodes().map(|(id, _)| *id).collect()
    }

    /// On the leader: adds a node as a learner, waits until it has caught up, then (unless
    /// `as_learner`) promotes it to voter.
    pub async fn add_node(&self, node_id: u64, node: ArcaNode, as_learner: bool) -> Result<(), WriteError> {
        let membership_error = |e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>| match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
                WriteError::ForwardToLeader { leader_id: f.leader_id, leader: f.leader_node }
            }
            other => unavailable(other),
        };
        if !self.member_ids().contains(&node_id) {
            self.handle().add_learner(node_id, node, true).await.map_err(membership_error)?;
        }
        if !as_learner {
            let voters: BTreeSet<u64> = [node_id].into();
            self.handle()
                .change_membership(ChangeMembers::AddVoterIds(voters), true)
                .await
                .map_err(membership_error)?;
        }
        // openraft answers a change that finds the node already in its *effective* membership at once,
        // committed or not: a retry after an earlier attempt appended the change (and lost office before
        // it committed) would be told "added" for a change a later leader then truncates.
        self.wait_committed_member(node_id, !as_learner).await
    }

    /// Waits until this node's committed membership holds `node_id` (as a voter when `voter`).
    async fn wait_committed_member(&self, node_id: u64, voter: bool) -> Result<(), WriteError> {
        let holds = move |m: &openraft::RaftMetrics<TypeConfig>| {
            let membership = m.committed_membership_config.membership();
            if voter {
                membership.voter_ids().any(|v| v == node_id)
            } else {
                membership.get_node(&node_id).is_some()
            }
        };
        self.handle()
            .wait(Some(Duration::from_millis(MEMBERSHIP_COMMIT_WAIT_MS)))
            .metrics(holds, "the membership change to commit")
            .await
            .map(|_| ())
            .map_err(|e| unavailable(format!("the change adding node {node_id} has not committed yet ({e}); retry")))
    }

    /// On the leader: removes a node from the voters and learners.
    pub async fn remove_node(&self, node_id: u64) -> Result<(), WriteError> {
        let metrics = self.metrics();
        let membership = metrics.membership_config.membership().clone();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let result = if voters.contains(&node_id) {
            self.handle().change_membership(ChangeMembers::RemoveVoters([node_id].into()), false).await
        } else {
            self.handle().change_membership(ChangeMembers::RemoveNodes([node_id].into()), false).await
        };
        result.map(|_| ()).map_err(|e| match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
                WriteError::ForwardToLeader { leader_id: f.leader_id, leader: f.leader_node }
            }
            other => unavailable(other),
        })
    }

    /// What this node knows about the cluster.
    pub fn view(&self) -> ClusterView {
        let m = self.metrics();
        let membership = m.membership_config.membership().clone();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let nodes = membership
            .nodes()
            .map(|(id, node)| NodeView {
                node_id: *id,
                node: node.clone(),
                voter: voters.contains(id),
                matched_index: m.replication.as_ref().and_then(|r| r.get(id).cloned().flatten()).map(|l| l.index),
            })
            .collect();
        ClusterView {
            node_id: self.node_id,
            leader_id: m.current_leader,
            term: m.current_term,
            state: match m.state {
                ServerState::Leader => "leader",
                ServerState::Follower => "follower",
                ServerState::Learner => "learner",
                ServerState::Candidate => "candidate",
                ServerState::Shutdown => "shutdown",
            },
            last_log_index: m.last_log_index.unwrap_or(0),
            commit_index: m.cluster_committed.or(m.local_committed).map_or(0, |l| l.index),
            applied_index: m.last_applied.map_or(0, |l| l.index),
            nodes,
        }
    }

    pub async fn shutdown(&self) {
        if let Err(e) = self.handle().shutdown().await {
            tracing::warn!("failed to shut raft down cleanly: {e}");
        }
    }
}
