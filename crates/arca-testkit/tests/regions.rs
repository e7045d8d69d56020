//! Regions on real processes: a node started with another `--region` than the voters' is an
//! asynchronous replica (a learner, whatever it asks for), serves reads and forwards writes, and status
//! reports each region's role and how far it trails, in entries and in milliseconds.

use std::time::Duration;

use arca_client::{pb, ArcaClient, ClientError};
use arca_proto::cluster::v1 as cpb;
use arca_testkit::attack::{self, Identity};
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

async fn get(c: &ArcaClient, vault: &str, name: &str) -> Result<pb::Secret, ClientError> {
    let req = pb::GetSecretRequest { vault: vault.into(), name: name.into(), ..Default::default() };
    Ok(c.secrets().get_secret(req).await?.into_inner())
}

/// Waits until the primary holds a lease, sets `s` in `vault` to `value`, and waits until `east` has
/// every entry.
async fn leased_and_caught_up(cluster: &TestCluster, a: &ArcaClient, vault: &str, value: &str) {
    cluster
        .wait_for(Duration::from_secs(30), async |c: &TestCluster| leader_status(c).await.lease_remaining_ms > 0)
        .await
        .expect("the primary holds a lease");
    set(a, vault, "s", value).await.unwrap();
    cluster
        .wait_for(Duration::from_secs(30), async |c: &TestCluster| {
            leader_status(c).await.regions.iter().any(|r| r.name == "east" && r.lag == 0)
        })
        .await
        .expect("east caught up");
}

/// A client given every node's address (`a,b,c`), as one that knows no regions would be.
fn of_every_node(cluster: &TestCluster) -> ArcaClient {
    ArcaClient::connect_lazy(arca_client::ConnectOptions {
        addr: cluster.nodes.iter().map(|n| n.api_addr()).collect::<Vec<_>>().join(","),
        ca_pem: Some(cluster.ca_pem.clone()),
        token: Some(cluster.root_token.clone()),
        timeout: None,
        attempts: 0,
    })
    .unwrap()
}

/// The leader's status (only the leader knows how far each node trails).
async fn leader_status(cluster: &TestCluster) -> pb::ClusterStatus {
    let leader = cluster.leader_index().await.expect("a leader");
    cluster.status(leader).await.expect("the leader's status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_of_another_region_is_an_asynchronous_replica_that_serves_reads_and_forwards_writes() {
    let mut cluster = TestCluster::start(3).await.unwrap();
    // It asks to be a voter; its region makes it a learner.
    let east = cluster.add_node_with(false, &["--region", "East"]).await.unwrap();
    let east_id = cluster.status(east).await.unwrap().node_id;

    let status = leader_status(&cluster).await;
    let node = status.nodes.iter().find(|n| n.node_id == east_id).expect("the east node is a member");
    assert_eq!((node.role.as_str(), node.region.as_str()), ("learner", "east"));
    let voters: Vec<&pb::NodeStatus> = status.nodes.iter().filter(|n| n.role == "voter").collect();
    assert_eq!(voters.len(), 3);
    assert!(voters.iter().all(|n| n.region == "default"), "{voters:?}");
    let regions: Vec<(&str, &str, &[u64])> =
        status.regions.iter().map(|r| (r.name.as_str(), r.role.as_str(), r.node_ids.as_slice())).collect();
    assert_eq!(regions[0].0, "default");
    assert_eq!(regions[0].1, "primary");
    assert_eq!(regions[0].2.len(), 3);
    assert_eq!(regions[1], ("east", "secondary", [east_id].as_slice()));

    // A write sent to the secondary is forwarded; it reads its own replica.
    let b = cluster.client(east).await.unwrap();
    create_vault(&b, "regions").await.unwrap();
    set(&b, "regions", "s", "through-east").await.unwrap();
    let a = cluster.client(0).await.unwrap();
    assert_eq!(get(&a, "regions", "s").await.unwrap().value, "through-east");
    set(&a, "regions", "s", "through-a").await.unwrap();
    assert_eq!(get(&b, "regions", "s").await.unwrap().value, "through-a");

    // Frozen, it falls behind, and status says by how many entries and for how long; the primary
    // keeps committing without it.
    cluster.pause(east).unwrap();
    let frozen_at = std::time::Instant::now();
    for i in 0..5 {
        set(&a, "regions", "s", &format!("while-frozen-{i}")).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let status = leader_status(&cluster).await;
    let behind = status.regions.iter().find(|r| r.name == "east").unwrap();
    let node = status.nodes.iter().find(|n| n.node_id == east_id).unwrap();
    assert!(behind.lag >= 5 && node.lag == behind.lag, "east lags by entries: {behind:?} {node:?}");
    let frozen_ms = frozen_at.elapsed().as_millis() as u64;
    assert!(
        (1_300..=frozen_ms + 200).contains(&behind.lag_ms) && node.lag_ms == behind.lag_ms,
        "east lags by time (frozen {frozen_ms} ms): {behind:?}"
    );
    let primary = &status.regions[0];
    assert_eq!((primary.role.as_str(), primary.lag), ("primary", 0), "{primary:?}");

    cluster.resume(east).unwrap();
    cluster
        .wait_for(Duration::from_secs(30), async |c: &TestCluster| {
            let s = leader_status(c).await;
            s.regions.iter().any(|r| r.name == "east" && r.lag == 0 && r.lag_ms == 0)
        })
        .await
        .expect("east catches up");
    assert_eq!(get(&b, "regions", "s").await.unwrap().value, "while-frozen-4");

    // Restarted, it stays what it is: a learner of its region, not a voter that never finished joining.
    cluster.kill(east);
    cluster.restart(east).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = leader_status(&cluster).await;
    let node = status.nodes.iter().find(|n| n.node_id == east_id).unwrap();
    assert_eq!((node.role.as_str(), node.region.as_str()), ("learner", "east"));
    assert_eq!(status.nodes.iter().filter(|n| n.role == "voter").count(), 3);
    let b = cluster.client(east).await.unwrap();
    assert_eq!(get(&b, "regions", "s").await.unwrap().value, "while-frozen-4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_name_that_breaks_the_rules_is_refused_at_start() {
    for bad in ["", "1east", "east-", "ea st", &"e".repeat(33)] {
        let out = std::process::Command::new(arca_testkit::binary("arcad"))
            .args(["serve", "--region", bad, "--data-dir", "/nonexistent/arca-region-test"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "region {bad:?} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("region must be 1-32 letters"), "region {bad:?}: {stderr}");
    }
}

/// The reason a failed call carries.
fn reason(e: &ClientError) -> Option<&str> {
    e.reason.as_deref()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_witness_the_primary_takes_writes_only_while_a_second_site_grants_its_lease() {
    let mut cluster = TestCluster::start(3).await.unwrap();
    let east = cluster.add_node_with(false, &["--region", "east"]).await.unwrap();
    let a = cluster.client(0).await.unwrap();
    create_vault(&a, "fenced").await.unwrap();
    let mut witness = cluster.start_witness().await.unwrap();

    // Failover is set up: epoch 1 of the primary region, and the leader holds a lease.
    cluster
        .wait_for(Duration::from_secs(30), async |c: &TestCluster| {
            let s = leader_status(c).await;
            s.failover_enabled && s.epoch == 1 && s.epoch_primary == "default" && s.lease_remaining_ms > 0
        })
        .await
        .expect("the leader holds a lease on epoch 1");
    set(&a, "fenced", "s", "with-all-three").await.unwrap();

    // Who may talk to the epoch record. At the witness, a certificate from the CA clients trust is
    // refused before any handler. A member (the secondary's node, as someone who took its disk) may
    // not promote in another's name, nor beyond the next epoch, nor while the primary holds its
    // lease (the acceptors' promises run), nor renew anything but the current epoch; at a node of the
    // primary, only its voters renew at all. Nothing else is served at the witness.
    let witness_addr = format!("127.0.0.1:{}", witness.port);
    let certs = cluster.dir.path().join("certs");
    let stranger = Identity::from_files(&certs.join("node9.pem"), &certs.join("node9.key")).unwrap();
    let ahead = || cpb::EpochRequest { number: u64::MAX, primary: "east".into(), founder: 0, ..Default::default() };
    let current = || cpb::EpochRequest { number: 1, primary: "default".into(), founder: 0, ..Default::default() };
    let mut w = attack::node_client(&witness_addr, Some(&stranger)).unwrap();
    let err = w.promote(ahead()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    let member = Identity::of_node(&cluster.nodes[east].data_dir).unwrap();
    let east_id = cluster.status(east).await.unwrap().node_id;
    let founded =
        |number: u64| cpb::EpochRequest { number, primary: "east".into(), founder: east_id, ..Default::default() };
    let mut w = attack::node_client(&witness_addr, Some(&member)).unwrap();
    assert_eq!(w.promote(ahead()).await.unwrap_err().code(), tonic::Code::InvalidArgument);
    assert_eq!(w.promote(founded(3)).await.unwrap_err().code(), tonic::Code::InvalidArgument);
    let refused = w.promote(founded(2)).await.unwrap().into_inner();
    assert!(!refused.accepted && refused.retry_in_ms > 0 && refused.current_number == 1, "{refused:?}");
    // A renewal never moves the witness's record, whoever asks.
    let renewed = w.renew(founded(2)).await.unwrap().into_inner();
    assert!(!renewed.granted && renewed.current_number == 1, "{renewed:?}");
    assert_eq!(w.renew(ahead()).await.unwrap_err().code(), tonic::Code::InvalidArgument);
    let err = w.append_entries(cpb::RaftPayload { data: Vec::new() }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented, "{err:?}");
    let mut a0 = attack::node_client(&cluster.nodes[0].cluster_addr(), Some(&member)).unwrap();
    assert_eq!(a0.renew(current()).await.unwrap_err().code(), tonic::Code::PermissionDenied);
    assert_eq!(a0.promote(ahead()).await.unwrap_err().code(), tonic::Code::InvalidArgument);
    let err = a0.promote(founded(2)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "node 0 still hears from its leader: {err:?}");
    let mut a1 = attack::node_client(&cluster.nodes[1].cluster_addr(), Some(&stranger)).unwrap();
    assert_eq!(a1.progress(cpb::ProgressRequest {}).await.unwrap_err().code(), tonic::Code::PermissionDenied);
    let voter = Identity::of_node(&cluster.nodes[1].data_dir).unwrap();
    let mut a0 = attack::node_client(&cluster.nodes[0].cluster_addr(), Some(&voter)).unwrap();
    assert_eq!(a0.renew(ahead()).await.unwrap_err().code(), tonic::Code::InvalidArgument);
    let mut b = attack::node_client(&cluster.nodes[east].cluster_addr(), Some(&voter)).unwrap();
    assert_eq!(b.renew(ahead()).await.unwrap_err().code(), tonic::Code::InvalidArgument);
    set(&a, "fenced", "s", "with-all-three").await.unwrap();
    // A second witness, with a join token of its own, cannot take the first one's place.
    let first = leader_status(&cluster).await.witness_id;
    let usurper = cluster.start_witness_named("usurper").await.unwrap();
    cluster
        .wait_for(Duration::from_secs(30), async |_: &TestCluster| {
            std::fs::read_to_string(&usurper.log_path).is_ok_and(|log| log.contains("cannot take its place"))
        })
        .await
        .expect("the second witness is refused");
    assert_eq!(leader_status(&cluster).await.witness_id, first);
    drop(usurper);
    // Nor can a second process share the witness's data dir (and so its identity).
    let twin = std::process::Command::new(arca_testkit::binary("arcad"))
        .arg("witness")
        .arg("--data-dir")
        .arg(&witness.data_dir)
        .args([
            "--listen",
            &format!("127.0.0.1:{}", arca_testkit::free_port()),
            "--join",
            &cluster.nodes[0].cluster_addr(),
        ])
        .output()
        .unwrap();
    assert!(!twin.status.success());
    let stderr = String::from_utf8_lossy(&twin.stderr);
    assert!(stderr.contains("another arcad witness is using"), "{stderr}");
    // Every acceptor took epoch 1 up, the secondary's included.
    let s = cluster.status(east).await.unwrap();
    assert_eq!((s.epoch, s.epoch_primary.as_str(), s.failover_enabled), (1, "default", true), "{s:?}");

    // The witness lost alone changes nothing: the secondary grants the lease.
    witness.kill();
    tokio::time::sleep(Duration::from_secs(5)).await;
    set(&a, "fenced", "s", "without-the-witness").await.unwrap();

    // The secondary lost too: one site of three cannot grant a lease, so the primary stops taking
    // writes within a lease, and says why.
    cluster.kill(east);
    let refused = async {
        for _ in 0..40 {
            match set(&a, "fenced", "s", "alone").await {
                Err(e) if reason(&e) == Some("READ_ONLY_FAILOVER") => return e,
                _ => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
        panic!("the primary kept taking writes without a lease");
    }
    .await;
    assert!(refused.message.contains("no lease"), "{refused:?}");
    // Linearizable reads need the lease too (another region might be taking writes); a read that
    // accepts staleness is served.
    let get_err = get(&a, "fenced", "s").await.unwrap_err();
    assert_eq!(reason(&get_err), Some("READ_ONLY_FAILOVER"), "{get_err:?}");
    let stale = pb::GetSecretRequest {
        vault: "fenced".into(),
        name: "s".into(),
        read_options: Some(pb::ReadOptions {
            consistency: pb::Consistency::BoundedStaleness as i32,
            max_staleness: Some(prost_types::Duration { seconds: 60, nanos: 0 }),
        }),
        ..Default::default()
    };
    let stale = a.secrets().get_secret(stale).await.map_err(ClientError::from).unwrap().into_inner();
    // Sets of "alone" went through until the lease ran out (one may have answered OUTCOME_UNKNOWN).
    assert!(["without-the-witness", "alone"].contains(&stale.value.as_str()), "{}", stale.value);
    assert_eq!(leader_status(&cluster).await.lease_remaining_ms, 0);

    // The witness back: two sites again, writes again.
    witness.launch().unwrap();
    cluster
        .wait_for(Duration::from_secs(30), async |c: &TestCluster| leader_status(c).await.lease_remaining_ms > 0)
        .await
        .expect("the lease comes back with the witness");
    set(&a, "fenced", "s", "with-the-witness-again").await.unwrap();
    assert_eq!(get(&a, "fenced", "s").await.unwrap().value, "with-the-witness-again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_primary_region_killed_the_secondary_serves_reads_at_once_then_takes_over_writes_by_itself() {
    let mut cluster = TestCluster::start(3).await.unwrap();
    let mut east = Vec::new();
    for _ in 0..3 {
        east.push(cluster.add_node_with(false, &["--region", "east"]).await.unwrap());
    }
    let _witness = cluster.start_witness().await.unwrap();
    let a = cluster.client(0).await.unwrap();
    create_vault(&a, "failover").await.unwrap();
    let key = pb::CreateKeyRequest {
        vault: "failover".into(),
        name: "signer".into(),
        kty: "EC".into(),
        ..Default::default()
    };
    a.keys().create_key(key).await.map_err(ClientError::from).unwrap();
    leased_and_caught_up(&cluster, &a, "failover", "before-the-outage").await;

    // Writes keep coming to the primary while it is killed.
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u32>::new()));
    let writer = {
        let (a, acked) = (a.clone(), acked.clone());
        tokio::spawn(async move {
            for i in 0u32.. {
                match set(&a, "failover", &format!("w{i}"), "load").await {
                    Ok(_) => acked.lock().unwrap().push(i),
                    Err(_) => return,
                }
            }
        })
    };
    // Someone watches east's events.
    let watched = cluster.client(east[1]).await.unwrap();
    let mut stream = watched.cluster().watch_events(pb::WatchEventsRequest {}).await.unwrap().into_inner();
    let events = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Ok(Some(event)) = stream.message().await {
            let done = event.kind == "FailoverCompleted";
            seen.push(event);
            if done {
                break;
            }
        }
        seen
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..3 {
        cluster.kill(i);
    }
    let lost = std::time::Instant::now();
    let _ = writer.await;
    let b = cluster.client(east[0]).await.unwrap();

    // At once: reads and crypto from east's replica, as of how long ago it last heard the primary.
    let read = loop {
        let req = pb::GetSecretRequest { vault: "failover".into(), name: "s".into(), ..Default::default() };
        match b.secrets().get_secret(req).await {
            Ok(r) => break r,
            Err(_) if lost.elapsed() < Duration::from_secs(30) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("east never served a read: {e:?}"),
        }
    };
    let first_read = lost.elapsed();
    let age: u64 =
        read.metadata().get("x-arca-as-of-age-ms").expect("the age is reported").to_str().unwrap().parse().unwrap();
    assert!(age >= 1_000, "served from the replica only once the primary was silent a while: {age} ms");
    assert_eq!(read.into_inner().value, "before-the-outage");
    let sign = || pb::SignRequest {
        vault: "failover".into(),
        name: "signer".into(),
        algorithm: "ES256".into(),
        digest: vec![7u8; 32],
        ..Default::default()
    };
    let signed = b.crypto().sign(sign()).await.map_err(ClientError::from).unwrap();
    assert!(signed.metadata().get("x-arca-as-of-age-ms").is_some());
    assert_eq!(signed.into_inner().signature.len(), 64);
    // Changes are refused at once while the region is read-only: the old primary's lease may run.
    let started = std::time::Instant::now();
    let err = set(&b, "failover", "s", "during-the-outage").await.unwrap_err();
    assert_eq!(reason(&err), Some("READ_ONLY_FAILOVER"), "{err:?}");
    assert!(err.message.contains("read-only"), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "refused at once, not after waiting for the primary");

    // Then east takes over by itself: epoch 2, its three nodes the voters, writes accepted.
    let first_write = loop {
        match set(&b, "failover", "s", "after-the-failover").await {
            Ok(_) => break lost.elapsed(),
            Err(_) if lost.elapsed() < Duration::from_secs(60) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("east never took a write: {e:?}"),
        }
    };
    eprintln!(
        "east served a read {} ms and took a write {} ms after the primary region was killed",
        first_read.as_millis(),
        first_write.as_millis()
    );
    // The watcher was told: the failover started (east read-only), then completed (epoch 2).
    let seen = tokio::time::timeout(Duration::from_secs(30), events).await.expect("events came").unwrap();
    let kinds: Vec<&str> = seen.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["FailoverStarted", "FailoverCompleted"], "{seen:?}");
    assert_eq!((seen[1].epoch, seen[1].primary.as_str()), (2, "east"), "{seen:?}");
    // A client given every node's address follows the cluster through the failover by itself.
    set(&of_every_node(&cluster), "failover", "followed", "by-a-client-of-every-node").await.unwrap();
    let leader = cluster.leader_index().await.expect("east has a leader");
    assert!(east.contains(&leader));
    let s = cluster.status(leader).await.unwrap();
    assert_eq!((s.epoch, s.epoch_primary.as_str()), (2, "east"), "{s:?}");
    let voters: Vec<(String, String)> = s.nodes.iter().map(|n| (n.region.clone(), n.role.clone())).collect();
    assert_eq!(voters, vec![("east".to_owned(), "voter".to_owned()); 3], "only east, all voters: {s:?}");
    assert_eq!(get(&b, "failover", "s").await.unwrap().value, "after-the-failover");
    assert_eq!(b.crypto().sign(sign()).await.map_err(ClientError::from).unwrap().into_inner().signature.len(), 64);
    // What the primary acknowledged and east never received is lost (asynchronous replication).
    let acked = acked.lock().unwrap().clone();
    let mut missing = 0;
    for i in &acked {
        if get(&b, "failover", &format!("w{i}")).await.is_err() {
            missing += 1;
        }
    }
    eprintln!("{missing} of the {} writes acknowledged under load were lost in the failover", acked.len());

    // East is highly available on its own: its leader killed, the other two go on.
    cluster.kill(leader);
    let other = *east.iter().find(|i| **i != leader).unwrap();
    let c = cluster.client(other).await.unwrap();
    cluster
        .wait_for(Duration::from_secs(30), async |_: &TestCluster| set(&c, "failover", "s", "east-alone").await.is_ok())
        .await
        .expect("east takes writes without its first leader");
    cluster.relaunch(leader).unwrap();

    // The old primary back. Its nodes left the membership and hold no lease (the witness and east
    // answer with epoch 2): the old lineage takes no write. Each node learns from east that epoch 2
    // displaced it, files what it holds that east lacks, and rejoins as a replica of east under a
    // new node id; a write sent to it then goes to east.
    for i in 0..3 {
        cluster.relaunch(i).unwrap();
    }
    let old = cluster.client(0).await.unwrap();
    let mut through_old = Vec::new();
    for n in 0..20 {
        if set(&old, "failover", &format!("via-old{n}"), "sent-to-the-old-primary").await.is_ok() {
            through_old.push(n);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for n in &through_old {
        assert!(get(&c, "failover", &format!("via-old{n}")).await.is_ok(), "write {n} went to a second writer");
    }
    set(&c, "failover", "s", "east-still").await.unwrap();

    // The divergence: one record per node of the old primary, listed by east. Every write the old
    // primary acknowledged that east lacks is in them, and nothing in them is in east.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let records = loop {
        let list = c.cluster().list_divergences(pb::ListDivergencesRequest {}).await.map(|r| r.into_inner().records);
        match list {
            Ok(records) if records.len() == 3 => break records,
            _ if std::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(500)).await,
            other => panic!("the old primary's nodes did not all file their divergence: {other:?}"),
        }
    };
    let mut filed = std::collections::BTreeSet::new();
    for r in &records {
        assert_eq!((r.epoch, r.region.as_str(), r.entries_left_out), (2, "default", 0), "{r:?}");
        assert!(r.changes.is_empty(), "a listing names no changes");
        let ask = pb::GetDivergenceRequest { epoch: 2, node_id: r.node_id };
        let shown = c.cluster().get_divergence(ask).await.unwrap().into_inner();
        assert_eq!(shown.changes.len() as u64, shown.entries);
        let exported = c.cluster().export_divergence(ask).await.unwrap().into_inner();
        for (s, e) in shown.changes.iter().zip(&exported.changes) {
            for (shown, exported) in s.changes.iter().zip(&e.changes) {
                assert!(shown.value.is_empty(), "show gives no values");
                if shown.kind == "secret-version" {
                    assert_eq!((shown.vault.as_str(), exported.value.as_str()), ("failover", "load"));
                    filed.insert(shown.name.clone());
                }
            }
        }
    }
    let mut lost = std::collections::BTreeSet::new();
    for i in &acked {
        if get(&c, "failover", &format!("w{i}")).await.is_err() {
            lost.insert(format!("w{i}"));
        }
    }
    for name in &filed {
        assert!(get(&c, "failover", name).await.is_err(), "{name} is in east and filed as divergent");
    }
    assert!(lost.is_subset(&filed), "acknowledged writes lost and not filed: {:?}", lost.difference(&filed));
    eprintln!("the old primary filed {} divergent writes, {} of them acknowledged", filed.len(), lost.len());

    // Rejoined: three nodes of region default under new ids, replicas of east; the old ones are
    // members no more, and the old primary's addresses serve east's data.
    cluster
        .wait_for(Duration::from_secs(90), async |cl: &TestCluster| {
            let Ok(s) = cl.status(other).await else { return false };
            let default: Vec<&pb::NodeStatus> = s.nodes.iter().filter(|n| n.region == "default").collect();
            default.len() == 3 && default.iter().all(|n| n.node_id > 6 && n.role == "learner")
        })
        .await
        .expect("the old primary's nodes rejoined as replicas of east");
    cluster
        .wait_for(Duration::from_secs(60), async |_: &TestCluster| {
            get(&old, "failover", "s").await.is_ok_and(|s| s.value == "east-still")
        })
        .await
        .expect("a rejoined node serves east's data");
    // A client of every node moves on to east by itself.
    set(&of_every_node(&cluster), "failover", "s", "followed-past-the-old-primary").await.unwrap();
    assert_eq!(get(&c, "failover", "s").await.unwrap().value, "followed-past-the-old-primary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_frozen_past_its_lease_while_the_secondary_took_over_acknowledges_nothing_when_it_thaws() {
    let acked = writes_a_thawed_primary_acknowledges(&[]).await;
    assert!(acked.is_empty(), "the old primary acknowledged writes after east took over: {acked:?}");
}

/// The same test against a primary built to ignore its lease (a danger-faults build): it must fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_frozen_primary_test_catches_a_primary_that_ignores_its_lease() {
    let acked = writes_a_thawed_primary_acknowledges(&["--danger-fault", "ignore-lease"]).await;
    assert!(!acked.is_empty(), "a primary ignoring its lease went unnoticed");
}

/// A3 + east + witness; the whole primary region frozen (SIGSTOP) under writes until east took over,
/// then thawed: the writes the primary acknowledged after it thawed.
async fn writes_a_thawed_primary_acknowledges(node_args: &[&str]) -> Vec<String> {
    let mut cluster = TestCluster::start_with_node_args(3, node_args).await.unwrap();
    let east = cluster.add_node_with(false, &["--region", "east"]).await.unwrap();
    let _witness = cluster.start_witness().await.unwrap();
    let a = cluster.client(0).await.unwrap();
    create_vault(&a, "frozen").await.unwrap();
    leased_and_caught_up(&cluster, &a, "frozen", "before").await;

    // A writer keeps writing to the primary, so writes are in flight when it freezes.
    let thawed = std::sync::Arc::new(std::sync::Mutex::new(None::<std::time::Instant>));
    let acked_after_thaw = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (a, thawed, acked, stop) = (a.clone(), thawed.clone(), acked_after_thaw.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let value = format!("old-primary-{i}");
                if let Ok(written) = set(&a, "frozen", "s", &value).await {
                    if thawed.lock().unwrap().is_some() {
                        acked.lock().unwrap().push((value, written.version));
                    }
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..3 {
        cluster.pause(i).unwrap();
    }
    // East takes over while the whole primary region is frozen.
    let b = cluster.client(east).await.unwrap();
    cluster
        .wait_for(Duration::from_secs(60), async |_: &TestCluster| set(&b, "frozen", "s", "east").await.is_ok())
        .await
        .expect("east takes over");
    for i in 0..3 {
        cluster.resume(i).unwrap();
    }
    *thawed.lock().unwrap() = Some(std::time::Instant::now());
    // The thawed primary, with writes in flight from before and new ones coming, acknowledges none.
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = writer.await;
    // A thawed node that learned it was displaced rejoins east and forwards writes there: those went
    // to east's lineage. A second writer is a write acknowledged (value and version) that east does
    // not hold.
    // (East may be read-only for a moment while failover re-arms around the rejoined nodes: only a
    // definite "not found" counts.)
    let mut acked = Vec::new();
    let after_thaw = acked_after_thaw.lock().unwrap().clone();
    for (value, version) in after_thaw {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let req = pb::GetSecretRequest {
                vault: "frozen".into(),
                name: "s".into(),
                version: version.clone(),
                ..Default::default()
            };
            match b.secrets().get_secret(req).await.map_err(ClientError::from) {
                Ok(got) if got.get_ref().value == value => break,
                Ok(_) => {
                    acked.push(value);
                    break;
                }
                Err(e) if reason(&e) == Some("SECRET_NOT_FOUND") => {
                    acked.push(value);
                    break;
                }
                Err(e) if std::time::Instant::now() > deadline => panic!("east did not answer for {value}: {e:?}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
    eprintln!(
        "{} writes acknowledged after the thaw, {} of them not in east",
        acked_after_thaw.lock().unwrap().len(),
        acked.len()
    );
    if acked.is_empty() {
        // The latest value is east's own, or one a rejoined node forwarded to east.
        let latest = get(&b, "frozen", "s").await.unwrap().value;
        let forwarded = acked_after_thaw.lock().unwrap().iter().any(|(v, _)| *v == latest);
        assert!(latest == "east" || forwarded, "{latest}");
        set(&b, "frozen", "s", "east-again").await.unwrap();
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutting_the_primary_off_from_the_secondary_alone_changes_nothing() {
    // Every node on its own loopback address, so iptables can cut the links between regions.
    let mut cluster = TestCluster::start_partitionable(3, 2000).await.unwrap();
    let east = cluster.add_node_with(false, &["--region", "east"]).await.unwrap();
    let _witness = cluster.start_witness().await.unwrap();
    let a = cluster.client(0).await.unwrap();
    create_vault(&a, "cut").await.unwrap();
    leased_and_caught_up(&cluster, &a, "cut", "before").await;

    for i in 0..3 {
        cluster.partition(i, east).unwrap();
    }
    // Three times the failover delay and more: the primary keeps its lease through the witness and
    // takes every write; east, which lost the primary, is read-only and never takes over.
    let b = cluster.client(east).await.unwrap();
    let until = std::time::Instant::now() + Duration::from_secs(12);
    let mut n = 0;
    while std::time::Instant::now() < until {
        n += 1;
        if let Err(e) = set(&a, "cut", "s", &format!("during-the-cut-{n}")).await {
            print_warnings(&cluster);
            panic!("the primary refused a write during the cut: {e:?}");
        }
        let err = set(&b, "cut", "s", "from-east").await.unwrap_err();
        assert_eq!(reason(&err), Some("READ_ONLY_FAILOVER"), "{err:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let s = leader_status(&cluster).await;
    assert!(s.lease_remaining_ms > 0 && s.epoch == 1, "{s:?}");

    // The cut healed: east follows the primary again, still in epoch 1, and grants its lease.
    cluster.heal();
    cluster
        .wait_for(Duration::from_secs(30), async |_: &TestCluster| set(&b, "cut", "s", "after-the-cut").await.is_ok())
        .await
        .expect("writes through east once the cut heals");
    assert_eq!(get(&a, "cut", "s").await.unwrap().value, "after-the-cut");
    let s = cluster.status(east).await.unwrap();
    assert_eq!((s.epoch, s.epoch_primary.as_str()), (1, "default"), "east took no epoch up: {s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_witness_lost_too_the_secondary_stays_read_only_until_an_operator_forces_the_failover() {
    let mut cluster = TestCluster::start(3).await.unwrap();
    let east = cluster.add_node_with(false, &["--region", "east"]).await.unwrap();
    let mut witness = cluster.start_witness().await.unwrap();
    let a = cluster.client(0).await.unwrap();
    create_vault(&a, "forced").await.unwrap();
    leased_and_caught_up(&cluster, &a, "forced", "before").await;

    // The witness and the whole primary region lost together: one site of three is left.
    witness.kill();
    for i in 0..3 {
        cluster.kill(i);
    }
    let b = cluster.client(east).await.unwrap();
    // Well past the failover delay and every promise, east still takes no write by itself.
    tokio::time::sleep(Duration::from_secs(9)).await;
    let err = set(&b, "forced", "s", "by-itself").await.unwrap_err();
    assert_eq!(reason(&err), Some("READ_ONLY_FAILOVER"), "{err:?}");
    let s = cluster.status(east).await.unwrap();
    assert_eq!(s.epoch, 1, "{s:?}");

    // An operator forces it: without force nothing happens; with it east takes over, told what it lost.
    let err = b.cluster().failover(pb::FailoverRequest { force: false }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    let won = b.cluster().failover(pb::FailoverRequest { force: true }).await.unwrap().into_inner();
    assert_eq!((won.epoch, won.primary.as_str(), won.founder), (2, "east", s.node_id), "{won:?}");
    assert!(won.primary_silent_ms >= 9_000 && won.data_loss.contains("lost"), "{won:?}");
    cluster
        .wait_for(Duration::from_secs(30), async |_: &TestCluster| set(&b, "forced", "s", "after").await.is_ok())
        .await
        .expect("east takes writes once forced");
    assert_eq!(get(&b, "forced", "s").await.unwrap().value, "after");
    // Asked again, it says why not: this node is no longer a secondary.
    let err = b.cluster().failover(pb::FailoverRequest { force: true }).await.unwrap_err();
    assert!(err.message().contains("not of the secondary region"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_primary_files_exactly_the_acknowledged_writes_the_secondary_never_received() {
    // Every node on its own loopback address, so iptables can cut east off.
    let mut cluster = TestCluster::start_partitionable(3, 2000).await.unwrap();
    let east = cluster.add_node_with(false, &["--region", "east"]).await.unwrap();
    let _witness = cluster.start_witness().await.unwrap();
    let a = cluster.client(0).await.unwrap();
    create_vault(&a, "fork").await.unwrap();
    leased_and_caught_up(&cluster, &a, "fork", "before-the-cut").await;

    // East cut off: the primary keeps its lease through the witness and acknowledges writes that
    // never reach east. Then the primary region is lost, and east takes over without them.
    for i in 0..3 {
        cluster.partition(i, east).unwrap();
    }
    let mut acked = std::collections::BTreeMap::new();
    for n in 0..12 {
        let (name, value) = (format!("unsent{n}"), format!("only-the-old-primary-has-{n}"));
        let written = set(&a, "fork", &name, &value).await.unwrap();
        acked.insert(name, (written.version, value));
    }
    for i in 0..3 {
        cluster.kill(i);
    }
    cluster.heal();
    let b = cluster.client(east).await.unwrap();
    cluster
        .wait_for(Duration::from_secs(60), async |_: &TestCluster| set(&b, "fork", "s", "east-took-over").await.is_ok())
        .await
        .expect("east takes over");
    for name in acked.keys() {
        let err = get(&b, "fork", name).await.unwrap_err();
        assert_eq!(reason(&err), Some("SECRET_NOT_FOUND"), "{name}: {err:?}");
    }

    // The old primary back: each of its nodes files what it holds past the fork. Together the
    // records hold every write it acknowledged that east lacks, with its version and value, and
    // nothing else.
    for i in 0..3 {
        cluster.relaunch(i).unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let records = loop {
        let list = b.cluster().list_divergences(pb::ListDivergencesRequest {}).await.map(|r| r.into_inner().records);
        match list {
            Ok(records) if records.len() == 3 => break records,
            _ if std::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(500)).await,
            other => panic!("the old primary's nodes did not all file their divergence: {other:?}"),
        }
    };
    let mut filed = std::collections::BTreeMap::new();
    let mut most = 0;
    for r in &records {
        assert_eq!((r.epoch, r.region.as_str(), r.entries_left_out), (2, "default", 0), "{r:?}");
        let ask = pb::GetDivergenceRequest { epoch: 2, node_id: r.node_id };
        let exported = b.cluster().export_divergence(ask).await.unwrap().into_inner();
        let mut held = 0;
        for entry in &exported.changes {
            assert!(entry.index > exported.fork_index, "{entry:?} at or before the fork {}", exported.fork_index);
            for change in entry.changes.iter().filter(|c| c.kind == "secret-version") {
                assert_eq!((change.vault.as_str(), change.operation.as_str()), ("fork", "put"), "{change:?}");
                filed.insert(change.name.clone(), (change.version.clone(), change.value.clone()));
                held += 1;
            }
        }
        most = most.max(held);
    }
    assert_eq!(filed, acked, "the records hold exactly the writes east never received");
    // A quorum of the old primary held every acknowledged write, so one record at least holds all.
    assert_eq!(most, acked.len());
    eprintln!("the old primary filed all {} acknowledged writes east never received", filed.len());

    // Rejoined as east's replicas, the old primary's nodes serve east's data: the filed writes are
    // in the records only.
    let old = cluster.client(0).await.unwrap();
    cluster
        .wait_for(Duration::from_secs(90), async |_: &TestCluster| {
            get(&old, "fork", "s").await.is_ok_and(|s| s.value == "east-took-over")
        })
        .await
        .expect("a rejoined node serves east's data");
    for name in acked.keys() {
        let err = get(&old, "fork", name).await.unwrap_err();
        assert_eq!(reason(&err), Some("SECRET_NOT_FOUND"), "{name}: {err:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_displaced_nodes_key_opens_only_lineage_and_one_filing_and_its_token_joins_only_a_replica() {
    let mut cluster = TestCluster::start(1).await.unwrap();
    let east = cluster.add_node_with(false, &["--region", "east"]).await.unwrap();
    let _witness = cluster.start_witness().await.unwrap();
    let a = cluster.client(0).await.unwrap();
    create_vault(&a, "stolen").await.unwrap();
    leased_and_caught_up(&cluster, &a, "stolen", "before").await;
    let old_id = cluster.status(0).await.unwrap().node_id;
    let east_id = cluster.status(east).await.unwrap().node_id;
    cluster.kill(0);
    let b = cluster.client(east).await.unwrap();
    cluster
        .wait_for(Duration::from_secs(60), async |_: &TestCluster| set(&b, "stolen", "s", "after").await.is_ok())
        .await
        .expect("east takes over");
    let s = cluster.status(east).await.unwrap();
    assert_eq!((s.epoch, s.epoch_primary.as_str()), (2, "east"), "{s:?}");

    // The old primary's key, as someone who took its disk holds it. Displaced, its node is a member
    // no more: every cluster RPC but Lineage and FileDivergence is refused.
    let stolen = Identity::of_node(&cluster.nodes[0].data_dir).unwrap();
    let addr = cluster.nodes[east].cluster_addr();
    for (rpc, err) in attack::every_rpc(&addr, Some(&stolen), east_id, s.term).await {
        assert_eq!(err.code(), tonic::Code::PermissionDenied, "{rpc}: {err:?}");
    }
    let mut c = attack::node_client(&addr, Some(&stolen)).unwrap();
    let lineage = c.lineage(cpb::LineageRequest {}).await.unwrap().into_inner();
    assert_eq!((lineage.epoch, lineage.primary.as_str(), lineage.founder), (2, "east", east_id), "{lineage:?}");
    assert_eq!(lineage.displaced, [old_id], "{lineage:?}");
    // A certificate from the CA clients trust opens neither.
    let certs = cluster.dir.path().join("certs");
    let stranger = Identity::from_files(&certs.join("node9.pem"), &certs.join("node9.key")).unwrap();
    let mut s9 = attack::node_client(&addr, Some(&stranger)).unwrap();
    let filing = |epoch: u64| cpb::DivergenceFiling { epoch, region: "default".into(), ..Default::default() };
    assert_eq!(s9.lineage(cpb::LineageRequest {}).await.unwrap_err().code(), tonic::Code::PermissionDenied);
    assert_eq!(s9.file_divergence(filing(2)).await.unwrap_err().code(), tonic::Code::PermissionDenied);

    // A filing for another epoch, or with an entry the new lineage holds, is refused and keeps nothing.
    let err = c.file_divergence(filing(3)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    let at_fork = cpb::DivergenceFiling {
        entries: vec![cpb::FiledEntry { index: lineage.applied_index, term: 1, committed: true, proposal: Vec::new() }],
        ..filing(2)
    };
    let err = c.file_divergence(at_fork).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("at or before the fork"), "{err:?}");
    let listed = b.cluster().list_divergences(pb::ListDivergencesRequest {}).await.unwrap().into_inner();
    assert!(listed.records.is_empty(), "{listed:?}");
    // One filing gives one join token; filed again at once, nothing: a stolen key mints no tokens in
    // bulk.
    let receipt = c.file_divergence(filing(2)).await.unwrap().into_inner();
    assert!(!receipt.join_token.is_empty());
    let err = c.file_divergence(filing(2)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(err.message().contains("retry in"), "{err:?}");

    // The token joins a node as a replica only, even one that claims the primary region and asks
    // to vote.
    let spare = cluster.spawn_standby_with(&["--region", "east"]).unwrap();
    cluster
        .wait_for(Duration::from_secs(20), async |c: &TestCluster| {
            let Ok(client) = c.client(spare).await else { return false };
            client.operator().get_seal_status(pb::GetSealStatusRequest {}).await.is_ok()
        })
        .await
        .unwrap();
    let joiner = cluster.client_with_token(spare, None).await.unwrap();
    let join = pb::JoinClusterRequest { peer: addr.clone(), as_learner: false, token: receipt.join_token.clone() };
    joiner.cluster().join_cluster(join).await.map_err(ClientError::from).unwrap();
    cluster
        .wait_for(Duration::from_secs(60), async |c: &TestCluster| {
            let Ok(s) = c.status(east).await else { return false };
            s.nodes.iter().any(|n| n.node_id != east_id && n.region == "east" && n.lag == 0)
        })
        .await
        .expect("the joined node caught up");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s = cluster.status(east).await.unwrap();
    let roles: Vec<(u64, &str)> = s.nodes.iter().map(|n| (n.node_id, n.role.as_str())).collect();
    assert_eq!(s.nodes.iter().filter(|n| n.role == "voter").map(|n| n.node_id).collect::<Vec<_>>(), [east_id]);
    assert!(roles.iter().any(|(id, role)| *id != east_id && *role == "learner"), "{roles:?}");
    // The token spent, the displaced key files nothing more.
    let err = c.file_divergence(filing(2)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("rejoined already"), "{err:?}");
}

/// Waits until `region` is the primary of epoch `epoch`, asking node `asked`; returns how long it took.
async fn wait_primary(cluster: &TestCluster, asked: usize, epoch: u64, region: &str) -> Duration {
    let started = std::time::Instant::now();
    cluster
        .wait_for(Duration::from_secs(60), async |c: &TestCluster| {
            c.status(asked).await.is_ok_and(|s| s.epoch == epoch && s.epoch_primary == region && s.leader_id != 0)
        })
        .await
        .unwrap_or_else(|_| {
            print_warnings(cluster);
            panic!("region {region} never held epoch {epoch}")
        });
    started.elapsed()
}

/// What each node warned of lately, for whoever reads a failure.
fn print_warnings(cluster: &TestCluster) {
    let keep = std::env::temp_dir().join("arca-failed-logs");
    let _ = std::fs::create_dir_all(&keep);
    for node in &cluster.nodes {
        let _ = std::fs::copy(&node.log_path, keep.join(format!("{}.log", node.name)));
        let log = std::fs::read_to_string(&node.log_path).unwrap_or_default();
        let said: Vec<&str> =
            log.lines().filter(|l| (l.contains("WARN") || l.contains("ERROR")) && !l.contains("audit")).collect();
        eprintln!("--- {} ---\n{}", node.name, said[said.len().saturating_sub(20)..].join("\n"));
    }
}

/// Waits until every node of `region` known to node `asked` is a replica (a learner) under an id
/// above `old_max`, and there are `count` of them.
async fn wait_rejoined(cluster: &TestCluster, asked: usize, region: &str, count: usize, old_max: u64) {
    cluster
        .wait_for(Duration::from_secs(120), async |c: &TestCluster| {
            let Ok(s) = c.status(asked).await else { return false };
            let of: Vec<&pb::NodeStatus> = s.nodes.iter().filter(|n| n.region == region).collect();
            of.len() == count && of.iter().all(|n| n.node_id > old_max && n.role == "learner")
        })
        .await
        .unwrap_or_else(|_| {
            print_warnings(cluster);
            panic!("the nodes of region {region} did not rejoin as replicas")
        });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_switchover_and_the_failback_move_writes_between_regions_losing_nothing_acknowledged() {
    let mut cluster = TestCluster::start(3).await.unwrap();
    let east = cluster.add_node_with(false, &["--region", "east"]).await.unwrap();
    let _witness = cluster.start_witness().await.unwrap();
    let a = cluster.client(0).await.unwrap();
    create_vault(&a, "moving").await.unwrap();
    leased_and_caught_up(&cluster, &a, "moving", "before").await;
    let b = cluster.client(east).await.unwrap();
    let east_id = cluster.status(east).await.unwrap().node_id;

    // Writes keep coming, through a client that knows every node, for the whole test.
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u32>::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (c, acked, stop) = (of_every_node(&cluster), acked.clone(), stop.clone());
        tokio::spawn(async move {
            let mut refused = Vec::new();
            for i in 0u32.. {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                match set(&c, "moving", &format!("w{i}"), &format!("value-{i}")).await {
                    Ok(_) => acked.lock().unwrap().push(i),
                    Err(e) => {
                        refused.push(e.reason.unwrap_or_default());
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
            refused
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Asked wrong, nothing changes: the region must be the secondary.
    let ask = |region: &str, cancel: bool| pb::SwitchoverRequest { region: region.into(), cancel };
    let err = a.cluster().switchover(ask("north", false)).await.map_err(ClientError::from).unwrap_err();
    assert_eq!(reason(&err), Some("BAD_PARAMETER"), "{err:?}");
    assert!(err.message.contains("is east"), "{err:?}");
    let err = a.cluster().switchover(ask("east", true)).await.map_err(ClientError::from).unwrap_err();
    assert!(err.message.contains("no switchover to withdraw"), "{err:?}");
    set(&a, "moving", "s", "still-the-primary").await.unwrap();

    // East's events, as someone watching it sees them.
    let mut stream = b.cluster().watch_events(pb::WatchEventsRequest {}).await.unwrap().into_inner();
    let events = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Ok(Some(event)) = stream.message().await {
            let done = event.kind == "FailoverCompleted";
            seen.push(event.kind);
            if done {
                break;
            }
        }
        seen
    });

    // Handed over, through a follower of the primary: the primary takes no write from then on.
    let handed = cluster.client(1).await.unwrap().cluster().switchover(ask("east", false)).await.unwrap().into_inner();
    assert_eq!((handed.epoch, handed.from_region.as_str(), handed.to_region.as_str()), (1, "default", "east"));
    let err = set(&a, "moving", "s", "after-the-handover").await.unwrap_err();
    assert_eq!(reason(&err), Some("READ_ONLY_FAILOVER"), "{err:?}");
    assert!(err.message.contains("handing writes over to region east"), "{err:?}");
    // Asked again, the same handover.
    let again = a.cluster().switchover(ask("east", false)).await.unwrap().into_inner();
    assert_eq!((again.epoch, again.index), (handed.epoch, handed.index));
    // Withdrawn at once, the primary takes writes again, still in epoch 1.
    let withdrawn = a.cluster().switchover(ask("east", true)).await.unwrap().into_inner();
    assert_eq!((withdrawn.epoch, withdrawn.to_region.as_str()), (1, "east"));
    cluster
        .wait_for(Duration::from_secs(30), async |_: &TestCluster| set(&a, "moving", "s", "withdrawn").await.is_ok())
        .await
        .expect("the primary takes writes again once the handover is withdrawn");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let s = cluster.status(east).await.unwrap();
    assert_eq!((s.epoch, s.epoch_primary.as_str()), (1, "default"), "east took nothing over: {s:?}");
    assert_eq!(get(&a, "moving", "s").await.unwrap().value, "withdrawn");

    // Handed over for good this time.
    let handed = a.cluster().switchover(ask("east", false)).await.unwrap().into_inner();
    assert!(handed.index > again.index, "a new handover: {handed:?}");

    // East takes over within a lease and margin or so, and the old primary's nodes rejoin as its
    // replicas, having filed no write: every one committed before the handover is in east.
    let took = wait_primary(&cluster, east, 2, "east").await;
    eprintln!("east took over {} ms after the handover", took.as_millis());
    // Told of the handover (of the withdrawn one too, if a check fell inside it), then of the new
    // epoch; never that east lost the primary.
    let seen = tokio::time::timeout(Duration::from_secs(30), events).await.expect("events came").unwrap();
    let (last, before) = seen.split_last().expect("events came");
    assert_eq!(last, "FailoverCompleted", "{seen:?}");
    assert!((1..=2).contains(&before.len()) && before.iter().all(|k| k == "SwitchoverStarted"), "{seen:?}");
    wait_rejoined(&cluster, east, "default", 3, east_id).await;
    let records = b.cluster().list_divergences(pb::ListDivergencesRequest {}).await.unwrap().into_inner().records;
    for r in &records {
        let ask = pb::GetDivergenceRequest { epoch: r.epoch, node_id: r.node_id };
        let shown = b.cluster().get_divergence(ask).await.unwrap().into_inner();
        let writes: Vec<&pb::DivergentChange> =
            shown.changes.iter().flat_map(|e| &e.changes).filter(|c| c.kind == "secret-version").collect();
        assert!(writes.is_empty(), "node {} filed writes east lacks: {writes:?}", r.node_id);
    }
    assert_eq!(get(&b, "moving", "s").await.unwrap().value, "withdrawn");

    // The failback, asked of east through a node of the old primary: the same, the other way.
    for i in 0..3 {
        cluster.wait_unsealed(i).await.unwrap();
    }
    let back = of_every_node(&cluster).cluster().switchover(ask("default", false)).await.unwrap().into_inner();
    assert_eq!((back.epoch, back.from_region.as_str(), back.to_region.as_str()), (2, "east", "default"));
    let took = wait_primary(&cluster, 0, 3, "default").await;
    eprintln!("the old primary took writes back {} ms after the handover", took.as_millis());
    wait_rejoined(&cluster, 0, "east", 1, east_id).await;
    let a = cluster.client(0).await.unwrap();
    set(&a, "moving", "s", "back-home").await.unwrap();

    // Every write acknowledged through both switchovers is there, with its value.
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let refused = writer.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 10, "{} writes acknowledged", acked.len());
    for i in &acked {
        let got = get(&a, "moving", &format!("w{i}")).await.unwrap();
        assert_eq!(got.value, format!("value-{i}"));
    }
    eprintln!("{} writes acknowledged across two switchovers, none lost; refused: {refused:?}", acked.len());
    assert!(
        refused
            .iter()
            .all(|r| ["READ_ONLY_FAILOVER", "UNAVAILABLE", "OUTCOME_UNKNOWN", "SEALED", ""].contains(&r.as_str())),
        "{refused:?}"
    );
}
