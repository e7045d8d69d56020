//! `arca.v1.OperatorService`: init, unseal, seal, seal status, keyring rotation.

use std::sync::Arc;

use arca_proto::v1 as pb;
use arca_proto::v1::operator_service_server::OperatorService;
use arca_raft::ApplyOutcome;
use arca_types::{ArcaError, ErrorCode};
use tonic::{Request, Response, Status};

use crate::access::Action;
use crate::api::{Api, Target, LOCAL, WRITE};
use crate::engine::{SystemCommand, SystemOutcome};
use crate::keyspace::{self, InitRecord, INIT_KEY};
use crate::seal::{InitSubject, SealStatus};

pub struct Operator(pub Arc<Api>, pub crate::root::RootOps);

/// Default and largest share counts for `init`.
pub const INIT_SHARES_DEFAULT: u32 = 5;
pub const INIT_THRESHOLD_DEFAULT: u32 = 3;

fn seal_status(s: SealStatus, node_id: u64, cluster_id: String) -> pb::SealStatus {
    pb::SealStatus {
        cluster_id,
        initialized: s.initialized,
        sealed: s.sealed,
        threshold: s.threshold.into(),
        shares: s.shares.into(),
        progress: s.progress.into(),
        node_id,
        keyring_term: s.keyring_term,
        nonce: s.nonce,
    }
}

/// Root tokens are break glass: only a root token may list or revoke them, whatever roles a
/// principal holds (a cluster operator must not be able to lock out the holders of the break glass).
fn root_only(call: &crate::api::Call, what: &str) -> Result<(), ArcaError> {
    match call.principal().map(|p| &p.identity) {
        Some(crate::access::Identity::Root) => Ok(()),
        _ => Err(ArcaError::new(arca_types::ErrorCode::ForbiddenByRbac, format!("only a root token may {what}"))),
    }
}

/// Longest request id an init may name, in characters.
pub const INIT_REQUEST_ID_CHARS_MAX: usize = 64;

fn init_request_id(raw: &str) -> Result<Option<&str>, ArcaError> {
    if raw.is_empty() {
        return Ok(None);
    }
    if raw.len() > INIT_REQUEST_ID_CHARS_MAX || !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ArcaError::bad_parameter(
            "request_id",
            format!("request_id must be 1-{INIT_REQUEST_ID_CHARS_MAX} printable ASCII characters"),
        ));
    }
    Ok(Some(raw))
}

/// Initializes the cluster: root key, keyring, Shamir shares and root token. Used by `Init` and by
/// `arcad dev`.
pub async fn initialize(
    engine: &crate::engine::Engine,
    secret_shares: u32,
    secret_threshold: u32,
    auto_unseal_key: bool,
    request_id: Option<&str>,
) -> Result<pb::InitResponse, ArcaError> {
    let shares = if secret_shares == 0 { INIT_SHARES_DEFAULT } else { secret_shares };
    let threshold = if secret_threshold == 0 { INIT_THRESHOLD_DEFAULT.min(shares) } else { secret_threshold };
    let (shares, threshold) = match (u8::try_from(shares), u8::try_from(threshold)) {
        (Ok(s), Ok(t)) => (s, t),
        _ => return Err(ArcaError::bad_parameter("secret_shares", "secret_shares must be 1-16")),
    };
    let raft = engine.raft()?;
    if !raft.is_leader() {
        return Err(ArcaError::unavailable(
            "send init to the cluster's leader (a new cluster has one node: the one started with --bootstrap)",
        ));
    }
    crate::membership::ensure_cluster_record(engine).await?;
    let (written_at, cluster) = crate::membership::cluster_record(&*engine.store)?
        .ok_or_else(|| ArcaError::unavailable("the cluster has no id yet; retry"))?;
    let spki = engine.credentials.spki_der().map_err(|e| ArcaError::internal(e.to_string()))?;
    let now = engine.clock.now_unix();
    let subject = InitSubject {
        cluster: &cluster,
        cluster_written_at: written_at,
        node_id: raft.node_id,
        node_spki_der: &spki,
        request_id,
    };
    let material = engine.seal.prepare_init(shares, threshold, auto_unseal_key, now, subject)?;
    match engine.propose_on_leader(material.proposal).await? {
        (_, ApplyOutcome::Applied) => {
            if let Err(e) = engine.credentials.install(material.node_cert_der, material.ca_cert_der, now) {
                // The shares must reach the operator whatever happens here; once unsealed, the node
                // issues itself a certificate from the replicated CA.
                tracing::error!("failed to install this node's first cluster certificate: {e}");
            }
            Ok(pb::InitResponse {
                shares: material.shares.iter().map(|s| s.expose().to_owned()).collect(),
                threshold: material.threshold.into(),
                root_token: material.root_token,
                unseal_key: material.unseal_key.map(|k| k.expose().to_owned()).unwrap_or_default(),
            })
        }
        (index, ApplyOutcome::Conflict) => {
            raft.wait_applied(index, std::time::Duration::from_millis(crate::engine::FORWARD_TIMEOUT_MS))
                .await
                .map_err(|e| ArcaError::unavailable(e.to_string()))?;
            match keyspace::read_plain::<InitRecord>(&*engine.store, INIT_KEY)? {
                Some((_, init)) => Err(crate::seal::already_initialized(&init, request_id)),
                None => Err(ArcaError::unavailable("the cluster's id changed while it was being initialized; retry")),
            }
        }
    }
}

impl Operator {
    fn node_id(&self) -> u64 {
        self.0.engine.node_id.get().copied().unwrap_or(0)
    }

    /// The cluster's id in hex, once this node knows it (public).
    fn cluster_id(&self) -> String {
        match crate::membership::cluster_record(&*self.0.engine.store) {
            Ok(Some((_, cluster))) => hex::encode(cluster.cluster_id),
            _ => String::new(),
        }
    }

    /// Init is for whoever can read the bootstrap secret the bootstrapping node wrote: the first
    /// caller on the network does not get to own the cluster.
    fn check_bootstrap_secret(&self, presented: &str) -> Result<(), ArcaError> {
        let Some(expected) = &self.0.bootstrap_secret else {
            return Err(ArcaError::new(
                ErrorCode::Forbidden,
                "this node was not started with --bootstrap: send init to the node that bootstrapped the cluster",
            ));
        };
        if arca_crypto::constant_time_eq(expected.as_bytes(), presented.trim().as_bytes()) {
            Ok(())
        } else {
            Err(ArcaError::new(
                ErrorCode::Forbidden,
                "the bootstrap secret is missing or wrong: it is in bootstrap.secret in the data dir of the node \
                 started with --bootstrap (`arca operator init --bootstrap-secret-file ...`)",
            ))
        }
    }
}

#[tonic::async_trait]
impl OperatorService for Operator {
    async fn init(&self, request: Request<pb::InitRequest>) -> Result<Response<pb::InitResponse>, Status> {
        let mut call = self.0.begin(&request, "OperatorInit");
        let r = request.into_inner();
        let result = async {
            self.check_bootstrap_secret(&r.bootstrap_secret)?;
            self.0.audit_request(&mut call)?;
            let request_id = init_request_id(&r.request_id)?;
            initialize(&self.0.engine, r.secret_shares, r.secret_threshold, r.auto_unseal_key, request_id).await
        }
        .await;
        self.0.finish(call, result)
    }

    async fn unseal(&self, request: Request<pb::UnsealRequest>) -> Result<Response<pb::SealStatus>, Status> {
        let mut call = self.0.begin(&request, "OperatorUnseal");
        let r = request.into_inner();
        let result = self
            .0
            .audit_request(&mut call)
            .and_then(|()| self.0.engine.seal.unseal(&r.share, &r.nonce, r.reset))
            .map(|s| seal_status(s, self.node_id(), self.cluster_id()));
        self.0.finish(call, result)
    }

    async fn seal(&self, request: Request<pb::SealRequest>) -> Result<Response<pb::SealStatus>, Status> {
        let mut call = self.0.begin(&request, "OperatorSeal");
        // Against this node's replica as it is: sealing must work without a leader.
        let result = match self.0.authorize(&mut call, Action::ClusterSeal, Target::Cluster, LOCAL).await {
            Ok(_) => {
                self.0.engine.seal_now();
                self.0.engine.seal.status().map(|s| seal_status(s, self.node_id(), self.cluster_id()))
            }
            Err(e) => Err(e),
        };
        self.0.finish(call, result)
    }

    async fn get_seal_status(
        &self,
        request: Request<pb::GetSealStatusRequest>,
    ) -> Result<Response<pb::SealStatus>, Status> {
        let call = self.0.begin(&request, "OperatorSealStatus");
        let result = self.0.engine.seal.status().map(|s| seal_status(s, self.node_id(), self.cluster_id()));
        self.0.finish(call, result)
    }

    async fn generate_root(
        &self,
        request: Request<pb::GenerateRootRequest>,
    ) -> Result<Response<pb::GenerateRootStatus>, Status> {
        let mut call = self.0.begin(&request, "OperatorGenerateRoot");
        let r = request.into_inner();
        let result = async {
            self.0.audit_request(&mut call)?;
            self.1.generate_root(&self.0, r).await
        }
        .await;
        self.0.finish(call, result)
    }

    async fn rekey(&self, request: Request<pb::RekeyRequest>) -> Result<Response<pb::RekeyStatus>, Status> {
        let mut call = self.0.begin(&request, "OperatorRekey");
        let r = request.into_inner();
        let result = async {
            self.0.audit_request(&mut call)?;
            self.1.rekey(&self.0, r).await
        }
        .await;
        self.0.finish(call, result)
    }

    async fn revoke_token(
        &self,
        request: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<pb::RevokeTokenResponse>, Status> {
        let mut call = self.0.begin(&request, "OperatorRevokeToken");
        let r = request.into_inner();
        let result = async {
            self.0.authorize(&mut call, Action::ClusterTokensRevoke, Target::Cluster, WRITE).await?;
            root_only(&call, "revoke root tokens")?;
            if r.accessor.len() != 16 || !r.accessor.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ArcaError::bad_parameter("accessor", "an accessor is 16 hex characters"));
            }
            self.0.engine.execute_system(SystemCommand::RevokeToken { accessor: r.accessor }).await?;
            Ok(pb::RevokeTokenResponse {})
        }
        .await;
        self.0.finish(call, result)
    }

    async fn list_tokens(
        &self,
        request: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensResponse>, Status> {
        let mut call = self.0.begin(&request, "OperatorListTokens");
        let result = async {
            let keyspace = self.0.authorize(&mut call, Action::ClusterTokensList, Target::Cluster, WRITE).await?;
            root_only(&call, "list root tokens")?;
            crate::root::list_tokens(&keyspace)
        }
        .await;
        self.0.finish(call, result)
    }

    async fn rotate_keyring(
        &self,
        request: Request<pb::RotateKeyringRequest>,
    ) -> Result<Response<pb::RotateKeyringResponse>, Status> {
        let mut call = self.0.begin(&request, "OperatorRotate");
        let result = async {
            self.0.authorize(&mut call, Action::ClusterRotateKeyring, Target::Cluster, WRITE).await?;
            let engine = &self.0.engine;
            let SystemOutcome::KeyringTerm(term) = engine.execute_system(SystemCommand::RotateKeyring).await? else {
                return Err(ArcaError::internal("the leader answered a rotation with another outcome"));
            };
            // Use the new term here at once (the leader already does).
            engine.read_barrier(crate::engine::Consistency::Linearizable).await?;
            engine.seal.refresh_keyring()?;
            Ok(pb::RotateKeyringResponse { term })
        }
        .await;
        self.0.finish(call, result)
    }
}
