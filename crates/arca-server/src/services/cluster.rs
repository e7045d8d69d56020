//! `arca.v1.ClusterService`: status, join tokens, join and remove.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use arca_proto::v1 as pb;
use arca_proto::v1::cluster_service_server::ClusterService;
use arca_types::ArcaError;
use tonic::{Request, Response, Status};

use crate::access::Action;
use crate::api::{Api, Target, LOCAL, WRITE};
use crate::engine::{SystemCommand, SystemOutcome};

/// Joins this (not yet joined) node to the cluster that `peer` belongs to, with a join token.
pub type Joiner =
    Arc<dyn Fn(String, String, bool) -> Pin<Box<dyn Future<Output = Result<(), ArcaError>> + Send>> + Send + Sync>;

pub struct Cluster {
    pub api: Arc<Api>,
    pub joiner: Joiner,
}

pub fn cluster_status(api: &Api) -> Result<pb::ClusterStatus, ArcaError> {
    let raft = api.engine.raft()?;
    let view = raft.view();
    let leader_last = view.last_log_index;
    let cluster_id = api.engine.cluster_id().map(hex::encode).unwrap_or_default();
    let now = tokio::time::Instant::now();
    let lag_of = |matched: u64| api.engine.lag_clock.lag(matched, now);
    let millis = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let witness = crate::failover::witness_record(&*api.engine.store)?;
    let topology = crate::failover::topology(&view, witness.clone());
    let accepted = api.engine.failover.accepted();
    let regions = crate::regions::summarize(&view, lag_of)
        .into_iter()
        .map(|r| pb::RegionStatus {
            name: r.name,
            role: if r.primary { "primary" } else { "secondary" }.to_owned(),
            node_ids: r.node_ids,
            lag: r.lag_entries,
            lag_ms: millis(r.lag),
        })
        .collect();
    Ok(pb::ClusterStatus {
        node_id: view.node_id,
        cluster_id,
        leader_id: view.leader_id.unwrap_or(0),
        term: view.term,
        last_log_index: view.last_log_index,
        commit_index: view.commit_index,
        applied_index: view.applied_index,
        state: view.state.to_owned(),
        nodes: view
            .nodes
            .iter()
            .map(|n| pb::NodeStatus {
                node_id: n.node_id,
                api_addr: n.node.api_addr.clone(),
                cluster_addr: n.node.cluster_addr.clone(),
                role: if n.voter { "voter" } else { "learner" }.to_owned(),
                leader: view.leader_id == Some(n.node_id),
                matched_index: n.matched_index.unwrap_or(0),
                lag: n.matched_index.map_or(0, |m| leader_last.saturating_sub(m)),
                region: n.node.region.clone(),
                lag_ms: n.matched_index.map_or(0, |m| millis(lag_of(m))),
            })
            .collect(),
        regions,
        epoch: accepted.as_ref().map_or(0, |e| e.number),
        epoch_primary: accepted.map(|e| e.primary).unwrap_or_default(),
        failover_enabled: topology.is_some(),
        witness_id: witness.as_ref().map_or(0, |w| w.node_id),
        witness_addr: witness.map(|w| w.cluster_addr).unwrap_or_default(),
        lease_remaining_ms: api.engine.failover.lease_remaining_ms(),
    })
}

fn ttl_seconds(ttl: Option<&prost_types::Duration>) -> Result<Option<i64>, ArcaError> {
    match ttl {
        None => Ok(None),
        Some(d) if d.nanos != 0 || d.seconds <= 0 => {
            Err(ArcaError::bad_parameter("ttl", "ttl must be a positive whole number of seconds"))
        }
        Some(d) => Ok(Some(d.seconds)),
    }
}

/// The stream `WatchEvents` answers with.
pub type EventStream = Pin<Box<dyn futures::Stream<Item = Result<pb::ClusterEvent, Status>> + Send>>;

#[tonic::async_trait]
impl ClusterService for Cluster {
    type WatchEventsStream = EventStream;

    async fn watch_events(
        &self,
        request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let mut call = self.api.begin(&request, "ClusterWatchEvents");
        let result = self.api.authorize(&mut call, Action::ClusterRead, Target::Cluster, LOCAL).await.map(|_| {
            let events = self.api.engine.events.subscribe();
            let stream = futures::stream::unfold(events, |mut events| async move {
                loop {
                    match events.recv().await {
                        Ok(event) => return Some((Ok(event), events)),
                        // A watcher that fell behind misses the oldest events, not the next ones.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    }
                }
            });
            Box::pin(stream) as EventStream
        });
        self.api.finish(call, result)
    }

    async fn get_cluster_status(
        &self,
        request: Request<pb::GetClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterStatus>, Status> {
        let mut call = self.api.begin(&request, "ClusterStatus");
        // From this node's replica as it is: status must answer without a leader.
        let result = match self.api.authorize(&mut call, Action::ClusterRead, Target::Cluster, LOCAL).await {
            Ok(_) => cluster_status(&self.api),
            Err(e) => Err(e),
        };
        self.api.finish(call, result)
    }

    async fn create_join_token(
        &self,
        request: Request<pb::CreateJoinTokenRequest>,
    ) -> Result<Response<pb::JoinToken>, Status> {
        let mut call = self.api.begin(&request, "ClusterCreateJoinToken");
        let r = request.into_inner();
        let result = async {
            self.api.authorize(&mut call, Action::ClusterJoinTokenCreate, Target::Cluster, WRITE).await?;
            let creator = call.accessor().unwrap_or_default();
            let (token, record) =
                crate::membership::prepare_join_token(&self.api.engine, ttl_seconds(r.ttl.as_ref())?, &creator)?;
            let command = SystemCommand::StoreJoinToken { token_id: token.token_id, record: record.clone() };
            let SystemOutcome::Done = self.api.engine.execute_system(command).await? else {
                return Err(ArcaError::internal("the leader answered a join token with another outcome"));
            };
            Ok(pb::JoinToken {
                token: token.expose(),
                token_id: hex::encode(token.token_id),
                expires_at: Some(prost_types::Timestamp { seconds: record.expires, nanos: 0 }),
                cluster_id: hex::encode(token.pin.cluster_id),
            })
        }
        .await;
        self.api.finish(call, result)
    }

    async fn join_cluster(
        &self,
        request: Request<pb::JoinClusterRequest>,
    ) -> Result<Response<pb::ClusterStatus>, Status> {
        let mut call = self.api.begin(&request, "ClusterJoin");
        let r = request.into_inner();
        let result = async {
            if self.api.engine.has_raft() {
                return Err(ArcaError::bad_parameter("peer", "this node is already a member of a cluster"));
            }
            if r.peer.is_empty() {
                return Err(ArcaError::bad_parameter(
                    "peer",
                    "peer must be the cluster address (host:port) of a member",
                ));
            }
            if r.token.is_empty() {
                return Err(ArcaError::bad_parameter(
                    "token",
                    "a join token is required: mint one on the cluster with `arca cluster join-token create`",
                ));
            }
            self.api.audit_request(&mut call)?;
            (self.joiner)(r.peer, r.token, r.as_learner).await?;
            cluster_status(&self.api)
        }
        .await;
        self.api.finish(call, result)
    }

    async fn failover(&self, request: Request<pb::FailoverRequest>) -> Result<Response<pb::FailoverResponse>, Status> {
        let mut call = self.api.begin(&request, "ClusterFailover");
        let r = request.into_inner();
        let result = async {
            self.api.authorize(&mut call, Action::ClusterFailover, Target::Cluster, WRITE).await?;
            if !r.force {
                return Err(ArcaError::bad_parameter(
                    "force",
                    "a failover asked of the secondary is forced: set force, knowing that writes the primary acknowledged and this region lacks are lost (with the primary up, `arca cluster switchover` moves writes losing nothing)",
                ));
            }
            let won = self.api.engine.force_promote().await?;
            Ok(pb::FailoverResponse {
                epoch: won.epoch.number,
                primary: won.epoch.primary.clone(),
                founder: won.epoch.founder,
                last_log_index: won.last_log_index,
                primary_silent_ms: won.primary_silent_ms,
                data_loss: format!(
                    "this region's log ended at entry {}, and it had heard nothing from the primary for {} ms (since its last contact, or since this node started): every write the primary acknowledged beyond that entry is lost. The old primary's nodes, brought back, file what they hold beyond it (`arca cluster divergence list`) and rejoin as replicas; the witness still holds the old epoch: replace it before you bring them back, or they could win a lease through it in the seconds before they learn they were displaced",
                    won.last_log_index, won.primary_silent_ms
                ),
            })
        }
        .await;
        self.api.finish(call, result)
    }

    async fn switchover(
        &self,
        request: Request<pb::SwitchoverRequest>,
    ) -> Result<Response<pb::SwitchoverResponse>, Status> {
        let mut call = self.api.begin(&request, "ClusterSwitchover");
        let r = request.into_inner();
        let result = async {
            // A withdrawal is authorized against this node's replica as it is: once the primary's
            // lease ran out after the handover, no read index can be confirmed, and the withdrawal is
            // what brings it back.
            let freshness = if r.cancel { LOCAL } else { WRITE };
            self.api.authorize(&mut call, Action::ClusterFailover, Target::Cluster, freshness).await?;
            let to = arca_types::RegionName::parse(&r.region)
                .map_err(|e| ArcaError::bad_parameter("region", e.message))?
                .to_string();
            let command = if r.cancel { SystemCommand::CancelSwitchover { to } } else { SystemCommand::Switchover { to } };
            let SystemOutcome::Handover { handover, index } = self.api.engine.execute_system(command).await? else {
                return Err(ArcaError::internal("the leader answered a switchover with another kind of outcome"));
            };
            let detail = if r.cancel {
                format!(
                    "the handover of epoch {} to region {} is withdrawn: region {} takes writes again once it renews its lease, unless region {} already won epoch {} (then it stays read-only and rejoins as a replica)",
                    handover.epoch, handover.to, handover.from, handover.to, handover.epoch + 1
                )
            } else {
                format!(
                    "region {} takes no more writes; region {} takes over once it holds entry {index} and the primary's lease has run out (a lease and the drift margin), as epoch {}; the nodes of region {} then rejoin as its replicas under new ids. Follow it with `arca cluster status` or `arca cluster events`",
                    handover.from, handover.to, handover.epoch + 1, handover.from
                )
            };
            Ok(pb::SwitchoverResponse {
                epoch: handover.epoch,
                from_region: handover.from,
                to_region: handover.to,
                index,
                detail,
            })
        }
        .await;
        self.api.finish(call, result)
    }

    async fn list_divergences(
        &self,
        request: Request<pb::ListDivergencesRequest>,
    ) -> Result<Response<pb::ListDivergencesResponse>, Status> {
        let mut call = self.api.begin(&request, "ClusterListDivergences");
        let result = async {
            let keyspace = self.api.authorize(&mut call, Action::ClusterDivergenceRead, Target::Cluster, LOCAL).await?;
            let records =
                keyspace.divergences()?.iter().map(|r| divergence(&keyspace, r, None)).collect::<Result<_, _>>()?;
            Ok(pb::ListDivergencesResponse { records })
        }
        .await;
        self.api.finish(call, result)
    }

    async fn get_divergence(
        &self,
        request: Request<pb::GetDivergenceRequest>,
    ) -> Result<Response<pb::Divergence>, Status> {
        let mut call = self.api.begin(&request, "ClusterGetDivergence");
        let r = request.into_inner();
        let result = async {
            let keyspace = self.api.authorize(&mut call, Action::ClusterDivergenceRead, Target::Cluster, LOCAL).await?;
            let record = find_divergence(&keyspace, &r)?;
            divergence(&keyspace, &record, Some(false))
        }
        .await;
        self.api.finish(call, result)
    }

    async fn export_divergence(
        &self,
        request: Request<pb::GetDivergenceRequest>,
    ) -> Result<Response<pb::Divergence>, Status> {
        let mut call = self.api.begin(&request, "ClusterExportDivergence");
        let r = request.into_inner();
        let result = async {
            let keyspace =
                self.api.authorize(&mut call, Action::ClusterDivergenceExport, Target::Cluster, LOCAL).await?;
            let record = find_divergence(&keyspace, &r)?;
            divergence(&keyspace, &record, Some(true))
        }
        .await;
        self.api.finish(call, result)
    }

    async fn remove_node(
        &self,
        request: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::ClusterStatus>, Status> {
        let mut call = self.api.begin(&request, "ClusterRemoveNode");
        let r = request.into_inner();
        let result = async {
            self.api.authorize(&mut call, Action::ClusterNodeRemove, Target::Cluster, WRITE).await?;
            if r.node_id == 0 {
                return Err(ArcaError::bad_parameter(
                    "node_id",
                    "node_id must name a member (see `arca cluster status`)",
                ));
            }
            self.api.engine.execute_system(SystemCommand::RemoveNode(r.node_id)).await?;
            cluster_status(&self.api)
        }
        .await;
        self.api.finish(call, result)
    }
}

fn find_divergence(
    keyspace: &crate::keyspace::Keyspace,
    r: &pb::GetDivergenceRequest,
) -> Result<crate::divergence::DivergenceRecord, ArcaError> {
    keyspace.divergence(r.epoch, r.node_id)?.map(|(_, record)| record).ok_or_else(|| {
        ArcaError::new(
            arca_types::ErrorCode::DivergenceNotFound,
            format!(
                "no divergence record for node {} displaced by epoch {} (`arca cluster divergence list` shows them)",
                r.node_id, r.epoch
            ),
        )
    })
}

/// A divergence record as the API gives it: with `changes` (`Some(values)`), each entry's changes,
/// secret values only when `values`.
fn divergence(
    keyspace: &crate::keyspace::Keyspace,
    record: &crate::divergence::DivergenceRecord,
    changes: Option<bool>,
) -> Result<pb::Divergence, ArcaError> {
    let mut out = pb::Divergence {
        epoch: record.epoch,
        node_id: record.node_id,
        region: record.region.clone(),
        filed_at: record.filed_at,
        fork_index: record.fork_index,
        entries: record.entries.len() as u64,
        committed_entries: record.entries.iter().filter(|e| e.committed).count() as u64,
        entries_left_out: record.entries_left_out,
        changes: Vec::new(),
    };
    let Some(values) = changes else { return Ok(out) };
    let vaults = keyspace.vault_names()?;
    for entry in &record.entries {
        let proposal: arca_raft::Proposal = postcard::from_bytes(&entry.proposal)
            .map_err(|_| ArcaError::internal(format!("divergent entry {} does not decode", entry.index)))?;
        let changes = keyspace
            .describe(&proposal, &vaults, values)?
            .into_iter()
            .map(|c| pb::DivergentChange {
                kind: c.kind.to_owned(),
                vault: c.vault,
                name: c.name,
                version: c.version,
                operation: c.operation.to_owned(),
                value: c.value.map(|v| v.to_string()).unwrap_or_default(),
                content_type: c.content_type,
            })
            .collect();
        out.changes.push(pb::DivergentEntry {
            index: entry.index,
            term: entry.term,
            committed: entry.committed,
            changes,
        });
    }
    Ok(out)
}
