//! Attacks on the cluster listener of real `arcad` processes, from outside and from a member that lies.
//!
//! Before cluster admission, any certificate the shared CA signed could remove a voter, add nodes,
//! forward a raw proposal that wiped every replica, or feed Raft forged votes, entries and snapshots;
//! and any API client could make a spare node join. Each test below is one of those attacks, and
//! asserts that it is refused and that the cluster is exactly as it was.

use std::process::Command;
use std::time::Duration;

use arca_client::{pb, ClientError};
use arca_proto::cluster::v1 as cpb;
use arca_testkit::attack::{self, Identity};
use arca_testkit::{binary, TestCluster};

async fn set(cluster: &TestCluster, node: usize, vault: &str, name: &str, value: &str) -> pb::Secret {
    let c = cluster.client(node).await.unwrap();
    let req =
        pb::SetSecretRequest { vault: vault.into(), name: name.into(), value: value.into(), ..Default::default() };
    c.secrets().set_secret(req).await.map_err(ClientError::from).unwrap().into_inner()
}

async fn get(cluster: &TestCluster, node: usize, vault: &str, name: &str) -> Result<pb::Secret, ClientError> {
    let c = cluster.client(node).await.unwrap();
    let req = pb::GetSecretRequest { vault: vault.into(), name: name.into(), ..Default::default() };
    Ok(c.secrets().get_secret(req).await?.into_inner())
}

async fn create_vault(cluster: &TestCluster, name: &str) {
    let c = cluster.client(0).await.unwrap();
    let req = pb::CreateVaultRequest { name: name.into(), soft_delete_retention_days: 7, ..Default::default() };
    c.vaults().create_vault(req).await.map_err(ClientError::from).unwrap();
}

/// A certificate for `name` from the CA the cluster's clients trust (what the old shared CA was).
fn api_ca_certificate(cluster: &TestCluster, name: &str) -> Identity {
    let certs = cluster.dir.path().join("certs");
    let ok = Command::new(binary("arcad"))
        .args(["gen-certs", "--out"])
        .arg(&certs)
        .args(["--names", name, "--hosts", "localhost,127.0.0.1"])
        .status()
        .unwrap()
        .success();
    assert!(ok, "arcad gen-certs");
    Identity::from_files(&certs.join(format!("{name}.pem")), &certs.join(format!("{name}.key"))).unwrap()
}

/// A certificate from a CA of the attacker's own that names node `node` of the real cluster.
fn forged_member_certificate(cluster_id_hex: &str, node: u64) -> Identity {
    use arca_crypto::cluster_pki::{self, ClusterCa, Ed25519Key};
    let entropy = arca_crypto::OsEntropy;
    let mut cluster_id = [0u8; 16];
    for (i, byte) in cluster_id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&cluster_id_hex[2 * i..2 * i + 2], 16).unwrap();
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let ca = ClusterCa::generate(&cluster_id, &entropy, now).unwrap();
    let key = Ed25519Key::generate(&entropy);
    let provisional = cluster_pki::provisional_certificate(&key, &entropy, now).unwrap();
    let spki = cluster_pki::certificate_spki(&provisional).unwrap();
    let cert = ca.issue_node_certificate(&cluster_id, node, &spki, &entropy, now).unwrap();
    Identity {
        cert_pem: cluster_pki::pem("CERTIFICATE", &cert).into_bytes(),
        key_pem: cluster_pki::pem("PRIVATE KEY", key.pkcs8_der()).into_bytes(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_that_are_not_a_members_cannot_call_any_cluster_rpc() {
    let cluster = TestCluster::start(3).await.unwrap();
    let other = TestCluster::start(1).await.unwrap();
    create_vault(&cluster, "guarded").await;
    let before = set(&cluster, 0, "guarded", "db", "s3cret-before").await;
    let status = cluster.status(0).await.unwrap();
    assert_eq!(status.cluster_id.len(), 32, "{status:?}");
    let (leader, term) = (status.leader_id, status.term);

    let intruders = [
        ("a certificate from the CA clients trust (the old shared CA)", Some(api_ca_certificate(&cluster, "intruder"))),
        ("another cluster's node certificate", Some(Identity::of_node(&other.nodes[0].data_dir).unwrap())),
        (
            "a certificate naming node 1 from a CA the attacker made",
            Some(forged_member_certificate(&status.cluster_id, 1)),
        ),
        ("no certificate", None),
    ];
    for (what, identity) in &intruders {
        for node in &cluster.nodes {
            for (rpc, status) in attack::every_rpc(&node.cluster_addr(), identity.as_ref(), leader, term).await {
                if identity.is_none() {
                    // The handshake itself fails: the listener requires a certificate.
                    assert_ne!(status.code(), tonic::Code::Ok, "{what}: {rpc}");
                } else {
                    assert_eq!(
                        status.code(),
                        tonic::Code::PermissionDenied,
                        "{what}: {rpc} on {}: {status:?}",
                        node.name
                    );
                }
            }
        }
        // A join token the attacker made up is refused too (Join is the one RPC a stranger may call).
        if let Some(identity) = identity {
            let forged =
                format!("arca-join-v1.{}.{}.{}.{}", status.cluster_id, "0".repeat(64), "0".repeat(16), "0".repeat(64));
            let mut c = attack::node_client(&cluster.nodes[0].cluster_addr(), Some(identity)).unwrap();
            let err = c.join(cpb::JoinRequest { token: forged }).await.unwrap_err();
            assert_eq!(err.code(), tonic::Code::PermissionDenied, "{what}: {err:?}");
        }
    }

    // Nothing changed: the same three voters under the same leader and term, the secret intact, and
    // writes still commit.
    let after = cluster.status(0).await.unwrap();
    assert_eq!((after.leader_id, after.term), (leader, term), "forged votes or entries moved the term");
    assert_eq!(after.nodes.iter().filter(|n| n.role == "voter").count(), 3, "{after:?}");
    for node in 0..3 {
        let got = get(&cluster, node, "guarded", "db").await.unwrap();
        assert_eq!((got.value.as_str(), got.version.as_str()), ("s3cret-before", before.version.as_str()));
    }
    set(&cluster, 1, "guarded", "db", "s3cret-after").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cannot_speak_in_another_nodes_name_or_forward_a_raw_proposal() {
    let cluster = TestCluster::start(3).await.unwrap();
    let status = cluster.status(0).await.unwrap();
    let (leader, term) = (status.leader_id, status.term);
    let leader_index = cluster.leader_index().await.unwrap();
    // A follower's own certificate and key, as someone who took its disk holds them.
    let follower = (0..3).find(|i| *i != leader_index).unwrap();
    let member = Identity::of_node(&cluster.nodes[follower].data_dir).unwrap();
    let mut c = attack::node_client(&cluster.nodes[leader_index].cluster_addr(), Some(&member)).unwrap();
    use arca_raft::rpc::forge;
    let follower_id = cluster.status(follower).await.unwrap().node_id;
    let other = status.nodes.iter().map(|n| n.node_id).find(|id| *id != leader && *id != follower_id).unwrap();
    for (what, result) in [
        (
            "entries in the leader's name",
            c.append_entries(cpb::RaftPayload { data: forge::heartbeat(leader, term + 3) }).await.map(|_| ()),
        ),
        (
            "a vote in another node's name",
            c.vote(cpb::RaftPayload { data: forge::vote_request(other, term + 3) }).await.map(|_| ()),
        ),
    ] {
        let err = result.expect_err(what);
        assert_eq!(err.code(), tonic::Code::PermissionDenied, "{what}: {err:?}");
        assert!(err.message().contains("in the name of"), "{what}: {err:?}");
    }
    // A forwarded request must be a sealed envelope: raw bytes (such as an old raw proposal) do not
    // decode, whoever sends them.
    let err = c.forward(cpb::RaftPayload { data: vec![1, 0, 1, 0] }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    let after = cluster.status(0).await.unwrap();
    assert_eq!((after.leader_id, after.term), (leader, term));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_nodes_certificate_stops_working_at_once() {
    let mut cluster = TestCluster::start(3).await.unwrap();
    let fourth = cluster.add_node(false).await.unwrap();
    let fourth_id = cluster.status(fourth).await.unwrap().node_id;
    let stolen = Identity::of_node(&cluster.nodes[fourth].data_dir).unwrap();
    // While it is a member, its certificate opens the leader's ReadIndex.
    let leader = cluster.leader_index().await.unwrap();
    let mut c = attack::node_client(&cluster.nodes[leader].cluster_addr(), Some(&stolen)).unwrap();
    c.read_index(cpb::ReadIndexRequest {}).await.expect("a member may ask for a read index");

    cluster.kill(fourth);
    let c0 = cluster.client(0).await.unwrap();
    c0.cluster().remove_node(pb::RemoveNodeRequest { node_id: fourth_id }).await.map_err(ClientError::from).unwrap();
    let status = cluster.status(0).await.unwrap();
    // Every remaining node refuses it as soon as it holds the removal.
    cluster
        .wait_for(Duration::from_secs(10), async |c| {
            for i in 0..3 {
                match c.status(i).await {
                    Ok(s) if s.nodes.iter().all(|n| n.node_id != fourth_id) => {}
                    _ => return false,
                }
            }
            true
        })
        .await
        .unwrap();
    for node in &cluster.nodes[..3] {
        for (rpc, err) in attack::every_rpc(&node.cluster_addr(), Some(&stolen), fourth_id, status.term).await {
            assert_eq!(err.code(), tonic::Code::PermissionDenied, "{rpc} on {}: {err:?}", node.name);
        }
        let mut c = attack::node_client(&node.cluster_addr(), Some(&stolen)).unwrap();
        let again = cpb::AddNodeRequest {
            node_id: fourth_id,
            api_addr: cluster.nodes[fourth].api_addr().trim_start_matches("https://").to_owned(),
            cluster_addr: cluster.nodes[fourth].cluster_addr(),
            as_learner: false,
            region: "default".into(),
            ..Default::default()
        };
        let err = c.add_node(again).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied, "a removed node adding itself back: {err:?}");
    }
    // Restarted, the removed node does not get back in (its votes and requests are refused).
    cluster.relaunch(fourth).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = cluster.status(0).await.unwrap();
    assert!(after.nodes.iter().all(|n| n.node_id != fourth_id), "{after:?}");
    assert_eq!(after.nodes.len(), 3);
    assert_eq!((after.leader_id, after.term), (status.leader_id, status.term), "the removed node moved the term");
    let log = std::fs::read_to_string(&cluster.nodes[fourth].log_path).unwrap();
    assert!(log.contains("was removed from this cluster"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_needs_a_valid_single_use_unexpired_token_and_one_join_runs_at_a_time() {
    let mut cluster = TestCluster::start(1).await.unwrap();
    let peer = cluster.nodes[0].cluster_addr();
    let first = cluster.spawn_standby().unwrap();
    let second = cluster.spawn_standby().unwrap();
    for standby in [first, second] {
        cluster
            .wait_for(Duration::from_secs(20), async |c| {
                let Ok(client) = c.client(standby).await else { return false };
                client.operator().get_seal_status(pb::GetSealStatusRequest {}).await.is_ok()
            })
            .await
            .unwrap();
    }
    let join = async |cluster: &TestCluster, standby: usize, token: &str| {
        let c = cluster.client_with_token(standby, None).await.unwrap();
        let req = pb::JoinClusterRequest { peer: peer.clone(), as_learner: false, token: token.to_owned() };
        c.cluster().join_cluster(req).await.map(|r| r.into_inner()).map_err(ClientError::from)
    };
    // Without a token, unauthenticated: refused, and the spare node stays spare.
    let err = join(&cluster, first, "").await.unwrap_err();
    assert_eq!(err.reason.as_deref(), Some("BAD_PARAMETER"), "{err:?}");
    // A token with the real cluster's pin but a guessed secret.
    let real = cluster.join_token().await.unwrap();
    let mut guessed = real.clone();
    guessed.replace_range(guessed.len() - 8.., "00000000");
    let err = join(&cluster, first, &guessed).await.unwrap_err();
    assert_eq!(err.reason.as_deref(), Some("JOIN_TOKEN_INVALID"), "{err:?}");
    // A token for a cluster that is not the one at --peer.
    let other = TestCluster::start(1).await.unwrap();
    let foreign = other.join_token().await.unwrap();
    let err = join(&cluster, first, &foreign).await.unwrap_err();
    assert_eq!(err.reason.as_deref(), Some("JOIN_TOKEN_INVALID"), "{err:?}");
    assert_eq!(cluster.status(0).await.unwrap().nodes.len(), 1);

    // Two joins at once with a valid token: they run one after the other (the second finds the work
    // done), and one Raft core starts on the node's store.
    let (a, b) = tokio::join!(join(&cluster, first, &real), join(&cluster, first, &real));
    assert!(a.is_ok() || b.is_ok(), "{a:?} {b:?}");
    for r in [&a, &b] {
        if let Err(e) = r {
            assert_eq!(e.reason.as_deref(), Some("BAD_PARAMETER"), "the loser is told the node is a member: {e:?}");
        }
    }
    let status = cluster.status(0).await.unwrap();
    assert_eq!(status.nodes.len(), 2, "{status:?}");
    let log = std::fs::read_to_string(&cluster.nodes[first].log_path).unwrap();
    assert_eq!(log.matches("started Raft").count(), 1, "{log}");

    // The token is single-use: another node presenting it is refused.
    let err = join(&cluster, second, &real).await.unwrap_err();
    assert_eq!(err.reason.as_deref(), Some("JOIN_TOKEN_INVALID"), "{err:?}");
    assert!(err.message.contains("already used"), "{err:?}");
    // An expired token is refused.
    let short = {
        let c = cluster.client(0).await.unwrap();
        let req = pb::CreateJoinTokenRequest { ttl: Some(prost_types::Duration { seconds: 60, nanos: 0 }) };
        c.cluster().create_join_token(req).await.unwrap().into_inner().token
    };
    cluster.advance_clock(120);
    let err = join(&cluster, second, &short).await.unwrap_err();
    assert_eq!(err.reason.as_deref(), Some("JOIN_TOKEN_INVALID"), "{err:?}");
    assert!(err.message.contains("expired"), "{err:?}");
    assert_eq!(cluster.status(0).await.unwrap().nodes.len(), 2);
    // Minting tokens needs the cluster/manage right: no token, no join token.
    let anonymous = cluster.client_with_token(0, None).await.unwrap();
    let err = anonymous.cluster().create_join_token(pb::CreateJoinTokenRequest { ttl: None }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_certificates_name_their_cluster_and_node_and_openssl_reads_them() {
    let cluster = TestCluster::start(3).await.unwrap();
    let status = cluster.status(0).await.unwrap();
    for (i, node) in cluster.nodes.iter().enumerate() {
        let id = cluster.status(i).await.unwrap().node_id;
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
            .arg(node.data_dir.join("cluster-tls/node.pem"))
            .output()
            .expect("run openssl");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(&format!("URI:arca://{}/node/{id}", status.cluster_id)), "{}: {text}", node.name);
        let mode = std::fs::metadata(node.data_dir.join("cluster-tls/node.key")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_needs_the_bootstrap_secret_and_a_lost_answer_is_named_on_retry() {
    let cluster = TestCluster::start_uninitialized().await.unwrap();
    let anonymous = cluster.client_with_token(0, None).await.unwrap();
    let init = async |secret: &str, request_id: &str| {
        let req = pb::InitRequest {
            secret_shares: 3,
            secret_threshold: 2,
            auto_unseal_key: false,
            bootstrap_secret: secret.to_owned(),
            request_id: request_id.to_owned(),
        };
        loop {
            match anonymous.operator().init(req.clone()).await {
                // Not leading its one-node cluster yet: the node is still starting.
                Err(s) if s.code() == tonic::Code::Unavailable => tokio::time::sleep(Duration::from_millis(200)).await,
                other => break other.map(|r| r.into_inner()).map_err(ClientError::from),
            }
        }
    };
    // The first caller on the network does not get the cluster: without the secret nothing happens.
    for secret in ["", "0000", &"f".repeat(64)] {
        let err = init(secret, "").await.unwrap_err();
        assert_eq!(err.reason.as_deref(), Some("FORBIDDEN"), "{err:?}");
    }
    let status = anonymous.operator().get_seal_status(pb::GetSealStatusRequest {}).await.unwrap().into_inner();
    assert!(!status.initialized);
    let secret = cluster.bootstrap_secret().unwrap();
    let first = init(&secret, "operator-1").await.unwrap();
    assert_eq!(first.shares.len(), 3);
    // Retried with the same request id (its answer was lost): told plainly that it was this request.
    let err = init(&secret, "operator-1").await.unwrap_err();
    assert_eq!(err.reason.as_deref(), Some("ALREADY_INITIALIZED"), "{err:?}");
    assert!(err.message.contains("this same request"), "{err:?}");
    let err = init(&secret, "someone-else").await.unwrap_err();
    assert!(err.message.contains("another request"), "{err:?}");
    // The secret never reached the node's log or the audit log.
    let files = cluster.files_to_scan();
    assert!(arca_testkit::files_containing(&files, secret.as_bytes()).iter().all(|f| f.ends_with("bootstrap.secret")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_without_the_nonce_can_reset_or_poison_an_unseal_in_progress() {
    let cluster = TestCluster::start(1).await.unwrap();
    let c = cluster.client(0).await.unwrap();
    c.operator().seal(pb::SealRequest {}).await.unwrap();
    let anyone = cluster.client_with_token(0, None).await.unwrap();
    let unseal = async |share: &str, nonce: &str, reset: bool| {
        let req = pb::UnsealRequest { share: share.to_owned(), reset, nonce: nonce.to_owned() };
        anyone.operator().unseal(req).await.map(|r| r.into_inner()).map_err(ClientError::from)
    };
    let operator = unseal(&cluster.shares[0], "", false).await.unwrap();
    assert_eq!(operator.progress, 1);
    // The attacker: a bogus share, a reset, a guessed nonce. Each refused; the progress stays.
    let bogus = format!("09{}", "ab".repeat(32));
    for (share, nonce, reset) in
        [(bogus.as_str(), "", false), ("", "", true), (bogus.as_str(), &"1".repeat(32)[..], false)]
    {
        let err = unseal(share, nonce, reset).await.unwrap_err();
        assert_eq!(err.reason.as_deref(), Some("CONFLICT"), "{err:?}");
    }
    let status = anyone.operator().get_seal_status(pb::GetSealStatusRequest {}).await.unwrap().into_inner();
    assert_eq!((status.sealed, status.progress), (true, 1));
    unseal(&cluster.shares[1], &operator.nonce, false).await.unwrap();
    let done = unseal(&cluster.shares[2], &operator.nonce, false).await.unwrap();
    assert!(!done.sealed);
}

/// The forwarded envelopes `node` logged under the test hook after byte `from` of its log, with the
/// node id of the member that sent each.
fn captured_envelopes(cluster: &TestCluster, node: usize, from: usize) -> Vec<(u64, Vec<u8>)> {
    let log = std::fs::read_to_string(&cluster.nodes[node].log_path).unwrap();
    let field = |line: &str, name: &str| {
        let start = line.find(&format!(" {name}="))? + name.len() + 2;
        Some(line[start..].split_whitespace().next()?.to_owned())
    };
    log[from.min(log.len())..]
        .lines()
        .filter(|l| l.contains("danger-faults: a forwarded envelope"))
        .filter_map(|l| Some((field(l, "caller")?.parse().ok()?, hex::decode(field(l, "envelope")?).ok()?)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_forward_cannot_be_replayed_redirected_or_sent_in_another_name() {
    // Every node logs the envelopes forwarded to it (a test hook of danger-faults builds), so the
    // test holds what a member, or someone with its disk and a tap on the wire, could capture.
    let hook = ["--danger-fault", "log-forwarded-envelopes"];
    let mut cluster = TestCluster::start(1).await.unwrap();
    cluster.kill(0);
    cluster.nodes[0].extra_args = hook.iter().map(|s| s.to_string()).collect();
    cluster.restart(0).await.unwrap();
    for _ in 0..2 {
        cluster.add_node_with(false, &hook).await.unwrap();
    }
    create_vault(&cluster, "replayed").await;
    let leader = cluster.leader_index().await.unwrap();
    let sender = (0..3).find(|i| *i != leader).unwrap();
    let bystander = (0..3).find(|i| *i != leader && *i != sender).unwrap();
    let sender_id = cluster.status(sender).await.unwrap().node_id;
    let log_len = std::fs::metadata(&cluster.nodes[leader].log_path).unwrap().len() as usize;
    let first = set(&cluster, sender, "replayed", "db", "v1").await;
    let envelope = captured_envelopes(&cluster, leader, log_len)
        .into_iter()
        .find(|(caller, _)| *caller == sender_id)
        .map(|(_, e)| e)
        .expect("the leader logged the forwarded set");
    let versions = || async {
        let c = cluster.client(leader).await.unwrap();
        let req = pb::ListSecretVersionsRequest { vault: "replayed".into(), name: "db".into(), ..Default::default() };
        c.secrets().list_secret_versions(req).await.unwrap().into_inner().secrets.len()
    };
    assert_eq!(versions().await, 1);

    let as_node = |from: usize, to: usize| {
        let identity = Identity::of_node(&cluster.nodes[from].data_dir).unwrap();
        attack::node_client(&cluster.nodes[to].cluster_addr(), Some(&identity)).unwrap()
    };
    let forward = |data: Vec<u8>| cpb::RaftPayload { data };
    let mut tampered = envelope.clone();
    *tampered.last_mut().unwrap() ^= 1;
    for (what, from, to, data, code, says) in [
        ("sent again by its sender", sender, leader, envelope.clone(), tonic::Code::InvalidArgument, "a replay"),
        (
            "sent by another member",
            bystander,
            leader,
            envelope.clone(),
            tonic::Code::PermissionDenied,
            "in the name of",
        ),
        ("sent to another node", sender, bystander, envelope.clone(), tonic::Code::InvalidArgument, "sealed for node"),
        ("altered", sender, leader, tampered, tonic::Code::InvalidArgument, "did not open"),
    ] {
        let err = as_node(from, to).forward(forward(data)).await.expect_err(what);
        assert_eq!(err.code(), code, "{what}: {err:?}");
        assert!(err.message().contains(says), "{what}: {err:?}");
    }
    // Past its age limit an envelope is refused for its age, before it is opened.
    cluster.advance_clock(arca_types::limits::FORWARD_ENVELOPE_AGE_S_MAX + 1);
    let err = as_node(sender, leader).forward(forward(envelope)).await.expect_err("an old envelope");
    assert!(err.message().contains("more than 30 s"), "{err:?}");

    assert_eq!(versions().await, 1, "no replay made a second version");
    let second = set(&cluster, sender, "replayed", "db", "v2").await;
    assert_ne!(second.version, first.version, "the cluster still takes forwarded writes");
    assert_eq!(versions().await, 2);
}
