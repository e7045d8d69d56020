//! Arca's transport seam implemented over turmoil's simulated TCP: HTTP/2 servers for the gRPC
//! routes and lazily connecting channels for clients and peers. Plaintext: TLS handshakes would
//! bring randomness turmoil does not control, and mTLS is tested on real sockets.

use std::io;
use std::time::Duration;

use arca_raft::network::{KEEPALIVE_INTERVAL_MS, KEEPALIVE_TIMEOUT_MS};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tonic::service::Routes;
use tonic::transport::{Channel, Endpoint, Uri};

/// Serves `routes` on every connection `listener` accepts, with hyper's HTTP/2 server configured as
/// tonic configures it, except that the `date` header is off: its length follows the wall clock, which
/// would leak real time into the simulated bytes.
pub fn spawn_server(listener: turmoil::net::TcpListener, routes: Routes) {
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let service = TowerToHyperService::new(routes.clone());
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
    fn channel(&self, cluster_addr: &str) -> Result<Channel, String> {
        channel(cluster_addr)
    }
}
