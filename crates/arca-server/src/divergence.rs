//! The old primary comes back. A lineage founded by a promotion (`crate::promotion`) records where
//! it forked from the old one ([`LineageRecord`] under [`LINEAGE_KEY`]: the founder's last entry,
//! what it had applied, the terms of its entries after that) and which of the old lineage's nodes
//! it displaced. Those nodes are members no more, but cluster admission still lets them make two
//! calls (`Lineage`, `FileDivergence`), and nothing else.
//!
//! Every [`DISPLACED_CHECK_EVERY_MS`], a node of the primary region (as its own replica has it) asks
//! the secondary region's nodes which lineage they run. When one answers with a higher epoch that
//! displaced this node, the node stops Raft for good, reads from its log every entry the new lineage
//! lacks (from the first whose term differs from the founder's at that index: Raft's log matching
//! says every later one differs too; at most [`DIVERGENCE_BYTES_MAX`], the rest counted and left in
//! its data dir), and files them with the new lineage's leader. The leader keeps them, under the
//! barrier, as a divergence record (`dv/` + epoch + node id) and answers with a join token; the node
//! hands the token to its process ([`Engine::rejoin`]), which sets the old data dir aside and joins
//! again under a new node id, a replica of the region that now leads. Nothing the old primary
//! acknowledged is silently dropped: it is listed by `arca cluster divergence list`.

use std::time::Duration;

use arca_proto::cluster::v1 as cpb;
use arca_raft::log_store::Fork;
use arca_raft::Proposal;
use arca_types::{ArcaError, ErrorCode};
use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::failover::{bounded, current_epoch, within};
use crate::keyspace::{self, Keyspace};

/// Where a founded lineage records its fork (public: no secret in it).
pub const LINEAGE_KEY: &[u8] = b"s/lineage";
/// At most this many bytes of proposals in one divergence record (2 MiB); entries beyond are counted
/// and stay in the displaced node's set-aside data dir.
pub const DIVERGENCE_BYTES_MAX: usize = 2 * 1024 * 1024;
/// At most this many entries in one divergence record.
pub const DIVERGENT_ENTRIES_MAX: usize = 65_536;
/// A displaced node that files again (the answer was lost) gets a new join token at most this often,
/// in seconds.
pub const REFILE_AFTER_S: i64 = 60;
/// How often a node of the primary region asks whether a newer lineage displaced it, in ms.
pub const DISPLACED_CHECK_EVERY_MS: u64 = 2_000;
/// The longest run-of-terms list a lineage record keeps (a founder's log after its applied index
/// holds few terms; a longer list is cut, and nodes then file from the cut on).
pub const TERM_RUNS_MAX: usize = 1_024;

/// Where a founded lineage forked from the one before, and whom it displaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineageRecord {
    pub epoch: u64,
    pub founder: u64,
    /// The founder's last entry when it founded the lineage (term, index).
    pub fork_term: u64,
    pub fork_index: u64,
    /// What the founder had applied: every old node holds the same entries up to it.
    pub applied_index: u64,
    /// (term, first index) of each run of entries after the applied index in the founder's log.
    pub terms: Vec<(u64, u64)>,
    /// The old lineage's nodes left out of the new membership.
    pub displaced: Vec<u64>,
}

impl LineageRecord {
    pub fn new(epoch: u64, founder: u64, fork: &Fork, displaced: Vec<u64>) -> Self {
        let mut terms = fork.terms.clone();
        let mut last = fork.last;
        if terms.len() > TERM_RUNS_MAX {
            // Cut the fork back to the last index the kept runs describe.
            let cut = terms[TERM_RUNS_MAX].1 - 1;
            terms.truncate(TERM_RUNS_MAX);
            last = (terms[TERM_RUNS_MAX - 1].0, cut);
        }
        Self {
            epoch,
            founder,
            fork_term: last.0,
            fork_index: last.1,
            applied_index: fork.applied_index,
            terms,
            displaced,
        }
    }

    pub fn fork(&self) -> Fork {
        Fork { last: (self.fork_term, self.fork_index), applied_index: self.applied_index, terms: self.terms.clone() }
    }

    fn from_answer(a: &cpb::LineageResponse) -> Self {
        Self {
            epoch: a.epoch,
            founder: a.founder,
            fork_term: a.fork_term,
            fork_index: a.fork_index,
            applied_index: a.applied_index,
            terms: a.terms.iter().map(|t| (t.term, t.first_index)).collect(),
            displaced: a.displaced.clone(),
        }
    }
}

/// The lineage record this replica holds, if its lineage was founded by a promotion.
pub fn lineage_record(store: &dyn arca_storage::StateStore) -> Result<Option<LineageRecord>, ArcaError> {
    Ok(keyspace::read_plain::<LineageRecord>(store, LINEAGE_KEY)?.map(|(_, r)| r))
}

/// What a displaced node filed: its entries the new lineage lacks. Kept under the barrier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DivergenceRecord {
    pub epoch: u64,
    pub node_id: u64,
    pub region: String,
    pub filed_at: i64,
    pub fork_index: u64,
    pub entries: Vec<FiledEntry>,
    pub entries_left_out: u64,
    /// The join token the node was given to rejoin with (its id): once used, the node rejoined and
    /// may file no more.
    pub rejoin_token: [u8; 8],
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FiledEntry {
    pub index: u64,
    pub term: u64,
    pub committed: bool,
    /// The proposal as the log held it (keys hashed, values sealed).
    pub proposal: Vec<u8>,
}

/// What a displaced node's process does next: set its data dir aside and join `peer` with `token`.
#[derive(Clone, PartialEq, Eq)]
pub struct Rejoin {
    pub epoch: u64,
    pub peer: String,
    pub token: String,
}

impl std::fmt::Debug for Rejoin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rejoin").field("epoch", &self.epoch).field("peer", &self.peer).finish_non_exhaustive()
    }
}

/// A displaced node's filing, made once its Raft stopped, sent until the leader takes it.
#[derive(Debug, Clone)]
pub(crate) struct Displacement {
    filing: cpb::DivergenceFiling,
    /// Where to send it: the new lineage's nodes this node knows (id, cluster address), leader first.
    targets: Vec<(u64, String)>,
}

/// Checks a filing before the leader keeps it: the epoch that displaced the node, entries in order
/// after the fork's applied index, each a proposal, within the limits.
pub fn check_filing(lineage: &LineageRecord, filing: &cpb::DivergenceFiling) -> Result<(), ArcaError> {
    if filing.epoch != lineage.epoch {
        return Err(ArcaError::bad_parameter(
            "epoch",
            format!("this lineage holds epoch {}, not {}", lineage.epoch, filing.epoch),
        ));
    }
    arca_types::RegionName::parse(&filing.region).map_err(|e| ArcaError::bad_parameter("region", e.message))?;
    if filing.entries.len() > DIVERGENT_ENTRIES_MAX {
        return Err(ArcaError::bad_parameter(
            "entries",
            format!("at most {DIVERGENT_ENTRIES_MAX} entries per filing, not {}", filing.entries.len()),
        ));
    }
    let bytes: usize = filing.entries.iter().map(|e| e.proposal.len()).sum();
    if bytes > DIVERGENCE_BYTES_MAX {
        return Err(ArcaError::bad_parameter(
            "entries",
            format!("at most {DIVERGENCE_BYTES_MAX} bytes of proposals per filing, not {bytes}"),
        ));
    }
    let mut after = lineage.applied_index;
    for e in &filing.entries {
        if e.index <= after {
            return Err(ArcaError::bad_parameter(
                "entries",
                format!(
                    "entry {} is out of order or at or before the fork's applied index {}",
                    e.index, lineage.applied_index
                ),
            ));
        }
        after = e.index;
        postcard::from_bytes::<Proposal>(&e.proposal)
            .map_err(|_| ArcaError::bad_parameter("entries", format!("entry {} holds no proposal", e.index)))?;
    }
    Ok(())
}

impl Engine {
    /// What `Lineage` answers: this replica's lineage.
    pub fn lineage(&self) -> Result<cpb::LineageResponse, ArcaError> {
        let raft = self.raft()?;
        let view = raft.view();
        let primary = crate::regions::primary_region(&view).unwrap_or_default();
        let epoch = current_epoch(&*self.store, &primary)?;
        let record = lineage_record(&*self.store)?.filter(|r| r.epoch == epoch.number);
        let (leader_id, leader_cluster_addr) = raft.leader().map(|(id, n)| (id, n.cluster_addr)).unwrap_or_default();
        let mut answer = cpb::LineageResponse {
            epoch: epoch.number,
            primary: epoch.primary,
            founder: epoch.founder,
            leader_id,
            leader_cluster_addr,
            ..Default::default()
        };
        if let Some(r) = record {
            answer.fork_term = r.fork_term;
            answer.fork_index = r.fork_index;
            answer.applied_index = r.applied_index;
            answer.terms = r
                .terms
                .iter()
                .map(|(term, first_index)| cpb::TermRun { term: *term, first_index: *first_index })
                .collect();
            answer.displaced = r.displaced;
        }
        Ok(answer)
    }

    /// One check on a node of the primary region (see the module): `Some` once this node was
    /// displaced, filed what it held, and may rejoin.
    pub async fn check_displaced(&self) -> Result<Option<Rejoin>, ArcaError> {
        let mut pending = self.displaced.lock().await;
        if pending.is_none() {
            let Some((lineage, targets)) = self.find_displacement().await? else { return Ok(None) };
            let raft = self.raft()?;
            tracing::warn!(
                epoch = lineage.epoch,
                founder = lineage.founder,
                fork_index = lineage.fork_index,
                "a newer lineage displaced this node: stopping Raft and filing what this node holds that it lacks"
            );
            let (held, left_out) = raft
                .stop_and_diverge(&lineage.fork(), DIVERGENT_ENTRIES_MAX, DIVERGENCE_BYTES_MAX)
                .await
                .map_err(ArcaError::unavailable)?;
            let region = raft
                .view()
                .nodes
                .iter()
                .find(|n| n.node_id == raft.node_id)
                .map(|n| n.node.region.clone())
                .unwrap_or_default();
            let entries: Vec<cpb::FiledEntry> = held
                .into_iter()
                .filter_map(|e| {
                    let proposal = postcard::to_allocvec(e.proposal.as_ref()?).ok()?;
                    Some(cpb::FiledEntry { index: e.index, term: e.term, committed: e.committed, proposal })
                })
                .collect();
            tracing::warn!(entries = entries.len(), left_out, "this node's divergence is ready to file");
            *pending = Some(Displacement {
                filing: cpb::DivergenceFiling { epoch: lineage.epoch, region, entries, entries_left_out: left_out },
                targets,
            });
        }
        let Some(displacement) = pending.as_ref() else { return Ok(None) };
        let raft = self.raft()?;
        let budget = Duration::from_secs(5);
        let mut last_error = String::from("no node of the new lineage is known");
        let mut targets: Vec<(u64, String)> = displacement.targets.clone();
        let mut asked = 0;
        while asked < targets.len() && asked < 8 {
            let (id, addr) = targets[asked].clone();
            asked += 1;
            let mut client = match raft.channels.client(&addr, Some(id)) {
                Ok(c) => c,
                Err(e) => {
                    last_error = e;
                    continue;
                }
            };
            match tokio::time::timeout(budget, client.file_divergence(within(displacement.filing.clone(), budget)))
                .await
            {
                Ok(Ok(receipt)) => {
                    let receipt = receipt.into_inner();
                    // Join only a node this one knew as the secondary region's, never an address an
                    // answer names.
                    if !displacement.targets.iter().any(|(_, known)| *known == receipt.peer) {
                        last_error = format!(
                            "node {id} named {} to rejoin through, a node this one does not know",
                            receipt.peer
                        );
                        continue;
                    }
                    tracing::warn!(epoch = displacement.filing.epoch, "filed this node's divergence; rejoining");
                    return Ok(Some(Rejoin {
                        epoch: displacement.filing.epoch,
                        peer: receipt.peer,
                        token: receipt.join_token,
                    }));
                }
                Ok(Err(status)) => {
                    if let Some(crate::server::Target { addr, node_id: Some(leader) }) =
                        crate::server::leader_hint(&status)
                    {
                        if displacement.targets.iter().any(|(id, known)| *id == leader && *known == addr) {
                            targets.insert(asked, (leader, addr));
                        }
                    }
                    last_error = status.message().to_owned();
                }
                Err(_) => last_error = format!("node {id} did not answer within {} ms", budget.as_millis()),
            }
        }
        Err(ArcaError::unavailable(format!("the divergence is not filed yet: {last_error}")))
    }

    /// Whether a newer lineage displaced this node: the lineage one of the secondary region's nodes
    /// runs, with a higher epoch than this node's, naming this node displaced. Returns it and the
    /// nodes to file with (its leader first).
    async fn find_displacement(&self) -> Result<Option<(LineageRecord, Vec<(u64, String)>)>, ArcaError> {
        let Ok(raft) = self.raft() else { return Ok(None) };
        // Deliberate bug (danger-faults builds only): a primary that ignores its lease ignores being
        // displaced too, so the tests see that the lease alone fences it.
        if arca_types::faults::active(arca_types::faults::Fault::IgnoreLease) {
            return Ok(None);
        }
        let Some(topo) = self.topology()? else { return Ok(None) };
        let me = raft.node_id;
        let view = raft.view();
        let mine = view.nodes.iter().find(|n| n.node_id == me).map(|n| n.node.region.clone());
        if mine.as_deref() != Some(topo.primary.as_str()) {
            return Ok(None);
        }
        let held = current_epoch(&*self.store, &topo.primary)?.number;
        let budget = Duration::from_millis(topo.witness.timing.renew_every_ms());
        let others: Vec<(u64, String)> = topo
            .sites
            .acceptors_of(&topo.secondary)
            .into_iter()
            .flatten()
            .filter_map(|id| Some((*id, topo.addrs.get(id)?.clone())))
            .collect();
        let asks = others.iter().map(|(id, addr)| {
            let channels = raft.channels.clone();
            async move {
                let mut client = channels.client(addr, Some(*id))?;
                bounded(*id, budget, client.lineage(within(cpb::LineageRequest {}, budget))).await
            }
        });
        let answers: Vec<(LineageRecord, cpb::LineageResponse)> = futures::future::join_all(asks)
            .await
            .into_iter()
            .filter_map(Result::ok)
            .filter(|a| a.epoch > held && a.displaced.contains(&me) && a.terms.len() <= TERM_RUNS_MAX)
            .map(|a| (LineageRecord::from_answer(&a), a))
            .collect();
        // A strict majority of the secondary region's nodes must report the same lineage: one node
        // (lying, or confused) cannot make a node of a primary stop.
        let Some((record, newer)) = answers
            .iter()
            .find(|(record, _)| answers.iter().filter(|(other, _)| other == record).count() * 2 > others.len())
        else {
            return Ok(None);
        };
        // Nor does a primary that holds its lease: it is the one taking writes.
        if raft.is_leader() && self.require_lease().is_ok() {
            return Ok(None);
        }
        // The leader first, when it is one of the secondary region's nodes this node knows.
        let mut targets = others;
        if let Some(at) =
            targets.iter().position(|(id, addr)| *id == newer.leader_id && *addr == newer.leader_cluster_addr)
        {
            let leader = targets.remove(at);
            targets.insert(0, leader);
        }
        Ok(Some((record.clone(), targets)))
    }

    /// `FileDivergence` on this lineage's leader: keeps node `caller`'s filing as its divergence
    /// record and answers with a join token for it. Again (the answer was lost): a new token, the
    /// record unchanged, while the token given before is unused.
    pub async fn file_divergence(
        &self,
        caller: u64,
        filing: cpb::DivergenceFiling,
        cluster_addr: &str,
    ) -> Result<cpb::DivergenceReceipt, ArcaError> {
        let keyspace: Keyspace = self.seal.keyspace()?;
        let lineage = lineage_record(&*self.store)?.ok_or_else(|| {
            ArcaError::new(ErrorCode::Forbidden, "this cluster's lineage displaced no node: nothing to file")
        })?;
        if !lineage.displaced.contains(&caller) {
            return Err(ArcaError::new(
                ErrorCode::Forbidden,
                format!("node {caller} is not one this lineage displaced: it has nothing to file"),
            ));
        }
        check_filing(&lineage, &filing)?;
        for _ in 0..crate::engine::CONFLICT_RETRIES_MAX {
            let existing = keyspace.divergence(lineage.epoch, caller)?;
            if let Some((_, record)) = &existing {
                let given = keyspace.join_token(&record.rejoin_token)?.map(|(_, t)| t);
                if given.as_ref().is_some_and(|t| t.used_by.is_some()) {
                    return Err(ArcaError::new(
                        ErrorCode::Forbidden,
                        format!("node {caller} filed its divergence and rejoined already"),
                    ));
                }
                // A filing again means the answer was lost: a new token, one a minute at most, so a
                // stolen key of a displaced node cannot mint them in bulk.
                let wait = given.map_or(0, |t| t.created + REFILE_AFTER_S - self.clock.now_unix());
                if wait > 0 {
                    return Err(ArcaError::unavailable(format!(
                        "node {caller} filed its divergence {} s ago; retry in {wait} s",
                        REFILE_AFTER_S - wait
                    )));
                }
            }
            let (token, mut token_record) = crate::membership::prepare_join_token(
                self,
                None,
                &format!("node:{caller} displaced by epoch {}", lineage.epoch),
            )?;
            token_record.learner_only = true;
            // The token given before, if unused, is revoked: one live rejoin token per node.
            let mut revoke = Vec::new();
            if let Some((_, r)) = &existing {
                if let Some((at, mut given)) = keyspace.join_token(&r.rejoin_token)? {
                    given.expires = given.expires.min(self.clock.now_unix() - 1);
                    revoke.push((
                        Keyspace::join_token_unchanged(&r.rejoin_token, Some(at)),
                        keyspace.put_join_token(&r.rejoin_token, &given)?,
                    ));
                }
            }
            let record = match &existing {
                Some((_, r)) => DivergenceRecord { rejoin_token: token.token_id, ..r.clone() },
                None => DivergenceRecord {
                    epoch: lineage.epoch,
                    node_id: caller,
                    region: filing.region.clone(),
                    filed_at: self.clock.now_unix(),
                    fork_index: lineage.fork_index,
                    entries: filing
                        .entries
                        .iter()
                        .map(|e| FiledEntry {
                            index: e.index,
                            term: e.term,
                            committed: e.committed,
                            proposal: e.proposal.clone(),
                        })
                        .collect(),
                    entries_left_out: filing.entries_left_out,
                    rejoin_token: token.token_id,
                },
            };
            let mut proposal = Proposal {
                preconditions: vec![
                    Keyspace::divergence_unchanged(lineage.epoch, caller, existing.as_ref().map(|(at, _)| *at)),
                    Keyspace::join_token_unchanged(&token.token_id, None),
                ],
                ops: vec![keyspace.put_divergence(&record)?, keyspace.put_join_token(&token.token_id, &token_record)?],
            };
            for (unchanged, op) in revoke {
                proposal.preconditions.push(unchanged);
                proposal.ops.push(op);
            }
            match self.propose_on_leader(proposal).await? {
                (_, arca_raft::ApplyOutcome::Applied) => {
                    tracing::warn!(
                        node = caller,
                        epoch = lineage.epoch,
                        entries = record.entries.len(),
                        "a displaced node filed its divergence"
                    );
                    return Ok(cpb::DivergenceReceipt { join_token: token.expose(), peer: cluster_addr.to_owned() });
                }
                (index, arca_raft::ApplyOutcome::Conflict) => {
                    let _ = self.raft()?.wait_applied(index, Duration::from_secs(5)).await;
                }
            }
        }
        Err(ArcaError::unavailable("the divergence record kept changing while it was filed; retry"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lineage() -> LineageRecord {
        LineageRecord {
            epoch: 2,
            founder: 4,
            fork_term: 3,
            fork_index: 10,
            applied_index: 8,
            terms: vec![(3, 9)],
            displaced: vec![1, 2, 3],
        }
    }

    fn entry(index: u64) -> cpb::FiledEntry {
        let proposal = Proposal { preconditions: Vec::new(), ops: Vec::new() };
        cpb::FiledEntry { index, term: 4, committed: true, proposal: postcard::to_allocvec(&proposal).unwrap() }
    }

    fn filing(entries: Vec<cpb::FiledEntry>) -> cpb::DivergenceFiling {
        cpb::DivergenceFiling { epoch: 2, region: "default".into(), entries, entries_left_out: 0 }
    }

    #[test]
    fn a_filing_names_the_epoch_and_holds_proposals_in_order_after_the_fork_within_the_limits() {
        let l = lineage();
        assert!(check_filing(&l, &filing(vec![entry(9), entry(10), entry(12)])).is_ok());
        assert!(check_filing(&l, &filing(Vec::new())).is_ok());
        let wrong_epoch = cpb::DivergenceFiling { epoch: 3, ..filing(Vec::new()) };
        assert_eq!(check_filing(&l, &wrong_epoch).unwrap_err().code, ErrorCode::BadParameter);
        let bad_region = cpb::DivergenceFiling { region: "no such/region".into(), ..filing(Vec::new()) };
        assert!(check_filing(&l, &bad_region).is_err());
        for bad in [vec![entry(8)], vec![entry(10), entry(9)], vec![entry(9), entry(9)]] {
            assert!(check_filing(&l, &filing(bad)).is_err());
        }
        let mut garbage = entry(9);
        garbage.proposal = vec![0xff; 3];
        assert!(check_filing(&l, &filing(vec![garbage])).is_err());
        // The byte limit, at and one past it.
        let sized = |bytes: usize| {
            let encode = |n: usize| {
                let op = arca_storage::Op::Put { key: Vec::new(), value: vec![7; n] };
                postcard::to_allocvec(&Proposal { preconditions: Vec::new(), ops: vec![op] }).unwrap()
            };
            let overhead = encode(bytes - 64).len() - (bytes - 64);
            let mut e = entry(9);
            e.proposal = encode(bytes - overhead);
            assert_eq!(e.proposal.len(), bytes);
            e
        };
        assert!(check_filing(&l, &filing(vec![sized(DIVERGENCE_BYTES_MAX)])).is_ok());
        assert_eq!(
            check_filing(&l, &filing(vec![sized(DIVERGENCE_BYTES_MAX + 1)])).unwrap_err().code,
            ErrorCode::BadParameter
        );
        // The entry limit, at and one past it.
        let many: Vec<cpb::FiledEntry> = (9..9 + DIVERGENT_ENTRIES_MAX as u64).map(entry).collect();
        assert!(check_filing(&l, &filing(many.clone())).is_ok());
        let mut too_many = many;
        too_many.push(entry(9 + DIVERGENT_ENTRIES_MAX as u64));
        assert!(check_filing(&l, &filing(too_many)).is_err());
    }

    #[test]
    fn a_lineage_record_keeps_its_fork_and_cuts_an_overlong_run_list() {
        let fork = Fork { last: (5, 20), applied_index: 8, terms: vec![(3, 9), (5, 15)] };
        let record = LineageRecord::new(2, 4, &fork, vec![1]);
        assert_eq!(record.fork(), fork);
        let long =
            Fork { last: (9_999, 20_000), applied_index: 0, terms: (1..=2_000u64).map(|t| (t, t * 10)).collect() };
        let cut = LineageRecord::new(2, 4, &long, vec![]);
        assert_eq!(cut.terms.len(), TERM_RUNS_MAX);
        assert_eq!((cut.fork_term, cut.fork_index), (TERM_RUNS_MAX as u64, (TERM_RUNS_MAX as u64 + 1) * 10 - 1));
        // Beyond the cut, nothing is held: a node files from there on.
        assert!(!cut.fork().holds(TERM_RUNS_MAX as u64 + 1, (TERM_RUNS_MAX as u64 + 1) * 10));
    }
}
