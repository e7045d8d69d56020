//! A planned switchover (`arca cluster switchover`, and the failback after it): the primary hands
//! writes to the secondary region with nothing acknowledged lost, while both regions and the
//! witness are up.
//!
//! 1. The primary's leader, holding its lease, with a strict majority of the secondary's nodes
//!    caught up to within [`SWITCHOVER_LAG_ENTRIES_MAX`], commits a [`Handover`] of the current epoch
//!    under [`HANDOVER_KEY`].
//! 2. From the entry on, the primary takes no writes: the lease gate refuses a write on a leader
//!    whose replica holds the handover of its lease's epoch, and a write committed after it is not
//!    acknowledged (the gate is asked again once it applied, and the handover applied first). The
//!    leader stops renewing its lease, so the acceptors' promises to it run out.
//! 3. A node that holds the handover of the epoch its lineage runs counts the primary as lost (as
//!    if silent for the failover delay): the secondary's nodes promote their region, and the
//!    primary's followers and the witness accept, the usual way ([`crate::promotion`]), each only once
//!    its promise has run out. The founder holds the handover, so every write committed before it.
//! 4. The old primary's nodes learn that the new epoch displaced them, file what they hold past the
//!    fork (nothing acknowledged) and rejoin as replicas ([`crate::divergence`]).
//!
//! Nothing here weakens the lease: the promises still decide when the new epoch can be won, so a
//! cancelled handover (`--cancel`) is as safe as a lease renewed after a cut.

use arca_raft::ApplyOutcome;
use arca_storage::proposal::{Precondition, Proposal};
use arca_storage::{Op, StateStore};
use arca_types::{ArcaError, ErrorCode};
use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::failover::current_epoch;
use crate::keyspace;

/// Where the primary records that it hands its epoch over (one record; only the current epoch's
/// counts).
pub const HANDOVER_KEY: &[u8] = b"s/handover";
/// A switchover starts only while a strict majority of the secondary's nodes trail the primary's
/// leader by at most this many log entries: further behind, writes would stop for as long as they
/// take to catch up.
pub const SWITCHOVER_LAG_ENTRIES_MAX: u64 = 1_000;

/// The primary's handover of an epoch to another region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handover {
    pub epoch: u64,
    pub from: String,
    pub to: String,
}

/// The handover recorded in this replica, with the index it was written at, if any.
pub fn recorded(store: &dyn StateStore) -> Result<Option<(u64, Handover)>, ArcaError> {
    keyspace::read_plain::<Handover>(store, HANDOVER_KEY)
}

/// The handover of epoch `epoch`, if this replica holds one.
pub fn of_epoch(store: &dyn StateStore, epoch: u64) -> Result<Option<Handover>, ArcaError> {
    Ok(recorded(store)?.map(|(_, h)| h).filter(|h| h.epoch == epoch))
}

/// Whether a strict majority of `region` (node ids) has a matched index within
/// [`SWITCHOVER_LAG_ENTRIES_MAX`] of `last_log_index`. `matched` holds what the leader knows.
pub fn caught_up(region: &[u64], matched: &dyn Fn(u64) -> Option<u64>, last_log_index: u64) -> bool {
    let close =
        region.iter().filter(|id| matched(**id).is_some_and(|m| m + SWITCHOVER_LAG_ENTRIES_MAX >= last_log_index));
    !region.is_empty() && close.count() * 2 > region.len()
}

/// The refusal of a write on a primary that handed its epoch over.
pub fn handing_over(h: &Handover) -> ArcaError {
    ArcaError::new(
        ErrorCode::ReadOnlyFailover,
        format!(
            "region {} is handing writes over to region {} (a switchover): it takes none from now on, and region {} takes them once it holds every write and the lease has run out; reads and crypto still work; retry",
            h.from, h.to, h.to
        ),
    )
}

impl Engine {
    /// The handover of the epoch this replica's lineage runs, if the primary handed it over.
    pub fn current_handover(&self) -> Option<Handover> {
        self.current_handover_at().map(|(_, h)| h)
    }

    /// [`Engine::current_handover`], with the log index it was written at.
    pub fn current_handover_at(&self) -> Option<(u64, Handover)> {
        let raft = self.raft().ok()?;
        let primary = crate::regions::primary_region(&raft.view())?;
        let epoch = current_epoch(&*self.store, &primary).ok()?;
        recorded(&*self.store).ok()?.filter(|(_, h)| h.epoch == epoch.number)
    }

    /// On the primary's leader: hands the current epoch over to region `to` (the secondary), or
    /// answers the handover already made. Returns the handover and its log index.
    pub(crate) async fn hand_over(&self, to: &str) -> Result<(Handover, u64), ArcaError> {
        let raft = self.raft()?;
        let topo = self.topology()?.ok_or_else(|| {
            ArcaError::new(
                ErrorCode::FailoverNotPossible,
                "failover is not set up (a witness and exactly one secondary region): there is no region to hand writes to",
            )
        })?;
        if to != topo.secondary {
            return Err(ArcaError::bad_parameter(
                "region",
                format!("the secondary region, the only one writes can go to, is {}, not {to:?}", topo.secondary),
            ));
        }
        let epoch = current_epoch(&*self.store, &topo.primary)?;
        let existing = recorded(&*self.store)?;
        if let Some((at, h)) = &existing {
            if h.epoch == epoch.number {
                return Ok((h.clone(), *at));
            }
        }
        // Only under a lease on this very epoch, in force: the handover shuts the gate that the
        // lease opened, and the secondary promotes only once that lease has run out.
        if self.failover.held_epoch() != Some(epoch.number) || !crate::failover::lease_in_force(&*self.store)? {
            return Err(ArcaError::new(
                ErrorCode::FailoverNotPossible,
                format!(
                    "this node is not the primary's leader holding a lease on epoch {} now, so it cannot hand the epoch over; retry (if the primary is lost, the secondary takes over by itself)",
                    epoch.number
                ),
            ));
        }
        let view = raft.view();
        let region: Vec<u64> =
            topo.sites.acceptors_of(&topo.secondary).map(|s| s.iter().copied().collect()).unwrap_or_default();
        let matched = |id: u64| view.nodes.iter().find(|n| n.node_id == id).and_then(|n| n.matched_index);
        if !caught_up(&region, &matched, view.last_log_index) {
            return Err(ArcaError::new(
                ErrorCode::FailoverNotPossible,
                format!(
                    "fewer than a strict majority of region {}'s nodes trail this leader by at most {SWITCHOVER_LAG_ENTRIES_MAX} entries: writes would stop until they catch up; retry once `arca cluster status` shows them close",
                    topo.secondary
                ),
            ));
        }
        let handover = Handover { epoch: epoch.number, from: topo.primary.clone(), to: to.to_owned() };
        let proposal = Proposal {
            preconditions: vec![Precondition { key: HANDOVER_KEY.to_vec(), modified_at: existing.map(|(at, _)| at) }],
            ops: vec![keyspace::put_plain(HANDOVER_KEY, &handover)],
        };
        // Not through the lease gate: once applied, the handover itself turns the gate shut.
        match raft.write(proposal).await.map_err(crate::engine::from_proposal_error)? {
            (index, ApplyOutcome::Applied) => {
                tracing::warn!(epoch = epoch.number, from = %handover.from, to = %handover.to, index, "handed the epoch over: this region takes no more writes");
                Ok((handover, index))
            }
            (_, ApplyOutcome::Conflict) => {
                Err(ArcaError::unavailable("a switchover was started or withdrawn concurrently; retry"))
            }
        }
    }

    /// On the primary's leader: withdraws the handover of the current epoch to region `to`. Returns
    /// it and the index of its withdrawal.
    pub(crate) async fn cancel_handover(&self, to: &str) -> Result<(Handover, u64), ArcaError> {
        let raft = self.raft()?;
        let primary = crate::regions::primary_region(&raft.view()).unwrap_or_default();
        let epoch = current_epoch(&*self.store, &primary)?;
        let Some((at, handover)) = recorded(&*self.store)?.filter(|(_, h)| h.epoch == epoch.number) else {
            return Err(ArcaError::new(
                ErrorCode::FailoverNotPossible,
                format!("epoch {} was not handed over: there is no switchover to withdraw", epoch.number),
            ));
        };
        if handover.to != to {
            return Err(ArcaError::bad_parameter(
                "region",
                format!("epoch {} was handed over to region {}, not {to:?}", handover.epoch, handover.to),
            ));
        }
        // Too late once an acceptor holds a later epoch: the other region may have won it (or be
        // winning it). Asking renews the epoch where it is still held, so from here the other region
        // cannot win before the leader renews again after the withdrawal (or lets it lapse).
        if let Some(topo) = self.topology()? {
            let answers = self.ask_renewal(raft, &topo, &epoch).await;
            if let Some((id, later)) = answers.iter().find(|(_, a)| a.current_number > epoch.number) {
                return Err(ArcaError::new(
                    ErrorCode::FailoverNotPossible,
                    format!(
                        "node {id} already holds epoch {} of region {}: the switchover is past withdrawing",
                        later.current_number, later.current_primary
                    ),
                ));
            }
        }
        let proposal = Proposal {
            preconditions: vec![Precondition { key: HANDOVER_KEY.to_vec(), modified_at: Some(at) }],
            ops: vec![Op::Delete { key: HANDOVER_KEY.to_vec() }],
        };
        // Not through the lease gate, which the handover holds shut: the lease decides again once
        // the leader renews it, and a secondary that won the next epoch fences it.
        match raft.write(proposal).await.map_err(crate::engine::from_proposal_error)? {
            (index, ApplyOutcome::Applied) => {
                tracing::warn!(epoch = epoch.number, to = %handover.to, index, "withdrew the handover of the epoch");
                Ok((handover, index))
            }
            (_, ApplyOutcome::Conflict) => Err(ArcaError::unavailable("the switchover changed concurrently; retry")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_switchover_needs_a_strict_majority_of_the_secondary_within_the_lag_limit() {
        let last = 5_000;
        let at = |lag: u64| move |_: u64| Some(last - lag);
        assert!(caught_up(&[4], &at(SWITCHOVER_LAG_ENTRIES_MAX), last), "at the limit");
        assert!(!caught_up(&[4], &at(SWITCHOVER_LAG_ENTRIES_MAX + 1), last), "one past it");
        let some = |id: u64| match id {
            4 | 5 => Some(last),
            _ => Some(0),
        };
        assert!(caught_up(&[4, 5, 6], &some, last));
        assert!(!caught_up(&[4, 5, 6, 7], &some, last), "two of four is no strict majority");
        assert!(!caught_up(&[4, 5], &|_| None, last), "never replicated to");
        assert!(!caught_up(&[], &at(0), last), "no secondary at all");
    }
}
