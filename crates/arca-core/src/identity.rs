//! Who can call Arca, as replicated state: principals (users, groups, service principals, managed
//! identities) with their credentials, custom role definitions, and role assignments.
//!
//! Principals have immutable random ids (shown as UUIDs); display names are unique by their
//! [`DisplayName::key`]. Credentials are stored only as what checks them: a keyed hash of a secret,
//! or a certificate's SHA-256 thumbprint with its public key.

use arca_rbac::{RoleDefinition, Scope};
use arca_types::{ArcaError, DisplayName};
use serde::{Deserialize, Serialize};

use crate::view::Page;

/// A principal's id: 16 random bytes, shown as a UUID.
pub type PrincipalId = [u8; 16];

/// The kinds of principal, with Azure's `principalType` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PrincipalKind {
    User,
    Group,
    ServicePrincipal,
    ManagedIdentity,
    /// A node-local identity agent (`arca agent`), Arca's own kind: it signs in with a certificate
    /// Arca registered for it and obtains tokens for the managed identities bound to it.
    Agent,
}

impl PrincipalKind {
    pub fn azure_name(self) -> &'static str {
        match self {
            PrincipalKind::User => "User",
            PrincipalKind::Group => "Group",
            PrincipalKind::ServicePrincipal => "ServicePrincipal",
            PrincipalKind::ManagedIdentity => "ManagedIdentity",
            PrincipalKind::Agent => "Agent",
        }
    }

    /// Whether the principal signs in with its own credentials (and so has a client id).
    pub fn is_application(self) -> bool {
        matches!(self, PrincipalKind::ServicePrincipal | PrincipalKind::ManagedIdentity | PrincipalKind::Agent)
    }

    /// Whether it holds secrets and certificates of its own (a managed identity never does: an agent
    /// obtains its tokens).
    pub fn has_own_credentials(self) -> bool {
        matches!(self, PrincipalKind::ServicePrincipal | PrincipalKind::Agent)
    }
}

/// What proves a principal's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CredentialKind {
    /// A client secret Arca generated: only a keyed hash of it is kept, and its first three
    /// characters, to tell secrets apart (as Azure shows a hint).
    Secret { hash: [u8; 32], hint: String },
    /// A certificate, by its SHA-256 thumbprint (`x5t#S256`), and its public key (SPKI DER), which a
    /// client assertion must be signed with: matched as a whole key, never by name or serial.
    Certificate { thumbprint_sha256: [u8; 32], spki_der: Vec<u8> },
    /// Of a managed identity: `agent` may obtain its tokens for a local process it attests as running
    /// as `uid` and `executable` (each, when set, must match).
    AgentBinding { agent: PrincipalId, uid: Option<u32>, executable: Option<String> },
    /// Tokens another identity provider issues: from `issuer` (exactly), for `subject` (exactly) and
    /// one of `audiences`, signed by a key of the provider's `jwks` (kept as given, checked when set).
    /// Written before bound claims existed, and read as a [`FederatedTrust`] with none; new
    /// credentials are [`CredentialKind::Federation`]. (Records are postcard: a variant never gains
    /// a field.)
    Federated { name: String, issuer: String, subject: String, audiences: Vec<String>, jwks: String },
    /// Trust in another identity provider's tokens, with the claims they must also carry.
    Federation(Box<FederatedTrust>),
    /// Of a managed identity: an agent binding ([`CredentialKind::AgentBinding`]'s newer form) that
    /// may also require the workload to present a Kubernetes service account token.
    AgentWorkload(Box<WorkloadBinding>),
}

/// Which local workload an agent may obtain a managed identity's tokens for: one it attests as
/// running as `uid` and `executable` (each, when set, must match) that, with `service_account`, also
/// presents a token of that Kubernetes service account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadBinding {
    pub agent: PrincipalId,
    pub uid: Option<u32>,
    pub executable: Option<String>,
    pub service_account: Option<ServiceAccount>,
}

/// A Kubernetes service account, as its projected tokens name it: issued by `issuer` (the cluster's
/// service account issuer) for `subject` (`system:serviceaccount:NAMESPACE:NAME`) and `audience`,
/// signed by a key of `jwks` (or, when empty, of the keys the issuer publishes by discovery).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAccount {
    pub issuer: String,
    pub subject: String,
    pub audience: String,
    pub jwks: String,
}

/// An agent binding's fields, whichever variant holds them.
#[derive(Debug, Clone, Copy)]
pub struct BindingRef<'a> {
    pub agent: &'a PrincipalId,
    pub uid: Option<u32>,
    pub executable: Option<&'a str>,
    pub service_account: Option<&'a ServiceAccount>,
}

/// What a federated credential trusts: tokens from `issuer` (exactly), for `subject` (exactly) and
/// one of `audiences`, signed by a key of `jwks` (or, when it is empty, of the keys the issuer
/// publishes by discovery), carrying every one of `claims`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FederatedTrust {
    pub name: String,
    pub issuer: String,
    pub subject: String,
    pub audiences: Vec<String>,
    pub jwks: String,
    pub claims: Vec<BoundClaim>,
}

/// A claim a federated token must carry: `claim` names it (a top-level name, or a JSON pointer such
/// as `/kubernetes.io/namespace`), and a string claim must equal one of `values`, an array claim hold
/// one of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundClaim {
    pub claim: String,
    pub values: Vec<String>,
}

/// A federated credential's fields, whichever variant holds them.
#[derive(Debug, Clone, Copy)]
pub struct TrustRef<'a> {
    pub name: &'a str,
    pub issuer: &'a str,
    pub subject: &'a str,
    pub audiences: &'a [String],
    pub jwks: &'a str,
    pub claims: &'a [BoundClaim],
}

impl CredentialKind {
    /// Which kind, for "at most so many of a kind" and "replace those of its kind".
    pub fn family(&self) -> &'static str {
        match self {
            CredentialKind::Secret { .. } => "client secrets",
            CredentialKind::Certificate { .. } => "certificates",
            CredentialKind::AgentBinding { .. } | CredentialKind::AgentWorkload(_) => "agent bindings",
            CredentialKind::Federated { .. } | CredentialKind::Federation(_) => "federated credentials",
        }
    }

    /// An agent binding's fields (of either variant).
    pub fn binding(&self) -> Option<BindingRef<'_>> {
        match self {
            CredentialKind::AgentBinding { agent, uid, executable } => {
                Some(BindingRef { agent, uid: *uid, executable: executable.as_deref(), service_account: None })
            }
            CredentialKind::AgentWorkload(b) => Some(BindingRef {
                agent: &b.agent,
                uid: b.uid,
                executable: b.executable.as_deref(),
                service_account: b.service_account.as_ref(),
            }),
            _ => None,
        }
    }

    /// A federated credential's fields (of either variant).
    pub fn trust(&self) -> Option<TrustRef<'_>> {
        match self {
            CredentialKind::Federated { name, issuer, subject, audiences, jwks } => {
                Some(TrustRef { name, issuer, subject, audiences, jwks, claims: &[] })
            }
            CredentialKind::Federation(t) => Some(TrustRef {
                name: &t.name,
                issuer: &t.issuer,
                subject: &t.subject,
                audiences: &t.audiences,
                jwks: &t.jwks,
                claims: &t.claims,
            }),
            _ => None,
        }
    }
}

/// One credential of a principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub key_id: [u8; 16],
    pub kind: CredentialKind,
    /// Valid from `start` until `end` (Unix seconds).
    pub start: i64,
    pub end: i64,
}

impl Credential {
    pub fn is_secret(&self) -> bool {
        matches!(self.kind, CredentialKind::Secret { .. })
    }

    pub fn is_valid_at(&self, now: i64) -> bool {
        self.start <= now && now < self.end
    }
}

impl PrincipalRecord {
    /// The (issuer, subject) pairs of its federated credentials: for a user, the sign-in names of a
    /// person at a provider; for a group, the provider's group names it stands for.
    pub fn external_names(&self) -> impl Iterator<Item = (&str, &str)> {
        self.credentials.iter().filter_map(|c| c.kind.trust().map(|t| (t.issuer, t.subject)))
    }

    /// Whether it holds a federated credential for `issuer` and `subject` that is valid at `now`.
    pub fn holds_external_at(&self, issuer: &str, subject: &str, now: i64) -> bool {
        self.credentials
            .iter()
            .any(|c| c.is_valid_at(now) && c.kind.trust().is_some_and(|t| t.issuer == issuer && t.subject == subject))
    }

    /// The issuers whose own keys (by discovery) it signs in through, at `now`: the providers
    /// whose groups claims count for it.
    pub fn discovered_issuers_at(&self, now: i64) -> impl Iterator<Item = &str> {
        self.credentials
            .iter()
            .filter(move |c| c.is_valid_at(now))
            .filter_map(|c| c.kind.trust().filter(|t| t.jwks.is_empty()).map(|t| t.issuer))
    }

    /// Whether it holds, at `now`, a federated credential naming one of `issuers` (a group still
    /// standing for a group of one of those providers).
    pub fn linked_to_any_at(&self, issuers: &[&str], now: i64) -> bool {
        self.credentials
            .iter()
            .any(|c| c.is_valid_at(now) && c.kind.trust().is_some_and(|t| issuers.contains(&t.issuer)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrincipalRecord {
    pub id: PrincipalId,
    pub kind: PrincipalKind,
    pub name: DisplayName,
    /// The client id (Azure's `appId`) of a service principal or managed identity.
    pub app_id: Option<[u8; 16]>,
    pub created: i64,
    /// Every access token carries the generation it was issued under; revoking every token of the
    /// principal moves it on, and tokens of an older one are refused. A counter, not a time, so no
    /// node's clock decides what a revocation covers.
    pub token_generation: u64,
    pub credentials: Vec<Credential>,
    /// The groups this principal is a direct member of.
    pub groups: Vec<PrincipalId>,
    /// A group's direct members.
    pub members: Vec<PrincipalId>,
}

/// A role given to a principal at a scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignmentRecord {
    pub id: [u8; 16],
    pub principal: PrincipalId,
    pub principal_kind: PrincipalKind,
    pub role_id: String,
    pub scope: Scope,
    pub created: i64,
}

impl AssignmentRecord {
    /// As the evaluator takes it.
    pub fn to_rbac(&self) -> arca_rbac::Assignment {
        arca_rbac::Assignment {
            id: uuid(&self.id),
            principal_id: uuid(&self.principal),
            role_id: self.role_id.clone(),
            scope: self.scope.clone(),
        }
    }
}

/// Lookups of identity state, beside [`crate::StateView`]'s vaults and objects.
pub trait IdentityView {
    fn principal(&self, id: &PrincipalId) -> Result<Option<PrincipalRecord>, ArcaError>;
    /// The principal holding a display name (by its key).
    fn principal_named(&self, name: &DisplayName) -> Result<Option<PrincipalId>, ArcaError>;
    /// The service principal or managed identity with this client id.
    fn principal_by_app(&self, app_id: &[u8; 16]) -> Result<Option<PrincipalId>, ArcaError>;
    fn principals(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<PrincipalRecord>, ArcaError>;
    /// The user (or group) last given a federated credential for `issuer` and `subject`: it may have
    /// lost it since, so the caller checks the record.
    fn principal_by_external(
        &self,
        kind: PrincipalKind,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<PrincipalId>, ArcaError>;
    fn assignment(&self, id: &[u8; 16]) -> Result<Option<AssignmentRecord>, ArcaError>;
    /// The assignment of `role_id` to `principal` at `scope`, if there is one (there is at most one).
    fn assignment_of(
        &self,
        principal: &PrincipalId,
        role_id: &str,
        scope: &Scope,
    ) -> Result<Option<[u8; 16]>, ArcaError>;
    /// Every assignment a principal holds directly.
    fn assignments_of(&self, principal: &PrincipalId) -> Result<Vec<AssignmentRecord>, ArcaError>;
    /// Whether any assignment names the role.
    fn role_in_use(&self, role_id: &str) -> Result<bool, ArcaError>;
    /// Every assignment at a vault or at one of its objects.
    fn assignments_within(&self, vault: &arca_types::VaultName) -> Result<Vec<AssignmentRecord>, ArcaError>;
    fn assignments(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<AssignmentRecord>, ArcaError>;
    /// A custom role by id (built-in roles come from `arca_rbac`).
    fn custom_role(&self, id: &str) -> Result<Option<RoleDefinition>, ArcaError>;
    /// The custom role with this name (compared without case).
    fn custom_role_named(&self, name: &str) -> Result<Option<String>, ArcaError>;
    fn custom_roles(&self) -> Result<Vec<RoleDefinition>, ArcaError>;
}

/// A role by id, built-in or custom.
pub fn role(view: &dyn IdentityView, id: &str) -> Result<Option<RoleDefinition>, ArcaError> {
    match arca_rbac::role::find_built_in(id) {
        Some(r) if r.id.eq_ignore_ascii_case(id) => Ok(Some(r.clone())),
        _ => view.custom_role(&id.to_ascii_lowercase()),
    }
}

/// 16 bytes as a lowercase UUID (`8-4-4-4-12`).
pub fn uuid(bytes: &[u8; 16]) -> String {
    let h: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// A UUID (any case, with or without hyphens in the usual places) as 16 bytes.
pub fn parse_uuid(field: &str, raw: &str) -> Result<[u8; 16], ArcaError> {
    let bad = || ArcaError::bad_parameter(field, format!("{field} must be a UUID (8-4-4-4-12 hexadecimal digits)"));
    let guid = arca_rbac::role::parse_guid(raw).ok_or_else(bad)?;
    let hex: String = guid.chars().filter(|c| *c != '-').collect();
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_round_trip_and_bad_ones_are_refused() {
        let id = [0xab; 16];
        assert_eq!(uuid(&id), "abababab-abab-abab-abab-abababababab");
        assert_eq!(parse_uuid("id", &uuid(&id)).unwrap(), id);
        assert_eq!(parse_uuid("id", "ABABABAB-ABAB-ABAB-ABAB-ABABABABABAB").unwrap(), id);
        for bad in ["", "abababab", "abababab-abab-abab-abab-ababababababx", "gbababab-abab-abab-abab-abababababab"] {
            assert!(parse_uuid("id", bad).is_err(), "{bad}");
        }
    }
}
