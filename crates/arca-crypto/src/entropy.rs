//! Where randomness comes from. Production uses the operating system; the simulation injects a seeded
//! source so that one seed replays one run exactly.

use std::sync::Mutex;

/// A source of cryptographically strong random bytes.
pub trait Entropy: Send + Sync {
    fn fill(&self, out: &mut [u8]);

    fn bytes16(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        self.fill(&mut out);
        out
    }
}

/// The operating system's generator.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&self, out: &mut [u8]) {
        // The OS generator failing is not recoverable: continuing would mint predictable keys.
        getrandom::fill(out).expect("operating system random number generator is unavailable");
    }
}

/// A deterministic generator for simulation and tests: SHA-256 in counter mode over a seed.
/// It is named `danger_` because keys drawn from it are predictable from the seed.
pub struct DangerSeededEntropy {
    state: Mutex<([u8; 32], u64)>,
}

impl DangerSeededEntropy {
    pub fn new(seed: u64) -> Self {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_be_bytes());
        Self { state: Mutex::new((key, 0)) }
    }
}

impl Entropy for DangerSeededEntropy {
    fn fill(&self, out: &mut [u8]) {
        use sha2::Digest;
        let mut guard = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for chunk in out.chunks_mut(32) {
            let (key, counter) = &mut *guard;
            let mut hasher = sha2::Sha256::new();
            hasher.update(&key[..]);
            hasher.update(counter.to_be_bytes());
            let block = hasher.finalize();
            *counter += 1;
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
    }
}

/// Adapts an [`Entropy`] to the `rand_core` traits that `vsss-rs` expects.
pub(crate) struct EntropyRng<'a>(pub &'a dyn Entropy);

impl rand_core::TryRng for EntropyRng<'_> {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.0.fill(&mut b);
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.0.fill(&mut b);
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.0.fill(dst);
        Ok(())
    }
}

impl rand_core::TryCryptoRng for EntropyRng<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_entropy_replays() {
        let (a, b) = (DangerSeededEntropy::new(7), DangerSeededEntropy::new(7));
        let (mut x, mut y) = ([0u8; 48], [0u8; 48]);
        a.fill(&mut x);
        b.fill(&mut y);
        assert_eq!(x, y);
        let c = DangerSeededEntropy::new(8);
        c.fill(&mut y);
        assert_ne!(x, y);
    }
}
