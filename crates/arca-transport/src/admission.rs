//! Cluster admission: who may call which RPC of the cluster listener.
//!
//! Every request to the cluster listener passes [`Admission`], a service wrapped around the whole
//! `NodeService`: it names the RPC from the request path (a path not in [`ClusterRpc`] is refused),
//! classifies the caller from the certificate it proved it holds in the TLS handshake ([`Caller`]), and
//! applies [`admit`], a pure rule over this node's view of the cluster. Only then does the request
//! reach a handler, which finds the [`Admitted`] caller in the request's extensions.
//!
//! **Architecture Invariant:** deny by default. A new RPC is refused until it is given a row in
//! [`ClusterRpc::requirement`]; a caller without a certificate is refused everything.

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use arca_crypto::cluster_pki::{self, CertUse};
use tonic::body::Body;
use tonic::codegen::http;
use tonic::server::NamedService;

use crate::credentials::NodeCredentials;

/// How long a classified certificate is remembered, in seconds (heartbeats arrive every 100 ms).
pub const CALLER_CACHE_S: i64 = 10;
/// Most certificates remembered at once; the cache is emptied when it is full.
pub const CALLER_CACHE_ENTRIES_MAX: usize = 256;

/// Every RPC of `arca.cluster.v1.NodeService`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClusterRpc {
    AppendEntries,
    Vote,
    InstallSnapshot,
    Forward,
    ReadIndex,
    Join,
    AddNode,
    Renew,
    Promote,
    Progress,
    Lineage,
    FileDivergence,
}

/// What a caller must be for an RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Any caller that proved it holds a certificate: the handler checks a join token.
    Certificate,
    /// A node the cluster admitted with a join token and never removed (its own AddNode).
    AdmittedNode,
    /// Any node the cluster CA certified that this node does not know to be removed. A node's view of
    /// the membership may lag (it may not yet hold the entry that added the leader it now hears
    /// from): it must take Raft traffic from the newer members, or it never catches up.
    RaftPeer,
    /// A current member.
    Member,
    /// A current member, or a node the lineage this node runs displaced when it was founded (removed
    /// from the membership, but owed a way back: it files what it held and rejoins).
    MemberOrDisplaced,
}

const SERVICE: &str = "arca.cluster.v1.NodeService";

impl ClusterRpc {
    pub const ALL: [ClusterRpc; 12] = [
        ClusterRpc::AppendEntries,
        ClusterRpc::Vote,
        ClusterRpc::InstallSnapshot,
        ClusterRpc::Forward,
        ClusterRpc::ReadIndex,
        ClusterRpc::Join,
        ClusterRpc::AddNode,
        ClusterRpc::Renew,
        ClusterRpc::Promote,
        ClusterRpc::Progress,
        ClusterRpc::Lineage,
        ClusterRpc::FileDivergence,
    ];

    pub fn method(self) -> &'static str {
        match self {
            ClusterRpc::AppendEntries => "AppendEntries",
            ClusterRpc::Vote => "Vote",
            ClusterRpc::InstallSnapshot => "InstallSnapshot",
            ClusterRpc::Forward => "Forward",
            ClusterRpc::ReadIndex => "ReadIndex",
            ClusterRpc::Join => "Join",
            ClusterRpc::AddNode => "AddNode",
            ClusterRpc::Renew => "Renew",
            ClusterRpc::Promote => "Promote",
            ClusterRpc::Progress => "Progress",
            ClusterRpc::Lineage => "Lineage",
            ClusterRpc::FileDivergence => "FileDivergence",
        }
    }

    /// The RPC a request path names, or `None` for any other path.
    pub fn from_path(path: &str) -> Option<Self> {
        let method = path.strip_prefix('/')?.strip_prefix(SERVICE)?.strip_prefix('/')?;
        Self::ALL.into_iter().find(|rpc| rpc.method() == method)
    }

    pub fn requirement(self) -> Requirement {
        match self {
            ClusterRpc::Join => Requirement::Certificate,
            ClusterRpc::AddNode => Requirement::AdmittedNode,
            ClusterRpc::AppendEntries | ClusterRpc::Vote | ClusterRpc::InstallSnapshot => Requirement::RaftPeer,
            // Epoch traffic comes from whichever certified node leads or promotes, whose membership
            // this node (or the witness, which holds none) may not have seen yet.
            ClusterRpc::Renew | ClusterRpc::Promote => Requirement::RaftPeer,
            ClusterRpc::Forward | ClusterRpc::ReadIndex | ClusterRpc::Progress => Requirement::Member,
            ClusterRpc::Lineage | ClusterRpc::FileDivergence => Requirement::MemberOrDisplaced,
        }
    }
}

/// Who is calling, as far as the certificate the caller proved it holds goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A certificate the cluster CA issued, naming node `0` of this cluster.
    Node(u64),
    /// Any other certificate (a joining node's provisional one, or an intruder's); its public key is
    /// what a join admits.
    Stranger { spki_der: Vec<u8> },
}

/// What the admission layer hands a handler: the RPC and the caller it admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub rpc: ClusterRpc,
    pub caller: Caller,
}

/// This node's view of the cluster, read on every admission.
pub trait AdmissionView: Send + Sync {
    /// The voters and learners of the membership this node holds, or `None` if it never stored one.
    fn members(&self) -> Option<BTreeSet<u64>>;
    /// Whether `node_id` was a member and was removed (ids are never reused, so a removed node never
    /// comes back).
    fn removed(&self, node_id: u64) -> bool;
    /// Whether `node_id` is one of the old lineage's nodes this node's lineage displaced when it was
    /// founded, and has not filed its divergence yet.
    fn displaced(&self, _node_id: u64) -> bool {
        false
    }
    /// The highest node id this node knows was given out.
    fn highest_allocated(&self) -> u64;
    /// The time certificates are checked at (Unix seconds).
    fn now(&self) -> i64;
}

/// Why a caller was turned away. The text goes back to the caller: it names no secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the caller presented no certificate")]
    NoCertificate,
    #[error("the caller's certificate is not a node certificate of this cluster")]
    NotANode,
    #[error("node {0} was removed from this cluster")]
    Removed(u64),
    #[error("node {0} is not a member of this cluster")]
    NotAMember(u64),
    #[error("node {0} was not admitted by this node's view of the cluster")]
    NotAdmitted(u64),
}

impl Refusal {
    /// Whether the refusal may only mean that this node's view lags the cluster's: the caller holds a
    /// certificate the cluster CA issued and was never removed, but this node has not yet applied the
    /// entry that allocated its id or added it. Such a refusal answers `UNAVAILABLE` (retry) rather
    /// than `PERMISSION_DENIED`, so a new leader that has not applied its predecessor's last entries
    /// does not turn a joining node away for good.
    pub fn may_be_lag(&self) -> bool {
        matches!(self, Refusal::NotAMember(_) | Refusal::NotAdmitted(_))
    }

    /// The status a refused call of `rpc` answers.
    pub fn status(&self, rpc: ClusterRpc) -> tonic::Status {
        if self.may_be_lag() {
            tonic::Status::unavailable(format!(
                "refused {} for now: {self}; this node may not have caught up with the cluster yet, retry",
                rpc.method()
            ))
        } else {
            tonic::Status::permission_denied(format!("refused {}: {self}", rpc.method()))
        }
    }
}

/// The rule: may `caller` make `rpc`, given `view`?
pub fn admit(rpc: ClusterRpc, caller: Option<&Caller>, view: &dyn AdmissionView) -> Result<(), Refusal> {
    let caller = caller.ok_or(Refusal::NoCertificate)?;
    let requirement = rpc.requirement();
    if requirement == Requirement::Certificate {
        return Ok(());
    }
    let Caller::Node(id) = *caller else { return Err(Refusal::NotANode) };
    if requirement == Requirement::MemberOrDisplaced && view.displaced(id) {
        return Ok(());
    }
    if view.removed(id) {
        return Err(Refusal::Removed(id));
    }
    let members = view.members();
    let is_member = members.as_ref().is_some_and(|m| m.contains(&id));
    let allowed = match requirement {
        Requirement::Certificate => true,
        // The CA issues a certificate only to a node a join token admitted, and only with an id it
        // allocated; an id this node has not seen allocated is one it cannot vouch for.
        Requirement::AdmittedNode => {
            return if id <= view.highest_allocated() { Ok(()) } else { Err(Refusal::NotAdmitted(id)) };
        }
        Requirement::Member | Requirement::MemberOrDisplaced => is_member,
        Requirement::RaftPeer => true,
    };
    if allowed {
        Ok(())
    } else {
        Err(Refusal::NotAMember(id))
    }
}

/// Finds the certificate the caller of a request proved it holds (the first of its chain, DER).
pub trait PeerCertificates: Send + Sync {
    fn peer_certificate(&self, extensions: &http::Extensions) -> Option<Vec<u8>>;
}

/// Decides admissions for one node: classifies callers with its credentials and applies [`admit`].
pub struct Gate {
    credentials: Arc<NodeCredentials>,
    view: Arc<dyn AdmissionView>,
    peers: Arc<dyn PeerCertificates>,
    /// Certificates classified recently: SHA-256 of the DER → (caller, when).
    cache: Mutex<HashMap<[u8; 32], (Caller, i64)>>,
}

impl Gate {
    pub fn new(
        credentials: Arc<NodeCredentials>,
        view: Arc<dyn AdmissionView>,
        peers: Arc<dyn PeerCertificates>,
    ) -> Self {
        Self { credentials, view, peers, cache: Mutex::default() }
    }

    /// Who a certificate says the caller is, checked against this node's cluster CA.
    pub fn classify(&self, cert_der: &[u8]) -> Caller {
        let now = self.view.now();
        let digest = cluster_pki::sha256(cert_der);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((caller, at)) = cache.get(&digest) {
            if now >= *at && now - *at < CALLER_CACHE_S {
                return caller.clone();
            }
        }
        let credentials = self.credentials.current();
        let caller = match credentials.trust() {
            Some((ca, cluster_id)) => {
                match cluster_pki::verify_node_certificate(cert_der, ca, &cluster_id, now, CertUse::Client) {
                    Ok(id) => Caller::Node(id),
                    Err(_) => {
                        Caller::Stranger { spki_der: cluster_pki::certificate_spki(cert_der).unwrap_or_default() }
                    }
                }
            }
            None => Caller::Stranger { spki_der: cluster_pki::certificate_spki(cert_der).unwrap_or_default() },
        };
        if cache.len() >= CALLER_CACHE_ENTRIES_MAX {
            cache.clear();
        }
        cache.insert(digest, (caller.clone(), now));
        caller
    }

    /// Admits a request or says why not.
    pub fn check(&self, path: &str, extensions: &http::Extensions) -> Result<Admitted, tonic::Status> {
        let rpc = ClusterRpc::from_path(path)
            .ok_or_else(|| tonic::Status::permission_denied("this cluster listener serves no such method"))?;
        let caller = self.peers.peer_certificate(extensions).map(|der| self.classify(&der));
        admit(rpc, caller.as_ref(), &*self.view).map_err(|refusal| {
            tracing::warn!(rpc = rpc.method(), %refusal, "refused a cluster call");
            refusal.status(rpc)
        })?;
        let caller = caller.expect("admit refuses a caller without a certificate");
        Ok(Admitted { rpc, caller })
    }
}

/// The cluster listener's service, behind the admission gate.
#[derive(Clone)]
pub struct Admission<S> {
    inner: S,
    gate: Arc<Gate>,
}

impl<S> Admission<S> {
    pub fn new(inner: S, gate: Arc<Gate>) -> Self {
        Self { inner, gate }
    }
}

impl<S: NamedService> NamedService for Admission<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> tonic::codegen::Service<http::Request<Body>> for Admission<S>
where
    S: tonic::codegen::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        match self.gate.check(request.uri().path(), request.extensions()) {
            Ok(admitted) => {
                request.extensions_mut().insert(admitted);
                Box::pin(self.inner.call(request))
            }
            Err(status) => Box::pin(std::future::ready(Ok(status.into_http()))),
        }
    }
}

/// Peer certificates from the connection info of [`crate::incoming::tls_incoming`]'s connections.
pub struct TlsPeerCertificates;

impl PeerCertificates for TlsPeerCertificates {
    fn peer_certificate(&self, extensions: &http::Extensions) -> Option<Vec<u8>> {
        extensions.get::<crate::incoming::PeerInfo>()?.certificates.first().cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct View {
        members: Option<BTreeSet<u64>>,
        removed: BTreeSet<u64>,
        highest: u64,
        displaced: BTreeSet<u64>,
    }

    impl AdmissionView for View {
        fn members(&self) -> Option<BTreeSet<u64>> {
            self.members.clone()
        }
        fn removed(&self, id: u64) -> bool {
            self.removed.contains(&id)
        }
        fn highest_allocated(&self) -> u64 {
            self.highest
        }
        fn displaced(&self, id: u64) -> bool {
            self.displaced.contains(&id)
        }
        fn now(&self) -> i64 {
            0
        }
    }

    fn view() -> View {
        View { members: Some([1, 2, 3].into()), removed: [4].into(), highest: 5, displaced: BTreeSet::new() }
    }

    #[test]
    fn every_path_maps_to_one_rpc_and_others_to_none() {
        for rpc in ClusterRpc::ALL {
            assert_eq!(ClusterRpc::from_path(&format!("/{SERVICE}/{}", rpc.method())), Some(rpc));
        }
        for path in ["/arca.cluster.v1.NodeService/RemoveNode", "/arca.v1.SecretService/GetSecret", "", "/", "x"] {
            assert_eq!(ClusterRpc::from_path(path), None, "{path}");
        }
    }

    #[test]
    fn strangers_may_only_ask_to_join() {
        let stranger = Caller::Stranger { spki_der: vec![1] };
        for rpc in ClusterRpc::ALL {
            let got = admit(rpc, Some(&stranger), &view());
            if rpc == ClusterRpc::Join {
                assert_eq!(got, Ok(()));
            } else {
                assert_eq!(got, Err(Refusal::NotANode), "{rpc:?}");
            }
            assert_eq!(admit(rpc, None, &view()), Err(Refusal::NoCertificate));
        }
    }

    #[test]
    fn members_call_everything_and_removed_nodes_nothing() {
        for rpc in ClusterRpc::ALL {
            assert_eq!(admit(rpc, Some(&Caller::Node(1)), &view()), Ok(()), "{rpc:?}");
            if rpc != ClusterRpc::Join {
                assert_eq!(admit(rpc, Some(&Caller::Node(4)), &view()), Err(Refusal::Removed(4)), "{rpc:?}");
            }
        }
        // A removal wins over a membership this node still holds.
        let mut v = view();
        v.removed.insert(2);
        assert_eq!(admit(ClusterRpc::AppendEntries, Some(&Caller::Node(2)), &v), Err(Refusal::Removed(2)));
    }

    #[test]
    fn an_admitted_node_may_add_itself_but_not_forward_until_it_is_a_member() {
        assert_eq!(admit(ClusterRpc::AddNode, Some(&Caller::Node(5)), &view()), Ok(()));
        assert_eq!(admit(ClusterRpc::Forward, Some(&Caller::Node(5)), &view()), Err(Refusal::NotAMember(5)));
        assert_eq!(admit(ClusterRpc::ReadIndex, Some(&Caller::Node(5)), &view()), Err(Refusal::NotAMember(5)));
        // An id this node never saw allocated: it cannot vouch for the node.
        assert_eq!(admit(ClusterRpc::AddNode, Some(&Caller::Node(6)), &view()), Err(Refusal::NotAdmitted(6)));
    }

    #[test]
    fn only_refusals_a_lagging_view_could_cause_ask_for_a_retry() {
        for (refusal, code) in [
            (Refusal::NoCertificate, tonic::Code::PermissionDenied),
            (Refusal::NotANode, tonic::Code::PermissionDenied),
            (Refusal::Removed(4), tonic::Code::PermissionDenied),
            (Refusal::NotAMember(5), tonic::Code::Unavailable),
            (Refusal::NotAdmitted(6), tonic::Code::Unavailable),
        ] {
            assert_eq!(refusal.status(ClusterRpc::AddNode).code(), code, "{refusal:?}");
        }
    }

    #[test]
    fn raft_traffic_from_a_member_this_view_has_not_caught_up_with_is_accepted() {
        // Node 5 was added after the membership this node holds: it may already lead.
        assert_eq!(admit(ClusterRpc::AppendEntries, Some(&Caller::Node(5)), &view()), Ok(()));
        assert_eq!(admit(ClusterRpc::Forward, Some(&Caller::Node(5)), &view()), Err(Refusal::NotAMember(5)));
        let fresh = View { members: None, removed: BTreeSet::new(), highest: 0, displaced: BTreeSet::new() };
        assert_eq!(admit(ClusterRpc::AppendEntries, Some(&Caller::Node(2)), &fresh), Ok(()));
        assert_eq!(admit(ClusterRpc::ReadIndex, Some(&Caller::Node(2)), &fresh), Err(Refusal::NotAMember(2)));
    }

    #[test]
    fn a_displaced_node_may_ask_for_the_lineage_and_file_its_divergence_and_nothing_else() {
        let mut v = view();
        v.removed.insert(7);
        v.displaced.insert(7);
        for rpc in ClusterRpc::ALL {
            let got = admit(rpc, Some(&Caller::Node(7)), &v);
            match rpc {
                ClusterRpc::Lineage | ClusterRpc::FileDivergence => assert_eq!(got, Ok(()), "{rpc:?}"),
                ClusterRpc::Join => assert_eq!(got, Ok(())),
                _ => assert_eq!(got, Err(Refusal::Removed(7)), "{rpc:?}"),
            }
        }
        // A node removed otherwise (by an operator) is refused those too.
        assert_eq!(admit(ClusterRpc::Lineage, Some(&Caller::Node(4)), &v), Err(Refusal::Removed(4)));
        assert_eq!(admit(ClusterRpc::FileDivergence, Some(&Caller::Node(4)), &v), Err(Refusal::Removed(4)));
    }
}
