//! The deterministic simulation: real Arca nodes (state machine, barrier, Raft glue, gRPC services)
//! as turmoil hosts over a simulated network and crash-modelled in-memory disks, a client workload,
//! a seeded fault schedule, then a heal and liveness phase, and every checker over what happened.

pub mod attacker;
pub mod net;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arca_client::{pb, ArcaClient};
use arca_crypto::entropy::DangerSeededEntropy;
use arca_raft::log_store::{stored_entry_log_id, stored_vote};
use arca_raft::state_machine::stored_applied_index;
use arca_raft::RaftSettings;
use arca_server::access::{AuditDurability, AuditEvent, AuditSink};
use arca_server::engine::{Clock, Engine};
use arca_server::{JoinPlan, Listener, NodeOptions, NodeParts};
use arca_storage::mem::{MemLog, MemState};
use arca_storage::snapshot::SnapshotFiles;
use arca_storage::LogStore;
use arca_transport::credentials::{MemCredentialStore, NodeCredentials};
use arca_types::faults::Fault;
use arca_types::ArcaError;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use crate::check::{
    acknowledged_writes, election_safety, linearizability, log_durability, log_matching, no_plaintext,
    state_machine_safety, vote_durability,
};
use crate::history::History;
use crate::workload::{Client, Spec};

const API_PORT: u16 = 9300;
const CLUSTER_PORT: u16 = 9400;
const CLIENT_HOST: &str = "client";
const VAULT: &str = "simvault";
/// The bootstrap secret node 1 expects from `Init` (an operator reads it from the node's disk).
const BOOTSTRAP_SECRET: &str = "simulation-bootstrap-secret";
/// Sample every node's Raft view this often, in simulation steps (1 ms each).
const SAMPLE_EVERY_STEPS: u64 = 10;

/// One simulation run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    pub voters: usize,
    pub learners: usize,
    pub clients: u32,
    pub secrets: usize,
    /// Length of the phase with faults, in simulated seconds.
    pub safety_secs: u64,
    /// Inject network and process faults (off: a fault-free run).
    pub chaos: bool,
    /// Deliberate bugs switched on in Arca for this run (needs the `danger-faults` feature).
    pub faults: Vec<Fault>,
    pub snapshot_every_entries: u64,
    /// Run the attacker host, which sends forged cluster RPCs all through the faults.
    pub attacker: bool,
}

impl SimConfig {
    /// The configuration the seed picks: 3 or 5 voters, with or without a learner.
    pub fn for_seed(seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed ^ CONFIG_SALT);
        Self {
            seed,
            voters: if rng.random_bool(0.3) { 5 } else { 3 },
            learners: usize::from(rng.random_bool(0.5)),
            clients: 4,
            secrets: 3,
            safety_secs: 20,
            chaos: true,
            faults: Vec::new(),
            snapshot_every_entries: 30,
            attacker: true,
        }
    }

    fn nodes(&self) -> usize {
        self.voters + self.learners
    }
}

/// Mixed into the seed to pick a run's configuration independently of its other random draws.
const CONFIG_SALT: u64 = 0x5eed_c0f1_9a7e_0001;

/// What a passing run did.
#[derive(Debug, Clone)]
pub struct Report {
    pub seed: u64,
    pub voters: usize,
    pub learners: usize,
    pub ops: usize,
    /// Of `ops`, the key and crypto calls (create, rotate, wrap, unwrap).
    pub key_ops: usize,
    pub acknowledged_checked: usize,
    pub leader_terms: usize,
    pub crashes: usize,
    pub faults_injected: usize,
    pub applied_entries: usize,
    /// Snapshots installed on lagging or restarted nodes.
    pub snapshot_installs: usize,
    pub inconclusive_keys: Vec<String>,
    pub simulated: Duration,
    /// Forged cluster calls the attacker made, and how many were refused (the rest went unanswered:
    /// their target was down, paused or cut off).
    pub attacks: usize,
    pub attacks_refused: usize,
    /// A hash of the whole history: equal for two runs of one seed.
    pub fingerprint: u64,
}

/// A failed run: which property broke, and enough to replay and understand it.
#[derive(Debug, Clone)]
pub struct Failure {
    pub seed: u64,
    pub property: &'static str,
    pub details: Vec<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "seed {} FAILED: {}", self.seed, self.property)?;
        for d in self.details.iter().take(40) {
            writeln!(f, "  {d}")?;
        }
        Ok(())
    }
}

fn fail(seed: u64, property: &'static str, details: Vec<String>) -> Failure {
    Failure { seed, property, details }
}

fn hash_of(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

fn node_name(i: usize) -> String {
    format!("n{}", i + 1)
}

/// Simulated time, as Arca's replicated clock reads it.
struct SimClock;

impl Clock for SimClock {
    fn now_unix(&self) -> i64 {
        turmoil::since_epoch().map_or(0, |d| d.as_secs() as i64)
    }
}

/// An audit log kept in memory beside the node's disk (and scanned for plaintext).
#[derive(Clone, Default)]
struct MemAudit(Arc<Mutex<Vec<u8>>>);

impl AuditSink for MemAudit {
    fn record(&self, event: &AuditEvent, _durability: AuditDurability) -> Result<(), ArcaError> {
        let mut line = serde_json::to_vec(event).map_err(|e| ArcaError::internal(e.to_string()))?;
        line.push(b'\n');
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(&line);
        Ok(())
    }
}

/// What survives a node's crash: its disk, its audit log and its cluster credentials.
#[derive(Clone, Default)]
struct Disk {
    log: MemLog,
    state: MemState,
    snapshots: SnapshotFiles,
    audit: MemAudit,
    credentials: MemCredentialStore,
}

/// Join tokens the client minted after init, by node index, for the hosts to pick up.
type Tokens = Arc<Mutex<BTreeMap<usize, String>>>;

type Registry = Arc<Mutex<BTreeMap<usize, Arc<Engine>>>>;

/// What the liveness phase read through every node, or the request that never finished.
type FinalReads = Result<BTreeMap<usize, acknowledged_writes::FinalVersions>, String>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A fault and when to undo it.
#[derive(Debug, Clone)]
enum Action {
    Partition(Vec<usize>, Vec<usize>),
    PartitionOneway(usize, usize),
    IsolateLeader,
    IsolateClientFrom(usize),
    Crash(usize),
    Pause(usize),
    Latency(u64),
    FlakyLinks,
    /// Starts the learner(s) late, so membership changes while faults are active.
    AddLearners,
}

#[derive(Debug, Clone)]
enum Undo {
    Repair(Vec<usize>, Vec<usize>),
    /// Repair the isolated ex-leader's links and stop steering reads at it.
    RepairIsolated(usize, Vec<usize>),
    RepairClient(usize),
    Restart(usize),
    Release(usize),
    Latency,
    SteadyLinks,
}

fn schedule(config: &SimConfig) -> Vec<(u64, Action, u64)> {
    let mut rng = SmallRng::seed_from_u64(config.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let n = config.voters;
    let mut out = Vec::new();
    if config.learners > 0 {
        out.push((rng.random_range(3_000..8_000), Action::AddLearners, 0));
    }
    if !config.chaos {
        return out;
    }
    let end = config.safety_secs * 1000;
    let mut at = 2_500;
    while at < end {
        let duration = rng.random_range(300..4_000);
        let action = match rng.random_range(0..100) {
            0..20 => {
                let mut nodes: Vec<usize> = (0..config.nodes()).collect();
                let cut = rng.random_range(1..nodes.len());
                let first = rng.random_range(0..nodes.len());
                nodes.rotate_left(first);
                let b = nodes.split_off(cut);
                Action::Partition(nodes, b)
            }
            20..28 => {
                let a = rng.random_range(0..n);
                let b = (a + rng.random_range(1..n)) % n;
                Action::PartitionOneway(a, b)
            }
            28..43 => Action::IsolateLeader,
            43..50 => Action::IsolateClientFrom(rng.random_range(0..config.nodes())),
            50..72 => Action::Crash(rng.random_range(0..config.nodes())),
            72..82 => Action::Pause(rng.random_range(0..config.nodes())),
            82..92 => Action::Latency(rng.random_range(20..250)),
            _ => Action::FlakyLinks,
        };
        out.push((at, action, duration));
        at += rng.random_range(500..3_000);
    }
    out
}

struct Observed {
    leaders: election_safety::Leaders,
    applied: state_machine_safety::Applied,
    applied_seen: BTreeMap<usize, u64>,
    votes: vote_durability::Votes,
    logs: log_durability::Logs,
}

impl Observed {
    fn sample(&mut self, registry: &Registry, disks: &[Disk]) {
        let engines: Vec<(usize, Arc<Engine>)> = lock(registry).iter().map(|(i, e)| (*i, e.clone())).collect();
        for (i, engine) in engines {
            let Ok(raft) = engine.raft() else { continue };
            let view = raft.view();
            if view.state == "leader" {
                self.leaders.observe(view.node_id, raft.current_vote());
            }
            let from = self.applied_seen.get(&i).map_or(1, |s| s + 1);
            if view.applied_index >= from {
                if let Ok(entries) = disks[i].log.range(from, view.applied_index + 1) {
                    for (index, bytes) in entries {
                        self.applied.observe(i, index, hash_of(&bytes));
                    }
                }
                self.applied_seen.insert(i, view.applied_index);
            }
        }
    }
}

/// Runs one seed.
pub fn run(config: &SimConfig) -> Result<Report, Failure> {
    let seed = config.seed;
    #[cfg(feature = "danger-faults")]
    arca_types::faults::set_active(&config.faults);
    #[cfg(not(feature = "danger-faults"))]
    if !config.faults.is_empty() {
        return Err(fail(seed, "setup", vec!["faults need a build with --features danger-faults".into()]));
    }
    arca_raft::runtime::seed_thread_rng(Some(seed));
    let result = run_inner(config);
    arca_raft::runtime::seed_thread_rng(None);
    #[cfg(feature = "danger-faults")]
    arca_types::faults::set_active(&[]);
    result
}

fn run_inner(config: &SimConfig) -> Result<Report, Failure> {
    let seed = config.seed;
    let total = config.nodes();
    let settle = Duration::from_secs(60);
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .epoch(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000))
        .simulation_duration(Duration::from_secs(config.safety_secs) + settle + Duration::from_secs(60))
        .tcp_capacity(65_536)
        .repair_rate(0.2)
        .build();

    let disks: Vec<Disk> = (0..total).map(|_| Disk::default()).collect();
    let registry: Registry = Arc::default();
    let unseal: Arc<Mutex<Option<String>>> = Arc::default();
    let tokens: Tokens = Arc::default();
    let attacker_identity = MemCredentialStore::default();
    let peers = Arc::new(net::SimPeers::new(
        disks
            .iter()
            .enumerate()
            .map(|(i, d)| (node_name(i), d.credentials.clone()))
            .chain([(attacker::HOST.to_owned(), attacker_identity.clone())])
            .collect(),
    ));
    let learners_go: Rc<Cell<bool>> = Rc::new(Cell::new(false));
    // Clients address the voters until the learners start.
    let reachable = Arc::new(std::sync::atomic::AtomicUsize::new(config.voters));
    let isolated = Arc::new(std::sync::atomic::AtomicUsize::new(usize::MAX));
    let raft = RaftSettings {
        heartbeat_interval_ms: 100,
        election_timeout_min_ms: 500,
        election_timeout_max_ms: 1000,
        snapshot_every_entries: config.snapshot_every_entries,
        keep_after_snapshot_entries: config.snapshot_every_entries / 2,
        // Every simulated node runs on the simulation's one thread, deterministically.
        sync_on_thread: false,
        ..RaftSettings::default()
    };

    for (i, disk) in disks.iter().enumerate() {
        let disk = disk.clone();
        let registry = registry.clone();
        let unseal = unseal.clone();
        let tokens = tokens.clone();
        let peers = peers.clone();
        let boots = Rc::new(Cell::new(0u64));
        let raft = raft.clone();
        let learner = i >= config.voters;
        let learners_go = learners_go.clone();
        sim.host(node_name(i), move || {
            let (disk, registry, unseal, tokens, peers, raft, learners_go) = (
                disk.clone(),
                registry.clone(),
                unseal.clone(),
                tokens.clone(),
                peers.clone(),
                raft.clone(),
                learners_go.clone(),
            );
            let boot = boots.get();
            boots.set(boot + 1);
            async move {
                while learner && !learners_go.get() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                // A joining node waits for the join token the operator (the client) mints after init.
                let token = loop {
                    if i == 0 {
                        break None;
                    }
                    if let Some(token) = lock(&tokens).get(&i).cloned() {
                        break Some(token);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                };
                let mut api = Some(net::bind(API_PORT).await?);
                let mut cluster = Some(net::bind(CLUSTER_PORT).await?);
                let entropy = Arc::new(DangerSeededEntropy::new(seed ^ ((i as u64) << 48) ^ (boot << 32)));
                let credentials =
                    NodeCredentials::open(Box::new(disk.credentials.clone()), &*entropy, SimClock.now_unix())
                        .map_err(|e| e.to_string())?;
                let parts = NodeParts {
                    log: Arc::new(disk.log.clone()),
                    state: Arc::new(disk.state.clone()),
                    snapshots: disk.snapshots.clone(),
                    channels: Arc::new(net::SimChannels),
                    clock: Arc::new(SimClock),
                    entropy,
                    audit: Arc::new(disk.audit.clone()),
                    credentials: Arc::new(credentials),
                    peer_certificates: peers,
                    provider_keys: Arc::new(arca_server::providers::NoProviders),
                };
                let options = NodeOptions {
                    api_advertise: format!("{}:{API_PORT}", node_name(i)),
                    cluster_advertise: format!("{}:{CLUSTER_PORT}", node_name(i)),
                    bootstrap: i == 0,
                    bootstrap_secret: (i == 0).then(|| BOOTSTRAP_SECRET.to_owned()),
                    join: token.map(|token| JoinPlan { peer: format!("{}:{CLUSTER_PORT}", node_name(0)), token }),
                    join_as_learner: learner,
                    region: arca_types::RegionName::default(),
                    raft,
                    vault_suffix: "vault.sim".into(),
                    audit_anchor_interval_s: arca_server::server::AUDIT_ANCHOR_INTERVAL_S_DEFAULT,
                };
                let engine = arca_server::serve(parts, options, |listener, routes| {
                    let bound = match listener {
                        Listener::Api => api.take(),
                        Listener::Cluster => cluster.take(),
                    };
                    if let Some(bound) = bound {
                        net::spawn_server(bound, routes);
                    }
                })
                .await?;
                lock(&registry).insert(i, engine.clone());
                loop {
                    if engine.seal.is_sealed() {
                        let key = lock(&unseal).clone();
                        if let Some(key) = key {
                            let _ = engine.seal.unseal(&key, "", false);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        });
    }

    let history = History::default();
    let outcome: Rc<std::cell::RefCell<Option<FinalReads>>> = Rc::default();
    let safety_end = Duration::from_secs(config.safety_secs);
    {
        let history = history.clone();
        let unseal = unseal.clone();
        let tokens = tokens.clone();
        let outcome = outcome.clone();
        let clients = config.clients;
        let secrets = config.secrets;
        let reachable = reachable.clone();
        let isolated = isolated.clone();
        sim.client(CLIENT_HOST, async move {
            let clients = Clients { count: clients, secrets, reachable, isolated };
            let result = drive_clients(seed, total, clients, safety_end, settle, history, unseal, tokens).await;
            *outcome.borrow_mut() = Some(result);
            Ok(())
        });
    }

    let tally = attacker::SharedTally::default();
    if config.attacker {
        let (registry, tally) = (registry.clone(), tally.clone());
        sim.client(attacker::HOST, async move {
            attacker::attack(seed, total, attacker_identity, registry, safety_end, tally).await
        });
    }

    let mut observed = Observed {
        leaders: Default::default(),
        applied: Default::default(),
        applied_seen: BTreeMap::new(),
        votes: Default::default(),
        logs: Default::default(),
    };
    let mut pending: Vec<(u64, Action, u64)> = schedule(config);
    pending.reverse();
    let mut undo: Vec<(u64, Undo)> = Vec::new();
    let mut faults_injected = 0;
    let mut crashed = vec![false; total];
    let mut healed = false;
    let mut step: u64 = 0;
    let names: Vec<String> = (0..total).map(node_name).collect();
    let others = |me: usize| -> Vec<String> { (0..total).filter(|&j| j != me).map(node_name).collect() };

    loop {
        let now_ms = sim.elapsed().as_millis() as u64;
        // Apply due actions.
        while pending.last().is_some_and(|(at, _, _)| *at <= now_ms) {
            let (_, action, duration) = pending.pop().expect("checked");
            faults_injected += 1;
            let until = now_ms + duration;
            match action {
                Action::AddLearners => {
                    learners_go.set(true);
                    reachable.store(total, std::sync::atomic::Ordering::Relaxed);
                }
                Action::Partition(a, b) => {
                    for x in &a {
                        for y in &b {
                            sim.partition(names[*x].as_str(), names[*y].as_str());
                        }
                    }
                    undo.push((until, Undo::Repair(a, b)));
                }
                Action::PartitionOneway(a, b) => {
                    sim.partition_oneway(names[a].as_str(), names[b].as_str());
                    undo.push((until, Undo::Repair(vec![a], vec![b])));
                }
                Action::IsolateLeader => {
                    let leader =
                        lock(&registry).iter().find_map(|(i, e)| e.raft().ok().filter(|r| r.is_leader()).map(|_| *i));
                    if let Some(l) = leader {
                        for o in others(l) {
                            sim.partition(names[l].as_str(), o.as_str());
                        }
                        let rest: Vec<usize> = (0..total).filter(|&j| j != l).collect();
                        isolated.store(l, std::sync::atomic::Ordering::Relaxed);
                        undo.push((until, Undo::RepairIsolated(l, rest)));
                    }
                }
                Action::IsolateClientFrom(n) => {
                    sim.partition(CLIENT_HOST, names[n].as_str());
                    undo.push((until, Undo::RepairClient(n)));
                }
                Action::Crash(n) => {
                    if !crashed[n] && sim.is_host_running(names[n].as_str()) {
                        crash(&mut sim, &names[n], n, &disks, &registry, &mut observed);
                        crashed[n] = true;
                        undo.push((until, Undo::Restart(n)));
                    }
                }
                Action::Pause(n) => {
                    for o in others(n).iter().map(String::as_str).chain([CLIENT_HOST]) {
                        sim.hold(names[n].as_str(), o);
                    }
                    undo.push((until, Undo::Release(n)));
                }
                Action::Latency(ms) => {
                    sim.set_max_message_latency(Duration::from_millis(ms));
                    undo.push((until, Undo::Latency));
                }
                Action::FlakyLinks => {
                    sim.set_fail_rate(0.002);
                    undo.push((until, Undo::SteadyLinks));
                }
            }
        }
        // Undo what is due, and everything once the safety phase is over.
        let heal_now = now_ms >= safety_end.as_millis() as u64;
        if heal_now && !healed {
            healed = true;
            isolated.store(usize::MAX, std::sync::atomic::Ordering::Relaxed);
            learners_go.set(true);
            reachable.store(total, std::sync::atomic::Ordering::Relaxed);
            sim.set_fail_rate(0.0);
            for a in names.iter().map(String::as_str).chain([CLIENT_HOST]) {
                for b in names.iter().map(String::as_str).chain([CLIENT_HOST]) {
                    if a != b {
                        sim.repair(a, b);
                        sim.release(a, b);
                    }
                }
            }
        }
        let mut k = 0;
        while k < undo.len() {
            if heal_now || undo[k].0 <= now_ms {
                let (_, u) = undo.remove(k);
                match u {
                    Undo::Repair(a, b) => {
                        for x in &a {
                            for y in &b {
                                sim.repair(names[*x].as_str(), names[*y].as_str());
                            }
                        }
                    }
                    Undo::RepairIsolated(l, rest) => {
                        for y in &rest {
                            sim.repair(names[l].as_str(), names[*y].as_str());
                        }
                        isolated.store(usize::MAX, std::sync::atomic::Ordering::Relaxed);
                    }
                    Undo::RepairClient(n) => sim.repair(CLIENT_HOST, names[n].as_str()),
                    Undo::Restart(n) => {
                        sim.bounce(names[n].as_str());
                        crashed[n] = false;
                    }
                    Undo::Release(n) => {
                        for o in others(n).iter().map(String::as_str).chain([CLIENT_HOST]) {
                            sim.release(names[n].as_str(), o);
                        }
                    }
                    Undo::Latency => sim.set_max_message_latency(Duration::from_millis(10)),
                    Undo::SteadyLinks => sim.set_fail_rate(0.0),
                }
            } else {
                k += 1;
            }
        }

        let finished = sim.step().map_err(|e| fail(seed, "simulation", vec![e.to_string()]))?;
        step += 1;
        if step.is_multiple_of(SAMPLE_EVERY_STEPS) {
            observed.sample(&registry, &disks);
        }
        if finished {
            break;
        }
    }
    // Let followers apply the last commits, then take the final samples.
    for _ in 0..3_000 {
        sim.step().map_err(|e| fail(seed, "simulation", vec![e.to_string()]))?;
    }
    observed.sample(&registry, &disks);
    let simulated = sim.elapsed();

    // Safety first: a broken safety property explains a liveness failure better than the reverse.
    let ops = history.ops();
    observed.leaders.check().map_err(|d| fail(seed, "election safety (Raft §5.2, per leader id)", d))?;
    observed.votes.check().map_err(|d| fail(seed, "durable vote (Raft Figure 2)", d))?;
    observed.logs.check().map_err(|d| fail(seed, "durable log (Raft Figure 2)", d))?;
    let summary = linearizability::check(&ops).map_err(|v| {
        fail(seed, "linearizability (Herlihy & Wing; WGL search)", v.iter().map(|v| v.to_string()).collect())
    })?;
    let finals = match outcome.borrow_mut().take() {
        Some(Ok(f)) => f,
        Some(Err(e)) => return Err(fail(seed, "liveness: every request finishes after the cluster heals", vec![e])),
        None => return Err(fail(seed, "liveness", vec!["the clients never finished".into()])),
    };
    let acknowledged_checked = acknowledged_writes::check(&ops, &finals)
        .map_err(|d| fail(seed, "every acknowledged write present at the end", d))?;

    let mut logs = BTreeMap::new();
    let mut state_finals = BTreeMap::new();
    let mut blobs = Vec::new();
    for (i, disk) in disks.iter().enumerate() {
        let mut log = log_matching::Log::new();
        for (index, bytes) in disk.log.range(0, u64::MAX).unwrap_or_default() {
            if let Ok((term, _)) = stored_entry_log_id(&bytes) {
                log.insert(index, (term, hash_of(&bytes)));
            }
        }
        logs.insert(i, log);
        // What the store itself says it applied: a crash can take the latest applies back, so the
        // highest index ever seen on the node need not be what its state holds now.
        let applied = stored_applied_index(&disk.state).ok().flatten().unwrap_or(0);
        if let Ok(export) = arca_storage::snapshot::export_bytes(&disk.state) {
            state_finals.insert(i, (applied, hash_of(&export)));
        }
        blobs.push((format!("node {} raft log", i + 1), disk.log.all_bytes()));
        blobs.push((format!("node {} state", i + 1), disk.state.all_bytes()));
        blobs.push((format!("node {} snapshot", i + 1), disk.snapshots.memory_bytes()));
        blobs.push((format!("node {} audit log", i + 1), lock(&disk.audit.0).clone()));
    }
    log_matching::check(&logs).map_err(|d| fail(seed, "log matching (Raft §5.3)", d))?;
    observed.applied.check(&state_finals).map_err(|d| fail(seed, "state machine safety (Raft §5.4.3)", d))?;
    no_plaintext::check(&blobs).map_err(|d| fail(seed, "no plaintext at rest", d))?;
    let tally = std::mem::take(&mut *lock(&tally));
    if !tally.accepted.is_empty() {
        return Err(fail(seed, "every forged cluster call is refused", tally.accepted));
    }

    Ok(Report {
        seed,
        voters: config.voters,
        learners: config.learners,
        ops: ops.len(),
        key_ops: ops.iter().filter(|o| o.call.is_key_call()).count(),
        acknowledged_checked,
        leader_terms: observed.leaders.terms(),
        crashes: observed.votes.crashes(),
        faults_injected,
        applied_entries: observed.applied.entries(),
        snapshot_installs: disks.iter().map(|d| d.state.imports()).sum(),
        inconclusive_keys: summary.inconclusive,
        simulated,
        attacks: tally.calls,
        attacks_refused: tally.refused,
        fingerprint: hash_of(history.fingerprint().as_bytes()),
    })
}

fn crash(
    sim: &mut turmoil::Sim<'_>,
    name: &str,
    node: usize,
    disks: &[Disk],
    registry: &Registry,
    observed: &mut Observed,
) {
    let last_index = |log: &MemLog| log.last().ok().flatten().map(|(index, _)| index);
    let (vote_before, log_before) = (stored_vote(&disks[node].log).ok().flatten(), last_index(&disks[node].log));
    sim.crash(name);
    lock(registry).remove(&node);
    disks[node].log.crash();
    disks[node].state.crash();
    observed.votes.observe_crash(node, vote_before, stored_vote(&disks[node].log).ok().flatten());
    observed.logs.observe_crash(node, log_before, last_index(&disks[node].log));
}

/// The simulated clients: how many, on how many secrets, and what the fault schedule tells them.
struct Clients {
    count: u32,
    secrets: usize,
    reachable: Arc<std::sync::atomic::AtomicUsize>,
    isolated: Arc<std::sync::atomic::AtomicUsize>,
}

/// The stable reason a refusal carries.
fn reason_of(status: &tonic::Status) -> String {
    arca_client::ClientError::from(status.clone()).reason.unwrap_or_default()
}

#[allow(clippy::too_many_arguments)]
async fn drive_clients(
    seed: u64,
    total: usize,
    clients: Clients,
    safety_end: Duration,
    settle: Duration,
    history: History,
    unseal: Arc<Mutex<Option<String>>>,
    tokens: Tokens,
) -> FinalReads {
    let started = tokio::time::Instant::now();
    let channels: Vec<_> =
        (0..total).map(|i| net::channel(&format!("{}:{API_PORT}", node_name(i)))).collect::<Result<_, _>>()?;
    // Initialize through node 1 and hand the unseal key to the nodes.
    let bare = ArcaClient::from_channel(channels[0].clone(), None).map_err(|e| e.to_string())?;
    let init = loop {
        let mut req = tonic::Request::new(pb::InitRequest {
            secret_shares: 1,
            secret_threshold: 1,
            auto_unseal_key: true,
            bootstrap_secret: BOOTSTRAP_SECRET.to_owned(),
            request_id: "simulation-init".to_owned(),
        });
        req.set_timeout(Duration::from_secs(3));
        match bare.operator().init(req).await {
            Ok(r) => break r.into_inner(),
            // The init committed and its answer was lost: nobody holds the shares, and retrying can
            // never succeed. (At `e5e3658`, before init named its request, seeds 721, 762, 1205 and
            // 1390 looped here until the run timed out.)
            Err(s) if arca_types::ErrorCode::AlreadyInitialized.reason() == reason_of(&s) => {
                return Err(format!("init's answer was lost, so nobody can unseal the cluster: {}", s.message()));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    };
    *lock(&unseal) = Some(init.unseal_key.clone());
    let token = init.root_token;
    let nodes: Vec<ArcaClient> = channels
        .iter()
        .map(|c| ArcaClient::from_channel(c.clone(), Some(&token)))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    // One join token per node, minted through node 1 as an operator would.
    for i in 1..total {
        let token = loop {
            let mut req = tonic::Request::new(pb::CreateJoinTokenRequest { ttl: None });
            req.set_timeout(Duration::from_secs(3));
            match nodes[0].cluster().create_join_token(req).await {
                Ok(r) => break r.into_inner().token,
                Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
            }
        };
        lock(&tokens).insert(i, token);
    }
    // Create the vault (retrying until the cluster has a leader and the voters have joined).
    loop {
        let mut req = tonic::Request::new(pb::CreateVaultRequest { name: VAULT.into(), ..Default::default() });
        req.set_timeout(Duration::from_secs(3));
        match nodes[0].vaults().create_vault(req).await {
            Ok(_) => break,
            Err(s) if s.message().contains("exists") || s.code() == tonic::Code::AlreadyExists => break,
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
    let mut spec = Spec::new(VAULT, clients.secrets, Duration::from_secs(3));
    spec.isolated = clients.isolated.clone();
    let reachable = clients.reachable.clone();
    let workers = (0..clients.count).map(|id| {
        let rng = SmallRng::seed_from_u64(seed.wrapping_add(u64::from(id) * 7919));
        let mut client = Client::new(id + 1, nodes.clone(), rng, history.clone(), spec.clone());
        client.reachable = reachable.clone();
        async move {
            while started.elapsed() < safety_end {
                client.random_op().await;
                let pause = client.rng.random_range(0..40);
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        }
    });
    futures::future::join_all(workers).await;
    // Liveness: after the heal every request must finish.
    while started.elapsed() < safety_end {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rng = SmallRng::seed_from_u64(seed ^ 0xf1a1);
    let mut last = Client::new(0, nodes, rng, history, spec);
    last.final_reads(settle).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_audit_sink_passes_the_audit_conformance_suite() {
        let sink = MemAudit::default();
        let read = {
            let sink = sink.clone();
            move || lock(&sink.0).clone()
        };
        arca_server::access::conformance::run(&sink, &read);
    }
}
