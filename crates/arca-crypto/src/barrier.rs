//! The barrier: everything Arca writes to its log, snapshots and RocksDB passes through here first.
//!
//! A record is sealed with AES-256-GCM-SIV under a key derived by HKDF-SHA256 from the active keyring
//! term and the record's scope (one vault, or the system). The associated data is the record's storage
//! location, so a ciphertext copied to another location fails to open. Names are stored as keyed hashes
//! (HMAC-SHA256 under a per-scope key derived from keyring term 1, which never changes).
//!
//! Sealed layout: `format(1) | term(4, big-endian) | nonce(12) | ciphertext+tag`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::{Entropy, Key32, Keyring};

const FORMAT: u8 = 1;
const HEADER_BYTES: usize = 1 + 4 + 12;
const TAG_BYTES: usize = 16;

/// Why a ciphertext did not open. None of these carry plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BarrierError {
    /// The blob is too short or has an unknown format byte.
    #[error("ciphertext is malformed")]
    Malformed,
    /// The blob names a keyring term this node does not hold.
    #[error("ciphertext was sealed under keyring term {0}, which this keyring does not hold")]
    UnknownTerm(u32),
    /// Authentication failed: wrong key, wrong location, or tampered bytes.
    #[error("ciphertext failed authentication (tampered, moved, or sealed under another key)")]
    Unauthentic,
    /// The keyring itself did not unwrap under the given root key.
    #[error("keyring did not unwrap: wrong root key or tampered keyring")]
    Unwrap,
    /// The barrier was wiped (the node sealed): it holds no key any more.
    #[error("the barrier holds no keys: the node is sealed")]
    Wiped,
}

/// Which key family a record belongs to. Each vault has its own, so purging a vault and creating one
/// with the same name never lets old ciphertext open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// Cluster-wide records: vault headers, tokens, Raft proposals.
    System,
    /// Records of one vault, named by its random 16-byte id.
    Vault(&'a [u8; 16]),
    /// Backup blobs, which must open in any vault of a cluster that holds the same keyring.
    Backup,
}

/// A [`Scope`] as a cache key (owned, so it can outlive the call).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum ScopeKey {
    System,
    Vault([u8; 16]),
    Backup,
}

impl Scope<'_> {
    fn key(&self) -> ScopeKey {
        match self {
            Scope::System => ScopeKey::System,
            Scope::Vault(id) => ScopeKey::Vault(**id),
            Scope::Backup => ScopeKey::Backup,
        }
    }

    fn info(&self, purpose: &str) -> Vec<u8> {
        let mut info = format!("arca/v1/{purpose}/").into_bytes();
        match self {
            Scope::System => info.extend_from_slice(b"system"),
            Scope::Vault(id) => {
                info.extend_from_slice(b"vault/");
                info.extend_from_slice(&id[..]);
            }
            Scope::Backup => info.extend_from_slice(b"backup"),
        }
        info
    }
}

/// Seals and opens records with the current keyring. Cheap to clone; rotation swaps the keyring in place,
/// and [`Barrier::wipe`] (sealing) takes it away from every clone at once.
#[derive(Clone)]
pub struct Barrier {
    current: Arc<RwLock<Option<Arc<Current>>>>,
    entropy: Arc<dyn Entropy>,
}

/// Derived keys kept at most per keyring (one entry per term and scope in use).
const DERIVED_MAX: usize = 4096;

type Cache<K, V> = Mutex<HashMap<K, V>>;

/// The keyring in force and what has been derived from it, swapped together so a derived key never
/// outlives the keyring it came from.
struct Current {
    ring: Arc<Keyring>,
    /// Record ciphers by (term, scope), so a record pays neither HKDF nor the AES key schedule.
    ciphers: Cache<(u32, ScopeKey), Arc<Aes256GcmSiv>>,
    /// Name-hash MACs by scope, keyed and ready to clone.
    macs: Cache<ScopeKey, Hmac<Sha256>>,
}

impl Current {
    fn new(ring: Keyring) -> Arc<Self> {
        Arc::new(Self { ring: Arc::new(ring), ciphers: Mutex::default(), macs: Mutex::default() })
    }
}

/// The cached value for `key`, made by `make` on a miss; the map is emptied when it is full.
fn cached<K: std::hash::Hash + Eq, V: Clone>(map: &Cache<K, V>, key: K, make: impl FnOnce() -> V) -> V {
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(v) = map.get(&key) {
        return v.clone();
    }
    if map.len() >= DERIVED_MAX {
        map.clear();
    }
    let v = make();
    map.insert(key, v.clone());
    v
}

impl std::fmt::Debug for Barrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Barrier(<redacted>)")
    }
}

impl Barrier {
    pub fn new(keyring: Keyring, entropy: Arc<dyn Entropy>) -> Self {
        Self { current: Arc::new(RwLock::new(Some(Current::new(keyring)))), entropy }
    }

    /// Replaces the keyring (after a rotation was applied). A wiped barrier stays wiped.
    pub fn replace_keyring(&self, keyring: Keyring) {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if current.is_some() {
            *current = Some(Current::new(keyring));
        }
    }

    /// Drops the keyring and every key derived from it, for every clone of this barrier: from now on
    /// sealing and opening fail with [`BarrierError::Wiped`]. The keys are zeroized as the last call
    /// that was using them returns.
    pub fn wipe(&self) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    pub fn is_wiped(&self) -> bool {
        self.current.read().unwrap_or_else(|p| p.into_inner()).is_none()
    }

    pub fn keyring(&self) -> Result<Arc<Keyring>, BarrierError> {
        Ok(self.current()?.ring.clone())
    }

    fn current(&self) -> Result<Arc<Current>, BarrierError> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone().ok_or(BarrierError::Wiped)
    }

    /// The record cipher for `term` and `scope`, derived once per keyring.
    fn cipher(current: &Current, term: u32, scope: Scope<'_>) -> Result<Arc<Aes256GcmSiv>, BarrierError> {
        let key = current.ring.term_key(term).ok_or(BarrierError::UnknownTerm(term))?;
        Ok(cached(&current.ciphers, (term, scope.key()), || Arc::new(derive_cipher(key, scope))))
    }

    pub fn entropy(&self) -> &Arc<dyn Entropy> {
        &self.entropy
    }

    /// Seals `plaintext` for storage at `location` under the active term.
    pub fn seal(&self, scope: Scope<'_>, location: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, BarrierError> {
        let term = self.current()?.ring.active_term();
        self.seal_under(scope, location, plaintext, term)
    }

    /// The keyring term a sealed blob names (`None` if it is malformed).
    pub fn term_of(sealed: &[u8]) -> Option<u32> {
        (sealed.len() >= HEADER_BYTES && sealed[0] == FORMAT)
            .then(|| u32::from_be_bytes([sealed[1], sealed[2], sealed[3], sealed[4]]))
    }

    /// Seals under a given term (for an answer to a peer that may not hold a newer term yet).
    pub fn seal_under(
        &self,
        scope: Scope<'_>,
        location: &[u8],
        plaintext: &[u8],
        term: u32,
    ) -> Result<Vec<u8>, BarrierError> {
        let current = self.current()?;
        let cipher = Self::cipher(&current, term, scope).expect("the active term is always in the keyring");
        let mut nonce = [0u8; 12];
        self.entropy.fill(&mut nonce);
        let sealed = cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad: location })
            // AES-GCM-SIV refuses only inputs above 2^36 bytes; every record is bounded far below that.
            .expect("record is below the AES-GCM-SIV size limit");
        let mut out = Vec::with_capacity(HEADER_BYTES + sealed.len());
        out.push(FORMAT);
        out.extend_from_slice(&term.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a record sealed for `location`. The plaintext is wiped when the returned buffer drops.
    pub fn open(&self, scope: Scope<'_>, location: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, BarrierError> {
        if sealed.len() < HEADER_BYTES + TAG_BYTES || sealed[0] != FORMAT {
            return Err(BarrierError::Malformed);
        }
        let term = u32::from_be_bytes([sealed[1], sealed[2], sealed[3], sealed[4]]);
        let nonce: [u8; 12] = sealed[5..HEADER_BYTES].try_into().map_err(|_| BarrierError::Malformed)?;
        let current = self.current()?;
        Self::cipher(&current, term, scope)?
            .decrypt(&Nonce::from(nonce), Payload { msg: &sealed[HEADER_BYTES..], aad: location })
            .map(Zeroizing::new)
            .map_err(|_| BarrierError::Unauthentic)
    }

    /// The keyed hash under which a name is stored. Stable across keyring rotation. A wiped barrier
    /// answers all zeros: nothing is stored under that, and every read of what it names fails to open
    /// or finds nothing, which the node reports as sealed.
    pub fn name_hash(&self, scope: Scope<'_>, canonical_name: &[u8]) -> [u8; 32] {
        let Ok(current) = self.current() else { return [0u8; 32] };
        let mut mac = cached(&current.macs, scope.key(), || {
            let mut key = Zeroizing::new([0u8; 32]);
            Hkdf::<Sha256>::new(None, current.ring.first_term_key().expose())
                .expand(&scope.info("names"), &mut key[..])
                .expect("32 bytes is a valid HKDF-SHA256 length");
            <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&key[..]).expect("HMAC accepts any key length")
        });
        mac.update(canonical_name);
        mac.finalize().into_bytes().into()
    }
}

fn derive_cipher(term_key: &Key32, scope: Scope<'_>) -> Aes256GcmSiv {
    let mut okm = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(None, term_key.expose())
        .expand(&scope.info("data"), &mut okm[..])
        .expect("32 bytes is a valid HKDF-SHA256 length");
    Aes256GcmSiv::new_from_slice(&okm[..]).expect("32-byte key")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OsEntropy;

    fn barrier() -> Barrier {
        Barrier::new(Keyring::generate(&OsEntropy), Arc::new(OsEntropy))
    }

    #[test]
    fn seal_open_round_trip() {
        let b = barrier();
        let sealed = b.seal(Scope::System, b"loc", b"planted-plaintext").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"planted"));
        assert_eq!(&b.open(Scope::System, b"loc", &sealed).unwrap()[..], b"planted-plaintext");
    }

    #[test]
    fn tampered_ciphertext_is_rejected() {
        let b = barrier();
        let mut sealed = b.seal(Scope::System, b"loc", b"value").unwrap();
        for i in [0, 1, 5, HEADER_BYTES, sealed.len() - 1] {
            let mut t = sealed.clone();
            t[i] ^= 0x40;
            assert!(b.open(Scope::System, b"loc", &t).is_err(), "flip at byte {i} must fail");
        }
        sealed.truncate(HEADER_BYTES + TAG_BYTES - 1);
        assert_eq!(b.open(Scope::System, b"loc", &sealed).unwrap_err(), BarrierError::Malformed);
    }

    #[test]
    fn ciphertext_moved_to_another_location_or_scope_is_rejected() {
        let b = barrier();
        let id_a = [1u8; 16];
        let id_b = [2u8; 16];
        let sealed = b.seal(Scope::Vault(&id_a), b"secret/a", b"value").unwrap();
        assert_eq!(b.open(Scope::Vault(&id_a), b"secret/b", &sealed).unwrap_err(), BarrierError::Unauthentic);
        assert_eq!(b.open(Scope::Vault(&id_b), b"secret/a", &sealed).unwrap_err(), BarrierError::Unauthentic);
        assert_eq!(b.open(Scope::System, b"secret/a", &sealed).unwrap_err(), BarrierError::Unauthentic);
    }

    #[test]
    fn wrong_keyring_is_rejected() {
        let (a, b) = (barrier(), barrier());
        let sealed = a.seal(Scope::System, b"loc", b"value").unwrap();
        assert_eq!(b.open(Scope::System, b"loc", &sealed).unwrap_err(), BarrierError::Unauthentic);
    }

    #[test]
    fn rotation_keeps_old_terms_readable_and_names_stable() {
        let b = barrier();
        let name_before = b.name_hash(Scope::System, b"db-password");
        let old = b.seal(Scope::System, b"loc", b"old").unwrap();
        let mut ring = (*b.keyring().unwrap()).clone();
        assert_eq!(ring.rotate(&OsEntropy), 2);
        b.replace_keyring(ring);
        let new = b.seal(Scope::System, b"loc", b"new").unwrap();
        assert_eq!(u32::from_be_bytes(new[1..5].try_into().unwrap()), 2);
        assert_eq!(&b.open(Scope::System, b"loc", &old).unwrap()[..], b"old");
        assert_eq!(&b.open(Scope::System, b"loc", &new).unwrap()[..], b"new");
        assert_eq!(b.name_hash(Scope::System, b"db-password"), name_before);
    }

    #[test]
    fn unknown_term_is_reported() {
        let b = barrier();
        let mut sealed = b.seal(Scope::System, b"loc", b"v").unwrap();
        sealed[1..5].copy_from_slice(&9u32.to_be_bytes());
        assert_eq!(b.open(Scope::System, b"loc", &sealed).unwrap_err(), BarrierError::UnknownTerm(9));
    }

    #[test]
    fn a_wiped_barrier_refuses_everything_in_every_clone() {
        let b = barrier();
        let clone = b.clone();
        let sealed = b.seal(Scope::System, b"loc", b"value").unwrap();
        let name = b.name_hash(Scope::System, b"n");
        b.wipe();
        assert!(clone.is_wiped());
        assert_eq!(clone.open(Scope::System, b"loc", &sealed).unwrap_err(), BarrierError::Wiped);
        assert_eq!(clone.seal(Scope::System, b"loc", b"value").unwrap_err(), BarrierError::Wiped);
        assert_ne!(clone.name_hash(Scope::System, b"n"), name);
        assert!(clone.keyring().is_err());
        clone.replace_keyring(Keyring::generate(&OsEntropy));
        assert!(b.is_wiped(), "a rotation arriving after the seal does not bring keys back");
    }

    #[test]
    fn name_hashes_differ_per_scope() {
        let b = barrier();
        let id = [3u8; 16];
        assert_ne!(b.name_hash(Scope::System, b"n"), b.name_hash(Scope::Vault(&id), b"n"));
    }

    #[test]
    fn derived_keys_never_outlive_their_keyring() {
        // Warm the caches under one keyring, then put an unrelated one (same term numbers) in place.
        let b = barrier();
        let sealed = b.seal(Scope::System, b"loc", b"value").unwrap();
        let name_before = b.name_hash(Scope::System, b"n");
        b.replace_keyring(Keyring::generate(&OsEntropy));
        assert_eq!(b.open(Scope::System, b"loc", &sealed).unwrap_err(), BarrierError::Unauthentic);
        assert_ne!(b.name_hash(Scope::System, b"n"), name_before);
    }

    #[test]
    fn many_scopes_keep_working_past_the_cache_bound() {
        let b = barrier();
        let ids: Vec<[u8; 16]> = (0..DERIVED_MAX as u32 + 10)
            .map(|i| {
                let mut id = [0u8; 16];
                id[..4].copy_from_slice(&i.to_be_bytes());
                id
            })
            .collect();
        let sealed: Vec<Vec<u8>> = ids.iter().map(|id| b.seal(Scope::Vault(id), b"loc", id).unwrap()).collect();
        for (id, s) in ids.iter().zip(&sealed) {
            assert_eq!(&b.open(Scope::Vault(id), b"loc", s).unwrap()[..], &id[..]);
        }
    }
}
