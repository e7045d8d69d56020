//! The simulation over the CI seed set, on the real code: every checker passes, and one seed replays
//! exactly.

use arca_simulation::sim::{self, Report, SimConfig};

/// The seeds CI runs, split over several tests so they run in parallel.
fn run_seeds(seeds: std::ops::RangeInclusive<u64>) -> Vec<Report> {
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for seed in seeds {
        match sim::run(&SimConfig::for_seed(seed)) {
            Ok(r) => reports.push(r),
            Err(f) => failures.push(format!("{f}  replay: cargo run -p arca-simulation --release -- --seed {seed}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    reports
}

#[test]
fn seeds_1_to_10_pass_every_checker() {
    let reports = run_seeds(1..=10);
    assert!(reports.iter().any(|r| r.voters == 5), "the set covers five voters");
    assert!(reports.iter().any(|r| r.learners > 0), "the set covers a learner joining during faults");
    assert!(reports.iter().map(|r| r.crashes).sum::<usize>() > 0, "the set crashes nodes");
    assert!(reports.iter().map(|r| r.acknowledged_checked).sum::<usize>() > 0, "acknowledged writes were checked");
}

#[test]
fn seeds_11_to_20_pass_every_checker() {
    run_seeds(11..=20);
}

#[test]
fn seeds_21_to_30_pass_every_checker() {
    run_seeds(21..=30);
}

#[test]
fn one_seed_replays_the_identical_history() {
    let config = SimConfig::for_seed(4);
    let first = sim::run(&config).expect("seed 4 passes");
    let second = sim::run(&config).expect("seed 4 passes again");
    assert_eq!(first.fingerprint, second.fingerprint, "same seed, same history");
    assert_eq!(first.ops, second.ops);
    let other = sim::run(&SimConfig::for_seed(5)).expect("seed 5 passes");
    assert_ne!(first.fingerprint, other.fingerprint, "another seed, another history");
}

#[test]
fn a_fault_free_run_snapshots_and_every_node_converges() {
    let mut config = SimConfig::for_seed(99);
    config.chaos = false;
    config.voters = 5;
    config.learners = 1;
    config.snapshot_every_entries = 20;
    let report = sim::run(&config).expect("a fault-free run passes");
    assert!(report.applied_entries > 40, "the workload made progress: {report:?}");
}
