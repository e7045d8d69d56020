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
    }
    let s = RocksStore::open(dir.path()).unwrap();
    assert_eq!(s.last().unwrap().unwrap().0, 2);
    assert_eq!(s.get_meta("vote").unwrap(), Some(b"v".to_vec()));
    assert_eq!(s.get(b"k").unwrap().unwrap().modified_at, 2);
    assert_eq!(s.applied_meta().unwrap(), Some(b"meta".to_vec()));
}

fn many(n: u32, value: u8) -> Vec<Op> {
    (0..n).map(|i| Op::Put { key: format!("k/{i:06}").into_bytes(), value: vec![value; 1024] }).collect()
}

/// An import larger than one batch, interrupted, leaves the old state whole, also after a reopen; a
/// finished one survives reopen, and imports alternate between the two sides.
#[test]
fn imports_are_atomic_across_batches_and_reopens() {
    use arca_storage::snapshot::{export_bytes, import_bytes};
    let dir = tempfile::tempdir().unwrap();
    let source = arca_storage::mem::MemState::default();
    // 8,000 records of 1 KiB: two batches of 4 MiB and the rest.
    source.commit(50, &many(8000, 2), b"meta-50").unwrap();
    let snapshot = export_bytes(&source).unwrap();
    assert!(snapshot.len() > 2 * arca_storage_rocksdb::IMPORT_BATCH_BYTES_MAX);
    {
        let s = RocksStore::open(dir.path()).unwrap();
        s.commit(7, &many(10, 1), b"meta-7").unwrap();
        assert!(import_bytes(&s, &snapshot[..snapshot.len() - 20], 4096).is_err());
        assert_eq!(s.scan(b"k/", None, usize::MAX).unwrap().len(), 10);
        assert_eq!(s.applied_meta().unwrap(), Some(b"meta-7".to_vec()));
    }
    {
        let s = RocksStore::open(dir.path()).unwrap();
        let kept = s.scan(b"k/", None, usize::MAX).unwrap();
        assert_eq!(kept.len(), 10, "the half-imported records stay out of sight after a reopen");
        assert!(kept.iter().all(|(_, v)| v.modified_at == 7 && v.value == vec![1; 1024]));
        import_bytes(&s, &snapshot, 4096).unwrap();
    }
    for round in 0..3 {
        let s = RocksStore::open(dir.path()).unwrap();
        assert_eq!(export_bytes(&s).unwrap(), snapshot, "round {round}: the installed state survives reopen");
        s.commit(51, &[Op::Delete { key: b"k/000000".to_vec() }], b"meta-51").unwrap();
        import_bytes(&s, &snapshot, 4096).unwrap();
    }
}
