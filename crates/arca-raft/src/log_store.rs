//! openraft's log storage over an [`arca_storage::LogStore`].
//!
//! The vote and the purge point are metadata entries written durably before the call returns; appended
//! entries are readable when `append` returns and durable before the flush callback fires (synced
//! inline, or by a sync thread that covers many appends with one fsync). The committed log id is written without a sync
//! (openraft learns it again from the leader).

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use arca_storage::{Durability, LogStore as ByteLog};
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::OptionalSend;

use crate::codec::{decode, encode, io_error};
use crate::TypeConfig;

type Entry = openraft::alias::EntryOf<TypeConfig>;
type LogId = openraft::alias::LogIdOf<TypeConfig>;
type Vote = openraft::alias::VoteOf<TypeConfig>;

/// Key of the vote in the byte log's metadata.
pub const META_VOTE: &str = "vote";
const META_COMMITTED: &str = "committed";
const META_PURGED: &str = "purged";

/// What the sync thread is asked to do.
enum Pending {
    /// Sync, then report these appends durable.
    Flushed(IOFlushed<TypeConfig>),
    /// Answer once everything queued before is done.
    Barrier(std::sync::mpsc::SyncSender<()>),
}

/// The sync thread's queue, and the thread itself: dropping the last handle closes the queue and
/// waits for the thread to finish, so the byte log it holds is closed before the drop returns (a
/// thread left running could be closing RocksDB while the process exits, which aborts it).
struct SyncThread {
    tx: Option<std::sync::mpsc::Sender<Pending>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SyncThread {
    fn send(&self, pending: Pending) -> Result<(), std::sync::mpsc::SendError<Pending>> {
        match &self.tx {
            Some(tx) => tx.send(pending),
            None => Err(std::sync::mpsc::SendError(pending)),
        }
    }
}

impl Drop for SyncThread {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            // Never the sync thread waiting for itself.
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

/// The Raft log of one node. Cheap to clone.
#[derive(Clone)]
pub struct LogStore {
    log: Arc<dyn ByteLog>,
    /// With a sync thread: appends are written at once and reported durable by that thread.
    syncer: Option<Arc<SyncThread>>,
}

impl LogStore {
    /// A log whose appends are synced before `append` returns.
    pub fn new(log: Arc<dyn ByteLog>) -> Self {
        Self { log, syncer: None }
    }

    /// A log whose appends are written (readable at once) and then synced by a dedicated thread: one
    /// fsync covers every append queued while the previous one ran (group commit), and openraft is
    /// told an append is durable only after an fsync that began after it was written. The thread ends
    /// when the last clone of the store is dropped, and that drop waits for it.
    pub fn syncing_on_thread(log: Arc<dyn ByteLog>) -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        let synced = log.clone();
        let spawned = std::thread::Builder::new().name("arca-log-sync".into()).spawn(move || sync_loop(&*synced, rx));
        match spawned {
            Ok(thread) => Self { log, syncer: Some(Arc::new(SyncThread { tx: Some(tx), thread: Some(thread) })) },
            Err(e) => {
                tracing::warn!("could not start the log sync thread ({e}); appends sync inline");
                Self::new(log)
            }
        }
    }

    /// Waits until every append queued before has been synced and reported, so a vote or truncation
    /// that follows is reported after them, in order.
    fn drain(&self) -> Result<(), io::Error> {
        if let Some(syncer) = &self.syncer {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            syncer.send(Pending::Barrier(tx)).map_err(|_| io::Error::other("the log sync thread stopped"))?;
            rx.recv().map_err(|_| io::Error::other("the log sync thread stopped"))?;
        }
        Ok(())
    }

    fn meta<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, io::Error> {
        match self.log.get_meta(key).map_err(io_error)? {
            Some(bytes) => Ok(Some(decode(key, &bytes)?)),
            None => Ok(None),
        }
    }
}

/// The sync thread: takes everything queued, syncs once, reports each in order.
fn sync_loop(log: &dyn ByteLog, rx: std::sync::mpsc::Receiver<Pending>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let needs_sync = batch.iter().any(|p| matches!(p, Pending::Flushed(_)));
        let skip = arca_types::faults::active(arca_types::faults::Fault::ApplyBeforeLogDurable);
        let result = if needs_sync && !skip { log.sync() } else { Ok(()) };
        for pending in batch {
            match pending {
                Pending::Flushed(callback) => {
                    callback.io_completed(result.clone().map_err(|e| io::Error::other(e.to_string())))
                }
                Pending::Barrier(done) => {
                    let _ = done.send(());
                }
            }
        }
    }
}

fn bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(s) => *s,
        Bound::Excluded(s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(e) => e.saturating_add(1),
        Bound::Excluded(e) => *e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let (start, end) = bounds(&range);
        let raw = self.log.range(start, end).map_err(io_error)?;
        raw.iter().map(|(_, bytes)| decode("log entry", bytes)).collect()
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.meta(META_VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged_log_id: Option<LogId> = self.meta(META_PURGED)?;
        let last_log_id = match self.log.last().map_err(io_error)? {
            Some((_, bytes)) => Some(decode::<Entry>("log entry", &bytes)?.log_id),
            None => last_purged_log_id,
        };
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.drain()?;
        let durability = if arca_types::faults::active(arca_types::faults::Fault::SkipVoteFsync) {
            Durability::Buffered
        } else {
            Durability::Synced
        };
        self.log.put_meta(META_VOTE, &encode(vote), durability).map_err(io_error)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        // Not synced: a committed log id lost in a crash is learned again from the leader, and the
        // next synced append makes it durable anyway. It only lets a restarted node apply sooner.
        self.log.put_meta(META_COMMITTED, &encode(&committed), Durability::Buffered).map_err(io_error)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.meta::<Option<LogId>>(META_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let encoded: Vec<(u64, Vec<u8>)> = entries.into_iter().map(|e| (e.log_id.index, encode(&e))).collect();
        let skip_sync = arca_types::faults::active(arca_types::faults::Fault::ApplyBeforeLogDurable);
        let durability = if skip_sync || self.syncer.is_some() { Durability::Buffered } else { Durability::Synced };
        let result = self.log.append(&encoded, durability).map_err(io_error);
        match (&result, &self.syncer) {
            (Ok(()), Some(syncer)) => {
                if let Err(unsent) = syncer.send(Pending::Flushed(callback)) {
                    // The thread is gone (it only ends with the store): sync here instead.
                    if let Pending::Flushed(callback) = unsent.0 {
                        let synced = if skip_sync { Ok(()) } else { self.log.sync() };
                        callback.io_completed(synced.map_err(|e| io::Error::other(e.to_string())));
                    }
                }
            }
            (Ok(()), None) => callback.io_completed(Ok(())),
            (Err(e), _) => callback.io_completed(Err(io::Error::other(e.to_string()))),
        }
        result
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        self.drain()?;
        self.log.truncate_after(last_log_id.map(|l| l.index)).map_err(io_error)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        // Record the purge point first: a crash between the two steps leaves extra entries, never a gap
        // that the log state cannot explain.
        self.log.put_meta(META_PURGED, &encode(&log_id), Durability::Synced).map_err(io_error)?;
        self.log.purge_upto(log_id.index).map_err(io_error)
    }
}

/// The (term, voted-for node, committed) of the vote stored in a byte log, for checks from outside
/// openraft (the simulation's durability checker). `None` if no vote was ever saved.
pub fn stored_vote(log: &dyn ByteLog) -> Result<Option<(u64, u64, bool)>, io::Error> {
    use openraft::vote::RaftLeaderId;
    match log.get_meta(META_VOTE).map_err(io_error)? {
        Some(bytes) => {
            let vote: Vote = decode(META_VOTE, &bytes)?;
            Ok(Some((vote.leader_id().term(), *vote.leader_id().node_id(), vote.is_committed())))
        }
        None => Ok(None),
    }
}

/// The term and index of a log entry as stored in a byte log, for checks from outside openraft (the
/// simulation's log-matching checker).
pub fn stored_entry_log_id(bytes: &[u8]) -> Result<(u64, u64), io::Error> {
    let entry: Entry = decode("log entry", bytes)?;
    Ok((entry.log_id.leader_id.term, entry.log_id.index))
}

/// Key of the storage format in the byte log's metadata.
pub const META_FORMAT: &str = "format";

/// Checks that `log` and `state` hold data of [`crate::STORAGE_FORMAT`], or none yet (then records
/// the format). Data of an earlier format is refused with what to do.
pub fn check_format(log: &dyn ByteLog, state: &dyn arca_storage::StateStore) -> Result<(), String> {
    let io = |e: arca_storage::StorageError| format!("failed to read the Raft log: {e}");
    match log.get_meta(META_FORMAT).map_err(io)? {
        Some(format) if format == crate::STORAGE_FORMAT.as_bytes() => Ok(()),
        Some(format) => Err(format!(
            "this data dir holds Raft data in format {:?}, and this arcad reads only {:?}: start a new \
             cluster and restore the vaults from backups",
            String::from_utf8_lossy(&format),
            crate::STORAGE_FORMAT
        )),
        None => {
            let used = log.get_meta(META_VOTE).map_err(io)?.is_some()
                || log.last().map_err(io)?.is_some()
                || state.applied_meta().map_err(|e| format!("failed to read the state: {e}"))?.is_some();
            if used {
                return Err(format!(
                    "this data dir holds Raft data written by an earlier arcad (before format {:?}), which \
                     this arcad cannot read: start a new cluster and restore the vaults from backups",
                    crate::STORAGE_FORMAT
                ));
            }
            log.put_meta(META_FORMAT, crate::STORAGE_FORMAT.as_bytes(), Durability::Synced).map_err(io)
        }
    }
}

fn stored_last_log_id(log: &dyn ByteLog) -> Result<Option<LogId>, io::Error> {
    match log.last().map_err(io_error)? {
        Some((_, bytes)) => Ok(Some(decode::<Entry>("log entry", &bytes)?.log_id)),
        None => match log.get_meta(META_PURGED).map_err(io_error)? {
            Some(bytes) => Ok(Some(decode::<LogId>(META_PURGED, &bytes)?)),
            None => Ok(None),
        },
    }
}

/// The (term, index) of the last entry in `log`, or of its purge point when it holds none; (0, 0)
/// for an empty log.
pub fn last_log_id(log: &dyn ByteLog) -> Result<(u64, u64), io::Error> {
    Ok(stored_last_log_id(log)?.map_or((0, 0), |l| (l.leader_id.term, l.index)))
}

/// Where a lineage forks from the log its founder held: the founder's last entry, the index it had
/// applied, and the runs of one term among its entries after that index, as (term, first index).
/// Every node of the old lineage holds the same entries up to the applied index (they were
/// committed); after it, a node's entry is in the new lineage exactly when the founder's entry at
/// that index, which these runs give, has the same term (Raft's log matching).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fork {
    pub last: (u64, u64),
    pub applied_index: u64,
    pub terms: Vec<(u64, u64)>,
}

impl Fork {
    /// The term of the founder's entry at `index` after the applied index, if it held one.
    pub fn term_at(&self, index: u64) -> Option<u64> {
        if index <= self.applied_index || index > self.last.1 {
            return None;
        }
        self.terms.iter().rev().find(|(_, first)| *first <= index).map(|(term, _)| *term)
    }

    /// Whether the new lineage holds entry (`term`, `index`) of an old lineage's node.
    pub fn holds(&self, term: u64, index: u64) -> bool {
        index <= self.applied_index || self.term_at(index) == Some(term)
    }
}

/// The fork a lineage founded on `log` now would record, `applied_index` being what the founder
/// applied.
pub fn fork_of(log: &dyn ByteLog, applied_index: u64) -> Result<Fork, io::Error> {
    let last = last_log_id(log)?;
    let mut terms: Vec<(u64, u64)> = Vec::new();
    if last.1 > applied_index {
        for (index, bytes) in log.range(applied_index + 1, last.1 + 1).map_err(io_error)? {
            let (term, _) = stored_entry_log_id(&bytes)?;
            if terms.last().is_none_or(|(t, _)| *t != term) {
                terms.push((term, index));
            }
        }
    }
    Ok(Fork { last, applied_index, terms })
}

/// One entry of a log as a displaced node files it: its log id, whether this node knew it
/// committed, and its proposal (`None` for a blank or membership entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldEntry {
    pub term: u64,
    pub index: u64,
    pub committed: bool,
    pub proposal: Option<crate::Proposal>,
}

/// The entries of `log` that a lineage forked at `fork` lacks, oldest first: every entry from the
/// first one it does not hold (after that, none matches either). At most `entries_max` entries and
/// `bytes_max` bytes of proposals are returned; the count of those left out comes second, and
/// counts too the entries after the fork's applied index that this log purged into a snapshot when
/// the fork does not hold its purge point (they diverge, but only the snapshot has them now).
pub fn divergent_entries(
    log: &dyn ByteLog,
    fork: &Fork,
    entries_max: usize,
    bytes_max: usize,
) -> Result<(Vec<HeldEntry>, u64), io::Error> {
    let committed = match log.get_meta(META_COMMITTED).map_err(io_error)? {
        Some(bytes) => decode::<Option<LogId>>(META_COMMITTED, &bytes)?.map_or(0, |l| l.index),
        None => 0,
    };
    let purged: Option<LogId> = match log.get_meta(META_PURGED).map_err(io_error)? {
        Some(bytes) => Some(decode(META_PURGED, &bytes)?),
        None => None,
    };
    let last = last_log_id(log)?.1;
    let (mut out, mut bytes, mut left_out, mut diverged, mut over) = (Vec::new(), 0usize, 0u64, false, false);
    let mut from = fork.applied_index + 1;
    if let Some(p) = purged.filter(|p| p.index > fork.applied_index) {
        if !fork.holds(p.leader_id.term, p.index) {
            left_out = p.index - fork.applied_index;
            diverged = true;
        }
        from = p.index + 1;
    }
    while from <= last {
        let to = last.min(from + 255) + 1;
        for (_, raw) in log.range(from, to).map_err(io_error)? {
            let entry: Entry = decode("log entry", &raw)?;
            let (term, index) = (entry.log_id.leader_id.term, entry.log_id.index);
            diverged = diverged || !fork.holds(term, index);
            if !diverged {
                continue;
            }
            let proposal = match entry.payload {
                openraft::EntryPayload::Normal(p) => Some(p),
                _ => None,
            };
            if over || out.len() >= entries_max || bytes + raw.len() > bytes_max {
                over = true;
                left_out += 1;
                continue;
            }
            bytes += raw.len();
            out.push(HeldEntry { term, index, committed: index <= committed, proposal });
        }
        from = to;
    }
    Ok((out, left_out))
}

/// What [`found_lineage`] wrote: the term the new lineage's entries carry and their indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Founded {
    pub term: u64,
    pub first_index: u64,
    pub last_index: u64,
}

/// Writes the start of a new lineage into a stopped node's log: after its last entry, a membership
/// naming `voters` (with their addresses) and then `proposals`, all under a term above any this node
/// stored and above `term_floor` (the highest term the new voters reported), and a vote for this node
/// in that term, not committed: once Raft starts again, this node stands for election among the new
/// voters, whose logs hold no entry of that term, and a leader it becomes commits the whole start.
/// Every entry before is kept: the new voters' logs are prefixes of the same history, so Raft's
/// consistency check reconciles them. Synced before it returns.
pub fn found_lineage(
    log: &dyn ByteLog,
    founder: u64,
    voters: std::collections::BTreeMap<u64, crate::ArcaNode>,
    term_floor: u64,
    applied_index: u64,
    proposals: impl FnOnce(&Fork) -> Vec<crate::Proposal>,
) -> Result<Founded, io::Error> {
    use openraft::entry::RaftEntry;
    use openraft::vote::RaftLeaderId;
    if !voters.contains_key(&founder) {
        return Err(io::Error::other("the founder of a lineage must be one of its voters"));
    }
    let proposals = proposals(&fork_of(log, applied_index)?);
    let last = stored_last_log_id(log)?;
    let vote: Option<Vote> = match log.get_meta(META_VOTE).map_err(io_error)? {
        Some(bytes) => Some(decode(META_VOTE, &bytes)?),
        None => None,
    };
    let seen = vote.map_or(0, |v| v.leader_id().term()).max(last.map_or(0, |l| l.leader_id.term));
    let term = seen.max(term_floor).checked_add(1).ok_or_else(|| io::Error::other("the Raft term is exhausted"))?;
    let first_index = last.map_or(0, |l| l.index + 1);
    let ids: std::collections::BTreeSet<u64> = voters.keys().copied().collect();
    let membership = openraft::Membership::new(vec![ids], voters)
        .map_err(|e| io::Error::other(format!("the new lineage's membership is invalid: {e}")))?;
    let mut entries = vec![Entry::new_membership(LogId::new_term_index(term, first_index), membership)];
    for (i, proposal) in proposals.into_iter().enumerate() {
        entries.push(Entry::new_normal(LogId::new_term_index(term, first_index + 1 + i as u64), proposal));
    }
    let last_index = first_index + entries.len() as u64 - 1;
    let encoded: Vec<(u64, Vec<u8>)> = entries.iter().map(|e| (e.log_id.index, encode(e))).collect();
    // The vote first: entries of a term are never stored under a lower vote, even after a crash
    // between the two writes.
    log.put_meta(META_VOTE, &encode(&Vote::new(term, founder)), Durability::Synced).map_err(io_error)?;
    log.append(&encoded, Durability::Synced).map_err(io_error)?;
    Ok(Founded { term, first_index, last_index })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arca_storage::mem::MemLog;
    use openraft::entry::RaftEntry;

    fn node(region: &str) -> crate::ArcaNode {
        crate::ArcaNode { api_addr: "a:1".into(), cluster_addr: "c:1".into(), region: region.into() }
    }

    #[test]
    fn a_lineage_starts_after_the_log_under_a_term_above_any_seen_with_an_uncommitted_vote_for_its_founder() {
        let log = MemLog::default();
        let seed: Vec<(u64, Vec<u8>)> =
            (0..6).map(|i| (i, encode(&Entry::new_blank(LogId::new_term_index(3, i))))).collect();
        log.append(&seed, Durability::Synced).unwrap();
        log.put_meta(META_VOTE, &encode(&Vote::new_committed(4, 1)), Durability::Synced).unwrap();
        let voters: std::collections::BTreeMap<u64, crate::ArcaNode> =
            [(7, node("east")), (8, node("east")), (9, node("east"))].into();
        assert!(found_lineage(&log, 1, voters.clone(), 0, 0, |_| Vec::new()).is_err(), "the founder must be a voter");
        let record = crate::Proposal { preconditions: Vec::new(), ops: Vec::new() };
        let mut seen = None;
        let founded = found_lineage(&log, 7, voters.clone(), 6, 2, |fork| {
            seen = Some(fork.clone());
            vec![record]
        })
        .unwrap();
        assert_eq!(seen, Some(Fork { last: (3, 5), applied_index: 2, terms: vec![(3, 3)] }));
        assert_eq!(founded, Founded { term: 7, first_index: 6, last_index: 7 });
        let entries: Vec<Entry> =
            log.range(6, 8).unwrap().iter().map(|(_, b)| decode("log entry", b).unwrap()).collect();
        match &entries[0].payload {
            openraft::EntryPayload::Membership(m) => {
                assert_eq!(m.voter_ids().collect::<Vec<_>>(), vec![7, 8, 9]);
                assert_eq!(m.get_node(&8), Some(&node("east")));
            }
            other => panic!("the lineage starts with its membership, not {other:?}"),
        }
        assert!(matches!(entries[1].payload, openraft::EntryPayload::Normal(_)));
        assert!(entries.iter().all(|e| e.log_id.leader_id.term == 7));
        assert_eq!(stored_vote(&log).unwrap(), Some((7, 7, false)));
        // Without a floor, the term is still above the vote's and the log's.
        let again = found_lineage(&log, 8, voters, 0, 0, |_| Vec::new()).unwrap();
        assert_eq!((again.term, again.first_index), (8, 8));
    }

    fn entry(term: u64, index: u64) -> (u64, Vec<u8>) {
        let proposal = crate::Proposal { preconditions: Vec::new(), ops: Vec::new() };
        (index, encode(&Entry::new_normal(LogId::new_term_index(term, index), proposal)))
    }

    #[test]
    fn a_displaced_log_files_every_entry_from_the_first_the_fork_lacks() {
        // Founder: applied 4; entries 5-6 of term 2, 7-8 of term 3 (its last). Old node: the same up
        // to 6, then 7 of term 4 onwards (a leader the founder never heard from), committed to 8.
        let fork = Fork { last: (3, 8), applied_index: 4, terms: vec![(2, 5), (3, 7)] };
        assert_eq!(
            (fork.term_at(4), fork.term_at(5), fork.term_at(7), fork.term_at(9)),
            (None, Some(2), Some(3), None)
        );
        assert!(fork.holds(1, 3) && fork.holds(2, 6) && !fork.holds(4, 7) && !fork.holds(3, 9));
        let log = MemLog::default();
        let mut entries: Vec<(u64, Vec<u8>)> = (1..=4).map(|i| entry(1, i)).collect();
        entries.extend([entry(2, 5), entry(2, 6), entry(4, 7), entry(4, 8), entry(4, 9), entry(4, 10)]);
        log.append(&entries, Durability::Synced).unwrap();
        log.put_meta(META_COMMITTED, &encode(&Some(LogId::new_term_index(4, 8))), Durability::Synced).unwrap();
        let (held, left_out) = divergent_entries(&log, &fork, usize::MAX, usize::MAX).unwrap();
        let ids: Vec<(u64, u64, bool)> = held.iter().map(|e| (e.term, e.index, e.committed)).collect();
        assert_eq!(ids, vec![(4, 7, true), (4, 8, true), (4, 9, false), (4, 10, false)]);
        assert_eq!(left_out, 0);
        assert!(held.iter().all(|e| e.proposal.is_some()));
        // A byte budget keeps the oldest and counts the rest.
        let one = entries[6].1.len();
        let (held, left_out) = divergent_entries(&log, &fork, usize::MAX, one * 2).unwrap();
        assert_eq!((held.len(), left_out), (2, 2));
        assert_eq!(divergent_entries(&log, &fork, 3, usize::MAX).unwrap().1, 1, "at most 3 entries");
        // A log the fork holds entirely (a node that lagged the founder) has nothing to file; so has
        // one whose later entries only extend what the founder held... when the founder held them.
        let behind = Fork { last: (4, 10), applied_index: 4, terms: vec![(2, 5), (4, 7)] };
        assert_eq!(divergent_entries(&log, &behind, usize::MAX, usize::MAX).unwrap(), (Vec::new(), 0));
        // Once one entry differs, every later one is filed, even where a term happens to match.
        let odd = Fork { last: (4, 10), applied_index: 4, terms: vec![(3, 5), (4, 7)] };
        assert_eq!(divergent_entries(&log, &odd, usize::MAX, usize::MAX).unwrap().0.len(), 6);
        // Purged past the fork's applied index: entries the snapshot took are counted as left out
        // when the fork lacks the purge point, skipped when it holds it.
        log.put_meta(META_PURGED, &encode(&LogId::new_term_index(4, 7)), Durability::Synced).unwrap();
        let (held, left_out) = divergent_entries(&log, &fork, usize::MAX, usize::MAX).unwrap();
        assert_eq!((held.len(), left_out), (3, 3), "entries 5-7 only in the snapshot, 8-10 filed");
        log.put_meta(META_PURGED, &encode(&LogId::new_term_index(2, 6)), Durability::Synced).unwrap();
        let (held, left_out) = divergent_entries(&log, &fork, usize::MAX, usize::MAX).unwrap();
        assert_eq!((held.len(), left_out), (4, 0));
    }
}
