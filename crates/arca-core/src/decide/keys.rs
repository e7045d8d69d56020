//! The key rules: create (also import and rotate), update, delete, recover, restore, and rotation
//! policies with Azure's limits. Key material is opaque here: it was generated or imported and checked
//! by the crypto crate before the command was built.

use arca_types::keys::{KeyOp, KeySpec};
use arca_types::limits::{KEY_VERSIONS_MAX, POLICY_DURATION_S_MAX, SECONDS_PER_DAY};
use arca_types::names::validate_tags;
use arca_types::{ArcaError, ErrorCode, ObjectName, VaultName, VersionId};

use super::{live_vault, objects, validate_window, Decision, Mutation, Outcome};
use crate::command::Command;
use crate::records::*;
use crate::view::StateView;

const KIND: ObjectKind = ObjectKind::Key;
/// Largest stored key material (an RSA-4096 PKCS#8 is about 2.4 KiB).
pub const KEY_MATERIAL_BYTES_MAX: usize = 8 * 1024;
/// Azure's rotation-policy minimums.
pub const POLICY_EXPIRY_MIN_S: i64 = 28 * SECONDS_PER_DAY;
pub const POLICY_ROTATE_MARGIN_S: i64 = 7 * SECONDS_PER_DAY;

fn not_found() -> ArcaError {
    objects::not_found(KIND)
}

/// The operations a version gets: the caller's list (checked against the key type) or the defaults.
pub fn effective_ops(spec: KeySpec, requested: Option<&[KeyOp]>) -> Result<Vec<KeyOp>, ArcaError> {
    match requested {
        Some(ops) => {
            spec.check_ops(ops)?;
            Ok(ops.to_vec())
        }
        None => Ok(spec.default_ops()),
    }
}

fn check_version(spec: KeySpec, hsm: bool, vault: &VaultRecord, material_len: usize) -> Result<(), ArcaError> {
    spec.validate()?;
    if hsm && vault.sku != Sku::Premium {
        return Err(ArcaError::bad_parameter(
            "kty",
            format!("{} keys need a premium vault; this vault is standard", spec.kty(true)),
        ));
    }
    if material_len == 0 || material_len > KEY_MATERIAL_BYTES_MAX {
        return Err(ArcaError::internal("key material of an impossible size reached the rules"));
    }
    Ok(())
}

pub(crate) fn create(view: &dyn StateView, command: &Command, now: i64) -> Result<Decision, ArcaError> {
    let Command::CreateKey {
        vault,
        name,
        version,
        spec,
        hsm,
        material,
        key_ops,
        tags,
        enabled,
        not_before,
        expires,
        rotate_from,
    } = command
    else {
        return Err(ArcaError::internal("create called with another command"));
    };
    let vault = live_vault(view, vault)?;
    check_version(*spec, *hsm, &vault, material.len())?;
    let ops = effective_ops(*spec, key_ops.as_deref())?;
    validate_tags(tags)?;
    validate_window(*not_before, *expires)?;
    let mut expires = *expires;
    let existing = view.header(KIND, &vault, name)?;
    if let Some(existing) = &existing {
        // The version id is minted once per request: finding it means this request was decided
        // again after its first answer was lost. Answer what it did, change nothing.
        if let Some(stored) = view.key_version(&vault, name, version)? {
            if stored.material != *material {
                return Err(ArcaError::new(ErrorCode::Conflict, "the minted version id already exists; retry"));
            }
            return Ok(Decision {
                mutations: Vec::new(),
                outcome: Outcome::Key { vault, key: existing.clone(), version: stored },
            });
        }
    }
    let (header, seq) = match existing {
        Some(existing) if existing.deleted.is_some() => return Err(objects::deleted_but_recoverable(KIND)),
        Some(mut existing) => {
            if existing.version_count as usize >= KEY_VERSIONS_MAX {
                return Err(ArcaError::bad_parameter(
                    "name",
                    format!("the key has {KEY_VERSIONS_MAX} versions, the most one key may have"),
                ));
            }
            if let Some(from) = rotate_from {
                if existing.latest() != from {
                    return Err(ArcaError::new(
                        ErrorCode::Conflict,
                        "the key got a new version while it was being rotated; rotate again",
                    ));
                }
                let latest = view.key_version(&vault, name, from)?.ok_or_else(not_found)?;
                if latest.spec != *spec {
                    return Err(ArcaError::internal("a rotation generated a key of another type"));
                }
                if let Some(policy) = view.policy(&vault, name)? {
                    expires = policy.policy.expiry_time.map(|d| now.saturating_add(d));
                }
            }
            let seq = existing.push(version.clone());
            (existing, seq)
        }
        None if rotate_from.is_some() => return Err(not_found()),
        None => (ObjectHeader::first(name.clone(), version.clone()), 0),
    };
    let record = KeyVersionRecord {
        version: version.clone(),
        spec: *spec,
        hsm: *hsm,
        material: material.clone(),
        key_ops: ops,
        tags: tags.clone(),
        attributes: Attributes { enabled: *enabled, not_before: *not_before, expires, created: now, updated: now },
    };
    Ok(Decision {
        mutations: vec![
            Mutation::PutHeader { kind: KIND, vault_id: vault.id, header: header.clone() },
            Mutation::PutKeyVersion { vault_id: vault.id, name: header.name.clone(), version: record.clone() },
            Mutation::IndexVersion {
                kind: KIND,
                vault_id: vault.id,
                name: header.name.clone(),
                seq,
                version: version.clone(),
            },
        ],
        outcome: Outcome::Key { vault, key: header, version: record },
    })
}

pub(crate) fn update(view: &dyn StateView, command: &Command, now: i64) -> Result<Decision, ArcaError> {
    let Command::UpdateKey { vault, name, version, key_ops, tags, enabled, not_before, expires } = command else {
        return Err(ArcaError::internal("update called with another command"));
    };
    let vault = live_vault(view, vault)?;
    let header = objects::live_header(view, KIND, &vault, name)?;
    let id = version.clone().unwrap_or_else(|| header.latest().clone());
    let mut record = view.key_version(&vault, name, &id)?.ok_or_else(not_found)?;
    if let Some(ops) = key_ops {
        record.key_ops = effective_ops(record.spec, Some(ops))?;
    }
    if let Some(tags) = tags {
        validate_tags(tags)?;
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
            // The header is rewritten unchanged so that a concurrent delete or create conflicts with this update.
            Mutation::PutHeader { kind: KIND, vault_id: vault.id, header: header.clone() },
            Mutation::PutKeyVersion { vault_id: vault.id, name: header.name.clone(), version: record.clone() },
        ],
        outcome: Outcome::Key { vault, key: header, version: record },
    })
}

fn latest(view: &dyn StateView, vault: &VaultRecord, header: &ObjectHeader) -> Result<KeyVersionRecord, ArcaError> {
    view.key_version(vault, &header.name, header.latest())?
        .ok_or_else(|| ArcaError::internal("the latest version named by a key header is missing"))
}

pub(crate) fn delete(
    view: &dyn StateView,
    vault: &VaultName,
    name: &ObjectName,
    now: i64,
) -> Result<Decision, ArcaError> {
    let (vault, header, mutations) = objects::delete(view, KIND, vault, name, now)?;
    let version = latest(view, &vault, &header)?;
    Ok(Decision { mutations, outcome: Outcome::Key { vault, key: header, version } })
}

pub(crate) fn recover(view: &dyn StateView, vault: &VaultName, name: &ObjectName) -> Result<Decision, ArcaError> {
    let (vault, header, mutations) = objects::recover(view, KIND, vault, name)?;
    let version = latest(view, &vault, &header)?;
    Ok(Decision { mutations, outcome: Outcome::Key { vault, key: header, version } })
}

pub(crate) fn restore(
    view: &dyn StateView,
    vault: &VaultName,
    name: &ObjectName,
    versions: &[KeyVersionRecord],
    policy: &Option<RotationPolicy>,
) -> Result<Decision, ArcaError> {
    let vault = live_vault(view, vault)?;
    super::check_restored_ids(versions.iter().map(|r| &r.version), arca_types::limits::KEY_VERSIONS_MAX)?;
    for record in versions {
        check_version(record.spec, record.hsm, &vault, record.material.len())?;
        record.spec.check_ops(&record.key_ops)?;
        validate_tags(&record.tags)?;
        validate_window(record.attributes.not_before, record.attributes.expires)?;
    }
    objects::check_name_free(view, KIND, &vault, name)?;
    let (header, index) = objects::restored(KIND, vault.id, name, versions.iter().map(|r| &r.version))?;
    let mut mutations = vec![Mutation::PutHeader { kind: KIND, vault_id: vault.id, header: header.clone() }];
    mutations.extend(versions.iter().map(|record| Mutation::PutKeyVersion {
        vault_id: vault.id,
        name: name.clone(),
        version: record.clone(),
    }));
    mutations.extend(index);
    if let Some(policy) = policy {
        validate_policy(policy)?;
        mutations.push(Mutation::PutPolicy(PolicyRecord {
            vault: vault.name.clone(),
            vault_id: vault.id,
            name: header.name.clone(),
            policy: policy.clone(),
            notified_version: None,
        }));
    }
    let version =
        versions.last().cloned().ok_or_else(|| ArcaError::internal("restore checked versions is non-empty"))?;
    Ok(Decision { mutations, outcome: Outcome::Key { vault, key: header, version } })
}

/// Azure's rules: at most one Rotate and one Notify action; Notify only before expiry; `expiryTime`
/// at least 28 days; a rotation at least 7 days after creation and at least 7 days before expiry.
pub fn validate_policy(policy: &RotationPolicy) -> Result<(), ArcaError> {
    let bad = |m: String| Err(ArcaError::bad_parameter("lifetime_actions", m));
    let count = |t: LifetimeActionType| policy.lifetime_actions.iter().filter(|a| a.action == t).count();
    if count(LifetimeActionType::Rotate) > 1 || count(LifetimeActionType::Notify) > 1 {
        return bad("a rotation policy has at most one Rotate and one Notify action".into());
    }
    let too_long = |d: i64| d > POLICY_DURATION_S_MAX;
    if policy.expiry_time.is_some_and(too_long)
        || policy.lifetime_actions.iter().any(|a| match a.trigger {
            Trigger::AfterCreate(d) | Trigger::BeforeExpiry(d) => too_long(d),
        })
    {
        return Err(ArcaError::bad_parameter(
            "expiry_time",
            format!("a rotation policy's durations are at most {POLICY_DURATION_S_MAX} s (100 years)"),
        ));
    }
    if let Some(exp) = policy.expiry_time {
        if exp < POLICY_EXPIRY_MIN_S {
            return Err(ArcaError::bad_parameter(
                "expiry_time",
                format!("expiry_time must be at least P28D ({POLICY_EXPIRY_MIN_S} s); it is {exp} s"),
            ));
        }
    }
    for action in &policy.lifetime_actions {
        match (action.action, action.trigger) {
            (LifetimeActionType::Notify, Trigger::AfterCreate(_)) => {
                return bad("a Notify action triggers only on time_before_expiry".into())
            }
            (_, Trigger::AfterCreate(d) | Trigger::BeforeExpiry(d)) if d <= 0 => {
                return bad("a trigger duration must be positive".into())
            }
            (LifetimeActionType::Rotate, Trigger::AfterCreate(d)) => {
                if d < POLICY_ROTATE_MARGIN_S {
                    return bad("a rotation must land at least 7 days (P7D) after creation".into());
                }
                if policy.expiry_time.is_some_and(|exp| d > exp - POLICY_ROTATE_MARGIN_S) {
                    return bad("a rotation must land at least 7 days before the version expires".into());
                }
            }
            (LifetimeActionType::Rotate, Trigger::BeforeExpiry(d)) => {
                if d < POLICY_ROTATE_MARGIN_S {
                    return bad("a rotation must land at least 7 days (P7D) before expiry".into());
                }
                if policy.expiry_time.is_some_and(|exp| d > exp - POLICY_ROTATE_MARGIN_S) {
                    return bad("a rotation must land at least 7 days after creation".into());
                }
            }
            (LifetimeActionType::Notify, Trigger::BeforeExpiry(_)) => {}
        }
    }
    Ok(())
}

pub(crate) fn set_policy(
    view: &dyn StateView,
    vault: &VaultName,
    name: &ObjectName,
    policy: &RotationPolicy,
    now: i64,
) -> Result<Decision, ArcaError> {
    validate_policy(policy)?;
    let vault = live_vault(view, vault)?;
    let header = objects::live_header(view, KIND, &vault, name)?;
    let existing = view.policy(&vault, name)?;
    let created = existing.as_ref().map_or(now, |p| p.policy.created);
    let record = PolicyRecord {
        vault: vault.name.clone(),
        vault_id: vault.id,
        name: header.name.clone(),
        policy: RotationPolicy { created, updated: now, ..policy.clone() },
        notified_version: existing.and_then(|p| p.notified_version),
    };
    Ok(Decision {
        mutations: vec![
            Mutation::PutHeader { kind: KIND, vault_id: vault.id, header },
            Mutation::PutPolicy(record.clone()),
        ],
        outcome: Outcome::Policy(record),
    })
}

pub(crate) fn mark_notified(
    view: &dyn StateView,
    vault: &VaultName,
    name: &ObjectName,
    version: &VersionId,
) -> Result<Decision, ArcaError> {
    let vault = live_vault(view, vault)?;
    objects::live_header(view, KIND, &vault, name)?;
    let mut record = view.policy(&vault, name)?.ok_or_else(not_found)?;
    record.notified_version = Some(version.clone());
    Ok(Decision { mutations: vec![Mutation::PutPolicy(record.clone())], outcome: Outcome::Policy(record) })
}

/// What a policy asks for now, given the key's latest version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DueActions {
    pub rotate: bool,
    pub notify: bool,
}

/// Decides which lifetime actions are due at `now` for `latest` (pure; the leader's loop calls it with
/// replicated time and proposes what it says).
pub fn due_actions(record: &PolicyRecord, latest: &KeyVersionRecord, now: i64) -> DueActions {
    let mut due = DueActions::default();
    for action in &record.policy.lifetime_actions {
        let fires = match action.trigger {
            Trigger::AfterCreate(d) => now >= latest.attributes.created.saturating_add(d),
            Trigger::BeforeExpiry(d) => latest.attributes.expires.is_some_and(|exp| now >= exp.saturating_sub(d)),
        };
        match action.action {
            LifetimeActionType::Rotate => due.rotate |= fires,
            LifetimeActionType::Notify => {
                due.notify |= fires && record.notified_version.as_ref() != Some(&latest.version)
            }
        }
    }
    due
}
