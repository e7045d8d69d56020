//! The rules secrets and keys share: live lookups, soft delete, recover and purge, with Azure's
//! soft-delete table. Each kind answers with its own not-found code.

use arca_types::{ArcaError, ErrorCode, ObjectName, VaultName, VersionId};

use super::{check_purge_allowed, live_vault, Decision, Mutation, Outcome};
use crate::records::*;
use crate::view::StateView;

pub(crate) fn not_found_code(kind: ObjectKind) -> ErrorCode {
    match kind {
        ObjectKind::Secret => ErrorCode::SecretNotFound,
        ObjectKind::Key => ErrorCode::KeyNotFound,
    }
}

/// The message names neither the vault nor the object: object names are sensitive.
pub(crate) fn not_found(kind: ObjectKind) -> ArcaError {
    ArcaError::new(
        not_found_code(kind),
        format!("the {} (or the requested version) does not exist or is deleted", kind.noun()),
    )
}

pub(crate) fn deleted_but_recoverable(kind: ObjectKind) -> ArcaError {
    ArcaError::new(
        ErrorCode::ObjectIsDeletedButRecoverable,
        format!("a deleted {} holds this name; recover it or purge it before reusing the name", kind.noun()),
    )
}

pub(crate) fn target(kind: ObjectKind, vault: &VaultRecord, name: &ObjectName) -> PurgeTarget {
    PurgeTarget::Object { kind, vault: vault.name.clone(), vault_id: vault.id, name: name.clone() }
}

/// Looks up a live header of `kind`.
pub(crate) fn live_header(
    view: &dyn StateView,
    kind: ObjectKind,
    vault: &VaultRecord,
    name: &ObjectName,
) -> Result<ObjectHeader, ArcaError> {
    match view.header(kind, vault, name)? {
        Some(h) if h.deleted.is_none() => Ok(h),
        _ => Err(not_found(kind)),
    }
}

/// Restore needs a name no live or deleted object of the kind holds.
/// What a restore writes besides the version records: the header of an object whose versions are
/// `ids` in creation order (built as sets build it), and the version index entries that list them.
pub(crate) fn restored<'a>(
    kind: ObjectKind,
    vault_id: [u8; 16],
    name: &ObjectName,
    ids: impl IntoIterator<Item = &'a VersionId>,
) -> Result<(ObjectHeader, Vec<Mutation>), ArcaError> {
    let mut header: Option<ObjectHeader> = None;
    let mut index = Vec::new();
    for id in ids {
        let seq = match &mut header {
            Some(header) => header.push(id.clone()),
            None => {
                header = Some(ObjectHeader::first(name.clone(), id.clone()));
                0
            }
        };
        index.push(Mutation::IndexVersion { kind, vault_id, name: name.clone(), seq, version: id.clone() });
    }
    let header = header.ok_or_else(|| ArcaError::internal("restore checked versions is non-empty"))?;
    Ok((header, index))
}

pub(crate) fn check_name_free(
    view: &dyn StateView,
    kind: ObjectKind,
    vault: &VaultRecord,
    name: &ObjectName,
) -> Result<(), ArcaError> {
    match view.header(kind, vault, name)? {
        Some(existing) if existing.deleted.is_some() => Err(deleted_but_recoverable(kind)),
        Some(_) => Err(ArcaError::new(
            ErrorCode::Conflict,
            format!("a {} with this name already exists in the vault; restore needs a free name", kind.noun()),
        )),
        None => Ok(()),
    }
}

/// Soft-deletes an object: every version moves with the header, and the purge is scheduled.
pub(crate) fn delete(
    view: &dyn StateView,
    kind: ObjectKind,
    vault: &VaultName,
    name: &ObjectName,
    now: i64,
) -> Result<(VaultRecord, ObjectHeader, Vec<Mutation>), ArcaError> {
    let vault = live_vault(view, vault)?;
    let mut header = live_header(view, kind, &vault, name)?;
    let deletion = Deletion::starting(now, vault.retention_days);
    header.deleted = Some(deletion);
    let mutations = vec![
        Mutation::PutHeader { kind, vault_id: vault.id, header: header.clone() },
        Mutation::SchedulePurge { at: deletion.scheduled_purge_at, target: target(kind, &vault, &header.name) },
    ];
    Ok((vault, header, mutations))
}

fn deleted_header(
    view: &dyn StateView,
    kind: ObjectKind,
    vault: &VaultRecord,
    name: &ObjectName,
) -> Result<(ObjectHeader, Deletion), ArcaError> {
    match view.header(kind, vault, name)? {
        Some(h) => match h.deleted {
            Some(d) => Ok((h, d)),
            None => Err(ArcaError::new(not_found_code(kind), format!("the {} is not deleted", kind.noun()))),
        },
        None => Err(ArcaError::new(not_found_code(kind), format!("no deleted {} has this name", kind.noun()))),
    }
}

/// A deleted object's header, for get-deleted reads.
pub fn get_deleted(
    view: &dyn StateView,
    kind: ObjectKind,
    vault: &VaultRecord,
    name: &ObjectName,
) -> Result<ObjectHeader, ArcaError> {
    deleted_header(view, kind, vault, name).map(|(h, _)| h)
}

pub(crate) fn recover(
    view: &dyn StateView,
    kind: ObjectKind,
    vault: &VaultName,
    name: &ObjectName,
) -> Result<(VaultRecord, ObjectHeader, Vec<Mutation>), ArcaError> {
    let vault = live_vault(view, vault)?;
    let (mut header, deletion) = deleted_header(view, kind, &vault, name)?;
    header.deleted = None;
    let mutations = vec![
        Mutation::PutHeader { kind, vault_id: vault.id, header: header.clone() },
        Mutation::UnschedulePurge { at: deletion.scheduled_purge_at, target: target(kind, &vault, &header.name) },
    ];
    Ok((vault, header, mutations))
}

pub(crate) fn purge(
    view: &dyn StateView,
    kind: ObjectKind,
    vault: &VaultName,
    name: &ObjectName,
    now: i64,
    system: bool,
) -> Result<Decision, ArcaError> {
    let vault = live_vault(view, vault)?;
    let (header, deletion) = deleted_header(view, kind, &vault, name)?;
    check_purge_allowed(vault.purge_protection, deletion, now, system)?;
    let target = target(kind, &vault, &header.name);
    let mut decision = purge_record(kind, &vault, header);
    decision.mutations.push(Mutation::UnschedulePurge { at: deletion.scheduled_purge_at, target });
    Ok(decision)
}

pub(crate) fn purge_record(kind: ObjectKind, vault: &VaultRecord, header: ObjectHeader) -> Decision {
    Decision {
        mutations: vec![Mutation::PurgeObject { kind, vault_id: vault.id, name: header.name }],
        outcome: Outcome::Purged,
    }
}
