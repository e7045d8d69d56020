//! Handlers for incoming Raft RPCs: decode the payload, hand it to openraft, encode the answer.
//!
//! A payload that does not decode is refused with `InvalidArgument`; it never panics the node. Every
//! message names the node it comes from (the leader or candidate in its vote); a message that names
//! another node than the one whose certificate carried it is refused with `PermissionDenied`.

use arca_proto::cluster::v1::SnapshotChunk;
use openraft::raft::{AppendEntriesRequest, VoteRequest};

use crate::codec::{decode, encode};
use crate::{Raft, TypeConfig};

type Vote = openraft::alias::VoteOf<TypeConfig>;
type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
type Snapshot = openraft::alias::SnapshotOf<TypeConfig, Vec<u8>>;

/// Largest snapshot a node accepts, in bytes.
pub const SNAPSHOT_BYTES_MAX: usize = 4 * 1024 * 1024 * 1024;

fn invalid(e: std::io::Error) -> tonic::Status {
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
    let request: AppendEntriesRequest<TypeConfig> = decode("append entries request", payload).map_err(invalid)?;
    sent_by(&request.vote, caller, "entries")?;
    Ok(encode(&raft.append_entries(request).await))
}

pub async fn vote(raft: &Raft, payload: &[u8], caller: u64) -> Result<Vec<u8>, tonic::Status> {
    let request: VoteRequest<TypeConfig> = decode("vote request", payload).map_err(invalid)?;
    sent_by(&request.vote, caller, "a vote request")?;
    Ok(encode(&raft.vote(request).await))
}

/// Reassembles a streamed snapshot and installs it.
pub async fn install_snapshot(
    raft: &Raft,
    mut chunks: impl futures::Stream<Item = Result<SnapshotChunk, tonic::Status>> + Unpin,
    caller: u64,
) -> Result<Vec<u8>, tonic::Status> {
    use futures::StreamExt;
    let first = chunks.next().await.ok_or_else(|| tonic::Status::invalid_argument("snapshot stream is empty"))??;
    let (vote, meta): (Vote, SnapshotMeta) = decode("snapshot header", &first.header).map_err(invalid)?;
    sent_by(&vote, caller, "a snapshot")?;
    let mut data = first.data;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        if data.len() + chunk.data.len() > SNAPSHOT_BYTES_MAX {
            return Err(tonic::Status::resource_exhausted("snapshot is larger than this node accepts"));
        }
        data.extend_from_slice(&chunk.data);
    }
    let result = raft.install_full_snapshot(vote, Snapshot { meta, snapshot: data }).await.map_err(|e| e.to_string());
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

    /// The first chunk of a snapshot stream: the header, with an empty snapshot up to no entry.
    pub fn snapshot_header(leader: u64, term: u64) -> Vec<u8> {
        let meta = SnapshotMeta { last_log_id: None, last_membership: Default::default() };
        encode(&(Vote::new_committed(term, leader), meta))
    }
}
