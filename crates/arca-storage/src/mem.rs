//! In-memory stores with a disk-like crash model, for the simulation and for fast tests.
//!
//! Every write is durable when it returns (as the traits require), so [`MemLog::crash_copy`] and
//! [`MemState::crash_copy`] — what survives a crash — are simply a copy of the current contents.
//! The stores are shared handles: clone one and keep it outside a simulated host so it survives the
//! host's restart.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::{Export, LogStore, Op, StateStore, StorageError, Versioned};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default)]
struct LogInner {
    entries: BTreeMap<u64, Vec<u8>>,
    meta: BTreeMap<String, Vec<u8>>,
}

/// An in-memory [`LogStore`].
#[derive(Clone, Default)]
pub struct MemLog(Arc<Mutex<LogInner>>);

impl MemLog {
    /// Every byte the store holds, for plaintext scans in tests.
    pub fn all_bytes(&self) -> Vec<u8> {
        let g = lock(&self.0);
        g.entries.values().chain(g.meta.values()).flatten().copied().collect()
    }
}

impl LogStore for MemLog {
    fn append(&self, entries: &[(u64, Vec<u8>)]) -> Result<(), StorageError> {
        let mut g = lock(&self.0);
        let mut expected = g.entries.keys().next_back().map(|i| i + 1);
        for (index, bytes) in entries {
            if let Some(e) = expected {
                if *index != e {
                    return Err(StorageError::Contract(format!(
                        "append at {index} would leave a hole before it (next is {e})"
                    )));
                }
            }
            g.entries.insert(*index, bytes.clone());
            expected = Some(index + 1);
        }
        Ok(())
    }

    fn truncate_after(&self, index: Option<u64>) -> Result<(), StorageError> {
        let mut g = lock(&self.0);
        match index {
            Some(i) => {
                g.entries.split_off(&(i + 1));
            }
            None => g.entries.clear(),
        }
        Ok(())
    }

    fn purge_upto(&self, index: u64) -> Result<(), StorageError> {
        let mut g = lock(&self.0);
        let keep = g.entries.split_off(&(index + 1));
        g.entries = keep;
        Ok(())
    }

    fn range(&self, start: u64, end: u64) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        if start >= end {
            return Ok(Vec::new());
        }
        Ok(lock(&self.0).entries.range(start..end).map(|(k, v)| (*k, v.clone())).collect())
    }

    fn last(&self) -> Result<Option<(u64, Vec<u8>)>, StorageError> {
        Ok(lock(&self.0).entries.iter().next_back().map(|(k, v)| (*k, v.clone())))
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        lock(&self.0).meta.insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(lock(&self.0).meta.get(key).cloned())
    }
}

#[derive(Default)]
struct StateInner {
    data: BTreeMap<Vec<u8>, Versioned>,
    applied_meta: Option<Vec<u8>>,
    aux: BTreeMap<String, Vec<u8>>,
}

/// An in-memory [`StateStore`].
#[derive(Clone, Default)]
pub struct MemState(Arc<Mutex<StateInner>>);

impl MemState {
    /// Every byte the store holds, for plaintext scans in tests.
    pub fn all_bytes(&self) -> Vec<u8> {
        let g = lock(&self.0);
        let mut out = Vec::new();
        for (k, v) in &g.data {
            out.extend_from_slice(k);
            out.extend_from_slice(&v.value);
        }
        for v in g.aux.values() {
            out.extend_from_slice(v);
        }
        out
    }
}

impl StateStore for MemState {
    fn get(&self, key: &[u8]) -> Result<Option<Versioned>, StorageError> {
        Ok(lock(&self.0).data.get(key).cloned())
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
        Ok(g.data
            .range((start, std::ops::Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn commit(&self, index: u64, ops: &[Op], applied_meta: &[u8]) -> Result<(), StorageError> {
        let mut g = lock(&self.0);
        for op in ops {
            match op {
                Op::Put { key, value } => {
                    g.data.insert(key.clone(), Versioned { modified_at: index, value: value.clone() });
                }
                Op::Delete { key } => {
                    g.data.remove(key);
                }
                Op::DeletePrefix { prefix } => g.data.retain(|k, _| !k.starts_with(prefix)),
            }
        }
        g.applied_meta = Some(applied_meta.to_vec());
        Ok(())
    }

    fn applied_meta(&self) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(lock(&self.0).applied_meta.clone())
    }

    fn export(&self) -> Result<Vec<u8>, StorageError> {
        let g = lock(&self.0);
        let export = Export {
            applied_meta: g.applied_meta.clone(),
            entries: g.data.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        };
        Ok(export.encode())
    }

    fn import(&self, blob: &[u8]) -> Result<(), StorageError> {
        let export = Export::decode(blob)?;
        let mut g = lock(&self.0);
        g.data = export.entries.into_iter().collect();
        g.applied_meta = export.applied_meta;
        Ok(())
    }

    fn put_aux(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        lock(&self.0).aux.insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    fn get_aux(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(lock(&self.0).aux.get(key).cloned())
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
    fn mem_state_passes_the_conformance_suite() {
        crate::conformance::state_store_suite(MemState::default);
    }
}
