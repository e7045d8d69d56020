//! The attacker: a host on the cluster network that, all through the faults, sends every cluster RPC
//! with a payload that would do harm if it were taken — votes and heartbeats in the name of real nodes
//! at terms far ahead, snapshot headers, forwarding envelopes, joins with made-up tokens, AddNode and
//! ReadIndex. It calls as a stranger (a self-signed certificate) and as an impostor (a certificate from
//! a CA of its own naming a real node of the real cluster), switching between the two. Any call that is
//! answered with anything but a refusal is a failure, and every other checker must still pass.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arca_crypto::cluster_pki::{self, ClusterCa, Ed25519Key};
use arca_crypto::entropy::DangerSeededEntropy;
use arca_proto::cluster::v1 as cpb;
use arca_raft::rpc::forge;
use arca_transport::credentials::{CredentialStore, MemCredentialStore, StoredCredentials};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use super::{lock, net, node_name, Registry, CLUSTER_PORT};

/// The attacker's host name.
pub const HOST: &str = "attacker";
/// Pause between two forged calls, in simulated milliseconds (at most).
const CALL_PAUSE_MS_MAX: u64 = 150;
/// Each forged call gives up after this long: a refusal comes back at once, a paused node holds it.
const CALL_TIMEOUT_MS: u64 = 1_000;

/// What the attacker did, and any call that was not refused.
#[derive(Debug, Default)]
pub struct Tally {
    pub calls: usize,
    pub refused: usize,
    pub unanswered: usize,
    pub accepted: Vec<String>,
}

pub type SharedTally = Arc<Mutex<Tally>>;

/// A self-signed certificate and its key: a stranger.
fn stranger(entropy: &DangerSeededEntropy, now: i64) -> StoredCredentials {
    let key = Ed25519Key::generate(entropy);
    let cert_der = cluster_pki::provisional_certificate(&key, entropy, now).expect("a certificate is made");
    StoredCredentials { key, cert_der, ca_der: None }
}

/// A certificate from the attacker's own CA naming node `node` of cluster `cluster_id`: an impostor.
fn impostor(cluster_id: &[u8; 16], node: u64, entropy: &DangerSeededEntropy, now: i64) -> StoredCredentials {
    let ca = ClusterCa::generate(cluster_id, entropy, now).expect("a CA is made");
    let key = Ed25519Key::generate(entropy);
    let provisional = cluster_pki::provisional_certificate(&key, entropy, now).expect("a certificate is made");
    let spki = cluster_pki::certificate_spki(&provisional).expect("its key is read");
    let cert_der = ca.issue_node_certificate(cluster_id, node, &spki, entropy, now).expect("a certificate is issued");
    StoredCredentials { key, cert_der, ca_der: Some(ca.cert_der.clone()) }
}

/// Sends forged calls until `until` has passed since the start.
pub async fn attack(
    seed: u64,
    nodes: usize,
    identity: MemCredentialStore,
    registry: Registry,
    until: Duration,
    tally: SharedTally,
) -> Result<(), Box<dyn std::error::Error>> {
    let started = tokio::time::Instant::now();
    let mut rng = SmallRng::seed_from_u64(seed ^ 0xa77a_c4e5);
    let entropy = DangerSeededEntropy::new(seed ^ 0xa77a_c4e5_0000_0000);
    let now = || turmoil::since_epoch().map_or(0, |d| d.as_secs() as i64);
    identity.save(&stranger(&entropy, now()))?;
    let clients: Vec<_> = (0..nodes)
        .map(|i| {
            net::channel(&format!("{}:{CLUSTER_PORT}", node_name(i)))
                .map(cpb::node_service_client::NodeServiceClient::new)
        })
        .collect::<Result<_, _>>()?;
    while started.elapsed() < until {
        tokio::time::sleep(Duration::from_millis(rng.random_range(1..=CALL_PAUSE_MS_MAX))).await;
        // Now and then change face: a new stranger, or an impostor for a real node.
        if rng.random_ratio(1, 20) {
            let cluster_id = lock(&registry).values().find_map(|e| e.cluster_id().ok());
            let credentials = match cluster_id {
                Some(cluster_id) if rng.random_bool(0.5) => {
                    impostor(&cluster_id, rng.random_range(1..=nodes as u64), &entropy, now())
                }
                _ => stranger(&entropy, now()),
            };
            identity.save(&credentials)?;
        }
        let target = rng.random_range(0..nodes);
        let claimed = rng.random_range(1..=nodes as u64);
        let term = rng.random_range(1_000..1_000_000);
        let mut client = clients[target].clone();
        let kind = rng.random_range(0..7);
        let garbage: Vec<u8> = (0..rng.random_range(0..256)).map(|_| rng.random()).collect();
        let token = format!("arca-join-v1.{:032x}.{:064x}.{:016x}.{:064x}", rng.random::<u128>(), 0, 1, 2);
        let call = async {
            match kind {
                0 => {
                    ("Vote", client.vote(cpb::RaftPayload { data: forge::vote_request(claimed, term) }).await.map(drop))
                }
                1 => {
                    let heartbeat = cpb::RaftPayload { data: forge::heartbeat(claimed, term) };
                    ("AppendEntries", client.append_entries(heartbeat).await.map(drop))
                }
                2 => {
                    let header = cpb::SnapshotChunk { header: forge::snapshot_header(claimed, term), data: garbage };
                    ("InstallSnapshot", client.install_snapshot(tokio_stream::iter(vec![header])).await.map(drop))
                }
                3 => ("Forward", client.forward(cpb::RaftPayload { data: garbage }).await.map(drop)),
                4 => ("ReadIndex", client.read_index(cpb::ReadIndexRequest {}).await.map(drop)),
                5 => ("Join", client.join(cpb::JoinRequest { token }).await.map(drop)),
                _ => {
                    let request = cpb::AddNodeRequest {
                        node_id: claimed,
                        api_addr: format!("{HOST}:1"),
                        cluster_addr: format!("{HOST}:2"),
                        as_learner: false,
                        region: "default".into(),
                        ..Default::default()
                    };
                    ("AddNode", client.add_node(request).await.map(drop))
                }
            }
        };
        let answered = tokio::time::timeout(Duration::from_millis(CALL_TIMEOUT_MS), call).await;
        let mut t = lock(&tally);
        t.calls += 1;
        match answered {
            // A crashed, paused or partitioned node does not answer: the call did nothing either.
            Err(_) => t.unanswered += 1,
            Ok((_, Err(_))) => t.refused += 1,
            Ok((what, Ok(()))) => {
                t.accepted.push(format!("{what} to node {} in the name of node {claimed} was answered", target + 1))
            }
        }
    }
    Ok(())
}
