//! Every state change a client can ask for. Ids are minted by the caller before the command is built.

use arca_types::{ObjectName, SecretString, VaultName, VersionId};
use serde::{Deserialize, Serialize};

use crate::records::{PurgeTarget, SecretRecord, SecretVersionRecord, Sku, Tags};

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
    RestoreSecret {
        vault: VaultName,
        secret: SecretRecord,
        versions: Vec<SecretVersionRecord>,
    },
    /// Issued by the leader's sweeper for a purge index entry whose time has come.
    PurgeDue {
        target: PurgeTarget,
        scheduled_purge_at: i64,
    },
}

impl Command {
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
            Command::PurgeDue { .. } => "PurgeDue",
        }
    }
}
