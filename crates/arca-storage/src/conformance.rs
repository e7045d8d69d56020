//! The conformance suite every [`LogStore`] and [`StateStore`] implementation must pass.
//!
//! Each function takes a factory that returns a fresh, empty store; implementations call them from
//! their own tests. Durability across a process restart is checked by the implementations' own
//! reopen tests, since only they know how to reopen.

use crate::proposal::{apply_proposal, ApplyOutcome, Precondition, Proposal};
use crate::snapshot::{export_bytes, import_bytes, ExportSink, SnapshotEncoder};
use crate::{Durability, LogStore, Op, StateStore, StorageError};

fn entries(range: std::ops::Range<u64>) -> Vec<(u64, Vec<u8>)> {
    range.map(|i| (i, format!("entry-{i}").into_bytes())).collect()
}

/// Runs every log store check.
pub fn log_store_suite<L: LogStore>(make: impl Fn() -> L) {
    append_and_read_back(&make());
    truncate_and_purge(&make());
    holes_are_refused(&make());
    meta_round_trips(&make());
}

fn append_and_read_back(log: &dyn LogStore) {
    assert_eq!(log.last().unwrap(), None);
    log.append(&entries(1..4), Durability::Synced).unwrap();
    log.append(&entries(4..6), Durability::Synced).unwrap();
    assert_eq!(log.range(1, 6).unwrap(), entries(1..6));
    assert_eq!(log.range(2, 4).unwrap(), entries(2..4));
    assert_eq!(log.range(4, 4).unwrap(), vec![]);
    assert_eq!(log.range(7, 3).unwrap(), vec![]);
    assert_eq!(log.last().unwrap(), Some((5, b"entry-5".to_vec())));
}

fn truncate_and_purge(log: &dyn LogStore) {
    log.append(&entries(1..11), Durability::Synced).unwrap();
    log.truncate_after(Some(7)).unwrap();
    assert_eq!(log.last().unwrap().unwrap().0, 7);
    log.append(&entries(8..9), Durability::Synced).unwrap();
    assert_eq!(log.last().unwrap().unwrap().0, 8);
    log.purge_upto(3).unwrap();
    assert_eq!(log.range(0, 100).unwrap(), entries(4..9));
    log.purge_upto(8).unwrap();
    assert_eq!(log.range(0, 100).unwrap(), vec![]);
    assert_eq!(log.last().unwrap(), None);
    log.append(&entries(9..10), Durability::Synced).unwrap();
    assert_eq!(log.range(0, 100).unwrap(), entries(9..10));
    log.truncate_after(None).unwrap();
    assert_eq!(log.last().unwrap(), None);
}

fn holes_are_refused(log: &dyn LogStore) {
    log.append(&entries(1..3), Durability::Synced).unwrap();
    assert!(matches!(log.append(&entries(5..6), Durability::Synced), Err(StorageError::Contract(_))));
    assert_eq!(log.last().unwrap().unwrap().0, 2, "a refused append changes nothing");
}

fn meta_round_trips(log: &dyn LogStore) {
    assert_eq!(log.get_meta("vote").unwrap(), None);
    log.put_meta("vote", b"v1", Durability::Synced).unwrap();
    log.put_meta("vote", b"v2", Durability::Synced).unwrap();
    log.put_meta("committed", b"c", Durability::Synced).unwrap();
    assert_eq!(log.get_meta("vote").unwrap(), Some(b"v2".to_vec()));
    assert_eq!(log.get_meta("committed").unwrap(), Some(b"c".to_vec()));
}

/// Runs every state store check.
pub fn state_store_suite<S: StateStore>(make: impl Fn() -> S) {
    commit_stamps_versions(&make());
    scan_respects_prefix_cursor_and_limit(&make());
    delete_prefix_removes_only_the_prefix(&make());
    export_import_replaces_everything(&make(), &make());
    a_failed_import_leaves_the_old_state_whole(&make());
    preconditions_guard_writes(&make());
}

fn put(key: &[u8], value: &[u8]) -> Op {
    Op::Put { key: key.to_vec(), value: value.to_vec() }
}

fn commit_stamps_versions(s: &dyn StateStore) {
    assert_eq!(s.applied_meta().unwrap(), None);
    s.commit(5, &[put(b"a", b"1"), put(b"b", b"2")], b"m5").unwrap();
    assert_eq!(s.get(b"a").unwrap().unwrap().modified_at, 5);
    s.commit(6, &[put(b"a", b"3"), Op::Delete { key: b"b".to_vec() }], b"m6").unwrap();
    let a = s.get(b"a").unwrap().unwrap();
    assert_eq!((a.modified_at, a.value.as_slice()), (6, &b"3"[..]));
    assert_eq!(s.get(b"b").unwrap(), None);
    assert_eq!(s.applied_meta().unwrap(), Some(b"m6".to_vec()));
    s.sync().unwrap();
    assert_eq!(s.applied_meta().unwrap(), Some(b"m6".to_vec()), "a sync changes nothing a read sees");
}

fn scan_respects_prefix_cursor_and_limit(s: &dyn StateStore) {
    let ops: Vec<Op> = [&b"p/1"[..], b"p/2", b"p/3", b"q/1", b"o/9"].iter().map(|k| put(k, b"v")).collect();
    s.commit(1, &ops, b"m").unwrap();
    let keys = |v: Vec<(Vec<u8>, crate::Versioned)>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(keys(s.scan(b"p/", None, 10).unwrap()), vec![b"p/1".to_vec(), b"p/2".to_vec(), b"p/3".to_vec()]);
    assert_eq!(keys(s.scan(b"p/", None, 2).unwrap()), vec![b"p/1".to_vec(), b"p/2".to_vec()]);
    assert_eq!(keys(s.scan(b"p/", Some(b"p/2"), 10).unwrap()), vec![b"p/3".to_vec()]);
    assert_eq!(keys(s.scan(b"p/", Some(b"p/3"), 10).unwrap()), Vec::<Vec<u8>>::new());
    assert_eq!(keys(s.scan(b"z", None, 10).unwrap()), Vec::<Vec<u8>>::new());
}

fn delete_prefix_removes_only_the_prefix(s: &dyn StateStore) {
    s.commit(1, &[put(b"v1/a", b"x"), put(b"v1/b", b"x"), put(b"v2/a", b"x"), put(b"v1", b"x")], b"m").unwrap();
    s.commit(2, &[Op::DeletePrefix { prefix: b"v1/".to_vec() }], b"m").unwrap();
    assert_eq!(s.get(b"v1/a").unwrap(), None);
    assert_eq!(s.get(b"v1/b").unwrap(), None);
    assert!(s.get(b"v2/a").unwrap().is_some());
    assert!(s.get(b"v1").unwrap().is_some());
    s.commit(3, &[put(&[0xff, 0xff, 1], b"x"), Op::DeletePrefix { prefix: vec![0xff, 0xff] }], b"m").unwrap();
    assert_eq!(s.get(&[0xff, 0xff, 1]).unwrap(), None, "a prefix of 0xff bytes has no upper bound and still works");
}

fn export_import_replaces_everything(from: &dyn StateStore, to: &dyn StateStore) {
    from.commit(3, &[put(b"a", b"1"), put(b"b", b"2")], b"meta-3").unwrap();
    to.commit(9, &[put(b"stale", b"x")], b"meta-9").unwrap();
    let snapshot = export_bytes(from).unwrap();
    import_bytes(to, &snapshot, 64).unwrap();
    assert_eq!(to.get(b"stale").unwrap(), None);
    assert_eq!(to.get(b"a").unwrap().unwrap().modified_at, 3);
    assert_eq!(to.get(b"b").unwrap().unwrap().value, b"2".to_vec());
    assert_eq!(to.applied_meta().unwrap(), Some(b"meta-3".to_vec()));
    assert_eq!(export_bytes(to).unwrap(), snapshot, "an imported state exports as it was exported");
    // The store goes on as usual after an import: new writes, and another import over it.
    to.commit(4, &[put(b"c", b"3")], b"meta-4").unwrap();
    assert_eq!(to.scan(b"", None, 10).unwrap().len(), 3);
    import_bytes(to, &export_bytes(from).unwrap(), 64).unwrap();
    assert_eq!(to.get(b"c").unwrap(), None);
    // An empty state imports as empty.
    let mut empty = SnapshotEncoder::new(Vec::new());
    empty.applied_meta(None).unwrap();
    import_bytes(to, &empty.finish().unwrap(), 64).unwrap();
    assert_eq!((to.scan(b"", None, 10).unwrap().len(), to.applied_meta().unwrap()), (0, None));
}

/// Many records, then an error (a truncated stream, a record over its limit): nothing changes.
fn a_failed_import_leaves_the_old_state_whole(s: &dyn StateStore) {
    s.commit(7, &[put(b"kept", b"1")], b"meta-7").unwrap();
    let source = crate::mem::MemState::default();
    let many: Vec<Op> = (0..3000u32).map(|i| put(format!("k/{i:05}").as_bytes(), &[1; 512])).collect();
    source.commit(8, &many, b"meta-8").unwrap();
    let snapshot = export_bytes(&source).unwrap();
    assert!(import_bytes(s, &snapshot[..snapshot.len() - 1], 1024).is_err());
    assert!(import_bytes(s, &snapshot, 511).is_err());
    let failing = (0..2999u32)
        .map(|i| Ok((format!("k/{i:05}").into_bytes(), crate::Versioned { modified_at: 8, value: vec![1; 512] })))
        .chain(std::iter::once(Err(StorageError::Io("the sender went away".into()))));
    assert!(s.import_from(Some(b"meta-8"), &mut failing.into_iter()).is_err());
    assert_eq!(s.scan(b"", None, 10).unwrap().len(), 1, "a failed import changes nothing");
    assert_eq!(s.get(b"kept").unwrap().unwrap().modified_at, 7);
    assert_eq!(s.applied_meta().unwrap(), Some(b"meta-7".to_vec()));
    // And the store still imports and commits afterwards.
    import_bytes(s, &snapshot, 1024).unwrap();
    assert_eq!(s.scan(b"k/", None, 5000).unwrap().len(), 3000);
    assert_eq!(s.get(b"kept").unwrap(), None);
    s.commit(9, &[put(b"after", b"1")], b"meta-9").unwrap();
    assert_eq!(s.get(b"after").unwrap().unwrap().modified_at, 9);
}

fn preconditions_guard_writes(s: &dyn StateStore) {
    let create = Proposal {
        preconditions: vec![Precondition { key: b"k".to_vec(), modified_at: None }],
        ops: vec![put(b"k", b"v1")],
    };
    assert_eq!(apply_proposal(s, 10, &create, b"m10").unwrap(), ApplyOutcome::Applied);
    assert_eq!(apply_proposal(s, 11, &create, b"m11").unwrap(), ApplyOutcome::Conflict);
    assert_eq!(s.get(b"k").unwrap().unwrap().value, b"v1".to_vec());
    assert_eq!(s.applied_meta().unwrap(), Some(b"m11".to_vec()), "a conflict still advances the applied index");
    let update = Proposal {
        preconditions: vec![Precondition { key: b"k".to_vec(), modified_at: Some(10) }],
        ops: vec![put(b"k", b"v2")],
    };
    assert_eq!(apply_proposal(s, 12, &update, b"m12").unwrap(), ApplyOutcome::Applied);
    assert_eq!(apply_proposal(s, 13, &update, b"m13").unwrap(), ApplyOutcome::Conflict);
    assert_eq!(s.get(b"k").unwrap().unwrap().modified_at, 12);
}
