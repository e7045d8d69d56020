//! Three (and four) real `arcad` processes on loopback with TLS and RocksDB: writes through any node,
//! SIGKILL of the leader mid-stream with every acknowledged write checked, restart and catch-up, a new
//! node that catches up from a snapshot, and the sealed-node and token rules.

use std::collections::HashMap;
use std::time::Duration;

use arca_client::{pb, ArcaClient, ClientError};
use arca_testkit::TestCluster;

async fn create_vault(c: &ArcaClient, name: &str) -> Result<pb::Vault, ClientError> {
    let req = pb::CreateVaultRequest { name: name.into(), soft_delete_retention_days: 7, ..Default::default() };
    Ok(c.vaults().create_vault(req).await?.into_inner())
}

async fn set(c: &ArcaClient, vault: &str, name: &str, value: &str) -> Result<pb::Secret, ClientError> {
    let req =
        pb::SetSecretRequest { vault: vault.into(), name: name.into(), value: value.into(), ..Default::default() };
    Ok(c.secrets().set_secret(req).await?.into_inner())
}

async fn get(c: &ArcaClient, vault: &str, name: &str, version: &str) -> Result<pb::Secret, ClientError> {
    let req =
        pb::GetSecretRequest { vault: vault.into(), name: name.into(), version: version.into(), read_options: None };
    Ok(c.secrets().get_secret(req).await?.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_any_node_are_read_from_every_node() {
    let cluster = TestCluster::start(3).await.unwrap();
    let c0 = cluster.client(0).await.unwrap();
    create_vault(&c0, "shared").await.unwrap();
    for writer in 0..3 {
        let c = cluster.client(writer).await.unwrap();
        let s = set(&c, "shared", &format!("from-{writer}"), &format!("value-{writer}")).await.unwrap();
        assert_eq!(s.version.len(), 32);
        for reader in 0..3 {
            let r = cluster.client(reader).await.unwrap();
            let got = get(&r, "shared", &format!("from-{writer}"), "").await.unwrap();
            assert_eq!(got.value, format!("value-{writer}"), "linearizable read on node {reader}");
        }
    }
    // A bounded-staleness read is served by a follower's own replica.
    let leader = cluster.leader_index().await;
    let follower = (0..3).find(|i| Some(*i) != leader).unwrap();
    let c = cluster.client(follower).await.unwrap();
    let req = pb::GetSecretRequest {
        vault: "shared".into(),
        name: "from-0".into(),
        version: String::new(),
        read_options: Some(pb::ReadOptions {
            consistency: pb::Consistency::BoundedStaleness as i32,
            max_staleness: Some(prost_types::Duration { seconds: 5, nanos: 0 }),
        }),
    };
    let resp = c.secrets().get_secret(req).await.unwrap();
    assert_eq!(
        resp.metadata().get("x-arca-node-id").unwrap().to_str().unwrap(),
        cluster_node_id(&cluster, follower).await
    );
    assert_eq!(resp.into_inner().value, "value-0");
    let status = cluster.status(0).await.unwrap();
    assert_eq!(status.nodes.iter().filter(|n| n.role == "voter").count(), 3);
}

async fn cluster_node_id(cluster: &TestCluster, index: usize) -> String {
    cluster.status(index).await.unwrap().node_id.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_leader_loses_no_acknowledged_write() {
    let mut cluster = TestCluster::start(3).await.unwrap();
    let c0 = cluster.client(0).await.unwrap();
    create_vault(&c0, "durable").await.unwrap();
    let clients: Vec<ArcaClient> =
        futures::future::join_all((0..3).map(|i| cluster.client(i))).await.into_iter().map(Result::unwrap).collect();
    let leader = cluster.leader_index().await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let clients = clients.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                for i in 0..60 {
                    let name = format!("w{w}-k{}", i % 7);
                    let value = format!("w{w}-i{i}");
                    // Spread writes over every node, including the one about to die.
                    let c = &clients[(w + i) % 3];
                    if let Ok(s) = set(c, "durable", &name, &value).await {
                        tx.send((name, s.version, value)).unwrap();
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        })
        .collect();
    drop(tx);
    tokio::time::sleep(Duration::from_millis(700)).await;
    cluster.kill(leader);
    for w in writers {
        w.await.unwrap();
    }
    let mut acked = Vec::new();
    while let Some(x) = rx.recv().await {
        acked.push(x);
    }
    assert!(acked.len() > 60, "most writes should succeed around the failover, got {}", acked.len());
    cluster.restart(leader).await.unwrap();
    cluster.wait_for(Duration::from_secs(30), async |c: &TestCluster| c.leader_index().await.is_some()).await.unwrap();
    for reader in 0..3 {
        let c = cluster.client(reader).await.unwrap();
        for (name, version, value) in &acked {
            let got = get(&c, "durable", name, version)
                .await
                .unwrap_or_else(|e| panic!("acknowledged write lost on node {reader}: {e}"));
            assert_eq!(&got.value, value);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_node_catches_up_and_new_node_installs_a_snapshot() {
    let mut cluster = TestCluster::start_with(3, 40).await.unwrap();
    let c0 = cluster.client(0).await.unwrap();
    create_vault(&c0, "catchup").await.unwrap();
    let victim = (cluster.leader_index().await.unwrap() + 1) % 3;
    cluster.kill(victim);
    let writer = cluster.client((victim + 1) % 3).await.unwrap();
    let mut written = HashMap::new();
    for i in 0..150 {
        let s = set(&writer, "catchup", &format!("k{i}"), &format!("v{i}")).await.unwrap();
        written.insert(format!("k{i}"), (s.version, format!("v{i}")));
    }
    cluster.restart(victim).await.unwrap();
    let c = cluster.client(victim).await.unwrap();
    for (name, (version, value)) in &written {
        assert_eq!(&get(&c, "catchup", name, version).await.unwrap().value, value);
    }
    let fourth = cluster.add_node(false).await.unwrap();
    let c4 = cluster.client(fourth).await.unwrap();
    for (name, (version, value)) in &written {
        assert_eq!(&get(&c4, "catchup", name, version).await.unwrap().value, value);
    }
    let log = std::fs::read_to_string(&cluster.nodes[fourth].log_path).unwrap();
    assert!(log.contains("installed snapshot"), "the new node should catch up from a snapshot, not the whole log");
    // The snapshot was received into a file of the node's data dir and kept there; no other file of
    // an unfinished snapshot stays behind.
    let snapshots = cluster.nodes[fourth].data_dir.join("snapshots");
    let names: Vec<_> = std::fs::read_dir(&snapshots).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("current")]);
    let kept = std::fs::read(snapshots.join("current")).unwrap();
    assert!(kept.starts_with(b"ARCASNP1") && kept.len() > 150 * 32, "{} bytes", kept.len());
    // It is read back after a restart, and the node still serves everything.
    cluster.kill(fourth);
    cluster.restart(fourth).await.unwrap();
    let c4 = cluster.client(fourth).await.unwrap();
    for (name, (version, value)) in written.iter().take(10) {
        assert_eq!(&get(&c4, "catchup", name, version).await.unwrap().value, value);
    }
    let status = cluster.status(0).await.unwrap();
    assert_eq!(status.nodes.iter().filter(|n| n.role == "voter").count(), 4);

    // Removing the new node shrinks the membership back to three; writes still commit.
    let fourth_id = cluster.status(fourth).await.unwrap().node_id;
    let removed = c0
        .cluster()
        .remove_node(pb::RemoveNodeRequest { node_id: fourth_id })
        .await
        .map_err(ClientError::from)
        .unwrap()
        .into_inner();
    assert!(removed.nodes.iter().all(|n| n.node_id != fourth_id), "{removed:?}");
    set(&c0, "catchup", "after-remove", "v").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_node_and_bad_tokens_are_refused() {
    let cluster = TestCluster::start(3).await.unwrap();
    let c0 = cluster.client(0).await.unwrap();
    create_vault(&c0, "guarded").await.unwrap();
    set(&c0, "guarded", "s", "v").await.unwrap();

    // Missing and wrong tokens.
    for token in [None, Some("arca.0000"), Some("not-a-token")] {
        let c = cluster.client_with_token(1, token).await.unwrap();
        let e = get(&c, "guarded", "s", "").await.unwrap_err();
        assert_eq!(e.code, tonic::Code::Unauthenticated);
        assert_eq!(e.reason.as_deref(), Some("UNAUTHORIZED"));
        assert!(!e.message.contains("arca.0000"));
        let e = set(&c, "guarded", "s", "changed").await.unwrap_err();
        assert_eq!(e.code, tonic::Code::Unauthenticated);
    }
    assert_eq!(get(&c0, "guarded", "s", "").await.unwrap().value, "v", "refused writes changed nothing");

    // Seal node 2 (index 1); it refuses data operations but answers seal status without a token. It
    // stays sealed although it was started with an unseal key file: that file unseals it only at start.
    let c1 = cluster.client(1).await.unwrap();
    let key = std::fs::read_to_string(cluster.unseal_key_path()).unwrap();
    let status = c1.operator().seal(pb::SealRequest {}).await.unwrap().into_inner();
    assert!(status.sealed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let e = get(&c1, "guarded", "s", "").await.unwrap_err();
    assert_eq!((e.code, e.reason.as_deref()), (tonic::Code::Unavailable, Some("SEALED")));
    let e = set(&c1, "guarded", "s", "x").await.unwrap_err();
    assert_eq!(e.reason.as_deref(), Some("SEALED"));
    let anonymous = cluster.client_with_token(1, None).await.unwrap();
    let s = anonymous.operator().get_seal_status(pb::GetSealStatusRequest {}).await.unwrap().into_inner();
    assert!(s.sealed && s.initialized);
    let unseal = async |share: &str, nonce: &str, reset: bool| {
        let req = pb::UnsealRequest { share: share.to_owned(), reset, nonce: nonce.to_owned() };
        anonymous.operator().unseal(req).await.map(|r| r.into_inner()).map_err(ClientError::from)
    };
    // A wrong share alone is refused and leaves the node sealed.
    let e = unseal(&"00".repeat(33), "", false).await.unwrap_err();
    assert_eq!(e.code, tonic::Code::InvalidArgument);
    // Three of the five Shamir shares unseal it; the first answer carries the attempt's nonce, which
    // nobody else sees (not seal status), and without which nobody can add a share or reset.
    let first = unseal(&cluster.shares[1], "", false).await.unwrap();
    assert_eq!((first.sealed, first.progress), (true, 1));
    assert_eq!(first.nonce.len(), 32);
    let public = anonymous.operator().get_seal_status(pb::GetSealStatusRequest {}).await.unwrap().into_inner();
    assert_eq!((public.progress, public.nonce.as_str()), (1, ""), "seal status shows no nonce");
    for (share, nonce, reset) in
        [(cluster.shares[4].as_str(), "", false), ("", "", true), ("", &"0".repeat(32)[..], true)]
    {
        let e = unseal(share, nonce, reset).await.unwrap_err();
        assert_eq!(e.reason.as_deref(), Some("CONFLICT"), "a share or reset without the nonce: {e:?}");
    }
    let second = unseal(&cluster.shares[2], &first.nonce, false).await.unwrap();
    assert_eq!((second.sealed, second.progress), (true, 2));
    assert_eq!(get(&c1, "guarded", "s", "").await.unwrap_err().reason.as_deref(), Some("SEALED"));
    let third = unseal(&cluster.shares[3], &first.nonce, false).await.unwrap();
    assert!(!third.sealed);
    assert_eq!(get(&c1, "guarded", "s", "").await.unwrap().value, "v");
    // The unseal key (the whole root key) unseals on its own.
    c1.operator().seal(pb::SealRequest {}).await.unwrap();
    let s = unseal(key.trim(), "", false).await.unwrap();
    assert!(!s.sealed);
    assert_eq!(get(&c1, "guarded", "s", "").await.unwrap().value, "v");
    // Unseal requests are rate-limited.
    let mut throttled = false;
    for _ in 0..60 {
        if let Err(e) = unseal("", "", false).await {
            throttled |= e.reason.as_deref() == Some("THROTTLED");
        }
    }
    assert!(throttled, "sixty unseal requests at once are throttled");
}

/// The role node `index` has in the leader's view ("voter", "learner"), if the leader lists it.
async fn role_of(cluster: &TestCluster, index: usize) -> Option<String> {
    let leader = cluster.leader_index().await?;
    let id = cluster.status(index).await.ok()?.node_id;
    let status = cluster.status(leader).await.ok()?;
    status.nodes.into_iter().find(|n| n.node_id == id).map(|n| n.role)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_added_as_a_learner_but_never_promoted_is_promoted_after_a_restart() {
    let mut cluster = TestCluster::start(3).await.unwrap();
    // The new node stops after the learner step, as a crash between the two steps would leave it.
    let new = cluster.add_node_with(false, &["--danger-fault", "join-stops-after-learner"]).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(role_of(&cluster, new).await.as_deref(), Some("learner"), "the promotion did not happen");

    cluster.kill(new);
    cluster.nodes[new].extra_args.clear();
    cluster.restart(new).await.unwrap();
    cluster
        .wait_for(Duration::from_secs(60), async |c: &TestCluster| role_of(c, new).await.as_deref() == Some("voter"))
        .await
        .expect("after a restart the node asks again and is promoted");
    // It votes now: with it, four voters need three, and writes still commit.
    let c = cluster.client(new).await.unwrap();
    create_vault(&c, "promoted").await.unwrap();
    set(&c, "promoted", "s", "v").await.unwrap();
}

/// The hot key: many writers setting one secret at once (the config secret everyone rotates),
/// through every node. Every set succeeds the first time it is sent (none is refused because the
/// secret kept changing), each gets its own version, and the secret lists exactly those versions in
/// an order that keeps each writer's sets in the order it made them. Sets waiting for the secret's
/// turn are decided together on the leader: each writer is still answered with its own version,
/// which holds the value it set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_writers_to_one_secret_all_succeed_and_are_listed_in_order() {
    const WRITERS: usize = 48;
    const SETS_EACH: usize = 10;
    let cluster = TestCluster::start(3).await.unwrap();
    let clients: Vec<ArcaClient> =
        futures::future::join_all((0..3).map(|i| cluster.client(i))).await.into_iter().map(Result::unwrap).collect();
    create_vault(&clients[0], "hot").await.unwrap();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let c = clients[w % 3].clone();
            tokio::spawn(async move {
                let mut versions = Vec::new();
                for i in 0..SETS_EACH {
                    let s = set(&c, "hot", "config", &format!("w{w}-i{i}"))
                        .await
                        .unwrap_or_else(|e| panic!("writer {w}'s set {i} to the hot secret failed: {e}"));
                    assert_eq!(s.value, format!("w{w}-i{i}"), "writer {w} is answered with its own set {i}");
                    versions.push(s.version);
                }
                versions
            })
        })
        .collect();
    let mut written = Vec::new();
    for w in writers {
        written.push(w.await.unwrap());
    }
    let mut listed = Vec::new();
    let mut page_token = String::new();
    loop {
        let req = pb::ListSecretVersionsRequest {
            vault: "hot".into(),
            name: "config".into(),
            page_size: 100,
            page_token: page_token.clone(),
            ..Default::default()
        };
        let page = clients[1].secrets().list_secret_versions(req).await.unwrap().into_inner();
        listed.extend(page.secrets.into_iter().map(|s| s.version));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(listed.len(), WRITERS * SETS_EACH, "every set is one version, listed once");
    let position: HashMap<&String, usize> = listed.iter().enumerate().map(|(i, v)| (v, i)).collect();
    assert_eq!(position.len(), listed.len(), "no version is listed twice");
    for (w, versions) in written.iter().enumerate() {
        let at: Vec<usize> = versions
            .iter()
            .map(|v| *position.get(v).unwrap_or_else(|| panic!("writer {w}'s {v} is not listed")))
            .collect();
        assert!(at.windows(2).all(|p| p[0] < p[1]), "writer {w}'s versions are listed in the order it set them");
    }
    let latest = get(&clients[2], "hot", "config", "").await.unwrap();
    assert_eq!(Some(&latest.version), listed.last(), "the current version is the last one listed");
    for (w, versions) in written.iter().enumerate() {
        for (i, v) in versions.iter().enumerate() {
            let got = get(&clients[(w + i) % 3], "hot", "config", v).await.unwrap();
            assert_eq!(got.value, format!("w{w}-i{i}"), "the version writer {w} was answered holds its set {i}");
        }
    }
}
