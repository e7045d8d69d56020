//! The listeners' accept loops: TCP connections in, TLS connections that spoke HTTP/2 out, within
//! bounds an anonymous peer cannot push past.
//!
//! - At most `connections_max` connections are held at once (handshaking or served); more are closed
//!   as they arrive.
//! - At most [`TLS_HANDSHAKES_IN_FLIGHT_MAX`] connections are between TCP accept and a finished
//!   handshake plus HTTP/2 preface, each for at most [`TLS_HANDSHAKE_TIMEOUT_MS`]. A new connection
//!   beyond that cancels the oldest, so peers that open connections and never finish (slowloris) only
//!   ever push each other out, never a peer that completes its handshake in time.
//! - On the cluster listener, peers whose certificate the cluster CA did not issue (joining nodes,
//!   intruders) share at most `strangers_max` served connections, so they cannot take the places
//!   members reconnect into.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;

use arca_crypto::cluster_pki::{self, CertUse};
use arca_types::limits::{CLUSTER_CONNECTIONS_MAX, CLUSTER_STRANGER_CONNECTIONS_MAX};
pub use arca_types::limits::{TLS_HANDSHAKES_IN_FLIGHT_MAX, TLS_HANDSHAKE_TIMEOUT_MS};

use crate::credentials::NodeCredentials;
use crate::UnixClock;

/// What every HTTP/2 connection starts with (RFC 9113 §3.4).
const HTTP2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Says whether a peer's certificate (DER, the first of its chain) is one of the cluster's members'.
pub type IsMember = Arc<dyn Fn(&[u8]) -> bool + Send + Sync>;

/// The bounds of one listener.
#[derive(Clone)]
pub struct ConnectionLimits {
    /// Connections held at once, handshaking or served.
    pub connections_max: usize,
    /// With `Some`, peers it does not recognise as members share `strangers_max` served connections.
    pub is_member: Option<IsMember>,
    pub strangers_max: usize,
}

impl ConnectionLimits {
    /// A listener whose peers are all alike (the API's).
    pub fn anyone(connections_max: usize) -> Self {
        Self { connections_max, is_member: None, strangers_max: connections_max }
    }

    /// The cluster listener's: a member is a peer whose client certificate this node's cluster CA
    /// issued for this cluster and that is valid now. (Whether that node was removed is for
    /// admission to decide, per request.)
    pub fn cluster(credentials: Arc<NodeCredentials>, clock: UnixClock) -> Self {
        let is_member: IsMember = Arc::new(move |der: &[u8]| {
            let current = credentials.current();
            current.trust().is_some_and(|(ca, cluster_id)| {
                cluster_pki::verify_node_certificate(der, ca, &cluster_id, clock(), CertUse::Client).is_ok()
            })
        });
        Self {
            connections_max: CLUSTER_CONNECTIONS_MAX,
            is_member: Some(is_member),
            strangers_max: CLUSTER_STRANGER_CONNECTIONS_MAX,
        }
    }
}

/// What a served connection tells each of its requests: who is at the other end.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub remote: Option<SocketAddr>,
    /// The certificate the peer proved it holds (DER, only its own: not the chain it sent), if any.
    pub certificates: Vec<Vec<u8>>,
    /// The TLS version negotiated (`TLSv1_3`).
    pub tls_version: Option<String>,
}

/// A TLS connection being served. It holds its places among the listener's connections until it
/// closes, and gives the HTTP/2 server back the preface the accept loop read.
pub struct Served {
    stream: TlsStream<TcpStream>,
    info: PeerInfo,
    preface_replayed: usize,
    _slot: OwnedSemaphorePermit,
    _stranger_slot: Option<OwnedSemaphorePermit>,
}

impl tonic::transport::server::Connected for Served {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for Served {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.preface_replayed < HTTP2_PREFACE.len() {
            let rest = &HTTP2_PREFACE[this.preface_replayed..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.preface_replayed += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Served {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Handshakes in progress, oldest first.
#[derive(Default)]
struct Handshakes {
    next: u64,
    pending: VecDeque<(u64, oneshot::Sender<()>)>,
}

impl Handshakes {
    /// Registers a new handshake, cancelling the oldest if the limit is reached.
    fn start(&mut self) -> (u64, oneshot::Receiver<()>) {
        if self.pending.len() >= TLS_HANDSHAKES_IN_FLIGHT_MAX {
            if let Some((_, oldest)) = self.pending.pop_front() {
                let _ = oldest.send(());
            }
        }
        let (cancel, cancelled) = oneshot::channel();
        self.next += 1;
        self.pending.push_back((self.next, cancel));
        (self.next, cancelled)
    }

    fn finish(&mut self, id: u64) {
        self.pending.retain(|(i, _)| *i != id);
    }
}

/// Why a connection was closed before it was served (logged at debug: every one is a peer's doing).
#[derive(Debug, thiserror::Error)]
enum NotServed {
    #[error("the TLS handshake failed: {0}")]
    Handshake(std::io::Error),
    #[error("the peer did not open HTTP/2: {0}")]
    NoPreface(String),
    #[error("the handshake did not finish within {TLS_HANDSHAKE_TIMEOUT_MS} ms")]
    TimedOut,
    #[error("cancelled for a newer connection: {TLS_HANDSHAKES_IN_FLIGHT_MAX} handshakes were in progress")]
    Cancelled,
    #[error("{0} connections from peers that are not members are served already")]
    StrangersFull(usize),
}

/// The connections a listener hands to tonic, handshaken and admitted.
pub type Incoming = ReceiverStream<Result<Served, std::io::Error>>;

/// Accepts TCP connections and completes TLS handshakes and the HTTP/2 preface off the accept loop,
/// within `limits`, yielding connections for `serve_with_incoming`.
pub fn tls_incoming(listener: TcpListener, config: Arc<rustls::ServerConfig>, limits: ConnectionLimits) -> Incoming {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    let slots = Arc::new(Semaphore::new(limits.connections_max));
    let stranger_slots = Arc::new(Semaphore::new(limits.strangers_max));
    let handshakes = Arc::new(Mutex::new(Handshakes::default()));
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tracing::debug!(%peer, "closed a connection: {} are held already", limits.connections_max);
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let (id, cancelled) = handshakes.lock().unwrap_or_else(|p| p.into_inner()).start();
            let (acceptor, conn_tx, handshakes) = (acceptor.clone(), tx.clone(), handshakes.clone());
            let (is_member, stranger_slots) = (limits.is_member.clone(), stranger_slots.clone());
            tokio::spawn(async move {
                let opened = tokio::select! {
                    r = tokio::time::timeout(Duration::from_millis(TLS_HANDSHAKE_TIMEOUT_MS), open(&acceptor, tcp)) => {
                        r.unwrap_or(Err(NotServed::TimedOut))
                    }
                    _ = cancelled => Err(NotServed::Cancelled),
                };
                handshakes.lock().unwrap_or_else(|p| p.into_inner()).finish(id);
                let served = opened.and_then(|stream| {
                    // Only the peer's own certificate is kept: what it sent beside it proves nothing.
                    let certificates: Vec<Vec<u8>> = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|certs| certs.first())
                        .map(|leaf| vec![leaf.as_ref().to_vec()])
                        .unwrap_or_default();
                    let member = match &is_member {
                        None => true,
                        Some(is_member) => certificates.first().is_some_and(|der| is_member(der)),
                    };
                    let stranger_slot = if member {
                        None
                    } else {
                        let slot = stranger_slots
                            .try_acquire_owned()
                            .map_err(|_| NotServed::StrangersFull(limits.strangers_max))?;
                        Some(slot)
                    };
                    let tls_version = stream.get_ref().1.protocol_version().map(|v| format!("{v:?}"));
                    let info = PeerInfo { remote: Some(peer), certificates, tls_version };
                    Ok(Served { stream, info, preface_replayed: 0, _slot: slot, _stranger_slot: stranger_slot })
                });
                match served {
                    Ok(served) => {
                        let _ = conn_tx.send(Ok(served)).await;
                    }
                    Err(why) => tracing::debug!(%peer, "closed a connection: {why}"),
                }
            });
            if tx.is_closed() {
                break;
            }
        }
    });
    ReceiverStream::new(rx)
}

/// The TLS handshake, then the HTTP/2 preface read and checked.
async fn open(acceptor: &TlsAcceptor, tcp: TcpStream) -> Result<TlsStream<TcpStream>, NotServed> {
    let mut stream = acceptor.accept(tcp).await.map_err(NotServed::Handshake)?;
    let mut preface = [0u8; HTTP2_PREFACE.len()];
    stream.read_exact(&mut preface).await.map_err(|e| NotServed::NoPreface(e.to_string()))?;
    if &preface != HTTP2_PREFACE {
        return Err(NotServed::NoPreface("it sent something else".into()));
    }
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio_stream::StreamExt;

    fn server_config() -> Arc<rustls::ServerConfig> {
        let entropy = arca_crypto::OsEntropy;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let key = cluster_pki::Ed25519Key::generate(&entropy);
        let cert = cluster_pki::provisional_certificate(&key, &entropy, now).unwrap();
        crate::tls::api_server_config(
            cluster_pki::pem("CERTIFICATE", &cert).as_bytes(),
            cluster_pki::pem("PRIVATE KEY", key.pkcs8_der()).as_bytes(),
        )
        .unwrap()
    }

    /// A client that finishes the handshake and sends `opening`.
    async fn client(addr: &str, opening: &[u8]) -> anyhow::Result<impl AsyncRead + Unpin> {
        let mut s = arca_testkit::attack::tls_stream(addr, None).await?;
        s.write_all(opening).await?;
        s.flush().await?;
        Ok(s)
    }

    /// Whether the server closed the connection within two seconds.
    async fn closed(mut s: impl AsyncRead + Unpin) -> bool {
        let mut buf = [0u8; 64];
        matches!(tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await, Ok(Ok(0) | Err(_)))
    }

    #[tokio::test]
    async fn a_listener_holds_connections_up_to_its_limit_and_closes_one_more() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let mut incoming = tls_incoming(listener, server_config(), ConnectionLimits::anyone(2));
        let mut clients = Vec::new();
        let mut served = Vec::new();
        for _ in 0..2 {
            clients.push(client(&addr, HTTP2_PREFACE).await.unwrap());
            served.push(incoming.next().await.unwrap().unwrap());
        }
        let one_more = client(&addr, HTTP2_PREFACE).await;
        assert!(one_more.is_err() || closed(one_more.unwrap()).await, "connection 3 of 2 is closed");

        drop(served.pop());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _again = client(&addr, HTTP2_PREFACE).await.unwrap();
        let next = tokio::time::timeout(Duration::from_secs(2), incoming.next()).await;
        assert!(matches!(next, Ok(Some(Ok(_)))), "a closed connection's place is taken again");
    }

    #[tokio::test]
    async fn a_connection_that_does_not_open_http2_is_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let mut incoming = tls_incoming(listener, server_config(), ConnectionLimits::anyone(4));
        let http1 = client(&addr, b"GET / HTTP/1.1\r\nHost: arca\r\n\r\n").await.unwrap();
        assert!(closed(http1).await, "an HTTP/1.1 request is closed");
        let served = tokio::time::timeout(Duration::from_millis(200), incoming.next()).await;
        assert!(served.is_err(), "and never reaches the server");
    }

    #[test]
    fn a_handshake_beyond_the_limit_cancels_the_oldest_and_only_it() {
        let mut h = Handshakes::default();
        let mut receivers: Vec<_> = (0..TLS_HANDSHAKES_IN_FLIGHT_MAX).map(|_| h.start()).collect();
        assert!(receivers.iter_mut().all(|(_, rx)| rx.try_recv().is_err()), "none cancelled at the limit");
        let (newest, mut newest_rx) = h.start();
        assert!(receivers[0].1.try_recv().is_ok(), "the oldest is cancelled at limit + 1");
        assert!(receivers[1..].iter_mut().all(|(_, rx)| rx.try_recv().is_err()), "only the oldest");
        h.finish(newest);
        assert_eq!(h.pending.len(), TLS_HANDSHAKES_IN_FLIGHT_MAX - 1);
        assert!(newest_rx.try_recv().is_err(), "a finished handshake is not cancelled");
    }
}
