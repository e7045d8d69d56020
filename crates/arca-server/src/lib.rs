//! An Arca node: the gRPC services, the access seam, seal state, the encrypted keyspace, and the write
//! and read paths that run them through Raft.
//!
//! **Architecture Invariant:** every public RPC goes through [`api::Api`]: authenticate, authorize,
//! audit. A handler that skips it is a bug.
//!
//! **Architecture Invariant:** plaintext names and values exist only in memory, inside the
//! `Keyspace` and the handlers; everything handed to Raft or storage is barrier ciphertext.
#![forbid(unsafe_code)]
// The crypto service's generic batch handlers nest async blocks deeply enough to need more than the
// default query depth when their layout is computed.
#![recursion_limit = "256"]

pub mod access;
pub mod api;
pub mod convert;
pub mod divergence;
pub mod edge;
pub mod engine;
pub mod failover;
pub mod identity;
pub mod key_use;
pub mod keyspace;
pub mod membership;
pub mod object_queue;
pub mod promotion;
pub mod providers;
pub mod quorum;
pub mod rate;
pub mod regions;
pub mod root;
pub mod seal;
pub mod server;
pub mod services;
pub mod status;
pub mod switchover;
pub mod witness;

pub use arca_storage::snapshot::SnapshotFiles;
pub use server::{serve, JoinPlan, Listener, NodeOptions, NodeParts};
