//! Durable Raft log (Raft paper, Figure 2, "Persistent state on all servers: updated on stable storage
//! before responding to RPCs"): an entry a node appended is on its disk before the node tells the
//! leader so, and so before anyone applies or acknowledges it. A crash therefore never takes an entry
//! away; only a truncation by a later leader may. Checked at every simulated crash by comparing the
//! log the store held before the crash with what survived it.

#[derive(Debug, Default)]
pub struct Logs {
    problems: Vec<String>,
}

impl Logs {
    /// `before` and `after`: the index of the last entry the node's log held just before and just after
    /// a crash.
    pub fn observe_crash(&mut self, node: usize, before: Option<u64>, after: Option<u64>) {
        if after < before {
            self.problems.push(format!(
                "node {node}'s log ended at index {before:?} before a crash and at {after:?} after it: appended \
                 entries were not on disk"
            ));
        }
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
    fn a_crash_that_shortens_the_log_is_a_violation_and_one_that_keeps_it_is_not() {
        let mut logs = Logs::default();
        logs.observe_crash(1, Some(7), Some(7));
        logs.observe_crash(2, None, None);
        assert!(logs.check().is_ok());
        logs.observe_crash(3, Some(9), Some(4));
        assert_eq!(logs.check().unwrap_err().len(), 1);
    }
}
