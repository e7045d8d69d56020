//! Starting a node: storage, seal, Raft, both listeners, and the background loops.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arca_crypto::OsEntropy;
use arca_proto::cluster::v1::node_service_server::NodeServiceServer;
use arca_proto::cluster::v1::AddNodeRequest;
use arca_proto::v1::cluster_service_server::ClusterServiceServer;
use arca_proto::v1::operator_service_server::OperatorServiceServer;
use arca_proto::v1::secret_service_server::SecretServiceServer;
use arca_proto::v1::vault_service_server::VaultServiceServer;
use arca_raft::network::Channels;
use arca_raft::{ArcaNode, RaftNode, RaftSettings};
use arca_storage_rocksdb::RocksStore;
use arca_types::ArcaError;
use tokio::net::TcpListener;

use crate::access::{FileAuditSink, RootOnlyAuthorizer, TokenAuthenticator};
use crate::api::Api;
use crate::engine::{DangerOffsetClock, Engine, SystemClock};
use crate::seal::SealManager;
use crate::services;
use crate::tls::{tls_incoming, TlsChannelFactory, TlsFiles, TlsMaterial};

/// Largest gRPC message a node accepts, in bytes (a restore blob of 500 versions at the value limit).
pub const GRPC_MESSAGE_BYTES_MAX: usize = 16 * 1024 * 1024 + 64 * 1024;
/// How often the leader looks for soft-deleted objects whose retention has ended, in seconds.
pub const PURGE_SWEEP_INTERVAL_S: u64 = 10;

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub api_listen: SocketAddr,
    pub cluster_listen: SocketAddr,
    /// Addresses other nodes and clients use to reach this node (host:port).
    pub api_advertise: String,
    pub cluster_advertise: String,
    pub tls: TlsFiles,
    /// Start a new single-node cluster with this node as node 1.
    pub bootstrap: bool,
    /// Join the cluster of this member (its cluster address) on first start.
    pub join: Option<String>,
    pub join_as_learner: bool,
    /// A file holding an unseal key; the node unseals itself from it.
    pub unseal_key_file: Option<PathBuf>,
    pub raft: RaftSettings,
    pub vault_suffix: String,
    /// Testing only: shift this node's clock by the seconds written in this file.
    pub danger_clock_offset_file: Option<PathBuf>,
}

/// A running node.
pub struct RunningNode {
    pub engine: Arc<Engine>,
    pub api_addr: SocketAddr,
    pub cluster_addr: SocketAddr,
}

fn node_id_path(config: &NodeConfig) -> PathBuf {
    config.data_dir.join("node.id")
}

fn read_node_id(config: &NodeConfig) -> Result<Option<u64>, String> {
    match std::fs::read_to_string(node_id_path(config)) {
        Ok(s) => s.trim().parse().map(Some).map_err(|e| format!("node.id is corrupt: {e}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("failed to read node.id: {e}")),
    }
}

fn write_node_id(config: &NodeConfig, id: u64) -> Result<(), String> {
    let tmp = config.data_dir.join("node.id.tmp");
    std::fs::write(&tmp, id.to_string()).map_err(|e| format!("failed to write node.id: {e}"))?;
    std::fs::rename(&tmp, node_id_path(config)).map_err(|e| format!("failed to write node.id: {e}"))
}

struct Shared {
    config: NodeConfig,
    engine: Arc<Engine>,
    store: RocksStore,
    channels: Channels,
}

impl Shared {
    fn me(&self) -> ArcaNode {
        ArcaNode { api_addr: self.config.api_advertise.clone(), cluster_addr: self.config.cluster_advertise.clone() }
    }

    async fn start_raft(&self, node_id: u64) -> Result<RaftNode, String> {
        let raft = RaftNode::start(
            node_id,
            &self.config.raft,
            Arc::new(self.store.clone()),
            Arc::new(self.store.clone()),
            self.channels.clone(),
        )
        .await?;
        self.engine.set_raft(raft.clone());
        Ok(raft)
    }

    /// Joins the cluster `peer` belongs to: get an id, start Raft, then ask to be added.
    async fn join(&self, peer: &str, as_learner: bool) -> Result<(), ArcaError> {
        let mut client = self.channels.client(peer).map_err(ArcaError::unavailable)?;
        let me = self.me();
        let node_id = match read_node_id(&self.config).map_err(ArcaError::internal)? {
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
                write_node_id(&self.config, id).map_err(ArcaError::internal)?;
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

/// Starts a node and returns once both listeners are bound and Raft (if this node has an id) runs.
pub async fn start(config: NodeConfig) -> Result<RunningNode, String> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| format!("failed to create the data dir: {e}"))?;
    let store = RocksStore::open(&config.data_dir.join("db")).map_err(|e| e.to_string())?;
    let tls = TlsMaterial::load(&config.tls)?;
    let channels = Channels::new(Arc::new(TlsChannelFactory(tls.clone())));
    let entropy: Arc<dyn arca_crypto::Entropy> = Arc::new(OsEntropy);
    let seal = Arc::new(SealManager::new(Arc::new(store.clone()), entropy));
    let clock: Arc<dyn crate::engine::Clock> = match &config.danger_clock_offset_file {
        Some(file) => {
            tracing::warn!("the clock is shifted by the contents of {}: for tests only", file.display());
            Arc::new(DangerOffsetClock { offset_file: file.clone() })
        }
        None => Arc::new(SystemClock),
    };
    let engine = Arc::new(Engine::new(Arc::new(store.clone()), seal, clock, config.vault_suffix.clone()));
    let api = Arc::new(Api {
        engine: engine.clone(),
        authenticator: Arc::new(TokenAuthenticator),
        authorizer: Arc::new(RootOnlyAuthorizer),
        audit: Arc::new(FileAuditSink::new(config.data_dir.join("audit.log"))),
    });
    let shared = Arc::new(Shared { config: config.clone(), engine: engine.clone(), store, channels });

    let cluster_listener = TcpListener::bind(config.cluster_listen)
        .await
        .map_err(|e| format!("failed to bind the cluster listener: {e}"))?;
    let api_listener =
        TcpListener::bind(config.api_listen).await.map_err(|e| format!("failed to bind the API listener: {e}"))?;
    let cluster_addr = cluster_listener.local_addr().map_err(|e| e.to_string())?;
    let api_addr = api_listener.local_addr().map_err(|e| e.to_string())?;

    let node_service = NodeServiceServer::new(services::node::Node(engine.clone()))
        .max_decoding_message_size(64 * 1024 * 1024)
        .max_encoding_message_size(64 * 1024 * 1024);
    let cluster_incoming = tls_incoming(cluster_listener, tls.server_config(true)?);
    tokio::spawn(async move {
        let result = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(10)))
            .add_service(node_service)
            .serve_with_incoming(cluster_incoming)
            .await;
        if let Err(e) = result {
            tracing::error!("cluster listener stopped: {e}");
        }
    });

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
    let api_incoming = tls_incoming(api_listener, tls.server_config(false)?);
    let server = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .add_service(health_service)
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
        .add_service(OperatorServiceServer::new(services::operator::Operator(api.clone())))
        .add_service(ClusterServiceServer::new(services::cluster::Cluster { api: api.clone(), joiner }));
    tokio::spawn(async move {
        if let Err(e) = server.serve_with_incoming(api_incoming).await {
            tracing::error!("API listener stopped: {e}");
        }
    });

    match read_node_id(&config)? {
        Some(id) => {
            shared.start_raft(id).await?;
        }
        None if config.bootstrap => {
            write_node_id(&config, 1)?;
            let raft = shared.start_raft(1).await?;
            raft.bootstrap(shared.me()).await?;
        }
        None => {
            if let Some(peer) = config.join.clone() {
                let shared = shared.clone();
                let as_learner = config.join_as_learner;
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
        }
    }
    if let Ok(raft) = engine.raft() {
        if let Err(e) = raft.wait_recovered(Duration::from_secs(30)).await {
            tracing::warn!("state machine recovery is slow: {e}");
        }
    }
    spawn_background(engine.clone(), config.unseal_key_file.clone(), health_reporter);
    Ok(RunningNode { engine, api_addr, cluster_addr })
}

fn spawn_background(
    engine: Arc<Engine>,
    unseal_key_file: Option<PathBuf>,
    health: tonic_health::server::HealthReporter,
) {
    if let Some(path) = unseal_key_file {
        let engine = engine.clone();
        tokio::spawn(async move {
            loop {
                if engine.seal.is_sealed() {
                    match std::fs::read_to_string(&path) {
                        Ok(key) => {
                            if let Ok(status) = engine.seal.unseal(key.trim(), true) {
                                if !status.sealed {
                                    tracing::info!("unsealed from the unseal key file");
                                }
                            }
                        }
                        Err(e) => tracing::warn!("failed to read the unseal key file: {e}"),
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }
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
            }
        }
    });
}
