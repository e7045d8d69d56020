//! Which region may take writes, decided without split brain: the epoch record, the acceptors that
//! keep it, the primary's lease, and which secondary node promotes. Pure: no clock, no IO, no network.
//!
//! Three *sites* decide: the primary region, the secondary region and a witness. Every node of the two
//! regions and the witness runs an [`Acceptor`]; a site agrees when a strict majority of its acceptors
//! do, and a decision needs a majority of the sites ([`Sites`]).
//!
//! - The primary may acknowledge writes only while it holds a [`Lease`] on the current [`Epoch`]: a
//!   renewal round sent at local time `t` that a majority of sites granted makes the lease good until
//!   `t + lease_ms` on the primary's clock.
//! - An acceptor that grants promises to accept no higher epoch for `lease_ms + drift_margin_ms` from
//!   when it received the renewal, on its own clock. So a promotion, which needs a majority of sites,
//!   meets at least one acceptor still bound by a promise until the primary's lease has certainly run
//!   out, as long as every clock runs within [`Timing::max_drift_rate`] of real time.
//! - An acceptor that restarts does not know what it promised, so it accepts no new epoch for a whole
//!   lease and margin ([`Acceptor::start`]); the accepted epoch itself is persisted before any answer.
//!
//! Time is milliseconds of a local monotonic clock, never compared between machines.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Shortest and longest lease a primary may hold, in milliseconds.
pub const LEASE_MS_MIN: u64 = 500;
pub const LEASE_MS_MAX: u64 = 60_000;
/// Longest time a secondary may wait before it considers the primary lost, in milliseconds.
pub const FAILOVER_AFTER_MS_MAX: u64 = 600_000;

/// An epoch: a number that only grows, the region that may take writes in it, and the node that
/// founded it. Two nodes of one region proposing the same number propose different epochs, so at
/// most one of them wins it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Epoch {
    pub number: u64,
    pub primary: String,
    /// The node that founded the epoch's Raft lineage; 0 for the first epoch.
    #[serde(default)]
    pub founder: u64,
}

impl Epoch {
    /// The first epoch of a cluster: its bootstrapping region is the primary.
    pub fn first(primary: &str) -> Self {
        Self { number: 1, primary: primary.to_owned(), founder: 0 }
    }

    /// The epoch after this one, with `primary` taking writes (founded by nobody in particular: see
    /// [`Epoch::founded_by`]).
    pub fn next(&self, primary: &str) -> Self {
        Self { number: self.number + 1, primary: primary.to_owned(), founder: 0 }
    }

    /// This epoch, founded by node `founder`.
    pub fn founded_by(mut self, founder: u64) -> Self {
        self.founder = founder;
        self
    }
}

/// The failover timing, the same on every node and the witness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    /// How long one granted renewal round lets the primary take writes, from when it sent the round.
    pub lease_ms: u64,
    /// How much longer than a lease an acceptor keeps its promise, for clocks that run at different
    /// rates (see [`Timing::max_drift_rate`]).
    pub drift_margin_ms: u64,
    /// How long the secondary must have heard nothing from the primary before it tries to promote.
    pub failover_after_ms: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Self { lease_ms: 3_000, drift_margin_ms: 1_000, failover_after_ms: 3_000 }
    }
}

impl Timing {
    /// Checks the limits: a lease of [`LEASE_MS_MIN`]..=[`LEASE_MS_MAX`], a margin of at least a tenth
    /// of the lease (every clock within 4.7 % of real time) and at most the lease, and a failover delay of at least
    /// one lease and at most [`FAILOVER_AFTER_MS_MAX`].
    pub fn check(&self) -> Result<(), String> {
        if !(LEASE_MS_MIN..=LEASE_MS_MAX).contains(&self.lease_ms) {
            return Err(format!("the lease must be {LEASE_MS_MIN}-{LEASE_MS_MAX} ms, not {} ms", self.lease_ms));
        }
        if self.drift_margin_ms.saturating_mul(10) < self.lease_ms || self.drift_margin_ms > self.lease_ms {
            return Err(format!(
                "the clock-drift margin must be a tenth of the lease to the whole lease ({}-{} ms), not {} ms",
                self.lease_ms.div_ceil(10),
                self.lease_ms,
                self.drift_margin_ms
            ));
        }
        if !(self.lease_ms..=FAILOVER_AFTER_MS_MAX).contains(&self.failover_after_ms) {
            return Err(format!(
                "the failover delay must be at least the lease and at most {FAILOVER_AFTER_MS_MAX} ms ({}-{FAILOVER_AFTER_MS_MAX} ms), not {} ms",
                self.lease_ms, self.failover_after_ms
            ));
        }
        Ok(())
    }

    /// How long an acceptor's promise lasts: the lease and the margin.
    pub fn promise_ms(&self) -> u64 {
        self.lease_ms + self.drift_margin_ms
    }

    /// How often the primary sends a renewal round: three rounds per lease, so one lost round costs
    /// nothing.
    pub fn renew_every_ms(&self) -> u64 {
        (self.lease_ms / 3).max(1)
    }

    /// How far from real time any clock's rate may be (each within ±`r`) for no promotion to overlap a
    /// lease: the primary's lease (`L` on its clock, `L / (1 - r)` of real time at worst) must end
    /// before the promise (`L + m` on the acceptor's clock, at least `(L + m) / (1 + r)`), which holds
    /// while `r <= m / (2L + m)`. Clocks are monotonic and must keep counting while the machine is
    /// suspended: a clock that stops stretches the primary's lease in real time.
    pub fn max_drift_rate(&self) -> f64 {
        self.drift_margin_ms as f64 / (2 * self.lease_ms + self.drift_margin_ms) as f64
    }
}

/// What an acceptor answers a renewal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Renewal {
    /// The epoch is current here; this acceptor promises to accept no higher one for a lease and margin.
    Granted,
    /// Not granted; `current` is what this acceptor holds. A higher epoch (or another primary under
    /// the asked number) fences the asker only once two sites answer so ([`Lease::round`]); a lower
    /// one means this acceptor has not taken the asked epoch up yet (its promise still runs).
    Refused { current: Epoch },
}

/// What an acceptor answers a promotion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Promotion {
    Accepted,
    /// Not now: the proposed epoch is not above the current one, or this acceptor is still bound by a
    /// promise for `retry_in_ms` more.
    Refused {
        current: Epoch,
        retry_in_ms: u64,
    },
}

/// One keeper of the epoch record. The caller persists [`Acceptor::accepted`] whenever an answer says
/// it changed, before it sends the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acceptor {
    accepted: Epoch,
    /// Until this local time it accepts no epoch above `accepted`.
    promised_until: u64,
}

impl Acceptor {
    /// An acceptor starting (or restarting) at local time `now` with the record it persisted. It may
    /// have granted a renewal just before it stopped, so it keeps that promise as if made now.
    pub fn start(accepted: Epoch, now: u64, timing: &Timing) -> Self {
        Self { accepted, promised_until: now.saturating_add(timing.promise_ms()) }
    }

    pub fn accepted(&self) -> &Epoch {
        &self.accepted
    }

    /// Until when (local time) it accepts no higher epoch.
    pub fn promised_until(&self) -> u64 {
        self.promised_until
    }

    /// A renewal of `asked`, received at `now`. Returns the answer and whether the record changed
    /// (persist it before answering). A higher epoch than the one held is taken up under the same rule
    /// as a promotion, once this acceptor's promise has run out: a renewal proves nothing about who won
    /// (a primary might renew an epoch that only some acceptors accepted), and taking it up while a
    /// promise runs could let two leases overlap.
    #[must_use]
    pub fn renew(&mut self, asked: &Epoch, now: u64, timing: &Timing) -> (Renewal, bool) {
        let changed = if asked.number > self.accepted.number && now >= self.promised_until {
            self.accepted = asked.clone();
            true
        } else if *asked != self.accepted {
            return (Renewal::Refused { current: self.accepted.clone() }, false);
        } else {
            false
        };
        self.promised_until = self.promised_until.max(now.saturating_add(timing.promise_ms()));
        (Renewal::Granted, changed)
    }

    /// A promotion to `proposed`, received at `now`. Returns the answer and whether the record changed
    /// (persist it before answering). A refusal with `retry_in_ms` 0 asks for a higher number.
    #[must_use]
    pub fn promote(&mut self, proposed: &Epoch, now: u64, timing: &Timing) -> (Promotion, bool) {
        if *proposed == self.accepted {
            return (Promotion::Accepted, false);
        }
        if proposed.number <= self.accepted.number {
            return (Promotion::Refused { current: self.accepted.clone(), retry_in_ms: 0 }, false);
        }
        if now < self.promised_until {
            let retry_in_ms = self.promised_until - now;
            return (Promotion::Refused { current: self.accepted.clone(), retry_in_ms }, false);
        }
        self.accepted = proposed.clone();
        // The new primary's first lease starts with its promotion.
        self.promised_until = now.saturating_add(timing.promise_ms());
        (Promotion::Accepted, true)
    }
}

/// The three sites that decide, and the acceptors of each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sites {
    sites: BTreeMap<String, BTreeSet<u64>>,
}

impl Sites {
    /// Exactly three sites, each with at least one acceptor, no acceptor in two.
    pub fn new(sites: impl IntoIterator<Item = (String, BTreeSet<u64>)>) -> Result<Self, String> {
        let mut map: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
        for (name, acceptors) in sites {
            if acceptors.is_empty() {
                return Err(format!("site {name} has no acceptor"));
            }
            if map.insert(name.clone(), acceptors).is_some() {
                return Err(format!("site {name} is named twice"));
            }
        }
        if map.len() != 3 {
            return Err(format!(
                "a failover decision needs three sites (the primary region, the secondary region and a witness), not {}",
                map.len()
            ));
        }
        let mut seen = BTreeSet::new();
        for ids in map.values() {
            if let Some(id) = ids.iter().find(|id| !seen.insert(**id)) {
                return Err(format!("acceptor {id} is in two sites"));
            }
        }
        Ok(Self { sites: map })
    }

    /// The site acceptor `id` belongs to.
    pub fn site_of(&self, id: u64) -> Option<&str> {
        self.sites.iter().find(|(_, ids)| ids.contains(&id)).map(|(name, _)| name.as_str())
    }

    /// Every acceptor of every site.
    pub fn acceptors(&self) -> impl Iterator<Item = u64> + '_ {
        self.sites.values().flatten().copied()
    }

    pub fn acceptors_of(&self, site: &str) -> Option<&BTreeSet<u64>> {
        self.sites.get(site)
    }

    /// The sites in which a strict majority of the acceptors are in `agreed`.
    pub fn agreeing(&self, agreed: &BTreeSet<u64>) -> Vec<&str> {
        self.sites
            .iter()
            .filter(|(_, ids)| ids.intersection(agreed).count() * 2 > ids.len())
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// Whether `agreed` makes a majority of the sites (two of three).
    pub fn is_majority(&self, agreed: &BTreeSet<u64>) -> bool {
        self.agreeing(agreed).len() * 2 > self.sites.len()
    }

    /// Whether `site` alone agrees (what a forced failover, with the other two sites lost, settles for).
    pub fn site_agrees(&self, site: &str, agreed: &BTreeSet<u64>) -> bool {
        self.sites.get(site).is_some_and(|ids| ids.intersection(agreed).count() * 2 > ids.len())
    }
}

/// The primary's lease on its epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    epoch: Epoch,
    until: Option<u64>,
    fenced_by: Option<Epoch>,
    /// The newer epoch each acceptor answered with, over every round (an acceptor's record only
    /// grows), so a primary learns it is fenced even when the two sites say so in different rounds.
    newer_seen: BTreeMap<u64, Epoch>,
}

impl Lease {
    pub fn new(epoch: Epoch) -> Self {
        Self { epoch, until: None, fenced_by: None, newer_seen: BTreeMap::new() }
    }

    pub fn epoch(&self) -> &Epoch {
        &self.epoch
    }

    /// The answers to one renewal round sent at local time `sent`: a granting majority of sites makes
    /// the lease good until `sent + lease_ms`. When a majority of sites answers with a higher epoch
    /// (or another primary under this number), that epoch has won and this one is fenced for good. A
    /// fencing answer from fewer sites proves nothing (a promotion that reached only some acceptors
    /// never took effect) and costs the lease nothing: only grants extend it.
    pub fn round(&mut self, sent: u64, answers: &BTreeMap<u64, Renewal>, sites: &Sites, timing: &Timing) {
        if self.fenced_by.is_some() {
            return;
        }
        let newer = |e: &Epoch| e.number > self.epoch.number || (e.number == self.epoch.number && *e != self.epoch);
        for (id, answer) in answers {
            if let Renewal::Refused { current } = answer {
                if newer(current) && self.newer_seen.get(id).is_none_or(|seen| seen.number <= current.number) {
                    self.newer_seen.insert(*id, current.clone());
                }
            }
        }
        if sites.is_majority(&self.newer_seen.keys().copied().collect()) {
            self.fenced_by = self.newer_seen.values().max_by_key(|e| e.number).cloned();
            self.until = None;
            return;
        }
        let granted: BTreeSet<u64> =
            answers.iter().filter(|(_, a)| **a == Renewal::Granted).map(|(id, _)| *id).collect();
        if sites.is_majority(&granted) {
            let until = sent.saturating_add(timing.lease_ms);
            self.until = Some(self.until.map_or(until, |u| u.max(until)));
        }
    }

    /// Whether the primary may acknowledge a write at local time `now`.
    pub fn holds(&self, now: u64) -> bool {
        self.fenced_by.is_none() && self.until.is_some_and(|u| now < u)
    }

    /// How much longer the lease runs at `now`, in milliseconds (0 when it does not hold).
    pub fn remaining_ms(&self, now: u64) -> u64 {
        if self.holds(now) {
            self.until.unwrap_or(0) - now
        } else {
            0
        }
    }

    /// The higher epoch that fenced this one, once two sites answered with newer epochs (the highest of
    /// them: it need not be the one that won, so it names no primary to follow).
    pub fn fenced_by(&self) -> Option<&Epoch> {
        self.fenced_by.as_ref()
    }
}

/// Which node of the secondary region promotes: the one holding the most of the log (the least
/// loss), the lowest id on a tie, among the answers of at least a strict majority of the region's
/// nodes (`progress`: node id to how far its log goes, compared as Raft compares logs: the last
/// entry's term, then its index). A node that answered but is not of the region is ignored.
pub fn candidate<P: Ord + Copy>(region: &BTreeSet<u64>, progress: &BTreeMap<u64, P>) -> Option<u64> {
    let answered: Vec<(u64, P)> =
        progress.iter().filter(|(id, _)| region.contains(id)).map(|(id, last)| (*id, *last)).collect();
    if answered.len() * 2 <= region.len() {
        return None;
    }
    answered.into_iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0))).map(|(id, _)| id)
}

#[cfg(test)]
mod tests;
