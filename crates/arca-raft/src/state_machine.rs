//! openraft's state machine over an [`arca_storage::StateStore`].
//!
//! Applying needs no keys: each entry's proposal is checked against its preconditions and written in
//! one atomic, durable commit together with the applied log id and membership. Sealed nodes therefore
//! replicate and apply like any other.

use std::collections::BTreeSet;
use std::io;
use std::sync::{Arc, RwLock};

use arca_storage::proposal::{apply_proposal, ApplyOutcome};
use arca_storage::{Export, StateStore};
use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use serde::{Deserialize, Serialize};

use crate::codec::{decode, encode, io_error};
use crate::TypeConfig;

type LogId = openraft::alias::LogIdOf<TypeConfig>;
type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
type Snapshot = openraft::alias::SnapshotOf<TypeConfig, Vec<u8>>;

const AUX_SNAPSHOT: &str = "snapshot";

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
    removed: RemovedNodes,
}

impl StateMachine {
    pub fn new(store: Arc<dyn StateStore>) -> Self {
        let machine = Self { store, removed: RemovedNodes::default() };
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

/// Reads a snapshot's data (the exported state) far enough to know what it applied: the applied
/// metadata it carries.
pub fn read_snapshot_data(snapshot: &[u8]) -> Result<AppliedMeta, io::Error> {
    let export = Export::decode(snapshot).map_err(io_error)?;
    match &export.applied_meta {
        Some(bytes) => decode("applied metadata", bytes),
        None => Ok(AppliedMeta::default()),
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let blob = self.store.export().map_err(io_error)?;
        let applied = read_snapshot_data(&blob)?;
        let meta = SnapshotMeta { last_log_id: applied.last_applied, last_membership: applied.membership };
        self.store.put_aux(AUX_SNAPSHOT, &encode(&(meta.clone(), blob.clone()))).map_err(io_error)?;
        tracing::info!(last_log_id = ?meta.last_log_id, bytes = blob.len(), "built snapshot");
        Ok(Snapshot { meta, snapshot: blob })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = Vec<u8>;
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
            if let Some(responder) = responder {
                responder.send(outcome);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: Vec<u8>) -> Result<(), io::Error> {
        let applied = read_snapshot_data(&snapshot)?;
        if applied.last_applied != meta.last_log_id {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "snapshot data does not match its metadata"));
        }
        self.store.import(&snapshot).map_err(io_error)?;
        self.publish(&applied);
        self.store.put_aux(AUX_SNAPSHOT, &encode(&(meta.clone(), snapshot))).map_err(io_error)?;
        tracing::info!(last_log_id = ?meta.last_log_id, "installed snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        match self.store.get_aux(AUX_SNAPSHOT).map_err(io_error)? {
            Some(bytes) => {
                let (meta, snapshot): (SnapshotMeta, Vec<u8>) = decode("stored snapshot", &bytes)?;
                Ok(Some(Snapshot { meta, snapshot }))
            }
            None => Ok(None),
        }
    }
}
