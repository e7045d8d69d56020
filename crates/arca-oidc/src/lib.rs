//! Talking to OpenID Connect providers: fetching a provider's discovery document and its signing
//! keys (JWKS) over HTTPS, keeping them cached, and the device authorization grant (RFC 8628) that
//! `arca login` signs a person in with.
//!
//! **Architecture Invariant:** the only network this crate touches is HTTPS to a provider an
//! operator configured. Every fetch is bounded (size, time, no redirects), and what decides whether a
//! token is valid stays in `arca-identity` (pure); this crate only brings it the keys. The cache
//! reaches the network through the [`Fetch`] seam, so its rules (refresh, refetch on an unknown
//! `kid`, at most once per interval) are tested without one.
#![forbid(unsafe_code)]

pub mod cache;
pub mod device;
pub mod discovery;
pub mod https;

pub use cache::{Fetch, JwksCache};
pub use discovery::ProviderMetadata;
pub use https::HttpsClient;

/// Why talking to a provider failed. Messages name the URL and the rule, never a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    #[error("{0} is not an https:// URL with a host")]
    Url(String),
    #[error("could not reach {url}: {why}")]
    Unreachable { url: String, why: String },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} sent more than {limit} bytes")]
    TooLarge { url: String, limit: usize },
    #[error("{url} did not answer within {seconds} s")]
    Timeout { url: String, seconds: u64 },
    #[error("the provider's document is not valid: {0}")]
    Document(String),
    #[error("the CA file {path}: {why}")]
    Ca { path: String, why: String },
}
