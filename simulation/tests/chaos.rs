//! Chaos on real processes: three `arcad` processes (RocksDB, TLS, real TCP, each on its own loopback
//! address) under a recorded client workload while the harness SIGKILLs the leader and a follower,
//! freezes nodes with SIGSTOP, cuts links between nodes with iptables (isolating the leader, then
//! splitting two followers), and fills one node's disk (a small tmpfs). The same checkers as the
//! simulation then judge the history: linearizable, every acknowledged write present on every node,
//! and no planted value or name in plaintext in any file a node wrote. Partitions and the full disk
//! need root; without it the test names the part it skips and runs the rest.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arca_client::pb;
use arca_simulation::check::no_plaintext::{NAME_MARKER, VALUE_MARKER};
use arca_simulation::check::{acknowledged_writes, linearizability};
use arca_simulation::history::{describe, History};
use arca_simulation::workload::{Client, Spec};
use arca_testkit::{files_containing, TestCluster};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

const VAULT: &str = "chaosvault";

async fn leader(cluster: &TestCluster) -> usize {
    for _ in 0..200 {
        if let Some(l) = cluster.leader_index().await {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no leader within 20 s");
}

/// Why the disk-full part cannot run here, if it cannot.
fn disk_full_unsupported() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if uid.as_deref() != Some("0") {
        return Some("mounting a small filesystem needs root (CAP_SYS_ADMIN)".into());
    }
    let probe = tempfile::tempdir().ok()?;
    let ok = Command::new("mount").args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"]).arg(probe.path()).status();
    match ok {
        Ok(s) if s.success() => {
            let _ = Command::new("umount").arg(probe.path()).status();
            None
        }
        _ => Some("`mount -t tmpfs` is refused in this environment (no CAP_SYS_ADMIN)".into()),
    }
}

/// Why links cannot be cut here, if they cannot.
fn partitions_unsupported() -> Option<String> {
    match Command::new("iptables").args(["-L", "OUTPUT", "-n"]).output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!("iptables refused: {}", String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) => Some(format!("iptables is not installed ({e}); deploy/install-deps.sh installs it")),
    }
}

fn run(cmd: &mut Command) {
    let status = cmd.status().expect("run a command");
    assert!(status.success(), "{cmd:?} failed");
}

/// Unmounts the small filesystem when the test ends, whatever happens.
struct Mounted(Option<PathBuf>);

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = Command::new("umount").arg("-l").arg(&p).status();
        }
    }
}

/// Moves node `k`'s data dir onto a 64 MiB tmpfs (restarting it there), then fills that filesystem.
async fn fill_disk(cluster: &mut TestCluster, k: usize, mounted: &mut Mounted) -> PathBuf {
    cluster.kill(k);
    let data: PathBuf = cluster.nodes[k].data_dir.clone();
    let saved = data.with_extension("saved");
    std::fs::rename(&data, &saved).expect("move the data dir aside");
    std::fs::create_dir(&data).expect("recreate the data dir");
    run(Command::new("mount").args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"]).arg(&data));
    mounted.0 = Some(data.clone());
    run(Command::new("cp").arg("-a").arg(format!("{}/.", saved.display())).arg(&data));
    cluster.restart(k).await.expect("the node restarts on the small filesystem");
    let filler = data.join("filler");
    let _ = Command::new("dd").arg("if=/dev/zero").arg(format!("of={}", filler.display())).args(["bs=1M"]).output();
    filler
}

fn planted_files(files: &[PathBuf]) -> Vec<PathBuf> {
    let mut hits = files_containing(files, VALUE_MARKER);
    hits.extend(files_containing(files, NAME_MARKER));
    hits.retain(|p: &PathBuf| !p.ends_with(Path::new("filler")));
    hits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_processes_under_kills_pauses_partitions_and_a_full_disk_keep_a_linearizable_history() {
    let mut cluster = TestCluster::start_partitionable(3, 200).await.expect("start three arcad processes");
    let admin = cluster.client(0).await.expect("client");
    admin
        .vaults()
        .create_vault(pb::CreateVaultRequest { name: VAULT.into(), ..Default::default() })
        .await
        .expect("create the vault");
    let mut nodes = Vec::new();
    for i in 0..3 {
        // Clients as the Rust client is by default: each call named with a request id and retried while
        // it failed without saying it changed nothing, so fewer outcomes are left unknown.
        nodes.push(cluster.client_retrying(i).await.expect("client"));
    }
    let history = History::default();
    let spec = Spec::new(VAULT, 3, Duration::from_secs(5));
    let stop = Arc::new(AtomicBool::new(false));
    let seed: u64 = std::env::var("ARCA_CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let mut workers = Vec::new();
    for id in 1..=4u32 {
        let rng = SmallRng::seed_from_u64(seed * 1000 + u64::from(id));
        let mut client = Client::new(id, nodes.clone(), rng, history.clone(), spec.clone());
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                client.random_op().await;
                let pause = client.rng.random_range(0..20);
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        }));
    }

    let mut done = Vec::new();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // SIGKILL the leader mid-stream, then bring it back.
    let l = leader(&cluster).await;
    cluster.kill(l);
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.restart(l).await.expect("the killed leader restarts");
    done.push(format!("SIGKILL leader (node {})", l + 1));
    // SIGKILL a follower.
    let f = (leader(&cluster).await + 1) % 3;
    cluster.kill(f);
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.restart(f).await.expect("the killed follower restarts");
    done.push(format!("SIGKILL follower (node {})", f + 1));
    // Freeze the leader long enough for an election, then let it wake up as a stale leader.
    let l = leader(&cluster).await;
    cluster.pause(l).expect("SIGSTOP");
    tokio::time::sleep(Duration::from_secs(4)).await;
    cluster.resume(l).expect("SIGCONT");
    done.push(format!("SIGSTOP/SIGCONT leader (node {})", l + 1));
    // Freeze a follower briefly.
    let f = (leader(&cluster).await + 2) % 3;
    cluster.pause(f).expect("SIGSTOP");
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.resume(f).expect("SIGCONT");
    done.push(format!("SIGSTOP/SIGCONT follower (node {})", f + 1));
    // Partitions: isolate the leader (a new one is elected; the old one must not serve stale reads or
    // acknowledge writes), heal, then cut two followers apart.
    match partitions_unsupported() {
        Some(why) => eprintln!("SKIPPED the partition part: {why}"),
        None => {
            let l = leader(&cluster).await;
            cluster.isolate(l).expect("isolate the leader");
            tokio::time::sleep(Duration::from_secs(5)).await;
            cluster.heal();
            done.push(format!("leader (node {}) isolated by iptables", l + 1));
            tokio::time::sleep(Duration::from_secs(2)).await;
            let l = leader(&cluster).await;
            let (a, b) = ((l + 1) % 3, (l + 2) % 3);
            cluster.partition(a, b).expect("cut two followers apart");
            tokio::time::sleep(Duration::from_secs(3)).await;
            cluster.heal();
            done.push(format!("followers (nodes {} and {}) cut apart", a + 1, b + 1));
        }
    }
    // Fill one follower's disk while the workload runs, then free it and restart the node.
    let mut mounted = Mounted(None);
    match disk_full_unsupported() {
        Some(why) => eprintln!("SKIPPED the disk-full part: {why}"),
        None => {
            let f = (leader(&cluster).await + 1) % 3;
            let filler = fill_disk(&mut cluster, f, &mut mounted).await;
            tokio::time::sleep(Duration::from_secs(4)).await;
            std::fs::remove_file(&filler).expect("free the disk");
            cluster.kill(f);
            cluster.restart(f).await.expect("the node restarts once its disk has room again");
            done.push(format!("disk full on follower (node {})", f + 1));
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("a client task");
    }

    // Liveness: every node answers, then every checker judges the history.
    let rng = SmallRng::seed_from_u64(seed);
    let mut last = Client::new(0, nodes, rng, history.clone(), spec);
    let finals = last.final_reads(Duration::from_secs(60)).await.expect("every request finishes after the faults");
    let ops = history.ops();
    let summary = linearizability::check(&ops).unwrap_or_else(|v| {
        // The whole history of every key that failed, for the post-mortem.
        let shown: Vec<String> = v.iter().map(|v| v.to_string()).collect();
        let keys: std::collections::BTreeSet<&str> = ops
            .iter()
            .map(|o| o.key.as_str())
            .filter(|k| shown.iter().any(|s| s.contains(&format!(": {k} "))))
            .collect();
        let whole: Vec<String> = ops.iter().filter(|o| keys.contains(o.key.as_str())).map(describe).collect();
        panic!("{}\nthe whole history of those keys:\n{}", shown.join("\n"), whole.join("\n"))
    });
    let undecided: Vec<String> = ops.iter().filter(|o| summary.inconclusive.contains(&o.key)).map(describe).collect();
    assert!(
        summary.inconclusive.is_empty(),
        "every key's history was decided: {:?}; their operations:\n{}",
        summary.inconclusive,
        undecided.join("\n")
    );
    let checked = acknowledged_writes::check(&ops, &finals).unwrap_or_else(|p| panic!("{}", p.join("\n")));
    let leaks = planted_files(&cluster.files_to_scan());
    assert!(leaks.is_empty(), "planted values or names in plaintext: {leaks:?}");
    let acked = ops.iter().filter(|o| o.is_definite() && o.call.is_write()).count();
    let key_ops = ops.iter().filter(|o| o.is_definite() && o.call.is_key_call()).count();
    eprintln!(
        "chaos: {} operations ({acked} definite writes, {key_ops} definite key and crypto calls, {checked} acknowledged versions checked on 3 nodes) through: {}",
        ops.len(),
        done.join(", ")
    );
    assert!(checked > 0, "some acknowledged writes survived to be checked");
    assert!(key_ops > 0, "key and crypto calls ran under the faults");
    drop(mounted);
}
