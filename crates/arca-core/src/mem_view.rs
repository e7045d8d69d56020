//! A plaintext, in-memory [`StateView`] that applies [`Mutation`]s directly.
//!
//! It is the reference model: rule tests run against it, and the simulation's checker compares the
//! encrypted keyspace's answers with it.

use std::collections::BTreeMap;

use arca_types::{ArcaError, ObjectName, VaultName, VersionId};

use crate::decide::Mutation;
use crate::records::*;
use crate::view::{Page, StateView};

#[derive(Debug, Default, Clone)]
pub struct MemView {
    vaults: BTreeMap<String, VaultRecord>,
    secrets: BTreeMap<([u8; 16], String), SecretRecord>,
    versions: BTreeMap<([u8; 16], String, VersionId), SecretVersionRecord>,
    /// Purge schedule: (time, target) pairs, as the keyspace's purge index holds them.
    pub purge_index: Vec<(i64, PurgeTarget)>,
}

impl MemView {
    pub fn apply(&mut self, mutations: &[Mutation]) {
        for m in mutations {
            match m {
                Mutation::PutVault(v) => {
                    self.vaults.insert(v.name.canonical().to_owned(), v.clone());
                }
                Mutation::PurgeVault { name, id } => {
                    self.vaults.remove(name.canonical());
                    self.secrets.retain(|(vid, _), _| vid != id);
                    self.versions.retain(|(vid, _, _), _| vid != id);
                }
                Mutation::PutSecret { vault_id, secret } => {
                    self.secrets.insert((*vault_id, secret.name.canonical()), secret.clone());
                }
                Mutation::PutSecretVersion { vault_id, name, version } => {
                    self.versions.insert((*vault_id, name.canonical(), version.version.clone()), version.clone());
                }
                Mutation::PurgeSecret { vault_id, name, versions } => {
                    self.secrets.remove(&(*vault_id, name.canonical()));
                    for v in versions {
                        self.versions.remove(&(*vault_id, name.canonical(), v.clone()));
                    }
                }
                Mutation::SchedulePurge { at, target } => self.purge_index.push((*at, target.clone())),
                Mutation::UnschedulePurge { at, target } => self.purge_index.retain(|(a, t)| !(a == at && t == target)),
            }
        }
    }

    pub fn version_count(&self) -> usize {
        self.versions.len()
    }
}

fn page_of<T: Clone>(items: impl Iterator<Item = (Vec<u8>, T)>, after: Option<&[u8]>, limit: usize) -> Page<T> {
    let mut out = Vec::new();
    let mut last = None;
    let mut more = false;
    for (key, item) in items.filter(|(k, _)| after.is_none_or(|a| k.as_slice() > a)) {
        if out.len() == limit {
            more = true;
            break;
        }
        last = Some(key);
        out.push(item);
    }
    Page { items: out, next: if more { last } else { None } }
}

impl StateView for MemView {
    fn vault(&self, name: &VaultName) -> Result<Option<VaultRecord>, ArcaError> {
        Ok(self.vaults.get(name.canonical()).cloned())
    }

    fn secret(&self, vault: &VaultRecord, name: &ObjectName) -> Result<Option<SecretRecord>, ArcaError> {
        Ok(self.secrets.get(&(vault.id, name.canonical())).cloned())
    }

    fn secret_version(
        &self,
        vault: &VaultRecord,
        name: &ObjectName,
        version: &VersionId,
    ) -> Result<Option<SecretVersionRecord>, ArcaError> {
        Ok(self.versions.get(&(vault.id, name.canonical(), version.clone())).cloned())
    }

    fn vaults(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<VaultRecord>, ArcaError> {
        Ok(page_of(self.vaults.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.clone())), after, limit))
    }

    fn secrets(
        &self,
        vault: &VaultRecord,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page<SecretRecord>, ArcaError> {
        let items = self
            .secrets
            .iter()
            .filter(|((vid, _), _)| vid == &vault.id)
            .map(|((_, name), s)| (name.as_bytes().to_vec(), s.clone()));
        Ok(page_of(items, after, limit))
    }
}
