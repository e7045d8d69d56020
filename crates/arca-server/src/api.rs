//! What every public RPC shares: the access seam (authenticate → authorize → audit), request ids,
//! response metadata, and parsing of the common request fields.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use arca_types::limits::{PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX};
use arca_types::{ArcaError, ErrorCode};
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use crate::access::{
    Action, AuditDurability, AuditEvent, AuditSink, AuditStage, Authenticator, Authorizer, Grant, Identity, Principal,
};
use crate::engine::{Consistency, Engine, MAX_STALENESS_MS};
use crate::keyspace::Keyspace;
use crate::status::to_status;

/// Most objects one purge sweep purges (the rest wait for the next sweep).
pub const PURGE_SWEEP_BATCH_MAX: usize = 100;

pub struct Api {
    pub engine: Arc<Engine>,
    pub authenticator: Arc<dyn Authenticator>,
    pub authorizer: Arc<dyn Authorizer>,
    pub audit: Arc<dyn AuditSink>,
    /// The secret `Init` must present, on the node that bootstrapped the cluster (none elsewhere).
    pub bootstrap_secret: Option<zeroize::Zeroizing<String>>,
    /// Authentication and authorization decisions, kept while the replica does not change.
    pub access_cache: crate::access::AccessCache,
}

/// One request in flight.
pub struct Call {
    pub request_id: String,
    started: Instant,
    operation: &'static str,
    bearer: Option<String>,
    principal: Option<Principal>,
    vault: Option<String>,
    /// Lowercase names of the objects the request touches, hashed when recorded.
    objects: Vec<String>,
    /// The barrier the call was authorized under: if it is wiped before the call ends (the node
    /// sealed), a failure is reported as `SEALED`, since it may come from the missing keys.
    barrier: Option<arca_crypto::Barrier>,
    /// Whether the request record was written durably (a change): a failure to record its outcome
    /// then withholds the answer as `OUTCOME_UNKNOWN`.
    request_recorded: bool,
    /// The principal the edge already authenticated from the request's headers.
    authenticated: Option<Principal>,
    /// The client's request id and the fingerprint of its request, when it named one.
    client_id: Option<crate::edge::RequestId>,
    /// What the request asked to do, and what allowed it (for the audit record).
    action: Option<Action>,
    grant: Option<Grant>,
    /// The client id a token request named (a UUID, bounded), kept for the audit record of a refusal.
    claimed_client: Option<String>,
    /// The address the call came from, as this node's listener saw it (no proxy header is trusted).
    pub peer: Option<std::net::IpAddr>,
    /// Served by a read-only secondary from its replica: how old its last contact with the primary
    /// was, in milliseconds (answered in `x-arca-as-of-age-ms`).
    as_of_age_ms: Option<u64>,
    /// The client certificate the connection presented (DER), and its SHA-256.
    pub peer_certificate: Option<(Vec<u8>, [u8; 32])>,
    /// The TLS version of the connection.
    tls_version: Option<String>,
}

/// What a request is about: the cluster, a vault, or one object in a vault (names as the caller
/// sent them; they are validated here).
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    Cluster,
    Vault(&'a str),
    Object { vault: &'a str, kind: arca_rbac::ObjectKind, name: &'a str },
}

impl Target<'_> {
    pub fn scope(&self) -> Result<arca_rbac::Scope, ArcaError> {
        use arca_rbac::Scope;
        Ok(match self {
            Target::Cluster => Scope::Cluster,
            Target::Vault(v) => Scope::Vault(arca_types::VaultName::parse(v)?),
            Target::Object { vault, kind, name } => Scope::object(
                &arca_types::VaultName::parse(vault)?,
                *kind,
                &arca_types::ObjectName::parse("name", name)?,
            ),
        })
    }
}

/// Which objects of a list the caller may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visible {
    All,
    /// Only these (canonical, lowercase) names.
    Only(std::collections::BTreeSet<String>),
}

impl Visible {
    pub fn shows(&self, canonical: &str) -> bool {
        match self {
            Visible::All => true,
            Visible::Only(names) => names.contains(canonical),
        }
    }
}

/// How fresh the state an authorization reads must be: as fresh as the request's own read
/// (linearizable by default), or this node's replica as it is (for calls that must work without a
/// leader: seal, cluster status).
pub type Freshness = Option<Consistency>;

/// The freshness of a change's authorization: linearizable, so a role or token revoked before the
/// request started is refused.
pub const WRITE: Freshness = Some(Consistency::Linearizable);
/// No read barrier: this node's replica as it is.
pub const LOCAL: Freshness = None;

impl Call {
    /// The SHA-256 of the client certificate the connection presented, if it presented one.
    pub fn presented(&self) -> Option<&[u8; 32]> {
        self.peer_certificate.as_ref().map(|(_, thumbprint)| thumbprint)
    }

    /// The accessor of the authenticated caller's credential, once `authorize` has run.
    pub fn accessor(&self) -> Option<String> {
        self.principal.as_ref().map(|p| p.accessor.clone())
    }

    /// Notes the client id a token request names (validated as a UUID), for the audit record.
    pub fn claim_client(&mut self, client_id: &str) {
        self.claimed_client = Some(client_id.to_owned());
    }

    /// Names the caller of a call that authenticates itself (the token endpoint), for the audit record.
    pub fn identify_as(&mut self, principal: Principal) {
        self.principal = Some(principal);
    }

    /// Names the vault the call acts on, for the audit record (once the caller is authorized).
    pub fn set_vault(&mut self, vault: &arca_types::VaultName) {
        self.vault = Some(vault.canonical().to_owned());
    }

    /// The authenticated caller, once `authorize` has run.
    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }

    /// The change as the leader dedupes it, when the client named it with a request id. Request ids
    /// are per caller: a principal's, whatever token it used.
    pub fn client_request(&self) -> Option<crate::keyspace::ClientRequest> {
        let id = self.client_id.as_ref()?;
        Some(crate::keyspace::ClientRequest {
            caller: self.principal.as_ref()?.subject(),
            id: id.id.clone(),
            fingerprint: id.fingerprint,
        })
    }
}

fn bearer<T>(request: &Request<T>) -> Option<String> {
    let value = request.metadata().get("authorization")?.to_str().ok()?;
    value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).map(|t| t.trim().to_owned())
}

/// The principal of the node's own jobs (purge sweeps, lifetime actions, admissions).
fn system_principal() -> Principal {
    Principal { accessor: "system".to_owned(), identity: Identity::System }
}

impl Api {
    pub fn begin<T>(&self, request: &Request<T>, operation: &'static str) -> Call {
        let mut call = self.begin_bare(operation);
        call.bearer = bearer(request);
        if let Some(info) = request.extensions().get::<arca_transport::incoming::PeerInfo>() {
            call.peer = info.remote.map(|a| arca_core::network::canonical(a.ip()));
            call.peer_certificate =
                info.certificates.first().map(|der| (der.clone(), arca_crypto::cluster_pki::sha256(der)));
            call.tls_version = info.tls_version.clone();
        }
        call.authenticated = request.extensions().get::<crate::edge::Authenticated>().map(|a| a.0.clone());
        if let Some(id) = request.extensions().get::<crate::edge::RequestId>() {
            // The client's id names the request in the audit log and in the answer, too.
            call.request_id = id.id.clone();
            call.client_id = Some(id.clone());
        }
        call
    }

    /// Authenticates a bearer token (the edge does this before reading a request's body).
    pub fn authenticate(&self, bearer: Option<&str>, presented: Option<&[u8; 32]>) -> Result<Principal, ArcaError> {
        let keyspace = self.engine.seal.keyspace()?;
        self.authenticate_at(&keyspace, bearer, presented)
    }

    /// [`Authenticator::authenticate`] against `keyspace`, remembered while the replica stays as it is.
    fn authenticate_at(
        &self,
        keyspace: &Keyspace,
        bearer: Option<&str>,
        presented: Option<&[u8; 32]>,
    ) -> Result<Principal, ArcaError> {
        let now = self.engine.clock.now_unix();
        let compute = || self.authenticator.authenticate(keyspace, bearer, presented, now);
        match (bearer, self.engine.applied_index()) {
            (Some(token), Some(at)) => self.access_cache.principal(at, token, presented, now, compute),
            _ => compute(),
        }
    }

    /// Audits a request the edge turned away: only its fixed operation name and the outcome.
    pub fn audit_refusal(&self, operation: &'static str, error: &ArcaError) {
        let call = self.begin_bare(operation);
        let event = self.event(&call, AuditStage::Response, Some(&Err(error.clone())));
        if let Err(e) = self.audit.record(&event, AuditDurability::Buffered) {
            tracing::error!("failed to {e:#} (for a request refused at the edge)");
        }
    }

    fn begin_bare(&self, operation: &'static str) -> Call {
        let id = self.engine.seal.entropy().bytes16();
        Call {
            request_id: crate::seal::hex_of(&id),
            started: Instant::now(),
            operation,
            bearer: None,
            principal: None,
            vault: None,
            objects: Vec::new(),
            barrier: None,
            request_recorded: false,
            authenticated: None,
            client_id: None,
            action: None,
            grant: None,
            claimed_client: None,
            peer: None,
            as_of_age_ms: None,
            peer_certificate: None,
            tls_version: None,
        }
    }

    /// A call the node makes itself, audited as `system` (`vault` and `objects` name what it acts on).
    pub fn system_call(&self, operation: &'static str, vault: Option<&str>, objects: &[&str]) -> Call {
        let mut call = self.begin_bare(operation);
        call.principal = Some(system_principal());
        call.vault = vault.map(str::to_ascii_lowercase);
        call.objects = objects.iter().map(|o| o.to_ascii_lowercase()).collect();
        call
    }

    /// Audits a promotion this node carried out by itself (the automatic failover), as `system`.
    pub fn audit_failover(&self, won: &crate::promotion::Promoted) {
        let mut call = self.system_call("ClusterFailover", None, &[]);
        if let Err(e) = self.audit_request(&mut call) {
            tracing::warn!(epoch = won.epoch.number, "failed to audit the failover: {e}");
        }
        let _ = self.finish_internal(call, Ok(()));
    }

    /// A call made by another node over the cluster listener, audited under `caller` (a node or a
    /// join token's id).
    pub fn node_call(&self, operation: &'static str, caller: String) -> Call {
        let mut call = self.begin_bare(operation);
        call.principal = Some(Principal { accessor: caller, identity: Identity::Node });
        call
    }

    /// Checks the node is unsealed, the caller is known, and the caller may do `action` at `target`,
    /// against state at least as fresh as `freshness` asks (the request's own read barrier, which the
    /// handler then need not wait for again); for an action that changes state, records the request
    /// durably before anything happens. A refused caller is still named in the audit record.
    pub async fn authorize(
        &self,
        call: &mut Call,
        action: Action,
        target: Target<'_>,
        freshness: Freshness,
    ) -> Result<Keyspace, ArcaError> {
        let scope = match target.scope() {
            Ok(scope) => scope,
            Err(e) => {
                // Who asked is still worth knowing.
                self.engine.seal.keyspace()?;
                self.identify(call)?;
                return Err(e);
            }
        };
        self.authorize_at(call, action, &scope, None, freshness).await
    }

    /// [`Api::authorize`] at a scope already parsed, naming the role a role-assignment change names.
    pub async fn authorize_at(
        &self,
        call: &mut Call,
        action: Action,
        scope: &arca_rbac::Scope,
        assigned_role: Option<&str>,
        freshness: Freshness,
    ) -> Result<Keyspace, ArcaError> {
        call.action = Some(action);
        call.vault = scope.vault().map(|v| v.canonical().to_owned());
        let (keyspace, principal) = self.authenticate_fresh(call, freshness).await?;
        let compute = || self.authorizer.authorize(&keyspace, &principal, action, scope, assigned_role);
        let grant = match self.engine.applied_index() {
            Some(at) => self.access_cache.grant(at, &principal, action, scope, assigned_role, compute),
            None => compute(),
        };
        call.grant = Some(grant?);
        self.check_network(&keyspace, call, action, scope.vault())?;
        call.barrier = Some(keyspace.barrier().clone());
        if action.is_mutation() {
            self.audit_request(call)?;
        }
        Ok(keyspace)
    }

    /// Authorizes a list of `kind` objects in `vault`: with `action` at the vault, every object shows;
    /// without it, the objects the caller holds `action` on one by one (object-level assignments), and
    /// a caller with neither is refused. Azure refuses lists to object-level holders; Arca shows them
    /// what they may see.
    pub async fn authorize_list(
        &self,
        call: &mut Call,
        action: Action,
        vault: &str,
        kind: arca_rbac::ObjectKind,
        freshness: Freshness,
    ) -> Result<(Keyspace, Visible), ArcaError> {
        match self.authorize(call, action, Target::Vault(vault), freshness).await {
            Ok(keyspace) => Ok((keyspace, Visible::All)),
            Err(refused) if refused.code == ErrorCode::ForbiddenByRbac => {
                let keyspace = self.engine.seal.keyspace()?;
                let vault = arca_types::VaultName::parse(vault)?;
                let names = self.objects_granting(&keyspace, call, action, |scope| match scope {
                    arca_rbac::Scope::Object { vault: v, kind: k, name } if v == &vault && *k == kind => {
                        Some(name.clone())
                    }
                    _ => None,
                })?;
                if names.is_empty() {
                    return Err(refused);
                }
                self.check_network(&keyspace, call, action, Some(&vault))?;
                call.grant = Some(Grant::Objects);
                Ok((keyspace, Visible::Only(names)))
            }
            Err(e) => Err(e),
        }
    }

    /// Refuses a data action on a vault's contents from an address the vault's network rules do not
    /// allow. Managing the vault (control actions) is not subject to them.
    pub fn check_network(
        &self,
        keyspace: &Keyspace,
        call: &Call,
        action: Action,
        vault: Option<&arca_types::VaultName>,
    ) -> Result<(), ArcaError> {
        use arca_core::StateView;
        let (arca_rbac::Operation::Data(_), Some(vault)) = (action.operation(), vault) else { return Ok(()) };
        let view = keyspace.recording_view();
        // A vault that does not exist is the handler's to report, to a caller allowed to know.
        let Some(record) = view.vault(vault)?.filter(|v| v.deleted.is_none()) else { return Ok(()) };
        if view.network_rules(&record)?.allows(call.peer) {
            return Ok(());
        }
        let from = call.peer.map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string());
        Err(ArcaError::new(
            ErrorCode::ForbiddenByFirewall,
            format!(
                "the vault's network rules do not allow calls from {from}; its administrator can allow the address \
                 (arca vault network-rule add)"
            ),
        ))
    }

    /// The names (as `pick` reads them from each assignment's scope) of every scope at which one of
    /// the caller's assignments grants `action`.
    pub fn objects_granting(
        &self,
        keyspace: &Keyspace,
        call: &Call,
        action: Action,
        pick: impl Fn(&arca_rbac::Scope) -> Option<String>,
    ) -> Result<std::collections::BTreeSet<String>, ArcaError> {
        let Some(Identity::Principal { id, groups, .. }) = call.principal.as_ref().map(|p| &p.identity) else {
            return Ok(Default::default());
        };
        let mut principals = vec![*id];
        principals.extend(groups.iter().copied());
        let mut names = std::collections::BTreeSet::new();
        for assignment in keyspace.assignments_held(&principals)? {
            let Some(name) = pick(&assignment.scope) else { continue };
            let Some(role) = crate::identity::role(keyspace, &assignment.role_id) else { continue };
            if arca_rbac::evaluate::role_permits(&role, action.operation(), None) {
                names.insert(name);
            }
        }
        Ok(names)
    }

    /// Whether the caller `authorize` already admitted may also do `action` at `scope` (the other
    /// items of a batch), without another read barrier or audit record.
    pub fn permits(
        &self,
        keyspace: &Keyspace,
        call: &Call,
        action: Action,
        scope: &arca_rbac::Scope,
    ) -> Result<(), ArcaError> {
        self.permits_assigning(keyspace, call, action, scope, None)
    }

    /// [`Api::permits`] for writing or deleting an assignment of `role`.
    pub fn permits_assigning(
        &self,
        keyspace: &Keyspace,
        call: &Call,
        action: Action,
        scope: &arca_rbac::Scope,
        role: Option<&str>,
    ) -> Result<(), ArcaError> {
        let principal =
            call.principal.as_ref().ok_or_else(|| ArcaError::internal("a permission check before authorize"))?;
        self.authorizer.authorize(keyspace, principal, action, scope, role).map(|_| ())
    }
    /// Who the caller is, checked once against state at least as fresh as `freshness` asks: a token
    /// revoked (or a principal deleted) before the request started is refused here, on every node.
    pub async fn authenticate_fresh(
        &self,
        call: &mut Call,
        freshness: Freshness,
    ) -> Result<(Keyspace, Principal), ArcaError> {
        self.engine.seal.keyspace()?;
        self.identify(call)?;
        if let Some(consistency) = freshness {
            call.as_of_age_ms = self.engine.read_barrier(consistency).await?;
        }
        let keyspace = self.engine.seal.keyspace()?;
        let principal = self.authenticate_at(&keyspace, call.bearer.as_deref(), call.presented())?;
        call.principal = Some(principal.clone());
        Ok((keyspace, principal))
    }

    /// Who the caller is (authenticated, not yet authorized for anything).
    pub fn caller(&self, call: &mut Call) -> Result<Principal, ArcaError> {
        self.identify(call)?;
        call.principal.clone().ok_or_else(|| ArcaError::internal("a call without a caller"))
    }

    /// Who the caller is, from the edge's check or its token.
    fn identify(&self, call: &mut Call) -> Result<(), ArcaError> {
        if call.principal.is_none() {
            let principal = match call.authenticated.take() {
                Some(principal) => principal,
                None => self.authenticate(call.bearer.as_deref(), call.presented())?,
            };
            call.principal = Some(principal);
        }
        Ok(())
    }

    /// Records the request durably before it acts (for changes reached without `authorize`: init,
    /// unseal, join, and the node's own jobs). If the record cannot be written, nothing is done.
    pub fn audit_request(&self, call: &mut Call) -> Result<(), ArcaError> {
        let event = self.event(call, AuditStage::Request, None);
        self.audit.record(&event, AuditDurability::Synced).map_err(|e| {
            tracing::error!("failed to {e:#}; refusing the request");
            ArcaError::internal("the audit record could not be written, so the request was refused and changed nothing")
        })?;
        call.request_recorded = true;
        Ok(())
    }

    /// Names an object the call touches, for the audit record (stored only as a keyed hash).
    pub fn touch(&self, call: &mut Call, object: &str) {
        call.objects.push(object.to_ascii_lowercase());
    }

    fn event(&self, call: &Call, stage: AuditStage, outcome: Option<&Result<(), ArcaError>>) -> AuditEvent {
        let authenticated = call.principal.is_some();
        let objects = match self.engine.seal.barrier() {
            Ok(barrier) if authenticated => call.objects.iter().map(|o| audit_object_hash(&barrier, o)).collect(),
            _ => Vec::new(),
        };
        AuditEvent {
            time: self.engine.clock.now_unix(),
            request_id: call.request_id.clone(),
            stage,
            node_id: self.engine.node_id.get().copied().unwrap_or(0),
            operation: call.operation,
            caller: call.principal.as_ref().map(|p| p.accessor.clone()),
            principal: call.principal.as_ref().map(Principal::subject),
            principal_type: call.principal.as_ref().map(Principal::kind_name),
            auth_method: call.principal.as_ref().map(Principal::method_name),
            client_id: call.principal.as_ref().and_then(Principal::client_id).or_else(|| call.claimed_client.clone()),
            caller_address: call.peer.map(|ip| ip.to_string()),
            tls_version: call.tls_version.clone(),
            action: call.action.map(Action::azure_name),
            granted_by: call.grant.as_ref().map(|g| match g {
                Grant::Root => "root".to_owned(),
                Grant::Assignment { id, .. } => id.clone(),
                Grant::Objects => "object-assignments".to_owned(),
            }),
            role: call.grant.as_ref().and_then(|g| match g {
                Grant::Assignment { role, .. } => Some(role.clone()),
                Grant::Root | Grant::Objects => None,
            }),
            vault: if authenticated { call.vault.clone() } else { None },
            objects,
            result: outcome.map(|r| if r.is_ok() { "success" } else { "failure" }),
            code: outcome.and_then(|r| r.as_ref().err().map(|e| e.code.azure_code())),
            duration_ms: outcome.map(|_| call.started.elapsed().as_millis() as u64),
        }
    }

    /// Audits the outcome of a call and reports it. The outcome record is handed to the operating
    /// system before the answer leaves (it survives the process being killed) and reaches the disk
    /// with the next fsync of the log, which every later change's request record makes. What must be
    /// on disk before anything happens is the request record: a power loss can take the outcome
    /// record of a change answered in the last moments, never the record that the change was asked
    /// for, by whom, on what. Syncing outcome records too cost an fsync per change, most of the
    /// audit log's share of a write's CPU.
    fn record_response<R>(&self, call: &Call, result: Result<R, ArcaError>) -> Result<R, ArcaError> {
        let result = match result {
            Err(e) if call.barrier.as_ref().is_some_and(|b| b.is_wiped()) && e.code != ErrorCode::Sealed => {
                tracing::debug!("a request failed while the node sealed: {e}");
                Err(crate::seal::sealed_error())
            }
            other => other,
        };
        let outcome = result.as_ref().map(|_| ()).map_err(Clone::clone);
        let event = self.event(call, AuditStage::Response, Some(&outcome));
        let audit_result = self.audit.record(&event, AuditDurability::Buffered);
        let result = match (result, audit_result) {
            (Ok(_), Err(e)) if call.request_recorded => {
                tracing::error!("failed to {e:#}; withholding the response of a change that was made");
                Err(ArcaError::new(
                    ErrorCode::OutcomeUnknown,
                    "the change was made (its request is in the audit log), but the audit record of its outcome \
                     could not be written, so the answer is withheld; read the object before retrying",
                ))
            }
            (Ok(_), Err(e)) => {
                tracing::error!("failed to {e:#}; refusing the response");
                Err(ArcaError::internal("the audit record could not be written, so the response is withheld"))
            }
            (r, _) => r,
        };
        if let Err(e) = &result {
            if e.code == ErrorCode::Internal {
                tracing::error!(operation = call.operation, request_id = %call.request_id, "request failed: {e}");
            }
        }
        result
    }

    /// One sweep on the leader: purges every soft-deleted object whose retention has ended, each
    /// audited as a `system` request.
    pub async fn sweep_purges(&self) -> Result<usize, ArcaError> {
        use arca_core::{Command, PurgeTarget};
        let engine = &self.engine;
        if !engine.raft()?.is_leader() {
            return Ok(0);
        }
        let keyspace = engine.seal.keyspace()?;
        let due = keyspace.due_purges(engine.clock.now_unix(), PURGE_SWEEP_BATCH_MAX)?;
        let count = due.len();
        for (at, target) in due {
            let mut call = match &target {
                PurgeTarget::Vault { vault } => self.system_call("VaultPurgeDue", Some(vault.canonical()), &[]),
                PurgeTarget::Object { vault, name, .. } => {
                    self.system_call("ObjectPurgeDue", Some(vault.canonical()), &[&name.canonical()])
                }
            };
            self.audit_request(&mut call)?;
            let command = Command::PurgeDue { target, scheduled_purge_at: at };
            let result = engine.execute_on_leader(&keyspace, &command, None).await;
            self.finish_internal(call, result)?;
        }
        Ok(count)
    }

    /// On the leader: drops the outcomes of client request ids older than the window (a `system` job).
    pub async fn sweep_request_ids(&self) -> Result<usize, ArcaError> {
        use arca_types::limits::{REQUEST_ID_SWEEP_BATCH_MAX, REQUEST_ID_WINDOW_S};
        let engine = &self.engine;
        if !engine.raft()?.is_leader() {
            return Ok(0);
        }
        let keyspace = engine.seal.keyspace()?;
        let before = engine.clock.now_unix().saturating_sub(REQUEST_ID_WINDOW_S);
        let mut ops = keyspace.expired_requests(before, REQUEST_ID_SWEEP_BATCH_MAX)?;
        // Revoked tokens and used assertions are forgotten once they could no longer be used anyway.
        let now = engine.clock.now_unix().saturating_sub(arca_types::limits::ACCESS_TOKEN_CLOCK_SKEW_S);
        ops.extend(keyspace.expired_marks(now, REQUEST_ID_SWEEP_BATCH_MAX)?);
        if ops.is_empty() {
            return Ok(0);
        }
        let count = ops.len() / 2;
        let mut call = self.system_call("RequestIdsExpire", None, &[]);
        self.audit_request(&mut call)?;
        let proposal = arca_raft::Proposal { preconditions: Vec::new(), ops };
        let result = engine.propose_on_leader(proposal).await.map(|_| count);
        self.finish_internal(call, result)
    }

    /// Anchors the head of this node's audit chain in the cluster, if it moved past `anchored` (the
    /// chain head the last anchor left, its own records included). Returns the head it leaves.
    pub async fn anchor_audit(&self, anchored: u64) -> Result<Option<u64>, ArcaError> {
        let (Some(head), Some(node_id)) = (self.audit.head(), self.engine.node_id.get().copied()) else {
            return Ok(None);
        };
        if head.seq <= anchored {
            return Ok(None);
        }
        let (_, cluster) = crate::membership::cluster_record(&*self.engine.store)?
            .ok_or_else(|| ArcaError::unavailable("the cluster has no id yet"))?;
        let key = self.engine.credentials.current().stored.key.clone();
        let now = self.engine.clock.now_unix();
        let anchor = arca_audit::verify::SignedAnchor::sign(&key, &cluster.cluster_id, node_id, head, now);
        let mut call = self.system_call("AuditAnchor", None, &[]);
        self.audit_request(&mut call)?;
        let result = self.engine.execute_system(crate::engine::SystemCommand::AnchorAudit(anchor)).await;
        self.finish_internal(call, result)?;
        Ok(self.audit.head().map(|h| h.seq))
    }

    /// Ends a call the node made itself (see [`Api::system_call`] and [`Api::node_call`]).
    pub fn finish_internal<R>(&self, call: Call, result: Result<R, ArcaError>) -> Result<R, ArcaError> {
        self.record_response(&call, result)
    }

    /// Audits the call and turns its result into a gRPC response with Arca's metadata.
    pub fn finish<R>(&self, call: Call, result: Result<R, ArcaError>) -> Result<Response<R>, Status> {
        let result = self.record_response(&call, result);
        let mut response = result.map(Response::new).map_err(|e| to_status(&e))?;
        let md = response.metadata_mut();
        if let Ok(v) = MetadataValue::try_from(call.request_id.as_str()) {
            md.insert("x-arca-request-id", v);
        }
        if let Ok(raft) = self.engine.raft() {
            if let Ok(v) = MetadataValue::try_from(raft.node_id.to_string()) {
                md.insert("x-arca-node-id", v);
            }
            if let Ok(v) = MetadataValue::try_from(raft.applied_index().to_string()) {
                md.insert("x-arca-applied-index", v);
            }
        }
        if let Some(age) = call.as_of_age_ms {
            if let Ok(v) = MetadataValue::try_from(age.to_string()) {
                md.insert("x-arca-as-of-age-ms", v);
            }
        }
        Ok(response)
    }
}

/// How an audit record names an object: a keyed hash of its lowercase name, never the name.
pub fn audit_object_hash(barrier: &arca_crypto::Barrier, lowercase_name: &str) -> String {
    crate::seal::hex_of(
        &barrier.name_hash(arca_crypto::Scope::System, format!("audit:{lowercase_name}").as_bytes())[..12],
    )
}

/// Parses the read options of a Get or List call (default: linearizable).
pub fn parse_consistency(options: Option<&arca_proto::v1::ReadOptions>) -> Result<Consistency, ArcaError> {
    use arca_proto::v1::Consistency as C;
    let Some(options) = options else { return Ok(Consistency::Linearizable) };
    match C::try_from(options.consistency) {
        Ok(C::Unspecified) | Ok(C::Linearizable) => Ok(Consistency::Linearizable),
        Ok(C::BoundedStaleness) => {
            let d = options.max_staleness.as_ref().ok_or_else(|| {
                ArcaError::bad_parameter(
                    "read_options.max_staleness",
                    "max_staleness is required with BOUNDED_STALENESS",
                )
            })?;
            if d.seconds < 0 || d.nanos < 0 {
                return Err(ArcaError::bad_parameter("read_options.max_staleness", "max_staleness must be positive"));
            }
            let ms = (d.seconds as u64).saturating_mul(1000).saturating_add(d.nanos as u64 / 1_000_000);
            if ms == 0 || ms > MAX_STALENESS_MS {
                return Err(ArcaError::bad_parameter(
                    "read_options.max_staleness",
                    format!("max_staleness must be between 1 ms and {} s", MAX_STALENESS_MS / 1000),
                ));
            }
            Ok(Consistency::BoundedStaleness(Duration::from_millis(ms)))
        }
        Err(_) => Err(ArcaError::bad_parameter("read_options.consistency", "unknown consistency value")),
    }
}

pub fn page_size(raw: i32) -> Result<usize, ArcaError> {
    match raw {
        0 => Ok(PAGE_SIZE_DEFAULT as usize),
        n if n > 0 && n as u32 <= PAGE_SIZE_MAX => Ok(n as usize),
        n => Err(ArcaError::bad_parameter(
            "page_size",
            format!("page_size must be 1-{PAGE_SIZE_MAX} (or 0 for {PAGE_SIZE_DEFAULT}), it is {n}"),
        )),
    }
}

pub fn page_token(raw: &str) -> Result<Option<Vec<u8>>, ArcaError> {
    if raw.is_empty() {
        return Ok(None);
    }
    hex::decode(raw)
        .map(Some)
        .map_err(|_| ArcaError::bad_parameter("page_token", "page_token is not one this server issued"))
}

pub fn next_token(next: Option<Vec<u8>>) -> String {
    next.map(hex::encode).unwrap_or_default()
}

/// One page over an in-memory list (versions of one object): the index range to return and the next
/// page token. Tokens are the big-endian start offset.
pub fn offset_window(
    total: usize,
    raw_size: i32,
    raw_token: &str,
) -> Result<(std::ops::Range<usize>, String), ArcaError> {
    let limit = page_size(raw_size)?;
    let start = match page_token(raw_token)? {
        None => 0,
        Some(bytes) => {
            let raw: [u8; 4] = bytes
                .try_into()
                .map_err(|_| ArcaError::bad_parameter("page_token", "page_token is not one this server issued"))?;
            u32::from_be_bytes(raw) as usize
        }
    };
    let start = start.min(total);
    let end = (start + limit).min(total);
    let next = (end < total).then(|| (end as u32).to_be_bytes().to_vec());
    Ok((start..end, next_token(next)))
}

/// Checks an update mask against the updatable paths and answers which fields it covers (an empty mask
/// covers all).
pub fn update_mask(
    mask: Option<&prost_types::FieldMask>,
    updatable: &'static [&'static str],
) -> Result<impl Fn(&str) -> bool, ArcaError> {
    let paths: Vec<String> = mask.map(|m| m.paths.clone()).unwrap_or_default();
    if let Some(bad) = paths.iter().find(|p| !updatable.contains(&p.as_str())) {
        return Err(ArcaError::bad_parameter(
            "update_mask",
            format!("'{bad}' cannot be updated; updatable: {}", updatable.join(", ")),
        ));
    }
    Ok(move |p: &str| paths.is_empty() || paths.iter().any(|x| x == p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_limit_and_one_past_it() {
        assert_eq!(page_size(0).unwrap(), PAGE_SIZE_DEFAULT as usize);
        assert_eq!(page_size(1).unwrap(), 1);
        assert_eq!(page_size(PAGE_SIZE_MAX as i32).unwrap(), PAGE_SIZE_MAX as usize);
        for bad in [PAGE_SIZE_MAX as i32 + 1, -1, i32::MIN, i32::MAX] {
            assert!(page_size(bad).is_err(), "{bad}");
        }
    }
}
