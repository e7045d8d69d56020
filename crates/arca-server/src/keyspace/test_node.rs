//! One node's keyspace over an in-memory state store, for tests that decide commands and apply the
//! proposals by hand (to interleave them, or to look at what they write).

use std::sync::Arc;

use arca_core::{decide, Command};
use arca_crypto::{Barrier, Keyring, OsEntropy};
use arca_storage::mem::MemState;
use arca_storage::proposal::{apply_proposal, ApplyOutcome, Proposal};

use super::Keyspace;

pub const NOW: i64 = 1_800_000_000;

pub struct Node {
    pub store: Arc<MemState>,
    pub keyspace: Keyspace,
    pub index: u64,
}

impl Node {
    pub fn new() -> Self {
        let store = Arc::new(MemState::default());
        let barrier = Barrier::new(Keyring::generate(&OsEntropy), Arc::new(OsEntropy));
        Self { keyspace: Keyspace::new(store.clone(), barrier), store, index: 0 }
    }

    /// Decides `command` against the current state, without applying it.
    pub fn decide(&self, command: &Command) -> Proposal {
        let view = self.keyspace.recording_view();
        let decision = decide(&view, command, NOW).unwrap();
        self.keyspace.proposal(view, &decision.mutations).unwrap()
    }

    pub fn apply(&mut self, proposal: &Proposal) -> ApplyOutcome {
        self.index += 1;
        apply_proposal(&*self.store, self.index, proposal, b"meta").unwrap()
    }

    pub fn run(&mut self, command: &Command) {
        let p = self.decide(command);
        assert_eq!(self.apply(&p), ApplyOutcome::Applied);
    }
}
