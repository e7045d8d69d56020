//! `arca-bench`: end-to-end load against a real 3-node `arcad` cluster on loopback.
//!
//! Starts the cluster (TLS, RocksDB, fsync on every commit), then runs `--clients` concurrent clients
//! spread over all nodes for `--seconds` per phase. `--suite secrets`: secret sets (each a new version,
//! committed on a quorum), linearizable gets, bounded-staleness gets. `--suite keys`: first each key
//! operation in process, Arca's crypto against the raw aws-lc-rs primitive on one core (as a ratio);
//! then the same operations over gRPC through every node, linearizable and bounded-staleness, with the
//! throughput as a ratio of the raw single-core rate. `--suite snapshot`: a fourth node catching up
//! from a snapshot of `--state-mib` MiB, with its time and peak memory. `--suite authz`: linearizable
//! gets with a root token against the same with a service principal's token. `--suite signin`:
//! refused sign-ins for identities that exist against ones that do not (their times should match).
//! `--suite versus`: Arca side by side with a 3-member etcd on the same machine (sets against puts at
//! 16, 64 and 256 clients, linearizable gets against ranges, bytes on disk per write), and server CPU
//! per call against a bare gRPC echo; a table and a PNG chart go into `benches/results/`.
//! `--suite regions`: sets with and without a secondary region and a witness (alternating rounds of
//! two clusters), and how soon the secondary serves reads and signatures after the primary region is
//! SIGKILLed.
//! Prints throughput and latency percentiles. Bounded
//! in count and time; it talks only to 127.0.0.1.
#![forbid(unsafe_code)]

mod authz;
mod crypto;
mod regions;
mod signin;
mod snapshot;
mod versus;

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
    #[arg(long, value_enum, default_value_t = Suite::All)]
    suite: Suite,
    /// Items per batch call in the batch phases (latencies are per call).
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Only the in-process comparison (no cluster).
    #[arg(long)]
    in_process_only: bool,
    /// `--suite snapshot`: MiB of secret values to write before a fourth node joins.
    #[arg(long, default_value_t = 256)]
    state_mib: usize,
    /// `--suite versus`: the nodes' `--snapshot-every-entries`.
    #[arg(long, default_value_t = 2000)]
    snapshot_every: u64,
    /// Internal to `--suite versus`: serve the bare echo on this port (TLS from `--echo-tls-dir`).
    #[arg(long, hide = true, requires = "echo_tls_dir")]
    echo_server: Option<u16>,
    #[arg(long, hide = true)]
    echo_tls_dir: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Suite {
    All,
    Secrets,
    Keys,
    /// A node catching up from a large snapshot: time and peak memory.
    Snapshot,
    /// Linearizable gets with a root token against the same with a service principal's token.
    Authz,
    /// Refused sign-ins: as long for an identity that exists as for one that does not?
    Signin,
    /// Arca side by side with etcd (installed when missing), and server CPU per call against a bare
    /// gRPC echo; writes a table and a chart into `benches/results/`.
    Versus,
    /// Sets with and without a secondary region and a witness, and how soon the secondary serves
    /// reads and signatures after the whole primary region is SIGKILLed.
    Regions,
}

#[derive(Clone, Copy)]
enum Phase {
    Set,
    GetLinearizable,
    GetBoundedStaleness,
    Key(crypto::Op, bool),
    /// Batch calls of this many items.
    KeyBatch(crypto::Op, bool, usize),
}

fn bounded() -> Option<pb::ReadOptions> {
    Some(pb::ReadOptions {
        consistency: pb::Consistency::BoundedStaleness as i32,
        max_staleness: Some(prost_duration(Duration::from_secs(1))),
    })
}

/// One call; returns how many operations it completed (0 if it failed).
async fn one_op(client: &ArcaClient, phase: Phase, name: &str, value: &str, input: &[u8]) -> u64 {
    let ok = match phase {
        Phase::KeyBatch(op, stale, n) => {
            return if crypto::call_batch(client, op, input, if stale { bounded() } else { None }, n).await {
                n as u64
            } else {
                0
            }
        }
        _ => one_call(client, phase, name, value, input).await,
    };
    u64::from(ok)
}

async fn one_call(client: &ArcaClient, phase: Phase, name: &str, value: &str, input: &[u8]) -> bool {
    let mut secrets = client.secrets();
    match phase {
        Phase::Key(op, stale) => crypto::call(client, op, input, if stale { bounded() } else { None }).await,
        Phase::KeyBatch(..) => false,
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
            let read_options = if matches!(phase, Phase::GetBoundedStaleness) { bounded() } else { None };
            let r =
                pb::GetSecretRequest { vault: "bench".into(), name: name.into(), version: String::new(), read_options };
            secrets.get_secret(r).await.is_ok()
        }
    }
}

fn prost_duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }
}

/// Runs one phase and returns its throughput in operations per second.
async fn run_phase(clients: &[ArcaClient], args: &Args, phase: Phase, label: &str, input: &[u8]) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let value = "v".repeat(args.value_bytes);
    let tasks: Vec<_> = (0..args.clients)
        .map(|i| {
            let client = clients[i % clients.len()].clone();
            let value = value.clone();
            let input = input.to_vec();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                let mut done = 0u64;
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let name = format!("s{}-{}", i, n % 16);
                    n += 1;
                    let start = Instant::now();
                    match one_op(&client, phase, &name, &value, &input).await {
                        0 => errors += 1,
                        ops => {
                            latencies.push(start.elapsed());
                            done += ops;
                        }
                    }
                }
                (latencies, errors, done)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    let mut done = 0;
    for t in tasks {
        let (l, e, d) = t.await.expect("a client task panicked");
        all.extend(l);
        errors += e;
        done += d;
    }
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or_default()
    };
    let throughput = done as f64 / args.seconds as f64;
    print!(
        "{label:<44} {:>9.0} ops/s   p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms   errors {errors}",
        throughput,
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        all.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    throughput
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let (Some(port), Some(dir)) = (args.echo_server, &args.echo_tls_dir) {
        return versus::serve_echo(port, dir).await;
    }
    if args.suite == Suite::Versus {
        return versus::run(args.seconds, args.snapshot_every).await;
    }
    if args.suite == Suite::Snapshot {
        return snapshot::run(args.state_mib).await;
    }
    if args.suite == Suite::Authz {
        return authz::run(&args).await;
    }
    if args.suite == Suite::Signin {
        return signin::run(&args).await;
    }
    if args.suite == Suite::Regions {
        return regions::run(&args).await;
    }
    let mut raw_rates = Vec::new();
    if args.suite != Suite::Secrets {
        println!("in process, one core, {} s per measurement: raw aws-lc-rs vs Arca's crypto", args.seconds.min(3));
        for op in crypto::ALL {
            let (raw, arca) = crypto::in_process(op, Duration::from_secs(args.seconds.min(3)));
            println!(
                "{:<28} raw {:>9.0} ops/s   arca {:>9.0} ops/s   ratio {:>5.1}%",
                op.label(),
                raw,
                arca,
                100.0 * arca / raw
            );
            raw_rates.push(raw);
        }
        if args.in_process_only {
            return Ok(());
        }
    }
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
    if args.suite != Suite::Keys {
        for (phase, label) in [
            (Phase::Set, "set (quorum commit)"),
            (Phase::GetLinearizable, "get (linearizable)"),
            (Phase::GetBoundedStaleness, "get (staleness <= 1 s)"),
        ] {
            run_phase(&clients, &args, phase, label, &[]).await;
            println!();
        }
    }
    if args.suite != Suite::Secrets {
        for (op, raw) in crypto::ALL.into_iter().zip(&raw_rates) {
            crypto::create_key(&clients[0], op).await?;
            let input = crypto::prepare(&clients[0], op).await?;
            for stale in [false, true] {
                let label = format!("{} ({})", op.label(), if stale { "staleness <= 1 s" } else { "linearizable" });
                let throughput = run_phase(&clients, &args, Phase::Key(op, stale), &label, &input).await;
                println!("   {:>5.1}% of raw per-core", 100.0 * throughput / raw);
            }
            let n = args.batch;
            let label = format!("{} (batches of {n}, linearizable)", op.label());
            let throughput = run_phase(&clients, &args, Phase::KeyBatch(op, false, n), &label, &input).await;
            println!("   {:>5.1}% of raw per-core", 100.0 * throughput / raw);
        }
    }
    Ok(())
}
