//! The shared storage conformance suite, run against real RocksDB, plus reopen durability checks.

use arca_storage::{Durability, LogStore, Op, StateStore};
use arca_storage_rocksdb::RocksStore;

fn fresh() -> RocksStore {
    // The directory must outlive the store; tests are short, so leak it into the OS temp dir.
    let dir = tempfile::tempdir().unwrap().keep();
    RocksStore::open(&dir).unwrap()
}

#[test]
fn rocks_log_passes_the_conformance_suite() {
    arca_storage::conformance::log_store_suite(fresh);
}

#[test]
fn rocks_state_passes_the_conformance_suite() {
    arca_storage::conformance::state_store_suite(fresh);
}

#[test]
fn everything_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = RocksStore::open(dir.path()).unwrap();
        s.append(&[(1, b"e1".to_vec()), (2, b"e2".to_vec())], Durability::Synced).unwrap();
        s.put_meta("vote", b"v", Durability::Synced).unwrap();
        s.commit(2, &[Op::Put { key: b"k".to_vec(), value: b"val".to_vec() }], b"meta").unwrap();
        s.put_aux("snapshot", b"snap").unwrap();
    }
    let s = RocksStore::open(dir.path()).unwrap();
    assert_eq!(s.last().unwrap().unwrap().0, 2);
    assert_eq!(s.get_meta("vote").unwrap(), Some(b"v".to_vec()));
    assert_eq!(s.get(b"k").unwrap().unwrap().modified_at, 2);
    assert_eq!(s.applied_meta().unwrap(), Some(b"meta".to_vec()));
    assert_eq!(s.get_aux("snapshot").unwrap(), Some(b"snap".to_vec()));
}
