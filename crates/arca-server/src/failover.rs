//! The epoch record on a node and on the witness, and the primary's lease (`arca-failover` has the
//! rules; this module runs them).
//!
//! - Every node and the witness keep an [`arca_failover::Acceptor`], persisted through an
//!   [`EpochStore`] (the log store's metadata on a node, a file on the witness) before any answer that
//!   changed it leaves.
//! - Failover is set up once the cluster has a witness (`arcad witness`, recorded under
//!   [`WITNESS_KEY`] with the failover timing) and exactly one secondary region: then the three sites
//!   are the voters (the primary region), that region's nodes and the witness ([`topology`]).
//! - The primary's leader renews its lease on the epoch with every acceptor each
//!   [`Timing::renew_every_ms`]; while failover is set up it proposes nothing and confirms no read
//!   index without a lease ([`Engine::require_lease`]), and a write whose lease ran out while it was
//!   in flight answers `OUTCOME_UNKNOWN`. A cluster without a witness or a secondary runs as before.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arca_failover::{Acceptor, Epoch, Lease, Promotion, Renewal, Sites, Timing};
use arca_proto::cluster::v1 as cpb;
use arca_raft::ClusterView;
use arca_storage::{Durability, LogStore, StateStore};
use arca_types::{ArcaError, ErrorCode};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::engine::Engine;
use crate::keyspace;

/// Where the cluster records its witness.
pub const WITNESS_KEY: &[u8] = b"s/witness";
/// Recorded by the primary's leader once it first held a lease after failover was set up: from
/// then on the primary takes writes only under a lease. Before it, acceptors that just started
/// keep the promise they might have made (a lease and a margin), and the gate would stop writes for
/// those seconds for nothing: no region can take over before the marker, since promotion needs it.
pub const LEASE_IN_FORCE_KEY: &[u8] = b"s/lease-in-force";

/// Whether the primary has held a lease since failover was set up (see [`LEASE_IN_FORCE_KEY`]).
pub fn lease_in_force(store: &dyn StateStore) -> Result<bool, ArcaError> {
    Ok(keyspace::read_plain::<u64>(store, LEASE_IN_FORCE_KEY)?.is_some())
}
/// The witness's site name in a [`Sites`]: parentheses are not allowed in region names.
pub const WITNESS_SITE: &str = "(witness)";
/// The log-store metadata key of a node's accepted epoch.
const EPOCH_META: &str = "failover_epoch";
/// A node of the secondary region that has heard nothing from the primary's leader for this long
/// (ten heartbeats) is read-only: it serves reads and crypto from its replica, reporting how old
/// its last contact is, and refuses changes with `READ_ONLY_FAILOVER`, in milliseconds.
pub const PRIMARY_SILENT_MS: u64 = 1_000;

/// The cluster's witness: its node id (its certificate names it), where it listens, and the
/// failover timing every acceptor and the primary use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessRecord {
    pub node_id: u64,
    pub cluster_addr: String,
    pub timing: Timing,
}

/// The witness the cluster recorded, if any.
pub fn witness_record(store: &dyn StateStore) -> Result<Option<WitnessRecord>, ArcaError> {
    Ok(keyspace::read_plain::<WitnessRecord>(store, WITNESS_KEY)?.map(|(_, r)| r))
}

/// Where an acceptor keeps the epoch it accepted.
pub trait EpochStore: Send + Sync {
    fn load(&self) -> Result<Option<Epoch>, String>;
    /// Durably: the answer that changed it leaves only after this returns.
    fn save(&self, epoch: &Epoch) -> Result<(), String>;
}

fn encode_epoch(epoch: &Epoch) -> String {
    format!("{} {} {}", epoch.number, epoch.primary, epoch.founder)
}

/// Reads `number primary founder` (a record written before epochs named their founder has none: 0).
fn decode_epoch(text: &str) -> Result<Epoch, String> {
    let mut parts = text.split(' ');
    let number = parts.next().and_then(|n| n.parse().ok()).ok_or("the stored epoch number is corrupt")?;
    let primary = parts.next().filter(|p| !p.is_empty()).ok_or("the stored epoch is corrupt")?.to_owned();
    let founder = match parts.next() {
        Some(f) => f.parse().map_err(|_| "the stored epoch's founder is corrupt")?,
        None => 0,
    };
    if parts.next().is_some() {
        return Err("the stored epoch is corrupt".to_owned());
    }
    Ok(Epoch { number, primary, founder })
}

/// Where the cluster records the epoch its current lineage holds, written by the node that founded
/// it in the lineage's first entries (absent: the first epoch, held by the bootstrapping region).
pub const EPOCH_KEY: &[u8] = b"s/epoch";

/// The epoch this replica's lineage holds: the one its founder recorded, or the first epoch of
/// `primary` (the voters' region) when no promotion ever happened.
pub fn current_epoch(store: &dyn StateStore, primary: &str) -> Result<Epoch, ArcaError> {
    Ok(keyspace::read_plain::<Epoch>(store, EPOCH_KEY)?.map_or_else(|| Epoch::first(primary), |(_, e)| e))
}

/// A node's accepted epoch, in its log store's metadata (synced).
pub struct LogEpochStore(pub Arc<dyn LogStore>);

impl EpochStore for LogEpochStore {
    fn load(&self) -> Result<Option<Epoch>, String> {
        match self.0.get_meta(EPOCH_META).map_err(|e| format!("failed to read the epoch: {e}"))? {
            Some(bytes) => {
                decode_epoch(std::str::from_utf8(&bytes).map_err(|_| "the stored epoch is corrupt")?).map(Some)
            }
            None => Ok(None),
        }
    }

    fn save(&self, epoch: &Epoch) -> Result<(), String> {
        self.0
            .put_meta(EPOCH_META, encode_epoch(epoch).as_bytes(), Durability::Synced)
            .map_err(|e| format!("failed to store the epoch: {e}"))
    }
}

/// The witness's accepted epoch, in a file of its data dir (written to a new file, synced, renamed
/// over the old one, and the directory synced).
pub struct FileEpochStore(pub std::path::PathBuf);

impl EpochStore for FileEpochStore {
    fn load(&self) -> Result<Option<Epoch>, String> {
        match std::fs::read_to_string(&self.0) {
            Ok(text) => decode_epoch(text.trim()).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("failed to read {}: {e}", self.0.display())),
        }
    }

    fn save(&self, epoch: &Epoch) -> Result<(), String> {
        use std::io::Write;
        let fail = |e: std::io::Error| format!("failed to store the epoch in {}: {e}", self.0.display());
        let tmp = self.0.with_extension("new");
        let mut file = std::fs::File::create(&tmp).map_err(fail)?;
        file.write_all(encode_epoch(epoch).as_bytes()).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        std::fs::rename(&tmp, &self.0).map_err(fail)?;
        if let Some(dir) = self.0.parent() {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(fail)?;
        }
        Ok(())
    }
}

/// The three sites, once failover is set up.
#[derive(Debug, Clone)]
pub struct Topology {
    pub sites: Sites,
    pub primary: String,
    pub secondary: String,
    pub witness: WitnessRecord,
    /// Where to reach each acceptor (cluster address).
    pub addrs: BTreeMap<u64, String>,
}

/// The sites a view of the cluster and its witness make: the voters (the primary region), the one
/// other region's nodes, and the witness. `None` without a witness, or with no or several other
/// regions.
pub fn topology(view: &ClusterView, witness: Option<WitnessRecord>) -> Option<Topology> {
    let witness = witness?;
    let primary = crate::regions::primary_region(view)?;
    let voters: BTreeSet<u64> = view.nodes.iter().filter(|n| n.voter).map(|n| n.node_id).collect();
    let others: BTreeSet<&str> =
        view.nodes.iter().map(|n| n.node.region.as_str()).filter(|r| *r != primary.as_str()).collect();
    let [secondary] = others.into_iter().collect::<Vec<_>>()[..] else { return None };
    let secondary = secondary.to_owned();
    let replicas: BTreeSet<u64> = view.nodes.iter().filter(|n| n.node.region == secondary).map(|n| n.node_id).collect();
    let sites = Sites::new([
        (primary.clone(), voters),
        (secondary.clone(), replicas),
        (WITNESS_SITE.to_owned(), [witness.node_id].into()),
    ])
    .ok()?;
    let mut addrs: BTreeMap<u64, String> =
        view.nodes.iter().map(|n| (n.node_id, n.node.cluster_addr.clone())).collect();
    addrs.insert(witness.node_id, witness.cluster_addr.clone());
    Some(Topology { sites, primary, secondary, witness, addrs })
}

/// One process's part in failover: its acceptor and, on the primary's leader, its lease.
pub struct Failover {
    origin: Instant,
    /// When (ms on this process's clock) the leader's last AppendEntries reached this node.
    heard_leader: std::sync::atomic::AtomicU64,
    store: Arc<dyn EpochStore>,
    acceptor: Mutex<Option<Acceptor>>,
    lease: Mutex<Option<Lease>>,
    /// The highest epoch number acceptors refused a promotion of this node's as taken.
    taken: std::sync::atomic::AtomicU64,
    /// The highest epoch this process founded a lineage for.
    founded: std::sync::atomic::AtomicU64,
}

impl Failover {
    pub fn new(store: Arc<dyn EpochStore>) -> Self {
        Self {
            origin: Instant::now(),
            heard_leader: std::sync::atomic::AtomicU64::new(0),
            store,
            acceptor: Mutex::default(),
            lease: Mutex::default(),
            taken: std::sync::atomic::AtomicU64::new(0),
            founded: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Notes that this process founded the lineage of epoch `number`.
    pub fn note_founded(&self, number: u64) {
        self.founded.fetch_max(number, std::sync::atomic::Ordering::Relaxed);
    }

    /// The highest epoch this process founded a lineage for (0: none).
    pub fn founded(&self) -> u64 {
        self.founded.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Notes that an acceptor refused this node's promotion because it holds epoch `number`.
    pub fn note_taken_number(&self, number: u64) {
        self.taken.fetch_max(number, std::sync::atomic::Ordering::Relaxed);
    }

    /// The highest epoch number an acceptor refused this node's promotion with.
    pub fn taken_number(&self) -> u64 {
        self.taken.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Notes that the leader's AppendEntries (a heartbeat at least) just reached this node.
    pub fn heard_from_leader(&self) {
        self.heard_leader.store(self.now_ms(), std::sync::atomic::Ordering::Relaxed);
    }

    /// How long since the leader last reached this node (since start, if it never has), in ms.
    pub fn leader_silent_ms(&self) -> u64 {
        self.now_ms().saturating_sub(self.heard_leader.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// This process's monotonic clock, in milliseconds.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Runs `f` on the acceptor (started from what was persisted, on first use: an acceptor that never
    /// accepted anything holds epoch 0) and persists the record when `f` says it changed, all under
    /// the acceptor's lock, so no answer, this one or a concurrent one, rests on a record that is not
    /// on disk. A record that cannot be persisted is taken back and the call fails.
    fn with_acceptor<T>(
        &self,
        timing: &Timing,
        f: impl FnOnce(&mut Acceptor, u64) -> (T, bool),
    ) -> Result<(T, Epoch), String> {
        let mut slot = self.acceptor.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.now_ms();
        if slot.is_none() {
            let stored = self.store.load()?.unwrap_or(Epoch { number: 0, primary: String::new(), founder: 0 });
            *slot = Some(Acceptor::start(stored, now, timing));
        }
        let acceptor = slot.as_mut().expect("just started");
        let before = acceptor.clone();
        let (answer, changed) = f(acceptor, now);
        let current = acceptor.accepted().clone();
        if changed {
            if let Err(e) = self.store.save(&current) {
                *acceptor = before;
                return Err(e);
            }
        }
        Ok((answer, current))
    }

    /// The epoch this process's acceptor holds, if it has started.
    pub fn accepted(&self) -> Option<Epoch> {
        self.acceptor.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|a| a.accepted().clone())
    }

    /// The epoch this process's acceptor holds, starting it from what was persisted if needed.
    pub fn current(&self, timing: &Timing) -> Result<Epoch, String> {
        self.with_acceptor(timing, |_, _| ((), false)).map(|(_, e)| e)
    }

    /// Answers a renewal; a changed record is persisted first.
    pub fn renew(&self, asked: &Epoch, timing: &Timing) -> Result<cpb::RenewResponse, String> {
        let (answer, current) = self.with_acceptor(timing, |a, now| a.renew(asked, now, timing))?;
        Ok(cpb::RenewResponse {
            granted: answer == Renewal::Granted,
            current_number: current.number,
            current_primary: current.primary,
            current_founder: current.founder,
        })
    }

    /// Answers a promotion; a changed record is persisted first.
    pub fn promote(&self, proposed: &Epoch, timing: &Timing) -> Result<cpb::PromoteResponse, String> {
        let (answer, current) = self.with_acceptor(timing, |a, now| a.promote(proposed, now, timing))?;
        let retry_in_ms = match answer {
            Promotion::Refused { retry_in_ms, .. } => retry_in_ms,
            Promotion::Accepted => 0,
        };
        Ok(cpb::PromoteResponse {
            accepted: answer == Promotion::Accepted,
            current_number: current.number,
            current_primary: current.primary,
            retry_in_ms,
            current_founder: current.founder,
        })
    }

    /// How long the lease still runs, in milliseconds (0 without one).
    pub fn lease_remaining_ms(&self) -> u64 {
        let now = self.now_ms();
        self.lease.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map_or(0, |l| l.remaining_ms(now))
    }

    /// The epoch number of the lease this process holds now, if it holds one.
    pub(crate) fn held_epoch(&self) -> Option<u64> {
        let now = self.now_ms();
        self.lease.lock().unwrap_or_else(|p| p.into_inner()).as_ref().filter(|l| l.holds(now)).map(|l| l.epoch().number)
    }

    pub(crate) fn drop_lease(&self) {
        *self.lease.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

fn epoch_of(request: &cpb::EpochRequest) -> Epoch {
    Epoch { number: request.number, primary: request.primary.clone(), founder: request.founder }
}

fn request_of(epoch: &Epoch) -> cpb::EpochRequest {
    cpb::EpochRequest {
        number: epoch.number,
        primary: epoch.primary.clone(),
        founder: epoch.founder,
        ..Default::default()
    }
}

/// Reads the epoch an acceptor was asked about, refusing nonsense before the acceptor sees it.
pub fn checked_epoch(request: &cpb::EpochRequest) -> Result<Epoch, ArcaError> {
    if request.number == 0 {
        return Err(ArcaError::bad_parameter("number", "an epoch number starts at 1"));
    }
    arca_types::RegionName::parse(&request.primary)?;
    Ok(epoch_of(request))
}

/// A request to a peer that carries `budget` as its deadline (see [`bounded`]).
pub(crate) fn within<T>(message: T, budget: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(budget);
    request
}

/// One failover call to node `id` (an acceptor, or a node of the region), bounded as a whole by
/// `budget`, connecting included: a silent peer must not hold a round past its interval.
pub(crate) async fn bounded<T>(
    id: u64,
    budget: Duration,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, String> {
    match tokio::time::timeout(budget, call).await {
        Ok(answer) => answer.map(tonic::Response::into_inner).map_err(|s| s.message().to_owned()),
        Err(_) => Err(format!("node {id} did not answer within {} ms", budget.as_millis())),
    }
}

/// What decides whether the primary's leader may propose or confirm a read index: failover's set-up
/// (the replica's witness record and the membership) and the lease. Cheap to clone, for tasks.
#[derive(Clone)]
pub struct LeaseGate {
    pub store: Arc<dyn StateStore>,
    pub failover: Arc<Failover>,
}

impl LeaseGate {
    /// Whether this leader may propose a write now: without failover set up, always; with it, only
    /// while it holds a lease on the epoch and has not handed the epoch over (a write committed after
    /// the handover is not acknowledged either: this is asked again once it applied, after the
    /// handover did).
    pub fn require(&self, raft: &arca_raft::RaftNode) -> Result<(), ArcaError> {
        self.check(raft, true)
    }

    /// Whether this leader may confirm a read index now: as [`LeaseGate::require`], but a handover
    /// does not stop reads while the lease runs (no other region can take writes before it ran out).
    pub fn require_for_reads(&self, raft: &arca_raft::RaftNode) -> Result<(), ArcaError> {
        self.check(raft, false)
    }

    fn check(&self, raft: &arca_raft::RaftNode, write: bool) -> Result<(), ArcaError> {
        if arca_types::faults::active(arca_types::faults::Fault::IgnoreLease) {
            // Deliberate bug (danger-faults builds only): the primary ignores its lease.
            return Ok(());
        }
        if let Some(epoch) = self.failover.held_epoch() {
            return match crate::switchover::of_epoch(&*self.store, epoch)? {
                Some(handover) if write => Err(crate::switchover::handing_over(&handover)),
                _ => Ok(()),
            };
        }
        if !lease_in_force(&*self.store)? {
            return Ok(());
        }
        let Some(topo) = topology(&raft.view(), witness_record(&*self.store)?) else { return Ok(()) };
        if write {
            let epoch = current_epoch(&*self.store, &topo.primary)?;
            if let Some(handover) = crate::switchover::of_epoch(&*self.store, epoch.number)? {
                return Err(crate::switchover::handing_over(&handover));
            }
        }
        Err(ArcaError::new(
            ErrorCode::ReadOnlyFailover,
            "this region holds no lease on the current epoch: it cannot reach the witness or the secondary region, or a failover is under way, so it takes no writes now; reads and crypto still work; retry",
        ))
    }

    /// After a write committed: it is acknowledged only if the lease still holds; otherwise another
    /// region may already take writes, and this one's outcome is not for this region to confirm.
    pub fn still_holds(&self, raft: &arca_raft::RaftNode) -> Result<(), ArcaError> {
        self.require(raft).map_err(|_| {
            ArcaError::new(
                ErrorCode::OutcomeUnknown,
                "the lease on the epoch ran out, or the epoch was handed over, while the write was in flight: it may or may not have taken effect; read before retrying",
            )
        })
    }
}

impl Engine {
    /// The failover sites, if failover is set up on this node's view of the cluster.
    pub fn topology(&self) -> Result<Option<Topology>, ArcaError> {
        let Ok(raft) = self.raft() else { return Ok(None) };
        Ok(topology(&raft.view(), witness_record(&*self.store)?))
    }

    /// On a node of the secondary region, while failover is set up and the primary's leader has been
    /// silent for more than [`PRIMARY_SILENT_MS`]: for how long (the age of what its replica holds).
    pub fn read_only_secondary(&self) -> Option<u64> {
        let raft = self.raft().ok()?;
        if raft.is_leader() {
            return None;
        }
        let silent = self.failover.leader_silent_ms();
        if silent <= PRIMARY_SILENT_MS {
            return None;
        }
        self.secondary_member().ok()??;
        Some(silent)
    }

    /// Refuses a change on a read-only secondary (see [`Engine::read_only_secondary`]) at once,
    /// instead of letting it wait for a primary that does not answer.
    pub fn refuse_if_read_only(&self) -> Result<(), ArcaError> {
        match self.read_only_secondary() {
            None => Ok(()),
            Some(silent) => Err(ArcaError::new(
                ErrorCode::ReadOnlyFailover,
                format!(
                    "the primary region has not been heard from for {silent} ms: this secondary region is read-only (reads and crypto are served from its replica) until the primary returns or this region takes over; retry"
                ),
            )),
        }
    }

    pub fn lease_gate(&self) -> LeaseGate {
        LeaseGate { store: self.store.clone(), failover: self.failover.clone() }
    }

    /// On the primary's leader: whether it may propose a write now.
    pub fn require_lease(&self) -> Result<(), ArcaError> {
        self.lease_gate().require(self.raft()?)
    }

    /// On the primary's leader: whether it may confirm a read index now.
    pub fn require_lease_for_reads(&self) -> Result<(), ArcaError> {
        self.lease_gate().require_for_reads(self.raft()?)
    }

    /// After a write committed: see [`LeaseGate::still_holds`].
    pub fn lease_still_holds(&self) -> Result<(), ArcaError> {
        self.lease_gate().still_holds(self.raft()?)
    }

    /// Asks every acceptor to renew `epoch` (this node's own directly), each within a renewal
    /// interval; returns the answers that came.
    pub(crate) async fn ask_renewal(
        &self,
        raft: &arca_raft::RaftNode,
        topo: &Topology,
        epoch: &Epoch,
    ) -> BTreeMap<u64, cpb::RenewResponse> {
        let timing = topo.witness.timing;
        let request = request_of(epoch);
        let asks = topo.addrs.iter().map(|(id, addr)| {
            let (id, addr, request) = (*id, addr.clone(), request.clone());
            let channels = raft.channels.clone();
            let me = raft.node_id;
            let failover = &*self.failover;
            async move {
                let answer = if id == me {
                    failover.renew(epoch, &timing).map_err(|e| e.to_string())
                } else {
                    // Half an interval: a round waits for its slowest acceptor, and with one cut off
                    // a full interval left the lease (which runs from the round's send) no margin
                    // by the next round's end, so it lapsed for a moment every other round.
                    let budget = Duration::from_millis(timing.renew_every_ms() / 2);
                    let mut client = channels.client(&addr, Some(id))?;
                    bounded(id, budget, client.renew(within(request, budget))).await
                };
                answer.map(|a| (id, a))
            }
        });
        futures::future::join_all(asks).await.into_iter().filter_map(Result::ok).collect()
    }

    /// One renewal round, on the primary's leader (anywhere else it drops any lease it held).
    pub async fn renew_lease(&self) {
        let (Ok(raft), Ok(Some(topo))) = (self.raft(), self.topology()) else {
            self.failover.drop_lease();
            return;
        };
        if !raft.is_leader() {
            self.failover.drop_lease();
            return;
        }
        let timing = topo.witness.timing;
        // A primary renews only the epoch its lineage won: the one its founder recorded in the
        // replicated state, or the cluster's first. Never the acceptor's record: a promotion that
        // reached only some acceptors leaves an epoch there that nobody won.
        let Ok(epoch) = current_epoch(&*self.store, &topo.primary) else {
            self.failover.drop_lease();
            return;
        };
        // Handed over: the primary renews no more and lets its lease run out (it still confirms
        // read indexes until then), so the acceptors can take the next epoch.
        if !matches!(crate::switchover::of_epoch(&*self.store, epoch.number), Ok(None)) {
            return;
        }
        let sent = self.failover.now_ms();
        let answers: BTreeMap<u64, Renewal> = self
            .ask_renewal(raft, &topo, &epoch)
            .await
            .into_iter()
            .map(|(id, a)| {
                let current =
                    Epoch { number: a.current_number, primary: a.current_primary, founder: a.current_founder };
                // A grant counts only for the epoch it names.
                let answer =
                    if a.granted && current == epoch { Renewal::Granted } else { Renewal::Refused { current } };
                (id, answer)
            })
            .collect();
        let holds = {
            let mut slot = self.failover.lease.lock().unwrap_or_else(|p| p.into_inner());
            let lease = match slot.as_mut() {
                Some(l) if *l.epoch() == epoch => l,
                _ => slot.insert(Lease::new(epoch.clone())),
            };
            let held = lease.holds(self.failover.now_ms());
            lease.round(sent, &answers, &topo.sites, &timing);
            let holds = lease.holds(self.failover.now_ms());
            if held != holds {
                let granted: Vec<u64> =
                    answers.iter().filter(|(_, a)| **a == Renewal::Granted).map(|(id, _)| *id).collect();
                if holds {
                    tracing::info!(epoch = epoch.number, ?granted, "holds the lease on the epoch: takes writes");
                } else {
                    tracing::warn!(epoch = epoch.number, ?granted, "lost the lease on the epoch: takes no writes");
                }
            }
            if let Some(fenced) = lease.fenced_by() {
                tracing::warn!(epoch = epoch.number, by = fenced.number, primary = %fenced.primary, "this region was fenced by a newer epoch");
            }
            holds
        };
        if holds && !lease_in_force(&*self.store).unwrap_or(true) {
            let proposal = arca_storage::proposal::Proposal {
                preconditions: vec![arca_storage::proposal::Precondition {
                    key: LEASE_IN_FORCE_KEY.to_vec(),
                    modified_at: None,
                }],
                ops: vec![keyspace::put_plain(LEASE_IN_FORCE_KEY, &epoch.number)],
            };
            match self.propose_on_leader(proposal).await {
                Ok(_) => tracing::info!(epoch = epoch.number, "the lease is in force: writes need it from now on"),
                Err(e) => tracing::warn!("failed to record that the lease is in force: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arca_raft::{ArcaNode, NodeView};

    fn node(id: u64, region: &str, voter: bool) -> NodeView {
        NodeView {
            node_id: id,
            node: ArcaNode { api_addr: String::new(), cluster_addr: format!("n{id}:1"), region: region.to_owned() },
            voter,
            matched_index: None,
        }
    }

    fn view(nodes: Vec<NodeView>) -> ClusterView {
        ClusterView {
            node_id: 1,
            leader_id: Some(1),
            term: 1,
            state: "leader",
            last_log_index: 1,
            commit_index: 1,
            applied_index: 1,
            nodes,
        }
    }

    fn witness() -> WitnessRecord {
        WitnessRecord { node_id: 9, cluster_addr: "w:1".into(), timing: Timing::default() }
    }

    #[test]
    fn failover_is_set_up_with_a_witness_and_exactly_one_secondary_region() {
        let a = || vec![node(1, "west", true), node(2, "west", true), node(3, "west", true)];
        assert!(topology(&view(a()), Some(witness())).is_none(), "no secondary");
        let mut with_b = a();
        with_b.extend([node(4, "east", false), node(5, "east", false)]);
        assert!(topology(&view(with_b.clone()), None).is_none(), "no witness");
        let topo = topology(&view(with_b.clone()), Some(witness())).unwrap();
        assert_eq!((topo.primary.as_str(), topo.secondary.as_str()), ("west", "east"));
        assert_eq!(topo.sites.acceptors_of("west").unwrap(), &[1, 2, 3].into());
        assert_eq!(topo.sites.acceptors_of("east").unwrap(), &[4, 5].into());
        assert_eq!(topo.sites.acceptors_of(WITNESS_SITE).unwrap(), &[9].into());
        assert_eq!(topo.addrs[&9], "w:1");
        assert_eq!(topo.addrs[&4], "n4:1");
        let mut two_secondaries = with_b;
        two_secondaries.push(node(6, "north", false));
        assert!(topology(&view(two_secondaries), Some(witness())).is_none(), "which one would promote?");
        // A learner of the primary region is no acceptor of its site.
        let mut learner = a();
        learner.extend([node(4, "east", false), node(7, "west", false)]);
        let topo = topology(&view(learner), Some(witness())).unwrap();
        assert_eq!(topo.sites.acceptors_of("west").unwrap(), &[1, 2, 3].into());
    }

    #[test]
    fn the_witness_file_keeps_the_epoch_across_a_restart() {
        let dir = std::env::temp_dir().join(format!("arca-epoch-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = FileEpochStore(dir.join("epoch"));
        assert_eq!(store.load().unwrap(), None);
        let two = Epoch { number: 2, primary: "east".into(), founder: 4 };
        store.save(&two).unwrap();
        assert_eq!(FileEpochStore(dir.join("epoch")).load().unwrap(), Some(two));
        // A record written before epochs named their founder reads as founded by nobody.
        std::fs::write(dir.join("epoch"), "1 west").unwrap();
        assert_eq!(store.load().unwrap(), Some(Epoch::first("west")));
        std::fs::write(dir.join("epoch"), "garbage").unwrap();
        assert!(store.load().is_err(), "a corrupt record is an error, not epoch 0");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn an_acceptor_takes_up_the_first_epoch_and_persists_before_answering() {
        struct Memory(Mutex<Vec<Epoch>>);
        impl EpochStore for Memory {
            fn load(&self) -> Result<Option<Epoch>, String> {
                Ok(self.0.lock().unwrap().last().cloned())
            }
            fn save(&self, epoch: &Epoch) -> Result<(), String> {
                self.0.lock().unwrap().push(epoch.clone());
                Ok(())
            }
        }
        let store = Arc::new(Memory(Mutex::default()));
        let failover = Failover::new(store.clone());
        let t = Timing { lease_ms: 500, drift_margin_ms: 50, failover_after_ms: 500 };
        let one = Epoch::first("west");
        // A new acceptor keeps a promise it may have made before (its record may have been lost).
        let early = failover.renew(&one, &t).unwrap();
        assert!(!early.granted && early.current_number == 0, "{early:?}");
        assert!(store.0.lock().unwrap().is_empty());
        tokio::time::sleep(Duration::from_millis(600)).await;
        let answer = failover.renew(&one, &t).unwrap();
        assert!(answer.granted && answer.current_number == 1, "{answer:?}");
        assert_eq!(*store.0.lock().unwrap(), std::slice::from_ref(&one));
        // Granting the same epoch again changes nothing on disk.
        let _ = failover.renew(&one, &t).unwrap();
        assert_eq!(store.0.lock().unwrap().len(), 1);
        // A promotion while the promise runs is refused, with how long it still runs.
        let refused = failover.promote(&one.next("east"), &t).unwrap();
        assert!(!refused.accepted && refused.current_number == 1 && refused.retry_in_ms > t.lease_ms);
        assert!(checked_epoch(&cpb::EpochRequest {
            number: 0,
            primary: "west".into(),
            founder: 0,
            ..Default::default()
        })
        .is_err());
        assert!(checked_epoch(&cpb::EpochRequest {
            number: 1,
            primary: "no such region!".into(),
            founder: 0,
            ..Default::default()
        })
        .is_err());
    }
}
