//! Election Safety (Raft paper, Ongaro & Ousterhout 2014, Figure 3): at most one leader can be elected
//! for a given term. Arca runs openraft with the paper's leader ids (`leader_id_std`), so the property
//! is the paper's: no two nodes lead in one term. Checked over samples of every node's own view: the
//! vote a leader holds must be committed and name the node itself, and a term in which a second node
//! is seen leading is a violation.

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
        let leaders = self.by_term.entry(term).or_default();
        if leaders.insert(node) && leaders.len() == 2 {
            self.problems.push(format!("term {term} has two leaders: nodes {leaders:?}"));
        }
    }

    pub fn terms(&self) -> usize {
        self.by_term.len()
    }

    pub fn check(&self) -> Result<(), Vec<String>> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(self.problems.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_leader_in_a_term_is_a_violation_and_a_new_term_is_not() {
        let mut leaders = Leaders::default();
        leaders.observe(1, (3, 1, true));
        leaders.observe(1, (3, 1, true));
        leaders.observe(2, (4, 2, true));
        assert!(leaders.check().is_ok());
        leaders.observe(3, (4, 3, true));
        assert_eq!(leaders.check().unwrap_err().len(), 1);
    }
}
