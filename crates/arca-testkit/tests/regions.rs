//! Regions on real processes: a node started with another `--region` than the voters' is an
//! asynchronous replica (a learner, whatever it asks for), serves reads and forwards writes, and status
//! reports each region's role and how far it trails, in entries and in milliseconds.

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

async fn get(c: &ArcaClient, vault: &str, name: &str) -> Result<pb::Secret, ClientError> {
    let req = pb::GetSecretRequest { vault: vault.into(), name: name.into(), ..Default::default() };
    Ok(c.secrets().get_secret(req).await?.into_inner())
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
