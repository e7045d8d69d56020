//! TLS for both listeners and for node-to-node channels (rustls with the aws-lc-rs provider, TLS 1.3
//! only, so every suite is forward-secret).
//!
//! - The API listener presents the operator's certificate (the CA clients trust) and asks for a
//!   client certificate without requiring one: any certificate whose key signed the handshake is
//!   taken, and is worth something only if a service principal registered it (mutual-TLS sign-in).
//! - The cluster listener presents the node's cluster certificate and requires one from every caller.
//!   The handshake proves the caller holds the key of the certificate it presents; *which* certificate
//!   may call what is decided afterwards, per request, by [`crate::admission`], against the cluster's
//!   own CA. A certificate from the operator's CA is just a stranger there.
//! - A node dials peers presenting its cluster certificate and accepts only a server certificate the
//!   cluster CA issued for this cluster (for the node it meant to reach, when it knows which); a node
//!   that is still joining accepts only the CA its join token pins.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use arca_crypto::cluster_pki::{self, CertUse};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint};

use crate::credentials::NodeCredentials;
use crate::UnixClock;

/// Why a TLS configuration could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("failed to read {0}")]
    Read(String),
    #[error("bad certificate or key: {0}")]
    Material(String),
    #[error("TLS configuration failed: {0}")]
    Config(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn config_error(e: impl std::fmt::Display) -> TlsError {
    TlsError::Config(e.to_string())
}

/// The API listener's server config: the operator's certificate chain and key (PEM files).
pub fn api_server_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Material(format!("certificate PEM: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Material(format!("key PEM: {e}")))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(config_error)?
        .with_client_cert_verifier(Arc::new(ProvenCertificate {
            algorithms: provider().signature_verification_algorithms,
            mandatory: false,
            // As large as a certificate a service principal may register.
            bytes_max: arca_crypto::client_cert::CLIENT_CERTIFICATE_BYTES_MAX,
        }))
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Material(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Presents whatever certificate the node's credentials hold now, followed by the cluster CA (so a
/// joining node can check the CA against its token's pin).
#[derive(Debug)]
struct CredentialResolver {
    credentials: Arc<NodeCredentials>,
}

impl CredentialResolver {
    fn certified_key(&self) -> Option<Arc<CertifiedKey>> {
        let current = self.credentials.current();
        let mut chain = vec![CertificateDer::from(current.stored.cert_der.clone())];
        if let Some(ca) = &current.stored.ca_der {
            chain.push(CertificateDer::from(ca.clone()));
        }
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(current.stored.key.pkcs8_der().to_vec()));
        let signer = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key).ok()?;
        Some(Arc::new(CertifiedKey::new(chain, signer)))
    }
}

impl ResolvesServerCert for CredentialResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.certified_key()
    }
}

impl ResolvesClientCert for CredentialResolver {
    fn resolve(&self, _root_hint_subjects: &[&[u8]], _sigschemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.certified_key()
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Asks for a certificate and requires a valid handshake signature from a caller that presents one
/// (on the cluster listener, every caller must), and leaves deciding what the certificate is worth to
/// what comes after: admission on the cluster listener; on the API listener, the token endpoint
/// (a service principal's registered certificate) and the check of certificate-bound tokens.
#[derive(Debug)]
struct ProvenCertificate {
    algorithms: WebPkiSupportedAlgorithms,
    mandatory: bool,
    /// The largest end-entity certificate taken, in bytes of DER.
    bytes_max: usize,
}

/// Intermediates a client may send beside its certificate (none is used; they are not kept).
const CLIENT_INTERMEDIATES_MAX: usize = 4;

impl ClientCertVerifier for ProvenCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if end_entity.len() > self.bytes_max || intermediates.len() > CLIENT_INTERMEDIATES_MAX {
            return Err(rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding));
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls12NotOffered))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The cluster listener's server config.
pub fn cluster_server_config(credentials: Arc<NodeCredentials>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = provider();
    let verifier = Arc::new(ProvenCertificate {
        algorithms: provider.signature_verification_algorithms,
        mandatory: true,
        bytes_max: cluster_pki::PEER_CERT_BYTES_MAX,
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(config_error)?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(CredentialResolver { credentials }));
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts a server only if the cluster CA issued its certificate for this cluster (and for node
/// `expected`, when given), or, on a node still joining, if it chains to the CA the join token pins.
#[derive(Debug)]
struct ClusterServerVerifier {
    credentials: Arc<NodeCredentials>,
    expected: Option<u64>,
    clock: ClockHolder,
    algorithms: WebPkiSupportedAlgorithms,
}

struct ClockHolder(UnixClock);

impl std::fmt::Debug for ClockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("clock")
    }
}

fn untrusted(e: impl std::fmt::Display) -> rustls::Error {
    rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(Arc::new(
        std::io::Error::other(e.to_string()),
    ))))
}

impl ServerCertVerifier for ClusterServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let now = (self.clock.0)();
        let current = self.credentials.current();
        let node = match (current.trust(), self.credentials.join_pin()) {
            (Some((ca, cluster_id)), _) => {
                cluster_pki::verify_node_certificate(end_entity, ca, &cluster_id, now, CertUse::Server)
                    .map_err(untrusted)?
            }
            (None, Some(pin)) => {
                let checked = match intermediates.iter().find(|c| cluster_pki::sha256(c.as_ref()) == pin.ca_sha256) {
                    None => Err("its certificate chain does not hold the CA the join token pins".to_owned()),
                    Some(ca) => {
                        cluster_pki::verify_node_certificate(end_entity, ca, &pin.cluster_id, now, CertUse::Server)
                            .map_err(|e| e.to_string())
                    }
                };
                checked.map_err(|why| {
                    self.credentials.note_join_refusal(why.clone());
                    untrusted(why)
                })?
            }
            (None, None) => return Err(untrusted("this node belongs to no cluster and holds no join token")),
        };
        match self.expected {
            Some(want) if want != node => Err(untrusted(format!("dialled node {want}, reached node {node}"))),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls12NotOffered))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The client config a node dials a peer's cluster listener with.
pub fn cluster_client_config(
    credentials: Arc<NodeCredentials>,
    clock: UnixClock,
    expected: Option<u64>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = provider();
    let verifier = Arc::new(ClusterServerVerifier {
        credentials: credentials.clone(),
        expected,
        clock: ClockHolder(clock),
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(config_error)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(Arc::new(CredentialResolver { credentials }));
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Reads a PEM file, for `arcad`'s API certificate and key.
pub fn read_pem_file(path: &std::path::Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read(format!("{}: {e}", path.display())))
}

/// The channel factory production nodes use for Raft and forwarding: mutual TLS with the node's
/// cluster credentials. With `local_ip`, outgoing connections start from that address (the node's
/// cluster listen address), so firewall rules and peers see one address per node.
pub struct TlsChannelFactory {
    pub credentials: Arc<NodeCredentials>,
    pub clock: UnixClock,
    pub local_ip: Option<IpAddr>,
}

impl arca_raft::network::ChannelFactory for TlsChannelFactory {
    fn channel(&self, cluster_addr: &str, node_id: Option<u64>) -> Result<Channel, String> {
        let config =
            cluster_client_config(self.credentials.clone(), self.clock.clone(), node_id).map_err(|e| e.to_string())?;
        let connector = TlsConnector::from(config);
        let endpoint = Endpoint::from_shared(format!("http://{cluster_addr}"))
            .map_err(|e| format!("bad peer address {cluster_addr}: {e}"))?;
        let local_ip = self.local_ip;
        let target = cluster_addr.to_owned();
        let connect = tower::service_fn(move |_uri: tonic::transport::Uri| {
            let (connector, target) = (connector.clone(), target.clone());
            async move {
                let tcp = dial(&target, local_ip).await?;
                // The name is not checked (the verifier checks the node's cluster name instead), but
                // TLS needs one.
                let name = ServerName::try_from("arca-node").expect("a valid DNS name");
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        });
        Ok(arca_raft::network::peer_endpoint(endpoint).connect_with_connector_lazy(connect))
    }
}

async fn dial(target: &str, local_ip: Option<IpAddr>) -> std::io::Result<tokio::net::TcpStream> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(target).await?.collect();
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, format!("{target} resolves to no address"));
    for addr in addrs {
        let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        if let Some(ip) = local_ip.filter(|ip| ip.is_ipv4() == addr.is_ipv4()) {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        socket.set_nodelay(true)?;
        match socket.connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(last)
}
