//! Cluster transport and admission: the TLS of both listeners, node-to-node channels, each node's
//! cluster credentials, join tokens, and the gate every cluster RPC passes.
//!
//! **Architecture Invariant:** the cluster listener trusts only the cluster's own CA, never the CA
//! clients trust, and every request to it passes [`admission::Admission`] before any handler runs.
//!
//! **API Boundary:** nothing here knows Raft state or the keyspace. What a node knows of its cluster
//! comes in through [`admission::AdmissionView`]; the rules themselves ([`admission::admit`]) are pure.
#![forbid(unsafe_code)]

pub mod admission;
pub mod credentials;
pub mod incoming;
pub mod join_token;
pub mod tls;

/// Wall-clock seconds since the Unix epoch, from the node's clock (certificates are checked at it).
pub type UnixClock = std::sync::Arc<dyn Fn() -> i64 + Send + Sync>;
