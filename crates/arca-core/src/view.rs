//! The read-only view of state that rules are decided and queries answered against.

use arca_types::{ArcaError, ObjectName, VaultName, VersionId};

use crate::records::{SecretRecord, SecretVersionRecord, VaultRecord};

/// One page of a scan: the items and an opaque cursor to continue after the last one.
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Vec<u8>>,
}

/// Lookups and scans over state. Implemented over encrypted storage by the keyspace crate and over
/// `BTreeMap`s by [`crate::mem_view::MemView`]. Scan order is the implementation's; cursors are opaque.
pub trait StateView {
    fn vault(&self, name: &VaultName) -> Result<Option<VaultRecord>, ArcaError>;
    fn secret(&self, vault: &VaultRecord, name: &ObjectName) -> Result<Option<SecretRecord>, ArcaError>;
    fn secret_version(
        &self,
        vault: &VaultRecord,
        name: &ObjectName,
        version: &VersionId,
    ) -> Result<Option<SecretVersionRecord>, ArcaError>;
    fn vaults(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<VaultRecord>, ArcaError>;
    fn secrets(&self, vault: &VaultRecord, after: Option<&[u8]>, limit: usize)
        -> Result<Page<SecretRecord>, ArcaError>;
}
