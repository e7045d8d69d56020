//! The gRPC services. Each handler: begin the call, authorize, validate, run, finish (audit + status).

pub mod agents;
pub mod audit;
pub mod cluster;
pub mod crypto;
pub mod keys;
pub mod node;
pub mod operator;
pub mod principals;
pub mod roles;
pub mod secrets;
pub mod vaults;
