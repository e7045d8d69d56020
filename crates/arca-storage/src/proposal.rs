//! A proposal: the physical writes one Raft entry makes, guarded by preconditions on what the leader
//! read when it decided them.
//!
//! Applying is deterministic and needs no keys: every replica, sealed or not, checks the same
//! preconditions against the same state and reaches the same result.

use serde::{Deserialize, Serialize};

use crate::{Op, StateStore, StorageError};

/// "When this entry applies, `key` must still have been last written at `modified_at`"
/// (`None`: the key must be absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Precondition {
    pub key: Vec<u8>,
    pub modified_at: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Proposal {
    pub preconditions: Vec<Precondition>,
    pub ops: Vec<Op>,
}

impl std::fmt::Display for Proposal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Counts only: keys and values are opaque and must not reach logs in any form.
        write!(f, "Proposal({} preconditions, {} ops)", self.preconditions.len(), self.ops.len())
    }
}

/// What applying a proposal did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApplyOutcome {
    Applied,
    /// A precondition failed; nothing but the applied metadata changed.
    Conflict,
}

/// Applies `proposal` as log entry `index`, storing `applied_meta` in the same atomic step.
pub fn apply_proposal(
    store: &dyn StateStore,
    index: u64,
    proposal: &Proposal,
    applied_meta: &[u8],
) -> Result<ApplyOutcome, StorageError> {
    for pre in &proposal.preconditions {
        let current = store.get(&pre.key)?.map(|v| v.modified_at);
        if current != pre.modified_at {
            store.commit(index, &[], applied_meta)?;
            return Ok(ApplyOutcome::Conflict);
        }
    }
    store.commit(index, &proposal.ops, applied_meta)?;
    Ok(ApplyOutcome::Applied)
}
