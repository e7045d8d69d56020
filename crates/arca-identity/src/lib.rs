//! How callers prove who they are: Arca's access tokens (issued by the token endpoint, verified on
//! every node without a round trip), client secrets, and (as they land) client assertions, OIDC
//! federation and the managed-identity agent.
//!
//! **Architecture Invariant:** pure over its inputs: no IO, no clock (time comes in as an argument),
//! no storage. What a token is checked against (the cluster's public token keys, its issuer name)
//! is handed in; whether its principal still exists, and was not revoked, is the caller's lookup.
//! Crypto is `arca-crypto`'s.
#![forbid(unsafe_code)]

pub mod access_token;
pub mod client_assertion;
pub mod client_secret;
pub mod federation;

pub use access_token::{AccessClaims, AuthMethod, Confirmation, TokenError, TokenKey};
