//! Vocabulary shared by every Arca crate: validated names, limits with their units, and the error type
//! whose stable codes every client sees.
//!
//! This crate knows nothing about gRPC, storage, Raft or cryptography. It is pure data and validation.
#![forbid(unsafe_code)]

pub mod display_name;
pub mod error;
pub mod faults;
pub mod keys;
pub mod limits;
pub mod names;
pub mod secret_bytes;

pub use display_name::DisplayName;
pub use error::{ArcaError, ErrorCode};
pub use names::{ObjectName, RegionName, VaultName, VersionId};
pub use secret_bytes::{SecretBytes, SecretString};
