//! Handlers for incoming Raft RPCs: decode the payload, hand it to openraft, encode the answer.
//!
//! A payload that does not decode is refused with `InvalidArgument`; it never panics the node. Every
//! message names the node it comes from (the leader or candidate in its vote); a message that names
//! another node than the one whose certificate carried it is refused with `PermissionDenied`.

use arca_proto::cluster::v1::SnapshotChunk;
use arca_storage::snapshot::{SnapshotFile, SnapshotFiles};
use openraft::raft::{AppendEntriesRequest, VoteRequest};

use crate::codec::encode;
use crate::{wire, Raft, TypeConfig};

type Vote = openraft::alias::VoteOf<TypeConfig>;
type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
type Snapshot = openraft::alias::SnapshotOf<TypeConfig, SnapshotFile>;

pub use arca_types::limits::SNAPSHOT_BYTES_MAX;

/// How long receiving one snapshot may take, in milliseconds (the sender gives up after 60 s).
pub const SNAPSHOT_RECEIVE_TIMEOUT_MS: u64 = 90_000;

fn invalid(e: wire::WireError) -> tonic::Status {
    tonic::Status::invalid_argument(e.to_string())
}

/// Refuses a message whose vote names another node than `caller`, the node that sent it.
fn sent_by(vote: &Vote, caller: u64, what: &str) -> Result<(), tonic::Status> {
    use openraft::vote::RaftLeaderId;
    let named = *vote.leader_id().node_id();
    if named == caller {
        Ok(())
    } else {
        Err(tonic::Status::permission_denied(format!("node {caller} sent {what} in the name of node {named}")))
    }
}

pub async fn append_entries(raft: &Raft, payload: &[u8], caller: u64) -> Result<Vec<u8>, tonic::Status> {
    let request = wire::append_entries_request(payload).map_err(invalid)?;
    sent_by(&request.vote, caller, "entries")?;
    Ok(encode(&raft.append_entries(request).await))
}

pub async fn vote(raft: &Raft, payload: &[u8], caller: u64) -> Result<Vec<u8>, tonic::Status> {
    let request = wire::vote_request(payload).map_err(invalid)?;
    sent_by(&request.vote, caller, "a vote request")?;
    Ok(encode(&raft.vote(request).await))
}

fn spool_error(e: impl std::fmt::Display) -> tonic::Status {
    tonic::Status::internal(format!("snapshot spool: {e}"))
}

/// Receives a streamed snapshot into a new snapshot file (bounded in size and time), checks every
/// record of it, then installs it. Nothing of it is held in memory beyond one chunk and one record.
pub async fn install_snapshot(
    raft: &Raft,
    mut chunks: impl futures::Stream<Item = Result<SnapshotChunk, tonic::Status>> + Unpin,
    caller: u64,
    files: &SnapshotFiles,
) -> Result<Vec<u8>, tonic::Status> {
    use futures::StreamExt;
    use std::io::Write;
    let first = chunks.next().await.ok_or_else(|| tonic::Status::invalid_argument("snapshot stream is empty"))??;
    let (vote, meta) = wire::snapshot_header(&first.header).map_err(invalid)?;
    sent_by(&vote, caller, "a snapshot")?;
    let mut spool = files.create(SNAPSHOT_BYTES_MAX).map_err(spool_error)?;
    let push = |spool: &mut arca_storage::snapshot::SnapshotWriter, data: &[u8]| {
        spool.write_all(data).map_err(|e| match e.kind() {
            std::io::ErrorKind::FileTooLarge => tonic::Status::resource_exhausted(e.to_string()),
            _ => spool_error(e),
        })
    };
    push(&mut spool, &first.data)?;
    let receive = async {
        while let Some(chunk) = chunks.next().await {
            push(&mut spool, &chunk?.data)?;
        }
        Ok::<_, tonic::Status>(())
    };
    tokio::time::timeout(std::time::Duration::from_millis(SNAPSHOT_RECEIVE_TIMEOUT_MS), receive)
        .await
        .map_err(|_| tonic::Status::deadline_exceeded("the snapshot took too long to arrive"))??;
    let file = spool.finish().map_err(spool_error)?;
    let applied = crate::state_machine::verify_snapshot(&file)
        .map_err(|e| tonic::Status::invalid_argument(format!("the snapshot is malformed: {e}")))?;
    if applied.last_applied != meta.last_log_id {
        return Err(tonic::Status::invalid_argument("the snapshot's data does not match its header"));
    }
    let result = raft.install_full_snapshot(vote, Snapshot { meta, snapshot: file }).await.map_err(|e| e.to_string());
    Ok(encode(&result))
}

/// Raft messages built from plain numbers, as a node that lies would send them: for the attack tests
/// on real processes and the simulation's attacker. They carry no entries and no data, only the claim
/// (a vote naming `node` in `term`) that the receiver must refuse to take from anyone but `node`.
pub mod forge {
    use super::*;

    pub fn vote_request(candidate: u64, term: u64) -> Vec<u8> {
        encode(&VoteRequest::<TypeConfig>::new(Vote::new(term, candidate), None))
    }

    pub fn heartbeat(leader: u64, term: u64) -> Vec<u8> {
        encode(&AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(term, leader),
            prev_log_id: None,
            entries: Vec::new(),
            leader_commit: None,
        })
    }

    /// An AppendEntries from `leader` in `term` carrying `entries` (term, index, proposal) after
    /// `prev` (term, index): whatever order the caller gives them in.
    pub fn append_entries(
        leader: u64,
        term: u64,
        prev: Option<(u64, u64)>,
        entries: Vec<(u64, u64, crate::Proposal)>,
    ) -> Vec<u8> {
        encode(&AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(term, leader),
            prev_log_id: prev.map(|(t, i)| LogId::new_term_index(t, i)),
            entries: entries.into_iter().map(|(t, i, p)| entry(t, i, p)).collect(),
            leader_commit: None,
        })
    }

    /// A log entry as the log store keeps it.
    pub fn log_entry(term: u64, index: u64, proposal: crate::Proposal) -> Vec<u8> {
        encode(&entry(term, index, proposal))
    }

    type LogId = openraft::alias::LogIdOf<TypeConfig>;

    fn entry(term: u64, index: u64, proposal: crate::Proposal) -> openraft::alias::EntryOf<TypeConfig> {
        openraft::alias::EntryOf::<TypeConfig> {
            log_id: LogId::new_term_index(term, index),
            payload: openraft::EntryPayload::Normal(proposal),
        }
    }

    /// The first chunk of a snapshot stream: the header, with an empty snapshot up to no entry.
    pub fn snapshot_header(leader: u64, term: u64) -> Vec<u8> {
        let meta = SnapshotMeta { last_log_id: None, last_membership: Default::default() };
        encode(&(Vote::new_committed(term, leader), meta))
    }
}
