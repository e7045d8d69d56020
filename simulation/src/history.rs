//! The client history both harnesses record and every checker reads.
//!
//! Each operation is stamped with two numbers from one shared counter: one when the client invokes it
//! and one when the answer arrives. Operation A precedes B in real time exactly when A's return stamp
//! is smaller than B's invoke stamp, which is all a linearizability checker needs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// What a client asked for, on one secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Call {
    /// Set a new version with this (unique) value.
    Set {
        value: String,
    },
    /// Get the latest version.
    Get,
    /// Change the content type of the latest version.
    Update {
        content_type: String,
    },
    Delete,
    Recover,
    Purge,
    /// Take a backup; the client keeps the blob under this number.
    Backup {
        backup: u32,
    },
    /// Restore the blob the client kept under this number.
    Restore {
        backup: u32,
    },
    /// Set the vault's `w` tag (an operation on the vault, recorded under the vault's key).
    TagVault {
        value: String,
    },
    /// Read the vault's `w` tag.
    GetVault,
    /// Create a key version (an oct key: the rules and paths are the same for every key type).
    CreateKey,
    /// Rotate the key: a new version guarded on the latest.
    RotateKey,
    /// Wrap this client-numbered data key with the key's latest version (answers the version used).
    Wrap {
        data: u32,
    },
    /// Unwrap what an earlier wrap returned, with the version that wrap named.
    Unwrap {
        wrap: u32,
    },
}

impl Call {
    /// Whether the call can change state (a failed write may still have happened).
    pub fn is_write(&self) -> bool {
        !matches!(self, Call::Get | Call::Backup { .. } | Call::GetVault | Call::Wrap { .. } | Call::Unwrap { .. })
    }

    /// Whether the call is on a key (recorded under the key's own history key).
    pub fn is_key_call(&self) -> bool {
        matches!(self, Call::CreateKey | Call::RotateKey | Call::Wrap { .. } | Call::Unwrap { .. })
    }
}

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Ret {
    /// Success. For `Set` and `Restore`, the version id; for `Get`, the value and content type.
    Ok,
    Version {
        version: String,
    },
    Value {
        value: String,
        content_type: Option<String>,
        version: String,
    },
    /// For `GetVault`: the vault's `w` tag.
    Tag {
        value: Option<String>,
    },
    NotFound,
    DeletedButRecoverable,
    Conflict,
    /// Refused before it could take effect (sealed node, no leader, bad input): not part of the history.
    Refused,
    /// No answer, or an answer that does not say whether the write happened (timeout, outcome unknown).
    Unknown,
}

/// One operation of the history.
#[derive(Debug, Clone)]
pub struct Op {
    pub client: u32,
    /// The node the client sent it to.
    pub node: usize,
    /// The secret, as `vault/name` (or the vault, as `vault`, for vault operations).
    pub key: String,
    pub call: Call,
    pub invoked: u64,
    /// `u64::MAX` while pending, and for answers that leave the outcome unknown.
    pub returned: u64,
    pub ret: Ret,
    /// For a bounded-staleness read: how stale it was allowed to be. [`History::ops`] moves its invoke
    /// stamp back to the first stamp within that bound, so the checkers hold it to exactly the promise
    /// (it may reflect any state from up to that long before it was sent), and no more.
    pub stale: Option<Duration>,
}

impl Op {
    pub fn is_definite(&self) -> bool {
        self.ret != Ret::Unknown
    }
}

/// A shared, append-only history. Cheap to clone.
#[derive(Clone, Default)]
pub struct History {
    /// When each stamp was taken (its index is the stamp).
    stamps: Arc<Mutex<Vec<Instant>>>,
    ops: Arc<Mutex<Vec<Op>>>,
}

/// Handle to an invoked operation, completed with [`History::complete`].
pub struct Pending(usize);

impl History {
    fn tick(&self) -> u64 {
        let mut stamps = self.stamps.lock().unwrap_or_else(|p| p.into_inner());
        stamps.push(Instant::now());
        stamps.len() as u64 - 1
    }

    pub fn invoke(&self, client: u32, node: usize, key: &str, call: Call) -> Pending {
        self.invoke_stale(client, node, key, call, None)
    }

    /// Invokes a read that may be up to `stale` old (bounded staleness).
    pub fn invoke_stale(&self, client: u32, node: usize, key: &str, call: Call, stale: Option<Duration>) -> Pending {
        let invoked = self.tick();
        let mut ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        let op = Op { client, node, key: key.to_owned(), call, invoked, returned: u64::MAX, ret: Ret::Unknown, stale };
        ops.push(op);
        Pending(ops.len() - 1)
    }

    pub fn complete(&self, pending: Pending, ret: Ret) {
        let returned = self.tick();
        let mut ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        let op = &mut ops[pending.0];
        if ret == Ret::Unknown && op.call.is_write() {
            op.returned = u64::MAX;
        } else {
            op.returned = returned;
        }
        op.ret = ret;
    }

    /// Every operation so far. Refused calls and failed reads (no effect, nothing learned) are left out;
    /// a bounded-staleness read starts at the first stamp within its bound before it was sent.
    pub fn ops(&self) -> Vec<Op> {
        let stamps = self.stamps.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        ops.iter()
            .filter(|o| o.ret != Ret::Refused && (o.call.is_write() || o.is_definite()))
            .map(|o| match o.stale {
                Some(bound) => {
                    let sent = stamps[o.invoked as usize];
                    let earliest = sent.checked_sub(bound).unwrap_or(stamps[0]);
                    Op { invoked: stamps.partition_point(|t| *t < earliest) as u64, ..o.clone() }
                }
                None => o.clone(),
            })
            .collect()
    }

    /// A stable text form of the whole history, for comparing two runs of one seed.
    pub fn fingerprint(&self) -> String {
        let ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        ops.iter().map(|o| format!("{o:?}\n")).collect()
    }
}

/// One line per operation, for failure reports.
pub fn describe(op: &Op) -> String {
    let returned = if op.returned == u64::MAX { "∞".to_owned() } else { op.returned.to_string() };
    let stale = op.stale.map(|d| format!(" (at most {} ms stale)", d.as_millis())).unwrap_or_default();
    format!(
        "[{:>6} → {:>6}] client {} via node {}: {} {:?}{stale} => {:?}",
        op.invoked, returned, op.client, op.node, op.key, op.call, op.ret
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_stale_read_may_reach_back_exactly_as_far_as_its_bound() {
        let h = History::default();
        let early = h.invoke(1, 0, "v/s", Call::Get);
        h.complete(early, Ret::NotFound);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let w = h.invoke(1, 0, "v/s", Call::Set { value: "a".into() });
        h.complete(w, Ret::Version { version: "1".into() });
        tokio::time::sleep(Duration::from_millis(700)).await;
        let inside = h.invoke_stale(2, 1, "v/s", Call::Get, Some(Duration::from_millis(1000)));
        h.complete(inside, Ret::NotFound);
        let outside = h.invoke_stale(2, 1, "v/s", Call::Get, Some(Duration::from_millis(100)));
        h.complete(outside, Ret::NotFound);
        let ops = h.ops();
        // Within 1 s the read may start before the set (stamp 2), not before the early read's stamps.
        assert_eq!(ops[2].invoked, 2);
        assert_eq!(ops[3].invoked, 4, "a 100 ms bound reaches back only to stamps taken at the same time");
    }
}
