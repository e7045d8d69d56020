//! The witness (`arcad witness`): the third site of the failover decision. It keeps the epoch record
//! and nothing else (no data, no keys, no Raft), answers `Renew` and `Promote` on its listener, and
//! registers itself with the cluster: it joins with a join token like a node (so it holds a node
//! certificate from the cluster CA and nodes can check whom they dialled), then asks the leader to
//! record it as the witness with its address and the failover timing.
//!
//! Who can reach it: only callers whose certificate the cluster CA issued (admission, as on a node's
//! cluster listener). It holds no membership, so it cannot tell a removed node from a member: a
//! removed node's certificate can still renew the current epoch (which only delays a failover while
//! it keeps doing so) or propose a promotion (which needs a second site, whose nodes do know).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use arca_failover::Timing;
use arca_proto::cluster::v1 as pb;
use arca_proto::cluster::v1::node_service_server::{NodeService, NodeServiceServer};
use arca_raft::network::{ChannelFactory, Channels};
use arca_transport::admission::{Admission, AdmissionView, Gate, PeerCertificates};
use arca_transport::credentials::NodeCredentials;
use arca_types::{ArcaError, ErrorCode};
use tonic::service::Routes;
use tonic::{Request, Response, Status, Streaming};

use crate::engine::Clock;
use crate::failover::{EpochStore, Failover};
use crate::server::JoinPlan;
use crate::status::to_status;

/// What a witness is made of (files and sockets in `arcad`).
pub struct WitnessParts {
    pub channels: Arc<dyn ChannelFactory>,
    pub credentials: Arc<NodeCredentials>,
    pub epochs: Arc<dyn EpochStore>,
    pub peer_certificates: Arc<dyn PeerCertificates>,
    pub clock: Arc<dyn Clock>,
}

/// How a witness finds its cluster.
#[derive(Clone, Debug)]
pub struct WitnessOptions {
    /// Where nodes reach it (host:port).
    pub cluster_advertise: String,
    /// A member's cluster address and, until it holds a certificate, a join token.
    pub join: JoinPlan,
    pub timing: Timing,
}

/// The witness's listener: `Renew` and `Promote`; every other node RPC is refused.
struct WitnessService {
    failover: Arc<Failover>,
    timing: Timing,
    /// The primary region, as the leader answered the registration: until then nothing is granted
    /// (unless the witness holds a record); after, its first epoch, then only the epoch it holds.
    primary: Arc<std::sync::Mutex<Option<String>>>,
}

fn only_epochs() -> Status {
    Status::unimplemented("this is a witness: it keeps the epoch record only (Renew, Promote)")
}

/// The witness holds no membership, so any certified node may call it: it grants an epoch at most one
/// above the one it holds (no caller can push the record out of reach of the real next epoch), and a
/// promotion only to the node that asks for it as founder.
fn within_reach(epoch: &arca_failover::Epoch, held: &arca_failover::Epoch) -> Result<(), Status> {
    if epoch.number > held.number.saturating_add(1) {
        return Err(Status::invalid_argument(format!(
            "epoch {} is beyond the next one ({}) this witness could take up",
            epoch.number,
            held.number.saturating_add(1)
        )));
    }
    Ok(())
}

impl WitnessService {
    /// The epoch record and the primary region the cluster named at registration. A witness that
    /// holds a record serves from it before it registers again: it may restart while the primary is
    /// down, which is when it is needed (registering takes a leader).
    fn record(&self) -> Result<(arca_failover::Epoch, Option<String>), Status> {
        let held = self.failover.current(&self.timing).map_err(|e| {
            tracing::error!("failed to read the epoch record: {e}");
            Status::unavailable("the witness could not read the epoch record; retry")
        })?;
        let primary = self.primary.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if primary.is_none() && held.number == 0 {
            return Err(Status::unavailable("this witness has not registered with the cluster yet; retry"));
        }
        Ok((held, primary))
    }
}

#[tonic::async_trait]
impl NodeService for WitnessService {
    async fn append_entries(&self, _: Request<pb::RaftPayload>) -> Result<Response<pb::RaftPayload>, Status> {
        Err(only_epochs())
    }
    async fn vote(&self, _: Request<pb::RaftPayload>) -> Result<Response<pb::RaftPayload>, Status> {
        Err(only_epochs())
    }
    async fn install_snapshot(
        &self,
        _: Request<Streaming<pb::SnapshotChunk>>,
    ) -> Result<Response<pb::RaftPayload>, Status> {
        Err(only_epochs())
    }
    async fn forward(&self, _: Request<pb::RaftPayload>) -> Result<Response<pb::RaftPayload>, Status> {
        Err(only_epochs())
    }
    async fn read_index(&self, _: Request<pb::ReadIndexRequest>) -> Result<Response<pb::ReadIndexResponse>, Status> {
        Err(only_epochs())
    }
    async fn join(&self, _: Request<pb::JoinRequest>) -> Result<Response<pb::JoinResponse>, Status> {
        Err(only_epochs())
    }
    async fn add_node(&self, _: Request<pb::AddNodeRequest>) -> Result<Response<pb::AddNodeResponse>, Status> {
        Err(only_epochs())
    }

    async fn renew(&self, request: Request<pb::EpochRequest>) -> Result<Response<pb::RenewResponse>, Status> {
        let epoch = crate::failover::checked_epoch(request.get_ref()).map_err(|e| to_status(&e))?;
        let (held, primary) = self.record()?;
        within_reach(&epoch, &held)?;
        // A renewal never moves the witness's record (any certified node may call it; only a
        // promotion, which the founder asks for itself, does): it grants the epoch the witness
        // holds, or the registered primary's first epoch while it holds none, and answers anything
        // else with the epoch it holds (a newer one fences the asker once a second site agrees).
        let first = primary.map(|p| arca_failover::Epoch::first(&p));
        if epoch == held || (held.number == 0 && first.as_ref() == Some(&epoch)) {
            let answer = self.failover.renew(&epoch, &self.timing).map_err(|e| {
                tracing::error!("failed to keep the epoch record: {e}");
                Status::unavailable("the witness could not keep the epoch record; retry")
            })?;
            return Ok(Response::new(answer));
        }
        if epoch.founder == 0 && epoch.number <= 1 && first.as_ref() != Some(&epoch) {
            return Err(Status::invalid_argument(format!(
                "epoch {} of {} is not this cluster's current epoch",
                epoch.number, epoch.primary
            )));
        }
        Ok(Response::new(pb::RenewResponse {
            granted: false,
            current_number: held.number,
            current_primary: held.primary,
            current_founder: held.founder,
        }))
    }

    async fn promote(&self, request: Request<pb::EpochRequest>) -> Result<Response<pb::PromoteResponse>, Status> {
        let caller = crate::services::node::node_caller(&request)?;
        let epoch = crate::failover::checked_epoch(request.get_ref()).map_err(|e| to_status(&e))?;
        if epoch.founder != caller || epoch.number <= 1 {
            return Err(Status::invalid_argument(
                "a promotion names the asking node as its founder and an epoch after the first",
            ));
        }
        let (held, _) = self.record()?;
        within_reach(&epoch, &held)?;
        let answer = self.failover.promote(&epoch, &self.timing).map_err(|e| {
            tracing::error!("failed to keep the epoch record: {e}");
            Status::unavailable("the witness could not keep the epoch record; retry")
        })?;
        if answer.accepted && epoch != held {
            tracing::warn!(epoch = epoch.number, primary = %epoch.primary, founder = caller, "the witness accepted a promotion");
        }
        Ok(Response::new(answer))
    }

    async fn progress(&self, _: Request<pb::ProgressRequest>) -> Result<Response<pb::ProgressResponse>, Status> {
        Err(only_epochs())
    }

    async fn lineage(&self, _: Request<pb::LineageRequest>) -> Result<Response<pb::LineageResponse>, Status> {
        Err(only_epochs())
    }

    async fn file_divergence(
        &self,
        _: Request<pb::DivergenceFiling>,
    ) -> Result<Response<pb::DivergenceReceipt>, Status> {
        Err(only_epochs())
    }
}

/// What the witness knows of the cluster for admission: nothing but the CA (no membership).
struct WitnessView(Arc<dyn Clock>);

impl AdmissionView for WitnessView {
    fn members(&self) -> Option<BTreeSet<u64>> {
        None
    }
    fn removed(&self, _: u64) -> bool {
        false
    }
    fn highest_allocated(&self) -> u64 {
        u64::MAX
    }
    fn now(&self) -> i64 {
        self.0.now_unix()
    }
}

/// Starts a witness: hands its routes to `spawn_server`, and registers it with the cluster in the
/// background (joining first if it holds no certificate), retrying until the cluster records it; a
/// refused join token or timing stops the registration for good, logged.
pub fn serve_witness(
    parts: WitnessParts,
    options: WitnessOptions,
    spawn_server: impl FnOnce(Routes),
) -> Result<Arc<Failover>, String> {
    options.timing.check()?;
    let failover = Arc::new(Failover::new(parts.epochs));
    let gate = Arc::new(Gate::new(
        parts.credentials.clone(),
        Arc::new(WitnessView(parts.clock.clone())),
        parts.peer_certificates,
    ));
    let primary = Arc::new(std::sync::Mutex::new(None));
    let service = NodeServiceServer::new(WitnessService {
        failover: failover.clone(),
        timing: options.timing,
        primary: primary.clone(),
    });
    spawn_server(Routes::new(Admission::new(service, gate)));
    let channels = Channels::new(parts.channels);
    let (credentials, clock) = (parts.credentials, parts.clock);
    tokio::spawn(async move {
        loop {
            match register(&channels, &credentials, &*clock, &options).await {
                Ok(response) => {
                    tracing::info!(node_id = response.node_id, primary = %response.primary_region, "registered as the cluster's witness");
                    *primary.lock().unwrap_or_else(|p| p.into_inner()) = Some(response.primary_region);
                    break;
                }
                Err(e) if matches!(e.code, ErrorCode::JoinTokenInvalid | ErrorCode::BadParameter) => {
                    tracing::error!("failed to register as the cluster's witness, not retrying: {e}");
                    break;
                }
                Err(e) => {
                    tracing::warn!("failed to register as the cluster's witness, retrying: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    Ok(failover)
}

async fn register(
    channels: &Channels,
    credentials: &NodeCredentials,
    clock: &dyn Clock,
    options: &WitnessOptions,
) -> Result<pb::AddNodeResponse, ArcaError> {
    let join = &options.join;
    let token = (!join.token.is_empty()).then_some(join.token.as_str());
    let (node_id, target) = crate::server::obtain_identity(channels, credentials, clock, &join.peer, token).await?;
    let request = pb::AddNodeRequest {
        node_id,
        cluster_addr: options.cluster_advertise.clone(),
        witness: true,
        lease_ms: options.timing.lease_ms,
        drift_margin_ms: options.timing.drift_margin_ms,
        failover_after_ms: options.timing.failover_after_ms,
        ..Default::default()
    };
    let response = crate::server::ask_to_be_added(channels, target, request).await?;
    if response.node_id != node_id || arca_types::RegionName::parse(&response.primary_region).is_err() {
        return Err(ArcaError::internal("the leader's answer to the witness's registration does not fit"));
    }
    Ok(response)
}
