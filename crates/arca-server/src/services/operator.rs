//! `arca.v1.OperatorService`: init, unseal, seal, seal status, keyring rotation.

use std::sync::Arc;

use arca_proto::v1 as pb;
use arca_proto::v1::operator_service_server::OperatorService;
use arca_raft::ApplyOutcome;
use arca_types::{ArcaError, ErrorCode};
use tonic::{Request, Response, Status};

use crate::access::Action;
use crate::api::Api;
use crate::seal::SealStatus;

pub struct Operator(pub Arc<Api>);

/// Default and largest share counts for `init`.
pub const INIT_SHARES_DEFAULT: u32 = 5;
pub const INIT_THRESHOLD_DEFAULT: u32 = 3;

fn seal_status(s: SealStatus, node_id: u64) -> pb::SealStatus {
    pb::SealStatus {
        initialized: s.initialized,
        sealed: s.sealed,
        threshold: s.threshold.into(),
        shares: s.shares.into(),
        progress: s.progress.into(),
        node_id,
        keyring_term: s.keyring_term,
    }
}

/// Initializes the cluster: root key, keyring, Shamir shares and root token. Used by `Init` and by
/// `arcad dev`.
pub async fn initialize(
    engine: &crate::engine::Engine,
    secret_shares: u32,
    secret_threshold: u32,
    auto_unseal_key: bool,
) -> Result<pb::InitResponse, ArcaError> {
    let shares = if secret_shares == 0 { INIT_SHARES_DEFAULT } else { secret_shares };
    let threshold = if secret_threshold == 0 { INIT_THRESHOLD_DEFAULT.min(shares) } else { secret_threshold };
    let (shares, threshold) = match (u8::try_from(shares), u8::try_from(threshold)) {
        (Ok(s), Ok(t)) => (s, t),
        _ => return Err(ArcaError::bad_parameter("secret_shares", "secret_shares must be 1-16")),
    };
    let material = engine.seal.prepare_init(shares, threshold, auto_unseal_key, engine.clock.now_unix())?;
    match engine.propose(material.proposal).await? {
        (_, ApplyOutcome::Applied) => Ok(pb::InitResponse {
            shares: material.shares.iter().map(|s| s.expose().to_owned()).collect(),
            threshold: material.threshold.into(),
            root_token: material.root_token,
            unseal_key: material.unseal_key.map(|k| k.expose().to_owned()).unwrap_or_default(),
        }),
        (_, ApplyOutcome::Conflict) => {
            Err(ArcaError::new(ErrorCode::AlreadyInitialized, "the cluster is already initialized"))
        }
    }
}

impl Operator {
    fn node_id(&self) -> u64 {
        self.0.engine.node_id.get().copied().unwrap_or(0)
    }
}

#[tonic::async_trait]
impl OperatorService for Operator {
    async fn init(&self, request: Request<pb::InitRequest>) -> Result<Response<pb::InitResponse>, Status> {
        let call = self.0.begin(&request, "OperatorInit");
        let r = request.into_inner();
        let result = initialize(&self.0.engine, r.secret_shares, r.secret_threshold, r.auto_unseal_key).await;
        self.0.finish(call, result)
    }

    async fn unseal(&self, request: Request<pb::UnsealRequest>) -> Result<Response<pb::SealStatus>, Status> {
        let call = self.0.begin(&request, "OperatorUnseal");
        let r = request.into_inner();
        let result = self.0.engine.seal.unseal(&r.share, r.reset).map(|s| seal_status(s, self.node_id()));
        self.0.finish(call, result)
    }

    async fn seal(&self, request: Request<pb::SealRequest>) -> Result<Response<pb::SealStatus>, Status> {
        let mut call = self.0.begin(&request, "OperatorSeal");
        let result = self.0.authorize(&mut call, Action::OperatorSeal, None).and_then(|_| {
            self.0.engine.seal.seal();
            self.0.engine.seal.status().map(|s| seal_status(s, self.node_id()))
        });
        self.0.finish(call, result)
    }

    async fn get_seal_status(
        &self,
        request: Request<pb::GetSealStatusRequest>,
    ) -> Result<Response<pb::SealStatus>, Status> {
        let call = self.0.begin(&request, "OperatorSealStatus");
        let result = self.0.engine.seal.status().map(|s| seal_status(s, self.node_id()));
        self.0.finish(call, result)
    }

    async fn rotate_keyring(
        &self,
        request: Request<pb::RotateKeyringRequest>,
    ) -> Result<Response<pb::RotateKeyringResponse>, Status> {
        let mut call = self.0.begin(&request, "OperatorRotate");
        let result = async {
            self.0.authorize(&mut call, Action::OperatorRotate, None)?;
            let engine = &self.0.engine;
            for _ in 0..crate::engine::CONFLICT_RETRIES_MAX {
                engine.read_barrier(crate::engine::Consistency::Linearizable).await?;
                let (proposal, keyring) = engine.seal.prepare_rotation()?;
                let term = keyring.active_term();
                if let (_, ApplyOutcome::Applied) = engine.propose(proposal).await? {
                    engine.seal.install_keyring(keyring);
                    return Ok(pb::RotateKeyringResponse { term });
                }
            }
            Err(ArcaError::unavailable("the keyring is being rotated concurrently; retry"))
        }
        .await;
        self.0.finish(call, result)
    }
}
