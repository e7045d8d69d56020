//! Deciding a command: validate it, check it against current state, and say what to write.

use arca_types::limits::*;
use arca_types::names::{validate_content_type, validate_tags};
use arca_types::{ArcaError, ErrorCode, ObjectName, VaultName, VersionId};

use crate::command::Command;
use crate::identity::{AssignmentRecord, PrincipalRecord};
use crate::records::*;
use crate::view::StateView;

/// One change to state. The keyspace layer turns each into encrypted key/value writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    PutVault(VaultRecord),
    /// Removes the vault header and every object stored under the vault's id.
    PurgeVault {
        name: VaultName,
        id: [u8; 16],
    },
    PutHeader {
        kind: ObjectKind,
        vault_id: [u8; 16],
        header: ObjectHeader,
    },
    PutSecretVersion {
        vault_id: [u8; 16],
        name: ObjectName,
        version: SecretVersionRecord,
    },
    /// Records that `version` is the object's version number `seq` in creation order (0 for the first).
    IndexVersion {
        kind: ObjectKind,
        vault_id: [u8; 16],
        name: ObjectName,
        seq: u32,
        version: VersionId,
    },
    /// Removes an object's header, versions and version index (and, for a key, its rotation policy).
    PurgeObject {
        kind: ObjectKind,
        vault_id: [u8; 16],
        name: ObjectName,
    },
    PutKeyVersion {
        vault_id: [u8; 16],
        name: ObjectName,
        version: KeyVersionRecord,
    },
    PutPolicy(PolicyRecord),
    SchedulePurge {
        at: i64,
        target: PurgeTarget,
    },
    UnschedulePurge {
        at: i64,
        target: PurgeTarget,
    },
    /// Writes a principal with its name and client-id indexes.
    PutPrincipal(PrincipalRecord),
    DeletePrincipal(PrincipalRecord),
    /// Writes an assignment with its indexes (by principal, by role, and the one that makes a
    /// principal, role and scope unique).
    PutAssignment(AssignmentRecord),
    DeleteAssignment(AssignmentRecord),
    PutRole(arca_rbac::RoleDefinition),
    DeleteRole(arca_rbac::RoleDefinition),
    /// Writes a vault's network rules (purging the vault removes them).
    PutNetworkRules {
        vault_id: [u8; 16],
        rules: crate::network::NetworkRules,
    },
}

/// What the caller gets back once the mutations are committed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
// One outcome is built per request and moved a handful of times; boxing it would buy nothing measurable.
#[allow(clippy::large_enum_variant)]
pub enum Outcome {
    Vault(VaultRecord),
    Secret { vault: VaultRecord, secret: ObjectHeader, version: SecretVersionRecord },
    Key { vault: VaultRecord, key: ObjectHeader, version: KeyVersionRecord },
    Policy(PolicyRecord),
    Purged,
    Principal(PrincipalRecord),
    Assignment(AssignmentRecord),
    Role(arca_rbac::RoleDefinition),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub mutations: Vec<Mutation>,
    pub outcome: Outcome,
}

/// Decides `command` against `view` at time `now` (Unix seconds, proposed by the leader).
pub fn decide(view: &dyn StateView, command: &Command, now: i64) -> Result<Decision, ArcaError> {
    match command {
        Command::CreateVault { name, id, sku, retention_days, purge_protection, tags } => {
            create_vault(view, name, *id, *sku, *retention_days, *purge_protection, tags, now)
        }
        Command::UpdateVault { name, tags, purge_protection } => update_vault(view, name, tags, *purge_protection, now),
        Command::SetNetworkRules { name, rules } => set_network_rules(view, name, rules, now),
        Command::DeleteVault { name } => delete_vault(view, name, now),
        Command::RecoverVault { name } => recover_vault(view, name),
        Command::PurgeVault { name } => purge_vault(view, name, now, false),
        Command::SetSecret { .. } => crate::decide::secrets::set(view, command, now),
        Command::UpdateSecret { .. } => crate::decide::secrets::update(view, command, now),
        Command::DeleteSecret { vault, name } => secrets::delete(view, vault, name, now),
        Command::RecoverSecret { vault, name } => secrets::recover(view, vault, name),
        Command::PurgeSecret { vault, name } => objects::purge(view, ObjectKind::Secret, vault, name, now, false),
        Command::CreateKey { .. } => keys::create(view, command, now),
        Command::UpdateKey { .. } => keys::update(view, command, now),
        Command::DeleteKey { vault, name } => keys::delete(view, vault, name, now),
        Command::RecoverKey { vault, name } => keys::recover(view, vault, name),
        Command::PurgeKey { vault, name } => objects::purge(view, ObjectKind::Key, vault, name, now, false),
        Command::RestoreKey { vault, name, versions, policy } => keys::restore(view, vault, name, versions, policy),
        Command::SetRotationPolicy { vault, name, policy } => keys::set_policy(view, vault, name, policy, now),
        Command::MarkKeyNotified { vault, name, version } => keys::mark_notified(view, vault, name, version),
        Command::RestoreSecret { vault, name, versions } => secrets::restore(view, vault, name, versions),
        Command::PurgeDue { target, scheduled_purge_at } => purge_due(view, target, *scheduled_purge_at, now),
        Command::CreatePrincipal { id, kind, name, app_id, credential } => {
            identity::create_principal(view, *id, *kind, name, *app_id, credential.as_ref(), now)
        }
        Command::DeletePrincipal { id } => identity::delete_principal(view, id),
        Command::ResetCredential { principal, credential, append } => {
            identity::reset_credential(view, principal, credential, *append, now)
        }
        Command::DeleteCredential { principal, key_id } => identity::delete_credential(view, principal, key_id),
        Command::RegisterAgentCertificate { agent, credential } => {
            identity::register_agent_certificate(view, agent, credential, now)
        }
        Command::SetGroupMember { group, member, add } => identity::set_membership(view, group, member, *add),
        Command::RevokePrincipalTokens { principal } => identity::revoke_tokens(view, principal),
        Command::CreateRoleAssignment { id, principal, role_id, scope } => {
            identity::create_assignment(view, *id, principal, role_id, scope, now)
        }
        Command::DeleteRoleAssignment { id } => identity::delete_assignment(view, id),
        Command::PutRoleDefinition { role, update } => identity::put_role(view, role, *update),
        Command::DeleteRoleDefinition { id } => identity::delete_role(view, id),
    }
}

#[allow(clippy::too_many_arguments)]
fn create_vault(
    view: &dyn StateView,
    name: &VaultName,
    id: [u8; 16],
    sku: Sku,
    retention_days: u32,
    purge_protection: bool,
    tags: &Tags,
    now: i64,
) -> Result<Decision, ArcaError> {
    if !(RETENTION_DAYS_MIN..=RETENTION_DAYS_MAX).contains(&retention_days) {
        return Err(ArcaError::bad_parameter(
            "soft_delete_retention_days",
            format!(
                "soft_delete_retention_days must be {RETENTION_DAYS_MIN}-{RETENTION_DAYS_MAX}, it is {retention_days}"
            ),
        ));
    }
    validate_tags(tags)?;
    if let Some(existing) = view.vault(name)? {
        let why = if existing.is_live() { "exists" } else { "is soft-deleted; recover or purge it first" };
        return Err(ArcaError::new(ErrorCode::VaultAlreadyExists, format!("vault '{name}' {why}")));
    }
    let vault = VaultRecord {
        id,
        name: name.clone(),
        sku,
        retention_days,
        purge_protection,
        tags: tags.clone(),
        created: now,
        updated: now,
        deleted: None,
    };
    Ok(Decision { mutations: vec![Mutation::PutVault(vault.clone())], outcome: Outcome::Vault(vault) })
}

/// Looks up a vault that must be live.
pub(crate) fn live_vault(view: &dyn StateView, name: &VaultName) -> Result<VaultRecord, ArcaError> {
    match view.vault(name)? {
        Some(v) if v.is_live() => Ok(v),
        _ => Err(ArcaError::new(
            ErrorCode::VaultNotFound,
            format!("vault '{name}' does not exist or is deleted; create it or recover it first"),
        )),
    }
}

fn update_vault(
    view: &dyn StateView,
    name: &VaultName,
    tags: &Option<Tags>,
    purge_protection: Option<bool>,
    now: i64,
) -> Result<Decision, ArcaError> {
    let mut vault = live_vault(view, name)?;
    if let Some(tags) = tags {
        validate_tags(tags)?;
        vault.tags = tags.clone();
    }
    match purge_protection {
        Some(false) if vault.purge_protection => {
            return Err(ArcaError::bad_parameter(
                "enable_purge_protection",
                "purge protection cannot be turned off once it is on",
            ))
        }
        Some(on) => vault.purge_protection = on,
        None => {}
    }
    vault.updated = now;
    Ok(Decision { mutations: vec![Mutation::PutVault(vault.clone())], outcome: Outcome::Vault(vault) })
}

fn set_network_rules(
    view: &dyn StateView,
    name: &VaultName,
    rules: &crate::network::NetworkRules,
    now: i64,
) -> Result<Decision, ArcaError> {
    let mut vault = live_vault(view, name)?;
    vault.updated = now;
    let mutations =
        vec![Mutation::PutVault(vault.clone()), Mutation::PutNetworkRules { vault_id: vault.id, rules: rules.clone() }];
    Ok(Decision { mutations, outcome: Outcome::Vault(vault) })
}

fn delete_vault(view: &dyn StateView, name: &VaultName, now: i64) -> Result<Decision, ArcaError> {
    let mut vault = live_vault(view, name)?;
    let deletion = Deletion::starting(now, vault.retention_days);
    vault.deleted = Some(deletion);
    let mut mutations = vec![
        Mutation::PutVault(vault.clone()),
        Mutation::SchedulePurge { at: deletion.scheduled_purge_at, target: PurgeTarget::Vault { vault: name.clone() } },
    ];
    // As Azure: role assignments on the vault and its objects go with it, and a recovered (or
    // recreated) vault starts with none.
    mutations.extend(view.assignments_within(name)?.into_iter().map(Mutation::DeleteAssignment));
    Ok(Decision { mutations, outcome: Outcome::Vault(vault) })
}

fn deleted_vault(view: &dyn StateView, name: &VaultName) -> Result<(VaultRecord, Deletion), ArcaError> {
    match view.vault(name)? {
        Some(v) => match v.deleted {
            Some(d) => Ok((v, d)),
            None => Err(ArcaError::new(ErrorCode::VaultNotFound, format!("vault '{name}' is not deleted"))),
        },
        None => Err(ArcaError::new(ErrorCode::VaultNotFound, format!("no deleted vault named '{name}'"))),
    }
}

fn recover_vault(view: &dyn StateView, name: &VaultName) -> Result<Decision, ArcaError> {
    let (mut vault, deletion) = deleted_vault(view, name)?;
    vault.deleted = None;
    Ok(Decision {
        mutations: vec![
            Mutation::PutVault(vault.clone()),
            Mutation::UnschedulePurge {
                at: deletion.scheduled_purge_at,
                target: PurgeTarget::Vault { vault: name.clone() },
            },
        ],
        outcome: Outcome::Vault(vault),
    })
}

fn purge_vault(view: &dyn StateView, name: &VaultName, now: i64, system: bool) -> Result<Decision, ArcaError> {
    let (vault, deletion) = deleted_vault(view, name)?;
    check_purge_allowed(vault.purge_protection, deletion, now, system)?;
    Ok(Decision {
        mutations: vec![
            Mutation::PurgeVault { name: name.clone(), id: vault.id },
            Mutation::UnschedulePurge {
                at: deletion.scheduled_purge_at,
                target: PurgeTarget::Vault { vault: name.clone() },
            },
        ],
        outcome: Outcome::Purged,
    })
}

/// Purge protection blocks every purge a caller asks for until the scheduled purge date.
pub(crate) fn check_purge_allowed(
    protected: bool,
    deletion: Deletion,
    now: i64,
    system: bool,
) -> Result<(), ArcaError> {
    if protected && !system && now < deletion.scheduled_purge_at {
        return Err(ArcaError::new(
            ErrorCode::PurgeProtected,
            format!(
                "purge protection is on: the object can be recovered, and it is purged automatically at {} (Unix seconds)",
                deletion.scheduled_purge_at
            ),
        ));
    }
    Ok(())
}

/// The sweeper's purge. A stale index entry (already purged, recovered, or rescheduled) is dropped.
fn purge_due(view: &dyn StateView, target: &PurgeTarget, at: i64, now: i64) -> Result<Decision, ArcaError> {
    let unschedule = Mutation::UnschedulePurge { at, target: target.clone() };
    let stale = Decision { mutations: vec![unschedule.clone()], outcome: Outcome::Purged };
    if at > now {
        return Err(ArcaError::bad_parameter("scheduled_purge_at", "the purge date has not been reached"));
    }
    match target {
        PurgeTarget::Vault { vault } => match view.vault(vault)? {
            Some(v) if v.deleted.is_some_and(|d| d.scheduled_purge_at == at) => purge_vault(view, vault, now, true),
            _ => Ok(stale),
        },
        PurgeTarget::Object { kind, vault, vault_id, name } => {
            let Some(v) = view.vault(vault)? else { return Ok(stale) };
            if &v.id != vault_id {
                return Ok(stale);
            }
            match view.header(*kind, &v, name)? {
                Some(s) if s.deleted.is_some_and(|d| d.scheduled_purge_at == at) => {
                    let mut decision = objects::purge_record(*kind, &v, s);
                    decision.mutations.push(unschedule);
                    Ok(decision)
                }
                _ => Ok(stale),
            }
        }
    }
}

/// Checks the value and attribute limits shared by set and restore.
pub(crate) fn validate_version_fields(
    value_bytes: usize,
    content_type: Option<&str>,
    tags: &Tags,
    not_before: Option<i64>,
    expires: Option<i64>,
) -> Result<(), ArcaError> {
    if value_bytes > SECRET_VALUE_BYTES_MAX {
        return Err(ArcaError::bad_parameter(
            "value",
            format!("secret value is {value_bytes} bytes; the limit is {SECRET_VALUE_BYTES_MAX} bytes"),
        ));
    }
    if let Some(ct) = content_type {
        validate_content_type(ct)?;
    }
    validate_tags(tags)?;
    validate_window(not_before, expires)
}

pub(crate) fn validate_window(not_before: Option<i64>, expires: Option<i64>) -> Result<(), ArcaError> {
    for (field, t) in [("not_before", not_before), ("expires", expires)] {
        if t.is_some_and(|t| t < 0) {
            return Err(ArcaError::bad_parameter(field, format!("{field} must be a time after 1970-01-01")));
        }
    }
    if let (Some(nbf), Some(exp)) = (not_before, expires) {
        if nbf >= exp {
            return Err(ArcaError::bad_parameter("expires", "expires must be later than not_before"));
        }
    }
    Ok(())
}

pub mod identity;
pub mod keys;
pub mod objects;
pub mod secrets;

pub use secrets::decide_sets;

/// Checks the version ids a backup restores: at least one, at most `versions_max` (the object's own
/// limit) and [`BACKUP_VERSIONS_MAX`], none twice.
pub(crate) fn check_restored_ids<'a>(
    ids: impl ExactSizeIterator<Item = &'a VersionId>,
    versions_max: usize,
) -> Result<(), ArcaError> {
    let inconsistent = || ArcaError::bad_parameter("backup", "the backup does not hold a consistent set of versions");
    if ids.len() == 0 {
        return Err(inconsistent());
    }
    let most = versions_max.min(BACKUP_VERSIONS_MAX);
    if ids.len() > most {
        return Err(ArcaError::bad_parameter(
            "backup",
            format!(
                "the backup holds {} versions, more than the {most} {}",
                ids.len(),
                if versions_max < BACKUP_VERSIONS_MAX {
                    "one object of this kind may have"
                } else {
                    "a backup may hold"
                }
            ),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for id in ids {
        if !seen.insert(id) {
            return Err(inconsistent());
        }
    }
    Ok(())
}
