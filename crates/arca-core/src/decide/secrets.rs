//! The secret rules: set, update, delete, recover, purge and restore, with Azure's soft-delete table.

use arca_types::limits::SECRET_VERSIONS_MAX;
use arca_types::{ArcaError, ErrorCode, ObjectName, VaultName};

use super::{live_vault, objects, validate_version_fields, validate_window, Decision, Mutation, Outcome};
use crate::command::Command;
use crate::records::*;
use crate::view::StateView;

fn not_found() -> ArcaError {
    objects::not_found(ObjectKind::Secret)
}

pub(crate) fn set(view: &dyn StateView, command: &Command, now: i64) -> Result<Decision, ArcaError> {
    set_after(view, command, None, now)
}

/// What the sets decided earlier in a batch left of their secret: its header, and the versions
/// they added.
struct Earlier<'a> {
    header: &'a ObjectHeader,
    added: &'a [SecretVersionRecord],
}

/// Decides sets of one secret in order, each against the secret as the sets before it in the batch
/// left it: the decisions that deciding them one at a time, each applied before the next, would
/// give. A refused set leaves the secret as it was for the sets after it. Every command must be a
/// `SetSecret` of the same vault and secret (a command that is not is refused as an internal error).
/// The mutations of the batch, in order, make one proposal.
pub fn decide_sets(view: &dyn StateView, commands: &[&Command], now: i64) -> Vec<Result<Decision, ArcaError>> {
    let object = |c: &Command| match c {
        Command::SetSecret { vault, name, .. } => Some((vault.canonical().to_owned(), name.canonical())),
        _ => None,
    };
    let first = commands.first().and_then(|c| object(c));
    let mut header: Option<ObjectHeader> = None;
    let mut added: Vec<SecretVersionRecord> = Vec::new();
    let mut decisions = Vec::with_capacity(commands.len());
    for command in commands {
        if first.is_none() || object(command) != first {
            decisions.push(Err(ArcaError::internal("a batch of sets holds another command")));
            continue;
        }
        let earlier = header.as_ref().map(|header| Earlier { header, added: &added });
        let decided = set_after(view, command, earlier, now);
        if let Ok(Decision { mutations, outcome: Outcome::Secret { secret, version, .. } }) = &decided {
            if !mutations.is_empty() {
                header = Some(secret.clone());
                added.push(version.clone());
            }
        }
        decisions.push(decided);
    }
    decisions
}

fn set_after(
    view: &dyn StateView,
    command: &Command,
    earlier: Option<Earlier<'_>>,
    now: i64,
) -> Result<Decision, ArcaError> {
    let Command::SetSecret { vault, name, version, value, content_type, tags, enabled, not_before, expires } = command
    else {
        return Err(ArcaError::internal("set called with another command"));
    };
    validate_version_fields(value.len_bytes(), content_type.as_deref(), tags, *not_before, *expires)?;
    let vault = live_vault(view, vault)?;
    let existing = match &earlier {
        Some(earlier) => Some(earlier.header.clone()),
        None => view.header(ObjectKind::Secret, &vault, name)?,
    };
    if let Some(existing) = &existing {
        // The version id is minted once per request, so finding it means this is the same request
        // decided again (a retry after its first answer was lost): answer what it did, change
        // nothing, whatever happened to the secret since.
        let added = earlier.as_ref().and_then(|e| e.added.iter().find(|v| v.version == *version)).cloned();
        let stored = match added {
            Some(v) => Some(v),
            None => view.secret_version(&vault, name, version)?,
        };
        if let Some(stored) = stored {
            if stored.value != *value {
                return Err(ArcaError::new(ErrorCode::Conflict, "the minted version id already exists; retry"));
            }
            return Ok(Decision {
                mutations: Vec::new(),
                outcome: Outcome::Secret { vault, secret: existing.clone(), version: stored },
            });
        }
    }
    let (header, seq) = match existing {
        Some(existing) if existing.deleted.is_some() => {
            return Err(objects::deleted_but_recoverable(ObjectKind::Secret))
        }
        Some(existing) if existing.version_count as usize >= SECRET_VERSIONS_MAX => {
            return Err(ArcaError::bad_parameter(
                "value",
                format!("the secret has {SECRET_VERSIONS_MAX} versions, the most one secret may have"),
            ))
        }
        Some(mut header) => {
            let seq = header.push(version.clone());
            (header, seq)
        }
        None => (ObjectHeader::first(name.clone(), version.clone()), 0),
    };
    let record = SecretVersionRecord {
        version: version.clone(),
        value: value.clone(),
        content_type: content_type.clone(),
        tags: tags.clone(),
        attributes: Attributes {
            enabled: *enabled,
            not_before: *not_before,
            expires: *expires,
            created: now,
            updated: now,
        },
    };
    Ok(Decision {
        mutations: vec![
            Mutation::PutHeader { kind: ObjectKind::Secret, vault_id: vault.id, header: header.clone() },
            Mutation::PutSecretVersion { vault_id: vault.id, name: header.name.clone(), version: record.clone() },
            Mutation::IndexVersion {
                kind: ObjectKind::Secret,
                vault_id: vault.id,
                name: header.name.clone(),
                seq,
                version: version.clone(),
            },
        ],
        outcome: Outcome::Secret { vault, secret: header, version: record },
    })
}

/// Looks up a live secret header.
pub(crate) fn live_secret(
    view: &dyn StateView,
    vault: &VaultRecord,
    name: &ObjectName,
) -> Result<ObjectHeader, ArcaError> {
    objects::live_header(view, ObjectKind::Secret, vault, name)
}

pub(crate) fn update(view: &dyn StateView, command: &Command, now: i64) -> Result<Decision, ArcaError> {
    let Command::UpdateSecret { vault, name, version, content_type, tags, enabled, not_before, expires } = command
    else {
        return Err(ArcaError::internal("update called with another command"));
    };
    let vault = live_vault(view, vault)?;
    let header = live_secret(view, &vault, name)?;
    let version_id = version.clone().unwrap_or_else(|| header.latest().clone());
    let mut record = view.secret_version(&vault, name, &version_id)?.ok_or_else(not_found)?;
    if let Some(ct) = content_type {
        if let Some(ct) = ct {
            arca_types::names::validate_content_type(ct)?;
        }
        record.content_type = ct.clone();
    }
    if let Some(tags) = tags {
        arca_types::names::validate_tags(tags)?;
        record.tags = tags.clone();
    }
    if let Some(enabled) = enabled {
        record.attributes.enabled = *enabled;
    }
    if let Some(nbf) = not_before {
        record.attributes.not_before = *nbf;
    }
    if let Some(exp) = expires {
        record.attributes.expires = *exp;
    }
    validate_window(record.attributes.not_before, record.attributes.expires)?;
    record.attributes.updated = now;
    Ok(Decision {
        mutations: vec![
            // The header is rewritten unchanged so that a concurrent delete or set conflicts with this update.
            Mutation::PutHeader { kind: ObjectKind::Secret, vault_id: vault.id, header: header.clone() },
            Mutation::PutSecretVersion { vault_id: vault.id, name: header.name.clone(), version: record.clone() },
        ],
        outcome: Outcome::Secret { vault, secret: header, version: record },
    })
}

pub(crate) fn delete(
    view: &dyn StateView,
    vault: &VaultName,
    name: &ObjectName,
    now: i64,
) -> Result<Decision, ArcaError> {
    let (vault, header, mutations) = objects::delete(view, ObjectKind::Secret, vault, name, now)?;
    let version = latest(view, &vault, &header)?;
    Ok(Decision { mutations, outcome: Outcome::Secret { vault, secret: header, version } })
}

pub(crate) fn recover(view: &dyn StateView, vault: &VaultName, name: &ObjectName) -> Result<Decision, ArcaError> {
    let (vault, header, mutations) = objects::recover(view, ObjectKind::Secret, vault, name)?;
    let version = latest(view, &vault, &header)?;
    Ok(Decision { mutations, outcome: Outcome::Secret { vault, secret: header, version } })
}

fn latest(view: &dyn StateView, vault: &VaultRecord, header: &ObjectHeader) -> Result<SecretVersionRecord, ArcaError> {
    view.secret_version(vault, &header.name, header.latest())?
        .ok_or_else(|| ArcaError::internal("the latest version named by a secret header is missing"))
}

pub(crate) fn restore(
    view: &dyn StateView,
    vault: &VaultName,
    name: &ObjectName,
    versions: &[SecretVersionRecord],
) -> Result<Decision, ArcaError> {
    let vault = live_vault(view, vault)?;
    super::check_restored_ids(versions.iter().map(|r| &r.version), SECRET_VERSIONS_MAX)?;
    for record in versions {
        validate_version_fields(
            record.value.len_bytes(),
            record.content_type.as_deref(),
            &record.tags,
            record.attributes.not_before,
            record.attributes.expires,
        )?;
    }
    objects::check_name_free(view, ObjectKind::Secret, &vault, name)?;
    let (header, index) = objects::restored(ObjectKind::Secret, vault.id, name, versions.iter().map(|r| &r.version))?;
    let mut mutations =
        vec![Mutation::PutHeader { kind: ObjectKind::Secret, vault_id: vault.id, header: header.clone() }];
    mutations.extend(versions.iter().map(|record| Mutation::PutSecretVersion {
        vault_id: vault.id,
        name: name.clone(),
        version: record.clone(),
    }));
    mutations.extend(index);
    let latest =
        versions.last().cloned().ok_or_else(|| ArcaError::internal("restore checked versions is non-empty"))?;
    Ok(Decision { mutations, outcome: Outcome::Secret { vault, secret: header, version: latest } })
}
