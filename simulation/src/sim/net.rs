//! Arca's transport seam implemented over turmoil's simulated TCP: HTTP/2 servers for the gRPC
//! routes and lazily connecting channels for clients and peers. Plaintext: TLS handshakes would
//! bring randomness turmoil does not control, and mTLS is tested on real sockets.

use std::collections::BTreeMap;
use std::io;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use arca_transport::admission::PeerCertificates;
use arca_transport::credentials::MemCredentialStore;
use tonic::codegen::http;

use arca_raft::network::{KEEPALIVE_INTERVAL_MS, KEEPALIVE_TIMEOUT_MS};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tonic::service::Routes;
use tonic::transport::{Channel, Endpoint, Uri};

/// Serves `routes` on every connection `listener` accepts, with hyper's HTTP/2 server configured as
/// tonic configures it, except that the `date` header is off: its length follows the wall clock, which
/// would leak real time into the simulated bytes.
///
/// Each request carries the address the connection came from ([`SimPeer`]): turmoil's addresses
/// cannot be forged by a host, so [`SimPeers`] can play TLS's part and say which certificate the
/// caller holds.
pub fn spawn_server(listener: turmoil::net::TcpListener, routes: Routes) {
    tokio::spawn(async move {
        loop {
            let Ok((stream, from)) = listener.accept().await else { continue };
            let routes = routes.clone();
            let tagged = tower::service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(SimPeer(from.ip()));
                let mut routes = routes.clone();
                async move { tower::Service::call(&mut routes, request).await }
            });
            let service = TowerToHyperService::new(tagged);
            tokio::spawn(async move {
                let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                builder
                    .auto_date_header(false)
                    .timer(TokioTimer::new())
                    .keep_alive_interval(Duration::from_millis(KEEPALIVE_INTERVAL_MS))
                    .keep_alive_timeout(Duration::from_millis(KEEPALIVE_TIMEOUT_MS));
                let _ = builder.serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
}

/// Binds `port` on the current simulated host.
pub async fn bind(port: u16) -> io::Result<turmoil::net::TcpListener> {
    turmoil::net::TcpListener::bind(("0.0.0.0", port)).await
}

/// A channel to `addr` (`host:port`) over the simulated network, connecting on first use, with the
/// settings of production node-to-node channels (connect timeout, keepalive).
pub fn channel(addr: &str) -> Result<Channel, String> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}")).map_err(|e| format!("bad address {addr}: {e}"))?;
    // h2 forgets a locally reset stream after this long by the wall clock (1 s by default); set so long
    // that it never happens within a run, or a loaded machine would change the simulated bytes.
    let endpoint = arca_raft::network::peer_endpoint(endpoint).http2_reset_stream_duration(Duration::from_secs(86_400));
    Ok(endpoint.connect_with_connector_lazy(tower::service_fn(|uri: Uri| async move {
        let host = uri.host().unwrap_or_default().to_owned();
        let port = uri.port_u16().unwrap_or(80);
        let stream = turmoil::net::TcpStream::connect((host.as_str(), port)).await?;
        Ok::<_, io::Error>(TokioIo::new(stream))
    })))
}

/// The channel factory simulated nodes use for Raft and forwarding.
pub struct SimChannels;

impl arca_raft::network::ChannelFactory for SimChannels {
    fn channel(&self, cluster_addr: &str, _node_id: Option<u64>) -> Result<Channel, String> {
        channel(cluster_addr)
    }
}

/// The simulated address a request came from.
#[derive(Debug, Clone, Copy)]
pub struct SimPeer(pub IpAddr);

/// The certificates simulated hosts hold, found by the address a request came from: what a TLS
/// handshake would have proved. A host's certificate is whatever its credential store holds now.
pub struct SimPeers {
    hosts: Vec<(String, MemCredentialStore)>,
    by_ip: Mutex<BTreeMap<IpAddr, usize>>,
}

impl SimPeers {
    pub fn new(hosts: Vec<(String, MemCredentialStore)>) -> Self {
        Self { hosts, by_ip: Mutex::default() }
    }
}

impl PeerCertificates for SimPeers {
    fn peer_certificate(&self, extensions: &http::Extensions) -> Option<Vec<u8>> {
        let SimPeer(ip) = *extensions.get::<SimPeer>()?;
        let mut by_ip = self.by_ip.lock().unwrap_or_else(|p| p.into_inner());
        if by_ip.is_empty() {
            for (i, (name, _)) in self.hosts.iter().enumerate() {
                by_ip.insert(turmoil::lookup(name.as_str()), i);
            }
        }
        let index = *by_ip.get(&ip)?;
        self.hosts[index].1.certificate()
    }
}
