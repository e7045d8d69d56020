//! Arca's correctness harnesses: a deterministic simulation (turmoil) of real nodes, and chaos tests
//! of real `arcad` processes, sharing one history format, one workload and one set of checkers.
//!
//! **Architecture Invariant:** the simulation runs Arca's own node code (`arca_server::serve`) and
//! replaces only what cannot be simulated: the network (turmoil), the disk (`arca_storage::mem` with
//! its crash model), time and randomness (seeded).
#![forbid(unsafe_code)]

#[cfg(not(tokio_unstable))]
compile_error!(
    "arca-simulation needs `--cfg tokio_unstable` so turmoil can seed tokio; the workspace's .cargo/config.toml \
     sets it, and a RUSTFLAGS environment variable overrides that: add `--cfg tokio_unstable` to it"
);

pub mod check;
pub mod history;
pub mod model;
pub mod sim;
pub mod workload;
