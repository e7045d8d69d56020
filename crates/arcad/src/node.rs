//! A production node: RocksDB in the data dir, TLS on both listeners (the operator's certificate on
//! the API listener, the node's cluster certificate on the cluster listener), the system clock and the
//! OS random source, and a JSON-lines audit file, handed to [`arca_server::serve`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arca_crypto::OsEntropy;
use arca_raft::RaftSettings;
use arca_server::access::FileAuditSink;
use arca_server::engine::{Clock, DangerOffsetClock, Engine, SystemClock};
use arca_server::{JoinPlan, Listener, NodeOptions, NodeParts, SnapshotFiles};
use arca_storage_rocksdb::RocksStore;
use arca_transport::admission::TlsPeerCertificates;
use arca_transport::credentials::{FileCredentialStore, NodeCredentials};
use arca_transport::incoming::{tls_incoming, ConnectionLimits};
use arca_transport::tls::{api_server_config, cluster_server_config, read_pem_file, TlsChannelFactory};
use arca_types::limits::{API_CONNECTIONS_MAX, HTTP2_STREAMS_PER_CONNECTION_MAX, REQUEST_DURATION_S_MAX};
use tokio::net::TcpListener;

/// HTTP/2 keepalive pings on the API listener, every this many seconds.
const API_KEEPALIVE_INTERVAL_S: u64 = 30;
/// HTTP/2 keepalive pings on the cluster listener, every this many seconds, so a peer connection
/// that died silently is closed within interval plus timeout.
const CLUSTER_KEEPALIVE_INTERVAL_S: u64 = 10;
/// A connection whose keepalive ping goes unanswered this many seconds is closed.
const KEEPALIVE_TIMEOUT_S: u64 = 10;

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    /// The audit log file.
    pub audit_log: PathBuf,
    pub api_listen: SocketAddr,
    pub cluster_listen: SocketAddr,
    /// Addresses other nodes and clients use to reach this node (host:port).
    pub api_advertise: String,
    pub cluster_advertise: String,
    /// The API listener's certificate chain and key (PEM files from the operator's PKI).
    pub api_cert: PathBuf,
    pub api_key: PathBuf,
    /// Start a new single-node cluster with this node as node 1.
    pub bootstrap: bool,
    /// On a bootstrapping node: the secret `Init` must present.
    pub bootstrap_secret: Option<String>,
    /// Join the cluster of this member (its cluster address) with a join token, on first start.
    pub join: Option<JoinPlan>,
    pub join_as_learner: bool,
    /// The region this node runs in.
    pub region: arca_types::RegionName,
    /// A file holding an unseal key; the node unseals itself from it.
    pub unseal_key_file: Option<PathBuf>,
    pub raft: RaftSettings,
    pub vault_suffix: String,
    pub audit_anchor_interval_s: u64,
    /// Testing only: shift this node's clock by the seconds written in this file.
    pub danger_clock_offset_file: Option<PathBuf>,
    /// The CAs (PEM) trusted for identity providers' HTTPS (discovery and JWKS); default the system's.
    pub oidc_ca_file: Option<PathBuf>,
}

/// Identity providers' keys, fetched over HTTPS trusting `ca_file` (or the system's CAs). A CA file
/// that cannot be read stops the node; a missing system bundle only turns discovery off, as a node
/// with no provider configured does not need it.
fn provider_keys(ca_file: Option<&std::path::Path>) -> Result<Arc<dyn arca_server::providers::ProviderKeys>, String> {
    match arca_oidc::HttpsClient::new(ca_file) {
        Ok(client) => Ok(Arc::new(arca_oidc::JwksCache::new(client))),
        Err(e) if ca_file.is_some() => Err(format!("--oidc-ca-file: {e}")),
        Err(e) => {
            tracing::warn!("identity providers' keys cannot be fetched by discovery: {e}");
            Ok(Arc::new(arca_server::providers::NoProviders))
        }
    }
}

/// A running node.
pub struct RunningNode {
    pub engine: Arc<Engine>,
    pub api_addr: SocketAddr,
    pub cluster_addr: SocketAddr,
}

/// Starts a node and returns once both listeners are bound and Raft (if this node has an id) runs.
pub async fn start(mut config: NodeConfig) -> Result<RunningNode, String> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| format!("failed to create the data dir: {e}"))?;
    // A node a newer lineage displaced joins it again, with its old state set aside.
    if let Some(plan) = crate::rejoin::take_plan(&config.data_dir)? {
        config.join = Some(plan);
        config.bootstrap = false;
        config.join_as_learner = true;
    }
    let store = RocksStore::open(&config.data_dir.join("db")).map_err(|e| e.to_string())?;
    let snapshots = SnapshotFiles::in_dir(config.data_dir.join("snapshots")).map_err(|e| e.to_string())?;
    let api_tls = api_server_config(
        &read_pem_file(&config.api_cert).map_err(|e| e.to_string())?,
        &read_pem_file(&config.api_key).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let clock: Arc<dyn Clock> = match &config.danger_clock_offset_file {
        Some(file) => {
            tracing::warn!("the clock is shifted by the contents of {}: for tests only", file.display());
            Arc::new(DangerOffsetClock { offset_file: file.clone() })
        }
        None => Arc::new(SystemClock),
    };
    let (credentials, unix_clock) = cluster_credentials(&config.data_dir, &clock, "this node's")?;
    let cluster_tls = cluster_server_config(credentials.clone()).map_err(|e| e.to_string())?;
    let cluster_limits = ConnectionLimits::cluster(credentials.clone(), unix_clock.clone());
    let parts = NodeParts {
        log: Arc::new(store.clone()),
        state: Arc::new(store),
        snapshots,
        channels: Arc::new(TlsChannelFactory {
            credentials: credentials.clone(),
            clock: unix_clock,
            local_ip: Some(config.cluster_listen.ip()).filter(|ip| !ip.is_unspecified()),
        }),
        clock,
        entropy: Arc::new(OsEntropy),
        audit: Arc::new(FileAuditSink::new(config.audit_log.clone())),
        credentials,
        peer_certificates: Arc::new(TlsPeerCertificates),
        provider_keys: provider_keys(config.oidc_ca_file.as_deref())?,
    };
    let options = NodeOptions {
        api_advertise: config.api_advertise.clone(),
        cluster_advertise: config.cluster_advertise.clone(),
        bootstrap: config.bootstrap,
        bootstrap_secret: config.bootstrap_secret.clone(),
        join: config.join.clone(),
        join_as_learner: config.join_as_learner,
        region: config.region.clone(),
        raft: config.raft.clone(),
        vault_suffix: config.vault_suffix.clone(),
        audit_anchor_interval_s: config.audit_anchor_interval_s,
    };

    let cluster_listener = TcpListener::bind(config.cluster_listen)
        .await
        .map_err(|e| format!("failed to bind the cluster listener: {e}"))?;
    let api_listener =
        TcpListener::bind(config.api_listen).await.map_err(|e| format!("failed to bind the API listener: {e}"))?;
    let cluster_addr = cluster_listener.local_addr().map_err(|e| e.to_string())?;
    let api_addr = api_listener.local_addr().map_err(|e| e.to_string())?;
    let cluster_incoming = tls_incoming(cluster_listener, cluster_tls, cluster_limits);
    let api_incoming = tls_incoming(api_listener, api_tls, ConnectionLimits::anyone(API_CONNECTIONS_MAX));

    let (mut api_incoming, mut cluster_incoming) = (Some(api_incoming), Some(cluster_incoming));
    let engine = arca_server::serve(parts, options, |listener, routes| {
        let (incoming, keepalive) = match listener {
            Listener::Api => (api_incoming.take(), Duration::from_secs(API_KEEPALIVE_INTERVAL_S)),
            Listener::Cluster => (cluster_incoming.take(), Duration::from_secs(CLUSTER_KEEPALIVE_INTERVAL_S)),
        };
        let Some(incoming) = incoming else { return };
        spawn_listener(incoming, routes, keepalive, format!("{listener:?}"));
    })
    .await?;
    if let Some(path) = config.unseal_key_file.clone() {
        spawn_unseal_from_file(engine.clone(), path);
    }
    Ok(RunningNode { engine, api_addr, cluster_addr })
}

/// The cluster certificate, key and CA kept under `cluster-tls/` in `data_dir` (a provisional
/// certificate until the cluster issues one), and `clock` as the Unix time certificates are checked at.
fn cluster_credentials(
    data_dir: &std::path::Path,
    clock: &Arc<dyn Clock>,
    whose: &str,
) -> Result<(Arc<NodeCredentials>, arca_transport::UnixClock), String> {
    let credentials = NodeCredentials::open(
        Box::new(FileCredentialStore::new(data_dir.join("cluster-tls"))),
        &OsEntropy,
        clock.now_unix(),
    )
    .map_err(|e| format!("failed to load {whose} cluster credentials: {e}"))?;
    let unix_clock: arca_transport::UnixClock = {
        let clock = clock.clone();
        Arc::new(move || clock.now_unix())
    };
    Ok((Arc::new(credentials), unix_clock))
}

/// Serves `routes` on `incoming` with the listeners' HTTP/2 settings (keepalive every `keepalive`,
/// the stream cap, the per-call deadline), on a task of its own; logs if the listener stops.
fn spawn_listener(
    incoming: arca_transport::incoming::Incoming,
    routes: tonic::service::Routes,
    keepalive: Duration,
    listener: String,
) {
    tokio::spawn(async move {
        let result = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(keepalive))
            .http2_keepalive_timeout(Some(Duration::from_secs(KEEPALIVE_TIMEOUT_S)))
            .max_concurrent_streams(HTTP2_STREAMS_PER_CONNECTION_MAX)
            .timeout(request_deadline())
            .add_routes(routes)
            .serve_with_incoming(incoming)
            .await;
        if let Err(e) = result {
            tracing::error!(listener, "listener stopped: {e}");
        }
    });
}

/// Every call's deadline: [`REQUEST_DURATION_S_MAX`], or a few seconds under the test hook that lets a
/// test watch it cut a call.
fn request_deadline() -> Duration {
    use arca_types::faults::{self, Fault, SHORT_REQUEST_DURATION_MS};
    if faults::active(Fault::ShortRequestDeadline) {
        Duration::from_millis(SHORT_REQUEST_DURATION_MS)
    } else {
        Duration::from_secs(REQUEST_DURATION_S_MAX)
    }
}

/// Unseals the node from its key file once, when it starts: it keeps trying until the file opens the
/// keyring (the cluster may not be initialized yet, or this node not caught up), then stops. An
/// operator's `Seal` after that stays in force until someone unseals the node explicitly.
fn spawn_unseal_from_file(engine: Arc<Engine>, path: PathBuf) {
    tokio::spawn(async move {
        let mut last_complaint = String::new();
        while engine.seal.is_sealed() {
            let outcome = read_unseal_key_file(&path)
                .and_then(|key| engine.seal.unseal(key.trim(), "", false).map_err(|e| e.to_string()));
            match outcome {
                Ok(status) if !status.sealed => {
                    tracing::info!("unsealed from the unseal key file");
                    break;
                }
                Ok(_) => {}
                Err(why) if why != last_complaint => {
                    tracing::warn!("not unsealed from {} yet: {why}", path.display());
                    last_complaint = why;
                }
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
}

/// Reads the unseal key file, refusing one that others could read or that another user owns.
fn read_unseal_key_file(path: &std::path::Path) -> Result<zeroize::Zeroizing<String>, String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read it: {e}"))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!("it is readable by others (mode {mode:o}): `chmod 600 {}`", path.display()));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(format!("it belongs to uid {}, not to arcad's user (uid {me})", meta.uid()));
    }
    std::fs::read_to_string(path).map(zeroize::Zeroizing::new).map_err(|e| format!("cannot read it: {e}"))
}

/// Starts a witness: its cluster certificate and epoch record in `data_dir`, its listener on
/// `listen` (mutual TLS, cluster certificates only). Returns the bound address.
pub async fn start_witness(
    data_dir: &std::path::Path,
    listen: SocketAddr,
    options: arca_server::witness::WitnessOptions,
) -> Result<SocketAddr, String> {
    std::fs::create_dir_all(data_dir).map_err(|e| format!("failed to create the data dir: {e}"))?;
    // One witness per data dir: two would each keep their own promises under one identity.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(data_dir.join("LOCK"))
        .map_err(|e| format!("failed to open the data dir's lock file: {e}"))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .map_err(|_| format!("another arcad witness is using {}", data_dir.display()))?;
    // Held (the descriptor open) for as long as this process runs.
    std::mem::forget(lock);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (credentials, unix_clock) = cluster_credentials(data_dir, &clock, "the witness's")?;
    let tls = cluster_server_config(credentials.clone()).map_err(|e| e.to_string())?;
    let limits = ConnectionLimits::cluster(credentials.clone(), unix_clock.clone());
    let listener = TcpListener::bind(listen).await.map_err(|e| format!("failed to bind the witness listener: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let incoming = tls_incoming(listener, tls, limits);
    let parts = arca_server::witness::WitnessParts {
        channels: Arc::new(TlsChannelFactory {
            credentials: credentials.clone(),
            clock: unix_clock,
            local_ip: Some(listen.ip()).filter(|ip| !ip.is_unspecified()),
        }),
        credentials,
        epochs: Arc::new(arca_server::failover::FileEpochStore(data_dir.join("epoch"))),
        peer_certificates: Arc::new(TlsPeerCertificates),
        clock,
    };
    arca_server::witness::serve_witness(parts, options, |routes| {
        spawn_listener(incoming, routes, Duration::from_secs(CLUSTER_KEEPALIVE_INTERVAL_S), "Witness".to_owned());
    })?;
    Ok(addr)
}
