//! The records Arca keeps for vaults and secrets. Each is stored encrypted by the keyspace layer.

use std::collections::BTreeMap;

use arca_types::keys::{KeyOp, KeySpec};
use arca_types::limits::SECONDS_PER_DAY;
use arca_types::{ObjectName, SecretBytes, SecretString, VaultName, VersionId};
use serde::{Deserialize, Serialize};

pub type Tags = BTreeMap<String, String>;

/// The vault tier. Premium will allow HSM-backed keys once they exist; it is recorded now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sku {
    Standard,
    Premium,
}

/// When an object was soft-deleted and when it will be purged by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deletion {
    pub deleted_at: i64,
    pub scheduled_purge_at: i64,
}

impl Deletion {
    pub fn starting(now: i64, retention_days: u32) -> Self {
        Self { deleted_at: now, scheduled_purge_at: now + i64::from(retention_days) * SECONDS_PER_DAY }
    }
}

/// Azure's recovery levels that Arca can produce (soft delete is always on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecoveryLevel {
    RecoverablePurgeable,
    Recoverable,
    CustomizedRecoverablePurgeable,
    CustomizedRecoverable,
}

impl RecoveryLevel {
    pub fn azure_name(self) -> &'static str {
        match self {
            RecoveryLevel::RecoverablePurgeable => "Recoverable+Purgeable",
            RecoveryLevel::Recoverable => "Recoverable",
            RecoveryLevel::CustomizedRecoverablePurgeable => "CustomizedRecoverable+Purgeable",
            RecoveryLevel::CustomizedRecoverable => "CustomizedRecoverable",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultRecord {
    /// Random, minted at creation: a purged and recreated vault gets new keys and new name hashes.
    pub id: [u8; 16],
    pub name: VaultName,
    pub sku: Sku,
    pub retention_days: u32,
    pub purge_protection: bool,
    pub tags: Tags,
    pub created: i64,
    pub updated: i64,
    pub deleted: Option<Deletion>,
}

impl VaultRecord {
    pub fn recovery_level(&self) -> RecoveryLevel {
        match (self.retention_days >= 90, self.purge_protection) {
            (true, false) => RecoveryLevel::RecoverablePurgeable,
            (true, true) => RecoveryLevel::Recoverable,
            (false, false) => RecoveryLevel::CustomizedRecoverablePurgeable,
            (false, true) => RecoveryLevel::CustomizedRecoverable,
        }
    }

    pub fn is_live(&self) -> bool {
        self.deleted.is_none()
    }
}

/// Which collection of a vault an object belongs to. Secrets and keys share names rules, versions and
/// soft delete; each kind has its own namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ObjectKind {
    Secret,
    Key,
}

impl ObjectKind {
    pub fn noun(self) -> &'static str {
        match self {
            ObjectKind::Secret => "secret",
            ObjectKind::Key => "key",
        }
    }
}

/// The attributes of one secret or key version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attributes {
    pub enabled: bool,
    pub not_before: Option<i64>,
    pub expires: Option<i64>,
    pub created: i64,
    pub updated: i64,
}

/// One immutable value of a secret, with its mutable attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretVersionRecord {
    pub version: VersionId,
    pub value: SecretString,
    pub content_type: Option<String>,
    pub tags: Tags,
    pub attributes: Attributes,
}

/// The header of a secret or key: its name, its current version, how many versions it has, and its
/// deletion state. Its size does not grow with the versions: they are listed, in creation order, by
/// a version index beside it ([`Mutation::IndexVersion`](crate::decide::Mutation::IndexVersion)),
/// one entry per version at its creation sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectHeader {
    pub name: ObjectName,
    /// The current version: the one created last.
    pub latest: VersionId,
    /// How many versions the object has (at least one). Versions are never removed one at a time,
    /// so this is also the creation sequence number the next version gets.
    pub version_count: u32,
    pub deleted: Option<Deletion>,
}

impl ObjectHeader {
    /// A new object with its first version.
    pub fn first(name: ObjectName, version: VersionId) -> Self {
        Self { name, latest: version, version_count: 1, deleted: None }
    }

    pub fn latest(&self) -> &VersionId {
        &self.latest
    }

    /// Adds a version as the current one; returns the creation sequence number it got.
    pub fn push(&mut self, version: VersionId) -> u32 {
        let seq = self.version_count;
        self.version_count = self.version_count.saturating_add(1);
        self.latest = version;
        seq
    }
}

/// What a purge index entry points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PurgeTarget {
    Vault { vault: VaultName },
    Object { kind: ObjectKind, vault: VaultName, vault_id: [u8; 16], name: ObjectName },
}

/// One version of a key: its immutable material and type, and its mutable operations and attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyVersionRecord {
    pub version: VersionId,
    pub spec: KeySpec,
    /// Recorded for `-HSM` key types (premium vaults); the material is software-protected until the
    /// PKCS#11 backend exists.
    pub hsm: bool,
    /// The private material in the crypto crate's stored form. Only ever written inside barrier
    /// ciphertext.
    pub material: SecretBytes,
    pub key_ops: Vec<KeyOp>,
    pub tags: Tags,
    pub attributes: Attributes,
}

/// What a lifetime action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LifetimeActionType {
    Rotate,
    Notify,
}

/// When a lifetime action fires, as a duration in seconds (parsed from ISO-8601 by the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Trigger {
    AfterCreate(i64),
    BeforeExpiry(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifetimeAction {
    pub trigger: Trigger,
    pub action: LifetimeActionType,
}

/// A key's rotation policy (Azure's `rotationpolicy`). Durations in seconds.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RotationPolicy {
    pub lifetime_actions: Vec<LifetimeAction>,
    /// `attributes.expiryTime`: a rotated version expires this long after its creation.
    pub expiry_time: Option<i64>,
    pub created: i64,
    pub updated: i64,
}

/// A rotation policy with the key it belongs to; kept in one index the leader's rotation loop scans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRecord {
    pub vault: VaultName,
    pub vault_id: [u8; 16],
    pub name: ObjectName,
    pub policy: RotationPolicy,
    /// The version a Notify action last fired for, so it fires once per version.
    pub notified_version: Option<VersionId>,
}
