//! Log Matching (Raft paper, Figure 3): if two logs contain an entry with the same index and term,
//! the logs are identical in all entries up through that index. Checked pairwise over the entries
//! every node still holds (entries purged after a snapshot are gone and cannot be compared).

use std::collections::BTreeMap;

/// One node's log: index → (term of the entry, hash of the entry bytes).
pub type Log = BTreeMap<u64, (u64, u64)>;

pub fn check(logs: &BTreeMap<usize, Log>) -> Result<usize, Vec<String>> {
    let mut problems = Vec::new();
    let mut compared = 0;
    let nodes: Vec<_> = logs.iter().collect();
    for (i, (a_node, a)) in nodes.iter().enumerate() {
        for (b_node, b) in &nodes[i + 1..] {
            // The highest common index whose terms agree.
            let Some(top) = a.iter().rev().find(|(idx, (term, _))| b.get(idx).is_some_and(|(t, _)| t == term)) else {
                continue;
            };
            for (idx, (term, hash)) in a.range(..=*top.0) {
                if let Some((other_term, other_hash)) = b.get(idx) {
                    compared += 1;
                    if term != other_term || hash != other_hash {
                        problems.push(format!(
                            "nodes {a_node} and {b_node} agree on entry {} but differ at index {idx}",
                            top.0
                        ));
                        break;
                    }
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(compared)
    } else {
        Err(problems)
    }
}
