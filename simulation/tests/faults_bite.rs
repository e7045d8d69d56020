//! The checkers bite: with a deliberate bug switched on in Arca, the simulation fails within the CI
//! seed set, and the failure names the property that broke and the seed that replays it.
//!
//! Runs only in builds with `--features danger-faults` (see `.ci/test`).

use arca_simulation::sim::{self, SimConfig};
use arca_types::faults::Fault;

/// Runs the CI seeds with `fault` on until one fails; returns (seed, property).
fn first_failure(fault: Fault) -> Option<(u64, &'static str)> {
    for seed in 1..=30 {
        let mut config = SimConfig::for_seed(seed);
        config.faults = vec![fault];
        if let Err(f) = sim::run(&config) {
            eprintln!("{} caught:\n{f}  replay: cargo run -p arca-simulation --release --features danger-faults -- --seed {seed} --fault {}", fault.name(), fault.name());
            return Some((seed, f.property));
        }
    }
    None
}

#[test]
fn acknowledging_before_commit_is_caught() {
    let (_, property) = first_failure(Fault::AckBeforeCommit).expect("the simulation catches ack-before-commit");
    assert!(
        property.contains("linearizability") || property.contains("acknowledged"),
        "caught by the history checkers, not by accident: {property}"
    );
}

#[test]
fn reading_without_read_index_is_caught() {
    let (_, property) =
        first_failure(Fault::ReadWithoutReadIndex).expect("the simulation catches read-without-read-index");
    assert!(property.contains("linearizability"), "caught as a stale read: {property}");
}

#[test]
fn skipping_the_vote_fsync_is_caught() {
    let (_, property) = first_failure(Fault::SkipVoteFsync).expect("the simulation catches skip-vote-fsync");
    assert!(property.contains("vote") || property.contains("election"), "caught by a Raft checker: {property}");
}

#[test]
fn the_same_seeds_pass_without_the_faults() {
    for seed in 1..=3 {
        sim::run(&SimConfig::for_seed(seed)).unwrap_or_else(|f| panic!("{f}"));
    }
}
