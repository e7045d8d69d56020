//! Cluster membership as one node takes part in it: the cluster's identity, join tokens, admitting
//! and adding nodes (on the leader), and keeping this node's own certificate current.
//!
//! A cluster gets a random id when it is bootstrapped and its own CA when it is initialized. A new node
//! joins with a join token an operator minted: the leader checks the token, allocates the node an id
//! and issues it a certificate naming `arca://<cluster id>/node/<id>` for the key it proved it holds;
//! with that certificate the node asks to be added. Removed nodes stay removed: their certificates are
//! refused by cluster admission (`arca_transport::admission`) from the moment the removal is in a
//! node's log.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use arca_crypto::cluster_pki::{self, ClusterCa, Ed25519Key};
use arca_proto::cluster::v1 as pb;
use arca_raft::{ApplyOutcome, ArcaNode, Proposal, RaftNode, WriteError};
use arca_storage::proposal::Precondition;
use arca_storage::StateStore;
use arca_transport::admission::AdmissionView;
use arca_transport::join_token::{JoinPin, JoinToken};
use arca_types::limits::{JOIN_TOKEN_TTL_S_DEFAULT, JOIN_TOKEN_TTL_S_MAX, JOIN_TOKEN_TTL_S_MIN};
use arca_types::{ArcaError, ErrorCode};

use crate::engine::{Consistency, Engine, CONFLICT_RETRIES_MAX, FORWARD_TIMEOUT_MS};
use crate::keyspace::{
    self, CaRecord, ClusterRecord, JoinTokenRecord, Keyspace, TokenUse, CLUSTER_CA_KEY, CLUSTER_KEY, NODE_SEQ_KEY,
};

/// Longest address (host:port) a node may advertise, in bytes.
pub const NODE_ADDR_BYTES_MAX: usize = 255;

/// The cluster's id, once bootstrapped.
pub fn cluster_record(store: &dyn StateStore) -> Result<Option<(u64, ClusterRecord)>, ArcaError> {
    keyspace::read_plain::<ClusterRecord>(store, CLUSTER_KEY)
}

/// The cluster CA certificate, once initialized.
pub fn ca_record(store: &dyn StateStore) -> Result<Option<CaRecord>, ArcaError> {
    Ok(keyspace::read_plain::<CaRecord>(store, CLUSTER_CA_KEY)?.map(|(_, r)| r))
}

/// The highest node id ever given out, as far as this node's replica knows.
pub fn highest_allocated(store: &dyn StateStore, raft: Option<&RaftNode>) -> u64 {
    let seq = keyspace::read_plain::<u64>(store, NODE_SEQ_KEY).ok().flatten().map_or(0, |(_, v)| v);
    let members = raft.map_or(0, |r| r.member_ids().into_iter().max().unwrap_or(0).max(r.node_id));
    seq.max(members)
}

/// What cluster admission asks of this node.
pub struct MembershipView(pub Arc<Engine>);

impl AdmissionView for MembershipView {
    fn members(&self) -> Option<BTreeSet<u64>> {
        let raft = self.0.raft().ok()?;
        raft.has_seen_membership().then(|| raft.member_ids())
    }

    fn removed(&self, node_id: u64) -> bool {
        self.0.raft().is_ok_and(|r| r.is_removed(node_id))
    }

    fn highest_allocated(&self) -> u64 {
        highest_allocated(&*self.0.store, self.0.raft().ok())
    }

    fn displaced(&self, node_id: u64) -> bool {
        crate::divergence::lineage_record(&*self.0.store).ok().flatten().is_some_and(|l| l.displaced.contains(&node_id))
    }

    fn now(&self) -> i64 {
        self.0.clock.now_unix()
    }
}

/// On the leader of a cluster that has no id yet (just bootstrapped): mints one. Harmless when the
/// cluster has one.
pub async fn ensure_cluster_record(engine: &Engine) -> Result<ClusterRecord, ArcaError> {
    for _ in 0..CONFLICT_RETRIES_MAX {
        if let Some((_, record)) = cluster_record(&*engine.store)? {
            return Ok(record);
        }
        let record = ClusterRecord { cluster_id: engine.seal.entropy().bytes16(), created: engine.clock.now_unix() };
        let proposal = Proposal {
            preconditions: vec![Precondition { key: CLUSTER_KEY.to_vec(), modified_at: None }],
            ops: vec![keyspace::put_plain(CLUSTER_KEY, &record)],
        };
        if let (index, ApplyOutcome::Conflict) = engine.propose_on_leader(proposal).await? {
            engine.raft()?.wait_applied(index, Duration::from_millis(FORWARD_TIMEOUT_MS)).await.map_err(write)?;
        }
    }
    Err(ArcaError::unavailable("could not record the cluster's id; retry"))
}

fn write(e: WriteError) -> ArcaError {
    ArcaError::unavailable(e.to_string())
}

fn invalid_token(why: &str) -> ArcaError {
    ArcaError::new(
        ErrorCode::JoinTokenInvalid,
        format!("the join token was refused: {why}; ask an operator for a new one (`arca cluster join-token create`)"),
    )
}

/// The id and CA of an initialized cluster, as a join token pins them.
fn cluster_pin(store: &dyn StateStore) -> Result<(ClusterRecord, CaRecord), ArcaError> {
    let not_ready = || {
        ArcaError::new(ErrorCode::NotInitialized, "the cluster is not initialized yet; run `arca operator init` first")
    };
    let (_, cluster) = cluster_record(store)?.ok_or_else(not_ready)?;
    let ca = ca_record(store)?.ok_or_else(not_ready)?;
    Ok((cluster, ca))
}

/// A join token's lifetime in seconds: the default, or one asked for within the bounds.
fn join_token_ttl(ttl_s: Option<i64>) -> Result<i64, ArcaError> {
    let ttl = ttl_s.unwrap_or(JOIN_TOKEN_TTL_S_DEFAULT);
    if (JOIN_TOKEN_TTL_S_MIN..=JOIN_TOKEN_TTL_S_MAX).contains(&ttl) {
        Ok(ttl)
    } else {
        Err(ArcaError::bad_parameter(
            "ttl",
            format!("ttl must be between {JOIN_TOKEN_TTL_S_MIN} s and {JOIN_TOKEN_TTL_S_MAX} s, it is {ttl} s"),
        ))
    }
}

/// Mints a join token (the record goes through the leader). Returns the token and its expiry.
pub fn prepare_join_token(
    engine: &Engine,
    ttl_s: Option<i64>,
    creator: &str,
) -> Result<(JoinToken, JoinTokenRecord), ArcaError> {
    let ttl = join_token_ttl(ttl_s)?;
    let (cluster, ca) = cluster_pin(&*engine.store)?;
    let entropy = engine.seal.entropy();
    let mut token_id = [0u8; 8];
    entropy.fill(&mut token_id);
    let mut secret = [0u8; 32];
    entropy.fill(&mut secret);
    let token = JoinToken {
        pin: JoinPin { cluster_id: cluster.cluster_id, ca_sha256: cluster_pki::sha256(&ca.cert_der) },
        token_id,
        secret,
    };
    let now = engine.clock.now_unix();
    let record = JoinTokenRecord {
        secret_sha256: cluster_pki::sha256(&token.secret),
        created: now,
        expires: now.saturating_add(ttl),
        learner_only: false,
        creator: creator.to_owned(),
        used_by: None,
    };
    Ok((token, record))
}

/// On the leader: writes a minted join token's record (it must be new).
pub async fn store_join_token(
    engine: &Engine,
    keyspace: &Keyspace,
    token_id: &[u8; 8],
    record: &JoinTokenRecord,
) -> Result<(), ArcaError> {
    let proposal = Proposal {
        preconditions: vec![Keyspace::join_token_unchanged(token_id, None)],
        ops: vec![keyspace.put_join_token(token_id, record)?],
    };
    match engine.propose_on_leader(proposal).await? {
        (_, ApplyOutcome::Applied) => Ok(()),
        (_, ApplyOutcome::Conflict) => Err(ArcaError::internal("a join token id was drawn twice")),
    }
}

/// The leader's side of `Join`: checks the token and admits the key `spki_der` (proved in the TLS
/// handshake) as a new node, or the node that key was admitted as before (a retry).
pub async fn admit(
    engine: &Engine,
    keyspace: &Keyspace,
    spki_der: &[u8],
    token_text: &str,
) -> Result<pb::JoinResponse, ArcaError> {
    let raft = engine.raft()?;
    let token = JoinToken::parse(token_text).map_err(|e| invalid_token(&e.to_string()))?;
    let (cluster, ca) = cluster_pin(&*engine.store)?;
    if token.pin != (JoinPin { cluster_id: cluster.cluster_id, ca_sha256: cluster_pki::sha256(&ca.cert_der) }) {
        return Err(invalid_token("it is for another cluster"));
    }
    let spki_sha256 = cluster_pki::sha256(spki_der);
    // A leader that has just taken over may not have applied everything committed before it: the
    // token may be in a committed entry it has yet to apply. Judged on that state, a valid token
    // would be refused as unknown, for good (the joining node does not retry a refused token).
    engine.read_barrier(Consistency::Linearizable).await?;
    let mut node_id = None;
    for _ in 0..CONFLICT_RETRIES_MAX {
        let now = engine.clock.now_unix();
        let (token_at, mut record) = keyspace.join_token(&token.token_id)?.ok_or_else(|| invalid_token("unknown"))?;
        if !arca_crypto::constant_time_eq(&cluster_pki::sha256(&token.secret), &record.secret_sha256) {
            return Err(invalid_token("unknown"));
        }
        match record.used_by {
            Some(used) if used.spki_sha256 == spki_sha256 => {
                node_id = Some(used.node_id);
                break;
            }
            Some(_) => return Err(invalid_token("it was already used by another node")),
            None if now > record.expires => return Err(invalid_token("it expired")),
            None => {}
        }
        let seq = keyspace::read_plain::<u64>(&*engine.store, NODE_SEQ_KEY)?;
        let next = highest_allocated(&*engine.store, Some(raft)) + 1;
        record.used_by = Some(TokenUse { node_id: next, spki_sha256, at: now });
        let proposal = Proposal {
            preconditions: vec![
                Keyspace::join_token_unchanged(&token.token_id, Some(token_at)),
                Precondition { key: NODE_SEQ_KEY.to_vec(), modified_at: seq.map(|(at, _)| at) },
            ],
            ops: vec![keyspace.put_join_token(&token.token_id, &record)?, keyspace::put_plain(NODE_SEQ_KEY, &next)],
        };
        match engine.propose_on_leader(proposal).await? {
            (_, ApplyOutcome::Applied) => {
                node_id = Some(next);
                break;
            }
            (index, ApplyOutcome::Conflict) => {
                raft.wait_applied(index, Duration::from_millis(FORWARD_TIMEOUT_MS)).await.map_err(write)?;
            }
        }
    }
    let node_id = node_id.ok_or_else(|| ArcaError::unavailable("the cluster is admitting other nodes; retry"))?;
    let certificate = issue(engine, keyspace, &cluster, &ca, node_id, spki_der)?;
    tracing::info!(node_id, token_id = %hex::encode(token.token_id), "admitted a node with a join token");
    Ok(pb::JoinResponse { node_id, certificate, ca_certificate: ca.cert_der, leader_id: raft.node_id })
}

/// Issues the certificate of node `node_id` for `spki_der` with the CA key from the keyspace.
fn issue(
    engine: &Engine,
    keyspace: &Keyspace,
    cluster: &ClusterRecord,
    ca: &CaRecord,
    node_id: u64,
    spki_der: &[u8],
) -> Result<Vec<u8>, ArcaError> {
    let key = keyspace.cluster_ca_key()?.ok_or_else(|| ArcaError::internal("the cluster CA key is missing"))?;
    let key = Ed25519Key::from_pkcs8(&key).map_err(|e| ArcaError::internal(format!("the cluster CA key: {e}")))?;
    let ca = ClusterCa { cert_der: ca.cert_der.clone(), key };
    ca.issue_node_certificate(
        &cluster.cluster_id,
        node_id,
        spki_der,
        engine.seal.entropy().as_ref(),
        engine.clock.now_unix(),
    )
    .map_err(|e| ArcaError::bad_parameter("certificate", format!("cannot issue a certificate for this key: {e}")))
}

fn check_addr(field: &str, addr: &str) -> Result<(), ArcaError> {
    let ok = !addr.is_empty()
        && addr.len() <= NODE_ADDR_BYTES_MAX
        && addr.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
        && addr.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(ArcaError::bad_parameter(field, format!("{field} must be host:port, at most {NODE_ADDR_BYTES_MAX} bytes")))
    }
}

/// The leader's side of `AddNode`: adds the admitted node `caller` as a learner and, unless it asks
/// to stay one or runs in another region than the voters, promotes it once it has caught up.
/// Idempotent.
pub async fn add(engine: &Engine, caller: u64, request: pb::AddNodeRequest) -> Result<pb::AddNodeResponse, ArcaError> {
    if request.node_id != caller {
        return Err(ArcaError::new(
            ErrorCode::NotAMember,
            format!("node {caller} may only add itself, not node {}", request.node_id),
        ));
    }
    check_addr("cluster_addr", &request.cluster_addr)?;
    if request.witness {
        return add_witness(engine, caller, request).await;
    }
    if crate::failover::witness_record(&*engine.store)?.is_some_and(|w| w.node_id == caller) {
        return Err(ArcaError::bad_parameter(
            "witness",
            format!("node {caller} is the cluster's witness; it cannot also be a member"),
        ));
    }
    check_addr("api_addr", &request.api_addr)?;
    let region = arca_types::RegionName::parse(&request.region)?;
    let raft = engine.raft()?;
    // Voters are the primary region's nodes, the leader's region: a node of any other region is an
    // asynchronous replica, never on the commit path.
    let primary = crate::regions::primary_region(&raft.view());
    // A node admitted with a learner-only token (a displaced node rejoining) stays a learner.
    let learner_only = engine.seal.keyspace()?.admitted_learner_only(caller)?;
    let as_learner = request.as_learner || learner_only || primary.as_deref() != Some(region.as_str());
    let node = ArcaNode { api_addr: request.api_addr, cluster_addr: request.cluster_addr, region: region.to_string() };
    raft.add_node(caller, node, as_learner).await.map_err(|e| match e {
        WriteError::ForwardToLeader { .. } => ArcaError::unavailable("this node is no longer the leader; retry"),
        WriteError::Unavailable(m) => ArcaError::unavailable(m),
    })?;
    tracing::info!(node_id = caller, as_learner, region = region.as_str(), "added a node");
    Ok(pb::AddNodeResponse { node_id: caller, primary_region: String::new() })
}

/// Records the admitted node `caller` as the cluster's witness, with its address and failover
/// timing, and answers with the primary region (whose first epoch the witness may grant). The first
/// witness to register is the cluster's; it may register again (a restart, a new address), but no
/// other node may take its place (replacing a witness needs an operator command, not there yet). A
/// node that is or was a member cannot be the witness: a site's acceptor must not count twice.
async fn add_witness(
    engine: &Engine,
    caller: u64,
    request: pb::AddNodeRequest,
) -> Result<pb::AddNodeResponse, ArcaError> {
    let timing = arca_failover::Timing {
        lease_ms: request.lease_ms,
        drift_margin_ms: request.drift_margin_ms,
        failover_after_ms: request.failover_after_ms,
    };
    timing.check().map_err(|e| ArcaError::bad_parameter("lease_ms", e))?;
    let raft = engine.raft()?;
    if raft.member_ids().contains(&caller) || raft.is_removed(caller) {
        return Err(ArcaError::bad_parameter(
            "witness",
            format!("node {caller} is or was a member; a witness must not be"),
        ));
    }
    let primary = crate::regions::primary_region(&raft.view())
        .ok_or_else(|| ArcaError::unavailable("the primary region is not known yet; retry"))?;
    let record = crate::failover::WitnessRecord { node_id: caller, cluster_addr: request.cluster_addr, timing };
    let answer = pb::AddNodeResponse { node_id: caller, primary_region: primary };
    match crate::failover::witness_record(&*engine.store)? {
        Some(current) if current == record => return Ok(answer),
        Some(current) if current.node_id != caller => {
            return Err(ArcaError::new(
                ErrorCode::NotAMember,
                format!("node {} is the cluster's witness; node {caller} cannot take its place", current.node_id),
            ))
        }
        _ => {}
    }
    let proposal =
        Proposal { preconditions: Vec::new(), ops: vec![keyspace::put_plain(crate::failover::WITNESS_KEY, &record)] };
    engine.propose_on_leader(proposal).await?;
    tracing::info!(node_id = caller, addr = %record.cluster_addr, "recorded the cluster's witness");
    Ok(answer)
}

/// On an unsealed member: issues itself a new certificate when it holds none for this cluster and
/// node, its CA is not the cluster's, or it is past two thirds of its life. Returns whether it did.
pub fn renew_own_certificate(api: &crate::api::Api) -> Result<bool, ArcaError> {
    let engine = &*api.engine;
    let Ok(raft) = engine.raft() else { return Ok(false) };
    if !raft.member_ids().contains(&raft.node_id) {
        return Ok(false);
    }
    let Ok(keyspace) = engine.seal.keyspace() else { return Ok(false) };
    let (Some((_, cluster)), Some(ca)) = (cluster_record(&*engine.store)?, ca_record(&*engine.store)?) else {
        return Ok(false);
    };
    let now = engine.clock.now_unix();
    let current = engine.credentials.current();
    let fresh = match current.identity {
        Some(id) if id.cluster_id == cluster.cluster_id && id.node_id == raft.node_id => {
            let (not_before, not_after) =
                cluster_pki::validity(&current.stored.cert_der).map_err(|e| ArcaError::internal(e.to_string()))?;
            current.stored.ca_der.as_deref() == Some(ca.cert_der.as_slice())
                && now < not_before + (not_after - not_before) * 2 / 3
        }
        _ => false,
    };
    if fresh {
        return Ok(false);
    }
    let mut call = api.system_call("NodeCertificateRenew", None, &[]);
    api.audit_request(&mut call)?;
    let result = (|| {
        let spki = engine.credentials.spki_der().map_err(|e| ArcaError::internal(e.to_string()))?;
        let certificate = issue(engine, &keyspace, &cluster, &ca, raft.node_id, &spki)?;
        engine
            .credentials
            .install(certificate, ca.cert_der, now)
            .map_err(|e| ArcaError::internal(format!("failed to install this node's certificate: {e}")))?;
        tracing::info!(node_id = raft.node_id, "issued this node a new cluster certificate");
        Ok(true)
    })();
    api.finish_internal(call, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_token_ttl_limits_and_one_past_them() {
        assert_eq!(join_token_ttl(None).unwrap(), JOIN_TOKEN_TTL_S_DEFAULT);
        assert_eq!(join_token_ttl(Some(JOIN_TOKEN_TTL_S_MIN)).unwrap(), JOIN_TOKEN_TTL_S_MIN);
        assert_eq!(join_token_ttl(Some(JOIN_TOKEN_TTL_S_MAX)).unwrap(), JOIN_TOKEN_TTL_S_MAX);
        for bad in [JOIN_TOKEN_TTL_S_MIN - 1, JOIN_TOKEN_TTL_S_MAX + 1, 0, -1, i64::MAX] {
            let err = join_token_ttl(Some(bad)).unwrap_err();
            assert_eq!(err.code, ErrorCode::BadParameter, "{bad}");
        }
    }
}
