//! The engine of one node: the write path (decide on the leader, propose, retry on conflict, forward
//! from followers) and the read path (ReadIndex or bounded staleness, then a local read).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use arca_core::{decide, Command, Outcome};
use arca_crypto::Scope;
use arca_proto::cluster::v1::{AddNodeRequest, RaftPayload, ReadIndexRequest, RemoveNodeRequest};
use arca_raft::{ApplyOutcome, ArcaNode, Proposal, RaftNode, WriteError};
use arca_storage::StateStore;
use arca_types::faults::{self, Fault};
use arca_types::{ArcaError, ErrorCode};
use serde::{Deserialize, Serialize};

use crate::keyspace::{self, Keyspace, NODE_SEQ_KEY};
use crate::seal::SealManager;

/// Attempts to find a leader and get a write through before giving up with `Unavailable`.
pub const WRITE_ATTEMPTS_MAX: u32 = 40;
/// Pause between attempts while there is no leader, in milliseconds.
pub const LEADER_WAIT_MS: u64 = 150;
/// Times a decision is retried after its preconditions failed.
pub const CONFLICT_RETRIES_MAX: u32 = 16;
/// Deadline of a forwarded request and of a follower waiting to apply a read index.
pub const FORWARD_TIMEOUT_MS: u64 = 10_000;
/// Largest staleness a bounded-staleness read may ask for.
pub const MAX_STALENESS_MS: u64 = 60_000;

const FORWARD_COMMAND_AAD: &[u8] = b"arca/forward/command";
const FORWARD_OUTCOME_AAD: &[u8] = b"arca/forward/outcome";

/// Wall-clock time, injected so the simulation can replace it.
pub trait Clock: Send + Sync {
    fn now_unix(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
    }
}

/// The system clock shifted by a number of seconds read from a file on every call, so tests can move
/// a running node's replicated time forward by days (retention, automatic purge). Never for production:
/// whoever can write the file controls time.
pub struct DangerOffsetClock {
    pub offset_file: std::path::PathBuf,
}

impl Clock for DangerOffsetClock {
    fn now_unix(&self) -> i64 {
        let offset =
            std::fs::read_to_string(&self.offset_file).ok().and_then(|s| s.trim().parse::<i64>().ok()).unwrap_or(0);
        SystemClock.now_unix().saturating_add(offset)
    }
}

/// What a follower sends the leader on the cluster listener.
#[derive(Serialize, Deserialize)]
pub enum ForwardRequest {
    /// A client command, sealed under the barrier.
    Command(Vec<u8>),
    /// A physical proposal (already ciphertext), for system writes decided elsewhere.
    Proposal(Proposal),
}

#[derive(Serialize, Deserialize)]
pub enum ForwardResponse {
    /// `Result<Outcome, ArcaError>`, sealed under the barrier.
    Command(Vec<u8>),
    Proposal(Result<(u64, ApplyOutcome), ArcaError>),
}

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    Linearizable,
    BoundedStaleness(Duration),
}

pub struct Engine {
    pub node_id: OnceLock<u64>,
    raft: OnceLock<RaftNode>,
    pub store: Arc<dyn StateStore>,
    pub seal: Arc<SealManager>,
    pub clock: Arc<dyn Clock>,
    last_leader_contact: Mutex<Option<Instant>>,
    /// The DNS suffix used to build Azure-shaped object ids: `https://{vault}.{suffix}/...`.
    pub vault_suffix: String,
    /// Parsed customer keys for the crypto service.
    pub key_cache: crate::key_use::KeyCache,
}

fn from_write_error(e: WriteError) -> ArcaError {
    match e {
        WriteError::ForwardToLeader { .. } => ArcaError::unavailable("leadership moved; retry"),
        WriteError::Unavailable(m) => ArcaError::unavailable(m),
    }
}

/// A proposal that failed after it was handed to Raft may still commit: its outcome is unknown, and
/// it must not be decided and proposed a second time.
fn from_proposal_error(e: WriteError) -> ArcaError {
    match e {
        WriteError::ForwardToLeader { .. } => ArcaError::unavailable("leadership moved; retry"),
        WriteError::Unavailable(m) => ArcaError::new(
            ErrorCode::OutcomeUnknown,
            format!("the write may or may not have taken effect ({m}); read the object before retrying"),
        ),
    }
}

/// A forwarded request that failed in flight: if it reached the leader, the leader may have applied it.
fn rpc_unavailable(status: tonic::Status) -> ArcaError {
    match status.code() {
        // Refused before it was sent (no connection): nothing happened.
        tonic::Code::Unavailable
            if ["connect error", "trying to connect", "Connection refused"]
                .iter()
                .any(|m| status.message().contains(m)) =>
        {
            ArcaError::unavailable(format!("the leader could not be reached: {}", status.message()))
        }
        _ => ArcaError::new(
            ErrorCode::OutcomeUnknown,
            format!(
                "the leader stopped answering while the write was in flight ({}); read the object before retrying",
                status.message()
            ),
        ),
    }
}

/// `Unavailable` means "try again": the leader moved or is catching up.
fn retry_if_unavailable<T>(result: Result<T, ArcaError>) -> Result<Option<T>, ArcaError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.code == ErrorCode::Unavailable => Ok(None),
        Err(e) => Err(e),
    }
}

/// A local Raft call that found this node no longer leads is retried through the new leader.
fn retry_if_moved<T>(result: Result<T, WriteError>) -> Result<Option<T>, ArcaError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(WriteError::ForwardToLeader { .. }) => Ok(None),
        Err(e) => Err(from_write_error(e)),
    }
}

/// A remote call the leader could not take right now is retried; other refusals are final.
fn retry_if_unreachable<T>(result: Result<T, tonic::Status>) -> Result<Option<T>, ArcaError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(s) if s.code() == tonic::Code::Unavailable => Ok(None),
        Err(s) => Err(ArcaError::unavailable(s.message().to_owned())),
    }
}

impl Engine {
    pub fn new(
        store: Arc<dyn StateStore>,
        seal: Arc<SealManager>,
        clock: Arc<dyn Clock>,
        vault_suffix: String,
    ) -> Self {
        Self {
            node_id: OnceLock::new(),
            raft: OnceLock::new(),
            store,
            seal,
            clock,
            last_leader_contact: Mutex::new(None),
            vault_suffix,
            key_cache: crate::key_use::KeyCache::default(),
        }
    }

    pub fn set_raft(&self, raft: RaftNode) {
        let _ = self.node_id.set(raft.node_id);
        let _ = self.raft.set(raft);
    }

    pub fn raft(&self) -> Result<&RaftNode, ArcaError> {
        self.raft.get().ok_or_else(|| {
            ArcaError::unavailable("this node has not joined a cluster yet; run `arca cluster join` against it")
        })
    }

    pub fn has_raft(&self) -> bool {
        self.raft.get().is_some()
    }

    /// Called when a leader's AppendEntries succeeded here, for bounded-staleness reads.
    pub fn note_leader_contact(&self) {
        *self.last_leader_contact.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    /// Runs `local` if this node leads, else `remote` with the leader's addresses, until one of them
    /// gives an answer. Either returns `Ok(None)` to ask for another try (no leader yet, or leadership
    /// moved); `what` completes the sentence "no leader could …" of the final error.
    async fn on_leader<T, L, LF, R, RF>(&self, what: &str, local: L, remote: R) -> Result<T, ArcaError>
    where
        L: Fn() -> LF,
        LF: std::future::Future<Output = Result<Option<T>, ArcaError>>,
        R: Fn(ArcaNode) -> RF,
        RF: std::future::Future<Output = Result<Option<T>, ArcaError>>,
    {
        let raft = self.raft()?;
        for _ in 0..WRITE_ATTEMPTS_MAX {
            let answer = match raft.leader() {
                Some((id, _)) if id == raft.node_id => local().await?,
                Some((_, leader)) => remote(leader).await?,
                None => None,
            };
            if let Some(answer) = answer {
                return Ok(answer);
            }
            tokio::time::sleep(Duration::from_millis(LEADER_WAIT_MS)).await;
        }
        Err(ArcaError::unavailable(format!("no leader could {what}; check `arca cluster status` and retry")))
    }

    /// Runs a client command: on the leader if this is it, otherwise forwarded to the leader.
    pub async fn execute(&self, command: &Command) -> Result<Outcome, ArcaError> {
        let keyspace = &self.seal.keyspace()?;
        self.on_leader(
            "take the write",
            move || async move { retry_if_unavailable(self.execute_on_leader(keyspace, command).await) },
            move |leader| async move { retry_if_unavailable(self.forward_command(keyspace, &leader, command).await) },
        )
        .await
    }

    /// Decides and proposes on this node, which must be the leader.
    pub async fn execute_on_leader(&self, keyspace: &Keyspace, command: &Command) -> Result<Outcome, ArcaError> {
        let raft = self.raft()?;
        let mut confirmed = false;
        for _ in 0..CONFLICT_RETRIES_MAX {
            let now = self.clock.now_unix();
            let view = keyspace.recording_view();
            let decision = match decide(&view, command, now) {
                Ok(d) => d,
                Err(e) if !confirmed && e.code != ErrorCode::Internal => {
                    // A refusal must not come from a stale replica: catch up to the read index and
                    // decide once more before reporting it.
                    confirmed = true;
                    let index = raft.read_index().await.map_err(from_write_error)?;
                    raft.wait_applied(index, Duration::from_millis(FORWARD_TIMEOUT_MS))
                        .await
                        .map_err(from_write_error)?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let proposal = keyspace.proposal(view, &decision.mutations);
            if faults::active(Fault::AckBeforeCommit) {
                // Deliberate bug (danger-faults builds only): answer before the quorum has the write.
                let raft = raft.clone();
                tokio::spawn(async move { raft.write(proposal).await });
                return Ok(decision.outcome);
            }
            match raft.write(proposal).await.map_err(from_proposal_error)? {
                (_, ApplyOutcome::Applied) => return Ok(decision.outcome),
                (index, ApplyOutcome::Conflict) => {
                    raft.wait_applied(index, Duration::from_millis(FORWARD_TIMEOUT_MS))
                        .await
                        .map_err(from_write_error)?;
                }
            }
        }
        Err(ArcaError::unavailable("the object is changing too often to update it now; retry"))
    }

    async fn forward_command(
        &self,
        keyspace: &Keyspace,
        leader: &ArcaNode,
        command: &Command,
    ) -> Result<Outcome, ArcaError> {
        let barrier = keyspace.barrier();
        let plain = zeroize::Zeroizing::new(postcard::to_allocvec(command).expect("commands encode"));
        let request = ForwardRequest::Command(barrier.seal(Scope::System, FORWARD_COMMAND_AAD, &plain));
        let response = self.forward(leader, request).await?;
        let ForwardResponse::Command(sealed) = response else {
            return Err(ArcaError::internal("the leader answered a command with another kind of response"));
        };
        let plain = barrier
            .open(Scope::System, FORWARD_OUTCOME_AAD, &sealed)
            .map_err(|_| ArcaError::unavailable("the leader's answer did not open; the keyrings may differ, retry"))?;
        postcard::from_bytes::<Result<Outcome, ArcaError>>(&plain)
            .map_err(|e| ArcaError::internal(format!("the leader's answer does not decode: {e}")))?
    }

    async fn forward(&self, leader: &ArcaNode, request: ForwardRequest) -> Result<ForwardResponse, ArcaError> {
        let raft = self.raft()?;
        let mut client = raft.channels.client(&leader.cluster_addr).map_err(ArcaError::unavailable)?;
        let payload = RaftPayload { data: postcard::to_allocvec(&request).expect("forward requests encode") };
        let mut req = tonic::Request::new(payload);
        req.set_timeout(Duration::from_millis(FORWARD_TIMEOUT_MS));
        let response = client.forward(req).await.map_err(rpc_unavailable)?;
        postcard::from_bytes(&response.into_inner().data)
            .map_err(|e| ArcaError::internal(format!("the leader's answer does not decode: {e}")))
    }

    /// The leader's side of a forwarded request.
    pub async fn handle_forward(&self, data: &[u8]) -> Result<Vec<u8>, ArcaError> {
        let request: ForwardRequest = postcard::from_bytes(data)
            .map_err(|_| ArcaError::bad_parameter("payload", "forwarded request does not decode"))?;
        let raft = self.raft()?;
        if !raft.is_leader() {
            return Err(ArcaError::unavailable("this node is no longer the leader; retry"));
        }
        let response = match request {
            ForwardRequest::Proposal(proposal) => {
                ForwardResponse::Proposal(raft.write(proposal).await.map_err(from_write_error))
            }
            ForwardRequest::Command(sealed) => {
                let keyspace = self
                    .seal
                    .keyspace()
                    .map_err(|_| ArcaError::unavailable("the leader is sealed and cannot decide writes; unseal it"))?;
                let barrier = keyspace.barrier().clone();
                let plain = barrier
                    .open(Scope::System, FORWARD_COMMAND_AAD, &sealed)
                    .map_err(|_| ArcaError::bad_parameter("payload", "forwarded command did not open"))?;
                let command: Command = postcard::from_bytes(&plain)
                    .map_err(|_| ArcaError::bad_parameter("payload", "forwarded command does not decode"))?;
                let result = self.execute_on_leader(&keyspace, &command).await;
                let plain = zeroize::Zeroizing::new(postcard::to_allocvec(&result).expect("outcomes encode"));
                ForwardResponse::Command(barrier.seal(Scope::System, FORWARD_OUTCOME_AAD, &plain))
            }
        };
        Ok(postcard::to_allocvec(&response).expect("forward responses encode"))
    }

    /// Proposes a physical proposal through the leader (for init, rotation, node ids).
    pub async fn propose(&self, proposal: Proposal) -> Result<(u64, ApplyOutcome), ArcaError> {
        let raft = self.raft()?;
        let proposal = &proposal;
        self.on_leader(
            "take the write",
            move || async move { retry_if_moved(raft.write(proposal.clone()).await) },
            move |leader| async move {
                match self.forward(&leader, ForwardRequest::Proposal(proposal.clone())).await? {
                    ForwardResponse::Proposal(result) => retry_if_unavailable(result),
                    ForwardResponse::Command(_) => Err(ArcaError::internal("unexpected forward response")),
                }
            },
        )
        .await
    }

    /// Waits until a read at `consistency` may be served from this node's replica.
    pub async fn read_barrier(&self, consistency: Consistency) -> Result<(), ArcaError> {
        let raft = self.raft()?;
        if faults::active(Fault::ReadWithoutReadIndex) {
            // Deliberate bug (danger-faults builds only): trust the local replica.
            return Ok(());
        }
        if let Consistency::BoundedStaleness(max) = consistency {
            if raft.is_leader() {
                return Ok(());
            }
            let contact = *self.last_leader_contact.lock().unwrap_or_else(|p| p.into_inner());
            if contact.is_some_and(|at| at.elapsed() <= max) {
                return Ok(());
            }
        }
        let index = self.read_index().await?;
        raft.wait_applied(index, Duration::from_millis(FORWARD_TIMEOUT_MS)).await.map_err(from_write_error)
    }

    /// The read index, from this node if it leads, else from the leader.
    pub async fn read_index(&self) -> Result<u64, ArcaError> {
        let raft = self.raft()?;
        self.on_leader(
            "confirm a read index",
            move || async move { retry_if_moved(raft.read_index().await) },
            move |leader| async move {
                let mut client = raft.channels.client(&leader.cluster_addr).map_err(ArcaError::unavailable)?;
                let mut req = tonic::Request::new(ReadIndexRequest {});
                req.set_timeout(Duration::from_millis(FORWARD_TIMEOUT_MS));
                retry_if_unreachable(client.read_index(req).await.map(|r| r.into_inner().index))
            },
        )
        .await
    }

    /// On the leader: allocates a node id that has never been used.
    pub async fn allocate_node_id(&self) -> Result<u64, ArcaError> {
        let raft = self.raft()?;
        for _ in 0..CONFLICT_RETRIES_MAX {
            let current = keyspace::read_plain::<u64>(&*self.store, NODE_SEQ_KEY)?;
            let highest_member = raft.member_ids().into_iter().max().unwrap_or(0);
            let next = current.map_or(0, |(_, v)| v).max(highest_member) + 1;
            let proposal = Proposal {
                preconditions: vec![arca_storage::proposal::Precondition {
                    key: NODE_SEQ_KEY.to_vec(),
                    modified_at: current.map(|(at, _)| at),
                }],
                ops: vec![arca_storage::Op::Put {
                    key: NODE_SEQ_KEY.to_vec(),
                    value: postcard::to_allocvec(&next).expect("u64 encodes"),
                }],
            };
            match self.propose(proposal).await? {
                (_, ApplyOutcome::Applied) => return Ok(next),
                (index, ApplyOutcome::Conflict) => {
                    raft.wait_applied(index, Duration::from_millis(FORWARD_TIMEOUT_MS))
                        .await
                        .map_err(from_write_error)?;
                }
            }
        }
        Err(ArcaError::unavailable("could not allocate a node id; retry"))
    }

    /// Adds a node (allocating its id first when `phase` is 0), from any member.
    pub async fn add_node(&self, request: AddNodeRequest) -> Result<u64, ArcaError> {
        let raft = self.raft()?;
        let request = &request;
        self.on_leader(
            "add the node",
            move || async move {
                if request.phase == 0 {
                    return self.allocate_node_id().await.map(Some);
                }
                let node = ArcaNode { api_addr: request.api_addr.clone(), cluster_addr: request.cluster_addr.clone() };
                retry_if_moved(raft.add_node(request.node_id, node, request.as_learner).await.map(|()| request.node_id))
            },
            move |leader| async move {
                let mut client = raft.channels.client(&leader.cluster_addr).map_err(ArcaError::unavailable)?;
                let mut req = tonic::Request::new(request.clone());
                req.set_timeout(Duration::from_secs(120));
                retry_if_unreachable(client.add_node(req).await.map(|r| r.into_inner().node_id))
            },
        )
        .await
    }

    /// Removes a node from the membership, from any member.
    pub async fn remove_node(&self, node_id: u64) -> Result<(), ArcaError> {
        let raft = self.raft()?;
        self.on_leader(
            "remove the node",
            move || async move { retry_if_moved(raft.remove_node(node_id).await) },
            move |leader| async move {
                let mut client = raft.channels.client(&leader.cluster_addr).map_err(ArcaError::unavailable)?;
                let mut req = tonic::Request::new(RemoveNodeRequest { node_id });
                req.set_timeout(Duration::from_millis(FORWARD_TIMEOUT_MS));
                retry_if_unreachable(client.remove_node(req).await.map(|_| ()))
            },
        )
        .await
    }

    /// One sweep on the leader: purge every soft-deleted object whose retention has ended.
    pub async fn sweep_purges(&self) -> Result<usize, ArcaError> {
        let raft = self.raft()?;
        if !raft.is_leader() {
            return Ok(0);
        }
        let keyspace = self.seal.keyspace()?;
        let due = keyspace.due_purges(self.clock.now_unix(), 100)?;
        let count = due.len();
        for (at, target) in due {
            self.execute_on_leader(&keyspace, &Command::PurgeDue { target, scheduled_purge_at: at }).await?;
        }
        Ok(count)
    }
}
