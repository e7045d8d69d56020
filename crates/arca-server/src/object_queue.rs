//! One write at a time per object on the leader.
//!
//! Writes are decided against applied state and guarded by what the decision read; two writes to
//! one secret decided at once both read its header, so the second to apply conflicts and is decided
//! again. Under many writers to one object (the config secret everyone rotates) that is a retry
//! storm: of N decided together one applies, and the rest go round again, up to
//! [`CONFLICT_RETRIES_MAX`](crate::engine::CONFLICT_RETRIES_MAX) times before giving up. The queue
//! makes writers to the same object take turns instead (first come, first served): each decides
//! after the one before it applied, so none conflicts with another. Writes to other objects do not
//! wait for each other.
//!
//! Slots live only while a writer holds or waits for them, so the map is bounded by the writes in
//! flight. Names are kept in memory only, as every request holds them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arca_core::ObjectKind;
use arca_types::limits::{OBJECT_TURN_WAIT_MS, OBJECT_WRITERS_MAX};
use arca_types::{ArcaError, ErrorCode, ObjectName, VaultName};
use tokio::sync::OwnedMutexGuard;

type Key = (ObjectKind, String, String);

struct Slot {
    lock: Arc<tokio::sync::Mutex<()>>,
    /// Writers holding or waiting for a turn; the slot goes when it reaches zero.
    writers: usize,
}

#[derive(Default)]
pub struct ObjectQueue {
    slots: Mutex<HashMap<Key, Slot>>,
}

/// A writer's place at one object: its turn once [`ObjectQueue::turn`] returns it; the next writer's
/// turn starts when it is dropped. A writer that gives up while waiting leaves the queue as well.
pub struct Turn<'a> {
    queue: &'a ObjectQueue,
    key: Key,
    guard: Option<OwnedMutexGuard<()>>,
}

impl ObjectQueue {
    /// Waits for this writer's turn at the object: refused as throttled (not retried by the
    /// node: the client decides when to try again) when
    /// [`OBJECT_WRITERS_MAX`] writers already hold or wait for it, or after [`OBJECT_TURN_WAIT_MS`].
    pub async fn turn(&self, kind: ObjectKind, vault: &VaultName, name: &ObjectName) -> Result<Turn<'_>, ArcaError> {
        let key = (kind, vault.canonical().to_owned(), name.canonical());
        let lock = {
            let mut slots = self.slots();
            let slot = slots.entry(key.clone()).or_insert_with(|| Slot { lock: Default::default(), writers: 0 });
            if slot.writers >= OBJECT_WRITERS_MAX {
                return Err(ArcaError::new(
                    ErrorCode::Throttled,
                    format!("{OBJECT_WRITERS_MAX} writes to this {} are already waiting; retry", kind.noun()),
                ));
            }
            slot.writers += 1;
            slot.lock.clone()
        };
        // From here the writer counts in the slot; dropping `turn` (also when this future is
        // dropped while waiting) takes it out again.
        let mut turn = Turn { queue: self, key, guard: None };
        match tokio::time::timeout(Duration::from_millis(OBJECT_TURN_WAIT_MS), lock.lock_owned()).await {
            Ok(guard) => {
                turn.guard = Some(guard);
                Ok(turn)
            }
            Err(_) => Err(ArcaError::new(
                ErrorCode::Throttled,
                format!(
                    "this {} is being changed by many writers; no turn came within {OBJECT_TURN_WAIT_MS} ms; retry",
                    kind.noun()
                ),
            )),
        }
    }

    /// Objects that have a writer holding or waiting for a turn.
    pub fn busy(&self) -> usize {
        self.slots().len()
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Slot>> {
        // The map is never left half-updated: a panic while holding it cannot break an invariant.
        self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut slots = self.queue.slots();
        drop(self.guard.take());
        if let Some(slot) = slots.get_mut(&self.key) {
            slot.writers = slot.writers.saturating_sub(1);
            if slot.writers == 0 {
                slots.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    fn name(n: &str) -> ObjectName {
        ObjectName::parse("name", n).unwrap()
    }

    #[tokio::test]
    async fn writers_to_one_object_take_turns_and_others_do_not_wait() {
        let queue = Arc::new(ObjectQueue::default());
        let vault = VaultName::parse("queue").unwrap();
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let (queue, vault, inside, most) = (queue.clone(), vault.clone(), inside.clone(), most.clone());
            tasks.push(tokio::spawn(async move {
                let _turn = queue.turn(ObjectKind::Secret, &vault, &name("hot")).await.unwrap();
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        // Another object, and the same name as a key, are not behind the hot secret.
        let held = queue.turn(ObjectKind::Secret, &vault, &name("hot")).await.unwrap();
        let other = tokio::time::timeout(Duration::from_secs(5), async {
            let _a = queue.turn(ObjectKind::Secret, &vault, &name("cold")).await.unwrap();
            let _b = queue.turn(ObjectKind::Key, &vault, &name("hot")).await.unwrap();
        });
        other.await.expect("writes to other objects do not wait for the hot one");
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 1, "one writer at a time");
        assert_eq!(queue.busy(), 0, "slots go when nobody holds or waits for them");
    }

    #[tokio::test(start_paused = true)]
    async fn writers_beyond_the_limit_or_the_wait_are_refused_and_give_their_place_back() {
        let queue = Arc::new(ObjectQueue::default());
        let vault = VaultName::parse("queue").unwrap();
        let held = queue.turn(ObjectKind::Secret, &vault, &name("hot")).await.unwrap();
        // The holder and OBJECT_WRITERS_MAX - 1 waiters fit; one more is refused at once.
        let mut waiters = Vec::new();
        for _ in 1..OBJECT_WRITERS_MAX {
            let (queue, vault) = (queue.clone(), vault.clone());
            waiters.push(tokio::spawn(async move {
                queue.turn(ObjectKind::Secret, &vault, &name("hot")).await.map(drop).map_err(|e| e.code)
            }));
        }
        tokio::task::yield_now().await;
        let refused = queue.turn(ObjectKind::Secret, &vault, &name("hot")).await.err().map(|e| e.code);
        assert_eq!(refused, Some(ErrorCode::Throttled));
        // Nobody gets a turn while the holder keeps it: every waiter gives up after the wait.
        for w in waiters {
            assert_eq!(w.await.unwrap(), Err(ErrorCode::Throttled));
        }
        // A waiter cancelled while waiting leaves the queue too.
        let hot = name("hot");
        let cancelled = tokio::time::timeout(Duration::from_millis(10), queue.turn(ObjectKind::Secret, &vault, &hot));
        assert!(cancelled.await.is_err());
        drop(held);
        assert_eq!(queue.busy(), 0, "refused, timed-out and cancelled writers leave no slot behind");
        assert!(queue.turn(ObjectKind::Secret, &vault, &name("hot")).await.is_ok());
    }
}
