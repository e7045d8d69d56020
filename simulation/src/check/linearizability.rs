//! Linearizability of the client history (Herlihy & Wing, 1990), checked per secret with the
//! Wing–Gong search as improved by Lowe ("Testing for linearizability", 2017) and used by porcupine:
//! depth-first over the operations that may take effect next, memoizing (linearized set, state) pairs.
//!
//! Operations on different secrets commute, so the history is split by key (P-compositionality) and
//! each part is searched on its own against [`SecretState`]. An operation whose outcome is unknown
//! may take effect at any point after it was invoked, or never.
//!
//! Unknown outcomes are what make the search explode under faults: each one stays a candidate at
//! every later step, so k of them multiply the placed sets by up to 2^k. Three reductions keep it
//! small, none of which changes the verdict:
//! - values no definite answer ever shows (a set whose value no read returned) are replaced by one
//!   placeholder, since the model only ever compares them with what a read returned;
//! - an unknown update or vault tag whose value no answer shows is left out: taking effect could
//!   only make later answers impossible;
//! - placing an unknown operation that leaves the state as it is gets nothing that leaving it out
//!   does not (it need never be placed, and its open return bounds nothing), so it is not tried;
//! - of several unknown operations with the same call that are all candidates, only the first is
//!   tried: from here on they are interchangeable.

use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};

use crate::history::{describe, Call, Op, Ret};
use crate::model::SecretState;

/// Stands in for every value no definite answer shows.
const UNSEEN: &str = "\u{0}unseen";

/// Search states explored per key before giving up (the answer is then "inconclusive").
pub const STATES_MAX: usize = 1_000_000;

#[derive(Debug, Default)]
pub struct Summary {
    pub keys: usize,
    pub ops: usize,
    /// Keys whose search hit [`STATES_MAX`]; reported, never counted as a pass silently.
    pub inconclusive: Vec<String>,
}

/// A history that no order of its operations explains.
#[derive(Debug)]
pub struct Violation {
    pub key: String,
    /// The operations around the point where every order failed, in invocation order.
    pub excerpt: Vec<String>,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "history of {} is not linearizable; the operations around the first impossible step:", self.key)?;
        for line in &self.excerpt {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

enum Outcome {
    Linearizable,
    /// Index (in invocation order) of the earliest operation still unplaced at the deepest point.
    Stuck(usize),
    GaveUp,
}

struct Search<'a> {
    ops: &'a [Op],
    done: Vec<bool>,
    /// Placed operations as a bitset, kept beside `done` for cheap memo keys.
    bits: Vec<u64>,
    /// 128-bit fingerprints of (placed set, state) pairs already explored. A collision could only
    /// prune a path, and at 128 bits over a few million entries it does not happen in practice.
    memo: HashSet<(u64, u64)>,
    deepest: usize,
    stuck_at: usize,
}

impl Search<'_> {
    fn run(&mut self, state: &SecretState, placed: usize, definite_left: usize) -> Option<bool> {
        if definite_left == 0 {
            return Some(true);
        }
        if self.memo.len() > STATES_MAX {
            return None;
        }
        let first_return = (0..self.ops.len()).filter(|&i| !self.done[i]).map(|i| self.ops[i].returned).min()?;
        if placed >= self.deepest {
            self.deepest = placed;
            self.stuck_at = (0..self.ops.len()).find(|&i| !self.done[i]).unwrap_or(0);
        }
        // Operations with an answer go first: an unknown one is placed only where it is needed.
        let mut tried_unknown: Vec<&Call> = Vec::new();
        for open_pass in [false, true] {
            for i in 0..self.ops.len() {
                let op = &self.ops[i];
                let open = !op.is_definite() && op.returned == u64::MAX;
                if open != open_pass || self.done[i] || op.invoked > first_return {
                    continue;
                }
                if open && tried_unknown.contains(&&op.call) {
                    continue;
                }
                let Some(next) = state.step(&op.call, &op.ret) else { continue };
                if open {
                    tried_unknown.push(&op.call);
                    if next == *state {
                        continue;
                    }
                }
                self.done[i] = true;
                self.bits[i / 64] |= 1 << (i % 64);
                if self.memo.insert(fingerprint(&self.bits, &next)) {
                    let left = definite_left - usize::from(op.is_definite());
                    match self.run(&next, placed + 1, left) {
                        Some(true) => return Some(true),
                        None => return None,
                        Some(false) => {}
                    }
                }
                self.done[i] = false;
                self.bits[i / 64] &= !(1 << (i % 64));
            }
        }
        Some(false)
    }
}

fn fingerprint(bits: &[u64], state: &SecretState) -> (u64, u64) {
    let mut a = std::collections::hash_map::DefaultHasher::new();
    let mut b = std::collections::hash_map::DefaultHasher::new();
    0xa5a5_u16.hash(&mut b);
    (bits, state).hash(&mut a);
    (bits, state).hash(&mut b);
    (a.finish(), b.finish())
}

fn check_key(ops: &[Op]) -> Outcome {
    let definite = ops.iter().filter(|o| o.is_definite()).count();
    let mut search = Search {
        ops,
        done: vec![false; ops.len()],
        bits: vec![0; ops.len().div_ceil(64)],
        memo: HashSet::new(),
        deepest: 0,
        stuck_at: 0,
    };
    match search.run(&SecretState::default(), 0, definite) {
        Some(true) => Outcome::Linearizable,
        Some(false) => Outcome::Stuck(search.stuck_at),
        None => Outcome::GaveUp,
    }
}

/// Every value, content type and tag some definite answer shows.
fn seen_values(history: &[Op]) -> HashSet<&str> {
    let mut seen = HashSet::new();
    for op in history {
        match &op.ret {
            Ret::Value { value, content_type, .. } => {
                seen.insert(value.as_str());
                seen.extend(content_type.as_deref());
            }
            Ret::Tag { value } => seen.extend(value.as_deref()),
            _ => {}
        }
    }
    seen
}

/// `op` with every value no definite answer shows replaced by [`UNSEEN`]; `None` for an operation
/// with an unknown outcome whose only effect would be to write such a value (a content type or a
/// vault tag): taking effect could only make later answers impossible, so it need never be placed.
fn canonical(op: &Op, seen: &HashSet<&str>) -> Option<Op> {
    let hide = |v: &String| if seen.contains(v.as_str()) { v.clone() } else { UNSEEN.to_owned() };
    let call = match &op.call {
        Call::Set { value } => Call::Set { value: hide(value) },
        Call::Update { content_type } => Call::Update { content_type: hide(content_type) },
        Call::TagVault { value } => Call::TagVault { value: hide(value) },
        other => other.clone(),
    };
    let inert = matches!(&call, Call::Update { content_type: v } | Call::TagVault { value: v } if v == UNSEEN);
    (!(inert && !op.is_definite())).then(|| Op { call, ..op.clone() })
}

/// Checks the whole history; stops at the first key whose history is not linearizable.
pub fn check(history: &[Op]) -> Result<Summary, Vec<Violation>> {
    let seen = seen_values(history);
    let mut by_key: BTreeMap<&str, Vec<Op>> = BTreeMap::new();
    for op in history {
        by_key.entry(op.key.as_str()).or_default().push(op.clone());
    }
    let mut summary = Summary { keys: by_key.len(), ops: history.len(), ..Default::default() };
    let mut violations = Vec::new();
    for (key, mut ops) in by_key {
        ops.sort_by_key(|o| o.invoked);
        let (kept, canon): (Vec<usize>, Vec<Op>) =
            ops.iter().enumerate().filter_map(|(i, o)| canonical(o, &seen).map(|c| (i, c))).unzip();
        match check_key(&canon) {
            Outcome::Linearizable => {}
            Outcome::GaveUp => summary.inconclusive.push(key.to_owned()),
            Outcome::Stuck(at) => {
                let at = kept.get(at).copied().unwrap_or(0);
                let from = at.saturating_sub(6);
                let to = (at + 14).min(ops.len());
                violations
                    .push(Violation { key: key.to_owned(), excerpt: ops[from..to].iter().map(describe).collect() });
                // One explained violation is enough; searching the other keys to exhaustion costs minutes.
                break;
            }
        }
    }
    if violations.is_empty() {
        Ok(summary)
    } else {
        Err(violations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Call, Ret};

    fn op(invoked: u64, returned: u64, call: Call, ret: Ret) -> Op {
        Op { client: 0, node: 0, key: "v/s".into(), call, invoked, returned, ret }
    }

    fn value(v: &str, version: &str) -> Ret {
        Ret::Value { value: v.into(), content_type: None, version: version.into() }
    }

    fn set(v: &str) -> Call {
        Call::Set { value: v.into() }
    }

    fn version(v: &str) -> Ret {
        Ret::Version { version: v.into() }
    }

    #[test]
    fn concurrent_writes_may_be_seen_in_either_order() {
        let h = vec![
            op(0, 3, set("a"), version("1")),
            op(1, 4, set("b"), version("2")),
            op(5, 6, Call::Get, value("a", "1")),
        ];
        assert!(check(&h).is_ok());
    }

    #[test]
    fn a_stale_read_after_an_acknowledged_write_is_caught() {
        let h = vec![
            op(0, 1, set("a"), version("1")),
            op(2, 3, set("b"), version("2")),
            op(4, 5, Call::Get, value("a", "1")),
        ];
        let violations = check(&h).unwrap_err();
        assert_eq!(violations[0].key, "v/s");
    }

    #[test]
    fn a_lost_acknowledged_write_is_caught_and_an_unknown_one_is_not_required() {
        let lost = vec![op(0, 1, set("a"), version("1")), op(2, 3, Call::Get, Ret::NotFound)];
        assert!(check(&lost).is_err());
        let unknown = vec![op(0, u64::MAX, set("a"), Ret::Unknown), op(2, 3, Call::Get, Ret::NotFound)];
        assert!(check(&unknown).is_ok());
        let seen_later = vec![
            op(0, u64::MAX, set("a"), Ret::Unknown),
            op(2, 3, Call::Get, Ret::NotFound),
            op(4, 5, Call::Get, value("a", "9")),
        ];
        assert!(check(&seen_later).is_ok(), "an unknown write may take effect late");
    }

    #[test]
    fn a_read_cannot_go_back_in_time() {
        let h = vec![
            op(0, 1, set("a"), version("1")),
            op(2, 10, set("b"), version("2")),
            op(3, 4, Call::Get, value("b", "2")),
            op(5, 6, Call::Get, value("a", "1")),
        ];
        assert!(check(&h).is_err(), "once b was read, a later read cannot return a");
    }

    #[test]
    fn many_lost_answers_are_decided_not_given_up() {
        // What a hot secret looks like after a partition: forty sets whose answers were lost (their
        // values never read), among definite sets, reads and content-type updates whose answers were
        // lost too. Without the reductions the search meets 2^40 placed sets and gives up.
        let mut h = Vec::new();
        let mut t = 0;
        for i in 0..40 {
            h.push(op(t, u64::MAX, set(&format!("lost{i}")), Ret::Unknown));
            h.push(op(t + 1, u64::MAX, Call::Update { content_type: format!("t{i}") }, Ret::Unknown));
            h.push(op(t + 2, t + 3, set(&format!("kept{i}")), version(&format!("v{i}"))));
            h.push(op(t + 4, t + 5, Call::Get, value(&format!("kept{i}"), &format!("v{i}"))));
            t += 6;
        }
        let summary = check(&h).expect("linearizable");
        assert!(summary.inconclusive.is_empty(), "decided: {:?}", summary.inconclusive);

        // The reductions do not hide a violation: a read of a value no set wrote is still caught.
        let mut bad = h.clone();
        bad.push(op(t, t + 1, Call::Get, value("never", "v99")));
        assert!(check(&bad).is_err(), "no set wrote that value");
        // A lost set may take effect late, and a read that sees it is explained; but once a later
        // definite set is read, the lost value cannot come back.
        h.push(op(t, t + 1, Call::Get, value("lost7", "v99")));
        h.push(op(t + 2, t + 3, set("last"), version("v100")));
        h.push(op(t + 4, t + 5, Call::Get, value("last", "v100")));
        assert!(check(&h).is_ok(), "lost7 took effect late");
        h.push(op(t + 6, t + 7, Call::Get, value("lost7", "v99")));
        assert!(check(&h).is_err(), "lost7 cannot be the latest again after last was read");
    }
}
