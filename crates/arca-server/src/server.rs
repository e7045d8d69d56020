//! Assembling a node from its parts: seal, engine, Raft, both gRPC listeners, and the background
//! loops. Storage, transport, time and randomness come in as [`NodeParts`], so the same code runs on
//! RocksDB and TLS sockets in `arcad` and on in-memory stores and a simulated network in the simulation.

use std::sync::Arc;
use std::time::Duration;

use arca_crypto::Entropy;
use arca_proto::cluster::v1::node_service_server::NodeServiceServer;
use arca_proto::cluster::v1::AddNodeRequest;
use arca_proto::v1::cluster_service_server::ClusterServiceServer;
use arca_proto::v1::crypto_service_server::CryptoServiceServer;
use arca_proto::v1::key_service_server::KeyServiceServer;
use arca_proto::v1::operator_service_server::OperatorServiceServer;
use arca_proto::v1::secret_service_server::SecretServiceServer;
use arca_proto::v1::vault_service_server::VaultServiceServer;
use arca_raft::network::{ChannelFactory, Channels};
use arca_raft::{ArcaNode, RaftNode, RaftSettings};
use arca_storage::{Durability, LogStore, StateStore};
use arca_types::ArcaError;
use tonic::service::Routes;

use crate::access::{AuditSink, RootOnlyAuthorizer, TokenAuthenticator};
use crate::api::Api;
use crate::engine::{Clock, Engine};
use crate::seal::SealManager;
use crate::services;

/// Largest gRPC message a node accepts, in bytes (a restore blob of 500 versions at the value limit).
pub const GRPC_MESSAGE_BYTES_MAX: usize = 16 * 1024 * 1024 + 64 * 1024;
/// How often the leader looks for soft-deleted objects whose retention has ended, in seconds.
pub const PURGE_SWEEP_INTERVAL_S: u64 = 10;

/// Key of the node id in the log store's local (never replicated) metadata.
const NODE_ID_META: &str = "node_id";

fn read_node_id(log: &dyn LogStore) -> Result<Option<u64>, String> {
    match log.get_meta(NODE_ID_META).map_err(|e| format!("failed to read the node id: {e}"))? {
        Some(bytes) => {
            let text = String::from_utf8(bytes).map_err(|_| "the stored node id is corrupt".to_owned())?;
            text.parse().map(Some).map_err(|e| format!("the stored node id is corrupt: {e}"))
        }
        None => Ok(None),
    }
}

fn write_node_id(log: &dyn LogStore, id: u64) -> Result<(), String> {
    log.put_meta(NODE_ID_META, id.to_string().as_bytes(), Durability::Synced)
        .map_err(|e| format!("failed to write the node id: {e}"))
}

/// The parts of a node that differ between a real machine and the simulation: storage, the network
/// to peers, time, randomness and the audit sink.
pub struct NodeParts {
    pub log: Arc<dyn LogStore>,
    pub state: Arc<dyn StateStore>,
    pub channels: Arc<dyn ChannelFactory>,
    pub clock: Arc<dyn Clock>,
    pub entropy: Arc<dyn Entropy>,
    pub audit: Arc<dyn AuditSink>,
}

/// How a node finds its cluster.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// Addresses other nodes and clients use to reach this node (host:port).
    pub api_advertise: String,
    pub cluster_advertise: String,
    /// Start a new single-node cluster with this node as node 1.
    pub bootstrap: bool,
    /// Join the cluster of this member (its cluster address) on first start.
    pub join: Option<String>,
    pub join_as_learner: bool,
    pub raft: RaftSettings,
    pub vault_suffix: String,
}

struct Shared {
    options: NodeOptions,
    engine: Arc<Engine>,
    log: Arc<dyn LogStore>,
    state: Arc<dyn StateStore>,
    channels: Channels,
}

impl Shared {
    fn me(&self) -> ArcaNode {
        ArcaNode { api_addr: self.options.api_advertise.clone(), cluster_addr: self.options.cluster_advertise.clone() }
    }

    async fn start_raft(&self, node_id: u64) -> Result<RaftNode, String> {
        let raft =
            RaftNode::start(node_id, &self.options.raft, self.log.clone(), self.state.clone(), self.channels.clone())
                .await?;
        self.engine.set_raft(raft.clone());
        Ok(raft)
    }

    /// Joins the cluster `peer` belongs to: get an id, start Raft, then ask to be added.
    async fn join(&self, peer: &str, as_learner: bool) -> Result<(), ArcaError> {
        let mut client = self.channels.client(peer).map_err(ArcaError::unavailable)?;
        let me = self.me();
        let node_id = match read_node_id(&*self.log).map_err(ArcaError::internal)? {
            Some(id) => id,
            None => {
                let mut req = tonic::Request::new(AddNodeRequest { phase: 0, ..Default::default() });
                req.set_timeout(Duration::from_secs(30));
                let id = client
                    .add_node(req)
                    .await
                    .map_err(|s| ArcaError::unavailable(format!("the peer refused: {}", s.message())))?
                    .into_inner()
                    .node_id;
                write_node_id(&*self.log, id).map_err(ArcaError::internal)?;
                id
            }
        };
        if !self.engine.has_raft() {
            self.start_raft(node_id).await.map_err(ArcaError::internal)?;
        }
        let request =
            AddNodeRequest { node_id, api_addr: me.api_addr, cluster_addr: me.cluster_addr, as_learner, phase: 1 };
        let mut req = tonic::Request::new(request);
        req.set_timeout(Duration::from_secs(300));
        client
            .add_node(req)
            .await
            .map_err(|s| ArcaError::unavailable(format!("the cluster did not add this node: {}", s.message())))?;
        tracing::info!(node_id, "joined the cluster");
        Ok(())
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
    let engine = Arc::new(Engine::new(parts.state.clone(), seal, parts.clock, options.vault_suffix.clone()));
    let api = Arc::new(Api {
        engine: engine.clone(),
        authenticator: Arc::new(TokenAuthenticator),
        authorizer: Arc::new(RootOnlyAuthorizer),
        audit: parts.audit,
    });
    let shared = Arc::new(Shared {
        options: options.clone(),
        engine: engine.clone(),
        log: parts.log,
        state: parts.state,
        channels,
    });

    let node_service = NodeServiceServer::new(services::node::Node(engine.clone()))
        .max_decoding_message_size(64 * 1024 * 1024)
        .max_encoding_message_size(64 * 1024 * 1024);
    spawn_server(Listener::Cluster, Routes::new(node_service));

    let joiner_shared = shared.clone();
    let joiner: services::cluster::Joiner = Arc::new(move |peer, as_learner| {
        let shared = joiner_shared.clone();
        Box::pin(async move { shared.join(&peer, as_learner).await })
    });
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(arca_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| format!("failed to build reflection: {e}"))?;
    let routes = Routes::new(health_service)
        .add_service(reflection)
        .add_service(
            VaultServiceServer::new(services::vaults::Vaults(api.clone()))
                .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX),
        )
        .add_service(
            SecretServiceServer::new(services::secrets::Secrets(api.clone()))
                .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
                .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX),
        )
        .add_service(
            KeyServiceServer::new(services::keys::Keys(api.clone()))
                .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
                .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX),
        )
        .add_service(
            CryptoServiceServer::new(services::crypto::Crypto(api.clone()))
                .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
                .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX),
        )
        .add_service(OperatorServiceServer::new(services::operator::Operator(api.clone())))
        .add_service(ClusterServiceServer::new(services::cluster::Cluster { api: api.clone(), joiner }));
    spawn_server(Listener::Api, routes);

    let join_in_background = |shared: Arc<Shared>| {
        if let Some(peer) = options.join.clone() {
            let as_learner = options.join_as_learner;
            tokio::spawn(async move {
                loop {
                    match shared.join(&peer, as_learner).await {
                        Ok(()) => break,
                        Err(e) => {
                            tracing::warn!("failed to join the cluster, retrying: {e}");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            });
        }
    };
    match read_node_id(&*shared.log)? {
        Some(id) => {
            let raft = shared.start_raft(id).await?;
            // A node that got its id but crashed before the cluster added it has never seen a
            // membership: finish joining. (A node that was a member, even one since removed, has.)
            // Its vote says nothing: the leader that was adding it may have reached it and then lost
            // office before the change committed.
            if !raft.has_seen_membership() {
                join_in_background(shared.clone());
            }
        }
        None if options.bootstrap => {
            write_node_id(&*shared.log, 1)?;
            let raft = shared.start_raft(1).await?;
            raft.bootstrap(shared.me()).await?;
        }
        None => join_in_background(shared.clone()),
    }
    if let Ok(raft) = engine.raft() {
        if let Err(e) = raft.wait_recovered(Duration::from_secs(30)).await {
            tracing::warn!("state machine recovery is slow: {e}");
        }
    }
    spawn_background(api.clone(), health_reporter);
    Ok(engine)
}

fn spawn_background(api: Arc<Api>, health: tonic_health::server::HealthReporter) {
    let engine = api.engine.clone();
    tokio::spawn(async move {
        let mut tick: u64 = 0;
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
            if tick.is_multiple_of(PURGE_SWEEP_INTERVAL_S) && !engine.seal.is_sealed() {
                match engine.sweep_purges().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(purged = n, "purged objects whose retention ended"),
                    Err(e) => tracing::warn!("failed to sweep purges: {e}"),
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
