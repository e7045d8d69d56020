//! Providers' signing keys, fetched by discovery and kept: a token is checked against the cached
//! keys; keys older than [`KEYS_FRESH_FOR`] are fetched again; a token naming a `kid` the cache does
//! not know makes one refetch (the provider rotated), at most once per [`REFETCH_INTERVAL`] per
//! issuer, so tokens with made-up `kid`s cannot make a node hammer a provider. When a provider cannot
//! be reached, keys fetched within [`KEYS_USABLE_FOR`] go on being used.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arca_identity::federation::{self, ExternalClaims, FederationError, Jwk};
use tokio::time::Instant;

use crate::{discovery, HttpsClient, OidcError};

/// How long fetched keys are used before they are fetched again.
pub const KEYS_FRESH_FOR: Duration = Duration::from_secs(15 * 60);
/// The least time between two fetches for one issuer (after an unknown `kid` or a failure).
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// How long keys are still used while the provider cannot be reached.
pub const KEYS_USABLE_FOR: Duration = Duration::from_secs(24 * 60 * 60);
/// The largest JWKS fetched, in bytes.
pub const FETCHED_JWKS_BYTES_MAX: usize = 64 * 1024;
/// Issuers kept at once; past this the one used least recently is dropped (issuers come from stored
/// credentials, not from callers).
pub const ISSUERS_MAX: usize = 1024;

/// How the cache reaches providers: an HTTPS `GET` with a byte limit. The seam tests stand a scripted
/// provider behind.
pub trait Fetch: Send + Sync {
    fn get(&self, url: &str, limit: usize) -> impl Future<Output = Result<Vec<u8>, OidcError>> + Send;
}

impl Fetch for HttpsClient {
    fn get(&self, url: &str, limit: usize) -> impl Future<Output = Result<Vec<u8>, OidcError>> + Send {
        HttpsClient::get(self, url, limit)
    }
}

/// Why an external token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("{0}")]
    Token(#[from] FederationError),
    #[error("the provider's keys could not be fetched: {0}")]
    Keys(#[from] OidcError),
}

/// One issuer's keys. Callers read the keys without waiting; fetching is one at a time
/// (`refreshing`), and a caller whose keys are merely stale goes on with them while another fetches.
struct Entry {
    keys: Mutex<Option<(Arc<Vec<Jwk>>, Instant)>>,
    attempted: Mutex<Option<Instant>>,
    refreshing: tokio::sync::Mutex<()>,
    last_used: Mutex<Instant>,
}

impl Entry {
    fn new() -> Self {
        Self {
            keys: Mutex::new(None),
            attempted: Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
            last_used: Mutex::new(Instant::now()),
        }
    }

    fn keys(&self) -> Option<(Arc<Vec<Jwk>>, Instant)> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The keys of every issuer asked about.
pub struct JwksCache<F> {
    fetch: F,
    issuers: Mutex<HashMap<String, Arc<Entry>>>,
}

impl<F: Fetch> JwksCache<F> {
    pub fn new(fetch: F) -> Self {
        Self { fetch, issuers: Mutex::new(HashMap::new()) }
    }

    /// Fetches an issuer's keys: its discovery document, then the JWKS it names.
    pub async fn fetch_keys(&self, issuer: &str) -> Result<Vec<Jwk>, OidcError> {
        let body = self.fetch.get(&discovery::discovery_url(issuer)?, discovery::DISCOVERY_BYTES_MAX).await?;
        let metadata = discovery::parse(issuer, &body)?;
        let jwks = self.fetch.get(&metadata.jwks_uri, FETCHED_JWKS_BYTES_MAX).await?;
        let text = std::str::from_utf8(&jwks).map_err(|_| OidcError::Document("the JWKS is not UTF-8".into()))?;
        federation::parse_jwks(text).map_err(|e| OidcError::Document(e.to_string()))
    }

    /// The issuer's entry; past [`ISSUERS_MAX`] the one used least recently makes room.
    fn entry(&self, issuer: &str) -> Arc<Entry> {
        let mut issuers = self.issuers.lock().unwrap_or_else(|p| p.into_inner());
        if issuers.len() >= ISSUERS_MAX && !issuers.contains_key(issuer) {
            let oldest = issuers
                .iter()
                .min_by_key(|(_, e)| *e.last_used.lock().unwrap_or_else(|p| p.into_inner()))
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                issuers.remove(&oldest);
            }
        }
        let entry = issuers.entry(issuer.to_owned()).or_insert_with(|| Arc::new(Entry::new())).clone();
        *entry.last_used.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        entry
    }

    /// Fetches into `entry` (its caller holds `refreshing`) if the last attempt is at least
    /// [`REFETCH_INTERVAL`] old; a failure keeps keys still usable.
    async fn refresh(&self, issuer: &str, entry: &Entry) -> Result<(), OidcError> {
        let now = Instant::now();
        {
            let mut attempted = entry.attempted.lock().unwrap_or_else(|p| p.into_inner());
            if attempted.is_some_and(|at| now.duration_since(at) < REFETCH_INTERVAL) {
                return Ok(());
            }
            *attempted = Some(now);
        }
        let fetched = self.fetch_keys(issuer).await;
        let mut keys = entry.keys.lock().unwrap_or_else(|p| p.into_inner());
        match fetched {
            Ok(fresh) => {
                *keys = Some((Arc::new(fresh), now));
                Ok(())
            }
            Err(e) => {
                tracing::warn!(issuer, "an identity provider's keys could not be fetched: {e}");
                match &*keys {
                    Some((_, fetched)) if now.duration_since(*fetched) < KEYS_USABLE_FOR => Ok(()),
                    _ => {
                        *keys = None;
                        Err(e)
                    }
                }
            }
        }
    }

    /// Checks `token` as one `issuer` signed (see [`federation::verify`]), with its keys from the
    /// cache, fetched as the rules above say. A caller whose keys are known never waits on a fetch.
    pub async fn verify(&self, token: &str, issuer: &str, now_unix: i64) -> Result<ExternalClaims, VerifyError> {
        let entry = self.entry(issuer);
        let mut keys = entry.keys();
        let stale = keys.as_ref().is_none_or(|(_, at)| at.elapsed() >= KEYS_FRESH_FOR);
        if stale {
            if keys.is_some() {
                // Stale keys serve on while one caller fetches; its failure only matters once the
                // keys are too old to use, and then `refresh` has dropped them.
                if let Ok(_fetching) = entry.refreshing.try_lock() {
                    let _ = self.refresh(issuer, &entry).await;
                }
            } else {
                let _fetching = entry.refreshing.lock().await;
                if entry.keys().is_none() {
                    self.refresh(issuer, &entry).await?;
                }
            }
            keys = entry.keys();
        }
        let Some((current, _)) = keys else {
            return Err(VerifyError::Keys(OidcError::Document(
                "no keys yet; the last fetch failed moments ago".into(),
            )));
        };
        match federation::verify(token, &current, issuer, now_unix) {
            Err(FederationError::UnknownKey) => {
                // The provider may have rotated: look once more (at most once per interval), unless
                // a fetch that finished while this caller waited already brought new keys.
                {
                    let _fetching = entry.refreshing.lock().await;
                    let unchanged = entry.keys().is_none_or(|(k, _)| Arc::ptr_eq(&k, &current));
                    if unchanged {
                        self.refresh(issuer, &entry).await?;
                    }
                }
                let keys = entry.keys().map(|(k, _)| k).unwrap_or_default();
                Ok(federation::verify(token, &keys, issuer, now_unix)?)
            }
            other => Ok(other?),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use arca_crypto::cluster_pki::Ed25519Key;
    use arca_crypto::jwt;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use serde_json::json;

    use super::*;

    const ISSUER: &str = "https://idp.example";
    const NOW: i64 = 1_800_000_000;

    /// A provider in memory (the seam's stand-in, not a network): serves its discovery document and
    /// the JWKS of its current keys, counts fetches, and can be made to fail.
    struct Scripted {
        keys: Mutex<Vec<(String, Ed25519Key)>>,
        fetches: AtomicUsize,
        down: std::sync::atomic::AtomicBool,
    }

    impl Scripted {
        fn new() -> Arc<Self> {
            Arc::new(Self { keys: Mutex::new(vec![]), fetches: AtomicUsize::new(0), down: false.into() })
        }

        fn rotate(&self, kid: &str) -> String {
            let key = Ed25519Key::generate(&arca_crypto::OsEntropy);
            let claims = json!({ "iss": ISSUER, "sub": "alice", "aud": "arca", "exp": NOW + 600 });
            let token = jwt::sign_eddsa(&key, &json!({ "alg": "EdDSA", "kid": kid }), &claims);
            *self.keys.lock().unwrap() = vec![(kid.to_owned(), key)];
            token
        }

        fn jwks_fetches(&self) -> usize {
            self.fetches.load(Ordering::SeqCst)
        }
    }

    impl Fetch for Arc<Scripted> {
        async fn get(&self, url: &str, _limit: usize) -> Result<Vec<u8>, OidcError> {
            if self.down.load(Ordering::SeqCst) {
                return Err(OidcError::Unreachable { url: url.into(), why: "down".into() });
            }
            if url.ends_with("/.well-known/openid-configuration") {
                return Ok(json!({ "issuer": ISSUER, "jwks_uri": "https://idp.example/keys" })
                    .to_string()
                    .into_bytes());
            }
            self.fetches.fetch_add(1, Ordering::SeqCst);
            let keys: Vec<_> = self
                .keys
                .lock()
                .unwrap()
                .iter()
                .map(|(kid, k)| json!({ "kty": "OKP", "crv": "Ed25519", "kid": kid, "x": URL_SAFE_NO_PAD.encode(k.public_key()) }))
                .collect();
            Ok(json!({ "keys": keys }).to_string().into_bytes())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn keys_are_fetched_once_and_used_until_they_go_stale() {
        let idp = Scripted::new();
        let token = idp.rotate("k1");
        let cache = JwksCache::new(idp.clone());
        for _ in 0..5 {
            assert_eq!(cache.verify(&token, ISSUER, NOW).await.unwrap().sub, "alice");
        }
        assert_eq!(idp.jwks_fetches(), 1);
        tokio::time::advance(KEYS_FRESH_FOR).await;
        cache.verify(&token, ISSUER, NOW).await.unwrap();
        assert_eq!(idp.jwks_fetches(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rotated_key_is_fetched_at_its_first_token_and_unknown_kids_refetch_at_most_once_per_interval() {
        let idp = Scripted::new();
        let old = idp.rotate("k1");
        let cache = JwksCache::new(idp.clone());
        cache.verify(&old, ISSUER, NOW).await.unwrap();
        tokio::time::advance(REFETCH_INTERVAL).await;
        let new = idp.rotate("k2");
        assert_eq!(cache.verify(&new, ISSUER, NOW).await.unwrap().sub, "alice");
        assert_eq!(idp.jwks_fetches(), 2);
        // The old key is gone from the provider, and so from the cache.
        assert_eq!(cache.verify(&old, ISSUER, NOW).await, Err(VerifyError::Token(FederationError::UnknownKey)));
        // Made-up kids within the interval fetch nothing more.
        let forged = Scripted::new();
        let token = forged.rotate("k9");
        for _ in 0..20 {
            assert!(cache.verify(&token, ISSUER, NOW).await.is_err());
        }
        assert_eq!(idp.jwks_fetches(), 2);
        tokio::time::advance(REFETCH_INTERVAL).await;
        assert!(cache.verify(&token, ISSUER, NOW).await.is_err());
        assert_eq!(idp.jwks_fetches(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreachable_provider_keeps_recent_keys_and_refuses_without_any() {
        let idp = Scripted::new();
        let token = idp.rotate("k1");
        idp.down.store(true, Ordering::SeqCst);
        let cache = JwksCache::new(idp.clone());
        assert!(matches!(cache.verify(&token, ISSUER, NOW).await, Err(VerifyError::Keys(_))));
        // Within the interval the failure is not retried.
        assert!(matches!(cache.verify(&token, ISSUER, NOW).await, Err(VerifyError::Keys(_))));
        idp.down.store(false, Ordering::SeqCst);
        tokio::time::advance(REFETCH_INTERVAL).await;
        cache.verify(&token, ISSUER, NOW).await.unwrap();
        idp.down.store(true, Ordering::SeqCst);
        tokio::time::advance(KEYS_FRESH_FOR).await;
        cache.verify(&token, ISSUER, NOW).await.expect("keys fetched within a day are still used");
        tokio::time::advance(KEYS_USABLE_FOR).await;
        assert!(matches!(cache.verify(&token, ISSUER, NOW).await, Err(VerifyError::Keys(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn a_document_for_another_issuer_is_refused() {
        let idp = Scripted::new();
        let token = idp.rotate("k1");
        let cache = JwksCache::new(idp.clone());
        let other = "https://other.example";
        assert!(matches!(cache.verify(&token, other, NOW).await, Err(VerifyError::Keys(OidcError::Document(_)))));
        assert_eq!(idp.jwks_fetches(), 0);
    }
}
