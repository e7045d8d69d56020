//! `arca.cluster.v1.NodeService`: the node-to-node listener. Every request reaches a handler only
//! through cluster admission (`arca_transport::admission`), which leaves the caller it admitted in the
//! request's extensions.

use std::sync::Arc;

use arca_proto::cluster::v1 as pb;
use arca_proto::cluster::v1::node_service_server::NodeService;
use arca_raft::rpc;
use arca_transport::admission::{Admitted, Caller};
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use crate::api::Api;
use crate::status::to_status;

/// The cluster listener's handlers. Joins and adds change the cluster, so they are audited on this
/// node (under the join token's id, or the node's) like any other change.
pub struct Node(pub Arc<Api>);

/// The caller admission let through. Its absence means the service was served without the gate: a
/// bug, refused rather than trusted.
fn admitted<T>(request: &Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Admitted>()
        .map(|a| a.caller.clone())
        .ok_or_else(|| Status::permission_denied("the cluster listener is not behind admission"))
}

pub(crate) fn node_caller<T>(request: &Request<T>) -> Result<u64, Status> {
    match admitted(request)? {
        Caller::Node(id) => Ok(id),
        Caller::Stranger { .. } => Err(Status::permission_denied("only nodes of this cluster may call this")),
    }
}

impl Node {
    fn raft(&self) -> Result<&arca_raft::RaftNode, Status> {
        self.0.engine.raft().map_err(|e| to_status(&e))
    }

    /// `FAILED_PRECONDITION` for Raft traffic from a node of the region this node's region is
    /// replacing ([`crate::engine::Engine::superseded_caller`]).
    fn refuse_superseded(&self, caller: u64) -> Result<(), Status> {
        match self.0.engine.superseded_caller(caller) {
            None => Ok(()),
            Some(why) => Err(Status::failed_precondition(why)),
        }
    }

    /// `UNAVAILABLE` naming the leader (when known), for a joining node to follow.
    fn require_leader(&self) -> Result<(), Status> {
        let raft = self.raft()?;
        if raft.is_leader() {
            return Ok(());
        }
        let mut status = Status::unavailable("this node is not the leader; ask the leader");
        if let Some((id, node)) = raft.leader() {
            if let (Ok(id), Ok(addr)) =
                (MetadataValue::try_from(id.to_string()), MetadataValue::try_from(node.cluster_addr.as_str()))
            {
                status.metadata_mut().insert("x-arca-leader-id", id);
                status.metadata_mut().insert("x-arca-leader-addr", addr);
            }
        }
        Err(status)
    }
}

#[tonic::async_trait]
impl NodeService for Node {
    async fn append_entries(&self, request: Request<pb::RaftPayload>) -> Result<Response<pb::RaftPayload>, Status> {
        let caller = node_caller(&request)?;
        self.refuse_superseded(caller)?;
        let raft = self.raft()?;
        let data = rpc::append_entries(&raft.handle(), &request.into_inner().data, caller).await?;
        // Only the leader this node follows keeps it from turning read-only or taking over: a
        // stale or rejected AppendEntries from any other member does not.
        if raft.leader().is_some_and(|(leader, _)| leader == caller) {
            self.0.engine.failover.heard_from_leader();
        }
        Ok(Response::new(pb::RaftPayload { data }))
    }

    async fn vote(&self, request: Request<pb::RaftPayload>) -> Result<Response<pb::RaftPayload>, Status> {
        let caller = node_caller(&request)?;
        self.refuse_superseded(caller)?;
        let data = rpc::vote(&self.raft()?.handle(), &request.into_inner().data, caller).await?;
        Ok(Response::new(pb::RaftPayload { data }))
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<pb::SnapshotChunk>>,
    ) -> Result<Response<pb::RaftPayload>, Status> {
        let caller = node_caller(&request)?;
        self.refuse_superseded(caller)?;
        let data = self.raft()?.install_snapshot(request.into_inner(), caller).await?;
        Ok(Response::new(pb::RaftPayload { data }))
    }

    async fn forward(&self, request: Request<pb::RaftPayload>) -> Result<Response<pb::RaftPayload>, Status> {
        let caller = node_caller(&request)?;
        let data = self.0.engine.handle_forward(&request.into_inner().data, caller).await.map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::RaftPayload { data }))
    }

    async fn read_index(
        &self,
        request: Request<pb::ReadIndexRequest>,
    ) -> Result<Response<pb::ReadIndexResponse>, Status> {
        node_caller(&request)?;
        let raft = self.raft()?;
        // A read index is a promise that nothing newer was acknowledged anywhere: only while this
        // region may take writes.
        self.0.engine.require_lease_for_reads().map_err(|e| to_status(&e))?;
        let index = raft.read_index().await.map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(pb::ReadIndexResponse { index, leader_id: raft.node_id }))
    }

    async fn join(&self, request: Request<pb::JoinRequest>) -> Result<Response<pb::JoinResponse>, Status> {
        let spki = match admitted(&request)? {
            Caller::Stranger { spki_der } if !spki_der.is_empty() => spki_der,
            Caller::Stranger { .. } => {
                return Err(Status::invalid_argument("the caller's certificate has no readable key"))
            }
            Caller::Node(id) => {
                return Err(Status::failed_precondition(format!(
                    "the caller already holds the certificate of node {id} of this cluster"
                )))
            }
        };
        self.require_leader()?;
        let engine = &self.0.engine;
        let keyspace = engine.seal.keyspace().map_err(|_| Status::unavailable("the leader is sealed; unseal it"))?;
        let token = request.into_inner().token;
        // Audited under the token's public id (its first 16 hex after the pins), never its secret.
        let token_id = arca_transport::join_token::JoinToken::parse(&token)
            .map(|t| format!("join-token:{}", hex::encode(t.token_id)))
            .unwrap_or_else(|_| "join-token:<malformed>".to_owned());
        let mut call = self.0.node_call("ClusterAdmitNode", token_id);
        self.0.audit_request(&mut call).map_err(|e| to_status(&e))?;
        let result = crate::membership::admit(engine, &keyspace, &spki, &token).await;
        let response = self.0.finish_internal(call, result).map_err(|e| to_status(&e))?;
        Ok(Response::new(response))
    }

    async fn add_node(&self, request: Request<pb::AddNodeRequest>) -> Result<Response<pb::AddNodeResponse>, Status> {
        let caller = node_caller(&request)?;
        self.require_leader()?;
        let mut call = self.0.node_call("ClusterAddNode", format!("node:{caller}"));
        self.0.audit_request(&mut call).map_err(|e| to_status(&e))?;
        let result = crate::membership::add(&self.0.engine, caller, request.into_inner()).await;
        let response = self.0.finish_internal(call, result).map_err(|e| to_status(&e))?;
        Ok(Response::new(response))
    }

    async fn renew(&self, request: Request<pb::EpochRequest>) -> Result<Response<pb::RenewResponse>, Status> {
        let caller = node_caller(&request)?;
        let epoch = crate::failover::checked_epoch(request.get_ref()).map_err(|e| to_status(&e))?;
        let topology = self.0.engine.topology().map_err(|e| to_status(&e))?.ok_or_else(|| {
            Status::failed_precondition(
                "failover is not set up on this node's replica (no witness or secondary recorded yet); retry once it has caught up",
            )
        })?;
        // Only the primary region's voters renew, and only the epoch their lineage holds (the first,
        // or the one its founder recorded): a member of another region, or a node that merely
        // joined, cannot make this acceptor promise anything, nor move it to an epoch nobody won.
        if !topology.sites.acceptors_of(&topology.primary).is_some_and(|voters| voters.contains(&caller)) {
            return Err(Status::permission_denied(format!(
                "node {caller} is not a voter of the primary region: only they renew the lease"
            )));
        }
        let current =
            crate::failover::current_epoch(&*self.0.engine.store, &topology.primary).map_err(|e| to_status(&e))?;
        if epoch != current {
            return Err(Status::invalid_argument(format!(
                "epoch {} of {} is not this cluster's current epoch",
                epoch.number, epoch.primary
            )));
        }
        let answer = self.0.engine.failover.renew(&epoch, &topology.witness.timing).map_err(|e| {
            tracing::error!("failed to keep the epoch record: {e}");
            Status::unavailable("this node could not keep the epoch record; retry")
        })?;
        Ok(Response::new(answer))
    }

    async fn promote(&self, request: Request<pb::EpochRequest>) -> Result<Response<pb::PromoteResponse>, Status> {
        let caller = node_caller(&request)?;
        let epoch = crate::failover::checked_epoch(request.get_ref()).map_err(|e| to_status(&e))?;
        let founder_log = (request.get_ref().founder_last_log_term, request.get_ref().founder_last_log_index);
        let answer = self
            .0
            .engine
            .answer_promote(caller, &epoch, founder_log)
            .map_err(|(code, message)| Status::new(code, message))?;
        Ok(Response::new(answer))
    }

    async fn progress(&self, request: Request<pb::ProgressRequest>) -> Result<Response<pb::ProgressResponse>, Status> {
        node_caller(&request)?;
        Ok(Response::new(self.0.engine.progress().map_err(|e| to_status(&e))?))
    }

    async fn lineage(&self, request: Request<pb::LineageRequest>) -> Result<Response<pb::LineageResponse>, Status> {
        node_caller(&request)?;
        Ok(Response::new(self.0.engine.lineage().map_err(|e| to_status(&e))?))
    }

    async fn file_divergence(
        &self,
        request: Request<pb::DivergenceFiling>,
    ) -> Result<Response<pb::DivergenceReceipt>, Status> {
        let caller = node_caller(&request)?;
        self.require_leader()?;
        let raft = self.raft()?;
        let me = raft.view().nodes.iter().find(|n| n.node_id == raft.node_id).map(|n| n.node.cluster_addr.clone());
        let me = me.ok_or_else(|| Status::unavailable("this node is not in its own membership yet; retry"))?;
        let mut call = self.0.node_call("ClusterFileDivergence", format!("node:{caller}"));
        self.0.audit_request(&mut call).map_err(|e| to_status(&e))?;
        let result = self.0.engine.file_divergence(caller, request.into_inner(), &me).await;
        let response = self.0.finish_internal(call, result).map_err(|e| to_status(&e))?;
        Ok(Response::new(response))
    }
}
