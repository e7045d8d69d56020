//! The checkers bite: with a deliberate bug switched on in Arca, the simulation fails within the CI
//! seed set, and the failure names the property that broke and the seed that replays it.
//!
//! Runs only in builds with `--features danger-faults` (see `.ci/test`).

use std::process::Command;

use arca_types::faults::Fault;

/// Runs the CI seeds (1..=30) with `fault` on, one process per seed, until one fails; returns the
/// seed and the property its failure names.
fn first_failure(fault: Fault) -> Option<(u64, String)> {
    for seed in 1..=30u64 {
        let out = Command::new(env!("CARGO_BIN_EXE_arca-simulation"))
            .args(["--seed", &seed.to_string(), "--fault", fault.name()])
            .output()
            .expect("run arca-simulation");
        if !out.status.success() {
            let stdout = String::from_utf8_lossy(&out.stdout);
            eprintln!("{} caught by seed {seed}:\n{stdout}", fault.name());
            assert!(stdout.contains("replay: cargo run"), "the failure says how to replay it");
            let property = stdout.lines().find_map(|l| l.split_once("FAILED: ").map(|(_, p)| p.to_owned()))?;
            return Some((seed, property));
        }
    }
    None
}

#[test]
fn acknowledging_before_commit_is_caught() {
    let (_, property) = first_failure(Fault::AckBeforeCommit).expect("the simulation catches ack-before-commit");
    assert!(
        property.contains("linearizability") || property.contains("acknowledged"),
        "caught by the history checkers: {property}"
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
    // Either the durable-vote checker sees the lost vote at the crash, or its consequence (a node that
    // forgot its vote helps elect a second leader) breaks election safety or the client history.
    assert!(
        property.contains("vote") || property.contains("election") || property.contains("linearizability"),
        "caught by a safety checker: {property}"
    );
}

#[test]
fn a_partitioned_leader_serving_stale_bounded_reads_is_caught() {
    let (_, property) = first_failure(Fault::StaleLeaderReads).expect("the simulation catches stale-leader-reads");
    assert!(property.contains("linearizability"), "caught as a read older than its bound: {property}");
}

#[test]
fn applying_before_the_log_is_durable_is_caught() {
    let (_, property) =
        first_failure(Fault::ApplyBeforeLogDurable).expect("the simulation catches apply-before-log-durable");
    // The durable-log checker sees entries vanish at a crash, or their consequence (an acknowledged
    // write that a quorum no longer holds) breaks the client history.
    assert!(
        property.contains("durable log") || property.contains("acknowledged") || property.contains("linearizability"),
        "caught by a safety checker: {property}"
    );
}
