//! Sharing one read-index round trip among concurrent readers.
//!
//! A linearizable read needs a read index obtained by a round trip that *started after the read did*.
//! [`Coalescer`] keeps that rule while letting concurrent readers share round trips: a reader joins the
//! batch that has not been sent yet; one reader at a time drives, sending one round trip per batch and
//! handing its answer to every reader in that batch. Readers that arrive while a round trip is in flight
//! wait for the next one. If the driving reader is cancelled, the readers it was serving retry.

use std::sync::Mutex;

use tokio::sync::oneshot;

struct Batch<E> {
    driving: bool,
    waiting: Vec<oneshot::Sender<Result<u64, E>>>,
}

pub struct Coalescer<E> {
    batch: Mutex<Batch<E>>,
}

impl<E> Default for Coalescer<E> {
    fn default() -> Self {
        Self { batch: Mutex::new(Batch { driving: false, waiting: Vec::new() }) }
    }
}

/// Releases the driver's role if it is cancelled mid-round: the readers it held see their channel
/// close and retry, and so do the ones queued behind it.
struct Driving<'a, E> {
    coalescer: &'a Coalescer<E>,
    finished: bool,
}

impl<E> Drop for Driving<'_, E> {
    fn drop(&mut self) {
        if !self.finished {
            let mut b = self.coalescer.lock();
            b.driving = false;
            b.waiting.clear();
        }
    }
}

impl<E> Coalescer<E> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Batch<E>> {
        self.batch.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<E: Clone> Coalescer<E> {
    /// The answer of a round trip (`fetch`) that started after this call did.
    pub async fn run<F, Fut>(&self, fetch: F) -> Result<u64, E>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<u64, E>>,
    {
        loop {
            let (tx, rx) = oneshot::channel();
            let drive = {
                let mut b = self.lock();
                b.waiting.push(tx);
                !std::mem::replace(&mut b.driving, true)
            };
            if drive {
                let mut guard = Driving { coalescer: self, finished: false };
                loop {
                    let batch = {
                        let mut b = self.lock();
                        if b.waiting.is_empty() {
                            b.driving = false;
                            guard.finished = true;
                            break;
                        }
                        std::mem::take(&mut b.waiting)
                    };
                    let answer = fetch().await;
                    for waiter in batch {
                        let _ = waiter.send(answer.clone());
                    }
                }
            }
            match rx.await {
                Ok(answer) => return answer,
                // The reader driving our batch was cancelled before answering: join the next one.
                Err(_) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arca_types::ArcaError;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readers_share_round_trips_that_started_after_them() {
        let coalescer = Arc::new(Coalescer::<ArcaError>::default());
        let started = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (c, s) = (coalescer.clone(), started.clone());
            tasks.push(tokio::spawn(async move {
                // A reader records how many round trips had started before it; its answer must come
                // from a later one.
                let before = s.load(Ordering::SeqCst);
                let answer = c
                    .run(|| {
                        let s = s.clone();
                        async move {
                            let n = s.fetch_add(1, Ordering::SeqCst) + 1;
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            Ok(n)
                        }
                    })
                    .await
                    .unwrap();
                assert!(answer > before, "answer from round trip {answer}, but {before} had started before the read");
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert!(started.load(Ordering::SeqCst) < 50, "concurrent readers shared round trips");
    }

    #[tokio::test]
    async fn a_cancelled_driver_hands_over() {
        let coalescer = Arc::new(Coalescer::<ArcaError>::default());
        let c = coalescer.clone();
        let stuck = tokio::spawn(async move { c.run(|| std::future::pending::<Result<u64, ArcaError>>()).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let c = coalescer.clone();
        let waiting = tokio::spawn(async move { c.run(|| async { Ok(7) }).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        stuck.abort();
        assert_eq!(tokio::time::timeout(Duration::from_secs(2), waiting).await.unwrap().unwrap().unwrap(), 7);
    }
}
