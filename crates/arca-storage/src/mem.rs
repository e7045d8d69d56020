//! In-memory stores with a disk-like crash model, for the simulation and for fast tests.
//!
//! The stores are shared handles: clone one and keep it outside a simulated host so it survives the
//! host's restart. [`MemLog::crash`] is what a power cut does to a disk: every synced write survives,
//! every [`Durability::Buffered`] write made after the last synced one is lost (a synced write flushes
//! everything before it, as a write-ahead log's fsync does). [`MemState::crash`] loses every commit
//! since the state's last sync; imports are durable.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::snapshot::{ExportSink, Records};
use crate::{Durability, LogStore, Op, StateStore, StorageError, Versioned};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default, Clone)]
struct LogData {
    entries: BTreeMap<u64, Vec<u8>>,
    meta: BTreeMap<String, Vec<u8>>,
}

#[derive(Default)]
struct LogInner {
    /// What reads see.
    current: LogData,
    /// What survives a crash; `None` while it equals `current` (no buffered write is pending).
    durable: Option<LogData>,
}

impl LogInner {
    /// Makes `change` to the current contents, then settles what a crash would keep.
    fn write(&mut self, durability: Durability, change: impl FnOnce(&mut LogData)) {
        if durability == Durability::Buffered && self.durable.is_none() {
            self.durable = Some(self.current.clone());
        }
        change(&mut self.current);
        if durability == Durability::Synced {
            self.durable = None;
        }
    }
}

/// An in-memory [`LogStore`].
#[derive(Clone, Default)]
pub struct MemLog(Arc<Mutex<LogInner>>);

impl MemLog {
    /// Every byte the store holds, for plaintext scans in tests.
    pub fn all_bytes(&self) -> Vec<u8> {
        let g = lock(&self.0);
        g.current.entries.values().chain(g.current.meta.values()).flatten().copied().collect()
    }

    /// Loses every buffered write made since the last synced one, as a machine crash would.
    pub fn crash(&self) {
        let mut g = lock(&self.0);
        if let Some(durable) = g.durable.take() {
            g.current = durable;
        }
    }
}

impl LogStore for MemLog {
    fn append(&self, entries: &[(u64, Vec<u8>)], durability: Durability) -> Result<(), StorageError> {
        let mut g = lock(&self.0);
        let mut expected = g.current.entries.keys().next_back().map(|i| i + 1);
        for (index, _) in entries {
            if let Some(e) = expected {
                if *index != e {
                    return Err(StorageError::Contract(format!(
                        "append at {index} would leave a hole before it (next is {e})"
                    )));
                }
            }
            expected = Some(index + 1);
        }
        g.write(durability, |d| d.entries.extend(entries.iter().cloned()));
        Ok(())
    }

    fn truncate_after(&self, index: Option<u64>) -> Result<(), StorageError> {
        lock(&self.0).write(Durability::Synced, |d| match index {
            Some(i) => {
                d.entries.split_off(&(i + 1));
            }
            None => d.entries.clear(),
        });
        Ok(())
    }

    fn purge_upto(&self, index: u64) -> Result<(), StorageError> {
        lock(&self.0).write(Durability::Synced, |d| {
            let keep = d.entries.split_off(&(index + 1));
            d.entries = keep;
        });
        Ok(())
    }

    fn range(&self, start: u64, end: u64) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        if start >= end {
            return Ok(Vec::new());
        }
        Ok(lock(&self.0).current.entries.range(start..end).map(|(k, v)| (*k, v.clone())).collect())
    }

    fn last(&self) -> Result<Option<(u64, Vec<u8>)>, StorageError> {
        Ok(lock(&self.0).current.entries.iter().next_back().map(|(k, v)| (*k, v.clone())))
    }

    fn put_meta(&self, key: &str, value: &[u8], durability: Durability) -> Result<(), StorageError> {
        lock(&self.0).write(durability, |d| {
            d.meta.insert(key.to_owned(), value.to_vec());
        });
        Ok(())
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(lock(&self.0).current.meta.get(key).cloned())
    }

    fn sync(&self) -> Result<(), StorageError> {
        lock(&self.0).durable = None;
        Ok(())
    }
}

#[derive(Default, Clone)]
struct StateData {
    data: BTreeMap<Vec<u8>, Versioned>,
    applied_meta: Option<Vec<u8>>,
}

#[derive(Default)]
struct StateInner {
    current: StateData,
    /// What survives a crash; `None` while it equals `current` (no commit since the last sync).
    durable: Option<StateData>,
    /// How many times a whole state was imported (snapshots installed), for the simulation's report.
    imports: usize,
}

/// An in-memory [`StateStore`].
#[derive(Clone, Default)]
pub struct MemState(Arc<Mutex<StateInner>>);

impl MemState {
    /// How many snapshots were installed into this store.
    pub fn imports(&self) -> usize {
        lock(&self.0).imports
    }

    /// Loses every commit made since the last sync, as a machine crash would.
    pub fn crash(&self) {
        let mut g = lock(&self.0);
        if let Some(durable) = g.durable.take() {
            g.current = durable;
        }
    }

    /// Every byte the store holds, for plaintext scans in tests.
    pub fn all_bytes(&self) -> Vec<u8> {
        let g = lock(&self.0);
        let mut out = Vec::new();
        for (k, v) in g.current.data.iter().chain(g.durable.iter().flat_map(|d| d.data.iter())) {
            out.extend_from_slice(k);
            out.extend_from_slice(&v.value);
        }
        out
    }
}

impl StateStore for MemState {
    fn get(&self, key: &[u8]) -> Result<Option<Versioned>, StorageError> {
        Ok(lock(&self.0).current.data.get(key).cloned())
    }

    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Versioned)>, StorageError> {
        let g = lock(&self.0);
        let start = match after {
            Some(a) if a >= prefix => std::ops::Bound::Excluded(a.to_vec()),
            _ => std::ops::Bound::Included(prefix.to_vec()),
        };
        Ok(g.current
            .data
            .range((start, std::ops::Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn commit(&self, index: u64, ops: &[Op], applied_meta: &[u8]) -> Result<(), StorageError> {
        let mut g = lock(&self.0);
        if g.durable.is_none() {
            g.durable = Some(g.current.clone());
        }
        let state = &mut g.current;
        for op in ops {
            match op {
                Op::Put { key, value } => {
                    state.data.insert(key.clone(), Versioned { modified_at: index, value: value.clone() });
                }
                Op::Delete { key } => {
                    state.data.remove(key);
                }
                Op::DeletePrefix { prefix } => state.data.retain(|k, _| !k.starts_with(prefix)),
            }
        }
        state.applied_meta = Some(applied_meta.to_vec());
        Ok(())
    }

    fn sync(&self) -> Result<(), StorageError> {
        lock(&self.0).durable = None;
        Ok(())
    }

    fn applied_meta(&self) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(lock(&self.0).current.applied_meta.clone())
    }

    fn export_to(&self, sink: &mut dyn ExportSink) -> Result<(), StorageError> {
        // A copy taken under the lock is the one instant the export shows.
        let (meta, data) = {
            let g = lock(&self.0);
            (g.current.applied_meta.clone(), g.current.data.clone())
        };
        sink.applied_meta(meta.as_deref())?;
        for (key, v) in &data {
            sink.record(key, v.modified_at, &v.value)?;
        }
        Ok(())
    }

    fn import_from(&self, applied_meta: Option<&[u8]>, records: &mut Records<'_>) -> Result<(), StorageError> {
        let mut data = BTreeMap::new();
        for record in records {
            let (key, value) = record?;
            data.insert(key, value);
        }
        let mut g = lock(&self.0);
        g.current = StateData { data, applied_meta: applied_meta.map(<[u8]>::to_vec) };
        g.durable = None;
        g.imports += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_log_passes_the_conformance_suite() {
        crate::conformance::log_store_suite(MemLog::default);
    }

    #[test]
    fn a_crash_keeps_synced_writes_and_loses_later_buffered_ones() {
        let log = MemLog::default();
        log.append(&[(1, b"a".to_vec())], Durability::Synced).unwrap();
        log.put_meta("vote", b"v1", Durability::Synced).unwrap();
        log.append(&[(2, b"b".to_vec())], Durability::Buffered).unwrap();
        log.put_meta("vote", b"v2", Durability::Buffered).unwrap();
        assert_eq!(log.get_meta("vote").unwrap(), Some(b"v2".to_vec()), "reads see buffered writes");
        log.crash();
        assert_eq!(log.last().unwrap(), Some((1, b"a".to_vec())));
        assert_eq!(log.get_meta("vote").unwrap(), Some(b"v1".to_vec()));

        // A synced write flushes the buffered ones before it, and so does a sync.
        log.append(&[(2, b"b".to_vec())], Durability::Buffered).unwrap();
        log.put_meta("committed", b"c", Durability::Synced).unwrap();
        log.crash();
        assert_eq!(log.last().unwrap(), Some((2, b"b".to_vec())));
        log.append(&[(3, b"c".to_vec())], Durability::Buffered).unwrap();
        log.sync().unwrap();
        log.crash();
        assert_eq!(log.last().unwrap(), Some((3, b"c".to_vec())));
    }

    #[test]
    fn a_crash_loses_the_state_commits_since_the_last_sync() {
        let state = MemState::default();
        let put = |k: &[u8]| Op::Put { key: k.to_vec(), value: b"v".to_vec() };
        state.commit(1, &[put(b"a")], b"m1").unwrap();
        state.sync().unwrap();
        state.commit(2, &[put(b"b")], b"m2").unwrap();
        state.commit(3, &[Op::Delete { key: b"a".to_vec() }], b"m3").unwrap();
        assert_eq!(state.get(b"a").unwrap(), None, "reads see commits before a sync");
        state.crash();
        assert_eq!(state.applied_meta().unwrap(), Some(b"m1".to_vec()));
        assert_eq!(state.get(b"a").unwrap().map(|v| v.modified_at), Some(1));
        assert_eq!(state.get(b"b").unwrap(), None);
        state.crash();
        assert_eq!(state.applied_meta().unwrap(), Some(b"m1".to_vec()), "a second crash loses nothing more");
    }

    #[test]
    fn mem_state_passes_the_conformance_suite() {
        crate::conformance::state_store_suite(MemState::default);
    }
}
