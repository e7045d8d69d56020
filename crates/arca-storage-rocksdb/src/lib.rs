//! RocksDB implementation of Arca's storage traits. The only crate that links RocksDB.
//!
//! One database per node with five column families: `log` (Raft entries by big-endian index),
//! `log_meta` (vote, committed, purged), two sides of the state (`state` and `state_b`, versioned
//! key/values; one is active) and `state_meta` (the applied metadata and which side is active). Every
//! log write that openraft is told about is a `WriteBatch` with `sync = true`, so the vote and the log
//! are on disk before openraft is told they are. Applying an entry is a `WriteBatch` without a sync:
//! all column families share one write-ahead log, so a crash loses at most the latest applies (in
//! order, each whole), which Raft applies again from the synced log.
//!
//! A snapshot is installed into the inactive side in batches of bounded size, then one synced batch
//! makes it the active side, stores its applied metadata and clears the old side: a crash part way
//! leaves the old side active and whole, and memory never holds more than one batch.
#![forbid(unsafe_code)]

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use arca_storage::snapshot::{ExportSink, Records};
use arca_storage::{prefix_end, Durability, LogStore, Op, StateStore, StorageError, Versioned};
use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB};

const CF_LOG: &str = "log";
const CF_LOG_META: &str = "log_meta";
const CF_STATE_META: &str = "state_meta";
const APPLIED_META_KEY: &[u8] = b"applied";
/// Which side of the state is active: `a` (or absent, as every store before snapshots were files) or `b`.
const ACTIVE_SIDE_KEY: &[u8] = b"active_side";
/// Where snapshots were kept before they were files; removed at open.
const OLD_SNAPSHOT_KEY: &[u8] = b"aux/snapshot";
/// An import writes its records in batches of about this many bytes, in bytes.
pub const IMPORT_BATCH_BYTES_MAX: usize = 4 * 1024 * 1024;

/// One of the two column families the state lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    A,
    B,
}

impl Side {
    fn column_family(self) -> &'static str {
        match self {
            Side::A => "state",
            Side::B => "state_b",
        }
    }

    fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

    fn tag(self) -> &'static [u8] {
        match self {
            Side::A => b"a",
            Side::B => b"b",
        }
    }
}

/// A node's RocksDB database. Clone it freely: clones share one handle.
#[derive(Clone)]
pub struct RocksStore {
    db: Arc<DB>,
    /// The active side. Reads and commits hold it shared; the switch at the end of an import holds
    /// it exclusively, so no reader sees the old side after it was cleared.
    active: Arc<RwLock<Side>>,
    /// One import at a time.
    importing: Arc<Mutex<()>>,
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
        let cfs = [CF_LOG, CF_LOG_META, Side::A.column_family(), Side::B.column_family(), CF_STATE_META]
            .into_iter()
            .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(|e| io("open the database", e))?;
        let mut store = Self { db: Arc::new(db), active: Arc::new(RwLock::new(Side::A)), importing: Arc::default() };
        let side = match store.db.get_cf(store.cf(CF_STATE_META)?, ACTIVE_SIDE_KEY).map_err(|e| io("open state", e))? {
            None => Side::A,
            Some(tag) if tag == Side::A.tag() => Side::A,
            Some(tag) if tag == Side::B.tag() => Side::B,
            Some(_) => return Err(StorageError::Corrupt("the active side of the state is neither a nor b".into())),
        };
        store.active = Arc::new(RwLock::new(side));
        // What an import that a crash interrupted left on the inactive side, and the snapshot stored
        // here before snapshots were files, are removed.
        let mut batch = WriteBatch::default();
        store.clear(&mut batch, side.other())?;
        batch.delete_cf(store.cf(CF_STATE_META)?, OLD_SNAPSHOT_KEY);
        store.write(batch, "tidy the state at open")?;
        Ok(store)
    }

    fn side(&self) -> std::sync::RwLockReadGuard<'_, Side> {
        self.active.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds to `batch` the deletion of every key on `side`.
    fn clear(&self, batch: &mut WriteBatch, side: Side) -> Result<(), StorageError> {
        let cf = self.cf(side.column_family())?;
        // One range tombstone for every key below 0xff; keys from 0xff on (none that Arca writes, but
        // the store takes any bytes) one by one.
        batch.delete_range_cf(cf, &[][..], &[0xffu8][..]);
        for item in self.db.iterator_cf(cf, IteratorMode::From(&[0xff], Direction::Forward)) {
            let (key, _) = item.map_err(|e| io("clear state", e))?;
            batch.delete_cf(cf, key);
        }
        Ok(())
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

    fn sync(&self) -> Result<(), StorageError> {
        self.db.flush_wal(true).map_err(|e| io("sync the raft log", e))
    }
}

impl RocksStore {
    fn scan_side(
        &self,
        side: Side,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Versioned)>, StorageError> {
        let cf = self.cf(side.column_family())?;
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
}

impl StateStore for RocksStore {
    fn get(&self, key: &[u8]) -> Result<Option<Versioned>, StorageError> {
        let side = self.side();
        match self.db.get_cf(self.cf(side.column_family())?, key).map_err(|e| io("read state", e))? {
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
        let side = self.side();
        self.scan_side(*side, prefix, after, limit)
    }

    fn commit(&self, index: u64, ops: &[Op], applied_meta: &[u8]) -> Result<(), StorageError> {
        let side = self.side();
        let cf = self.cf(side.column_family())?;
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
                        for (key, _) in self.scan_side(*side, prefix, None, usize::MAX)? {
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
        // Into the write-ahead log without an fsync: the log and the state share that log, so the
        // next synced Raft write (or `sync`) makes this commit durable with everything before it.
        self.write_with(batch, Durability::Buffered, "apply a raft entry to state")
    }

    fn sync(&self) -> Result<(), StorageError> {
        self.db.flush_wal(true).map_err(|e| io("sync the state", e))
    }

    fn applied_meta(&self) -> Result<Option<Vec<u8>>, StorageError> {
        self.db.get_cf(self.cf(CF_STATE_META)?, APPLIED_META_KEY).map_err(|e| io("read applied metadata", e))
    }

    fn export_to(&self, sink: &mut dyn ExportSink) -> Result<(), StorageError> {
        // A RocksDB snapshot gives one consistent view of the metadata and the active side, and keeps
        // showing it even if an import switches sides meanwhile.
        let (snap, side) = {
            let side = self.side();
            (self.db.snapshot(), *side)
        };
        let meta =
            snap.get_cf(self.cf(CF_STATE_META)?, APPLIED_META_KEY).map_err(|e| io("read applied metadata", e))?;
        sink.applied_meta(meta.as_deref())?;
        for item in snap.iterator_cf(self.cf(side.column_family())?, IteratorMode::Start) {
            let (k, v) = item.map_err(|e| io("export state", e))?;
            let v = decode_versioned(&v)?;
            sink.record(&k, v.modified_at, &v.value)?;
        }
        Ok(())
    }

    fn import_from(&self, applied_meta: Option<&[u8]>, records: &mut Records<'_>) -> Result<(), StorageError> {
        let _one_import = self.importing.lock().unwrap_or_else(|p| p.into_inner());
        let target = self.side().other();
        let cf = self.cf(target.column_family())?;
        // The inactive side is never read; a crash before the switch leaves it to the next open.
        let mut batch = WriteBatch::default();
        self.clear(&mut batch, target)?;
        let mut batch_bytes = 0;
        for record in records {
            let (key, v) = record?;
            batch_bytes += key.len() + v.value.len() + 8;
            batch.put_cf(cf, &key, encode_versioned(v.modified_at, &v.value));
            if batch_bytes >= IMPORT_BATCH_BYTES_MAX {
                // Written to the WAL without a sync: the synced switch below makes everything before it
                // durable, and until then nothing reads this side.
                self.write_with(std::mem::take(&mut batch), Durability::Buffered, "install a snapshot")?;
                batch_bytes = 0;
            }
        }
        let meta_cf = self.cf(CF_STATE_META)?;
        let mut active = self.active.write().unwrap_or_else(|p| p.into_inner());
        batch.put_cf(meta_cf, ACTIVE_SIDE_KEY, target.tag());
        match applied_meta {
            Some(m) => batch.put_cf(meta_cf, APPLIED_META_KEY, m),
            None => batch.delete_cf(meta_cf, APPLIED_META_KEY),
        }
        self.clear(&mut batch, target.other())?;
        self.write(batch, "install a snapshot")?;
        *active = target;
        Ok(())
    }
}
