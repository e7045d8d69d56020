//! How identity state is laid out in the keyspace: principals, role assignments and custom roles,
//! each with the indexes its lookups need. Every record is sealed under the system scope; every
//! index key is a keyed hash, so names, client ids and role ids never appear in the clear.
//!
//! | key | value |
//! |---|---|
//! | `pr/` + principal id | principal record (credentials as keyed hashes or public keys) |
//! | `pn/` + H(display name key) | principal id (names are unique) |
//! | `pc/` + H(client id) | principal id (the token endpoint's lookup) |
//! | `px/` + H(kind, issuer, subject) | the user or group holding that federated credential (a sign-in's lookup; checked against the record) |
//! | `ra/` + assignment id | role assignment |
//! | `rp/` + principal id + assignment id | the same assignment, by principal (every request's lookup) |
//! | `rr/` + H(role id) + assignment id | nothing: "the role is assigned" |
//! | `ru/` + H(principal, role, scope) | assignment id (one assignment per principal, role and scope) |
//! | `rd/` + H(role id) | custom role definition |
//! | `rn/` + H(role name key) | custom role id (names are unique, compared as display names are) |
//! | `rg/` + H(vault, principal or role) | the last assignment created there (guards scans) |
//!
//! Principal and assignment ids appear in keys as they are (random, not names); every name, client
//! id and role id is a keyed hash, and every record is sealed.

use arca_core::identity::{AssignmentRecord, IdentityView, PrincipalId, PrincipalKind, PrincipalRecord};
use arca_core::view::Page;
use arca_core::Mutation;
use arca_crypto::Scope as Sealing;
use arca_rbac::{RoleDefinition, Scope};
use arca_storage::Op;
use arca_types::{ArcaError, DisplayName};
use serde::de::DeserializeOwned;

use super::{storage, Keyspace, RecordingView};

const PRINCIPAL: &[u8] = b"pr/";
const PRINCIPAL_NAME: &[u8] = b"pn/";
const PRINCIPAL_CLIENT: &[u8] = b"pc/";
const PRINCIPAL_EXTERNAL: &[u8] = b"px/";
const ASSIGNMENT: &[u8] = b"ra/";
const ASSIGNMENT_BY_PRINCIPAL: &[u8] = b"rp/";
const ASSIGNMENT_BY_ROLE: &[u8] = b"rr/";
const ASSIGNMENT_UNIQUE: &[u8] = b"ru/";
const ROLE: &[u8] = b"rd/";
/// Bumped by every new assignment at (or within) a vault, of a principal, and of a role: what a
/// decision that scanned those assignments (delete a vault, a principal, a role) guards on, so an
/// assignment created meanwhile makes it decide again instead of being left behind.
const ASSIGNMENT_GENERATION: &[u8] = b"rg/";
const ROLE_NAME: &[u8] = b"rn/";

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

impl Keyspace {
    fn principal_key(id: &PrincipalId) -> Vec<u8> {
        concat(&[PRINCIPAL, id])
    }

    fn principal_name_key(&self, name: &DisplayName) -> Vec<u8> {
        self.hashed(PRINCIPAL_NAME, Sealing::System, &format!("principal-name:{}", name.key()))
    }

    fn principal_client_key(&self, app_id: &[u8; 16]) -> Vec<u8> {
        self.hashed(PRINCIPAL_CLIENT, Sealing::System, &format!("client-id:{}", hex::encode(app_id)))
    }

    fn principal_external_key(&self, kind: PrincipalKind, issuer: &str, subject: &str) -> Vec<u8> {
        // Lengths first, so no issuer and subject run together into another pair.
        let canonical = format!("external:{}:{}:{issuer}{subject}", kind.azure_name(), issuer.len());
        self.hashed(PRINCIPAL_EXTERNAL, Sealing::System, &canonical)
    }

    /// The index entries of a user's or group's federated credentials.
    fn external_keys(&self, p: &PrincipalRecord) -> Vec<Vec<u8>> {
        if !matches!(p.kind, PrincipalKind::User | PrincipalKind::Group) {
            return Vec::new();
        }
        p.external_names().map(|(issuer, subject)| self.principal_external_key(p.kind, issuer, subject)).collect()
    }

    fn assignment_key(id: &[u8; 16]) -> Vec<u8> {
        concat(&[ASSIGNMENT, id])
    }

    fn assignment_by_principal_key(principal: &PrincipalId, id: &[u8; 16]) -> Vec<u8> {
        concat(&[ASSIGNMENT_BY_PRINCIPAL, principal, id])
    }

    fn role_hash(&self, role_id: &str) -> Vec<u8> {
        self.barrier.name_hash(Sealing::System, format!("role-id:{}", role_id.to_ascii_lowercase()).as_bytes()).to_vec()
    }

    fn assignment_by_role_prefix(&self, role_id: &str) -> Vec<u8> {
        concat(&[ASSIGNMENT_BY_ROLE, &self.role_hash(role_id)])
    }

    fn assignment_unique_key(&self, principal: &PrincipalId, role_id: &str, scope: &Scope) -> Vec<u8> {
        let canonical = format!("assignment:{}:{}:{scope}", hex::encode(principal), role_id.to_ascii_lowercase());
        self.hashed(ASSIGNMENT_UNIQUE, Sealing::System, &canonical)
    }

    fn generation_key(&self, of: &str) -> Vec<u8> {
        self.hashed(ASSIGNMENT_GENERATION, Sealing::System, &format!("assignment-generation:{of}"))
    }

    fn vault_generation(&self, vault: &arca_types::VaultName) -> Vec<u8> {
        self.generation_key(&format!("vault:{}", vault.canonical()))
    }

    fn principal_generation(&self, principal: &PrincipalId) -> Vec<u8> {
        self.generation_key(&format!("principal:{}", hex::encode(principal)))
    }

    fn role_generation(&self, role_id: &str) -> Vec<u8> {
        self.generation_key(&format!("role:{}", role_id.to_ascii_lowercase()))
    }

    fn role_key(&self, role_id: &str) -> Vec<u8> {
        concat(&[ROLE, &self.role_hash(role_id)])
    }

    fn role_name_key(&self, name: &str) -> Vec<u8> {
        let key = arca_types::display_name::comparison_key(name.trim());
        self.hashed(ROLE_NAME, Sealing::System, &format!("role-name:{key}"))
    }

    fn put_sealed<T: serde::Serialize>(&self, key: Vec<u8>, value: &T) -> Result<Op, ArcaError> {
        Ok(Op::Put { value: self.seal(Sealing::System, &key, value)?, key })
    }

    /// The writes of an identity mutation, or `None` if `m` is not one.
    pub(super) fn identity_ops(&self, m: &Mutation) -> Result<Option<Vec<Op>>, ArcaError> {
        let ops = match m {
            Mutation::PutPrincipal(p) => {
                let mut ops = vec![
                    self.put_sealed(Self::principal_key(&p.id), p)?,
                    self.put_sealed(self.principal_name_key(&p.name), &p.id)?,
                ];
                if let Some(app) = &p.app_id {
                    ops.push(self.put_sealed(self.principal_client_key(app), &p.id)?);
                }
                for key in self.external_keys(p) {
                    ops.push(self.put_sealed(key, &p.id)?);
                }
                ops
            }
            Mutation::DeletePrincipal(p) => {
                let mut ops = vec![
                    Op::Delete { key: Self::principal_key(&p.id) },
                    Op::Delete { key: self.principal_name_key(&p.name) },
                ];
                if let Some(app) = &p.app_id {
                    ops.push(Op::Delete { key: self.principal_client_key(app) });
                }
                ops.extend(self.external_keys(p).into_iter().map(|key| Op::Delete { key }));
                ops
            }
            Mutation::PutAssignment(a) => {
                let mut ops = vec![
                    self.put_sealed(Self::assignment_key(&a.id), a)?,
                    self.put_sealed(Self::assignment_by_principal_key(&a.principal, &a.id), a)?,
                    self.put_sealed(concat(&[&self.assignment_by_role_prefix(&a.role_id), &a.id]), &a.id)?,
                    self.put_sealed(self.assignment_unique_key(&a.principal, &a.role_id, &a.scope), &a.id)?,
                    self.put_sealed(self.principal_generation(&a.principal), &a.id)?,
                    self.put_sealed(self.role_generation(&a.role_id), &a.id)?,
                ];
                if let Some(vault) = a.scope.vault() {
                    ops.push(self.put_sealed(self.vault_generation(vault), &a.id)?);
                }
                ops
            }
            Mutation::DeleteAssignment(a) => vec![
                Op::Delete { key: Self::assignment_key(&a.id) },
                Op::Delete { key: Self::assignment_by_principal_key(&a.principal, &a.id) },
                Op::Delete { key: concat(&[&self.assignment_by_role_prefix(&a.role_id), &a.id]) },
                Op::Delete { key: self.assignment_unique_key(&a.principal, &a.role_id, &a.scope) },
            ],
            Mutation::PutRole(r) => {
                vec![self.put_sealed(self.role_key(&r.id), r)?, self.put_sealed(self.role_name_key(&r.name), &r.id)?]
            }
            Mutation::DeleteRole(r) => {
                vec![Op::Delete { key: self.role_key(&r.id) }, Op::Delete { key: self.role_name_key(&r.name) }]
            }
            _ => return Ok(None),
        };
        Ok(Some(ops))
    }

    /// Every record under `prefix`, opened (for small, bounded sets: one principal's assignments,
    /// the custom roles).
    fn all_under<T: DeserializeOwned>(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, u64, T)>, ArcaError> {
        let mut out = Vec::new();
        for (key, v) in self.store.scan(prefix, None, usize::MAX).map_err(storage)? {
            let record = self.open(Sealing::System, &key, &v.value)?;
            out.push((key, v.modified_at, record));
        }
        Ok(out)
    }

    /// A principal, read straight from this node's replica (the request path's lookup, after its read
    /// barrier).
    pub fn principal(&self, id: &PrincipalId) -> Result<Option<PrincipalRecord>, ArcaError> {
        Ok(self.read(Sealing::System, &Self::principal_key(id))?.map(|(_, p)| p))
    }

    /// Every principal `keep` picks, read a page at a time (for the rare questions no index answers:
    /// which identities are bound to an agent).
    pub fn principals_where(&self, keep: impl Fn(&PrincipalRecord) -> bool) -> Result<Vec<PrincipalRecord>, ArcaError> {
        let view = self.recording_view();
        let mut picked = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = view.principals(after.as_deref(), arca_types::limits::PAGE_SIZE_MAX as usize)?;
            picked.extend(page.items.into_iter().filter(|p| keep(p)));
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(picked),
            }
        }
    }

    /// The principal a client id belongs to.
    pub fn principal_by_client(&self, app_id: &[u8; 16]) -> Result<Option<PrincipalRecord>, ArcaError> {
        match self.read::<PrincipalId>(Sealing::System, &self.principal_client_key(app_id))? {
            Some((_, id)) => self.principal(&id),
            None => Ok(None),
        }
    }

    /// The user (or group, by `kind`) that holds a federated credential for `issuer` and `subject`
    /// now: the index names who was given it last, and the record says whether it still holds it.
    pub fn principal_by_external(
        &self,
        kind: PrincipalKind,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<PrincipalRecord>, ArcaError> {
        let key = self.principal_external_key(kind, issuer, subject);
        let Some((_, id)) = self.read::<PrincipalId>(Sealing::System, &key)? else { return Ok(None) };
        Ok(self.principal(&id)?.filter(|p| p.kind == kind && p.external_names().any(|n| n == (issuer, subject))))
    }

    /// Every assignment held directly by any of `principals`.
    pub fn assignments_held(&self, principals: &[PrincipalId]) -> Result<Vec<AssignmentRecord>, ArcaError> {
        let mut out = Vec::new();
        for p in principals {
            out.extend(
                self.all_under::<AssignmentRecord>(&concat(&[ASSIGNMENT_BY_PRINCIPAL, p]))?
                    .into_iter()
                    .map(|(_, _, a)| a),
            );
        }
        Ok(out)
    }

    /// A custom role by id.
    pub fn custom_role(&self, id: &str) -> Result<Option<RoleDefinition>, ArcaError> {
        Ok(self.read(Sealing::System, &self.role_key(id))?.map(|(_, r)| r))
    }
}

impl RecordingView<'_> {
    /// A page of records under `prefix` whose keys continue with `suffix_len` bytes (ids).
    fn scan_ids<T: DeserializeOwned>(
        &self,
        prefix: &[u8],
        suffix_len: usize,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page<T>, ArcaError> {
        if after.is_some_and(|a| a.len() != suffix_len) {
            return Err(ArcaError::bad_parameter("page_token", "page_token is not one this server issued"));
        }
        let start = after.map(|a| concat(&[prefix, a]));
        let raw = self.keyspace.store.scan(prefix, start.as_deref(), limit + 1).map_err(storage)?;
        let more = raw.len() > limit;
        let mut items = Vec::new();
        let mut last = None;
        for (key, v) in raw.into_iter().take(limit) {
            items.push(self.keyspace.open(Sealing::System, &key, &v.value)?);
            self.reads.borrow_mut().entry(key.clone()).or_insert(Some(v.modified_at));
            last = Some(key[prefix.len()..].to_vec());
        }
        Ok(Page { items, next: if more { last } else { None } })
    }

    fn all<T: DeserializeOwned>(&self, prefix: &[u8]) -> Result<Vec<T>, ArcaError> {
        let found = self.keyspace.all_under::<T>(prefix)?;
        let mut reads = self.reads.borrow_mut();
        Ok(found
            .into_iter()
            .map(|(key, at, record)| {
                reads.entry(key).or_insert(Some(at));
                record
            })
            .collect())
    }
}

impl IdentityView for RecordingView<'_> {
    fn principal(&self, id: &PrincipalId) -> Result<Option<PrincipalRecord>, ArcaError> {
        self.read(Sealing::System, Keyspace::principal_key(id))
    }

    fn principal_named(&self, name: &DisplayName) -> Result<Option<PrincipalId>, ArcaError> {
        self.read(Sealing::System, self.keyspace.principal_name_key(name))
    }

    fn principal_by_app(&self, app_id: &[u8; 16]) -> Result<Option<PrincipalId>, ArcaError> {
        self.read(Sealing::System, self.keyspace.principal_client_key(app_id))
    }

    fn principals(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<PrincipalRecord>, ArcaError> {
        self.scan_ids(PRINCIPAL, 16, after, limit)
    }

    fn principal_by_external(
        &self,
        kind: PrincipalKind,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<PrincipalId>, ArcaError> {
        self.read(Sealing::System, self.keyspace.principal_external_key(kind, issuer, subject))
    }

    fn assignment(&self, id: &[u8; 16]) -> Result<Option<AssignmentRecord>, ArcaError> {
        self.read(Sealing::System, Keyspace::assignment_key(id))
    }

    fn assignment_of(
        &self,
        principal: &PrincipalId,
        role_id: &str,
        scope: &Scope,
    ) -> Result<Option<[u8; 16]>, ArcaError> {
        self.read(Sealing::System, self.keyspace.assignment_unique_key(principal, role_id, scope))
    }

    fn assignments_of(&self, principal: &PrincipalId) -> Result<Vec<AssignmentRecord>, ArcaError> {
        self.read::<[u8; 16]>(Sealing::System, self.keyspace.principal_generation(principal))?;
        self.all(&concat(&[ASSIGNMENT_BY_PRINCIPAL, principal]))
    }

    fn role_in_use(&self, role_id: &str) -> Result<bool, ArcaError> {
        self.read::<[u8; 16]>(Sealing::System, self.keyspace.role_generation(role_id))?;
        let prefix = self.keyspace.assignment_by_role_prefix(role_id);
        let found = self.keyspace.store.scan(&prefix, None, 1).map_err(storage)?;
        if let Some((key, v)) = found.first() {
            self.reads.borrow_mut().entry(key.clone()).or_insert(Some(v.modified_at));
        }
        Ok(!found.is_empty())
    }

    fn assignments_within(&self, vault: &arca_types::VaultName) -> Result<Vec<AssignmentRecord>, ArcaError> {
        self.read::<[u8; 16]>(Sealing::System, self.keyspace.vault_generation(vault))?;
        let mut out = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self.scan_ids::<AssignmentRecord>(ASSIGNMENT, 16, after.as_deref(), 1000)?;
            out.extend(page.items.into_iter().filter(|a| a.scope.vault() == Some(vault)));
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(out),
            }
        }
    }

    fn assignments(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<AssignmentRecord>, ArcaError> {
        self.scan_ids(ASSIGNMENT, 16, after, limit)
    }

    fn custom_role(&self, id: &str) -> Result<Option<RoleDefinition>, ArcaError> {
        self.read(Sealing::System, self.keyspace.role_key(id))
    }

    fn custom_role_named(&self, name: &str) -> Result<Option<String>, ArcaError> {
        self.read(Sealing::System, self.keyspace.role_name_key(name))
    }

    fn custom_roles(&self) -> Result<Vec<RoleDefinition>, ArcaError> {
        self.all(ROLE)
    }
}

#[cfg(test)]
mod tests {
    use arca_core::{decide, Command, Sku, Tags};
    use arca_crypto::OsEntropy;
    use arca_storage::proposal::ApplyOutcome;
    use arca_storage::StateStore;
    use arca_types::VaultName;

    use super::*;

    use crate::keyspace::test_node::{Node, NOW};

    fn vault() -> VaultName {
        VaultName::parse("race").unwrap()
    }

    fn setup() -> Node {
        let mut node = Node::new();
        node.run(&Command::CreateVault {
            name: vault(),
            id: [1; 16],
            sku: Sku::Standard,
            retention_days: 7,
            purge_protection: false,
            tags: Tags::new(),
        });
        node.run(&Command::CreatePrincipal {
            id: [2; 16],
            kind: PrincipalKind::ServicePrincipal,
            name: arca_types::DisplayName::parse("name", "racer").unwrap(),
            app_id: Some([3; 16]),
            credential: None,
        });
        node
    }

    fn assign(id: u8) -> Command {
        Command::CreateRoleAssignment {
            id: [id; 16],
            principal: [2; 16],
            role_id: arca_rbac::role::KEY_VAULT_SECRETS_USER.into(),
            scope: arca_rbac::Scope::Vault(vault()),
        }
    }

    /// An assignment created between the decision to delete its vault (or principal) and that
    /// decision's apply makes the delete conflict (and be decided again), instead of surviving it.
    #[test]
    fn an_assignment_created_meanwhile_is_never_left_behind() {
        for delete in [Command::DeleteVault { name: vault() }, Command::DeletePrincipal { id: [2; 16] }] {
            let mut node = setup();
            let deleting = node.decide(&delete);
            node.run(&assign(9));
            assert_eq!(node.apply(&deleting), ApplyOutcome::Conflict, "{delete:?}");
            // Decided again, it deletes the assignment too.
            node.run(&delete);
            let view = node.keyspace.recording_view();
            assert!(view.assignment(&[9; 16]).unwrap().is_none(), "{delete:?}");
        }
        // A custom role deleted while it is being assigned: the delete conflicts, then is refused.
        let mut node = setup();
        let role = arca_rbac::role::parse_custom(
            r#"{"Name": "Racer", "DataActions": ["Microsoft.KeyVault/vaults/secrets/readMetadata/action"], "AssignableScopes": ["/"]}"#,
            "44444444-4444-4444-4444-444444444444",
        )
        .unwrap();
        node.run(&Command::PutRoleDefinition { role: role.clone(), update: false });
        let deleting = node.decide(&Command::DeleteRoleDefinition { id: role.id.clone() });
        node.run(&Command::CreateRoleAssignment {
            id: [8; 16],
            principal: [2; 16],
            role_id: role.id.clone(),
            scope: arca_rbac::Scope::Cluster,
        });
        assert_eq!(node.apply(&deleting), ApplyOutcome::Conflict);
        let view = node.keyspace.recording_view();
        assert!(decide(&view, &Command::DeleteRoleDefinition { id: role.id }, NOW).is_err());
    }

    #[test]
    fn token_keys_written_without_the_barrier_are_never_trusted() {
        let node = setup();
        let attacker = arca_crypto::cluster_pki::Ed25519Key::generate(&OsEntropy);
        let plain =
            crate::keyspace::put_plain(crate::keyspace::TOKEN_KEYS_KEY, &vec![arca_identity::TokenKey::of(&attacker)]);
        let arca_storage::Op::Put { key, value } = plain else { panic!() };
        node.store.commit(50, &[arca_storage::Op::Put { key, value }], b"meta").unwrap();
        assert!(node.keyspace.token_keys().is_err(), "a token key that is not sealed is refused, not used");
    }
}
