//! `--suite snapshot`: what a node pays to catch up from a large snapshot. Writes a state of a given
//! size into a 3-node cluster that snapshots every 1,000 entries, adds a fourth node (which can only
//! catch up by installing a snapshot), and reports how long it took and the peak resident memory of
//! the new node and of the leader that built and sent the snapshot. With snapshots held as files the
//! new node's peak stays far below the state's size; a node that buffered the snapshot would need at
//! least the state's size once or twice over.

use std::time::{Duration, Instant};

use arca_client::pb;
use arca_testkit::TestCluster;

/// Bytes of one secret value: near the largest Arca accepts, so the state grows quickly.
const VALUE_BYTES: usize = 24_000;
/// Concurrent writers filling the state.
const WRITERS: usize = 16;

/// The peak resident set of a process, in MiB, from `/proc/<pid>/status` (`VmHWM`).
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

pub async fn run(state_mib: usize) -> anyhow::Result<()> {
    let mut cluster = TestCluster::start_with(3, 1000).await?;
    let c0 = cluster.client(0).await?;
    c0.vaults().create_vault(pb::CreateVaultRequest { name: "bench".into(), ..Default::default() }).await?;
    let count = state_mib * 1024 * 1024 / VALUE_BYTES;
    let started = Instant::now();
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let client = cluster.client_retrying(w % 3).await?;
        writers.push(tokio::spawn(async move {
            let value = "v".repeat(VALUE_BYTES);
            for i in (w..count).step_by(WRITERS) {
                let r = pb::SetSecretRequest {
                    vault: "bench".into(),
                    name: format!("s{i}"),
                    value: value.clone(),
                    ..Default::default()
                };
                client.secrets().set_secret(r).await?;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for w in writers {
        w.await??;
    }
    println!(
        "state: {count} secrets of {VALUE_BYTES} bytes ({state_mib} MiB of values) written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let leader = cluster.leader_index().await.ok_or_else(|| anyhow::anyhow!("no leader"))?;
    let started = Instant::now();
    let fourth = cluster.add_node(false).await?;
    let c4 = cluster.client(fourth).await?;
    let last = pb::GetSecretRequest { vault: "bench".into(), name: format!("s{}", count - 1), ..Default::default() };
    c4.secrets().get_secret(last).await?;
    let caught_up = started.elapsed();
    let snapshot_file = cluster.nodes[fourth].data_dir.join("snapshots").join("current");
    let snapshot = std::fs::metadata(snapshot_file).map(|m| m.len()).unwrap_or(0);
    let peak = |i: usize| cluster.nodes[i].pid().and_then(peak_rss_mib).unwrap_or(f64::NAN);
    println!(
        "new node: caught up in {:.1} s from a snapshot file of {:.0} MiB; peak RSS {:.0} MiB (new node), {:.0} MiB (leader)",
        caught_up.as_secs_f64(),
        snapshot as f64 / (1024.0 * 1024.0),
        peak(fourth),
        peak(leader),
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}
