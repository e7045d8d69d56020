//! Durable Raft state (Raft paper, Figure 2, "Persistent state on all servers: updated on stable
//! storage before responding to RPCs"): a crash never takes a node's vote back. Checked at every
//! simulated crash by comparing the vote the store reported before the crash with what survived it.

/// A vote as (term, voted-for node, committed: a quorum granted it and the node leads or follows it).
pub type Vote = (u64, u64, bool);

#[derive(Debug, Default)]
pub struct Votes {
    crashes: usize,
    problems: Vec<String>,
}

impl Votes {
    pub fn observe_crash(&mut self, node: usize, before: Option<Vote>, after: Option<Vote>) {
        self.crashes += 1;
        let Some((term, voted_for, committed)) = before else { return };
        let kept = match after {
            Some((t, v, c)) => t > term || (t == term && v == voted_for && (c || !committed)),
            None => false,
        };
        if !kept {
            self.problems.push(format!(
                "node {node} had vote {before:?} (term, voted for, committed), but after a crash its vote is {after:?}"
            ));
        }
    }

    pub fn crashes(&self) -> usize {
        self.crashes
    }

    pub fn check(&self) -> Result<(), Vec<String>> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(self.problems.clone())
        }
    }
}
