//! The engine of one node: the write path (decide on the leader, propose, retry on conflict, forward
//! from followers) and the read path (ReadIndex or bounded staleness, then a local read).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use arca_core::{decide, Command, Outcome};
use arca_crypto::{Barrier, Scope};
use arca_proto::cluster::v1::{RaftPayload, ReadIndexRequest};
use arca_raft::{ApplyOutcome, ArcaNode, Proposal, RaftNode, WriteError};
use arca_storage::StateStore;
use arca_types::faults::{self, Fault};
use arca_types::{ArcaError, ErrorCode};
use serde::{Deserialize, Serialize};

use arca_transport::credentials::NodeCredentials;
use arca_types::limits::{
    FORWARD_ENVELOPE_AGE_S_MAX, FORWARD_REPLAY_ENTRIES_MAX, REQUEST_ID_WINDOW_S, SET_BATCH_BYTES_MAX, SET_BATCH_MAX,
};

use crate::keyspace::{ClientRequest, JoinTokenRecord, Keyspace, RequestRecord};
use crate::object_queue::{Entry, Offered};
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

const FORWARD_REQUEST_AAD: &[u8] = b"arca/forward/v1/request";
const FORWARD_OUTCOME_AAD: &[u8] = b"arca/forward/v1/outcome";

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

/// A request a member sends the leader over the cluster listener. Only `sealed` is secret; the other
/// fields bind it: the associated data of the sealed request, and of the sealed answer, names the
/// cluster, both nodes, the request id and the send time, so an envelope opens only on the node it was
/// sealed for, as the request it was, and the leader checks that the node whose certificate carried it
/// is the sender it names.
#[derive(Serialize, Deserialize)]
pub struct Envelope {
    pub sender: u64,
    pub receiver: u64,
    pub request_id: [u8; 16],
    pub sent_at: i64,
    pub sealed: Vec<u8>,
}

impl Envelope {
    /// Reads an envelope as a member sent it (the leader's side of `Forward`).
    pub fn decode(data: &[u8]) -> Result<Self, ArcaError> {
        postcard::from_bytes(data)
            .map_err(|_| ArcaError::bad_parameter("payload", "the forwarded request does not decode"))
    }

    fn binding(&self, what: &[u8], cluster_id: &[u8; 16]) -> Vec<u8> {
        [
            what,
            cluster_id.as_slice(),
            &self.sender.to_be_bytes(),
            &self.receiver.to_be_bytes(),
            &self.request_id,
            &self.sent_at.to_be_bytes(),
        ]
        .concat()
    }
}

/// What a member may ask the leader to do. There is no way to forward a raw proposal: the leader
/// builds every proposal itself.
#[derive(Serialize, Deserialize)]
pub enum Forwarded {
    /// A client command, decided by the rules on the leader (with the client's request id, if any).
    Client(Command, Option<ClientRequest>),
    /// A cluster operation the leader carries out itself.
    System(SystemCommand),
}

impl Forwarded {
    /// Reads a forwarded request once its envelope opened.
    pub fn decode(plain: &[u8]) -> Result<Self, ArcaError> {
        postcard::from_bytes(plain)
            .map_err(|_| ArcaError::bad_parameter("payload", "the forwarded request does not decode"))
    }
}

/// Cluster operations a member may forward. Some carry secrets (a token, a root key): they only
/// ever travel sealed, and there is no `Debug`.
#[derive(Clone, Serialize, Deserialize)]
pub enum SystemCommand {
    /// Add a keyring term.
    RotateKeyring,
    /// Remove a node from the membership.
    RemoveNode(u64),
    /// Record a join token minted on the forwarding node (its id must be new).
    StoreJoinToken { token_id: [u8; 8], record: JoinTokenRecord },
    /// Record a root token (minted on the forwarding node from a quorum of unseal shares).
    StoreRootToken { token: String },
    /// Give a cluster initialized before access tokens existed its token key (made on the forwarding
    /// node; stored only if the cluster still has none).
    CreateTokenKey { pkcs8: arca_types::SecretBytes },
    /// Revoke one access token until it would have expired.
    RevokeAccessToken { jti: [u8; 16], expires: i64 },
    /// Take a client assertion's `jti` (its mark: a keyed hash of client id and jti), once: a second
    /// use anywhere in the cluster is refused.
    UseAssertion { mark: Vec<u8>, expires: i64 },
    /// Record the head of a node's audit chain (only the node itself may anchor its own log).
    AnchorAudit(arca_audit::verify::SignedAnchor),
    /// Revoke the token with this accessor.
    RevokeToken { accessor: String },
    /// Wrap the keyring under this new root key and record the new share count and threshold.
    Rekey { root: [u8; 32], shares: u8, threshold: u8 },
    /// Hand the current epoch over to this region (a planned switchover), on the primary's leader.
    Switchover { to: String },
    /// Withdraw the handover of the current epoch (to this region).
    CancelSwitchover { to: String },
}

/// What a system command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SystemOutcome {
    KeyringTerm(u32),
    Token {
        accessor: String,
    },
    Done,
    /// A switchover started (or withdrawn): the handover and its log index.
    Handover {
        handover: crate::switchover::Handover,
        index: u64,
    },
}

/// The leader's answer to a forwarded request.
#[derive(Serialize, Deserialize)]
pub enum ForwardedOutcome {
    Client(Box<Outcome>),
    System(SystemOutcome),
}

impl ForwardedOutcome {
    /// Reads the leader's answer once it opened (the member's side of `Forward`).
    pub fn decode(plain: &[u8]) -> Result<Result<Self, ArcaError>, ArcaError> {
        postcard::from_bytes(plain)
            .map_err(|e| ArcaError::internal(format!("the leader's answer does not decode: {e}")))
    }
}

/// Forwarded requests seen recently, by (sender, request id), for refusing replays.
#[derive(Default)]
struct ReplayCache {
    seen: std::collections::HashSet<(u64, [u8; 16])>,
    order: std::collections::VecDeque<(i64, u64, [u8; 16])>,
}

impl ReplayCache {
    /// Records a request; `false` if it was seen within the window already.
    fn first_time(&mut self, sender: u64, request_id: [u8; 16], now: i64) -> bool {
        while let Some(&(at, s, id)) = self.order.front() {
            if at >= now - FORWARD_ENVELOPE_AGE_S_MAX && self.order.len() < FORWARD_REPLAY_ENTRIES_MAX {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&(s, id));
        }
        if !self.seen.insert((sender, request_id)) {
            return false;
        }
        self.order.push_back((now, sender, request_id));
        true
    }
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
    /// The freshest read point this node has established: when the ReadIndex round trip that gave it
    /// started, and the index. A bounded-staleness read within the bound waits only for that index.
    fresh_read_point: Mutex<Option<(Instant, u64)>>,
    /// The DNS suffix used to build Azure-shaped object ids: `https://{vault}.{suffix}/...`.
    pub vault_suffix: String,
    /// Parsed customer keys for the crypto service.
    pub key_cache: crate::key_use::KeyCache,
    /// This node's cluster certificate, key and CA (shared with its transport).
    pub credentials: Arc<NodeCredentials>,
    /// The cluster's id, once this node has seen it (it never changes).
    cluster_id: OnceLock<[u8; 16]>,
    replays: Mutex<ReplayCache>,
    /// Writers to one object take turns on the leader instead of conflicting; sets of one secret
    /// waiting for a turn are decided together by the writer whose turn it is.
    objects: crate::object_queue::ObjectQueue<SetJob, Result<Outcome, ArcaError>>,
    /// On the leader: when its log reached which index, so status can say how long a replica lags.
    pub lag_clock: crate::regions::LagClock,
    /// This node's acceptor of the epoch record and, on the primary's leader, its lease.
    pub failover: Arc<crate::failover::Failover>,
    /// Held while this node promotes its region (`crate::promotion`): one promotion at a time.
    pub(crate) promoting: Arc<tokio::sync::Mutex<()>>,
    /// Cluster events as this node sees them, for `ClusterService.WatchEvents`.
    pub events: tokio::sync::broadcast::Sender<arca_proto::v1::ClusterEvent>,
    /// Once a newer lineage displaced this node: its filing, until the new leader takes it
    /// (`crate::divergence`).
    pub(crate) displaced: tokio::sync::Mutex<Option<crate::divergence::Displacement>>,
    /// Set once this node filed its divergence: how its process rejoins (set the data dir aside,
    /// join with the token).
    pub rejoin: tokio::sync::watch::Sender<Option<crate::divergence::Rejoin>>,
}

/// A set of a secret offered to the writer holding the secret's turn: the command and its request.
type SetJob = (Command, Option<ClientRequest>);

fn from_write_error(e: WriteError) -> ArcaError {
    match e {
        WriteError::ForwardToLeader { .. } => ArcaError::unavailable("leadership moved; retry"),
        WriteError::Unavailable(m) => ArcaError::unavailable(m),
    }
}

/// A proposal that failed after it was handed to Raft may still commit: its outcome is unknown, and
/// it must not be decided and proposed a second time.
pub(crate) fn from_proposal_error(e: WriteError) -> ArcaError {
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

/// The stored answer to a request whose id names a change made within the window (or a refusal if
/// the id was used for another request), if there is one.
fn recorded_answer(
    keyspace: &Keyspace,
    request: Option<&ClientRequest>,
    now: i64,
) -> Result<Option<Result<Outcome, ArcaError>>, ArcaError> {
    let Some(request) = request else { return Ok(None) };
    let Some((_, record)) = keyspace.request_record(request)? else { return Ok(None) };
    if !within_request_window(record.at, now) {
        return Ok(None);
    }
    if record.fingerprint != request.fingerprint {
        return Ok(Some(Err(ArcaError::bad_parameter(
            "x-arca-request-id",
            "this request id was used for another request within the last 10 minutes; use a new id",
        ))));
    }
    Ok(Some(Ok(record.outcome)))
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
        credentials: Arc<NodeCredentials>,
        epochs: Arc<dyn crate::failover::EpochStore>,
    ) -> Self {
        Self {
            node_id: OnceLock::new(),
            raft: OnceLock::new(),
            store,
            seal,
            clock,
            fresh_read_point: Mutex::new(None),
            vault_suffix,
            key_cache: crate::key_use::KeyCache::default(),
            credentials,
            cluster_id: OnceLock::new(),
            replays: Mutex::default(),
            objects: Default::default(),
            lag_clock: Default::default(),
            failover: Arc::new(crate::failover::Failover::new(epochs)),
            promoting: Arc::default(),
            events: tokio::sync::broadcast::channel(crate::promotion::EVENTS_BUFFERED).0,
            displaced: Default::default(),
            rejoin: tokio::sync::watch::channel(None).0,
        }
    }

    /// Seals this node: the barrier is wiped for every request holding it, and every parsed customer
    /// key is dropped (and wiped).
    pub fn seal_now(&self) {
        let cached_keys = self.key_cache.len();
        self.seal.seal();
        self.key_cache.clear();
        tracing::info!(cached_keys, "node sealed: barrier wiped, cached customer keys dropped");
    }

    /// The cluster's id, from the replicated record minted at bootstrap.
    pub fn cluster_id(&self) -> Result<[u8; 16], ArcaError> {
        if let Some(id) = self.cluster_id.get() {
            return Ok(*id);
        }
        let (_, record) = crate::membership::cluster_record(&*self.store)?
            .ok_or_else(|| ArcaError::unavailable("this node does not know its cluster's id yet; retry"))?;
        Ok(*self.cluster_id.get_or_init(|| record.cluster_id))
    }

    pub fn set_raft(&self, raft: RaftNode) {
        let _ = self.node_id.set(raft.node_id);
        let _ = self.raft.set(raft);
    }

    /// The index of the last entry this replica applied (or of the snapshot it installed), once Raft
    /// runs: every change to the replica moves it.
    pub fn applied_index(&self) -> Option<u64> {
        self.raft.get().map(RaftNode::applied_index)
    }

    pub fn raft(&self) -> Result<&RaftNode, ArcaError> {
        self.raft.get().ok_or_else(|| {
            ArcaError::unavailable("this node has not joined a cluster yet; run `arca cluster join` against it")
        })
    }

    pub fn has_raft(&self) -> bool {
        self.raft.get().is_some()
    }

    /// Runs `local` if this node leads, else `remote` with the leader's addresses, until one of them
    /// gives an answer. Either returns `Ok(None)` to ask for another try (no leader yet, or leadership
    /// moved); `what` completes the sentence "no leader could …" of the final error.
    async fn on_leader<T, L, LF, R, RF>(&self, what: &str, local: L, remote: R) -> Result<T, ArcaError>
    where
        L: Fn() -> LF,
        LF: std::future::Future<Output = Result<Option<T>, ArcaError>>,
        R: Fn(u64, ArcaNode) -> RF,
        RF: std::future::Future<Output = Result<Option<T>, ArcaError>>,
    {
        let raft = self.raft()?;
        for _ in 0..WRITE_ATTEMPTS_MAX {
            let answer = match raft.leader() {
                Some((id, _)) if id == raft.node_id => local().await?,
                Some((id, leader)) => remote(id, leader).await?,
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
    /// `request` names the change with the client's request id: a retry within the window gets the
    /// first outcome instead of acting twice.
    pub async fn execute(&self, command: &Command, request: Option<&ClientRequest>) -> Result<Outcome, ArcaError> {
        self.refuse_if_read_only()?;
        let keyspace = &self.seal.keyspace()?;
        self.on_leader(
            "take the write",
            move || async move { retry_if_unavailable(self.execute_on_leader(keyspace, command, request).await) },
            move |leader_id, leader| async move {
                let forwarded = Forwarded::Client(command.clone(), request.cloned());
                match self.forward(keyspace, leader_id, &leader, &forwarded).await {
                    Ok(ForwardedOutcome::Client(outcome)) => Ok(Some(*outcome)),
                    Ok(ForwardedOutcome::System(_)) => {
                        Err(ArcaError::internal("the leader answered a command with another kind of outcome"))
                    }
                    Err(e) => retry_if_unavailable(Err(e)),
                }
            },
        )
        .await
    }

    /// Decides and proposes on this node, which must be the leader.
    pub async fn execute_on_leader(
        &self,
        keyspace: &Keyspace,
        command: &Command,
        request: Option<&ClientRequest>,
    ) -> Result<Outcome, ArcaError> {
        let raft = self.raft()?;
        // A retry of a change already made gets its answer without waiting for a turn (a busy
        // object would otherwise refuse it as throttled, as if nothing had happened).
        if let Some(answer) = recorded_answer(keyspace, request, self.clock.now_unix())? {
            return answer;
        }
        let batchable = matches!(command, Command::SetSecret { .. });
        let _turn =
            match command.object() {
                Some((kind, vault, name)) => {
                    let job = batchable.then(|| (command.clone(), request.cloned()));
                    match self.objects.turn_or_answer(kind, vault, name, job).await? {
                        Entry::Answered(Some(answer)) => return answer,
                        Entry::Answered(None) => return Err(ArcaError::new(
                            ErrorCode::OutcomeUnknown,
                            "the write was taken into a batch whose writer stopped before answering; it may or may \
                             not have taken effect; read the object before retrying",
                        )),
                        Entry::Turn(turn) => {
                            let others = if batchable {
                                let budget = SET_BATCH_BYTES_MAX.saturating_sub(set_bytes(command));
                                turn.take_offered(SET_BATCH_MAX - 1, budget, |job: &SetJob| set_bytes(&job.0))
                            } else {
                                Vec::new()
                            };
                            if !others.is_empty() {
                                return self
                                    .execute_sets(raft, keyspace, (command.clone(), request.cloned()), others)
                                    .await;
                            }
                            Some(turn)
                        }
                    }
                }
                None => None,
            };
        let mut confirmed = false;
        for _ in 0..CONFLICT_RETRIES_MAX {
            let now = self.clock.now_unix();
            if let Some(answer) = recorded_answer(keyspace, request, now)? {
                return answer;
            }
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
            let mut proposal = keyspace.proposal(view, &decision.mutations)?;
            if let Some(request) = request {
                // The outcome is stored in the same entry as the change: it exists exactly when the
                // change does, and a concurrent twin of this request conflicts and finds it.
                let record =
                    RequestRecord { fingerprint: request.fingerprint, at: now, outcome: decision.outcome.clone() };
                proposal.preconditions.push(keyspace.request_unrecorded(request));
                proposal.ops.extend(keyspace.put_request_record(request, &record)?);
            }
            if faults::active(Fault::AckBeforeCommit) {
                // Deliberate bug (danger-faults builds only): answer before the quorum has the write.
                let raft = raft.clone();
                tokio::spawn(async move { raft.write(proposal).await });
                return Ok(decision.outcome);
            }
            self.require_lease()?;
            match raft.write(proposal).await.map_err(from_proposal_error)? {
                (_, ApplyOutcome::Applied) => {
                    // Acknowledged only while the lease still holds (a conflict applied nothing and
                    // is decided again, under the gate again).
                    self.lease_still_holds()?;
                    return Ok(decision.outcome);
                }
                (index, ApplyOutcome::Conflict) => {
                    raft.wait_applied(index, Duration::from_millis(FORWARD_TIMEOUT_MS))
                        .await
                        .map_err(from_write_error)?;
                }
            }
        }
        Err(ArcaError::unavailable("the object is changing too often to update it now; retry"))
    }

    /// Decides the sets of one secret taken from writers waiting for its turn together with this
    /// writer's own (`own`, first), each against the secret as the ones before it left it, and
    /// proposes them as one entry: the same checks, preconditions, request records and answers as
    /// one at a time, in one Raft round. The batch runs on a task of its own, so this writer's
    /// client going away does not leave the others without an answer; each waiting writer gets its
    /// answer on its channel, and this writer's is returned once the batch is done (it keeps the
    /// turn until then).
    async fn execute_sets(
        &self,
        raft: &RaftNode,
        keyspace: &Keyspace,
        own: SetJob,
        others: Vec<Offered<SetJob, Result<Outcome, ArcaError>>>,
    ) -> Result<Outcome, ArcaError> {
        let mut jobs = vec![own];
        let mut channels = Vec::with_capacity(others.len());
        for offered in others {
            jobs.push(offered.job);
            channels.push(offered.answer);
        }
        let (raft, keyspace, clock, gate) = (raft.clone(), keyspace.clone(), self.clock.clone(), self.lease_gate());
        let batch = tokio::spawn(async move {
            let mut answers = decide_sets_and_propose(&raft, &keyspace, &*clock, &gate, &jobs).await.into_iter();
            let own = answers.next();
            for (answer, channel) in answers.zip(channels) {
                // A waiting writer that stopped waiting does not need its answer.
                drop(channel.send(answer));
            }
            own
        });
        match batch.await {
            Ok(Some(answer)) => answer,
            _ => Err(ArcaError::new(
                ErrorCode::OutcomeUnknown,
                "the batch this write was decided in stopped before answering; it may or may not have taken \
                 effect; read the object before retrying",
            )),
        }
    }

    /// Runs a cluster operation on the leader, forwarding it there if this node does not lead.
    pub async fn execute_system(&self, command: SystemCommand) -> Result<SystemOutcome, ArcaError> {
        self.refuse_if_read_only()?;
        let keyspace = &self.seal.keyspace()?;
        let command = &command;
        self.on_leader(
            "carry out the operation",
            move || async move { retry_if_unavailable(self.run_system(keyspace, command.clone()).await) },
            move |leader_id, leader| async move {
                let forwarded = Forwarded::System(command.clone());
                match self.forward(keyspace, leader_id, &leader, &forwarded).await {
                    Ok(ForwardedOutcome::System(outcome)) => Ok(Some(outcome)),
                    Ok(ForwardedOutcome::Client(_)) => {
                        Err(ArcaError::internal("the leader answered an operation with another kind of outcome"))
                    }
                    Err(e) => retry_if_unavailable(Err(e)),
                }
            },
        )
        .await
    }

    /// A system command, on the leader.
    async fn run_system(&self, keyspace: &Keyspace, command: SystemCommand) -> Result<SystemOutcome, ArcaError> {
        let raft = self.raft()?;
        match command {
            SystemCommand::RotateKeyring => {
                for _ in 0..CONFLICT_RETRIES_MAX {
                    let (proposal, keyring) = self.seal.prepare_rotation()?;
                    let term = keyring.active_term();
                    match self.propose_on_leader(proposal).await? {
                        (_, ApplyOutcome::Applied) => {
                            self.seal.install_keyring(keyring);
                            return Ok(SystemOutcome::KeyringTerm(term));
                        }
                        (index, ApplyOutcome::Conflict) => raft
                            .wait_applied(index, Duration::from_millis(FORWARD_TIMEOUT_MS))
                            .await
                            .map_err(from_write_error)?,
                    }
                }
                Err(ArcaError::unavailable("the keyring is being rotated concurrently; retry"))
            }
            SystemCommand::Switchover { to } => {
                let (handover, index) = self.hand_over(&to).await?;
                Ok(SystemOutcome::Handover { handover, index })
            }
            SystemCommand::CancelSwitchover { to } => {
                let (handover, index) = self.cancel_handover(&to).await?;
                Ok(SystemOutcome::Handover { handover, index })
            }
            SystemCommand::RemoveNode(node_id) => {
                raft.remove_node(node_id).await.map_err(from_write_error)?;
                tracing::info!(node_id, "removed a node");
                Ok(SystemOutcome::Done)
            }
            SystemCommand::StoreJoinToken { token_id, record } => {
                crate::membership::store_join_token(self, keyspace, &token_id, &record).await?;
                Ok(SystemOutcome::Done)
            }
            SystemCommand::StoreRootToken { token } => {
                let accessor = keyspace.token_accessor(&token);
                let record = crate::keyspace::TokenRecord {
                    policy: crate::keyspace::ROOT_POLICY.to_owned(),
                    created: self.clock.now_unix(),
                    accessor: accessor.clone(),
                };
                let proposal = Proposal {
                    preconditions: vec![arca_storage::proposal::Precondition {
                        key: keyspace.token_key(&token),
                        modified_at: None,
                    }],
                    ops: keyspace.put_token(&token, &record)?,
                };
                match self.propose_on_leader(proposal).await? {
                    (_, ApplyOutcome::Applied) => Ok(SystemOutcome::Token { accessor }),
                    (_, ApplyOutcome::Conflict) => Err(ArcaError::internal("a token was drawn twice")),
                }
            }
            SystemCommand::RevokeToken { accessor } => {
                // Judged on everything committed: a new leader's applied state may not hold the token yet.
                self.read_barrier(Consistency::Linearizable).await?;
                let ops = keyspace.revoke_token(&accessor)?.ok_or_else(|| {
                    ArcaError::bad_parameter("accessor", "no token has that accessor (see `arca operator token list`)")
                })?;
                self.propose_on_leader(Proposal { preconditions: Vec::new(), ops }).await?;
                tracing::info!(%accessor, "revoked a token");
                Ok(SystemOutcome::Done)
            }
            SystemCommand::CreateTokenKey { pkcs8 } => {
                let key = arca_crypto::cluster_pki::Ed25519Key::from_pkcs8(pkcs8.expose())
                    .map_err(|e| ArcaError::bad_parameter("pkcs8", e.to_string()))?;
                let proposal = Proposal {
                    preconditions: vec![
                        arca_storage::proposal::Precondition {
                            key: crate::keyspace::TOKEN_SIGNING_KEY.to_vec(),
                            modified_at: None,
                        },
                        arca_storage::proposal::Precondition {
                            key: crate::keyspace::TOKEN_KEYS_KEY.to_vec(),
                            modified_at: None,
                        },
                    ],
                    ops: vec![
                        keyspace.put_token_signing_key(key.pkcs8_der())?,
                        keyspace.put_token_keys(&[arca_identity::TokenKey::of(&key)])?,
                    ],
                };
                // A conflict means another node gave the cluster its key first: as good.
                self.propose_on_leader(proposal).await?;
                Ok(SystemOutcome::Done)
            }
            SystemCommand::RevokeAccessToken { jti, expires } => {
                let ops = crate::keyspace::Keyspace::revoke_access_token(&jti, expires);
                self.propose_on_leader(Proposal { preconditions: Vec::new(), ops }).await?;
                Ok(SystemOutcome::Done)
            }
            SystemCommand::AnchorAudit(anchor) => {
                let (_, cluster) = crate::membership::cluster_record(&*self.store)?
                    .ok_or_else(|| ArcaError::unavailable("the cluster has no id yet; retry"))?;
                if !anchor.verifies(&cluster.cluster_id) {
                    return Err(ArcaError::bad_parameter("anchor", "the anchor's signature does not verify"));
                }
                self.propose_on_leader(Proposal {
                    preconditions: Vec::new(),
                    ops: vec![keyspace.put_audit_anchor(&anchor)?],
                })
                .await?;
                Ok(SystemOutcome::Done)
            }
            SystemCommand::UseAssertion { mark, expires } => {
                let proposal = Proposal {
                    preconditions: vec![crate::keyspace::Keyspace::assertion_unused(&mark)],
                    ops: crate::keyspace::Keyspace::use_assertion(mark, expires),
                };
                match self.propose_on_leader(proposal).await? {
                    (_, ApplyOutcome::Applied) => Ok(SystemOutcome::Done),
                    (_, ApplyOutcome::Conflict) => Err(ArcaError::new(
                        ErrorCode::InvalidClient,
                        "the client assertion was used before; sign a new one (a new jti) for every request",
                    )),
                }
            }
            SystemCommand::Rekey { root, shares, threshold } => {
                let root = arca_crypto::RootKey(arca_crypto::Key32::from_bytes(root));
                for _ in 0..CONFLICT_RETRIES_MAX {
                    let proposal = self.seal.prepare_rekey(&root, shares, threshold)?;
                    match self.propose_on_leader(proposal).await? {
                        (_, ApplyOutcome::Applied) => {
                            self.seal.install_root(root);
                            tracing::info!(shares, threshold, "rekeyed: new unseal shares and root key");
                            return Ok(SystemOutcome::Done);
                        }
                        (index, ApplyOutcome::Conflict) => raft
                            .wait_applied(index, Duration::from_millis(FORWARD_TIMEOUT_MS))
                            .await
                            .map_err(from_write_error)?,
                    }
                }
                Err(ArcaError::unavailable("the keyring kept changing during the rekey; retry"))
            }
        }
    }

    /// Seals `forwarded` into an envelope for the leader and opens its answer.
    async fn forward(
        &self,
        keyspace: &Keyspace,
        leader_id: u64,
        leader: &ArcaNode,
        forwarded: &Forwarded,
    ) -> Result<ForwardedOutcome, ArcaError> {
        let raft = self.raft()?;
        let cluster_id = self.cluster_id()?;
        let barrier = keyspace.barrier();
        let mut envelope = Envelope {
            sender: raft.node_id,
            receiver: leader_id,
            request_id: self.seal.entropy().bytes16(),
            sent_at: self.clock.now_unix(),
            sealed: Vec::new(),
        };
        let plain = zeroize::Zeroizing::new(postcard::to_allocvec(forwarded).expect("forwarded requests encode"));
        envelope.sealed = barrier
            .seal(Scope::System, &envelope.binding(FORWARD_REQUEST_AAD, &cluster_id), &plain)
            .map_err(|_| crate::seal::sealed_error())?;
        let mut client = raft.channels.client(&leader.cluster_addr, Some(leader_id)).map_err(ArcaError::unavailable)?;
        let payload = RaftPayload { data: postcard::to_allocvec(&envelope).expect("envelopes encode") };
        let mut req = tonic::Request::new(payload);
        req.set_timeout(Duration::from_millis(FORWARD_TIMEOUT_MS));
        let response = client.forward(req).await.map_err(rpc_unavailable)?;
        // The request reached the leader and was answered: if the answer does not open, what the
        // request did is unknown, and it must not be sent again.
        let plain = barrier
            .open(Scope::System, &envelope.binding(FORWARD_OUTCOME_AAD, &cluster_id), &response.into_inner().data)
            .map_err(|e| {
                ArcaError::new(
                    ErrorCode::OutcomeUnknown,
                    format!("the leader's answer did not open ({e}); read the object before retrying"),
                )
            })?;
        ForwardedOutcome::decode(&plain)?
    }

    /// The leader's side of a forwarded request from member `caller`.
    pub async fn handle_forward(&self, data: &[u8], caller: u64) -> Result<Vec<u8>, ArcaError> {
        if faults::active(Fault::LogForwardedEnvelopes) {
            // Test hook (danger-faults builds only): the replay test sends a captured envelope again.
            tracing::warn!(caller, envelope = %hex::encode(data), "danger-faults: a forwarded envelope");
        }
        let envelope = Envelope::decode(data)?;
        if envelope.sender != caller {
            return Err(ArcaError::new(
                ErrorCode::NotAMember,
                format!("node {caller} sent a request in the name of node {}", envelope.sender),
            ));
        }
        let raft = self.raft()?;
        if envelope.receiver != raft.node_id {
            return Err(ArcaError::bad_parameter(
                "payload",
                format!("the request was sealed for node {}, not this node", envelope.receiver),
            ));
        }
        let now = self.clock.now_unix();
        if envelope.sent_at.abs_diff(now) > FORWARD_ENVELOPE_AGE_S_MAX as u64 {
            return Err(ArcaError::bad_parameter(
                "payload",
                format!(
                    "the request was sent {} s from this node's time, more than {FORWARD_ENVELOPE_AGE_S_MAX} s: \
                     a replay, or clocks that differ too much",
                    envelope.sent_at.saturating_sub(now)
                ),
            ));
        }
        if !raft.is_leader() {
            return Err(ArcaError::unavailable("this node is no longer the leader; retry"));
        }
        let keyspace = self
            .seal
            .keyspace()
            .map_err(|_| ArcaError::unavailable("the leader is sealed and cannot decide writes; unseal it"))?;
        let cluster_id = self.cluster_id()?;
        let barrier = keyspace.barrier().clone();
        let plain = barrier
            .open(Scope::System, &envelope.binding(FORWARD_REQUEST_AAD, &cluster_id), &envelope.sealed)
            .map_err(|_| ArcaError::bad_parameter("payload", "the forwarded request did not open"))?;
        let forwarded = Forwarded::decode(&plain)?;
        let first_time = self.replays.lock().unwrap_or_else(|p| p.into_inner()).first_time(
            envelope.sender,
            envelope.request_id,
            now,
        );
        if !first_time {
            return Err(ArcaError::bad_parameter("payload", "this request was received before: a replay"));
        }
        if let Forwarded::System(SystemCommand::AnchorAudit(anchor)) = &forwarded {
            if anchor.node_id != envelope.sender {
                return Err(ArcaError::new(
                    ErrorCode::NotAMember,
                    format!(
                        "node {} may anchor only its own audit log, not node {}'s",
                        envelope.sender, anchor.node_id
                    ),
                ));
            }
        }
        let result = match forwarded {
            Forwarded::Client(command, request) => self
                .execute_on_leader(&keyspace, &command, request.as_ref())
                .await
                .map(|o| ForwardedOutcome::Client(Box::new(o))),
            Forwarded::System(command) => self.run_system(&keyspace, command).await.map(ForwardedOutcome::System),
        };
        // Answered under the term the request came sealed with: the sender holds that one, and not
        // necessarily a term this request just added (a keyring rotation).
        let term = Barrier::term_of(&envelope.sealed).unwrap_or_default();
        let plain = zeroize::Zeroizing::new(postcard::to_allocvec(&result).expect("outcomes encode"));
        barrier
            .seal_under(Scope::System, &envelope.binding(FORWARD_OUTCOME_AAD, &cluster_id), &plain, term)
            .map_err(|_| crate::seal::sealed_error())
    }

    /// Proposes on this node, which must be the leader (init, membership, system commands).
    pub async fn propose_on_leader(&self, proposal: Proposal) -> Result<(u64, ApplyOutcome), ArcaError> {
        self.require_lease()?;
        let written = self.raft()?.write(proposal).await.map_err(from_proposal_error)?;
        if written.1 == ApplyOutcome::Applied {
            self.lease_still_holds()?;
        }
        Ok(written)
    }

    /// Waits until a read at `consistency` may be served from this node's replica.
    /// Returns, when the read is served from this node's replica as it is because this node is a
    /// read-only secondary (the primary has been silent), how old its last contact with the primary is
    /// in milliseconds: the read is as of the replica's applied index, that old at most.
    pub async fn read_barrier(&self, consistency: Consistency) -> Result<Option<u64>, ArcaError> {
        let raft = self.raft()?;
        if faults::active(Fault::ReadWithoutReadIndex) {
            // Deliberate bug (danger-faults builds only): trust the local replica.
            return Ok(None);
        }
        if let Some(silent) = self.read_only_secondary() {
            return Ok(Some(silent));
        }
        if let Consistency::BoundedStaleness(max) = consistency {
            if let Some(index) = self.fresh_enough(raft, max) {
                return raft
                    .wait_applied(index, Duration::from_millis(FORWARD_TIMEOUT_MS))
                    .await
                    .map(|_| None)
                    .map_err(from_write_error);
            }
        }
        // A secondary that loses the primary while it asks for the read index serves from its replica
        // as soon as it is read-only, instead of waiting for the ask to fail.
        let index = tokio::select! {
            index = self.read_index() => index?,
            silent = self.until_read_only() => return Ok(Some(silent)),
        };
        raft.wait_applied(index, Duration::from_millis(FORWARD_TIMEOUT_MS))
            .await
            .map(|_| None)
            .map_err(from_write_error)
    }

    /// Resolves once this node is a read-only secondary (see [`Engine::read_only_secondary`]), with
    /// how long the primary has been silent; on any other node, never.
    async fn until_read_only(&self) -> u64 {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Some(silent) = self.read_only_secondary() {
                return silent;
            }
        }
    }

    /// An index that reflects every write acknowledged at most `max` ago, if this node has one without
    /// asking anyone. On the leader: its commit index, if a quorum acknowledged a heartbeat it sent
    /// within `max` and an entry of its own term is committed (before that, its commit index may miss
    /// writes its predecessor acknowledged; a quorum that acknowledged its heartbeat no longer lets an
    /// older leader commit anything). On any
    /// node: the index of a ReadIndex round trip that started within `max`. A partitioned ex-leader has
    /// neither, so it serves nothing older than the bound.
    fn fresh_enough(&self, raft: &RaftNode, max: Duration) -> Option<u64> {
        if faults::active(Fault::StaleLeaderReads) && raft.is_leader() {
            // Deliberate bug (danger-faults builds only): a leader trusts that it still leads.
            return Some(raft.applied_index());
        }
        if let Some((age, commit)) = raft.last_quorum_ack() {
            if age <= max {
                return Some(commit);
            }
        }
        let point = *self.fresh_read_point.lock().unwrap_or_else(|p| p.into_inner());
        point.filter(|(at, _)| at.elapsed() <= max).map(|(_, index)| index)
    }

    /// The read index, from this node if it leads, else from the leader.
    pub async fn read_index(&self) -> Result<u64, ArcaError> {
        let started = Instant::now();
        let index = self.read_index_inner().await?;
        let mut point = self.fresh_read_point.lock().unwrap_or_else(|p| p.into_inner());
        if point.is_none_or(|(at, _)| at < started) {
            *point = Some((started, index));
        }
        Ok(index)
    }

    async fn read_index_inner(&self) -> Result<u64, ArcaError> {
        let raft = self.raft()?;
        self.on_leader(
            "confirm a read index",
            move || async move {
                self.require_lease_for_reads()?;
                retry_if_moved(raft.read_index().await)
            },
            move |leader_id, leader| async move {
                let mut client =
                    raft.channels.client(&leader.cluster_addr, Some(leader_id)).map_err(ArcaError::unavailable)?;
                let mut req = tonic::Request::new(ReadIndexRequest {});
                req.set_timeout(Duration::from_millis(FORWARD_TIMEOUT_MS));
                retry_if_unreachable(client.read_index(req).await.map(|r| r.into_inner().index))
            },
        )
        .await
    }
}

/// The bytes a set carries into an entry (value, content type and tags), for a batch's budget.
fn set_bytes(command: &Command) -> usize {
    match command {
        Command::SetSecret { value, content_type, tags, .. } => {
            value.len_bytes()
                + content_type.as_ref().map_or(0, String::len)
                + tags.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
        }
        _ => 0,
    }
}

/// The answers to `jobs` (sets of one secret, in the order they came), decided and proposed
/// together, each as deciding them one at a time would answer it. A request id met twice is decided
/// once per round: the later job waits for the next round, where the first one's stored outcome
/// answers it (or, if the first stored nothing, it is decided).
async fn decide_sets_and_propose(
    raft: &RaftNode,
    keyspace: &Keyspace,
    clock: &dyn Clock,
    gate: &crate::failover::LeaseGate,
    jobs: &[SetJob],
) -> Vec<Result<Outcome, ArcaError>> {
    let mut answers: Vec<Option<Result<Outcome, ArcaError>>> = vec![None; jobs.len()];
    let mut rounds = 0;
    while answers.iter().any(Option::is_none) && rounds < jobs.len() {
        rounds += 1;
        let round: Vec<usize> = (0..jobs.len())
            .filter(|i| answers[*i].is_none())
            .filter(|i| {
                // The first unanswered job with each request id.
                let Some(request) = &jobs[*i].1 else { return true };
                !(0..*i).any(|j| answers[j].is_none() && same_request(jobs[j].1.as_ref(), request))
            })
            .collect();
        let decided = decide_round(raft, keyspace, clock, gate, jobs, &round).await;
        for (i, answer) in round.into_iter().zip(decided) {
            // A request whose outcome is unknown, or that could not be taken now, is not decided a
            // second time for its twins in this batch: they get the same answer.
            if let (Err(e), Some(request)) = (&answer, &jobs[i].1) {
                if matches!(e.code, ErrorCode::OutcomeUnknown | ErrorCode::Unavailable) {
                    for j in i + 1..jobs.len() {
                        if answers[j].is_none() && same_request(jobs[j].1.as_ref(), request) {
                            answers[j] = Some(Err(e.clone()));
                        }
                    }
                }
            }
            answers[i] = Some(answer);
        }
    }
    settled(answers)
}

/// Whether `job` names the same request as `request`: the same caller and request id (the key its
/// outcome is stored under), whatever the message.
fn same_request(job: Option<&ClientRequest>, request: &ClientRequest) -> bool {
    job.is_some_and(|r| r.caller == request.caller && r.id == request.id)
}

/// One round of a batch: the jobs at `round` (no request id twice), decided against the state and
/// each other, and proposed as one entry until it applies without a conflict.
async fn decide_round(
    raft: &RaftNode,
    keyspace: &Keyspace,
    clock: &dyn Clock,
    gate: &crate::failover::LeaseGate,
    jobs: &[SetJob],
    round: &[usize],
) -> Vec<Result<Outcome, ArcaError>> {
    let all = |e: ArcaError| round.iter().map(|_| Err(e.clone())).collect();
    let mut confirmed = false;
    for _ in 0..CONFLICT_RETRIES_MAX {
        let now = clock.now_unix();
        let mut answers: Vec<Option<Result<Outcome, ArcaError>>> = vec![None; round.len()];
        // A retry of a change already made gets its stored answer.
        for (slot, i) in round.iter().enumerate() {
            match recorded_answer(keyspace, jobs[*i].1.as_ref(), now) {
                Ok(Some(answer)) => answers[slot] = Some(answer),
                Ok(None) => {}
                Err(e) => answers[slot] = Some(Err(e)),
            }
        }
        let open: Vec<usize> = (0..round.len()).filter(|slot| answers[*slot].is_none()).collect();
        if open.is_empty() {
            return settled(answers);
        }
        let view = keyspace.recording_view();
        let commands: Vec<&Command> = open.iter().map(|slot| &jobs[round[*slot]].0).collect();
        let decided = arca_core::decide_sets(&view, &commands, now);
        if !confirmed && decided.iter().any(|d| d.as_ref().is_err_and(|e| e.code != ErrorCode::Internal)) {
            // A refusal must not come from a stale replica: catch up to the read index and decide
            // once more before reporting it.
            confirmed = true;
            let caught_up = match raft.read_index().await {
                Ok(index) => raft.wait_applied(index, Duration::from_millis(FORWARD_TIMEOUT_MS)).await,
                Err(e) => Err(e),
            };
            if let Err(e) = caught_up {
                return all(from_write_error(e));
            }
            continue;
        }
        let mut mutations = Vec::new();
        let mut accepted = Vec::new();
        for (slot, decision) in open.iter().zip(decided) {
            match decision {
                Ok(d) => {
                    mutations.extend(d.mutations);
                    accepted.push((*slot, d.outcome));
                }
                Err(e) => answers[*slot] = Some(Err(e)),
            }
        }
        if accepted.is_empty() {
            return settled(answers);
        }
        let mut proposal = match keyspace.proposal(view, &mutations) {
            Ok(p) => p,
            Err(e) => return all(e),
        };
        for (slot, outcome) in &accepted {
            if let Some(request) = &jobs[round[*slot]].1 {
                let record = RequestRecord { fingerprint: request.fingerprint, at: now, outcome: outcome.clone() };
                proposal.preconditions.push(keyspace.request_unrecorded(request));
                match keyspace.put_request_record(request, &record) {
                    Ok(ops) => proposal.ops.extend(ops),
                    Err(e) => return all(e),
                }
            }
        }
        if faults::active(Fault::AckBeforeCommit) {
            // Deliberate bug (danger-faults builds only): answer before the quorum has the writes.
            let raft = raft.clone();
            tokio::spawn(async move { raft.write(proposal).await });
        } else {
            if let Err(e) = gate.require(raft) {
                return all(e);
            }
            match raft.write(proposal).await {
                Ok((_, ApplyOutcome::Applied)) => {
                    // The sets it carried are acknowledged only while the lease still holds; the
                    // refusals settled in this round stand.
                    if let Err(e) = gate.still_holds(raft) {
                        for (slot, _) in accepted {
                            answers[slot] = Some(Err(e.clone()));
                        }
                        return settled(answers);
                    }
                }
                Ok((index, ApplyOutcome::Conflict)) => {
                    // Decided again, refusals too: they may have hung on sets before them.
                    if let Err(e) = raft.wait_applied(index, Duration::from_millis(FORWARD_TIMEOUT_MS)).await {
                        return all(from_write_error(e));
                    }
                    continue;
                }
                Err(e) => return all(from_proposal_error(e)),
            }
        }
        for (slot, outcome) in accepted {
            answers[slot] = Some(Ok(outcome));
        }
        return settled(answers);
    }
    all(ArcaError::unavailable("the object is changing too often to update it now; retry"))
}

/// A batch's or a round's answers, one per job in its place; a job left without one (never
/// expected) is answered with an internal error rather than dropped, so no answer can shift to
/// another writer.
fn settled(answers: Vec<Option<Result<Outcome, ArcaError>>>) -> Vec<Result<Outcome, ArcaError>> {
    answers
        .into_iter()
        .map(|a| a.unwrap_or_else(|| Err(ArcaError::internal("a set in a batch was left without an answer"))))
        .collect()
}

/// Whether an outcome recorded at `at` still answers a retry of its request at `now`: for
/// [`REQUEST_ID_WINDOW_S`] seconds, after which the id names a new request.
fn within_request_window(at: i64, now: i64) -> bool {
    now.saturating_sub(at) < REQUEST_ID_WINDOW_S
}

#[cfg(test)]
mod tests {
    use super::*;
    use arca_crypto::{Keyring, OsEntropy};

    fn envelope() -> Envelope {
        Envelope { sender: 1, receiver: 2, request_id: [7; 16], sent_at: 1_000, sealed: Vec::new() }
    }

    #[test]
    fn an_envelope_opens_only_as_the_request_it_was_sealed_as() {
        let barrier = Barrier::new(Keyring::generate(&OsEntropy), Arc::new(OsEntropy));
        let cluster = [9u8; 16];
        let mut sent = envelope();
        sent.sealed = barrier.seal(Scope::System, &sent.binding(FORWARD_REQUEST_AAD, &cluster), b"command").unwrap();
        let opens = |e: &Envelope, what: &[u8], cluster: &[u8; 16]| {
            barrier.open(Scope::System, &e.binding(what, cluster), &sent.sealed).is_ok()
        };
        assert!(opens(&sent, FORWARD_REQUEST_AAD, &cluster));
        let altered = [
            Envelope { sender: 3, ..envelope() },
            Envelope { receiver: 3, ..envelope() },
            Envelope { request_id: [8; 16], ..envelope() },
            Envelope { sent_at: 1_001, ..envelope() },
        ];
        for e in &altered {
            assert!(!opens(e, FORWARD_REQUEST_AAD, &cluster), "an envelope re-addressed or re-dated still opened");
        }
        assert!(!opens(&sent, FORWARD_REQUEST_AAD, &[8; 16]), "it opened in another cluster");
        assert!(!opens(&sent, FORWARD_OUTCOME_AAD, &cluster), "a request opened as an answer");
    }

    #[test]
    fn a_forwarded_request_is_taken_once_within_its_window() {
        let mut seen = ReplayCache::default();
        assert!(seen.first_time(2, [1; 16], 100));
        assert!(!seen.first_time(2, [1; 16], 101), "the same request again is a replay");
        assert!(seen.first_time(3, [1; 16], 101), "another sender's id is another request");
        // Once older than the age bound, an envelope is refused by its age; the cache may forget it.
        assert!(seen.first_time(2, [1; 16], 101 + FORWARD_ENVELOPE_AGE_S_MAX));
    }

    #[test]
    fn a_request_id_names_its_request_for_the_window_and_not_one_second_more() {
        let at = 1_700_000_000;
        assert!(within_request_window(at, at));
        assert!(within_request_window(at, at + REQUEST_ID_WINDOW_S - 1));
        assert!(!within_request_window(at, at + REQUEST_ID_WINDOW_S));
        assert!(!within_request_window(i64::MIN, i64::MAX), "no overflow");
    }

    #[test]
    fn the_replay_cache_holds_at_most_its_limit() {
        let mut seen = ReplayCache::default();
        for i in 0..=FORWARD_REPLAY_ENTRIES_MAX as u64 {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&i.to_be_bytes());
            assert!(seen.first_time(1, id, 100));
        }
        assert!(seen.order.len() <= FORWARD_REPLAY_ENTRIES_MAX && seen.seen.len() <= FORWARD_REPLAY_ENTRIES_MAX);
    }
}
