//! openraft's state machine over an [`arca_storage::StateStore`].
//!
//! Applying needs no keys: each entry's proposal is checked against its preconditions and written in
//! one atomic commit together with the applied log id and membership. Sealed nodes therefore
//! replicate and apply like any other.
//!
//! Applying syncs once per batch, not once per entry: openraft hands over every committed entry at
//! once, each is committed to the state without a sync, and one sync makes the batch durable before
//! any of its answers is sent. So no write is acknowledged, and no read served, from state a crash
//! could take back. Building a snapshot syncs the state too, before openraft may purge the log.

use std::collections::BTreeSet;
use std::io;
use std::sync::{Arc, RwLock};

use arca_storage::proposal::{apply_proposal, ApplyOutcome};
use arca_storage::snapshot::{SnapshotDecoder, SnapshotEncoder, SnapshotFile, SnapshotFiles};
use arca_storage::StateStore;
use arca_types::limits::SNAPSHOT_RECORD_BYTES_MAX;
use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use serde::{Deserialize, Serialize};

use crate::codec::{decode, encode, io_error};
use crate::TypeConfig;

type LogId = openraft::alias::LogIdOf<TypeConfig>;
type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
type Snapshot = openraft::alias::SnapshotOf<TypeConfig, SnapshotFile>;

/// Reads and writes of snapshot files go through buffers of this many bytes.
const SNAPSHOT_IO_BUFFER_BYTES: usize = 256 * 1024;

/// What the state store records as applied, in the same commit as the data.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AppliedMeta {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    /// Every node that was in a membership and then left it. Node ids are never reused, so a node
    /// here is removed for good: cluster admission refuses its certificate.
    pub removed_nodes: BTreeSet<u64>,
}

/// The removed nodes as last applied, shared with whoever checks peers (cheap to read).
pub type RemovedNodes = Arc<RwLock<BTreeSet<u64>>>;

/// The replicated state machine of one node. Cheap to clone.
#[derive(Clone)]
pub struct StateMachine {
    store: Arc<dyn StateStore>,
    files: SnapshotFiles,
    removed: RemovedNodes,
}

impl StateMachine {
    pub fn new(store: Arc<dyn StateStore>, files: SnapshotFiles) -> Self {
        Self::sharing_removed(store, files, RemovedNodes::default())
    }

    /// A state machine that keeps `removed` current (what a node restarting Raft in a new lineage
    /// hands on, so whoever checks peers reads the same set).
    pub fn sharing_removed(store: Arc<dyn StateStore>, files: SnapshotFiles, removed: RemovedNodes) -> Self {
        let machine = Self { store, files, removed };
        if let Ok(meta) = machine.meta() {
            machine.publish(&meta);
        }
        machine
    }

    /// The removed nodes, kept current as entries and snapshots apply.
    pub fn removed_nodes(&self) -> RemovedNodes {
        self.removed.clone()
    }

    fn publish(&self, meta: &AppliedMeta) {
        *self.removed.write().unwrap_or_else(|p| p.into_inner()) = meta.removed_nodes.clone();
    }

    fn meta(&self) -> Result<AppliedMeta, io::Error> {
        match self.store.applied_meta().map_err(io_error)? {
            Some(bytes) => decode("applied metadata", &bytes),
            None => Ok(AppliedMeta::default()),
        }
    }
}

fn decode_applied(meta: Option<&[u8]>) -> Result<AppliedMeta, io::Error> {
    match meta {
        Some(bytes) => decode("applied metadata", bytes),
        None => Ok(AppliedMeta::default()),
    }
}

/// The index of the last entry applied to `state`, as stored there, for checks from outside openraft
/// (the simulation compares replicas that applied the same index). `None` if nothing was applied.
pub fn stored_applied_index(state: &dyn StateStore) -> Result<Option<u64>, io::Error> {
    let meta = decode_applied(state.applied_meta().map_err(io_error)?.as_deref())?;
    Ok(meta.last_applied.map(|id| id.index))
}

/// A snapshot file's records, read through a buffer.
type FileRecords = SnapshotDecoder<io::BufReader<arca_storage::snapshot::SnapshotReader>>;

/// Opens a snapshot file: its records, and the applied metadata of its header.
fn open_snapshot(file: &SnapshotFile) -> Result<(FileRecords, Option<Vec<u8>>), io::Error> {
    let input = io::BufReader::with_capacity(SNAPSHOT_IO_BUFFER_BYTES, file.reader());
    SnapshotDecoder::open(input, SNAPSHOT_RECORD_BYTES_MAX).map_err(io_error)
}

/// Reads a snapshot file far enough to know what it applied: the applied metadata in its header.
pub fn read_snapshot_meta(file: &SnapshotFile) -> Result<AppliedMeta, io::Error> {
    let (_, meta) = open_snapshot(file)?;
    decode_applied(meta.as_deref())
}

/// Reads a whole snapshot file, record by record, and returns what it applied only if every record
/// is well-formed and its trailer matches: what a node checks of a snapshot a peer sent before it
/// hands it to Raft (whose storage errors stop the node).
pub fn verify_snapshot(file: &SnapshotFile) -> Result<AppliedMeta, io::Error> {
    let (records, meta) = open_snapshot(file)?;
    let applied = decode_applied(meta.as_deref())?;
    for record in records {
        record.map_err(io_error)?;
    }
    Ok(applied)
}

fn snapshot_of(file: SnapshotFile, applied: AppliedMeta) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta { last_log_id: applied.last_applied, last_membership: applied.membership },
        snapshot: file,
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotFile;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        // Built without a size limit: a leader that could not build one would keep its whole log.
        // Receivers refuse snapshots over `SNAPSHOT_BYTES_MAX`.
        let writer = self.files.create(u64::MAX).map_err(io_error)?;
        let mut encoder = SnapshotEncoder::new(io::BufWriter::with_capacity(SNAPSHOT_IO_BUFFER_BYTES, writer));
        self.store.export_to(&mut encoder).map_err(io_error)?;
        // Everything the snapshot holds is on disk before openraft may purge the log up to it.
        self.store.sync().map_err(io_error)?;
        let writer = encoder.finish().map_err(io_error)?.into_inner().map_err(|e| e.into_error())?;
        let file = writer.finish().map_err(io_error)?;
        let applied = read_snapshot_meta(&file)?;
        self.files.keep(&file).map_err(io_error)?;
        tracing::info!(last_log_id = ?applied.last_applied, bytes = file.len(), "built snapshot");
        Ok(snapshot_of(file, applied))
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotFile;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let meta = self.meta()?;
        Ok((meta.last_applied, meta.membership))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut meta = self.meta()?;
        // Answers wait until the batch is on disk: one sync for every entry openraft handed over at once.
        let mut answers = Vec::new();
        while let Some((entry, responder)) = entries.try_next().await? {
            meta.last_applied = Some(entry.log_id);
            let outcome = match entry.payload {
                EntryPayload::Normal(proposal) => {
                    apply_proposal(&*self.store, entry.log_id.index, &proposal, &encode(&meta)).map_err(io_error)?
                }
                EntryPayload::Membership(membership) => {
                    let before: BTreeSet<u64> = meta.membership.membership().nodes().map(|(id, _)| *id).collect();
                    let after: BTreeSet<u64> = membership.nodes().map(|(id, _)| *id).collect();
                    meta.removed_nodes.extend(before.difference(&after));
                    meta.membership = StoredMembership::new(Some(entry.log_id), membership);
                    self.store.commit(entry.log_id.index, &[], &encode(&meta)).map_err(io_error)?;
                    self.publish(&meta);
                    ApplyOutcome::Applied
                }
                EntryPayload::Blank => {
                    self.store.commit(entry.log_id.index, &[], &encode(&meta)).map_err(io_error)?;
                    ApplyOutcome::Applied
                }
            };
            answers.push((responder, outcome));
        }
        if !answers.is_empty() {
            self.store.sync().map_err(io_error)?;
        }
        for (responder, outcome) in answers {
            if let Some(responder) = responder {
                responder.send(outcome);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: SnapshotFile) -> Result<(), io::Error> {
        let (mut records, applied_bytes) = open_snapshot(&snapshot)?;
        let applied = decode_applied(applied_bytes.as_deref())?;
        if applied.last_applied != meta.last_log_id {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "snapshot data does not match its metadata"));
        }
        self.store.import_from(applied_bytes.as_deref(), &mut records).map_err(io_error)?;
        self.publish(&applied);
        self.files.keep(&snapshot).map_err(io_error)?;
        tracing::info!(last_log_id = ?meta.last_log_id, bytes = snapshot.len(), "installed snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        match self.files.current().map_err(io_error)? {
            Some(file) => {
                let applied = read_snapshot_meta(&file)?;
                Ok(Some(snapshot_of(file, applied)))
            }
            None => Ok(None),
        }
    }
}
