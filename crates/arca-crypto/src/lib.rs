//! The only crate in Arca that calls cryptographic libraries.
//!
//! It owns the barrier (AES-256-GCM-SIV under HKDF-SHA256-derived keys), keyed name hashing, the keyring
//! and its wrapping under the root key, Shamir splitting of the root key, entropy, the cluster's own PKI
//! (its CA, node certificates and their checks), and TLS certificate generation for development
//! clusters.
//!
//! **Architecture Invariant:** nothing outside this crate names `aes-gcm-siv`, `hkdf`, `hmac`, `sha2`,
//! `vsss-rs`, `rcgen`, `rustls-webpki` or `x509-parser`. Key material lives in [`Key32`], which is zeroized on drop and prints
//! `<redacted>`.
#![forbid(unsafe_code)]

pub mod barrier;
pub mod client_cert;
pub mod cluster_pki;
pub mod entropy;
pub mod jwt;
pub mod key;
pub mod keyring;
pub mod keys;
mod kw;
pub mod shamir;
pub mod tls;

pub use barrier::{Barrier, BarrierError, Scope};
pub use entropy::{Entropy, OsEntropy};
pub use key::Key32;
pub use keyring::{Keyring, RootKey};

/// Compares two byte strings in time that depends only on their lengths (secrets, MACs, hashes).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}
