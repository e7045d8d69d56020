//! State Machine Safety (Raft paper, Figure 3): if a server has applied a log entry at a given index,
//! no other server ever applies a different log entry for the same index. Checked two ways: every
//! entry a node had applied (while it was still in its log) is recorded by index and compared, and at
//! the end replicas that applied the same index must hold byte-identical state.

use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct Applied {
    /// index → (hash of the entry, first node seen applying it)
    by_index: BTreeMap<u64, (u64, usize)>,
    problems: Vec<String>,
}

impl Applied {
    pub fn observe(&mut self, node: usize, index: u64, entry_hash: u64) {
        match self.by_index.get(&index) {
            Some((hash, first)) if *hash != entry_hash => {
                self.problems.push(format!("node {node} applied a different entry at index {index} than node {first}"))
            }
            Some(_) => {}
            None => {
                self.by_index.insert(index, (entry_hash, node));
            }
        }
    }

    pub fn entries(&self) -> usize {
        self.by_index.len()
    }

    /// `finals`: node → (applied index, hash of its exported state).
    pub fn check(&self, finals: &BTreeMap<usize, (u64, u64)>) -> Result<(), Vec<String>> {
        let mut problems = self.problems.clone();
        let mut by_applied: BTreeMap<u64, (u64, usize)> = BTreeMap::new();
        for (node, (applied, hash)) in finals {
            match by_applied.get(applied) {
                Some((h, first)) if h != hash => problems
                    .push(format!("nodes {first} and {node} both applied up to {applied} but hold different state")),
                Some(_) => {}
                None => {
                    by_applied.insert(*applied, (*hash, *node));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}
