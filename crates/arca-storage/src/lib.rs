//! Storage seams: the Raft log store and the state store, as byte-level traits.
//!
//! **Architecture Invariant:** this crate links neither RocksDB nor openraft. `arca-storage-rocksdb`
//! implements the traits on disk, [`mem`] implements them in memory (for the simulation, whose crash
//! model it also provides), and [`conformance`] is the suite every implementation must pass.
//!
//! The state store holds opaque keys (keyed hashes) and opaque values (barrier ciphertext). Each value
//! carries the log index that last wrote it, which is what [`proposal`] preconditions compare against:
//! that is how a decision made on the leader stays valid when it is applied.
#![forbid(unsafe_code)]

pub mod conformance;
pub mod mem;
pub mod proposal;
pub mod snapshot;

use serde::{Deserialize, Serialize};

/// Storage failures. The message names the operation; it never carries keys or values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// The device or database failed.
    #[error("storage I/O failed while trying to {0}")]
    Io(String),
    /// Bytes read back do not decode: the store is corrupt or from another version.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The store was asked to do something its contract forbids (a hole in the log, say).
    #[error("storage contract violated: {0}")]
    Contract(String),
}

/// A value with the log index of the entry that last wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned {
    pub modified_at: u64,
    pub value: Vec<u8>,
}

/// One write to the state store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        key: Vec<u8>,
    },
    /// Deletes every key that starts with `prefix`.
    DeletePrefix {
        prefix: Vec<u8>,
    },
}

/// How a log write reaches the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Flushed to stable storage before the call returns (fsync). Everything Raft promises rests on this.
    Synced,
    /// Handed to the OS or a write buffer only: lost if the machine crashes before a later synced write
    /// (which, like a write-ahead log's fsync, makes everything before it durable too). Arca itself never
    /// uses this; it exists so a deliberate fault can be injected and caught (`danger-faults`).
    Buffered,
}

/// The Raft log: entries by index, plus a few durable metadata values (vote, committed, purged).
///
/// Contract: `append` and `put_meta` with [`Durability::Synced`], `truncate_after` and `purge_upto` are
/// durable when they return; entries are contiguous (no holes); calls from one caller are never reordered.
pub trait LogStore: Send + Sync + 'static {
    fn append(&self, entries: &[(u64, Vec<u8>)], durability: Durability) -> Result<(), StorageError>;
    /// Removes every entry with an index greater than `index` (all entries if `None`).
    fn truncate_after(&self, index: Option<u64>) -> Result<(), StorageError>;
    /// Removes every entry with an index up to and including `index`.
    fn purge_upto(&self, index: u64) -> Result<(), StorageError>;
    /// Entries with `start <= index < end`, in order.
    fn range(&self, start: u64, end: u64) -> Result<Vec<(u64, Vec<u8>)>, StorageError>;
    /// The entry with the highest index.
    fn last(&self) -> Result<Option<(u64, Vec<u8>)>, StorageError>;
    fn put_meta(&self, key: &str, value: &[u8], durability: Durability) -> Result<(), StorageError>;
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError>;
    /// Makes every write made before it durable (those made [`Durability::Buffered`] included).
    fn sync(&self) -> Result<(), StorageError>;
}

/// The applied state: versioned key/values plus the applied-state metadata, changed atomically.
///
/// Contract: `commit` writes all ops and the metadata in one atomic step, visible to reads at once but
/// not yet durable: a crash may lose the latest commits (never part of one, never one without those
/// before it), and `sync` makes every commit before it durable. The applied state is rebuilt from the
/// synced Raft log after a crash, so only what the log no longer holds (before a purge) needs `sync`.
/// `import_from` replaces the whole state (keys and metadata) atomically and durably.
///
/// A follower may apply an entry whose append is written but not yet synced, so a state store must
/// never become durable ahead of the log it is paired with: RocksDB keeps both in one write-ahead
/// log (what a crash keeps is a prefix of the writes, in order); the memory stores sync the log
/// before they report an append.
pub trait StateStore: Send + Sync + 'static {
    fn get(&self, key: &[u8]) -> Result<Option<Versioned>, StorageError>;
    /// Up to `limit` entries whose key starts with `prefix` and sorts after `after`, in key order.
    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Versioned)>, StorageError>;
    /// Applies `ops`, stamping every put with `index`, and stores `applied_meta`, atomically (durable
    /// after the next [`StateStore::sync`]).
    fn commit(&self, index: u64, ops: &[Op], applied_meta: &[u8]) -> Result<(), StorageError>;
    /// Makes every commit made before it durable.
    fn sync(&self) -> Result<(), StorageError>;
    fn applied_meta(&self) -> Result<Option<Vec<u8>>, StorageError>;
    /// Writes the applied metadata and then every key, version and value in key order, all as of one
    /// instant, to `sink`, without holding the state in memory.
    fn export_to(&self, sink: &mut dyn snapshot::ExportSink) -> Result<(), StorageError>;
    /// Replaces the whole state (keys and applied metadata) with `applied_meta` and `records`,
    /// atomically: if a record is an error, or the store fails, or the process dies part way, the
    /// state is the old one, whole. Holds no more than a bounded batch of records in memory.
    fn import_from(&self, applied_meta: Option<&[u8]>, records: &mut snapshot::Records<'_>)
        -> Result<(), StorageError>;
}

/// The smallest key greater than every key starting with `prefix`, or `None` if there is none.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_handles_carries() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
    }
}
