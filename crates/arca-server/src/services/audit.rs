//! `arca.v1.AuditService`: the anchors of each node's audit chain.

use std::sync::Arc;

use arca_proto::v1 as pb;
use arca_proto::v1::audit_service_server::AuditService;
use tonic::{Request, Response, Status};

use crate::access::Action;
use crate::api::{Api, Target, WRITE};
use crate::convert::ts;

pub struct Audit(pub Arc<Api>);

#[tonic::async_trait]
impl AuditService for Audit {
    async fn list_anchors(
        &self,
        request: Request<pb::ListAnchorsRequest>,
    ) -> Result<Response<pb::ListAnchorsResponse>, Status> {
        let mut call = self.0.begin(&request, "AuditAnchorList");
        let r = request.into_inner();
        let result = async {
            let ks = self.0.authorize(&mut call, Action::ClusterRead, Target::Cluster, WRITE).await?;
            let cluster_id = crate::membership::cluster_record(ks.store())?
                .map(|(_, c)| hex::encode(c.cluster_id))
                .unwrap_or_default();
            let anchors = ks
                .audit_anchors(r.node_id)?
                .into_iter()
                .map(|a| pb::AuditAnchor {
                    node_id: a.node_id,
                    seq: a.seq,
                    hash: hex::encode(a.hash),
                    time: ts(a.time),
                    public_key: hex::encode(&a.public_key),
                    signature: hex::encode(&a.signature),
                })
                .collect();
            Ok(pb::ListAnchorsResponse { cluster_id, anchors })
        }
        .await;
        self.0.finish(call, result)
    }
}
