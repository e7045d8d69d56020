//! Election Safety (Raft paper, Ongaro & Ousterhout 2014, Figure 3): at most one leader can be elected
//! for a given term. Arca runs openraft's default "advanced" leader ids, where the role of Raft's term
//! is played by the leader id (term, node id): votes are ordered by it, so a term may see several
//! leaders, each under its own leader id, and the property becomes "at most one leader per leader id".
//! Checked over samples of every node's own view: the vote a leader holds must be committed and name
//! the node itself, so no node can lead under another's leader id. Terms with several leaders are
//! counted for the report (they are legal here; the log-matching and state-machine checkers judge
//! their effect).

use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Default)]
pub struct Leaders {
    by_term: BTreeMap<u64, BTreeSet<u64>>,
    problems: Vec<String>,
}

impl Leaders {
    /// Records that `node` believed it led, holding `vote` = (term, voted-for node, committed).
    pub fn observe(&mut self, node: u64, vote: (u64, u64, bool)) {
        let (term, voted_for, committed) = vote;
        if voted_for != node || !committed {
            self.problems.push(format!(
                "node {node} acted as leader holding vote (term {term}, node {voted_for}, committed {committed})"
            ));
        }
        self.by_term.entry(term).or_default().insert(node);
    }

    pub fn terms(&self) -> usize {
        self.by_term.len()
    }

    /// Terms in which more than one node led (each under its own leader id).
    pub fn shared_terms(&self) -> usize {
        self.by_term.values().filter(|n| n.len() > 1).count()
    }

    pub fn check(&self) -> Result<(), Vec<String>> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(self.problems.clone())
        }
    }
}
