//! Connection floods against the listeners of real `arcad` processes: idle TCP connections, TLS
//! handshakes sent a byte at a time (slowloris), handshakes finished and never followed by HTTP/2, and
//! strangers holding the cluster listener's places. Each time a client, or a member, arriving
//! afterwards is still served. Then the limits inside one connection: the streams it may open at
//! once, and the deadline of one call.

use std::time::{Duration, Instant};

use arca_client::{pb, ClientError};
use arca_proto::cluster::v1 as cpb;
use arca_testkit::attack::{self, Identity};
use arca_testkit::TestCluster;
use arca_types::limits::{CLUSTER_STRANGER_CONNECTIONS_MAX, TLS_HANDSHAKES_IN_FLIGHT_MAX, TLS_HANDSHAKE_TIMEOUT_MS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Idle TCP connections opened against each listener: several times the handshakes in flight.
const IDLE_CONNECTIONS: usize = 1000;
/// Connections that send their ClientHello a byte a second.
const SLOW_CONNECTIONS: usize = 200;

/// The first bytes of a TLS 1.3 ClientHello record (record header, handshake header), sent slowly.
const CLIENT_HELLO_START: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03];

async fn open_idle(addr: &str, n: usize) -> Vec<TcpStream> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        if let Ok(s) = TcpStream::connect(addr).await {
            out.push(s);
        }
    }
    out
}

/// Connections that each send the start of a ClientHello one byte a second, for as long as they live.
/// Returns once every connection is open, so that handshakes started afterwards are the newest.
async fn open_slow(addr: &str, n: usize) -> Vec<tokio::task::JoinHandle<()>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let Ok(mut s) = TcpStream::connect(addr).await else { continue };
        out.push(tokio::spawn(async move {
            for byte in CLIENT_HELLO_START.iter().cycle() {
                if s.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }));
    }
    out
}

async fn set_and_get(cluster: &TestCluster, node: usize, name: &str) -> anyhow::Result<()> {
    let c = cluster.client(node).await?;
    let set =
        pb::SetSecretRequest { vault: "flood".into(), name: name.into(), value: "v".into(), ..Default::default() };
    c.secrets().set_secret(set).await.map_err(ClientError::from)?;
    let get = pb::GetSecretRequest { vault: "flood".into(), name: name.into(), ..Default::default() };
    let got = c.secrets().get_secret(get).await.map_err(ClientError::from)?.into_inner();
    assert_eq!(got.value, "v");
    Ok(())
}

/// A self-signed certificate: what anyone can present to the cluster listener.
fn stranger() -> Identity {
    use arca_crypto::cluster_pki::{self, Ed25519Key};
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let key = Ed25519Key::generate(&arca_crypto::OsEntropy);
    let cert = cluster_pki::provisional_certificate(&key, &arca_crypto::OsEntropy, now).unwrap();
    Identity {
        cert_pem: cluster_pki::pem("CERTIFICATE", &cert).into_bytes(),
        key_pem: cluster_pki::pem("PRIVATE KEY", key.pkcs8_der()).into_bytes(),
    }
}

/// Whether the server closed `stream` (EOF or an error) within `within`.
async fn closed_within<S: tokio::io::AsyncRead + Unpin>(stream: &mut S, within: Duration) -> bool {
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_slow_and_silent_connections_do_not_keep_clients_or_members_out() {
    let cluster = TestCluster::start(3).await.unwrap();
    let c = cluster.client(0).await.unwrap();
    let req = pb::CreateVaultRequest { name: "flood".into(), soft_delete_retention_days: 7, ..Default::default() };
    c.vaults().create_vault(req).await.map_err(ClientError::from).unwrap();
    let node = &cluster.nodes[0];
    let (api, cluster_addr) = (format!("{}:{}", node.ip, node.api_port), node.cluster_addr());

    let mut idle = open_idle(&api, IDLE_CONNECTIONS).await;
    idle.extend(open_idle(&cluster_addr, IDLE_CONNECTIONS).await);
    assert!(idle.len() > 2 * TLS_HANDSHAKES_IN_FLIGHT_MAX, "the flood opened {} connections", idle.len());
    let mut slow = open_slow(&api, SLOW_CONNECTIONS).await;
    slow.extend(open_slow(&cluster_addr, SLOW_CONNECTIONS).await);
    // Handshakes finished, then silence where HTTP/2 should start.
    let mut silent_api = attack::tls_stream(&api, None).await.unwrap();
    let mut silent_cluster = attack::tls_stream(&cluster_addr, Some(&stranger())).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // A client arriving now is served.
    let started = Instant::now();
    set_and_get(&cluster, 0, "during-the-flood").await.expect("a client is served during the flood");
    assert!(started.elapsed() < Duration::from_secs(15), "served, but after {:?}", started.elapsed());

    // A member dialling the flooded cluster listener afresh is served.
    let member = Identity::of_node(&cluster.nodes[1].data_dir).unwrap();
    let mut m = attack::node_client(&cluster_addr, Some(&member)).unwrap();
    m.read_index(cpb::ReadIndexRequest {}).await.expect("a member is served during the flood");

    // The silent connections are closed once the handshake bound passes.
    let bound = Duration::from_millis(TLS_HANDSHAKE_TIMEOUT_MS + 3_000);
    assert!(
        closed_within(&mut silent_api, bound).await,
        "the API listener closes a connection that never opens HTTP/2"
    );
    assert!(
        closed_within(&mut silent_cluster, bound).await,
        "the cluster listener closes a connection that never opens HTTP/2"
    );

    // The flood's idle connections were closed by the server, not left to hold descriptors.
    let mut closed = 0;
    for s in idle.iter_mut().take(TLS_HANDSHAKES_IN_FLIGHT_MAX) {
        if closed_within(s, Duration::from_millis(TLS_HANDSHAKE_TIMEOUT_MS + 3_000)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, TLS_HANDSHAKES_IN_FLIGHT_MAX, "the oldest idle connections are all closed");
    for task in slow {
        task.abort();
    }
    drop(idle);

    // And the cluster still replicates: a write through another node.
    set_and_get(&cluster, 2, "after-the-flood").await.expect("the cluster works after the flood");
}

/// Sends one cluster call over a fresh connection as `identity`: `Ok(code)` if the listener served it
/// (whatever admission said), `Err` if the connection was closed before any answer.
async fn served_code(channel: tonic::transport::Channel) -> Result<tonic::Code, tonic::Status> {
    let mut c = cpb::node_service_client::NodeServiceClient::new(channel);
    match c.read_index(cpb::ReadIndexRequest {}).await {
        Ok(_) => Ok(tonic::Code::Ok),
        Err(s) if matches!(s.code(), tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled) => {
            Err(s)
        }
        Err(s) => Ok(s.code()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_hold_at_most_their_share_of_the_cluster_listener() {
    let cluster = TestCluster::start(3).await.unwrap();
    let addr = cluster.nodes[0].cluster_addr();
    let intruder = stranger();

    let mut held = Vec::new();
    for i in 0..CLUSTER_STRANGER_CONNECTIONS_MAX {
        let channel = attack::channel(&addr, Some(&intruder)).unwrap();
        let code = served_code(channel.clone()).await.unwrap_or_else(|s| panic!("stranger {i} not served: {s}"));
        assert_eq!(code, tonic::Code::PermissionDenied, "admission refuses a stranger's ReadIndex");
        held.push(channel);
    }
    let one_more = attack::channel(&addr, Some(&intruder)).unwrap();
    let refused = served_code(one_more).await;
    assert!(
        refused.is_err(),
        "stranger connection {} is closed, got {refused:?}",
        CLUSTER_STRANGER_CONNECTIONS_MAX + 1
    );

    // Members still get in.
    let member = Identity::of_node(&cluster.nodes[2].data_dir).unwrap();
    let code = served_code(attack::channel(&addr, Some(&member)).unwrap()).await.expect("a member is served");
    assert_eq!(code, tonic::Code::Ok);

    // A stranger's place is free again once one of theirs closes.
    drop(held.pop());
    let again = attack::channel(&addr, Some(&intruder)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match served_code(again.clone()).await {
            Ok(code) => {
                assert_eq!(code, tonic::Code::PermissionDenied);
                break;
            }
            Err(s) if Instant::now() < deadline => {
                let _ = s;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(s) => panic!("a place freed by a closed stranger connection is not reused: {s}"),
        }
    }
}

/// The most concurrent streams a listener lets one connection open, as its HTTP/2 SETTINGS say.
async fn advertised_streams(addr: &str, identity: Option<&Identity>) -> usize {
    let tls = attack::tls_stream(addr, identity).await.unwrap();
    let (_send, mut connection) = h2::client::handshake(tls).await.expect("an HTTP/2 handshake");
    // Drive the connection until the server's SETTINGS arrived (it sends them at once).
    let _ = tokio::time::timeout(Duration::from_millis(500), &mut connection).await;
    connection.max_concurrent_send_streams()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_listener_bounds_the_streams_one_connection_may_open() {
    use arca_types::limits::HTTP2_STREAMS_PER_CONNECTION_MAX;
    let cluster = TestCluster::start(1).await.unwrap();
    let node = &cluster.nodes[0];
    let api = format!("{}:{}", node.ip, node.api_port);
    assert_eq!(advertised_streams(&api, None).await, HTTP2_STREAMS_PER_CONNECTION_MAX as usize);
    let member = Identity::of_node(&node.data_dir).unwrap();
    assert_eq!(
        advertised_streams(&node.cluster_addr(), Some(&member)).await,
        HTTP2_STREAMS_PER_CONNECTION_MAX as usize
    );
}

/// Starts a GetSecret call on `send` whose body arrives in two halves `pause` apart (or whose second
/// half never comes), and returns the call's gRPC status and how long the answer took.
async fn call_with_slow_body(
    send: &h2::client::SendRequest<tonic::codegen::Bytes>,
    addr: &str,
    token: &str,
    pause: Option<Duration>,
) -> (Option<String>, Duration) {
    use prost::Message;
    use tonic::codegen::{http, Bytes};
    let message =
        pb::GetSecretRequest { vault: "slow".into(), name: "db".into(), ..Default::default() }.encode_to_vec();
    let mut body = vec![0u8];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(&message);
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("https://{addr}/arca.v1.SecretService/GetSecret"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap();
    let started = Instant::now();
    let mut ready = send.clone().ready().await.expect("the connection takes a stream");
    let (response, mut stream) = ready.send_request(request, false).expect("the stream opens");
    let half = body.len() / 2;
    stream.send_data(Bytes::copy_from_slice(&body[..half]), false).unwrap();
    if let Some(pause) = pause {
        tokio::time::sleep(pause).await;
        stream.send_data(Bytes::copy_from_slice(&body[half..]), true).unwrap();
    }
    let response = tokio::time::timeout(Duration::from_secs(30), response).await.expect("an answer").unwrap();
    let mut status = response.headers().get("grpc-status").map(|v| v.to_str().unwrap().to_owned());
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let _ = chunk;
    }
    if status.is_none() {
        let trailers = body.trailers().await.unwrap().unwrap_or_default();
        status = trailers.get("grpc-status").map(|v| v.to_str().unwrap().to_owned());
    }
    (status, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_outlasts_its_deadline_is_cut_and_the_connection_carries_on() {
    use arca_types::faults::SHORT_REQUEST_DURATION_MS;
    // The deadline is REQUEST_DURATION_S_MAX (330 s); the test hook shortens it to a few seconds on
    // this one node so the test can watch it act.
    let mut cluster = TestCluster::start(1).await.unwrap();
    let node = cluster.add_node_with(false, &["--danger-fault", "short-request-deadline"]).await.unwrap();
    let deadline = Duration::from_millis(SHORT_REQUEST_DURATION_MS);
    let addr = format!("{}:{}", cluster.nodes[node].ip, cluster.nodes[node].api_port);
    let tls = attack::tls_stream(&addr, None).await.unwrap();
    let (send, connection) = h2::client::handshake(tls).await.expect("an HTTP/2 handshake");
    tokio::spawn(connection);
    let token = cluster.root_token.clone();

    // A body that takes half the deadline to arrive is still answered (NOT_FOUND: no such vault).
    let (status, took) = call_with_slow_body(&send, &addr, &token, Some(deadline / 2)).await;
    assert_eq!(status.as_deref(), Some("5"), "answered, after {took:?}");
    assert!(took < deadline, "{took:?}");
    // A body that never finishes is cut at the deadline, not held open.
    let (status, took) = call_with_slow_body(&send, &addr, &token, None).await;
    let code = status.as_deref().and_then(|s| s.parse::<i32>().ok()).map(tonic::Code::from);
    assert!(matches!(code, Some(tonic::Code::Cancelled | tonic::Code::DeadlineExceeded)), "{status:?} after {took:?}");
    assert!(took >= deadline && took < deadline + Duration::from_secs(3), "cut after {took:?}");
    // The same connection still carries calls.
    let (status, _) = call_with_slow_body(&send, &addr, &token, Some(Duration::ZERO)).await;
    assert_eq!(status.as_deref(), Some("5"));
}

/// An HPACK string literal (no Huffman), its length in the 7-bit prefix form.
fn hpack_string(out: &mut Vec<u8>, s: &str) {
    let mut len = s.len();
    if len < 127 {
        out.push(len as u8);
    } else {
        out.push(127);
        len -= 127;
        while len >= 128 {
            out.push((len % 128) as u8 | 0x80);
            len /= 128;
        }
        out.push(len as u8);
    }
    out.extend_from_slice(s.as_bytes());
}

fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut frame = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    frame.extend_from_slice(&[kind, flags]);
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// Opens `streams` HTTP/2 streams at once on one TLS connection, written by hand (the h2 crate would
/// wait for the server's limit instead), each a call whose body never comes; returns the streams the
/// server reset, with the reason, whether it sent GOAWAY, and the stream limit its SETTINGS named.
async fn open_streams_at_once(
    addr: &str,
    identity: Option<&Identity>,
    path: &str,
    token: &str,
    streams: u32,
) -> (Vec<(u32, u32)>, bool, Option<u32>) {
    const HEADERS: u8 = 1;
    const RST_STREAM: u8 = 3;
    const SETTINGS: u8 = 4;
    const GOAWAY: u8 = 7;
    const END_HEADERS: u8 = 4;
    let mut tls = attack::tls_stream(addr, identity).await.unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(h2_frame(SETTINGS, 0, 0, &[]));
    out.extend(h2_frame(SETTINGS, 1, 0, &[])); // acknowledges the server's SETTINGS, whatever they say
    let authorization = format!("Bearer {token}");
    for i in 0..streams {
        let mut block = Vec::new();
        for (name, value) in [
            (":method", "POST"),
            (":scheme", "https"),
            (":path", path),
            (":authority", "localhost"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("authorization", authorization.as_str()),
        ] {
            block.push(0); // a literal header field, not indexed, with a literal name
            hpack_string(&mut block, name);
            hpack_string(&mut block, value);
        }
        out.extend(h2_frame(HEADERS, END_HEADERS, 2 * i + 1, &block));
    }
    tls.write_all(&out).await.unwrap();
    tls.flush().await.unwrap();

    let (mut resets, mut goaway, mut advertised) = (Vec::new(), false, None);
    let mut buf = Vec::new();
    let until = Instant::now() + Duration::from_secs(2);
    loop {
        while buf.len() >= 9 {
            let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
            if buf.len() < 9 + len {
                break;
            }
            let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
            let payload = &buf[9..9 + len];
            match buf[3] {
                SETTINGS if buf[4] & 1 == 0 => {
                    for setting in payload.chunks_exact(6) {
                        if setting[..2] == [0, 3] {
                            advertised = Some(u32::from_be_bytes(setting[2..].try_into().unwrap()));
                        }
                    }
                }
                RST_STREAM if len == 4 => resets.push((stream, u32::from_be_bytes(payload.try_into().unwrap()))),
                GOAWAY => goaway = true,
                _ => {}
            }
            buf.drain(..9 + len);
        }
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout_at(until.into(), tls.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return (resets, goaway, advertised),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_opening_one_stream_past_the_limit_has_only_that_one_refused() {
    use arca_types::limits::HTTP2_STREAMS_PER_CONNECTION_MAX as MAX;
    const REFUSED_STREAM: u32 = 7;
    let cluster = TestCluster::start(1).await.unwrap();
    let node = &cluster.nodes[0];
    let api = format!("{}:{}", node.ip, node.api_port);
    let member = Identity::of_node(&node.data_dir).unwrap();
    let cluster_addr = node.cluster_addr();
    for (listener, addr, identity, path) in [
        ("API", api.as_str(), None, "/arca.v1.SecretService/GetSecret"),
        ("cluster", cluster_addr.as_str(), Some(&member), "/arca.cluster.v1.NodeService/ReadIndex"),
    ] {
        let (resets, goaway, advertised) = open_streams_at_once(addr, identity, path, &cluster.root_token, MAX).await;
        assert_eq!(advertised, Some(MAX), "{listener}: the server's SETTINGS arrived on a live connection");
        assert!(resets.is_empty() && !goaway, "{listener}: {MAX} streams are all taken: {resets:?}");
        let (resets, goaway, _) = open_streams_at_once(addr, identity, path, &cluster.root_token, MAX + 1).await;
        assert_eq!(resets, vec![(2 * MAX + 1, REFUSED_STREAM)], "{listener}: only stream {} is refused", MAX + 1);
        assert!(!goaway, "{listener}: the connection itself stays up");
    }
    // The node still serves.
    let c = cluster.client(0).await.unwrap();
    let vault = pb::CreateVaultRequest { name: "flood".into(), soft_delete_retention_days: 7, ..Default::default() };
    c.vaults().create_vault(vault).await.unwrap();
    set_and_get(&cluster, 0, "after-streams").await.unwrap();
}
