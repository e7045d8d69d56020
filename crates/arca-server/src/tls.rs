//! TLS for both listeners and for node-to-node channels (rustls with the aws-lc-rs provider).
//!
//! Servers accept TLS 1.3 only, whose suites are all forward-secret. The cluster listener also requires
//! a client certificate signed by the cluster CA: only nodes may call it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Bound on a TLS handshake, in milliseconds.
pub const TLS_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;

/// Paths of the PEM files a node serves and dials with.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca_cert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The loaded PEM material.
#[derive(Clone)]
pub struct TlsMaterial {
    pub ca_pem: Vec<u8>,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl TlsMaterial {
    pub fn load(files: &TlsFiles) -> Result<Self, String> {
        let read = |p: &Path| std::fs::read(p).map_err(|e| format!("failed to read {}: {e}", p.display()));
        Ok(Self { ca_pem: read(&files.ca_cert)?, cert_pem: read(&files.cert)?, key_pem: read(&files.key)? })
    }

    fn certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
        CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("bad certificate PEM: {e}"))
    }

    /// A rustls server config: TLS 1.3 only; with `require_client_cert`, clients must present a
    /// certificate signed by the CA.
    pub fn server_config(&self, require_client_cert: bool) -> Result<Arc<rustls::ServerConfig>, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| format!("TLS configuration failed: {e}"))?;
        let builder = if require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            for cert in Self::certs(&self.ca_pem)? {
                roots.add(cert).map_err(|e| format!("bad CA certificate: {e}"))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("TLS client verifier failed: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem).map_err(|e| format!("bad private key PEM: {e}"))?;
        let mut config = builder
            .with_single_cert(Self::certs(&self.cert_pem)?, key)
            .map_err(|e| format!("bad certificate or key: {e}"))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }

    /// A lazily connecting channel to a peer's cluster listener, presenting this node's certificate,
    /// from `local_ip` when given (so that a node's traffic carries its own address).
    pub fn node_channel(&self, cluster_addr: &str, local_ip: Option<std::net::IpAddr>) -> Result<Channel, String> {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem));
        let endpoint = Endpoint::from_shared(format!("https://{cluster_addr}"))
            .map_err(|e| format!("bad peer address {cluster_addr}: {e}"))?
            .tls_config(tls)
            .map_err(|e| format!("TLS configuration failed: {e}"))?;
        Ok(arca_raft::network::peer_endpoint(endpoint).local_address(local_ip).connect_lazy())
    }
}

/// Accepts TCP connections and completes TLS handshakes off the accept loop, yielding TLS streams for
/// `serve_with_incoming`.
pub fn tls_incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
) -> ReceiverStream<Result<TlsStream<tokio::net::TcpStream>, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("failed to accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let conn_tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(Duration::from_millis(TLS_HANDSHAKE_TIMEOUT_MS), acceptor.accept(tcp)).await
                {
                    Ok(Ok(stream)) => {
                        let _ = conn_tx.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
            if tx.is_closed() {
                break;
            }
        }
    });
    ReceiverStream::new(rx)
}

/// The channel factory production nodes use for Raft and forwarding. With `local_ip`, outgoing
/// node-to-node connections start from that address (the node's cluster listen address), so firewall
/// rules and peers see one address per node.
pub struct TlsChannelFactory {
    pub material: TlsMaterial,
    pub local_ip: Option<std::net::IpAddr>,
}

impl arca_raft::network::ChannelFactory for TlsChannelFactory {
    fn channel(&self, cluster_addr: &str) -> Result<Channel, String> {
        self.material.node_channel(cluster_addr, self.local_ip)
    }
}
