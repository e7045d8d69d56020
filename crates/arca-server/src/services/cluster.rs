//! `arca.v1.ClusterService`: status, join and remove.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use arca_proto::v1 as pb;
use arca_proto::v1::cluster_service_server::ClusterService;
use arca_types::ArcaError;
use tonic::{Request, Response, Status};

use crate::access::Action;
use crate::api::Api;

/// Joins this (not yet joined) node to the cluster that `peer` belongs to.
pub type Joiner =
    Arc<dyn Fn(String, bool) -> Pin<Box<dyn Future<Output = Result<(), ArcaError>> + Send>> + Send + Sync>;

pub struct Cluster {
    pub api: Arc<Api>,
    pub joiner: Joiner,
}

pub fn cluster_status(api: &Api) -> Result<pb::ClusterStatus, ArcaError> {
    let raft = api.engine.raft()?;
    let view = raft.view();
    let leader_last = view.last_log_index;
    Ok(pb::ClusterStatus {
        node_id: view.node_id,
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
            })
            .collect(),
    })
}

#[tonic::async_trait]
impl ClusterService for Cluster {
    async fn get_cluster_status(
        &self,
        request: Request<pb::GetClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterStatus>, Status> {
        let call = self.api.begin(&request, "ClusterStatus");
        let result = cluster_status(&self.api);
        self.api.finish(call, result)
    }

    async fn join_cluster(
        &self,
        request: Request<pb::JoinClusterRequest>,
    ) -> Result<Response<pb::ClusterStatus>, Status> {
        let call = self.api.begin(&request, "ClusterJoin");
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
            (self.joiner)(r.peer, r.as_learner).await?;
            cluster_status(&self.api)
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
            self.api.authorize(&mut call, Action::ClusterManage, None)?;
            self.api.engine.remove_node(r.node_id).await?;
            cluster_status(&self.api)
        }
        .await;
        self.api.finish(call, result)
    }
}
