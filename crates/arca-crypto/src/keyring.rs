//! The keyring: numbered terms of random data keys, wrapped as one blob under the root key.
//!
//! Rotation adds a term and makes it active; older terms stay so that data written under them still
//! decrypts. The root key never touches disk: only the wrapped keyring does, and that blob lives in the
//! replicated keyspace like any other record.

use std::collections::BTreeMap;

use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;

use crate::{BarrierError, Entropy, Key32};

/// The key that unwraps the keyring. Reconstructed from Shamir shares or read from an auto-unseal file.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RootKey(pub Key32);

const KEYRING_AAD: &[u8] = b"arca/v1/keyring";
const KEYRING_FORMAT: u8 = 1;
const NONCE_BYTES: usize = 12;

/// Every term of the data key, and which one new writes use.
#[derive(Clone, Debug)]
pub struct Keyring {
    terms: BTreeMap<u32, Key32>,
    active_term: u32,
}

impl Keyring {
    /// A fresh keyring with one random term, number 1.
    pub fn generate(entropy: &dyn Entropy) -> Self {
        let mut terms = BTreeMap::new();
        terms.insert(1, Key32::generate(entropy));
        Self { terms, active_term: 1 }
    }

    /// Adds a new random term and makes it active. Returns the new term number.
    pub fn rotate(&mut self, entropy: &dyn Entropy) -> u32 {
        let next = self.active_term + 1;
        self.terms.insert(next, Key32::generate(entropy));
        self.active_term = next;
        next
    }

    pub fn active_term(&self) -> u32 {
        self.active_term
    }

    pub fn term_count(&self) -> usize {
        self.terms.len()
    }

    pub(crate) fn term_key(&self, term: u32) -> Option<&Key32> {
        self.terms.get(&term)
    }

    /// The first term never changes, so keys derived from it (for name hashing) are stable across rotation.
    pub(crate) fn first_term_key(&self) -> &Key32 {
        // A keyring is built by `generate` or `unwrap`, both of which guarantee term 1 exists.
        self.terms.get(&1).expect("keyring always holds term 1")
    }

    /// Encrypts the keyring under the root key.
    pub fn wrap(&self, root: &RootKey, entropy: &dyn Entropy) -> Vec<u8> {
        let mut plain = zeroize::Zeroizing::new(Vec::with_capacity(5 + self.terms.len() * 36));
        plain.extend_from_slice(&self.active_term.to_be_bytes());
        for (term, key) in &self.terms {
            plain.extend_from_slice(&term.to_be_bytes());
            plain.extend_from_slice(key.expose());
        }
        let cipher = root_cipher(root);
        let mut nonce = [0u8; NONCE_BYTES];
        entropy.fill(&mut nonce);
        let sealed = cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: &plain, aad: KEYRING_AAD })
            // AES-GCM-SIV fails only for inputs above 2^36 bytes; a keyring is a few KiB at most.
            .expect("keyring is far below the AES-GCM-SIV size limit");
        let mut out = Vec::with_capacity(1 + NONCE_BYTES + sealed.len());
        out.push(KEYRING_FORMAT);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Decrypts a wrapped keyring. A wrong root key or a tampered blob gives `BarrierError::Unwrap`.
    pub fn unwrap(root: &RootKey, blob: &[u8]) -> Result<Self, BarrierError> {
        if blob.len() < 1 + NONCE_BYTES || blob[0] != KEYRING_FORMAT {
            return Err(BarrierError::Malformed);
        }
        let nonce: [u8; NONCE_BYTES] = blob[1..1 + NONCE_BYTES].try_into().map_err(|_| BarrierError::Malformed)?;
        let plain = root_cipher(root)
            .decrypt(&Nonce::from(nonce), Payload { msg: &blob[1 + NONCE_BYTES..], aad: KEYRING_AAD })
            .map_err(|_| BarrierError::Unwrap)?;
        let plain = zeroize::Zeroizing::new(plain);
        if plain.len() < 4 || (plain.len() - 4) % 36 != 0 {
            return Err(BarrierError::Malformed);
        }
        let active_term = u32::from_be_bytes([plain[0], plain[1], plain[2], plain[3]]);
        let mut terms = BTreeMap::new();
        for chunk in plain[4..].chunks_exact(36) {
            let term = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let key = Key32::from_slice(&chunk[4..]).ok_or(BarrierError::Malformed)?;
            terms.insert(term, key);
        }
        if !terms.contains_key(&1) || !terms.contains_key(&active_term) {
            return Err(BarrierError::Malformed);
        }
        Ok(Self { terms, active_term })
    }
}

fn root_cipher(root: &RootKey) -> Aes256GcmSiv {
    let hk = Hkdf::<Sha256>::new(None, root.0.expose());
    let mut okm = zeroize::Zeroizing::new([0u8; 32]);
    hk.expand(b"arca/v1/keyring-wrap", &mut okm[..]).expect("32 bytes is a valid HKDF-SHA256 length");
    Aes256GcmSiv::new_from_slice(&okm[..]).expect("32-byte key")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OsEntropy;

    #[test]
    fn wrap_round_trips_and_wrong_root_fails() {
        let e = OsEntropy;
        let root = RootKey(Key32::generate(&e));
        let mut ring = Keyring::generate(&e);
        ring.rotate(&e);
        let blob = ring.wrap(&root, &e);
        let back = Keyring::unwrap(&root, &blob).unwrap();
        assert_eq!(back.active_term(), 2);
        assert_eq!(back.term_count(), 2);
        let other = RootKey(Key32::generate(&e));
        assert_eq!(Keyring::unwrap(&other, &blob).unwrap_err(), BarrierError::Unwrap);
        let mut tampered = blob.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(Keyring::unwrap(&root, &tampered).unwrap_err(), BarrierError::Unwrap);
        assert_eq!(Keyring::unwrap(&root, &blob[..5]).unwrap_err(), BarrierError::Malformed);
    }
}
