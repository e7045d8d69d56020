//! Assembling a node from its parts: seal, engine, Raft, both gRPC listeners, and the background
//! loops. Storage, transport, time and randomness come in as [`NodeParts`], so the same code runs on
//! RocksDB and TLS sockets in `arcad` and on in-memory stores and a simulated network in the simulation.

use std::sync::Arc;
use std::time::Duration;

use arca_crypto::Entropy;
use arca_proto::cluster::v1::node_service_server::NodeServiceServer;
use arca_proto::cluster::v1::{AddNodeRequest, JoinRequest, JoinResponse};
use arca_proto::v1::agent_service_server::AgentServiceServer;
use arca_proto::v1::audit_service_server::AuditServiceServer;
use arca_proto::v1::auth_service_server::AuthServiceServer;
use arca_proto::v1::cluster_service_server::ClusterServiceServer;
use arca_proto::v1::crypto_service_server::CryptoServiceServer;
use arca_proto::v1::key_service_server::KeyServiceServer;
use arca_proto::v1::operator_service_server::OperatorServiceServer;
use arca_proto::v1::principal_service_server::PrincipalServiceServer;
use arca_proto::v1::role_service_server::RoleServiceServer;
use arca_proto::v1::secret_service_server::SecretServiceServer;
use arca_proto::v1::vault_service_server::VaultServiceServer;
use arca_raft::network::{ChannelFactory, Channels};
use arca_raft::{ArcaNode, RaftNode, RaftSettings};
use arca_storage::snapshot::SnapshotFiles;
use arca_storage::{Durability, LogStore, StateStore};
use arca_transport::admission::{Admission, Gate, PeerCertificates};
use arca_transport::credentials::NodeCredentials;
use arca_transport::join_token::JoinToken;
use arca_types::{ArcaError, ErrorCode};
use tonic::service::Routes;

use crate::access::{AuditSink, RbacAuthorizer, TokenAuthenticator};
use crate::api::Api;
use crate::edge::Edge;
use crate::engine::{Clock, Engine};
use crate::membership::MembershipView;
use crate::seal::SealManager;
use crate::services;
use arca_types::limits::BATCH_REQUEST_BYTES_MAX;

/// Largest message on the cluster listener, in bytes (a batch of entries or a snapshot chunk).
pub const CLUSTER_MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// How often the leader looks for soft-deleted objects whose retention has ended, in seconds.
pub const PURGE_SWEEP_INTERVAL_S: u64 = 10;
/// How often a node anchors the head of its audit chain in the cluster, by default, in seconds.
pub const AUDIT_ANCHOR_INTERVAL_S_DEFAULT: u64 = 60;
/// How many times a joining node follows a "not the leader, ask node N" answer in one attempt.
pub const JOIN_LEADER_HOPS_MAX: usize = 5;
/// Deadline of a join request, and of the request to be added (which waits while the new node
/// catches up), in seconds.
pub const JOIN_TIMEOUT_S: u64 = 30;
pub const ADD_NODE_TIMEOUT_S: u64 = 300;

/// Keys of this node's local (never replicated) metadata in the log store.
const NODE_ID_META: &str = "node_id";
/// Where a node that has not finished joining asks to be added, and whether as a learner.
const JOIN_PEER_META: &str = "join_peer";
const JOIN_AS_LEARNER_META: &str = "join_as_learner";

fn read_meta(log: &dyn LogStore, key: &str) -> Result<Option<String>, String> {
    match log.get_meta(key).map_err(|e| format!("failed to read {key}: {e}"))? {
        Some(bytes) => String::from_utf8(bytes).map(Some).map_err(|_| format!("the stored {key} is corrupt")),
        None => Ok(None),
    }
}

fn write_meta(log: &dyn LogStore, key: &str, value: &str) -> Result<(), String> {
    log.put_meta(key, value.as_bytes(), Durability::Synced).map_err(|e| format!("failed to write {key}: {e}"))
}

fn read_node_id(log: &dyn LogStore) -> Result<Option<u64>, String> {
    match read_meta(log, NODE_ID_META)? {
        Some(text) => text.parse().map(Some).map_err(|e| format!("the stored node id is corrupt: {e}")),
        None => Ok(None),
    }
}

fn write_node_id(log: &dyn LogStore, id: u64) -> Result<(), String> {
    write_meta(log, NODE_ID_META, &id.to_string())
}

/// The parts of a node that differ between a real machine and the simulation: storage, the network
/// to peers, time, randomness, the audit sink, and the node's cluster credentials with the way to
/// learn which certificate a caller of the cluster listener proved it holds.
pub struct NodeParts {
    pub log: Arc<dyn LogStore>,
    pub state: Arc<dyn StateStore>,
    /// Where Raft snapshots are built, received and kept (files in the data dir; memory in the
    /// simulation).
    pub snapshots: SnapshotFiles,
    pub channels: Arc<dyn ChannelFactory>,
    pub clock: Arc<dyn Clock>,
    pub entropy: Arc<dyn Entropy>,
    pub audit: Arc<dyn AuditSink>,
    pub credentials: Arc<NodeCredentials>,
    pub peer_certificates: Arc<dyn PeerCertificates>,
    /// The keys of identity providers federated credentials trust by discovery.
    pub provider_keys: Arc<dyn crate::providers::ProviderKeys>,
}

/// How a new node joins: a member's cluster address and the join token an operator minted for it.
#[derive(Clone)]
pub struct JoinPlan {
    pub peer: String,
    pub token: String,
}

impl std::fmt::Debug for JoinPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinPlan").field("peer", &self.peer).field("token", &"<redacted>").finish()
    }
}

/// How a node finds its cluster.
#[derive(Clone)]
pub struct NodeOptions {
    /// Addresses other nodes and clients use to reach this node (host:port).
    pub api_advertise: String,
    pub cluster_advertise: String,
    /// Start a new single-node cluster with this node as node 1.
    pub bootstrap: bool,
    /// On a bootstrapping node: the one-time secret `Init` must present (the caller keeps it where
    /// only the operator can read it).
    pub bootstrap_secret: Option<String>,
    /// Join the cluster of this member on first start.
    pub join: Option<JoinPlan>,
    pub join_as_learner: bool,
    /// The region (failure domain) this node runs in. A node of a region other than the voters' joins
    /// as a learner: an asynchronous replica off the commit path.
    pub region: arca_types::RegionName,
    pub raft: RaftSettings,
    pub vault_suffix: String,
    /// How often the node anchors the head of its audit chain in the cluster, in seconds.
    pub audit_anchor_interval_s: u64,
}

pub(crate) struct Shared {
    options: NodeOptions,
    engine: Arc<Engine>,
    log: Arc<dyn LogStore>,
    state: Arc<dyn StateStore>,
    snapshots: SnapshotFiles,
    channels: Channels,
    /// One join at a time: two would start two Raft cores on one store.
    join_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for NodeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeOptions")
            .field("api_advertise", &self.api_advertise)
            .field("cluster_advertise", &self.cluster_advertise)
            .field("bootstrap", &self.bootstrap)
            .field("join", &self.join)
            .field("join_as_learner", &self.join_as_learner)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// Which node a joining node talks to next.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) addr: String,
    pub(crate) node_id: Option<u64>,
}

/// The leader a refusal names, if it names one.
pub(crate) fn leader_hint(status: &tonic::Status) -> Option<Target> {
    let id = status.metadata().get("x-arca-leader-id")?.to_str().ok()?.parse().ok()?;
    let addr = status.metadata().get("x-arca-leader-addr")?.to_str().ok()?.to_owned();
    Some(Target { addr, node_id: Some(id) })
}

fn refused(what: &str, status: &tonic::Status) -> ArcaError {
    let code = match status.code() {
        tonic::Code::PermissionDenied => ErrorCode::JoinTokenInvalid,
        tonic::Code::InvalidArgument => ErrorCode::BadParameter,
        _ => ErrorCode::Unavailable,
    };
    ArcaError::new(code, format!("{what}: {}", status.message()))
}

/// This node's id: the one its certificate names, or, holding none yet, the one the cluster gives it
/// for `token` (asking `peer`, following the leader), with the certificate installed. Returns whom to
/// ask next.
pub(crate) async fn obtain_identity(
    channels: &Channels,
    credentials: &NodeCredentials,
    clock: &dyn Clock,
    peer: &str,
    token: Option<&str>,
) -> Result<(u64, Target), ArcaError> {
    let target = Target { addr: peer.to_owned(), node_id: None };
    if let Some(identity) = credentials.current().identity {
        return Ok((identity.node_id, target));
    }
    let token = token.ok_or_else(|| {
        ArcaError::bad_parameter("token", "this node holds no certificate yet: a join token is needed")
    })?;
    let parsed = JoinToken::parse(token).map_err(|e| ArcaError::bad_parameter("token", e.to_string()))?;
    credentials.set_join_pin(Some(parsed.pin));
    let (response, answered) = ask_to_join(channels, credentials, target, token).await?;
    let identity = credentials
        .install(response.certificate, response.ca_certificate, clock.now_unix())
        .map_err(|e| ArcaError::internal(format!("the certificate the cluster issued does not fit: {e}")))?;
    if identity.node_id != response.node_id {
        return Err(ArcaError::internal("the cluster issued a certificate for another node id"));
    }
    // Connections opened with the provisional certificate must not be reused.
    channels.clear();
    Ok((response.node_id, Target { addr: answered.addr, node_id: Some(response.leader_id) }))
}

/// Sends `Join` to `target`, following "ask the leader" answers; returns the answer and who gave it.
pub(crate) async fn ask_to_join(
    channels: &Channels,
    credentials: &NodeCredentials,
    mut target: Target,
    token: &str,
) -> Result<(JoinResponse, Target), ArcaError> {
    for _ in 0..JOIN_LEADER_HOPS_MAX {
        let mut client = channels.client(&target.addr, target.node_id).map_err(ArcaError::unavailable)?;
        let mut req = tonic::Request::new(JoinRequest { token: token.to_owned() });
        req.set_timeout(Duration::from_secs(JOIN_TIMEOUT_S));
        match client.join(req).await {
            Ok(response) => return Ok((response.into_inner(), target)),
            Err(status) => match leader_hint(&status) {
                Some(leader) => target = leader,
                None => {
                    if let Some(why) = credentials.take_join_refusal() {
                        return Err(ArcaError::new(
                            ErrorCode::JoinTokenInvalid,
                            format!("the node at {} is not in the cluster this join token is for: {why}", target.addr),
                        ));
                    }
                    return Err(refused("the cluster did not admit this node", &status));
                }
            },
        }
    }
    Err(ArcaError::unavailable("the cluster's leader kept moving while this node asked to join; retry"))
}

/// Sends `AddNode` to `target`, following "ask the leader" answers.
pub(crate) async fn ask_to_be_added(
    channels: &Channels,
    mut target: Target,
    request: AddNodeRequest,
) -> Result<arca_proto::cluster::v1::AddNodeResponse, ArcaError> {
    for _ in 0..JOIN_LEADER_HOPS_MAX {
        let mut client = channels.client(&target.addr, target.node_id).map_err(ArcaError::unavailable)?;
        let mut req = tonic::Request::new(request.clone());
        req.set_timeout(Duration::from_secs(ADD_NODE_TIMEOUT_S));
        match client.add_node(req).await {
            Ok(response) => return Ok(response.into_inner()),
            Err(status) => match leader_hint(&status) {
                Some(leader) => target = leader,
                None => return Err(refused("the cluster did not add this node", &status)),
            },
        }
    }
    Err(ArcaError::unavailable("the cluster's leader kept moving while this node asked to be added; retry"))
}

impl Shared {
    fn me(&self) -> ArcaNode {
        ArcaNode {
            api_addr: self.options.api_advertise.clone(),
            cluster_addr: self.options.cluster_advertise.clone(),
            region: self.options.region.to_string(),
        }
    }

    async fn start_raft(&self, node_id: u64) -> Result<RaftNode, String> {
        let raft = RaftNode::start(
            node_id,
            &self.options.raft,
            self.log.clone(),
            self.state.clone(),
            self.snapshots.clone(),
            self.channels.clone(),
        )
        .await?;
        self.engine.set_raft(raft.clone());
        tracing::info!(node_id, "started Raft");
        Ok(raft)
    }

    /// Joins the cluster `peer` belongs to (or finishes joining it): with `token`, be admitted and
    /// given a certificate; start Raft; then ask to be added. Safe to call again after any failure.
    pub(crate) async fn join(&self, peer: &str, token: Option<&str>, as_learner: bool) -> Result<(), ArcaError> {
        let _one_at_a_time = self.join_lock.lock().await;
        let (node_id, target) =
            obtain_identity(&self.channels, &self.engine.credentials, &*self.engine.clock, peer, token).await?;
        match read_node_id(&*self.log).map_err(ArcaError::internal)? {
            Some(stored) if stored != node_id => {
                return Err(ArcaError::internal(format!(
                    "this node's stored id ({stored}) is not the one its certificate names ({node_id})"
                )))
            }
            Some(_) => {}
            None => write_node_id(&*self.log, node_id).map_err(ArcaError::internal)?,
        }
        write_meta(&*self.log, JOIN_PEER_META, peer).map_err(ArcaError::internal)?;
        write_meta(&*self.log, JOIN_AS_LEARNER_META, if as_learner { "1" } else { "0" })
            .map_err(ArcaError::internal)?;
        if !self.engine.has_raft() {
            self.start_raft(node_id).await.map_err(ArcaError::internal)?;
        }
        // Deliberate bug (danger-faults builds only): stop after the learner step, as a crash would.
        let ask_as_learner = as_learner || arca_types::faults::active(arca_types::faults::Fault::JoinStopsAfterLearner);
        self.ask_to_be_added(target, node_id, ask_as_learner).await?;
        tracing::info!(node_id, "joined the cluster");
        Ok(())
    }

    /// Sends `AddNode` for this node to `target`, following "ask the leader" answers.
    async fn ask_to_be_added(&self, target: Target, node_id: u64, as_learner: bool) -> Result<(), ArcaError> {
        let me = self.me();
        let request = AddNodeRequest {
            node_id,
            api_addr: me.api_addr.clone(),
            cluster_addr: me.cluster_addr.clone(),
            as_learner,
            region: me.region.clone(),
            ..Default::default()
        };
        ask_to_be_added(&self.channels, target, request).await.map(drop)
    }

    /// After a restart: a node that was admitted but never added, or added as a learner but never
    /// promoted when it asked to be a voter, asks again.
    fn resume_joining(self: &Arc<Self>, raft: &RaftNode) -> Result<bool, String> {
        let Some(peer) =
            read_meta(&*self.log, JOIN_PEER_META)?.or_else(|| self.options.join.as_ref().map(|j| j.peer.clone()))
        else {
            return Ok(false);
        };
        let as_learner = match read_meta(&*self.log, JOIN_AS_LEARNER_META)? {
            Some(flag) => flag == "1",
            None => self.options.join_as_learner,
        };
        let view = raft.view();
        let me = view.nodes.iter().find(|n| n.node_id == raft.node_id);
        // A node of another region than the voters' stays a learner: it has nothing left to ask.
        let primary = crate::regions::primary_region(&view);
        let unfinished = match me {
            None => !raft.has_seen_membership(),
            Some(node) => !node.voter && !as_learner && primary.as_deref() == Some(node.node.region.as_str()),
        };
        if unfinished {
            let token = self.options.join.as_ref().map(|j| j.token.clone());
            self.join_in_background(peer, token, as_learner);
        }
        Ok(unfinished)
    }

    fn join_in_background(self: &Arc<Self>, peer: String, token: Option<String>, as_learner: bool) {
        let shared = self.clone();
        tokio::spawn(async move {
            loop {
                match shared.join(&peer, token.as_deref(), as_learner).await {
                    Ok(()) => break,
                    Err(e) if matches!(e.code, ErrorCode::JoinTokenInvalid | ErrorCode::BadParameter) => {
                        tracing::error!("failed to join the cluster, not retrying: {e}");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!("failed to join the cluster, retrying: {e}");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
    }
}

/// Which of a node's two gRPC listeners a set of routes belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The public API (vaults, secrets, operator, cluster, health, reflection).
    Api,
    /// Node-to-node traffic (Raft, forwarding); mutual TLS in production.
    Cluster,
}

/// Assembles a node from its parts, hands each listener's routes to `spawn_server` (which must start
/// serving them before returning), then starts Raft. Returns once Raft (if this node has an id) runs
/// and has recovered its state machine. Production serves the routes with tonic over TLS; the
/// simulation with hyper over its own network.
pub async fn serve(
    parts: NodeParts,
    options: NodeOptions,
    mut spawn_server: impl FnMut(Listener, Routes),
) -> Result<Arc<Engine>, String> {
    let channels = Channels::new(parts.channels);
    let seal = Arc::new(SealManager::new(parts.state.clone(), parts.entropy));
    let engine = Arc::new(Engine::new(
        parts.state.clone(),
        seal,
        parts.clock,
        options.vault_suffix.clone(),
        parts.credentials.clone(),
        Arc::new(crate::failover::LogEpochStore(parts.log.clone())),
    ));
    let api = Arc::new(Api {
        engine: engine.clone(),
        authenticator: Arc::new(TokenAuthenticator),
        authorizer: Arc::new(RbacAuthorizer),
        audit: parts.audit,
        bootstrap_secret: options.bootstrap_secret.clone().map(zeroize::Zeroizing::new),
        access_cache: Default::default(),
    });
    let mut raft_settings = options.raft.clone();
    if let Ok(Some((_, cluster))) = crate::membership::cluster_record(&*parts.state) {
        raft_settings.cluster_name = format!("arca-{}", hex::encode(cluster.cluster_id));
    }
    let shared = Arc::new(Shared {
        options: NodeOptions { raft: raft_settings, ..options.clone() },
        engine: engine.clone(),
        log: parts.log,
        state: parts.state,
        snapshots: parts.snapshots,
        channels,
        join_lock: tokio::sync::Mutex::new(()),
    });

    // Every cluster RPC passes admission before a handler sees it.
    let gate =
        Arc::new(Gate::new(parts.credentials, Arc::new(MembershipView(engine.clone())), parts.peer_certificates));
    let node_service = NodeServiceServer::new(services::node::Node(api.clone()))
        .max_decoding_message_size(CLUSTER_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(CLUSTER_MESSAGE_BYTES_MAX);
    spawn_server(Listener::Cluster, Routes::new(Admission::new(node_service, gate)));

    let joiner_shared = shared.clone();
    let joiner: services::cluster::Joiner = Arc::new(move |peer, token, as_learner| {
        let shared = joiner_shared.clone();
        Box::pin(async move { shared.join(&peer, Some(&token), as_learner).await })
    });
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(arca_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| format!("failed to build reflection: {e}"))?;
    // Every API service but health sits behind the edge: size limits on the length prefix, and a
    // token checked before the body is read (reflection included).
    let routes = Routes::new(health_service)
        .add_service(Edge::new(reflection, api.clone()))
        .add_service(Edge::new(
            VaultServiceServer::new(services::vaults::Vaults(api.clone()))
                .max_decoding_message_size(BATCH_REQUEST_BYTES_MAX),
            api.clone(),
        ))
        .add_service(Edge::new(
            AuthServiceServer::new(services::principals::Auth::new(api.clone(), parts.provider_keys.clone())),
            api.clone(),
        ))
        .add_service(Edge::new(PrincipalServiceServer::new(services::principals::Principals(api.clone())), api.clone()))
        .add_service(Edge::new(RoleServiceServer::new(services::roles::Roles(api.clone())), api.clone()))
        .add_service(Edge::new(
            AgentServiceServer::new(services::agents::Agents(api.clone(), parts.provider_keys.clone())),
            api.clone(),
        ))
        .add_service(Edge::new(AuditServiceServer::new(services::audit::Audit(api.clone())), api.clone()))
        .add_service(Edge::new(
            SecretServiceServer::new(services::secrets::Secrets(api.clone()))
                .max_decoding_message_size(BATCH_REQUEST_BYTES_MAX)
                .max_encoding_message_size(BATCH_REQUEST_BYTES_MAX),
            api.clone(),
        ))
        .add_service(Edge::new(
            KeyServiceServer::new(services::keys::Keys(api.clone()))
                .max_decoding_message_size(BATCH_REQUEST_BYTES_MAX)
                .max_encoding_message_size(BATCH_REQUEST_BYTES_MAX),
            api.clone(),
        ))
        .add_service(Edge::new(
            CryptoServiceServer::new(services::crypto::Crypto(api.clone()))
                .max_decoding_message_size(BATCH_REQUEST_BYTES_MAX)
                .max_encoding_message_size(BATCH_REQUEST_BYTES_MAX),
            api.clone(),
        ))
        .add_service(Edge::new(
            OperatorServiceServer::new(services::operator::Operator(api.clone(), Default::default())),
            api.clone(),
        ))
        .add_service(Edge::new(
            ClusterServiceServer::new(services::cluster::Cluster { api: api.clone(), joiner }),
            api.clone(),
        ));
    spawn_server(Listener::Api, routes);

    match read_node_id(&*shared.log)? {
        Some(id) => {
            let raft = shared.start_raft(id).await?;
            shared.resume_joining(&raft)?;
        }
        None if options.bootstrap => {
            write_node_id(&*shared.log, 1)?;
            let raft = shared.start_raft(1).await?;
            raft.bootstrap(shared.me()).await?;
        }
        None => match &options.join {
            Some(plan) => {
                shared.join_in_background(plan.peer.clone(), Some(plan.token.clone()), options.join_as_learner)
            }
            None => {
                if let Some(identity) = engine.credentials.current().identity {
                    // Admitted and certified, but the node id never reached the log store.
                    tracing::warn!(node_id = identity.node_id, "this node was admitted but has no id stored");
                }
            }
        },
    }
    if let Ok(raft) = engine.raft() {
        if let Err(e) = raft.wait_recovered(Duration::from_secs(30)).await {
            tracing::warn!("state machine recovery is slow: {e}");
        }
    }
    spawn_background(api.clone(), health_reporter, options.audit_anchor_interval_s);
    Ok(engine)
}

fn spawn_background(api: Arc<Api>, health: tonic_health::server::HealthReporter, anchor_every_s: u64) {
    let engine = api.engine.clone();
    let leasing = api.engine.clone();
    tokio::spawn(async move {
        // The primary's leader renews its lease on the epoch while failover is set up.
        loop {
            let every = match leasing.topology() {
                Ok(Some(topo)) => topo.witness.timing.renew_every_ms(),
                _ => crate::regions::LAG_SAMPLE_INTERVAL_MS,
            };
            leasing.renew_lease().await;
            tokio::time::sleep(Duration::from_millis(every)).await;
        }
    });
    let promoting = api.clone();
    tokio::spawn(async move {
        // A node of the secondary region takes over once the primary is lost (crate::promotion).
        let mut watch = crate::promotion::EventWatch::default();
        loop {
            tokio::time::sleep(Duration::from_millis(crate::promotion::PROMOTION_CHECK_EVERY_MS)).await;
            promoting.engine.watch_events(&mut watch);
            match promoting.engine.try_promote().await {
                Ok(Some(won)) => {
                    tracing::warn!(epoch = won.epoch.number, primary = %won.epoch.primary, "founded the new epoch");
                    promoting.audit_failover(&won);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!("failed to promote this region: {e}"),
            }
        }
    });
    let displaced = api.engine.clone();
    tokio::spawn(async move {
        // A node of a primary that a newer lineage replaced files what it holds and rejoins
        // (crate::divergence).
        loop {
            tokio::time::sleep(Duration::from_millis(crate::divergence::DISPLACED_CHECK_EVERY_MS)).await;
            match displaced.check_displaced().await {
                Ok(Some(rejoin)) => {
                    displaced.rejoin.send_replace(Some(rejoin));
                    break;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!("this node was displaced and could not file its divergence yet: {e}"),
            }
        }
    });
    let sampled = api.engine.clone();
    tokio::spawn(async move {
        // The leader notes when its log reached which index, for the replicas' lag in time.
        loop {
            tokio::time::sleep(Duration::from_millis(crate::regions::LAG_SAMPLE_INTERVAL_MS)).await;
            match sampled.raft() {
                Ok(raft) if raft.is_leader() => {
                    sampled.lag_clock.record(raft.view().last_log_index, tokio::time::Instant::now())
                }
                _ => sampled.lag_clock.clear(),
            }
        }
    });
    tokio::spawn(async move {
        let mut tick: u64 = 0;
        let mut anchored = 0u64;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            tick += 1;
            let serving = !engine.seal.is_sealed() && engine.raft().ok().is_some_and(|r| r.leader().is_some());
            let status =
                if serving { tonic_health::ServingStatus::Serving } else { tonic_health::ServingStatus::NotServing };
            health.set_service_status("", status).await;
            if let Err(e) = engine.seal.refresh_keyring() {
                tracing::debug!("failed to refresh the keyring: {e}");
            }
            if engine.raft().is_ok_and(|r| r.is_leader()) {
                if let Err(e) = crate::membership::ensure_cluster_record(&engine).await {
                    tracing::debug!("failed to record the cluster's id: {e}");
                }
            }
            if let Err(e) = crate::membership::renew_own_certificate(&api) {
                tracing::warn!("failed to renew this node's cluster certificate: {e}");
            }
            if tick.is_multiple_of(anchor_every_s.max(1)) && !engine.seal.is_sealed() {
                match api.anchor_audit(anchored).await {
                    Ok(Some(seq)) => anchored = seq,
                    Ok(None) => {}
                    Err(e) => tracing::warn!("failed to anchor the audit log: {e}"),
                }
            }
            if tick.is_multiple_of(PURGE_SWEEP_INTERVAL_S) && !engine.seal.is_sealed() {
                match api.sweep_purges().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(purged = n, "purged objects whose retention ended"),
                    Err(e) => tracing::warn!("failed to sweep purges: {e}"),
                }
                match api.sweep_request_ids().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(expired = n, "dropped the outcomes of old client request ids"),
                    Err(e) => tracing::warn!("failed to sweep client request ids: {e}"),
                }
                match services::keys::run_lifetime_actions(&api).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(actions = n, "ran key lifetime actions"),
                    Err(e) => tracing::warn!("failed to run key lifetime actions: {e}"),
                }
                engine.key_cache.evict_idle(crate::key_use::IDLE_EVICT);
            }
        }
    });
}
