//! The read-only view of state that rules are decided and queries answered against.

use arca_types::{ArcaError, ObjectName, VaultName, VersionId};

use crate::records::{KeyVersionRecord, ObjectHeader, ObjectKind, PolicyRecord, SecretVersionRecord, VaultRecord};

/// One page of a scan: the items and an opaque cursor to continue after the last one.
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Vec<u8>>,
}

/// Lookups and scans over state. Implemented over encrypted storage by the keyspace crate and over
/// `BTreeMap`s by [`crate::mem_view::MemView`]. Scan order is the implementation's; cursors are opaque.
pub trait StateView: crate::identity::IdentityView {
    fn vault(&self, name: &VaultName) -> Result<Option<VaultRecord>, ArcaError>;
    fn header(
        &self,
        kind: ObjectKind,
        vault: &VaultRecord,
        name: &ObjectName,
    ) -> Result<Option<ObjectHeader>, ArcaError>;
    fn secret_version(
        &self,
        vault: &VaultRecord,
        name: &ObjectName,
        version: &VersionId,
    ) -> Result<Option<SecretVersionRecord>, ArcaError>;
    fn vaults(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<VaultRecord>, ArcaError>;
    fn headers(
        &self,
        kind: ObjectKind,
        vault: &VaultRecord,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page<ObjectHeader>, ArcaError>;
    /// The object's version ids in creation order, after creation sequence number `after`.
    fn version_ids(
        &self,
        kind: ObjectKind,
        vault: &VaultRecord,
        name: &ObjectName,
        after: Option<u32>,
        limit: usize,
    ) -> Result<Vec<(u32, VersionId)>, ArcaError>;
    fn key_version(
        &self,
        vault: &VaultRecord,
        name: &ObjectName,
        version: &VersionId,
    ) -> Result<Option<KeyVersionRecord>, ArcaError>;
    /// The rotation policy of a key, if one was ever set.
    fn policy(&self, vault: &VaultRecord, name: &ObjectName) -> Result<Option<PolicyRecord>, ArcaError>;
    /// The vault's network rules (the default, which allows every address, if none were set).
    fn network_rules(&self, vault: &VaultRecord) -> Result<crate::network::NetworkRules, ArcaError>;
}
