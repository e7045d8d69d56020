//! `--suite regions`: what a secondary region and a witness cost the primary's writes, and how soon
//! the secondary serves once the whole primary region is gone.
//!
//! - Write throughput: three clusters side by side on the machine: 3 voters alone; 3 voters with a
//!   node in region `east` (an asynchronous learner); and 3 voters with `east` and a witness, its
//!   lease in force. Sets go through the voters only, in rounds that alternate the clusters so drift
//!   on a shared machine falls on all; the ratios split the cost between the replica (on this one
//!   machine it shares the cores and the disk) and the lease.
//! - RPO and RTO, under load: the cluster with `east` and the witness takes sets paced at 50 % of
//!   the write capacity measured above, and every voter is SIGKILLed at once; then the time until
//!   `east` serves a linearizable-asked read (answered from its replica), a signature and a write
//!   (once it took over), and how many acknowledged sets it lacks (count, and the span of their
//!   acknowledgements). Then the same on a fresh cluster at 90 %.

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
    let (mut paired, east, _witness, paired_clients) = with_east_and_witness(args).await?;
    let alone_clients = prepare(&alone, args).await?;
    let replica_clients = prepare(&replica, args).await?;

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

    // RPO and RTO under load, at 50 % of the capacity with east and the witness, then at 90 % on a
    // fresh cluster.
    let capacity = paired_total / ROUNDS as f64;
    loss_and_recovery(&mut paired, east, args, capacity * 0.5, "50 %").await?;
    drop(paired_clients);
    drop(paired);
    let (mut fresh, east, _witness, _clients) = with_east_and_witness(args).await?;
    loss_and_recovery(&mut fresh, east, args, capacity * 0.9, "90 %").await?;
    Ok(())
}

/// 3 voters, a node in `east` and a witness, the primary's lease in force, prepared for sets and
/// holding a P-256 key `signer`: the cluster, `east`'s index, the witness and clients of the voters.
async fn with_east_and_witness(
    args: &Args,
) -> anyhow::Result<(TestCluster, usize, arca_testkit::WitnessProcess, Vec<ArcaClient>)> {
    let mut cluster = TestCluster::start(3).await?;
    let east = cluster.add_node_with(false, &["--region", "east"]).await?;
    let witness = cluster.start_witness().await?;
    cluster
        .wait_for(Duration::from_secs(60), async |c: &TestCluster| match c.leader_index().await {
            Some(l) => c.status(l).await.is_ok_and(|s| s.failover_enabled && s.lease_remaining_ms > 0),
            None => false,
        })
        .await?;
    let clients = prepare(&cluster, args).await?;
    let key =
        pb::CreateKeyRequest { vault: "bench".into(), name: "signer".into(), kty: "EC".into(), ..Default::default() };
    clients[0].keys().create_key(key).await?;
    Ok((cluster, east, witness, clients))
}

/// A client of node `index` that tries each call once: a retry would blur when the node first
/// answered.
fn single_try(cluster: &TestCluster, index: usize) -> anyhow::Result<ArcaClient> {
    Ok(ArcaClient::connect_lazy(arca_client::ConnectOptions {
        addr: cluster.nodes[index].api_addr(),
        ca_pem: Some(cluster.ca_pem.clone()),
        token: Some(cluster.root_token.clone()),
        timeout: Some(Duration::from_secs(5)),
        attempts: 1,
    })?)
}

/// Sets paced at `rate` per second through the voters for 5 s, then every voter SIGKILLed at once:
/// prints when `east` first served a read, a signature and a write, and the acknowledged sets it
/// lacks.
async fn loss_and_recovery(
    cluster: &mut TestCluster,
    east: usize,
    args: &Args,
    rate: f64,
    label: &str,
) -> anyhow::Result<()> {
    cluster
        .wait_for(Duration::from_secs(60), async |c: &TestCluster| match c.leader_index().await {
            Some(l) => c.status(l).await.is_ok_and(|s| s.regions.iter().any(|r| r.name == "east" && r.lag == 0)),
            None => false,
        })
        .await?;
    let writers = args.clients.max(1);
    let every = Duration::from_secs_f64(writers as f64 / rate.max(1.0));
    let started = Instant::now();
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, Duration)>::new()));
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let client = single_try(cluster, w % 3);
            let acked = acked.clone();
            let value = "v".repeat(args.value_bytes);
            tokio::spawn(async move {
                let Ok(client) = client else { return };
                let mut next = Instant::now() + every.mul_f64(w as f64 / writers as f64);
                for n in 0u64.. {
                    tokio::time::sleep_until(next.into()).await;
                    next += every;
                    let name = format!("p{w}-{n}");
                    let r = pb::SetSecretRequest {
                        vault: "bench".into(),
                        name: name.clone(),
                        value: value.clone(),
                        ..Default::default()
                    };
                    match client.secrets().set_secret(r).await {
                        Ok(_) => acked.lock().unwrap_or_else(|p| p.into_inner()).push((name, started.elapsed())),
                        Err(_) if started.elapsed() > Duration::from_secs(5) => return,
                        Err(_) => {}
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let b = single_try(cluster, east)?;
    let lost = Instant::now();
    let killed_at = started.elapsed();
    for i in 0..3 {
        cluster.kill(i);
    }
    let (mut read_at, mut sign_at, mut write_at) = (None, None, None);
    while (read_at.is_none() || sign_at.is_none() || write_at.is_none()) && lost.elapsed() < Duration::from_secs(60) {
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
        if write_at.is_none() {
            let r = pb::SetSecretRequest {
                vault: "bench".into(),
                name: "after".into(),
                value: "v".into(),
                ..Default::default()
            };
            if b.secrets().set_secret(r).await.is_ok() {
                write_at = Some(lost.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for t in tasks {
        let _ = t.await;
    }
    let ms = |d: Option<Duration>| d.map_or("never (60 s)".to_owned(), |d| format!("{} ms", d.as_millis()));
    let acked = acked.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut missing: Vec<Duration> = Vec::new();
    for (name, at) in &acked {
        let r = pb::GetSecretRequest { vault: "bench".into(), name: name.clone(), ..Default::default() };
        if b.secrets().get_secret(r).await.is_err() {
            missing.push(*at);
        }
    }
    let window = match (missing.iter().min(), missing.iter().max()) {
        (Some(first), Some(last)) => {
            format!(
                "{} ms of writes (acknowledged {} to {} ms before the kill)",
                (*last - *first).as_millis(),
                killed_at.saturating_sub(*first).as_millis(),
                killed_at.saturating_sub(*last).as_millis()
            )
        }
        _ => "0 ms of writes".to_owned(),
    };
    println!(
        "sets paced at {label} of capacity ({rate:.0}/s), all 3 voters SIGKILLed: east served its first read after {}, its first signature after {}, its first write after {}; RPO: {} of {} acknowledged sets lost, {window}",
        ms(read_at),
        ms(sign_at),
        ms(write_at),
        missing.len(),
        acked.len()
    );
    Ok(())
}
