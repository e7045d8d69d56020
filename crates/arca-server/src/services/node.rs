//! `arca.cluster.v1.NodeService`: the node-to-node listener (mutual TLS only).

use std::sync::Arc;

use arca_proto::cluster::v1 as pb;
use arca_proto::cluster::v1::node_service_server::NodeService;
use arca_raft::rpc;
use tonic::{Request, Response, Status, Streaming};

use crate::engine::Engine;
use crate::status::to_status;

pub struct Node(pub Arc<Engine>);

impl Node {
    fn raft(&self) -> Result<&arca_raft::RaftNode, Status> {
        self.0.raft().map_err(|e| to_status(&e))
    }
}

#[tonic::async_trait]
impl NodeService for Node {
    async fn append_entries(&self, request: Request<pb::RaftPayload>) -> Result<Response<pb::RaftPayload>, Status> {
        let data = rpc::append_entries(&self.raft()?.raft, &request.into_inner().data).await?;
        self.0.note_leader_contact();
        Ok(Response::new(pb::RaftPayload { data }))
    }

    async fn vote(&self, request: Request<pb::RaftPayload>) -> Result<Response<pb::RaftPayload>, Status> {
        let data = rpc::vote(&self.raft()?.raft, &request.into_inner().data).await?;
        Ok(Response::new(pb::RaftPayload { data }))
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<pb::SnapshotChunk>>,
    ) -> Result<Response<pb::RaftPayload>, Status> {
        let data = rpc::install_snapshot(&self.raft()?.raft, request.into_inner()).await?;
        Ok(Response::new(pb::RaftPayload { data }))
    }

    async fn forward(&self, request: Request<pb::RaftPayload>) -> Result<Response<pb::RaftPayload>, Status> {
        let data = self.0.handle_forward(&request.into_inner().data).await.map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::RaftPayload { data }))
    }

    async fn read_index(
        &self,
        _request: Request<pb::ReadIndexRequest>,
    ) -> Result<Response<pb::ReadIndexResponse>, Status> {
        let raft = self.raft()?;
        let index = raft.read_index().await.map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(pb::ReadIndexResponse { index, leader_id: raft.node_id }))
    }

    async fn add_node(&self, request: Request<pb::AddNodeRequest>) -> Result<Response<pb::AddNodeResponse>, Status> {
        let node_id = self.0.add_node(request.into_inner()).await.map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::AddNodeResponse { node_id }))
    }

    async fn remove_node(&self, request: Request<pb::RemoveNodeRequest>) -> Result<Response<pb::RaftPayload>, Status> {
        self.0.remove_node(request.into_inner().node_id).await.map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::RaftPayload { data: Vec::new() }))
    }
}
