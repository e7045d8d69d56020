//! Every Raft message a peer sends this node, decoded and checked before openraft sees it.
//!
//! Openraft trusts its peers: entries that skip an index, go back in term, or claim a term newer than
//! the leader's vote would reach its engine and log unchecked (its own checks are debug assertions).
//! (With the paper's leader ids, the only leader of the sender's term is the sender, so an entry's
//! term is all there is to check.)
//! A member that lies, or a corrupted message, is refused here with a reason instead. The fuzz targets
//! run these functions over arbitrary bytes.

use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::vote::RaftLeaderId;

use crate::codec::decode;
use crate::TypeConfig;

type Vote = openraft::alias::VoteOf<TypeConfig>;
type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
type RaftError = openraft::errors::RaftError<TypeConfig>;

/// Why a peer's message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("{0}")]
    Decode(String),
    #[error("entry {position} has index {found}, expected {expected}: entries must follow one another")]
    NotConsecutive { position: usize, found: u64, expected: u64 },
    #[error("entry {position} is from term {found}, before term {before} of the entry it follows")]
    TermGoesBack { position: usize, found: u64, before: u64 },
    #[error("entry {position} is from term {found}, after the sender's term {vote}")]
    TermFromTheFuture { position: usize, found: u64, vote: u64 },
    #[error("the snapshot ends at term {found}, after the sender's term {vote}")]
    SnapshotFromTheFuture { found: u64, vote: u64 },
}

fn decoded<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, WireError> {
    decode(what, bytes).map_err(|e| WireError::Decode(e.to_string()))
}

/// An AppendEntries request: its entries follow `prev_log_id` and each other, and their terms never
/// go back and never pass the sender's.
pub fn append_entries_request(bytes: &[u8]) -> Result<AppendEntriesRequest<TypeConfig>, WireError> {
    let request: AppendEntriesRequest<TypeConfig> = decoded("append entries request", bytes)?;
    let vote_term = request.vote.leader_id().term();
    let mut expected = request.prev_log_id.as_ref().map_or(0, |l| l.index.saturating_add(1));
    let mut before = request.prev_log_id.as_ref().map_or(0, |l| l.leader_id.term);
    for (position, entry) in request.entries.iter().enumerate() {
        let (index, term) = (entry.log_id.index, entry.log_id.leader_id.term);
        if index != expected {
            return Err(WireError::NotConsecutive { position, found: index, expected });
        }
        if term < before {
            return Err(WireError::TermGoesBack { position, found: term, before });
        }
        if term > vote_term {
            return Err(WireError::TermFromTheFuture { position, found: term, vote: vote_term });
        }
        expected = index.saturating_add(1);
        before = term;
    }
    Ok(request)
}

pub fn vote_request(bytes: &[u8]) -> Result<VoteRequest<TypeConfig>, WireError> {
    decoded("vote request", bytes)
}

/// The first chunk of a snapshot stream: the sender's vote and the snapshot's metadata, which cannot
/// end in a term after the sender's.
pub fn snapshot_header(bytes: &[u8]) -> Result<(Vote, SnapshotMeta), WireError> {
    let (vote, meta): (Vote, SnapshotMeta) = decoded("snapshot header", bytes)?;
    if let Some(last) = &meta.last_log_id {
        let (found, vote_term) = (last.leader_id.term, vote.leader_id().term());
        if found > vote_term {
            return Err(WireError::SnapshotFromTheFuture { found, vote: vote_term });
        }
    }
    Ok((vote, meta))
}

/// What a peer answered: its Raft's answer, or why its Raft would not handle the call.
pub type Answer<T> = Result<Result<T, RaftError>, WireError>;

/// A peer's answer to AppendEntries, to a vote request, and to a snapshot.
pub fn append_entries_response(bytes: &[u8]) -> Answer<AppendEntriesResponse<TypeConfig>> {
    decoded("append entries response", bytes)
}

pub fn vote_response(bytes: &[u8]) -> Answer<VoteResponse<TypeConfig>> {
    decoded("vote response", bytes)
}

pub fn snapshot_response(bytes: &[u8]) -> Result<Result<SnapshotResponse<TypeConfig>, String>, WireError> {
    decoded("snapshot response", bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode;
    use openraft::entry::RaftEntry;

    type Entry = openraft::alias::EntryOf<TypeConfig>;
    type LogId = openraft::alias::LogIdOf<TypeConfig>;

    fn request(term: u64, leader: u64, prev: Option<LogId>, entries: &[(u64, u64)]) -> Vec<u8> {
        encode(&AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(term, leader),
            prev_log_id: prev,
            entries: entries.iter().map(|&(t, i)| Entry::new_blank(LogId::new_term_index(t, i))).collect(),
            leader_commit: None,
        })
    }

    #[test]
    fn entries_that_follow_on_are_taken_and_any_other_order_is_refused() {
        let prev = Some(LogId::new_term_index(2, 9));
        append_entries_request(&request(3, 1, prev, &[(2, 10), (3, 11), (3, 12)])).expect("in order");
        append_entries_request(&request(3, 1, None, &[(1, 0), (3, 1)])).expect("from the start");
        let refused = |entries: &[(u64, u64)]| append_entries_request(&request(3, 1, prev, entries)).unwrap_err();
        assert!(matches!(refused(&[(2, 11)]), WireError::NotConsecutive { expected: 10, .. }));
        assert!(matches!(refused(&[(2, 10), (2, 10)]), WireError::NotConsecutive { position: 1, .. }));
        assert!(matches!(refused(&[(1, 10)]), WireError::TermGoesBack { .. }));
        assert!(matches!(refused(&[(4, 10)]), WireError::TermFromTheFuture { .. }));
        assert!(matches!(append_entries_request(&[0xff; 3]).unwrap_err(), WireError::Decode(_)));
    }
}
