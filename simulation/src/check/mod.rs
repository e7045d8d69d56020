//! The checkers, one property per file, each naming where the property comes from. Both harnesses
//! (the simulation and the real-process chaos tests) feed them.

pub mod acknowledged_writes;
pub mod election_safety;
pub mod linearizability;
pub mod log_durability;
pub mod log_matching;
pub mod no_plaintext;
pub mod state_machine_safety;
pub mod vote_durability;
