//! The rules of vaults and secrets, as pure functions.
//!
//! [`decide`] turns a [`Command`] and a read-only [`StateView`] into the [`Mutation`]s to make and the
//! [`Outcome`] to return; [`read`] answers queries. Neither touches a clock, a random source, a disk or
//! the network: the time comes in as an argument, version and vault ids are minted by the caller before
//! the command is built, and the caller turns mutations into encrypted writes.
//!
//! **Architecture Invariant:** this crate depends only on `arca-types`, `arca-rbac` and `serde`. It knows nothing of
//! encryption, hashing, RocksDB, Raft or gRPC, which is what lets the simulation and the unit tests drive
//! it directly.
#![forbid(unsafe_code)]

pub mod command;
pub mod decide;
pub mod identity;
pub mod mem_view;
pub mod network;
pub mod read;
pub mod records;
pub mod view;

pub use command::Command;
pub use decide::{decide, decide_sets, Decision, Mutation, Outcome};
pub use records::*;
pub use view::StateView;
