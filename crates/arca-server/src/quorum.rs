//! Collecting a quorum of unseal shares for one operation (unseal, root token generation, rekey).
//!
//! One attempt at a time per operation, bound to a nonce that only its starter learns (in the answer
//! to the first share): every later share, and a cancel, must carry it, so nobody else can reset the
//! progress or slip a bogus share in. An attempt idle for [`UNSEAL_ATTEMPT_IDLE_S_MAX`] may be
//! replaced by a new one.

use std::sync::Mutex;

use arca_crypto::shamir::Share;
use arca_crypto::Entropy;
use arca_types::limits::UNSEAL_ATTEMPT_IDLE_S_MAX;
use arca_types::{ArcaError, ErrorCode};
use tokio::time::Instant;

struct Attempt<P> {
    nonce: String,
    shares: Vec<Share>,
    last_share: Instant,
    params: P,
}

/// Where an attempt stands after a share.
pub enum Progress<P> {
    /// More shares are needed; pass `nonce` with them.
    Collecting { nonce: String, progress: usize },
    /// The threshold was reached: the shares (not yet checked) and what the starter asked for.
    Complete { shares: Vec<Share>, params: P },
}

/// The attempt in progress for one operation.
pub struct Quorum<P> {
    /// What the operation is called in messages ("unseal", "root token generation", "rekey").
    what: &'static str,
    /// The CLI command that continues it, for messages.
    command: &'static str,
    attempt: Mutex<Option<Attempt<P>>>,
}

fn nonce_of(entropy: &dyn Entropy) -> String {
    entropy.bytes16().iter().map(|b| format!("{b:02x}")).collect()
}

impl<P> Quorum<P> {
    pub const fn new(what: &'static str, command: &'static str) -> Self {
        Self { what, command, attempt: Mutex::new(None) }
    }

    /// Shares collected so far (0 when nothing is in progress).
    pub fn progress(&self) -> usize {
        self.attempt.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map_or(0, |a| a.shares.len())
    }

    /// Discards the attempt in progress; only its nonce's holder may.
    pub fn cancel(&self, nonce: &str) -> Result<(), ArcaError> {
        let mut attempt = self.attempt.lock().unwrap_or_else(|p| p.into_inner());
        match attempt.as_ref() {
            Some(a) if arca_crypto::constant_time_eq(a.nonce.as_bytes(), nonce.as_bytes()) => {
                *attempt = None;
                Ok(())
            }
            Some(a) => Err(self.in_progress(a.shares.len())),
            None => Err(ArcaError::bad_parameter("nonce", format!("no {} is in progress", self.what))),
        }
    }

    /// Forgets the attempt whatever its nonce (after it completed or failed).
    pub fn clear(&self) {
        *self.attempt.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn in_progress(&self, progress: usize) -> ArcaError {
        ArcaError::new(
            ErrorCode::Conflict,
            format!(
                "a {} is in progress ({progress} share(s) so far); pass its nonce (`{} --nonce`), or wait until it \
                 has been idle for {UNSEAL_ATTEMPT_IDLE_S_MAX} s",
                self.what, self.command
            ),
        )
    }

    /// Adds `share` to the attempt `nonce` names, or starts one when `nonce` is empty and none is in
    /// progress (with `start()`'s parameters). Completes at `threshold` shares.
    pub fn submit(
        &self,
        nonce: &str,
        share: Share,
        threshold: u8,
        entropy: &dyn Entropy,
        start: impl FnOnce() -> Result<P, ArcaError>,
    ) -> Result<Progress<P>, ArcaError> {
        let mut guard = self.attempt.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(current) = guard.as_ref() {
            let theirs = arca_crypto::constant_time_eq(current.nonce.as_bytes(), nonce.as_bytes());
            let stale = current.last_share.elapsed().as_secs() > UNSEAL_ATTEMPT_IDLE_S_MAX;
            if !theirs && !stale {
                return Err(self.in_progress(current.shares.len()));
            }
            if !theirs {
                *guard = None;
            }
        } else if !nonce.is_empty() {
            return Err(ArcaError::bad_parameter(
                "nonce",
                format!("no {} is in progress with that nonce; start a new one without --nonce", self.what),
            ));
        }
        if guard.is_none() {
            let params = start()?;
            *guard = Some(Attempt { nonce: nonce_of(entropy), shares: Vec::new(), last_share: Instant::now(), params });
        }
        let current = guard.as_mut().expect("set above");
        if !current.shares.contains(&share) {
            current.shares.push(share);
        }
        current.last_share = Instant::now();
        if current.shares.len() < usize::from(threshold) {
            return Ok(Progress::Collecting { nonce: current.nonce.clone(), progress: current.shares.len() });
        }
        let done = guard.take().expect("set above");
        Ok(Progress::Complete { shares: done.shares, params: done.params })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arca_crypto::entropy::DangerSeededEntropy;

    fn share(i: u8) -> Share {
        Share::parse(&format!("{i:02x}{}", "ab".repeat(32))).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_nonce_holder_adds_or_cancels_and_an_idle_attempt_can_be_replaced() {
        let q: Quorum<&str> = Quorum::new("rekey", "arca operator rekey");
        let e = DangerSeededEntropy::new(1);
        let Progress::Collecting { nonce, progress: 1 } = q.submit("", share(1), 3, &e, || Ok("mine")).unwrap() else {
            panic!("collecting")
        };
        assert_eq!(q.submit("", share(2), 3, &e, || Ok("theirs")).err().map(|e| e.code), Some(ErrorCode::Conflict));
        assert_eq!(q.cancel("wrong").err().map(|e| e.code), Some(ErrorCode::Conflict));
        assert!(matches!(
            q.submit(&nonce, share(2), 3, &e, || Ok("x")).unwrap(),
            Progress::Collecting { progress: 2, .. }
        ));
        let Progress::Complete { shares, params } = q.submit(&nonce, share(3), 3, &e, || Ok("x")).unwrap() else {
            panic!("complete")
        };
        assert_eq!((shares.len(), params), (3, "mine"), "the starter's parameters win");
        // Idle for longer than the limit, an attempt gives way to a new starter.
        let Progress::Collecting { .. } = q.submit("", share(1), 3, &e, || Ok("a")).unwrap() else { panic!() };
        tokio::time::advance(std::time::Duration::from_secs(UNSEAL_ATTEMPT_IDLE_S_MAX + 1)).await;
        assert!(matches!(q.submit("", share(1), 3, &e, || Ok("b")).unwrap(), Progress::Collecting { progress: 1, .. }));
    }
}
