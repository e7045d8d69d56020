//! `--suite regions`: what a secondary region and a witness cost the primary's writes, and how soon
//! the secondary serves once the whole primary region is gone.
//!
//! - Write throughput: three clusters side by side on the machine: 3 voters alone; 3 voters with a
//!   node in region `east` (an asynchronous learner); and 3 voters with `east` and a witness, its
//!   lease in force. Sets go through the voters only, in rounds that alternate the clusters so drift
//!   on a shared machine falls on all; the ratios split the cost between the replica (on this one
//!   machine it shares the cores and the disk) and the lease.
//! - RTO: every voter of the second cluster is SIGKILLed at once; the time until `east` serves a
//!   linearizable-asked read (answered from its replica) and a signature. Writes in `east` wait for
//!   promotion, which is not carried out yet.

use std::time::{Duration, Instant};

use arca_client::{pb, ArcaClient};
use arca_testkit::TestCluster;

use crate::{run_phase, Args, Phase};

/// Rounds of (alone, with a secondary) phases.
const ROUNDS: usize = 3;

async fn prepare(cluster: &TestCluster, args: &Args) -> anyhow::Result<Vec<ArcaClient>> {
    let mut clients = Vec::new();
    for i in 0..3 {
        clients.push(cluster.client(i).await?);
    }
    clients[0].vaults().create_vault(pb::CreateVaultRequest { name: "bench".into(), ..Default::default() }).await?;
    let value = "v".repeat(args.value_bytes);
    for i in 0..args.clients {
        let r = pb::SetSecretRequest {
            vault: "bench".into(),
            name: format!("s{i}-0"),
            value: value.clone(),
            ..Default::default()
        };
        clients[i % 3].secrets().set_secret(r).await?;
    }
    Ok(clients)
}

pub async fn run(args: &Args) -> anyhow::Result<()> {
    let alone = TestCluster::start(3).await?;
    let mut replica = TestCluster::start(3).await?;
    replica.add_node_with(false, &["--region", "east"]).await?;
    let mut paired = TestCluster::start(3).await?;
    let east = paired.add_node_with(false, &["--region", "east"]).await?;
    let _witness = paired.start_witness().await?;
    paired
        .wait_for(Duration::from_secs(60), async |c: &TestCluster| match c.leader_index().await {
            Some(l) => c.status(l).await.is_ok_and(|s| s.failover_enabled && s.lease_remaining_ms > 0),
            None => false,
        })
        .await?;
    let alone_clients = prepare(&alone, args).await?;
    let replica_clients = prepare(&replica, args).await?;
    let paired_clients = prepare(&paired, args).await?;
    paired_clients[0]
        .keys()
        .create_key(pb::CreateKeyRequest {
            vault: "bench".into(),
            name: "signer".into(),
            kty: "EC".into(),
            ..Default::default()
        })
        .await?;

    println!(
        "sets through the 3 voters, {} clients, {} s per phase, {}-byte values, {ROUNDS} rounds alternating",
        args.clients, args.seconds, args.value_bytes
    );
    let (mut alone_total, mut replica_total, mut paired_total) = (0.0, 0.0, 0.0);
    for round in 1..=ROUNDS {
        alone_total +=
            run_phase(&alone_clients, args, Phase::Set, &format!("set, 3 voters alone (round {round})"), &[]).await;
        println!();
        replica_total +=
            run_phase(&replica_clients, args, Phase::Set, &format!("set, + east (round {round})"), &[]).await;
        println!();
        paired_total +=
            run_phase(&paired_clients, args, Phase::Set, &format!("set, + east and a witness (round {round})"), &[])
                .await;
        println!();
    }
    println!("with a secondary region / alone, over {ROUNDS} rounds: {:.1}%", 100.0 * replica_total / alone_total);
    println!(
        "with a secondary region and a witness (lease in force) / alone: {:.1}%; / with the secondary alone: {:.1}%",
        100.0 * paired_total / alone_total,
        100.0 * paired_total / replica_total
    );
    drop((alone_clients, replica_clients));
    drop((alone, replica));

    // RTO: the whole primary region killed at once.
    paired
        .wait_for(Duration::from_secs(60), async |c: &TestCluster| match c.leader_index().await {
            Some(l) => c.status(l).await.is_ok_and(|s| s.regions.iter().any(|r| r.name == "east" && r.lag == 0)),
            None => false,
        })
        .await?;
    let b = paired.client(east).await?;
    for i in 0..3 {
        paired.kill(i);
    }
    let lost = Instant::now();
    let mut read_at = None;
    let mut sign_at = None;
    while (read_at.is_none() || sign_at.is_none()) && lost.elapsed() < Duration::from_secs(60) {
        if read_at.is_none() {
            let r = pb::GetSecretRequest { vault: "bench".into(), name: "s0-0".into(), ..Default::default() };
            if b.secrets().get_secret(r).await.is_ok() {
                read_at = Some(lost.elapsed());
            }
        }
        if sign_at.is_none() {
            let r = pb::SignRequest {
                vault: "bench".into(),
                name: "signer".into(),
                algorithm: "ES256".into(),
                digest: vec![1; 32],
                ..Default::default()
            };
            if b.crypto().sign(r).await.is_ok() {
                sign_at = Some(lost.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ms = |d: Option<Duration>| d.map_or("never (60 s)".to_owned(), |d| format!("{} ms", d.as_millis()));
    println!(
        "all 3 voters SIGKILLed: east served its first read after {}, its first signature after {}",
        ms(read_at),
        ms(sign_at)
    );
    println!("first write accepted in east: not until promotion is carried out");
    Ok(())
}
