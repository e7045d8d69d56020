//! Every state change a client can ask for. Ids are minted by the caller before the command is built.

use arca_types::keys::{KeyOp, KeySpec};
use arca_types::{ObjectName, SecretBytes, SecretString, VaultName, VersionId};
use serde::{Deserialize, Serialize};

use crate::identity::{Credential, PrincipalId, PrincipalKind};
use crate::records::{KeyVersionRecord, PurgeTarget, RotationPolicy, SecretVersionRecord, Sku, Tags};
use arca_rbac::{RoleDefinition, Scope};
use arca_types::DisplayName;

/// A field that an update may leave alone, clear, or set.
pub type Patch<T> = Option<Option<T>>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    CreateVault {
        name: VaultName,
        id: [u8; 16],
        sku: Sku,
        retention_days: u32,
        purge_protection: bool,
        tags: Tags,
    },
    UpdateVault {
        name: VaultName,
        tags: Option<Tags>,
        purge_protection: Option<bool>,
    },
    DeleteVault {
        name: VaultName,
    },
    RecoverVault {
        name: VaultName,
    },
    PurgeVault {
        name: VaultName,
    },
    SetSecret {
        vault: VaultName,
        name: ObjectName,
        version: VersionId,
        value: SecretString,
        content_type: Option<String>,
        tags: Tags,
        enabled: bool,
        not_before: Option<i64>,
        expires: Option<i64>,
    },
    UpdateSecret {
        vault: VaultName,
        name: ObjectName,
        /// `None` updates the latest version.
        version: Option<VersionId>,
        content_type: Patch<String>,
        tags: Option<Tags>,
        enabled: Option<bool>,
        not_before: Patch<i64>,
        expires: Patch<i64>,
    },
    DeleteSecret {
        vault: VaultName,
        name: ObjectName,
    },
    RecoverSecret {
        vault: VaultName,
        name: ObjectName,
    },
    PurgeSecret {
        vault: VaultName,
        name: ObjectName,
    },
    /// Restores a backed-up secret under `name` with its versions in creation order.
    RestoreSecret {
        vault: VaultName,
        name: ObjectName,
        versions: Vec<SecretVersionRecord>,
    },
    /// Creates a key version: a new key, an import, or a rotation. The material was generated or
    /// imported (and checked) before the command was built, so applying stays deterministic.
    CreateKey {
        vault: VaultName,
        name: ObjectName,
        version: VersionId,
        spec: KeySpec,
        hsm: bool,
        material: SecretBytes,
        /// `None` gives every operation the key type allows (except `import`).
        key_ops: Option<Vec<KeyOp>>,
        tags: Tags,
        enabled: bool,
        not_before: Option<i64>,
        expires: Option<i64>,
        /// A rotation of this (latest) version: refused if another version landed first.
        rotate_from: Option<VersionId>,
    },
    UpdateKey {
        vault: VaultName,
        name: ObjectName,
        /// `None` updates the latest version.
        version: Option<VersionId>,
        key_ops: Option<Vec<KeyOp>>,
        tags: Option<Tags>,
        enabled: Option<bool>,
        not_before: Patch<i64>,
        expires: Patch<i64>,
    },
    DeleteKey {
        vault: VaultName,
        name: ObjectName,
    },
    RecoverKey {
        vault: VaultName,
        name: ObjectName,
    },
    PurgeKey {
        vault: VaultName,
        name: ObjectName,
    },
    /// Restores a backed-up key under `name` with its versions in creation order.
    RestoreKey {
        vault: VaultName,
        name: ObjectName,
        versions: Vec<KeyVersionRecord>,
        policy: Option<RotationPolicy>,
    },
    SetRotationPolicy {
        vault: VaultName,
        name: ObjectName,
        policy: RotationPolicy,
    },
    /// The leader's rotation loop records that a Notify action fired for a version.
    MarkKeyNotified {
        vault: VaultName,
        name: ObjectName,
        version: VersionId,
    },
    /// Issued by the leader's sweeper for a purge index entry whose time has come.
    PurgeDue {
        target: PurgeTarget,
        scheduled_purge_at: i64,
    },
    /// A new user, group, service principal or managed identity (ids minted by the caller).
    CreatePrincipal {
        id: PrincipalId,
        kind: PrincipalKind,
        name: DisplayName,
        app_id: Option<[u8; 16]>,
        credential: Option<Credential>,
    },
    DeletePrincipal {
        id: PrincipalId,
    },
    /// Adds a credential to a service principal, replacing those of its kind unless `append`.
    ResetCredential {
        principal: PrincipalId,
        credential: Credential,
        append: bool,
    },
    /// An agent registers a new certificate for itself (see `decide::identity::register_agent_certificate`).
    RegisterAgentCertificate {
        agent: PrincipalId,
        credential: Credential,
    },
    DeleteCredential {
        principal: PrincipalId,
        key_id: [u8; 16],
    },
    SetGroupMember {
        group: PrincipalId,
        member: PrincipalId,
        add: bool,
    },
    /// Every access token the principal was issued so far stops working.
    RevokePrincipalTokens {
        principal: PrincipalId,
    },
    CreateRoleAssignment {
        id: [u8; 16],
        principal: PrincipalId,
        role_id: String,
        scope: Scope,
    },
    DeleteRoleAssignment {
        id: [u8; 16],
    },
    /// Creates (or, with `update`, replaces) a custom role.
    PutRoleDefinition {
        role: RoleDefinition,
        update: bool,
    },
    DeleteRoleDefinition {
        id: String,
    },
    /// Replaces a vault's network rules.
    SetNetworkRules {
        name: VaultName,
        rules: crate::network::NetworkRules,
    },
}

impl Command {
    /// The secret or key this command changes, if it changes exactly one: the leader decides the
    /// writes to one object one at a time, so concurrent writers queue instead of conflicting.
    pub fn object(&self) -> Option<(crate::records::ObjectKind, &VaultName, &ObjectName)> {
        use crate::records::ObjectKind::{Key, Secret};
        match self {
            Command::SetSecret { vault, name, .. }
            | Command::UpdateSecret { vault, name, .. }
            | Command::DeleteSecret { vault, name }
            | Command::RecoverSecret { vault, name }
            | Command::PurgeSecret { vault, name }
            | Command::RestoreSecret { vault, name, .. } => Some((Secret, vault, name)),
            Command::CreateKey { vault, name, .. }
            | Command::UpdateKey { vault, name, .. }
            | Command::DeleteKey { vault, name }
            | Command::RecoverKey { vault, name }
            | Command::PurgeKey { vault, name }
            | Command::RestoreKey { vault, name, .. }
            | Command::SetRotationPolicy { vault, name, .. }
            | Command::MarkKeyNotified { vault, name, .. } => Some((Key, vault, name)),
            _ => None,
        }
    }

    /// A short name for logs and audit records. Never includes names or values.
    pub fn operation_name(&self) -> &'static str {
        match self {
            Command::CreateVault { .. } => "VaultCreate",
            Command::UpdateVault { .. } => "VaultUpdate",
            Command::DeleteVault { .. } => "VaultDelete",
            Command::RecoverVault { .. } => "VaultRecover",
            Command::PurgeVault { .. } => "VaultPurge",
            Command::SetSecret { .. } => "SecretSet",
            Command::UpdateSecret { .. } => "SecretUpdate",
            Command::DeleteSecret { .. } => "SecretDelete",
            Command::RecoverSecret { .. } => "SecretRecover",
            Command::PurgeSecret { .. } => "SecretPurge",
            Command::RestoreSecret { .. } => "SecretRestore",
            Command::CreateKey { rotate_from: Some(_), .. } => "KeyRotate",
            Command::CreateKey { .. } => "KeyCreate",
            Command::UpdateKey { .. } => "KeyUpdate",
            Command::DeleteKey { .. } => "KeyDelete",
            Command::RecoverKey { .. } => "KeyRecover",
            Command::PurgeKey { .. } => "KeyPurge",
            Command::RestoreKey { .. } => "KeyRestore",
            Command::SetRotationPolicy { .. } => "KeyRotationPolicySet",
            Command::MarkKeyNotified { .. } => "KeyNearExpiry",
            Command::PurgeDue { .. } => "PurgeDue",
            Command::CreatePrincipal { .. } => "PrincipalCreate",
            Command::DeletePrincipal { .. } => "PrincipalDelete",
            Command::ResetCredential { .. } => "CredentialReset",
            Command::DeleteCredential { .. } => "CredentialDelete",
            Command::RegisterAgentCertificate { .. } => "AgentCertificateRegister",
            Command::SetGroupMember { add: true, .. } => "GroupMemberAdd",
            Command::SetGroupMember { add: false, .. } => "GroupMemberRemove",
            Command::RevokePrincipalTokens { .. } => "PrincipalTokensRevoke",
            Command::CreateRoleAssignment { .. } => "RoleAssignmentCreate",
            Command::DeleteRoleAssignment { .. } => "RoleAssignmentDelete",
            Command::PutRoleDefinition { update: false, .. } => "RoleDefinitionCreate",
            Command::PutRoleDefinition { update: true, .. } => "RoleDefinitionUpdate",
            Command::DeleteRoleDefinition { .. } => "RoleDefinitionDelete",
            Command::SetNetworkRules { .. } => "VaultNetworkRulesSet",
        }
    }
}
