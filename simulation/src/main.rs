//! `arca-simulation`: run the deterministic simulation over one seed or a range of seeds.
//!
//! ```text
//! cargo run -p arca-simulation --release -- --seeds 1..200
//! cargo run -p arca-simulation --release -- --seed 17            # replay one seed exactly
//! cargo run -p arca-simulation --release --features danger-faults -- --seeds 1..50 --fault read-without-read-index
//! ```

use std::process::ExitCode;
use std::time::Instant;

use arca_simulation::sim::{self, SimConfig};
use arca_types::faults::Fault;

fn usage() -> ExitCode {
    eprintln!(
        "usage: arca-simulation [--seed N | --seeds A..B [--jobs N]] [--voters 3|5] [--learners N] [--quiet] \
         [--no-chaos] [--no-attacker] [--fault NAME]...\n  faults (need --features danger-faults): {}",
        Fault::ALL.map(Fault::name).join(", ")
    );
    ExitCode::from(2)
}

/// Runs one seed in this process and prints its line (or its failure and how to replay it).
fn run_one(config: &SimConfig, quiet: bool) -> bool {
    let t = Instant::now();
    match sim::run(config) {
        Ok(r) => {
            if !quiet {
                println!(
                    "seed {:>5} ok  {}v+{}l  {:>4} ops ({:>3} key)  {:>4} acked writes checked  {:>3} terms  {:>2} crashes  \
                     {:>3} faults  {:>3}/{:<3} forged calls refused  {:>5} entries  {:>2} snapshot installs  {:>5.1}s simulated  {:>5.1}s wall  history {:016x}{}",
                    r.seed,
                    r.voters,
                    r.learners,
                    r.ops,
                    r.key_ops,
                    r.acknowledged_checked,
                    r.leader_terms,
                    r.crashes,
                    r.faults_injected,
                    r.attacks_refused,
                    r.attacks,
                    r.applied_entries,
                    r.snapshot_installs,
                    r.simulated.as_secs_f64(),
                    t.elapsed().as_secs_f64(),
                    r.fingerprint,
                    if r.inconclusive_keys.is_empty() {
                        String::new()
                    } else {
                        format!("  INCONCLUSIVE {:?}", r.inconclusive_keys)
                    }
                );
            }
            true
        }
        Err(f) => {
            println!("{f}");
            let features = if config.faults.is_empty() { "" } else { " --features danger-faults" };
            let fault_args: String = config.faults.iter().map(|f| format!(" --fault {}", f.name())).collect();
            let chaos = if config.chaos { "" } else { " --no-chaos" };
            let attacker = if config.attacker { "" } else { " --no-attacker" };
            println!(
                "  replay: cargo run -p arca-simulation --release{features} -- --seed {} --voters {} --learners {}{chaos}{attacker}{fault_args}",
                config.seed, config.voters, config.learners,
            );
            false
        }
    }
}

fn main() -> ExitCode {
    if let Ok(filter) = std::env::var("ARCA_SIM_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .without_time()
            .init();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut seeds = 1..=20u64;
    let mut voters = None;
    let mut learners = None;
    let mut chaos = true;
    let mut quiet = false;
    let mut no_summary = false;
    let mut jobs = 1usize;
    let mut attacker = true;
    let mut faults = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--seed" => match value.parse() {
                Ok(s) => seeds = s..=s,
                Err(_) => return usage(),
            },
            "--seeds" => match value.split_once("..").and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?))) {
                Some((a, b)) if a <= b => seeds = a..=b,
                _ => return usage(),
            },
            "--jobs" => match value.parse() {
                Ok(j) if j >= 1 => jobs = j,
                _ => return usage(),
            },
            "--no-attacker" => {
                attacker = false;
                i += 1;
                continue;
            }
            "--voters" => match value.parse() {
                Ok(v @ (3 | 5)) => voters = Some(v),
                _ => return usage(),
            },
            "--learners" => match value.parse() {
                Ok(v) if v <= 2 => learners = Some(v),
                _ => return usage(),
            },
            "--fault" => match Fault::parse(&value) {
                Some(f) => faults.push(f),
                None => return usage(),
            },
            "--no-chaos" => {
                chaos = false;
                i += 1;
                continue;
            }
            "--no-summary" => {
                no_summary = true;
                i += 1;
                continue;
            }
            "--quiet" => {
                quiet = true;
                i += 1;
                continue;
            }
            _ => return usage(),
        }
        i += 2;
    }
    if !faults.is_empty() && !arca_types::faults::COMPILED_IN {
        eprintln!("--fault needs a build with `--features danger-faults`");
        return ExitCode::from(2);
    }
    let started = Instant::now();
    let (mut passed, mut failed) = (0u64, Vec::new());
    if seeds.start() == seeds.end() {
        let seed = *seeds.start();
        let mut config = SimConfig::for_seed(seed);
        config.voters = voters.unwrap_or(config.voters);
        config.learners = learners.unwrap_or(config.learners);
        config.chaos = chaos;
        config.attacker = attacker;
        config.faults = faults.clone();
        if run_one(&config, quiet) {
            passed += 1;
        } else {
            failed.push(seed);
        }
    } else {
        // Each seed runs in a fresh process: tokio numbers tasks with a process-wide counter, and the
        // order in which a crashed host's tasks are dropped follows it, so only a fresh process makes
        // a seed in a range replay exactly as `--seed N` does.
        let exe = match std::env::current_exe() {
            Ok(exe) => exe,
            Err(e) => {
                eprintln!("cannot find this program to run each seed: {e}");
                return ExitCode::FAILURE;
            }
        };
        let mut passthrough = Vec::new();
        let mut skip = false;
        for a in &args {
            if skip {
                skip = false;
                continue;
            }
            if a == "--seeds" || a == "--seed" || a == "--jobs" {
                skip = true;
                continue;
            }
            passthrough.push(a.clone());
        }
        // `jobs` seeds at a time, each in its own process; results in seed order.
        let next = std::sync::atomic::AtomicU64::new(*seeds.start());
        let results = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..jobs {
                scope.spawn(|| loop {
                    let seed = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if seed > *seeds.end() {
                        break;
                    }
                    let status = std::process::Command::new(&exe)
                        .arg("--seed")
                        .arg(seed.to_string())
                        .args(&passthrough)
                        .arg("--no-summary")
                        .status();
                    let ok = matches!(status, Ok(s) if s.success());
                    results.lock().unwrap_or_else(|p| p.into_inner()).push((seed, ok));
                });
            }
        });
        let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
        results.sort_unstable();
        for (seed, ok) in results {
            if ok {
                passed += 1;
            } else {
                failed.push(seed);
            }
        }
    }
    if !no_summary {
        println!("{passed} passed, {} failed ({:?}) in {:.1}s", failed.len(), failed, started.elapsed().as_secs_f64());
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
