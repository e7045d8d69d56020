//! `arca-bench`: end-to-end load against a real 3-node `arcad` cluster on loopback.
//!
//! Starts the cluster (TLS, RocksDB, fsync on every commit), then runs `--clients` concurrent clients
//! spread over all nodes for `--seconds` per phase: secret sets (each a new version, committed on a
//! quorum), then linearizable gets, then bounded-staleness gets. Prints throughput and latency
//! percentiles per phase. Bounded in count and time; it talks only to 127.0.0.1.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use arca_client::{pb, ArcaClient};
use arca_testkit::TestCluster;
use clap::Parser;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    #[arg(long, default_value_t = 16)]
    clients: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Bytes per secret value.
    #[arg(long, default_value_t = 256)]
    value_bytes: usize,
}

#[derive(Clone, Copy)]
enum Phase {
    Set,
    GetLinearizable,
    GetBoundedStaleness,
}

async fn one_op(client: &ArcaClient, phase: Phase, name: &str, value: &str) -> bool {
    let mut secrets = client.secrets();
    match phase {
        Phase::Set => {
            let r = pb::SetSecretRequest {
                vault: "bench".into(),
                name: name.into(),
                value: value.into(),
                ..Default::default()
            };
            secrets.set_secret(r).await.is_ok()
        }
        Phase::GetLinearizable | Phase::GetBoundedStaleness => {
            let read_options = matches!(phase, Phase::GetBoundedStaleness).then(|| pb::ReadOptions {
                consistency: pb::Consistency::BoundedStaleness as i32,
                max_staleness: Some(prost_duration(Duration::from_secs(1))),
            });
            let r =
                pb::GetSecretRequest { vault: "bench".into(), name: name.into(), version: String::new(), read_options };
            secrets.get_secret(r).await.is_ok()
        }
    }
}

fn prost_duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }
}

async fn run_phase(clients: &[ArcaClient], args: &Args, phase: Phase, label: &str) {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let value = "v".repeat(args.value_bytes);
    let tasks: Vec<_> = (0..args.clients)
        .map(|i| {
            let client = clients[i % clients.len()].clone();
            let value = value.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let name = format!("s{}-{}", i, n % 16);
                    n += 1;
                    let start = Instant::now();
                    if one_op(&client, phase, &name, &value).await {
                        latencies.push(start.elapsed());
                    } else {
                        errors += 1;
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("a client task panicked");
        all.extend(l);
        errors += e;
    }
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or_default()
    };
    println!(
        "{label:<24} {:>9.0} ops/s   p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms   errors {errors}",
        all.len() as f64 / args.seconds as f64,
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        all.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cluster = TestCluster::start(args.nodes).await?;
    let mut clients = Vec::new();
    for i in 0..args.nodes {
        clients.push(cluster.client(i).await?);
    }
    clients[0].vaults().create_vault(pb::CreateVaultRequest { name: "bench".into(), ..Default::default() }).await?;
    println!(
        "{} nodes, {} clients spread over all nodes, {} s per phase, {}-byte values",
        args.nodes, args.clients, args.seconds, args.value_bytes
    );
    run_phase(&clients, &args, Phase::Set, "set (quorum commit)").await;
    run_phase(&clients, &args, Phase::GetLinearizable, "get (linearizable)").await;
    run_phase(&clients, &args, Phase::GetBoundedStaleness, "get (staleness <= 1 s)").await;
    Ok(())
}
