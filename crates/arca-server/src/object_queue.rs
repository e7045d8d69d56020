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
//! A writer may also offer its job while it waits (sets of a secret, which can be decided together):
//! the writer that holds the turn takes the jobs offered meanwhile, decides them with its own in one
//! Raft entry, and hands each its answer. So a hot secret gets one Raft round per batch of writers,
//! not one per writer. A writer whose job was taken waits for its answer, not for a turn.
//!
//! Slots live only while a writer holds or waits for them, so the map is bounded by the writes in
//! flight. Names are kept in memory only, as every request holds them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arca_core::ObjectKind;
use arca_types::limits::{OBJECT_TURN_WAIT_MS, OBJECT_WRITERS_MAX};
use arca_types::{ArcaError, ErrorCode, ObjectName, VaultName};
use tokio::sync::{oneshot, OwnedMutexGuard};

type Key = (ObjectKind, String, String);

/// A job a waiting writer offered, with where its answer goes.
pub struct Offered<J, A> {
    pub job: J,
    pub answer: oneshot::Sender<A>,
}

struct Slot<J, A> {
    lock: Arc<tokio::sync::Mutex<()>>,
    /// Writers holding or waiting for a turn; the slot goes when it reaches zero.
    writers: usize,
    /// Jobs offered by waiting writers, oldest first, under the number their writer drew.
    offered: Vec<(u64, Offered<J, A>)>,
}

pub struct ObjectQueue<J = (), A = ()> {
    slots: Mutex<HashMap<Key, Slot<J, A>>>,
    /// Numbers the offered jobs, so a writer finds its own.
    next: std::sync::atomic::AtomicU64,
}

impl<J, A> Default for ObjectQueue<J, A> {
    fn default() -> Self {
        Self { slots: Mutex::new(HashMap::new()), next: Default::default() }
    }
}

/// A writer's place at one object: its turn once [`ObjectQueue::turn`] returns it; the next writer's
/// turn starts when it is dropped. A writer that gives up while waiting leaves the queue as well.
pub struct Turn<'a, J = (), A = ()> {
    queue: &'a ObjectQueue<J, A>,
    key: Key,
    guard: Option<OwnedMutexGuard<()>>,
}

/// What [`ObjectQueue::turn_or_answer`] gives a writer that offered its job.
pub enum Entry<'a, J, A> {
    /// The turn: the writer decides its own job, and may take the jobs offered meanwhile.
    Turn(Turn<'a, J, A>),
    /// The writer holding the turn took the job and answered it (`None`: it stopped before it
    /// answered, so whether the job was carried out is unknown).
    Answered(Option<A>),
}

/// Takes a writer's offered job back out of its slot if it is still there (when the writer stops
/// waiting, for whatever reason): true if it was.
struct Offer<'q, J, A> {
    queue: &'q ObjectQueue<J, A>,
    key: Key,
    number: u64,
}

impl<J, A> Offer<'_, J, A> {
    fn withdraw(&self) -> bool {
        let mut slots = self.queue.slots();
        let Some(slot) = slots.get_mut(&self.key) else { return false };
        match slot.offered.iter().position(|(n, _)| *n == self.number) {
            Some(at) => {
                slot.offered.remove(at);
                true
            }
            None => false,
        }
    }
}

impl<J, A> Drop for Offer<'_, J, A> {
    fn drop(&mut self) {
        self.withdraw();
    }
}

impl<J, A> ObjectQueue<J, A> {
    /// Waits for this writer's turn at the object: refused as throttled (not retried by the
    /// node: the client decides when to try again) when
    /// [`OBJECT_WRITERS_MAX`] writers already hold or wait for it, or after [`OBJECT_TURN_WAIT_MS`].
    pub async fn turn(
        &self,
        kind: ObjectKind,
        vault: &VaultName,
        name: &ObjectName,
    ) -> Result<Turn<'_, J, A>, ArcaError> {
        match self.turn_or_answer(kind, vault, name, None).await? {
            Entry::Turn(turn) => Ok(turn),
            Entry::Answered(_) => Err(ArcaError::internal("a writer that offered no job was answered")),
        }
    }

    /// Waits for this writer's turn at the object as [`ObjectQueue::turn`] does, offering `job`
    /// meanwhile to the writer holding the turn: the writer gets either the turn or the answer to
    /// its job. Once its job is taken it waits for the answer however long that takes (the job is
    /// being carried out); until then it is refused as throttled after [`OBJECT_TURN_WAIT_MS`].
    pub async fn turn_or_answer(
        &self,
        kind: ObjectKind,
        vault: &VaultName,
        name: &ObjectName,
        job: Option<J>,
    ) -> Result<Entry<'_, J, A>, ArcaError> {
        let key = (kind, vault.canonical().to_owned(), name.canonical());
        let (tx, mut rx) = oneshot::channel();
        let number = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let offered = job.is_some();
        let lock = {
            let mut slots = self.slots();
            let slot = slots.entry(key.clone()).or_insert_with(|| Slot {
                lock: Default::default(),
                writers: 0,
                offered: Vec::new(),
            });
            if slot.writers >= OBJECT_WRITERS_MAX {
                return Err(ArcaError::new(
                    ErrorCode::Throttled,
                    format!("{OBJECT_WRITERS_MAX} writes to this {} are already waiting; retry", kind.noun()),
                ));
            }
            slot.writers += 1;
            if let Some(job) = job {
                slot.offered.push((number, Offered { job, answer: tx }));
            }
            slot.lock.clone()
        };
        // From here the writer counts in the slot; dropping `turn` (also when this future is
        // dropped while waiting) takes it out again, and dropping `offer` takes its job back.
        let mut turn = Turn { queue: self, key: key.clone(), guard: None };
        let offer = Offer { queue: self, key, number };
        let wait = async {
            if offered {
                tokio::select! {
                    biased;
                    answer = &mut rx => Some(answer.ok()),
                    guard = lock.lock_owned() => {
                        turn.guard = Some(guard);
                        None
                    }
                }
            } else {
                turn.guard = Some(lock.lock_owned().await);
                None
            }
        };
        let waited = tokio::time::timeout(Duration::from_millis(OBJECT_TURN_WAIT_MS), wait).await;
        match waited {
            Ok(Some(answer)) => Ok(Entry::Answered(answer)),
            // The turn came: the job goes with the writer, unless a writer before it took it.
            Ok(None) if !offered || offer.withdraw() => Ok(Entry::Turn(turn)),
            // Still counted (and holding the turn, which only a batch still running can keep it
            // waiting on) until its answer comes.
            Ok(None) => Ok(Entry::Answered(rx.await.ok())),
            Err(_) if !offered || offer.withdraw() => Err(ArcaError::new(
                ErrorCode::Throttled,
                format!(
                    "this {} is being changed by many writers; no turn came within {OBJECT_TURN_WAIT_MS} ms; retry",
                    kind.noun()
                ),
            )),
            Err(_) => Ok(Entry::Answered(rx.await.ok())),
        }
    }

    /// Objects that have a writer holding or waiting for a turn.
    pub fn busy(&self) -> usize {
        self.slots().len()
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Slot<J, A>>> {
        // The map is never left half-updated: a panic while holding it cannot break an invariant.
        self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<J, A> Turn<'_, J, A> {
    /// Takes jobs offered at this object by writers waiting for a turn, oldest first: at most `max`,
    /// and no more than fit in `budget` by `weight` (it stops at the first that does not fit, so
    /// jobs are taken in the order they came). Each writer then waits for the answer sent on its
    /// job's channel.
    pub fn take_offered(&self, max: usize, budget: usize, weight: impl Fn(&J) -> usize) -> Vec<Offered<J, A>> {
        let mut slots = self.queue.slots();
        let Some(slot) = slots.get_mut(&self.key) else { return Vec::new() };
        let (mut n, mut used) = (0, 0usize);
        for (_, offered) in slot.offered.iter().take(max) {
            used = used.saturating_add(weight(&offered.job));
            if used > budget {
                break;
            }
            n += 1;
        }
        slot.offered.drain(..n).map(|(_, offered)| offered).collect()
    }
}

impl<J, A> Drop for Turn<'_, J, A> {
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
        let queue = Arc::new(ObjectQueue::<(), ()>::default());
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
        let queue = Arc::new(ObjectQueue::<(), ()>::default());
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

    type Queue = ObjectQueue<u32, u32>;

    async fn offer(queue: &Queue, job: u32) -> Result<Option<u32>, ErrorCode> {
        let vault = VaultName::parse("queue").unwrap();
        match queue.turn_or_answer(ObjectKind::Secret, &vault, &name("hot"), Some(job)).await {
            // A writer given the turn answers its own job itself (doubled, to tell the two apart).
            Ok(Entry::Turn(_)) => Ok(Some(job * 2)),
            Ok(Entry::Answered(answer)) => Ok(answer),
            Err(e) => Err(e.code),
        }
    }

    /// Writers offering `jobs` at the hot object, one after another (in this order).
    async fn offer_each(
        queue: &Arc<Queue>,
        jobs: &[u32],
    ) -> Vec<tokio::task::JoinHandle<Result<Option<u32>, ErrorCode>>> {
        let mut waiters = Vec::new();
        for &job in jobs {
            let queue = queue.clone();
            waiters.push(tokio::spawn(async move { offer(&queue, job).await }));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        waiters
    }

    #[tokio::test]
    async fn the_writer_holding_the_turn_answers_the_jobs_offered_meanwhile_oldest_first() {
        let queue = Arc::new(Queue::default());
        let vault = VaultName::parse("queue").unwrap();
        let held = queue.turn(ObjectKind::Secret, &vault, &name("hot")).await.unwrap();
        let waiters = offer_each(&queue, &[1, 2, 3]).await;
        let taken = held.take_offered(2, usize::MAX, |_| 0);
        assert_eq!(taken.iter().map(|o| o.job).collect::<Vec<_>>(), vec![1, 2], "the oldest two");
        let mut taken = taken.into_iter();
        taken.next().unwrap().answer.send(100).unwrap();
        // The holder stops before answering the second: its writer cannot know what happened.
        drop(taken);
        drop(held);
        let mut answers = Vec::new();
        for w in waiters {
            answers.push(w.await.unwrap());
        }
        assert_eq!(answers, vec![Ok(Some(100)), Ok(None), Ok(Some(6))], "the third, not taken, got the turn");
        assert_eq!(queue.busy(), 0);
    }

    #[tokio::test]
    async fn offered_jobs_are_taken_in_order_within_the_count_and_the_budget() {
        let queue = Arc::new(Queue::default());
        let vault = VaultName::parse("queue").unwrap();
        let held = queue.turn(ObjectKind::Secret, &vault, &name("hot")).await.unwrap();
        let waiters = offer_each(&queue, &[10, 20, 5, 1]).await;
        // A budget of 30 takes 10 and 20 exactly (at the budget), and stops before 5 although 5
        // alone would fit: jobs go in the order they came.
        let taken: Vec<u32> = held.take_offered(usize::MAX, 30, |j| *j as usize).into_iter().map(|o| o.job).collect();
        assert_eq!(taken, vec![10, 20]);
        // One past the budget takes nothing; the count limit holds as well.
        assert!(held.take_offered(usize::MAX, 4, |j| *j as usize).is_empty());
        let taken: Vec<u32> = held.take_offered(1, usize::MAX, |j| *j as usize).into_iter().map(|o| o.job).collect();
        assert_eq!(taken, vec![5]);
        drop(held);
        for w in waiters {
            // Taken jobs were dropped unanswered (unknown outcome); the last one got the turn.
            let answer = w.await.unwrap().unwrap();
            assert!(answer.is_none() || answer == Some(2), "{answer:?}");
        }
        assert_eq!(queue.busy(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_offered_job_nobody_takes_is_withdrawn_when_its_writer_gives_up() {
        let queue = Arc::new(Queue::default());
        let vault = VaultName::parse("queue").unwrap();
        let held = queue.turn(ObjectKind::Secret, &vault, &name("hot")).await.unwrap();
        assert_eq!(offer(&queue, 7).await, Err(ErrorCode::Throttled), "no turn within the wait");
        // A writer cancelled while waiting takes its job back too.
        let cancelled = tokio::time::timeout(Duration::from_millis(10), offer(&queue, 8));
        assert!(cancelled.await.is_err());
        assert!(held.take_offered(usize::MAX, usize::MAX, |_| 0).is_empty(), "nothing left offered");
        drop(held);
        assert_eq!(queue.busy(), 0);
    }
}
