//! Where the keys of trusted identity providers come from, for federated credentials that name no
//! JWKS of their own: the [`ProviderKeys`] seam. A node uses `arca_oidc::JwksCache` over HTTPS
//! (discovery, then the JWKS, cached and refetched by its rules); the deterministic simulation, which
//! has no provider to reach, uses [`NoProviders`].

use std::future::Future;
use std::pin::Pin;

use arca_identity::federation::ExternalClaims;

/// A future the seam returns.
pub type Verifying<'a> = Pin<Box<dyn Future<Output = Result<ExternalClaims, String>> + Send + 'a>>;

/// Checks a token an issuer signed with that issuer's current keys (signature, `iss`, `exp`,
/// `nbf`); the error says why, for the node's log only.
pub trait ProviderKeys: Send + Sync {
    fn verify<'a>(&'a self, token: &'a str, issuer: &'a str, now_unix: i64) -> Verifying<'a>;
}

impl<F: arca_oidc::Fetch + 'static> ProviderKeys for arca_oidc::JwksCache<F> {
    fn verify<'a>(&'a self, token: &'a str, issuer: &'a str, now_unix: i64) -> Verifying<'a> {
        Box::pin(
            async move { arca_oidc::JwksCache::verify(self, token, issuer, now_unix).await.map_err(|e| e.to_string()) },
        )
    }
}

/// No provider can be reached (the simulation's network has none): every token is refused.
pub struct NoProviders;

impl ProviderKeys for NoProviders {
    fn verify<'a>(&'a self, _token: &'a str, issuer: &'a str, _now_unix: i64) -> Verifying<'a> {
        let why = format!("no identity provider can be reached from here, so {issuer}'s keys are unknown");
        Box::pin(async move { Err(why) })
    }
}

/// Checks `token` as `issuer` signed it: with the keys of `jwks` when a credential stores them, else
/// with the issuer's own keys through `keys` (discovery). The error says why, for the node's log.
pub async fn verify_external(
    keys: &dyn ProviderKeys,
    jwks: &str,
    token: &str,
    issuer: &str,
    now_unix: i64,
) -> Result<ExternalClaims, String> {
    use arca_identity::federation;
    if jwks.is_empty() {
        return keys.verify(token, issuer, now_unix).await;
    }
    federation::parse_jwks(jwks)
        .and_then(|k| federation::verify(token, &k, issuer, now_unix))
        .map_err(|e| e.to_string())
}
