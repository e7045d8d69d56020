//! Checking an audit log: every line a link of one chain from its first record, and (given the
//! anchors the cluster holds for the node that wrote it) no shorter than what was anchored and
//! agreeing with every anchor.

use std::io::BufRead;

use serde::{Deserialize, Serialize};

use crate::chain::{self, ChainHead};

/// A chain head the cluster recorded for a node's log (through Raft, so deleting the node's file does
/// not delete it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    pub seq: u64,
    pub hash: [u8; 32],
}

/// An anchor as a node makes it: signed with the node's cluster key, so that who anchored what can be
/// checked apart from the cluster that stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedAnchor {
    pub node_id: u64,
    pub seq: u64,
    pub hash: [u8; 32],
    /// When the node made it (Unix seconds).
    pub time: i64,
    /// The node's Ed25519 public key, and its signature of [`SignedAnchor::message`].
    pub public_key: Vec<u8>,
    pub signature: Vec<u8>,
}

impl SignedAnchor {
    /// The bytes signed: the anchor bound to its cluster.
    pub fn message(&self, cluster_id: &[u8; 16]) -> Vec<u8> {
        let mut out = b"arca-audit-anchor-v1".to_vec();
        out.extend_from_slice(cluster_id);
        out.extend_from_slice(&self.node_id.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.hash);
        out.extend_from_slice(&self.time.to_be_bytes());
        out
    }

    /// Signs an anchor with the node's cluster key.
    pub fn sign(
        key: &arca_crypto::cluster_pki::Ed25519Key,
        cluster_id: &[u8; 16],
        node_id: u64,
        head: ChainHead,
        time: i64,
    ) -> Self {
        let mut anchor =
            Self { node_id, seq: head.seq, hash: head.hash, time, public_key: key.public_key(), signature: Vec::new() };
        anchor.signature = key.sign(&anchor.message(cluster_id));
        anchor
    }

    /// Whether the signature is the public key's over this anchor in `cluster_id`.
    pub fn verifies(&self, cluster_id: &[u8; 16]) -> bool {
        arca_crypto::cluster_pki::verify_ed25519(&self.public_key, &self.message(cluster_id), &self.signature)
    }

    pub fn anchor(&self) -> Anchor {
        Anchor { seq: self.seq, hash: self.hash }
    }
}

/// The first thing wrong with a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The line it was found on (1-based); 0 for a problem with the log as a whole.
    pub line: u64,
    pub reason: String,
}

/// What checking a log found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Records checked before the first problem (all of them if there is none).
    pub records: u64,
    /// The last good record's place in the chain.
    pub last: Option<ChainHead>,
    pub problem: Option<Problem>,
}

/// Checks a log read from `input` against `anchors` (any order). Stops at the first problem.
pub fn verify(input: impl BufRead, anchors: &[Anchor]) -> Report {
    let mut head = ChainHead::default();
    let mut records = 0;
    let bad = |line: u64, reason: String, records: u64, head: ChainHead| Report {
        records,
        last: (records > 0).then_some(head),
        problem: Some(Problem { line, reason }),
    };
    for (i, line) in input.split(b'\n').enumerate() {
        let number = i as u64 + 1;
        let line = match line {
            Ok(line) => line,
            Err(e) => return bad(number, format!("it could not be read: {e}"), records, head),
        };
        if line.is_empty() {
            continue;
        }
        let link = match chain::open(&line) {
            Ok(link) => link,
            Err(e) => return bad(number, format!("record {} {e}", head.seq + 1), records, head),
        };
        if link.seq != head.seq + 1 {
            let why = if link.seq <= head.seq { "repeats or comes before an earlier one" } else { "skips records" };
            return bad(number, format!("record {} {why}: expected record {}", link.seq, head.seq + 1), records, head);
        }
        if link.prev != head.hash {
            return bad(
                number,
                format!("record {} does not follow record {}: its prev is not that record's hash", link.seq, head.seq),
                records,
                head,
            );
        }
        if let Some(anchor) = anchors.iter().find(|a| a.seq == link.seq) {
            if anchor.hash != link.hash {
                return bad(
                    number,
                    format!("record {} is not the record the cluster anchored", link.seq),
                    records,
                    head,
                );
            }
        }
        head = ChainHead { seq: link.seq, hash: link.hash };
        records += 1;
    }
    if let Some(beyond) = anchors.iter().filter(|a| a.seq > head.seq).map(|a| a.seq).max() {
        return bad(
            0,
            format!("the log ends at record {} but the cluster anchored record {beyond}: it was cut short", head.seq),
            records,
            head,
        );
    }
    Report { records, last: (records > 0).then_some(head), problem: None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::event;
    use crate::AuditStage;

    #[test]
    fn an_anchor_verifies_for_its_cluster_only_and_not_once_changed() {
        let key = arca_crypto::cluster_pki::Ed25519Key::generate(&arca_crypto::OsEntropy);
        let anchor = SignedAnchor::sign(&key, &[1; 16], 3, ChainHead { seq: 9, hash: [7; 32] }, 1_800_000_000);
        assert!(anchor.verifies(&[1; 16]));
        assert!(!anchor.verifies(&[2; 16]));
        let mut moved = anchor.clone();
        moved.seq = 8;
        assert!(!moved.verifies(&[1; 16]));
    }

    /// A log of `n` records, and the chain head after each.
    fn log(n: usize) -> (Vec<Vec<u8>>, Vec<ChainHead>) {
        log_of("r", n)
    }

    fn log_of(prefix: &str, n: usize) -> (Vec<Vec<u8>>, Vec<ChainHead>) {
        let mut head = ChainHead::default();
        let mut lines = Vec::new();
        let mut heads = Vec::new();
        for i in 0..n {
            let serde_json::Value::Object(record) =
                serde_json::to_value(event(AuditStage::Request, &format!("{prefix}{i}"))).unwrap()
            else {
                unreachable!()
            };
            let (line, next) = chain::seal(record, &head);
            head = next;
            lines.push(line);
            heads.push(head);
        }
        (lines, heads)
    }

    fn check(lines: &[Vec<u8>], anchors: &[Anchor]) -> Report {
        verify(&lines.concat()[..], anchors)
    }

    #[test]
    fn an_untouched_log_verifies_whole() {
        let (lines, heads) = log(5);
        let anchors = [Anchor { seq: 3, hash: heads[2].hash }, Anchor { seq: 5, hash: heads[4].hash }];
        let report = check(&lines, &anchors);
        assert_eq!((report.records, report.last, report.problem), (5, Some(heads[4]), None));
    }

    #[test]
    fn every_changed_byte_is_found_on_its_line() {
        let (lines, _) = log(3);
        for at in 0..lines[1].len() - 1 {
            let mut changed = lines.clone();
            changed[1][at] ^= 0x01;
            let report = check(&changed, &[]);
            let problem = report.problem.unwrap_or_else(|| panic!("a change at byte {at} went unnoticed"));
            assert_eq!((problem.line, report.records), (2, 1), "byte {at}: {}", problem.reason);
        }
    }

    #[test]
    fn deletions_reorderings_insertions_and_cuts_are_found() {
        let (lines, heads) = log(5);
        let without =
            |i: usize| lines.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, l)| l.clone()).collect::<Vec<_>>();
        assert_eq!(check(&without(2), &[]).problem.unwrap().line, 3, "a deleted record");
        assert!(check(&without(0), &[]).problem.unwrap().reason.contains("skips"), "the first record deleted");
        let mut swapped = lines.clone();
        swapped.swap(1, 2);
        assert_eq!(check(&swapped, &[]).problem.unwrap().line, 2, "two records swapped");
        let mut doubled = lines.clone();
        doubled.insert(3, lines[2].clone());
        assert!(check(&doubled, &[]).problem.unwrap().reason.contains("repeats"), "a record replayed");
        // Cut short after record 3: the chain alone cannot tell, the cluster's anchor at 5 can.
        assert_eq!(check(&lines[..3], &[]).problem, None);
        let anchored = [Anchor { seq: 5, hash: heads[4].hash }];
        let cut = check(&lines[..3], &anchored).problem.unwrap();
        assert!(cut.reason.contains("cut short"), "{}", cut.reason);
        // A whole log rebuilt from scratch (a valid chain of other records) disagrees with the anchor.
        let (forged, _) = log_of("forged", 6);
        let mut replaced = lines.clone();
        replaced[4] = forged[4].clone();
        assert!(check(&replaced, &anchored).problem.is_some());
        let entirely = check(&forged, &[Anchor { seq: 2, hash: heads[1].hash }]).problem.unwrap();
        assert!(entirely.reason.contains("not the record the cluster anchored"), "{}", entirely.reason);
    }

    #[test]
    fn lines_that_are_not_links_are_refused() {
        for line in [&b"not json"[..], b"{\"seq\":1}", b"[1,2]"] {
            let mut input = line.to_vec();
            input.push(b'\n');
            assert_eq!(verify(&input[..], &[]).problem.unwrap().line, 1);
        }
    }
}
