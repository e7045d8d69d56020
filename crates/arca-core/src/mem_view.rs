//! A plaintext, in-memory [`StateView`] that applies [`Mutation`]s directly.
//!
//! It is the reference model: rule tests run against it, and the simulation's checker compares the
//! encrypted keyspace's answers with it.

use std::collections::BTreeMap;

use arca_types::{ArcaError, ObjectName, VaultName, VersionId};

use arca_rbac::{RoleDefinition, Scope};
use arca_types::DisplayName;

use crate::decide::Mutation;
use crate::identity::*;
use crate::records::*;
use crate::view::{Page, StateView};

#[derive(Debug, Default, Clone)]
pub struct MemView {
    vaults: BTreeMap<String, VaultRecord>,
    headers: BTreeMap<(ObjectKind, [u8; 16], String), ObjectHeader>,
    versions: BTreeMap<([u8; 16], String, VersionId), SecretVersionRecord>,
    key_versions: BTreeMap<([u8; 16], String, VersionId), KeyVersionRecord>,
    /// The version indexes: (kind, vault id, name, creation sequence number) to version id.
    version_index: BTreeMap<(ObjectKind, [u8; 16], String, u32), VersionId>,
    policies: BTreeMap<([u8; 16], String), PolicyRecord>,
    /// Purge schedule: (time, target) pairs, as the keyspace's purge index holds them.
    pub purge_index: Vec<(i64, PurgeTarget)>,
    principals: BTreeMap<PrincipalId, PrincipalRecord>,
    assignments: BTreeMap<[u8; 16], AssignmentRecord>,
    roles: BTreeMap<String, RoleDefinition>,
    network: BTreeMap<[u8; 16], crate::network::NetworkRules>,
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
                    self.headers.retain(|(_, vid, _), _| vid != id);
                    self.versions.retain(|(vid, _, _), _| vid != id);
                    self.key_versions.retain(|(vid, _, _), _| vid != id);
                    self.version_index.retain(|(_, vid, _, _), _| vid != id);
                    self.policies.retain(|(vid, _), _| vid != id);
                    self.network.remove(id);
                }
                Mutation::PutHeader { kind, vault_id, header } => {
                    self.headers.insert((*kind, *vault_id, header.name.canonical()), header.clone());
                }
                Mutation::PutKeyVersion { vault_id, name, version } => {
                    self.key_versions.insert((*vault_id, name.canonical(), version.version.clone()), version.clone());
                }
                Mutation::PutPolicy(record) => {
                    self.policies.insert((record.vault_id, record.name.canonical()), record.clone());
                }
                Mutation::PutSecretVersion { vault_id, name, version } => {
                    self.versions.insert((*vault_id, name.canonical(), version.version.clone()), version.clone());
                }
                Mutation::IndexVersion { kind, vault_id, name, seq, version } => {
                    self.version_index.insert((*kind, *vault_id, name.canonical(), *seq), version.clone());
                }
                Mutation::PurgeObject { kind, vault_id, name } => {
                    let object = name.canonical();
                    self.headers.remove(&(*kind, *vault_id, object.clone()));
                    let of_object = |vid: &[u8; 16], n: &String| vid == vault_id && *n == object;
                    match kind {
                        ObjectKind::Secret => self.versions.retain(|(vid, n, _), _| !of_object(vid, n)),
                        ObjectKind::Key => self.key_versions.retain(|(vid, n, _), _| !of_object(vid, n)),
                    }
                    self.version_index.retain(|(k, vid, n, _), _| !(k == kind && of_object(vid, n)));
                    if *kind == ObjectKind::Key {
                        self.policies.remove(&(*vault_id, object));
                    }
                }
                Mutation::SchedulePurge { at, target } => self.purge_index.push((*at, target.clone())),
                Mutation::UnschedulePurge { at, target } => self.purge_index.retain(|(a, t)| !(a == at && t == target)),
                Mutation::PutPrincipal(p) => drop(self.principals.insert(p.id, p.clone())),
                Mutation::DeletePrincipal(p) => drop(self.principals.remove(&p.id)),
                Mutation::PutAssignment(a) => drop(self.assignments.insert(a.id, a.clone())),
                Mutation::DeleteAssignment(a) => drop(self.assignments.remove(&a.id)),
                Mutation::PutRole(r) => drop(self.roles.insert(r.id.clone(), r.clone())),
                Mutation::DeleteRole(r) => drop(self.roles.remove(&r.id)),
                Mutation::PutNetworkRules { vault_id, rules } => drop(self.network.insert(*vault_id, rules.clone())),
            }
        }
    }

    /// Every stored version record and version index entry, of every object.
    pub fn version_count(&self) -> usize {
        self.versions.len() + self.key_versions.len() + self.version_index.len()
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

    fn header(
        &self,
        kind: ObjectKind,
        vault: &VaultRecord,
        name: &ObjectName,
    ) -> Result<Option<ObjectHeader>, ArcaError> {
        Ok(self.headers.get(&(kind, vault.id, name.canonical())).cloned())
    }

    fn version_ids(
        &self,
        kind: ObjectKind,
        vault: &VaultRecord,
        name: &ObjectName,
        after: Option<u32>,
        limit: usize,
    ) -> Result<Vec<(u32, VersionId)>, ArcaError> {
        let from = after.map_or(0, |a| u64::from(a) + 1);
        let Ok(from) = u32::try_from(from) else { return Ok(Vec::new()) };
        let object = name.canonical();
        let start = (kind, vault.id, object.clone(), from);
        let end = (kind, vault.id, object, u32::MAX);
        Ok(self.version_index.range(start..=end).take(limit).map(|((_, _, _, seq), id)| (*seq, id.clone())).collect())
    }

    fn key_version(
        &self,
        vault: &VaultRecord,
        name: &ObjectName,
        version: &VersionId,
    ) -> Result<Option<KeyVersionRecord>, ArcaError> {
        Ok(self.key_versions.get(&(vault.id, name.canonical(), version.clone())).cloned())
    }

    fn policy(&self, vault: &VaultRecord, name: &ObjectName) -> Result<Option<PolicyRecord>, ArcaError> {
        Ok(self.policies.get(&(vault.id, name.canonical())).cloned())
    }

    fn network_rules(&self, vault: &VaultRecord) -> Result<crate::network::NetworkRules, ArcaError> {
        Ok(self.network.get(&vault.id).cloned().unwrap_or_default())
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

    fn headers(
        &self,
        kind: ObjectKind,
        vault: &VaultRecord,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page<ObjectHeader>, ArcaError> {
        let items = self
            .headers
            .iter()
            .filter(|((k, vid, _), _)| *k == kind && vid == &vault.id)
            .map(|((_, _, name), s)| (name.as_bytes().to_vec(), s.clone()));
        Ok(page_of(items, after, limit))
    }
}

impl IdentityView for MemView {
    fn principal(&self, id: &PrincipalId) -> Result<Option<PrincipalRecord>, ArcaError> {
        Ok(self.principals.get(id).cloned())
    }

    fn principal_named(&self, name: &DisplayName) -> Result<Option<PrincipalId>, ArcaError> {
        Ok(self.principals.values().find(|p| p.name.key() == name.key()).map(|p| p.id))
    }

    fn principal_by_app(&self, app_id: &[u8; 16]) -> Result<Option<PrincipalId>, ArcaError> {
        Ok(self.principals.values().find(|p| p.app_id.as_ref() == Some(app_id)).map(|p| p.id))
    }

    fn principal_by_external(
        &self,
        kind: PrincipalKind,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<PrincipalId>, ArcaError> {
        Ok(self
            .principals
            .values()
            .find(|p| p.kind == kind && p.external_names().any(|n| n == (issuer, subject)))
            .map(|p| p.id))
    }

    fn principals(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<PrincipalRecord>, ArcaError> {
        Ok(page_of(self.principals.iter().map(|(k, v)| (k.to_vec(), v.clone())), after, limit))
    }

    fn assignment(&self, id: &[u8; 16]) -> Result<Option<AssignmentRecord>, ArcaError> {
        Ok(self.assignments.get(id).cloned())
    }

    fn assignment_of(
        &self,
        principal: &PrincipalId,
        role_id: &str,
        scope: &Scope,
    ) -> Result<Option<[u8; 16]>, ArcaError> {
        Ok(self
            .assignments
            .values()
            .find(|a| &a.principal == principal && a.role_id.eq_ignore_ascii_case(role_id) && &a.scope == scope)
            .map(|a| a.id))
    }

    fn assignments_of(&self, principal: &PrincipalId) -> Result<Vec<AssignmentRecord>, ArcaError> {
        Ok(self.assignments.values().filter(|a| &a.principal == principal).cloned().collect())
    }

    fn assignments_within(&self, vault: &arca_types::VaultName) -> Result<Vec<AssignmentRecord>, ArcaError> {
        Ok(self.assignments.values().filter(|a| a.scope.vault() == Some(vault)).cloned().collect())
    }

    fn role_in_use(&self, role_id: &str) -> Result<bool, ArcaError> {
        Ok(self.assignments.values().any(|a| a.role_id.eq_ignore_ascii_case(role_id)))
    }

    fn assignments(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<AssignmentRecord>, ArcaError> {
        Ok(page_of(self.assignments.iter().map(|(k, v)| (k.to_vec(), v.clone())), after, limit))
    }

    fn custom_role(&self, id: &str) -> Result<Option<RoleDefinition>, ArcaError> {
        Ok(self.roles.get(id).cloned())
    }

    fn custom_role_named(&self, name: &str) -> Result<Option<String>, ArcaError> {
        let key = arca_types::display_name::comparison_key(name.trim());
        Ok(self.roles.values().find(|r| arca_types::display_name::comparison_key(&r.name) == key).map(|r| r.id.clone()))
    }

    fn custom_roles(&self) -> Result<Vec<RoleDefinition>, ArcaError> {
        Ok(self.roles.values().cloned().collect())
    }
}
