//! Election Safety (Raft paper, Ongaro & Ousterhout 2014, Figure 3): at most one leader can be elected
//! in a given term. Checked over samples of every node's own view of its role and term.

use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Default)]
pub struct Leaders {
    by_term: BTreeMap<u64, BTreeSet<u64>>,
}

impl Leaders {
    /// Records that `node` believed it led in `term`.
    pub fn observe(&mut self, term: u64, node: u64) {
        self.by_term.entry(term).or_default().insert(node);
    }

    pub fn terms(&self) -> usize {
        self.by_term.len()
    }

    pub fn check(&self) -> Result<(), Vec<String>> {
        let problems: Vec<String> = self
            .by_term
            .iter()
            .filter(|(_, nodes)| nodes.len() > 1)
            .map(|(term, nodes)| format!("term {term} had {} leaders: nodes {nodes:?}", nodes.len()))
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}
