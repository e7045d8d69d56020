//! What an attacker on the network can do to a cluster listener: open TLS with any certificate it
//! holds (or none), skip checking the server, and send any cluster RPC.

use std::sync::Arc;

use anyhow::Context;
use arca_proto::cluster::v1 as cpb;
use arca_proto::cluster::v1::node_service_client::NodeServiceClient;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tonic::transport::{Channel, Endpoint};

/// A certificate and its key, PEM.
#[derive(Clone)]
pub struct Identity {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl Identity {
    pub fn from_files(cert: &std::path::Path, key: &std::path::Path) -> anyhow::Result<Self> {
        Ok(Self {
            cert_pem: std::fs::read(cert).with_context(|| format!("read {}", cert.display()))?,
            key_pem: std::fs::read(key).with_context(|| format!("read {}", key.display()))?,
        })
    }

    /// A node's cluster certificate and key, from its data dir (what stealing a disk gives).
    pub fn of_node(data_dir: &std::path::Path) -> anyhow::Result<Self> {
        let dir = data_dir.join("cluster-tls");
        Self::from_files(&dir.join("node.pem"), &dir.join("node.key"))
    }
}

/// Trusts any server: an attacker does not care who answers.
#[derive(Debug)]
struct AnyServer(rustls::crypto::WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// A TLS client config that trusts any server and presents `identity` (or no certificate), offering
/// HTTP/2.
fn client_config(identity: Option<&Identity>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider.signature_verification_algorithms)));
    let mut config = match identity {
        Some(id) => {
            let certs = CertificateDer::pem_slice_iter(&id.cert_pem).collect::<Result<Vec<_>, _>>()?;
            builder.with_client_auth_cert(certs, PrivateKeyDer::from_pem_slice(&id.key_pem)?)?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

async fn tls_connect(
    connector: &tokio_rustls::TlsConnector,
    addr: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from("attacker.invalid").expect("a valid DNS name");
    connector.connect(name, tcp).await
}

/// A finished TLS handshake with any listener (`host:port`), and nothing sent after it.
pub async fn tls_stream(
    addr: &str,
    identity: Option<&Identity>,
) -> anyhow::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let connector = tokio_rustls::TlsConnector::from(client_config(identity)?);
    Ok(tls_connect(&connector, addr).await?)
}

/// A channel to a cluster listener (`host:port`) presenting `identity` (or no certificate at all).
pub fn channel(cluster_addr: &str, identity: Option<&Identity>) -> anyhow::Result<Channel> {
    let connector = tokio_rustls::TlsConnector::from(client_config(identity)?);
    let target = cluster_addr.to_owned();
    let connect = tower::service_fn(move |_uri: tonic::transport::Uri| {
        let (connector, target) = (connector.clone(), target.clone());
        async move { Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls_connect(&connector, &target).await?)) }
    });
    Ok(Endpoint::from_shared(format!("http://{cluster_addr}"))?
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(10))
        .connect_with_connector_lazy(connect))
}

/// A NodeService client for [`channel`].
pub fn node_client(cluster_addr: &str, identity: Option<&Identity>) -> anyhow::Result<NodeServiceClient<Channel>> {
    Ok(NodeServiceClient::new(channel(cluster_addr, identity)?))
}

/// Sends one unary call to any path with any protobuf message: how the old `RemoveNode` (gone from the
/// protocol) or any method a server never had is tried.
pub async fn raw_unary<M: prost::Message + Default + 'static>(
    channel: Channel,
    path: &'static str,
    message: M,
) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let codec = tonic_prost::ProstCodec::<M, M>::default();
    grpc.unary(tonic::Request::new(message), tonic::codegen::http::uri::PathAndQuery::from_static(path), codec)
        .await
        .map(|_| ())
}

/// Every cluster RPC `identity` can make against `addr`, each with a payload that would do harm if
/// it were taken; returns the status of each.
pub async fn every_rpc(
    addr: &str,
    identity: Option<&Identity>,
    leader: u64,
    term: u64,
) -> Vec<(&'static str, tonic::Status)> {
    use arca_raft::rpc::forge;
    let mut out = Vec::new();
    let mut c = node_client(addr, identity).unwrap();
    let payload = |data: Vec<u8>| cpb::RaftPayload { data };
    let refused = |r: Result<(), tonic::Status>| r.expect_err("the call must be refused");
    out.push((
        "AppendEntries",
        refused(c.append_entries(payload(forge::heartbeat(leader, term + 5))).await.map(|_| ())),
    ));
    out.push(("Vote", refused(c.vote(payload(forge::vote_request(leader, term + 5))).await.map(|_| ()))));
    let chunks = vec![cpb::SnapshotChunk { header: forge::snapshot_header(leader, term + 5), data: Vec::new() }];
    out.push(("InstallSnapshot", refused(c.install_snapshot(tokio_stream::iter(chunks)).await.map(|_| ()))));
    out.push(("Forward", refused(c.forward(payload(vec![1, 0, 0, 0])).await.map(|_| ()))));
    out.push(("ReadIndex", refused(c.read_index(cpb::ReadIndexRequest {}).await.map(|_| ()))));
    // An epoch for another region far ahead: taken, it would fence the primary.
    let epoch = || cpb::EpochRequest { number: 99, primary: "elsewhere".into(), founder: 0, ..Default::default() };
    out.push(("Renew", refused(c.renew(epoch()).await.map(|_| ()))));
    out.push(("Promote", refused(c.promote(epoch()).await.map(|_| ()))));
    out.push(("Progress", refused(c.progress(cpb::ProgressRequest {}).await.map(|_| ()))));
    let add = cpb::AddNodeRequest {
        node_id: 99,
        api_addr: "127.0.0.1:1".into(),
        cluster_addr: "127.0.0.1:2".into(),
        as_learner: false,
        region: "default".into(),
        ..Default::default()
    };
    out.push(("AddNode", refused(c.add_node(add).await.map(|_| ()))));
    let old_remove = arca_client::pb::RemoveNodeRequest { node_id: leader };
    let channel = channel(addr, identity).unwrap();
    out.push((
        "RemoveNode (the old RPC)",
        refused(raw_unary(channel, "/arca.cluster.v1.NodeService/RemoveNode", old_remove).await),
    ));
    out
}
