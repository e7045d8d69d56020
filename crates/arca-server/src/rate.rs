//! Token buckets for the calls anyone may make without a token (unseal, the token endpoint): they
//! bound the work a stranger can make a node do, whatever the credentials they send.

use std::sync::Mutex;

use arca_types::{ArcaError, ErrorCode};
use tokio::time::Instant;

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Admits at most `per_s` requests a second on average and `burst` at once.
pub struct RateLimit {
    per_s: u32,
    burst: u32,
    what: &'static str,
    bucket: Mutex<Bucket>,
}

impl RateLimit {
    /// `what` names the requests in the refusal ("unseal requests").
    pub fn new(what: &'static str, per_s: u32, burst: u32) -> Self {
        Self { per_s, burst, what, bucket: Mutex::new(Bucket { tokens: f64::from(burst), last: Instant::now() }) }
    }

    /// Takes one request from the bucket, or refuses it with `THROTTLED`.
    pub fn admit(&self) -> Result<(), ArcaError> {
        let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(bucket.last).as_secs_f64() * f64::from(self.per_s);
        bucket.tokens = (bucket.tokens + refill).min(f64::from(self.burst));
        bucket.last = now;
        if bucket.tokens < 1.0 {
            return Err(ArcaError::new(
                ErrorCode::Throttled,
                format!("too many {} (at most {} a second); retry shortly", self.what, self.per_s),
            ));
        }
        bucket.tokens -= 1.0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_at_the_limit_passes_and_one_more_waits_for_the_refill() {
        let rate = RateLimit::new("test requests", 10, 20);
        for _ in 0..20 {
            rate.admit().unwrap();
        }
        assert_eq!(rate.admit().unwrap_err().code, ErrorCode::Throttled);
        tokio::time::advance(std::time::Duration::from_millis(100)).await;
        rate.admit().unwrap();
        assert!(rate.admit().is_err());
    }
}
