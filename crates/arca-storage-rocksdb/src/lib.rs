//! RocksDB implementation of Arca's storage traits. The only crate that links RocksDB.
//!
//! One database per node with four column families: `log` (Raft entries by big-endian index),
//! `log_meta` (vote, committed, purged), `state` (versioned key/values) and `state_meta` (applied
//! metadata and the last built snapshot). Every write is a `WriteBatch` with `sync = true`, so the
//! vote, the log and the applied state are on disk before openraft is told they are.
#![forbid(unsafe_code)]

use std::path::Path;
use std::sync::Arc;

use arca_storage::{prefix_end, Durability, Export, LogStore, Op, StateStore, StorageError, Versioned};
use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB};

const CF_LOG: &str = "log";
const CF_LOG_META: &str = "log_meta";
const CF_STATE: &str = "state";
const CF_STATE_META: &str = "state_meta";
const APPLIED_META_KEY: &[u8] = b"applied";

/// A node's RocksDB database. Clone it freely: clones share one handle.
#[derive(Clone)]
pub struct RocksStore {
    db: Arc<DB>,
}

fn io(what: &str, e: rocksdb::Error) -> StorageError {
    StorageError::Io(format!("{what}: {e}"))
}

impl RocksStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // Keep memory modest on small machines; the working set is small ciphertext records.
        opts.set_max_background_jobs(2);
        let cfs = [CF_LOG, CF_LOG_META, CF_STATE, CF_STATE_META]
            .into_iter()
            .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(|e| io("open the database", e))?;
        Ok(Self { db: Arc::new(db) })
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily, StorageError> {
        self.db.cf_handle(name).ok_or_else(|| StorageError::Corrupt(format!("column family {name} is missing")))
    }

    fn write(&self, batch: WriteBatch, what: &str) -> Result<(), StorageError> {
        self.write_with(batch, Durability::Synced, what)
    }

    fn write_with(&self, batch: WriteBatch, durability: Durability, what: &str) -> Result<(), StorageError> {
        let mut opts = WriteOptions::default();
        opts.set_sync(durability == Durability::Synced);
        self.db.write_opt(batch, &opts).map_err(|e| io(what, e))
    }

    /// Every live key/value of the `state` column family.
    fn state_entries(&self) -> Result<Vec<(Vec<u8>, Versioned)>, StorageError> {
        let cf = self.cf(CF_STATE)?;
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (k, v) = item.map_err(|e| io("scan state", e))?;
            out.push((k.to_vec(), decode_versioned(&v)?));
        }
        Ok(out)
    }
}

fn encode_versioned(index: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + value.len());
    out.extend_from_slice(&index.to_be_bytes());
    out.extend_from_slice(value);
    out
}

fn decode_versioned(raw: &[u8]) -> Result<Versioned, StorageError> {
    if raw.len() < 8 {
        return Err(StorageError::Corrupt("state value is shorter than its version stamp".into()));
    }
    let (stamp, value) = raw.split_at(8);
    let modified_at = u64::from_be_bytes(stamp.try_into().map_err(|_| StorageError::Corrupt("version stamp".into()))?);
    Ok(Versioned { modified_at, value: value.to_vec() })
}

fn decode_index(raw: &[u8]) -> Result<u64, StorageError> {
    let bytes: [u8; 8] = raw.try_into().map_err(|_| StorageError::Corrupt("log key is not 8 bytes".into()))?;
    Ok(u64::from_be_bytes(bytes))
}

impl LogStore for RocksStore {
    fn append(&self, entries: &[(u64, Vec<u8>)], durability: Durability) -> Result<(), StorageError> {
        if let (Some((first, _)), Some((last, _))) = (entries.first(), self.last()?) {
            if *first != last + 1 {
                return Err(StorageError::Contract(format!("append at {first} would leave a hole after {last}")));
            }
        }
        let cf = self.cf(CF_LOG)?;
        let mut batch = WriteBatch::default();
        let mut expected = None;
        for (index, bytes) in entries {
            if expected.is_some_and(|e| e != *index) {
                return Err(StorageError::Contract("appended entries are not contiguous".into()));
            }
            batch.put_cf(cf, index.to_be_bytes(), bytes);
            expected = Some(index + 1);
        }
        self.write_with(batch, durability, "append to the raft log")
    }

    fn truncate_after(&self, index: Option<u64>) -> Result<(), StorageError> {
        let cf = self.cf(CF_LOG)?;
        let from = index.map_or(0, |i| i + 1);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf, from.to_be_bytes(), u64::MAX.to_be_bytes());
        batch.delete_cf(cf, u64::MAX.to_be_bytes());
        self.write(batch, "truncate the raft log")
    }

    fn purge_upto(&self, index: u64) -> Result<(), StorageError> {
        let cf = self.cf(CF_LOG)?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf, 0u64.to_be_bytes(), index.saturating_add(1).to_be_bytes());
        self.write(batch, "purge the raft log")
    }

    fn range(&self, start: u64, end: u64) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        let cf = self.cf(CF_LOG)?;
        let mut out = Vec::new();
        if start >= end {
            return Ok(out);
        }
        let from = start.to_be_bytes();
        for item in self.db.iterator_cf(cf, IteratorMode::From(&from, Direction::Forward)) {
            let (k, v) = item.map_err(|e| io("read the raft log", e))?;
            let index = decode_index(&k)?;
            if index >= end {
                break;
            }
            out.push((index, v.to_vec()));
        }
        Ok(out)
    }

    fn last(&self) -> Result<Option<(u64, Vec<u8>)>, StorageError> {
        let cf = self.cf(CF_LOG)?;
        match self.db.iterator_cf(cf, IteratorMode::End).next() {
            Some(item) => {
                let (k, v) = item.map_err(|e| io("read the raft log", e))?;
                Ok(Some((decode_index(&k)?, v.to_vec())))
            }
            None => Ok(None),
        }
    }

    fn put_meta(&self, key: &str, value: &[u8], durability: Durability) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_LOG_META)?, key.as_bytes(), value);
        self.write_with(batch, durability, "save raft metadata")
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.db.get_cf(self.cf(CF_LOG_META)?, key.as_bytes()).map_err(|e| io("read raft metadata", e))
    }
}

impl StateStore for RocksStore {
    fn get(&self, key: &[u8]) -> Result<Option<Versioned>, StorageError> {
        match self.db.get_cf(self.cf(CF_STATE)?, key).map_err(|e| io("read state", e))? {
            Some(raw) => Ok(Some(decode_versioned(&raw)?)),
            None => Ok(None),
        }
    }

    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Versioned)>, StorageError> {
        let cf = self.cf(CF_STATE)?;
        let start = match after {
            Some(a) if a >= prefix => a.to_vec(),
            _ => prefix.to_vec(),
        };
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, IteratorMode::From(&start, Direction::Forward)) {
            if out.len() == limit {
                break;
            }
            let (k, v) = item.map_err(|e| io("scan state", e))?;
            if !k.starts_with(prefix) {
                break;
            }
            if after.is_some_and(|a| &k[..] <= a) {
                continue;
            }
            out.push((k.to_vec(), decode_versioned(&v)?));
        }
        Ok(out)
    }

    fn commit(&self, index: u64, ops: &[Op], applied_meta: &[u8]) -> Result<(), StorageError> {
        let cf = self.cf(CF_STATE)?;
        let mut batch = WriteBatch::default();
        let mut put_in_batch: Vec<&[u8]> = Vec::new();
        for op in ops {
            match op {
                Op::Put { key, value } => {
                    batch.put_cf(cf, key, encode_versioned(index, value));
                    put_in_batch.push(key);
                }
                Op::Delete { key } => batch.delete_cf(cf, key),
                Op::DeletePrefix { prefix } => match prefix_end(prefix) {
                    Some(end) => batch.delete_range_cf(cf, prefix, &end),
                    None => {
                        // A prefix of only 0xff bytes has no upper bound: delete its keys one by one.
                        for (key, _) in self.scan(prefix, None, usize::MAX)? {
                            batch.delete_cf(cf, key);
                        }
                        for key in put_in_batch.iter().filter(|k| k.starts_with(prefix)) {
                            batch.delete_cf(cf, key);
                        }
                    }
                },
            }
        }
        batch.put_cf(self.cf(CF_STATE_META)?, APPLIED_META_KEY, applied_meta);
        self.write(batch, "apply a raft entry to state")
    }

    fn applied_meta(&self) -> Result<Option<Vec<u8>>, StorageError> {
        self.db.get_cf(self.cf(CF_STATE_META)?, APPLIED_META_KEY).map_err(|e| io("read applied metadata", e))
    }

    fn export(&self) -> Result<Vec<u8>, StorageError> {
        // A RocksDB snapshot gives one consistent view of both column families.
        let snap = self.db.snapshot();
        let meta =
            snap.get_cf(self.cf(CF_STATE_META)?, APPLIED_META_KEY).map_err(|e| io("read applied metadata", e))?;
        let mut entries = Vec::new();
        for item in snap.iterator_cf(self.cf(CF_STATE)?, IteratorMode::Start) {
            let (k, v) = item.map_err(|e| io("export state", e))?;
            entries.push((k.to_vec(), decode_versioned(&v)?));
        }
        Ok(Export { applied_meta: meta, entries }.encode())
    }

    fn import(&self, blob: &[u8]) -> Result<(), StorageError> {
        let export = Export::decode(blob)?;
        let cf = self.cf(CF_STATE)?;
        let mut batch = WriteBatch::default();
        for (key, _) in self.state_entries()? {
            batch.delete_cf(cf, key);
        }
        for (key, v) in &export.entries {
            batch.put_cf(cf, key, encode_versioned(v.modified_at, &v.value));
        }
        let meta_cf = self.cf(CF_STATE_META)?;
        match &export.applied_meta {
            Some(m) => batch.put_cf(meta_cf, APPLIED_META_KEY, m),
            None => batch.delete_cf(meta_cf, APPLIED_META_KEY),
        }
        self.write(batch, "install a snapshot")
    }

    fn put_aux(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_STATE_META)?, format!("aux/{key}"), value);
        self.write(batch, "save state metadata")
    }

    fn get_aux(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.db.get_cf(self.cf(CF_STATE_META)?, format!("aux/{key}")).map_err(|e| io("read state metadata", e))
    }
}
