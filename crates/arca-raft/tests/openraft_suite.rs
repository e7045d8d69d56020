//! openraft's own storage conformance suite, run against both storage implementations through Arca's
//! adapters: the in-memory stores (used by the simulation) and RocksDB (used by `arcad`), with appends
//! synced inline and on the sync thread (as `arcad` runs).

use std::sync::Arc;

use arca_raft::log_store::LogStore;
use arca_raft::state_machine::StateMachine;
use arca_raft::TypeConfig;
use arca_storage::mem::{MemLog, MemState};
use arca_storage::snapshot::SnapshotFiles;
use arca_storage_rocksdb::RocksStore;
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::StorageError;

struct MemBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, ()> for MemBuilder {
    async fn build(&self) -> Result<((), LogStore, StateMachine), StorageError<TypeConfig>> {
        let machine = StateMachine::new(Arc::new(MemState::default()), SnapshotFiles::in_memory());
        Ok(((), LogStore::new(Arc::new(MemLog::default())), machine))
    }
}

/// RocksDB stores; `true`: appends synced on the sync thread.
struct RocksBuilder(bool);

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for RocksBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("create a temp dir");
        let store = RocksStore::open(&dir.path().join("db")).expect("open rocksdb");
        let files = SnapshotFiles::in_dir(dir.path().join("snapshots")).expect("open the snapshot dir");
        let log: Arc<RocksStore> = Arc::new(store.clone());
        let log = if self.0 { LogStore::syncing_on_thread(log) } else { LogStore::new(log) };
        Ok((dir, log, StateMachine::new(Arc::new(store), files)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mem_stores_pass_openraft_suite() {
    Suite::test_all(MemBuilder).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocks_stores_pass_openraft_suite() {
    Suite::test_all(RocksBuilder(false)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocks_stores_syncing_on_a_thread_pass_openraft_suite() {
    Suite::test_all(RocksBuilder(true)).await.unwrap();
}
