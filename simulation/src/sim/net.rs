//! Arca's transport seam implemented over turmoil's simulated TCP: accepted streams for the gRPC
//! servers and lazily connecting channels for clients and peers. Plaintext: TLS handshakes would
//! bring randomness turmoil does not control, and mTLS is tested on real sockets.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_stream::Stream;
use tonic::transport::server::Connected;
use tonic::transport::{Channel, Endpoint, Uri};

/// A simulated TCP connection a server accepted.
pub struct SimStream(turmoil::net::TcpStream);

impl Connected for SimStream {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for SimStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Binds `port` on the current simulated host and yields every accepted connection.
pub async fn incoming(port: u16) -> io::Result<impl Stream<Item = io::Result<SimStream>> + Send + 'static> {
    let listener = turmoil::net::TcpListener::bind(("0.0.0.0", port)).await?;
    Ok(futures::stream::unfold(listener, |listener| async move {
        let next = listener.accept().await.map(|(stream, _)| SimStream(stream));
        Some((next, listener))
    }))
}

/// A channel to `addr` (`host:port`) over the simulated network, connecting on first use, with the
/// settings of production node-to-node channels (connect timeout, keepalive).
pub fn channel(addr: &str) -> Result<Channel, String> {
    let endpoint =
        Endpoint::from_shared(format!("http://{addr}")).map_err(|e| format!("bad address {addr}: {e}"))?;
    Ok(arca_raft::network::peer_endpoint(endpoint).connect_with_connector_lazy(tower::service_fn(|uri: Uri| async move {
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
