//! Linearizability of the client history (Herlihy & Wing, 1990), checked per secret with the
//! Wing–Gong search as improved by Lowe ("Testing for linearizability", 2017) and used by porcupine:
//! depth-first over the operations that may take effect next, memoizing (linearized set, state) pairs.
//!
//! Operations on different secrets commute, so the history is split by key (P-compositionality) and
//! each part is searched on its own against [`SecretState`]. An operation whose outcome is unknown
//! may take effect at any point after it was invoked, or never.
//!
//! Unknown outcomes are what make the search explode under faults: each one stays a candidate at
//! every later step, so k of them multiply the placed sets by up to 2^k (a chaos run's history gave
//! up after a million states). These reductions keep it small, and none changes the verdict (a test
//! holds the search to a brute-force enumeration of every order on thousands of small histories):
//! - values no definite answer ever shows (a set whose value no read returned) are replaced by one
//!   placeholder, since the model only ever compares them with what a read returned;
//! - an unknown update or vault tag whose value no answer shows is left out: taking effect could
//!   only make later answers impossible;
//! - placing an unknown operation where it leaves the state as it is gains nothing over leaving it
//!   out (it need never be placed, and its open return bounds nothing), so it is not tried;
//! - unknown operations with the same call are interchangeable once they are candidates, so only
//!   the earliest unused one of each group is tried, and what is used is a count per group;
//! - a memo entry is (placed definite set, state) with the counts explored from it, and a visit that
//!   has used at least as many of every group as an explored one is pruned: it has fewer options.

use std::collections::{BTreeMap, HashMap, HashSet};
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
    /// Index (in invocation order) of the earliest operation with an answer still unplaced at the
    /// deepest point.
    Stuck(usize),
    GaveUp,
}

struct Search<'a> {
    ops: &'a [Op],
    /// Operations with an answer, in invocation order; each must be placed.
    definite: Vec<usize>,
    /// Unknown operations (their return is open: the history records ∞) grouped by identical call,
    /// each group in invocation order. Members of a group are interchangeable once they are
    /// candidates, so only the earliest unused one is ever tried and the used ones are always a
    /// prefix: `used[g]` of them.
    groups: Vec<Vec<usize>>,
    used: Vec<usize>,
    /// Which definite operations are placed (indexed like `ops`).
    done: Vec<bool>,
    /// Placed definite operations as a bitset, for memo keys.
    bits: Vec<u64>,
    /// For each 128-bit fingerprint of (placed definite set, state): the `used` vectors already
    /// explored from there. Having used more unknown operations only takes options away, so a visit
    /// that has used at least as many of each group as an explored one is pruned. A fingerprint
    /// collision could only prune a path, and at 128 bits it does not happen in practice.
    memo: HashMap<(u64, u64), Vec<Box<[usize]>>>,
    explored: usize,
    deepest: usize,
    stuck_at: usize,
}

impl Search<'_> {
    fn new(ops: &[Op]) -> Search<'_> {
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut definite = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            if op.is_definite() {
                definite.push(i);
            } else if let Some(g) = groups.iter_mut().find(|g| ops[g[0]].call == op.call) {
                g.push(i);
            } else {
                groups.push(vec![i]);
            }
        }
        Search {
            ops,
            used: vec![0; groups.len()],
            groups,
            done: vec![false; ops.len()],
            bits: vec![0; ops.len().div_ceil(64)],
            definite,
            memo: HashMap::new(),
            explored: 0,
            deepest: 0,
            stuck_at: 0,
        }
    }

    /// Records a visit; false if an explored visit dominates it.
    fn visit(&mut self, state: &SecretState) -> bool {
        let seen = self.memo.entry(fingerprint(&self.bits, state)).or_default();
        if seen.iter().any(|u| u.iter().zip(&self.used).all(|(a, b)| a <= b)) {
            return false;
        }
        seen.retain(|u| !u.iter().zip(&self.used).all(|(a, b)| a >= b));
        seen.push(self.used.clone().into_boxed_slice());
        self.explored += 1;
        true
    }

    fn run(&mut self, state: &SecretState, placed: usize, definite_left: usize) -> Option<bool> {
        if definite_left == 0 {
            return Some(true);
        }
        if self.explored > STATES_MAX {
            return None;
        }
        let first_return = self.definite.iter().filter(|&&i| !self.done[i]).map(|&i| self.ops[i].returned).min()?;
        if placed >= self.deepest {
            self.deepest = placed;
            self.stuck_at = self.definite.iter().copied().find(|&i| !self.done[i]).unwrap_or(0);
        }
        // Operations with an answer go first: an unknown one is placed only where it is needed.
        for k in 0..self.definite.len() {
            let i = self.definite[k];
            let op = &self.ops[i];
            if self.done[i] || op.invoked > first_return {
                continue;
            }
            let Some(next) = state.step(&op.call, &op.ret) else { continue };
            self.done[i] = true;
            self.bits[i / 64] |= 1 << (i % 64);
            if self.visit(&next) {
                match self.run(&next, placed + 1, definite_left - 1) {
                    Some(false) => {}
                    decided => return decided,
                }
            }
            self.done[i] = false;
            self.bits[i / 64] &= !(1 << (i % 64));
        }
        for g in 0..self.groups.len() {
            let Some(&i) = self.groups[g].get(self.used[g]) else { continue };
            let op = &self.ops[i];
            if op.invoked > first_return {
                continue;
            }
            // Placing it where it changes nothing gains nothing over leaving it out.
            let Some(next) = state.step(&op.call, &op.ret).filter(|next| next != state) else { continue };
            self.used[g] += 1;
            if self.visit(&next) {
                match self.run(&next, placed + 1, definite_left) {
                    Some(false) => {}
                    decided => return decided,
                }
            }
            self.used[g] -= 1;
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
    let mut search = Search::new(ops);
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
    (!inert || op.is_definite()).then(|| Op { call, ..op.clone() })
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
        Op { client: 0, node: 0, key: "v/s".into(), call, invoked, returned, ret, stale: None }
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

    /// Every order of every subset that holds all definite operations, kept to real-time order.
    fn brute_force(h: &[Op]) -> bool {
        fn extend(h: &[Op], placed: &mut Vec<usize>, state: &SecretState) -> bool {
            if h.iter().enumerate().all(|(i, o)| !o.is_definite() || placed.contains(&i)) {
                return true;
            }
            for (i, op) in h.iter().enumerate() {
                let blocked =
                    h.iter().enumerate().any(|(j, o)| !placed.contains(&j) && j != i && o.returned < op.invoked);
                if placed.contains(&i) || blocked {
                    continue;
                }
                if let Some(next) = state.step(&op.call, &op.ret) {
                    placed.push(i);
                    if extend(h, placed, &next) {
                        return true;
                    }
                    placed.pop();
                }
            }
            false
        }
        extend(h, &mut Vec::new(), &SecretState::default())
    }

    #[test]
    fn the_reductions_agree_with_brute_force_on_small_histories() {
        use rand::{rngs::SmallRng, RngExt, SeedableRng};
        let mut rng = SmallRng::seed_from_u64(7);
        let (mut linearizable, mut not) = (0, 0);
        for _ in 0..20_000 {
            let n = rng.random_range(1..=8);
            let mut h = Vec::new();
            for _ in 0..n {
                let pick = |rng: &mut SmallRng, xs: &[&str]| xs[rng.random_range(0..xs.len())].to_owned();
                let call = match rng.random_range(0..10) {
                    8 => Call::Backup { backup: 1 },
                    9 => Call::Restore { backup: 1 },
                    0 | 1 => set(&pick(&mut rng, &["a", "b", "c"])),
                    2 | 3 => Call::Get,
                    4 => Call::Update { content_type: pick(&mut rng, &["t", "u"]) },
                    5 => Call::Delete,
                    6 => Call::Recover,
                    _ => Call::Purge,
                };
                let ret = match (&call, rng.random_range(0..4)) {
                    (_, 0 | 1) if call.is_write() => Ret::Unknown,
                    (Call::Set { .. }, _) => match rng.random_range(0..3) {
                        0 => Ret::DeletedButRecoverable,
                        _ => version(&pick(&mut rng, &["1", "2"])),
                    },
                    (Call::Restore { .. }, _) => match rng.random_range(0..3) {
                        0 => Ret::Conflict,
                        1 => Ret::DeletedButRecoverable,
                        _ => version(&pick(&mut rng, &["1", "2"])),
                    },
                    (Call::Get, _) => match rng.random_range(0..3) {
                        0 => Ret::NotFound,
                        _ => Ret::Value {
                            value: pick(&mut rng, &["a", "b", "c"]),
                            content_type: rng.random_bool(0.3).then(|| pick(&mut rng, &["t", "u"])),
                            version: pick(&mut rng, &["1", "2"]),
                        },
                    },
                    _ => [Ret::Ok, Ret::NotFound][rng.random_range(0..2)].clone(),
                };
                let invoked = rng.random_range(0..12);
                let returned = if ret == Ret::Unknown { u64::MAX } else { invoked + rng.random_range(1..6) };
                h.push(Op { client: 0, node: 0, key: "v/s".into(), call, invoked, returned, ret, stale: None });
            }
            let expected = brute_force(&h);
            let got = check(&h);
            assert_eq!(got.is_ok(), expected, "the checker and brute force disagree on {h:#?}");
            if expected {
                assert!(got.unwrap().inconclusive.is_empty());
                linearizable += 1;
            } else {
                not += 1;
            }
        }
        assert!(linearizable > 1000 && not > 1000, "both verdicts were exercised: {linearizable} / {not}");
    }
}
