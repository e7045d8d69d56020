//! Shamir splitting of the root key over GF(256) (`vsss-rs`).
//!
//! A share is printed as hex: one identifier byte followed by 32 bytes. Combining shares does not prove
//! they were right: callers check the reconstructed key by unwrapping the keyring with it.

use vsss_rs::Gf256;
use zeroize::Zeroizing;

use crate::entropy::EntropyRng;
use crate::{Entropy, Key32};

/// Most shares `operator init` will mint.
pub const SHARES_COUNT_MAX: u8 = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShamirError {
    #[error("threshold must be between 1 and the number of shares ({shares}), and 1 only when there is one share")]
    BadThreshold { shares: u8 },
    #[error("share count must be between 1 and {SHARES_COUNT_MAX}")]
    BadShareCount,
    #[error("a share is not valid hex of the expected length")]
    MalformedShare,
    #[error("the shares could not be combined")]
    Combine,
}

/// A share as printed for an operator. Its `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Share(Zeroizing<String>);

impl Share {
    pub fn parse(hex_text: &str) -> Result<Self, ShamirError> {
        let trimmed = hex_text.trim();
        if trimmed.len() != 2 * 33 || !trimmed.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(ShamirError::MalformedShare);
        }
        Ok(Self(Zeroizing::new(trimmed.to_ascii_lowercase())))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    fn bytes(&self) -> Result<Vec<u8>, ShamirError> {
        hex::decode(self.0.as_str()).map_err(|_| ShamirError::MalformedShare)
    }
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Share(<redacted>)")
    }
}

/// Splits `key` into `shares` shares of which any `threshold` reconstruct it.
pub fn split(key: &Key32, shares: u8, threshold: u8, entropy: &dyn Entropy) -> Result<Vec<Share>, ShamirError> {
    if shares == 0 || shares > SHARES_COUNT_MAX {
        return Err(ShamirError::BadShareCount);
    }
    if threshold == 0 || threshold > shares || (threshold == 1) != (shares == 1) {
        return Err(ShamirError::BadThreshold { shares });
    }
    if shares == 1 {
        let mut single = vec![0u8];
        single.extend_from_slice(key.expose());
        return Ok(vec![Share(Zeroizing::new(hex::encode(single)))]);
    }
    let parts = Gf256::split_array(threshold as usize, shares as usize, key.expose(), EntropyRng(entropy))
        .map_err(|_| ShamirError::Combine)?;
    Ok(parts.into_iter().map(|p| Share(Zeroizing::new(hex::encode(Zeroizing::new(p))))).collect())
}

/// Reconstructs a key from shares. With a single share of identifier 0, the share is the key.
pub fn combine(shares: &[Share]) -> Result<Key32, ShamirError> {
    let raw: Vec<Vec<u8>> = shares.iter().map(Share::bytes).collect::<Result<_, _>>()?;
    let raw = Zeroizing::new(raw);
    if raw.len() == 1 && raw[0][0] == 0 {
        return Key32::from_slice(&raw[0][1..]).ok_or(ShamirError::MalformedShare);
    }
    let combined = Zeroizing::new(Gf256::combine_array(&raw[..]).map_err(|_| ShamirError::Combine)?);
    Key32::from_slice(&combined).ok_or(ShamirError::Combine)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OsEntropy;

    #[test]
    fn any_threshold_subset_reconstructs() {
        let key = Key32::generate(&OsEntropy);
        let shares = split(&key, 5, 3, &OsEntropy).unwrap();
        assert_eq!(shares.len(), 5);
        assert_eq!(combine(&shares[..3]).unwrap(), key);
        assert_eq!(combine(&[shares[4].clone(), shares[0].clone(), shares[2].clone()]).unwrap(), key);
        assert_ne!(combine(&shares[..2]).unwrap_or_else(|_| Key32::from_bytes([0; 32])), key);
    }

    #[test]
    fn single_share_is_the_key() {
        let key = Key32::generate(&OsEntropy);
        let shares = split(&key, 1, 1, &OsEntropy).unwrap();
        assert_eq!(combine(&shares).unwrap(), key);
    }

    #[test]
    fn bad_parameters_are_refused() {
        let key = Key32::generate(&OsEntropy);
        assert!(split(&key, 0, 0, &OsEntropy).is_err());
        assert!(split(&key, 17, 3, &OsEntropy).is_err());
        assert!(split(&key, 3, 4, &OsEntropy).is_err());
        assert!(split(&key, 3, 1, &OsEntropy).is_err());
        assert!(Share::parse("zz").is_err());
        assert!(Share::parse(&"a".repeat(66)).is_ok());
        assert!(Share::parse(&"a".repeat(67)).is_err());
    }
}
