//! The secondary region taking over writes by itself, once the primary is lost (`arca-failover` has
//! the rules, `failover` the epoch record and the lease).
//!
//! Every node of the secondary region checks every [`PROMOTION_CHECK_EVERY_MS`]. Once it has heard
//! nothing from the primary's leader for the failover delay (and the primary has been under a lease
//! since failover was set up, so it stops taking writes when its lease lapses):
//! 1. It asks its region's nodes how much of the log they hold (`Progress`). With a strict majority
//!    of them answering, the one holding the most (the least loss; lowest id on a tie) is the
//!    candidate; every other node waits.
//! 2. The candidate asks every acceptor to promote its region to the next epoch, founded by itself
//!    (`Promote`): the other sites first, its own region's only once another site agreed. An
//!    acceptor refuses while a promise to the old primary runs (its lease plus the drift margin),
//!    and a node refuses while it still hears from the primary's leader.
//! 3. With a majority of the sites (two of primary, secondary, witness), the epoch is won: the
//!    candidate founds a new Raft lineage from its own log ([`arca_raft::RaftNode::found_lineage`]),
//!    whose voters are its region's nodes and whose first entries record the epoch under
//!    [`crate::failover::EPOCH_KEY`]. The old primary's nodes leave the membership, so their
//!    certificates are refused from then on, and the region's other nodes follow the candidate once
//!    it is elected among them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use arca_failover::{Epoch, Timing};
use arca_proto::cluster::v1 as cpb;
use arca_raft::ArcaNode;
use arca_types::{ArcaError, ErrorCode};

use crate::engine::Engine;
use crate::failover::{bounded, current_epoch, lease_in_force, within, Topology};
use crate::keyspace;

/// How often a node of the secondary region checks whether its region should take over, in ms.
pub const PROMOTION_CHECK_EVERY_MS: u64 = 500;
/// Cluster events kept for a watcher that lags; beyond that it misses the oldest.
pub const EVENTS_BUFFERED: usize = 64;

/// What the event watcher remembers between checks.
#[derive(Debug, Default)]
pub struct EventWatch {
    lost: bool,
    epoch_seen: u64,
    handover_seen: u64,
}

/// A node takes up an epoch at most this far above the one it holds: a promotion may skip one number
/// an acceptor elsewhere holds without having won it, and no member can push the record out of reach.
pub const EPOCH_STEP_MAX: u64 = 2;
/// Epoch `n`'s lineage starts at a Raft term of at least `n × EPOCH_TERM_STRIDE` (2^32: no lineage
/// holds four billion elections).
pub const EPOCH_TERM_STRIDE: u64 = arca_raft::network::LINEAGE_TERM_STRIDE;

/// What a promotion won: the epoch, where this node's log ended when it founded the epoch, and how
/// long it had not heard from the primary (what the primary acknowledged after that is lost).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promoted {
    pub epoch: Epoch,
    pub last_log_index: u64,
    pub primary_silent_ms: u64,
    /// Won with this region's own acceptors alone (`arca cluster failover --force`).
    pub forced: bool,
}

impl Engine {
    /// Reports a cluster event to this node's watchers (none listening is fine).
    fn emit(&self, kind: &str, epoch: &Epoch, detail: String) {
        tracing::warn!(kind, epoch = epoch.number, primary = %epoch.primary, "{detail}");
        let at_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let _ = self.events.send(arca_proto::v1::ClusterEvent {
            kind: kind.to_owned(),
            epoch: epoch.number,
            primary: epoch.primary.clone(),
            node_id: self.node_id.get().copied().unwrap_or(0),
            at_unix_ms,
            detail,
        });
    }

    /// One look for failover events (every promotion check): `FailoverStarted` when this node turns
    /// read-only because the primary is silent, `SwitchoverStarted` when its replica holds the
    /// primary's handover of the epoch, `FailoverCompleted` when its lineage's epoch grows.
    pub fn watch_events(&self, watch: &mut EventWatch) {
        let Ok(raft) = self.raft() else { return };
        let primary = crate::regions::primary_region(&raft.view()).unwrap_or_default();
        let Ok(current) = current_epoch(&*self.store, &primary) else { return };
        match self.read_only_secondary() {
            Some(silent) if !watch.lost => {
                watch.lost = true;
                self.emit(
                    "FailoverStarted",
                    &current,
                    format!(
                        "the primary region has not been heard from for {silent} ms: this region is read-only, and takes over once a majority of the sites agrees"
                    ),
                );
            }
            Some(_) => {}
            None => watch.lost = false,
        }
        // Each handover once (by the index it was written at: a withdrawn one and the next differ).
        if let Some((at, h)) = self.current_handover_at().filter(|(at, _)| *at > watch.handover_seen) {
            watch.handover_seen = at;
            self.emit(
                "SwitchoverStarted",
                &current,
                format!(
                    "region {} handed epoch {} over to region {}: it takes no more writes, and region {} takes over once it holds every write and the lease has run out",
                    h.from, h.epoch, h.to, h.to
                ),
            );
        }
        if current.number > watch.epoch_seen {
            if watch.epoch_seen != 0 {
                self.emit(
                    "FailoverCompleted",
                    &current,
                    format!(
                        "epoch {} holds: region {} is the primary and takes writes (founded by node {})",
                        current.number, current.primary, current.founder
                    ),
                );
            }
            watch.epoch_seen = current.number;
        }
    }

    /// What `Progress` answers: how much of the log this node holds and since when it is silent.
    pub fn progress(&self) -> Result<cpb::ProgressResponse, ArcaError> {
        let raft = self.raft()?;
        let (last_log_term, last_log_index) = raft.last_log_id().map_err(ArcaError::unavailable)?;
        Ok(cpb::ProgressResponse {
            last_log_index,
            term: raft.view().term,
            leader_silent_ms: self.failover.leader_silent_ms(),
            last_log_term,
        })
    }

    /// Whether this node has heard nothing from the primary's leader for the failover delay, or
    /// holds the primary's handover of the epoch its lineage runs (a planned switchover); a leader
    /// never has lost the primary: it is the one others hear from.
    pub fn lost_primary(&self, timing: &Timing) -> bool {
        self.raft().is_ok_and(|r| !r.is_leader())
            && (self.failover.leader_silent_ms() >= timing.failover_after_ms || self.current_handover().is_some())
    }

    /// Why Raft traffic from `caller` is refused, if it is: this node's acceptor took up an epoch
    /// for this node's own region newer than the one its replica's lineage runs (its region is
    /// founding the new lineage), and `caller` is not of that region. The old
    /// primary's leader (one that handed over, thawed, or came back from a cut) must not lead this
    /// node back into the old lineage before the founder's first entries reach it: refused by the
    /// founder, it takes up the founder's higher term, so Raft alone would follow it.
    pub fn superseded_caller(&self, caller: u64) -> Option<String> {
        let accepted = self.failover.accepted()?;
        let raft = self.raft().ok()?;
        let view = raft.view();
        let primary = crate::regions::primary_region(&view)?;
        let lineage = current_epoch(&*self.store, &primary).ok()?;
        let region_of = |id: u64| view.nodes.iter().find(|n| n.node_id == id).map(|n| n.node.region.clone());
        if accepted.number <= lineage.number || region_of(raft.node_id)? != accepted.primary {
            return None;
        }
        // Only the new epoch's region leads this node now. A caller its membership no longer names
        // is a node the founder's lineage displaced (admission still knows it until the founder's
        // entries apply here).
        match region_of(caller) {
            Some(theirs) if theirs == accepted.primary => None,
            theirs => Some(format!(
                "this node took up epoch {} of region {}, which replaces epoch {}: node {caller} ({}) leads it no more",
                accepted.number,
                accepted.primary,
                lineage.number,
                theirs.map_or_else(|| "displaced".to_owned(), |r| format!("region {r}"))
            )),
        }
    }

    /// This node's region and the failover topology, when this node is of the secondary region.
    pub(crate) fn secondary_member(&self) -> Result<Option<(String, Topology)>, ArcaError> {
        let raft = self.raft()?;
        let Some(topo) = self.topology()? else { return Ok(None) };
        let view = raft.view();
        let mine = view.nodes.iter().find(|n| n.node_id == raft.node_id).map(|n| n.node.region.clone());
        Ok(mine.filter(|m| *m == topo.secondary).map(|m| (m, topo)))
    }

    /// One check on a node of the secondary region (see the module): returns the epoch this node won
    /// and founded, if it did.
    pub async fn try_promote(&self) -> Result<Option<Promoted>, ArcaError> {
        Ok(self.promote_region(false).await?.ok())
    }

    /// `arca cluster failover --force`, on a node of the secondary region: promotes it with the
    /// agreement of its own region's acceptors alone (the witness and the primary lost together), or
    /// says why not now.
    pub async fn force_promote(&self) -> Result<Promoted, ArcaError> {
        self.promote_region(true).await?.map_err(|why| ArcaError::new(ErrorCode::FailoverNotPossible, why))
    }

    /// Promotes this node's region if it may now: `Ok(Err(why))` when not (yet). With `force`, this
    /// region's own acceptors suffice.
    async fn promote_region(&self, force: bool) -> Result<Result<Promoted, String>, ArcaError> {
        // One promotion at a time on a node (the background check and an operator's forced one):
        // two would found two lineages over one log.
        let Ok(one) = self.promoting.clone().try_lock_owned() else {
            return Ok(Err("a promotion of this region is under way on this node; retry".to_owned()));
        };
        let Some((region, topo)) = self.secondary_member()? else {
            return Ok(Err("this node is not of the secondary region of a cluster with failover set up (a witness and exactly one secondary region)".to_owned()));
        };
        let timing = topo.witness.timing;
        let silent = self.failover.leader_silent_ms();
        // Founded already, and the lineage's first entries not applied yet: founding again would
        // restart Raft under the election it waits for (a primary that handed over still counts as
        // lost until those entries apply).
        let founded = self.failover.founded();
        if founded > current_epoch(&*self.store, &topo.primary)?.number {
            return Ok(Err(format!(
                "this node founded epoch {founded}: its region takes writes once its nodes elect a leader"
            )));
        }
        if force {
            if let Some(h) = self.current_handover() {
                // The primary is alive and handing over: this region takes over by the usual path,
                // and a forced epoch could meet a withdrawn handover with two primaries.
                return Ok(Err(format!(
                    "region {} is handing epoch {} over to this region (a switchover): it takes over by itself within a lease and the drift margin; no forced failover",
                    h.from, h.epoch
                )));
            }
        }
        if !self.lost_primary(&timing) {
            return Ok(Err(format!(
                "this node heard from the primary's leader {silent} ms ago: the primary is not lost (the failover delay is {} ms)",
                timing.failover_after_ms
            )));
        }
        if !lease_in_force(&*self.store)? {
            return Ok(Err(
                "the primary never held a lease on the epoch, so nothing stops it taking writes: no promotion"
                    .to_owned(),
            ));
        }
        let raft = self.raft()?.clone();
        let me = raft.node_id;
        let budget = Duration::from_millis(timing.renew_every_ms());
        let members = topo.sites.acceptors_of(&region).cloned().unwrap_or_default();

        // 1. Which of the region's nodes holds the most of the log.
        let asks = members.iter().map(|id| {
            let (id, addr) = (*id, topo.addrs.get(id).cloned().unwrap_or_default());
            let channels = raft.channels.clone();
            async move {
                if id == me {
                    return self.progress().map(|p| (id, p)).map_err(|e| e.to_string());
                }
                let mut client = channels.client(&addr, Some(id))?;
                bounded(id, budget, client.progress(within(cpb::ProgressRequest {}, budget))).await.map(|p| (id, p))
            }
        });
        let progress: BTreeMap<u64, cpb::ProgressResponse> =
            futures::future::join_all(asks).await.into_iter().filter_map(Result::ok).collect();
        let logs: BTreeMap<u64, (u64, u64)> =
            progress.iter().map(|(id, p)| (*id, (p.last_log_term, p.last_log_index))).collect();
        match arca_failover::candidate(&members, &logs) {
            Some(c) if c == me => {}
            Some(c) => {
                return Ok(Err(format!(
                    "node {c} holds more of the log than this node: it is the one to found the epoch (ask it)"
                )))
            }
            None => {
                return Ok(Err(format!(
                    "only {} of this region's {} nodes answered: a strict majority must, to know which holds the most",
                    logs.len(),
                    members.len()
                )))
            }
        }
        let Some(&(last_log_term, last_log_index)) = logs.get(&me) else {
            return Ok(Err("this node could not read its own log".to_owned()));
        };

        // 2. The next epoch, founded by this node. Asking again for an epoch this node proposed
        // before (it may have won it and stopped before founding) is answered the same.
        // A number refused as taken (an acceptor holds an epoch nobody won, of a founder that stopped)
        // moves the next proposal past it, one at a time.
        let stored = current_epoch(&*self.store, &topo.primary)?;
        let held = self.failover.current(&timing).map_err(ArcaError::unavailable)?;
        let known = stored.number.max(held.number);
        let taken = self.failover.taken_number().min(known.saturating_add(1));
        let proposed =
            if held.primary == region && held.founder == me && held.number > stored.number && taken < held.number {
                held
            } else {
                let Some(number) = known.max(taken).checked_add(1) else {
                    return Ok(Err("the epoch number is exhausted".to_owned()));
                };
                Epoch { number, primary: region.clone(), founder: me }
            };
        // The other sites first: this region's acceptors take the epoch up only once another site
        // has, so a region cut off from the primary alone (which keeps its lease through the
        // witness) does not leave an epoch nobody won in its own acceptors, refusing the primary's
        // renewals after the cut heals.
        let request = cpb::EpochRequest {
            number: proposed.number,
            primary: proposed.primary.clone(),
            founder: me,
            founder_last_log_term: last_log_term,
            founder_last_log_index: last_log_index,
        };
        let ask = |ids: Vec<u64>| {
            let asks = ids.into_iter().map(|id| {
                let (addr, request) = (topo.addrs.get(&id).cloned().unwrap_or_default(), request.clone());
                let channels = raft.channels.clone();
                let proposed = &proposed;
                async move {
                    if id == me {
                        return self.failover.promote(proposed, &timing).map(|a| (id, a));
                    }
                    let mut client = channels.client(&addr, Some(id))?;
                    bounded(id, budget, client.promote(within(request, budget))).await.map(|a| (id, a))
                }
            });
            futures::future::join_all(asks)
        };
        let (own, others): (Vec<u64>, Vec<u64>) = topo.sites.acceptors().partition(|id| members.contains(id));
        let mut answers: Vec<(u64, cpb::PromoteResponse)> =
            ask(others).await.into_iter().filter_map(Result::ok).collect();
        let accepted = |answers: &[(u64, cpb::PromoteResponse)]| -> BTreeSet<u64> {
            answers.iter().filter(|(_, a)| a.accepted).map(|(id, _)| *id).collect()
        };
        let another_site = topo.sites.agreeing(&accepted(&answers)).iter().any(|site| *site != region.as_str());
        // A refusal from another site because a promise to the old primary still runs means the
        // primary renewed its lease there lately: it is alive (cut off from this region, not lost),
        // and even a forced promotion would make two regions take writes.
        let primary_renewing = answers.iter().any(|(_, a)| !a.accepted && a.retry_in_ms > 0);
        if force && primary_renewing {
            return Ok(Err(
                "the witness or the primary's nodes granted the primary a lease within the last lease and margin: the primary is alive, not lost; no forced promotion".to_owned(),
            ));
        }
        if another_site || force {
            answers.extend(ask(own).await.into_iter().filter_map(Result::ok));
        }
        let accepted = accepted(&answers);
        for (_, answer) in &answers {
            if !answer.accepted && answer.retry_in_ms == 0 {
                self.failover.note_taken_number(answer.current_number);
            }
        }
        let won = topo.sites.is_majority(&accepted) || (force && topo.sites.site_agrees(&region, &accepted));
        if !won {
            let retry_in_ms = answers.iter().map(|(_, a)| a.retry_in_ms).max().unwrap_or(0);
            tracing::info!(
                epoch = proposed.number,
                ?accepted,
                retry_in_ms,
                force,
                "the primary region is lost; the promotion of this region is not agreed yet"
            );
            return Ok(Err(format!(
                "epoch {} is not agreed yet (accepted by {accepted:?}{}); retry",
                proposed.number,
                if retry_in_ms > 0 {
                    format!(", a promise to the old primary runs {retry_in_ms} ms more")
                } else {
                    String::new()
                }
            )));
        }

        // 3. Won: found the new lineage with this region's nodes as its voters.
        let view = raft.view();
        let voters: BTreeMap<u64, ArcaNode> =
            view.nodes.iter().filter(|n| members.contains(&n.node_id)).map(|n| (n.node_id, n.node.clone())).collect();
        // The lineage's term carries the epoch number in its high bits, so two founders of different
        // epochs never write different entries under one log id (term, index), even when neither
        // saw the other's term: at most one founder wins each number.
        let Some(epoch_terms) = proposed.number.checked_mul(EPOCH_TERM_STRIDE) else {
            return Ok(Err("the epoch number is too large for a Raft term".to_owned()));
        };
        let term_floor = progress.values().map(|p| p.term).max().unwrap_or(0).max(epoch_terms - 1);
        // The old lineage's nodes leave the membership; the lineage records them, and where it
        // forked, so they can file what they hold that it lacks when they come back.
        let displaced: Vec<u64> =
            view.nodes.iter().filter(|n| !members.contains(&n.node_id)).map(|n| n.node_id).collect();
        let epoch_record = proposed.clone();
        let records = move |fork: &arca_raft::log_store::Fork| {
            let lineage = crate::divergence::LineageRecord::new(epoch_record.number, me, fork, displaced);
            vec![arca_storage::proposal::Proposal {
                preconditions: Vec::new(),
                ops: vec![
                    keyspace::put_plain(crate::failover::EPOCH_KEY, &epoch_record),
                    keyspace::put_plain(crate::divergence::LINEAGE_KEY, &lineage),
                ],
            }]
        };
        tracing::warn!(
            epoch = proposed.number,
            primary = %proposed.primary,
            ?accepted,
            force,
            last_log_index,
            primary_silent_ms = silent,
            "this region won the epoch: founding its lineage; it takes writes once its nodes elect a leader"
        );
        // On a task of its own: a caller that goes away (an operator's Ctrl-C) must not leave Raft
        // stopped half way.
        let founding = raft.clone();
        tokio::spawn(async move {
            let founded = founding.found_lineage(voters, term_floor, records).await;
            drop(one);
            founded
        })
        .await
        .map_err(|e| ArcaError::internal(format!("founding the lineage stopped: {e}")))?
        .map_err(ArcaError::unavailable)?;
        // No longer a silent follower of the old primary: this node now stands for election.
        self.failover.note_founded(proposed.number);
        self.failover.heard_from_leader();
        self.failover.drop_lease();
        Ok(Ok(Promoted { epoch: proposed, last_log_index, primary_silent_ms: silent, forced: force }))
    }

    /// Answers node `caller`'s `Promote`: only a member of the secondary region, founding the epoch
    /// itself, for that region, at most [`EPOCH_STEP_MAX`] epochs above the one this node holds, with a log
    /// (`founder_log`: its last entry's term and index) holding everything this node applied, while
    /// this node too has lost the primary's leader.
    pub fn answer_promote(
        &self,
        caller: u64,
        proposed: &Epoch,
        founder_log: (u64, u64),
    ) -> Result<cpb::PromoteResponse, (tonic::Code, String)> {
        use tonic::Code;
        let topo = self.topology().map_err(|e| (Code::Unavailable, e.to_string()))?.ok_or((
            Code::FailedPrecondition,
            "failover is not set up on this node's replica (no witness, or not exactly one secondary region)"
                .to_owned(),
        ))?;
        if !topo.sites.acceptors_of(&topo.secondary).is_some_and(|ids| ids.contains(&caller)) {
            return Err((
                Code::PermissionDenied,
                format!("node {caller} is not a member of the secondary region: only they ask for a promotion"),
            ));
        }
        if proposed.primary != topo.secondary || proposed.founder != caller {
            return Err((
                Code::InvalidArgument,
                "a promotion names the secondary region as primary and the asking node as founder".to_owned(),
            ));
        }
        let timing = topo.witness.timing;
        let held = self.failover.current(&timing).map_err(|e| {
            tracing::error!("failed to read the epoch record: {e}");
            (Code::Unavailable, "this node could not read the epoch record; retry".to_owned())
        })?;
        // From the epoch this node's acceptor holds, or the one its replica's lineage runs if that is
        // later (a node that rejoined starts its acceptor afresh, and takes the lineage's epoch up
        // only with a renewal, which a primary handing over no longer sends).
        let lineage = current_epoch(&*self.store, &topo.primary).map_err(|e| (Code::Unavailable, e.to_string()))?;
        let reach = held.number.max(lineage.number).saturating_add(EPOCH_STEP_MAX);
        if proposed.number > reach {
            return Err((
                Code::InvalidArgument,
                format!("epoch {} is beyond the highest ({reach}) this node could take up", proposed.number),
            ));
        }
        // The founder's log must hold every entry this node knows was committed (Raft's election
        // rule: compare the last entries' terms, then their indexes).
        let founder_last = founder_log;
        let applied = self.raft().map_err(|e| (Code::Unavailable, e.to_string()))?.applied_log_id();
        if applied > founder_last {
            return Err((
                Code::FailedPrecondition,
                format!(
                    "this node applied entry {} of term {}, beyond the founder's log (entry {} of term {}): the most advanced node must found the epoch",
                    applied.1, applied.0, founder_last.1, founder_last.0
                ),
            ));
        }
        if !self.lost_primary(&timing) {
            return Err((
                Code::FailedPrecondition,
                "this node still hears from the primary's leader (or leads it): no promotion now".to_owned(),
            ));
        }
        self.failover.promote(proposed, &timing).map_err(|e| {
            tracing::error!("failed to keep the epoch record: {e}");
            (Code::Unavailable, "this node could not keep the epoch record; retry".to_owned())
        })
    }
}
