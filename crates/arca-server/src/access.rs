//! The access seam every RPC passes through: authenticate → authorize(principal, action, scope) → audit.
//!
//! Callers are root tokens (break glass: minted at init or from a quorum of unseal shares, allowed
//! everything) or principals signed in with an access token, whose every request is decided by
//! role-based access control (`arca-rbac`) against the role assignments in the replicated state,
//! read after the request's read barrier, so a change applies to the very next request on every node.

use arca_core::identity::{uuid, PrincipalId, PrincipalKind};
use arca_identity::AuthMethod;
use arca_rbac::{Decision, Operation, Scope};
use arca_types::limits::BEARER_TOKEN_BYTES_MAX;
use arca_types::{ArcaError, ErrorCode};

use crate::keyspace::Keyspace;

pub use arca_audit::{conformance, AuditDurability, AuditEvent, AuditSink, AuditStage, FileAuditSink};

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// A short, non-secret id of the credential (a root token's accessor, or an access token's id),
    /// safe for audit records and for revoking it.
    pub accessor: String,
    pub identity: Identity,
}

/// The kinds of caller. There is no free-form policy name: what a caller may do follows from which
/// of these it is, and for a principal from its role assignments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A root token: every action, everywhere.
    Root,
    /// A principal signed in with an access token.
    Principal {
        id: PrincipalId,
        kind: PrincipalKind,
        /// The groups it is a member of (their assignments apply to it).
        groups: Vec<PrincipalId>,
        app_id: Option<[u8; 16]>,
        method: AuthMethod,
    },
    /// The node's own jobs (purge sweeps, rotation, renewals).
    System,
    /// Another node of the cluster (by node id or join token id in the accessor).
    Node,
}

impl Principal {
    /// The stable id of who is calling, for audit records and the keys of idempotent requests: a
    /// principal's object id (the same across its tokens), or a root token's accessor.
    pub fn subject(&self) -> String {
        match &self.identity {
            Identity::Principal { id, .. } => uuid(id),
            Identity::Root => format!("root:{}", self.accessor),
            Identity::System => "system".to_owned(),
            Identity::Node => format!("node:{}", self.accessor),
        }
    }

    /// Azure's `principalType`, or Arca's own kind of caller.
    pub fn kind_name(&self) -> &'static str {
        match &self.identity {
            Identity::Principal { kind, .. } => kind.azure_name(),
            Identity::Root => "Root",
            Identity::System => "System",
            Identity::Node => "Node",
        }
    }

    pub fn method_name(&self) -> &'static str {
        match &self.identity {
            Identity::Principal { method, .. } => match method {
                AuthMethod::ClientSecret => "client_secret",
                AuthMethod::ClientAssertion => "client_assertion",
                AuthMethod::ClientCertificate => "client_certificate",
                AuthMethod::ManagedIdentity => "managed_identity",
                AuthMethod::Federated => "federated",
            },
            Identity::Root => "root_token",
            Identity::System | Identity::Node => "internal",
        }
    }

    pub fn client_id(&self) -> Option<String> {
        match &self.identity {
            Identity::Principal { app_id: Some(app), .. } => Some(uuid(app)),
            _ => None,
        }
    }
}

/// Every action a request can ask for, named as Azure names it: data actions on the contents of a
/// vault, control actions on vaults, access and the cluster (Arca's own under `Arca/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    VaultRead,
    VaultWrite,
    VaultDelete,
    VaultDeletedRead,
    VaultPurge,
    SecretReadMetadata,
    SecretGet,
    SecretSet,
    SecretUpdate,
    SecretDelete,
    SecretRecover,
    SecretPurge,
    SecretBackup,
    SecretRestore,
    KeyRead,
    KeyCreate,
    KeyImport,
    KeyUpdate,
    KeyDelete,
    KeyRecover,
    KeyPurge,
    KeyBackup,
    KeyRestore,
    KeyRotate,
    KeyPolicyRead,
    KeyPolicyWrite,
    KeyEncrypt,
    KeyDecrypt,
    KeyWrap,
    KeyUnwrap,
    KeySign,
    KeyVerify,
    RandomBytes,
    ClusterSeal,
    ClusterRotateKeyring,
    ClusterTokensList,
    ClusterTokensRevoke,
    ClusterRead,
    ClusterJoinTokenCreate,
    ClusterNodeRemove,
    ClusterFailover,
    ClusterDivergenceRead,
    ClusterDivergenceExport,
    PrincipalRead,
    PrincipalWrite,
    PrincipalDelete,
    PrincipalCredentialWrite,
    RoleDefinitionRead,
    RoleDefinitionWrite,
    RoleDefinitionDelete,
    RoleAssignmentRead,
    RoleAssignmentWrite,
    RoleAssignmentDelete,
}

impl Action {
    /// What the action is to role-based access control: a data action or a control action, by name.
    pub fn operation(self) -> Operation<'static> {
        use Action::*;
        let data = |name| Operation::Data(name);
        let control = |name| Operation::Control(name);
        match self {
            VaultRead => control("Microsoft.KeyVault/vaults/read"),
            VaultWrite => control("Microsoft.KeyVault/vaults/write"),
            VaultDelete => control("Microsoft.KeyVault/vaults/delete"),
            VaultDeletedRead => control("Microsoft.KeyVault/deletedVaults/read"),
            VaultPurge => control("Microsoft.KeyVault/locations/deletedVaults/purge/action"),
            SecretReadMetadata => data("Microsoft.KeyVault/vaults/secrets/readMetadata/action"),
            SecretGet => data("Microsoft.KeyVault/vaults/secrets/getSecret/action"),
            SecretSet => data("Microsoft.KeyVault/vaults/secrets/setSecret/action"),
            SecretUpdate => data("Microsoft.KeyVault/vaults/secrets/update/action"),
            SecretDelete => data("Microsoft.KeyVault/vaults/secrets/delete"),
            SecretRecover => data("Microsoft.KeyVault/vaults/secrets/recover/action"),
            SecretPurge => data("Microsoft.KeyVault/vaults/secrets/purge/action"),
            SecretBackup => data("Microsoft.KeyVault/vaults/secrets/backup/action"),
            SecretRestore => data("Microsoft.KeyVault/vaults/secrets/restore/action"),
            KeyRead => data("Microsoft.KeyVault/vaults/keys/read"),
            KeyCreate => data("Microsoft.KeyVault/vaults/keys/create/action"),
            KeyImport => data("Microsoft.KeyVault/vaults/keys/import/action"),
            KeyUpdate => data("Microsoft.KeyVault/vaults/keys/update/action"),
            KeyDelete => data("Microsoft.KeyVault/vaults/keys/delete"),
            KeyRecover => data("Microsoft.KeyVault/vaults/keys/recover/action"),
            KeyPurge => data("Microsoft.KeyVault/vaults/keys/purge/action"),
            KeyBackup => data("Microsoft.KeyVault/vaults/keys/backup/action"),
            KeyRestore => data("Microsoft.KeyVault/vaults/keys/restore/action"),
            KeyRotate => data("Microsoft.KeyVault/vaults/keys/rotate/action"),
            KeyPolicyRead => data("Microsoft.KeyVault/vaults/keyrotationpolicies/read"),
            KeyPolicyWrite => data("Microsoft.KeyVault/vaults/keyrotationpolicies/write"),
            KeyEncrypt => data("Microsoft.KeyVault/vaults/keys/encrypt/action"),
            KeyDecrypt => data("Microsoft.KeyVault/vaults/keys/decrypt/action"),
            KeyWrap => data("Microsoft.KeyVault/vaults/keys/wrap/action"),
            KeyUnwrap => data("Microsoft.KeyVault/vaults/keys/unwrap/action"),
            KeySign => data("Microsoft.KeyVault/vaults/keys/sign/action"),
            KeyVerify => data("Microsoft.KeyVault/vaults/keys/verify/action"),
            RandomBytes => control("Arca/rng/action"),
            ClusterSeal => control("Arca/cluster/seal/action"),
            ClusterRotateKeyring => control("Arca/cluster/keyring/rotate/action"),
            ClusterTokensList => control("Arca/cluster/tokens/list/action"),
            ClusterTokensRevoke => control("Arca/cluster/tokens/delete"),
            ClusterRead => control("Arca/cluster/read"),
            ClusterJoinTokenCreate => control("Arca/cluster/joinTokens/write"),
            ClusterNodeRemove => control("Arca/cluster/nodes/delete"),
            ClusterFailover => control("Arca/cluster/failover/action"),
            ClusterDivergenceRead => control("Arca/cluster/divergence/list/action"),
            ClusterDivergenceExport => control("Arca/cluster/divergence/export/action"),
            PrincipalRead => control("Arca/principals/read"),
            PrincipalWrite => control("Arca/principals/write"),
            PrincipalDelete => control("Arca/principals/delete"),
            PrincipalCredentialWrite => control("Arca/principals/credentials/write"),
            RoleDefinitionRead => control("Microsoft.Authorization/roleDefinitions/read"),
            RoleDefinitionWrite => control("Microsoft.Authorization/roleDefinitions/write"),
            RoleDefinitionDelete => control("Microsoft.Authorization/roleDefinitions/delete"),
            RoleAssignmentRead => control("Microsoft.Authorization/roleAssignments/read"),
            RoleAssignmentWrite => control("Microsoft.Authorization/roleAssignments/write"),
            RoleAssignmentDelete => control("Microsoft.Authorization/roleAssignments/delete"),
        }
    }

    /// The action's full name, as audit records and refusals give it.
    pub fn azure_name(self) -> &'static str {
        self.operation().name()
    }

    /// Whether the action changes state: its request is audited durably before it acts.
    pub fn is_mutation(self) -> bool {
        use Action::*;
        !matches!(
            self,
            VaultRead
                | VaultDeletedRead
                | SecretReadMetadata
                | SecretGet
                | SecretBackup
                | KeyRead
                | KeyBackup
                | KeyPolicyRead
                | KeyEncrypt
                | KeyDecrypt
                | KeyWrap
                | KeyUnwrap
                | KeySign
                | KeyVerify
                | RandomBytes
                | ClusterRead
                | ClusterTokensList
                | ClusterDivergenceRead
                | PrincipalRead
                | RoleDefinitionRead
                | RoleAssignmentRead
        )
    }

    /// Every action (for the test that every RPC maps to exactly one and every one is known).
    pub const ALL: &'static [Action] = &[
        Action::VaultRead,
        Action::VaultWrite,
        Action::VaultDelete,
        Action::VaultDeletedRead,
        Action::VaultPurge,
        Action::SecretReadMetadata,
        Action::SecretGet,
        Action::SecretSet,
        Action::SecretUpdate,
        Action::SecretDelete,
        Action::SecretRecover,
        Action::SecretPurge,
        Action::SecretBackup,
        Action::SecretRestore,
        Action::KeyRead,
        Action::KeyCreate,
        Action::KeyImport,
        Action::KeyUpdate,
        Action::KeyDelete,
        Action::KeyRecover,
        Action::KeyPurge,
        Action::KeyBackup,
        Action::KeyRestore,
        Action::KeyRotate,
        Action::KeyPolicyRead,
        Action::KeyPolicyWrite,
        Action::KeyEncrypt,
        Action::KeyDecrypt,
        Action::KeyWrap,
        Action::KeyUnwrap,
        Action::KeySign,
        Action::KeyVerify,
        Action::RandomBytes,
        Action::ClusterSeal,
        Action::ClusterRotateKeyring,
        Action::ClusterTokensList,
        Action::ClusterTokensRevoke,
        Action::ClusterRead,
        Action::ClusterJoinTokenCreate,
        Action::ClusterNodeRemove,
        Action::ClusterFailover,
        Action::ClusterDivergenceRead,
        Action::ClusterDivergenceExport,
        Action::PrincipalRead,
        Action::PrincipalWrite,
        Action::PrincipalDelete,
        Action::PrincipalCredentialWrite,
        Action::RoleDefinitionRead,
        Action::RoleDefinitionWrite,
        Action::RoleDefinitionDelete,
        Action::RoleAssignmentRead,
        Action::RoleAssignmentWrite,
        Action::RoleAssignmentDelete,
    ];
}

/// What allowed a request: the caller is root, or this assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    Root,
    Assignment {
        id: String,
        role: String,
    },
    /// A list: the caller holds the action on some of the objects listed, each by an assignment at
    /// that object, and sees only those.
    Objects,
}

pub trait Authenticator: Send + Sync {
    /// Who holds `bearer`, checked against the local replica at `now`.
    /// `presented` is the SHA-256 of the client certificate the connection presented, if any.
    fn authenticate(
        &self,
        keyspace: &Keyspace,
        bearer: Option<&str>,
        presented: Option<&[u8; 32]>,
        now: i64,
    ) -> Result<Principal, ArcaError>;
}

pub trait Authorizer: Send + Sync {
    /// Whether `principal` may perform `action` at `scope` (naming `assigned_role` when the action
    /// writes or deletes a role assignment), against the local replica.
    fn authorize(
        &self,
        keyspace: &Keyspace,
        principal: &Principal,
        action: Action,
        scope: &Scope,
        assigned_role: Option<&str>,
    ) -> Result<Grant, ArcaError>;
}

fn unauthorized(why: &str) -> ArcaError {
    ArcaError::new(ErrorCode::Unauthorized, format!("{why}; pass `authorization: Bearer <token>` (ARCA_TOKEN)"))
}

/// Root tokens (looked up by keyed hash) and access tokens (verified with the cluster's token keys,
/// then their principal looked up: it must exist, and the token must not predate a revocation).
pub struct TokenAuthenticator;

impl Authenticator for TokenAuthenticator {
    fn authenticate(
        &self,
        keyspace: &Keyspace,
        bearer: Option<&str>,
        presented: Option<&[u8; 32]>,
        now: i64,
    ) -> Result<Principal, ArcaError> {
        let token = bearer.ok_or_else(|| unauthorized("the request carries no token"))?;
        if token.len() > BEARER_TOKEN_BYTES_MAX {
            return Err(unauthorized("the token is not valid"));
        }
        if !arca_identity::access_token::looks_like_access_token(token) {
            return match keyspace.token(token)? {
                Some(record) if record.policy == crate::keyspace::ROOT_POLICY => {
                    Ok(Principal { accessor: record.accessor, identity: Identity::Root })
                }
                _ => Err(unauthorized("the token is not valid")),
            };
        }
        crate::identity::principal_of_access_token(keyspace, token, presented, now)
    }
}

/// Role-based access control over the assignments in the replicated state. Root is allowed
/// everything; the node's own callers never come through here.
pub struct RbacAuthorizer;

impl Authorizer for RbacAuthorizer {
    fn authorize(
        &self,
        keyspace: &Keyspace,
        principal: &Principal,
        action: Action,
        scope: &Scope,
        assigned_role: Option<&str>,
    ) -> Result<Grant, ArcaError> {
        let (id, groups) = match &principal.identity {
            Identity::Root => return Ok(Grant::Root),
            Identity::Principal { id, groups, .. } => (id, groups),
            Identity::System | Identity::Node => {
                return Err(ArcaError::internal("a node's own request reached the authorizer"));
            }
        };
        let mut principals = vec![*id];
        principals.extend(groups.iter().copied());
        let assignments: Vec<arca_rbac::Assignment> =
            keyspace.assignments_held(&principals)?.iter().map(|a| a.to_rbac()).collect();
        let ids: Vec<String> = principals.iter().map(uuid).collect();
        let request =
            arca_rbac::AccessRequest { principals: &ids, operation: action.operation(), scope, assigned_role };
        // Each role once per decision, however many assignments name it.
        let mut roles = std::collections::BTreeMap::new();
        for a in &assignments {
            if !roles.contains_key(&a.role_id) {
                roles.insert(a.role_id.clone(), crate::identity::role(keyspace, &a.role_id));
            }
        }
        let role = |role_id: &str| roles.get(role_id).cloned().flatten();
        match arca_rbac::evaluate(&request, &assignments, &role) {
            Decision::Allowed { assignment_id, role_name, .. } => {
                Ok(Grant::Assignment { id: assignment_id, role: role_name })
            }
            Decision::Denied => Err(ArcaError::new(
                ErrorCode::ForbiddenByRbac,
                format!(
                    "the caller ({}) is not allowed {} at {}; a role assignment that allows it is needed \
                     (arca role assignment create)",
                    uuid(id),
                    action.azure_name(),
                    scope.redacted()
                ),
            )),
        }
    }
}

/// Who a bearer token names and what a principal may do, remembered while the replica stays as it
/// was, so the hot path neither verifies a signature nor reads and opens a principal or its
/// assignments twice.
///
/// Everything these depend on (principals, credentials, assignments, roles, revocations, token keys)
/// changes only by an applied log entry or an installed snapshot, and each moves the applied index.
/// An entry is kept with the applied index read *before* it was computed and is used only while the
/// index is still that one, so it never answers for a state newer than the one it saw; a request's
/// read barrier raises the index past every change that preceded it, so a revocation still applies
/// to the very next request. A token's expiry is checked on every use.
#[derive(Default)]
pub struct AccessCache {
    state: std::sync::Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    at: u64,
    /// By SHA-256 of the token and the certificate the connection presented: who, and until when.
    tokens: std::collections::HashMap<TokenKey, (Principal, Option<i64>)>,
    grants: std::collections::HashMap<GrantKey, Result<Grant, ArcaError>>,
}

type TokenKey = ([u8; 32], Option<[u8; 32]>);

#[derive(PartialEq, Eq, Hash)]
struct GrantKey {
    principal: PrincipalId,
    groups: Vec<PrincipalId>,
    action: Action,
    scope: String,
    assigned_role: Option<String>,
}

/// Entries kept at most; past it the cache starts again (a bound, not a policy).
const ACCESS_CACHE_ENTRIES_MAX: usize = 16_384;

impl AccessCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cache for storing what was computed from applied index `at`: emptied when the index has
    /// moved on since; `None` when it has moved past `at` already (what was computed is not kept).
    fn for_storing(&self, at: u64) -> Option<std::sync::MutexGuard<'_, CacheState>> {
        let mut state = self.lock();
        if state.at < at {
            state.tokens.clear();
            state.grants.clear();
            state.at = at;
        }
        (state.at == at).then_some(state)
    }

    /// Who `bearer` names at applied index `at`, from the cache or from `compute`.
    pub fn principal(
        &self,
        at: u64,
        bearer: &str,
        presented: Option<&[u8; 32]>,
        now: i64,
        compute: impl FnOnce() -> Result<Principal, ArcaError>,
    ) -> Result<Principal, ArcaError> {
        let key = (arca_crypto::cluster_pki::sha256(bearer.as_bytes()), presented.copied());
        {
            let state = self.lock();
            if let Some((principal, expires)) = state.tokens.get(&key).filter(|_| state.at == at) {
                if expires.is_none_or(|exp| now < exp.saturating_add(arca_types::limits::ACCESS_TOKEN_CLOCK_SKEW_S)) {
                    return Ok(principal.clone());
                }
            }
        }
        let principal = compute()?;
        let expires = arca_identity::access_token::looks_like_access_token(bearer)
            .then(|| arca_identity::access_token::expiry_of_verified(bearer))
            .flatten();
        if let Some(mut state) = self.for_storing(at) {
            if state.tokens.len() >= ACCESS_CACHE_ENTRIES_MAX {
                state.tokens.clear();
            }
            state.tokens.insert(key, (principal.clone(), expires));
        }
        Ok(principal)
    }

    /// What `principal` may do, at applied index `at`, from the cache or from `compute`.
    pub fn grant(
        &self,
        at: u64,
        principal: &Principal,
        action: Action,
        scope: &Scope,
        assigned_role: Option<&str>,
        compute: impl FnOnce() -> Result<Grant, ArcaError>,
    ) -> Result<Grant, ArcaError> {
        let Identity::Principal { id, groups, .. } = &principal.identity else { return compute() };
        let key = GrantKey {
            principal: *id,
            groups: groups.clone(),
            action,
            scope: scope.to_string(),
            assigned_role: assigned_role.map(str::to_owned),
        };
        {
            let state = self.lock();
            if let Some(grant) = state.grants.get(&key).filter(|_| state.at == at) {
                return grant.clone();
            }
        }
        let grant = compute();
        if let Some(mut state) = self.for_storing(at) {
            if state.grants.len() >= ACCESS_CACHE_ENTRIES_MAX {
                state.grants.clear();
            }
            state.grants.insert(key, grant.clone());
        }
        grant
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;

    fn principal(id: u8) -> Principal {
        Principal {
            accessor: format!("a{id}"),
            identity: Identity::Principal {
                id: [id; 16],
                kind: PrincipalKind::ServicePrincipal,
                groups: vec![],
                app_id: None,
                method: AuthMethod::ClientSecret,
            },
        }
    }

    #[test]
    fn a_decision_is_reused_only_at_the_applied_index_it_was_computed_at() {
        let cache = AccessCache::default();
        let computed = std::cell::Cell::new(0);
        let compute = |p: Principal| {
            computed.set(computed.get() + 1);
            move || Ok(p)
        };
        assert_eq!(cache.principal(5, "root", None, 0, compute(principal(1))).unwrap(), principal(1));
        assert_eq!(cache.principal(5, "root", None, 0, compute(principal(2))).unwrap(), principal(1), "reused at 5");
        assert_eq!(computed.get(), 2);
        // Another certificate on the connection is another key.
        assert_eq!(cache.principal(5, "root", Some(&[1; 32]), 0, compute(principal(3))).unwrap(), principal(3));
        // The index moved (something was applied): computed again.
        assert_eq!(cache.principal(6, "root", None, 0, compute(principal(4))).unwrap(), principal(4));
        // A request that read an older index before the cache moved on computes and keeps nothing.
        assert_eq!(cache.principal(5, "root", None, 0, compute(principal(5))).unwrap(), principal(5));
        assert_eq!(cache.principal(6, "root", None, 0, compute(principal(6))).unwrap(), principal(4));
        // A failure is never kept.
        let fail = || Err(ArcaError::new(ErrorCode::Unauthorized, "no"));
        assert!(cache.principal(6, "other", None, 0, fail).is_err());
        assert_eq!(cache.principal(6, "other", None, 0, compute(principal(7))).unwrap(), principal(7));
    }

    #[test]
    fn an_access_token_is_reused_only_until_it_expires() {
        use base64::Engine;
        let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let token = format!("{}.{}.sig", b64(r#"{"alg":"EdDSA"}"#), b64(r#"{"exp":1000}"#));
        let cache = AccessCache::default();
        cache.principal(1, &token, None, 900, || Ok(principal(1))).unwrap();
        let skew = arca_types::limits::ACCESS_TOKEN_CLOCK_SKEW_S;
        let again = cache.principal(1, &token, None, 1000 + skew - 1, || Ok(principal(2))).unwrap();
        assert_eq!(again, principal(1));
        let expired =
            cache.principal(1, &token, None, 1000 + skew, || Err(ArcaError::new(ErrorCode::Unauthorized, "x")));
        assert!(expired.is_err(), "past its expiry the token is checked again");
    }

    #[test]
    fn grants_are_kept_per_principal_action_and_scope() {
        let cache = AccessCache::default();
        let scope = Scope::parse("/vaults/aaa").unwrap();
        let other = Scope::parse("/vaults/bbb").unwrap();
        let allowed = || Ok(Grant::Assignment { id: "x".into(), role: "r".into() });
        let denied = || Err(ArcaError::new(ErrorCode::ForbiddenByRbac, "no"));
        assert!(cache.grant(3, &principal(1), Action::SecretGet, &scope, None, allowed).is_ok());
        assert!(cache.grant(3, &principal(1), Action::SecretGet, &scope, None, denied).is_ok(), "reused");
        assert!(cache.grant(3, &principal(1), Action::SecretGet, &other, None, denied).is_err());
        assert!(cache.grant(3, &principal(2), Action::SecretGet, &scope, None, denied).is_err());
        assert!(cache.grant(3, &principal(1), Action::SecretSet, &scope, None, denied).is_err());
        assert!(cache.grant(4, &principal(1), Action::SecretGet, &scope, None, denied).is_err(), "index moved");
        let root = Principal { accessor: "r".into(), identity: Identity::Root };
        assert_eq!(cache.grant(4, &root, Action::SecretGet, &scope, None, || Ok(Grant::Root)).unwrap(), Grant::Root);
    }
}
